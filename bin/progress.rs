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
        "{msg} [{bar:24.cyan/blue}] {bytes}/{total_bytes} {bytes_per_sec}"
    } else {
        "{msg} [{bar:24}] {bytes}/{total_bytes} {bytes_per_sec}"
    };
    pb.set_style(ProgressStyle::with_template(template).expect("valid template").progress_chars("=> "));
    pb.set_message(message.into());
    pb
}

/// A counter of `total` steps (hidden unless enabled).
pub fn count(message: impl Into<String>, total: u64, quiet: bool) -> ProgressBar {
    if !enabled(quiet) {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    let template = if color() { "{msg} [{bar:30.cyan/blue}] {pos}/{len} eta {eta}" } else { "{msg} [{bar:30}] {pos}/{len} eta {eta}" };
    pb.set_style(ProgressStyle::with_template(template).expect("valid template").progress_chars("=> "));
    pb.set_message(message.into());
    pb
}

/// Faults the resident weights in, behind a byte counter.
pub fn warm_up(model: &Model, quiet: bool) -> Result<()> {
    let pb = bytes("warming up resident weights", 0, quiet);
    moe::offload_setup::warm_resident(model, &mut |done, total| {
        pb.set_length(total);
        pb.set_position(done);
    })?;
    pb.finish_and_clear();
    Ok(())
}

/// Opens and validates a model behind a spinner.
pub fn open_model(path: &Path, quiet: bool) -> Result<Model> {
    let pb = spinner(format!("opening and validating {}", path.display()), quiet);
    let model = Model::open(path);
    pb.finish_and_clear();
    model
}
