//! The resident-weights copy (the default of `moe run`) changes speed,
//! never output: on the real dense model, where every weight is resident,
//! logits are bit-identical to reading through the mapping, over a prompt
//! and greedy decode steps; and the copy holds exactly the resident ranges.

mod common;

use common::*;
use moe::model::Model;
use moe::offload_setup::{self, Footprint, MemRequest, OffloadOptions, ResidentMode};

fn logit_bits(model: &Model, prompt: &[u32], steps: usize) -> Vec<Vec<u32>> {
    let mut s = model.session(prompt.len() + steps).unwrap();
    let mut all = Vec::new();
    let last = s.prefill(prompt, |_, l| all.push(l.iter().map(|x| x.to_bits()).collect())).unwrap();
    let mut next = argmax(last) as u32;
    for _ in 0..steps {
        let l = s.forward(next).unwrap();
        all.push(l.iter().map(|x| x.to_bits()).collect());
        next = argmax(l) as u32;
    }
    all
}

fn set_up(resident: ResidentMode) -> (Model, offload_setup::SetupReport) {
    let mut model = Model::open(&smollm2()).unwrap();
    let plan = offload_setup::plan(&Footprint::of(&model), 64, &MemRequest::default()).unwrap();
    let report = offload_setup::setup(&mut model, &plan, &OffloadOptions { resident, ..Default::default() }).unwrap();
    (model, report)
}

#[test]
fn dense_model_logits_are_bit_identical_with_the_copy_and_the_mapping() {
    let (copied, report) = set_up(ResidentMode::Copy);
    assert!(report.resident_copied, "{:?}", report.resident_note);
    let copy = copied.resident_copy().expect("the copy is in place");
    // SmolLM2's tensors lie back to back: one range, every tensor byte.
    assert_eq!(copy.ranges().collect::<Vec<_>>(), copied.resident_ranges());
    assert_eq!(copy.bytes(), report.resident_bytes);
    assert!(copy.bytes() > 90 << 20, "{} bytes", copy.bytes());

    let (mapped, report) = set_up(ResidentMode::Map);
    assert!(!report.resident_copied && mapped.resident_copy().is_none());

    let prompt = [1u32, 504, 3458, 282, 4649, 314, 253, 1789, 30];
    let (a, b) = (logit_bits(&copied, &prompt, 12), logit_bits(&mapped, &prompt, 12));
    assert_eq!(a.len(), prompt.len() + 12);
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        assert!(x == y, "logits differ at step {i}");
    }
}
