//! Code point classes as llama.cpp's pre-tokenizers see them: the UCD
//! general category folded into eight classes (Unicode 15.1, the version
//! llama.cpp's tables were built from), plus the `White_Space` property.

use super::unicode_table::RANGES;

/// A general-category class (`\p{N}`, `\p{L}`, ...). Private use and
/// surrogates count as `Control`, unassigned code points as `Undefined`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Class {
    Undefined,
    Number,
    Letter,
    Separator,
    Mark,
    Punctuation,
    Symbol,
    Control,
}

/// What the splitters ask of one position: its class and whether it is
/// white space. `Flags::NONE` stands for "outside the current chunk", which
/// matches nothing (llama.cpp's all-zero flags).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Flags {
    pub class: Option<Class>,
    pub whitespace: bool,
}

impl Flags {
    pub const NONE: Flags = Flags {
        class: None,
        whitespace: false,
    };

    pub fn of(c: char) -> Flags {
        Flags {
            class: Some(class_of(c)),
            whitespace: is_whitespace(c),
        }
    }

    pub fn is_letter(self) -> bool {
        self.class == Some(Class::Letter)
    }

    pub fn is_number(self) -> bool {
        self.class == Some(Class::Number)
    }

    /// True for every position inside the chunk (llama.cpp: `as_uint() != 0`).
    pub fn in_range(self) -> bool {
        self.class.is_some()
    }
}

pub(super) fn class_of(c: char) -> Class {
    let cp = c as u32;
    // The last range whose start is <= cp; RANGES[0] starts at 0.
    let i = RANGES.partition_point(|&(start, _)| start <= cp);
    RANGES[i - 1].1
}

/// The Unicode `White_Space` property (PropList.txt), which is what
/// llama.cpp's `\s` means in its hand-written splitters.
pub(super) fn is_whitespace(c: char) -> bool {
    matches!(
        c as u32,
        0x09..=0x0D | 0x20 | 0x85 | 0xA0 | 0x1680 | 0x2000..=0x200A | 0x2028 | 0x2029 | 0x202F | 0x205F | 0x3000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_of_known_code_points() {
        assert_eq!(class_of('a'), Class::Letter);
        assert_eq!(class_of('7'), Class::Number);
        assert_eq!(class_of('²'), Class::Number); // No
        assert_eq!(class_of('Ⅻ'), Class::Number); // Nl
        assert_eq!(class_of(' '), Class::Separator);
        assert_eq!(class_of('\n'), Class::Control);
        assert_eq!(class_of('$'), Class::Symbol);
        assert_eq!(class_of('!'), Class::Punctuation);
        assert_eq!(class_of('\u{0301}'), Class::Mark);
        assert_eq!(class_of('日'), Class::Letter);
        assert_eq!(class_of('\u{E000}'), Class::Control); // private use
        assert_eq!(class_of('\u{0378}'), Class::Undefined);
        // Added in Unicode 15.1 (CJK Extension I), absent from older tables.
        assert_eq!(class_of('\u{2EBF0}'), Class::Letter);
        assert_eq!(class_of('\u{10FFFF}'), Class::Undefined);
        assert!(is_whitespace('\u{3000}') && is_whitespace('\t') && !is_whitespace('\u{200B}'));
    }
}
