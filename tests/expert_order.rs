//! The forward pass runs a layer's ready experts before those still being
//! read, so that compute overlaps the reads; the order never changes the
//! logits.

mod common;

use std::sync::{Arc, Mutex};

use common::repo_root;
use moe::model::Model;
use moe::synth::TinyModel;
use moe_offload::{ExpertBytes, ExpertKey, ExpertSource, MappedExperts, OffloadError};

/// The mapping, claiming that only odd experts are ready, and recording
/// the order of `with_expert` calls.
struct OddReady {
    inner: MappedExperts,
    calls: Arc<Mutex<Vec<ExpertKey>>>,
}

impl ExpertSource for OddReady {
    fn with_expert(&self, key: ExpertKey, f: &mut dyn FnMut(ExpertBytes<'_>)) -> Result<(), OffloadError> {
        self.calls.lock().unwrap().push(key);
        self.inner.with_expert(key, f)
    }

    fn is_ready(&self, key: ExpertKey) -> bool {
        key.expert % 2 == 1
    }
}

#[test]
fn ready_experts_run_first_and_logits_do_not_change() {
    let dir = repo_root().join("target/test-models");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("expert-order.gguf");
    TinyModel { n_expert: 8, n_expert_used: 2, seed: 4, ..Default::default() }.write(&path).unwrap();
    let prompt: Vec<u32> = (0..16).map(|i| (i * 29 + 5) % 260).collect();
    let plain = Model::open(&path).unwrap();
    let want: Vec<u32> = plain.session(16).unwrap().prefill_last(&prompt).unwrap().iter().map(|x| x.to_bits()).collect();

    let mut model = Model::open(&path).unwrap();
    let calls = Arc::new(Mutex::new(Vec::new()));
    let inner = MappedExperts::new(Arc::clone(model.file().file()), model.expert_ranges());
    model.set_expert_source(Box::new(OddReady { inner, calls: Arc::clone(&calls) }));
    let got: Vec<u32> = model.session(16).unwrap().prefill_last(&prompt).unwrap().iter().map(|x| x.to_bits()).collect();
    assert!(got == want, "logits changed with the expert order");

    let calls = calls.lock().unwrap();
    let mut checked = 0;
    for l in 0..2u32 {
        let layer: Vec<u32> = calls.iter().filter(|k| k.layer == l).map(|k| k.expert).collect();
        // 16 tokens × top-2 over 8 experts: several of each parity.
        let first_even = layer.iter().position(|e| e % 2 == 0).unwrap_or(layer.len());
        assert!(layer[first_even..].iter().all(|e| e % 2 == 0), "layer {l}: ready (odd) experts not first: {layer:?}");
        assert!(first_even > 0 && first_even < layer.len(), "layer {l}: {layer:?}");
        // Within each group, expert order.
        assert!(layer[..first_even].windows(2).all(|w| w[0] < w[1]) && layer[first_even..].windows(2).all(|w| w[0] < w[1]));
        checked += 1;
    }
    assert_eq!(checked, 2);
    std::fs::remove_file(&path).ok();
}
