//! Tokenizer metadata for synthetic models: a minimal GPT-2 style byte-level
//! vocab, or every `tokenizer.*` key copied from an existing GGUF file.

use std::path::Path;

use crate::error::{Error, Result};
use crate::gguf::{Array, GgufFile, Value};
use crate::tokenizer::byte_to_char;

/// llama.cpp token types.
const NORMAL: i32 = 1;
const CONTROL: i32 = 3;
const UNUSED: i32 = 5;

/// `tokenizer.*` keys and the vocabulary size.
pub(crate) struct Vocab {
    pub keys: Vec<(String, Value)>,
    pub n_vocab: usize,
}

/// ids 0..=255: the bytes (GPT-2 byte-level form), 256: `<|endoftext|>`
/// (BOS and EOS), then `<|unused_N|>` fillers up to `n_vocab`. No merges, so
/// text tokenizes to one token per byte.
pub(crate) fn byte_level(n_vocab: usize) -> Result<Vocab> {
    if n_vocab < 257 {
        return Err(Error::InvalidArgument(format!(
            "synthetic byte-level vocab needs n_vocab >= 257 (256 bytes + <|endoftext|>), got {n_vocab}"
        )));
    }
    let mut tokens: Vec<String> = (0..=255u8).map(|b| byte_to_char(b).to_string()).collect();
    let mut types = vec![NORMAL; 256];
    tokens.push("<|endoftext|>".into());
    types.push(CONTROL);
    for i in 257..n_vocab {
        tokens.push(format!("<|unused_{}|>", i - 257));
        types.push(UNUSED);
    }
    let strings = |v: Vec<String>| Value::from(Array::from_strings(v));
    let keys = vec![
        ("tokenizer.ggml.model".into(), Value::String("gpt2".into())),
        ("tokenizer.ggml.pre".into(), Value::String("default".into())),
        ("tokenizer.ggml.tokens".into(), strings(tokens)),
        ("tokenizer.ggml.token_type".into(), Array::from(types).into()),
        ("tokenizer.ggml.merges".into(), strings(Vec::new())),
        ("tokenizer.ggml.bos_token_id".into(), Value::U32(256)),
        ("tokenizer.ggml.eos_token_id".into(), Value::U32(256)),
        ("tokenizer.ggml.add_bos_token".into(), Value::Bool(false)),
    ];
    Ok(Vocab { keys, n_vocab })
}

/// Every `tokenizer.*` key of `path`; n_vocab is its token count.
pub(crate) fn copied_from(path: &Path) -> Result<Vocab> {
    let f = GgufFile::open(path)?;
    let n_vocab = f.metadata().array("tokenizer.ggml.tokens", "an array of strings")?.len();
    let keys = f
        .metadata()
        .map
        .iter()
        .filter(|(k, _)| k.starts_with("tokenizer."))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    Ok(Vocab { keys, n_vocab })
}

#[cfg(test)]
mod tests {
    use crate::tokenizer::byte_to_char as byte_char; // the map synth vocabularies are built with

    #[test]
    fn gpt2_byte_map() {
        assert_eq!(byte_char(b'A'), 'A');
        assert_eq!(byte_char(b' '), 'Ġ');
        assert_eq!(byte_char(b'\n'), 'Ċ');
        assert_eq!(byte_char(0), 'Ā');
        assert_eq!(byte_char(0xad), 'Ń');
        let all: std::collections::HashSet<char> = (0..=255u8).map(byte_char).collect();
        assert_eq!(all.len(), 256);
    }
}
