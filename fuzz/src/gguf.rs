//! The GGUF target: arbitrary bytes through everything that reads a file.
//!
//! 1. [`GgufHeader::parse`] (what `GgufFile::open` checks). Errors must
//!    name the file.
//! 2. On success, every tensor: its range lies in the data section and the
//!    bytes, its sizes agree, and its first row dequantizes.
//! 3. The tokenizer from the metadata; if it builds, a few encodes and
//!    decodes.
//! 4. `ModelConfig::from_metadata`; if it passes, every size is within its
//!    bound (`config::limits`) and the products the engine derives from
//!    them are computed here with plain arithmetic, which the fuzz build
//!    (`-a`: overflow checks) turns into a crash if one overflows. Then
//!    the file (written to a scratch file) is bound as a `Model`, whose
//!    errors must name the file; a bound model is planned and inspected for
//!    contexts up to usize::MAX, and runs two decode steps and a batched
//!    prompt.

use std::path::Path;
use std::sync::OnceLock;

use moe::config::ModelConfig;
use moe::gguf::{GgufFile, GgufHeader};
use moe::inspect::Inspection;
use moe::model::{KvType, Model, Session};
use moe::offload_setup::{plan, Footprint, MemRequest};
use moe::tokenizer::{StreamDecoder, Tokenizer};
use moe_quant::dequantize_row;

use crate::{assert_names_file, scratch_path, stream};

/// The name errors must carry.
const NAME: &str = "fuzz-input.gguf";

pub fn check(data: &[u8]) {
    let path = Path::new(NAME);
    let header = match GgufHeader::parse(path, data) {
        Ok(h) => h,
        Err(e) => return assert_names_file(&e, path),
    };
    check_tensors(&header, data);
    check_tokenizer(&header);
    match ModelConfig::from_metadata(&header.metadata) {
        Ok(cfg) => check_model(data, &cfg),
        Err(e) => assert_names_file(&e, path),
    }
}

fn check_tensors(h: &GgufHeader, data: &[u8]) {
    assert!(h.version == 2 || h.version == 3);
    assert!(h.alignment.is_power_of_two());
    assert!(h.data_offset <= data.len() as u64);
    let mut names = std::collections::HashSet::new();
    for t in &h.tensors {
        assert!(names.insert(t.name.as_str()), "duplicate tensor '{}' accepted", t.name);
        assert!(!t.name.is_empty() && t.name.len() < 64);
        assert!(t.dims.len() <= 4 && t.dims.iter().all(|&d| d > 0));
        let r = t.range();
        assert!(r.start >= h.data_offset && r.end <= data.len() as u64, "tensor '{}' range {r:?} outside", t.name);
        assert_eq!((r.start - h.data_offset) % h.alignment, 0);
        let bytes = &data[r.start as usize..r.end as usize];
        assert_eq!(t.row_bytes() * t.n_rows(), t.n_bytes, "tensor '{}'", t.name);
        assert_eq!(t.n_elements(), t.ne(0) * t.n_rows());
        let row = &bytes[..t.row_bytes() as usize];
        let mut out = vec![0f32; t.ne(0) as usize];
        dequantize_row(t.qtype, row, &mut out);
    }
}

fn check_tokenizer(h: &GgufHeader) {
    let tok = match Tokenizer::from_metadata(&h.metadata) {
        Ok(t) => t,
        Err(e) => return assert_names_file(&e, Path::new(NAME)),
    };
    let n = tok.n_vocab() as u32;
    for text in ["Hello world", " <s>x\u{2581}\u{1F999}\n\n 12345", ""] {
        for (add, parse) in [(true, true), (false, false)] {
            // Encoding may fail (a vocab without byte tokens); it must not panic.
            if let Ok(ids) = tok.encode(text, add, parse) {
                assert!(ids.iter().all(|&id| id < n), "encode gave an id outside the vocab of {n}");
                let whole = tok.decode(&ids, false);
                assert_eq!(stream(StreamDecoder::detokenizing(&tok, false), &ids), whole);
            }
        }
    }
    let ids: Vec<u32> = [0, 1, 2, n / 2, n.saturating_sub(1), n, u32::MAX].into();
    let _ = tok.decode(&ids, true);
    let _ = tok.detokenize(&ids, true, true);
    for &id in &ids {
        let _ = (tok.is_eog(id), tok.is_control(id), tok.token_text(id));
    }
}

fn scratch() -> &'static Path {
    static P: OnceLock<std::path::PathBuf> = OnceLock::new();
    P.get_or_init(|| scratch_path("input.gguf"))
}

/// Every size within its bound, and the products derived from them.
fn check_sizes(c: &ModelConfig) {
    use moe::config::*;
    let within = |what: &str, v: usize, max: u64| assert!(v as u64 <= max, "{what} {v} passed the config check; its bound is {max}");
    within("n_embd", c.n_embd, MAX_EMBD);
    within("n_layer", c.n_layer, MAX_LAYERS);
    within("n_head", c.n_head, MAX_HEADS);
    within("head_dim", c.head_dim, MAX_HEAD_DIM);
    within("q_dim", c.q_dim(), MAX_Q_DIM);
    within("kv_dim", c.kv_dim(), c.q_dim() as u64);
    within("n_ff_max", c.n_ff_max(), MAX_FF);
    within("n_expert", c.n_expert, MAX_EXPERTS);
    within("n_vocab", c.n_vocab, MAX_VOCAB);
    within("n_ctx_train", c.n_ctx_train, MAX_CONTEXT);
    // The shapes the binder expects, KV bytes per position (f32), one
    // layer's experts in f32: plain arithmetic, so overflow crashes.
    let (embd, ff) = (c.n_embd as u64, c.n_ff_max() as u64);
    let _ = (c.n_vocab as u64 * embd, c.q_dim() as u64 * embd, 2 * 4 * c.n_layer as u64 * c.kv_dim() as u64);
    let _ = c.n_expert.max(1) as u64 * 3 * ff * embd * 4;
}

/// The memory plan and `moe inspect` for contexts up to usize::MAX, and a
/// session too large to address: errors or saturated sizes, never overflow.
fn check_plans(model: &Model) {
    let fp = Footprint::of(model);
    let n_ctx_train = model.config().n_ctx_train;
    for n_ctx in [1, n_ctx_train.max(1), usize::MAX] {
        let _ = fp.kv_bytes(n_ctx);
        let _ = plan(&fp, n_ctx, &MemRequest { mem: Some(1 << 30), ..Default::default() });
    }
    if let Err(e) = Inspection::of(model, Some(1 << 30), n_ctx_train.clamp(1, 4096), KvType::F16) {
        assert_names_file(&e, scratch());
    }
    assert!(Session::new(model, usize::MAX, KvType::F32).is_err(), "a KV cache of usize::MAX positions");
}

fn check_model(data: &[u8], cfg: &ModelConfig) {
    assert!(cfg.n_head_kv > 0 && cfg.n_head.is_multiple_of(cfg.n_head_kv));
    assert!(cfg.head_dim > 0 && cfg.head_dim.is_multiple_of(2));
    check_sizes(cfg);
    let path = scratch();
    std::fs::write(path, data).expect("write the scratch file");
    let file = GgufFile::open(path).expect("it parsed from bytes");
    // The mapping outlives the name; no scratch file is left behind.
    std::fs::remove_file(path).expect("remove the scratch file");
    let model = match Model::from_file(file) {
        Ok(m) => m,
        Err(e) => return assert_names_file(&e, path),
    };
    check_plans(&model);
    let n_vocab = model.config().n_vocab as u32;
    for kv in [KvType::F32, KvType::F16] {
        let mut s = Session::new(&model, 4, kv).expect("a session of 4 positions");
        for token in [0, n_vocab - 1] {
            let logits = s.forward(token).expect("a decode step on a bound model");
            assert_eq!(logits.len(), n_vocab as usize);
        }
        s.reset();
        let logits = s.prefill_last(&[n_vocab / 2, 0, n_vocab - 1]).expect("a batched prompt on a bound model");
        assert_eq!(logits.len(), n_vocab as usize);
    }
}
