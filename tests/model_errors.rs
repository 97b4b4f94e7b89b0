//! Bad models fail at load with an error naming the file and the tensor or
//! key, never a panic: a missing tensor, a wrong shape, an unsupported
//! architecture, a missing hyper-parameter.

mod common;

use std::path::PathBuf;

use common::*;
use moe::gguf::{GgufFile, GgufWriter, Value};
use moe::model::Model;
use moe::synth::TinyModel;
use moe::Error;

/// Copies `src` to `dst`, letting `edit` drop or change tensors and keys.
fn rewrite(src: &PathBuf, dst: &PathBuf, skip_tensor: Option<&str>, key: Option<(&str, Option<Value>)>, reshape: Option<&str>) {
    let f = GgufFile::open(src).unwrap();
    let mut w = GgufWriter::new();
    for (k, v) in &f.metadata().map {
        w.add_kv(k.clone(), v.clone());
    }
    if let Some((k, v)) = key {
        match v {
            Some(v) => {
                w.add_kv(k, v);
            }
            None => {
                w.remove_kv(k);
            }
        }
    }
    for t in f.tensors() {
        if Some(t.name.as_str()) == skip_tensor {
            continue;
        }
        let mut dims = t.dims.clone();
        if Some(t.name.as_str()) == reshape {
            // Same bytes, rows and columns swapped: a plausible-looking but wrong shape.
            dims.swap(0, 1);
        }
        w.add_tensor(&t.name, t.qtype, &dims, f.tensor_bytes(t).to_vec()).unwrap();
    }
    w.write(dst).unwrap();
}

/// A valid tiny MoE to corrupt; one per test so parallel tests never share files.
fn base(test: &str) -> PathBuf {
    let p = test_model_path(&format!("errors-base-{test}.gguf"));
    TinyModel { types: moe::synth::WeightTypes::uniform(moe_quant::QType::F32), seed: 9, ..Default::default() }.write(&p).unwrap();
    p
}

fn open_err(p: &std::path::Path) -> (Error, String) {
    let e = match Model::open(p) {
        Ok(_) => panic!("{} opened, expected an error", p.display()),
        Err(e) => e,
    };
    let msg = e.to_string();
    assert!(msg.contains(&p.display().to_string()), "message does not name the file: {msg}");
    (e, msg)
}

#[test]
fn missing_tensor_is_named() {
    let p = test_model_path("errors-missing.gguf");
    rewrite(&base(&p.file_name().unwrap().to_string_lossy()), &p, Some("blk.1.attn_v.weight"), None, None);
    let (e, msg) = open_err(&p);
    assert!(matches!(e, Error::MissingTensor { .. }), "{e:?}");
    assert!(msg.contains("blk.1.attn_v.weight"), "{msg}");
}

#[test]
fn missing_expert_tensor_is_named() {
    let p = test_model_path("errors-missing-exps.gguf");
    rewrite(&base(&p.file_name().unwrap().to_string_lossy()), &p, Some("blk.0.ffn_down_exps.weight"), None, None);
    let (_, msg) = open_err(&p);
    assert!(msg.contains("blk.0.ffn_down"), "{msg}");
}

#[test]
fn wrong_shape_is_named_with_expected_and_found() {
    let p = test_model_path("errors-shape.gguf");
    rewrite(&base(&p.file_name().unwrap().to_string_lossy()), &p, None, None, Some("blk.0.attn_k.weight"));
    let (e, msg) = open_err(&p);
    assert!(matches!(e, Error::TensorShape { .. }), "{e:?}");
    assert!(msg.contains("blk.0.attn_k.weight") && msg.contains("expected"), "{msg}");
}

#[test]
fn unsupported_architecture_is_named() {
    let p = test_model_path("errors-arch.gguf");
    rewrite(&base(&p.file_name().unwrap().to_string_lossy()), &p, None, Some(("general.architecture", Some(Value::String("gpt2".into())))), None);
    let (e, msg) = open_err(&p);
    assert!(matches!(e, Error::Unsupported { .. }), "{e:?}");
    assert!(msg.contains("gpt2") && msg.contains("llama"), "{msg}");
}

#[test]
fn missing_hyper_parameter_is_named() {
    let p = test_model_path("errors-key.gguf");
    rewrite(&base(&p.file_name().unwrap().to_string_lossy()), &p, None, Some(("llama.attention.layer_norm_rms_epsilon", None)), None);
    let (e, msg) = open_err(&p);
    assert!(matches!(e, Error::MissingKey { .. }), "{e:?}");
    assert!(msg.contains("llama.attention.layer_norm_rms_epsilon"), "{msg}");
}

#[test]
fn vocab_size_below_the_token_list_is_named() {
    // The tiny model's vocab has 260 tokens; vocab_size 200 would put ids
    // 200..260 outside the logits.
    let p = test_model_path("errors-vocab-size.gguf");
    rewrite(&base(&p.file_name().unwrap().to_string_lossy()), &p, None, Some(("llama.vocab_size", Some(Value::U32(200)))), None);
    let (_, msg) = open_err(&p);
    assert!(msg.contains("llama.vocab_size") && msg.contains("at least the 260 tokens of tokenizer.ggml.tokens") && msg.contains("200"), "{msg}");
}

#[test]
fn impossible_expert_count_is_named() {
    let p = test_model_path("errors-experts.gguf");
    rewrite(&base(&p.file_name().unwrap().to_string_lossy()), &p, None, Some(("llama.expert_used_count", Some(Value::U32(9)))), None);
    let (_, msg) = open_err(&p);
    assert!(msg.contains("llama.expert_used_count"), "{msg}");
}

#[test]
fn vocab_only_file_is_not_a_model() {
    let p = gemma3_vocab();
    let e = Model::open(&p).err().expect("a vocab-only file is not a runnable model");
    assert!(e.to_string().contains("gemma3-vocab-spm.gguf"), "{e}");
}

#[test]
fn the_cli_names_an_unsupported_architecture_and_what_runs() {
    let p = test_model_path("errors-arch-cli.gguf");
    rewrite(&base(&p.file_name().unwrap().to_string_lossy()), &p, None, Some(("general.architecture", Some(Value::String("gemma3".into())))), None);
    for sub in [&["run", "-p", "hi"][..], &["chat"][..]] {
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_moe"))
            .args(&sub[..1])
            .args(["-m", p.to_str().unwrap()])
            .args(&sub[1..])
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(1), "{sub:?}");
        let e = String::from_utf8_lossy(&o.stderr);
        assert!(e.contains("\"gemma3\"") && e.contains("cannot run") && e.contains(p.to_str().unwrap()), "{e}");
        for a in moe::arch::Arch::ALL {
            assert!(e.contains(&format!("\"{}\"", a.name())), "{a} is listed: {e}");
        }
        assert!(e.contains("Mixtral") && e.contains("Qwen3-30B-A3B") && e.contains("OLMoE"), "{e}");
    }
}

/// A valid tiny model of `arch` to corrupt.
fn arch_base(test: &str, arch: moe::arch::Arch, n_expert: usize) -> PathBuf {
    let p = test_model_path(&format!("errors-base-{test}.gguf"));
    TinyModel { arch, n_expert, n_expert_used: 2.min(n_expert), types: moe::synth::WeightTypes::uniform(moe_quant::QType::F32), seed: 9, ..Default::default() }
        .write(&p)
        .unwrap();
    p
}

/// RoPE scaling the engine does not run is refused by key and name; YaRN,
/// linear scaling and "none" load, and another base for the windowed
/// layers is refused by key.
#[test]
fn unsupported_rope_scaling_is_named() {
    use moe::arch::Arch;
    for (kind, ok) in [("yarn", true), ("longrope", false), ("su", false), ("linear", true), ("none", true)] {
        let p = test_model_path(&format!("errors-rope-{kind}.gguf"));
        rewrite(&arch_base(&format!("rope-{kind}"), Arch::Qwen3Moe, 4), &p, None, Some(("qwen3moe.rope.scaling.type", Some(Value::String(kind.into())))), None);
        if ok {
            Model::open(&p).unwrap_or_else(|e| panic!("{kind}: {e}"));
            continue;
        }
        let (e, msg) = open_err(&p);
        assert!(matches!(e, Error::Unsupported { .. }), "{e:?}");
        assert!(msg.contains("qwen3moe.rope.scaling.type") && msg.contains(kind) && msg.contains("linear"), "{msg}");
    }
    let p = test_model_path("errors-rope-base-swa.gguf");
    rewrite(&arch_base("rope-base-swa", Arch::Qwen3Moe, 4), &p, None, Some(("qwen3moe.rope.freq_base_swa", Some(Value::F32(5000.0)))), None);
    let (e, msg) = open_err(&p);
    assert!(matches!(e, Error::Unsupported { .. }) && msg.contains("qwen3moe.rope.freq_base_swa"), "{msg}");
}

/// An MoE architecture without experts, a dense one with them, a missing
/// QK norm, a missing shared expert, too many experts, a missing output
/// matrix where the architecture has no tied output, and gpt-oss's missing
/// sinks, window, a half set of expert biases, a bad window pattern and a
/// bad YaRN factor: each named.
#[test]
fn architecture_specific_errors_are_named() {
    use moe::arch::Arch;
    /// (name, architecture, experts, tensor to drop, key to change, what the error names)
    type Case<'a> = (&'a str, Arch, usize, Option<&'a str>, Option<(&'a str, Option<Value>)>, &'a str);
    let cases: [Case; 11] = [
        ("no-experts", Arch::Olmoe, 4, None, Some(("olmoe.expert_count", None)), "olmoe.expert_count"),
        ("dense-with-experts", Arch::Qwen3, 0, None, Some(("qwen3.expert_count", Some(Value::U32(8)))), "qwen3.expert_count"),
        ("no-qk-norm", Arch::Qwen3Moe, 4, Some("blk.1.attn_k_norm.weight"), None, "blk.1.attn_k_norm.weight"),
        ("no-shared-expert", Arch::Qwen2Moe, 4, Some("blk.0.ffn_gate_inp_shexp.weight"), None, "blk.0.ffn_gate_inp_shexp.weight"),
        ("too-many-experts", Arch::Qwen3Moe, 4, None, Some(("qwen3moe.expert_count", Some(Value::U32(513)))), "an integer in 0..=512"),
        // OLMoE has no tied output in llama.cpp: output.weight is required.
        ("no-output", Arch::Olmoe, 4, Some("output.weight"), None, "output.weight"),
        ("no-sinks", Arch::GptOss, 4, Some("blk.1.attn_sinks.weight"), None, "blk.1.attn_sinks.weight"),
        ("no-window", Arch::GptOss, 4, None, Some(("gpt-oss.attention.sliding_window", None)), "gpt-oss.attention.sliding_window"),
        ("half-expert-biases", Arch::GptOss, 4, Some("blk.0.ffn_up_exps.bias"), None, "blk.0.ffn_up_exps.bias"),
        ("bad-window-pattern", Arch::GptOss, 4, None, Some(("gpt-oss.attention.sliding_window_pattern", Some(Value::String("x".into())))), "gpt-oss.attention.sliding_window_pattern"),
        ("bad-yarn-factor", Arch::GptOss, 4, None, Some(("gpt-oss.rope.scaling.factor", Some(Value::F32(-2.0)))), "gpt-oss.rope.scaling.factor"),
    ];
    for (name, arch, n_expert, skip, key, want) in cases {
        let p = test_model_path(&format!("errors-{name}.gguf"));
        rewrite(&arch_base(name, arch, n_expert), &p, skip, key, None);
        let (_, msg) = open_err(&p);
        assert!(msg.contains(want), "{name}: {msg}");
    }
}
