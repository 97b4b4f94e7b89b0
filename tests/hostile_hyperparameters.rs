//! Hostile hyper-parameters: a tiny model with one size key (or two whose
//! product overflows) set huge. `Model::open`, `moe inspect FILE [--json]`
//! and `moe run -m FILE -p hi -n 1` must each end with an error naming the
//! file and the key, or succeed; never a panic, a signal or a hang.
//!
//! Debug builds (this profile has overflow checks) panic on overflow and
//! release builds wrap silently; only explicit checks of every key
//! (`config::limits`) and of every product derived from them handle both.
//! Some values are chosen to wrap onto the file's real sizes in a release
//! build: `key_length = 2^62 + 16` with 4 heads gives Q width 2^64 + 64,
//! which wraps to the 64 the tensors have.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::test_model_path;
use moe::arch::Arch;
use moe::gguf::{Array, GgufFile, GgufWriter, Value};
use moe::model::Model;
use moe::synth::TinyModel;

/// How long one `moe` command may take (they take well under a second).
const CHILD_LIMIT: Duration = Duration::from_secs(60);

/// Keys to set, with their values.
type Keys = Vec<(&'static str, Value)>;

/// Copies `src` to `dst` with `keys` set.
fn with_keys(src: &Path, dst: &Path, keys: &Keys) {
    let f = GgufFile::open(src).unwrap();
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
    w.write(dst).unwrap();
}

fn base(arch: Arch) -> PathBuf {
    let p = test_model_path(&format!("hostile-base-{arch}.gguf"));
    TinyModel { arch, n_ff_exp: 96, n_ff_shexp: 160, seed: 3, ..Default::default() }.write(&p).unwrap();
    p
}

/// What a case must end with.
#[derive(Clone, Copy)]
enum Expect<'a> {
    /// An error whose message names the file and this key.
    ErrorNaming(&'a str),
    /// Success (the value is large but within its bound).
    Success,
}

struct Outcome {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs `moe args`, killed after [`CHILD_LIMIT`]; output goes to files so
/// that a full pipe can never block it.
fn moe(args: &[&str], tag: &str) -> Outcome {
    let out_path = test_model_path(&format!("hostile-{tag}.stdout"));
    let err_path = test_model_path(&format!("hostile-{tag}.stderr"));
    let mut child = Command::new(env!("CARGO_BIN_EXE_moe"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .expect("running moe");
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > CHILD_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("moe {args:?} ran past {CHILD_LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let read = |p: &Path| String::from_utf8_lossy(&std::fs::read(p).unwrap()).into_owned();
    Outcome { code: status.code(), stdout: read(&out_path), stderr: read(&err_path) }
}

/// Checks `Model::open` and the three commands on `path`; returns what
/// went wrong, if anything.
fn check(path: &Path, expect: Expect, tag: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let file = path.to_str().unwrap();
    let names = |msg: &str, key: &str| msg.contains(file) && msg.contains(key);
    let opened = std::panic::catch_unwind(|| Model::open(path).map(drop));
    match (opened, expect) {
        (Err(_), _) => problems.push("Model::open panicked".into()),
        (Ok(Ok(())), Expect::Success) => {}
        (Ok(Err(e)), Expect::ErrorNaming(key)) if names(&e.to_string(), key) => {}
        (Ok(r), _) => problems.push(format!("Model::open: {:?}", r.map_err(|e| e.to_string()))),
    }
    let commands: [(&str, &[&str]); 3] =
        [("inspect", &["inspect", file]), ("inspect-json", &["inspect", file, "--json"]), ("run", &["run", "-m", file, "-p", "hi", "-n", "1", "-t", "1"])];
    for (name, args) in commands {
        let o = moe(args, &format!("{tag}-{name}"));
        let ok = match (o.code, expect) {
            _ if o.stderr.contains("panicked") => false,
            (Some(0), Expect::Success) => !o.stdout.is_empty() || name == "run",
            (Some(1 | 2), Expect::ErrorNaming(key)) => names(&o.stderr, key),
            _ => false,
        };
        if !ok {
            problems.push(format!("moe {args:?}: exit {:?}\nstderr: {}", o.code, o.stderr.trim()));
        }
    }
    problems
}

#[test]
fn huge_size_keys_are_errors_naming_the_file_and_the_key() {
    const HUGE_U64: [u64; 4] = [u32::MAX as u64, u64::MAX, 1 << 32, (1 << 32) + 64];
    let llama = base(Arch::Llama);
    let qwen2moe = base(Arch::Qwen2Moe);
    // (base, keys to set, the key the error must name).
    let mut cases: Vec<(&PathBuf, Keys, Expect)> = Vec::new();
    let one = |key: &'static str, v: Value| vec![(key, v)];
    let sizes = [
        (&llama, "llama.embedding_length"),
        (&llama, "llama.block_count"),
        (&llama, "llama.feed_forward_length"),
        (&llama, "llama.attention.head_count"),
        (&llama, "llama.attention.head_count_kv"),
        (&llama, "llama.attention.key_length"),
        (&llama, "llama.attention.value_length"),
        (&llama, "llama.rope.dimension_count"),
        (&llama, "llama.expert_count"),
        (&llama, "llama.expert_used_count"),
        (&llama, "llama.vocab_size"),
        (&llama, "llama.context_length"),
        (&qwen2moe, "qwen2moe.expert_feed_forward_length"),
        (&qwen2moe, "qwen2moe.expert_shared_feed_forward_length"),
    ];
    for (b, key) in sizes {
        cases.push((b, one(key, Value::U32(u32::MAX)), Expect::ErrorNaming(key)));
        for v in HUGE_U64 {
            cases.push((b, one(key, Value::U64(v)), Expect::ErrorNaming(key)));
        }
        cases.push((b, one(key, Value::I64(-1)), Expect::ErrorNaming(key)));
    }
    // Per-layer arrays of a huge width.
    for key in ["llama.feed_forward_length", "llama.attention.head_count"] {
        cases.push((&llama, one(key, Array::from(vec![u32::MAX; 2]).into()), Expect::ErrorNaming(key)));
        cases.push((&llama, one(key, Array::from(vec![u64::MAX, 4]).into()), Expect::ErrorNaming(key)));
    }
    // Products: each factor within or past its bound, the product past
    // u64 or wrapping onto the file's real Q width (4 heads × 16 = 64).
    let pair = |a: (&'static str, u64), b: (&'static str, u64)| vec![(a.0, Value::U64(a.1)), (b.0, Value::U64(b.1))];
    let (heads, head_size) = ("llama.attention.head_count", "llama.attention.key_length");
    cases.push((&llama, pair((heads, 1 << 20), (head_size, 1 << 44)), Expect::ErrorNaming(heads)));
    cases.push((&llama, pair((heads, 1 << 16), (head_size, 4096)), Expect::ErrorNaming(heads)));
    cases.push((&llama, pair((heads, 4), (head_size, (1 << 62) + 16)), Expect::ErrorNaming(head_size)));
    cases.push((&llama, pair(("llama.block_count", 1 << 62), ("llama.context_length", 1 << 40)), Expect::ErrorNaming("llama.block_count")));
    // Large but within bounds: the model still loads and runs.
    cases.push((&llama, one("llama.context_length", Value::U64(1 << 30)), Expect::Success));
    cases.push((&llama, one("llama.vocab_size", Value::U64(260)), Expect::Success));

    let mut failures = Vec::new();
    for (i, (b, keys, expect)) in cases.iter().enumerate() {
        let p = test_model_path(&format!("hostile-{i}.gguf"));
        with_keys(b, &p, keys);
        let problems = check(&p, *expect, &i.to_string());
        if !problems.is_empty() {
            failures.push(format!("case {i} {keys:?}:\n  {}", problems.join("\n  ")));
        }
        let _ = std::fs::remove_file(&p);
    }
    assert!(failures.is_empty(), "{} of {} cases failed:\n{}", failures.len(), cases.len(), failures.join("\n"));
}
