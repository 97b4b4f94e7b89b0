//! The bounds a chat template renders within. A template is untrusted input
//! (it comes with the GGUF), so everything it can make grow has a cap,
//! checked before the memory is taken: its source, its tags, the work of a
//! render, the nesting of the values it builds, the texts it makes, and the
//! stack the engine runs on. Real templates stay far below each (the
//! fixtures: under 7 KB of source, 35 tokens per tag, a few thousand units
//! of work per turn, values nested under 10 levels).

use std::fmt;

use minijinja::{Error, ErrorKind};

/// The longest template source accepted (bytes): large templates of real
/// models are under 20 KB.
pub const MAX_TEMPLATE_BYTES: usize = 256 * 1024;

/// The longest line of a template source (characters). minijinja counts
/// columns in 16 bits, and a syntax error past column 65,535 overflowed
/// (a panic where overflow is checked; found by fuzzing).
pub const MAX_LINE_CHARS: usize = u16::MAX as usize - 1;

/// The most tokens one tag (`{{ ... }}`, `{% ... %}`) may have. It bounds
/// the nesting of one expression, and so the recursion of minijinja's
/// parser and compiler (a chain of 50,000 `+` or `not` overflowed the
/// stack), and how much deeper one expression can make a value.
pub const MAX_TAG_TOKENS: usize = 256;

/// The work one render may do, in minijinja's fuel (about one unit per
/// instruction and per 64 bytes created). Without a bound a nested loop
/// renders for hours. Real renders use a few thousand units per turn
/// (SmolLM2's template over 100 turns: ~8k); this bounds a render to
/// ~0.1 s and its strings to ~256 MB.
pub const RENDER_FUEL: u64 = 4_000_000;

/// The deepest nesting of lists and dicts a template may keep in a variable
/// (`{% set %}`, `{% with %}`, a `for` loop's items), or get as input
/// (messages, tools, `--chat-template-kwargs`), and that `tojson` writes.
/// Python prints a deeper value as `...`. It keeps the engine's recursive
/// printing, comparing and freeing of values within the stack.
pub const MAX_VALUE_DEPTH: usize = 256;

/// minijinja's recursion limit (its default is 500): a macro call costs
/// about 5 units, a `loop(...)` of a recursive `for` 1. Each level can
/// nest a value by at most one tag's worth ([`MAX_TAG_TOKENS`]), so this
/// also bounds how deep a value can get between two checks.
pub const RECURSION_LIMIT: usize = 200;

/// The longest text a render may make (bytes): the prompt itself, and any
/// string `tojson`, `join`, `pprint`, `format` or printing a value builds.
/// 16 MiB is 4 million tokens of prompt, more than any context holds.
pub const MAX_TEXT_BYTES: usize = 16 << 20;

/// The widest `tojson(indent=N)` (Python's json.dumps takes any N;
/// templates use 2 or 4).
pub const MAX_JSON_INDENT: usize = 64;

/// The largest width or precision in a format spec (`"{:>N}".format(x)`,
/// `"%Nd" | format(x)`).
pub const MAX_FORMAT_WIDTH: usize = 4096;

/// The stack compiling and rendering run on (a thread of their own, so the
/// caller's stack does not matter). Reserved, not used: only the pages
/// touched are memory.
pub const STACK_BYTES: usize = 64 << 20;

/// A string that refuses to grow past [`MAX_TEXT_BYTES`]. `what` names
/// the text in the error (e.g. "tojson").
pub(crate) struct CappedText {
    text: String,
    what: &'static str,
}

impl CappedText {
    pub(crate) fn new(what: &'static str) -> CappedText {
        CappedText { text: String::new(), what }
    }

    /// Whether `more` bytes still fit.
    pub(crate) fn reserve(&self, more: usize) -> Result<(), Error> {
        match self.text.len().checked_add(more) {
            Some(n) if n <= MAX_TEXT_BYTES => Ok(()),
            _ => Err(too_long(self.what)),
        }
    }

    pub(crate) fn push_str(&mut self, s: &str) -> Result<(), Error> {
        self.reserve(s.len())?;
        self.text.push_str(s);
        Ok(())
    }

    pub(crate) fn push(&mut self, c: char) -> Result<(), Error> {
        self.push_str(c.encode_utf8(&mut [0; 4]))
    }

    /// `n` copies of `c` (checked before any is written).
    pub(crate) fn push_repeated(&mut self, c: char, n: usize) -> Result<(), Error> {
        self.reserve(n.saturating_mul(c.len_utf8()))?;
        self.text.extend(std::iter::repeat_n(c, n));
        Ok(())
    }

    /// A formatted text (`format_args!("{value:#?}")`), cut off with an
    /// error where it would pass the cap: a huge value is never written out
    /// whole.
    pub(crate) fn push_fmt(&mut self, args: fmt::Arguments<'_>) -> Result<(), Error> {
        struct Writer<'a>(&'a mut CappedText, bool);
        impl fmt::Write for Writer<'_> {
            fn write_str(&mut self, s: &str) -> fmt::Result {
                self.0.push_str(s).map_err(|_| {
                    self.1 = true;
                    fmt::Error
                })
            }
        }
        let mut w = Writer(self, false);
        match fmt::write(&mut w, args) {
            Ok(()) => Ok(()),
            Err(_) if w.1 => Err(too_long(self.what)),
            Err(_) => Err(Error::new(ErrorKind::InvalidOperation, format!("{}: a value could not be printed", self.what))),
        }
    }

    pub(crate) fn into_string(self) -> String {
        self.text
    }
}

/// The error for a text over [`MAX_TEXT_BYTES`].
pub(crate) fn too_long(what: &str) -> Error {
    Error::new(ErrorKind::InvalidOperation, format!("{what}: the text would be longer than {} MiB (MAX_TEXT_BYTES)", MAX_TEXT_BYTES >> 20))
}

/// Runs `f` on a thread with [`STACK_BYTES`] of stack, and returns what it
/// returns (a panic there goes on here).
pub(crate) fn on_big_stack<T: Send>(f: impl FnOnce() -> T + Send) -> std::io::Result<T> {
    std::thread::scope(|s| {
        let thread = std::thread::Builder::new().name("chat-template".into()).stack_size(STACK_BYTES).spawn_scoped(s, f)?;
        Ok(thread.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
    })
}
