//! The engine's error type. Every error names the file and the tensor or key
//! involved, and says what was expected.

use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The file is not a valid GGUF file (bad magic, version, counts,
    /// truncated data, ...). `what` says what was found and what was expected.
    #[error("{path}: invalid GGUF: {what}")]
    InvalidGguf { path: PathBuf, what: String },

    /// A tensor's info or data is invalid.
    #[error("{path}: tensor '{tensor}': {what}")]
    InvalidTensor { path: PathBuf, tensor: String, what: String },

    #[error("{path}: tensor '{tensor}' has type {type_name} (ggml id {type_id}), which this engine does not support; supported: F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, MXFP4")]
    UnsupportedType { path: PathBuf, tensor: String, type_id: u32, type_name: &'static str },

    #[error("{path}: missing tensor '{tensor}'")]
    MissingTensor { path: PathBuf, tensor: String },

    #[error("{path}: tensor '{tensor}' has shape {found:?}, expected {expected:?}")]
    TensorShape { path: PathBuf, tensor: String, found: Vec<u64>, expected: Vec<u64> },

    #[error("{path}: missing metadata key '{key}' ({expected})")]
    MissingKey { path: PathBuf, key: String, expected: String },

    #[error("{path}: metadata key '{key}': expected {expected}, found {found}")]
    BadKey { path: PathBuf, key: String, expected: String, found: String },

    #[error("{path}: unsupported model: {what}")]
    Unsupported { path: PathBuf, what: String },

    /// A chat template failed to compile or render (`origin` says which
    /// template: the GGUF's, a built-in, a file).
    #[error("chat template ({origin}): {what}")]
    ChatTemplate { origin: String, what: String },

    /// The conversation no longer fits the context.
    #[error("the context is full: {what}")]
    ContextFull { what: String },

    #[error("tokenizer: {0}")]
    Tokenizer(String),

    #[error("{0}")]
    InvalidArgument(String),

    #[error(transparent)]
    Offload(#[from] moe_offload::OffloadError),

    #[error(transparent)]
    Resident(#[from] moe_offload::ResidentError),

    #[error(transparent)]
    FileChanged(#[from] moe_offload::FileChanged),

    #[error(transparent)]
    Trace(#[from] moe_offload::TraceError),
}
