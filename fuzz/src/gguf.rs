//! The GGUF target: arbitrary bytes through everything that reads a file.
//!
//! 1. [`GgufHeader::parse`] (what `GgufFile::open` checks). Errors must
//!    name the file.
//! 2. On success, every tensor: its range lies in the data section and the
//!    bytes, its sizes agree, and its first row dequantizes.
//! 3. The tokenizer from the metadata; if it builds, a few encodes and
//!    decodes.
//! 4. `ModelConfig::from_metadata`; if it passes, the file (written to a
//!    scratch file) is bound as a `Model`, whose errors must name the file,
//!    and a bound model runs two decode steps and a batched prompt.

use std::path::Path;
use std::sync::OnceLock;

use moe::config::ModelConfig;
use moe::gguf::{GgufFile, GgufHeader};
use moe::model::{KvType, Model, Session};
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

fn check_model(data: &[u8], cfg: &ModelConfig) {
    assert!(cfg.n_head_kv > 0 && cfg.n_head.is_multiple_of(cfg.n_head_kv));
    assert!(cfg.head_dim > 0 && cfg.head_dim.is_multiple_of(2));
    let (_q, _kv) = (cfg.q_dim(), cfg.kv_dim());
    let path = scratch();
    std::fs::write(path, data).expect("write the scratch file");
    let file = GgufFile::open(path).expect("it parsed from bytes");
    // The mapping outlives the name; no scratch file is left behind.
    std::fs::remove_file(path).expect("remove the scratch file");
    let model = match Model::from_file(file) {
        Ok(m) => m,
        Err(e) => return assert_names_file(&e, path),
    };
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
