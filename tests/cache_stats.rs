//! Cache statistics are exact when routing is predictable: a dense model
//! upcycled with a zero router routes every token of every layer to experts
//! 0 and 1 (ties go to the lower index), so hits, misses, loads and bytes
//! read can be computed by hand.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use moe::model::{Model, Prefetch};
use moe::offload_setup::{self, Footprint, MemRequest, OffloadOptions, Size};
use moe::synth::{upcycle, ExpertLayout, Router, TinyModel, WeightTypes};
use moe_offload::{CacheStats, IoMode};
use moe_quant::QType;

fn tmp(name: &str) -> PathBuf {
    let dir = repo_root().join("target/test-models");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

const N_LAYER: usize = 3;
const N_EXPERT: usize = 4;
const K: u64 = 2;
const PROMPT: usize = 5;
const DECODE: usize = 7;
/// Tokens run.
const N: u64 = (PROMPT + DECODE) as u64;

/// A zero-router MoE in `layout`.
fn zero_router_model(layout: ExpertLayout, tag: &str) -> PathBuf {
    let dense = tmp(&format!("stats-dense-{tag}-{layout:?}.gguf"));
    TinyModel {
        n_layer: N_LAYER,
        n_expert: 0,
        n_expert_used: 0,
        types: WeightTypes::uniform(QType::Q8_0),
        seed: 5,
        ..Default::default()
    }
    .write(&dense)
    .unwrap();
    let moe = tmp(&format!("stats-zero-router-{tag}-{layout:?}.gguf"));
    upcycle(&dense, &moe, N_EXPERT, K as usize, layout, Router::Zero).unwrap();
    std::fs::remove_file(&dense).ok();
    moe
}

fn with_cache(path: &Path, budget: u64, prefetch: Prefetch) -> Model {
    let mut model = Model::open(path).unwrap();
    let plan = offload_setup::plan(&Footprint::of(&model), 32, &MemRequest { expert_cache: Some(Size::Bytes(budget)), ..Default::default() }).unwrap();
    let opts = OffloadOptions { loader_threads: 2, prefetch, io: IoMode::Auto, ..Default::default() };
    offload_setup::setup(&mut model, &plan, &opts).unwrap();
    model
}

/// Runs PROMPT prompt tokens (one at a time) then DECODE decode steps;
/// returns the cache stats after each token.
fn run(model: &Model) -> Vec<CacheStats> {
    let tokens: Vec<u32> = (0..N as u32).map(|i| (i * 37 + 11) % 260).collect();
    let mut s = model.session(N as usize).unwrap();
    // The prompt one token at a time, so that every token has a snapshot.
    s.set_batch_size(1).unwrap();
    let mut snaps = Vec::new();
    s.prefill(&tokens[..PROMPT], |_, _| snaps.push(model.experts().stats().unwrap())).unwrap();
    for &t in &tokens[PROMPT..] {
        s.forward(t).unwrap();
        snaps.push(model.experts().stats().unwrap());
    }
    // The session's predictor accuracy is exact too: the zero router makes
    // every prediction {0, 1}, and every layer chooses {0, 1}.
    let pred = s.layer_stats();
    for (l, p) in pred.iter().enumerate() {
        let want = if model.prefetch() == Prefetch::Off || l == 0 { 0 } else { N * K };
        assert_eq!((p.predicted, p.predicted_chosen), (want, want), "layer {l} predictions ({:?})", model.prefetch());
    }
    snaps
}

/// Slab bytes of experts 0 and 1 of layer `l`.
fn used_payload(model: &Model, l: usize) -> u64 {
    model.expert_ranges()[l][..K as usize].iter().map(|r| r.total_bytes()).sum()
}

/// Runs `f` on a zero-router model in each layout (`tag` keeps the files
/// of tests running in parallel apart).
fn check_all_layouts(tag: &str, f: impl Fn(&Path)) {
    for layout in [ExpertLayout::Merged, ExpertLayout::PerExpert] {
        let path = zero_router_model(layout, tag);
        f(&path);
        std::fs::remove_file(&path).ok();
    }
}

/// Room for every expert, no prefetch: each layer misses experts 0 and 1
/// once (the first token), then hits; exactly k experts' bytes are read.
#[test]
fn all_experts_budget_without_prefetch() {
    check_all_layouts("all_experts_budget_without_prefetch", |path| {
        let model = with_cache(path, Footprint::of(&Model::open(path).unwrap()).all_experts, Prefetch::Off);
        let snaps = run(&model);
        let last = snaps.last().unwrap();
        for (l, s) in last.layers.iter().enumerate() {
            assert_eq!((s.hits, s.misses), (N * K - K, K), "layer {l}");
            assert_eq!(s.loads, K, "layer {l}");
            assert_eq!(s.bytes_read, used_payload(&model, l), "layer {l}");
            assert_eq!((s.prefetch_issued, s.prefetch_hits, s.prefetch_wasted, s.evictions), (0, 0, 0, 0), "layer {l}");
        }
        // Per token: the first pays for everything, the rest read nothing.
        let all_used: u64 = (0..N_LAYER).map(|l| used_payload(&model, l)).sum();
        let mut prev = CacheStats::default();
        for (i, s) in snaps.iter().enumerate() {
            let d = s.since(&prev).total();
            let (hits, misses, bytes) = if i == 0 { (0, N_LAYER as u64 * K, all_used) } else { (N_LAYER as u64 * K, 0, 0) };
            assert_eq!((d.hits, d.misses, d.bytes_read), (hits, misses, bytes), "token {i}");
            prev = s.clone();
        }
        assert_eq!(last.resident_bytes, (0..N_LAYER).map(|l| used_footprint(&model, l)).sum::<u64>());
    });
}

/// What experts 0 and 1 of layer `l` are charged in the cache.
fn used_footprint(model: &Model, l: usize) -> u64 {
    model.expert_ranges()[l][..K as usize].iter().map(moe_offload::ExpertCache::footprint).sum()
}

/// Room for every expert, prefetch on: layer 0 is as without prefetch;
/// every later layer's experts 0 and 1 are prefetched (predicted from the
/// previous layer) during the first token, and each read once. Whether the
/// first use still waited (a miss) depends on timing; the totals do not.
#[test]
fn all_experts_budget_with_prefetch() {
    check_all_layouts("all_experts_budget_with_prefetch", |path| {
        let model = with_cache(path, Footprint::of(&Model::open(path).unwrap()).all_experts, Prefetch::RouterOnFfnInput);
        let snaps = run(&model);
        let last = snaps.last().unwrap();
        for (l, s) in last.layers.iter().enumerate() {
            assert_eq!(s.hits + s.misses, N * K, "layer {l}");
            assert_eq!(s.loads, K, "layer {l}");
            assert_eq!(s.bytes_read, used_payload(&model, l), "layer {l}");
            assert_eq!(s.prefetch_wasted, 0, "layer {l}");
            if l == 0 {
                assert_eq!((s.hits, s.misses, s.prefetch_issued, s.prefetch_hits), (N * K - K, K, 0, 0), "layer 0");
            } else {
                assert_eq!((s.prefetch_issued, s.prefetch_hits), (K, K), "layer {l}");
                assert!(s.misses <= K, "layer {l}: {s:?}");
            }
        }
        // After the first token nothing is read or missed.
        let d = last.since(&snaps[0]).total();
        assert_eq!((d.misses, d.bytes_read, d.hits), (0, 0, (N - 1) * N_LAYER as u64 * K));
    });
}

/// Room for one expert: experts 0 and 1 evict each other at every use, so
/// every access is a miss and reads one expert.
#[test]
fn one_expert_budget_misses_everything() {
    check_all_layouts("one_expert_budget_misses_everything", |path| {
        let model = with_cache(path, Footprint::of(&Model::open(path).unwrap()).min_expert_cache, Prefetch::Off);
        let last = run(&model).pop().unwrap();
        for (l, s) in last.layers.iter().enumerate() {
            assert_eq!((s.hits, s.misses, s.loads), (0, N * K, N * K), "layer {l}");
            assert_eq!(s.bytes_read, N * used_payload(&model, l), "layer {l}");
        }
        assert_eq!(last.evictions(), N * N_LAYER as u64 * K - 1);
        assert_eq!(last.over_budget_events, 0);
        assert!(last.peak_resident_bytes <= last.budget_bytes);
    });
}

/// Room for one layer's two experts: the layers take turns (LRU over a
/// cycle longer than the cache), so again every access misses.
#[test]
fn two_expert_budget_cycles_through_layers() {
    check_all_layouts("two_expert_budget_cycles_through_layers", |path| {
        let model = with_cache(path, 2 * Footprint::of(&Model::open(path).unwrap()).min_expert_cache, Prefetch::Off);
        let last = run(&model).pop().unwrap();
        for (l, s) in last.layers.iter().enumerate() {
            assert_eq!((s.hits, s.misses), (0, N * K), "layer {l}");
            assert_eq!(s.bytes_read, N * used_payload(&model, l), "layer {l}");
        }
    });
}

/// Room for the 2 used experts of every layer (6 of 12): after the first
/// token everything used is resident, exactly as with room for all.
#[test]
fn budget_of_the_used_experts_is_enough() {
    check_all_layouts("budget_of_the_used_experts_is_enough", |path| {
        let fp = Footprint::of(&Model::open(path).unwrap());
        let model = with_cache(path, N_LAYER as u64 * K * fp.min_expert_cache, Prefetch::Off);
        let last = run(&model).pop().unwrap();
        for (l, s) in last.layers.iter().enumerate() {
            assert_eq!((s.hits, s.misses, s.evictions), (N * K - K, K, 0), "layer {l}");
            assert_eq!(s.bytes_read, used_payload(&model, l), "layer {l}");
        }
    });
}
