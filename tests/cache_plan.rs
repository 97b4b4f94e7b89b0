//! The memory planner behind `--mem` and `--expert-cache`: budgets, the
//! defaults, and clear errors (with the minimum in human units) when a plan
//! cannot work; and the footprint it reads off a real model.

mod common;

use std::path::PathBuf;

use common::*;
use moe::model::Model;
use moe::offload_setup::{
    human, plan, BudgetFrom, ExpertPlan, Footprint, MemRequest, PlanError, Size, DEFAULT_HEADROOM, GIB, MIB,
};
use moe::synth::{ExpertLayout, TinyModel};
use moe_offload::{ExpertCache, ExpertKey};

/// A Mixtral-8x7B-like footprint (Q4_K_M sizes, rounded).
fn mixtral() -> Footprint {
    Footprint {
        n_layer: 32,
        is_moe: true,
        resident_bytes: 1_142_808_576,
        expert_payload: 25 * GIB,
        all_experts: 25 * GIB + 256 * 12288,
        min_expert_cache: 110 * MIB,
        largest: Some(ExpertKey { layer: 3, expert: 5 }),
        kv_per_pos: 2 * 32 * 1024 * 4,
        kv_ring_layers: vec![],
        session_fixed: 2 * MIB,
        process_fixed: 128 * MIB,
        scratch_per_batch_token: 200 * 1024,
    }
}

const CTX: usize = 4096;

fn fixed(fp: &Footprint) -> u64 {
    fp.resident_bytes + fp.kv_bytes(CTX) + fp.scratch_bytes(CTX)
}

fn req() -> MemRequest {
    MemRequest::default()
}

#[test]
fn mem_gives_the_cache_what_is_left() {
    let fp = mixtral();
    let p = plan(&fp, CTX, &MemRequest { mem: Some(12 * GIB), ..req() }).unwrap();
    assert_eq!(p.experts, ExpertPlan::Cache { budget: 12 * GIB - fixed(&fp), from: BudgetFrom::Mem });
    assert_eq!(p.total(), 12 * GIB);
    assert_eq!(p.kv, 2 * 32 * 1024 * 4 * CTX as u64);
    assert!(p.notes.is_empty());
    // More than everything: the cache holds all experts, no more.
    let p = plan(&fp, CTX, &MemRequest { mem: Some(64 * GIB), ..req() }).unwrap();
    assert_eq!(p.expert_budget(), Some(fp.all_experts));
}

#[test]
fn mem_boundary_is_exact_and_the_error_names_the_minimum() {
    let fp = mixtral();
    let need = fixed(&fp) + fp.min_expert_cache;
    let p = plan(&fp, CTX, &MemRequest { mem: Some(need), ..req() }).unwrap();
    assert_eq!(p.expert_budget(), Some(fp.min_expert_cache));
    let e = plan(&fp, CTX, &MemRequest { mem: Some(need - 1), ..req() }).unwrap_err();
    assert!(matches!(e, PlanError::MemTooSmall { needed, .. } if needed == need), "{e:?}");
    let msg = e.to_string();
    assert!(msg.starts_with("--mem "), "{msg}");
    assert!(msg.contains(&format!("at least {}", human(need))) && msg.contains(&need.to_string()), "{msg}");
    assert!(msg.contains("minimum expert cache 110.0 MiB"), "{msg}");
    // A smaller context makes it fit again.
    assert!(plan(&fp, 512, &MemRequest { mem: Some(need - 1), ..req() }).is_ok());
}

#[test]
fn expert_cache_flag_sizes_and_percentages() {
    let fp = mixtral();
    let p = plan(&fp, CTX, &MemRequest { expert_cache: Some(Size::Bytes(8 * GIB)), ..req() }).unwrap();
    assert_eq!(p.experts, ExpertPlan::Cache { budget: 8 * GIB, from: BudgetFrom::Flag });
    let p = plan(&fp, CTX, &MemRequest { expert_cache: Some(Size::Percent(100.0)), ..req() }).unwrap();
    assert_eq!(p.expert_budget(), Some(fp.all_experts));
    let p = plan(&fp, CTX, &MemRequest { expert_cache: Some(Size::Percent(50.0)), ..req() }).unwrap();
    assert_eq!(p.expert_budget(), Some(fp.all_experts / 2));
    // Over everything: clamped, with a note.
    let p = plan(&fp, CTX, &MemRequest { expert_cache: Some(Size::Bytes(100 * GIB)), ..req() }).unwrap();
    assert_eq!(p.expert_budget(), Some(fp.all_experts));
    assert!(p.notes[0].contains("more than all experts need"), "{:?}", p.notes);
    // Exactly the minimum works; one byte less does not.
    let min = fp.min_expert_cache;
    assert_eq!(plan(&fp, CTX, &MemRequest { expert_cache: Some(Size::Bytes(min)), ..req() }).unwrap().expert_budget(), Some(min));
    let e = plan(&fp, CTX, &MemRequest { expert_cache: Some(Size::Bytes(min - 1)), ..req() }).unwrap_err();
    let msg = e.to_string();
    assert!(msg.starts_with("--expert-cache 110.0 MiB is below"), "{msg}");
    assert!(msg.contains("minimum expert cache of 110.0 MiB") && msg.contains("layer 3 expert 5"), "{msg}");
    let e = plan(&fp, CTX, &MemRequest { expert_cache: Some(Size::Bytes(1024)), ..req() }).unwrap_err();
    assert_eq!(e, PlanError::ExpertCacheTooSmall { asked: 1024, minimum: min, largest: fp.largest });
    assert!(e.to_string().starts_with("--expert-cache 1.0 KiB is below"), "{e}");
}

#[test]
fn both_flags_must_fit_together() {
    let fp = mixtral();
    let both = |mem, cache| MemRequest { mem: Some(mem), expert_cache: Some(Size::Bytes(cache)), ..req() };
    let ok = plan(&fp, CTX, &both(12 * GIB, 8 * GIB)).unwrap();
    assert_eq!(ok.expert_budget(), Some(8 * GIB));
    let e = plan(&fp, CTX, &both(8 * GIB, 8 * GIB)).unwrap_err();
    assert!(matches!(e, PlanError::CacheOverMem { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(msg.contains("--expert-cache 8.00 GiB does not fit in --mem 8.00 GiB"), "{msg}");
}

#[test]
fn default_budget_comes_from_mem_available() {
    let fp = mixtral();
    let avail = 14 * GIB;
    let p = plan(&fp, CTX, &MemRequest { available: Some(avail), ..req() }).unwrap();
    assert_eq!(p.experts, ExpertPlan::Cache { budget: avail - fixed(&fp) - DEFAULT_HEADROOM, from: BudgetFrom::Available });
    assert!(p.describe().contains("from the available memory (MemAvailable, or the memory cgroup's limit)"), "{}", p.describe());
    // Plenty of RAM: all experts.
    let p = plan(&fp, CTX, &MemRequest { available: Some(256 * GIB), ..req() }).unwrap();
    assert_eq!(p.expert_budget(), Some(fp.all_experts));
    // Tight: the minimum, with a note.
    let p = plan(&fp, CTX, &MemRequest { available: Some(2 * GIB), ..req() }).unwrap();
    assert_eq!(p.expert_budget(), Some(fp.min_expert_cache));
    assert!(p.notes[0].contains("using the minimum"), "{:?}", p.notes);
    // Unknown: all experts.
    let p = plan(&fp, CTX, &req()).unwrap();
    assert_eq!(p.experts, ExpertPlan::Cache { budget: fp.all_experts, from: BudgetFrom::Unknown });
}

/// `moe serve --parallel 4`: four sessions share the context's KV cache
/// but each has its own scratch (a prompt micro-batch's buffers), and the
/// default budget leaves room for all four.
#[test]
fn sessions_each_get_their_scratch() {
    use moe::offload_setup::plan_sessions;
    let fp = mixtral();
    let one = plan(&fp, CTX, &req()).unwrap();
    let four = plan_sessions(&fp, CTX, 4, &req()).unwrap();
    assert_eq!(four.kv, one.kv);
    let per_session = |n_ctx: u64| fp.session_fixed + 4 * n_ctx + fp.scratch_per_batch_token * n_ctx.min(512);
    assert_eq!(one.scratch, fp.process_fixed + per_session(4096));
    assert_eq!(four.scratch, fp.process_fixed + 4 * per_session(1024));
    assert!(four.describe().contains("(ctx 4096 in 4 sessions of 1024)"), "{}", four.describe());
    let avail = 14 * GIB;
    let four = plan_sessions(&fp, CTX, 4, &MemRequest { available: Some(avail), ..req() }).unwrap();
    assert_eq!(four.expert_budget(), Some(avail - four.fixed() - DEFAULT_HEADROOM));
    assert_eq!(four.total() + DEFAULT_HEADROOM, avail);
}

#[test]
fn mmap_experts_and_dense_models_have_no_cache() {
    let fp = mixtral();
    let p = plan(&fp, CTX, &MemRequest { mmap_experts: true, mem: Some(4 * GIB), ..req() }).unwrap();
    assert_eq!(p.experts, ExpertPlan::Mapped);
    assert_eq!(p.expert_budget(), None);
    let e = plan(&fp, CTX, &MemRequest { mmap_experts: true, mem: Some(GIB), ..req() }).unwrap_err();
    assert!(matches!(e, PlanError::MemBelowFixed { .. }) && e.to_string().starts_with("--mem 1.00 GiB is too small"), "{e}");

    let dense = Footprint { is_moe: false, all_experts: 0, expert_payload: 0, min_expert_cache: 0, largest: None, ..mixtral() };
    let p = plan(&dense, CTX, &MemRequest { available: Some(GIB), ..req() }).unwrap();
    assert_eq!(p.experts, ExpertPlan::Dense);
    let p = plan(&dense, CTX, &MemRequest { expert_cache: Some(Size::Bytes(GIB)), ..req() }).unwrap();
    assert_eq!(p.experts, ExpertPlan::Dense);
    assert!(p.notes[0].contains("dense model"), "{:?}", p.notes);
    assert!(plan(&dense, CTX, &MemRequest { mem: Some(GIB), ..req() }).is_err());
}

fn tmp(name: &str) -> PathBuf {
    let dir = repo_root().join("target/test-models");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// The footprint of a real file: resident ranges and expert slabs are
/// disjoint and together lie inside the file; the cache's own minimum and
/// per-expert footprints agree with it.
#[test]
fn footprint_of_a_model() {
    for layout in [ExpertLayout::Merged, ExpertLayout::PerExpert] {
        let path = tmp(&format!("plan-footprint-{layout:?}.gguf"));
        TinyModel { n_layer: 3, layout, seed: 9, ..Default::default() }.write(&path).unwrap();
        let model = Model::open(&path).unwrap();
        let fp = Footprint::of(&model);
        let ranges = model.expert_ranges();
        assert_eq!(fp.min_expert_cache, ExpertCache::min_budget(&ranges));
        assert_eq!(fp.all_experts, ranges.iter().flatten().map(ExpertCache::footprint).sum::<u64>());
        assert_eq!(fp.expert_payload, ranges.iter().flatten().map(|r| r.total_bytes()).sum::<u64>());
        assert_eq!(fp.n_layer, 3);
        let resident = model.resident_ranges();
        assert!(resident.windows(2).all(|w| w[0].end < w[1].start), "sorted, disjoint: {resident:?}");
        for r in &resident {
            for e in ranges.iter().flatten() {
                for s in [&e.gate, &e.up, &e.down] {
                    assert!(s.end <= r.start || s.start >= r.end, "expert slab {s:?} inside resident range {r:?}");
                }
            }
        }
        let len = std::fs::metadata(&path).unwrap().len();
        assert!(fp.resident_bytes + fp.expert_payload <= len);
        // Everything but the norms (copied out at bind time), headers and padding.
        assert!(fp.resident_bytes + fp.expert_payload > len * 9 / 10, "{} + {} of {len}", fp.resident_bytes, fp.expert_payload);
        let kv = 2 * 3 * 2 * 16 * 4; // K and V, 3 layers, kv_dim 2×16, f32
        assert_eq!(fp.kv_bytes(1), kv);
        drop(model);
        std::fs::remove_file(&path).ok();
    }
}

#[test]
fn an_f16_kv_cache_is_planned_at_half_the_bytes() {
    let fp = mixtral();
    let f32_plan = plan(&fp, CTX, &req()).unwrap();
    let f16_plan = plan(&fp, CTX, &MemRequest { kv_type: moe::model::KvType::F16, ..req() }).unwrap();
    assert_eq!(f32_plan.kv, fp.kv_bytes(CTX));
    assert_eq!(f16_plan.kv * 2, f32_plan.kv);
}

#[test]
fn a_model_larger_than_ram_without_a_budget_says_what_mem_does() {
    let fp = mixtral();
    let avail = 14 * GIB;
    let p = plan(&fp, CTX, &MemRequest { available: Some(avail), ..req() }).unwrap();
    let budget = avail - fixed(&fp) - DEFAULT_HEADROOM;
    let with_mem = 13 * GIB - fixed(&fp);
    let note = p.notes.iter().find(|n| n.contains("--mem")).unwrap_or_else(|| panic!("{:?}", p.notes));
    for part in [
        format!("needs {}", human(fixed(&fp) + fp.all_experts)),
        format!("more than the {} available", human(avail)),
        format!("expert cache gets {}", human(budget)),
        format!("--mem 13G: expert cache {}", human(with_mem)),
        "--expert-cache SIZE".to_string(),
    ] {
        assert!(note.contains(&part), "{part:?} not in {note}");
    }
    // Enough RAM for everything: no note.
    let p = plan(&fp, CTX, &MemRequest { available: Some(64 * GIB), ..req() }).unwrap();
    assert!(p.notes.is_empty(), "{:?}", p.notes);

    // A dense model larger than RAM: the flags cannot help; say so.
    let dense = Footprint { is_moe: false, all_experts: 0, expert_payload: 0, min_expert_cache: 0, largest: None, ..mixtral() };
    let p = plan(&dense, CTX, &MemRequest { available: Some(GIB), ..req() }).unwrap();
    assert!(p.notes.iter().any(|n| n.contains("only 1.00 GiB is available") && n.contains("only help MoE models")), "{:?}", p.notes);
    let p = plan(&dense, CTX, &MemRequest { available: Some(8 * GIB), ..req() }).unwrap();
    assert!(p.notes.is_empty(), "{:?}", p.notes);
}

/// A context whose KV cache and scratch exceed what the machine has is
/// refused by the plan (before anything is allocated), whatever the flags.
#[test]
fn context_beyond_the_machine_is_refused() {
    let fp = mixtral();
    let need = plan(&fp, CTX, &req()).unwrap();
    let machine = need.kv + need.scratch - 1;
    for r in [MemRequest { machine: Some(machine), ..req() }, MemRequest { machine: Some(machine), mem: Some(64 * GIB), ..req() }] {
        let e = plan(&fp, CTX, &r).unwrap_err().to_string();
        assert!(e.contains(&format!("-c {CTX} needs a KV cache of")) && e.contains("lower -c"), "{e}");
    }
    assert!(plan(&fp, CTX, &MemRequest { machine: Some(machine + 1), ..req() }).is_ok());
}
