//! Hostile but legal vocabularies, built deterministically: what a crafted
//! GGUF file could hold to make loading its tokenizer slow or huge.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use moe::gguf::{Array, GgufFile, GgufWriter, Metadata, Value};

pub const NORMAL: i32 = 1;
pub const CONTROL: i32 = 3;
pub const USER_DEFINED: i32 = 4;
pub const BYTE: i32 = 6;

/// The piece index's hash before it was keyed (src/tokenizer/index.rs up
/// to 729efd9): FxHash-style over 8-byte words, seeded with the length.
pub fn old_index_hash(bytes: &[u8]) -> u64 {
    const K: u64 = 0x517c_c1b7_2722_0a95;
    let mut h = bytes.len() as u64;
    for c in bytes.chunks(8) {
        let mut w = [0u8; 8];
        w[..c.len()].copy_from_slice(c);
        h = (h.rotate_left(5) ^ u64::from_le_bytes(w)).wrapping_mul(K);
    }
    h ^ (h >> 29) ^ (h >> 41)
}

/// `n` distinct 16-byte ASCII strings that all have the same
/// [`old_index_hash`], so they all wanted the same slot of the old table.
///
/// The first 8 bytes are a counter, scrambled (times a unit mod 94^8), in
/// base 94 over `!`..`~`; the last 8 are the word that brings the hash
/// state back to 0, `rotl(h1, 5)`, kept when all its bytes are ASCII
/// (about 1 in 256).
pub fn old_hash_colliding(n: usize) -> Vec<String> {
    const K: u64 = 0x517c_c1b7_2722_0a95;
    const WORDS: u128 = 94u128.pow(8);
    let mut out = Vec::with_capacity(n);
    let mut counter = 0u128;
    while out.len() < n {
        let mut first = [0u8; 8];
        let mut c = counter * 0x9e37_79b9_7f4a_7c15 % WORDS;
        for b in &mut first {
            *b = b'!' + (c % 94) as u8;
            c /= 94;
        }
        counter += 1;
        let h1 = (16u64.rotate_left(5) ^ u64::from_le_bytes(first)).wrapping_mul(K);
        let last = h1.rotate_left(5);
        if last & 0x8080_8080_8080_8080 != 0 {
            continue;
        }
        let mut bytes = first.to_vec();
        bytes.extend_from_slice(&last.to_le_bytes());
        out.push(String::from_utf8(bytes).expect("ASCII"));
    }
    out
}

/// `n` distinct strings of `len` printable ASCII bytes (`len` >= 8), from
/// a fixed pseudo-random sequence.
pub fn long_strings(n: usize, len: usize) -> Vec<String> {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    (0..n)
        .map(|i| {
            // A distinct prefix keeps them unique; the rest is noise.
            let mut s = format!("<{i:06}");
            while s.len() < len {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                s.push(char::from(b'!' + (state % 94) as u8));
            }
            s.truncate(len);
            s
        })
        .collect()
}

/// A SentencePiece vocab: `<unk> <s> </s>`, the 256 byte tokens, then
/// `extra` with their token types, all scored by id (lower id first).
pub struct SpmVocab {
    pub tokens: Vec<String>,
    pub types: Vec<i32>,
}

/// Ids of the first extra token (after `<unk> <s> </s>` and the bytes).
pub const FIRST_EXTRA: u32 = 3 + 256;

impl SpmVocab {
    pub fn new(extra: impl IntoIterator<Item = (String, i32)>) -> SpmVocab {
        let mut tokens: Vec<String> = vec!["<unk>".into(), "<s>".into(), "</s>".into()];
        let mut types = vec![2, CONTROL, CONTROL];
        for b in 0..=255u32 {
            tokens.push(format!("<0x{b:02X}>"));
            types.push(BYTE);
        }
        for (t, ty) in extra {
            tokens.push(t);
            types.push(ty);
        }
        SpmVocab { tokens, types }
    }

    /// The GGUF key-values of this vocab.
    pub fn writer(&self) -> GgufWriter<'static> {
        let mut w = GgufWriter::new();
        let n = self.tokens.len();
        w.add_kv("general.architecture", Value::String("llama".into()))
            .add_kv("tokenizer.ggml.model", Value::String("llama".into()))
            .add_kv(
                "tokenizer.ggml.tokens",
                Array::from_strings(&self.tokens).into(),
            )
            .add_kv(
                "tokenizer.ggml.scores",
                Array::from((0..n).map(|i| -(i as f32)).collect::<Vec<f32>>()).into(),
            )
            .add_kv(
                "tokenizer.ggml.token_type",
                Array::from(self.types.clone()).into(),
            );
        w
    }
}

/// Writes `w` to a scratch file named `name`, reads its metadata back and
/// deletes the file.
pub fn round_trip(w: GgufWriter<'_>, name: &str) -> Metadata {
    let path = scratch(name);
    w.write(&path).expect("write the vocab");
    let md = GgufFile::open(&path)
        .expect("read the vocab back")
        .metadata()
        .clone();
    let _ = std::fs::remove_file(&path);
    md
}

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new("/dev/shm");
    let dir = if dir.is_dir() {
        dir.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    dir.join(format!("moe-hostile-{}-{name}.gguf", std::process::id()))
}
