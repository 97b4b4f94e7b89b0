//! Helpers shared by the integration tests: where the reference assets are,
//! and readers for llama.cpp's reference dumps.
#![allow(dead_code)]

pub mod http;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `../shared`, which holds the llama.cpp-made tiny MoE models and
/// llama.cpp's outputs for them. It sits beside our own checkouts only; a
/// user's clone has none. What a test needs and is small is committed in
/// `tests/fixtures/reference` or fetched (`scripts/fetch-model.sh`); the
/// tests that truly need the shared models skip without them, each leaving
/// a mark that `scripts/test.sh` counts into one `skipped:` line, unless
/// `CI` or `MOE_REQUIRE_SHARED=1` is set: then a missing folder fails them.
pub fn shared_dir() -> PathBuf {
    repo_root().join("../shared")
}

/// Whether a missing `../shared` fails the tests instead of skipping them.
pub fn shared_required() -> bool {
    let set = |k: &str| std::env::var(k).map(|v| !matches!(v.as_str(), "" | "0" | "false")).unwrap_or(false);
    set("CI") || set("MOE_REQUIRE_SHARED")
}

/// `../shared/models/NAME`, or `None` (after recording the skip) when
/// `../shared/models` is absent and not required. A test that gets `None`
/// returns at once.
pub fn shared_model_or_skip(name: &str) -> Option<PathBuf> {
    shared_or_skip("models", name)
}

/// `../shared/models` itself, as for [`shared_model_or_skip`].
pub fn shared_models_dir_or_skip() -> Option<PathBuf> {
    shared_or_skip("models", "")
}

/// `../shared/reference/NAME` as for [`shared_model_or_skip`].
pub fn shared_reference_or_skip(name: &str) -> Option<PathBuf> {
    shared_or_skip("reference", name)
}

fn shared_or_skip(sub: &str, name: &str) -> Option<PathBuf> {
    let dir = shared_dir().join(sub);
    if dir.is_dir() {
        let path = dir.join(name);
        assert!(path.exists(), "{} is missing from {}", name, dir.display());
        return Some(path);
    }
    assert!(
        !shared_required(),
        "\n\n*** {} is missing, and CI or MOE_REQUIRE_SHARED=1 requires it: the llama.cpp-made \
         reference models and outputs live there (needed: {name}). ***\n",
        dir.display()
    );
    record_skip(if name.is_empty() { sub } else { name });
    None
}

/// Leaves `target/shared-skips/BINARY.TEST` (scripts/test.sh counts them)
/// and says on stderr which test skipped for want of what.
fn record_skip(needed: &str) {
    let exe = std::env::current_exe().ok();
    let stem = exe.as_ref().and_then(|p| p.file_stem()).map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let binary = stem.rsplit_once('-').map_or(stem.as_str(), |(b, _)| b).to_string();
    let test = std::thread::current().name().unwrap_or("main").replace("::", "-");
    let dir = repo_root().join("target/shared-skips");
    let _ = std::fs::create_dir_all(&dir);
    let _ = std::fs::write(dir.join(format!("{binary}.{test}")), needed);
    eprintln!("skipped: ../shared/models absent ({binary}::{test} needs {needed})");
}

/// A llama.cpp reference output: the committed copy in
/// `tests/fixtures/reference` (SmolLM2's), else `../shared/reference`
/// (`None` after recording a skip when that is absent and not required).
pub fn reference_or_skip(name: &str) -> Option<PathBuf> {
    let committed = repo_root().join("tests/fixtures/reference").join(name);
    if committed.exists() {
        return Some(committed);
    }
    shared_reference_or_skip(name)
}

/// A committed reference output (SmolLM2's; no skip: it is in the tree).
pub fn reference(name: &str) -> PathBuf {
    let path = repo_root().join("tests/fixtures/reference").join(name);
    assert!(path.exists(), "{} is missing", path.display());
    path
}

/// A path for a model a test writes, under target/test-models/. Tests that
/// run in parallel must use distinct names.
pub fn test_model_path(name: &str) -> PathBuf {
    let dir = repo_root().join("target/test-models");
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    dir.join(name)
}

static FETCH: Mutex<()> = Mutex::new(());

/// A real test asset in models/, fetched (once, cached, checksummed) by
/// `scripts/fetch-model.sh ASSET` if it is not there yet.
pub fn fetched(asset: &str, file: &str) -> PathBuf {
    let _guard = FETCH.lock().unwrap_or_else(|e| e.into_inner());
    let path = repo_root().join("models").join(file);
    if !path.exists() {
        let status = Command::new("bash")
            .arg(repo_root().join("scripts/fetch-model.sh"))
            .arg(asset)
            .stdout(std::process::Stdio::null())
            .status()
            .expect("running scripts/fetch-model.sh");
        assert!(status.success(), "scripts/fetch-model.sh {asset} failed: cannot get {file}");
    }
    path
}

/// The real test model, SmolLM2-135M-Instruct Q4_1.
pub fn smollm2() -> PathBuf {
    fetched("smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")
}

/// Gemma 3's SentencePiece vocab (vocab-only GGUF; the same bytes as
/// `../shared/models/gemma3-vocab-spm.gguf`).
pub fn gemma3_vocab() -> PathBuf {
    fetched("gemma3-vocab", "gemma3-vocab-spm.gguf")
}

pub fn read_i32s(path: &Path) -> Vec<i32> {
    let b = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    b.chunks_exact(4).map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

pub fn read_f32s(path: &Path) -> Vec<f32> {
    let b = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    b.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

/// A reference case's JSON (its text fields may hold invalid UTF-8, so it
/// is read lossily).
pub fn read_json(path: &Path) -> serde_json::Value {
    let b = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&String::from_utf8_lossy(&b)).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub fn argmax(x: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in x.iter().enumerate() {
        if v > x[best] {
            best = i;
        }
    }
    best
}

/// Runs a reference case's prompt (`{case}.france{suffix}.*` in the shared
/// references) with a KV cache of `kv`, compares the logits at every
/// position with llama.cpp's (argmax equal, max |Δ| ≤ `max_abs`) and
/// returns the largest |Δlogit|.
#[allow(dead_code)]
pub fn check_reference_logits(model_path: &Path, case: &str, suffix: &str, kv: moe::model::KvType, max_abs: f32) -> f32 {
    let file = |ext: &str| reference_or_skip(&format!("{case}.france{suffix}.{ext}")).expect("the model exists, so does its reference");
    let tokens = read_i32s(&file("tokens.i32"));
    let want = read_f32s(&file("logits.f32"));
    let model = moe::model::Model::open(model_path).unwrap_or_else(|e| panic!("{e}"));
    let n_vocab = model.config().n_vocab;
    assert_eq!(want.len(), tokens.len() * n_vocab, "{case}: reference size");
    let mut session = model.session_with_kv(tokens.len(), kv).unwrap();
    let prompt: Vec<u32> = tokens.iter().map(|&t| t as u32).collect();
    let mut worst = 0.0f32;
    session
        .prefill(&prompt, |pos, got| {
            let want = &want[pos * n_vocab..(pos + 1) * n_vocab];
            let gap = got.iter().zip(want).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
            worst = worst.max(gap);
            assert_eq!(argmax(got), argmax(want), "{case}: argmax differs at position {pos} (max |Δ| {gap})");
        })
        .unwrap();
    eprintln!("{case} ({kv:?} KV): {} positions, max |Δlogit| = {worst:e} (limit {max_abs})", tokens.len());
    assert!(worst <= max_abs, "{case}: max |Δlogit| {worst} exceeds {max_abs}");
    worst
}

/// The K-quant mix of llama.cpp's Q4_K_M for 8 experts, per weight class:
/// Q4_K embeddings, gate and up; Q8_0 attention; Q6_K down and output; F32
/// router.
pub fn kquant_types() -> moe::synth::WeightTypes {
    use moe_quant::QType;
    moe::synth::WeightTypes {
        token_embd: QType::Q4_K,
        attn: QType::Q8_0,
        ffn_gate_up: QType::Q4_K,
        ffn_down: QType::Q6_K,
        output: QType::Q6_K,
        router: QType::F32,
    }
}

/// A tiny Mixtral in a K-quant mix like llama.cpp's Q4_K_M for 8 experts
/// (Q4_K embeddings, gate and up; Q8_0 attention; Q6_K down and output; F32
/// norms and router), 2 layers, n_embd 256, ff 512, 8 experts top-2, with
/// SmolLM2's tokenizer: the shape of the shared tiny-moe8x2-n256-q4_k_m,
/// written by the project's own writer, so it exists on every clone.
/// Written once per test binary into target/test-models/.
pub fn kquant_moe() -> PathBuf {
    static PATH: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    PATH.get_or_init(|| {
        use moe::synth::TinyModel;
        let exe = std::env::current_exe().unwrap();
        let binary = exe.file_stem().unwrap().to_string_lossy().into_owned();
        let path = test_model_path(&format!("{binary}-kquant-moe8x2-n256.gguf"));
        TinyModel {
            n_embd: 256,
            n_ff: 512,
            n_expert: 8,
            types: kquant_types(),
            seed: 8,
            tokenizer_from: Some(smollm2()),
            ..TinyModel::default()
        }
        .write(&path)
        .unwrap_or_else(|e| panic!("{e}"));
        path
    })
    .clone()
}

/// SmolLM2 upcycled to 8 experts top-2 with routers fitted to the built-in
/// corpus (`moe upcycle`'s default): a small MoE whose routing follows real
/// text. Built once into target/test-models/ and reused by later test runs
/// (written to a temporary name and renamed, so a half-written file is never
/// used).
pub fn fitted_smollm2() -> PathBuf {
    static BUILD: Mutex<()> = Mutex::new(());
    let _guard = BUILD.lock().unwrap_or_else(|e| e.into_inner());
    let path = test_model_path("smollm2-8x2-fit.gguf");
    if !path.exists() {
        let dense = smollm2();
        let fitted = moe::synth::fit_routers(&dense, 8, &moe::synth::FitOptions::default()).expect("fitting routers");
        let tmp = path.with_extension(format!("partial{}", std::process::id()));
        moe::synth::upcycle(&dense, &tmp, 8, 2, moe::synth::ExpertLayout::Merged, moe::synth::Router::Fitted(std::sync::Arc::new(fitted)))
            .expect("upcycling");
        std::fs::rename(&tmp, &path).expect("renaming the fitted model");
    }
    path
}

/// Runs the `moe` binary with `args`, `stdin` piped in; waits for it.
pub fn moe_with_stdin(args: &[&str], stdin: &str) -> std::process::Output {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = Command::new(env!("CARGO_BIN_EXE_moe"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running moe");
    child.stdin.take().expect("piped stdin").write_all(stdin.as_bytes()).expect("writing moe's stdin");
    child.wait_with_output().expect("waiting for moe")
}
