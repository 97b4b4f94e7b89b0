//! Differential tests against llama.cpp on ~240 strings per vocab variant
//! (`tests/fixtures/tokenizer/llamacpp_*.jsonl`, made by llama.cpp's C API;
//! see `generate/README.md`): encoding with every flag combination,
//! detokenizing, per-token pieces, streaming, and the special ids.
//!
//! The variants re-label the SmolLM2 vocab with other pre-tokenizers
//! (llama-bpe, qwen2, gpt-2, default, falcon, starcoder, dbrx, gpt-4o, none) and turn
//! on the Gemma 3 vocab's space prefix, Mixtral's SentencePiece setting.

mod tokenizer_common;

use moe::gguf::Value;
use moe::tokenizer::{StreamDecoder, Tokenizer};

struct Case {
    text: String,
    ids: Vec<u32>,
    ids_add_special: Vec<u32>,
    ids_no_parse: Vec<u32>,
    detok: Vec<u8>,
    detok_unparse: Vec<u8>,
    detok_add_special: Vec<u8>,
    detok_add_special_removed: Vec<u8>,
    pieces_add_special: Vec<Vec<u8>>,
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn ids(v: &serde_json::Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

fn check_variant(name: &str) {
    let path = format!(
        "{}/tests/fixtures/tokenizer/llamacpp_{name}.jsonl",
        env!("CARGO_MANIFEST_DIR")
    );
    let file = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut lines = file.lines();
    let head: serde_json::Value = serde_json::from_str(lines.next().unwrap()).unwrap();

    let mut md = tokenizer_common::metadata(head["vocab"].as_str().unwrap());
    for (k, v) in head["set"].as_object().unwrap() {
        let value = match v {
            serde_json::Value::String(s) => Value::String(s.clone()),
            serde_json::Value::Bool(b) => Value::Bool(*b),
            other => panic!("{name}: cannot set {k} to {other}"),
        };
        md.map.insert(k.clone(), value);
    }
    for k in head["remove"].as_array().unwrap() {
        assert!(
            md.map.remove(k.as_str().unwrap()).is_some(),
            "{name}: no key {k} to remove"
        );
    }
    let tok = Tokenizer::from_metadata(&md).unwrap();

    assert_eq!(
        tok.eog_ids(),
        ids(&head["eog"]),
        "{name}: end-of-generation ids"
    );
    assert_eq!(
        tok.bos().map_or(-1, |b| b as i64),
        head["bos"].as_i64().unwrap(),
        "{name}: BOS"
    );
    assert_eq!(
        tok.eos().map_or(-1, |b| b as i64),
        head["eos"].as_i64().unwrap(),
        "{name}: EOS"
    );
    assert_eq!(
        tok.adds_bos(),
        head["add_bos"].as_i64().unwrap() != 0,
        "{name}: add BOS"
    );

    let cases: Vec<Case> = lines
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let hex = |k: &str| unhex(v[k].as_str().unwrap());
            Case {
                text: v["text"].as_str().unwrap().to_string(),
                ids: ids(&v["ids"]),
                ids_add_special: ids(&v["ids_add_special"]),
                ids_no_parse: ids(&v["ids_no_parse"]),
                detok: hex("detok"),
                detok_unparse: hex("detok_unparse"),
                detok_add_special: hex("detok_add_special"),
                detok_add_special_removed: hex("detok_add_special_removed"),
                pieces_add_special: v["pieces_add_special"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|p| unhex(p.as_str().unwrap()))
                    .collect(),
            }
        })
        .collect();
    assert!(cases.len() >= 200, "{name}: only {} cases", cases.len());

    let mut failures = Vec::new();
    let mut fail = |what: &str, text: &str, ours: String, theirs: String| {
        if failures.len() < 20 {
            failures.push(format!(
                "{what} of {text:?}:\n   ours {ours}\n  llama {theirs}"
            ));
        }
    };
    let lossy = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    for c in &cases {
        let t = &c.text;
        for (what, ours, theirs) in [
            ("ids", tok.encode(t, false, true).unwrap(), &c.ids),
            (
                "ids_add_special",
                tok.encode(t, true, true).unwrap(),
                &c.ids_add_special,
            ),
            (
                "ids_no_parse",
                tok.encode(t, false, false).unwrap(),
                &c.ids_no_parse,
            ),
        ] {
            if &ours != theirs {
                fail(what, t, format!("{ours:?}"), format!("{theirs:?}"));
            }
        }
        for (what, ours, theirs) in [
            ("detok", tok.detokenize(&c.ids, false, false), &c.detok),
            (
                "detok_unparse",
                tok.detokenize(&c.ids, false, true),
                &c.detok_unparse,
            ),
            (
                "detok_add_special",
                tok.detokenize(&c.ids_add_special, false, false),
                &c.detok_add_special,
            ),
            (
                "detok_add_special_removed",
                tok.detokenize(&c.ids_add_special, true, false),
                &c.detok_add_special_removed,
            ),
        ] {
            if &ours != theirs {
                fail(
                    what,
                    t,
                    format!("{:?}", lossy(&ours)),
                    format!("{:?}", lossy(theirs)),
                );
            }
        }
        if tok.decode(&c.ids, true) != lossy(&c.detok) {
            fail("decode", t, tok.decode(&c.ids, true), lossy(&c.detok));
        }
        let pieces: Vec<Vec<u8>> = c
            .ids_add_special
            .iter()
            .map(|&id| tok.token_piece(id).to_vec())
            .collect();
        if pieces != c.pieces_add_special {
            fail(
                "pieces",
                t,
                format!("{pieces:?}"),
                format!("{:?}", c.pieces_add_special),
            );
        }

        // Streaming, one id at a time, equals decoding all at once.
        let mut stream = StreamDecoder::detokenizing(&tok, true);
        let mut text: String = c
            .ids_add_special
            .iter()
            .map(|&id| stream.push(id))
            .collect();
        text += &stream.finish();
        if text != lossy(&c.detok_add_special) {
            fail(
                "stream",
                t,
                format!("{text:?}"),
                format!("{:?}", lossy(&c.detok_add_special)),
            );
        }
        let mut stream = StreamDecoder::new(&tok, true);
        let mut text: String = c
            .ids_add_special
            .iter()
            .map(|&id| stream.push(id))
            .collect();
        text += &stream.finish();
        if text != lossy(&c.pieces_add_special.concat()) {
            fail(
                "piece stream",
                t,
                format!("{text:?}"),
                format!("{:?}", lossy(&c.pieces_add_special.concat())),
            );
        }
    }
    assert!(
        failures.is_empty(),
        "{name}: mismatches with llama.cpp:\n{}",
        failures.join("\n")
    );
}

macro_rules! variants {
    ($($test:ident => $name:literal,)*) => {
        $(
            #[test]
            fn $test() {
                check_variant($name);
            }
        )*
    };
}

variants! {
    smollm2 => "smollm2",
    smollm2_as_llama_bpe => "smollm2-as-llama-bpe",
    smollm2_as_qwen2 => "smollm2-as-qwen2",
    smollm2_as_gpt2 => "smollm2-as-gpt-2",
    smollm2_as_default => "smollm2-as-default",
    smollm2_as_falcon => "smollm2-as-falcon",
    smollm2_as_starcoder => "smollm2-as-starcoder",
    smollm2_as_dbrx => "smollm2-as-dbrx",
    smollm2_as_gpt4o => "smollm2-as-gpt-4o",
    smollm2_without_pre => "smollm2-no-pre",
    smollm2_with_bos_eos => "smollm2-bos-eos",
    gemma3 => "gemma3",
    gemma3_space_prefix => "gemma3-space-prefix",
    gemma3_space_prefix_eos => "gemma3-space-prefix-eos",
}
