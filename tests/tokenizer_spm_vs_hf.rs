//! Why the SentencePiece encoder is llama.cpp's own merge loop and not the
//! `tokenizers` crate's BPE with merges generated from the vocab
//! (transformers' `LlamaConverter` / `SentencePieceExtractor`): this builds
//! that alternative from the Gemma 3 vocab, times it, and compares its ids
//! with llama.cpp's on the fixture strings, and with ours on random piece
//! concatenations and on strings built around periodic pieces (where two
//! different pairs make the same piece). Also times building both vocabs
//! and encoding.
//!
//! Run: `cargo test --release -p moe --test tokenizer_spm_vs_hf -- --ignored --nocapture`

mod tokenizer_common;

use std::collections::HashMap;
use std::time::Instant;

use moe::tokenizer::Tokenizer;
use tokenizer_common::GEMMA3;
use tokenizers::models::bpe::{Vocab as HfVocab, BPE};
use tokenizers::Model;

#[test]
#[ignore = "measurement; run with --ignored --nocapture"]
fn hf_bpe_from_generated_merges_vs_llama_cpp() {
    let md = tokenizer_common::metadata(GEMMA3);

    let t = Instant::now();
    let ours = Tokenizer::from_metadata(&md).unwrap();
    let ours_build = t.elapsed();

    let pieces: Vec<&str> = md.strings("tokenizer.ggml.tokens").unwrap().iter().collect();
    let scores: Vec<f32> = md
        .array("tokenizer.ggml.scores", "f32s")
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap() as f32)
        .collect();

    // SentencePieceExtractor: every split of every piece into two pieces is
    // a merge; merges ordered by the merged piece's score, descending, and
    // within one piece by the halves' ids.
    let t = Instant::now();
    let ids: HashMap<&str, u32> = pieces
        .iter()
        .enumerate()
        .map(|(i, p)| (*p, i as u32))
        .collect();
    let mut merges: Vec<(f32, u32, u32, &str, &str)> = Vec::new();
    for (i, p) in pieces.iter().enumerate() {
        let mut local = Vec::new();
        for (at, _) in p.char_indices().skip(1) {
            let (l, r) = p.split_at(at);
            if let (Some(&li), Some(&ri)) = (ids.get(l), ids.get(r)) {
                local.push((scores[i], li, ri, l, r));
            }
        }
        local.sort_by_key(|m| (m.1, m.2));
        merges.extend(local);
    }
    merges.sort_by(|a, b| b.0.partial_cmp(&a.0).unwrap()); // stable
    let gen_time = t.elapsed();

    let t = Instant::now();
    let vocab: HfVocab = pieces
        .iter()
        .enumerate()
        .map(|(i, p)| (p.to_string(), i as u32))
        .collect();
    let pairs = merges
        .iter()
        .map(|m| (m.3.to_string(), m.4.to_string()))
        .collect();
    let bpe = BPE::builder()
        .vocab_and_merges(vocab, pairs)
        .byte_fallback(true)
        .build()
        .unwrap();
    let hf_build = t.elapsed();

    // Same-piece pairs: pieces reachable by more than one (left, right).
    let mut per_piece: HashMap<String, usize> = HashMap::new();
    for m in &merges {
        *per_piece.entry(format!("{}{}", m.3, m.4)).or_default() += 1;
    }
    let multi = per_piece.values().filter(|&&n| n > 1).count();

    // Compare on fixture strings free of special-token texts (the crate's
    // BPE sees only the raw text here).
    let path = format!(
        "{}/tests/fixtures/tokenizer/llamacpp_gemma3.jsonl",
        env!("CARGO_MANIFEST_DIR")
    );
    let file = std::fs::read_to_string(path).unwrap();
    let (mut compared, mut differ) = (0, Vec::new());
    for line in file.lines().skip(1) {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let text = v["text"].as_str().unwrap();
        if text.contains(['\n', '\t', '<', '[']) || text.contains("  ") || text.is_empty() {
            continue;
        }
        let want: Vec<u32> = v["ids_no_parse"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as u32)
            .collect();
        let escaped = text.replace(' ', "\u{2581}");
        let got: Vec<u32> = bpe
            .tokenize(&escaped)
            .unwrap()
            .iter()
            .map(|t| t.id)
            .collect();
        assert_eq!(
            ours.encode(text, false, false).unwrap(),
            want,
            "our encoder on {text:?}"
        );
        compared += 1;
        if got != want {
            differ.push(format!("{text:?}: crate {got:?} llama.cpp {want:?}"));
        }
    }

    // Random concatenations of normal pieces, where ties are more likely.
    let mut rng = 0x2545F4914F6CDD1Du64;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let normal: Vec<&str> = pieces
        .iter()
        .copied()
        .filter(|p| !p.starts_with('<') && !p.contains(['\n', '\t']) && !p.contains("  "))
        .collect();
    let mut random_differ = Vec::new();
    for _ in 0..20000 {
        let n = 2 + next() % 4;
        let text: String = (0..n)
            .map(|_| normal[(next() % normal.len() as u64) as usize])
            .collect::<String>()
            .replace('\u{2581}', " ");
        let escaped = text.replace(' ', "\u{2581}");
        let got: Vec<u32> = bpe
            .tokenize(&escaped)
            .unwrap()
            .iter()
            .map(|t| t.id)
            .collect();
        let mine = ours.encode(&text, false, false).unwrap();
        if got != mine && random_differ.len() < 20 {
            random_differ.push(format!("{text:?}: crate {got:?} ours {mine:?}"));
        }
    }
    // Periodic pieces P = x+y = y+z: on "x y z" both (x, y) and (y, z)
    // make P with one score; llama.cpp takes the left pair, the crate the
    // pair with the lower rank.
    let mut periodic = 0;
    for p in normal.iter().copied() {
        for (at, _) in p.char_indices().skip(1) {
            let y = &p[at..];
            if !p.starts_with(y) || y.len() >= p.len() {
                continue;
            }
            let (x, z) = (&p[..p.len() - y.len()], &p[y.len()..]);
            if !(ids.contains_key(x) && ids.contains_key(y) && ids.contains_key(z)) {
                continue;
            }
            periodic += 1;
            let text = format!("{x}{y}{z}").replace('\u{2581}', " ");
            let escaped = text.replace(' ', "\u{2581}");
            let got: Vec<u32> = bpe
                .tokenize(&escaped)
                .unwrap()
                .iter()
                .map(|t| t.id)
                .collect();
            let mine = ours.encode(&text, false, false).unwrap();
            if got != mine && random_differ.len() < 40 {
                random_differ.push(format!("{text:?}: crate {got:?} ours {mine:?}"));
            }
        }
    }
    println!("periodic pieces tried: {periodic}");
    println!("random: {} differ", random_differ.len());
    for d in &random_differ {
        println!("  {d}");
    }

    println!("vocab: {} pieces", pieces.len());
    println!("our Tokenizer::from_metadata: {ours_build:?}");
    println!(
        "generating {} merges: {gen_time:?}; pieces with several pairs: {multi}",
        merges.len()
    );
    println!("tokenizers BPE build: {hf_build:?}");
    println!(
        "crate BPE vs llama.cpp: {} of {compared} strings differ",
        differ.len()
    );
    for d in differ.iter().take(10) {
        println!("  {d}");
    }
}

#[test]
#[ignore = "measurement; run with --ignored --nocapture"]
fn build_and_encode_times() {
    for name in [GEMMA3, tokenizer_common::SMOLLM2] {
        let md = tokenizer_common::metadata(name);
        let mut best = std::time::Duration::MAX;
        let mut tok = None;
        for _ in 0..5 {
            let t = Instant::now();
            tok = Some(Tokenizer::from_metadata(&md).unwrap());
            best = best.min(t.elapsed());
        }
        let tok = tok.unwrap();
        let text = std::fs::read_to_string(format!(
            "{}/tests/fixtures/tokenizer/llamacpp_gemma3.jsonl",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        let t = Instant::now();
        let n = tok.encode(&text, false, true).unwrap().len();
        let enc = t.elapsed();
        println!(
            "{name}: from_metadata best of 5 {best:?}; encode {} KB -> {n} tokens in {enc:?}",
            text.len() / 1024
        );
    }
}
