//! The tokenizer_vocab target: the input is the vocab, so crafted ones
//! (duplicate and empty pieces, overlapping control and user-defined
//! tokens, merges of non-pieces, odd token types) are reachable.
//!
//! Input: a flags byte, then fields separated by 0x00. The first field is
//! the text to encode; each later one is a token (its first byte its kind,
//! the rest its text, lossily UTF-8) or, for byte-level BPE, a merge.
//! - flags: bit 0 byte-level BPE (else SentencePiece), bit 1 parse special
//!   tokens, bit 2 add BOS/EOS, bit 3 skip special tokens when decoding,
//!   bits 4-7 the pre-tokenizer (of [`BPE_PRES`]).
//! - kind byte: bit 7 set makes the field a merge ("left right"); else bits
//!   0-2 are the GGUF token type (0 and 7 undefined) and bits 3-6 minus the
//!   score.
//!
//! Checked, besides "no panic": loading may fail, but its error names the
//! file; encoding may fail (no tokens for the text, no BOS, no byte token),
//! again naming the file; ids are inside the vocab; decoding and streaming
//! agree as in the tokenizer target.

use std::path::Path;

use moe::gguf::{Array, Metadata, Value};
use moe::tokenizer::Tokenizer;

use crate::assert_names_file;
use crate::tokenizer::{check_decode, Vocab, BPE_PRES};

/// Pieces beyond these are ignored, to keep each run short.
const MAX_FIELDS: usize = 1024;

pub fn check(data: &[u8]) {
    let Some((&flags, rest)) = data.split_first() else { return };
    let bpe = flags & 1 != 0;
    let (parse_special, add_special, skip_special) = (flags & 2 != 0, flags & 4 != 0, flags & 8 != 0);
    let mut fields = rest.split(|&b| b == 0).take(MAX_FIELDS);
    let text = String::from_utf8_lossy(fields.next().unwrap_or_default()).into_owned();

    let (mut tokens, mut types, mut scores, mut merges) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for field in fields {
        let Some((&kind, body)) = field.split_first() else { continue };
        let body = String::from_utf8_lossy(body).into_owned();
        if kind & 0x80 != 0 {
            merges.push(body);
        } else {
            tokens.push(body);
            types.push((kind & 7) as i32);
            scores.push(-((kind >> 3) as f32));
        }
    }
    let path = Path::new("fuzz-vocab.gguf");
    let mut md = Metadata::new(path);
    let mut set = |key: &str, v: Value| {
        md.map.insert(key.into(), v);
    };
    set("tokenizer.ggml.model", Value::String(if bpe { "gpt2" } else { "llama" }.into()));
    set("tokenizer.ggml.tokens", Array::from_strings(&tokens).into());
    set("tokenizer.ggml.token_type", Array::from(types).into());
    set("tokenizer.ggml.scores", Array::from(scores).into());
    if bpe {
        set("tokenizer.ggml.merges", Array::from_strings(&merges).into());
        let pre = BPE_PRES[(flags >> 4) as usize % BPE_PRES.len()];
        set("tokenizer.ggml.pre", Value::String(pre.into()));
    }
    let tok = match Tokenizer::from_metadata(&md) {
        Ok(tok) => tok,
        Err(e) => return assert_names_file(&e, path),
    };
    let ids = match tok.encode(&text, add_special, parse_special) {
        Ok(ids) => ids,
        Err(e) => return assert_names_file(&e, path),
    };
    assert!(ids.iter().all(|&id| (id as usize) < tok.n_vocab()), "id outside the vocab: {ids:?}");
    let v = Vocab { name: "fuzz-vocab".into(), tok, lossless: false, dropped: [false; 256] };
    check_decode(&v, &ids, skip_special);
}
