//! The memory plan: resident weights + KV cache + scratch + expert cache,
//! from what the model needs and what the user asked for.

use moe_offload::{ExpertCache, ExpertKey};

use super::size::{human, Size, GIB, MIB};
use crate::model::{KvType, Model, DEFAULT_BATCH};

/// Bytes set aside for what the plan does not count piece by piece: the
/// tokenizer, code, thread stacks, allocator slack. The page cache the
/// kernel charges besides the resident weights themselves (the binary,
/// pages around the resident tensors) is planned on top, as half the
/// resident bytes ([`page_cache_slack`]). Measured on Mixtral-8x7B in a
/// 16 GiB memory cgroup with `--mem 16G`: with 128 MiB alone the cgroup
/// sat at its limit all run long (failcnt ~4900, resident weights
/// reclaimed and refaulted); with a quarter of the resident bytes it still
/// touched the limit (failcnt 715 over 189 tokens).
pub const PROCESS_OVERHEAD: u64 = 128 * MIB;

/// Page cache charged besides the resident weights, planned per resident byte.
pub fn page_cache_slack(resident_bytes: u64) -> u64 {
    resident_bytes / 2
}

/// Left free when the budget comes from `MemAvailable`, for the rest of the
/// system.
pub const DEFAULT_HEADROOM: u64 = GIB;

/// What a model needs in memory, apart from its expert cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Footprint {
    pub n_layer: u64,
    pub is_moe: bool,
    /// Bytes of the tensors read through the mapping every token.
    pub resident_bytes: u64,
    /// Slab bytes of all experts.
    pub expert_payload: u64,
    /// What an expert cache holding every expert is charged
    /// (`ExpertCache::footprint` summed: slabs rounded out to pages).
    pub all_experts: u64,
    /// The smallest expert cache (`ExpertCache::min_budget`): the largest
    /// expert, which is `largest`.
    pub min_expert_cache: u64,
    pub largest: Option<ExpertKey>,
    /// KV cache bytes per position (f32 K and V, all layers; an f16 cache
    /// takes half, see [`MemRequest::kv_type`]).
    pub kv_per_pos: u64,
    /// The sliding-window layers' rings: the most positions each holds
    /// whatever the context (`model::kv_cache::ring_positions`).
    pub kv_ring_layers: Vec<usize>,
    /// A session's buffers whose size does not depend on the context.
    pub session_fixed: u64,
    /// Once per process: [`PROCESS_OVERHEAD`] and [`page_cache_slack`].
    pub process_fixed: u64,
    /// Session buffers per token of a prompt micro-batch; planned for the
    /// default micro-batch ([`DEFAULT_BATCH`] tokens, or the context if
    /// shorter).
    pub scratch_per_batch_token: u64,
}

impl Footprint {
    pub fn of(model: &Model) -> Footprint {
        let c = model.config();
        let ranges = model.expert_ranges();
        let mut largest: Option<(ExpertKey, u64)> = None;
        let (mut payload, mut all) = (0, 0);
        for (l, layer) in ranges.iter().enumerate() {
            for (e, r) in layer.iter().enumerate() {
                let f = ExpertCache::footprint(r);
                payload += r.total_bytes();
                all += f;
                if largest.is_none_or(|(_, m)| f > m) {
                    largest = Some((ExpertKey { layer: l as u32, expert: e as u32 }, f));
                }
            }
        }
        debug_assert_eq!(largest.map_or(0, |l| l.1), ExpertCache::min_budget(&ranges));
        let f32s = 5 * c.n_embd + 2 * c.q_dim() + 2 * c.kv_dim() + 2 * c.n_ff + 2 * c.n_expert + c.head_dim + c.n_vocab;
        let resident: u64 = model.resident_ranges().iter().map(|r| r.end - r.start).sum();
        // Quantized activation copies: at most 4 bytes an element, a few types.
        let act = 4 * 3 * (2 * c.n_embd + c.n_ff);
        Footprint {
            n_layer: c.n_layer as u64,
            is_moe: c.is_moe(),
            resident_bytes: resident,
            expert_payload: payload,
            all_experts: all,
            min_expert_cache: largest.map_or(0, |l| l.1),
            largest: largest.map(|l| l.0),
            kv_per_pos: model.kv_bytes_per_pos(KvType::F32),
            kv_ring_layers: model.kv_ring_layers(),
            session_fixed: (4 * f32s + act) as u64,
            process_fixed: PROCESS_OVERHEAD + page_cache_slack(resident),
            scratch_per_batch_token: model.batch_bytes_per_token(),
        }
    }

    /// Saturating: a context too large for u64 plans as u64::MAX bytes,
    /// which no budget holds.
    pub fn kv_bytes(&self, n_ctx: usize) -> u64 {
        let per_layer = self.kv_per_pos / self.n_layer.max(1);
        let saved: u64 = self.kv_ring_layers.iter().map(|&held| n_ctx.saturating_sub(held) as u64).sum();
        self.kv_per_pos.saturating_mul(n_ctx as u64).saturating_sub(per_layer.saturating_mul(saved))
    }

    /// One session's scratch (attention scores grow with the context) plus
    /// what the process needs once.
    pub fn scratch_bytes(&self, n_ctx: usize) -> u64 {
        self.scratch_bytes_for(n_ctx, 1)
    }

    /// The scratch of `sessions` sessions sharing `n_ctx` positions evenly
    /// (`moe serve --parallel`: each slot's session has its own buffers),
    /// plus what the process needs once.
    pub fn scratch_bytes_for(&self, n_ctx: usize, sessions: usize) -> u64 {
        let sessions = sessions.max(1);
        let per = n_ctx.div_ceil(sessions);
        let scores = (per as u64).saturating_mul(4);
        let batch = self.scratch_per_batch_token.saturating_mul(per.min(DEFAULT_BATCH) as u64);
        let one = self.session_fixed.saturating_add(scores).saturating_add(batch);
        self.process_fixed.saturating_add(one.saturating_mul(sessions as u64))
    }
}

/// What the user asked for (the `--mem`, `--expert-cache` and
/// `--mmap-experts` flags) and what the system offers.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MemRequest {
    pub mem: Option<u64>,
    pub expert_cache: Option<Size>,
    pub mmap_experts: bool,
    /// The memory available now, for the default budget: `MemAvailable`,
    /// or the memory cgroup's limit where that is lower
    /// ([`super::machine_memory`]); `None` if unknown.
    pub available: Option<u64>,
    /// What the machine has for this process (`MemAvailable`, or a memory
    /// cgroup's room), whatever the flags: a KV cache and scratch beyond
    /// it are refused before anything is allocated. `None`: unchecked.
    pub machine: Option<u64>,
    /// The KV cache's element type (the footprint counts f32).
    pub kv_type: KvType,
}

/// Where expert bytes will come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpertPlan {
    /// A dense model: there are no experts.
    Dense,
    /// Straight from the mapping (`--mmap-experts`): the page cache decides.
    Mapped,
    /// An expert cache of `budget` bytes.
    Cache { budget: u64, from: BudgetFrom },
}

/// Why the expert cache got its budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BudgetFrom {
    /// `--expert-cache`.
    Flag,
    /// What `--mem` leaves after the rest.
    Mem,
    /// The available memory less the rest and the headroom.
    Available,
    /// The available memory is unknown: room for every expert.
    Unknown,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MemoryPlan {
    pub resident: u64,
    pub kv: u64,
    pub scratch: u64,
    pub n_ctx: usize,
    /// Sessions sharing `n_ctx` (each with its own scratch).
    pub sessions: usize,
    pub experts: ExpertPlan,
    pub all_experts: u64,
    pub min_expert_cache: u64,
    /// Things the user should know (a flag ignored, a budget clamped).
    pub notes: Vec<String>,
}

impl MemoryPlan {
    pub fn expert_budget(&self) -> Option<u64> {
        match self.experts {
            ExpertPlan::Cache { budget, .. } => Some(budget),
            _ => None,
        }
    }

    /// Resident weights + KV cache + scratch.
    pub fn fixed(&self) -> u64 {
        self.resident.saturating_add(self.kv).saturating_add(self.scratch)
    }

    /// Everything planned (the expert cache included).
    pub fn total(&self) -> u64 {
        self.fixed().saturating_add(self.expert_budget().unwrap_or(0))
    }

    /// One line: what goes where.
    pub fn describe(&self) -> String {
        let ctx = match self.sessions {
            0 | 1 => format!("ctx {}", self.n_ctx),
            n => format!("ctx {} in {n} sessions of {}", self.n_ctx, self.n_ctx / n),
        };
        let fixed = format!("resident weights {} + KV cache {} ({ctx}) + scratch {}", human(self.resident), human(self.kv), human(self.scratch));
        match self.experts {
            ExpertPlan::Dense => format!("{fixed} = {} (dense model: no experts)", human(self.total())),
            ExpertPlan::Mapped => format!(
                "{fixed} = {}; experts ({}) read through the mapping (--mmap-experts): the page cache holds what fits",
                human(self.total()),
                human(self.all_experts)
            ),
            ExpertPlan::Cache { budget, from } => {
                let why = match from {
                    BudgetFrom::Flag => "--expert-cache",
                    BudgetFrom::Mem => "the rest of --mem",
                    BudgetFrom::Available => "the available memory (MemAvailable, or the memory cgroup's limit) less the rest and 1 GiB headroom",
                    BudgetFrom::Unknown => "available memory unknown: all experts",
                };
                format!(
                    "{fixed} + expert cache {} ({:.0}% of all experts' {}, from {why}) = {}",
                    human(budget),
                    100.0 * budget as f64 / self.all_experts.max(1) as f64,
                    human(self.all_experts),
                    human(self.total())
                )
            }
        }
    }
}

/// A plan that cannot work, in terms of the flags.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error(
        "--expert-cache {} is below this model's minimum expert cache of {} ({minimum} bytes: the largest expert, {}, must fit)",
        human(*asked), human(*minimum), key_name(*largest)
    )]
    ExpertCacheTooSmall { asked: u64, minimum: u64, largest: Option<ExpertKey> },
    #[error(
        "--mem {} is too small: this model needs at least {} ({needed} bytes) = resident weights {} + KV cache {} + scratch {} + the minimum expert cache {} (the largest expert); lower -c/--ctx-size or raise --mem",
        human(*mem), human(*needed), human(*resident), human(*kv), human(*scratch), human(*min_cache)
    )]
    MemTooSmall { mem: u64, needed: u64, resident: u64, kv: u64, scratch: u64, min_cache: u64 },
    #[error(
        "--mem {} is too small: resident weights {} + KV cache {} + scratch {} already need {} ({needed} bytes); lower -c/--ctx-size or raise --mem",
        human(*mem), human(*resident), human(*kv), human(*scratch), human(*needed)
    )]
    MemBelowFixed { mem: u64, needed: u64, resident: u64, kv: u64, scratch: u64 },
    #[error(
        "--expert-cache {} does not fit in --mem {}: resident weights, KV cache and scratch take {}, leaving {}",
        human(*cache), human(*mem), human(*fixed), human(mem.saturating_sub(*fixed))
    )]
    CacheOverMem { cache: u64, mem: u64, fixed: u64 },
    #[error(
        "-c {n_ctx} needs a KV cache of {} ({}) and scratch of {}, more than the {} of memory this process may use (MemAvailable, or its memory cgroup's limit); lower -c/--ctx-size, or use --kv-type q8_0 (about half of f16's KV memory)",
        human(*kv), kv_type, human(*scratch), human(*machine)
    )]
    ContextOverMemory { n_ctx: usize, kv: u64, scratch: u64, machine: u64, kv_type: KvType },
}

/// The note for an MoE model larger than the memory available and no
/// budget given: what the default does, and what --mem would do.
fn bigger_than_ram(fp: &Footprint, fixed: u64, avail: u64, budget: u64) -> String {
    let pct = |b: u64| 100.0 * b as f64 / fp.all_experts.max(1) as f64;
    // A round --mem a user might give: what is available, less the headroom, in whole GiB.
    let mem = (avail.saturating_sub(DEFAULT_HEADROOM) / GIB).max(1) * GIB;
    let with_mem = mem.saturating_sub(fixed).max(fp.min_expert_cache).min(fp.all_experts);
    format!(
        "the model needs {} with every expert in RAM (resident weights, KV cache and scratch {} + experts {}), \
         more than the {} available: no budget was given, so the expert cache gets {} ({:.0}% of the experts) and \
         the others are read from disk when the router picks them. --mem SIZE plans everything within SIZE \
         (--mem {}G: expert cache {}, {:.0}%); --expert-cache SIZE sets the cache alone",
        human(fixed.saturating_add(fp.all_experts)),
        human(fixed),
        human(fp.all_experts),
        human(avail),
        human(budget),
        pct(budget),
        mem / GIB,
        human(with_mem),
        pct(with_mem)
    )
}

fn key_name(k: Option<ExpertKey>) -> String {
    k.map_or_else(|| "none".to_string(), |k| format!("layer {} expert {}", k.layer, k.expert))
}

/// Decides where every byte goes. Defaults: a dense model gets no cache;
/// an MoE model with neither `--mem` nor `--expert-cache` gets
/// min(all experts, available − resident − KV − scratch − 1 GiB), and at
/// least the minimum (with a note).
pub fn plan(fp: &Footprint, n_ctx: usize, req: &MemRequest) -> Result<MemoryPlan, PlanError> {
    plan_sessions(fp, n_ctx, 1, req)
}

/// [`plan`] for `sessions` sessions sharing `n_ctx` positions evenly, each
/// with its own scratch (the KV cache is the same for the same positions).
pub fn plan_sessions(fp: &Footprint, n_ctx: usize, sessions: usize, req: &MemRequest) -> Result<MemoryPlan, PlanError> {
    let mut p = MemoryPlan {
        resident: fp.resident_bytes,
        // Footprint counts f32 bytes: 8 per (key, value) pair of values.
        kv: req.kv_type.bytes_for(fp.kv_bytes(n_ctx) / 8),
        scratch: fp.scratch_bytes_for(n_ctx, sessions),
        n_ctx,
        sessions: sessions.max(1),
        experts: ExpertPlan::Dense,
        all_experts: fp.all_experts,
        min_expert_cache: fp.min_expert_cache,
        notes: Vec::new(),
    };
    let fixed = p.fixed();
    if let Some(machine) = req.machine.filter(|&m| p.kv.saturating_add(p.scratch) > m) {
        return Err(PlanError::ContextOverMemory { n_ctx, kv: p.kv, scratch: p.scratch, machine, kv_type: req.kv_type });
    }
    let below_fixed = |mem: u64| PlanError::MemBelowFixed { mem, needed: fixed, resident: p.resident, kv: p.kv, scratch: p.scratch };
    if !fp.is_moe || req.mmap_experts {
        if let Some(mem) = req.mem.filter(|&m| m < fixed) {
            return Err(below_fixed(mem));
        }
        if !fp.is_moe && req.expert_cache.is_some() {
            p.notes.push("--expert-cache ignored: this is a dense model (no experts)".into());
        }
        if fp.is_moe {
            p.experts = ExpertPlan::Mapped;
        } else if let Some(avail) = req.available.filter(|&a| fixed > a) {
            p.notes.push(format!(
                "this dense model needs {} (weights {} + KV cache + scratch) but only {} is available: its weights are \
                 read through the mapping and the page cache will read much of them from disk again for every token \
                 (slow). --mem and --expert-cache only help MoE models; a smaller quantization or -c/--ctx-size helps here",
                human(fixed),
                human(p.resident),
                human(avail)
            ));
        }
        return Ok(p);
    }
    let min = fp.min_expert_cache;
    let (budget, from) = match (req.expert_cache, req.mem) {
        (Some(size), mem) => {
            let asked = size.resolve(fp.all_experts);
            if asked < min {
                return Err(PlanError::ExpertCacheTooSmall { asked, minimum: min, largest: fp.largest });
            }
            if let Some(mem) = mem {
                if fixed.saturating_add(asked.min(fp.all_experts)) > mem {
                    return Err(PlanError::CacheOverMem { cache: asked, mem, fixed });
                }
            }
            (asked, BudgetFrom::Flag)
        }
        (None, Some(mem)) => {
            if mem < fixed.saturating_add(min) {
                return Err(PlanError::MemTooSmall {
                    mem,
                    needed: fixed.saturating_add(min),
                    resident: p.resident,
                    kv: p.kv,
                    scratch: p.scratch,
                    min_cache: min,
                });
            }
            (mem - fixed, BudgetFrom::Mem)
        }
        (None, None) => match req.available {
            Some(avail) => {
                let room = avail.saturating_sub(fixed.saturating_add(DEFAULT_HEADROOM));
                if room < min {
                    p.notes.push(format!(
                        "the available memory ({}) leaves less than the minimum expert cache after resident weights, KV cache, scratch and 1 GiB headroom; using the minimum, {} (expect many expert reads)",
                        human(avail),
                        human(min)
                    ));
                }
                let budget = room.max(min).min(fp.all_experts);
                if fixed.saturating_add(fp.all_experts) > avail {
                    p.notes.push(bigger_than_ram(fp, fixed, avail, budget));
                }
                (room.max(min), BudgetFrom::Available)
            }
            None => (fp.all_experts, BudgetFrom::Unknown),
        },
    };
    if budget > fp.all_experts && from == BudgetFrom::Flag {
        p.notes.push(format!("--expert-cache {} is more than all experts need; using {}", human(budget), human(fp.all_experts)));
    }
    p.experts = ExpertPlan::Cache { budget: budget.min(fp.all_experts), from };
    Ok(p)
}
