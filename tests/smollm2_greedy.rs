//! SmolLM2-135M-Instruct Q4_1, "The capital of France is", greedy: the
//! continuation must equal llama.cpp's with an f32 KV cache, token for token
//! (llama.cpp stopped at EOS after 30 tokens).

mod common;

use common::*;
use moe::generate::{generate, GenerateOptions};
use moe::model::Model;
use moe::sampler::{Sampler, SamplerParams};
use moe::tokenizer::Tokenizer;

#[test]
fn greedy_continuation_matches_llama_cpp() {
    let case = reference("SmolLM2-135M-Instruct.Q4_1.france.kvf32.json");
    let json = read_json(&case);
    let want: Vec<u32> = json["greedy_tokens"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
    let prompt_ids: Vec<u32> = json["tokens"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();

    let model = Model::open(&smollm2()).unwrap();
    let tokenizer = Tokenizer::from_metadata(model.metadata()).unwrap();
    let prompt = tokenizer.encode(json["prompt"].as_str().unwrap(), true, true).unwrap();
    assert_eq!(prompt, prompt_ids, "prompt tokens");

    let mut session = model.session(64).unwrap();
    let mut sampler = Sampler::new(SamplerParams { temp: 0.0, ..Default::default() });
    let mut got = Vec::new();
    let stats = generate(&mut session, &tokenizer, &mut sampler, &prompt, &GenerateOptions { n_predict: 32, ignore_eos: false, ..Default::default() }, |id| {
        got.push(id);
        true
    })
    .unwrap();
    assert_eq!(got, want, "greedy tokens (ours vs llama.cpp)");
    assert_eq!(stats.generated_tokens, want.len());
    assert_eq!(tokenizer.decode(&got, true), json["greedy_text"].as_str().unwrap());
}
