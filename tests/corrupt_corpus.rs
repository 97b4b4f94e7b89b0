//! A corpus of corrupt model files, made from valid ones: truncation at
//! every boundary of the header (each field of the fixed header, each
//! metadata pair, each tensor info, the data section, each tensor), and
//! 1,000 seeded bit flips per model (80% in the header, 20% in tensor
//! data). Every case must end in a clear error that names the file, or in a
//! model that opens, tokenizes and runs a few tokens; never a panic.
//! (Hand-made hostile headers — huge counts and lengths, overlaps,
//! duplicates, unknown types — are in gguf_bad_input.rs; the allocation cap
//! for header bombs in gguf_alloc_cap.rs.)

mod common;

use std::os::unix::fs::FileExt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use common::*;
use moe::gguf::GgufFile;
use moe::model::Model;
use moe::synth::{ExpertLayout, TinyModel, WeightTypes};
use moe::tokenizer::Tokenizer;
use moe_quant::QType;

/// The header's boundaries, found by an independent walk of the GGUF
/// layout: the end of magic, version and both counts, of each metadata
/// pair and of each tensor info.
fn header_boundaries(b: &[u8]) -> Vec<usize> {
    let u64_at = |o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap()) as usize;
    let u32_at = |o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap());
    let scalar = |t: u32| match t {
        0 | 1 | 7 => 1,
        2 | 3 => 2,
        4..=6 => 4,
        10..=12 => 8,
        _ => panic!("type {t}"),
    };
    let n_tensors = u64_at(8);
    let n_kv = u64_at(16);
    let mut cuts = vec![4, 8, 16, 24];
    let mut o = 24;
    for _ in 0..n_kv {
        o += 8 + u64_at(o);
        let t = u32_at(o);
        o += 4;
        match t {
            8 => o += 8 + u64_at(o),
            9 => {
                let (et, n) = (u32_at(o), u64_at(o + 4));
                o += 12;
                if et == 8 {
                    for _ in 0..n {
                        o += 8 + u64_at(o);
                    }
                } else {
                    o += scalar(et) * n;
                }
            }
            t => o += scalar(t),
        }
        cuts.push(o);
    }
    for _ in 0..n_tensors {
        o += 8 + u64_at(o);
        let n_dims = u32_at(o) as usize;
        o += 4 + 8 * n_dims + 4 + 8;
        cuts.push(o);
    }
    cuts
}

/// Opens the file the way `moe run` does; `Err` carries the message.
fn open_and_run(path: &Path) -> Result<(), String> {
    let model = Model::open(path).map_err(|e| e.to_string())?;
    let tok = Tokenizer::from_metadata(model.metadata()).map_err(|e| e.to_string())?;
    let ids = tok.encode("Hi there", true, true).map_err(|e| e.to_string())?;
    let mut s = model.session(16).map_err(|e| e.to_string())?;
    let ids: Vec<u32> = ids.into_iter().take(4).collect();
    if !ids.is_empty() {
        s.prefill_last(&ids).map_err(|e| e.to_string())?;
        s.forward(ids[0]).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// `open_and_run` must not panic; an error must name the file.
fn check(path: &Path, case: &str) -> bool {
    match catch_unwind(AssertUnwindSafe(|| open_and_run(path))) {
        Err(_) => panic!("{case}: panicked on {}", path.display()),
        Ok(Err(msg)) => {
            let name = path.file_name().unwrap().to_string_lossy();
            // Errors from the tokenizer's own checks name the key but not
            // always the file; every other error names the file.
            assert!(msg.contains(name.as_ref()) || msg.starts_with("tokenizer: "), "{case}: error does not name the file: {msg}");
            false
        }
        Ok(Ok(())) => true,
    }
}

fn models() -> Vec<(String, PathBuf)> {
    let tiny = |name: &str, cfg: TinyModel| {
        let p = test_model_path(&format!("corpus-{name}.gguf"));
        cfg.write(&p).unwrap();
        (name.to_string(), p)
    };
    vec![
        tiny("moe-q8_0", TinyModel { seed: 31, ..TinyModel::default() }),
        tiny(
            "moe-per-expert-kquant",
            TinyModel {
                n_embd: 256,
                n_ff: 256,
                layout: ExpertLayout::PerExpert,
                types: WeightTypes { ffn_down: QType::Q6_K, ..WeightTypes::uniform(QType::Q4_K) },
                seed: 32,
                ..TinyModel::default()
            },
        ),
        tiny("dense-q4_0", TinyModel { n_expert: 0, types: WeightTypes::uniform(QType::Q4_0), tied_output: true, seed: 33, ..TinyModel::default() }),
        ("kquant-moe-smollm2-vocab".to_string(), kquant_moe()),
    ]
}

#[test]
fn truncation_at_every_boundary() {
    for (name, path) in models() {
        let full = std::fs::read(&path).unwrap();
        let f = GgufFile::open(&path).unwrap();
        let data_end = f.tensors().iter().map(|t| t.range().end).max().unwrap() as usize;
        let mut cuts = header_boundaries(&full);
        cuts.push(f.data_offset() as usize);
        cuts.extend(f.tensors().iter().flat_map(|t| [t.offset as usize, t.range().end as usize]));
        let cuts: std::collections::BTreeSet<usize> = cuts.iter().flat_map(|&c| [c.saturating_sub(1), c, c + 1]).filter(|&c| c < full.len()).collect();
        // One copy, cut shorter and shorter (no rewriting of prefixes).
        let cut_path = test_model_path(&format!("corpus-cut-{name}.gguf"));
        std::fs::write(&cut_path, &full).unwrap();
        let cut_file = std::fs::OpenOptions::new().write(true).open(&cut_path).unwrap();
        let (mut errors, mut opened) = (0, 0);
        for &cut in cuts.iter().rev() {
            cut_file.set_len(cut as u64).unwrap();
            if check(&cut_path, &format!("{name} cut at {cut}")) {
                assert!(cut >= data_end, "{name}: cut at {cut} (data ends at {data_end}) ran");
                opened += 1;
            } else {
                errors += 1;
            }
        }
        eprintln!("{name}: {} cuts: {errors} clear errors, {opened} complete files (cut in the final padding)", cuts.len());
        assert!(errors > 20, "{name}: {errors}");
    }
}

/// xorshift64*: seeded, so a failing flip can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

fn bit_flips(name: &str, path: &Path, n: usize, seed: u64) {
    let copy = test_model_path(&format!("corpus-flip-{name}.gguf"));
    std::fs::copy(path, &copy).unwrap();
    let (len, header) = {
        let f = GgufFile::open(&copy).unwrap();
        (std::fs::metadata(&copy).unwrap().len(), f.data_offset())
    };
    let file = std::fs::OpenOptions::new().read(true).write(true).open(&copy).unwrap();
    let mut rng = Rng(seed);
    let (mut errors, mut ran) = (0, 0);
    for i in 0..n {
        let at = if rng.next().is_multiple_of(5) { header + rng.next() % (len - header) } else { rng.next() % header };
        let bit = 1u8 << (rng.next() % 8);
        let mut b = [0u8];
        file.read_exact_at(&mut b, at).unwrap();
        file.write_all_at(&[b[0] ^ bit], at).unwrap();
        if check(&copy, &format!("{name} flip #{i} (seed {seed}): byte {at} ^= {bit:#04x}")) {
            ran += 1;
        } else {
            errors += 1;
        }
        file.write_all_at(&b, at).unwrap();
    }
    eprintln!("{name}: {n} bit flips: {errors} clear errors, {ran} opened and ran");
    assert!(errors > 0 && ran > 0, "{name}: {errors} errors, {ran} ran");
}

#[test]
fn a_thousand_bit_flips_per_model() {
    for (i, (name, path)) in models().into_iter().enumerate() {
        bit_flips(&name, &path, 1000, 0x5eed + i as u64);
    }
}

/// The real model: its header holds SmolLM2's 49,152-token vocab.
#[test]
fn a_thousand_bit_flips_in_smollm2() {
    bit_flips("smollm2", &smollm2(), 1000, 0xba5e);
}

/// NaN and Inf block scales (f16 `d` of Q8_0 blocks, `d` of Q4_K and
/// Q6_K super-blocks) in the embeddings, an expert and the output: a run
/// through the CLI completes (greedy and sampled), or stops with a clear
/// error; never a panic or a hang.
#[test]
fn nan_and_inf_scales_in_blocks() {
    let q8 = test_model_path("corpus-nan-q8_0.gguf");
    TinyModel { seed: 41, ..TinyModel::default() }.write(&q8).unwrap();
    let kq = test_model_path("corpus-nan-kquant.gguf");
    TinyModel {
        n_embd: 256,
        n_ff: 256,
        types: WeightTypes { ffn_down: QType::Q6_K, ..WeightTypes::uniform(QType::Q4_K) },
        seed: 42,
        ..TinyModel::default()
    }
    .write(&kq)
    .unwrap();
    for (model, block_bytes, scale_at) in [(&q8, 34u64, 0u64), (&kq, 144, 0)] {
        for (tensor, bits) in [("output.weight", 0x7e00u16), ("token_embd.weight", 0x7c00), ("blk.1.ffn_gate_exps.weight", 0xfc00), ("blk.0.ffn_down_exps.weight", 0x7e00)] {
            let bad = test_model_path("corpus-nan-case.gguf");
            std::fs::copy(model, &bad).unwrap();
            let t = GgufFile::open(&bad).unwrap().require(tensor).unwrap().clone();
            // ffn_down of the K-quant model is Q6_K: d sits at byte 208 of 210.
            let (block, at) = if t.qtype == QType::Q6_K { (210, 208) } else { (block_bytes, scale_at) };
            let f = std::fs::OpenOptions::new().write(true).open(&bad).unwrap();
            for i in 0..(t.n_bytes / block).min(64) {
                f.write_all_at(&bits.to_le_bytes(), t.offset + i * block * 3 + at).ok();
            }
            drop(f);
            for sampling in [&["--temp", "0"][..], &["--temp", "0.8", "--top-k", "40", "--top-p", "0.9", "--seed", "3"][..]] {
                let o = std::process::Command::new(env!("CARGO_BIN_EXE_moe"))
                    .args(["run", "-m", bad.to_str().unwrap(), "-p", "hello", "-n", "8", "-t", "1", "--ignore-eos"])
                    .args(sampling)
                    .output()
                    .unwrap();
                let err = String::from_utf8_lossy(&o.stderr);
                let case = format!("{} {tensor} = {bits:#06x} {sampling:?}", model.file_name().unwrap().to_string_lossy());
                assert!(!err.contains("panicked"), "{case}: {err}");
                assert!(o.status.success() || (o.status.code() == Some(1) && err.contains("corpus-nan-case.gguf")), "{case}: {:?} {err}", o.status);
                eprintln!("{case}: {}", if o.status.success() { "ran" } else { err.lines().last().unwrap_or("") });
            }
        }
    }
}
