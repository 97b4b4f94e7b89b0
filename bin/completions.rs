//! `moe completions SHELL` and `moe man`, generated from the clap
//! definitions; and llama.cpp's single-dash spellings (`-sys`, `-cnv`).

use std::ffi::OsString;

use clap::{Args, CommandFactory};
use clap_complete::Shell;
use moe::{Error, Result};

use crate::args::Cli;

#[derive(Args)]
#[command(after_help = "Examples:
  moe completions bash > ~/.local/share/bash-completion/completions/moe
  moe completions zsh > ~/.zfunc/_moe       (with fpath+=~/.zfunc before compinit)
  moe completions fish > ~/.config/fish/completions/moe.fish")]
pub struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum)]
    pub shell: Shell,
}

pub fn completions(a: CompletionsArgs) -> Result<()> {
    let mut cmd = Cli::command();
    // Into a buffer first: clap_complete panics if its writer fails (a
    // closed pipe), so the write to stdout is ours, with its error.
    let mut script = Vec::new();
    clap_complete::generate(a.shell, &mut cmd, "moe", &mut script);
    std::io::Write::write_all(&mut std::io::stdout().lock(), &script).map_err(|e| Error::Io { path: "<stdout>".into(), source: e })
}

pub fn man() -> Result<()> {
    clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout()).map_err(|e| Error::Io { path: "<stdout>".into(), source: e })
}

/// llama.cpp spells some flags with one dash: `-sys` (the system prompt)
/// and `-cnv` (conversation mode, `run --chat` here).
pub fn llama_cpp_spellings(args: impl Iterator<Item = OsString>) -> Vec<OsString> {
    args.map(|a| match a.to_str() {
        Some("-sys") => "--system-prompt".into(),
        Some("-cnv") => "--chat".into(),
        _ => a,
    })
    .collect()
}
