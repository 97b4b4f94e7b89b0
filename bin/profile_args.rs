//! `--profile FILE` and `--warm`: a `moe tune` profile's expert cache
//! settings, for `run`, `chat` and `serve`.

use std::path::PathBuf;

use clap::Args;
use moe::model::Model;
use moe::offload_setup::MemoryPlan;
use moe::tune::Profile;
use moe::{Error, Result};

use crate::args::OffloadArgs;

#[derive(Args, Clone, Debug, Default)]
pub struct ProfileArgs {
    /// Apply a `moe tune` profile: expert cache size, policy, prefetch and loader threads (flags
    /// given on the command line win).
    #[arg(long = "profile", value_name = "FILE")]
    pub profile: Option<PathBuf>,
    /// With --profile: read the profile's hot experts into the cache before the first prompt.
    #[arg(long = "warm", requires = "profile")]
    pub warm: bool,
}

/// The expert cache flags at their defaults.
fn offload_defaults() -> OffloadArgs {
    #[derive(clap::Parser)]
    struct Defaults {
        #[command(flatten)]
        offload: OffloadArgs,
    }
    <Defaults as clap::Parser>::try_parse_from(["moe"]).map(|d| d.offload).expect("the expert cache flags have defaults")
}

impl ProfileArgs {
    /// Applies `--profile` to `o` (before the cache is set up): a value the
    /// command line left at its default takes the profile's.
    pub fn apply(&self, o: &mut OffloadArgs, model: &Model) -> Result<Option<Profile>> {
        let Some(path) = &self.profile else { return Ok(None) };
        let text = std::fs::read_to_string(path).map_err(|e| Error::Io { path: path.clone(), source: e })?;
        let p = Profile::parse(&text, path)?;
        p.check_model(path, model)?;
        let defaults = offload_defaults();
        if o.mem.is_none() && o.expert_cache.is_none() && !o.mmap_experts {
            o.expert_cache = Some(moe::offload_setup::Size::Bytes(p.expert_cache));
        }
        if o.cache_policy == defaults.cache_policy {
            o.cache_policy = p.cache_policy;
        }
        if !o.no_prefetch && o.prefetch_depth == defaults.prefetch_depth {
            match p.prefetch_depth {
                Some(d) => o.prefetch_depth = d as u16,
                None => o.no_prefetch = true,
            }
        }
        if o.loader_threads == defaults.loader_threads {
            o.loader_threads = p.loader_threads as u16;
        }
        eprintln!(
            "moe: profile {}: expert cache {}, {}, {}, {} loader threads (predicted {:.2} tok/s, hit rate {:.1}%)",
            path.display(),
            moe::offload_setup::human(p.expert_cache),
            p.cache_policy.name(),
            p.prefetch_depth.map_or("prefetch off".into(), |d| format!("prefetch depth {d}")),
            p.loader_threads,
            p.predicted_tok_s,
            100.0 * p.predicted_hit_rate
        );
        Ok(Some(p))
    }

    /// `--warm`: after the expert cache is in place, starts reading the
    /// profile's hottest experts, as many as the cache holds, on the loader
    /// threads.
    pub fn warm_start(&self, profile: Option<&Profile>, model: &Model, plan: &MemoryPlan, quiet: bool) {
        let (true, Some(p), Some(budget)) = (self.warm, profile, plan.expert_budget()) else { return };
        let ranges = model.expert_ranges();
        let mut used = 0;
        let keys: Vec<_> = p
            .hot
            .iter()
            .copied()
            .filter(|k| ranges.get(k.layer as usize).and_then(|l| l.get(k.expert as usize)).is_some())
            .take_while(|k| {
                used += moe_offload::ExpertCache::footprint(&ranges[k.layer as usize][k.expert as usize]);
                used <= budget
            })
            .collect();
        let n = model.experts().preload(&keys);
        if !quiet {
            eprintln!("moe: warm start: reading {n} hot experts of the profile before the prompt");
        }
    }
}
