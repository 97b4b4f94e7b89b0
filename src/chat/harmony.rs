//! gpt-oss's harmony format on the way out: the model answers in messages
//! `<|channel|>NAME<|message|>TEXT<|end|>`, each after the first opened by
//! `<|start|>assistant` (headers may add ` to=…` and `<|constrain|>…`),
//! and the last one ends at the stop token `<|return|>` or `<|call|>`.
//! The `analysis` channel is the reasoning, `final` the answer,
//! `commentary` tool calls and preambles. [`HarmonySplitter`] turns the
//! streamed text (these markers render as text) into channel-tagged
//! pieces, holding back a marker cut between two pieces.

/// Which channel a piece of the answer is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    /// The reasoning.
    Analysis,
    /// The answer.
    Final,
    /// Tool calls and preambles, or a channel this parser does not know.
    Commentary,
}

const CHANNEL: &str = "<|channel|>";
const MESSAGE: &str = "<|message|>";
const END: &str = "<|end|>";
const START: &str = "<|start|>";
/// A header longer than this is not one (a model off the format): its
/// text is shown as commentary rather than lost.
const MAX_HEADER: usize = 256;

/// Where the splitter is in the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// In a header (role, channel, recipient, constraint), collecting it
    /// up to `<|message|>`.
    Header(String),
    /// In a message's text.
    Body(Channel),
}

/// A streaming harmony parser: feed it the decoded text piece by piece;
/// it returns the message text with its channel, markers and headers
/// removed.
#[derive(Debug)]
pub struct HarmonySplitter {
    state: State,
    /// Text that may be the start of a marker, held until the next piece.
    held: String,
}

impl Default for HarmonySplitter {
    fn default() -> Self {
        HarmonySplitter::new()
    }
}

impl HarmonySplitter {
    /// At the start of an answer: the prompt ended with `<|start|>assistant`,
    /// so a header comes first.
    pub fn new() -> HarmonySplitter {
        HarmonySplitter { state: State::Header(String::new()), held: String::new() }
    }

    /// Takes the next piece of text; returns the message text it holds.
    pub fn push(&mut self, piece: &str) -> Vec<(Channel, String)> {
        let mut text = std::mem::take(&mut self.held);
        text.push_str(piece);
        let mut out: Vec<(Channel, String)> = Vec::new();
        let mut rest = text.as_str();
        loop {
            match &mut self.state {
                State::Header(h) => match rest.find(MESSAGE) {
                    Some(i) => {
                        h.push_str(&rest[..i]);
                        let channel = channel_of(h);
                        rest = &rest[i + MESSAGE.len()..];
                        self.state = State::Body(channel);
                    }
                    None => {
                        let keep = marker_prefix_len(rest);
                        h.push_str(&rest[..rest.len() - keep]);
                        self.held = rest[rest.len() - keep..].to_string();
                        if h.len() > MAX_HEADER {
                            let text = std::mem::take(h);
                            emit(&mut out, Channel::Commentary, &text);
                            self.state = State::Body(Channel::Commentary);
                        }
                        break;
                    }
                },
                State::Body(channel) => {
                    let channel = *channel;
                    // A message ends at <|end|>; a new header may also
                    // start without it (<|start|> or <|channel|>).
                    let ends = [END, START, CHANNEL].iter().filter_map(|m| rest.find(m).map(|i| (i, *m))).min();
                    match ends {
                        Some((i, m)) => {
                            emit(&mut out, channel, &rest[..i]);
                            rest = &rest[i + m.len()..];
                            let mut header = String::new();
                            if m == CHANNEL {
                                header.push_str(CHANNEL);
                            }
                            self.state = State::Header(header);
                        }
                        None => {
                            let keep = marker_prefix_len(rest);
                            emit(&mut out, channel, &rest[..rest.len() - keep]);
                            self.held = rest[rest.len() - keep..].to_string();
                            break;
                        }
                    }
                }
            }
        }
        out
    }

    /// [`Self::push`], then with `last` [`Self::finish`]: the pieces of
    /// `piece` (the answer's last piece when `last`).
    pub fn take(&mut self, piece: &str, last: bool) -> Vec<(Channel, String)> {
        let mut parts = self.push(piece);
        if last {
            parts.extend(self.finish());
        }
        parts
    }

    /// The end of the answer: text held back as a possible marker is
    /// message text after all.
    pub fn finish(&mut self) -> Vec<(Channel, String)> {
        let held = std::mem::take(&mut self.held);
        let mut out = Vec::new();
        match &mut self.state {
            State::Body(channel) => emit(&mut out, *channel, &held),
            // Plain text that never became a message (no marker in it).
            State::Header(h) if !h.contains("<|") && !held.starts_with("<|") => {
                h.push_str(&held);
                emit(&mut out, Channel::Commentary, h);
            }
            State::Header(_) => {}
        }
        out
    }
}

fn emit(out: &mut Vec<(Channel, String)>, channel: Channel, text: &str) {
    if text.is_empty() {
        return;
    }
    match out.last_mut() {
        Some((c, t)) if *c == channel => t.push_str(text),
        _ => out.push((channel, text.to_string())),
    }
}

/// The channel a header names (`…<|channel|>analysis …`); commentary for
/// a header without one or with another name.
fn channel_of(header: &str) -> Channel {
    let Some(i) = header.rfind(CHANNEL) else {
        return Channel::Commentary;
    };
    let name = header[i + CHANNEL.len()..].split([' ', '<']).next().unwrap_or("");
    match name {
        "analysis" => Channel::Analysis,
        "final" => Channel::Final,
        _ => Channel::Commentary,
    }
}

/// The length of the longest suffix of `s` that begins a marker (`<|…`),
/// which the next piece may complete.
fn marker_prefix_len(s: &str) -> usize {
    let Some(i) = s.rfind('<') else {
        return 0;
    };
    let tail = &s[i..];
    let could_be = [CHANNEL, MESSAGE, END, START].iter().any(|m| m.starts_with(tail) && tail.len() < m.len());
    if could_be { tail.len() } else { 0 }
}

/// How reasoning is shown (`--reasoning show|hide`; `Dim` is `show` on a
/// terminal).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Reasoning {
    /// As text, before the answer.
    #[default]
    Show,
    /// Dimmed (ANSI faint), before the answer.
    Dim,
    /// Not at all.
    Hide,
}

impl Reasoning {
    /// `text` of `channel` as it is shown.
    fn view(self, channel: Channel, text: &str) -> String {
        match (channel, self) {
            (Channel::Final, _) | (_, Reasoning::Show) => text.to_string(),
            (_, Reasoning::Dim) => format!("\x1b[2m{text}\x1b[0m"),
            (_, Reasoning::Hide) => String::new(),
        }
    }
}

/// A harmony answer as it streams: the text to show for each piece
/// (reasoning as [`Reasoning`] says, a new line where the channel
/// changes), and the answer (the final channel's text) at the end.
#[derive(Debug)]
pub struct HarmonyView {
    splitter: HarmonySplitter,
    reasoning: Reasoning,
    last: Option<Channel>,
    answer: String,
}

impl HarmonyView {
    pub fn new(reasoning: Reasoning) -> HarmonyView {
        HarmonyView { splitter: HarmonySplitter::new(), reasoning, last: None, answer: String::new() }
    }

    /// The next piece of decoded text (`finish`: the last); returns what
    /// to show.
    pub fn push(&mut self, text: &str, finish: bool) -> String {
        let mut out = String::new();
        for (channel, t) in self.splitter.take(text, finish) {
            if channel == Channel::Final {
                self.answer.push_str(&t);
            }
            let shown = self.reasoning.view(channel, &t);
            if shown.is_empty() {
                continue;
            }
            if self.last.is_some_and(|l| l != channel) {
                out.push('\n');
            }
            self.last = Some(channel);
            out.push_str(&shown);
        }
        out
    }

    /// The final channel's text: the answer the conversation keeps.
    pub fn answer(self) -> String {
        self.answer
    }
}

/// Whether a chat template writes harmony (gpt-oss's).
pub fn is_harmony_template(source: &str) -> bool {
    source.contains("<|channel|>") && source.contains("<|message|>")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split_all(pieces: &[&str]) -> Vec<(Channel, String)> {
        let mut s = HarmonySplitter::new();
        let mut out = Vec::new();
        for p in pieces {
            for (c, t) in s.push(p).into_iter().chain(std::iter::empty()) {
                emit(&mut out, c, &t);
            }
        }
        for (c, t) in s.finish() {
            emit(&mut out, c, &t);
        }
        out
    }

    #[test]
    fn reasoning_then_answer_in_any_pieces() {
        let text = "<|channel|>analysis<|message|>User asks 2+2. Easy.<|end|><|start|>assistant<|channel|>final<|message|>2 + 2 = 4.";
        let want = vec![(Channel::Analysis, "User asks 2+2. Easy.".to_string()), (Channel::Final, "2 + 2 = 4.".to_string())];
        assert_eq!(split_all(&[text]), want);
        // Every split point, markers cut included.
        for cut in 1..text.len() {
            assert_eq!(split_all(&[&text[..cut], &text[cut..]]), want, "cut at {cut}");
        }
        // One character at a time.
        let chars: Vec<String> = text.chars().map(String::from).collect();
        let pieces: Vec<&str> = chars.iter().map(String::as_str).collect();
        assert_eq!(split_all(&pieces), want);
    }

    #[test]
    fn the_view_shows_dims_or_hides_the_reasoning() {
        let pieces = ["<|channel|>analysis<|mess", "age|>Think.", "<|end|><|start|>assistant<|channel|>final<|message|>An", "swer."];
        for (reasoning, want) in [
            (Reasoning::Show, "Think.\nAnswer."),
            (Reasoning::Dim, "\x1b[2mThink.\x1b[0m\nAnswer."),
            (Reasoning::Hide, "Answer."),
        ] {
            let mut v = HarmonyView::new(reasoning);
            let mut shown = String::new();
            for (i, p) in pieces.iter().enumerate() {
                shown.push_str(&v.push(p, i + 1 == pieces.len()));
            }
            assert_eq!(shown, want, "{reasoning:?}");
            assert_eq!(v.answer(), "Answer.");
        }
    }

    #[test]
    fn tool_calls_and_unknown_headers_are_commentary() {
        let text = "<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{\"city\":\"Paris\"}";
        assert_eq!(split_all(&[text]), vec![(Channel::Commentary, "{\"city\":\"Paris\"}".to_string())]);
        // Text that never reaches <|message|> is shown, not lost.
        let long = "x".repeat(MAX_HEADER + 10);
        assert_eq!(split_all(&[&long, "y"]), vec![(Channel::Commentary, format!("{long}y"))]);
        assert_eq!(split_all(&["plain ", "text"]), vec![(Channel::Commentary, "plain text".to_string())]);
        // A '<' that starts no marker is text.
        assert_eq!(split_all(&["<|channel|>final<|message|>a <b> c <", "|x"]), vec![(Channel::Final, "a <b> c <|x".to_string())]);
        assert!(is_harmony_template("{{ '<|start|>assistant<|channel|>final<|message|>' }}"));
        assert!(!is_harmony_template("{{ '<|im_start|>assistant' }}"));
    }
}
