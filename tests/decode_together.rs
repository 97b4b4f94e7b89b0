//! `decode_together`: decode steps of several sessions in one pass give
//! each session, bit for bit, the logits of its own `forward` (the
//! server's slots rely on it: a request gets what it would get alone).
//! Real model (SmolLM2) and a tiny K-quant MoE; f16 and q8_0 caches.

mod common;

use moe::model::{decode_together, KvType, Model, Session};

fn argmax(l: &[f32]) -> u32 {
    l.iter().enumerate().fold((0, f32::NEG_INFINITY), |(bi, bv), (i, &v)| if v > bv { (i, v) } else { (bi, bv) }).0 as u32
}

fn check(model: &Model, kv: KvType, prompts: &[Vec<u32>], steps: usize) {
    let new = || {
        let mut s: Vec<Session<'_>> = prompts.iter().map(|_| model.session_with_kv(256, kv).unwrap()).collect();
        for (s, p) in s.iter_mut().zip(prompts) {
            s.prefill_last(p).unwrap();
        }
        s
    };
    let (mut together, mut alone) = (new(), new());
    for step in 0..steps {
        let tokens: Vec<u32> = alone.iter().map(|s| argmax(s.last_logits())).collect();
        for (s, &t) in alone.iter_mut().zip(&tokens) {
            s.forward(t).unwrap();
        }
        let mut refs: Vec<&mut Session<'_>> = together.iter_mut().collect();
        decode_together(&mut refs, &tokens).unwrap();
        for (i, (a, b)) in alone.iter().zip(&together).enumerate() {
            assert_eq!(a.pos(), b.pos());
            let same = a.last_logits().iter().zip(b.last_logits()).all(|(x, y)| x.to_bits() == y.to_bits());
            assert!(same, "{kv:?} step {step}, session {i}: logits differ from its own forward");
        }
    }
}

#[test]
fn smollm2_sessions_decode_together_as_alone() {
    let model = Model::open(&common::smollm2()).unwrap();
    let prompts = vec![vec![1, 504, 3458, 282], vec![1, 1991], vec![1, 422, 1167, 2644, 314, 2512, 30]];
    check(&model, KvType::F16, &prompts, 6);
    check(&model, KvType::Q8_0, &prompts, 3);
}

#[test]
fn moe_sessions_decode_together_as_alone() {
    let model = Model::open(&common::kquant_moe()).unwrap();
    let prompts = vec![vec![1, 5, 9], vec![2], vec![3, 4, 5, 6, 7, 8], vec![11, 12]];
    check(&model, KvType::F16, &prompts, 8);
    check(&model, KvType::F32, &prompts, 2);
}
