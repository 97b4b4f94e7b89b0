//! Header bombs: a GGUF header whose counts and lengths claim far more than
//! the file holds must be refused before anything that size is allocated.
//! The stated cap: opening a file never has more than
//! `64 × file length + 1 MiB` bytes allocated at once (a key and its value
//! cost at most 64 times their encoding). Valid headers cost far less:
//! arrays take their bytes in the file (numbers as typed vectors, strings
//! as one buffer plus an 8-byte end each), so at most
//! `2 × header length + 1 MiB`. Measured with a counting allocator, on
//! this thread; and, for a 72 MiB array in a real model, as the peak
//! resident memory of `moe inspect`'s work in a child process.

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::process::Command;

use moe::gguf::{Array, GgufFile, GgufWriter};
use moe::inspect::Inspection;
use moe::model::{KvType, Model};
use moe::synth::TinyModel;

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

/// The cap of a valid header: its arrays cost their bytes in the file.
fn valid_cap(header_len: usize) -> usize {
    2 * header_len + (1 << 20)
}

/// A path for `name` in this process's scratch directory.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("moe-alloc-cap-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn put(name: &str, b: &[u8]) -> PathBuf {
    let p = scratch(name);
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
    eprintln!("a million u8: {} byte file, peak {peak} bytes (cap {})", million.len(), valid_cap(million.len()));
    assert!(peak <= valid_cap(million.len()));

    let smollm2 = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models/SmolLM2-135M-Instruct.Q4_1.gguf");
    if smollm2.exists() {
        let f = GgufFile::open(&smollm2).unwrap();
        let header = f.data_offset() as usize;
        drop(f);
        let peak = peak_during(|| drop(GgufFile::open(&smollm2).unwrap()));
        eprintln!("SmolLM2: {header} byte header, peak {peak} bytes ({:.1}x the header)", peak as f64 / header as f64);
        assert!(peak <= valid_cap(header));
    }
}

/// Names the file [`rss_of_inspect`] inspects when this binary runs as its child.
const CHILD_FILE: &str = "MOE_ALLOC_CAP_CHILD_FILE";

/// A legal 72 MiB array of u8 under an unused key, in a tiny model. What
/// `moe inspect` does with it (`Model::open`, then `Inspection::of`) must
/// cost memory in proportion to the file: the mapping's pages the parser
/// read (the file, once) and the decoded array (once more), plus the
/// process's own baseline. It took 2.3 GiB (33 × the file) when every
/// element was a 32-byte `Value`.
#[test]
fn a_72_mib_array_costs_memory_in_proportion_to_the_file() {
    if !Path::new("/proc/self/status").exists() {
        eprintln!("skipped: no /proc/self/status to read the peak resident memory from");
        return;
    }
    let tiny = scratch("tiny-model.gguf");
    TinyModel::default().write(&tiny).unwrap();
    let p = scratch("array-72mib.gguf");
    let f = GgufFile::open(&tiny).unwrap();
    let mut w = GgufWriter::new();
    for (k, v) in &f.metadata().map {
        w.add_kv(k.clone(), v.clone());
    }
    w.add_kv("unused.blob", Array::from(vec![7u8; 72 << 20]).into());
    for t in f.tensors() {
        w.add_tensor(&t.name, t.qtype, &t.dims, f.tensor_bytes(t).to_vec()).unwrap();
    }
    w.write(&p).unwrap();
    let file_len = std::fs::metadata(&p).unwrap().len() as usize;
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "rss_of_inspect", "--nocapture", "--test-threads=1"])
        .env(CHILD_FILE, &p)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "child failed: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let peak_kb: usize = stdout
        .lines()
        .find_map(|l| l.split("peak-rss-kb ").nth(1))
        .unwrap_or_else(|| panic!("the child printed no peak: {stdout}"))
        .trim()
        .parse()
        .unwrap();
    let (peak, limit) = (peak_kb << 10, 2 * file_len + (64 << 20));
    eprintln!("72 MiB array: {file_len} byte file, peak RSS {peak} bytes ({:.2} x the file; limit 2 x + 64 MiB = {limit})", peak as f64 / file_len as f64);
    assert!(peak <= limit, "inspecting a {file_len}-byte file peaked at {peak} bytes resident");
    std::fs::remove_file(&p).unwrap();
}

/// The child of the test above: inspects the file it is given and prints
/// its peak resident memory (VmHWM). Without the variable set, nothing.
#[test]
fn rss_of_inspect() {
    let Some(path) = std::env::var_os(CHILD_FILE) else { return };
    let model = Model::open(Path::new(&path)).unwrap();
    let inspection = Inspection::of(&model, None, 4096, KvType::F16).unwrap();
    assert!(inspection.file_bytes > 72 << 20);
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let hwm = status.lines().find_map(|l| l.strip_prefix("VmHWM:")).expect("VmHWM in /proc/self/status");
    println!("\npeak-rss-kb {}", hwm.trim().trim_end_matches("kB").trim());
}
