//! Progress on stderr (indicatif): shown only on a terminal, never with
//! -q/--quiet, without colour under NO_COLOR.

use std::io::IsTerminal;
use std::path::Path;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use moe::model::Model;
use moe::Result;

/// Whether progress and colour may be drawn on stderr.
pub fn enabled(quiet: bool) -> bool {
    !quiet && std::io::stderr().is_terminal()
}

pub fn color() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// A spinner with `message` (hidden unless enabled).
pub fn spinner(message: impl Into<String>, quiet: bool) -> ProgressBar {
    if !enabled(quiet) {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    let template = if color() { "{spinner:.cyan} {msg} {elapsed:.dim}" } else { "{spinner} {msg} {elapsed}" };
    pb.set_style(ProgressStyle::with_template(template).expect("valid template"));
    pb.set_message(message.into());
    pb.enable_steady_tick(Duration::from_millis(100));
    pb
}

/// A byte counter for `total` bytes (hidden unless enabled).
pub fn bytes(message: impl Into<String>, total: u64, quiet: bool) -> ProgressBar {
    if !enabled(quiet) {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    let template = if color() {
        "{msg} [{bar:30.cyan/blue}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}"
    } else {
        "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}"
    };
    pb.set_style(ProgressStyle::with_template(template).expect("valid template").progress_chars("=> "));
    pb.set_message(message.into());
    pb
}

/// Opens and validates a model behind a spinner.
pub fn open_model(path: &Path, quiet: bool) -> Result<Model> {
    let pb = spinner(format!("opening and validating {}", path.display()), quiet);
    let model = Model::open(path);
    pb.finish_and_clear();
    model
}
