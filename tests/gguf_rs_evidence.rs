//! Evidence behind the decision not to parse GGUF with gguf-rs 0.1.8 (see the
//! doc comment of `src/gguf/parse.rs`). Each test pins one observed
//! behaviour of gguf-rs, so that a newer version that fixes it shows up as
//! a failing test here. They are cheap and run in CI.

use std::path::{Path, PathBuf};
use std::time::Instant;

fn s(out: &mut Vec<u8>, v: &str) {
    out.extend_from_slice(&(v.len() as u64).to_le_bytes());
    out.extend_from_slice(v.as_bytes());
}

/// A v3 header followed by `body`.
fn file(name: &str, n_tensors: u64, n_kv: u64, body: &[u8]) -> PathBuf {
    let mut b = b"GGUF".to_vec();
    b.extend_from_slice(&3u32.to_le_bytes());
    b.extend_from_slice(&n_tensors.to_le_bytes());
    b.extend_from_slice(&n_kv.to_le_bytes());
    b.extend_from_slice(body);
    let dir = std::env::temp_dir().join(format!("moe-gguf-rs-evidence-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, b).unwrap();
    p
}

fn decode(p: &Path) -> anyhow_like::R {
    let mut c = gguf_rs::get_gguf_container_array_size(p.to_str().unwrap(), u64::MAX)
        .map_err(|e| e.to_string())?;
    c.decode().map_err(|e| e.to_string())
}

mod anyhow_like {
    pub type R = Result<gguf_rs::GGUFModel, String>;
}

#[test]
fn integer_and_float_types_are_lost_in_json() {
    let mut body = Vec::new();
    s(&mut body, "a.u32");
    body.extend_from_slice(&4u32.to_le_bytes());
    body.extend_from_slice(&7u32.to_le_bytes());
    s(&mut body, "a.i32");
    body.extend_from_slice(&5u32.to_le_bytes());
    body.extend_from_slice(&7i32.to_le_bytes());
    s(&mut body, "a.f32");
    body.extend_from_slice(&6u32.to_le_bytes());
    body.extend_from_slice(&f32::NAN.to_le_bytes());
    s(&mut body, "general.alignment");
    body.extend_from_slice(&10u32.to_le_bytes()); // u64, llama.cpp requires u32
    body.extend_from_slice(&24u64.to_le_bytes()); // not a power of two
    let m = decode(&file("types.gguf", 0, 4, &body)).unwrap();
    let kv = m.metadata();
    // u32 7 and i32 7 are indistinguishable.
    assert_eq!(kv["a.u32"], kv["a.i32"]);
    // An f32 NaN becomes JSON null: the value and its type are gone.
    assert!(kv["a.f32"].is_null());
    // A u64 alignment of 24 is accepted (llama.cpp rejects both the type and the value).
    assert_eq!(m.alignment(), 24);
}

#[test]
fn duplicate_keys_are_silently_overwritten() {
    let mut body = Vec::new();
    for v in [1u32, 2] {
        s(&mut body, "dup");
        body.extend_from_slice(&4u32.to_le_bytes());
        body.extend_from_slice(&v.to_le_bytes());
    }
    let m = decode(&file("dup.gguf", 0, 2, &body)).unwrap();
    assert_eq!(m.metadata()["dup"], 2);
}

#[test]
fn invalid_utf8_is_replaced_silently() {
    let mut body = Vec::new();
    s(&mut body, "k");
    body.extend_from_slice(&8u32.to_le_bytes());
    body.extend_from_slice(&2u64.to_le_bytes());
    body.extend_from_slice(&[0xff, 0xfe]);
    let m = decode(&file("utf8.gguf", 0, 1, &body)).unwrap();
    assert_eq!(m.metadata()["k"], "\u{fffd}\u{fffd}");
}

#[test]
fn tensor_checks_are_missing() {
    // One Q4_0 tensor with ne0 = 33 (not a multiple of 32) at offset 2^40,
    // far past the end of a 100-byte file, plus a second with the same name.
    let mut body = Vec::new();
    for _ in 0..2 {
        s(&mut body, "t");
        body.extend_from_slice(&1u32.to_le_bytes());
        body.extend_from_slice(&33u64.to_le_bytes());
        body.extend_from_slice(&2u32.to_le_bytes());
        body.extend_from_slice(&(1u64 << 40).to_le_bytes());
    }
    let m = decode(&file("tensors.gguf", 2, 0, &body)).unwrap();
    assert_eq!(m.tensors().len(), 2);
    // But an unknown type id is an error without the tensor's name.
    let mut body = Vec::new();
    s(&mut body, "t");
    body.extend_from_slice(&1u32.to_le_bytes());
    body.extend_from_slice(&64u64.to_le_bytes());
    body.extend_from_slice(&99u32.to_le_bytes());
    body.extend_from_slice(&0u64.to_le_bytes());
    let e = decode(&file("type99.gguf", 1, 0, &body)).err().unwrap();
    assert_eq!(e, "invalid GGML type");
}

#[test]
fn truncation_errors_have_no_context() {
    let mut body = Vec::new();
    s(&mut body, "tokenizer.ggml.tokens");
    body.extend_from_slice(&9u32.to_le_bytes());
    body.extend_from_slice(&8u32.to_le_bytes());
    body.extend_from_slice(&(1u64 << 60).to_le_bytes()); // absurd count, no check
    s(&mut body, "a");
    let e = decode(&file("trunc.gguf", 0, 1, &body)).err().unwrap();
    // No key, no offset, no file name: just the io::Error text.
    assert!(!e.contains("tokenizer"), "{e}");
    assert!(e.contains("fill whole buffer"), "{e}");
}

/// Records the largest single allocation made by the current thread.
struct Largest;

thread_local! {
    static LARGEST: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

// SAFETY: forwards every call to the system allocator unchanged; the
// counter is a thread-local cell that never allocates.
unsafe impl std::alloc::GlobalAlloc for Largest {
    unsafe fn alloc(&self, l: std::alloc::Layout) -> *mut u8 {
        let _ = LARGEST.try_with(|c| c.set(c.get().max(l.size())));
        // SAFETY: forwarding the caller's layout to the system allocator.
        unsafe { std::alloc::System.alloc(l) }
    }
    unsafe fn alloc_zeroed(&self, l: std::alloc::Layout) -> *mut u8 {
        let _ = LARGEST.try_with(|c| c.set(c.get().max(l.size())));
        // SAFETY: as above.
        unsafe { std::alloc::System.alloc_zeroed(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: std::alloc::Layout) {
        // SAFETY: `p` came from `alloc` with this layout.
        unsafe { std::alloc::System.dealloc(p, l) }
    }
}

#[global_allocator]
static GLOBAL: Largest = Largest;

fn largest_allocation(f: impl FnOnce()) -> usize {
    LARGEST.with(|c| c.set(0));
    f();
    LARGEST.with(|c| c.get())
}

#[test]
fn a_45_byte_file_makes_gguf_rs_allocate_1_gib() {
    let mut body = Vec::new();
    s(&mut body, "k");
    body.extend_from_slice(&8u32.to_le_bytes());
    body.extend_from_slice(&(1u64 << 30).to_le_bytes());
    let p = file("alloc.gguf", 0, 1, &body);
    assert_eq!(std::fs::metadata(&p).unwrap().len(), 45);
    let theirs = largest_allocation(|| assert!(decode(&p).is_err()));
    let ours = largest_allocation(|| assert!(moe::gguf::GgufFile::open(&p).is_err()));
    assert!(theirs >= 1 << 30, "gguf-rs largest allocation: {theirs}");
    assert!(ours < 1 << 16, "moe::gguf largest allocation: {ours}");
}

/// Not an assertion, a measurement: `cargo test --test gguf_rs_evidence -- --nocapture timing`.
#[test]
fn timing() {
    let models = [
        Path::new(env!("CARGO_MANIFEST_DIR")).join("models/gemma3-vocab-spm.gguf"),
        Path::new(env!("CARGO_MANIFEST_DIR")).join("models/SmolLM2-135M-Instruct.Q4_1.gguf"),
    ];
    for p in models {
        if !p.exists() {
            eprintln!("SKIP timing: {} is missing", p.display());
            continue;
        }
        let t = Instant::now();
        let m = decode(&p).unwrap();
        let gguf_rs = t.elapsed();
        let n = m.metadata()["tokenizer.ggml.tokens"].as_array().unwrap().len();
        let t = Instant::now();
        let ours = moe::gguf::GgufFile::open(&p).unwrap();
        let own = t.elapsed();
        let n2 = ours.metadata().strings("tokenizer.ggml.tokens").unwrap().len();
        assert_eq!(n, n2);
        eprintln!(
            "{} ({n} tokens): gguf-rs {gguf_rs:?}, moe::gguf {own:?}",
            p.file_name().unwrap().to_string_lossy()
        );
    }
}
