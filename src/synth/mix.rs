//! Per-tensor type choices ("mixes") as `llama-quantize` makes them
//! (llama.cpp `src/llama-quant.cpp`, `llama_tensor_get_type`), for the
//! file types the synthetic presets write.
//!
//! Q4_K_M, on a llama-architecture model:
//! - `token_embd` Q4_K, `output` Q6_K, `attn_q` Q4_K, expert/dense
//!   gate and up Q4_K;
//! - `attn_k`: Q8_0 when the model has exactly 8 experts, else Q4_K;
//! - `attn_v`: Q8_0 with 8 experts, else Q6_K on "more bits" layers
//!   (`use_more_bits`), else Q4_K;
//! - `attn_output`: Q5_K with 8 experts, else Q4_K;
//! - `ffn_down` (experts or dense): Q6_K on "more bits" layers, else Q4_K.
//!
//! Q4_0: Q4_0 everywhere but `output` (Q6_K) and, with 8 experts,
//! `attn_k`/`attn_v` (Q8_0). Q8_0: Q8_0 everywhere. MXFP4_MOE (gpt-oss's
//! published files): experts MXFP4, every other matrix Q8_0. Norms,
//! routers and biases are always F32.

use std::fmt;

use moe_quant::QType;

use crate::error::{Error, Result};

/// A `general.file_type` and its per-tensor rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mix {
    Q4KM,
    Q4_0,
    Q8_0,
    Mxfp4Moe,
}

impl fmt::Display for Mix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mix::Q4KM => "Q4_K_M",
            Mix::Q4_0 => "Q4_0",
            Mix::Q8_0 => "Q8_0",
            Mix::Mxfp4Moe => "MXFP4_MOE",
        })
    }
}

/// llama.cpp's `use_more_bits(i_layer, n_layers)`: the first and last
/// eighth of the layers, and every third one in between.
pub fn use_more_bits(i: usize, n: usize) -> bool {
    i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2
}

impl Mix {
    pub const NAMES: [&'static str; 4] = ["q4_k_m", "q4_0", "q8_0", "mxfp4_moe"];

    pub fn parse(s: &str) -> Result<Mix> {
        match s.to_ascii_lowercase().as_str() {
            "q4_k_m" => Ok(Mix::Q4KM),
            "q4_0" => Ok(Mix::Q4_0),
            "q8_0" => Ok(Mix::Q8_0),
            "mxfp4_moe" => Ok(Mix::Mxfp4Moe),
            _ => Err(Error::InvalidArgument(format!("unknown type '{s}'; known: {}", Mix::NAMES.join(", ")))),
        }
    }

    /// `general.file_type` (llama_ftype).
    pub fn file_type(self) -> u32 {
        match self {
            Mix::Q4KM => 15,
            Mix::Q4_0 => 2,
            Mix::Q8_0 => 7,
            Mix::Mxfp4Moe => 38,
        }
    }

    /// Row lengths must be a multiple of this (the largest block used).
    pub fn row_multiple(self) -> usize {
        match self {
            Mix::Q4KM => 256,
            // Q6_K output rows are n_embd long.
            Mix::Q4_0 => 256,
            Mix::Q8_0 | Mix::Mxfp4Moe => 32,
        }
    }

    fn base(self) -> QType {
        match self {
            Mix::Q4KM => QType::Q4_K,
            Mix::Q4_0 => QType::Q4_0,
            Mix::Q8_0 | Mix::Mxfp4Moe => QType::Q8_0,
        }
    }

    pub fn token_embd(self) -> QType {
        self.base()
    }

    pub fn output(self) -> QType {
        match self {
            Mix::Q8_0 | Mix::Mxfp4Moe => QType::Q8_0,
            _ => QType::Q6_K,
        }
    }

    pub fn attn_q(self) -> QType {
        self.base()
    }

    pub fn attn_k(self, n_expert: usize) -> QType {
        if n_expert == 8 || self == Mix::Mxfp4Moe {
            QType::Q8_0
        } else {
            self.base()
        }
    }

    pub fn attn_v(self, layer: usize, n_layer: usize, n_expert: usize) -> QType {
        match self {
            _ if n_expert == 8 || self == Mix::Mxfp4Moe => QType::Q8_0,
            Mix::Q4KM if use_more_bits(layer, n_layer) => QType::Q6_K,
            _ => self.base(),
        }
    }

    pub fn attn_output(self, n_expert: usize) -> QType {
        match self {
            Mix::Q4KM if n_expert == 8 => QType::Q5_K,
            _ => self.base(),
        }
    }

    /// An FFN's gate and up: `experts` for routed experts.
    pub fn ffn_gate_up(self, experts: bool) -> QType {
        match self {
            Mix::Mxfp4Moe if experts => QType::MXFP4,
            _ => self.base(),
        }
    }

    /// An FFN's down (`experts`: routed experts').
    pub fn ffn_down(self, layer: usize, n_layer: usize, experts: bool) -> QType {
        match self {
            Mix::Mxfp4Moe if experts => QType::MXFP4,
            Mix::Q4KM if use_more_bits(layer, n_layer) => QType::Q6_K,
            _ => self.base(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn more_bits_layers_of_a_32_layer_model() {
        let layers: Vec<usize> = (0..32).filter(|&i| use_more_bits(i, 32)).collect();
        assert_eq!(layers, [0, 1, 2, 3, 6, 9, 12, 15, 18, 21, 24, 27, 28, 29, 30, 31]);
    }

    #[test]
    fn q4_k_m_differs_between_8_expert_and_dense_models() {
        let m = Mix::Q4KM;
        assert_eq!((m.attn_k(8), m.attn_v(5, 32, 8), m.attn_output(8)), (QType::Q8_0, QType::Q8_0, QType::Q5_K));
        assert_eq!((m.attn_k(0), m.attn_v(5, 32, 0), m.attn_output(0)), (QType::Q4_K, QType::Q4_K, QType::Q4_K));
        assert_eq!(m.attn_v(6, 32, 0), QType::Q6_K);
        assert_eq!((m.ffn_down(6, 32, true), m.ffn_down(7, 32, true)), (QType::Q6_K, QType::Q4_K));
        let m = Mix::Mxfp4Moe;
        assert_eq!((m.ffn_gate_up(true), m.ffn_down(6, 24, true), m.ffn_gate_up(false), m.attn_k(32), m.output()), (QType::MXFP4, QType::MXFP4, QType::Q8_0, QType::Q8_0, QType::Q8_0));
    }

    #[test]
    fn parse_names() {
        assert_eq!(Mix::parse("Q4_K_M").unwrap(), Mix::Q4KM);
        let e = Mix::parse("q3_k_s").unwrap_err().to_string();
        assert!(e.contains("unknown type 'q3_k_s'") && e.contains("q4_k_m"), "{e}");
    }
}
