//! `moe synth`: write a synthetic Mixtral-8x7B-, Mistral-7B-, Qwen3-30B-A3B-
//! or OLMoE-1B-7B-shaped GGUF (random valid weights, llama.cpp's type mix)
//! for benchmarks.

use std::collections::BTreeMap;
use std::time::Instant;

use moe::offload_setup::human;
use moe::synth::{ExpertLayout, Mix, SynthSpec, TensorPlan};
use moe::{Error, Result};

use crate::args::{LayoutArg, SynthArgs};

pub fn synth(a: SynthArgs, quiet: bool) -> Result<()> {
    let spec = spec_of(&a)?;
    spec.check()?;
    let n_vocab = spec.vocab_size()?;
    let tensors = spec.tensors(n_vocab as u64);
    if !quiet {
        print_plan(&spec, n_vocab, &tensors);
    }
    if a.dry_run {
        return Ok(());
    }
    let Some(out) = &a.output else {
        return Err(Error::InvalidArgument("give -o FILE (or --dry-run)".into()));
    };
    if out.exists() && !a.force {
        return Err(Error::InvalidArgument(format!("{} exists; pass --force to overwrite it", out.display())));
    }
    let total: u64 = tensors.iter().map(TensorPlan::bytes).sum();
    let t0 = Instant::now();
    // A progress bar on a terminal; nothing in a log.
    let pb = crate::progress::bytes("moe: synth", total, quiet);
    let progress = |i: usize, n: usize, t: &TensorPlan| {
        pb.set_message(format!("moe: synth: {:>4}/{n} {:<24}", i + 1, t.name));
        pb.inc(t.bytes());
    };
    spec.write(out, &progress)?;
    pb.finish_and_clear();
    let secs = t0.elapsed().as_secs_f64();
    if !quiet {
        eprintln!(
            "moe: synth: wrote {} ({} bytes of tensors) in {secs:.1} s ({:.0} MB/s)",
            out.display(),
            total,
            total as f64 / secs / 1e6
        );
    }
    Ok(())
}

fn spec_of(a: &SynthArgs) -> Result<SynthSpec> {
    let mut s = SynthSpec::preset(&a.preset)?;
    if let Some(mix) = &a.mix {
        s.mix = Mix::parse(mix)?;
    }
    let set = |field: &mut usize, v: Option<usize>| {
        if let Some(v) = v {
            *field = v;
        }
    };
    set(&mut s.n_layer, a.layers);
    set(&mut s.n_embd, a.embd);
    // --ff is the experts' width where the preset states it apart.
    if s.n_ff_exp > 0 {
        set(&mut s.n_ff_exp, a.ff);
    } else {
        set(&mut s.n_ff, a.ff);
    }
    set(&mut s.n_head, a.heads);
    set(&mut s.n_head_kv, a.kv_heads);
    set(&mut s.n_vocab, a.vocab_size);
    set(&mut s.n_ctx, a.ctx);
    if let Some(e) = a.experts {
        if e == 0 || !s.is_moe() {
            return Err(Error::InvalidArgument(format!(
                "--experts applies to MoE presets and must be at least 1 (preset {}, got {e})",
                a.preset
            )));
        }
        s.n_expert = e;
    }
    if let Some(k) = a.experts_used {
        if !s.is_moe() {
            return Err(Error::InvalidArgument(format!("--experts-used: preset {} is dense", a.preset)));
        }
        s.n_expert_used = k;
    }
    s.layout = match a.layout {
        LayoutArg::Merged => ExpertLayout::Merged,
        LayoutArg::PerExpert => ExpertLayout::PerExpert,
    };
    s.seed = a.seed;
    s.vocab_from = a.vocab_from.clone();
    s.branch_scale = a.branch_scale;
    Ok(s)
}

fn print_plan(s: &SynthSpec, n_vocab: usize, tensors: &[TensorPlan]) {
    let shape = if s.is_moe() {
        format!("{} experts top-{}, {:?} layout", s.n_expert, s.n_expert_used, s.layout)
    } else {
        "dense".into()
    };
    eprintln!(
        "moe: synth: {} ({}) {}: {} layers, embd {}, ff {}, heads {}/{} of {}, {shape}, vocab {n_vocab}, seed {}, branch scale {}",
        s.name, s.arch, s.mix, s.n_layer, s.n_embd, if s.is_moe() { s.n_ff_exp() } else { s.n_ff }, s.n_head, s.n_head_kv, s.head_dim(), s.seed, s.branch_scale
    );
    let mut by_type: BTreeMap<&str, (usize, u64)> = BTreeMap::new();
    let (mut experts, mut total) = (0u64, 0u64);
    for t in tensors {
        let e = by_type.entry(t.qtype.name()).or_default();
        e.0 += 1;
        e.1 += t.bytes();
        total += t.bytes();
        if t.name.contains("_exps.") || (s.is_moe() && t.name.matches('.').count() == 4) {
            experts += t.bytes();
        }
    }
    let types: Vec<String> = by_type.iter().map(|(q, (n, b))| format!("{q} {n} tensors {}", human(*b))).collect();
    eprintln!("moe: synth: {}", types.join(", "));
    eprintln!(
        "moe: synth: {} tensors, {total} bytes ({:.3} GB; {} resident, {} experts)",
        tensors.len(),
        total as f64 / 1e9,
        human(total - experts),
        human(experts)
    );
}
