//! `GgufFile`: a memory-mapped GGUF file whose header, metadata and tensor
//! infos were validated once at open. After that, tensor bytes are plain
//! slices of the mapping.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use moe_offload::WeightFile;

use super::header::GgufHeader;
use super::tensor::TensorInfo;
use super::value::Metadata;
use crate::error::{Error, Result};

pub struct GgufFile {
    file: Arc<WeightFile>,
    version: u32,
    metadata: Metadata,
    tensors: Vec<TensorInfo>,
    by_name: HashMap<String, usize>,
    alignment: u64,
    data_offset: u64,
}

impl GgufFile {
    /// Maps and validates `path` (GGUF v2 or v3, little-endian). Every
    /// error names the file and the key or tensor at fault.
    pub fn open(path: impl AsRef<Path>) -> Result<GgufFile> {
        let path = path.as_ref();
        if path.is_dir() {
            let source = std::io::Error::other(format!("is a directory, not a GGUF file; {}", ggufs_in(path)));
            return Err(Error::Io { path: path.to_path_buf(), source });
        }
        let file = WeightFile::open(path).map_err(|source| Error::Io { path: path.to_path_buf(), source: with_hint(path, source) })?;
        GgufFile::from_weight_file(Arc::new(file))
    }

    /// Validates an already mapped file.
    pub fn from_weight_file(file: Arc<WeightFile>) -> Result<GgufFile> {
        let GgufHeader { version, metadata, tensors, alignment, data_offset } =
            GgufHeader::parse(file.path(), file.all())?;
        let by_name = tensors.iter().enumerate().map(|(i, t)| (t.name.clone(), i)).collect();
        Ok(GgufFile { file, version, metadata, tensors, by_name, alignment, data_offset })
    }

    pub fn path(&self) -> &Path {
        self.file.path()
    }

    /// The GGUF version, 2 or 3.
    pub fn version(&self) -> u32 {
        self.version
    }

    pub fn metadata(&self) -> &Metadata {
        &self.metadata
    }

    /// All tensors, in file order.
    pub fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }

    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.by_name.get(name).map(|&i| &self.tensors[i])
    }

    /// The tensor `name`, or a `MissingTensor` error naming the file.
    pub fn require(&self, name: &str) -> Result<&TensorInfo> {
        self.tensor(name)
            .ok_or_else(|| Error::MissingTensor { path: self.path().to_path_buf(), tensor: name.to_string() })
    }

    /// The bytes of a tensor of this file, borrowed from the mapping.
    ///
    /// # Panics
    /// If `info` is not a tensor of this file (its range was checked at open).
    pub fn tensor_bytes(&self, info: &TensorInfo) -> &[u8] {
        self.file.bytes(info.range()).unwrap_or_else(|e| {
            panic!("tensor_bytes: '{}' is not a tensor of this file: {e}", info.name)
        })
    }

    pub fn file(&self) -> &Arc<WeightFile> {
        &self.file
    }

    /// Absolute offset of the data section (tensor offsets are already absolute).
    pub fn data_offset(&self) -> u64 {
        self.data_offset
    }

    pub fn alignment(&self) -> u64 {
        self.alignment
    }
}

/// A missing file's error says where to look: the GGUF files next to
/// where it was expected, or that its directory does not exist.
fn with_hint(path: &Path, e: std::io::Error) -> std::io::Error {
    if e.kind() != std::io::ErrorKind::NotFound {
        return e;
    }
    let dir = match path.parent() {
        Some(d) if d.as_os_str().is_empty() => Path::new("."),
        Some(d) => d,
        None => return e,
    };
    let hint = if dir.is_dir() {
        ggufs_in(dir)
    } else {
        format!("the directory {} does not exist either", dir.display())
    };
    std::io::Error::new(e.kind(), format!("no such file ({hint})"))
}

/// "GGUF files in DIR: a.gguf, b.gguf", or a hint on getting one.
fn ggufs_in(dir: &Path) -> String {
    let mut found: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".gguf"))
        .collect();
    found.sort();
    if found.is_empty() {
        return format!(
            "{} holds no .gguf file; give -m the path of a GGUF model, e.g. one downloaded from a Hugging Face *-GGUF repository",
            dir.display()
        );
    }
    let more = found.len().saturating_sub(5);
    found.truncate(5);
    format!(
        "GGUF files in {}: {}{}",
        dir.display(),
        found.join(", "),
        if more > 0 { format!(" and {more} more") } else { String::new() }
    )
}

impl std::fmt::Debug for GgufFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GgufFile")
            .field("path", &self.path())
            .field("version", &self.version)
            .field("metadata_keys", &self.metadata.map.len())
            .field("tensors", &self.tensors.len())
            .field("alignment", &self.alignment)
            .field("data_offset", &self.data_offset)
            .finish()
    }
}

