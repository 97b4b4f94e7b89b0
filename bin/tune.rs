//! `moe tune -m FILE --mem SIZE`: calibrate on this machine, print the
//! recommended expert-cache settings with predicted tok/s and hit rates,
//! and write them as a profile for `moe run --profile`.

use std::path::PathBuf;

use clap::Args;
use moe::offload_setup::human;
use moe::tune::{tune, TuneOptions, TUNE_PROMPT};
use moe::{Error, Result};
use moe_offload::PolicyKind;

#[derive(Args)]
#[command(after_help = "Examples:
  moe tune -m models/mixtral-8x7b-q4_k_m.gguf --mem 16G -o mixtral.profile
  moe run -m models/mixtral-8x7b-q4_k_m.gguf --profile mixtral.profile --warm -p \"...\"")]
pub struct TuneArgs {
    /// Model file (GGUF, MoE).
    #[arg(short = 'm', long = "model")]
    pub model: PathBuf,
    /// Memory to plan for (as `moe run --mem`).
    #[arg(long = "mem", value_name = "SIZE", value_parser = parse_mem)]
    pub mem: u64,
    /// Where to write the profile (default: MODEL with the extension .moe-profile).
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Tokens generated per calibration run (three runs).
    #[arg(short = 'n', long = "tokens", default_value_t = 32)]
    pub tokens: usize,
    /// Calibration prompt (default: a built-in paragraph).
    #[arg(short = 'p', long = "prompt")]
    pub prompt: Option<String>,
    /// Context to plan for.
    #[arg(short = 'c', long = "ctx-size", default_value_t = 4096)]
    pub ctx: usize,
    /// Eviction policy to tune for.
    #[arg(long = "cache-policy", value_name = "POLICY", default_value = "lrfu", value_parser = PolicyKind::parse)]
    pub cache_policy: PolicyKind,
    /// Threads for the matrix kernels (default: all cores).
    #[arg(short = 't', long = "threads", value_parser = clap::value_parser!(u16).range(1..))]
    pub threads: Option<u16>,
}

fn parse_mem(s: &str) -> std::result::Result<u64, String> {
    match moe::offload_setup::Size::parse(s)? {
        moe::offload_setup::Size::Bytes(b) => Ok(b),
        _ => Err(format!("'{s}': give an absolute size such as 16G")),
    }
}

pub fn tune_cmd(a: TuneArgs, quiet: bool) -> Result<()> {
    let threads = crate::run::init_threads(a.threads)?;
    let prompt = a.prompt.clone().unwrap_or_else(|| TUNE_PROMPT.to_string());
    let opts = TuneOptions { mem: a.mem, n_ctx: a.ctx, tokens: a.tokens.max(4), prompt, policy: a.cache_policy };
    // On a terminal a spinner shows the calibration step; in a log, one line each.
    let pb = crate::progress::spinner("tune: calibrating", quiet);
    let r = tune(&a.model, &opts, &mut |step| {
        if pb.is_hidden() {
            if !quiet {
                eprintln!("moe: tune: {step}");
            }
        } else {
            pb.set_message(format!("tune: {step}"));
        }
    });
    pb.finish_and_clear();
    let r = r?;
    outln!("random expert reads (as the cache reads them, every read a miss):")?;
    outln!("{:>14} {:>8} {:>10}", "loader threads", "reads", "GB/s")?;
    for x in &r.reads {
        outln!("{:>14} {:>8} {:>10.3}", x.loader_threads, x.reads, x.bytes_per_s() / 1e9)?;
    }
    outln!("\ncalibration runs ({} tokens after the prompt, expert cache {}, {threads} compute threads):", opts.tokens, human(r.budget))?;
    for run in &r.runs {
        outln!(
            "  prefetch {:<8} {:>8.2} tok/s, hit rate {:.1}%",
            run.prefetch_depth.map_or("off".into(), |d| format!("depth {d}")),
            run.decode_tok_s,
            100.0 * run.hit_rate
        )?;
    }
    outln!(
        "  again with prefetch {}: {:.2} tok/s (the prediction uses this run)",
        r.confirm.prefetch_depth.map_or("off".into(), |d| format!("depth {d}")),
        r.confirm.decode_tok_s
    )?;
    outln!(
        "compute {:.4} s/token (wall less waits), demand reads at {:.3} GB/s effective, prefetch speed-up {:.2}x",
        r.rates.compute_s_per_token,
        r.read_rate / 1e9,
        r.prefetch_speedup
    )?;
    let p = &r.profile;
    outln!("\npredicted decode ({}, prefetch {}):", p.cache_policy.name(), p.prefetch_depth.map_or("off".into(), |d| format!("depth {d}")))?;
    outln!("{:>12} {:>6} {:>12} {:>8} {:>8} {:>12} {:>8}", "expert cache", "%", "--mem", "hit%", "lru hit%", "no-pf tok/s", "tok/s")?;
    for row in &r.rows {
        outln!(
            "{:>12} {:>5.0}% {:>12} {:>8.1} {:>8.1} {:>12.2} {:>8.2}{}",
            human(row.budget),
            100.0 * row.budget as f64 / r.all_experts as f64,
            human(row.mem),
            100.0 * row.hit_rate,
            100.0 * row.lru_hit_rate,
            row.tok_s_no_prefetch,
            row.tok_s,
            if row.budget == p.expert_cache { "  <- recommended" } else if row.budget > r.budget { "  (needs more memory)" } else { "" }
        )?;
    }
    let out = a.output.clone().unwrap_or_else(|| a.model.with_extension("moe-profile"));
    std::fs::write(&out, p.to_text()).map_err(|e| Error::Io { path: out.clone(), source: e })?;
    outln!(
        "\nrecommended: --expert-cache {} (--mem {}), --cache-policy {}, {}, --loader-threads {}: {:.2} tok/s, hit rate {:.1}% predicted",
        p.expert_cache,
        human(p.mem),
        p.cache_policy.name(),
        p.prefetch_depth.map_or("--no-prefetch".into(), |d| format!("--prefetch-depth {d}")),
        p.loader_threads,
        p.predicted_tok_s,
        100.0 * p.predicted_hit_rate
    )?;
    outln!("profile written to {}; apply it with: moe run -m {} --profile {} [--warm] -p ...", out.display(), a.model.display(), out.display())?;
    Ok(())
}
