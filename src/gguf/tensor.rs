//! Tensor infos, validated: a supported weight type, a sane shape, and bytes
//! that lie aligned and entirely inside the file's data section.

use std::ops::Range;
use std::path::Path;

use moe_quant::QType;

use super::parse::RawTensor;
use crate::error::{Error, Result};

/// One tensor of a validated GGUF file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    pub name: String,
    pub qtype: QType,
    /// ne0 first (ne0 = row length, the contiguous dimension); `n_dims`
    /// entries as stored in the file.
    pub dims: Vec<u64>,
    /// ABSOLUTE file offset of the first byte.
    pub offset: u64,
    pub n_bytes: u64,
}

impl TensorInfo {
    /// Number of elements (the product of the dims; 1 for 0 dims).
    pub fn n_elements(&self) -> u64 {
        // Checked at open to fit in i64.
        self.dims.iter().product()
    }

    /// Dimension `i`, ne0 first; dimensions past `n_dims` are 1.
    pub fn ne(&self, i: usize) -> u64 {
        self.dims.get(i).copied().unwrap_or(1)
    }

    /// Number of rows (all dims but ne0 multiplied).
    pub fn n_rows(&self) -> u64 {
        self.dims.iter().skip(1).product()
    }

    /// Bytes of one row of ne0 elements.
    pub fn row_bytes(&self) -> u64 {
        self.qtype.row_bytes(self.ne(0)).expect("checked at open")
    }

    /// The absolute byte range of the tensor in the file.
    pub fn range(&self) -> Range<u64> {
        self.offset..self.offset + self.n_bytes
    }

    /// Checks a tensor info read from `path` and places it in the file.
    pub(super) fn validate(
        raw: RawTensor,
        path: &Path,
        data_offset: u64,
        alignment: u64,
        file_len: u64,
    ) -> Result<TensorInfo> {
        let err = |what: String| Error::InvalidTensor { path: path.to_path_buf(), tensor: raw.name.clone(), what };
        let qtype = match QType::from_ggml_id(raw.type_id) {
            Some(q) if q.is_weight_type() => q,
            _ => {
                return Err(Error::UnsupportedType {
                    path: path.to_path_buf(),
                    tensor: raw.name.clone(),
                    type_id: raw.type_id,
                    type_name: QType::ggml_name(raw.type_id),
                })
            }
        };
        // llama.cpp accepts 0 (an empty tensor); no model has one, and a
        // zero dim would make row and slab arithmetic divide by zero.
        if let Some(i) = raw.dims.iter().position(|&d| d == 0) {
            return Err(err(format!("dimension {i} is 0 (dims {:?}); every dimension must be at least 1", raw.dims)));
        }
        let n_elements = raw
            .dims
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d))
            .filter(|&n| n <= i64::MAX as u64)
            .ok_or_else(|| err(format!("dims {:?} have more than 2^63 elements", raw.dims)))?;
        let ne0 = raw.dims.first().copied().unwrap_or(1);
        let row_bytes = qtype.row_bytes(ne0).ok_or_else(|| {
            err(format!(
                "row length ne0 = {ne0} is not a multiple of the {qtype} block size {}",
                qtype.block_len()
            ))
        })?;
        let n_bytes = row_bytes
            .checked_mul(n_elements / ne0)
            .ok_or_else(|| err(format!("dims {:?} of type {qtype} have more than 2^64 bytes", raw.dims)))?;
        if !raw.offset.is_multiple_of(alignment) {
            return Err(err(format!(
                "data offset {} (relative to the data section) is not a multiple of the alignment {alignment}",
                raw.offset
            )));
        }
        let start = data_offset.checked_add(raw.offset);
        let end = start.and_then(|s| s.checked_add(n_bytes));
        match (start, end) {
            (Some(start), Some(end)) if end <= file_len => {
                Ok(TensorInfo { name: raw.name, qtype, dims: raw.dims, offset: start, n_bytes })
            }
            _ => Err(err(format!(
                "its {n_bytes} bytes at data offset {} (absolute {}) run past the end of the file ({file_len} bytes)",
                raw.offset,
                data_offset as u128 + raw.offset as u128
            ))),
        }
    }
}
