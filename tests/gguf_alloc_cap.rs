//! Header bombs: a GGUF header whose counts and lengths claim far more than
//! the file holds must be refused before anything that size is allocated.
//! The stated cap: opening a file never has more than
//! `64 × file length + 1 MiB` bytes allocated at once (a value in memory
//! costs at most 64 times its encoding; an array of 2^30 u8 needs 2^30
//! bytes of file before its 32-byte values are made). Measured with a
//! counting allocator, on this thread.

use std::cell::Cell;
use std::path::PathBuf;

use moe::gguf::GgufFile;

struct Counting;

thread_local! {
    static LIVE: Cell<usize> = const { Cell::new(0) };
    static PEAK: Cell<usize> = const { Cell::new(0) };
}

fn grew(n: usize) {
    let _ = LIVE.try_with(|l| {
        l.set(l.get() + n);
        let _ = PEAK.try_with(|p| p.set(p.get().max(l.get())));
    });
}

fn shrank(n: usize) {
    let _ = LIVE.try_with(|l| l.set(l.get().saturating_sub(n)));
}

// SAFETY: forwards every call to the system allocator unchanged; the
// counters are thread-local cells that never allocate.
unsafe impl std::alloc::GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: std::alloc::Layout) -> *mut u8 {
        grew(l.size());
        // SAFETY: the caller's layout, forwarded.
        unsafe { std::alloc::System.alloc(l) }
    }
    unsafe fn alloc_zeroed(&self, l: std::alloc::Layout) -> *mut u8 {
        grew(l.size());
        // SAFETY: as above.
        unsafe { std::alloc::System.alloc_zeroed(l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: std::alloc::Layout, new: usize) -> *mut u8 {
        grew(new);
        shrank(l.size());
        // SAFETY: `p` came from this allocator with layout `l`.
        unsafe { std::alloc::System.realloc(p, l, new) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: std::alloc::Layout) {
        shrank(l.size());
        // SAFETY: `p` came from this allocator with layout `l`.
        unsafe { std::alloc::System.dealloc(p, l) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Peak bytes allocated at once (above what was live before) while `f` runs.
fn peak_during(f: impl FnOnce()) -> usize {
    let base = LIVE.with(|l| l.get());
    PEAK.with(|p| p.set(base));
    f();
    PEAK.with(|p| p.get()) - base
}

fn cap(file_len: usize) -> usize {
    64 * file_len + (1 << 20)
}

fn put(name: &str, b: &[u8]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("moe-alloc-cap-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, b).unwrap();
    p
}

fn header(n_tensors: u64, n_kv: u64) -> Vec<u8> {
    let mut b = b"GGUF".to_vec();
    b.extend(3u32.to_le_bytes());
    b.extend(n_tensors.to_le_bytes());
    b.extend(n_kv.to_le_bytes());
    b
}

fn string(b: &mut Vec<u8>, len: u64, s: &[u8]) {
    b.extend(len.to_le_bytes());
    b.extend(s);
}

/// One key `k` of `type_id` followed by `payload`.
fn with_kv(type_id: u32, payload: &[u8]) -> Vec<u8> {
    let mut b = header(0, 1);
    string(&mut b, 1, b"k");
    b.extend(type_id.to_le_bytes());
    b.extend(payload);
    b
}

fn array(elem: u32, n: u64, body: &[u8]) -> Vec<u8> {
    let mut p = elem.to_le_bytes().to_vec();
    p.extend(n.to_le_bytes());
    p.extend(body);
    with_kv(9, &p)
}

#[test]
fn header_bombs_stay_under_the_cap() {
    let mut tensor_dims = header(1, 0);
    string(&mut tensor_dims, 1, b"t");
    tensor_dims.extend(u32::MAX.to_le_bytes()); // n_dims
    let mut kv_then_tensors = header(1 << 40, 1);
    string(&mut kv_then_tensors, 1, b"k");
    kv_then_tensors.extend(4u32.to_le_bytes());
    kv_then_tensors.extend(7u32.to_le_bytes());
    let bombs: Vec<(&str, Vec<u8>)> = vec![
        ("2^40 tensors", header(1 << 40, 0)),
        ("2^40 pairs", header(0, 1 << 40)),
        ("u64::MAX of both", header(u64::MAX, u64::MAX)),
        ("one pair, then 2^40 tensors", kv_then_tensors),
        ("key of 2^40 bytes", {
            let mut b = header(0, 1);
            string(&mut b, 1 << 40, b"abc");
            b
        }),
        ("string of 1 GiB", with_kv(8, &(1u64 << 30).to_le_bytes())),
        ("string of u64::MAX bytes", with_kv(8, &u64::MAX.to_le_bytes())),
        ("2^30 u8", array(0, 1 << 30, &[1, 2, 3])),
        ("2^29 strings", array(8, 1 << 29, &[0; 16])),
        ("2^60 f64", array(12, 1 << 60, &[0; 16])),
        ("array of arrays", array(9, 1 << 20, &[0; 64])),
        ("tensor with 2^32-1 dims", tensor_dims),
    ];
    for (what, b) in bombs {
        let p = put("bomb.gguf", &b);
        let peak = peak_during(|| assert!(GgufFile::open(&p).is_err(), "{what}: opened"));
        eprintln!("{what}: {} byte file, peak {peak} bytes allocated (cap {})", b.len(), cap(b.len()));
        assert!(peak <= cap(b.len()), "{what}: {peak} bytes allocated for a {}-byte file", b.len());
    }
}

/// Real headers sit well inside the cap too: a valid array of a million
/// u8 (the worst ratio of memory to file: 1 byte each on disk), and the
/// real model's 49,152-token vocab.
#[test]
fn valid_headers_stay_under_the_cap() {
    let million = {
        let mut b = array(0, 1_000_000, &vec![7u8; 1_000_000]);
        b.resize(b.len().next_multiple_of(32), 0);
        b
    };
    let p = put("million.gguf", &million);
    let peak = peak_during(|| drop(GgufFile::open(&p).unwrap()));
    eprintln!("a million u8: {} byte file, peak {peak} bytes (cap {})", million.len(), cap(million.len()));
    assert!(peak <= cap(million.len()));

    let smollm2 = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models/SmolLM2-135M-Instruct.Q4_1.gguf");
    if smollm2.exists() {
        let f = GgufFile::open(&smollm2).unwrap();
        let header = f.data_offset() as usize;
        drop(f);
        let peak = peak_during(|| drop(GgufFile::open(&smollm2).unwrap()));
        eprintln!("SmolLM2: {header} byte header, peak {peak} bytes ({:.1}x the header)", peak as f64 / header as f64);
        assert!(peak <= cap(header));
    }
}
