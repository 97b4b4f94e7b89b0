//! Byte-level BPE pre-tokenizers: how llama.cpp splits text into words
//! before merging, per `tokenizer.ggml.pre`.
//!
//! llama.cpp applies a list of regexes in turn; each one splits every chunk
//! the previous ones left into matches and the gaps between them. Its three
//! big "system" regexes (GPT-2, Llama-3, Qwen2) are not run as regexes but
//! by hand-written scanners whose edge cases differ slightly from a regex
//! engine (a chunk boundary ends `\s+(?!\S)`, the case-insensitive
//! contractions only fold ASCII, ...). The small ones (`\p{N}`, punctuation
//! runs, `[0-9]{3}`) run through `std::regex` on a text where every non-ASCII
//! code point is collapsed to a byte standing for its class. Both are
//! reproduced here exactly, without a regex engine: the splitters below
//! follow the scanners' rules and the collapsed classes.

use super::unicode::{Class, Flags};

/// One of llama.cpp's split steps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    /// `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)`
    Gpt2,
    /// `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
    Llama3,
    /// As `Llama3` with `\p{N}` (single digits) in place of `\p{N}{1,3}`.
    Qwen2,
    /// `\p{N}`: every number on its own.
    EachNumber,
    /// `\p{N}+`
    NumberRuns,
    /// `[\p{P}\$\+<=>\^~\|]+` (`backtick`: with "`" added, as falcon has it).
    PunctRuns { backtick: bool },
    /// `[0-9][0-9][0-9]`
    AsciiDigitTriples,
    /// o200k's regex ([`super::gpt4o`]).
    Gpt4o,
}

/// A supported `tokenizer.ggml.pre` family and the vocab flags llama.cpp
/// sets with it.
struct Family {
    names: &'static [&'static str],
    steps: &'static [Step],
    ignore_merges: bool,
    clean_spaces: bool,
    /// Overrides the BPE default of no BOS (llama3, tekken, chameleon).
    add_bos: bool,
}

use Step::*;

const FAMILIES: &[Family] = &[
    Family {
        names: &["default"],
        steps: &[
            PunctRuns { backtick: false },
            Gpt2,
            NumberRuns,
            AsciiDigitTriples,
        ],
        ignore_merges: false,
        clean_spaces: true,
        add_bos: false,
    },
    Family {
        names: &[
            "llama3",
            "llama-v3",
            "llama-bpe",
            "falcon3",
            "falcon-h1",
            "pixtral",
            "midm-2.0",
            "lfm2",
            "jina-v5-nano",
        ],
        steps: &[Llama3],
        ignore_merges: true,
        clean_spaces: true,
        add_bos: true,
    },
    Family {
        names: &["dbrx", "smaug-bpe"],
        steps: &[Llama3],
        ignore_merges: false,
        clean_spaces: true,
        add_bos: false,
    },
    Family {
        names: &[
            "gpt-2",
            "phi-2",
            "jina-es",
            "jina-de",
            "gigachat",
            "jina-v2-es",
            "jina-v2-de",
            "a.x-4.0",
            "mellum",
            "modern-bert",
            "exaone4",
            "mpt",
            "olmo",
            "jais",
        ],
        steps: &[Gpt2],
        ignore_merges: false,
        clean_spaces: true,
        add_bos: false,
    },
    Family {
        names: &["trillion", "granite-docling"],
        steps: &[Gpt2],
        ignore_merges: false,
        clean_spaces: false,
        add_bos: false,
    },
    Family {
        names: &[
            "starcoder",
            "refact",
            "codeshell",
            "exaone",
            "minerva-7b",
            "mellum2",
        ],
        steps: &[EachNumber, Gpt2],
        ignore_merges: false,
        clean_spaces: true,
        add_bos: false,
    },
    Family {
        names: &["smollm", "command-r"],
        steps: &[EachNumber, Gpt2],
        ignore_merges: false,
        clean_spaces: false,
        add_bos: false,
    },
    Family {
        names: &[
            "qwen2",
            "deepseek-r1-qwen",
            "kormo",
            "f2llmv2",
            "hunyuan",
            "solar-open",
            "grok-2",
        ],
        steps: &[Qwen2],
        ignore_merges: false,
        clean_spaces: false,
        add_bos: false,
    },
    Family {
        names: &["stablelm2", "megrez"],
        steps: &[Qwen2],
        ignore_merges: false,
        clean_spaces: true,
        add_bos: false,
    },
    Family {
        names: &["gpt-4o", "llama4", "kanana2", "talkie"],
        steps: &[Gpt4o],
        ignore_merges: false,
        clean_spaces: false,
        add_bos: false,
    },
    Family {
        names: &["falcon"],
        steps: &[PunctRuns { backtick: true }, Gpt2, AsciiDigitTriples],
        ignore_merges: false,
        clean_spaces: true,
        add_bos: false,
    },
];

/// The pre-tokenizer for one `tokenizer.ggml.pre` value.
#[derive(Clone, Debug)]
pub(crate) struct PreTokenizer {
    steps: &'static [Step],
    pub ignore_merges: bool,
    pub clean_spaces: bool,
    pub add_bos: bool,
}

impl PreTokenizer {
    /// `None` for a name this engine does not support.
    pub fn by_name(name: &str) -> Option<PreTokenizer> {
        FAMILIES
            .iter()
            .find(|f| f.names.contains(&name))
            .map(|f| PreTokenizer {
                steps: f.steps,
                ignore_merges: f.ignore_merges,
                clean_spaces: f.clean_spaces,
                add_bos: f.add_bos,
            })
    }

    /// Every supported name, for error messages.
    pub fn supported_names() -> Vec<&'static str> {
        FAMILIES
            .iter()
            .flat_map(|f| f.names.iter().copied())
            .collect()
    }

    /// Splits `text` into words, as slices of it, in order and covering it.
    pub fn split<'t>(&self, text: &'t str) -> Vec<&'t str> {
        let chars: Vec<char> = text.chars().collect();
        // Chunk lengths in chars; each step refines the previous partition.
        let mut chunks = vec![chars.len()];
        for &step in self.steps {
            let mut next = Vec::with_capacity(chunks.len() * 2);
            let mut start = 0;
            for &len in &chunks {
                let chunk = &chars[start..start + len];
                let before = next.len();
                split_chunk(step, chunk, &mut next);
                debug_assert_eq!(next[before..].iter().sum::<usize>(), len);
                start += len;
            }
            chunks = next;
        }
        let mut words = Vec::with_capacity(chunks.len());
        let mut byte = 0;
        let mut char_pos = 0;
        for len in chunks {
            let n: usize = chars[char_pos..char_pos + len]
                .iter()
                .map(|c| c.len_utf8())
                .sum();
            words.push(&text[byte..byte + n]);
            byte += n;
            char_pos += len;
        }
        words
    }
}

fn split_chunk(step: Step, chunk: &[char], out: &mut Vec<usize>) {
    if chunk.is_empty() {
        return;
    }
    match step {
        Gpt2 => Scanner::new(chunk, out).gpt2(),
        Llama3 => Scanner::new(chunk, out).llama3(false),
        Qwen2 => Scanner::new(chunk, out).llama3(true),
        EachNumber => split_by_class(chunk, out, is_collapsed_number, false),
        NumberRuns => split_by_class(chunk, out, is_collapsed_number, true),
        PunctRuns { backtick } => {
            let class = if backtick {
                is_collapsed_punct_falcon
            } else {
                is_collapsed_punct_default
            };
            split_by_class(chunk, out, class, true)
        }
        AsciiDigitTriples => split_ascii_digit_triples(chunk, out),
        Gpt4o => super::gpt4o::split(chunk, out),
    }
}

/// `\p{N}` in llama.cpp's collapsed regex: ASCII digits, or a non-ASCII,
/// non-space code point of class Number.
fn is_collapsed_number(c: char) -> bool {
    if c.is_ascii() {
        c.is_ascii_digit()
    } else {
        let f = Flags::of(c);
        !f.whitespace && f.is_number()
    }
}

/// `[\p{P}\$\+<=>\^~\|]`: llama.cpp's ASCII `\p{P}` set plus the listed
/// symbols is every ASCII punctuation or symbol except the backtick.
fn is_collapsed_punct_default(c: char) -> bool {
    if c.is_ascii() {
        c.is_ascii_punctuation() && c != '`'
    } else {
        is_non_ascii_punct(c)
    }
}

/// Falcon's ``[\p{P}\$\+<=>\^~\|`]``: every ASCII punctuation or symbol.
fn is_collapsed_punct_falcon(c: char) -> bool {
    if c.is_ascii() {
        c.is_ascii_punctuation()
    } else {
        is_non_ascii_punct(c)
    }
}

fn is_non_ascii_punct(c: char) -> bool {
    let f = Flags::of(c);
    !f.whitespace && f.class == Some(Class::Punctuation)
}

/// A regex of one character class, matched leftmost: each char of the class
/// (`runs` false) or each maximal run (`runs` true) is a match; the text
/// between matches is kept as chunks of its own.
fn split_by_class(chunk: &[char], out: &mut Vec<usize>, class: fn(char) -> bool, runs: bool) {
    let mut gap = 0;
    let mut i = 0;
    while i < chunk.len() {
        if !class(chunk[i]) {
            gap += 1;
            i += 1;
            continue;
        }
        if gap > 0 {
            out.push(gap);
            gap = 0;
        }
        let start = i;
        i += 1;
        if runs {
            while i < chunk.len() && class(chunk[i]) {
                i += 1;
            }
        }
        out.push(i - start);
    }
    if gap > 0 {
        out.push(gap);
    }
}

fn split_ascii_digit_triples(chunk: &[char], out: &mut Vec<usize>) {
    let mut gap = 0;
    let mut i = 0;
    while i < chunk.len() {
        if i + 3 <= chunk.len() && chunk[i..i + 3].iter().all(|c| c.is_ascii_digit()) {
            if gap > 0 {
                out.push(gap);
                gap = 0;
            }
            out.push(3);
            i += 3;
        } else {
            gap += 1;
            i += 1;
        }
    }
    if gap > 0 {
        out.push(gap);
    }
}

/// The state of one of llama.cpp's hand-written scanners over one chunk.
/// Positions outside the chunk read as `None` / `Flags::NONE`.
struct Scanner<'c, 'o> {
    chunk: &'c [char],
    out: &'o mut Vec<usize>,
    prev_end: usize,
}

impl<'c, 'o> Scanner<'c, 'o> {
    fn new(chunk: &'c [char], out: &'o mut Vec<usize>) -> Self {
        Scanner {
            chunk,
            out,
            prev_end: 0,
        }
    }

    fn cpt(&self, pos: usize) -> Option<char> {
        self.chunk.get(pos).copied()
    }

    fn flags(&self, pos: usize) -> Flags {
        self.cpt(pos).map_or(Flags::NONE, Flags::of)
    }

    /// Ends the current word at `end`; returns its length (0: no word).
    fn word_to(&mut self, end: usize) -> usize {
        let len = end - self.prev_end;
        if len > 0 {
            self.out.push(len);
        }
        self.prev_end = end;
        len
    }

    /// Length of the contraction (`'s`, `'re`, ...) starting at `pos`, or 0.
    /// The Llama-3 family matches it case-insensitively; only ASCII letters
    /// fold to these (llama.cpp lowercases with its Unicode table, but no
    /// non-ASCII letter lowercases to s, t, m, d, r, e, v or l).
    fn contraction(&self, pos: usize, fold_case: bool) -> usize {
        let end = self.chunk.len();
        if self.cpt(pos) != Some('\'') || pos + 1 >= end {
            return 0;
        }
        let fold = |c: Option<char>| c.map(|c| if fold_case { c.to_ascii_lowercase() } else { c });
        let next = fold(self.cpt(pos + 1));
        if matches!(next, Some('s' | 't' | 'm' | 'd')) {
            return 2;
        }
        if pos + 2 < end {
            let next2 = fold(self.cpt(pos + 2));
            if matches!(
                (next, next2),
                (Some('r'), Some('e')) | (Some('v'), Some('e')) | (Some('l'), Some('l'))
            ) {
                return 3;
            }
        }
        0
    }

    /// Counts the white space starting at `pos`.
    fn whitespace_run(&self, pos: usize) -> usize {
        let mut n = 0;
        while self.flags(pos + n).whitespace {
            n += 1;
        }
        n
    }

    fn gpt2(mut self) {
        let end = self.chunk.len();
        let mut pos = 0;
        while pos < end {
            let c = self.cpt(pos);
            let flags = self.flags(pos);

            let n = self.contraction(pos, false);
            if n > 0 {
                pos += self.word_to(pos + n);
                continue;
            }

            // ` ?\p{L}+`, ` ?\p{N}+`, ` ?[^\s\p{L}\p{N}]+`: an optional space
            // joins the run that follows it.
            let space = c == Some(' ');
            let first = if space { self.flags(pos + 1) } else { flags };
            let same_run: Option<fn(Flags) -> bool> = if first.is_letter() {
                Some(Flags::is_letter)
            } else if first.is_number() {
                Some(Flags::is_number)
            } else if !(first.whitespace || first.is_letter() || first.is_number())
                && first.in_range()
            {
                Some(|f: Flags| !(f.whitespace || f.is_letter() || f.is_number()) && f.in_range())
            } else {
                None
            };
            if let Some(same_run) = same_run {
                pos += usize::from(space);
                while same_run(self.flags(pos)) {
                    pos += 1;
                }
                self.word_to(pos);
                continue;
            }

            let n_ws = self.whitespace_run(pos);
            // `\s+(?!\S)`: leave the last space to the word after it, unless
            // the chunk ends there.
            if n_ws > 1 && self.cpt(pos + n_ws).is_some() {
                pos += n_ws - 1;
                self.word_to(pos);
                continue;
            }
            if n_ws > 0 {
                pos += n_ws;
                self.word_to(pos);
                continue;
            }
            pos += 1;
            self.word_to(pos);
        }
    }

    /// The Llama-3 scanner; `single_digits` makes it Qwen2's.
    fn llama3(mut self, single_digits: bool) {
        let end = self.chunk.len();
        let mut pos = 0;
        while pos < end {
            let c = self.cpt(pos);
            let flags = self.flags(pos);

            let n = self.contraction(pos, true);
            if n > 0 {
                pos += self.word_to(pos + n);
                continue;
            }

            // `[^\r\n\p{L}\p{N}]?\p{L}+`
            if !(matches!(c, Some('\r' | '\n')) || flags.is_number())
                && (flags.is_letter() || self.flags(pos + 1).is_letter())
            {
                pos += 1;
                while self.flags(pos).is_letter() {
                    pos += 1;
                }
                self.word_to(pos);
                continue;
            }

            // `\p{N}{1,3}` (Qwen2: `\p{N}`)
            if flags.is_number() {
                if single_digits {
                    pos += 1;
                } else {
                    let mut ini = pos;
                    while self.flags(pos).is_number() {
                        pos += 1;
                        if pos - ini >= 3 {
                            self.word_to(pos);
                            ini = pos;
                        }
                    }
                }
                self.word_to(pos);
                continue;
            }

            // ` ?[^\s\p{L}\p{N}]+[\r\n]*`. llama.cpp tests the first char's
            // own flags for being in range here, not the char after a space.
            let other = |f: Flags| !(f.whitespace || f.is_letter() || f.is_number());
            let first = if c == Some(' ') {
                self.flags(pos + 1)
            } else {
                flags
            };
            if other(first) && flags.in_range() {
                pos += usize::from(c == Some(' '));
                while other(self.flags(pos)) && self.flags(pos).in_range() {
                    pos += 1;
                }
                while matches!(self.cpt(pos), Some('\r' | '\n')) {
                    pos += 1;
                }
                self.word_to(pos);
                continue;
            }

            let mut n_ws = 0;
            let mut end_of_newlines = None;
            while self.flags(pos + n_ws).whitespace {
                if matches!(self.cpt(pos + n_ws), Some('\r' | '\n')) {
                    end_of_newlines = Some(pos + n_ws + 1);
                }
                n_ws += 1;
            }
            // `\s*[\r\n]+`
            if let Some(e) = end_of_newlines {
                pos = e;
                self.word_to(pos);
                continue;
            }
            // `\s+(?!\S)`
            if n_ws > 1 && self.cpt(pos + n_ws).is_some() {
                pos += n_ws - 1;
                self.word_to(pos);
                continue;
            }
            // `\s+`
            if n_ws > 0 {
                pos += n_ws;
                self.word_to(pos);
                continue;
            }
            pos += 1;
            self.word_to(pos);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(pre: &str, text: &str) -> Vec<String> {
        PreTokenizer::by_name(pre)
            .unwrap()
            .split(text)
            .into_iter()
            .map(String::from)
            .collect()
    }

    #[test]
    fn gpt2_words() {
        assert_eq!(
            split("gpt-2", "Hello  world's 123!!"),
            ["Hello", " ", " world", "'s", " 123", "!!"]
        );
        assert_eq!(split("gpt-2", "a   "), ["a", "   "]);
        assert_eq!(split("gpt-2", "a \n b"), ["a", " \n", " b"]);
    }

    #[test]
    fn smollm_splits_each_digit_first() {
        assert_eq!(
            split("smollm", "x 1234 y"),
            ["x", " ", "1", "2", "3", "4", " y"]
        );
        // The digit split cuts the chunk, so the space before a digit stands alone.
        assert_eq!(split("smollm", "3.14"), ["3", ".", "1", "4"]);
    }

    #[test]
    fn llama3_words() {
        assert_eq!(
            split("llama3", "I'M 12345 ok\n\n  x"),
            ["I", "'M", " ", "123", "45", " ok", "\n\n", " ", " x"]
        );
        assert_eq!(split("llama3", "  ...\r\nfoo"), [" ", " ...\r\n", "foo"]);
    }

    #[test]
    fn qwen2_single_digits() {
        assert_eq!(split("qwen2", "ab 123"), ["ab", " ", "1", "2", "3"]);
    }

    #[test]
    fn default_splits_punctuation_and_triples() {
        assert_eq!(
            split("default", "a,b 12345"),
            ["a", ",", "b", " ", "123", "45"]
        );
    }

    #[test]
    fn unknown_names() {
        assert!(PreTokenizer::by_name("no-such-pre").is_none());
        assert!(PreTokenizer::supported_names().contains(&"smollm"));
    }
}
