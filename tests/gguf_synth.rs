//! Synthetic models: they open and validate, have the shapes, types and keys
//! llama.cpp needs, are deterministic from the seed, and both expert
//! layouts hold byte-identical experts. Upcycled models hold byte copies of
//! the dense FFN. (Forward-pass checks live with the model tests.)

mod common;

use common::{smollm2, test_model_path};
use std::path::Path;

use moe::gguf::{GgufFile, TensorInfo};
use moe::synth::{Router, upcycle, ExpertLayout, TinyModel, WeightTypes};
use moe_quant::{dequantize_row, QType};

/// Expert `e`'s bytes of `kind` in layer `l`, in either layout.
fn expert_bytes<'a>(f: &'a GgufFile, l: usize, kind: &str, e: u64) -> &'a [u8] {
    if let Some(t) = f.tensor(&format!("blk.{l}.ffn_{kind}_exps.weight")) {
        let slab = t.n_bytes / t.ne(2);
        &f.tensor_bytes(t)[(e * slab) as usize..((e + 1) * slab) as usize]
    } else {
        f.tensor_bytes(f.require(&format!("blk.{l}.ffn_{kind}.{e}.weight")).unwrap())
    }
}

fn mixed() -> TinyModel {
    TinyModel {
        n_layer: 2,
        n_embd: 256,
        n_ff: 512,
        n_head: 4,
        n_head_kv: 2,
        n_expert: 4,
        n_expert_used: 2,
        types: common::kquant_types(),
        seed: 7,
        ..TinyModel::default()
    }
}

#[test]
fn both_layouts_hold_identical_experts() {
    let cfg = mixed();
    let merged = test_model_path("merged.gguf");
    let per = test_model_path("per_expert.gguf");
    TinyModel { layout: ExpertLayout::Merged, ..cfg.clone() }.write(&merged).unwrap();
    TinyModel { layout: ExpertLayout::PerExpert, ..cfg.clone() }.write(&per).unwrap();
    let (m, p) = (GgufFile::open(&merged).unwrap(), GgufFile::open(&per).unwrap());
    for l in 0..cfg.n_layer {
        let gate = m.require(&format!("blk.{l}.ffn_gate_exps.weight")).unwrap();
        assert_eq!((gate.qtype, &gate.dims[..]), (QType::Q4_K, &[256, 512, 4][..]));
        let down = m.require(&format!("blk.{l}.ffn_down_exps.weight")).unwrap();
        assert_eq!((down.qtype, &down.dims[..]), (QType::Q6_K, &[512, 256, 4][..]));
        let pe = p.require(&format!("blk.{l}.ffn_down.3.weight")).unwrap();
        assert_eq!((pe.qtype, &pe.dims[..]), (QType::Q6_K, &[512, 256][..]));
        assert!(p.tensor(&format!("blk.{l}.ffn_gate_exps.weight")).is_none());
        for kind in ["gate", "up", "down"] {
            for e in 0..4 {
                let (a, b) = (expert_bytes(&m, l, kind, e), expert_bytes(&p, l, kind, e));
                assert_eq!(a, b, "layer {l} {kind} expert {e}");
            }
            // Experts differ from each other.
            assert_ne!(expert_bytes(&m, l, kind, 0), expert_bytes(&m, l, kind, 1));
        }
    }
    // Everything that is not an expert is the same tensor in both files.
    for t in m.tensors().iter().filter(|t| !t.name.contains("_exps")) {
        let u = p.require(&t.name).unwrap();
        assert_eq!((t.qtype, &t.dims), (u.qtype, &u.dims));
        assert_eq!(m.tensor_bytes(t), p.tensor_bytes(u), "{}", t.name);
    }
    assert_eq!(p.tensors().len(), m.tensors().len() + 2 * 3 * 3);
}

#[test]
fn metadata_llama_cpp_needs() {
    let path = test_model_path("keys.gguf");
    mixed().write(&path).unwrap();
    let f = GgufFile::open(&path).unwrap();
    let md = f.metadata();
    assert_eq!(md.str("general.architecture").unwrap(), "llama");
    for (k, v) in [
        ("llama.block_count", 2),
        ("llama.embedding_length", 256),
        ("llama.feed_forward_length", 512),
        ("llama.attention.head_count", 4),
        ("llama.attention.head_count_kv", 2),
        ("llama.expert_count", 4),
        ("llama.expert_used_count", 2),
        ("llama.rope.dimension_count", 64),
        ("llama.context_length", 512),
        ("llama.vocab_size", 260),
        ("general.quantization_version", 2),
    ] {
        assert_eq!(md.u64(k).unwrap(), v, "{k}");
    }
    assert_eq!(md.f64("llama.rope.freq_base").unwrap(), 10000.0);
    assert!((md.f64("llama.attention.layer_norm_rms_epsilon").unwrap() - 1e-5).abs() < 1e-12);
    let tokens = md.strings("tokenizer.ggml.tokens").unwrap();
    assert_eq!(tokens.len(), 260);
    assert_eq!((&tokens[32], &tokens[256]), ("Ġ", "<|endoftext|>"));
    assert_eq!(md.str("tokenizer.ggml.model").unwrap(), "gpt2");
    assert_eq!(f.require("token_embd.weight").unwrap().dims, [256, 260]);
    assert_eq!(f.require("output.weight").unwrap().qtype, QType::Q6_K);
    let router = f.require("blk.1.ffn_gate_inp.weight").unwrap();
    assert_eq!((router.qtype, &router.dims[..]), (QType::F32, &[256, 4][..]));
    for norm in ["output_norm.weight", "blk.0.attn_norm.weight", "blk.1.ffn_norm.weight"] {
        assert_eq!(f.require(norm).unwrap().qtype, QType::F32);
    }
}

fn row(f: &GgufFile, t: &TensorInfo, r: u64) -> Vec<f32> {
    let rb = t.row_bytes();
    let mut out = vec![0f32; t.ne(0) as usize];
    dequantize_row(t.qtype, &f.tensor_bytes(t)[(r * rb) as usize..((r + 1) * rb) as usize], &mut out);
    out
}

#[test]
fn weights_have_the_intended_scale() {
    let path = test_model_path("scale.gguf");
    mixed().write(&path).unwrap();
    let f = GgufFile::open(&path).unwrap();
    let norm = row(&f, f.require("blk.0.attn_norm.weight").unwrap(), 0);
    assert!(norm.iter().all(|&x| (0.9..=1.1).contains(&x)), "{norm:?}");
    let gate = f.require("blk.0.ffn_gate_exps.weight").unwrap();
    let bound = (3.0f32 / 256.0).sqrt() * 1.2;
    let last = row(&f, gate, gate.n_rows() - 1);
    assert!(last.iter().all(|x| x.abs() <= bound), "max {}", last.iter().fold(0f32, |a, x| a.max(x.abs())));
    let rms = (last.iter().map(|x| x * x).sum::<f32>() / last.len() as f32).sqrt();
    assert!((rms - 1.0 / 256f32.sqrt()).abs() < 0.3 / 16.0, "rms {rms}");
}

#[test]
fn same_seed_same_bytes_other_seed_other_bytes() {
    let (a, b, c) = (test_model_path("seed_a.gguf"), test_model_path("seed_b.gguf"), test_model_path("seed_c.gguf"));
    let cfg = TinyModel { layout: ExpertLayout::PerExpert, seed: 42, ..TinyModel::default() };
    cfg.write(&a).unwrap();
    cfg.write(&b).unwrap();
    TinyModel { seed: 43, ..cfg }.write(&c).unwrap();
    let (a, b, c) = (std::fs::read(a).unwrap(), std::fs::read(b).unwrap(), std::fs::read(c).unwrap());
    assert_eq!(a, b);
    assert_eq!(a.len(), c.len());
    assert_ne!(a, c);
}

#[test]
fn tokenizer_copied_from_smollm2() {
    let path = test_model_path("tok.gguf");
    let src = smollm2();
    let cfg = TinyModel { tokenizer_from: Some(src.clone()), tied_output: true, ..TinyModel::default() };
    cfg.write(&path).unwrap();
    let (f, s) = (GgufFile::open(&path).unwrap(), GgufFile::open(&src).unwrap());
    for (k, v) in s.metadata().map.iter().filter(|(k, _)| k.starts_with("tokenizer.")) {
        assert_eq!(f.metadata().get(k), Some(v), "{k}");
    }
    assert_eq!(f.metadata().u64("llama.vocab_size").unwrap(), 49_152);
    assert_eq!(f.require("token_embd.weight").unwrap().dims, [64, 49_152]);
    assert!(f.tensor("output.weight").is_none(), "tied output");
}

#[test]
fn bad_configs_are_rejected() {
    let path = test_model_path("bad.gguf");
    for cfg in [
        TinyModel { n_expert_used: 5, ..TinyModel::default() },
        TinyModel { n_head: 3, ..TinyModel::default() },
        TinyModel { n_vocab: 100, ..TinyModel::default() },
        TinyModel { n_embd: 96, n_head: 2, types: WeightTypes::uniform(QType::Q4_K), ..TinyModel::default() },
    ] {
        let e = cfg.write(&path).unwrap_err();
        assert!(matches!(e, moe::Error::InvalidArgument(_)), "{e}");
        assert!(!path.exists());
    }
}

/// Dense model (TinyModel with 0 experts) → upcycled, both layouts.
#[test]
fn upcycle_copies_the_dense_ffn_into_every_expert() {
    let dense = test_model_path("dense.gguf");
    let cfg = TinyModel { n_expert: 0, types: WeightTypes::uniform(QType::Q5_0), seed: 3, ..TinyModel::default() };
    cfg.write(&dense).unwrap();
    let d = GgufFile::open(&dense).unwrap();
    assert!(d.metadata().get("llama.expert_count").is_none());
    assert!(d.tensor("blk.0.ffn_gate_inp.weight").is_none());
    for layout in [ExpertLayout::Merged, ExpertLayout::PerExpert] {
        let out = test_model_path(&format!("upcycled_{layout:?}.gguf"));
        upcycle(&dense, &out, 3, 2, layout, Router::Random { seed: 11 }).unwrap();
        check_upcycled(&d, &out, 3, 2);
    }
    // An MoE cannot be upcycled again.
    let moe = test_model_path("upcycled_Merged.gguf");
    let e = upcycle(&moe, &test_model_path("twice.gguf"), 2, 1, ExpertLayout::Merged, Router::Random { seed: 0 }).unwrap_err();
    assert!(matches!(e, moe::Error::Unsupported { .. }), "{e}");
    let e = upcycle(&dense, &test_model_path("bad_k.gguf"), 2, 3, ExpertLayout::Merged, Router::Random { seed: 0 }).unwrap_err();
    assert!(matches!(e, moe::Error::InvalidArgument(_)), "{e}");
}

fn check_upcycled(d: &GgufFile, out: &Path, n_expert: u64, n_used: u64) {
    let u = GgufFile::open(out).unwrap();
    let md = u.metadata();
    assert_eq!(md.u64("llama.expert_count").unwrap(), n_expert);
    assert_eq!(md.u64("llama.expert_used_count").unwrap(), n_used);
    for (k, v) in &d.metadata().map {
        if !k.starts_with("llama.expert") {
            assert_eq!(md.get(k), Some(v), "{k}");
        }
    }
    let n_embd = md.u64("llama.embedding_length").unwrap();
    let n_layer = md.u64("llama.block_count").unwrap() as usize;
    for t in d.tensors() {
        if t.name.contains(".ffn_gate.") || t.name.contains(".ffn_up.") || t.name.contains(".ffn_down.") {
            assert!(u.tensor(&t.name).is_none(), "{} replaced", t.name);
        } else {
            let c = u.require(&t.name).unwrap();
            assert_eq!((c.qtype, &c.dims), (t.qtype, &t.dims));
            assert_eq!(u.tensor_bytes(c), d.tensor_bytes(t), "{} copied", t.name);
        }
    }
    for l in 0..n_layer {
        let router = u.require(&format!("blk.{l}.ffn_gate_inp.weight")).unwrap();
        assert_eq!((router.qtype, &router.dims[..]), (QType::F32, &[n_embd, n_expert][..]));
        for kind in ["gate", "up", "down"] {
            let dense = d.require(&format!("blk.{l}.ffn_{kind}.weight")).unwrap();
            if let Some(m) = u.tensor(&format!("blk.{l}.ffn_{kind}_exps.weight")) {
                assert_eq!((m.qtype, &m.dims[..]), (dense.qtype, &[dense.ne(0), dense.ne(1), n_expert][..]));
            }
            for e in 0..n_expert {
                assert_eq!(expert_bytes(&u, l, kind, e), d.tensor_bytes(dense), "layer {l} {kind} expert {e}");
            }
        }
    }
}

#[test]
fn upcycle_smollm2() {
    let dense = smollm2();
    let out = test_model_path("smollm2-moe2.gguf");
    upcycle(&dense, &out, 2, 1, ExpertLayout::Merged, Router::Random { seed: 1 }).unwrap();
    check_upcycled(&GgufFile::open(&dense).unwrap(), &out, 2, 1);
    std::fs::remove_file(&out).unwrap();
}

/// SmolLM2 upcycled to the NEOX-RoPE MoE architectures: keys renamed, Q
/// and K rows back in Hugging Face order (llama.cpp's converter's
/// `permute` — reshape (heads, 2, hd/2), swap the middle axes — applied to
/// the output gives the input back), the architecture's extra tensors
/// present, experts copies of the FFN; each file loads and generates.
#[test]
fn upcycle_to_other_architectures() {
    use moe::arch::Arch;
    use moe::synth::upcycle_to;
    let dense = smollm2();
    let d = GgufFile::open(&dense).unwrap();
    let (n_head, n_head_kv) = (d.metadata().u64("llama.attention.head_count").unwrap(), d.metadata().u64("llama.attention.head_count_kv").unwrap());
    // SmolLM2 has grouped-query attention (3 KV heads for 9), which
    // llama.cpp's OLMoE cannot hold (its attn_k_norm is n_embd wide).
    let e = upcycle_to(Arch::Olmoe, &dense, &test_model_path("smollm2-olmoe.gguf"), 4, 2, ExpertLayout::Merged, Router::Zero).unwrap_err();
    assert!(e.to_string().contains("grouped-query"), "{e}");
    // gpt-oss's pass is not llama's: no upcycle, a clear error instead.
    let e = upcycle_to(Arch::GptOss, &dense, &test_model_path("smollm2-gpt-oss.gguf"), 4, 2, ExpertLayout::Merged, Router::Zero).unwrap_err();
    assert!(e.to_string().contains("gpt-oss") && e.to_string().contains("moe synth --preset"), "{e}");
    for arch in [Arch::Qwen3Moe, Arch::Qwen2Moe] {
        let out = test_model_path(&format!("smollm2-{arch}.gguf"));
        upcycle_to(arch, &dense, &out, 16, 4, ExpertLayout::Merged, Router::Random { seed: 2 }).unwrap();
        let u = GgufFile::open(&out).unwrap();
        let md = u.metadata();
        assert_eq!(md.str("general.architecture").unwrap(), arch.name());
        assert_eq!(md.u64(&format!("{arch}.expert_count")).unwrap(), 16);
        assert_eq!(md.u64(&format!("{arch}.block_count")).unwrap(), d.metadata().u64("llama.block_count").unwrap());
        assert!(md.map.keys().all(|k| !k.starts_with("llama.")), "{arch}: llama.* keys left");
        for (kind, heads) in [("q", n_head), ("k", n_head_kv)] {
            let name = format!("blk.3.attn_{kind}.weight");
            let (src, dst) = (d.require(&name).unwrap(), u.require(&name).unwrap());
            let rb = src.row_bytes() as usize;
            let hd = (src.ne(1) / heads) as usize;
            let (a, b) = (d.tensor_bytes(src), u.tensor_bytes(dst));
            for h in 0..heads as usize {
                for half in 0..2 {
                    for i in 0..hd / 2 {
                        // The converter's permute: HF row half·hd/2 + i → row 2i + half.
                        let (hf, llama) = (h * hd + half * hd / 2 + i, h * hd + 2 * i + half);
                        assert_eq!(&b[hf * rb..(hf + 1) * rb], &a[llama * rb..(llama + 1) * rb], "{arch} {name} head {h} row {hf}");
                    }
                }
            }
        }
        let has = |n: &str| u.tensor(n).is_some();
        assert_eq!(has("blk.0.attn_q_norm.weight"), arch == Arch::Qwen3Moe, "{arch}");
        assert_eq!(has("blk.0.ffn_gate_inp_shexp.weight"), arch == Arch::Qwen2Moe, "{arch}");
        // Qwen2-MoE has no tied output in llama.cpp: the embeddings are copied.
        assert_eq!(has("output.weight"), arch == Arch::Qwen2Moe, "{arch}");
        assert_eq!(expert_bytes(&u, 2, "down", 15), d.tensor_bytes(d.require("blk.2.ffn_down.weight").unwrap()));
        let model = moe::model::Model::open(&out).unwrap_or_else(|e| panic!("{arch}: {e}"));
        let mut s = model.session(8).unwrap();
        let logits = s.prefill_last(&[1, 504, 3458, 282, 4649, 314]).unwrap();
        assert!(logits.iter().all(|x| x.is_finite()), "{arch}");
        std::fs::remove_file(&out).unwrap();
    }
}
