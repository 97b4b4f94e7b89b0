//! Speculative decoding is lossless. The verification pass gives every
//! token the logits a decode step gives it, bit for bit (dense and MoE,
//! both KV types, experts from the cache at a small budget); greedy
//! generation with prompt-lookup drafts is token for token the generation
//! without, on SmolLM2 and on its upcycled MoE with routers fitted to real
//! text, over prose, code and repetitive prompts; and drafts are accepted
//! where text repeats (so the comparison is not vacuous). With sampling,
//! a seed gives the same text with and without drafts; the acceptance
//! rule is tested on a toy distribution in `src/speculative/tests.rs`.

mod common;

use std::path::Path;

use moe::generate::{generate, GenerateOptions, GenerationStats};
use moe::model::{KvType, Model};
use moe::offload_setup::{self, Footprint, MemRequest, OffloadOptions, Size};
use moe::sampler::{Sampler, SamplerParams};
use moe::speculative::{DraftOptions, NgramDrafter};
use moe::tokenizer::Tokenizer;

const PROMPTS: [&str; 4] = [
    // Repetitive: a list the model continues by copying its pattern.
    "Monday, Tuesday, Wednesday, Thursday, Friday. Monday, Tuesday, Wednesday, Thursday, Friday. Monday, Tuesday,",
    // Code that reuses its identifiers.
    "def add(a, b):\n    return a + b\n\ndef sub(a, b):\n    return a - b\n\ndef mul(a, b):\n",
    // Copy a given passage.
    "Copy the sentence. Sentence: the quick brown fox jumps over the lazy dog near the river bank. Copy: the quick brown",
    // Prose, where drafts mostly fail.
    "The history of the harbour town begins in the twelfth century, when",
];

fn open(path: &Path, budget_pct: Option<f64>) -> Model {
    let mut model = Model::open(path).unwrap();
    if let Some(pct) = budget_pct {
        let fp = Footprint::of(&model);
        let plan = offload_setup::plan(&fp, 512, &MemRequest { expert_cache: Some(Size::Percent(pct)), ..Default::default() }).unwrap();
        offload_setup::setup(&mut model, &plan, &OffloadOptions::default()).unwrap();
    }
    model
}

/// The bits of every token's logits: decode steps one at a time, and one
/// verification pass over all of them, after the same prompt.
fn steps_vs_pass(model: &Model, kv: KvType) {
    let prompt = [1u32, 20, 300, 4000, 55, 6];
    let next = [7u32, 8000, 9, 1000, 1100, 12, 13];
    let bits = |l: &[f32]| l.iter().map(|x| x.to_bits()).collect::<Vec<u32>>();
    let mut a = model.session_with_kv(64, kv).unwrap();
    a.prefill_last(&prompt).unwrap();
    let singles: Vec<Vec<u32>> = next.iter().map(|&t| bits(a.forward(t).unwrap())).collect();
    let mut b = model.session_with_kv(64, kv).unwrap();
    b.prefill_last(&prompt).unwrap();
    let n_vocab = model.config().n_vocab;
    let pass = bits(b.forward_steps(&next).unwrap());
    for (i, s) in singles.iter().enumerate() {
        assert!(pass[i * n_vocab..(i + 1) * n_vocab] == s[..], "{kv:?}: token {i}'s logits differ from its decode step");
    }
    // A rolled-back pass continues as if the rejected tokens never ran.
    b.truncate(prompt.len() + 2);
    assert_eq!(bits(b.forward(next[2]).unwrap()), singles[2], "{kv:?}: after the rollback");
}

#[test]
fn verification_pass_logits_are_decode_step_logits() {
    for (path, budget) in [(common::smollm2(), None), (common::fitted_smollm2(), Some(30.0)), (common::kquant_moe(), Some(40.0))] {
        let model = open(&path, budget);
        for kv in [KvType::F16, KvType::F32] {
            steps_vs_pass(&model, kv);
        }
    }
}

fn run(model: &Model, tok: &Tokenizer, prompt: &str, n: usize, draft: DraftOptions) -> (Vec<u32>, GenerationStats) {
    run_ids(model, tok, tok.encode(prompt, true, true).unwrap(), n, draft)
}

fn run_ids(model: &Model, tok: &Tokenizer, ids: Vec<u32>, n: usize, draft: DraftOptions) -> (Vec<u32>, GenerationStats) {
    let mut s = model.session_with_kv(ids.len() + n + 1, KvType::F16).unwrap();
    let mut sampler = Sampler::new(SamplerParams { temp: 0.0, ..Default::default() });
    let mut out = Vec::new();
    let st = generate(&mut s, tok, &mut sampler, &ids, &GenerateOptions { n_predict: n, ignore_eos: true, draft, ..Default::default() }, |t| {
        out.push(t);
        true
    })
    .unwrap();
    (out, st)
}

fn greedy_is_unchanged(model: &Model, prompts: &[&str]) {
    let tok = Tokenizer::from_metadata(model.metadata()).unwrap();
    let n = 40;
    let mut accepted_on_repetitive = 0;
    for &prompt in prompts {
        let (want, base) = run(model, &tok, prompt, n, DraftOptions::default());
        assert_eq!(base.draft.draft_passes, 0, "drafting is off by default");
        assert_eq!(base.draft.passes, n - 1);
        for draft in [
            DraftOptions { max: 8, ..Default::default() },
            DraftOptions { max: 4, adaptive: false, ngram: NgramDrafter { min: 1, max: 3 } },
        ] {
            let (got, st) = run(model, &tok, prompt, n, draft);
            assert_eq!(got, want, "{prompt:?} with {draft:?}: {:?} vs {:?}", tok.decode(&got, true), tok.decode(&want, true));
            assert_eq!((st.generated_tokens, st.decode_evals), (n, n - 1), "{prompt:?}");
            let d = st.draft;
            eprintln!("{:?}: {}", &prompt[..20], d.summary());
            assert_eq!(d.tokens, n - 1, "every generated token but the first comes from a pass");
            assert!(d.accepted <= d.proposed && d.passes == d.single_passes + d.draft_passes && d.tokens == d.passes + d.accepted, "{d:?}");
            if prompt != PROMPTS[3] {
                accepted_on_repetitive += d.accepted;
            }
        }
    }
    assert!(accepted_on_repetitive >= 20, "drafts were accepted on the repetitive prompts: {accepted_on_repetitive}");
}

#[test]
fn greedy_drafting_is_token_for_token_the_same_dense() {
    greedy_is_unchanged(&open(&common::smollm2(), None), &PROMPTS);
}

#[test]
fn greedy_drafting_is_token_for_token_the_same_moe_offloaded() {
    // A 30% expert cache: drafts route to experts that must be read.
    let model = open(&common::fitted_smollm2(), Some(30.0));
    greedy_is_unchanged(&model, &PROMPTS[1..]);
    let tok = Tokenizer::from_metadata(model.metadata()).unwrap();
    let (_, st) = run(&model, &tok, PROMPTS[0], 64, DraftOptions { max: 8, ..Default::default() });
    assert!(st.draft.bytes_read > 0 && st.draft.accepted > 0, "{:?}", st.draft);
}

/// Sampling: the same seed gives the same tokens with and without drafts
/// (each position is sampled with the same draw; see
/// `moe::speculative::accepts`), on the dense and the offloaded MoE model.
#[test]
fn sampled_drafting_is_token_for_token_the_same() {
    for (path, budget) in [(common::smollm2(), None), (common::fitted_smollm2(), Some(30.0))] {
        let model = open(&path, budget);
        let tok = Tokenizer::from_metadata(model.metadata()).unwrap();
        let ids = tok.encode(PROMPTS[0], true, true).unwrap();
        let sample = |draft: DraftOptions| {
            let mut s = model.session_with_kv(ids.len() + 33, KvType::F16).unwrap();
            let mut sampler = Sampler::new(SamplerParams { temp: 0.7, seed: 11, repeat_penalty: 1.1, ..Default::default() });
            let mut out = Vec::new();
            let st = generate(&mut s, &tok, &mut sampler, &ids, &GenerateOptions { n_predict: 32, ignore_eos: true, draft, ..Default::default() }, |t| {
                out.push(t);
                true
            })
            .unwrap();
            (out, st.draft)
        };
        let (want, _) = sample(DraftOptions::default());
        for draft in [DraftOptions { max: 6, ..Default::default() }, DraftOptions { max: 3, adaptive: false, ngram: NgramDrafter { min: 1, max: 2 } }] {
            let (got, d) = sample(draft);
            assert_eq!(got, want, "{}: {draft:?}", path.display());
            assert!(d.proposed > 0, "{d:?}");
        }
    }
}

/// The other architectures (per-head QK norm and NEOX RoPE, a shared
/// expert, unrenormalised routing): the verification pass is the decode
/// steps bit for bit, and greedy drafting changes no token, with experts
/// from a 40% cache.
#[test]
fn drafting_is_lossless_on_other_architectures() {
    use moe::arch::Arch;
    use moe::synth::TinyModel;
    use moe_quant::QType;
    let base = TinyModel {
        n_embd: 64,
        n_ff: 128,
        n_ff_exp: 64,
        n_head: 4,
        n_head_kv: 2,
        types: moe::synth::WeightTypes::uniform(QType::Q8_0),
        tokenizer_from: Some(common::smollm2()),
        seed: 3,
        ..Default::default()
    };
    for (name, spec) in [
        ("qwen3moe", TinyModel { arch: Arch::Qwen3Moe, head_dim: 32, n_expert: 16, n_expert_used: 4, ..base.clone() }),
        ("qwen2moe", TinyModel { arch: Arch::Qwen2Moe, n_expert: 8, n_expert_used: 2, ..base.clone() }),
        ("olmoe", TinyModel { arch: Arch::Olmoe, n_head_kv: 4, n_expert: 8, n_expert_used: 2, ..base.clone() }),
        ("gpt-oss", TinyModel { arch: Arch::GptOss, head_dim: 64, n_expert: 8, n_expert_used: 4, sliding_window: 8, rope_yarn: 32.0, n_ctx: 4096, ..base.clone() }),
    ] {
        let path = common::test_model_path(&format!("speculative-{name}.gguf"));
        spec.write(&path).unwrap();
        let model = open(&path, Some(40.0));
        for kv in [KvType::F16, KvType::F32] {
            steps_vs_pass(&model, kv);
        }
        // A random model copies little: over the four prompts (and, as
        // `moe bench --draft-echo` does, each followed by the model's own
        // greedy continuation and the prompt's last 4 tokens), some
        // drafts must be tried, or the comparison proves nothing.
        let tok = Tokenizer::from_metadata(model.metadata()).unwrap();
        let mut tried = 0;
        for text in PROMPTS {
            let ids = tok.encode(text, true, true).unwrap();
            let (echo, _) = run_ids(&model, &tok, ids.clone(), 16, DraftOptions::default());
            for prompt in [ids.clone(), [ids.clone(), echo, ids[ids.len() - 4..].to_vec()].concat()] {
                let (want, _) = run_ids(&model, &tok, prompt.clone(), 24, DraftOptions::default());
                let (got, st) = run_ids(&model, &tok, prompt, 24, DraftOptions { max: 4, adaptive: false, ngram: NgramDrafter { min: 1, max: 3 } });
                assert_eq!(got, want, "{name}: drafting changed the greedy tokens");
                tried += st.draft.draft_passes;
            }
        }
        assert!(tried > 0, "{name}: no draft was tried");
        eprintln!("{name}: {tried} draft passes");
    }
}
