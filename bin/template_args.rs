//! The chat-template flags `chat`, `run --chat` and `render-template` share.

use std::path::{Path, PathBuf};

use clap::Args;
use moe::chat::{ChatTemplate, Reasoning};
use moe::tokenizer::Tokenizer;
use moe::{Error, Result};

#[derive(Args, Clone, Debug)]
#[command(next_help_heading = "Chat template")]
pub struct TemplateArgs {
    /// Chat template: a built-in (chatml, mistral, llama3, gemma) or a Jinja template text.
    /// Default: the file's tokenizer.chat_template, else the built-in its special tokens suggest.
    #[arg(long = "chat-template", value_name = "NAME")]
    pub chat_template: Option<String>,
    /// Read the chat template (Jinja) from FILE; overrides --chat-template.
    #[arg(long = "chat-template-file", value_name = "FILE")]
    pub chat_template_file: Option<PathBuf>,
    /// Variables for the template, a JSON object, as llama.cpp's flag:
    /// '{"enable_thinking": false}' turns Qwen3's thinking off.
    #[arg(long = "chat-template-kwargs", value_name = "JSON")]
    pub chat_template_kwargs: Option<String>,
    /// -1: the model may think (default); 0: no thinking (sets enable_thinking to false), as llama.cpp.
    #[arg(long = "reasoning-budget", value_name = "N", allow_hyphen_values = true, value_parser = ["-1", "0"])]
    pub reasoning_budget: Option<String>,
    /// gpt-oss (harmony): show the reasoning (analysis channel) before the answer, dimmed on a
    /// terminal, or hide it; the answer (final channel) is shown either way. Its depth is the
    /// template's reasoning_effort: --chat-template-kwargs '{"reasoning_effort": "high"}'.
    #[arg(long = "reasoning", value_name = "WHEN", default_value = "show", value_parser = ["show", "hide"])]
    pub reasoning: String,
}

impl TemplateArgs {
    pub fn template(&self, tokenizer: &Tokenizer, model: &Path) -> Result<ChatTemplate> {
        let kwargs = self.kwargs()?;
        Ok(ChatTemplate::for_model(tokenizer, model, self.chat_template.as_deref(), self.chat_template_file.as_deref())?.with_kwargs(kwargs))
    }

    /// `--reasoning` for output to a terminal (`tty`) or not.
    pub fn reasoning(&self, tty: bool) -> Reasoning {
        match (self.reasoning.as_str(), tty) {
            ("hide", _) => Reasoning::Hide,
            (_, true) => Reasoning::Dim,
            _ => Reasoning::Show,
        }
    }

    /// `--chat-template-kwargs`, with `--reasoning-budget 0` as `enable_thinking: false`.
    fn kwargs(&self) -> Result<serde_json::Map<String, serde_json::Value>> {
        let mut map = match self.chat_template_kwargs.as_deref() {
            None => serde_json::Map::new(),
            Some(text) => {
                let value = serde_json::from_str(text).map_err(|e| Error::InvalidArgument(format!("--chat-template-kwargs: invalid JSON: {e}")))?;
                json_object(value, "--chat-template-kwargs")?
            }
        };
        if self.reasoning_budget.as_deref() == Some("0") {
            map.insert("enable_thinking".into(), serde_json::Value::Bool(false));
        }
        Ok(map)
    }
}

/// Template variables given as JSON must be an object; `flag` names where
/// they came from in the error.
pub fn json_object(value: serde_json::Value, flag: &str) -> Result<serde_json::Map<String, serde_json::Value>> {
    match value {
        serde_json::Value::Object(m) => Ok(m),
        _ => Err(Error::InvalidArgument(format!("{flag}: expected a JSON object, e.g. '{{\"enable_thinking\": false}}'"))),
    }
}
