#![no_main]
//! The GGUF reader on arbitrary bytes: header, metadata, tensor infos, then
//! config, tokenizer and model binding on whatever parses (src/gguf.rs).
libfuzzer_sys::fuzz_target!(|data: &[u8]| moe_fuzz::gguf::check(data));
