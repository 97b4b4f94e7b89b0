//! GgufWriter round trips: every value type, arrays, UTF-8 strings, tensors
//! given as bytes or streamed by producers; the layout llama.cpp expects;
//! and writer-side errors.

mod common;

use common::test_model_path;
use std::io::Write;

use moe::gguf::{tensor_bytes, GgufFile, GgufWriter, Value};
use moe::Error;
use moe_quant::QType;

fn all_values() -> Vec<(&'static str, Value)> {
    use moe::gguf::Array as A;
    use Value::*;
    vec![
        ("t.u8", U8(200)),
        ("t.i8", I8(-100)),
        ("t.u16", U16(60000)),
        ("t.i16", I16(-30000)),
        ("t.u32", U32(4_000_000_000)),
        ("t.i32", I32(-2_000_000_000)),
        ("t.f32", F32(-1.5e-7)),
        ("t.bool.true", Bool(true)),
        ("t.bool.false", Bool(false)),
        ("t.string", String("héllo wörld — 日本語 🦀".into())),
        ("t.string.empty", String(std::string::String::new())),
        ("t.u64", U64(u64::MAX)),
        ("t.i64", I64(i64::MIN)),
        ("t.f64", F64(std::f64::consts::PI)),
        ("t.arr.u8", A::from(vec![0u8, 255]).into()),
        ("t.arr.i32", A::from((-3..3).collect::<Vec<i32>>()).into()),
        ("t.arr.f32", A::from(vec![0.5f32, f32::INFINITY, -0.0]).into()),
        ("t.arr.bool", A::from(vec![true, false]).into()),
        ("t.arr.str", A::from_strings(["a", "▁the", ""]).into()),
        ("t.arr.empty", A::from(Vec::<u64>::new()).into()),
        ("t.arr.f64", A::from(vec![1e300f64]).into()),
        ("t.arr.i16", A::from(vec![-1i16]).into()),
        ("t.arr.u16", A::from(vec![1u16]).into()),
        ("t.arr.i8", A::from(vec![-1i8]).into()),
        ("t.arr.u32", A::from(vec![7u32]).into()),
        ("t.arr.i64", A::from(vec![-7i64]).into()),
    ]
}

fn pattern(n: usize, seed: u8) -> Vec<u8> {
    (0..n).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
}

#[test]
fn round_trip_metadata_and_tensors() {
    let path = test_model_path("round_trip.gguf");
    let mut w = GgufWriter::new();
    for (k, v) in all_values() {
        w.add_kv(k, v);
    }
    // (name, type, dims) with odd sizes so padding matters.
    let specs: Vec<(&str, QType, Vec<u64>)> = vec![
        ("norm.weight", QType::F32, vec![7]),
        ("f16.weight", QType::F16, vec![3, 5]),
        ("q4_0.weight", QType::Q4_0, vec![64, 3]),
        ("q8_0.weight", QType::Q8_0, vec![32, 2, 3]),
        ("q6_k.weight", QType::Q6_K, vec![256, 1, 2, 2]),
        ("scalar", QType::F32, vec![]),
    ];
    let mut expected = Vec::new();
    for (i, (name, q, dims)) in specs.iter().enumerate() {
        let data = pattern(tensor_bytes(*q, dims).unwrap() as usize, i as u8);
        if i % 2 == 0 {
            w.add_tensor(name, *q, dims, data.as_slice()).unwrap();
        } else {
            let d = data.clone();
            // Stream in small odd-sized chunks, as a large producer would.
            w.add_tensor_with(name, *q, dims, move |out: &mut dyn Write| {
                d.chunks(5).try_for_each(|c| out.write_all(c))
            })
            .unwrap();
        }
        expected.push(data);
    }
    w.write(&path).unwrap();

    let f = GgufFile::open(&path).unwrap();
    assert_eq!(f.version(), 3);
    assert_eq!(f.alignment(), 32);
    let md = f.metadata();
    assert_eq!(md.map.len(), all_values().len());
    for (k, v) in all_values() {
        assert_eq!(md.get(k), Some(&v), "key {k}");
        assert_eq!(md.get(k).unwrap().value_type(), v.value_type(), "type of {k}");
    }
    assert_eq!(f.tensors().len(), specs.len());
    for ((t, (name, q, dims)), data) in f.tensors().iter().zip(&specs).zip(&expected) {
        assert_eq!((&t.name[..], t.qtype, &t.dims), (*name, *q, dims));
        assert_eq!(t.offset % 32, 0, "{name} aligned");
        assert_eq!(f.tensor_bytes(t), &data[..], "{name} bytes");
        assert_eq!(f.require(name).unwrap(), t);
    }
    assert_eq!(f.tensor("scalar").unwrap().n_elements(), 1);
    assert_eq!(f.tensor("q6_k.weight").unwrap().ne(3), 2);
    assert_eq!(f.tensor("norm.weight").unwrap().ne(3), 1);
    std::fs::remove_file(&path).unwrap();
}

/// The layout llama.cpp's reader insists on: data section aligned right
/// after the infos, offsets = running sum of padded sizes, every tensor
/// padded (the last one too), zero padding.
#[test]
fn layout_matches_llama_cpp() {
    let path = test_model_path("layout.gguf");
    let mut w = GgufWriter::new();
    w.add_kv("general.alignment", Value::U32(64));
    w.add_tensor("a", QType::F32, &[3], vec![1u8; 12]).unwrap();
    w.add_tensor("b", QType::Q4_0, &[32, 5], vec![2u8; 90]).unwrap();
    w.add_tensor("c", QType::F16, &[1], vec![3u8; 2]).unwrap();
    w.write(&path).unwrap();
    let f = GgufFile::open(&path).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(f.alignment(), 64);
    assert_eq!(f.data_offset() % 64, 0);
    let mut expect = f.data_offset();
    for t in f.tensors() {
        assert_eq!(t.offset, expect, "{}", t.name);
        expect += t.n_bytes.next_multiple_of(64);
        let pad = &bytes[t.range().end as usize..expect as usize];
        assert!(pad.iter().all(|&b| b == 0), "{} padding is zero", t.name);
    }
    assert_eq!(bytes.len() as u64, expect, "the last tensor is padded too");
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn replaced_key_keeps_one_entry() {
    let path = test_model_path("replace.gguf");
    let mut w = GgufWriter::new();
    w.add_kv("a", Value::U32(1)).add_kv("b", Value::U32(2)).add_kv("a", Value::String("x".into()));
    w.remove_kv("b");
    w.write(&path).unwrap();
    let f = GgufFile::open(&path).unwrap();
    assert_eq!(f.metadata().map.len(), 1);
    assert_eq!(f.metadata().str("a").unwrap(), "x");
    // Like llama.cpp: the writer pads after the infos even without tensors,
    // and the reader puts the (empty) data section right after the infos.
    let len = std::fs::metadata(&path).unwrap().len();
    assert_eq!((f.data_offset().next_multiple_of(32), len % 32), (len, 0));
}

#[test]
fn writer_rejects_bad_input() {
    let mut w = GgufWriter::new();
    let e = w.add_tensor("x", QType::Q4_0, &[33], vec![0u8; 18]).unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(ref m) if m.contains("'x'")), "{e}");
    let e = w.add_tensor("x", QType::F32, &[2], vec![0u8; 7]).unwrap_err();
    assert!(e.to_string().contains("needs 8 bytes, got 7"), "{e}");
    assert!(w.add_tensor("x", QType::Q8_K, &[256], vec![0u8; 292]).is_err(), "activation-only type");
    assert!(w.add_tensor("x", QType::F32, &[1, 1, 1, 1, 1], vec![0u8; 4]).is_err(), "5 dims");
    assert!(w.add_tensor("x", QType::F32, &[0], vec![]).is_err(), "zero dim");
    assert!(w.add_tensor(&"n".repeat(64), QType::F32, &[1], vec![0u8; 4]).is_err(), "64-byte name");
    w.add_tensor("x", QType::F32, &[1], vec![0u8; 4]).unwrap();
    assert!(w.add_tensor("x", QType::F32, &[1], vec![0u8; 4]).is_err(), "duplicate");

    for (key, v) in [
        ("general.alignment", Value::U32(48)),
        ("general.alignment", Value::U64(64)),
    ] {
        let path = test_model_path("bad_kv.gguf");
        let mut w = GgufWriter::new();
        w.add_kv(key, v);
        let e = w.write(&path).unwrap_err();
        assert!(e.to_string().contains(key), "{e}");
        assert!(!path.exists());
    }
}

#[test]
fn producer_with_wrong_length_leaves_no_file() {
    for n in [7usize, 9] {
        let path = test_model_path(&format!("short_producer_{n}.gguf"));
        let mut w = GgufWriter::new();
        w.add_tensor_with("t", QType::F32, &[2], move |out: &mut dyn Write| out.write_all(&vec![0u8; n])).unwrap();
        let e = w.write(&path).unwrap_err();
        assert!(
            matches!(e, Error::InvalidTensor { ref tensor, .. } if tensor == "t"),
            "{e}"
        );
        assert!(e.to_string().contains("wrote {n} bytes, expected 8".replace("{n}", &n.to_string()).as_str()), "{e}");
        assert!(!path.exists(), "a failed write leaves nothing at the path");
    }
}

#[test]
fn producer_error_is_reported() {
    let path = test_model_path("failing_producer.gguf");
    let mut w = GgufWriter::new();
    w.add_tensor_with("t", QType::F32, &[2], |_: &mut dyn Write| Err(std::io::Error::other("boom"))).unwrap();
    let e = w.write(&path).unwrap_err();
    assert!(matches!(e, Error::Io { .. }) && e.to_string().contains("boom"), "{e}");
    assert!(!path.exists());
}
