//! The chat-template flags `chat`, `run --chat` and `render-template` share.

use std::path::{Path, PathBuf};

use clap::Args;
use moe::chat::ChatTemplate;
use moe::tokenizer::Tokenizer;
use moe::Result;

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
}

impl TemplateArgs {
    pub fn template(&self, tokenizer: &Tokenizer, model: &Path) -> Result<ChatTemplate> {
        ChatTemplate::for_model(tokenizer, model, self.chat_template.as_deref(), self.chat_template_file.as_deref())
    }
}
