//! `GgufHeader`: what [`GgufFile::open`](super::GgufFile::open) validates —
//! header, metadata and tensor infos placed in the file — parsed from any
//! byte slice, without a file or a mapping (for tools and the fuzzer).

use std::path::Path;

use super::parse::parse;
use super::tensor::TensorInfo;
use super::value::Metadata;
use crate::error::{Error, Result};

/// The validated header of a GGUF file.
#[derive(Debug, Clone)]
pub struct GgufHeader {
    /// 2 or 3.
    pub version: u32,
    pub metadata: Metadata,
    /// In file order; every range lies inside the bytes parsed.
    pub tensors: Vec<TensorInfo>,
    pub alignment: u64,
    /// Absolute offset of the data section.
    pub data_offset: u64,
}

impl GgufHeader {
    /// Parses and checks `bytes`, the whole file, exactly as
    /// [`GgufFile::open`](super::GgufFile::open) does. `path` only names the
    /// file in errors and in [`Metadata::path`].
    pub fn parse(path: &Path, bytes: &[u8]) -> Result<GgufHeader> {
        let parsed = parse(path, bytes)?;
        let tensors = parsed
            .tensors
            .into_iter()
            .map(|raw| TensorInfo::validate(raw, path, parsed.data_offset, parsed.alignment, bytes.len() as u64))
            .collect::<Result<Vec<_>>>()?;
        reject_overlaps(path, &tensors)?;
        Ok(GgufHeader {
            version: parsed.version,
            metadata: parsed.metadata,
            tensors,
            alignment: parsed.alignment,
            data_offset: parsed.data_offset,
        })
    }
}

/// Two tensors sharing bytes is no file a writer makes: an error naming both.
fn reject_overlaps(path: &Path, tensors: &[TensorInfo]) -> Result<()> {
    let mut by_offset: Vec<&TensorInfo> = tensors.iter().collect();
    by_offset.sort_by_key(|t| (t.offset, t.n_bytes));
    for pair in by_offset.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        if b.offset < a.range().end {
            return Err(Error::InvalidTensor {
                path: path.to_path_buf(),
                tensor: b.name.clone(),
                what: format!(
                    "bytes {}..{} overlap tensor '{}' (bytes {}..{})",
                    b.offset,
                    b.range().end,
                    a.name,
                    a.offset,
                    a.range().end
                ),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gguf::GgufFile;
    use crate::synth::TinyModel;

    /// The byte-slice parse is what `GgufFile::open` sees, error for error.
    #[test]
    fn parse_agrees_with_open() {
        let path = std::env::temp_dir().join(format!("moe-header-test-{}.gguf", std::process::id()));
        TinyModel::default().write(&path).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let file = GgufFile::open(&path).unwrap();
        let h = GgufHeader::parse(&path, &bytes).unwrap();
        assert_eq!(h.tensors, file.tensors());
        assert_eq!(h.metadata.map, file.metadata().map);
        assert_eq!((h.version, h.alignment, h.data_offset), (file.version(), file.alignment(), file.data_offset()));
        // Cut one byte into the last tensor: it runs past the end, named.
        let last = file.tensors().iter().max_by_key(|t| t.range().end).unwrap();
        let cut = &bytes[..last.range().end as usize - 1];
        let e = GgufHeader::parse(Path::new("short.gguf"), cut).unwrap_err().to_string();
        let last = &last.name;
        assert!(e.contains("short.gguf") && e.contains(last.as_str()) && e.contains("past the end"), "{e}");
        std::fs::remove_file(&path).unwrap();
    }
}
