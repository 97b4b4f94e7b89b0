//! GGUF metadata arrays, stored compactly: numbers as a typed vector (each
//! element takes its size in the file), strings as one buffer of text and
//! the end of each string (8 bytes a string, as its length takes in the
//! file). So an array never costs more memory than its bytes in the file,
//! whatever it holds.

use super::value::{Value, ValueType};

/// One metadata array; homogeneous, and an empty one keeps its type.
#[derive(Debug, Clone, PartialEq)]
pub enum Array {
    U8(Vec<u8>),
    I8(Vec<i8>),
    U16(Vec<u16>),
    I16(Vec<i16>),
    U32(Vec<u32>),
    I32(Vec<i32>),
    F32(Vec<f32>),
    Bool(Vec<bool>),
    String(Strings),
    U64(Vec<u64>),
    I64(Vec<i64>),
    F64(Vec<f64>),
}

/// Applies `$f` to the vector of any numeric variant (`$strings` for strings).
macro_rules! each {
    ($a:expr, $v:ident => $f:expr, $s:ident => $strings:expr) => {
        match $a {
            Array::U8($v) => $f,
            Array::I8($v) => $f,
            Array::U16($v) => $f,
            Array::I16($v) => $f,
            Array::U32($v) => $f,
            Array::I32($v) => $f,
            Array::F32($v) => $f,
            Array::Bool($v) => $f,
            Array::U64($v) => $f,
            Array::I64($v) => $f,
            Array::F64($v) => $f,
            Array::String($s) => $strings,
        }
    };
}

impl Array {
    /// The type of the elements.
    pub fn elem_type(&self) -> ValueType {
        match self {
            Array::U8(_) => ValueType::U8,
            Array::I8(_) => ValueType::I8,
            Array::U16(_) => ValueType::U16,
            Array::I16(_) => ValueType::I16,
            Array::U32(_) => ValueType::U32,
            Array::I32(_) => ValueType::I32,
            Array::F32(_) => ValueType::F32,
            Array::Bool(_) => ValueType::Bool,
            Array::String(_) => ValueType::String,
            Array::U64(_) => ValueType::U64,
            Array::I64(_) => ValueType::I64,
            Array::F64(_) => ValueType::F64,
        }
    }

    pub fn len(&self) -> usize {
        each!(self, v => v.len(), s => s.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Element `i` as a scalar value (a string is copied).
    pub fn get(&self, i: usize) -> Option<Value> {
        Some(match self {
            Array::U8(v) => Value::U8(*v.get(i)?),
            Array::I8(v) => Value::I8(*v.get(i)?),
            Array::U16(v) => Value::U16(*v.get(i)?),
            Array::I16(v) => Value::I16(*v.get(i)?),
            Array::U32(v) => Value::U32(*v.get(i)?),
            Array::I32(v) => Value::I32(*v.get(i)?),
            Array::F32(v) => Value::F32(*v.get(i)?),
            Array::Bool(v) => Value::Bool(*v.get(i)?),
            Array::String(s) => Value::String(s.get(i)?.to_string()),
            Array::U64(v) => Value::U64(*v.get(i)?),
            Array::I64(v) => Value::I64(*v.get(i)?),
            Array::F64(v) => Value::F64(*v.get(i)?),
        })
    }

    /// Every element as a scalar value, in order (strings are copied one
    /// at a time; [`Array::as_strings`] borrows them).
    pub fn iter(&self) -> impl Iterator<Item = Value> + '_ {
        (0..self.len()).map_while(|i| self.get(i))
    }

    pub fn as_strings(&self) -> Option<&Strings> {
        match self {
            Array::String(s) => Some(s),
            _ => None,
        }
    }

    /// An array of strings.
    pub fn from_strings<S: AsRef<str>>(items: impl IntoIterator<Item = S>) -> Array {
        Array::String(items.into_iter().collect())
    }

    /// "array of 3 F32", for error messages.
    pub fn describe(&self) -> String {
        format!("array of {} {:?}", self.len(), self.elem_type())
    }

    /// Bytes of memory the elements take (for the memory bound's tests).
    pub fn heap_bytes(&self) -> usize {
        each!(self, v => std::mem::size_of_val(v.as_slice()), s => s.heap_bytes())
    }
}

macro_rules! from_vec {
    ($($t:ty => $variant:ident),*) => {$(
        impl From<Vec<$t>> for Array {
            fn from(v: Vec<$t>) -> Array {
                Array::$variant(v)
            }
        }
    )*};
}

from_vec!(u8 => U8, i8 => I8, u16 => U16, i16 => I16, u32 => U32, i32 => I32, f32 => F32, bool => Bool, u64 => U64, i64 => I64, f64 => F64);

impl From<Array> for Value {
    fn from(a: Array) -> Value {
        Value::Array(a)
    }
}

/// An array of strings: their texts end to end in one buffer, and where
/// each ends.
#[derive(Clone, Default, PartialEq)]
pub struct Strings {
    text: String,
    ends: Vec<usize>,
}

impl Strings {
    /// Room for `n` strings of `text_bytes` bytes in all.
    pub fn with_capacity(n: usize, text_bytes: usize) -> Strings {
        Strings { text: String::with_capacity(text_bytes), ends: Vec::with_capacity(n) }
    }

    pub fn push(&mut self, s: &str) {
        self.text.push_str(s);
        self.ends.push(self.text.len());
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// String `i`.
    pub fn get(&self, i: usize) -> Option<&str> {
        let end = *self.ends.get(i)?;
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        // Every string was pushed whole, so both ends are char boundaries.
        self.text.get(start..end)
    }

    pub fn iter(&self) -> impl ExactSizeIterator<Item = &str> + '_ {
        (0..self.len()).map(|i| self.get(i).unwrap_or_default())
    }

    fn heap_bytes(&self) -> usize {
        self.text.capacity() + self.ends.capacity() * std::mem::size_of::<usize>()
    }
}

impl<S: AsRef<str>> FromIterator<S> for Strings {
    fn from_iter<I: IntoIterator<Item = S>>(items: I) -> Strings {
        let mut s = Strings::default();
        for item in items {
            s.push(item.as_ref());
        }
        s
    }
}

impl std::ops::Index<usize> for Strings {
    type Output = str;

    /// # Panics
    /// If `i` is out of range, as a slice's index.
    fn index(&self, i: usize) -> &str {
        self.get(i).unwrap_or_else(|| panic!("index {i} out of range for {} strings", self.len()))
    }
}

impl std::fmt::Debug for Strings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_round_trip_and_cost_their_bytes() {
        let words = ["", "a", "héllo", "", "→"];
        let s: Strings = words.iter().collect();
        assert_eq!(s.iter().collect::<Vec<_>>(), words);
        assert_eq!((s.len(), s.get(2), s.get(5)), (5, Some("héllo"), None));
        let a = Array::String(s);
        assert_eq!(a.get(4), Some(Value::String("→".into())));
        assert_eq!(a.iter().count(), 5);
        // Sized up front, as the parser does: the text once, 8 bytes a string.
        let text: usize = words.iter().map(|w| w.len()).sum();
        let mut sized = Strings::with_capacity(words.len(), text);
        words.iter().for_each(|w| sized.push(w));
        assert_eq!(Array::String(sized).heap_bytes(), text + words.len() * 8);
    }

    #[test]
    fn numbers_are_typed_vectors() {
        let a = Array::from(vec![1u8, 2, 3]);
        assert_eq!((a.elem_type(), a.len(), a.heap_bytes()), (ValueType::U8, 3, 3));
        assert_eq!(a.iter().map(|v| v.as_u64()).collect::<Vec<_>>(), [Some(1), Some(2), Some(3)]);
        assert_eq!(Array::from(Vec::<f64>::new()).elem_type(), ValueType::F64);
    }
}
