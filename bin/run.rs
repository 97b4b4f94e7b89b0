//! `moe run`: stream generated text to stdout, timings to stderr.

use std::io::Write;
use std::time::Instant;

use moe::generate::{generate, GenerateOptions};
use moe::model::Model;
use moe::sampler::{Sampler, SamplerParams};
use moe::tokenizer::{StreamDecoder, Tokenizer};
use moe::{Error, Result};

use crate::args::RunArgs;

pub fn run(a: RunArgs) -> Result<()> {
    let threads = a.threads.map(usize::from).unwrap_or_else(default_threads);
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global()
        .map_err(|e| Error::InvalidArgument(format!("cannot start {threads} threads: {e}")))?;

    let t_load = Instant::now();
    let model = Model::open(&a.model)?;
    let tokenizer = Tokenizer::from_metadata(model.metadata())?;
    let load_s = t_load.elapsed().as_secs_f64();
    let cfg = model.config();

    let prompt = tokenizer.encode(&a.prompt, !a.no_bos, true)?;
    let n_ctx = match a.ctx_size {
        Some(0) | None => (prompt.len() + a.n_predict).clamp(1, cfg.n_ctx_train.max(prompt.len() + 1)),
        Some(c) => c,
    };
    if prompt.len() + a.n_predict.min(1) > n_ctx {
        return Err(Error::InvalidArgument(format!(
            "the prompt has {} tokens but the context holds {n_ctx}; raise -c/--ctx-size",
            prompt.len()
        )));
    }
    let n_predict = a.n_predict.min(n_ctx - prompt.len() + 1);
    let seed = a.seed.unwrap_or_else(random_seed);
    let kind = if cfg.is_moe() {
        format!("MoE {}×top-{}", cfg.n_expert, cfg.n_expert_used)
    } else {
        "dense".to_string()
    };
    eprintln!(
        "moe: loaded {} ({} layers, embd {}, {kind}, vocab {}) in {load_s:.2} s; {threads} threads, ctx {n_ctx}, seed {seed}",
        a.model.display(),
        cfg.n_layer,
        cfg.n_embd,
        cfg.n_vocab,
    );

    let mut session = model.session(n_ctx)?;
    let mut sampler = Sampler::new(SamplerParams {
        temp: a.temp,
        top_k: a.top_k,
        top_p: a.top_p,
        min_p: a.min_p,
        repeat_penalty: a.repeat_penalty,
        repeat_last_n: a.repeat_last_n,
        seed,
    });
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let io_err = |e: std::io::Error| Error::Io { path: "<stdout>".into(), source: e };
    if !a.no_display_prompt {
        out.write_all(a.prompt.as_bytes()).and_then(|_| out.flush()).map_err(io_err)?;
    }
    let mut decoder = StreamDecoder::new(&tokenizer, true);
    let mut write_err = None;
    let stats = generate(
        &mut session,
        &tokenizer,
        &mut sampler,
        &prompt,
        &GenerateOptions { n_predict, ignore_eos: a.ignore_eos },
        |id| {
            let text = decoder.push(id);
            match out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
                Ok(()) => true,
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
    let tail = decoder.finish();
    out.write_all(tail.as_bytes()).and_then(|_| out.write_all(b"\n")).and_then(|_| out.flush()).map_err(io_err)?;

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
    Ok(())
}

fn default_threads() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

fn random_seed() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(Instant::now())
}
