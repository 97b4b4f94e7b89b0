#![no_main]
//! Encode and streaming decode on arbitrary text and id sequences, over
//! SmolLM2's byte-level BPE vocab (every pre-tokenizer family) and a small
//! SentencePiece vocab (src/tokenizer.rs).
libfuzzer_sys::fuzz_target!(|data: &[u8]| moe_fuzz::tokenizer::check(data));
