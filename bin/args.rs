//! Command-line arguments. Flag names follow llama.cpp's where they exist.

use std::path::PathBuf;

use clap::builder::TypedValueParser;
use clap::{Args, Parser, Subcommand};
use moe::model::KvElem;
use moe::offload_setup::Size;

#[derive(Parser)]
#[command(name = "moe", version, about = "Run Mixture-of-Experts LLMs from GGUF files on ordinary CPUs")]
pub struct Cli {
    /// No progress or informational lines on stderr (errors and warnings still show).
    #[arg(short = 'q', long = "quiet", global = true)]
    pub quiet: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Generate text from a prompt, streaming it to stdout.
    Run(RunArgs),
    /// Print a prompt's token ids (the last line is a JSON array).
    Tokenize(TokenizeArgs),
    /// Measure prompt processing and generation speed, as llama-bench does.
    Bench(BenchArgs),
    /// Write a synthetic Mixtral-8x7B- or Mistral-7B-shaped GGUF of random weights (for benchmarks).
    Synth(SynthArgs),
    /// Measure how fast the expert cache reads this model's experts (random experts, every read a miss).
    DiskBench(DiskBenchArgs),
    /// Talk with the model in its own chat template (interactive on a terminal; one answer per line from a pipe).
    Chat(crate::chat::ChatArgs),
    /// Serve the model over HTTP with OpenAI's API (/v1/chat/completions, /v1/completions, /v1/models), as llama-server.
    Serve(crate::serve::ServeArgs),
    /// Print the prompt a chat template makes of some messages (to debug templates).
    RenderTemplate(crate::render_template::RenderTemplateArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(crate::completions::CompletionsArgs),
    /// Print the man page (roff) of moe or of one subcommand, or write them all to a directory.
    Man(crate::completions::ManArgs),
    /// Turn a dense llama model into an MoE of copies of its FFN, with routers fitted to real text.
    Upcycle(crate::upcycle::UpcycleArgs),
    /// Replay a routing trace (moe run --trace) against cache sizes and eviction policies.
    Simulate(crate::simulate::SimulateArgs),
    /// Show a model's shape, tensors, resident vs expert bytes, tokenizer, and the --mem plan.
    Inspect(crate::inspect::InspectArgs),
    /// Plot a routing trace: expert use, hit rate per layer and vs cache size, bytes read over time.
    Report(crate::report::ReportArgs),
    /// Calibrate the expert cache on this machine and write a profile for `moe run --profile`.
    Tune(crate::tune::TuneArgs),
}

#[derive(Args)]
#[command(after_help = "Examples:
  moe disk-bench -m mixtral.gguf
  moe disk-bench -m mixtral.gguf --reads 96 --loader-threads 8 --buffered
  moe disk-bench -m qwen3-30b-a3b.gguf --reads 768 --seed 3")]
pub struct DiskBenchArgs {
    /// Model file (GGUF, MoE).
    #[arg(short = 'm', long = "model")]
    pub model: PathBuf,
    /// Experts to read (each once, at most all of them).
    #[arg(long, default_value_t = 48)]
    pub reads: usize,
    /// Experts requested together, as the forward pass requests a layer's
    /// top-k [default: the model's experts used per token].
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    pub group: Option<u16>,
    /// Which pseudo-random experts to read: another seed reads others (a
    /// repeated run otherwise rereads what a disk or host cache may hold).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Threads reading experts.
    #[arg(long = "loader-threads", value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub loader_threads: u16,
    /// Buffered reads instead of O_DIRECT.
    #[arg(long)]
    pub buffered: bool,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum LayoutArg {
    /// `blk.N.ffn_{gate,up,down}_exps.weight` (what llama.cpp loads today).
    Merged,
    /// `blk.N.ffn_{gate,up,down}.E.weight` (Dec 2023 files).
    PerExpert,
}

#[derive(Args)]
#[command(after_help = "Examples:
  moe synth -o models/mixtral-8x7b-q4_k_m.gguf                  28 GB, Mixtral-8x7B-shaped
  moe synth --preset mistral-7b --type q4_0 -o models/m7b.gguf
  moe synth --layers 2 --embd 256 --ff 512 -o tiny.gguf --dry-run")]
pub struct SynthArgs {
    /// Shape: mixtral-8x7b, mistral-7b, qwen3-30b-a3b, olmoe-1b-7b or gpt-oss-20b.
    #[arg(long, default_value = "mixtral-8x7b")]
    pub preset: String,
    /// Type mix, as llama-quantize makes it: q4_k_m, q4_0, q8_0 or mxfp4_moe (experts MXFP4,
    /// the rest Q8_0). Default: the preset's (q4_k_m; gpt-oss-20b: mxfp4_moe, as published).
    #[arg(long = "type")]
    pub mix: Option<String>,
    /// Output file (written to FILE.partial, renamed when complete).
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Overwrite an existing output file.
    #[arg(long)]
    pub force: bool,
    /// Print the tensor plan and sizes; write nothing.
    #[arg(long = "dry-run")]
    pub dry_run: bool,
    /// Number of layers (default: the preset's).
    #[arg(long)]
    pub layers: Option<usize>,
    /// Embedding width.
    #[arg(long)]
    pub embd: Option<usize>,
    /// FFN width (of each expert).
    #[arg(long)]
    pub ff: Option<usize>,
    /// Attention heads.
    #[arg(long)]
    pub heads: Option<usize>,
    /// Key/value heads.
    #[arg(long = "kv-heads")]
    pub kv_heads: Option<usize>,
    /// Experts per layer (MoE presets).
    #[arg(long)]
    pub experts: Option<usize>,
    /// Experts used per token.
    #[arg(long = "experts-used")]
    pub experts_used: Option<usize>,
    /// Size of the byte-level vocab (ignored with --vocab-from).
    #[arg(long = "vocab-size")]
    pub vocab_size: Option<usize>,
    /// Training context length written to the file.
    #[arg(long)]
    pub ctx: Option<usize>,
    /// Expert tensor layout.
    #[arg(long, value_enum, default_value = "merged")]
    pub layout: LayoutArg,
    /// Seed of the random weights (same seed, same bytes).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Copy the tokenizer from this GGUF (e.g. a 32000-token llama SPM vocab) instead of a byte-level one.
    #[arg(long = "vocab-from", value_name = "GGUF")]
    pub vocab_from: Option<PathBuf>,
    /// RMS of attn_output and ffn_down relative to 1/sqrt(fan-in); small keeps each hidden state
    /// close to its token's embedding, so routing varies from token to token.
    #[arg(long = "branch-scale", default_value_t = 0.05, value_parser = positive_f32, allow_negative_numbers = true)]
    pub branch_scale: f32,
}

#[derive(Args)]
#[command(after_help = "Examples:
  moe run -m mixtral.gguf -p 'The capital of France is' -n 32
  moe run -m mixtral.gguf -p 'Why is the sky blue?' --chat --temp 0      through the chat template
  moe run -m mixtral.gguf -p 'Hello' --mem 12G --stats                  fit in 12 GiB; cache figures
  moe run -m model.gguf -p 'Hi' -o json | jq .                          one JSON object per line
  moe run -m mixtral.gguf -p \"$(cat notes.txt) Summarise:\" --draft 8     draft by prompt lookup")]
pub struct RunArgs {
    /// Model file (GGUF).
    #[arg(short = 'm', long = "model")]
    pub model: PathBuf,
    /// Prompt text ('-' reads it from stdin).
    #[arg(short = 'p', long = "prompt", required_unless_present = "file", conflicts_with = "file")]
    pub prompt: Option<String>,
    /// Read the prompt from FILE ('-': stdin), as llama.cpp's -f.
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Tokens to generate (-1: until end of text or a full context, as llama.cpp; -2 the same).
    #[arg(short = 'n', long = "n-predict", default_value_t = 128, allow_negative_numbers = true, value_parser = clap::value_parser!(i64).range(-2..))]
    pub n_predict: i64,
    /// Context size in tokens (default: prompt + n-predict, at most the model's training context).
    #[arg(short = 'c', long = "ctx-size")]
    pub ctx_size: Option<usize>,
    /// Keep generating past end-of-generation tokens.
    #[arg(long = "ignore-eos")]
    pub ignore_eos: bool,
    /// Stop when the generated text contains TEXT (repeatable); the output ends before it
    /// (llama.cpp's reverse prompt -r, llama-server's "stop").
    #[arg(short = 'r', long = "stop", alias = "reverse-prompt", value_name = "TEXT")]
    pub stop: Vec<String>,
    /// Do not add the BOS token even if the model asks for it.
    #[arg(long = "no-bos")]
    pub no_bos: bool,
    /// Do not echo the prompt before the generated text.
    #[arg(long = "no-display-prompt")]
    pub no_display_prompt: bool,
    /// -p is one user message: render it with the chat template and print only the answer
    /// (llama.cpp's -cnv, single turn).
    #[arg(long = "chat")]
    pub chat: bool,
    /// System prompt of --chat (also spelled -sys).
    #[arg(long = "system-prompt", visible_alias = "sys", value_name = "TEXT", requires = "chat")]
    pub system_prompt: Option<String>,
    /// Output format: text (the generated text, streamed) or json (one JSON object per line:
    /// each token, then the timings and stats).
    #[arg(short = 'o', long = "output", default_value = "text", value_parser = ["text", "json"])]
    pub output: String,
    /// Same as -o json.
    #[arg(long = "json")]
    pub json: bool,
    #[command(flatten)]
    pub compute: ComputeArgs,
    #[command(flatten)]
    pub sampling: crate::sampling_args::SamplingArgs,
    #[command(flatten)]
    pub template: crate::template_args::TemplateArgs,
    #[command(flatten)]
    pub offload: OffloadArgs,
    #[command(flatten)]
    pub draft: crate::draft_args::DraftArgs,
    #[command(flatten)]
    pub extras: crate::run_extras::RunExtras,
}

/// Memory, expert cache and statistics flags (shared by `run` and benches).
#[derive(Args, Clone, Debug)]
#[command(next_help_heading = "Memory and expert cache")]
pub struct OffloadArgs {
    /// Expert cache size: 8G, 512M, 1.5GiB (K/M/G/T are binary, KB/MB/GB decimal), bytes, or a
    /// percentage of all experts (100% holds every expert). Default: what --mem leaves, else
    /// min(all experts, MemAvailable - resident - KV cache - 1 GiB).
    #[arg(long = "expert-cache", value_name = "SIZE", value_parser = Size::parse, conflicts_with = "mmap_experts")]
    pub expert_cache: Option<Size>,
    /// Memory to plan for: resident weights + KV cache + scratch + expert cache; the expert cache
    /// gets what is left.
    #[arg(long = "mem", value_name = "SIZE", value_parser = parse_mem)]
    pub mem: Option<u64>,
    /// Do not predict and prefetch the next layer's experts.
    #[arg(long = "no-prefetch")]
    pub no_prefetch: bool,
    /// Layers ahead to predict and prefetch (1: the next layer only).
    #[arg(long = "prefetch-depth", value_name = "N", default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub prefetch_depth: u16,
    /// Read experts through the memory mapping, as llama.cpp does (no expert cache; to compare).
    #[arg(long = "mmap-experts")]
    pub mmap_experts: bool,
    /// Threads reading experts into the cache.
    #[arg(long = "loader-threads", value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub loader_threads: u16,
    /// Expert cache eviction policy: lrfu (default; half-life 16 tokens), lrfu:HALF_LIFE_TOKENS, lfu or lru.
    #[arg(long = "cache-policy", value_name = "POLICY", default_value = "lrfu", value_parser = moe_offload::PolicyKind::parse)]
    pub cache_policy: moe_offload::PolicyKind,
    /// Read the resident weights (all but the experts) through the memory mapping, as llama.cpp
    /// does, instead of a copy in huge pages (slower decode; to compare, or to save the copy time).
    #[arg(long = "mmap-resident")]
    pub mmap_resident: bool,
    /// Lock the resident weights in RAM (mlock); a failure is a warning.
    #[arg(long = "mlock")]
    pub mlock: bool,
    /// Print per-layer expert statistics and per-token figures to stderr at the end.
    #[arg(long = "stats")]
    pub stats: bool,
    /// Write the same statistics, with one entry per token, as JSON to FILE.
    #[arg(long = "stats-json", value_name = "FILE")]
    pub stats_json: Option<PathBuf>,
}

#[derive(Args)]
#[command(after_help = "Examples:
  moe bench -m mixtral.gguf
  moe bench -m mixtral.gguf -p 0 -n 32 -r 3 --expert-cache 50%
  moe bench -m model.gguf -p 128,512 -n 0 -o json
  moe bench -m model.gguf -p 512 -n 32 -d 0,2048,8192                    speed at depth (long contexts)
  moe bench -m mixtral.gguf -p 0 -n 64 -r 2 --draft 8 --expert-cache 40%   with and without drafting")]
pub struct BenchArgs {
    /// Model file (GGUF).
    #[arg(short = 'm', long = "model")]
    pub model: PathBuf,
    /// Prompt lengths to test, comma-separated (0 skips the prompt test).
    #[arg(short = 'p', long = "n-prompt", value_delimiter = ',', default_value = "512")]
    pub n_prompt: Vec<usize>,
    /// Generation lengths to test, comma-separated (0 skips the generation test).
    #[arg(short = 'n', long = "n-gen", value_delimiter = ',', default_value = "128")]
    pub n_gen: Vec<usize>,
    /// Tokens already in the KV cache before each test, comma-separated (llama-bench's -d): the
    /// pp and tg tests run after a prompt of that many tokens (not timed), as `ppN @ dD`.
    #[arg(short = 'd', long = "n-depth", value_delimiter = ',', default_value = "0")]
    pub n_depth: Vec<usize>,
    /// Repetitions of each test.
    #[arg(short = 'r', long = "repetitions", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..).map(|v| v as usize))]
    pub repetitions: usize,
    #[command(flatten)]
    pub compute: ComputeArgs,
    /// Output format: md (a table) or json.
    #[arg(short = 'o', long = "output", default_value = "md", value_parser = ["md", "json"])]
    pub output: String,
    #[command(flatten)]
    pub offload: OffloadArgs,
    #[command(flatten)]
    pub draft: crate::draft_args::DraftArgs,
    /// Prompt of the --draft generation tests (default: a passage to copy).
    #[arg(long = "draft-prompt", value_name = "TEXT", requires = "draft")]
    pub draft_prompt: Option<String>,
    /// Make the --draft tests' prompt one the model repeats: first generate N tokens greedily from
    /// the prompt (untimed), then use prompt + those N tokens + the prompt's last 4 tokens, which the
    /// model continues by writing its own text again. For models that copy nothing, such as a
    /// synthetic one of random weights (0 = off).
    #[arg(long = "draft-echo", value_name = "N", default_value_t = 0, requires = "draft", value_parser = clap::value_parser!(u32).range(0..=32768).map(|v| v as usize))]
    pub draft_echo: usize,
}

#[derive(Args)]
#[command(after_help = "Examples:
  moe tokenize -m model.gguf -p 'Hello world'
  moe tokenize -m model.gguf -p '<|im_start|>user' --ids --no-bos")]
pub struct TokenizeArgs {
    /// Model or vocab-only file (GGUF).
    #[arg(short = 'm', long = "model")]
    pub model: PathBuf,
    /// Text to tokenize.
    #[arg(short = 'p', long = "prompt")]
    pub prompt: String,
    /// Do not add BOS/EOS even if the vocab asks for them.
    #[arg(long = "no-bos")]
    pub no_bos: bool,
    /// Treat special-token text (e.g. <|im_start|>) as plain text.
    #[arg(long = "no-parse-special")]
    pub no_parse_special: bool,
    /// Print only the JSON array of ids.
    #[arg(long = "ids")]
    pub ids_only: bool,
}

/// `--seed`: a number, or -1 for a random one (llama.cpp's default).
pub fn parse_seed(s: &str) -> Result<u64, String> {
    match s.trim() {
        "-1" => Ok(crate::run::random_seed()),
        t => t.parse().map_err(|_| format!("'{s}': expected a whole number ≥ 0, or -1 for a random seed")),
    }
}

/// How the model computes: threads, prompt micro-batch, KV cache types
/// (shared by `run`, `chat`, `serve` and `bench`).
#[derive(clap::Args, Debug, Clone)]
pub struct ComputeArgs {
    /// Threads for the matrix kernels (default: all cores).
    #[arg(short = 't', long = "threads", value_parser = clap::value_parser!(u16).range(1..))]
    pub threads: Option<u16>,
    /// Largest micro-batch a prompt is split into (1: one token at a time, as decode steps).
    #[arg(short = 'b', long = "batch-size", alias = "ubatch-size", default_value_t = moe::model::DEFAULT_BATCH, value_parser = clap::value_parser!(u32).range(1..).map(|v| v as usize))]
    pub batch_size: usize,
    #[command(flatten)]
    pub kv: KvArgs,
}

/// The KV cache's types, as llama.cpp spells them.
#[derive(clap::Args, Debug, Clone)]
pub struct KvArgs {
    /// KV cache type for keys and values: f16 (llama.cpp's default; its flash-attention
    /// arithmetic), q8_0 (half of f16's memory; its arithmetic with -ctk q8_0 -ctv q8_0) or f32
    /// (exact; its arithmetic without flash attention).
    #[arg(long = "kv-type", alias = "cache-type", value_name = "TYPE", value_parser = parse_kv_elem)]
    pub kv_type: Option<KvElem>,
    /// KV cache type for keys only (-ctk): f16 or q8_0 (default: --kv-type, else f16).
    #[arg(long = "cache-type-k", value_name = "TYPE", value_parser = parse_kv_elem)]
    pub cache_type_k: Option<KvElem>,
    /// KV cache type for values only (-ctv): f16 or q8_0 (default: --kv-type, else f16).
    #[arg(long = "cache-type-v", value_name = "TYPE", value_parser = parse_kv_elem)]
    pub cache_type_v: Option<KvElem>,
}

impl KvArgs {
    /// The key and value types these flags ask for.
    pub fn kv_type(&self) -> moe::Result<moe::model::KvType> {
        let both = self.kv_type.unwrap_or(KvElem::F16);
        moe::model::KvType::new(self.cache_type_k.unwrap_or(both), self.cache_type_v.unwrap_or(both))
            .map_err(|e| moe::Error::InvalidArgument(format!("--kv-type/-ctk/-ctv: {e}")))
    }
}

fn parse_kv_elem(s: &str) -> Result<KvElem, String> {
    KvElem::parse(s).ok_or_else(|| format!("'{s}': expected f16, q8_0 or f32"))
}

/// `--mem`: an absolute size (a percentage of what would be ambiguous).
fn parse_mem(s: &str) -> Result<u64, String> {
    match Size::parse(s)? {
        Size::Bytes(b) => Ok(b),
        Size::Percent(_) => Err(format!("'{s}': give an absolute size such as 12G, not a percentage")),
    }
}

fn parse_f32(s: &str) -> Result<f32, String> {
    let v: f32 = s.parse().map_err(|_| format!("'{s}' is not a number"))?;
    if !v.is_finite() {
        return Err(format!("'{s}' is not a finite number"));
    }
    Ok(v)
}

pub fn non_negative_f32(s: &str) -> Result<f32, String> {
    let v = parse_f32(s)?;
    if v < 0.0 {
        return Err(format!("expected a value ≥ 0, got {v}"));
    }
    Ok(v)
}

pub fn positive_f32(s: &str) -> Result<f32, String> {
    let v = parse_f32(s)?;
    if v <= 0.0 {
        return Err(format!("expected a value > 0, got {v}"));
    }
    Ok(v)
}

pub fn unit_f32(s: &str) -> Result<f32, String> {
    let v = parse_f32(s)?;
    if !(0.0..=1.0).contains(&v) {
        return Err(format!("expected a value in [0, 1], got {v}"));
    }
    Ok(v)
}
