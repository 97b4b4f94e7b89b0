//! `moe simulate TRACE`: replay a routing trace against cache sizes and
//! eviction policies; print hit rates, bytes read per token, predicted
//! tok/s, and per-layer hit rates against Belady's bound.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;
use moe::offload_setup::{human, Size};
use moe::{Error, Result};
use moe::simulation::Simulation;
use moe_offload::simulate::Policy;

#[derive(Args)]
#[command(after_help = "Examples:
  moe run -m MODEL.gguf -p \"...\" -n 256 --no-prefetch --trace run.trace
  moe simulate run.trace
  moe simulate run.trace --sizes 20%,40%,60% --policy lru,lrfu,belady --json sim.json")]
pub struct SimulateArgs {
    /// Trace written by `moe run --trace`.
    pub trace: PathBuf,
    /// Cache sizes: percentages of all experts and/or sizes (8G, 512M), comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "10%,20%,30%,40%,50%,60%,70%,80%,90%,100%", value_parser = Size::parse)]
    pub sizes: Vec<Size>,
    /// Policies: lru, lfu, lrfu[:HALF_LIFE_TOKENS], static-hot, per-layer, belady.
    #[arg(long = "policy", value_delimiter = ',', default_value = "lru,lfu,lrfu,static-hot,per-layer,belady", value_parser = Policy::parse)]
    pub policies: Vec<Policy>,
    /// Size for the per-layer table (default: the budget the trace was recorded with, else the middle size).
    #[arg(long = "layers-at", value_name = "SIZE", value_parser = Size::parse)]
    pub layers_at: Option<Size>,
    /// Disk read rate for the tok/s prediction, bytes per second (e.g. 1.7G; default: as seen in the trace).
    #[arg(long = "disk-rate", value_name = "BYTES_PER_S", value_parser = Size::parse)]
    pub disk_rate: Option<Size>,
    /// Compute seconds per decode token for the prediction (default: the trace's wall time less its waits).
    #[arg(long = "compute", value_name = "S_PER_TOKEN")]
    pub compute: Option<f64>,
    /// Check that the trace was recorded on this model.
    #[arg(short = 'm', long = "model")]
    pub model: Option<PathBuf>,
    /// Write the results as JSON to FILE (- for stdout) instead of tables.
    #[arg(long = "json", value_name = "FILE")]
    pub json: Option<PathBuf>,
}

pub fn load(a: &SimulateArgs) -> Result<Simulation> {
    let model = a.model.as_ref().map(moe::gguf::GgufFile::open).transpose()?;
    let trace = moe::trace::read_for(&a.trace, model.as_ref())?;
    if let Some(note) = moe::trace::cut_note(&trace, &a.trace) {
        eprintln!("moe: note: {note}");
    }
    Simulation::run(trace, &a.sizes, &a.policies, a.layers_at, a.disk_rate, a.compute)
}

pub fn simulate_cmd(a: SimulateArgs) -> Result<()> {
    let s = load(&a)?;
    match &a.json {
        Some(path) => {
            let json = to_json(&s);
            if path.as_os_str() == "-" {
                outln!("{json}")?;
            } else {
                std::fs::write(path, json + "\n").map_err(|e| Error::Io { path: path.clone(), source: e })?;
            }
        }
        None => {
            let stdout = std::io::stdout();
            print_tables(&mut stdout.lock(), &s).map_err(crate::stdout_error)?;
        }
    }
    Ok(())
}

fn pct(r: f64) -> String {
    format!("{:.1}", 100.0 * r)
}

fn size_label(s: &Simulation, b: u64) -> String {
    format!("{:>5.1}% {:>10}", 100.0 * b as f64 / s.trace.header.all_bytes().max(1) as f64, human(b))
}

pub fn print_tables(w: &mut dyn Write, s: &Simulation) -> std::io::Result<()> {
    let h = &s.trace.header;
    let accesses = s.trace.accesses().count();
    writeln!(
        w,
        "trace: {} ({} layers, {} experts top-{}, all experts {}), {} passes, {} tokens, {accesses} expert accesses",
        h.model_name,
        h.n_layer,
        h.n_expert,
        h.n_expert_used,
        human(h.all_bytes()),
        s.trace.passes.len(),
        s.trace.tokens()
    )?;
    writeln!(w, "recorded with: {}", h.settings)?;
    if let (Some(r), Some(b)) = (s.recorded_hit_rate, s.recorded_budget) {
        let policy = h.setting("policy").and_then(|p| Policy::parse(p).ok()).unwrap_or(Policy::Lru);
        let sim = moe_offload::simulate::simulate(&s.trace, policy, b);
        let prefetch = if h.setting("prefetch") == Some("on") { " (the run prefetched: the replay does not)" } else { "" };
        writeln!(w, "the run measured a hit rate of {}% at {} with {}; simulated there: {}%{prefetch}", pct(r), human(b), policy.name(), pct(sim.hit_rate()))?;
    }
    let names: Vec<String> = s.policies.iter().map(Policy::name).collect();
    let header = |w: &mut dyn Write, what: &str| -> std::io::Result<()> {
        write!(w, "\n{what}\n{:>17}", "cache size")?;
        for n in &names {
            write!(w, " {n:>11}")?;
        }
        writeln!(w)
    };
    header(w, "hit rate, % (demand reads, prefetch off)")?;
    for (i, &b) in s.sizes.iter().enumerate() {
        write!(w, "{}", size_label(s, b))?;
        for r in &s.results[i] {
            write!(w, " {:>11}", pct(r.hit_rate()))?;
        }
        writeln!(w)?;
    }
    header(w, "MiB read per token")?;
    for (i, &b) in s.sizes.iter().enumerate() {
        write!(w, "{}", size_label(s, b))?;
        for r in &s.results[i] {
            write!(w, " {:>11.2}", r.bytes_per_token() / (1u64 << 20) as f64)?;
        }
        writeln!(w)?;
    }
    match s.disk_rate {
        Some(rate) => {
            header(
                w,
                &format!(
                    "predicted decode tok/s (compute {:.4} s/token, reads at {:.2} GB/s, no overlap)",
                    s.rates.compute_s_per_token,
                    rate / 1e9
                ),
            )?;
            for (i, &b) in s.sizes.iter().enumerate() {
                write!(w, "{}", size_label(s, b))?;
                for r in &s.results[i] {
                    write!(w, " {:>11.2}", s.rates.predict_tok_s(&s.trace, r, rate))?;
                }
                writeln!(w)?;
            }
        }
        None => writeln!(w, "\n(no tok/s prediction: the trace has no demand reads to measure the disk by; give --disk-rate)")?,
    }
    writeln!(w, "\nper layer at {}: hit rate, %", size_label(s, s.layers_at).trim())?;
    writeln!(w, "{:>5} {:>7} {:>7} {:>7}", "layer", "lru", "belady", "gap")?;
    for l in 0..h.n_layer {
        let (a, b) = (s.lru_at.layer_hit_rate(l), s.belady_at.layer_hit_rate(l));
        if let (Some(a), Some(b)) = (a, b) {
            writeln!(w, "{l:>5} {:>7} {:>7} {:>7}", pct(a), pct(b), pct(b - a))?;
        }
    }
    let (a, b) = (s.lru_at.hit_rate(), s.belady_at.hit_rate());
    writeln!(w, "{:>5} {:>7} {:>7} {:>7}", "all", pct(a), pct(b), pct(b - a))
}

fn json_f(v: f64) -> String {
    if v.is_finite() { format!("{v}") } else { "null".into() }
}

pub fn to_json(s: &Simulation) -> String {
    let h = &s.trace.header;
    let mut out = format!(
        "{{\"model\":{:?},\"n_layer\":{},\"n_expert\":{},\"n_expert_used\":{},\"all_expert_bytes\":{},\"passes\":{},\"tokens\":{},\
         \"compute_s_per_token\":{},\"disk_bytes_per_s\":{},\"recorded_hit_rate\":{},\"recorded_budget\":{},\"results\":[",
        h.model_name,
        h.n_layer,
        h.n_expert,
        h.n_expert_used,
        h.all_bytes(),
        s.trace.passes.len(),
        s.trace.tokens(),
        json_f(s.rates.compute_s_per_token),
        s.disk_rate.map_or("null".into(), json_f),
        s.recorded_hit_rate.map_or("null".into(), json_f),
        s.recorded_budget.map_or("null".into(), |b| b.to_string()),
    );
    let mut first = true;
    for (i, &b) in s.sizes.iter().enumerate() {
        for r in &s.results[i] {
            if !first {
                out.push(',');
            }
            first = false;
            let layers: Vec<String> = (0..h.n_layer).map(|l| r.layer_hit_rate(l).map_or("null".into(), json_f)).collect();
            out += &format!(
                "{{\"policy\":\"{}\",\"budget\":{b},\"hit_rate\":{},\"bytes_per_token\":{},\"tok_s\":{},\"layer_hit_rate\":[{}]}}",
                r.policy.name(),
                json_f(r.hit_rate()),
                json_f(r.bytes_per_token()),
                s.disk_rate.map_or("null".into(), |d| json_f(s.rates.predict_tok_s(&s.trace, r, d))),
                layers.join(",")
            );
        }
    }
    out + "]}"
}
