//! A tokenizer frees what it used when it is dropped: loading and using
//! many (a server switching models, the fuzzers) does not grow memory.
//! The `tokenizers` crate 0.23's BPE word cache lived in a thread-local
//! map that outlived every model (about 800 bytes a word, per load).

use std::path::Path;

use moe::gguf::{Array, Metadata, Value};
use moe::tokenizer::Tokenizer;

fn rss_kb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status.lines().find(|l| l.starts_with("VmRSS")).and_then(|l| l.split_whitespace().nth(1)).and_then(|n| n.parse().ok()).unwrap()
}

/// A byte-level BPE vocab: the 256 byte characters, a few merges.
fn bpe_metadata() -> Metadata {
    let mut md = Metadata::new(Path::new("tiny-bpe.gguf"));
    let mut tokens: Vec<String> = (0..=255u8).map(|b| moe::tokenizer::byte_to_char(b).to_string()).collect();
    tokens.extend(["he", "ll", "hell", "hello"].map(String::from));
    md.map.insert("tokenizer.ggml.model".into(), Value::String("gpt2".into()));
    md.map.insert("tokenizer.ggml.pre".into(), Value::String("gpt-2".into()));
    md.map.insert("tokenizer.ggml.tokens".into(), Array::from_strings(&tokens).into());
    md.map.insert("tokenizer.ggml.merges".into(), Array::from_strings(["h e", "l l", "he ll", "hell o"]).into());
    md
}

#[cfg(target_os = "linux")]
#[test]
fn loading_and_encoding_many_tokenizers_does_not_grow_memory() {
    let md = bpe_metadata();
    let text = "hello hello world, hello again";
    let run = |n: usize| {
        for _ in 0..n {
            let tok = Tokenizer::from_metadata(&md).unwrap();
            assert_eq!(tok.encode("hello", false, false).unwrap(), [259]);
            tok.encode(text, false, false).unwrap();
        }
    };
    run(1_000); // the allocator's steady state
    let before = rss_kb();
    run(20_000);
    let grown = rss_kb().saturating_sub(before);
    // The leak was ~800 bytes a word per load: 4 words × 20,000 ≈ 60 MB.
    assert!(grown < 8 * 1024, "memory grew by {grown} KB over 20,000 tokenizers");
}
