//! A small SentencePiece (`tokenizer.ggml.model = "llama"`) vocab written
//! with the project's `GgufWriter`, so the tokenizer target needs no
//! downloaded SPM model: `<unk> <s> </s>`, the 256 `<0xNN>` byte tokens,
//! printable ASCII, `▁`-words, every lowercase bigram (all one score, to
//! exercise the leftmost-first tie rule), a few multi-byte pieces, two
//! control tokens and one user-defined token.

use std::path::Path;

use moe::gguf::{Array, GgufFile, GgufWriter, Metadata, Value};

const NORMAL: i32 = 1;
const UNKNOWN: i32 = 2;
const CONTROL: i32 = 3;
const USER_DEFINED: i32 = 4;
const BYTE: i32 = 6;

const WORDS: &[&str] = &[
    "the", "of", "and", "to", "in", "is", "was", "that", "for", "on", "with", "as", "it", "by", "at", "from", "his",
    "an", "are", "be", "this", "which", "or", "her", "had", "not", "but", "have", "one", "they", "Hello", "world",
    "The", "capital", "France", "Paris", "is", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "über",
    "café", "naïve", "日本", "語", "llama", "🦙", "ing", "tion", "ed", "er", "re", "   ", "  ", "\n", "\n\n", "\t",
];

/// The pieces with their scores and token types, in id order.
pub fn pieces() -> Vec<(String, f32, i32)> {
    let mut v: Vec<(String, f32, i32)> = vec![
        ("<unk>".into(), 0.0, UNKNOWN),
        ("<s>".into(), 0.0, CONTROL),
        ("</s>".into(), 0.0, CONTROL),
        ("<start_of_turn>".into(), 0.0, CONTROL),
        ("<mask>".into(), 0.0, USER_DEFINED),
    ];
    v.extend((0..=255u32).map(|b| (format!("<0x{b:02X}>"), 0.0, BYTE)));
    let mut push = |piece: String, score: f32| {
        if !v.iter().any(|(p, _, _)| *p == piece) {
            v.push((piece, score, NORMAL));
        }
    };
    push("\u{2581}".into(), -1.0);
    for (i, w) in WORDS.iter().enumerate() {
        let w = w.replace(' ', "\u{2581}");
        push(format!("\u{2581}{w}"), -2.0 - i as f32);
        push(w, -100.0 - i as f32);
    }
    for a in 'a'..='z' {
        push(format!("\u{2581}{a}"), -200.0);
        for b in 'a'..='z' {
            push(format!("{a}{b}"), -300.0);
        }
    }
    for c in (0x21u8..0x7f).map(char::from).chain("éüï日本語".chars()) {
        push(c.to_string(), -1000.0);
    }
    v
}

/// Writes the vocab to `path` and reads its metadata back.
pub fn write_and_load(path: &Path) -> Metadata {
    let pieces = pieces();
    let mut w = GgufWriter::new();
    w.add_kv("general.architecture", Value::String("llama".into()))
        .add_kv("tokenizer.ggml.model", Value::String("llama".into()))
        .add_kv("tokenizer.ggml.tokens", Array::from_strings(pieces.iter().map(|p| &p.0)).into())
        .add_kv("tokenizer.ggml.scores", Array::from(pieces.iter().map(|p| p.1).collect::<Vec<f32>>()).into())
        .add_kv("tokenizer.ggml.token_type", Array::from(pieces.iter().map(|p| p.2).collect::<Vec<i32>>()).into())
        .add_kv("tokenizer.ggml.unknown_token_id", Value::U32(0))
        .add_kv("tokenizer.ggml.bos_token_id", Value::U32(1))
        .add_kv("tokenizer.ggml.eos_token_id", Value::U32(2));
    w.write(path).expect("write the SPM vocab");
    let md = GgufFile::open(path).expect("read the SPM vocab back").metadata().clone();
    let _ = std::fs::remove_file(path);
    md
}
