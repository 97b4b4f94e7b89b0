//! `moe run`: stream generated text to stdout, timings to stderr.

use std::cell::RefCell;
use std::io::Write;
use std::time::Instant;

use moe::chat::Message;
use moe::generate::{generate_observed, GenerateOptions};
use moe::model::{KvType, Model, Prefetch};
use moe::offload_setup::{self, human, ExpertPlan, Footprint, MemRequest, MemoryPlan, OffloadOptions, ResidentMode, SetupReport};
use moe::sampler::Sampler;
use moe::tokenizer::{StreamDecoder, Tokenizer};
use moe::{Error, Result};

use crate::args::{OffloadArgs, RunArgs};
use crate::stats::{Recorder, Report};

pub fn run(mut a: RunArgs, quiet: bool) -> Result<()> {
    let threads = init_threads(a.compute.threads)?;
    let kv_type = a.compute.kv.kv_type()?;
    let t_load = Instant::now();
    let mut model = crate::progress::open_model(&a.model, quiet)?;
    let tokenizer = Tokenizer::from_metadata(model.metadata())?;
    let cfg = model.config().clone();
    let profile = a.extras.profile.apply(&mut a.offload, &model)?;

    let json = a.json || a.output == "json";
    let prompt_text = read_prompt(a.prompt.as_deref(), a.file.as_deref())?;
    // --chat with gpt-oss's harmony: the reasoning as --reasoning says, then the answer.
    let mut harmony = None;
    let prompt = if a.chat {
        let template = a.template.template(&tokenizer, &a.model)?;
        if template.is_harmony() && !(a.json || a.output == "json") {
            harmony = Some(moe::chat::harmony::HarmonyView::new(a.template.reasoning(std::io::IsTerminal::is_terminal(&std::io::stdout()))));
        }
        let mut messages: Vec<Message> = a.system_prompt.iter().map(|s| Message::new("system", s.as_str())).collect();
        messages.push(Message::new("user", prompt_text.as_str()));
        moe::chat::prompt_tokens(&template, &tokenizer, &messages)?
    } else {
        tokenizer.encode(&prompt_text, !a.no_bos, true)?
    };
    // -n -1 (or -2): until the end of text or of the context, as llama.cpp.
    let wanted = usize::try_from(a.n_predict).ok();
    let n_ctx = match (a.ctx_size, wanted) {
        (Some(c), _) if c > 0 => c,
        (_, Some(n)) => (prompt.len() + n).clamp(1, cfg.n_ctx_train.max(prompt.len() + 1)),
        (_, None) => cfg.n_ctx_train.clamp(1, OPEN_ENDED_CTX).max(prompt.len() + 1),
    };
    if prompt.len() + wanted.map_or(1, |n| n.min(1)) > n_ctx {
        return Err(Error::InvalidArgument(format!(
            "the prompt has {} tokens but the context holds {n_ctx}; raise -c/--ctx-size",
            prompt.len()
        )));
    }
    let room = n_ctx - prompt.len() + 1;
    let n_predict = wanted.unwrap_or(room).min(room);
    for w in context_warnings(prompt.len(), wanted, n_ctx, cfg.n_ctx_train) {
        eprintln!("moe: warning: {w}");
    }
    let seed = a.sampling.seed.unwrap_or_else(random_seed);

    let o = &a.offload;
    let (plan, report) = setup_offload(&mut model, o, n_ctx, kv_type, quiet)?;
    let mut extras = crate::run_extras::Extras::start(&a, &mut model, &plan, threads, profile.as_ref(), quiet)?;
    let load_s = t_load.elapsed().as_secs_f64();

    let kind = if cfg.is_moe() {
        format!("MoE {}×top-{}", cfg.n_expert, cfg.n_expert_used)
    } else {
        "dense".to_string()
    };
    let experts = match plan.experts {
        ExpertPlan::Dense => String::new(),
        ExpertPlan::Mapped => format!("; experts: mmap ({}), prefetch off", human(plan.all_experts)),
        ExpertPlan::Cache { budget, .. } => format!(
            "; experts: cache {} of {} ({:.0}%), prefetch {}, {} loader threads, {}",
            human(budget),
            human(plan.all_experts),
            100.0 * budget as f64 / plan.all_experts.max(1) as f64,
            if model.prefetch() == Prefetch::Off { "off" } else { "on" },
            o.loader_threads,
            if report.direct_io == Some(true) { "O_DIRECT" } else { "buffered reads" },
        ),
    };
    if !quiet {
        eprintln!(
            "moe: loaded {} ({} layers, embd {}, {kind}, vocab {}) in {load_s:.2} s; {threads} threads, ctx {n_ctx}, seed {seed}{experts}",
            a.model.display(),
            cfg.n_layer,
            cfg.n_embd,
            cfg.n_vocab,
        );
        eprintln!(
            "moe: memory: {}{}",
            plan.describe(),
            resident_line(&report)
        );
    }
    for note in &plan.notes {
        eprintln!("moe: note: {note}");
    }
    if let Some(n) = &report.resident_note {
        eprintln!("moe: note: {n}");
    }
    if let Some(w) = &report.mlock_warning {
        eprintln!("moe: warning: {w}");
    }
    let want_stats = o.stats || o.stats_json.is_some();

    let mut session = model.session_with_kv(n_ctx, kv_type)?;
    session.set_batch_size(a.compute.batch_size)?;
    extras.install(&mut session);
    let mut sampler = Sampler::new(a.sampling.params(seed));
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let io_err = crate::stdout_error;
    if !a.no_display_prompt && !a.chat && !json {
        out.write_all(prompt_text.as_bytes()).and_then(|_| out.flush()).map_err(io_err)?;
    }
    let mut decoder = StreamDecoder::new(&tokenizer, true);
    let mut stops = moe::stop::StopStrings::new(a.stop.iter().cloned());
    let mut printed = String::new();
    let mut write_err = None;
    let mut generated = Vec::new();
    let interrupt = stop_on_ctrl_c()?;
    let recorder = RefCell::new(Recorder::new(model.experts()));
    let extras = RefCell::new(extras);
    let stats = generate_observed(
        &mut session,
        &tokenizer,
        &mut sampler,
        &prompt,
        &GenerateOptions { n_predict, ignore_eos: a.ignore_eos, draft: a.draft.options(), interrupt: Some(interrupt.clone()) },
        |batch| {
            if want_stats {
                recorder.borrow_mut().mark(model.experts(), Some(batch.len()));
            }
            extras.borrow_mut().on_pass(&model, batch.len());
        },
        |id| {
            if want_stats {
                recorder.borrow_mut().mark(model.experts(), None);
            }
            extras.borrow_mut().on_pass(&model, 1);
            let text = stops.push(&decoder.push(id));
            printed.push_str(&text);
            let written = if json {
                generated.push(id);
                let line = serde_json::json!({"type": "token", "index": generated.len() - 1, "id": id, "text": text});
                writeln!(out, "{line}").and_then(|_| out.flush())
            } else {
                let shown = harmony.as_mut().map_or_else(|| text.clone(), |h| h.push(&text, false));
                out.write_all(shown.as_bytes()).and_then(|_| out.flush())
            };
            match written {
                Ok(()) => !stops.stopped(),
                Err(e) => {
                    write_err = Some(e);
                    false
                }
            }
        },
    )?;
    if let Some(e) = write_err {
        return Err(io_err(e));
    }
    let mut tail = stops.push(&decoder.finish());
    if !stops.stopped() {
        tail += &stops.finish();
    }
    printed.push_str(&tail);
    if json {
        let stop = match generated.last() {
            _ if stats.interrupted => "interrupted",
            _ if stops.stopped() => "stop",
            Some(&t) if tokenizer.is_eog(t) && !a.ignore_eos => "eog",
            _ => "length",
        };
        let cache = model.experts().stats().map(|c| {
            let t = c.total();
            serde_json::json!({"hits": t.hits, "misses": t.misses, "hit_rate": t.hit_rate(), "bytes_read": t.bytes_read})
        });
        let line = serde_json::json!({
            "type": "done",
            "text": printed,
            "stop": stop,
            "seed": seed,
            "n_ctx": n_ctx,
            "load_s": load_s,
            "prompt_tokens": stats.prompt_tokens,
            "prompt_s": stats.prompt_time.as_secs_f64(),
            "prompt_tok_per_s": stats.prompt_tok_per_s(),
            "first_token_s": stats.first_token_time.as_secs_f64(),
            "generated_tokens": stats.generated_tokens,
            "decode_evals": stats.decode_evals,
            "generation_s": stats.generation_time.as_secs_f64(),
            "generation_tok_per_s": stats.generation_tok_per_s(),
            "draft": {"passes": stats.draft.passes, "proposed": stats.draft.proposed, "accepted": stats.draft.accepted, "bytes_read": stats.draft.bytes_read},
            "expert_cache": cache,
        });
        writeln!(out, "{line}").and_then(|_| out.flush()).map_err(io_err)?;
    } else {
        let tail = harmony.as_mut().map_or_else(|| tail.clone(), |h| h.push(&tail, true));
        out.write_all(tail.as_bytes()).and_then(|_| out.write_all(b"\n")).and_then(|_| out.flush()).map_err(io_err)?;
    }

    if !quiet {
        eprintln!(
            "moe: prompt: {} tokens in {:.3} s ({:.2} tok/s)",
            stats.prompt_tokens,
            stats.prompt_time.as_secs_f64(),
            stats.prompt_tok_per_s()
        );
        eprintln!(
            "moe: generation: {} tokens, {} decode passes in {:.3} s ({:.2} tok/s)",
            stats.generated_tokens,
            stats.decode_evals,
            stats.generation_time.as_secs_f64(),
            stats.generation_tok_per_s()
        );
        if a.draft.draft > 0 {
            eprintln!("moe: drafts: {}", stats.draft.summary());
        }
    }
    extras.into_inner().finish(stats.prompt_tokens + stats.decode_evals)?;
    if want_stats {
        let report = Report {
            model: &a.model,
            plan: &plan,
            prefetch: model.prefetch(),
            generation: &stats,
            cache: model.experts().stats(),
            layers: session.layer_stats(),
            records: &recorder.borrow().records,
            load_s,
            routing: report.routing.as_ref().map(|log| log.diversity(cfg.n_expert)),
        };
        if o.stats {
            let stderr = std::io::stderr();
            report.write_table(&mut stderr.lock()).map_err(|e| Error::Io { path: "<stderr>".into(), source: e })?;
        }
        if let Some(path) = &o.stats_json {
            report.write_json_file(path).map_err(|e| Error::Io { path: path.clone(), source: e })?;
        }
    }
    if stats.interrupted {
        // As llama.cpp: the output, trace and figures so far are written,
        // and the exit status says a SIGINT ended it.
        eprintln!("moe: interrupted (Ctrl-C): stopped after {} prompt and {} generated tokens", stats.prompt_tokens, stats.generated_tokens);
        std::process::exit(130);
    }
    Ok(())
}

/// The first Ctrl-C (SIGINT) sets the returned flag: generation stops
/// after the current micro-batch or token, and the run ends as if it had
/// finished (output, trace, stats), with exit status 130. A second one
/// exits at once.
fn stop_on_ctrl_c() -> Result<std::sync::Arc<std::sync::atomic::AtomicBool>> {
    use std::sync::atomic::{AtomicBool, Ordering};
    let flag = std::sync::Arc::new(AtomicBool::new(false));
    let set = flag.clone();
    ctrlc::set_handler(move || {
        if set.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
    })
    .map_err(|e| Error::InvalidArgument(format!("cannot handle Ctrl-C: {e}")))?;
    Ok(flag)
}

/// The context of `-n -1` without `-c`: llama.cpp's default, 4096, or
/// the model's training context if smaller.
const OPEN_ENDED_CTX: usize = 4096;

/// The prompt: `-p TEXT`, `-f FILE`, or stdin for `-p -` / `-f -`.
fn read_prompt(text: Option<&str>, file: Option<&std::path::Path>) -> Result<String> {
    let stdin = || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s).map_err(|e| Error::Io { path: "<stdin>".into(), source: e })?;
        Ok(s)
    };
    match (text, file) {
        (Some("-"), _) => stdin(),
        (_, Some(f)) if f.as_os_str() == "-" => stdin(),
        (_, Some(f)) => std::fs::read_to_string(f).map_err(|e| Error::Io { path: f.to_path_buf(), source: e }),
        (Some(t), None) => Ok(t.to_string()),
        (None, None) => Err(Error::InvalidArgument("give a prompt: -p TEXT, -f FILE, or -p - for stdin".into())),
    }
}

/// What a user of llama.cpp would want to be told about the context: `-n`
/// cut short by `-c`, a prompt or context past the training context.
fn context_warnings(prompt: usize, wanted: Option<usize>, n_ctx: usize, n_ctx_train: usize) -> Vec<String> {
    let mut w = Vec::new();
    let room = n_ctx - prompt + 1;
    if let Some(n) = wanted.filter(|&n| n > room) {
        w.push(format!(
            "-n {n}, but after the {prompt}-token prompt the context (-c {n_ctx}) holds {room} more tokens: generating at most {room}; raise -c for more"
        ));
    }
    if prompt > n_ctx_train {
        w.push(format!("the prompt has {prompt} tokens, more than the model's training context ({n_ctx_train}): output past it may degrade"));
    } else if n_ctx > n_ctx_train {
        w.push(format!("-c {n_ctx} is more than the model's training context ({n_ctx_train}): output past it may degrade"));
    }
    w
}

fn default_threads() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

/// Starts `threads` compute threads (default: one per core, and never more
/// than the processors this process may use); returns how many.
pub fn init_threads(threads: Option<u16>) -> Result<usize> {
    let cores = default_threads();
    let threads = match threads.map(usize::from) {
        Some(t) if t > cores => {
            eprintln!("moe: warning: -t {t} is more than the {cores} processors this process may use; using {cores}");
            cores
        }
        Some(t) => t,
        None => cores,
    };
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global()
        .map_err(|e| Error::InvalidArgument(format!("cannot start {threads} threads: {e}")))?;
    moe_quant::pool::set_threads(threads);
    Ok(threads)
}

/// How the resident weights are held, for the memory line.
fn resident_line(report: &SetupReport) -> String {
    let place = if report.resident_copied { "; resident weights in huge pages" } else { "; resident weights mapped" };
    format!("{place}{}", if report.locked { ", locked (mlock)" } else { "" })
}

/// Plans memory for `n_ctx` positions and puts the expert cache (or the
/// mapping) in place, as the offload flags ask.
pub fn setup_offload(model: &mut Model, o: &OffloadArgs, n_ctx: usize, kv_type: KvType, quiet: bool) -> Result<(MemoryPlan, SetupReport)> {
    setup_offload_sessions(model, o, n_ctx, 1, kv_type, quiet)
}

/// [`setup_offload`] for `sessions` sessions sharing `n_ctx` positions
/// (`moe serve --parallel`), each with its own scratch.
pub fn setup_offload_sessions(model: &mut Model, o: &OffloadArgs, n_ctx: usize, sessions: usize, kv_type: KvType, quiet: bool) -> Result<(MemoryPlan, SetupReport)> {
    let footprint = Footprint::of(model);
    // What this process may use (MemAvailable, or its memory cgroup's limit
    // where lower) sizes the default expert cache, and bounds the KV cache
    // and scratch whatever the flags.
    let machine = offload_setup::machine_memory();
    let wants_default = !o.mmap_experts && o.mem.is_none() && o.expert_cache.is_none();
    let request = MemRequest {
        mem: o.mem,
        expert_cache: o.expert_cache,
        mmap_experts: o.mmap_experts,
        available: if wants_default { machine } else { None },
        machine,
        kv_type,
    };
    let plan = offload_setup::plan_sessions(&footprint, n_ctx, sessions, &request).map_err(|e| Error::InvalidArgument(e.to_string()))?;
    let options = OffloadOptions {
        loader_threads: o.loader_threads.into(),
        prefetch: if o.no_prefetch { Prefetch::Off } else { Prefetch::default() },
        prefetch_depth: o.prefetch_depth.into(),
        mlock: o.mlock,
        resident: if o.mmap_resident { ResidentMode::Map } else { ResidentMode::Copy },
        record_routing: o.stats || o.stats_json.is_some(),
        policy: o.cache_policy,
        ..OffloadOptions::default()
    };
    let pb = crate::progress::bytes("copying resident weights into huge pages", 0, quiet);
    let report = offload_setup::setup_with_progress(model, &plan, &options, &mut |done, total| {
        pb.set_length(total);
        pb.set_position(done);
    })?;
    pb.finish_and_clear();
    Ok((plan, report))
}

pub fn random_seed() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(Instant::now())
}
