//! `moe serve`: the OpenAI-compatible HTTP server (moe::server).

use std::path::PathBuf;
use std::time::Instant;

use clap::builder::TypedValueParser as _;
use clap::Args;
use moe::model::KvType;
use moe::server::{Loaded, LoadedModel, ServerConfig};
use moe::tokenizer::Tokenizer;
use moe::{Error, Result};

use crate::args::OffloadArgs;
use crate::template_args::TemplateArgs;

#[derive(Args, Debug)]
#[command(after_help = "Examples:
  moe serve -m model.gguf                                  # http://127.0.0.1:8080, one slot
  moe serve -m model.gguf --parallel 4 -c 16384 --expert-cache 8G
  moe serve -m model.gguf --host 0.0.0.0 --api-key SECRET   # reachable from the network: set a key
  curl http://127.0.0.1:8080/v1/chat/completions -H 'Content-Type: application/json' \\
       -d '{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}]}'")]
pub struct ServeArgs {
    /// Model file (GGUF).
    #[arg(short = 'm', long = "model")]
    pub model: PathBuf,
    /// Address to listen on (127.0.0.1: this machine only).
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Port to listen on (0: any free port, printed).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Conversations answered at once, each with its own KV cache of ctx-size / parallel positions
    /// (llama-server's -np).
    #[arg(long = "parallel", visible_alias = "np", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256).map(usize::from))]
    pub parallel: usize,
    /// Requests that may wait for a free slot; more get a 503.
    #[arg(long = "queue", default_value_t = 64)]
    pub queue: usize,
    /// Require `Authorization: Bearer KEY` on every endpoint but /health.
    #[arg(long = "api-key", value_name = "KEY")]
    pub api_key: Option<String>,
    /// The model's name in /v1/models and requests (default: the file name without .gguf).
    #[arg(short = 'a', long = "alias")]
    pub alias: Option<String>,
    /// Total context in tokens, split evenly between the slots (default: 4096 per slot, at most the
    /// model's training context).
    #[arg(short = 'c', long = "ctx-size")]
    pub ctx_size: Option<usize>,
    /// Tokens an answer may have when a request does not say (-1: until the end of the turn or of
    /// the slot's context).
    #[arg(short = 'n', long = "n-predict", default_value_t = -1, allow_negative_numbers = true)]
    pub n_predict: i64,
    /// Do not read the resident weights into RAM before serving (the first request then does).
    #[arg(long = "no-warmup")]
    pub no_warmup: bool,
    /// Largest request body in bytes.
    #[arg(long = "max-body", default_value_t = 8 << 20)]
    pub max_body: usize,
    /// Connections open at once; more are answered 503.
    #[arg(long = "max-connections", default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..).map(|v| v as usize))]
    pub max_connections: usize,
    /// Seconds a client has to send a request's headers, and again its body (llama-server's --timeout).
    #[arg(long = "timeout", visible_alias = "to", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout: u64,
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

/// Default context per slot (llama-server's default total for one slot).
const DEFAULT_CTX_PER_SLOT: usize = 4096;

pub fn serve(a: ServeArgs, quiet: bool) -> Result<()> {
    if a.offload.stats_json.is_some() {
        return Err(Error::InvalidArgument("--stats-json is for moe run; the server reports its counters at /metrics".into()));
    }
    let threads = crate::run::init_threads(a.compute.threads)?;
    let kv_type: KvType = a.compute.kv.kv_type()?;
    let model_id = a.alias.clone().unwrap_or_else(|| a.model.file_stem().map_or_else(|| "model".into(), |s| s.to_string_lossy().into_owned()));
    // The context is known before the model loads only if given; else the
    // loader caps the default at the training context (read from the header).
    let header_ctx = moe::gguf::GgufFile::open(&a.model).ok().and_then(|f| moe::config::ModelConfig::from_metadata(f.metadata()).ok()).map(|c| c.n_ctx_train);
    let n_ctx_per_slot = match a.ctx_size.filter(|&c| c > 0) {
        Some(total) => total / a.parallel,
        None => DEFAULT_CTX_PER_SLOT.min(header_ctx.unwrap_or(DEFAULT_CTX_PER_SLOT).max(1)),
    };
    if n_ctx_per_slot < 2 {
        return Err(Error::InvalidArgument(format!("-c {} leaves {n_ctx_per_slot} positions per slot for --parallel {}", a.ctx_size.unwrap_or(0), a.parallel)));
    }
    let defaults = a.sampling.sampler().params().clone();
    let cfg = ServerConfig {
        model_id: model_id.clone(),
        api_key: a.api_key.clone(),
        parallel: a.parallel,
        queue: a.queue,
        n_ctx_per_slot,
        defaults,
        default_max_tokens: usize::try_from(a.n_predict).ok(),
        max_body_bytes: a.max_body,
        max_connections: a.max_connections,
        read_timeout: std::time::Duration::from_secs(a.timeout),
    };
    let addr = format!("{}:{}", a.host, a.port);
    let (model_path, mut offload, profile_args, template_args, batch, parallel, draft, warm) =
        (a.model.clone(), a.offload.clone(), a.profile.clone(), a.template.clone(), a.compute.batch_size, a.parallel, a.draft.options(), !a.no_warmup);
    let t_load = Instant::now();
    let load = move || -> Result<LoadedModel> {
        let mut model = crate::progress::open_model(&model_path, quiet)?;
        let tokenizer = Tokenizer::from_metadata(model.metadata())?;
        let template = template_args.template(&tokenizer, &model_path)?;
        let profile = profile_args.apply(&mut offload, &model)?;
        let (plan, _report) = crate::run::setup_offload_sessions(&mut model, &offload, n_ctx_per_slot * parallel, parallel, kv_type, quiet)?;
        profile_args.warm_start(profile.as_ref(), &model, &plan, quiet);
        if !quiet {
            eprintln!("moe: memory: {}", plan.describe());
            eprintln!("moe: chat template: {}", template.source());
        }
        if warm {
            crate::progress::warm_up(&model, quiet)?;
        }
        Ok(LoadedModel { engine: Loaded { model, n_ctx_per_slot, kv_type, n_batch: batch, draft }, tokenizer, template })
    };
    let quiet_listen = quiet;
    moe::server::serve(
        cfg,
        &addr,
        load,
        move |local| {
            if !quiet_listen {
                eprintln!("moe: listening on http://{local} ({parallel} slots of {n_ctx_per_slot} tokens, {threads} threads); loading the model");
            }
            if a.port == 0 {
                // Tests and scripts read the port from here.
                use std::io::Write as _;
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "listening on http://{local}").and_then(|_| out.flush());
            }
        },
        move || {
            if !quiet {
                eprintln!("moe: model '{model_id}' loaded in {:.2} s; serving (Ctrl-C stops)", t_load.elapsed().as_secs_f64());
            }
        },
    )
}
