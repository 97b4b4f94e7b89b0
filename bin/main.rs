//! `moe`: the command-line front end. Argument parsing and printing only;
//! all model logic lives in the `moe` library.

/// `println!` for command output: a closed stdout (`| head`) or a full
/// disk is an `Err` naming `<stdout>` (main ends quietly on a closed pipe,
/// with a message on the rest), never a panic. Use with `?`.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($arg)*).map_err(crate::stdout_error)
    }};
}

/// A failed write of command output: an I/O error naming `<stdout>`.
pub(crate) fn stdout_error(e: std::io::Error) -> moe::Error {
    moe::Error::Io { path: "<stdout>".into(), source: e }
}

mod args;
mod bench;
mod chat;
mod completions;
mod disk_bench;
mod draft_args;
mod profile_args;
mod progress;
mod render_template;
mod repl;
mod serve;
mod inspect;
mod live;
mod report;
mod routing;
mod run;
mod run_extras;
mod sampling_args;
mod stats;
mod simulate;
mod synth;
mod template_args;
mod tokenize;
mod tune;
mod upcycle;

use std::io::ErrorKind;
use std::process::ExitCode;

use clap::Parser;

use args::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse_from(completions::llama_cpp_spellings(std::env::args_os()));
    let quiet = cli.quiet;
    let result = match cli.command {
        Command::Run(a) => run::run(a, quiet),
        Command::Tokenize(a) => tokenize::tokenize(a),
        Command::Bench(a) => bench::bench(a),
        Command::Synth(a) => synth::synth(a, quiet),
        Command::DiskBench(a) => disk_bench::disk_bench(a, quiet),
        Command::Chat(a) => chat::chat(a, quiet),
        Command::Serve(a) => serve::serve(a, quiet),
        Command::RenderTemplate(a) => render_template::render_template(a),
        Command::Completions(a) => completions::completions(a),
        Command::Man(a) => completions::man(a),
        Command::Upcycle(a) => upcycle::upcycle_cmd(a),
        Command::Simulate(a) => simulate::simulate_cmd(a),
        Command::Inspect(a) => inspect::inspect_cmd(a),
        Command::Report(a) => report::report_cmd(a),
        Command::Tune(a) => tune::tune_cmd(a, quiet),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("moe: error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Output piped into `head` closing early is not an error.
fn is_broken_pipe(e: &moe::Error) -> bool {
    matches!(e, moe::Error::Io { source, .. } if source.kind() == ErrorKind::BrokenPipe)
}
