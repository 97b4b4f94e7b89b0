//! Shared helpers for the integration tests: fixture reader, a small
//! deterministic RNG, and random-but-valid blocks.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::PathBuf;

use moe_quant::QType;

pub const REGEN: &str = "regenerate with: pip install gguf numpy && \
    python3 scripts/gen_quant_fixtures.py --ggml-lib <llama.cpp build>/bin";

/// A fixture file in the MQF1 format written by scripts/gen_quant_fixtures.py.
pub struct Fixture {
    name: String,
    entries: HashMap<String, Vec<u8>>,
}

impl Fixture {
    /// Load `quant/tests/fixtures/<name>`; panics loudly if it is missing.
    pub fn load(name: &str) -> Fixture {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name);
        let data = std::fs::read(&path).unwrap_or_else(|e| {
            panic!(
                "fixture {} missing or unreadable ({e}); {REGEN}",
                path.display()
            )
        });
        assert_eq!(
            &data[..4],
            b"MQF1",
            "{}: bad magic; {REGEN}",
            path.display()
        );
        let count = u32::from_le_bytes(data[4..8].try_into().unwrap()) as usize;
        let mut pos = 8;
        let mut entries = HashMap::new();
        for _ in 0..count {
            let klen = data[pos] as usize;
            let key = String::from_utf8(data[pos + 1..pos + 1 + klen].to_vec()).unwrap();
            pos += 1 + klen;
            let len = u32::from_le_bytes(data[pos..pos + 4].try_into().unwrap()) as usize;
            pos += 4;
            entries.insert(key, data[pos..pos + len].to_vec());
            pos += len;
        }
        assert_eq!(
            pos,
            data.len(),
            "{}: trailing bytes; {REGEN}",
            path.display()
        );
        assert!(
            !entries.is_empty(),
            "{}: empty fixture; {REGEN}",
            path.display()
        );
        Fixture {
            name: name.to_string(),
            entries,
        }
    }

    pub fn bytes(&self, key: &str) -> &[u8] {
        self.entries
            .get(key)
            .unwrap_or_else(|| panic!("fixture {} has no entry {key}; {REGEN}", self.name))
    }

    pub fn f32s(&self, key: &str) -> Vec<f32> {
        self.bytes(key)
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
            .collect()
    }
}

/// xorshift64* with Box-Muller normals: deterministic and dependency-free.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn byte(&mut self) -> u8 {
        (self.u64() >> 56) as u8
    }
    /// Uniform in [0, 1).
    pub fn unif(&mut self) -> f32 {
        (self.u64() >> 40) as f32 / (1u64 << 24) as f32
    }
    pub fn normal(&mut self) -> f32 {
        let u1 = ((self.u64() >> 11) as f64 + 1.0) / (1u64 << 53) as f64;
        let u2 = (self.u64() >> 11) as f64 / (1u64 << 53) as f64;
        ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
    }
    pub fn normals(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n).map(|_| self.normal() * scale).collect()
    }
}

/// Byte offsets of the f16 scale fields of each block type.
pub fn f16_fields(t: QType) -> &'static [usize] {
    match t {
        QType::Q4_0 | QType::Q5_0 | QType::Q8_0 => &[0],
        QType::Q4_1 | QType::Q5_1 | QType::Q4_K | QType::Q5_K => &[0, 2],
        QType::Q2_K => &[80, 82],
        QType::Q3_K => &[108],
        QType::Q6_K => &[208],
        _ => &[],
    }
}

/// Byte offsets of the E8M0 exponent fields of each block type.
pub fn e8m0_fields(t: QType) -> &'static [usize] {
    match t {
        QType::MXFP4 => &[0],
        _ => &[],
    }
}

/// A moderate E8M0 exponent for MXFP4: scales 2^-13..2^2.
pub fn moderate_e8m0(rng: &mut Rng) -> u8 {
    115 + (rng.u64() % 16) as u8
}

/// `n` elements of random-but-valid `t` data: random quant bytes (every bit
/// pattern decodes) with moderate f16 scales of either sign (moderate
/// exponents for MXFP4).
pub fn random_row(rng: &mut Rng, t: QType, n: usize) -> Vec<u8> {
    match t {
        QType::F32 | QType::F16 | QType::BF16 => {
            let mut out = Vec::new();
            moe_quant::quantize_row(t, &rng.normals(n, 0.5), &mut out);
            out
        }
        _ => {
            let nb = n / t.block_len();
            let mut out: Vec<u8> = (0..nb * t.block_bytes()).map(|_| rng.byte()).collect();
            for blk in out.chunks_exact_mut(t.block_bytes()) {
                for &off in f16_fields(t) {
                    let mag = 10f32.powf(-3.0 + 2.5 * rng.unif());
                    let sign = if rng.unif() < 0.3 { -1.0 } else { 1.0 };
                    let bits = moe_quant::fp::f32_to_f16(sign * mag);
                    blk[off..off + 2].copy_from_slice(&bits.to_le_bytes());
                }
                for &off in e8m0_fields(t) {
                    blk[off] = moderate_e8m0(rng);
                }
            }
            out
        }
    }
}

pub fn dequant(t: QType, bytes: &[u8], n: usize) -> Vec<f32> {
    let mut y = vec![0.0; n];
    moe_quant::dequantize_row(t, bytes, &mut y);
    y
}
