//! Inputs the fuzzer (fuzz/, scripts/fuzz.sh) found crashing the engine,
//! kept in tests/fixtures/fuzz/ as it wrote them, each test named after the
//! bug. They run through what the fuzz target ran, so each fails without
//! its fix (the test profile has overflow checks on).

use std::path::PathBuf;

use moe::model::{KvType, Model, Session};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fuzz").join(name)
}

/// A random tiny MoE whose weights, mutated by the fuzzer, make some
/// activations subnormal: Q8_1 quantization of such a block has an
/// infinite multiplier, and the i32 sum of its quants overflowed
/// (quant/src/quantize_act.rs). The unit test there checks the values.
#[test]
fn q8_activation_quantization_of_a_subnormal_block_overflowed() {
    let model = Model::open(&fixture("q8-subnormal-activations.gguf")).expect("the fixture binds");
    let c = model.config();
    assert!(c.is_moe(), "{c:?}");
    let n_vocab = c.n_vocab as u32;
    for kv in [KvType::F32, KvType::F16] {
        let mut s = Session::new(&model, 4, kv).unwrap();
        for token in [0, n_vocab - 1] {
            assert_eq!(s.forward(token).unwrap().len(), n_vocab as usize);
        }
    }
}
