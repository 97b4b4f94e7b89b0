//! The tokenizer target. The first input byte picks the vocab (SentencePiece
//! or SmolLM2's BPE under one of the pre-tokenizer families) and the flags;
//! the rest is either text (lossily UTF-8) to encode, or ids (3 bytes each,
//! some past the vocab) to decode. Checked, besides "no panic":
//! - encoding these vocabs never fails and gives ids inside the vocab;
//! - without special tokens, decode(encode(text)) == text, for the vocabs
//!   that do not clean up spaces (SentencePiece: with U+2581 as a space);
//! - `StreamDecoder::detokenizing` streams exactly `decode` of the ids, and
//!   `StreamDecoder::new` exactly the lossy UTF-8 of their pieces.
//!
//! The BPE vocab is `models/SmolLM2-135M-Instruct.Q4_1.gguf`
//! (`scripts/fetch-model.sh`), or the file `MOE_FUZZ_BPE_MODEL` names.

use std::path::PathBuf;
use std::sync::OnceLock;

use moe::gguf::{GgufFile, Value};
use moe::tokenizer::{ModelKind, StreamDecoder, Tokenizer};

use crate::stream;

/// One name per pre-tokenizer family (src/tokenizer/pretokenize.rs).
pub const BPE_PRES: &[&str] =
    &["smollm", "default", "llama3", "dbrx", "gpt-2", "trillion", "starcoder", "qwen2", "stablelm2", "falcon"];
/// The families without `clean_spaces`, whose decode gives back the text
/// (the others drop spaces before punctuation, as llama.cpp does).
const LOSSLESS_PRES: &[&str] = &["smollm", "trillion", "qwen2"];

pub struct Vocab {
    pub name: String,
    pub tok: Tokenizer,
    /// decode(encode(text)) == text, but for the bytes in `dropped`.
    pub lossless: bool,
    /// Bytes without a token (SmolLM2 has none for 0x1D): llama.cpp's BPE
    /// drops them, and so do we.
    pub dropped: [bool; 256],
}

fn bpe_model() -> PathBuf {
    match std::env::var_os("MOE_FUZZ_BPE_MODEL") {
        Some(p) => p.into(),
        None => concat!(env!("CARGO_MANIFEST_DIR"), "/../models/SmolLM2-135M-Instruct.Q4_1.gguf").into(),
    }
}

/// Every vocab, built once per process: SPM first, then BPE per family.
pub fn vocabs() -> &'static [Vocab] {
    static V: OnceLock<Vec<Vocab>> = OnceLock::new();
    V.get_or_init(|| {
        let spm = crate::spm_vocab::write_and_load(&crate::scratch_path("spm-vocab.gguf"));
        let mut v = vec![Vocab {
            name: "spm".into(),
            tok: Tokenizer::from_metadata(&spm).expect("the SPM vocab builds"),
            lossless: true,
            dropped: [false; 256],
        }];
        let path = bpe_model();
        let file = GgufFile::open(&path).unwrap_or_else(|e| {
            panic!("the tokenizer target needs the SmolLM2 model (run scripts/fetch-model.sh, or set MOE_FUZZ_BPE_MODEL): {e}")
        });
        for pre in BPE_PRES {
            let mut md = file.metadata().clone();
            md.map.insert("tokenizer.ggml.pre".into(), Value::String(pre.to_string()));
            let tok = Tokenizer::from_metadata(&md).unwrap_or_else(|e| panic!("SmolLM2 as {pre}: {e}"));
            let dropped = std::array::from_fn(|b| tok.token_id(&moe::tokenizer::byte_to_char(b as u8).to_string()).is_none());
            v.push(Vocab { name: format!("smollm2-as-{pre}"), tok, lossless: LOSSLESS_PRES.contains(pre), dropped });
        }
        v
    })
}

pub fn check(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else { return };
    let vocabs = vocabs();
    let v = &vocabs[(mode & 0x0f) as usize % vocabs.len()];
    let tok = &v.tok;
    let skip_special = mode & 0x10 != 0;
    if mode & 0x80 != 0 {
        let n = tok.n_vocab() as u32 + 4;
        let ids: Vec<u32> = rest.chunks(3).map(|c| c.iter().fold(0u32, |a, &b| a << 8 | b as u32) % n).collect();
        return check_decode(v, &ids, skip_special);
    }
    let (add_special, parse_special) = (mode & 0x20 != 0, mode & 0x40 != 0);
    let text = String::from_utf8_lossy(rest);
    let ids = match tok.encode(&text, add_special, parse_special) {
        Ok(ids) => ids,
        // A piece made only of bytes the vocab has no token for encodes to
        // nothing, which is refused rather than silently dropped.
        Err(e) if e.to_string().contains("has no tokens for the text") && text.bytes().any(|b| v.dropped[b as usize]) => {
            return;
        }
        Err(e) => panic!("{}: encode({text:?}) failed: {e}", v.name),
    };
    assert!(ids.iter().all(|&id| (id as usize) < tok.n_vocab()), "{}: id outside the vocab", v.name);
    // User-defined tokens (our SPM vocab's <mask>) are always matched, and
    // SentencePiece then adds a space prefix to the text after them, as
    // llama.cpp does: no round trip there.
    let user_defined = tok.kind() == ModelKind::Spm && text.contains("<mask>");
    if v.lossless && !add_special && !parse_special && !user_defined {
        // SentencePiece writes spaces as U+2581, so a U+2581 in the text
        // comes back as a space.
        let want = match tok.kind() {
            ModelKind::Spm => text.replace('\u{2581}', " "),
            ModelKind::Bpe => {
                let kept: Vec<u8> = text.bytes().filter(|&b| !v.dropped[b as usize]).collect();
                String::from_utf8_lossy(&kept).into_owned()
            }
        };
        assert_eq!(tok.decode(&ids, false), want, "{}: decode(encode(text)) differs; ids {ids:?}", v.name);
    }
    check_decode(v, &ids, skip_special);
}

pub(crate) fn check_decode(v: &Vocab, ids: &[u32], skip_special: bool) {
    let tok = &v.tok;
    let whole = tok.decode(ids, skip_special);
    let streamed = stream(StreamDecoder::detokenizing(tok, skip_special), ids);
    assert_eq!(streamed, whole, "{}: streamed detokenizing differs from decode of {ids:?}", v.name);

    let pieces: Vec<u8> = ids
        .iter()
        .flat_map(|&id| if skip_special { tok.token_piece(id) } else { tok.token_piece_special(id) })
        .copied()
        .collect();
    let streamed = stream(StreamDecoder::new(tok, skip_special), ids);
    assert_eq!(streamed, String::from_utf8_lossy(&pieces), "{}: streamed pieces of {ids:?}", v.name);
    let _ = tok.detokenize(ids, true, !skip_special);
}
