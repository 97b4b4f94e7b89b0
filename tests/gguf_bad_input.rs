//! Corrupt and hostile GGUF files: each must give the right `moe::Error`
//! variant, a message naming the file and the key or tensor at fault, and
//! never a panic or a huge allocation.

use std::path::{Path, PathBuf};

use moe::gguf::{Array, GgufFile, GgufWriter, Value};
use moe::Error;
use moe_quant::QType;

fn dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("moe-gguf-bad-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn put(path: &Path, bytes: &[u8]) -> PathBuf {
    std::fs::write(path, bytes).unwrap();
    path.to_path_buf()
}

/// Opens `bytes` (saved as `name`) and returns the error, checking that its
/// message names the file and contains every string of `mentions`.
fn open_err(name: &str, bytes: &[u8], mentions: &[&str]) -> Error {
    let path = put(&dir().join(name), bytes);
    let e = GgufFile::open(&path).expect_err(name);
    let msg = e.to_string();
    assert!(msg.contains(&path.display().to_string()), "{name}: message does not name the file: {msg}");
    for m in mentions {
        assert!(msg.contains(m), "{name}: message lacks {m:?}: {msg}");
    }
    e
}

// ---- a tiny raw encoder, independent of GgufWriter, to forge any field ----

fn string(b: &mut Vec<u8>, s: &[u8]) {
    b.extend_from_slice(&(s.len() as u64).to_le_bytes());
    b.extend_from_slice(s);
}

fn kv(key: &str, type_id: u32, payload: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    string(&mut b, key.as_bytes());
    b.extend_from_slice(&type_id.to_le_bytes());
    b.extend_from_slice(payload);
    b
}

fn kv_u32(key: &str, v: u32) -> Vec<u8> {
    kv(key, 4, &v.to_le_bytes())
}

fn info(name: &str, dims: &[u64], type_id: u32, offset: u64) -> Vec<u8> {
    let mut b = Vec::new();
    string(&mut b, name.as_bytes());
    b.extend_from_slice(&(dims.len() as u32).to_le_bytes());
    for d in dims {
        b.extend_from_slice(&d.to_le_bytes());
    }
    b.extend_from_slice(&type_id.to_le_bytes());
    b.extend_from_slice(&offset.to_le_bytes());
    b
}

/// Header with the true counts, then kvs, infos, zero padding to 32 and
/// `data_len` data bytes.
fn gguf(kvs: &[Vec<u8>], infos: &[Vec<u8>], data_len: usize) -> Vec<u8> {
    gguf_counts(3, infos.len() as u64, kvs.len() as u64, kvs, infos, data_len)
}

fn gguf_counts(version: u32, n_t: u64, n_kv: u64, kvs: &[Vec<u8>], infos: &[Vec<u8>], data_len: usize) -> Vec<u8> {
    let mut b = b"GGUF".to_vec();
    b.extend_from_slice(&version.to_le_bytes());
    b.extend_from_slice(&n_t.to_le_bytes());
    b.extend_from_slice(&n_kv.to_le_bytes());
    kvs.iter().chain(infos).for_each(|x| b.extend_from_slice(x));
    b.resize(b.len().next_multiple_of(32) + data_len, 0);
    b
}

/// One F32 tensor of 8 elements: the base of the tensor tests.
fn one_tensor(name: &str, dims: &[u64], type_id: u32, offset: u64) -> Vec<u8> {
    gguf(&[kv_u32("general.x", 1)], &[info(name, dims, type_id, offset)], 256)
}

#[test]
fn the_forged_base_file_is_valid() {
    let path = put(&dir().join("base.gguf"), &one_tensor("t.weight", &[8], 0, 0));
    let f = GgufFile::open(&path).unwrap();
    assert_eq!(f.tensors()[0].n_bytes, 32);
}

// ---- header ----

#[test]
fn wrong_magic() {
    let mut b = one_tensor("t", &[8], 0, 0);
    b[..4].copy_from_slice(b"GGML");
    let e = open_err("magic.gguf", &b, &["bad magic", "GGML", "expected \"GGUF\""]);
    assert!(matches!(e, Error::InvalidGguf { .. }));
}

#[test]
fn unsupported_versions() {
    for (v, says) in [(1u32, "version 1"), (4, "version 4"), (0, "version 0"), (0x0300_0000, "big-endian")] {
        let b = gguf_counts(v, 0, 0, &[], &[], 0);
        let e = open_err(&format!("version{v}.gguf"), &b, &[says, "supported versions: 2 and 3"]);
        assert!(matches!(e, Error::InvalidGguf { .. }));
    }
    // v2 has the same layout and is accepted.
    let path = put(&dir().join("v2.gguf"), &gguf_counts(2, 0, 1, &[kv_u32("a", 1)], &[], 0));
    assert_eq!(GgufFile::open(&path).unwrap().version(), 2);
}

#[test]
fn empty_short_and_missing_files() {
    for (n, len) in [("empty.gguf", 0), ("short.gguf", 3), ("no_counts.gguf", 10)] {
        let b = &gguf_counts(3, 0, 0, &[], &[], 0)[..len];
        let e = open_err(n, b, &["truncated"]);
        assert!(matches!(e, Error::InvalidGguf { .. }));
    }
    let e = GgufFile::open(dir().join("does-not-exist.gguf")).unwrap_err();
    assert!(matches!(e, Error::Io { .. }) && e.to_string().contains("does-not-exist.gguf"), "{e}");
}

#[test]
fn absurd_counts() {
    for (n_t, n_kv) in [(1u64 << 60, 0u64), (0, 1 << 60), (u64::MAX, u64::MAX), (1000, 1000)] {
        let b = gguf_counts(3, n_t, n_kv, &[kv_u32("a", 1)], &[], 0);
        let e = open_err(&format!("counts_{n_t}_{n_kv}.gguf"), &b, &["header claims", &n_t.to_string()]);
        assert!(matches!(e, Error::InvalidGguf { .. }));
    }
}

// ---- metadata ----

#[test]
fn absurd_string_lengths() {
    // A key claiming 2^40 bytes.
    let mut k = Vec::new();
    k.extend_from_slice(&(1u64 << 40).to_le_bytes());
    k.extend_from_slice(&[b'a'; 64]);
    let e = open_err("key_len.gguf", &gguf(&[k], &[], 0), &["1 GiB", "key of metadata pair #0"]);
    assert!(matches!(e, Error::InvalidGguf { .. }));
    // A value exactly at the 1 GiB cap, in a tiny file.
    let e = open_err("str_len.gguf", &gguf(&[kv("s", 8, &(1u64 << 30).to_le_bytes())], &[], 64), &["truncated", "'s'"]);
    assert!(matches!(e, Error::InvalidGguf { .. }));
    let e = open_err("str_huge.gguf", &gguf(&[kv("s", 8, &u64::MAX.to_le_bytes())], &[], 64), &["1 GiB", "'s'"]);
    assert!(matches!(e, Error::InvalidGguf { .. }));
}

fn array_kv(key: &str, elem: u32, n: u64, payload: &[u8]) -> Vec<u8> {
    let mut p = elem.to_le_bytes().to_vec();
    p.extend_from_slice(&n.to_le_bytes());
    p.extend_from_slice(payload);
    kv(key, 9, &p)
}

#[test]
fn absurd_and_bad_arrays() {
    let cases: [(&str, Vec<u8>, &[&str]); 6] = [
        ("arr_2p60.gguf", array_kv("tokenizer.ggml.tokens", 8, 1 << 60, &[]), &["tokenizer.ggml.tokens", "2^30"]),
        ("arr_2p29.gguf", array_kv("a.u32s", 4, 1 << 29, &[0; 64]), &["a.u32s", "at least 2147483648 bytes"]),
        ("arr_str.gguf", array_kv("a.strs", 8, 100, &[0; 64]), &["a.strs", "at least 800 bytes"]),
        ("arr_nested.gguf", array_kv("a.nested", 9, 1, &[0; 64]), &["a.nested", "nested arrays"]),
        ("arr_type13.gguf", array_kv("a.t13", 13, 1, &[0; 64]), &["a.t13", "unknown value type id 13"]),
        ("arr_short_elem.gguf", array_kv("a.s", 8, 2, &[1, 0, 0, 0, 0, 0, 0, 0, b'x', 0xe8, 3, 0, 0, 0, 0, 0, 0]), &["element 1 of key 'a.s'"]),
    ];
    for (name, k, mentions) in cases {
        let e = open_err(name, &gguf(&[k], &[], 0), mentions);
        assert!(matches!(e, Error::InvalidGguf { .. }), "{name}: {e}");
    }
}

#[test]
fn bad_keys_and_values() {
    let e = open_err("type13.gguf", &gguf(&[kv("a.b", 13, &[0; 8])], &[], 0), &["'a.b'", "unknown value type id 13"]);
    assert!(matches!(e, Error::InvalidGguf { .. }));
    let e = open_err("dup_key.gguf", &gguf(&[kv_u32("a.b", 1), kv_u32("a.b", 2)], &[], 0), &["duplicate", "'a.b'"]);
    assert!(matches!(e, Error::InvalidGguf { .. }));
    let e = open_err("empty_key.gguf", &gguf(&[kv_u32("", 1)], &[], 0), &["empty key"]);
    assert!(matches!(e, Error::InvalidGguf { .. }));
    let mut s = Vec::new();
    string(&mut s, &[b'o', b'k', 0xc3, 0x28]);
    let e = open_err("utf8.gguf", &gguf(&[kv("general.name", 8, &s)], &[], 0), &["'general.name'", "UTF-8"]);
    assert!(matches!(e, Error::InvalidGguf { .. }));
}

#[test]
fn bad_alignment() {
    for (name, k, found) in [
        ("align_u64.gguf", kv("general.alignment", 10, &64u64.to_le_bytes()), "U64(64)"),
        ("align_48.gguf", kv_u32("general.alignment", 48), "48"),
        ("align_0.gguf", kv_u32("general.alignment", 0), "0"),
    ] {
        let e = open_err(name, &gguf(&[k], &[], 0), &["general.alignment", "u32 power of two", found]);
        assert!(matches!(e, Error::BadKey { .. }), "{name}: {e}");
    }
    // A huge (valid) alignment pushes the data section past the end.
    let b = gguf(&[kv_u32("general.alignment", 1 << 31)], &[info("t", &[8], 0, 0)], 64);
    let e = open_err("align_huge.gguf", &b, &["data section", "past the end"]);
    assert!(matches!(e, Error::InvalidGguf { .. }));
}

// ---- tensor infos ----

#[test]
fn tensor_past_end_of_file() {
    for (offset, name) in [(256u64, "at_end.gguf"), (1 << 40, "far.gguf"), (u64::MAX - 31, "overflow.gguf")] {
        let e = open_err(name, &one_tensor("blk.0.t.weight", &[8], 0, offset), &["'blk.0.t.weight'", "past the end of the file"]);
        assert!(matches!(e, Error::InvalidTensor { .. }), "{name}: {e}");
    }
    // Its last byte one past the end.
    let e = open_err("one_over.gguf", &one_tensor("t", &[65], 0, 0), &["'t'", "260 bytes", "past the end"]);
    assert!(matches!(e, Error::InvalidTensor { .. }));
}

#[test]
fn unsupported_tensor_types() {
    for (id, type_name) in [(99u32, "unknown"), (16, "IQ2_XXS"), (4, "Q4_2 (removed)"), (9, "Q8_1"), (15, "Q8_K"), (28, "F64")] {
        let e = open_err(&format!("type{id}.gguf"), &one_tensor("w", &[256], id, 0), &["'w'", type_name]);
        match e {
            Error::UnsupportedType { tensor, type_id, type_name: n, .. } => {
                assert_eq!((tensor.as_str(), type_id, n), ("w", id, type_name));
            }
            e => panic!("type {id}: {e}"),
        }
    }
}

#[test]
fn bad_shapes() {
    let cases: [(&str, Vec<u8>, &[&str]); 6] = [
        ("misaligned.gguf", one_tensor("w", &[8], 0, 16), &["'w'", "offset 16", "alignment 32"]),
        ("block.gguf", one_tensor("w", &[48], 2, 0), &["'w'", "ne0 = 48", "Q4_0 block size 32"]),
        ("kblock.gguf", one_tensor("w", &[128, 2], 12, 0), &["'w'", "ne0 = 128", "Q4_K block size 256"]),
        ("ndims5.gguf", one_tensor("w", &[1, 1, 1, 1, 1], 0, 0), &["'w'", "5 dimensions"]),
        ("dim0.gguf", one_tensor("w", &[8, 0], 0, 0), &["'w'", "dimension 1 is 0"]),
        ("overflow.gguf", one_tensor("w", &[1 << 32, 1 << 32], 0, 0), &["'w'", "more than 2^63 elements"]),
    ];
    for (name, b, mentions) in cases {
        let e = open_err(name, &b, mentions);
        assert!(matches!(e, Error::InvalidTensor { .. }), "{name}: {e}");
    }
}

#[test]
fn bad_tensor_names() {
    let two = gguf(&[], &[info("w", &[8], 0, 0), info("w", &[8], 0, 32)], 64);
    let e = open_err("dup_tensor.gguf", &two, &["'w'", "duplicate tensor name"]);
    assert!(matches!(e, Error::InvalidTensor { .. }));
    let long = "n".repeat(64);
    let e = open_err("long_name.gguf", &one_tensor(&long, &[8], 0, 0), &[&long, "64 bytes"]);
    assert!(matches!(e, Error::InvalidTensor { .. }));
    let path = put(&dir().join("name63.gguf"), &one_tensor(&"n".repeat(63), &[8], 0, 0));
    GgufFile::open(&path).expect("a 63-byte name is fine");
    let e = open_err("empty_name.gguf", &one_tensor("", &[8], 0, 0), &["tensor #0 has an empty name"]);
    assert!(matches!(e, Error::InvalidGguf { .. }));
}

#[test]
fn overlapping_tensors() {
    // 'a' is 16 F32 = 64 bytes at 0..64; 'b' starts inside it.
    let b = gguf(&[], &[info("a", &[16], 0, 0), info("b", &[16], 0, 32)], 128);
    let e = open_err("overlap.gguf", &b, &["'b'", "overlap tensor 'a'"]);
    assert!(matches!(e, Error::InvalidTensor { .. }), "{e}");
    // Listed in the other order, the same pair.
    let b = gguf(&[], &[info("b", &[16], 0, 32), info("a", &[16], 0, 0)], 128);
    open_err("overlap2.gguf", &b, &["'b'", "overlap tensor 'a'"]);
    // Back to back is fine.
    let path = put(&dir().join("adjacent.gguf"), &gguf(&[], &[info("a", &[16], 0, 0), info("b", &[16], 0, 64)], 128));
    GgufFile::open(&path).expect("adjacent tensors");
}

#[test]
fn duplicate_keys() {
    let b = gguf(&[kv_u32("llama.block_count", 1), kv_u32("llama.block_count", 2)], &[], 0);
    let e = open_err("dup_key.gguf", &b, &["duplicate metadata key 'llama.block_count'"]);
    assert!(matches!(e, Error::InvalidGguf { .. }), "{e}");
}

#[test]
fn missing_tensor_via_require() {
    let path = put(&dir().join("require.gguf"), &one_tensor("t.weight", &[8], 0, 0));
    let f = GgufFile::open(&path).unwrap();
    assert!(f.tensor("output.weight").is_none());
    let e = f.require("output.weight").unwrap_err();
    assert!(matches!(e, Error::MissingTensor { ref tensor, .. } if tensor == "output.weight"), "{e}");
    assert!(e.to_string().contains(&path.display().to_string()), "{e}");
}

// ---- truncation at every byte of a real (writer-made) file ----

/// A small valid file. Tests run in parallel, so each call writes its own path.
fn valid_file() -> Vec<u8> {
    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = dir().join(format!("valid-{n}.gguf"));
    let mut w = GgufWriter::new();
    w.add_kv("general.architecture", Value::String("llama".into()));
    w.add_kv("tokenizer.ggml.tokens", Array::from_strings(["<s>", "a", "bc"]).into());
    w.add_kv("llama.block_count", Value::U32(1));
    w.add_tensor("token_embd.weight", QType::Q8_0, &[32, 3], vec![7u8; 102]).unwrap();
    w.add_tensor("output_norm.weight", QType::F32, &[5], vec![1u8; 20]).unwrap();
    w.write(&path).unwrap();
    std::fs::read(&path).unwrap()
}

#[test]
fn truncated_at_every_byte() {
    let full = valid_file();
    let f = GgufFile::open(put(&dir().join("full.gguf"), &full)).unwrap();
    let data_end = f.tensors().iter().map(|t| t.range().end).max().unwrap() as usize;
    let infos_end = f.data_offset() as usize - 1; // somewhere in the padding
    let cut_path = dir().join("cut.gguf");
    let mut seen = [0usize; 4];
    for cut in 0..full.len() {
        std::fs::write(&cut_path, &full[..cut]).unwrap();
        let r = GgufFile::open(&cut_path);
        if cut >= data_end {
            // Only the last tensor's padding is missing: still a complete file.
            r.unwrap_or_else(|e| panic!("cut {cut}: {e}"));
            continue;
        }
        let e = r.err().unwrap_or_else(|| panic!("cut at {cut} of {} opened", full.len()));
        let msg = e.to_string();
        assert!(msg.contains("cut.gguf"), "cut {cut}: {msg}");
        match e {
            Error::InvalidGguf { .. } if cut < 24 => {
                assert!(msg.contains("truncated") || msg.contains("header claims"), "cut {cut}: {msg}");
                seen[0] += 1;
            }
            Error::InvalidGguf { .. } if cut <= infos_end => {
                assert!(
                    ["truncated", "header claims", "claims an array", "data section"].iter().any(|m| msg.contains(m)),
                    "cut {cut}: {msg}"
                );
                seen[1] += 1;
            }
            Error::InvalidTensor { ref tensor, .. } => {
                assert!(cut > infos_end, "cut {cut}: {msg}");
                assert!(msg.contains("past the end") && msg.contains(tensor.as_str()), "cut {cut}: {msg}");
                seen[2] += 1;
            }
            e => panic!("cut {cut}: unexpected {e:?}"),
        }
        if msg.contains("key '") || msg.contains("tensor '") {
            seen[3] += 1;
        }
    }
    // Header, metadata/infos and data cuts all happened, and some errors name the key/tensor.
    assert!(seen.iter().all(|&n| n > 0), "{seen:?}");
}

/// Deterministic byte corruption of the header region: whatever happens,
/// open returns (an error or a file) without panicking.
#[test]
fn random_header_corruption_never_panics() {
    let full = valid_file();
    let f = GgufFile::open(put(&dir().join("full2.gguf"), &full)).unwrap();
    let header_len = f.data_offset() as usize;
    let path = dir().join("corrupt.gguf");
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut errors = 0;
    for _ in 0..3000 {
        let mut b = full.clone();
        for _ in 0..1 + next() % 4 {
            let i = (next() as usize) % header_len;
            b[i] = match next() % 3 {
                0 => next() as u8,
                1 => 0xff,
                _ => 0,
            };
        }
        std::fs::write(&path, &b).unwrap();
        if let Ok(f) = GgufFile::open(&path) {
            for t in f.tensors() {
                assert_eq!(f.tensor_bytes(t).len() as u64, t.n_bytes);
            }
        } else {
            errors += 1;
        }
    }
    assert!(errors > 1000, "{errors}");
}
