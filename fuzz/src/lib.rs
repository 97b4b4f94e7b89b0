//! Checks shared by the fuzz targets in `fuzz_targets/` (one small file
//! each: `fuzz_target!(|data| moe_fuzz::NAME::check(data))`). Each check
//! feeds the engine arbitrary bytes and asserts what the library promises:
//! no panic, errors that name the file, and results that are consistent.
//!
//! A new target: `src/NAME.rs` with `pub fn check(data: &[u8])`, one
//! `fuzz_targets/NAME.rs` calling it, its `[[bin]]` stanza in Cargo.toml
//! (`cargo fuzz add NAME` writes both), and seeds in `corpus/NAME/`.

pub mod chat_template;
pub mod gguf;
pub mod spm_vocab;
pub mod tokenizer;
pub mod tokenizer_vocab;

use std::path::{Path, PathBuf};

/// A scratch file of this process (for APIs that want a path).
pub fn scratch_path(name: &str) -> PathBuf {
    let dir = Path::new("/dev/shm");
    let dir = if dir.is_dir() { dir.to_path_buf() } else { std::env::temp_dir() };
    dir.join(format!("moe-fuzz-{}-{name}", std::process::id()))
}

/// Panics unless `err`'s message names `path`: the engine's promise for
/// every error about a file.
pub fn assert_names_file(err: &moe::Error, path: &Path) {
    let msg = err.to_string();
    assert!(msg.contains(&path.display().to_string()), "error does not name the file {}: {msg} ({err:?})", path.display());
}

/// Everything `decoder` yields for `ids`, then its `finish`.
pub fn stream(mut decoder: moe::tokenizer::StreamDecoder<'_>, ids: &[u32]) -> String {
    let mut out = String::new();
    for &id in ids {
        out.push_str(&decoder.push(id));
    }
    out.push_str(&decoder.finish());
    out
}
