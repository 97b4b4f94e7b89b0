//! A sliding-window layer's KV cache is a ring that does not grow with the
//! context (gpt-oss): logits bit-identical to a whole-context cache at
//! every position with every cache type, a smaller cache, and rewinds that
//! go back only as far as the rings still hold (else to 0, from where the
//! tokens run again).

mod common;

use common::test_model_path;
use moe::arch::Arch;
use moe::model::{KvElem, KvType, Model, Session};
use moe::synth::{TinyModel, WeightTypes};
use moe_quant::QType;

const N_CTX: usize = 400;
const WINDOW: usize = 8;
/// Rings of 64 positions (the window plus 16, in whole key tiles).
const SLACK: usize = 16;
const BATCH: usize = 16;

fn model(name: &str) -> Model {
    let path = test_model_path(&format!("swa-ring-{name}.gguf"));
    let types = WeightTypes { ffn_gate_up: QType::MXFP4, ffn_down: QType::MXFP4, ..WeightTypes::uniform(QType::Q8_0) };
    TinyModel {
        arch: Arch::GptOss,
        n_embd: 64,
        head_dim: 64,
        n_head: 4,
        n_head_kv: 2,
        n_ff_exp: 64,
        n_expert: 8,
        n_expert_used: 4,
        n_layer: 3,
        n_ctx: 4096,
        rope_yarn: 32.0,
        sliding_window: WINDOW,
        types,
        seed: 11,
        ..Default::default()
    }
    .write(&path)
    .unwrap();
    Model::open(&path).unwrap()
}

fn prompt(n: usize) -> Vec<u32> {
    (0..n).map(|i| ((i * 7919 + 13) % 256) as u32).collect()
}

fn bits(x: &[f32]) -> Vec<u32> {
    x.iter().map(|v| v.to_bits()).collect()
}

/// Every position's logits of `tokens` run in `s`.
fn all_logits(s: &mut Session<'_>, tokens: &[u32]) -> Vec<Vec<u32>> {
    let mut out = Vec::new();
    s.prefill(tokens, |_, l| out.push(bits(l))).unwrap();
    out
}

#[test]
fn rings_give_the_whole_cache_logits_in_less_memory() {
    let model = model("logits");
    let tokens = prompt(300);
    for kv in [KvType::F32, KvType::F16, KvType::Q8_0, KvType { k: KvElem::Q8_0, v: KvElem::F16 }] {
        let mut whole = Session::new(&model, N_CTX, kv).unwrap();
        let mut ring = Session::with_ring_slack(&model, N_CTX, kv, SLACK).unwrap();
        for s in [&mut whole, &mut ring] {
            s.set_batch_size(BATCH).unwrap();
        }
        // Two of the three layers are windowed: 64 positions instead of 400.
        assert!(ring.kv_bytes() * 2 < whole.kv_bytes(), "{kv}: {} vs {} bytes", ring.kv_bytes(), whole.kv_bytes());
        let (want, got) = (all_logits(&mut whole, &tokens), all_logits(&mut ring, &tokens));
        for (pos, (w, g)) in want.iter().zip(&got).enumerate() {
            assert!(w == g, "{kv}: logits differ at position {pos}");
        }

        // Back 20 positions: the rings still hold the window before it.
        assert_eq!(ring.truncate(280), 280, "{kv}");
        whole.truncate(280);
        for &t in &tokens[280..290] {
            let w = bits(whole.forward(t).unwrap());
            assert!(w == bits(ring.forward(t).unwrap()), "{kv}: a decode step after a rewind");
        }
        // Back 190: overwritten since; the session starts over from 0,
        // and runs the same tokens to the same logits.
        assert_eq!(ring.truncate(100), 0, "{kv}");
        assert_eq!(ring.pos(), 0);
        let again = all_logits(&mut ring, &tokens[..120]);
        assert!(again[..] == want[..120], "{kv}: the tokens run again from 0");
    }
}

/// The memory plan counts the rings as the cache allocates them.
#[test]
fn the_plan_counts_rings() {
    let model = model("plan");
    let fp = moe::offload_setup::Footprint::of(&model);
    for n_ctx in [400, 10_000] {
        let s = Session::new(&model, n_ctx, KvType::F32).unwrap();
        assert_eq!(fp.kv_bytes(n_ctx), s.kv_bytes(), "n_ctx {n_ctx}");
    }
    // Rings of 4,160 positions (the window and 4,096 more) past that.
    let per_layer_pos = 2 * 4 * 128;
    assert_eq!(fp.kv_bytes(10_000), per_layer_pos * (10_000 + 2 * 4_160));
    // Rings make huge contexts cheap, but not unbounded: past 2^30
    // positions (llama.cpp's 32-bit contexts) a session is refused.
    let e = Session::new(&model, (1 << 30) + 1, KvType::F16).err().expect("a context past 2^30");
    assert!(e.to_string().contains("lower -c/--ctx-size"), "{e}");
}

#[test]
fn a_batch_larger_than_a_ring_is_cut_to_fit() {
    let model = model("batch");
    let tokens = prompt(200);
    let mut whole = Session::new(&model, N_CTX, KvType::F16).unwrap();
    let mut ring = Session::with_ring_slack(&model, N_CTX, KvType::F16, SLACK).unwrap();
    whole.set_batch_size(BATCH).unwrap();
    // 512 tokens a pass would overwrite positions the pass still needs.
    ring.set_batch_size(512).unwrap();
    assert!(all_logits(&mut whole, &tokens) == all_logits(&mut ring, &tokens));
}
