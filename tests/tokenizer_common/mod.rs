//! Shared by the tokenizer tests: the vocab files, and llama.cpp's reference
//! ids for them.

#![allow(dead_code)]

use std::path::PathBuf;

#[path = "../common/mod.rs"]
mod common;
use std::sync::OnceLock;

use moe::gguf::{GgufFile, Metadata};
use moe::tokenizer::Tokenizer;

/// The SmolLM2 vocab (gpt2 BPE, pre "smollm"): the real model's file
/// (the shared tiny models carry the same tokenizer keys, byte for byte).
pub const SMOLLM2: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";
/// The Gemma 3 SentencePiece vocab.
pub const GEMMA3: &str = "gemma3-vocab-spm.gguf";

/// A vocab file by name, fetched by scripts/fetch-model.sh when missing.
/// The reference fixtures name SmolLM2's vocab by the shared file that
/// carries it, `tiny-moe4x2-f16.gguf`; it is the same vocab.
pub fn model_path(name: &str) -> PathBuf {
    match name {
        SMOLLM2 | "tiny-moe4x2-f16.gguf" => common::smollm2(),
        GEMMA3 => common::gemma3_vocab(),
        _ => panic!("no test vocab {name}: expected {SMOLLM2} or {GEMMA3}"),
    }
}

/// The file's metadata, read by the engine's own GGUF reader.
pub fn metadata(name: &str) -> Metadata {
    GgufFile::open(model_path(name))
        .expect("GGUF opens")
        .metadata()
        .clone()
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
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/tokenizer")
        .join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let ids = |v: &serde_json::Value| -> Vec<u32> {
        v.as_array()
            .expect("ids array")
            .iter()
            .map(|x| x.as_u64().expect("id") as u32)
            .collect()
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
