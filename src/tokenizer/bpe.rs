//! Byte-level BPE (`tokenizer.ggml.model = "gpt2"`): llama.cpp's
//! pre-tokenizer splits the text into words, each word's UTF-8 bytes are
//! mapped to GPT-2's printable byte alphabet, and the `tokenizers` crate's
//! BPE model merges them by rank.
//!
//! The crate's merge loop is llama.cpp's: lowest rank first, ties to the
//! leftmost pair, and with `ignore_merges` a word that is itself a piece is
//! taken whole. Two inputs the crate cannot take are made to fit first:
//! a pair listed twice keeps its first (lowest) rank, as llama.cpp's map
//! does, and a merge whose halves or result are not pieces is dropped (the
//! crate refuses them; llama.cpp could only use one to build a non-piece).

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use tokenizers::models::bpe::{Vocab as HfVocab, BPE};
use tokenizers::Model;

use super::pretokenize::PreTokenizer;
use super::vocab::Vocab;

pub(crate) struct BpeModel {
    bpe: BPE,
    pub pre: PreTokenizer,
    /// Words already merged, freed with the model (see [`WORD_CACHE_WORDS`]).
    cache: Mutex<HashMap<String, Vec<u32>>>,
}

/// How many words (of fewer than [`WORD_CACHE_MAX_BYTES`] bytes) a model
/// remembers the merges of. The `tokenizers` crate's own cache is off: in
/// 0.23 it lives in a thread-local map keyed by model instance and is never
/// freed when a model is dropped (every tokenizer load that encodes leaked
/// ~800 bytes a word on that thread; found by the tokenizer_vocab fuzz
/// target's memory growth).
const WORD_CACHE_WORDS: usize = 10_000;
const WORD_CACHE_MAX_BYTES: usize = 256;

impl BpeModel {
    /// `merges` are the `tokenizer.ggml.merges` entries, "left right".
    pub fn new(vocab: &Vocab, merges: &[&str], pre: PreTokenizer) -> Result<BpeModel, String> {
        let mut seen = HashSet::with_capacity(merges.len());
        let mut pairs = Vec::with_capacity(merges.len());
        let mut dropped = 0usize;
        for m in merges {
            // llama.cpp splits at the first space after the first byte.
            let Some(sp) = m.bytes().skip(1).position(|b| b == b' ').map(|p| p + 1) else {
                dropped += 1;
                continue;
            };
            let (a, b) = (&m[..sp], &m[sp + 1..]);
            if !seen.insert((a, b)) {
                continue;
            }
            if vocab.id(a).is_none()
                || vocab.id(b).is_none()
                || vocab.id(&format!("{a}{b}")).is_none()
            {
                dropped += 1;
                continue;
            }
            pairs.push((a.to_string(), b.to_string()));
        }
        if dropped > 0 {
            eprintln!("moe: tokenizer: ignored {dropped} merges whose pieces are not in the vocab");
        }
        let hf_vocab: HfVocab = vocab
            .texts
            .iter()
            .enumerate()
            .map(|(i, t)| (t.clone(), i as u32))
            .collect();
        let bpe = BPE::builder()
            .vocab_and_merges(hf_vocab, pairs)
            .ignore_merges(pre.ignore_merges)
            .cache_capacity(0)
            .build()
            .map_err(|e| format!("cannot build the BPE model: {e}"))?;
        Ok(BpeModel { bpe, pre, cache: Mutex::new(HashMap::new()) })
    }

    /// Encodes one raw fragment (no special tokens in it), appending ids.
    pub fn encode(&self, text: &str, out: &mut Vec<u32>) -> Result<(), String> {
        let mut word = String::new();
        let mut cache = self.cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        for w in self.pre.split(text) {
            word.clear();
            word.extend(w.bytes().map(byte_to_char));
            if let Some(ids) = cache.get(&word) {
                out.extend_from_slice(ids);
                continue;
            }
            let tokens = self
                .bpe
                .tokenize(&word)
                .map_err(|e| format!("BPE failed on {w:?}: {e}"))?;
            let ids: Vec<u32> = tokens.iter().map(|t| t.id).collect();
            out.extend_from_slice(&ids);
            if word.len() < WORD_CACHE_MAX_BYTES && cache.len() < WORD_CACHE_WORDS {
                cache.insert(word.clone(), ids);
            }
        }
        Ok(())
    }
}

/// GPT-2's `bytes_to_unicode`: printable Latin-1 bytes stand for
/// themselves, the other 68 bytes for U+0100.. in byte order.
pub fn byte_to_char(b: u8) -> char {
    BYTE_CHARS[b as usize]
}

/// The inverse of [`byte_to_char`].
pub(crate) fn char_to_byte(c: char) -> Option<u8> {
    let cp = c as u32;
    if cp < 0x100 {
        let b = cp as u8;
        return is_printable(b).then_some(b);
    }
    let rank = cp - 0x100;
    (rank < 68).then(|| UNPRINTABLE[rank as usize])
}

const fn is_printable(b: u8) -> bool {
    matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF)
}

/// The 68 bytes that are not printable, ascending.
const UNPRINTABLE: [u8; 68] = {
    let mut t = [0u8; 68];
    let (mut b, mut n) = (0usize, 0usize);
    while b < 256 {
        if !is_printable(b as u8) {
            t[n] = b as u8;
            n += 1;
        }
        b += 1;
    }
    assert!(n == 68);
    t
};

const BYTE_CHARS: [char; 256] = {
    let mut t = ['\0'; 256];
    let (mut b, mut n) = (0usize, 0u32);
    while b < 256 {
        t[b] = if is_printable(b as u8) {
            b as u8 as char
        } else {
            n += 1;
            match char::from_u32(0x100 + n - 1) {
                Some(c) => c,
                None => panic!(),
            }
        };
        b += 1;
    }
    t
};

/// Chars outside the byte alphabet, per piece, that render with the piece.
const UNK_BYTES_WITH_PIECE: usize = 16;

/// How llama.cpp renders a normal byte-level piece: each char back to its
/// byte; a char outside the alphabet as `[UNK_BYTE_0x..<piece>]`.
///
/// Repeating the piece per such char makes the rendering quadratic in the
/// piece (llama.cpp renders every piece at load: a crafted 300 KB piece of
/// CJK chars would take 30 GB), so from the 17th such char on the piece is
/// left out: `[UNK_BYTE_0x..]`.
pub(crate) fn decode_piece(piece: &str, out: &mut Vec<u8>) {
    let mut unknown = 0;
    for c in piece.chars() {
        match char_to_byte(c) {
            Some(b) => out.push(b),
            None => {
                out.extend_from_slice(b"[UNK_BYTE_0x");
                let mut buf = [0; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    out.extend_from_slice(format!("{b:02x}").as_bytes());
                }
                if unknown < UNK_BYTES_WITH_PIECE {
                    out.extend_from_slice(piece.as_bytes());
                }
                unknown += 1;
                out.push(b']');
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_alphabet_round_trips() {
        assert_eq!(byte_to_char(b' '), 'Ġ');
        assert_eq!(byte_to_char(b'\n'), 'Ċ');
        assert_eq!(byte_to_char(b'a'), 'a');
        assert_eq!(byte_to_char(0xAD), 'Ń');
        for b in 0..=255u8 {
            assert_eq!(char_to_byte(byte_to_char(b)), Some(b));
        }
        assert_eq!(char_to_byte('日'), None);
        let mut out = Vec::new();
        decode_piece("a日", &mut out);
        assert_eq!(out, b"a[UNK_BYTE_0xe697a5a\xe6\x97\xa5]");
    }

    #[test]
    fn long_piece_outside_the_alphabet_renders_linearly() {
        let piece = "日".repeat(20);
        let mut out = Vec::new();
        decode_piece(&piece, &mut out);
        let full = format!("[UNK_BYTE_0xe697a5{piece}]");
        let short = "[UNK_BYTE_0xe697a5]";
        assert_eq!(out, [full.repeat(16), short.repeat(4)].concat().into_bytes());
    }
}
