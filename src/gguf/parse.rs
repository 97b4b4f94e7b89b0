//! Our own GGUF (v2, v3) header parser, over the mapped file bytes.
//!
//! # Why not gguf-rs 0.1.8
//!
//! We measured it (pinned in `tests/gguf_rs_evidence.rs`) and read its
//! source. It fails the checks we need:
//! - **Type fidelity.** Metadata goes through `serde_json::Value`: u32 7 and
//!   i32 7 come out equal, an f32 NaN becomes `null`, and an empty array
//!   loses its element type. `general.alignment` is accepted as any integer
//!   type and any multiple of 8 (24 passes; llama.cpp demands a u32 power
//!   of two), and a non-multiple of 8 silently falls back to 32.
//! - **Silent repairs.** Duplicate keys overwrite each other, invalid UTF-8
//!   becomes U+FFFD, tokenizer arrays are cut to `max_array_size` (3 by
//!   default), and big-endian or v1 files are accepted.
//! - **Untrusted counts.** A string length is checked against 1 GiB but not
//!   against the bytes left, and `vec![0; len]` is allocated before reading:
//!   a 45-byte file makes it allocate 1 GiB (measured with a counting
//!   allocator; ours stays under 64 KiB). Array counts are not checked at
//!   all (2^60 is looped over until EOF). It does not pre-allocate from the
//!   kv/tensor counts, and none of our probes made it panic.
//! - **Errors without context.** A truncated file yields `anyhow` "failed to
//!   fill whole buffer", with no key, offset or file name; there are no
//!   error kinds to map onto `moe::Error` without matching strings.
//! - **Tensor checks** (none): tensors past the end of the file, ne0 not a
//!   multiple of the block size and duplicate names all pass; an unknown
//!   type id fails with "invalid GGML type", without the tensor's name.
//! - **Speed.** It reads the file unbuffered, one `read` syscall per field,
//!   and builds JSON values: the 262,144-token Gemma 3 vocab takes
//!   0.40–0.48 s with gguf-rs versus 46–51 ms here, SmolLM2 (49k tokens +
//!   49k merges) 98–100 ms versus 8.6 ms (test profile, opt-level 3, this
//!   2-core machine, warm page cache).
//!
//! So gguf-rs is not used by the engine at all; it is only a dev-dependency
//! of the evidence tests and of a cross-check on the shared models (names,
//! types, shapes and offsets agree), where it does its job well.
//!
//! # What this parser guarantees
//! Every length and count is checked against the bytes left before it is
//! used, and nothing is allocated from an untrusted count before that
//! check. Caps follow llama.cpp (`ggml/src/gguf.cpp`): strings ≤ 1 GiB,
//! arrays ≤ 2^30 elements, no nested arrays, no empty or duplicate keys,
//! tensor names non-empty, < 64 bytes and unique, n_dims ≤ 4. Metadata
//! strings must be valid UTF-8 (llama.cpp does not check; gguf-py always
//! writes UTF-8). Bools are 0 = false, anything else true, as in llama.cpp.
//! Per-tensor checks (type, dims, bounds) are in `tensor.rs`.
//!
//! # What metadata costs in memory
//! An array takes no more memory than its bytes in the file: numbers are
//! typed vectors (one byte for a u8), strings one text buffer plus an
//! 8-byte end per string (what its length takes in the file). Each key
//! and scalar value costs up to ~200 bytes more (its `String`, a 56-byte
//! `Value`, a B-tree slot in a node at least half full) against at least
//! 13 bytes in the file. So the metadata of B bytes and K keys takes at
//! most about B + 200·K bytes: 1× for a few large arrays, at worst ~15×
//! for a file of nothing but tiny keys (`tests/gguf_alloc_cap.rs` holds
//! headers to 64× the file + 1 MiB, valid ones to 2× + 1 MiB, and a
//! 72 MiB array to 2× the file in peak RSS, the mapping's pages included).

use std::collections::HashMap;
use std::path::Path;

use super::cursor::{Cursor, Short};
use super::array::{Array, Strings};
use super::value::{Metadata, Value, ValueType};
use crate::error::{Error, Result};

pub(super) const MAGIC: &[u8; 4] = b"GGUF";
/// llama.cpp's `GGUF_MAX_STRING_LENGTH`.
pub(super) const MAX_STRING: u64 = 1 << 30;
/// llama.cpp's `GGUF_MAX_ARRAY_ELEMENTS`.
pub(super) const MAX_ARRAY: u64 = 1 << 30;
/// ggml's `GGML_MAX_NAME`: names hold at most 63 bytes plus a NUL.
pub(super) const MAX_NAME: usize = 64;
pub(super) const MAX_DIMS: u32 = 4;
pub(super) const DEFAULT_ALIGNMENT: u64 = 32;
pub(super) const ALIGNMENT_KEY: &str = "general.alignment";

/// Smallest encoding of one metadata pair: key length, type, a 1-byte value.
const MIN_KV_BYTES: u64 = 8 + 4 + 1;
/// Smallest encoding of one tensor info: name length, n_dims, type, offset.
const MIN_INFO_BYTES: u64 = 8 + 4 + 4 + 8;

/// A tensor info as stored, before the per-tensor checks.
pub(super) struct RawTensor {
    pub name: String,
    pub dims: Vec<u64>,
    pub type_id: u32,
    /// Relative to the data section.
    pub offset: u64,
}

pub(super) struct Parsed {
    pub version: u32,
    pub metadata: Metadata,
    pub tensors: Vec<RawTensor>,
    pub alignment: u64,
    /// Absolute offset of the data section.
    pub data_offset: u64,
}

pub(super) fn parse(path: &Path, buf: &[u8]) -> Result<Parsed> {
    Parser { path, cur: Cursor::new(buf), len: buf.len() as u64 }.parse()
}

struct Parser<'a> {
    path: &'a Path,
    cur: Cursor<'a>,
    len: u64,
}

impl<'a> Parser<'a> {
    fn invalid(&self, what: impl Into<String>) -> Error {
        Error::InvalidGguf { path: self.path.to_path_buf(), what: what.into() }
    }

    fn tensor_error(&self, tensor: &str, what: impl Into<String>) -> Error {
        Error::InvalidTensor { path: self.path.to_path_buf(), tensor: tensor.to_string(), what: what.into() }
    }

    fn truncated(&self, what: &str, s: Short) -> Error {
        self.invalid(format!(
            "file truncated while reading {what}: needs {} bytes at offset {}, but only {} are left (file is {} bytes)",
            s.need, s.pos, s.left, self.len
        ))
    }

    fn parse(mut self) -> Result<Parsed> {
        let (version, n_tensors, n_kv) = self.header()?;
        let metadata = self.metadata(n_kv)?;
        let alignment = self.alignment(&metadata)?;
        let tensors = self.tensor_infos(n_tensors)?;
        let infos_end = self.cur.pos();
        // llama.cpp pads to the data section only when there are tensors.
        let data_offset = if tensors.is_empty() {
            infos_end
        } else {
            let padded = infos_end.checked_next_multiple_of(alignment);
            match padded {
                Some(p) if p <= self.len => p,
                _ => {
                    return Err(self.invalid(format!(
                        "the tensor infos end at offset {infos_end}; padded to the alignment {alignment}, the data section would start past the end of the file ({} bytes)",
                        self.len
                    )))
                }
            }
        };
        Ok(Parsed { version, metadata, tensors, alignment, data_offset })
    }

    fn header(&mut self) -> Result<(u32, u64, u64)> {
        let magic = self.cur.bytes(4).map_err(|s| self.truncated("the magic", s))?;
        if magic != MAGIC {
            return Err(self.invalid(format!(
                "bad magic {:?} ({:02x?}), expected \"GGUF\"",
                String::from_utf8_lossy(magic),
                magic
            )));
        }
        let version = self.cur.u32().map_err(|s| self.truncated("the version", s))?;
        if version != 2 && version != 3 {
            let hint = if version != 0 && version & 0xffff == 0 {
                " (this looks like a big-endian file; only little-endian files are supported)"
            } else if version == 1 {
                " (GGUF v1 is obsolete; re-convert the model)"
            } else {
                ""
            };
            return Err(self.invalid(format!("unsupported GGUF version {version}{hint}; supported versions: 2 and 3")));
        }
        let n_tensors = self.cur.u64().map_err(|s| self.truncated("the tensor count", s))?;
        let n_kv = self.cur.u64().map_err(|s| self.truncated("the metadata count", s))?;
        let need = n_kv
            .checked_mul(MIN_KV_BYTES)
            .and_then(|a| n_tensors.checked_mul(MIN_INFO_BYTES).and_then(|b| a.checked_add(b)));
        if need.is_none_or(|need| need > self.cur.remaining()) {
            return Err(self.invalid(format!(
                "the header claims {n_tensors} tensors and {n_kv} metadata pairs, which need {} bytes, but only {} bytes follow the header",
                need.map_or("more than 2^64".to_string(), |n| format!("at least {n}")),
                self.cur.remaining()
            )));
        }
        Ok((version, n_tensors, n_kv))
    }

    fn metadata(&mut self, n_kv: u64) -> Result<Metadata> {
        let mut md = Metadata::new(self.path);
        for i in 0..n_kv {
            let key = self.string(|| format!("the key of metadata pair #{i}"))?;
            if key.is_empty() {
                return Err(self.invalid(format!("metadata pair #{i} has an empty key")));
            }
            if md.map.contains_key(&key) {
                return Err(self.invalid(format!("duplicate metadata key '{key}' (pair #{i})")));
            }
            let what = format!("the value of key '{key}'");
            let type_id = self.cur.u32().map_err(|s| self.truncated(&what, s))?;
            let value = match ValueType::from_id(type_id) {
                Some(ValueType::Array) => self.array(&key)?,
                Some(t) => self.scalar(t, &what)?,
                None => {
                    return Err(self.invalid(format!(
                        "key '{key}' has unknown value type id {type_id} (valid ids: 0..=12)"
                    )))
                }
            };
            md.map.insert(key, value);
        }
        Ok(md)
    }

    fn array(&mut self, key: &str) -> Result<Value> {
        let what = format!("the array header of key '{key}'");
        let type_id = self.cur.u32().map_err(|s| self.truncated(&what, s))?;
        let n = self.cur.u64().map_err(|s| self.truncated(&what, s))?;
        let elem = match ValueType::from_id(type_id) {
            Some(ValueType::Array) => {
                return Err(self.invalid(format!(
                    "key '{key}' is an array of arrays; nested arrays are not supported (llama.cpp rejects them too)"
                )))
            }
            Some(t) => t,
            None => {
                return Err(self.invalid(format!(
                    "key '{key}' is an array of unknown value type id {type_id} (valid ids: 0..=12)"
                )))
            }
        };
        if n > MAX_ARRAY {
            return Err(self.invalid(format!("key '{key}' claims an array of {n} elements; the limit is 2^30")));
        }
        // Strings take at least their 8-byte length each.
        let min_bytes = n * min_size(elem);
        if min_bytes > self.cur.remaining() {
            return Err(self.invalid(format!(
                "key '{key}' claims an array of {n} {elem:?} (at least {min_bytes} bytes) at offset {}, but only {} bytes are left",
                self.cur.pos(),
                self.cur.remaining()
            )));
        }
        // n ≤ 2^30 and its minimum bytes are in the buffer: the casts are exact.
        let n = n as usize;
        let what = || format!("the elements of key '{key}'");
        macro_rules! numbers {
            ($variant:ident, $t:ty) => {{
                let bytes = self.cur.bytes(min_bytes).map_err(|s| self.truncated(&what(), s))?;
                let size = std::mem::size_of::<$t>();
                Array::$variant(bytes.chunks_exact(size).map(|c| <$t>::from_le_bytes(c.try_into().expect("exact"))).collect())
            }};
        }
        let array = match elem {
            ValueType::U8 => numbers!(U8, u8),
            ValueType::I8 => numbers!(I8, i8),
            ValueType::U16 => numbers!(U16, u16),
            ValueType::I16 => numbers!(I16, i16),
            ValueType::U32 => numbers!(U32, u32),
            ValueType::I32 => numbers!(I32, i32),
            ValueType::F32 => numbers!(F32, f32),
            ValueType::U64 => numbers!(U64, u64),
            ValueType::I64 => numbers!(I64, i64),
            ValueType::F64 => numbers!(F64, f64),
            ValueType::Bool => {
                let bytes = self.cur.bytes(min_bytes).map_err(|s| self.truncated(&what(), s))?;
                Array::Bool(bytes.iter().map(|&b| b != 0).collect())
            }
            ValueType::String => Array::String(self.strings(key, n)?),
            ValueType::Array => unreachable!("nested arrays were refused above"),
        };
        Ok(Value::Array(array))
    }

    /// The `n` strings of the array of `key`, into one buffer allocated
    /// once, at the size the file's strings take.
    fn strings(&mut self, key: &str, n: usize) -> Result<Strings> {
        let mut strings = Strings::with_capacity(n, self.text_bytes(n));
        for j in 0..n {
            let s = self.str(|| format!("element {j} of key '{key}'"))?;
            strings.push(s);
        }
        Ok(strings)
    }

    /// The total length of the next `n` strings, as far as the buffer
    /// holds them (so never more than the bytes left); reads nothing.
    fn text_bytes(&self, n: usize) -> usize {
        let mut c = self.cur.clone();
        let mut total = 0;
        for _ in 0..n {
            let Ok(len) = c.u64() else { break };
            if c.bytes(len).is_err() {
                break;
            }
            total += len as usize;
        }
        total
    }

    /// A non-array value of type `t`.
    fn scalar(&mut self, t: ValueType, what: &str) -> Result<Value> {
        let c = &mut self.cur;
        let v = match t {
            ValueType::U8 => c.u8().map(Value::U8),
            ValueType::I8 => c.i8().map(Value::I8),
            ValueType::U16 => c.u16().map(Value::U16),
            ValueType::I16 => c.i16().map(Value::I16),
            ValueType::U32 => c.u32().map(Value::U32),
            ValueType::I32 => c.i32().map(Value::I32),
            ValueType::F32 => c.f32().map(Value::F32),
            ValueType::Bool => c.u8().map(|b| Value::Bool(b != 0)),
            ValueType::U64 => c.u64().map(Value::U64),
            ValueType::I64 => c.i64().map(Value::I64),
            ValueType::F64 => c.f64().map(Value::F64),
            ValueType::String => return self.string(|| what.to_string()).map(Value::String),
            ValueType::Array => unreachable!("arrays are handled by the caller"),
        };
        v.map_err(|s| self.truncated(what, s))
    }

    /// A string; `what` describes it for errors and is only built on error.
    fn string(&mut self, what: impl Fn() -> String) -> Result<String> {
        self.str(what).map(str::to_string)
    }

    /// A string, borrowed from the buffer (this runs once per vocab token).
    fn str(&mut self, what: impl Fn() -> String) -> Result<&'a str> {
        let start = self.cur.pos();
        let len = self.cur.u64().map_err(|s| self.truncated(&what(), s))?;
        if len > MAX_STRING {
            return Err(self.invalid(format!(
                "{} at offset {start} claims a string of {len} bytes; the limit is 1 GiB",
                what()
            )));
        }
        let bytes = self.cur.bytes(len).map_err(|s| self.truncated(&what(), s))?;
        match std::str::from_utf8(bytes) {
            Ok(s) => Ok(s),
            Err(e) => Err(self.invalid(format!(
                "{} is not valid UTF-8 (bad byte at offset {})",
                what(),
                start + 8 + e.valid_up_to() as u64
            ))),
        }
    }

    fn alignment(&self, md: &Metadata) -> Result<u64> {
        let bad = |found: String| Error::BadKey {
            path: self.path.to_path_buf(),
            key: ALIGNMENT_KEY.to_string(),
            expected: "a u32 power of two".to_string(),
            found,
        };
        match md.get(ALIGNMENT_KEY) {
            None => Ok(DEFAULT_ALIGNMENT),
            Some(&Value::U32(a)) if a.is_power_of_two() => Ok(a as u64),
            Some(v @ Value::U32(_)) => Err(bad(v.describe())),
            Some(v) => Err(bad(format!("{v:?} (llama.cpp requires type u32)"))),
        }
    }

    fn tensor_infos(&mut self, n_tensors: u64) -> Result<Vec<RawTensor>> {
        // The header check bounds n_tensors by the file size / 24.
        let mut tensors = Vec::with_capacity(n_tensors as usize);
        let mut seen: HashMap<String, u64> = HashMap::with_capacity(n_tensors as usize);
        for i in 0..n_tensors {
            let name = self.string(|| format!("the name of tensor #{i}"))?;
            if name.is_empty() {
                return Err(self.invalid(format!("tensor #{i} has an empty name")));
            }
            if name.len() >= MAX_NAME {
                return Err(self.tensor_error(
                    &name,
                    format!("name is {} bytes long; tensor names must be under {MAX_NAME} bytes", name.len()),
                ));
            }
            if let Some(first) = seen.insert(name.clone(), i) {
                return Err(self.tensor_error(&name, format!("duplicate tensor name (tensors #{first} and #{i})")));
            }
            let what = format!("the info of tensor '{name}'");
            let n_dims = self.cur.u32().map_err(|s| self.truncated(&what, s))?;
            if n_dims > MAX_DIMS {
                return Err(self.tensor_error(&name, format!("has {n_dims} dimensions; at most {MAX_DIMS} are allowed")));
            }
            let mut dims = Vec::with_capacity(n_dims as usize);
            for _ in 0..n_dims {
                dims.push(self.cur.u64().map_err(|s| self.truncated(&what, s))?);
            }
            let type_id = self.cur.u32().map_err(|s| self.truncated(&what, s))?;
            let offset = self.cur.u64().map_err(|s| self.truncated(&what, s))?;
            tensors.push(RawTensor { name, dims, type_id, offset });
        }
        Ok(tensors)
    }
}

/// Bytes one element of type `t` takes at least (a string: its length).
fn min_size(t: ValueType) -> u64 {
    match t {
        ValueType::U8 | ValueType::I8 | ValueType::Bool => 1,
        ValueType::U16 | ValueType::I16 => 2,
        ValueType::U32 | ValueType::I32 | ValueType::F32 => 4,
        ValueType::U64 | ValueType::I64 | ValueType::F64 | ValueType::String => 8,
        ValueType::Array => 12,
    }
}
