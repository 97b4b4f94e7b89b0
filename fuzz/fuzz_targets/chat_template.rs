#![no_main]
//! Templates and conversations through the chat-template renderer
//! (src/chat_template.rs).
libfuzzer_sys::fuzz_target!(|data: &[u8]| moe_fuzz::chat_template::check(data));
