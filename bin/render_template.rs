//! `moe render-template`: print the prompt a chat template makes of some
//! messages (to debug templates).

use std::io::Write;
use std::path::PathBuf;

use clap::Args;
use moe::chat::RenderOptions;
use moe::gguf::GgufFile;
use moe::tokenizer::Tokenizer;
use moe::{Error, Result};

use crate::template_args::{json_object, TemplateArgs};

#[derive(Args)]
#[command(after_help = "Examples:
  moe render-template -m model.gguf --messages '[{\"role\":\"user\",\"content\":\"Hi\"}]'
  moe render-template -m model.gguf --messages @chat.json --chat-template llama3
  moe render-template -m model.gguf --messages @chat.json --tokens")]
pub struct RenderTemplateArgs {
    /// Model or vocab-only file (GGUF): its tokenizer and chat template.
    #[arg(short = 'm', long = "model")]
    pub model: PathBuf,
    /// The messages: a JSON array of {"role", "content"} (any other fields the template reads),
    /// or @FILE to read it from FILE.
    #[arg(long = "messages", value_name = "JSON")]
    pub messages: String,
    /// Variables for the template besides messages, as a JSON object (e.g. '{"tools": [...]}').
    #[arg(long = "vars", value_name = "JSON")]
    pub vars: Option<String>,
    /// Do not end with the assistant header (the prompt of a finished conversation).
    #[arg(long = "no-generation-prompt")]
    pub no_generation_prompt: bool,
    /// Print the prompt's token ids (a JSON array) instead of its text.
    #[arg(long = "tokens")]
    pub tokens: bool,
    #[command(flatten)]
    pub template: TemplateArgs,
}

pub fn render_template(a: RenderTemplateArgs) -> Result<()> {
    let file = GgufFile::open(&a.model)?;
    let tokenizer = Tokenizer::from_metadata(file.metadata())?;
    let template = a.template.template(&tokenizer, &a.model)?;
    let messages = parse_json(&a.messages, "--messages")?;
    if !messages.is_array() {
        return Err(Error::InvalidArgument("--messages: expected a JSON array of {\"role\": ..., \"content\": ...}".into()));
    }
    let vars = a.vars.as_deref().map(|v| parse_json(v, "--vars").and_then(|v| json_object(v, "--vars"))).transpose()?;
    let opts = RenderOptions { add_generation_prompt: !a.no_generation_prompt };
    let text = template.render_json(&messages, &opts, vars.as_ref())?;
    eprintln!("moe: template: {}", template.source());
    let out = if a.tokens {
        let ids = moe::chat::encode_rendered(&template, &tokenizer, &text)?;
        format!("{}\n", serde_json::to_string(&ids).expect("ids serialize"))
    } else {
        text
    };
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(out.as_bytes()).and_then(|_| stdout.flush()).map_err(crate::stdout_error)
}

/// `TEXT` as JSON, or the JSON in FILE for `@FILE`.
fn parse_json(arg: &str, flag: &str) -> Result<serde_json::Value> {
    let (text, from) = match arg.strip_prefix('@') {
        Some(path) => (std::fs::read_to_string(path).map_err(|e| Error::Io { path: path.into(), source: e })?, path.to_string()),
        None => (arg.to_string(), flag.to_string()),
    };
    serde_json::from_str(&text).map_err(|e| Error::InvalidArgument(format!("{from}: invalid JSON: {e}")))
}
