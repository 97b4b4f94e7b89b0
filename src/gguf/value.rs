//! GGUF metadata values, with typed accessors whose errors name the file,
//! the key and the expected type.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::array::{Array, Strings};
use crate::error::{Error, Result};

/// The GGUF metadata value type ids (spec §1.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueType {
    U8 = 0,
    I8 = 1,
    U16 = 2,
    I16 = 3,
    U32 = 4,
    I32 = 5,
    F32 = 6,
    Bool = 7,
    String = 8,
    Array = 9,
    U64 = 10,
    I64 = 11,
    F64 = 12,
}

impl ValueType {
    pub fn from_id(id: u32) -> Option<ValueType> {
        use ValueType::*;
        Some(match id {
            0 => U8,
            1 => I8,
            2 => U16,
            3 => I16,
            4 => U32,
            5 => I32,
            6 => F32,
            7 => Bool,
            8 => String,
            9 => Array,
            10 => U64,
            11 => I64,
            12 => F64,
            _ => return None,
        })
    }
}

/// One metadata value. Arrays are stored compactly ([`Array`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    String(String),
    Array(Array),
    U64(u64),
    I64(i64),
    F64(f64),
}

impl Value {
    pub fn value_type(&self) -> ValueType {
        match self {
            Value::U8(_) => ValueType::U8,
            Value::I8(_) => ValueType::I8,
            Value::U16(_) => ValueType::U16,
            Value::I16(_) => ValueType::I16,
            Value::U32(_) => ValueType::U32,
            Value::I32(_) => ValueType::I32,
            Value::F32(_) => ValueType::F32,
            Value::Bool(_) => ValueType::Bool,
            Value::String(_) => ValueType::String,
            Value::Array(..) => ValueType::Array,
            Value::U64(_) => ValueType::U64,
            Value::I64(_) => ValueType::I64,
            Value::F64(_) => ValueType::F64,
        }
    }

    /// Any integer type, if its value is non-negative and fits in u64.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Value::U8(v) => Some(v as u64),
            Value::U16(v) => Some(v as u64),
            Value::U32(v) => Some(v as u64),
            Value::U64(v) => Some(v),
            Value::I8(v) => u64::try_from(v).ok(),
            Value::I16(v) => u64::try_from(v).ok(),
            Value::I32(v) => u64::try_from(v).ok(),
            Value::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }

    /// Any integer type, if it fits in i64.
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            Value::U8(v) => Some(v as i64),
            Value::U16(v) => Some(v as i64),
            Value::U32(v) => Some(v as i64),
            Value::U64(v) => i64::try_from(v).ok(),
            Value::I8(v) => Some(v as i64),
            Value::I16(v) => Some(v as i64),
            Value::I32(v) => Some(v as i64),
            Value::I64(v) => Some(v),
            _ => None,
        }
    }

    /// Any float or integer type, as f64.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::F32(v) => Some(v as f64),
            Value::F64(v) => Some(v),
            _ => self.as_i64().map(|v| v as f64),
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            Value::Bool(b) => Some(b),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&Array> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }

    /// A short description for error messages ("u32 7", "string", "array of 3 f32").
    pub fn describe(&self) -> String {
        match self {
            Value::String(s) if s.len() <= 40 => format!("string {s:?}"),
            Value::String(s) => format!("string of {} bytes", s.len()),
            Value::Array(a) => a.describe(),
            v => format!("{v:?}"),
        }
    }
}

/// All metadata of one file, keyed by name, plus the file's path for errors.
#[derive(Debug, Clone, Default)]
pub struct Metadata {
    pub path: PathBuf,
    pub map: BTreeMap<String, Value>,
}

impl Metadata {
    pub fn new(path: &Path) -> Metadata {
        Metadata { path: path.to_path_buf(), map: BTreeMap::new() }
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.map.get(key)
    }

    fn missing(&self, key: &str, expected: &str) -> Error {
        Error::MissingKey { path: self.path.clone(), key: key.to_string(), expected: expected.to_string() }
    }

    fn bad(&self, key: &str, expected: &str, found: &Value) -> Error {
        Error::BadKey {
            path: self.path.clone(),
            key: key.to_string(),
            expected: expected.to_string(),
            found: found.describe(),
        }
    }

    /// A required non-negative integer of any width.
    pub fn u64(&self, key: &str) -> Result<u64> {
        let v = self.get(key).ok_or_else(|| self.missing(key, "a non-negative integer"))?;
        v.as_u64().ok_or_else(|| self.bad(key, "a non-negative integer", v))
    }

    /// An optional non-negative integer; present but mistyped is an error.
    pub fn opt_u64(&self, key: &str) -> Result<Option<u64>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v.as_u64().map(Some).ok_or_else(|| self.bad(key, "a non-negative integer", v)),
        }
    }

    /// A required number (any float or integer type).
    pub fn f64(&self, key: &str) -> Result<f64> {
        let v = self.get(key).ok_or_else(|| self.missing(key, "a number"))?;
        v.as_f64().ok_or_else(|| self.bad(key, "a number", v))
    }

    pub fn opt_f64(&self, key: &str) -> Result<Option<f64>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v.as_f64().map(Some).ok_or_else(|| self.bad(key, "a number", v)),
        }
    }

    pub fn str(&self, key: &str) -> Result<&str> {
        let v = self.get(key).ok_or_else(|| self.missing(key, "a string"))?;
        v.as_str().ok_or_else(|| self.bad(key, "a string", v))
    }

    pub fn opt_str(&self, key: &str) -> Result<Option<&str>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v.as_str().map(Some).ok_or_else(|| self.bad(key, "a string", v)),
        }
    }

    pub fn opt_bool(&self, key: &str) -> Result<Option<bool>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v.as_bool().map(Some).ok_or_else(|| self.bad(key, "a bool", v)),
        }
    }

    /// A required array; `expected` describes it for errors ("array of strings").
    pub fn array(&self, key: &str, expected: &str) -> Result<&Array> {
        let v = self.get(key).ok_or_else(|| self.missing(key, expected))?;
        v.as_array().ok_or_else(|| self.bad(key, expected, v))
    }

    pub fn opt_array(&self, key: &str, expected: &str) -> Result<Option<&Array>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v.as_array().map(Some).ok_or_else(|| self.bad(key, expected, v)),
        }
    }

    /// A required array of strings.
    pub fn strings(&self, key: &str) -> Result<&Strings> {
        let v = self.get(key).ok_or_else(|| self.missing(key, "an array of strings"))?;
        v.as_array().and_then(Array::as_strings).ok_or_else(|| self.bad(key, "an array of strings", v))
    }

    /// An error naming this file and `key`, for checks made by callers.
    pub fn error(&self, key: &str, expected: &str, found: &str) -> Error {
        Error::BadKey {
            path: self.path.clone(),
            key: key.to_string(),
            expected: expected.to_string(),
            found: found.to_string(),
        }
    }
}
