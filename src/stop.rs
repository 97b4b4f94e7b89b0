//! Stop strings (`--stop`, llama.cpp's reverse prompt `-r`, llama-server's
//! `"stop"`): generation ends where the text first contains one of them,
//! and the text is cut before it. Streaming text is held back only while
//! its end could still be the start of a stop string, so everything else
//! is printed as soon as it is decoded.

/// Watches streamed text for stop strings.
#[derive(Debug, Clone, Default)]
pub struct StopStrings {
    stops: Vec<String>,
    /// Decoded text not yet released (it may begin a stop string).
    held: String,
    stopped: bool,
}

impl StopStrings {
    /// Empty stop strings are ignored.
    pub fn new(stops: impl IntoIterator<Item = String>) -> StopStrings {
        StopStrings { stops: stops.into_iter().filter(|s| !s.is_empty()).collect(), ..Default::default() }
    }

    pub fn is_empty(&self) -> bool {
        self.stops.is_empty()
    }

    /// Takes the next piece of decoded text; returns the text that is safe
    /// to print. After a stop string was found ([`Self::stopped`]) the
    /// rest is dropped.
    pub fn push(&mut self, text: &str) -> String {
        if self.stopped {
            return String::new();
        }
        self.held.push_str(text);
        if let Some(at) = self.stops.iter().filter_map(|s| self.held.find(s.as_str())).min() {
            self.stopped = true;
            let out = self.held[..at].to_string();
            self.held.clear();
            return out;
        }
        let keep = self.stops.iter().map(|s| partial_suffix(&self.held, s)).max().unwrap_or(0);
        let cut = self.held.len() - keep;
        let out = self.held[..cut].to_string();
        self.held.drain(..cut);
        out
    }

    /// Whether a stop string has appeared.
    pub fn stopped(&self) -> bool {
        self.stopped
    }

    /// The text still held back, at the end of generation.
    pub fn finish(&mut self) -> String {
        std::mem::take(&mut self.held)
    }
}

/// The length of the longest proper suffix of `text` that is a prefix of
/// `stop` (cut at character boundaries).
fn partial_suffix(text: &str, stop: &str) -> usize {
    let longest = (stop.len() - 1).min(text.len());
    (1..=longest).rev().find(|&n| text.is_char_boundary(text.len() - n) && stop.starts_with(&text[text.len() - n..])).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(stops: &[&str], pieces: &[&str]) -> (String, bool) {
        let mut s = StopStrings::new(stops.iter().map(|s| s.to_string()));
        let mut out = String::new();
        for p in pieces {
            out += &s.push(p);
        }
        if !s.stopped() {
            out += &s.finish();
        }
        (out, s.stopped())
    }

    #[test]
    fn cuts_before_the_first_stop_string_across_pieces() {
        assert_eq!(stream(&["\nUser:"], &["Hi", " there", "\nUs", "er", ": more"]), ("Hi there".into(), true));
        assert_eq!(stream(&["END", "STOP"], &["a S", "TOP b END"]), ("a ".into(), true));
        // Whichever appears first in the text wins.
        assert_eq!(stream(&["b END", "END"], &["a b END"]), ("a ".into(), true));
    }

    #[test]
    fn releases_text_that_cannot_begin_a_stop_string() {
        let mut s = StopStrings::new(["###".to_string()]);
        assert_eq!(s.push("abc#"), "abc");
        assert_eq!(s.push("#x"), "##x");
        assert_eq!(s.push("é#"), "é");
        assert!(!s.stopped());
        assert_eq!(s.finish(), "#");
        assert_eq!(stream(&["###"], &["no stop here ##"]), ("no stop here ##".into(), false));
    }

    #[test]
    fn no_stop_strings_pass_everything_and_multibyte_text_is_cut_at_boundaries() {
        assert_eq!(stream(&[], &["a", "b"]), ("ab".into(), false));
        assert_eq!(stream(&[""], &["a"]), ("a".into(), false));
        assert_eq!(stream(&["ée"], &["aé", "é", "e!"]), ("aé".into(), true));
    }
}
