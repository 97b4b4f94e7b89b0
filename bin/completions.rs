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
    std::io::Write::write_all(&mut std::io::stdout().lock(), &script).map_err(crate::stdout_error)
}

#[derive(Args)]
#[command(after_help = "Examples:
  moe man | man -l -                          moe(1)
  moe man run | man -l -                      moe-run(1), which moe(1) refers to
  moe man --dir ~/.local/share/man/man1       every page, then: man moe-run")]
pub struct ManArgs {
    /// The subcommand whose page to print (default: moe's own).
    pub subcommand: Option<String>,
    /// Write moe.1 and a moe-SUBCOMMAND.1 page for each subcommand into DIR.
    #[arg(long, value_name = "DIR", conflicts_with = "subcommand")]
    pub dir: Option<std::path::PathBuf>,
}

/// moe(1) names a page per subcommand (moe-run(1), ...): `--dir` writes
/// them all, `moe man run` prints one.
pub fn man(a: ManArgs) -> Result<()> {
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    if let Some(dir) = &a.dir {
        std::fs::create_dir_all(dir).map_err(|e| Error::Io { path: dir.clone(), source: e })?;
        return clap_mangen::generate_to(cmd, dir).map_err(|e| Error::Io { path: dir.clone(), source: e });
    }
    let page = match &a.subcommand {
        None => cmd,
        Some(name) => cmd.find_subcommand(name).cloned().ok_or_else(|| {
            let names: Vec<&str> = cmd.get_subcommands().map(|c| c.get_name()).collect();
            Error::InvalidArgument(format!("moe man {name}: no such subcommand; the pages are moe and moe-{{{}}}", names.join(",")))
        })?,
    };
    let mut roff = Vec::new();
    clap_mangen::Man::new(page).render(&mut roff).map_err(crate::stdout_error)?;
    std::io::Write::write_all(&mut std::io::stdout().lock(), &roff).map_err(crate::stdout_error)
}

/// llama.cpp spells some flags with one dash: `-sys` (the system prompt),
/// `-cnv` (conversation mode, `run --chat` here) and `-ctk`/`-ctv` (the KV
/// cache's key and value types).
pub fn llama_cpp_spellings(args: impl Iterator<Item = OsString>) -> Vec<OsString> {
    args.map(|a| match a.to_str() {
        Some("-sys") => "--system-prompt".into(),
        Some("-cnv") => "--chat".into(),
        Some("-ctk") => "--cache-type-k".into(),
        Some("-ctv") => "--cache-type-v".into(),
        _ => a,
    })
    .collect()
}
