//! Bad tokenizer metadata gives errors that name the file and the key.

mod tokenizer_common;

use moe::gguf::{Array, Metadata, Value};
use moe::tokenizer::Tokenizer;
use moe::Error;
use tokenizer_common::{model_path, SMOLLM2};

fn smollm2() -> Metadata {
    tokenizer_common::metadata(SMOLLM2)
}

fn error_of(md: &Metadata) -> (Error, String) {
    match Tokenizer::from_metadata(md) {
        Ok(_) => panic!("expected an error"),
        Err(e) => {
            let msg = e.to_string();
            (e, msg)
        }
    }
}

#[test]
fn missing_tokens_key() {
    let mut md = smollm2();
    md.map.remove("tokenizer.ggml.tokens");
    let (e, msg) = error_of(&md);
    assert!(
        matches!(&e, Error::MissingKey { key, .. } if key == "tokenizer.ggml.tokens"),
        "{e:?}"
    );
    assert!(
        msg.contains(&model_path(SMOLLM2).display().to_string()),
        "{msg}"
    );
}

#[test]
fn missing_model_key() {
    let mut md = smollm2();
    md.map.remove("tokenizer.ggml.model");
    let (e, _) = error_of(&md);
    assert!(
        matches!(&e, Error::MissingKey { key, .. } if key == "tokenizer.ggml.model"),
        "{e:?}"
    );
}

#[test]
fn unknown_model() {
    let mut md = smollm2();
    md.map
        .insert("tokenizer.ggml.model".into(), Value::String("t5".into()));
    let (e, msg) = error_of(&md);
    assert!(
        matches!(&e, Error::BadKey { key, .. } if key == "tokenizer.ggml.model"),
        "{e:?}"
    );
    assert!(
        msg.contains("\"t5\"") && msg.contains("llama") && msg.contains("gpt2"),
        "{msg}"
    );
}

#[test]
fn unknown_pre_lists_the_supported_ones() {
    let mut md = smollm2();
    md.map.insert(
        "tokenizer.ggml.pre".into(),
        Value::String("no-such-pre".into()),
    );
    let (e, msg) = error_of(&md);
    assert!(
        matches!(&e, Error::BadKey { key, .. } if key == "tokenizer.ggml.pre"),
        "{e:?}"
    );
    for name in [
        "\"no-such-pre\"",
        "smollm",
        "llama-bpe",
        "llama3",
        "qwen2",
        "gpt-2",
        "default",
    ] {
        assert!(msg.contains(name), "{name} not in: {msg}");
    }
}

#[test]
fn missing_pre_is_default() {
    // llama.cpp warns and uses "default", which splits punctuation runs and
    // digit triples differently from "smollm".
    let mut md = smollm2();
    md.map.remove("tokenizer.ggml.pre");
    let tok = Tokenizer::from_metadata(&md).unwrap();
    let smollm = Tokenizer::from_metadata(&smollm2()).unwrap();
    let text = "wait ... what ?!";
    assert_ne!(
        tok.encode(text, false, false).unwrap(),
        smollm.encode(text, false, false).unwrap()
    );
    md.map
        .insert("tokenizer.ggml.pre".into(), Value::String("default".into()));
    let explicit = Tokenizer::from_metadata(&md).unwrap();
    assert_eq!(
        tok.encode(text, false, false).unwrap(),
        explicit.encode(text, false, false).unwrap()
    );
}

#[test]
fn missing_merges_for_bpe() {
    let mut md = smollm2();
    md.map.remove("tokenizer.ggml.merges");
    let (e, _) = error_of(&md);
    assert!(
        matches!(&e, Error::MissingKey { key, .. } if key == "tokenizer.ggml.merges"),
        "{e:?}"
    );
}

#[test]
fn short_or_mistyped_arrays() {
    let mut md = smollm2();
    md.map.insert(
        "tokenizer.ggml.token_type".into(),
        Array::from(vec![1i32; 10]).into(),
    );
    let (e, msg) = error_of(&md);
    assert!(
        matches!(&e, Error::BadKey { key, .. } if key == "tokenizer.ggml.token_type"),
        "{e:?}"
    );
    assert!(msg.contains("10 entries"), "{msg}");

    let mut md = smollm2();
    md.map
        .insert("tokenizer.ggml.tokens".into(), Value::String("oops".into()));
    let (e, _) = error_of(&md);
    assert!(
        matches!(&e, Error::BadKey { key, .. } if key == "tokenizer.ggml.tokens"),
        "{e:?}"
    );
}

#[test]
fn duplicate_tokens() {
    let mut md = smollm2();
    let six = md.strings("tokenizer.ggml.tokens").unwrap().get(6).unwrap().to_string();
    edit_tokens(&mut md, |i, t| if i == 5 { six.clone() } else { t.to_string() });
    let (e, msg) = error_of(&md);
    assert!(
        matches!(&e, Error::BadKey { key, .. } if key == "tokenizer.ggml.tokens"),
        "{e:?}"
    );
    assert!(msg.contains("id 5") && msg.contains("id 6"), "{msg}");
}

#[test]
fn special_ids_fall_back_like_llama_cpp() {
    // Without a BOS key a gpt2 vocab gets llama.cpp's default BOS, id 11; a
    // key pointing outside the vocab is ignored (with a warning).
    let mut md = smollm2();
    md.map
        .insert("tokenizer.ggml.add_bos_token".into(), Value::Bool(true));
    md.map.remove("tokenizer.ggml.bos_token_id");
    let tok = Tokenizer::from_metadata(&md).unwrap();
    assert_eq!(tok.bos(), Some(11));
    assert_eq!(tok.encode("hi", true, false).unwrap()[0], 11);
    md.map
        .insert("tokenizer.ggml.bos_token_id".into(), Value::U32(1_000_000));
    assert_eq!(Tokenizer::from_metadata(&md).unwrap().bos(), Some(11));
}

#[test]
fn missing_byte_fallback_token_names_the_file_and_key() {
    // Gemma 3's SentencePiece vocab without its <0xE2> byte token, and a
    // character no piece covers (U+2FFF, unassigned: bytes E2 BF BF).
    let mut md = tokenizer_common::metadata(tokenizer_common::GEMMA3);
    assert!(md.strings("tokenizer.ggml.tokens").unwrap().iter().any(|t| t == "<0xE2>"), "Gemma 3 has <0xE2>");
    edit_tokens(&mut md, |_, t| if t == "<0xE2>" { "<0xE2>-gone".into() } else { t.to_string() });
    let tok = Tokenizer::from_metadata(&md).unwrap();
    let msg = tok.encode("a \u{2fff} b", true, false).unwrap_err().to_string();
    let path = model_path(tokenizer_common::GEMMA3).display().to_string();
    assert!(msg.contains(&path) && msg.contains("tokenizer.ggml.tokens has no byte token <0xE2>"), "{msg}");
}

#[test]
fn text_the_vocab_cannot_encode_is_an_error_not_an_empty_prompt() {
    // A byte-level BPE vocab with no tokens for x, y or z (llama.cpp drops
    // such symbols): "xyz" would become no tokens at all.
    let path = std::path::Path::new("/models/tiny-bpe.gguf");
    let mut md = Metadata::new(path);
    let strings = |v: &[&str]| Value::from(Array::from_strings(v));
    md.map.insert("tokenizer.ggml.model".into(), Value::String("gpt2".into()));
    md.map.insert("tokenizer.ggml.pre".into(), Value::String("default".into()));
    md.map.insert("tokenizer.ggml.tokens".into(), strings(&["<|endoftext|>", "a", "b", "ab", "\u{120}", "\u{120}a"]));
    md.map.insert("tokenizer.ggml.merges".into(), strings(&["a b", "\u{120} a"]));
    md.map.insert("tokenizer.ggml.add_bos_token".into(), Value::Bool(false));
    let tok = Tokenizer::from_metadata(&md).unwrap();
    assert_eq!(tok.encode("ab a", false, false).unwrap(), vec![3, 5]);
    let msg = tok.encode("xyz", false, false).unwrap_err().to_string();
    assert!(msg.contains("/models/tiny-bpe.gguf") && msg.contains("has no tokens for the text \"xyz\""), "{msg}");
}

/// Replaces the token list with `f(id, text)` of each token.
fn edit_tokens(md: &mut Metadata, f: impl Fn(usize, &str) -> String) {
    let tokens = md.strings("tokenizer.ggml.tokens").unwrap();
    let edited = Array::from_strings(tokens.iter().enumerate().map(|(i, t)| f(i, t)));
    md.map.insert("tokenizer.ggml.tokens".into(), edited.into());
}

#[test]
fn a_vocab_that_asks_for_bos_but_has_none_names_the_file_and_keys() {
    // Six tokens: no bos_token_id key, and llama.cpp's gpt2 default (id 11)
    // is not a token, so the vocab has no BOS while add_bos_token asks for it.
    let path = std::path::Path::new("/models/tiny-no-bos.gguf");
    let mut md = Metadata::new(path);
    let strings = |v: &[&str]| Value::from(Array::from_strings(v));
    md.map.insert("tokenizer.ggml.model".into(), Value::String("gpt2".into()));
    md.map.insert("tokenizer.ggml.pre".into(), Value::String("default".into()));
    md.map.insert("tokenizer.ggml.tokens".into(), strings(&["<|endoftext|>", "a", "b", "ab", "\u{120}", "\u{120}a"]));
    md.map.insert("tokenizer.ggml.merges".into(), strings(&["a b", "\u{120} a"]));
    md.map.insert("tokenizer.ggml.add_bos_token".into(), Value::Bool(true));
    let tok = Tokenizer::from_metadata(&md).unwrap();
    assert_eq!(tok.bos(), None);
    // Without special tokens it encodes; with them the error says where.
    assert_eq!(tok.encode("ab", false, false).unwrap(), vec![3]);
    let msg = tok.encode("ab", true, false).unwrap_err().to_string();
    for want in ["/models/tiny-no-bos.gguf", "tokenizer.ggml.add_bos_token", "tokenizer.ggml.bos_token_id", "--no-bos"] {
        assert!(msg.contains(want), "{want}: {msg}");
    }
}
