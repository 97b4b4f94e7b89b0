//! `moe run --live`: redraws `moe::live`'s status line on stderr while
//! generating. Only when stderr is a terminal. When stdout is that same
//! terminal, the line lives on the bottom row, outside a scroll region that
//! the generated text scrolls in (as apt's progress bar does), so the text
//! is never overwritten; otherwise it is one line redrawn with `\r`.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use moe::live::LiveWindow;
use moe_offload::ExpertSource;

pub struct Live {
    window: LiveWindow,
    /// Rows of the terminal when a scroll region is set (stdout shares it).
    region_rows: Option<u16>,
    cols: usize,
    last_draw: Option<Instant>,
    tokens: usize,
}

/// Terminal size of stderr (console, already in the tree through indicatif).
mod term {
    /// (rows, cols), if stderr is a terminal that knows its size.
    pub fn size() -> Option<(u16, u16)> {
        console::Term::stderr().size_checked().filter(|&(rows, cols)| rows > 2 && cols > 0)
    }
}

impl Live {
    /// A live view if asked for and stderr is a terminal.
    pub fn start(asked: bool) -> Option<Live> {
        if !asked || !std::io::stderr().is_terminal() {
            return None;
        }
        let (rows, cols) = term::size().unwrap_or((24, 80));
        let shared = std::io::stdout().is_terminal();
        let region_rows = shared.then_some(rows);
        if let Some(rows) = region_rows {
            // A free bottom row, then the region above it; the cursor stays where it was.
            eprint!("\n\x1b7\x1b[1;{}r\x1b8\x1b[1A", rows - 1);
        }
        Some(Live { window: LiveWindow::new(16), region_rows, cols: cols as usize, last_draw: None, tokens: 0 })
    }

    /// After each forward pass (`tokens`: tokens it ran).
    pub fn tick(&mut self, source: &dyn ExpertSource, tokens: usize) {
        self.tokens += tokens;
        let Some(stats) = source.stats() else { return };
        let now = Instant::now();
        self.window.push(now, stats, self.tokens);
        if self.last_draw.is_some_and(|t| now.duration_since(t) < Duration::from_millis(100)) {
            return;
        }
        self.last_draw = Some(now);
        if let Some(line) = self.window.line(self.cols.saturating_sub(1)) {
            self.draw(&line);
        }
    }

    fn draw(&self, line: &str) {
        let mut e = std::io::stderr().lock();
        let _ = match self.region_rows {
            Some(rows) => write!(e, "\x1b7\x1b[{rows};1H\x1b[2K{line}\x1b8"),
            None => write!(e, "\r\x1b[2K{line}"),
        };
        let _ = e.flush();
    }

    /// Clears the line (and the scroll region).
    pub fn finish(self) {
        let mut e = std::io::stderr().lock();
        let _ = match self.region_rows {
            Some(rows) => write!(e, "\x1b7\x1b[{rows};1H\x1b[2K\x1b[r\x1b8"),
            None => write!(e, "\r\x1b[2K"),
        };
        let _ = e.flush();
    }
}
