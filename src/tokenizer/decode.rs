//! Ids back to bytes, as llama.cpp's `token_to_piece` and `detokenize`.

use super::bpe;
use super::vocab::{attr, ModelKind, Vocab};

/// Every token's bytes as `token_to_piece(special = true)` renders them,
/// in one buffer.
pub(crate) struct Pieces {
    bytes: Vec<u8>,
    /// `ends[id]` is where token `id`'s bytes end; they start at `ends[id-1]`.
    ends: Vec<usize>,
}

impl Pieces {
    pub fn new(vocab: &Vocab, kind: ModelKind) -> Pieces {
        let mut bytes = Vec::with_capacity(vocab.texts.iter().map(|t| t.len()).sum());
        let mut ends = Vec::with_capacity(vocab.len());
        for (text, &a) in vocab.texts.iter().zip(&vocab.attrs) {
            if a & (attr::UNKNOWN | attr::CONTROL | attr::USER_DEFINED) != 0 {
                bytes.extend_from_slice(text.as_bytes());
            } else if a & attr::NORMAL != 0 {
                match kind {
                    ModelKind::Spm => {
                        for (i, part) in text.split('\u{2581}').enumerate() {
                            if i > 0 {
                                bytes.push(b' ');
                            }
                            bytes.extend_from_slice(part.as_bytes());
                        }
                    }
                    ModelKind::Bpe => bpe::decode_piece(text, &mut bytes),
                }
            } else if a & attr::BYTE != 0 {
                bytes.push(byte_of_byte_token(text));
            }
            // Unused and undefined tokens render as nothing.
            ends.push(bytes.len());
        }
        Pieces { bytes, ends }
    }

    pub fn get(&self, id: u32) -> &[u8] {
        let i = id as usize;
        match self.ends.get(i) {
            Some(&end) => &self.bytes[if i == 0 { 0 } else { self.ends[i - 1] }..end],
            None => &[],
        }
    }
}

/// `<0xNN>` → NN, read like llama.cpp's `strtol(text.substr(3, 2), 16)`.
fn byte_of_byte_token(text: &str) -> u8 {
    let hex = text.as_bytes().get(3..).unwrap_or_default();
    let mut v = 0u8;
    for &h in hex.iter().take(2) {
        match (h as char).to_digit(16) {
            Some(d) => v = v * 16 + d as u8,
            None => break,
        }
    }
    v
}

/// llama.cpp's `clean_up_tokenization_spaces` passes, in place: drop the
/// space before `? ! . ,`, turn " ' " into "'", and drop the space before
/// `'s 'm 're 've`.
pub(crate) fn clean_spaces(t: &mut Vec<u8>) {
    let n = t.len();
    if n == 0 {
        return;
    }
    // Each pass rewrites the buffer in place, writing at `total` while
    // reading ahead of it, and reads what it has overwritten exactly as
    // llama.cpp's loops do.
    let mut total = 1;
    for i in 1..n {
        let x = t[i];
        if t[i - 1] == b' ' && matches!(x, b'?' | b'!' | b'.' | b',') {
            total -= 1;
        }
        t[total] = x;
        total += 1;
    }

    let n = total;
    total = 1;
    let mut i = 1;
    while i < n {
        let x = t[i];
        if x == b'\'' && i + 1 < n && t[i - 1] == b' ' && t[i + 1] == b' ' {
            total -= 1;
            i += 1;
            t[i] = 0; // the space after is skipped, and not a space any more
        }
        t[total] = x;
        total += 1;
        i += 1;
    }

    let n = total;
    total = 1;
    for i in 1..n {
        let x = t[i];
        if t[i - 1] == b' ' && x == b'\'' && i + 1 < n {
            let x1 = t[i + 1];
            if x1 == b's' || x1 == b'm' {
                total -= 1;
            } else if x1 != b't' && x1 != b'd' && i + 2 < n {
                let x2 = t[i + 2];
                if (x1 == b'r' || x1 == b'v') && x2 == b'e' {
                    total -= 1;
                }
            }
        }
        t[total] = x;
        total += 1;
    }
    t.truncate(total);
}

/// Where `clean_spaces` may cut a byte stream: for `a` ending in three
/// bytes that are not spaces, the last not an apostrophe,
/// `clean(a + b) == clean(a) + clean(b)` for every `b`. (Each pass only
/// drops spaces, and decides a space from at most the three bytes after
/// it; pass two's "not a space any more" mark never crosses such a cut.)
pub(crate) fn clean_cut(t: &[u8]) -> Option<usize> {
    (3..=t.len())
        .rev()
        .find(|&s| t[s - 1] != b'\'' && !t[s - 3..s].contains(&b' '))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clean(s: &str) -> String {
        let mut v = s.as_bytes().to_vec();
        clean_spaces(&mut v);
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn clean_spaces_rules() {
        assert_eq!(clean("Hello , world !"), "Hello, world!");
        assert_eq!(clean("a ' b"), "a'b");
        assert_eq!(
            clean("it 's we 're I 'm you 've they 'll he 'd don 't"),
            "it's we're I'm you've they 'll he 'd don 't"
        );
        assert_eq!(clean(" ?"), "?");
        assert_eq!(clean("a ' ' b"), "a'' b"); // the space after the first "'" is used up
        assert_eq!(clean(""), "");
    }

    #[test]
    fn clean_cut_splits_cleanly() {
        let samples = [
            "x ' ' 're ,a",
            "ab , c 's ' ' d",
            "  ''' 've 'm ? .x",
            "abc ' def 's",
        ];
        for s in samples {
            let whole = clean(s);
            let bytes = s.as_bytes();
            for k in 0..=bytes.len() {
                if let Some(cut) = clean_cut(&bytes[..k]) {
                    let (a, b) = bytes.split_at(cut);
                    let mut a = a.to_vec();
                    let mut b = b.to_vec();
                    clean_spaces(&mut a);
                    clean_spaces(&mut b);
                    a.extend(b);
                    assert_eq!(String::from_utf8(a).unwrap(), whole, "{s:?} cut at {cut}");
                }
            }
        }
    }

    #[test]
    fn byte_token_values() {
        assert_eq!(byte_of_byte_token("<0x0A>"), 10);
        assert_eq!(byte_of_byte_token("<0xFF>"), 255);
        assert_eq!(byte_of_byte_token("<0x"), 0);
    }
}
