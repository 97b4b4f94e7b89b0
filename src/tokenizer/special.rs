//! Splitting the input around special tokens before it is encoded, as
//! llama.cpp's `tokenizer_st_partition` does.
//!
//! Control, user-defined and unknown tokens are "special". Taken longest
//! text first, each one is searched for in every raw fragment left so far,
//! and every occurrence becomes that token, the text around it staying raw.
//! User-defined tokens are always split out; control and unknown ones only
//! when the caller asks to parse special tokens. Longest-first over the whole
//! text is not the same as leftmost-longest matching, so the order matters.
//!
//! llama.cpp tries every special token in turn. Gemma-style vocabs have
//! thousands, so an Aho-Corasick pass first finds which of them occur in the
//! text at all; only those are tried, in llama.cpp's order. A token absent
//! from the text is absent from every fragment of it, so the result is the
//! same.

use aho_corasick::AhoCorasick;

use super::vocab::{attr, Vocab};

/// A piece of the input: raw text (a byte range of it) or a special token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fragment {
    Text { start: usize, end: usize },
    Token(u32),
}

pub(crate) struct SpecialMatcher {
    /// Special ids, longest text first (ties by id, which llama.cpp leaves
    /// to its unstable sort).
    ids: Vec<u32>,
    /// Pattern `i` is the text of `ids[i]`.
    finder: Option<AhoCorasick>,
}

impl SpecialMatcher {
    pub fn new(vocab: &Vocab) -> Result<SpecialMatcher, String> {
        let mut ids: Vec<u32> = (0..vocab.len() as u32)
            .filter(|&id| vocab.has(id, attr::CONTROL | attr::USER_DEFINED | attr::UNKNOWN))
            .collect();
        ids.sort_by_key(|&id| std::cmp::Reverse(vocab.texts[id as usize].len()));
        let finder = if ids.is_empty() {
            None
        } else {
            let patterns = ids.iter().map(|&id| vocab.texts[id as usize].as_bytes());
            Some(
                AhoCorasick::new(patterns)
                    .map_err(|e| format!("cannot index the special tokens: {e}"))?,
            )
        };
        Ok(SpecialMatcher { ids, finder })
    }

    /// All special ids, longest first.
    pub fn ids(&self) -> &[u32] {
        &self.ids
    }

    pub fn partition(&self, vocab: &Vocab, text: &str, parse_special: bool) -> Vec<Fragment> {
        let mut frags = Vec::new();
        if text.is_empty() {
            return frags;
        }
        frags.push(Fragment::Text {
            start: 0,
            end: text.len(),
        });
        let Some(finder) = &self.finder else {
            return frags;
        };
        let mut present = vec![false; self.ids.len()];
        for m in finder.find_overlapping_iter(text) {
            present[m.pattern().as_usize()] = true;
        }
        let bytes = text.as_bytes();
        for (i, &id) in self.ids.iter().enumerate() {
            if !present[i] {
                continue;
            }
            let a = vocab.attrs[id as usize];
            if !parse_special && a & (attr::CONTROL | attr::UNKNOWN) != 0 {
                continue;
            }
            let needle = vocab.texts[id as usize].as_bytes();
            let mut next = Vec::with_capacity(frags.len() + 2);
            for &frag in &frags {
                let Fragment::Text { mut start, end } = frag else {
                    next.push(frag);
                    continue;
                };
                while start < end {
                    let Some(at) =
                        memchr::memmem::find(&bytes[start..end], needle).map(|p| start + p)
                    else {
                        next.push(Fragment::Text { start, end });
                        break;
                    };
                    let mut left_end = at;
                    if a & attr::LSTRIP != 0 {
                        while left_end > start && is_c_space(bytes[left_end - 1]) {
                            left_end -= 1;
                        }
                    }
                    if left_end > start {
                        next.push(Fragment::Text {
                            start,
                            end: left_end,
                        });
                    }
                    next.push(Fragment::Token(id));
                    start = at + needle.len();
                    if a & attr::RSTRIP != 0 {
                        while start < end && is_c_space(bytes[start]) {
                            start += 1;
                        }
                    }
                }
            }
            frags = next;
        }
        frags
    }
}

/// C's `isspace` in the "C" locale.
fn is_c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0B | 0x0C | b'\r')
}
