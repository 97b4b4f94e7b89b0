//! `moe-offload`: the mapped weight file and the expert cache.
//!
//! This crate deals in byte ranges and keys only; it knows nothing of quant
//! formats or model architecture. The model asks for an expert by
//! [`ExpertKey`] and receives the bytes of its gate, up and down slabs.

#![forbid(unsafe_op_in_unsafe_fn)]

mod expert;
mod weight_file;

pub use expert::{ExpertBytes, ExpertKey, ExpertRanges, ExpertSource, MappedExperts};
pub use weight_file::{OutOfBounds, WeightFile};

/// Errors from fetching expert bytes.
#[derive(Debug, thiserror::Error)]
pub enum OffloadError {
    #[error(transparent)]
    OutOfBounds(#[from] OutOfBounds),
    #[error("{path}: reading expert {key:?}: {source}")]
    Io {
        path: std::path::PathBuf,
        key: ExpertKey,
        #[source]
        source: std::io::Error,
    },
}
