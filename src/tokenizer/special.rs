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
//! llama.cpp tries every special token on every fragment, which costs the
//! number of special tokens times the text. Here the same result comes from
//! one candidate per text position instead: the longest special token
//! starting there ([`LongestMatch`]). Candidates are taken in llama.cpp's
//! order (token priority, then position). A candidate is placed if its
//! position is still raw text and the token fits in that raw fragment: a
//! token that does not fit now never will, fragments only shrink, so the
//! position's next candidate is the longest shorter token that is a prefix
//! of it and fits. A token that does fit is exactly the occurrence
//! llama.cpp's left-to-right search of that fragment would reach, since an
//! earlier occurrence overlapping it would have made its position no longer
//! raw.
//!
//! Cost: one pass over the text, then a heap of at most one candidate per
//! position, each replaced by a shorter one only when it no longer fits.
//! Building the matcher is linear in the special tokens' bytes, however
//! many or long they are.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

use super::longest_match::LongestMatch;
use super::vocab::{attr, Vocab};

/// A piece of the input: raw text (a byte range of it) or a special token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fragment {
    Text { start: usize, end: usize },
    Token(u32),
}

/// No special token.
const NONE: u32 = u32::MAX;

pub(crate) struct SpecialMatcher {
    /// Special ids, longest text first (ties by id, which llama.cpp leaves
    /// to its unstable sort). A token's index here is its priority.
    ids: Vec<u32>,
    /// Over the texts of `ids`, pattern `i` being `ids[i]`.
    finder: LongestMatch,
    /// Per priority: split out only when special tokens are parsed (control
    /// and unknown tokens), rather than always (user-defined ones).
    parsed_only: Vec<bool>,
    /// Per priority: the longest shorter user-defined token that is a prefix
    /// of it, the next candidate when special tokens are not parsed.
    shorter_user_defined: Vec<u32>,
}

impl SpecialMatcher {
    /// Takes the special tokens and their control / user-defined kind from
    /// `vocab` as it is now; the strip flags are read when partitioning.
    pub fn new(vocab: &Vocab) -> Result<SpecialMatcher, String> {
        let mut ids: Vec<u32> = (0..vocab.len() as u32)
            .filter(|&id| vocab.has(id, attr::CONTROL | attr::USER_DEFINED | attr::UNKNOWN))
            .collect();
        ids.sort_by_key(|&id| Reverse(vocab.texts[id as usize].len()));
        let patterns: Vec<&[u8]> = ids
            .iter()
            .map(|&id| vocab.texts[id as usize].as_bytes())
            .collect();
        let finder = LongestMatch::new(&patterns)
            .map_err(|e| format!("cannot index the special tokens: {e}"))?;
        let parsed_only: Vec<bool> = ids
            .iter()
            .map(|&id| vocab.has(id, attr::CONTROL | attr::UNKNOWN))
            .collect();
        // Shorter tokens come later, so each one's link is ready first.
        let mut shorter_user_defined = vec![NONE; ids.len()];
        for p in (0..ids.len()).rev() {
            shorter_user_defined[p] = match finder.shorter(p as u32) {
                None => NONE,
                Some(q) if !parsed_only[q as usize] => q,
                Some(q) => shorter_user_defined[q as usize],
            };
        }
        Ok(SpecialMatcher {
            ids,
            finder,
            parsed_only,
            shorter_user_defined,
        })
    }

    /// All special ids, longest first.
    pub fn ids(&self) -> &[u32] {
        &self.ids
    }

    pub fn partition(&self, vocab: &Vocab, text: &str, parse_special: bool) -> Vec<Fragment> {
        if text.is_empty() {
            return Vec::new();
        }
        let bytes = text.as_bytes();
        // The next candidate at a position, after `p`.
        let shorter = |p: u32| match parse_special {
            true => self.finder.shorter(p),
            false => Some(self.shorter_user_defined[p as usize]).filter(|&q| q != NONE),
        };
        let mut candidates = Vec::new();
        self.finder.for_each_longest(bytes, |start, p| {
            let usable = parse_special || !self.parsed_only[p as usize];
            if let Some(p) = if usable { Some(p) } else { shorter(p) } {
                candidates.push(Reverse((p, start)));
            }
        });
        if candidates.is_empty() {
            return vec![Fragment::Text {
                start: 0,
                end: text.len(),
            }];
        }
        let mut candidates = BinaryHeap::from(candidates);
        // Raw fragments, start → end.
        let mut raw = BTreeMap::from([(0, text.len())]);
        let mut placed: Vec<(usize, u32)> = Vec::new();
        while let Some(Reverse((p, start))) = candidates.pop() {
            let Some((&frag_start, &frag_end)) = raw.range(..=start).next_back() else {
                continue;
            };
            if start >= frag_end {
                continue; // no longer raw text
            }
            let fits =
                |p: u32| start + vocab.texts[self.ids[p as usize] as usize].len() <= frag_end;
            if !fits(p) {
                let mut next = shorter(p);
                while let Some(q) = next.filter(|&q| !fits(q)) {
                    next = shorter(q);
                }
                if let Some(q) = next {
                    candidates.push(Reverse((q, start)));
                }
                continue;
            }
            let id = self.ids[p as usize];
            let a = vocab.attrs[id as usize];
            let mut left_end = start;
            if a & attr::LSTRIP != 0 {
                while left_end > frag_start && is_c_space(bytes[left_end - 1]) {
                    left_end -= 1;
                }
            }
            let mut right_start = start + vocab.texts[id as usize].len();
            if a & attr::RSTRIP != 0 {
                while right_start < frag_end && is_c_space(bytes[right_start]) {
                    right_start += 1;
                }
            }
            raw.remove(&frag_start);
            if left_end > frag_start {
                raw.insert(frag_start, left_end);
            }
            if right_start < frag_end {
                raw.insert(right_start, frag_end);
            }
            placed.push((start, id));
        }
        placed.sort_unstable();
        in_text_order(raw, placed)
    }
}

/// Raw fragments and placed tokens, both ascending, merged by position.
fn in_text_order(raw: BTreeMap<usize, usize>, placed: Vec<(usize, u32)>) -> Vec<Fragment> {
    let mut out = Vec::with_capacity(raw.len() + placed.len());
    let mut raw = raw.into_iter().peekable();
    for (at, id) in placed {
        while let Some((start, end)) = raw.next_if(|&(start, _)| start < at) {
            out.push(Fragment::Text { start, end });
        }
        out.push(Fragment::Token(id));
    }
    out.extend(raw.map(|(start, end)| Fragment::Text { start, end }));
    out
}

/// C's `isspace` in the "C" locale.
fn is_c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0B | 0x0C | b'\r')
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::gguf::{Array, Metadata};

    /// llama.cpp's `tokenizer_st_partition`, literally: every special token,
    /// longest first, searched left to right in every raw fragment.
    fn reference(m: &SpecialMatcher, vocab: &Vocab, text: &str, parse_special: bool) -> Vec<Fragment> {
        let bytes = text.as_bytes();
        let mut frags = vec![Fragment::Text { start: 0, end: text.len() }];
        for &id in m.ids() {
            let a = vocab.attrs[id as usize];
            if !parse_special && a & (attr::CONTROL | attr::UNKNOWN) != 0 {
                continue;
            }
            let needle = vocab.texts[id as usize].as_bytes();
            let mut next = Vec::new();
            for &frag in &frags {
                let Fragment::Text { mut start, end } = frag else {
                    next.push(frag);
                    continue;
                };
                while start < end {
                    let found = bytes[start..end].windows(needle.len()).position(|w| w == needle);
                    let Some(at) = found.map(|p| start + p) else {
                        next.push(Fragment::Text { start, end });
                        break;
                    };
                    let mut left_end = at;
                    while a & attr::LSTRIP != 0 && left_end > start && is_c_space(bytes[left_end - 1]) {
                        left_end -= 1;
                    }
                    if left_end > start {
                        next.push(Fragment::Text { start, end: left_end });
                    }
                    next.push(Fragment::Token(id));
                    start = at + needle.len();
                    while a & attr::RSTRIP != 0 && start < end && is_c_space(bytes[start]) {
                        start += 1;
                    }
                }
            }
            frags = next;
        }
        if text.is_empty() {
            frags.clear();
        }
        frags
    }

    /// A vocab of `tokens` with GGUF token types.
    fn vocab(tokens: &[(String, i32)]) -> Vocab {
        let mut md = Metadata::new(Path::new("test.gguf"));
        let strings = Array::from_strings(tokens.iter().map(|t| t.0.as_str()));
        let types = Array::from(tokens.iter().map(|t| t.1).collect::<Vec<i32>>());
        md.map.insert("tokenizer.ggml.tokens".into(), strings.into());
        md.map.insert("tokenizer.ggml.token_type".into(), types.into());
        Vocab::load(&md).expect("vocab loads")
    }

    /// Random special tokens over a three-letter alphabet (so they overlap
    /// and nest), random kinds and strip flags, random texts: the same
    /// fragments as llama.cpp's loop.
    #[test]
    fn same_fragments_as_llama_cpp() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut rand = |n: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % n
        };
        let word = |rand: &mut dyn FnMut(u64) -> u64, len: u64| -> String {
            (0..len).map(|_| ['a', 'b', ' '][rand(3) as usize]).collect()
        };
        for round in 0..300 {
            let mut tokens: Vec<(String, i32)> = vec![("x".into(), 1)];
            for _ in 0..1 + rand(12) {
                let len = 1 + rand(if round % 2 == 0 { 3 } else { 6 });
                let t = word(&mut rand, len);
                if !tokens.iter().any(|(u, _)| *u == t) {
                    tokens.push((t, [1, 2, 3, 4][rand(4) as usize]));
                }
            }
            let mut v = vocab(&tokens);
            for a in &mut v.attrs {
                *a |= [0, attr::LSTRIP, attr::RSTRIP, attr::LSTRIP | attr::RSTRIP][rand(4) as usize];
            }
            let m = SpecialMatcher::new(&v).unwrap();
            for _ in 0..20 {
                let len = rand(30);
                let text = word(&mut rand, len);
                for parse in [false, true] {
                    assert_eq!(
                        m.partition(&v, &text, parse),
                        reference(&m, &v, &text, parse),
                        "tokens {tokens:?}, text {text:?}, parse_special {parse}"
                    );
                }
            }
        }
    }
}
