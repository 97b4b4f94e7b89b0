//! The sampling flags of `run`, `chat` and `serve` (the server's are its
//! defaults for requests that do not say), with llama.cpp's names and
//! defaults.

use clap::Args;
use moe::sampler::{Sampler, SamplerParams};

use crate::args::{non_negative_f32, parse_seed, positive_f32, unit_f32};

#[derive(Args, Clone, Debug)]
#[command(next_help_heading = "Sampling")]
pub struct SamplingArgs {
    /// Temperature; 0 means greedy.
    #[arg(long, default_value_t = 0.8, value_parser = non_negative_f32, allow_negative_numbers = true)]
    pub temp: f32,
    /// Keep the K most likely tokens (0 = all).
    #[arg(long = "top-k", default_value_t = 40, allow_negative_numbers = true)]
    pub top_k: i32,
    /// Nucleus sampling mass (1.0 = off).
    #[arg(long = "top-p", default_value_t = 0.95, value_parser = unit_f32, allow_negative_numbers = true)]
    pub top_p: f32,
    /// Drop tokens below MIN_P × the top token's probability (0 = off).
    #[arg(long = "min-p", default_value_t = 0.05, value_parser = unit_f32, allow_negative_numbers = true)]
    pub min_p: f32,
    /// Penalise repeated tokens (1.0 = off).
    #[arg(long = "repeat-penalty", default_value_t = 1.0, value_parser = positive_f32, allow_negative_numbers = true)]
    pub repeat_penalty: f32,
    /// How many recent tokens the repetition penalty considers.
    #[arg(long = "repeat-last-n", default_value_t = 64)]
    pub repeat_last_n: usize,
    /// Subtract N from the logit of each recent token (OpenAI's and llama.cpp's presence penalty; 0 = off).
    #[arg(long = "presence-penalty", default_value_t = 0.0, value_name = "N", allow_negative_numbers = true)]
    pub presence_penalty: f32,
    /// Subtract N per occurrence from the logit of each recent token (frequency penalty; 0 = off).
    #[arg(long = "frequency-penalty", default_value_t = 0.0, value_name = "N", allow_negative_numbers = true)]
    pub frequency_penalty: f32,
    /// Random seed (default or -1: random; `run` prints the one it used).
    #[arg(short = 's', long, allow_negative_numbers = true, value_parser = parse_seed)]
    pub seed: Option<u64>,
}

impl SamplingArgs {
    /// The sampler's settings, with `seed` (these flags' seed, or a random one).
    pub fn params(&self, seed: u64) -> SamplerParams {
        SamplerParams {
            temp: self.temp,
            top_k: self.top_k,
            top_p: self.top_p,
            min_p: self.min_p,
            repeat_penalty: self.repeat_penalty,
            repeat_last_n: self.repeat_last_n,
            presence_penalty: self.presence_penalty,
            frequency_penalty: self.frequency_penalty,
            seed,
        }
    }

    /// A sampler with these settings (a random seed unless --seed).
    pub fn sampler(&self) -> Sampler {
        Sampler::new(self.params(self.seed.unwrap_or_else(crate::run::random_seed)))
    }
}
