//! End-to-end forward-pass throughput: prompt and decode tokens per second
//! on the real SmolLM2-135M-Instruct Q4_1 model (fetched by
//! scripts/fetch-model.sh) and on a synthetic Mixtral-layout MoE.
//! Prints figures (median and spread over repetitions); asserts nothing
//! about time.
//!
//! cargo bench --bench forward [-- --reps N --prompt N --gen N]

use std::path::{Path, PathBuf};
use std::time::Instant;

use moe::model::Model;
use moe::synth::{TinyModel, WeightTypes};
use moe_quant::QType;

struct Opts {
    reps: usize,
    prompt: usize,
    gen: usize,
}

fn parse_opts() -> Opts {
    let mut o = Opts { reps: 5, prompt: 128, gen: 32 };
    let args: Vec<String> = std::env::args().collect();
    let mut i = 1;
    while i < args.len() {
        let val = || args.get(i + 1).and_then(|v| v.parse().ok());
        match args[i].as_str() {
            "--reps" => o.reps = val().unwrap_or(o.reps),
            "--prompt" => o.prompt = val().unwrap_or(o.prompt),
            "--gen" => o.gen = val().unwrap_or(o.gen),
            _ => {}
        }
        i += 1;
    }
    o
}

fn stats(xs: &mut [f64]) -> (f64, f64, f64) {
    xs.sort_by(f64::total_cmp);
    (xs[xs.len() / 2], xs[0], xs[xs.len() - 1])
}

fn bench(name: &str, path: &Path, o: &Opts) {
    let model = Model::open(path).unwrap_or_else(|e| panic!("{e}"));
    let n_vocab = model.config().n_vocab as u32;
    let prompt: Vec<u32> = (0..o.prompt as u32).map(|i| (i * 7919 + 13) % n_vocab).collect();
    let (mut pp, mut tg) = (Vec::new(), Vec::new());
    for _ in 0..o.reps {
        let mut s = model.session(o.prompt + o.gen + 1).unwrap();
        let t = Instant::now();
        s.prefill_last(&prompt).unwrap();
        pp.push(o.prompt as f64 / t.elapsed().as_secs_f64());
        let t = Instant::now();
        let mut next = 1u32;
        for _ in 0..o.gen {
            let logits = s.forward(next).unwrap();
            next = (logits.iter().enumerate().fold((0, f32::MIN), |b, (i, &v)| if v > b.1 { (i, v) } else { b }).0) as u32;
        }
        tg.push(o.gen as f64 / t.elapsed().as_secs_f64());
    }
    let (pm, plo, phi) = stats(&mut pp);
    let (gm, glo, ghi) = stats(&mut tg);
    println!(
        "{name:<34} pp{:<4} {pm:>8.2} tok/s [{plo:.2}–{phi:.2}]   tg{:<3} {gm:>8.2} tok/s [{glo:.2}–{ghi:.2}]",
        o.prompt, o.gen
    );
}

fn main() {
    let o = parse_opts();
    let threads = rayon::current_num_threads();
    println!(
        "forward pass, {} repetitions, {threads} threads, kernel tier {}; median [min–max]",
        o.reps,
        moe_quant::dispatch::tier().name()
    );
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let smol = root.join("models/SmolLM2-135M-Instruct.Q4_1.gguf");
    if smol.exists() {
        bench("SmolLM2-135M-Instruct Q4_1", &smol, &o);
    } else {
        println!("SmolLM2 not found at {}: run scripts/fetch-model.sh", smol.display());
    }
    let dir = root.join("target/bench-models");
    std::fs::create_dir_all(&dir).unwrap();
    let moe_path = dir.join("tiny-moe-8x2-q4_k.gguf");
    TinyModel {
        n_layer: 4,
        n_embd: 512,
        n_ff: 1024,
        n_head: 8,
        n_head_kv: 4,
        n_expert: 8,
        n_expert_used: 2,
        n_vocab: 4096,
        types: WeightTypes { ffn_gate_up: QType::Q4_K, ffn_down: QType::Q6_K, ..WeightTypes::uniform(QType::Q8_0) },
        seed: 1,
        ..Default::default()
    }
    .write(&moe_path)
    .unwrap();
    bench("synthetic MoE 8×top-2 Q4_K/Q6_K", &moe_path, &o);
}
