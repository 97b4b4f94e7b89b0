//! GGUF files: reading (validated, memory-mapped) and writing.
//!
//! `GgufFile::open` parses the header, metadata and tensor infos, checks
//! every bound once, and maps the file. After that, tensor bytes are plain
//! bounds-checked slices of the mapping.

mod value;

pub use value::{Metadata, Value, ValueType};
