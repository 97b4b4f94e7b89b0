//! Writes GGUF v3 files laid out exactly as llama.cpp's `gguf_write_out`
//! and gguf-py's `GGUFWriter` do: header, metadata, tensor infos, zero
//! padding to the alignment, then each tensor's data zero-padded to the
//! alignment (the last one included). Offsets are the running sum of the
//! padded sizes.
//!
//! For test fixtures and synthetic models. Tensor data is either given as
//! bytes or as a *producer*, a closure called during [`GgufWriter::write`]
//! that streams the bytes into the file, so a file far larger than RAM can
//! be written chunk by chunk. Each producer must write exactly the
//! tensor's byte size; the writer checks.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use moe_quant::QType;

use super::array::Array;
use super::parse::{ALIGNMENT_KEY, DEFAULT_ALIGNMENT, MAGIC, MAX_ARRAY, MAX_DIMS, MAX_NAME};
use super::value::Value;
use crate::error::{Error, Result};

/// Streams one tensor's bytes into the file.
pub type Producer<'a> = Box<dyn FnOnce(&mut dyn Write) -> io::Result<()> + 'a>;

enum Data<'a> {
    Bytes(Vec<u8>),
    Producer(Producer<'a>),
}

struct Pending<'a> {
    name: String,
    qtype: QType,
    dims: Vec<u64>,
    n_bytes: u64,
    data: Data<'a>,
}

/// Collects metadata and tensors, then writes them in one pass.
#[derive(Default)]
pub struct GgufWriter<'a> {
    kvs: Vec<(String, Value)>,
    tensors: Vec<Pending<'a>>,
}

impl<'a> GgufWriter<'a> {
    pub fn new() -> GgufWriter<'a> {
        GgufWriter::default()
    }

    /// Sets `key` (a later call replaces the value, keeping its position).
    /// Values are checked by [`write`](Self::write).
    pub fn add_kv(&mut self, key: impl Into<String>, value: Value) -> &mut Self {
        let key = key.into();
        match self.kvs.iter_mut().find(|(k, _)| *k == key) {
            Some(kv) => kv.1 = value,
            None => self.kvs.push((key, value)),
        }
        self
    }

    /// Removes `key` if it is set.
    pub fn remove_kv(&mut self, key: &str) -> &mut Self {
        self.kvs.retain(|(k, _)| k != key);
        self
    }

    /// Adds a tensor with its data. `dims` are ne0 first.
    pub fn add_tensor(&mut self, name: &str, qtype: QType, dims: &[u64], data: impl Into<Vec<u8>>) -> Result<()> {
        let data = data.into();
        let n_bytes = self.check_tensor(name, qtype, dims)?;
        if data.len() as u64 != n_bytes {
            return Err(Error::InvalidArgument(format!(
                "GgufWriter: tensor '{name}' ({qtype}, dims {dims:?}) needs {n_bytes} bytes, got {}",
                data.len()
            )));
        }
        self.push(name, qtype, dims, n_bytes, Data::Bytes(data));
        Ok(())
    }

    /// Adds a tensor whose bytes `producer` writes during [`write`](Self::write).
    pub fn add_tensor_with(
        &mut self,
        name: &str,
        qtype: QType,
        dims: &[u64],
        producer: impl FnOnce(&mut dyn Write) -> io::Result<()> + 'a,
    ) -> Result<()> {
        let n_bytes = self.check_tensor(name, qtype, dims)?;
        self.push(name, qtype, dims, n_bytes, Data::Producer(Box::new(producer)));
        Ok(())
    }

    fn push(&mut self, name: &str, qtype: QType, dims: &[u64], n_bytes: u64, data: Data<'a>) {
        self.tensors.push(Pending { name: name.to_string(), qtype, dims: dims.to_vec(), n_bytes, data });
    }

    /// Checks a tensor against the rules the reader enforces; returns its byte size.
    fn check_tensor(&self, name: &str, qtype: QType, dims: &[u64]) -> Result<u64> {
        let bad = |what: String| Error::InvalidArgument(format!("GgufWriter: tensor '{name}': {what}"));
        if name.is_empty() || name.len() >= MAX_NAME {
            return Err(bad(format!("name must be 1 to {} bytes", MAX_NAME - 1)));
        }
        if self.tensors.iter().any(|t| t.name == name) {
            return Err(bad("added twice".into()));
        }
        if !qtype.is_weight_type() {
            return Err(bad(format!("{qtype} is not a weight type")));
        }
        if dims.len() > MAX_DIMS as usize || dims.contains(&0) {
            return Err(bad(format!("dims {dims:?}: need at most {MAX_DIMS}, each at least 1")));
        }
        tensor_bytes(qtype, dims).ok_or_else(|| {
            bad(format!("dims {dims:?} are not whole rows of {qtype} blocks ({} elements)", qtype.block_len()))
        })
    }

    fn alignment(&self) -> Result<u64> {
        match self.kvs.iter().find(|(k, _)| k == ALIGNMENT_KEY) {
            None => Ok(DEFAULT_ALIGNMENT),
            Some((_, Value::U32(a))) if a.is_power_of_two() => Ok(*a as u64),
            Some((_, v)) => Err(Error::InvalidArgument(format!(
                "GgufWriter: {ALIGNMENT_KEY} must be a u32 power of two, found {}",
                v.describe()
            ))),
        }
    }

    /// Writes the file: to `<path>.partial` first, renamed to `path` once
    /// complete, so a failed write never leaves a plausible-looking file.
    pub fn write(self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        for (key, value) in &self.kvs {
            check_value(key, value)?;
        }
        let alignment = self.alignment()?;
        let mut partial = path.as_os_str().to_owned();
        partial.push(".partial");
        let partial = PathBuf::from(partial);
        let io_err = |source| Error::Io { path: path.to_path_buf(), source };
        let result = self.write_to(&partial, path, alignment);
        match result {
            Ok(()) => std::fs::rename(&partial, path).map_err(io_err),
            Err(e) => {
                let _ = std::fs::remove_file(&partial);
                Err(e)
            }
        }
    }

    fn write_to(self, tmp: &Path, path: &Path, alignment: u64) -> Result<()> {
        let io_err = |source| Error::Io { path: path.to_path_buf(), source };
        let file = File::create(tmp).map_err(io_err)?;
        let mut w = Counting { inner: BufWriter::with_capacity(1 << 20, file), n: 0 };
        w.write_all(&header(self.tensors.len() as u64, self.kvs.len() as u64)).map_err(io_err)?;
        let mut buf = Vec::new();
        for (key, value) in &self.kvs {
            buf.clear();
            put_str(&mut buf, key);
            buf.extend_from_slice(&(value.value_type() as u32).to_le_bytes());
            put_value(&mut buf, value);
            w.write_all(&buf).map_err(io_err)?;
        }
        let mut offset = 0u64;
        for t in &self.tensors {
            buf.clear();
            put_str(&mut buf, &t.name);
            buf.extend_from_slice(&(t.dims.len() as u32).to_le_bytes());
            for d in &t.dims {
                buf.extend_from_slice(&d.to_le_bytes());
            }
            buf.extend_from_slice(&t.qtype.ggml_id().to_le_bytes());
            buf.extend_from_slice(&offset.to_le_bytes());
            w.write_all(&buf).map_err(io_err)?;
            offset = pad_to(t.n_bytes, alignment)
                .and_then(|p| offset.checked_add(p))
                .ok_or_else(|| Error::InvalidArgument("GgufWriter: total tensor size overflows u64".into()))?;
        }
        w.pad(alignment).map_err(io_err)?;
        for t in self.tensors {
            let start = w.n;
            match t.data {
                Data::Bytes(b) => w.write_all(&b).map_err(io_err)?,
                Data::Producer(p) => p(&mut w).map_err(io_err)?,
            }
            let written = w.n - start;
            if written != t.n_bytes {
                return Err(Error::InvalidTensor {
                    path: path.to_path_buf(),
                    tensor: t.name,
                    what: format!("the producer wrote {written} bytes, expected {}", t.n_bytes),
                });
            }
            w.pad(alignment).map_err(io_err)?;
        }
        let file = w.inner.into_inner().map_err(|e| io_err(e.into_error()))?;
        file.sync_all().map_err(io_err)
    }
}

/// Bytes of a tensor of `qtype` with `dims` (ne0 first), if ne0 is a whole
/// number of blocks and nothing overflows.
pub fn tensor_bytes(qtype: QType, dims: &[u64]) -> Option<u64> {
    let rows = dims.iter().skip(1).try_fold(1u64, |a, &d| a.checked_mul(d))?;
    qtype.row_bytes(dims.first().copied().unwrap_or(1))?.checked_mul(rows)
}

fn pad_to(n: u64, alignment: u64) -> Option<u64> {
    n.checked_next_multiple_of(alignment)
}

fn header(n_tensors: u64, n_kv: u64) -> Vec<u8> {
    let mut b = MAGIC.to_vec();
    b.extend_from_slice(&3u32.to_le_bytes());
    b.extend_from_slice(&n_tensors.to_le_bytes());
    b.extend_from_slice(&n_kv.to_le_bytes());
    b
}

fn check_value(key: &str, value: &Value) -> Result<()> {
    let bad = |what: String| Error::InvalidArgument(format!("GgufWriter: key '{key}': {what}"));
    if key.is_empty() {
        return Err(bad("empty key".into()));
    }
    if value.as_array().is_some_and(|a| a.len() as u64 > MAX_ARRAY) {
        return Err(bad(format!("{}: arrays hold at most 2^30 elements", value.describe())));
    }
    Ok(())
}

fn put_str(b: &mut Vec<u8>, s: &str) {
    b.extend_from_slice(&(s.len() as u64).to_le_bytes());
    b.extend_from_slice(s.as_bytes());
}

fn put_value(b: &mut Vec<u8>, v: &Value) {
    match v {
        Value::U8(x) => b.push(*x),
        Value::I8(x) => b.extend_from_slice(&x.to_le_bytes()),
        Value::U16(x) => b.extend_from_slice(&x.to_le_bytes()),
        Value::I16(x) => b.extend_from_slice(&x.to_le_bytes()),
        Value::U32(x) => b.extend_from_slice(&x.to_le_bytes()),
        Value::I32(x) => b.extend_from_slice(&x.to_le_bytes()),
        Value::F32(x) => b.extend_from_slice(&x.to_le_bytes()),
        Value::Bool(x) => b.push(*x as u8),
        Value::String(s) => put_str(b, s),
        Value::Array(a) => put_array(b, a),
        Value::U64(x) => b.extend_from_slice(&x.to_le_bytes()),
        Value::I64(x) => b.extend_from_slice(&x.to_le_bytes()),
        Value::F64(x) => b.extend_from_slice(&x.to_le_bytes()),
    }
}

fn put_array(b: &mut Vec<u8>, a: &Array) {
    b.extend_from_slice(&(a.elem_type() as u32).to_le_bytes());
    b.extend_from_slice(&(a.len() as u64).to_le_bytes());
    macro_rules! numbers {
        ($v:expr) => {
            $v.iter().for_each(|x| b.extend_from_slice(&x.to_le_bytes()))
        };
    }
    match a {
        Array::U8(v) => b.extend_from_slice(v),
        Array::I8(v) => numbers!(v),
        Array::U16(v) => numbers!(v),
        Array::I16(v) => numbers!(v),
        Array::U32(v) => numbers!(v),
        Array::I32(v) => numbers!(v),
        Array::F32(v) => numbers!(v),
        Array::Bool(v) => v.iter().for_each(|&x| b.push(x as u8)),
        Array::String(s) => s.iter().for_each(|x| put_str(b, x)),
        Array::U64(v) => numbers!(v),
        Array::I64(v) => numbers!(v),
        Array::F64(v) => numbers!(v),
    }
}

/// Counts the bytes written, for padding and for checking producers.
struct Counting<W: Write> {
    inner: W,
    n: u64,
}

impl<W: Write> Counting<W> {
    fn pad(&mut self, alignment: u64) -> io::Result<()> {
        let pad = self.n.next_multiple_of(alignment) - self.n;
        self.write_all(&vec![0u8; pad as usize])
    }
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.n += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
