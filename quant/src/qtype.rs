//! The ggml tensor types this engine supports, with their block geometry.

/// A ggml tensor type (the `type` field of a GGUF tensor info).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(non_camel_case_types)]
pub enum QType {
    F32,
    F16,
    BF16,
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    Q8_0,
    /// Activation-only type paired with Q4_1 and Q5_1.
    Q8_1,
    Q2_K,
    Q3_K,
    Q4_K,
    Q5_K,
    Q6_K,
    /// Activation-only type paired with the K-quants.
    Q8_K,
    /// OCP microscaling FP4 (gpt-oss's experts): 32 E2M1 values sharing an
    /// E8M0 power-of-two scale; pairs with Q8_0 activations.
    MXFP4,
}

impl QType {
    pub const ALL: [QType; 16] = [
        QType::F32,
        QType::F16,
        QType::BF16,
        QType::Q4_0,
        QType::Q4_1,
        QType::Q5_0,
        QType::Q5_1,
        QType::Q8_0,
        QType::Q8_1,
        QType::Q2_K,
        QType::Q3_K,
        QType::Q4_K,
        QType::Q5_K,
        QType::Q6_K,
        QType::Q8_K,
        QType::MXFP4,
    ];

    /// Types that may hold model weights (everything but the activation-only types).
    pub const WEIGHT_TYPES: [QType; 14] = [
        QType::F32,
        QType::F16,
        QType::BF16,
        QType::Q4_0,
        QType::Q4_1,
        QType::Q5_0,
        QType::Q5_1,
        QType::Q8_0,
        QType::Q2_K,
        QType::Q3_K,
        QType::Q4_K,
        QType::Q5_K,
        QType::Q6_K,
        QType::MXFP4,
    ];

    /// The type for a ggml type id, or `None` if this engine does not support it.
    pub fn from_ggml_id(id: u32) -> Option<QType> {
        Some(match id {
            0 => QType::F32,
            1 => QType::F16,
            2 => QType::Q4_0,
            3 => QType::Q4_1,
            6 => QType::Q5_0,
            7 => QType::Q5_1,
            8 => QType::Q8_0,
            9 => QType::Q8_1,
            10 => QType::Q2_K,
            11 => QType::Q3_K,
            12 => QType::Q4_K,
            13 => QType::Q5_K,
            14 => QType::Q6_K,
            15 => QType::Q8_K,
            30 => QType::BF16,
            39 => QType::MXFP4,
            _ => return None,
        })
    }

    pub fn ggml_id(self) -> u32 {
        match self {
            QType::F32 => 0,
            QType::F16 => 1,
            QType::Q4_0 => 2,
            QType::Q4_1 => 3,
            QType::Q5_0 => 6,
            QType::Q5_1 => 7,
            QType::Q8_0 => 8,
            QType::Q8_1 => 9,
            QType::Q2_K => 10,
            QType::Q3_K => 11,
            QType::Q4_K => 12,
            QType::Q5_K => 13,
            QType::Q6_K => 14,
            QType::Q8_K => 15,
            QType::BF16 => 30,
            QType::MXFP4 => 39,
        }
    }

    /// The name ggml uses for a type id, also for ids this engine rejects,
    /// so that errors can say what was found.
    pub fn ggml_name(id: u32) -> &'static str {
        match id {
            0 => "F32",
            1 => "F16",
            2 => "Q4_0",
            3 => "Q4_1",
            4 => "Q4_2 (removed)",
            5 => "Q4_3 (removed)",
            6 => "Q5_0",
            7 => "Q5_1",
            8 => "Q8_0",
            9 => "Q8_1",
            10 => "Q2_K",
            11 => "Q3_K",
            12 => "Q4_K",
            13 => "Q5_K",
            14 => "Q6_K",
            15 => "Q8_K",
            16 => "IQ2_XXS",
            17 => "IQ2_XS",
            18 => "IQ3_XXS",
            19 => "IQ1_S",
            20 => "IQ4_NL",
            21 => "IQ3_S",
            22 => "IQ2_S",
            23 => "IQ4_XS",
            24 => "I8",
            25 => "I16",
            26 => "I32",
            27 => "I64",
            28 => "F64",
            29 => "IQ1_M",
            30 => "BF16",
            34 => "TQ1_0",
            35 => "TQ2_0",
            39 => "MXFP4",
            _ => "unknown",
        }
    }

    pub fn name(self) -> &'static str {
        QType::ggml_name(self.ggml_id())
    }

    /// Elements per block.
    pub const fn block_len(self) -> usize {
        match self {
            QType::F32 | QType::F16 | QType::BF16 => 1,
            QType::Q4_0
            | QType::Q4_1
            | QType::Q5_0
            | QType::Q5_1
            | QType::Q8_0
            | QType::Q8_1
            | QType::MXFP4 => 32,
            QType::Q2_K | QType::Q3_K | QType::Q4_K | QType::Q5_K | QType::Q6_K | QType::Q8_K => {
                256
            }
        }
    }

    /// Bytes per block.
    pub const fn block_bytes(self) -> usize {
        match self {
            QType::F32 => 4,
            QType::F16 | QType::BF16 => 2,
            QType::Q4_0 => 18,
            QType::Q4_1 => 20,
            QType::Q5_0 => 22,
            QType::Q5_1 => 24,
            QType::Q8_0 => 34,
            QType::Q8_1 => 36,
            QType::Q2_K => 84,
            QType::Q3_K => 110,
            QType::Q4_K => 144,
            QType::Q5_K => 176,
            QType::Q6_K => 210,
            QType::Q8_K => 292,
            QType::MXFP4 => 17,
        }
    }

    /// Bytes of a row of `n` elements, or `None` if `n` is not a whole
    /// number of blocks (or the size overflows).
    pub fn row_bytes(self, n: u64) -> Option<u64> {
        let bl = self.block_len() as u64;
        if !n.is_multiple_of(bl) {
            return None;
        }
        (n / bl).checked_mul(self.block_bytes() as u64)
    }

    /// Whether tensors of this type can hold model weights (false for the
    /// activation-only Q8_1 and Q8_K).
    pub const fn is_weight_type(self) -> bool {
        !matches!(self, QType::Q8_1 | QType::Q8_K)
    }

    /// Bytes of a row of `n` elements as a `usize`, or `None` if `n` is not a
    /// whole number of blocks (or the size overflows).
    pub fn row_bytes_usize(self, n: usize) -> Option<usize> {
        if !n.is_multiple_of(self.block_len()) {
            return None;
        }
        (n / self.block_len()).checked_mul(self.block_bytes())
    }

    /// The activation type llama.cpp quantizes the input vector to before a
    /// dot product with a row of this type (ggml's `vec_dot_type` on CPU).
    pub const fn vec_dot_type(self) -> QType {
        match self {
            QType::F32 => QType::F32,
            QType::F16 => QType::F16,
            QType::BF16 => QType::BF16,
            QType::Q4_0 | QType::Q5_0 | QType::Q8_0 | QType::MXFP4 => QType::Q8_0,
            QType::Q4_1 | QType::Q5_1 | QType::Q8_1 => QType::Q8_1,
            QType::Q2_K | QType::Q3_K | QType::Q4_K | QType::Q5_K | QType::Q6_K | QType::Q8_K => {
                QType::Q8_K
            }
        }
    }
}

impl std::fmt::Display for QType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
