//! The `moe run --live` status line: per-layer expert-cache hit rate over
//! the last 16 tokens, one glyph per layer from layer 0 (▁ under 12.5%,
//! █ over 87.5%), then the overall hit rate, the share of wall time spent
//! waiting for reads, MiB read per token, tok/s and the tokens so far. Only the text is made here; bin/live.rs
//! puts it on the terminal.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use moe_offload::CacheStats;

/// Glyphs for hit rates 0–12.5%, …, 87.5–100% (a missing layer: space).
const LEVELS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

/// Keeps the last `window` per-token snapshots.
pub struct LiveWindow {
    window: usize,
    snaps: VecDeque<(Instant, CacheStats, usize)>,
}

impl LiveWindow {
    pub fn new(window: usize) -> LiveWindow {
        LiveWindow { window: window.max(1), snaps: VecDeque::new() }
    }

    /// Records the cache after `tokens` tokens.
    pub fn push(&mut self, at: Instant, stats: CacheStats, tokens: usize) {
        self.snaps.push_back((at, stats, tokens));
        while self.snaps.len() > self.window + 1 {
            self.snaps.pop_front();
        }
    }

    /// The status line over the window, at most `width` characters.
    pub fn line(&self, width: usize) -> Option<String> {
        let (first, last) = (self.snaps.front()?, self.snaps.back()?);
        if self.snaps.len() < 2 {
            return None;
        }
        let d = last.1.since(&first.1);
        let wall = last.0.duration_since(first.0);
        Some(format_line(&d, wall, last.2, last.2 - first.2, width))
    }
}

/// `d`: the cache counters over the last `tokens` tokens, which took
/// `wall`; `done`: tokens so far.
pub fn format_line(d: &CacheStats, wall: Duration, done: usize, tokens: usize, width: usize) -> String {
    let t = d.total();
    let glyphs: String = d
        .layers
        .iter()
        .map(|l| match l.hit_rate() {
            Some(r) => LEVELS[((r * 8.0) as usize).min(7)],
            None => ' ',
        })
        .collect();
    let stall = if wall > Duration::ZERO { t.stall_time.as_secs_f64() / wall.as_secs_f64() } else { 0.0 };
    let rate = if wall > Duration::ZERO { tokens as f64 / wall.as_secs_f64() } else { 0.0 };
    let hit = t.hit_rate().map_or("-".to_string(), |r| format!("{:.0}%", 100.0 * r));
    let line = format!(
        "{glyphs} hit {hit} stall {:.0}% {:.1} MiB/tok {rate:.1} tok/s [{done}]",
        100.0 * stall.min(1.0),
        t.bytes_read as f64 / (1u64 << 20) as f64 / tokens.max(1) as f64
    );
    line.chars().take(width).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use moe_offload::LayerStats;

    #[test]
    fn line_shows_each_layer_and_totals() {
        let l = |hits, misses, stall_ms| LayerStats { hits, misses, stall_time: Duration::from_millis(stall_ms), bytes_read: misses * (1 << 20), ..Default::default() };
        let d = CacheStats { layers: vec![l(8, 0, 0), l(0, 8, 250), l(4, 4, 0), LayerStats::default()], ..Default::default() };
        let s = format_line(&d, Duration::from_secs(1), 40, 4, 200);
        assert_eq!(s, "█▁▅  hit 50% stall 25% 3.0 MiB/tok 4.0 tok/s [40]");
        assert_eq!(format_line(&d, Duration::from_secs(1), 40, 4, 11), "█▁▅  hit 50");
    }

    #[test]
    fn window_keeps_the_last_tokens() {
        let mut w = LiveWindow::new(2);
        let t0 = Instant::now();
        assert!(w.line(80).is_none());
        for i in 0..5u64 {
            let st = CacheStats { layers: vec![LayerStats { hits: i * 10, misses: i, ..Default::default() }], ..Default::default() };
            w.push(t0 + Duration::from_secs(i), st, i as usize);
        }
        // The window spans tokens 2..4: 20 hits, 2 misses.
        let s = w.line(200).unwrap();
        assert!(s.contains("hit 91%") && s.contains("1.0 tok/s") && s.ends_with("[4]"), "{s}");
    }
}
