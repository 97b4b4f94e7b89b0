//! `moe chat`: a conversation with the model in its own chat template.
//! Interactive on a terminal (bin/repl.rs); with stdin from a pipe or file,
//! one message per line (or all of it with --single-turn), answers only on
//! stdout. The conversation logic is `moe::chat`.

use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;
use std::time::Instant;

use clap::Args;
use moe::chat::{ChatOptions, ChatSession, TurnEnd};
use moe::model::Model;
use moe::offload_setup::human;
use moe::sampler::Sampler;
use moe::tokenizer::Tokenizer;
use moe::{Error, Result};

use crate::args::OffloadArgs;
use crate::template_args::TemplateArgs;

#[derive(Args)]
#[command(after_help = "Examples:
  moe chat -m mixtral.gguf                          talk; /help lists the commands
  moe chat -m mixtral.gguf -sys 'Answer in French.' --mem 16G
  echo 'What is 2+2?' | moe chat -m model.gguf        one answer per input line, on stdout
  moe chat -m model.gguf --single-turn < question.txt
  moe chat -m model.gguf --chat-template chatml --context-shift -c 2048")]
pub struct ChatArgs {
    /// Model file (GGUF).
    #[arg(short = 'm', long = "model")]
    pub model: PathBuf,
    /// System prompt (also spelled -sys).
    #[arg(long = "system-prompt", visible_alias = "sys", value_name = "TEXT")]
    pub system_prompt: Option<String>,
    /// Most tokens per answer (-1: until the end of the turn or of the context).
    #[arg(short = 'n', long = "n-predict", default_value_t = -1, allow_negative_numbers = true)]
    pub n_predict: i64,
    /// Context size in tokens (default: 4096, at most the model's training context).
    #[arg(short = 'c', long = "ctx-size")]
    pub ctx_size: Option<usize>,
    /// When the context is full, drop the oldest turns (the system prompt stays) and go on.
    #[arg(long = "context-shift")]
    pub context_shift: bool,
    /// End an answer when its text contains TEXT (repeatable); the answer is kept and shown cut
    /// before it (llama.cpp's reverse prompt -r, llama-server's "stop").
    #[arg(short = 'r', long = "stop", alias = "reverse-prompt", value_name = "TEXT")]
    pub stop: Vec<String>,
    /// Do not read the resident weights into RAM before the first message.
    #[arg(long = "no-warmup")]
    pub no_warmup: bool,
    /// Read all of stdin as one message (when it is not a terminal), answer, and exit.
    #[arg(long = "single-turn")]
    pub single_turn: bool,
    #[command(flatten)]
    pub compute: crate::args::ComputeArgs,
    #[command(flatten)]
    pub sampling: crate::sampling_args::SamplingArgs,
    #[command(flatten)]
    pub template: TemplateArgs,
    #[command(flatten)]
    pub offload: OffloadArgs,
    #[command(flatten)]
    pub profile: crate::profile_args::ProfileArgs,
    #[command(flatten)]
    pub draft: crate::draft_args::DraftArgs,
}

/// Default context of a chat (llama.cpp's), at most the training context.
const DEFAULT_CTX: usize = 4096;

pub fn chat(mut a: ChatArgs, quiet: bool) -> Result<()> {
    if a.offload.stats_json.is_some() {
        return Err(Error::InvalidArgument("--stats-json is for moe run; in a chat, --stats prints the figures at the end and /stats any time".into()));
    }
    let threads = crate::run::init_threads(a.compute.threads)?;
    let kv_type = a.compute.kv.kv_type()?;
    let t_load = Instant::now();
    let mut model = crate::progress::open_model(&a.model, quiet)?;
    let tokenizer = Tokenizer::from_metadata(model.metadata())?;
    let template = a.template.template(&tokenizer, &a.model)?;
    let cfg = model.config().clone();
    let n_ctx = a.ctx_size.filter(|&c| c > 0).unwrap_or_else(|| DEFAULT_CTX.min(cfg.n_ctx_train.max(1)));
    let profile = a.profile.apply(&mut a.offload, &model)?;
    let (plan, _report) = crate::run::setup_offload(&mut model, &a.offload, n_ctx, kv_type, quiet)?;
    a.profile.warm_start(profile.as_ref(), &model, &plan, quiet);
    if !quiet {
        eprintln!(
            "moe: loaded {} ({} layers, {}) in {:.2} s; {threads} threads, ctx {n_ctx}",
            a.model.display(),
            cfg.n_layer,
            if cfg.is_moe() { format!("MoE {}×top-{}", cfg.n_expert, cfg.n_expert_used) } else { "dense".into() },
            t_load.elapsed().as_secs_f64()
        );
        eprintln!("moe: memory: {}", plan.describe());
        eprintln!("moe: chat template: {}", template.source());
        for note in &plan.notes {
            eprintln!("moe: note: {note}");
        }
    }
    if !a.no_warmup {
        crate::progress::warm_up(&model, quiet)?;
    }
    let mut session = model.session_with_kv(n_ctx, kv_type)?;
    session.set_batch_size(a.compute.batch_size)?;
    let opts = ChatOptions {
        n_predict: usize::try_from(a.n_predict).ok().filter(|&n| n > 0),
        context_shift: a.context_shift,
        draft: a.draft.options(),
        stop: a.stop.clone(),
        reasoning: a.template.reasoning(std::io::stdout().is_terminal()),
    };
    let mut chat = ChatSession::new(session, &tokenizer, template, a.system_prompt.clone(), opts);
    let mut sampler = a.sampling.sampler();
    if std::io::stdin().is_terminal() {
        crate::repl::repl(&mut chat, &model, &mut sampler, quiet)?;
    } else {
        piped(&mut chat, &mut sampler, a.single_turn, quiet)?;
    }
    if a.offload.stats {
        write_stats(&mut std::io::stderr().lock(), &chat, &model, None).map_err(|e| Error::Io { path: "<stderr>".into(), source: e })?;
    }
    Ok(())
}

/// Answers each line of stdin (or all of it), writing only the answers to
/// stdout, one line each.
fn piped(chat: &mut ChatSession<'_>, sampler: &mut Sampler, single_turn: bool, quiet: bool) -> Result<()> {
    let mut input = String::new();
    std::io::stdin().read_to_string(&mut input).map_err(|e| Error::Io { path: "<stdin>".into(), source: e })?;
    let messages: Vec<&str> =
        if single_turn { vec![input.trim_end_matches(['\r', '\n'])] } else { input.lines().filter(|l| !l.trim().is_empty()).collect() };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let io_err = crate::stdout_error;
    for message in messages.into_iter().filter(|m| !m.trim().is_empty()) {
        let mut write_err = None;
        let st = chat.respond(message, sampler, |piece| match out.write_all(piece.as_bytes()).and_then(|_| out.flush()) {
            Ok(()) => true,
            Err(e) => {
                write_err = Some(e);
                false
            }
        })?;
        if let Some(e) = write_err {
            return Err(io_err(e));
        }
        out.write_all(b"\n").and_then(|_| out.flush()).map_err(io_err)?;
        if !quiet {
            eprintln!(
                "moe: turn {}: prompt {} tokens ({} reused from the KV cache, {} evaluated in {:.3} s); answer {} tokens in {:.3} s ({:.1} tok/s)",
                chat.totals().turns,
                st.prompt_tokens,
                st.reused_tokens,
                st.evaluated_tokens,
                st.prompt_time.as_secs_f64(),
                st.tokens.len(),
                st.generation_time.as_secs_f64(),
                st.generation_tok_per_s()
            );
        }
        if st.end == TurnEnd::ContextFull {
            eprintln!(
                "moe: the context is full ({} positions): the answer was cut; use --context-shift or a larger -c",
                chat.session().n_ctx()
            );
        }
    }
    Ok(())
}

/// `/stats`: the last turn, the totals, and the expert cache per layer.
pub fn write_stats(w: &mut dyn Write, chat: &ChatSession<'_>, model: &Model, last: Option<&moe::chat::TurnStats>) -> std::io::Result<()> {
    if let Some(st) = last {
        writeln!(
            w,
            "last turn: prompt {} tokens: {} reused from the KV cache, {} evaluated ({:.3} s, {:.1} tok/s); answer {} tokens ({:.3} s, {:.1} tok/s){}",
            st.prompt_tokens,
            st.reused_tokens,
            st.evaluated_tokens,
            st.prompt_time.as_secs_f64(),
            st.prompt_tok_per_s(),
            st.tokens.len(),
            st.generation_time.as_secs_f64(),
            st.generation_tok_per_s(),
            if st.dropped_exchanges > 0 { format!("; context shift dropped {} exchanges", st.dropped_exchanges) } else { String::new() }
        )?;
    }
    let t = chat.totals();
    writeln!(
        w,
        "chat: {} turns; prompts {} tokens, {} reused, {} evaluated; {} generated; KV cache {} of {} positions",
        t.turns,
        t.prompt_tokens,
        t.reused_tokens,
        t.evaluated_tokens,
        t.generated_tokens,
        chat.kv_len(),
        chat.session().n_ctx()
    )?;
    if t.draft.draft_passes > 0 || chat.options().draft.max > 0 {
        writeln!(w, "drafts: {}", t.draft.summary())?;
    }
    match model.experts().stats() {
        None if !model.config().is_moe() => writeln!(w, "experts: dense model, no experts"),
        None => writeln!(w, "experts: read through the mapping (--mmap-experts), no cache counters"),
        Some(c) => {
            let total = c.total();
            writeln!(
                w,
                "expert cache: {} of {}; hits {} misses {} ({}); per layer hit rate so far:",
                human(c.resident_bytes),
                human(c.budget_bytes),
                total.hits,
                total.misses,
                pct(total.hit_rate())
            )?;
            for (row, chunk) in c.layers.chunks(8).enumerate() {
                let cells: Vec<String> =
                    chunk.iter().enumerate().map(|(i, l)| format!("{:>3}:{:>6}", row * 8 + i, pct(l.hit_rate()))).collect();
                writeln!(w, "  {}", cells.join(" "))?;
            }
            Ok(())
        }
    }
}

fn pct(r: Option<f64>) -> String {
    r.map_or_else(|| "-".into(), |r| format!("{:.1}%", 100.0 * r))
}
