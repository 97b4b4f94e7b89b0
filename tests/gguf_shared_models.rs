//! Every shared test model (and SmolLM2 when present) opens cleanly, and
//! what we read agrees with two independent readers:
//! - gguf-py, through the index in `tests/fixtures/gguf_index_*.txt`
//!   (made by `tests/fixtures/gguf_index.py`): every key's type, array
//!   length and a digest of its encoded value; every tensor's type, dims,
//!   absolute offset, size and a digest of its bytes;
//! - gguf-rs (names, types, shapes, offsets, full array lengths).

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use moe::gguf::{GgufFile, Value};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A test model by file name: SmolLM2 and the Gemma 3 vocab are fetched
/// (scripts/fetch-model.sh); the llama.cpp-made tiny models come from
/// `../shared/models` (`None`, a recorded skip, without it).
fn model(name: &str) -> Option<PathBuf> {
    match name {
        "SmolLM2-135M-Instruct.Q4_1.gguf" => Some(common::smollm2()),
        "gemma3-vocab-spm.gguf" => Some(common::gemma3_vocab()),
        _ => common::shared_model_or_skip(name),
    }
}

/// FNV-1a 64 over little-endian u64 words, then the tail bytes (as the
/// Python side computes it).
fn fnv(data: &[u8]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    let words = data.chunks_exact(8);
    let tail = words.remainder();
    for w in words {
        h = (h ^ u64::from_le_bytes(w.try_into().unwrap())).wrapping_mul(0x100_0000_01b3);
    }
    for &b in tail {
        h = (h ^ b as u64).wrapping_mul(0x100_0000_01b3);
    }
    h
}

/// The GGUF encoding of a value (without its type id), written here
/// independently of `GgufWriter`.
fn encode(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::U8(x) => out.push(*x),
        Value::I8(x) => out.push(*x as u8),
        Value::U16(x) => out.extend(x.to_le_bytes()),
        Value::I16(x) => out.extend(x.to_le_bytes()),
        Value::U32(x) => out.extend(x.to_le_bytes()),
        Value::I32(x) => out.extend(x.to_le_bytes()),
        Value::F32(x) => out.extend(x.to_le_bytes()),
        Value::Bool(x) => out.push(*x as u8),
        Value::U64(x) => out.extend(x.to_le_bytes()),
        Value::I64(x) => out.extend(x.to_le_bytes()),
        Value::F64(x) => out.extend(x.to_le_bytes()),
        Value::String(s) => {
            out.extend((s.len() as u64).to_le_bytes());
            out.extend(s.as_bytes());
        }
        Value::Array(a) => {
            out.extend((a.elem_type() as u32).to_le_bytes());
            out.extend((a.len() as u64).to_le_bytes());
            a.iter().for_each(|i| encode(&i, out));
        }
    }
}

#[derive(Default)]
struct Index {
    header: String,
    keys: Vec<String>,
    tensors: Vec<String>,
}

fn read_index(name: &str) -> BTreeMap<String, Index> {
    let text = std::fs::read_to_string(repo().join("tests/fixtures").join(name)).unwrap();
    let mut files: BTreeMap<String, Index> = BTreeMap::new();
    let mut cur = String::new();
    for line in text.lines() {
        let (tag, rest) = line.split_once(' ').unwrap();
        match tag {
            "FILE" => {
                cur = rest.split(' ').next().unwrap().to_string();
                files.entry(cur.clone()).or_default().header = rest.to_string();
            }
            "K" => files.get_mut(&cur).unwrap().keys.push(rest.to_string()),
            "T" => files.get_mut(&cur).unwrap().tensors.push(rest.to_string()),
            _ => panic!("bad index line {line}"),
        }
    }
    files
}

/// Our view of a file, in the index's format.
fn describe(f: &GgufFile, index: &Index) -> Index {
    let name = f.path().file_name().unwrap().to_string_lossy().to_string();
    let md = f.metadata();
    let mut out = Index {
        header: format!("{name} kv={} tensors={} data_offset=", md.map.len(), f.tensors().len()),
        ..Index::default()
    };
    // Keys in the index's (file) order; BTreeMap order is ours.
    for line in &index.keys {
        let key = line.split(' ').next().unwrap();
        let Some(v) = md.get(key) else {
            out.keys.push(format!("{key} MISSING"));
            continue;
        };
        let extra = match v {
            Value::Array(a) => format!("{} {}", a.elem_type() as u32, a.len()),
            _ => "- -".to_string(),
        };
        let mut bytes = Vec::new();
        encode(v, &mut bytes);
        out.keys.push(format!("{key} {} {extra} {:016x}", v.value_type() as u32, fnv(&bytes)));
    }
    for t in f.tensors() {
        let dims = t.dims.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(",");
        out.tensors.push(format!(
            "{} {} {dims} {} {} {:016x}",
            t.name,
            t.qtype.ggml_id(),
            t.offset,
            t.n_bytes,
            fnv(f.tensor_bytes(t))
        ));
    }
    out
}

fn check_against_index(path: &Path, index: &Index) {
    let t = Instant::now();
    let f = GgufFile::open(path).unwrap_or_else(|e| panic!("{e}"));
    let open_time = t.elapsed();
    let ours = describe(&f, index);
    let theirs_header = index.header.rsplit_once('=').unwrap().0;
    assert_eq!(ours.header, format!("{theirs_header}="), "{}", path.display());
    assert_eq!(ours.keys, index.keys, "{}: metadata differs from gguf-py's", path.display());
    assert_eq!(ours.tensors, index.tensors, "{}: tensors differ from gguf-py's", path.display());
    if !f.tensors().is_empty() {
        let their_offset: u64 = index.header.rsplit_once('=').unwrap().1.parse().unwrap();
        assert_eq!(f.data_offset(), their_offset, "{}", path.display());
    }
    eprintln!(
        "{}: {} keys, {} tensors, opened in {open_time:?}",
        path.file_name().unwrap().to_string_lossy(),
        index.keys.len(),
        index.tensors.len()
    );
}

#[test]
fn shared_models_match_gguf_py() {
    let index = read_index("gguf_index_shared.txt");
    assert_eq!(index.len(), 9);
    for (name, idx) in &index {
        if let Some(path) = model(name) {
            check_against_index(&path, idx);
        }
    }
}

#[test]
fn smollm2_matches_gguf_py() {
    let index = read_index("gguf_index_smollm2.txt");
    check_against_index(&common::smollm2(), &index["SmolLM2-135M-Instruct.Q4_1.gguf"]);
}

#[test]
fn every_shared_gguf_opens() {
    let Some(dir) = common::shared_models_dir_or_skip() else { return };
    let mut n = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().is_some_and(|e| e == "gguf") {
            let f = GgufFile::open(&p).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(f.version(), 3);
            n += 1;
        }
    }
    assert!(n >= 9, "found only {n} .gguf files");
}

#[test]
fn arrays_are_complete() {
    let g = GgufFile::open(common::gemma3_vocab()).unwrap();
    let md = g.metadata();
    assert!(g.tensors().is_empty());
    assert_eq!(md.strings("tokenizer.ggml.tokens").unwrap().len(), 262_144);
    assert_eq!(md.array("tokenizer.ggml.scores", "").unwrap().len(), 262_144);
    assert_eq!(md.array("tokenizer.ggml.token_type", "").unwrap().len(), 262_144);
    assert_eq!(md.u64("tokenizer.ggml.bos_token_id").unwrap(), 2);
    assert_eq!(md.u64("tokenizer.ggml.eos_token_id").unwrap(), 1);
    assert_eq!(md.str("tokenizer.ggml.model").unwrap(), "llama");

    for p in ["tiny-moe4x2-q4_0.gguf", "tiny-moe8x2-n256-q4_k_m.gguf", "SmolLM2-135M-Instruct.Q4_1.gguf"].into_iter().filter_map(model) {
        let f = GgufFile::open(&p).unwrap();
        let md = f.metadata();
        assert_eq!(md.strings("tokenizer.ggml.tokens").unwrap().len(), 49_152, "{}", p.display());
        assert_eq!(md.strings("tokenizer.ggml.merges").unwrap().len(), 48_900, "{}", p.display());
        assert_eq!(md.str("tokenizer.ggml.model").unwrap(), "gpt2");
    }
}

#[test]
fn tiny_models_have_the_mixtral_layout() {
    for path in ["tiny-moe4x2-f16.gguf", "tiny-moe8x2-n256-q4_k_m.gguf"].into_iter().filter_map(model) {
        let f = GgufFile::open(&path).unwrap();
        let md = f.metadata();
        let (n_embd, n_ff, n_expert) = (
            md.u64("llama.embedding_length").unwrap(),
            md.u64("llama.feed_forward_length").unwrap(),
            md.u64("llama.expert_count").unwrap(),
        );
        for l in 0..md.u64("llama.block_count").unwrap() {
            let gate = f.require(&format!("blk.{l}.ffn_gate_exps.weight")).unwrap();
            assert_eq!(gate.dims, [n_embd, n_ff, n_expert]);
            assert_eq!(gate.ne(2), n_expert);
            assert_eq!(gate.n_rows(), n_ff * n_expert);
            assert_eq!(gate.n_bytes, gate.row_bytes() * gate.n_rows());
            let down = f.require(&format!("blk.{l}.ffn_down_exps.weight")).unwrap();
            assert_eq!(down.dims, [n_ff, n_embd, n_expert]);
            let router = f.require(&format!("blk.{l}.ffn_gate_inp.weight")).unwrap();
            assert_eq!((router.qtype, &router.dims[..]), (moe_quant::QType::F32, &[n_embd, n_expert][..]));
        }
        assert_eq!(f.alignment(), 32);
        assert!(f.tensors().iter().all(|t| t.offset % 32 == 0 && t.offset >= f.data_offset()));
    }
}

/// gguf-rs agrees on everything it reads correctly: tensor names, types,
/// shapes, offsets and (with an unbounded cap) array lengths.
#[test]
fn gguf_rs_agrees_on_tensor_infos() {
    for name in ["tiny-moe4x2-q8_0.gguf", "tiny-moe8x2-n256-q3_k_m.gguf", "gemma3-vocab-spm.gguf"] {
        let Some(p) = model(name) else { continue };
        let ours = GgufFile::open(&p).unwrap();
        let mut c = gguf_rs::get_gguf_container_array_size(p.to_str().unwrap(), u64::MAX).unwrap();
        let theirs = c.decode().unwrap();
        assert_eq!(ours.tensors().len(), theirs.tensors().len());
        for (a, b) in ours.tensors().iter().zip(theirs.tensors()) {
            assert_eq!(
                (&a.name, a.qtype.ggml_id(), &a.dims, a.offset, a.n_bytes),
                (&b.name, b.kind, &b.shape, theirs.data_offset() + b.offset, b.size),
                "{name}"
            );
        }
        assert_eq!(ours.metadata().map.len(), theirs.metadata().len());
        let n = |k: &str| theirs.metadata()[k].as_array().unwrap().len();
        assert_eq!(ours.metadata().strings("tokenizer.ggml.tokens").unwrap().len(), n("tokenizer.ggml.tokens"));
    }
}
