//! The interactive side of `moe chat`: line editing and history
//! (rustyline), `/` commands, Ctrl-C to stop an answer.

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use moe::chat::{ChatSession, Conversation, TurnEnd, TurnStats};
use moe::model::Model;
use moe::sampler::Sampler;
use moe::{Error, Result};
use rustyline::error::ReadlineError;
use rustyline::DefaultEditor;

/// Set while an answer streams: Ctrl-C then stops it instead of exiting.
static GENERATING: AtomicBool = AtomicBool::new(false);
/// Ctrl-C was pressed during the answer.
static STOP: AtomicBool = AtomicBool::new(false);

const HELP: &str = "\
Type a message and press Enter. End a line with \\ to go on on the next line
(pasted text keeps its newlines). Up/Down browse the history.
  /help          this help
  /reset         forget the conversation (the system prompt stays)
  /stats         tokens reused and evaluated, speed, expert-cache hit rates per layer
  /save FILE     write the conversation as JSON (role/content messages)
  /load FILE     read a conversation written by /save (or any such JSON)
  /exit          quit (also Ctrl-D, or Ctrl-C twice at the prompt)
Ctrl-C while the model answers stops the answer.";

pub fn repl(chat: &mut ChatSession<'_>, model: &Model, sampler: &mut Sampler, quiet: bool) -> Result<()> {
    ctrlc::set_handler(|| {
        if GENERATING.load(Ordering::SeqCst) {
            STOP.store(true, Ordering::SeqCst);
        } else {
            std::process::exit(130);
        }
    })
    .map_err(|e| Error::InvalidArgument(format!("cannot handle Ctrl-C: {e}")))?;
    let mut rl = DefaultEditor::new().map_err(|e| Error::InvalidArgument(format!("cannot set up the terminal: {e}")))?;
    if !quiet {
        eprintln!("moe: chat ready: /help for commands; Ctrl-C stops an answer; Ctrl-D or /exit quits.");
    }
    let mut interrupted_at_prompt = false;
    let mut last: Option<TurnStats> = None;
    loop {
        let text = match read_message(&mut rl) {
            Ok(Some(text)) => text,
            Ok(None) => continue,
            Err(ReadlineError::Interrupted) => {
                if interrupted_at_prompt {
                    break;
                }
                interrupted_at_prompt = true;
                eprintln!("(Ctrl-C again, Ctrl-D or /exit to quit)");
                continue;
            }
            Err(ReadlineError::Eof) => break,
            Err(e) => return Err(Error::InvalidArgument(format!("reading the terminal: {e}"))),
        };
        interrupted_at_prompt = false;
        let _ = rl.add_history_entry(text.as_str());
        if let Some(command) = text.trim().strip_prefix('/') {
            if !run_command(command, chat, model, last.as_ref()) {
                break;
            }
            continue;
        }
        STOP.store(false, Ordering::SeqCst);
        GENERATING.store(true, Ordering::SeqCst);
        let mut stdout = std::io::stdout().lock();
        let result = chat.respond(&text, sampler, |piece| {
            // Nothing more once Ctrl-C was pressed.
            if STOP.load(Ordering::SeqCst) {
                return false;
            }
            let _ = stdout.write_all(piece.as_bytes()).and_then(|_| stdout.flush());
            !STOP.load(Ordering::SeqCst)
        });
        GENERATING.store(false, Ordering::SeqCst);
        let _ = writeln!(stdout);
        drop(stdout);
        match result {
            Ok(st) => {
                match st.end {
                    TurnEnd::Interrupted => eprintln!("[answer stopped]"),
                    TurnEnd::ContextFull => eprintln!(
                        "[the context is full ({} positions): /reset, or restart with --context-shift or a larger -c]",
                        chat.session().n_ctx()
                    ),
                    TurnEnd::Length => eprintln!("[answer cut at -n tokens]"),
                    TurnEnd::EndOfTurn | TurnEnd::StopString => {}
                }
                last = Some(st);
            }
            Err(e @ Error::ContextFull { .. }) => eprintln!("moe: {e}"),
            Err(e) => eprintln!("moe: error: {e}"),
        }
    }
    Ok(())
}

/// One message: a line, continued while it ends with `\`. `Ok(None)` for
/// an empty line.
fn read_message(rl: &mut DefaultEditor) -> rustyline::Result<Option<String>> {
    let mut text = rl.readline("> ")?;
    while text.ends_with('\\') {
        text.pop();
        text.push('\n');
        match rl.readline(". ") {
            Ok(more) => text.push_str(&more),
            Err(ReadlineError::Eof) => break,
            Err(e) => return Err(e),
        }
    }
    Ok((!text.trim().is_empty()).then_some(text))
}

/// Runs `/command`; returns `false` to quit.
fn run_command(command: &str, chat: &mut ChatSession<'_>, model: &Model, last: Option<&TurnStats>) -> bool {
    let (name, arg) = command.split_once(char::is_whitespace).map_or((command, ""), |(n, a)| (n, a.trim()));
    match name {
        "exit" | "quit" | "q" => return false,
        "help" | "?" => eprintln!("{HELP}"),
        "reset" | "clear" => {
            chat.reset();
            eprintln!("(conversation cleared{})", if chat.conversation().system().is_some() { "; the system prompt stays" } else { "" });
        }
        "stats" => {
            let mut err = std::io::stderr().lock();
            let _ = crate::chat::write_stats(&mut err, chat, model, last);
        }
        "save" | "load" if arg.is_empty() => eprintln!("usage: /{name} FILE"),
        "save" => match chat.conversation().save(Path::new(arg)) {
            Ok(()) => eprintln!("(saved {} messages to {arg})", chat.conversation().messages().len()),
            Err(e) => eprintln!("moe: error: {e}"),
        },
        "load" => match Conversation::load(Path::new(arg)) {
            Ok(conv) => {
                let n = conv.turns().len();
                chat.set_conversation(conv);
                eprintln!("(loaded {n} turns from {arg})");
            }
            Err(e) => eprintln!("moe: error: {e}"),
        },
        other => eprintln!("unknown command /{other}; /help lists the commands"),
    }
    true
}
