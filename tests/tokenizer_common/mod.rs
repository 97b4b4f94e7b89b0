//! Shared by the tokenizer tests: the vocab files, and llama.cpp's reference
//! ids for them.

#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::OnceLock;

use moe::gguf::{Metadata, Value, ValueType};
use moe::tokenizer::Tokenizer;

/// The SmolLM2 vocab (gpt2 BPE, pre "smollm").
pub const SMOLLM2: &str = "tiny-moe4x2-f16.gguf";
/// The Gemma 3 SentencePiece vocab.
pub const GEMMA3: &str = "gemma3-vocab-spm.gguf";

pub fn model_path(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/models");
    let path = dir.join(name);
    assert!(
        path.is_file(),
        "missing test vocab {}: the tokenizer tests need ../shared/models next to the repository",
        path.display()
    );
    path
}

pub fn metadata(name: &str) -> Metadata {
    read_metadata(&model_path(name))
}

pub fn tokenizer(name: &str) -> &'static Tokenizer {
    static SMOL: OnceLock<Tokenizer> = OnceLock::new();
    static GEMMA: OnceLock<Tokenizer> = OnceLock::new();
    let cell = match name {
        SMOLLM2 => &SMOL,
        GEMMA3 => &GEMMA,
        _ => panic!("no cached tokenizer for {name}"),
    };
    cell.get_or_init(|| Tokenizer::from_metadata(&metadata(name)).expect("tokenizer builds"))
}

/// One line of a reference file: llama.cpp's ids for `text`.
pub struct Reference {
    pub text: String,
    /// `add_special = false`, `parse_special = true`.
    pub ids: Vec<u32>,
    /// `add_special = true`, `parse_special = true`.
    pub ids_add_special: Vec<u32>,
    /// `ids` detokenized (special tokens not rendered).
    pub detok: String,
}

pub fn references(file: &str) -> Vec<Reference> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tokenizer").join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let ids = |v: &serde_json::Value| -> Vec<u32> {
        v.as_array().expect("ids array").iter().map(|x| x.as_u64().expect("id") as u32).collect()
    };
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("json line");
            Reference {
                text: v["text"].as_str().expect("text").to_string(),
                ids: ids(&v["ids"]),
                ids_add_special: ids(&v["ids_add_special"]),
                detok: v["detok"].as_str().expect("detok").to_string(),
            }
        })
        .collect()
}

/// A stand-in GGUF metadata reader until `moe::gguf::GgufFile` lands:
/// header and key/value section only (v2/v3, little-endian).
fn read_metadata(path: &std::path::Path) -> Metadata {
    let data = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut r = Reader { data: &data, pos: 0 };
    assert_eq!(r.take(4), b"GGUF", "{}: not GGUF", path.display());
    let version = r.u32();
    assert!(version >= 2, "GGUF v{version}");
    let _tensors = r.u64();
    let kvs = r.u64();
    let mut md = Metadata::new(path);
    for _ in 0..kvs {
        let key = r.string();
        let ty = r.u32();
        let value = r.value(ty);
        md.map.insert(key, value);
    }
    md
}

struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> &[u8] {
        let s = &self.data[self.pos..self.pos + n];
        self.pos += n;
        s
    }
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.take(4).try_into().unwrap())
    }
    fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.take(8).try_into().unwrap())
    }
    fn string(&mut self) -> String {
        let n = self.u64() as usize;
        String::from_utf8(self.take(n).to_vec()).expect("utf-8 string")
    }
    fn value(&mut self, ty: u32) -> Value {
        let le = |b: &[u8]| -> [u8; 8] {
            let mut a = [0; 8];
            a[..b.len()].copy_from_slice(b);
            a
        };
        match ValueType::from_id(ty).expect("value type") {
            ValueType::U8 => Value::U8(self.take(1)[0]),
            ValueType::I8 => Value::I8(self.take(1)[0] as i8),
            ValueType::U16 => Value::U16(u16::from_le_bytes(self.take(2).try_into().unwrap())),
            ValueType::I16 => Value::I16(i16::from_le_bytes(self.take(2).try_into().unwrap())),
            ValueType::U32 => Value::U32(self.u32()),
            ValueType::I32 => Value::I32(self.u32() as i32),
            ValueType::F32 => Value::F32(f32::from_bits(self.u32())),
            ValueType::Bool => Value::Bool(self.take(1)[0] != 0),
            ValueType::String => Value::String(self.string()),
            ValueType::U64 => Value::U64(self.u64()),
            ValueType::I64 => Value::I64(self.u64() as i64),
            ValueType::F64 => Value::F64(f64::from_bits(u64::from_le_bytes(le(self.take(8))))),
            ValueType::Array => {
                let et = self.u32();
                let n = self.u64() as usize;
                let items = (0..n).map(|_| self.value(et)).collect();
                Value::Array(ValueType::from_id(et).expect("element type"), items)
            }
        }
    }
}
