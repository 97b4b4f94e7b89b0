//! `moe inspect FILE [--mem SIZE] [--json]`: a model's shape, tensors,
//! resident vs expert bytes, tokenizer, and the memory plan for `--mem`.

use std::path::PathBuf;

use clap::Args;
use moe::arch::{Gating, QkNorm, RopeKind};
use moe::inspect::{Group, Inspection};
use moe::model::{ExpertLayout, KvType, Model};
use moe::offload_setup::human;
use moe::Result;

#[derive(Args)]
#[command(after_help = "Examples:
  moe inspect models/mixtral-8x7b-q4_k_m.gguf
  moe inspect models/mixtral-8x7b-q4_k_m.gguf --mem 16G -c 4096
  moe inspect models/SmolLM2-135M-Instruct.Q4_1.gguf --json")]
pub struct InspectArgs {
    /// Model file (GGUF).
    pub model: PathBuf,
    /// Show the memory plan `moe run --mem SIZE` would choose.
    #[arg(long = "mem", value_name = "SIZE", value_parser = parse_mem)]
    pub mem: Option<u64>,
    /// Context size for the plan (default: 4096, at most the training context).
    #[arg(short = 'c', long = "ctx-size", default_value_t = 4096)]
    pub ctx: usize,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

fn parse_mem(s: &str) -> std::result::Result<u64, String> {
    match moe::offload_setup::Size::parse(s)? {
        moe::offload_setup::Size::Bytes(b) => Ok(b),
        _ => Err(format!("'{s}': give an absolute size such as 16G")),
    }
}

pub fn inspect_cmd(a: InspectArgs) -> Result<()> {
    let model = Model::open(&a.model)?;
    let n_ctx = a.ctx.clamp(1, model.config().n_ctx_train.max(1));
    let i = Inspection::of(&model, a.mem, n_ctx, KvType::F16)?;
    if a.json {
        outln!("{}", to_json(&i))?;
    } else {
        print_text(&i)?;
    }
    Ok(())
}

fn layout(i: &Inspection) -> &'static str {
    match i.layout {
        None => "dense (no experts)",
        Some(ExpertLayout::Merged) => "merged (blk.N.ffn_*_exps.weight, experts along ne2)",
        Some(ExpertLayout::PerExpert) => "per-expert (blk.N.ffn_*.E.weight)",
    }
}

fn types(g: &Group) -> String {
    g.types.iter().map(|(t, b)| format!("{t} {}", human(*b))).collect::<Vec<_>>().join(", ")
}

/// A string from the file as the terminal may show it: control characters
/// (an ESC that would recolour or retitle the terminal, a newline that
/// would forge a line) escaped, `\u{1b}` style.
fn shown(s: &str) -> String {
    s.chars().map(|c| if c.is_control() { c.escape_default().to_string() } else { c.to_string() }).collect()
}

fn print_text(i: &Inspection) -> moe::Result<()> {
    let c = &i.config;
    let f = &i.footprint;
    outln!("file:         {} ({}, {} bytes), GGUF v{}, {} tensors", i.path, human(i.file_bytes), i.file_bytes, i.gguf_version, i.n_tensors)?;
    outln!("model:        {} ({}){}", shown(&i.architecture), shown(i.name.as_deref().unwrap_or("unnamed")), if c.is_moe() { format!(", MoE {} experts, top-{}", c.n_expert, c.n_expert_used) } else { ", dense".into() })?;
    outln!(
        "shape:        {} layers, embd {}, ff {}, heads {} (kv {}, head dim {}), vocab {}, trained context {}, rms eps {:e}",
        c.n_layer, c.n_embd, c.n_ff, c.n_head, c.n_head_kv, c.head_dim, c.n_vocab, c.n_ctx_train, c.rms_eps
    )?;
    if c.is_moe() {
        outln!(
            "experts:      ff {} each{}, top-{} weights {}",
            c.n_ff_exp,
            if c.n_ff_shexp > 0 { format!(", shared expert ff {} (sigmoid gate)", c.n_ff_shexp) } else { String::new() },
            c.n_expert_used,
            match (c.traits.gating, c.traits.norm_topk) {
                (Gating::SoftmaxTopK, _) => "a softmax over the chosen experts' logits",
                (Gating::Softmax, true) => "renormalised",
                (Gating::Softmax, false) => "as routed (not renormalised)",
            }
        )?;
    }
    outln!(
        "attention:    rope {} base {}{}{}{}, QK norm {}{}{}{}",
        match c.rope.kind {
            RopeKind::Normal => "normal (adjacent pairs)",
            RopeKind::Neox => "neox (halves)",
        },
        c.rope.base,
        match (c.rope.yarn, c.rope.freq_scale) {
            (Some(_), f) => format!(", YaRN scaling x{}", 1.0 / f),
            (None, f) if f != 1.0 => format!(", linear scaling x{}", 1.0 / f),
            _ => String::new(),
        },
        if c.rope.mscale != 1.0 { format!(", cos/sin scaled x{}", c.rope.mscale) } else { String::new() },
        if i.rope_freqs { ", frequency factors (rope_freqs.weight)" } else { "" },
        match c.traits.qk_norm {
            QkNorm::None => "none",
            QkNorm::PerHead => "per head",
            QkNorm::Full => "full width",
        },
        if i.qkv_bias { ", QKV biases" } else { "" },
        if c.traits.attn_sinks { ", attention sinks" } else { "" },
        match &c.swa {
            Some(w) => format!(", sliding window {} on {} of {} layers", w.window, w.layers.iter().filter(|&&x| x).count(), c.n_layer),
            None => String::new(),
        }
    )?;
    outln!("expert layout: {}", layout(i))?;
    outln!(
        "tokenizer:    {} ({} tokens, BOS {}, EOS {}); chat template: {}",
        shown(i.tokenizer_model.as_deref().unwrap_or("none")),
        i.vocab_size,
        i.bos.map_or("-".into(), |v| v.to_string()),
        i.eos.map_or("-".into(), |v| v.to_string()),
        i.chat_template.map_or("none".into(), |n| format!("present ({n} bytes)"))
    )?;
    outln!("\n{:<12} {:>8} {:>12}  types", "role", "tensors", "bytes")?;
    for (r, g) in &i.by_role {
        outln!("{r:<12} {:>8} {:>12}  {}", g.tensors, human(g.bytes), types(g))?;
    }
    outln!("\n{:<12} {:>8} {:>12}", "type", "tensors", "bytes")?;
    for (t, g) in &i.by_type {
        outln!("{t:<12} {:>8} {:>12}", g.tensors, human(g.bytes))?;
    }
    outln!(
        "\nresident (read every token): {}; experts: {} of slabs, {} as cache buffers (page-rounded)",
        human(f.resident_bytes),
        human(f.expert_payload),
        human(f.all_experts)
    )?;
    if let (Some(first), true) = (i.expert_bytes_per_layer.first(), c.is_moe()) {
        let all_same = i.expert_bytes_per_layer.iter().all(|l| l == first && l.0 == l.1);
        if all_same {
            outln!("bytes per expert: {} ({} bytes) in every layer; the smallest expert cache is {}", human(first.1), first.1, human(f.min_expert_cache))?;
        } else {
            let sizes: Vec<String> = i.expert_bytes_per_layer.iter().enumerate().map(|(l, b)| format!("{l}:{}", human(b.1))).collect();
            outln!("bytes per expert by layer: {}; the smallest expert cache is {}", sizes.join(" "), human(f.min_expert_cache))?;
        }
    }
    if let Some(p) = &i.plan {
        outln!("\nmemory plan for --mem {}: {}", human(p.total().max(p.fixed())), p.describe())?;
        if let Some(n) = i.experts_fit_per_layer() {
            outln!("the expert cache holds about {n:.1} of {} experts per layer", c.n_expert)?;
        }
        for n in &p.notes {
            outln!("note: {n}")?;
        }
    }
    if let Some(e) = &i.plan_error {
        outln!("\nmemory plan: {e}")?;
    }
    Ok(())
}

/// A JSON string literal (control characters as `\u001b`; Rust's `{:?}`
/// would write `\u{1b}`, which is not JSON).
fn json_str(s: &str) -> String {
    serde_json::to_string(s).expect("a string serializes")
}

fn group_json(g: &Group) -> String {
    let types: Vec<String> = g.types.iter().map(|(t, b)| format!("{}:{b}", json_str(t))).collect();
    format!("{{\"tensors\":{},\"bytes\":{},\"types\":{{{}}}}}", g.tensors, g.bytes, types.join(","))
}

fn to_json(i: &Inspection) -> String {
    let c = &i.config;
    let f = &i.footprint;
    let roles: Vec<String> = i.by_role.iter().map(|(r, g)| format!("{}:{}", json_str(r), group_json(g))).collect();
    let types: Vec<String> = i.by_type.iter().map(|(t, g)| format!("{}:{}", json_str(t), group_json(g))).collect();
    let per_layer: Vec<String> = i.expert_bytes_per_layer.iter().map(|b| b.1.to_string()).collect();
    let plan = match &i.plan {
        Some(p) => format!(
            "{{\"resident\":{},\"kv\":{},\"scratch\":{},\"n_ctx\":{},\"expert_cache\":{},\"total\":{},\"experts_per_layer\":{},\"describe\":{}}}",
            p.resident,
            p.kv,
            p.scratch,
            p.n_ctx,
            p.expert_budget().map_or("null".into(), |b| b.to_string()),
            p.total(),
            i.experts_fit_per_layer().map_or("null".into(), |n| format!("{n}")),
            json_str(&p.describe())
        ),
        None => "null".into(),
    };
    format!(
        "{{\"path\":{},\"file_bytes\":{},\"gguf_version\":{},\"architecture\":{},\"name\":{},\"n_layer\":{},\"n_embd\":{},\"n_ff\":{},\"n_ff_exp\":{},\"n_ff_shexp\":{},\
         \"n_head\":{},\"n_head_kv\":{},\"n_vocab\":{},\"n_ctx_train\":{},\"n_expert\":{},\"n_expert_used\":{},\"expert_layout\":{},\
         \"n_tensors\":{},\"by_role\":{{{}}},\"by_type\":{{{}}},\"resident_bytes\":{},\"expert_payload_bytes\":{},\"expert_cache_bytes\":{},\
         \"min_expert_cache\":{},\"expert_bytes_per_layer\":[{}],\"tokenizer\":{},\"vocab_size\":{},\"chat_template_bytes\":{},\"plan\":{},\"plan_error\":{}}}",
        json_str(&i.path),
        i.file_bytes,
        i.gguf_version,
        json_str(&i.architecture),
        i.name.as_deref().map_or("null".into(), json_str),
        c.n_layer,
        c.n_embd,
        c.n_ff,
        c.n_ff_exp,
        c.n_ff_shexp,
        c.n_head,
        c.n_head_kv,
        c.n_vocab,
        c.n_ctx_train,
        c.n_expert,
        c.n_expert_used,
        match i.layout {
            None => "null",
            Some(ExpertLayout::Merged) => "\"merged\"",
            Some(ExpertLayout::PerExpert) => "\"per-expert\"",
        },
        i.n_tensors,
        roles.join(","),
        types.join(","),
        f.resident_bytes,
        f.expert_payload,
        f.all_experts,
        f.min_expert_cache,
        per_layer.join(","),
        i.tokenizer_model.as_deref().map_or("null".into(), json_str),
        i.vocab_size,
        i.chat_template.map_or("null".into(), |n| n.to_string()),
        plan,
        i.plan_error.as_deref().map_or("null".into(), json_str),
    )
}
