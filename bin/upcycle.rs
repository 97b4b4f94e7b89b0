//! `moe upcycle`: a dense llama GGUF becomes an MoE (Mixtral's layout, or
//! with `--arch` Qwen3-MoE's, OLMoE's, Qwen2-MoE's) whose experts are
//! copies of the dense FFN, with routers fitted to real hidden states
//! (default), random, or even.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use clap::Args;
use moe::arch::Arch;
use moe::synth::{check_upcycle, fit_routers, upcycle_targets, upcycle_to, ExpertLayout, FitOptions, Router};
use moe::{Error, Result};

use crate::args::LayoutArg;

#[derive(Args)]
#[command(after_help = "Examples:
  moe upcycle -m models/SmolLM2-135M-Instruct.Q4_1.gguf -o models/smollm2-8x2-fit.gguf
  moe upcycle -m DENSE.gguf -o MOE.gguf --experts 4 --experts-used 1 --router random
  moe upcycle -m DENSE.gguf -o MOE.gguf --fit-text my-corpus.txt
  moe upcycle -m models/SmolLM2-135M-Instruct.Q4_1.gguf -o models/smollm2-qwen3moe-64x8.gguf --arch qwen3moe --experts 64 --experts-used 8")]
pub struct UpcycleArgs {
    /// Dense llama model (GGUF).
    #[arg(short = 'm', long = "model")]
    pub model: PathBuf,
    /// Output file.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: PathBuf,
    /// Overwrite an existing output file.
    #[arg(long)]
    pub force: bool,
    /// Architecture of the output: llama (Mixtral's layout), qwen3moe, olmoe or qwen2moe.
    #[arg(long, default_value = "llama")]
    pub arch: String,
    /// Experts per layer.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=512))]
    pub experts: u16,
    /// Experts used per token.
    #[arg(long = "experts-used", default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=512))]
    pub experts_used: u16,
    /// Expert tensor layout.
    #[arg(long, value_enum, default_value = "merged")]
    pub layout: LayoutArg,
    /// fit: k-means of each layer's FFN inputs over real text (routing follows the text);
    /// random: uniform random weights; zero: every expert equally likely (the first k win).
    #[arg(long, default_value = "fit", value_parser = ["fit", "random", "zero"])]
    pub router: String,
    /// Text to fit the routers on, one prompt per line (default: the built-in corpus of ~250 sentences).
    #[arg(long = "fit-text", value_name = "FILE")]
    pub fit_text: Option<PathBuf>,
    /// k-means iterations.
    #[arg(long, default_value_t = 25)]
    pub iterations: usize,
    /// Seed of the k-means start or of the random router.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

pub fn upcycle_cmd(a: UpcycleArgs) -> Result<()> {
    if a.output.exists() && !a.force {
        return Err(Error::InvalidArgument(format!("{} exists; pass --force to overwrite it", a.output.display())));
    }
    let arch = Arch::from_name(&a.arch)
        .ok_or_else(|| Error::InvalidArgument(format!("--arch {:?}: unknown architecture; upcycle writes {}", a.arch, upcycle_targets())))?;
    let layout = match a.layout {
        LayoutArg::Merged => ExpertLayout::Merged,
        LayoutArg::PerExpert => ExpertLayout::PerExpert,
    };
    // Every input check first (the file's header): fitting takes minutes.
    check_upcycle(arch, &a.model, a.experts.into(), a.experts_used.into(), layout)?;
    let t0 = Instant::now();
    let router = match a.router.as_str() {
        "zero" => Router::Zero,
        "random" => Router::Random { seed: a.seed },
        _ => {
            let mut opts = FitOptions { seed: a.seed, iterations: a.iterations, ..FitOptions::default() };
            if let Some(path) = &a.fit_text {
                opts.text = std::fs::read_to_string(path).map_err(|e| Error::Io { path: path.clone(), source: e })?;
            }
            eprintln!(
                "moe: upcycle: fitting {} routers: running {} over the fitting text, then {} k-means iterations per layer (a minute or more)",
                a.experts,
                a.model.display(),
                a.iterations
            );
            let fitted = fit_routers(&a.model, a.experts.into(), &opts)?;
            eprintln!(
                "moe: upcycle: fitted {} routers of {} experts on {} tokens ({} k-means iterations) in {:.1} s",
                fitted.layers.len(),
                a.experts,
                fitted.tokens,
                a.iterations,
                t0.elapsed().as_secs_f64()
            );
            Router::Fitted(Arc::new(fitted))
        }
    };
    upcycle_to(arch, &a.model, &a.output, a.experts.into(), a.experts_used.into(), layout, router)?;
    eprintln!("moe: upcycle: wrote {} in {:.1} s", a.output.display(), t0.elapsed().as_secs_f64());
    Ok(())
}
