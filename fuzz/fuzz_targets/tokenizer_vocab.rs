#![no_main]
//! Load a vocab the input describes, then encode and decode with it
//! (src/tokenizer_vocab.rs).
libfuzzer_sys::fuzz_target!(|data: &[u8]| moe_fuzz::tokenizer_vocab::check(data));
