//! The turns of a conversation, and what of them the KV cache already holds.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// One message, as chat templates and the OpenAI API see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub role: String,
    pub content: String,
}

impl Message {
    pub fn new(role: &str, content: impl Into<String>) -> Message {
        Message { role: role.into(), content: content.into() }
    }
}

/// An optional system prompt and the turns after it, user and assistant
/// alternating (the last one may be a user message awaiting its answer).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Conversation {
    system: Option<String>,
    turns: Vec<Message>,
}

impl Conversation {
    pub fn new(system: Option<String>) -> Conversation {
        Conversation { system: system.filter(|s| !s.is_empty()), turns: Vec::new() }
    }

    pub fn system(&self) -> Option<&str> {
        self.system.as_deref()
    }

    /// The messages a template renders: the system prompt, then the turns.
    pub fn messages(&self) -> Vec<Message> {
        let system = self.system.iter().map(|s| Message::new("system", s.as_str()));
        system.chain(self.turns.iter().cloned()).collect()
    }

    /// The turns after the system prompt.
    pub fn turns(&self) -> &[Message] {
        &self.turns
    }

    pub fn push_user(&mut self, text: impl Into<String>) {
        self.turns.push(Message::new("user", text));
    }

    pub fn push_assistant(&mut self, text: impl Into<String>) {
        self.turns.push(Message::new("assistant", text));
    }

    /// Removes the last message (a user message that could not be answered).
    pub fn pop(&mut self) -> Option<Message> {
        self.turns.pop()
    }

    /// Forgets the turns; the system prompt stays.
    pub fn clear(&mut self) {
        self.turns.clear();
    }

    /// Drops the oldest exchange (a user message and the answer after it),
    /// never the system prompt nor the last message. Returns whether there
    /// was one to drop.
    pub fn drop_oldest_exchange(&mut self) -> bool {
        if self.turns.len() < 3 {
            return false;
        }
        let n = if self.turns[1].role == "assistant" { 2 } else { 1 };
        self.turns.drain(..n);
        true
    }

    /// Writes the messages as a JSON array of `{"role", "content"}` (the
    /// OpenAI format `--messages` and `/load` read).
    pub fn save(&self, path: &Path) -> Result<()> {
        let json = serde_json::to_string_pretty(&self.messages()).expect("messages serialize");
        std::fs::write(path, json + "\n").map_err(|e| Error::Io { path: path.to_path_buf(), source: e })
    }

    /// Reads a conversation written by [`Self::save`]: a first `system`
    /// message becomes the system prompt.
    pub fn load(path: &Path) -> Result<Conversation> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::Io { path: path.to_path_buf(), source: e })?;
        let messages: Vec<Message> = serde_json::from_str(&text).map_err(|e| {
            Error::InvalidArgument(format!(
                "{}: not a conversation ({e}); expected a JSON array of {{\"role\": ..., \"content\": ...}}",
                path.display()
            ))
        })?;
        Conversation::from_messages(messages).map_err(|e| Error::InvalidArgument(format!("{}: {e}", path.display())))
    }

    /// A conversation from messages: an optional leading system message,
    /// then user and assistant messages.
    pub fn from_messages(mut messages: Vec<Message>) -> std::result::Result<Conversation, String> {
        let system = match messages.first() {
            Some(m) if m.role == "system" => Some(messages.remove(0).content),
            _ => None,
        };
        if let Some(m) = messages.iter().find(|m| m.role != "user" && m.role != "assistant") {
            return Err(format!("role {:?}: expected user or assistant after the optional system message", m.role));
        }
        Ok(Conversation { system, turns: messages })
    }
}

/// Length of the longest common prefix of `a` and `b`: how many tokens of a
/// new prompt the KV cache already holds.
pub fn common_prefix(a: &[u32], b: &[u32]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_put_the_system_prompt_first() {
        let mut c = Conversation::new(Some("be brief".into()));
        c.push_user("hi");
        c.push_assistant("hello");
        let m = c.messages();
        assert_eq!(m.iter().map(|m| m.role.as_str()).collect::<Vec<_>>(), ["system", "user", "assistant"]);
        assert_eq!(m[0].content, "be brief");
        assert_eq!(Conversation::new(Some(String::new())).messages(), vec![]);
    }

    #[test]
    fn dropping_keeps_the_system_prompt_and_the_last_message() {
        let mut c = Conversation::new(Some("sys".into()));
        for i in 0..3 {
            c.push_user(format!("u{i}"));
            c.push_assistant(format!("a{i}"));
        }
        c.push_user("u3");
        assert!(c.drop_oldest_exchange());
        let contents: Vec<String> = c.turns().iter().map(|m| m.content.clone()).collect();
        assert_eq!(contents, ["u1", "a1", "u2", "a2", "u3"]);
        assert!(c.drop_oldest_exchange() && c.drop_oldest_exchange());
        assert_eq!(c.turns().len(), 1);
        assert!(!c.drop_oldest_exchange(), "the message awaiting its answer stays");
        assert_eq!(c.system(), Some("sys"));
    }

    #[test]
    fn save_and_load_round_trip() {
        let dir = std::env::temp_dir().join(format!("moe-conv-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.json");
        let mut c = Conversation::new(Some("sys".into()));
        c.push_user("q \"quoted\"\n");
        c.push_assistant("a");
        c.save(&path).unwrap();
        assert_eq!(Conversation::load(&path).unwrap(), c);
        std::fs::write(&path, r#"[{"role": "tool", "content": "x"}]"#).unwrap();
        let e = Conversation::load(&path).unwrap_err().to_string();
        assert!(e.contains("c.json") && e.contains("\"tool\""), "{e}");
        std::fs::write(&path, "not json").unwrap();
        let e = Conversation::load(&path).unwrap_err().to_string();
        assert!(e.contains("expected a JSON array"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn common_prefix_counts_equal_leading_tokens() {
        assert_eq!(common_prefix(&[1, 2, 3], &[1, 2, 4, 5]), 2);
        assert_eq!(common_prefix(&[1, 2], &[1, 2, 3]), 2);
        assert_eq!(common_prefix(&[], &[1]), 0);
        assert_eq!(common_prefix(&[9], &[1]), 0);
    }
}
