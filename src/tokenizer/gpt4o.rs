//! The o200k (`tokenizer.ggml.pre = gpt-4o`: gpt-oss, GPT-4o, Llama 4)
//! pre-tokenizer, as llama.cpp runs it: its regex
//!
//! ```text
//! [^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))*((?=[\p{L}])([^A-Z]))+(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?
//! |[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))+((?=[\p{L}])([^A-Z]))*(?:'[sS]|…|'[dD])?
//! |\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+
//! ```
//!
//! through `std::regex` (ECMAScript: leftmost match, alternatives in
//! order, greedy quantifiers that back off) over the collapsed text, where
//! each non-ASCII code point stands for its class: a letter is then both
//! "not a-z" and "not A-Z", i.e. upper- and lowercase at once, and
//! non-ASCII white space is `\v`. Every code point matches one of the
//! alternatives, so the matches tile the chunk.

use super::unicode::{Class, Flags};

/// One code point as the collapsed regex sees it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Cp {
    /// An ASCII code point, itself.
    Ascii(u8),
    /// Non-ASCII white space (collapsed to `\v`).
    Space,
    /// A non-ASCII letter (`\p{L}`, upper and lower at once).
    Letter,
    /// A non-ASCII number (`\p{N}`).
    Number,
    /// Any other non-ASCII code point (marks, punctuation, symbols, ...).
    Other,
}

impl Cp {
    fn of(c: char) -> Cp {
        if c.is_ascii() {
            return Cp::Ascii(c as u8);
        }
        let f = Flags::of(c);
        if f.whitespace {
            Cp::Space
        } else {
            match f.class {
                Some(Class::Letter) => Cp::Letter,
                Some(Class::Number) => Cp::Number,
                _ => Cp::Other,
            }
        }
    }

    fn is_letter(self) -> bool {
        matches!(self, Cp::Letter) || matches!(self, Cp::Ascii(b) if b.is_ascii_alphabetic())
    }

    fn is_number(self) -> bool {
        matches!(self, Cp::Number) || matches!(self, Cp::Ascii(b) if b.is_ascii_digit())
    }

    /// ECMAScript `\s` on a byte: space, \t, \n, \v, \f, \r.
    fn is_space(self) -> bool {
        matches!(self, Cp::Space) || matches!(self, Cp::Ascii(b' ' | b'\t' | b'\n' | 0x0B | 0x0C | b'\r'))
    }

    fn is_crlf(self) -> bool {
        matches!(self, Cp::Ascii(b'\r' | b'\n'))
    }

    /// `(?=[\p{L}])([^a-z])`: a letter other than ASCII lowercase.
    fn is_upper(self) -> bool {
        self.is_letter() && !matches!(self, Cp::Ascii(b) if b.is_ascii_lowercase())
    }

    /// `(?=[\p{L}])([^A-Z])`: a letter other than ASCII uppercase.
    fn is_lower(self) -> bool {
        self.is_letter() && !matches!(self, Cp::Ascii(b) if b.is_ascii_uppercase())
    }

    /// `[^\r\n\p{L}\p{N}]`: the optional character before a word.
    fn is_word_prefix(self) -> bool {
        !self.is_crlf() && !self.is_letter() && !self.is_number()
    }
}

/// Splits one chunk into the regex's matches; pushes each length.
pub(super) fn split(chunk: &[char], out: &mut Vec<usize>) {
    let cps: Vec<Cp> = chunk.iter().map(|&c| Cp::of(c)).collect();
    let mut pos = 0;
    while pos < cps.len() {
        let len = match_at(&cps, pos);
        debug_assert!(len > 0, "every code point matches an alternative");
        let len = len.max(1);
        out.push(len);
        pos += len;
    }
}

/// The length of the regex's match at `pos` (alternatives in order).
fn match_at(c: &[Cp], pos: usize) -> usize {
    let run = |from: usize, f: fn(Cp) -> bool| c[from.min(c.len())..].iter().take_while(|&&x| f(x)).count();
    let at = |i: usize| c.get(i).copied();
    // Alternatives 1 and 2: a word, with the optional prefix tried first.
    for upper_first in [false, true] {
        for prefix in [true, false] {
            let mut p = pos;
            if prefix {
                match at(p) {
                    Some(x) if x.is_word_prefix() => p += 1,
                    _ => continue,
                }
            }
            let uppers = run(p, Cp::is_upper);
            let end = if !upper_first {
                // U* then L+: U* backs off to the last point where an L follows.
                let Some(j) = (0..=uppers).rev().find(|&j| at(p + j).is_some_and(Cp::is_lower)) else {
                    continue;
                };
                let q = p + j;
                q + run(q, Cp::is_lower)
            } else {
                // U+ then L*.
                if uppers == 0 {
                    continue;
                }
                let q = p + uppers;
                q + run(q, Cp::is_lower)
            };
            return end + contraction(c, end) - pos;
        }
    }
    // \p{N}{1,3}
    let n = run(pos, Cp::is_number).min(3);
    if n > 0 {
        return n;
    }
    // ` ?[^\s\p{L}\p{N}]+[\r\n/]*`
    let other = |x: Cp| !x.is_space() && !x.is_letter() && !x.is_number();
    for space in [true, false] {
        let mut p = pos;
        if space {
            if at(p) != Some(Cp::Ascii(b' ')) {
                continue;
            }
            p += 1;
        }
        let k = run(p, other);
        if k > 0 {
            let q = p + k;
            return q + run(q, |x| matches!(x, Cp::Ascii(b'\r' | b'\n' | b'/'))) - pos;
        }
    }
    let w = run(pos, Cp::is_space);
    // `\s*[\r\n]+`: up to the last CR or LF of the white space.
    if let Some(last) = (pos..pos + w).rev().find(|&i| c[i].is_crlf()) {
        return last + 1 - pos;
    }
    // `\s+(?!\S)`, then `\s+`.
    if pos + w == c.len() || w >= 2 {
        return if pos + w == c.len() { w } else { w - 1 };
    }
    w
}

/// `(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?` at `i`.
fn contraction(c: &[Cp], i: usize) -> usize {
    let lower = |k: usize| match c.get(i + k) {
        Some(Cp::Ascii(b)) => Some(b.to_ascii_lowercase()),
        _ => None,
    };
    if c.get(i) != Some(&Cp::Ascii(b'\'')) {
        return 0;
    }
    match (lower(1), lower(2)) {
        (Some(b's' | b't' | b'm' | b'd'), _) => 2,
        (Some(b'r'), Some(b'e')) | (Some(b'v'), Some(b'e')) | (Some(b'l'), Some(b'l')) => 3,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<String> {
        let chars: Vec<char> = text.chars().collect();
        let mut lens = Vec::new();
        split(&chars, &mut lens);
        let mut at = 0;
        lens.iter()
            .map(|&n| {
                let w: String = chars[at..at + n].iter().collect();
                at += n;
                w
            })
            .collect()
    }

    #[test]
    fn splits_as_the_o200k_regex() {
        // Case changes split words; a capitalised word keeps its capital;
        // contractions stay on; digits go in threes; punctuation keeps a
        // leading space and trailing newlines or slashes.
        assert_eq!(words("Hello WORLD don't HTTPServer 12345!!\n\n  x"), ["Hello", " WORLD", " don't", " HTTPServer", " ", "123", "45", "!!\n\n", " ", " x"]);
        assert_eq!(words("camelCase iPhone"), ["camel", "Case", " i", "Phone"]);
        assert_eq!(words("été ÉTÉ Straße"), ["été", " ÉTÉ", " Straße"]);
        assert_eq!(words("a/b\r\n c  \n"), ["a", "/b", "\r\n", " c", "  \n"]);
        assert_eq!(words("x  "), ["x", "  "]);
        assert_eq!(words("(ok) I'M"), ["(ok", ")", " I'M"]);
    }
}
