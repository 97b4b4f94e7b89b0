//! `moe bench`: prompt-processing and generation speed, measured the way
//! llama-bench measures it, so that the two tables compare line by line:
//! - `ppN`: a fresh context, N random tokens as one prompt (micro-batches
//!   of `-b`), logits of the last only;
//! - `tgN`: a fresh context, N decode steps of one token each (BOS first,
//!   then random tokens);
//! - `-d D` (llama-bench's depth): the same tests after a prompt of D
//!   random tokens already in the KV cache (evaluated once, not timed; each
//!   repetition truncates the cache back to it), named `ppN @ dD`;
//! - one warm-up run of each test first; then `-r` repetitions, reported as
//!   mean ± standard deviation of tokens per second;
//! - with `--draft N`, each `tgN` instead generates N tokens greedily from a
//!   prompt (`--draft-prompt`, default a passage to repeat), once without
//!   drafting and once with (alternated run by run), reporting both, the
//!   acceptance and the expert bytes read per generated token;
//!   `--draft-echo N` first extends that prompt with the model's own
//!   greedy continuation, so that even a model that copies nothing has
//!   text to repeat.

use std::time::Instant;

use moe::generate::{generate, GenerateOptions};
use moe::model::{KvType, Model, Session};
use moe::sampler::{Sampler, SamplerParams};
use moe::speculative::{DraftOptions, DraftStats};
use moe::tokenizer::Tokenizer;
use moe::Result;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::args::BenchArgs;
use crate::run::{init_threads, setup_offload};

struct Test {
    name: String,
    n_depth: usize,
    tok_per_s: Vec<f64>,
    /// Drafting's counts over the measured repetitions, for `--draft` tests.
    draft: Option<DraftStats>,
}

/// `moe bench --draft`'s default prompt: a passage and the start of its
/// repetition, which a model continues by copying (as when it summarises,
/// quotes or edits a given text).
pub const DRAFT_PROMPT: &str = "Copy the notes below exactly.\n\nNotes: The expert cache keeps the most recently used experts in memory. \
When the router picks an expert that is not in the cache, the loader reads it from disk. Prefetching reads the experts of the next \
layer while the current layer computes. A larger cache means fewer reads, and fewer reads mean faster tokens.\n\nCopy: The expert cache keeps";

pub fn bench(a: BenchArgs) -> Result<()> {
    let threads = init_threads(a.compute.threads)?;
    let kv_type = a.compute.kv.kv_type()?;
    let mut model = Model::open(&a.model)?;
    let tokenizer = Tokenizer::from_metadata(model.metadata());
    let bos = tokenizer.as_ref().ok().and_then(|t| t.bos());
    let draft_prompt = match (&tokenizer, a.draft.draft > 0) {
        (Ok(t), true) => t.encode(a.draft_prompt.as_deref().unwrap_or(DRAFT_PROMPT), true, true)?,
        (Err(e), true) => return Err(moe::Error::InvalidArgument(format!("--draft needs the model's tokenizer for its prompt: {e}"))),
        _ => Vec::new(),
    };
    if a.draft.draft > 0 && a.n_depth.iter().any(|&d| d > 0) {
        return Err(moe::Error::InvalidArgument("-d/--n-depth applies to the pp and tg tests, not to --draft's generation tests".into()));
    }
    let echo_len = if a.draft_echo > 0 { a.draft_echo + ECHO_TAIL } else { 0 };
    let max_depth = a.n_depth.iter().copied().max().unwrap_or(0);
    let n_ctx = a.n_prompt.iter().chain(&a.n_gen).copied().max().unwrap_or(0).max(1) + draft_prompt.len() + echo_len + max_depth;
    setup_offload(&mut model, &a.offload, n_ctx, kv_type, true)?;
    let draft_prompt = match &tokenizer {
        Ok(t) if a.draft_echo > 0 => echo_prompt(&model, t, draft_prompt, a.draft_echo, a.compute.batch_size, kv_type)?,
        _ => draft_prompt,
    };
    let n_vocab = model.config().n_vocab as u32;
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let mut random_tokens = |n: usize| -> Vec<u32> { (0..n).map(|_| rng.random_range(0..n_vocab)).collect() };

    let mut tests = Vec::new();
    let depths: Vec<(usize, Vec<u32>)> = a.n_depth.iter().map(|&d| (d, random_tokens(d))).collect();
    for (depth, filler) in &depths {
        let depth = *depth;
        let name = |test: String| if depth > 0 { format!("{test} @ d{depth}") } else { test };
        for &n in a.n_prompt.iter().filter(|&&n| n > 0) {
            let tokens = random_tokens(n);
            let tok_per_s = at_depth(&model, filler, n, a.compute.batch_size, kv_type, a.repetitions, |s| s.prefill_last(&tokens).map(|_| ()))?;
            tests.push(Test { name: name(format!("pp{n}")), n_depth: depth, tok_per_s, draft: None });
        }
        for &n in a.n_gen.iter().filter(|&&n| n > 0 && a.draft.draft == 0) {
            let mut tokens = random_tokens(n);
            if let Some(b) = bos {
                tokens[0] = b;
            }
            let tok_per_s = at_depth(&model, filler, n, a.compute.batch_size, kv_type, a.repetitions, |s| {
                for &tok in &tokens {
                    s.forward(tok)?;
                }
                Ok(())
            })?;
            tests.push(Test { name: name(format!("tg{n}")), n_depth: depth, tok_per_s, draft: None });
        }
    }
    for &n in a.n_gen.iter().filter(|&&n| n > 0 && a.draft.draft > 0) {
        let tokenizer = tokenizer.as_ref().expect("checked above");
        let run = |draft: DraftOptions| -> Result<(f64, DraftStats)> {
            let mut s = fresh_session(&model, draft_prompt.len() + n + 1, a.compute.batch_size, kv_type)?;
            let mut sampler = Sampler::new(SamplerParams { temp: 0.0, ..SamplerParams::default() });
            // n + 1 tokens: n fed back, as tgN runs n decode steps.
            let opts = GenerateOptions { n_predict: n + 1, ignore_eos: true, draft, ..Default::default() };
            let st = generate(&mut s, tokenizer, &mut sampler, &draft_prompt, &opts, |_| true)?;
            Ok((st.generation_tok_per_s(), st.draft))
        };
        // Without and with drafting, alternated run by run (same minutes),
        // after one warm-up run of each.
        let variants = [DraftOptions { max: 0, ..a.draft.options() }, a.draft.options()];
        let mut results: Vec<(Vec<f64>, DraftStats)> = vec![(Vec::new(), DraftStats::default()); 2];
        for rep in 0..=a.repetitions {
            for (v, r) in variants.iter().zip(results.iter_mut()) {
                let (tok_s, d) = run(*v)?;
                if rep > 0 {
                    r.0.push(tok_s);
                    r.1.add(&d);
                }
            }
        }
        for (v, (tok_per_s, d)) in variants.iter().zip(results) {
            tests.push(Test { name: format!("tg{n} draft {}", v.max), n_depth: 0, tok_per_s, draft: Some(d) });
        }
    }
    let info = ModelInfo::of(&model, &a.model);
    match a.output.as_str() {
        "json" => print_json(&info, threads, a.compute.batch_size, &tests),
        _ => print_table(&info, threads, a.compute.batch_size, &tests),
    }
}

/// Prompt tokens repeated after the echo to set the model back on its
/// own text (enough for the longest default n-gram, 4).
const ECHO_TAIL: usize = 4;

/// `--draft-echo n`: `prompt`, its greedy continuation of `n` tokens, and
/// the prompt's last [`ECHO_TAIL`] tokens again, after which the model
/// writes that continuation once more (exactly for a model whose next
/// token depends mostly on the current one, as a synthetic model's does;
/// by copying for a trained one).
fn echo_prompt(model: &Model, tokenizer: &Tokenizer, prompt: Vec<u32>, n: usize, n_batch: usize, kv: KvType) -> Result<Vec<u32>> {
    let mut s = fresh_session(model, prompt.len() + n + 1, n_batch, kv)?;
    let mut sampler = Sampler::new(SamplerParams { temp: 0.0, ..SamplerParams::default() });
    let opts = GenerateOptions { n_predict: n, ignore_eos: true, draft: DraftOptions { max: 0, ..DraftOptions::default() }, ..Default::default() };
    let mut echo = Vec::with_capacity(n);
    generate(&mut s, tokenizer, &mut sampler, &prompt, &opts, |t| {
        echo.push(t);
        true
    })?;
    let tail = prompt[prompt.len().saturating_sub(ECHO_TAIL)..].to_vec();
    eprintln!("moe: bench: --draft-echo: prompt of {} tokens + {} generated + {} repeated", prompt.len(), echo.len(), tail.len());
    Ok([prompt, echo, tail].concat())
}

fn fresh_session(model: &Model, n_ctx: usize, n_batch: usize, kv: KvType) -> Result<Session<'_>> {
    let mut s = model.session_with_kv(n_ctx, kv)?;
    s.set_batch_size(n_batch)?;
    Ok(s)
}

/// One warm-up run, then `reps` measured ones.
fn repeat(mut run: impl FnMut() -> Result<f64>, reps: usize) -> Result<Vec<f64>> {
    run()?;
    (0..reps).map(|_| run()).collect()
}

/// Tokens per second of `test` (which runs `n` tokens) on a session whose
/// KV cache holds `filler` first: the filler is evaluated once, untimed,
/// and each run truncates the cache back to it.
fn at_depth(
    model: &Model,
    filler: &[u32],
    n: usize,
    n_batch: usize,
    kv: KvType,
    reps: usize,
    mut test: impl FnMut(&mut Session<'_>) -> Result<()>,
) -> Result<Vec<f64>> {
    let mut s = fresh_session(model, filler.len() + n, n_batch, kv)?;
    if !filler.is_empty() {
        s.prefill_last(filler)?;
    }
    repeat(
        || {
            s.truncate(filler.len());
            let t = Instant::now();
            test(&mut s)?;
            Ok(n as f64 / t.elapsed().as_secs_f64())
        },
        reps,
    )
}

fn mean_sd(xs: &[f64]) -> (f64, f64) {
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let var = if xs.len() > 1 { xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0) } else { 0.0 };
    (mean, var.sqrt())
}

struct ModelInfo {
    name: String,
    bytes: u64,
    params: u64,
}

impl ModelInfo {
    fn of(model: &Model, path: &std::path::Path) -> ModelInfo {
        let f = model.file();
        ModelInfo {
            name: path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned()),
            bytes: f.tensors().iter().map(|t| t.n_bytes).sum(),
            params: f.tensors().iter().map(|t| t.dims.iter().product::<u64>()).sum(),
        }
    }
}

fn print_table(m: &ModelInfo, threads: usize, n_batch: usize, tests: &[Test]) -> moe::Result<()> {
    let size = if m.bytes >= 1 << 30 { format!("{:.2} GiB", m.bytes as f64 / (1u64 << 30) as f64) } else { format!("{:.2} MiB", m.bytes as f64 / (1u64 << 20) as f64) };
    let params = if m.params >= 1_000_000_000 { format!("{:.2} B", m.params as f64 / 1e9) } else { format!("{:.2} M", m.params as f64 / 1e6) };
    outln!("| model | size | params | kernels | threads | n_batch | test | t/s |")?;
    outln!("| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: |")?;
    for t in tests {
        let (mean, sd) = mean_sd(&t.tok_per_s);
        outln!(
            "| {} | {size} | {params} | {} | {threads} | {n_batch} | {} | {mean:.2} ± {sd:.2} |",
            m.name,
            moe_quant::tier().name(),
            t.name
        )?;
    }
    for t in tests {
        if let Some(d) = &t.draft {
            outln!("\n{}: {}", t.name, d.summary())?;
        }
    }
    Ok(())
}

fn print_json(m: &ModelInfo, threads: usize, n_batch: usize, tests: &[Test]) -> moe::Result<()> {
    let items: Vec<String> = tests
        .iter()
        .map(|t| {
            let (mean, sd) = mean_sd(&t.tok_per_s);
            let samples: Vec<String> = t.tok_per_s.iter().map(|x| format!("{x:.4}")).collect();
            format!(
                "{{\"model\": {:?}, \"model_size\": {}, \"model_n_params\": {}, \"kernels\": {:?}, \"n_threads\": {threads}, \"n_batch\": {n_batch}, \"n_depth\": {}, \"test\": {:?}, \"avg_ts\": {mean:.4}, \"stddev_ts\": {sd:.4}, \"samples_ts\": [{}]{}}}",
                m.name,
                m.bytes,
                m.params,
                moe_quant::tier().name(),
                t.n_depth,
                t.name,
                samples.join(", "),
                t.draft.map_or(String::new(), |d| format!(
                    ", \"draft\": {{\"passes\": {}, \"proposed\": {}, \"accepted\": {}, \"tokens\": {}, \"bytes_read\": {}, \"single_passes\": {}, \"single_bytes_read\": {}}}",
                    d.passes, d.proposed, d.accepted, d.tokens, d.bytes_read, d.single_passes, d.single_bytes_read
                ))
            )
        })
        .collect();
    outln!("[\n  {}\n]", items.join(",\n  "))?;
    Ok(())
}
