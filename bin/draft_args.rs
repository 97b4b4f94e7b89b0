//! `--draft N`, `--draft-ngram MIN..MAX`, `--draft-fixed`: speculative
//! decoding flags shared by `run`, `chat` and `bench`.

use clap::builder::TypedValueParser;
use clap::Args;
use moe::speculative::{DraftOptions, NgramDrafter};

#[derive(Args, Clone, Debug)]
#[command(next_help_heading = "Speculative decoding")]
pub struct DraftArgs {
    /// Draft up to N tokens per step by prompt lookup and verify them in one pass (0 = off). The
    /// output is the same as without (greedy: token for token; sampling: the same distribution);
    /// it is faster where the text repeats its context, since experts shared by the drafted tokens
    /// are read once.
    #[arg(long = "draft", value_name = "N", default_value_t = 0, value_parser = clap::value_parser!(u16).range(0..=64).map(|v| v as usize))]
    pub draft: usize,
    /// Lengths of the context suffix matched to find a draft: the longest that occurred before wins.
    #[arg(long = "draft-ngram", value_name = "MIN..MAX", default_value = "2..4", value_parser = parse_ngram)]
    pub ngram: NgramDrafter,
    /// Always draft N tokens when a match allows (default: pick N per step from the measured
    /// acceptance and the measured cost of larger passes, and stop drafting while it does not pay).
    #[arg(long = "draft-fixed")]
    pub fixed: bool,
}

impl DraftArgs {
    pub fn options(&self) -> DraftOptions {
        DraftOptions { max: self.draft, ngram: self.ngram, adaptive: !self.fixed }
    }
}

fn parse_ngram(s: &str) -> Result<NgramDrafter, String> {
    let bad = || format!("'{s}': expected MIN..MAX with 1 <= MIN <= MAX <= 32, e.g. 2..4 (or one number)");
    let (lo, hi) = match s.split_once("..") {
        Some((a, b)) => (a.trim().parse::<usize>().map_err(|_| bad())?, b.trim().parse::<usize>().map_err(|_| bad())?),
        None => {
            let n = s.trim().parse::<usize>().map_err(|_| bad())?;
            (n, n)
        }
    };
    if lo == 0 || lo > hi || hi > 32 {
        return Err(bad());
    }
    Ok(NgramDrafter { min: lo, max: hi })
}
