//! Writes the seed corpora: `cargo +nightly run --example seeds` (in fuzz/).
//!
//! The committed corpora are these seeds plus what fuzzing found, minimized
//! by coverage edges (hit counts ignored), which keeps them small:
//! `cargo +nightly fuzz cmin -a TARGET -- -use_counters=0 -detect_leaks=0`.
//! For gguf, where most inputs are whole models, only inputs up to 13 KB
//! and the seeds were offered to the minimization (592 KB, 6,681 of the
//! 7,109 edges the full 9 MB corpus reached).
//!
//! - `corpus/gguf/`: tiny models written with the project's `TinyModel`
//!   (dense, both MoE layouts, tied output, several weight types, small SPM
//!   and BPE vocabs), files
//!   with every metadata value type and every weight type, a v2 file,
//!   truncations of them at header, metadata and tensor-table boundaries,
//!   and a small MoE with huge hyper-parameters (`hostile-*`).
//! - `corpus/chat_template/`: every built-in and fixture template (mode 0
//!   and 2: with and without the generation prompt), and the fixture
//!   conversations of `tests/fixtures/chat/expected.json` (modes 1 and 3),
//!   and hostile templates at the bounds of `moe::chat::limits` (a value
//!   that holds itself, deep nesting, long expressions in the compact
//!   mode 4, huge indents, widths and outputs; `hostile-*`, kept in the
//!   committed corpus as they are).
//! - `corpus/tokenizer/`: the texts of `tests/fixtures/tokenizer/*.jsonl`,
//!   each with a mode byte cycling through the vocabs and flags, and their
//!   reference ids in the ids mode.
//! - `corpus/tokenizer_vocab/`: small vocabs with text: SentencePiece with
//!   byte tokens and a control token, nested and overlapping special tokens
//!   of both kinds, byte-level BPE with duplicate and unusable merges, and a
//!   vocab with duplicate and empty pieces.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use moe::gguf::{tensor_bytes, Array, GgufFile, GgufWriter, Value};
use moe::synth::{ExpertLayout, TinyModel, WeightTypes};
use moe_quant::QType;

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let gguf = root.join("corpus/gguf");
    let tok = root.join("corpus/tokenizer");
    fs::create_dir_all(&gguf).unwrap();
    fs::create_dir_all(&tok).unwrap();
    let n = gguf_seeds(&gguf);
    let m = tokenizer_seeds(&root.join("../tests/fixtures/tokenizer"), &tok);
    let chat = root.join("corpus/chat_template");
    fs::create_dir_all(&chat).unwrap();
    let c = chat_template_seeds(&root.join("../tests/fixtures/chat"), &chat) + hostile_template_seeds(&chat);
    let vocab = root.join("corpus/tokenizer_vocab");
    fs::create_dir_all(&vocab).unwrap();
    let v = tokenizer_vocab_seeds(&vocab);
    println!(
        "wrote {n} gguf seeds to {}, {m} tokenizer seeds to {}, {c} chat-template seeds to {}, {v} tokenizer-vocab seeds to {}",
        gguf.display(),
        tok.display(),
        chat.display(),
        vocab.display()
    );
}

fn write_seed(dir: &Path, name: &str, bytes: &[u8]) {
    fs::write(dir.join(format!("seed-{name}")), bytes).unwrap();
}

fn gguf_seeds(dir: &Path) -> usize {
    let tmp = std::env::temp_dir().join(format!("moe-seeds-{}.gguf", std::process::id()));
    let small = TinyModel {
        n_layer: 1,
        n_embd: 32,
        n_ff: 32,
        n_head: 2,
        n_head_kv: 1,
        n_expert: 2,
        n_expert_used: 1,
        n_vocab: 257,
        n_ctx: 64,
        ..TinyModel::default()
    };
    // Small vocabs make small models (a few KB), which mutate faster.
    let spm_vocab = std::env::temp_dir().join(format!("moe-seeds-spm-{}.gguf", std::process::id()));
    let bpe_vocab = std::env::temp_dir().join(format!("moe-seeds-bpe-{}.gguf", std::process::id()));
    small_vocab(&spm_vocab, "llama", &["<unk>", "<s>", "</s>", "\u{2581}", "a", "b", "\u{2581}a", "ab", "<0x0A>", "<mask>"], &[]);
    small_vocab(&bpe_vocab, "gpt2", &["<|endoftext|>", "a", "b", "ab", "\u{120}", "\u{120}a", "1", "<|im_start|>"], &["a b", "\u{120} a"]);
    let q = |t: QType| WeightTypes::uniform(t);
    let models = [
        ("moe-merged-q8_0", TinyModel { tied_output: true, ..small.clone() }),
        ("moe-per-expert-q4_0-spm-vocab", TinyModel {
            layout: ExpertLayout::PerExpert,
            tied_output: true,
            types: q(QType::Q4_0),
            tokenizer_from: Some(spm_vocab.clone()),
            ..small.clone()
        }),
        ("dense-q4_1", TinyModel { n_expert: 0, n_expert_used: 0, tied_output: true, types: q(QType::Q4_1), ..small.clone() }),
        ("dense-q5-mix-untied", TinyModel {
            n_expert: 0,
            n_expert_used: 0,
            types: WeightTypes { token_embd: QType::Q5_0, attn: QType::Q5_1, ffn_gate_up: QType::F16, ffn_down: QType::BF16, output: QType::Q8_0, router: QType::F32 },
            tokenizer_from: Some(bpe_vocab.clone()),
            ..small.clone()
        }),
    ];
    let models = models.into_iter().chain([
        ("dense-q4_0-spm-vocab", TinyModel {
            n_expert: 0,
            n_expert_used: 0,
            tied_output: true,
            types: q(QType::Q4_0),
            tokenizer_from: Some(spm_vocab.clone()),
            ..small.clone()
        }),
        ("moe-per-expert-q8_0-bpe-vocab", TinyModel {
            layout: ExpertLayout::PerExpert,
            tied_output: true,
            tokenizer_from: Some(bpe_vocab.clone()),
            ..small.clone()
        }),
        ("moe-merged-f16-untied-bpe-vocab", TinyModel {
            types: WeightTypes { router: QType::F16, ..q(QType::F16) },
            tokenizer_from: Some(bpe_vocab.clone()),
            ..small.clone()
        }),
    ]);
    let mut n = 0;
    for (name, m) in models {
        m.write(&tmp).unwrap();
        let bytes = fs::read(&tmp).unwrap();
        write_seed(dir, &format!("{name}.gguf"), &bytes);
        n += 1;
    }
    TinyModel { tied_output: true, types: q(QType::Q4_0), tokenizer_from: Some(spm_vocab.clone()), ..small.clone() }.write(&tmp).unwrap();
    n += hostile_seeds(dir, &tmp);

    // Every metadata value type, and one tensor of every weight type.
    let mut w = GgufWriter::new();
    let values = [
        Value::U8(1), Value::I8(-1), Value::U16(2), Value::I16(-2), Value::U32(3), Value::I32(-3), Value::F32(0.5),
        Value::Bool(true), Value::String("text".into()), Value::U64(4), Value::I64(-4), Value::F64(0.25),
    ];
    for v in &values {
        let t = v.value_type();
        w.add_kv(format!("test.{t:?}"), v.clone());
        w.add_kv(format!("test.array.{t:?}"), pair(v));
    }
    w.add_kv("test.array.empty", Array::from(Vec::<u32>::new()).into());
    w.add_kv("general.alignment", Value::U32(64));
    let types = [
        QType::F32, QType::F16, QType::BF16, QType::Q4_0, QType::Q4_1, QType::Q5_0, QType::Q5_1, QType::Q8_0,
        QType::Q2_K, QType::Q3_K, QType::Q4_K, QType::Q5_K, QType::Q6_K,
    ];
    for (i, &t) in types.iter().enumerate() {
        let dims: &[u64] = match i % 4 {
            0 => &[256],
            1 => &[256, 1],
            2 => &[256, 1, 1],
            _ => &[256, 1, 1, 1],
        };
        let len = tensor_bytes(t, dims).unwrap() as usize;
        // Bytes that vary, so scales are neither all zero nor all NaN.
        let data: Vec<u8> = (0..len).map(|j| (j * 37 + i) as u8).collect();
        w.add_tensor(&format!("t.{t}"), t, dims, data).unwrap();
    }
    w.write(&tmp).unwrap();
    let all = fs::read(&tmp).unwrap();
    write_seed(dir, "all-types.gguf", &all);
    let mut v2 = all.clone();
    v2[4] = 2;
    write_seed(dir, "all-types-v2.gguf", &v2);
    n += 2;
    // Truncations: magic, version, counts, inside the metadata and the
    // tensor table, just before the data section, one byte short.
    let infos = find(&all, b"t.F32").unwrap() - 8;
    for cut in [0, 3, 4, 8, 16, 23, 24, 40, infos / 2, infos, infos + 20, all.len() / 2, all.len() - 1] {
        write_seed(dir, &format!("all-types-cut-{cut}.gguf"), &all[..cut]);
        n += 1;
    }

    // The bare minimum: no metadata, no tensors.
    let w = GgufWriter::new();
    w.write(&tmp).unwrap();
    write_seed(dir, "empty.gguf", &fs::read(&tmp).unwrap());
    n += 1;
    for f in [&tmp, &spm_vocab, &bpe_vocab] {
        let _ = fs::remove_file(f);
    }
    n
}

/// The small MoE at `model` with one size key, or two whose product
/// overflows, set huge: values past each bound, and values that wrap onto
/// the model's real sizes (4 heads × (2^62 + 8) = 2^64 + 32 ≡ 32).
fn hostile_seeds(dir: &Path, model: &Path) -> usize {
    let f = GgufFile::open(model).unwrap();
    let u = Value::U64;
    let cases: [(&str, &[(&str, Value)]); 10] = [
        ("embd-u64max", &[("llama.embedding_length", u(u64::MAX))]),
        ("layers-u32max", &[("llama.block_count", Value::U32(u32::MAX))]),
        ("ff-2p32", &[("llama.feed_forward_length", u(1 << 32))]),
        ("heads-2p20-keylen-2p44", &[("llama.attention.head_count", u(1 << 20)), ("llama.attention.key_length", u(1 << 44))]),
        ("keylen-wraps-qdim", &[("llama.attention.head_count", u(4)), ("llama.attention.key_length", u((1 << 62) + 8))]),
        ("experts-u64max", &[("llama.expert_count", u(u64::MAX))]),
        ("vocab-u64max", &[("llama.vocab_size", u(u64::MAX))]),
        ("ctx-u64max", &[("llama.context_length", u(u64::MAX))]),
        ("ctx-2p30", &[("llama.context_length", u(1 << 30))]),
        ("ff-per-layer-u32max", &[("llama.feed_forward_length", Array::from(vec![u32::MAX]).into())]),
    ];
    let tmp = std::env::temp_dir().join(format!("moe-seeds-hostile-{}.gguf", std::process::id()));
    for (name, keys) in cases {
        let mut w = GgufWriter::new();
        for (k, v) in &f.metadata().map {
            w.add_kv(k.clone(), v.clone());
        }
        for (k, v) in keys {
            w.add_kv(*k, v.clone());
        }
        for t in f.tensors() {
            w.add_tensor(&t.name, t.qtype, &t.dims, f.tensor_bytes(t).to_vec()).unwrap();
        }
        w.write(&tmp).unwrap();
        write_seed(dir, &format!("hostile-{name}.gguf"), &fs::read(&tmp).unwrap());
    }
    let _ = fs::remove_file(&tmp);
    cases.len()
}

/// A vocab-only GGUF: `tokens` (ids in order; `<...>` ones are control,
/// `<mask>` user-defined, `<0xNN>` byte tokens), BOS/EOS = ids 1/2 (SPM) or
/// 0 (BPE), and `merges` for gpt2.
fn small_vocab(path: &Path, model: &str, tokens: &[&str], merges: &[&str]) {
    let strings = |v: &[&str]| Value::from(Array::from_strings(v));
    let types: Vec<i32> = tokens
        .iter()
        .map(|t| match *t {
            "<mask>" => 4,
            t if t.starts_with("<0x") => 6,
            "<unk>" => 2,
            t if t.starts_with('<') && t.len() > 1 => 3,
            _ => 1,
        })
        .collect();
    let mut w = GgufWriter::new();
    w.add_kv("tokenizer.ggml.model", Value::String(model.into()))
        .add_kv("tokenizer.ggml.tokens", strings(tokens))
        .add_kv("tokenizer.ggml.token_type", Array::from(types).into());
    if model == "gpt2" {
        w.add_kv("tokenizer.ggml.pre", Value::String("smollm".into()))
            .add_kv("tokenizer.ggml.merges", strings(merges))
            .add_kv("tokenizer.ggml.bos_token_id", Value::U32(0))
            .add_kv("tokenizer.ggml.eos_token_id", Value::U32(0));
    } else {
        let scores: Vec<f32> = (0..tokens.len()).map(|i| -(i as f32)).collect();
        w.add_kv("tokenizer.ggml.scores", Array::from(scores).into())
            .add_kv("tokenizer.ggml.bos_token_id", Value::U32(1))
            .add_kv("tokenizer.ggml.eos_token_id", Value::U32(2));
    }
    w.write(path).unwrap();
}

/// An array of two copies of the scalar `v`.
fn pair(v: &Value) -> Value {
    let a = match v.clone() {
        Value::U8(x) => Array::from(vec![x; 2]),
        Value::I8(x) => Array::from(vec![x; 2]),
        Value::U16(x) => Array::from(vec![x; 2]),
        Value::I16(x) => Array::from(vec![x; 2]),
        Value::U32(x) => Array::from(vec![x; 2]),
        Value::I32(x) => Array::from(vec![x; 2]),
        Value::F32(x) => Array::from(vec![x; 2]),
        Value::Bool(x) => Array::from(vec![x; 2]),
        Value::String(x) => Array::from_strings([&x, &x]),
        Value::U64(x) => Array::from(vec![x; 2]),
        Value::I64(x) => Array::from(vec![x; 2]),
        Value::F64(x) => Array::from(vec![x; 2]),
        Value::Array(_) => unreachable!("scalars only"),
    };
    a.into()
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn tokenizer_seeds(fixtures: &Path, dir: &Path) -> usize {
    let mut files: Vec<PathBuf> = fs::read_dir(fixtures).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    let mut texts = BTreeSet::new();
    let mut id_lists = BTreeSet::new();
    for f in files.iter().filter(|f| f.extension().is_some_and(|e| e == "jsonl")) {
        for line in fs::read_to_string(f).unwrap().lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            if let Some(t) = v["text"].as_str() {
                texts.insert(t.to_string());
            }
            if let Some(ids) = v["ids"].as_array() {
                id_lists.insert(ids.iter().map(|x| x.as_u64().unwrap() as u32).collect::<Vec<u32>>());
            }
        }
    }
    let n_vocabs = 1 + moe_fuzz::tokenizer::BPE_PRES.len() as u8;
    let mut n = 0;
    for (i, t) in texts.iter().enumerate() {
        // Vocab in the low nibble, flags (skip, add, parse) above it.
        let mode = (i as u8 % n_vocabs) | ((i as u8 / n_vocabs) % 8) << 4;
        let mut bytes = vec![mode & 0x7f];
        bytes.extend_from_slice(t.as_bytes());
        write_seed(dir, &format!("text-{i:04}"), &bytes);
        n += 1;
    }
    for (i, ids) in id_lists.iter().enumerate().step_by(8) {
        // SPM (Gemma) ids exceed our small SPM vocab; they wrap around it.
        let mut bytes = vec![0x80 | (i as u8 % n_vocabs) | (i as u8 & 1) << 4];
        for id in ids {
            bytes.extend_from_slice(&id.to_be_bytes()[1..]);
        }
        write_seed(dir, &format!("ids-{i:04}"), &bytes);
        n += 1;
    }
    n
}

fn chat_template_seeds(fixtures: &Path, dir: &Path) -> usize {
    let mut n = 0;
    let mut templates: Vec<(String, String)> =
        moe::chat::builtin::names().iter().map(|&name| (name.to_string(), moe::chat::builtin::by_name(name).unwrap().1.to_string())).collect();
    let mut files: Vec<PathBuf> = fs::read_dir(fixtures).unwrap().map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|e| e == "jinja")).collect();
    files.sort();
    for f in files {
        templates.push((format!("file-{}", f.file_stem().unwrap().to_string_lossy()), fs::read_to_string(&f).unwrap()));
    }
    for (name, text) in templates {
        for mode in [0u8, 2] {
            let mut bytes = vec![mode];
            bytes.extend_from_slice(text.as_bytes());
            write_seed(dir, &format!("template-{name}-{mode}"), &bytes);
            n += 1;
        }
    }
    let doc: serde_json::Value = serde_json::from_str(&fs::read_to_string(fixtures.join("expected.json")).unwrap()).unwrap();
    let mut seen = BTreeSet::new();
    for case in doc["cases"].as_array().unwrap() {
        let mut conv = Vec::new();
        for m in case["messages"].as_array().unwrap() {
            let (Some(role), Some(content)) = (m["role"].as_str(), m["content"].as_str()) else { continue };
            if !conv.is_empty() {
                conv.push(0);
            }
            conv.extend_from_slice(role.as_bytes());
            conv.push(0);
            conv.extend_from_slice(content.as_bytes());
        }
        if seen.insert(conv.clone()) {
            for mode in [1u8, 3] {
                let mut bytes = vec![mode];
                bytes.extend_from_slice(&conv);
                write_seed(dir, &format!("conversation-{}-{mode}", seen.len()), &bytes);
                n += 1;
            }
        }
    }
    n
}

/// Templates at the bounds of `moe::chat::limits`. Mode 0: the template as
/// it is; mode 4: `n_lo n_hi prefix \0 unit \0 suffix` (unit repeated n
/// times, see src/chat_template.rs).
fn hostile_template_seeds(dir: &Path) -> usize {
    let plain = [
        ("cycle", "{% set ns = namespace(a=1) %}{% set ns.x = [ns] %}{{ ns }}{{ ns ~ '' }}{{ ns | tojson }}"),
        ("view", "{% set ns = namespace(a=1) %}{% set ns.x = ns | chain({'b': 2}) %}{{ ns ~ '' }}"),
        ("loop-depth", "{% set ns = namespace(x=[]) %}{% for i in range(300) %}{% for j in range(1000) %}{% set ns.x = [ns.x] %}{% endfor %}{% endfor %}"),
        ("recursive-depth", "{% for x in [1] recursive %}{% if loop.depth < 300 %}{{ loop([[[[[[[[x]]]]]]]]) }}{% else %}{{ x ~ '' }}{{ x == x }}{% endif %}{% endfor %}"),
        ("indent", "{{ messages | tojson(indent=10**12) }}{{ messages | tojson(indent=64) }}"),
        ("width", "{{ '{:>999999999999}'.format(1) }}{{ '%999999999d' | format(1) }}"),
        ("output", "{% set s = 'x' * 10**7 %}{{ ([s] * 1000) | join }}{% for i in range(3000) %}{{ s }}{% endfor %}"),
        ("concat", "{% set s = 'x' * 10**7 %}{% set l = [s] * 1000 %}{{ 'a' ~ (l if true else 1) ~ 1 }}"),
        ("string-filter", "{% set s = 'x' * 10**7 %}{{ ([s] * 1000) | replace('a', 'b') | lower }}"),
        ("in-string", "{% set s = 'x' * 10**7 %}{{ ([s] * 1000) in 'abc' }}{{ 'abc'.startswith([s] * 1000) }}"),
        ("filter-block", "{% set s = 'x' * 10**7 %}{% filter upper %}{{ [s] * 1000 }}{% endfilter %}"),
        ("sort", "{% set s = 'x' * 10**6 %}{{ ([s] * 10**5) | sort | unique | length }}"),
    ];
    let repeated = [
        ("brackets", 50_000u16, "{{ ", "[", "1 }}"),
        ("plus", 30_000, "{{ 1", "+1", " }}"),
        ("not", 20_000, "{{ ", "not ", "1 }}"),
        ("sets", 5_000, "{% set a = 1 %}", "{% set a = [a] %}", "{{ a ~ '' }}"),
        ("source", 65_535, "{# ", "xxxxxxxx", " #}"),
    ];
    for (name, text) in plain {
        write_hostile(dir, name, &[&[0], text.as_bytes()].concat());
    }
    for (name, n, prefix, unit, suffix) in repeated {
        write_hostile(dir, name, &[&[4][..], &n.to_le_bytes(), prefix.as_bytes(), &[0], unit.as_bytes(), &[0], suffix.as_bytes()].concat());
    }
    plain.len() + repeated.len()
}

fn write_hostile(dir: &Path, name: &str, bytes: &[u8]) {
    fs::write(dir.join(format!("hostile-{name}")), bytes).unwrap();
}

/// Inputs of the tokenizer_vocab target (fuzz/src/tokenizer_vocab.rs): a
/// flags byte, the text, then one field per token or merge, 0x00 between.
fn tokenizer_vocab_seeds(dir: &Path) -> usize {
    const NORMAL: u8 = 1;
    const UNKNOWN: u8 = 2;
    const CONTROL: u8 = 3;
    const USER_DEFINED: u8 = 4;
    const BYTE: u8 = 6;
    const MERGE: u8 = 0x80;
    let field = |kind: u8, text: &str| [&[kind][..], text.as_bytes()].concat();
    let seed = |flags: u8, text: &str, fields: &[Vec<u8>]| {
        let mut data = [&[flags][..], text.as_bytes()].concat();
        for f in fields {
            data.push(0);
            data.extend_from_slice(f);
        }
        data
    };
    let mut spm = vec![field(UNKNOWN, "<unk>"), field(CONTROL, "<s>"), field(CONTROL, "</s>")];
    spm.extend((0..=255u8).map(|b| field(BYTE, &format!("<0x{b:02X}>"))));
    let with = |extra: &[Vec<u8>]| [spm.clone(), extra.to_vec()].concat();
    // Scores in bits 3-6 of the kind byte.
    let words = with(&[
        field(CONTROL, "<|x|>"),
        field(NORMAL | 8, "he"),
        field(NORMAL | 16, "ll"),
        field(NORMAL | 24, "hell"),
        field(NORMAL, "o"),
        field(NORMAL, "\u{2581}world"),
    ]);
    let nested = with(&[
        field(CONTROL, "ab"),
        field(USER_DEFINED, "abc"),
        field(CONTROL, "bca"),
        field(USER_DEFINED, "a"),
        field(USER_DEFINED, "cab"),
    ]);
    let mut bpe: Vec<Vec<u8>> = "helowrd\u{120}".chars().map(|c| field(NORMAL, &c.to_string())).collect();
    bpe.extend([field(NORMAL, "he"), field(NORMAL, "ll"), field(NORMAL, "hell"), field(USER_DEFINED, "<mask>"), field(CONTROL, "<|end|>")]);
    bpe.extend(["h e", "l l", "he ll", "h e", "x yz"].map(|m| field(MERGE, m)));
    let seeds = [
        ("spm-control", seed(0b0110, "hello<|x|>world <|x|>", &words)),
        ("spm-nested-parsed", seed(0b0010, "abcabca  bca abc", &nested)),
        ("spm-nested", seed(0b0000, "abcabca  bca abc", &nested)),
        ("bpe-merges", seed(0b0001_0011, "hello world<mask><|end|>", &bpe)),
        ("duplicate-and-empty", seed(0, "aa", &[field(NORMAL, "a"), field(NORMAL, ""), field(NORMAL, "a")])),
    ];
    for (name, bytes) in &seeds {
        write_seed(dir, name, bytes);
    }
    seeds.len()
}
