//! Incremental decoding: ids in one at a time, finished text out.

use super::decode::{clean_cut, clean_spaces};
use super::Tokenizer;

/// Turns ids into text as they arrive, yielding only text that later ids
/// cannot change: a UTF-8 sequence split across tokens (byte-fallback
/// tokens, byte-level BPE pieces) is held back until it is complete, and
/// invalid bytes become U+FFFD as `String::from_utf8_lossy` would.
///
/// Made with [`StreamDecoder::new`], it yields the tokens' pieces
/// ([`Tokenizer::token_piece`]) one after another, which is what llama.cpp
/// prints while generating: use it for text that continues a prompt.
///
/// Made with [`StreamDecoder::detokenizing`], everything
/// [`push`](Self::push) and [`finish`](Self::finish) return adds up to
/// [`Tokenizer::decode`] of all the ids (llama.cpp's `llama_detokenize`):
/// with a space-prefix vocab (SentencePiece) the first token loses one
/// leading space, and `clean_spaces` vocabs (gpt-2, llama3, ...) get their
/// space clean-up, a space being held back until the next bytes decide it.
/// As in llama.cpp, the strip applies to the very first id only, so a
/// leading BOS (which renders as nothing) leaves the next piece's space.
pub struct StreamDecoder<'a> {
    tok: &'a Tokenizer,
    skip_special: bool,
    /// Strip one leading space from the first token's piece.
    strip_first: bool,
    first: bool,
    clean: bool,
    /// Bytes not yet through `clean_spaces` (only when `clean`).
    unclean: Vec<u8>,
    /// Bytes ready but not yet returned: an unfinished UTF-8 sequence.
    pending: Vec<u8>,
}

impl<'a> StreamDecoder<'a> {
    /// Yields each token's piece as llama.cpp's generation output does:
    /// no space strip, no clean-up. `skip_special` renders control tokens
    /// as nothing.
    pub fn new(tok: &'a Tokenizer, skip_special: bool) -> Self {
        StreamDecoder {
            tok,
            skip_special,
            strip_first: false,
            first: true,
            clean: false,
            unclean: Vec::new(),
            pending: Vec::new(),
        }
    }

    /// Yields, in pieces, exactly [`Tokenizer::decode`]`(ids, skip_special)`.
    pub fn detokenizing(tok: &'a Tokenizer, skip_special: bool) -> Self {
        StreamDecoder {
            strip_first: tok.add_space_prefix,
            clean: tok.clean_spaces,
            ..Self::new(tok, skip_special)
        }
    }

    /// Adds one id; returns the text it completes (often empty).
    pub fn push(&mut self, id: u32) -> String {
        let mut piece = if self.skip_special {
            self.tok.token_piece(id)
        } else {
            self.tok.token_piece_special(id)
        };
        if std::mem::take(&mut self.first) && self.strip_first {
            piece = piece.strip_prefix(b" ").unwrap_or(piece);
        }
        if self.clean {
            self.unclean.extend_from_slice(piece);
            if let Some(cut) = clean_cut(&self.unclean) {
                let mut done: Vec<u8> = self.unclean.drain(..cut).collect();
                clean_spaces(&mut done);
                self.pending.extend_from_slice(&done);
            }
        } else {
            self.pending.extend_from_slice(piece);
        }
        take_complete_utf8(&mut self.pending)
    }

    /// Returns whatever is held back, invalid or unfinished UTF-8 replaced
    /// by U+FFFD.
    pub fn finish(&mut self) -> String {
        if self.clean {
            let mut rest = std::mem::take(&mut self.unclean);
            clean_spaces(&mut rest);
            self.pending.extend_from_slice(&rest);
        }
        let out = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        out
    }
}

/// Removes and returns the longest prefix of `buf` whose UTF-8 is settled:
/// valid sequences, and invalid ones as U+FFFD (as `from_utf8_lossy` would
/// render them), leaving only an unfinished sequence at the end.
fn take_complete_utf8(buf: &mut Vec<u8>) -> String {
    let mut out = String::new();
    let mut at = 0;
    while at < buf.len() {
        match std::str::from_utf8(&buf[at..]) {
            Ok(s) => {
                out.push_str(s);
                at = buf.len();
            }
            Err(e) => {
                let valid = e.valid_up_to();
                out.push_str(std::str::from_utf8(&buf[at..at + valid]).expect("checked valid"));
                at += valid;
                match e.error_len() {
                    Some(n) => {
                        out.push('\u{FFFD}');
                        at += n;
                    }
                    None => break, // may still be completed
                }
            }
        }
    }
    buf.drain(..at);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_held_until_complete() {
        let emoji = "🦙".as_bytes();
        let mut buf = emoji[..2].to_vec();
        assert_eq!(take_complete_utf8(&mut buf), "");
        buf.extend_from_slice(&emoji[2..]);
        buf.push(b'!');
        assert_eq!(take_complete_utf8(&mut buf), "🦙!");
        assert!(buf.is_empty());
        // An invalid byte is settled at once; a lead byte after it waits.
        let mut buf = vec![b'a', 0xFF, 0xE6];
        assert_eq!(take_complete_utf8(&mut buf), "a\u{FFFD}");
        assert_eq!(buf, [0xE6]);
    }
}
