//! Token ids against llama.cpp's, on the real SmolLM2 (gpt2 BPE) and
//! Gemma 3 (SentencePiece) vocabs: `tests/fixtures/tokenizer/*.jsonl` hold
//! llama.cpp's output for 30 hard strings each.

mod tokenizer_common;

use moe::tokenizer::{ModelKind, Tokenizer};
use tokenizer_common::{references, tokenizer, GEMMA3, SMOLLM2};

fn check_all(tok: &Tokenizer, file: &str) {
    let refs = references(file);
    assert_eq!(refs.len(), 30, "{file}: expected 30 references");
    let mut failures = Vec::new();
    for r in &refs {
        let ids = tok.encode(&r.text, false, true).unwrap();
        if ids != r.ids {
            failures.push(format!(
                "{:?}\n   ours {:?}\n  llama {:?}",
                r.text, ids, r.ids
            ));
        }
        let with_special = tok.encode(&r.text, true, true).unwrap();
        if with_special != r.ids_add_special {
            failures.push(format!(
                "{:?} (add_special)\n   ours {:?}\n  llama {:?}",
                r.text, with_special, r.ids_add_special
            ));
        }
        let detok = tok.decode(&r.ids, true);
        if detok != r.detok {
            failures.push(format!(
                "{:?} (detok)\n   ours {:?}\n  llama {:?}",
                r.text, detok, r.detok
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{file}: {} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn smollm2_matches_llama_cpp() {
    let tok = tokenizer(SMOLLM2);
    assert_eq!(tok.kind(), ModelKind::Bpe);
    check_all(tok, "tokenizer_refs_smollm2.jsonl");
}

#[test]
fn gemma3_spm_matches_llama_cpp() {
    let tok = tokenizer(GEMMA3);
    assert_eq!(tok.kind(), ModelKind::Spm);
    check_all(tok, "tokenizer_refs_gemma3_spm.jsonl");
}

#[test]
fn smollm2_vocab_facts() {
    let tok = tokenizer(SMOLLM2);
    assert_eq!(tok.n_vocab(), 49152);
    assert_eq!(tok.bos(), Some(1));
    assert_eq!(tok.eos(), Some(2));
    assert!(!tok.adds_bos() && !tok.adds_eos());
    // llama.cpp's end-of-generation set for this vocab: <|endoftext|>,
    // <|im_end|> (EOS), and <reponame>, which it takes for a FIM repo token.
    assert_eq!(tok.eog_ids(), [0, 2, 4]);
    assert!(tok.is_eog(2) && !tok.is_eog(1));
    assert!(tok
        .chat_template()
        .is_some_and(|t| t.contains("<|im_start|>")));
    assert_eq!(tok.token_piece(2), b"");
    assert_eq!(tok.token_piece_special(2), b"<|im_end|>");
    assert_eq!(tok.token_piece(216), b" "); // "Ġ"
}

#[test]
fn gemma3_vocab_facts() {
    let tok = tokenizer(GEMMA3);
    assert_eq!(tok.n_vocab(), 262144);
    assert_eq!(tok.bos(), Some(2));
    assert_eq!(tok.eos(), Some(1));
    assert!(tok.adds_bos() && !tok.adds_eos());
    let end_of_turn = tok.token_id("<end_of_turn>").unwrap();
    assert_eq!(tok.eot(), Some(end_of_turn));
    assert!(tok.is_eog(1) && tok.is_eog(end_of_turn));
    // "</s>" is user-defined in this vocab, but llama.cpp makes it an end
    // token, and so control: it renders as nothing unless asked.
    assert!(tok.is_eog(212) && tok.is_control(212));
    assert_eq!(tok.token_piece(212), b"");
    assert_eq!(tok.token_piece(238 + 0x41), b"A"); // <0x41>
    assert_eq!(tok.token_piece(236743), b" "); // "▁"
    assert_eq!(tok.chat_template(), None);
}
