//! `moe serve` over real HTTP on 127.0.0.1 (SmolLM2): greedy answers equal
//! `moe run`'s of the same prompt, streamed or not; the OpenAI error
//! objects; a client that leaves mid-stream frees its slot; concurrent
//! requests get what each would get alone.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::http::request_to;
use serde_json::{json, Value};

struct Server {
    child: Child,
    addr: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(extra: &[&str]) -> Server {
    start_on(&common::smollm2(), extra)
}

fn start_on(model: &std::path::Path, extra: &[&str]) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_moe"))
        .args(["serve", "-q", "-m", model.to_str().unwrap(), "--port", "0", "-c", "2048"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting moe serve");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let addr = line.trim().strip_prefix("listening on http://").unwrap_or_else(|| panic!("{line:?}")).to_string();
    let server = Server { child, addr };
    let t0 = Instant::now();
    while request(&server, "GET", "/health", None, &[]).0 != 200 {
        assert!(t0.elapsed() < Duration::from_secs(60), "the model did not load");
        std::thread::sleep(Duration::from_millis(50));
    }
    server
}

/// One HTTP/1.1 request; the status and the body.
fn request(s: &Server, method: &str, path: &str, body: Option<&str>, headers: &[&str]) -> (u16, String) {
    request_to(&s.addr, method, path, body, headers)
}

/// Sends a POST of `body` to `path` and returns the connection unread (for
/// tests that read the answer piece by piece, or leave).
fn send_raw(addr: &str, path: &str, body: &str) -> TcpStream {
    let mut stream = TcpStream::connect(addr).unwrap();
    write!(stream, "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}", body.len()).unwrap();
    stream
}

fn post(s: &Server, path: &str, body: &Value) -> (u16, Value) {
    let (status, text) = request(s, "POST", path, Some(&body.to_string()), &[]);
    (status, serde_json::from_str(&text).unwrap_or_else(|e| panic!("{text:?}: {e}")))
}

/// `moe run`'s greedy text for a prompt (`--chat`: as a user message).
fn moe_run(prompt: &str, n: usize, chat: bool) -> String {
    moe_run_with(prompt, n, chat, &[])
}

fn moe_run_with(prompt: &str, n: usize, chat: bool, extra: &[&str]) -> String {
    moe_run_on(&common::smollm2(), prompt, n, chat, extra)
}

fn moe_run_on(model: &std::path::Path, prompt: &str, n: usize, chat: bool, extra: &[&str]) -> String {
    let n = n.to_string();
    let mut args = vec!["run", "-q", "-m", model.to_str().unwrap(), "-p", prompt, "--temp", "0", "-n", &n, "--no-display-prompt"];
    args.extend_from_slice(extra);
    if chat {
        args.push("--chat");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_moe")).args(&args).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // `run` ends its output with a newline.
    let text = String::from_utf8(out.stdout).unwrap();
    text.strip_suffix('\n').unwrap_or(&text).to_string()
}

/// Greedy SmolLM2 answers it in more than 16 tokens, so a 16-token answer
/// ends by length.
const QUESTION: &str = "Why is the sky blue?";

fn chat_body(n: usize, stream: bool) -> Value {
    json!({"messages": [{"role": "user", "content": QUESTION}], "temperature": 0, "max_tokens": n, "stream": stream, "stream_options": {"include_usage": stream}})
}

/// The data lines of an SSE body.
fn events(body: &str) -> Vec<String> {
    body.lines().filter_map(|l| l.strip_prefix("data: ")).map(String::from).collect()
}

#[test]
fn answers_equal_moe_run_streamed_or_not() {
    let s = start(&["--parallel", "2"]);
    let (status, models) = request(&s, "GET", "/v1/models", None, &[]);
    assert_eq!(status, 200);
    let id = serde_json::from_str::<Value>(&models).unwrap()["data"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(id, "SmolLM2-135M-Instruct.Q4_1");

    let want = moe_run(QUESTION, 16, true);
    let (status, r) = post(&s, "/v1/chat/completions", &chat_body(16, false));
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["choices"][0]["message"]["content"], want.as_str());
    assert_eq!(r["choices"][0]["finish_reason"], "length");
    assert_eq!(r["usage"]["completion_tokens"], 16);
    assert_eq!(r["object"], "chat.completion");

    let (status, body) = request(&s, "POST", "/v1/chat/completions", Some(&chat_body(16, true).to_string()), &[]);
    assert_eq!(status, 200);
    let ev = events(&body);
    assert_eq!(ev.last().map(String::as_str), Some("[DONE]"), "{body}");
    let chunks: Vec<Value> = ev[..ev.len() - 1].iter().map(|e| serde_json::from_str(e).unwrap()).collect();
    let text: String = chunks.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect();
    assert_eq!(text, want);
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    assert_eq!(chunks[chunks.len() - 2]["choices"][0]["finish_reason"], "length");
    let usage = &chunks[chunks.len() - 1];
    assert_eq!((usage["choices"].as_array().map(Vec::len), &usage["usage"]["completion_tokens"]), (Some(0), &json!(16)));
    // The second request found the first's prompt in a slot's KV cache.
    assert!(usage["usage"]["prompt_tokens_details"]["cached_tokens"].as_u64().unwrap() > 0, "{usage}");

    let prompt = "Once upon a time";
    let (status, r) = post(&s, "/v1/completions", &json!({"prompt": prompt, "temperature": 0, "max_tokens": 12}));
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["choices"][0]["text"], moe_run(prompt, 12, false).as_str());

    // Presence and frequency penalties, as llama.cpp's sampler applies them.
    let mut body = chat_body(16, false);
    body["presence_penalty"] = json!(1.5);
    body["frequency_penalty"] = json!(0.5);
    let (status, r) = post(&s, "/v1/chat/completions", &body);
    assert_eq!(status, 200, "{r}");
    let penalised = moe_run_with(QUESTION, 16, true, &["--presence-penalty", "1.5", "--frequency-penalty", "0.5"]);
    assert_eq!(r["choices"][0]["message"]["content"], penalised.as_str());
    assert_ne!(penalised, want, "the penalties change the greedy answer");

    // Concurrent requests: each gets what it gets alone.
    let threads: Vec<_> = (0..3)
        .map(|_| {
            let addr = s.addr.clone();
            std::thread::spawn(move || {
                let s = Server { child: Command::new("true").spawn().unwrap(), addr };
                post(&s, "/v1/chat/completions", &chat_body(16, false)).1["choices"][0]["message"]["content"].as_str().unwrap().to_string()
            })
        })
        .collect();
    for t in threads {
        assert_eq!(t.join().unwrap(), want);
    }
    let (_, metrics) = request(&s, "GET", "/metrics", None, &[]);
    assert!(metrics.contains("moe_requests_total 7"), "{metrics}");
}

#[test]
fn refusals_are_openai_error_objects() {
    let s = start(&["--api-key", "sekret"]);
    let auth = ["Authorization: Bearer sekret"];
    let call = |body: &str| {
        let (status, text) = request(&s, "POST", "/v1/chat/completions", Some(body), &auth);
        (status, serde_json::from_str::<Value>(&text).unwrap_or_else(|e| panic!("{text}: {e}")))
    };
    let (status, e) = {
        let (status, text) = request(&s, "POST", "/v1/chat/completions", Some(&chat_body(4, false).to_string()), &[]);
        (status, serde_json::from_str::<Value>(&text).unwrap())
    };
    assert_eq!((status, e["error"]["type"].as_str()), (401, Some("authentication_error")));
    assert_eq!(request(&s, "GET", "/health", None, &[]).0, 200, "health needs no key");
    let cases = [
        ("{not json", 400, None),
        (r#"{"messages": [{"role": "user", "content": "x"}], "functions": []}"#, 400, Some("functions")),
        (r#"{"messages": [{"role": "user", "content": "x"}], "max_tokens": "many"}"#, 400, Some("max_tokens")),
        (r#"{"messages": "hi"}"#, 400, Some("messages")),
        (r#"{"model": "gpt-4", "messages": [{"role": "user", "content": "x"}]}"#, 404, Some("model")),
    ];
    for (body, want_status, param) in cases {
        let (status, e) = call(body);
        assert_eq!(status, want_status, "{body}: {e}");
        assert!(e["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}: {e}");
        assert_eq!(e["error"]["param"].as_str(), param, "{body}: {e}");
    }
    // A prompt longer than a slot's context.
    let long = "word ".repeat(3000);
    let (status, e) = call(&json!({"messages": [{"role": "user", "content": long}]}).to_string());
    assert_eq!((status, e["error"]["code"].as_str()), (400, Some("context_length_exceeded")), "{e}");
    assert_eq!(request(&s, "GET", "/nothing/here", None, &auth).0, 404);
}

#[test]
fn a_client_that_leaves_frees_its_slot() {
    let s = start(&["--parallel", "1"]);
    let body = json!({"messages": [{"role": "user", "content": "Tell me a very long story."}], "max_tokens": 1500, "stream": true, "ignore_eos": true}).to_string();
    let mut stream = send_raw(&s.addr, "/v1/chat/completions", &body);
    let mut first = [0u8; 512];
    let _ = stream.read(&mut first).unwrap();
    drop(stream);
    // The only slot is free again: the next request is answered at once.
    let t0 = Instant::now();
    let (status, r) = post(&s, "/v1/chat/completions", &chat_body(4, false));
    assert_eq!(status, 200, "{r}");
    assert!(t0.elapsed() < Duration::from_secs(20), "the slot stayed busy for {:?}", t0.elapsed());
    let (_, metrics) = request(&s, "GET", "/metrics", None, &[]);
    assert!(metrics.contains("moe_requests_cancelled_total 1"), "{metrics}");
    // The same for a client waiting for a whole (not streamed) answer.
    let body = json!({"prompt": "Once", "max_tokens": 1500, "ignore_eos": true}).to_string();
    let stream = send_raw(&s.addr, "/v1/completions", &body);
    std::thread::sleep(Duration::from_millis(500));
    drop(stream);
    let t0 = Instant::now();
    let (status, r) = post(&s, "/v1/chat/completions", &chat_body(4, false));
    assert_eq!(status, 200, "{r}");
    assert!(t0.elapsed() < Duration::from_secs(20), "the slot stayed busy for {:?}", t0.elapsed());
    let (_, metrics) = request(&s, "GET", "/metrics", None, &[]);
    assert!(metrics.contains("moe_requests_cancelled_total 2"), "{metrics}");
}

/// `--max-connections`: past the cap a connection gets a 503 and is
/// closed; `--timeout`: a client that sends no headers is dropped.
#[test]
fn connections_are_capped_and_slow_clients_dropped() {
    let s = start(&["--max-connections", "2", "--timeout", "1"]);
    let idle: Vec<TcpStream> = (0..2).map(|_| TcpStream::connect(&s.addr).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(200));
    let mut third = TcpStream::connect(&s.addr).unwrap();
    third.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut reply = String::new();
    third.read_to_string(&mut reply).unwrap();
    assert!(reply.starts_with("HTTP/1.1 503") && reply.contains("too_many_connections"), "{reply}");
    // The idle ones are closed after the timeout, and the server serves again.
    for mut c in idle {
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let t0 = Instant::now();
        let mut buf = Vec::new();
        let _ = c.read_to_end(&mut buf);
        assert!(t0.elapsed() < Duration::from_secs(8), "an idle connection stayed open {:?}", t0.elapsed());
    }
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(request(&s, "GET", "/health", None, &[]).0, 200);
}

/// A Python virtual environment with the `openai` package (from PyPI),
/// made once under the test build's scratch folder; `None` (the test then
/// skips, or fails in CI) where Python or PyPI cannot be had.
fn openai_python() -> Option<std::path::PathBuf> {
    let venv = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("openai-venv");
    let python = venv.join("bin/python");
    let ready = |p: &std::path::Path| Command::new(p).args(["-c", "import openai"]).stderr(Stdio::null()).status().is_ok_and(|s| s.success());
    if ready(&python) {
        return Some(python);
    }
    let made = Command::new("python3").args(["-m", "venv"]).arg(&venv).status().is_ok_and(|s| s.success())
        && Command::new(venv.join("bin/pip")).args(["install", "-q", "openai>=1.40,<4"]).status().is_ok_and(|s| s.success());
    if made && ready(&python) {
        return Some(python);
    }
    assert!(!common::shared_required(), "CI: could not install the openai package into {}", venv.display());
    eprintln!("skipping: no Python with the openai package (python3 -m venv, pip install openai)");
    None
}

/// The Python `openai` package, as users' scripts and apps call it:
/// models, chat (plain and streamed, with usage), completions (both),
/// stop strings, and its exceptions for our error responses
/// (tests/openai/client.py), on SmolLM2 and on a tiny K-quant MoE.
#[test]
fn the_openai_python_package_gets_what_moe_run_gives() {
    let Some(python) = openai_python() else { return };
    for model in [common::smollm2(), common::kquant_moe()] {
        let s = start_on(&model, &["--api-key", "k3y"]);
        let prompt = "Once upon a time";
        let cfg = json!({
            "base": format!("http://{}", s.addr), "key": "k3y", "model": model.file_stem().unwrap().to_str().unwrap(),
            "question": QUESTION, "chat": moe_run_on(&model, QUESTION, 16, true, &[]),
            "prompt": prompt, "completion": moe_run_on(&model, prompt, 12, false, &[]),
        });
        let mut child = Command::new(&python)
            .arg(common::repo_root().join("tests/openai/client.py"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(cfg.to_string().as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        let said = format!("{}: {}{}", model.display(), String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success() && out.stdout.starts_with(b"ok"), "{said}");
    }
}

/// The chat page at `/`, served whole and self-contained, driven in headless
/// Chromium by Playwright (tests/chat_page/browser.js) on a MoE whose
/// expert cache holds a quarter of its experts: typing a question and
/// pressing Enter streams the answer `moe run` gives, and the header shows
/// the model, the speed and the expert cache's hit rate. Skipped without
/// Chromium or playwright-core (scripts/test.sh runs `npm ci --prefix
/// tests/chat_page`), except with CI or MOE_REQUIRE_BROWSER=1 set, as
/// .ci/run does after installing Chromium.
#[test]
fn the_chat_page_answers_in_a_browser() {
    let model = common::kquant_moe();
    let s = start_on(&model, &["--temp", "0", "-n", "16", "--expert-cache", "25%"]);
    let (status, page) = request(&s, "GET", "/", None, &[]);
    assert_eq!(status, 200);
    assert!(page.starts_with("<!doctype html>") && page.contains("/v1/chat/completions") && !page.contains("http://") && !page.contains("https://"), "self-contained");
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let driver = common::repo_root().join("tests/chat_page");
    if !std::path::Path::new(&chromium).exists() || !driver.join("node_modules/playwright-core").exists() {
        let required = common::shared_required() || std::env::var("MOE_REQUIRE_BROWSER").is_ok_and(|v| v == "1");
        assert!(!required, "no {chromium} or no playwright-core in {}", driver.display());
        eprintln!("skipping the browser test: needs {chromium} and `npm ci --prefix tests/chat_page`");
        return;
    }
    let screenshot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("chat-page.png");
    let out = Command::new("node")
        .arg(driver.join("browser.js"))
        .arg(format!("http://{}", s.addr))
        .arg(QUESTION)
        .arg(&screenshot)
        .env("CHROMIUM", &chromium)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let shown: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    assert_eq!(shown["problems"], json!([]), "{shown}");
    let msgs = shown["messages"].as_array().unwrap();
    assert_eq!(msgs[0]["text"], QUESTION);
    assert_eq!(msgs[1]["class"], "msg assistant", "{shown}");
    assert_eq!(msgs[1]["text"], moe_run_on(&model, QUESTION, 16, true, &[]).as_str());
    let speed: f64 = shown["speed"].as_str().unwrap().strip_prefix("tok/s: ").and_then(|v| v.parse().ok()).unwrap_or_else(|| panic!("{shown}"));
    assert!(speed > 0.0, "{shown}");
    assert_eq!(shown["model"], format!("model: {}", model.file_stem().unwrap().to_str().unwrap()));
    // The rate the page shows is the one /metrics gives.
    let (_, metrics) = request(&s, "GET", "/metrics", None, &[]);
    let (mut hits, mut misses) = (0.0, 0.0);
    for line in metrics.lines() {
        let value = || line.rsplit(' ').next().unwrap().parse::<f64>().unwrap();
        if line.starts_with("moe_expert_cache_hits_total{") {
            hits += value();
        } else if line.starts_with("moe_expert_cache_misses_total{") {
            misses += value();
        }
    }
    assert!(misses > 0.0, "a quarter of the experts cached, yet no misses:\n{metrics}");
    let rate: f64 = shown["hits"].as_str().unwrap().strip_prefix("expert cache hit rate: ").and_then(|v| v.strip_suffix('%')?.parse().ok()).unwrap_or_else(|| panic!("{shown}"));
    assert!((rate - 100.0 * (hits / (hits + misses))).abs() <= 0.05 + 1e-9, "{shown} vs {hits} hits, {misses} misses");
}

/// `--draft`: a greedy request decoding alone drafts by prompt lookup and
/// gets the same tokens as without.
#[test]
fn drafting_keeps_the_answers() {
    let s = start(&["--draft", "4"]);
    let prompt = "1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 1, 2,";
    let (status, r) = post(&s, "/v1/completions", &json!({"prompt": prompt, "temperature": 0, "max_tokens": 40}));
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["choices"][0]["text"], moe_run(prompt, 40, false).as_str());
    let (status, r) = post(&s, "/v1/chat/completions", &chat_body(16, false));
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["choices"][0]["message"]["content"], moe_run(QUESTION, 16, true).as_str());
    let (_, metrics) = request(&s, "GET", "/metrics", None, &[]);
    let accepted: u64 = metrics.lines().find_map(|l| l.strip_prefix("moe_draft_tokens_accepted_total ")).unwrap().parse().unwrap();
    assert!(accepted > 0, "nothing drafted stood: {metrics}");
}

/// SIGTERM (as Ctrl-C): no new connections; the answer in flight ends
/// whole (`[DONE]`), then the server exits 0.
#[test]
fn sigterm_finishes_answers_in_flight_and_exits() {
    let mut s = start(&[]);
    let body = json!({"prompt": "Once", "max_tokens": 60, "stream": true, "ignore_eos": true, "temperature": 0}).to_string();
    let mut stream = send_raw(&s.addr, "/v1/completions", &body);
    let mut first = [0u8; 64];
    let _ = stream.read(&mut first).unwrap();
    assert!(Command::new("kill").args(["-TERM", &s.child.id().to_string()]).status().unwrap().success());
    let mut rest = String::new();
    stream.read_to_string(&mut rest).unwrap();
    assert!(rest.contains("data: [DONE]") && rest.contains("\"finish_reason\":\"length\""), "{rest}");
    let t0 = Instant::now();
    let status = loop {
        if let Some(st) = s.child.try_wait().unwrap() {
            break st;
        }
        assert!(t0.elapsed() < Duration::from_secs(30), "the server did not exit");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status}");
    assert!(TcpStream::connect(&s.addr).is_err(), "still accepting");
}

/// A long prompt is evaluated a micro-batch per round, between the other
/// slots' decode steps: an answer streaming meanwhile goes on, and the
/// long prompt's answer is `moe run`'s with the same micro-batch.
#[test]
fn a_long_prompt_does_not_stop_other_answers() {
    let s = start(&["--parallel", "2", "-b", "16"]);
    let addr = s.addr.clone();
    let streaming = std::thread::spawn(move || {
        let body = json!({"prompt": "Once upon a time", "max_tokens": 400, "stream": true, "ignore_eos": true, "temperature": 0}).to_string();
        let stream = send_raw(&addr, "/v1/completions", &body);
        let mut times = Vec::new();
        for line in BufReader::new(stream).lines() {
            let line = line.unwrap();
            if line.starts_with("data: {") {
                times.push(Instant::now());
            }
        }
        times
    });
    std::thread::sleep(Duration::from_millis(500));
    let prompt = "The quick brown fox jumps over the lazy dog. ".repeat(80);
    let t0 = Instant::now();
    // One token: the time is the prompt's (whole, before this change, the
    // other answer got no token meanwhile).
    let (status, r) = post(&s, "/v1/completions", &json!({"prompt": prompt, "temperature": 0, "max_tokens": 1}));
    let t1 = Instant::now();
    assert_eq!(status, 200, "{r}");
    assert!(r["usage"]["prompt_tokens"].as_u64().unwrap() > 500, "{r}");
    assert_eq!(r["choices"][0]["text"], moe_run_with(&prompt, 1, false, &["-b", "16"]).as_str());
    let times = streaming.join().unwrap();
    let during = times.iter().filter(|&&t| t > t0 && t < t1).count();
    assert!(during >= 10, "the other answer got {during} tokens while the long prompt was evaluated ({:?})", t1 - t0);
}

/// Past the slots and `--queue` waiting requests, a 503 saying so; the
/// ones admitted are answered whole.
#[test]
fn a_full_queue_is_a_503() {
    let s = start(&["--parallel", "1", "--queue", "1"]);
    let body = json!({"prompt": "Once", "max_tokens": 150, "ignore_eos": true, "temperature": 0});
    let admitted: Vec<_> = (0..2)
        .map(|_| {
            let (addr, body) = (s.addr.clone(), body.clone());
            let t = std::thread::spawn(move || {
                let s = Server { child: Command::new("true").spawn().unwrap(), addr };
                post(&s, "/v1/completions", &body)
            });
            std::thread::sleep(Duration::from_millis(300));
            t
        })
        .collect();
    let (status, e) = post(&s, "/v1/completions", &body);
    assert_eq!((status, e["error"]["code"].as_str()), (503, Some("server_busy")), "{e}");
    for t in admitted {
        let (status, r) = t.join().unwrap();
        assert_eq!((status, r["usage"]["completion_tokens"].as_u64()), (200, Some(150)), "{r}");
    }
}

/// While the model loads, the server listens and answers: `/health` and the
/// completion endpoints say 503 "loading"; once loaded, `/health` says 200
/// and requests are answered. A model that fails to load ends `serve` with
/// its error. (`moe::server::serve` with loaders the test holds back.)
#[test]
fn health_says_503_until_the_model_is_loaded() {
    use moe::server::{serve, Loaded, LoadedModel, ServerConfig};
    use std::sync::mpsc::channel;
    let cfg = ServerConfig {
        model_id: "m".into(),
        api_key: None,
        parallel: 1,
        queue: 4,
        n_ctx_per_slot: 512,
        defaults: moe::sampler::SamplerParams { temp: 0.0, ..Default::default() },
        default_max_tokens: Some(8),
        max_body_bytes: 1 << 20,
        max_connections: 16,
        read_timeout: Duration::from_secs(10),
    };
    let load_smollm2 = || -> moe::Result<LoadedModel> {
        let path = common::smollm2();
        let model = moe::model::Model::open(&path)?;
        let tokenizer = moe::tokenizer::Tokenizer::from_metadata(model.metadata())?;
        let template = moe::chat::ChatTemplate::for_model(&tokenizer, &path, None, None)?;
        // `moe run`'s default cache type, f16, as the answer compared below.
        let engine = Loaded { model, n_ctx_per_slot: 512, kv_type: moe::model::KvType::F16, n_batch: 64, draft: Default::default() };
        Ok(LoadedModel { engine, tokenizer, template })
    };
    for fails in [false, true] {
        let (go, wait) = channel::<()>();
        let (listening, addr) = channel();
        let cfg = cfg.clone();
        let server = std::thread::spawn(move || {
            let load = move || {
                wait.recv().expect("the test lets the load go on");
                if fails {
                    Err(moe::Error::InvalidArgument("the test's model failed to load".into()))
                } else {
                    load_smollm2()
                }
            };
            serve(cfg, "127.0.0.1:0", load, move |a| listening.send(a.to_string()).unwrap(), || {})
        });
        let addr = addr.recv_timeout(Duration::from_secs(30)).unwrap();
        let (status, body) = request_to(&addr, "GET", "/health", None, &[]);
        assert_eq!(status, 503, "{body}");
        let body: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["error"]["type"], "unavailable_error", "{body}");
        assert!(body["error"]["message"].as_str().unwrap().contains("loading"), "{body}");
        let chat = json!({"messages": [{"role": "user", "content": QUESTION}], "max_tokens": 4}).to_string();
        let completion = json!({"prompt": "Once upon a time", "max_tokens": 4}).to_string();
        for (path, body) in [("/v1/chat/completions", &chat), ("/v1/completions", &completion)] {
            let (status, answer) = request_to(&addr, "POST", path, Some(body), &[]);
            assert_eq!(status, 503, "{path}: {answer}");
        }
        go.send(()).unwrap();
        if fails {
            let err = server.join().unwrap().unwrap_err();
            assert!(err.to_string().contains("the test's model failed to load"), "{err}");
            continue;
        }
        let t0 = Instant::now();
        while request_to(&addr, "GET", "/health", None, &[]).0 != 200 {
            assert!(t0.elapsed() < Duration::from_secs(60), "the model did not load");
            std::thread::sleep(Duration::from_millis(20));
        }
        let (status, body) = request_to(&addr, "POST", "/v1/chat/completions", Some(&chat), &[]);
        assert_eq!(status, 200, "{body}");
        let body: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["choices"][0]["message"]["content"], moe_run(QUESTION, 4, true).as_str());
        // The server thread serves until the test process ends.
    }
}

/// `curl`, as a user or a monitoring script calls the server: /health
/// without a key, a completion and /metrics with `--api-key`'s bearer
/// token, /metrics refused without it. The Prometheus text: every sample
/// under its HELP and TYPE, the request and its tokens counted, and the
/// expert cache's counters for every layer. Skipped without curl outside CI.
#[test]
fn curl_reads_health_and_metrics() {
    if Command::new("curl").arg("--version").output().is_err() {
        assert!(!common::shared_required(), "CI: no curl");
        eprintln!("skipping: no curl");
        return;
    }
    let model = common::kquant_moe();
    let s = start_on(&model, &["--api-key", "k3y", "--expert-cache", "25%"]);
    let curl = |args: &[&str]| -> (u16, String) {
        let out = Command::new("curl").args(["-s", "-w", "\n%{http_code}"]).args(args).output().unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        let (body, code) = text.rsplit_once('\n').unwrap();
        (code.parse().unwrap(), body.to_string())
    };
    let url = |path: &str| format!("http://{}{path}", s.addr);
    let (code, body) = curl(&[&url("/health")]);
    assert_eq!((code, body.as_str()), (200, r#"{"status":"ok"}"#));
    let (code, _) = curl(&[&url("/metrics")]);
    assert_eq!(code, 401);
    let auth = "Authorization: Bearer k3y";
    let body = json!({"prompt": "Once upon a time", "max_tokens": 8, "temperature": 0}).to_string();
    let (code, answer) = curl(&["-H", auth, "-H", "Content-Type: application/json", "-d", &body, &url("/v1/completions")]);
    assert_eq!(code, 200, "{answer}");
    let answer: Value = serde_json::from_str(&answer).unwrap();
    let (code, metrics) = curl(&["-H", auth, &url("/metrics")]);
    assert_eq!(code, 200);
    let mut described = std::collections::HashSet::new();
    let mut samples = std::collections::HashMap::<String, Vec<f64>>::new();
    for line in metrics.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert!(["counter", "gauge"].contains(&kind), "{line}");
            described.insert(name.to_string());
        } else if !line.starts_with('#') {
            let (series, value) = line.rsplit_once(' ').unwrap();
            let name = series.split('{').next().unwrap();
            assert!(described.contains(name), "{name} has no TYPE line before it");
            samples.entry(name.to_string()).or_default().push(value.parse().unwrap_or_else(|_| panic!("{line}")));
        }
    }
    let one = |name: &str| samples[name][0];
    assert_eq!(one("moe_requests_total"), 1.0);
    assert_eq!(one("moe_tokens_generated_total"), answer["usage"]["completion_tokens"].as_f64().unwrap());
    assert_eq!(one("moe_prompt_tokens_total"), answer["usage"]["prompt_tokens"].as_f64().unwrap());
    let n_layer = moe::gguf::GgufFile::open(&model).map(|f| moe::config::ModelConfig::from_metadata(f.metadata()).unwrap().n_layer).unwrap();
    for name in ["moe_expert_cache_hits_total", "moe_expert_cache_misses_total", "moe_expert_cache_read_bytes_total", "moe_expert_cache_stall_seconds_total"] {
        assert_eq!(samples[name].len(), n_layer, "{name}: one sample per layer");
    }
    assert!(samples["moe_expert_cache_misses_total"].iter().sum::<f64>() > 0.0 && samples["moe_expert_cache_read_bytes_total"].iter().sum::<f64>() > 0.0, "{metrics}");
}
