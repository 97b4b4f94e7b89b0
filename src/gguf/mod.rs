//! GGUF files: reading (validated, memory-mapped) and writing.
//!
//! [`GgufFile::open`] parses the header, metadata and tensor infos with our
//! own parser (`parse.rs` says why not gguf-rs), checks every bound once,
//! and maps the file ([`GgufHeader::parse`] does the same checks on a byte
//! slice). After that, tensor bytes are plain slices of the
//! mapping. [`GgufWriter`] writes v3 files the way llama.cpp does.

mod array;
mod cursor;
mod file;
mod header;
mod parse;
mod tensor;
mod value;
mod writer;

pub use array::{Array, Strings};
pub use file::GgufFile;
pub use header::GgufHeader;
pub use tensor::TensorInfo;
pub use value::{Metadata, Value, ValueType};
pub use writer::{tensor_bytes, GgufWriter, Producer};
