//! Streaming decode: ids fed one at a time give the whole decode, and no
//! chunk ever shows half a character, even where tokens split one (Gemma's
//! byte-fallback tokens, SmolLM2's byte-level pieces).

mod tokenizer_common;

use moe::tokenizer::{StreamDecoder, Tokenizer};
use tokenizer_common::{tokenizer, GEMMA3, SMOLLM2};

const TEXTS: &[&str] = &[
    "🦙🚀 emoji 👍🏽 and 👨\u{200d}👩\u{200d}👧 family",
    "日本語のテキスト、中文测试、한국어",
    "rare CJK \u{2EBF0}\u{2A6DF}\u{30000} and \u{1FAE8} shaking face",
    "mixed: café 🦙 naïve 日本 ok",
    "\u{F0000}\u{10FFFD} private use",
];

/// Streams `ids`, returning the chunks.
fn chunks(tok: &Tokenizer, ids: &[u32]) -> Vec<String> {
    let mut s = StreamDecoder::detokenizing(tok, true);
    let mut out: Vec<String> = ids.iter().map(|&id| s.push(id)).collect();
    out.push(s.finish());
    out
}

fn stream_all(mut s: StreamDecoder, ids: &[u32]) -> String {
    let mut out: String = ids.iter().map(|&id| s.push(id)).collect();
    out += &s.finish();
    out
}

fn check(tok: &Tokenizer, name: &str) {
    let mut split_chars = 0;
    for text in TEXTS {
        let ids = tok.encode(text, false, false).unwrap();
        // Count tokens whose bytes are not whole characters, so the test
        // knows it exercised the hold-back.
        split_chars += ids
            .iter()
            .filter(|&&id| std::str::from_utf8(tok.token_piece(id)).is_err())
            .count();

        let whole = tok.decode(&ids, true);
        assert_eq!(&whole, text, "{name}: decode(encode(x)) != x");
        let parts = chunks(tok, &ids);
        assert_eq!(
            parts.concat(),
            whole,
            "{name}: streamed != decoded for {text:?}"
        );
        for p in &parts {
            assert!(
                !p.contains('\u{FFFD}'),
                "{name}: chunk {p:?} has a broken character ({text:?})"
            );
        }
    }
    assert!(
        split_chars >= 10,
        "{name}: only {split_chars} tokens split a character; the test is too easy"
    );
}

#[test]
fn gemma3_byte_fallback_streams_whole_characters() {
    check(tokenizer(GEMMA3), "gemma3");
}

#[test]
fn smollm2_byte_level_streams_whole_characters() {
    check(tokenizer(SMOLLM2), "smollm2");
}

#[test]
fn broken_utf8_is_replaced_once_at_the_end() {
    let tok = tokenizer(GEMMA3);
    let byte = |b: u8| tok.token_id(&format!("<0x{b:02X}>")).unwrap();
    // "é" is C3 A9; feed C3, then "A", then a lone C3 at the end.
    let ids = [byte(0xC3), byte(0xA9), byte(0xC3), byte(b'A'), byte(0xC3)];
    let parts = chunks(tok, &ids);
    assert_eq!(parts, ["", "é", "", "\u{FFFD}A", "", "\u{FFFD}"]);
    assert_eq!(parts.concat(), tok.decode(&ids, true));
}

#[test]
fn space_prefix_strip_follows_llama_cpp() {
    // With add_space_prefix (Mixtral's setting), llama.cpp drops the leading
    // space of the first piece only, and BOS counts as that first piece.
    let mut md = tokenizer_common::metadata(GEMMA3);
    md.map.insert(
        "tokenizer.ggml.add_space_prefix".into(),
        moe::gguf::Value::Bool(true),
    );
    let tok = Tokenizer::from_metadata(&md).unwrap();
    let ids = tok.encode("Hello world", false, false).unwrap();
    assert_eq!(tok.token_piece(ids[0]), b" Hello");
    assert_eq!(tok.decode(&ids, true), "Hello world");
    let with_bos = tok.encode("Hello world", true, false).unwrap();
    assert_eq!(with_bos[0], 2);
    assert_eq!(tok.decode(&with_bos, true), " Hello world");
    assert_eq!(
        stream_all(StreamDecoder::detokenizing(&tok, true), &ids),
        "Hello world"
    );
    assert_eq!(
        stream_all(StreamDecoder::detokenizing(&tok, true), &with_bos),
        " Hello world"
    );
    // Generation output: a continuation keeps its space ("is" + " Paris").
    assert_eq!(
        stream_all(StreamDecoder::new(&tok, true), &ids),
        " Hello world"
    );
}

#[test]
fn clean_spaces_streams_like_decode() {
    // gpt-2 style vocabs clean " ," and " 's" up when decoding; the stream
    // must hold a space back until it knows.
    let mut md = tokenizer_common::metadata(SMOLLM2);
    md.map.insert(
        "tokenizer.ggml.pre".into(),
        moe::gguf::Value::String("gpt-2".into()),
    );
    let tok = Tokenizer::from_metadata(&md).unwrap();
    let text = "Hello , world ! It 's me ' here ' and you 're 100 % sure .";
    let ids = tok.encode(text, false, false).unwrap();
    let whole = tok.decode(&ids, true);
    assert_eq!(whole, "Hello, world! It's me'here'and you're 100 % sure.");
    let mut s = StreamDecoder::detokenizing(&tok, true);
    let mut parts: Vec<String> = ids.iter().map(|&id| s.push(id)).collect();
    parts.push(s.finish());
    assert_eq!(parts.concat(), whole);
    assert!(
        parts.iter().filter(|p| !p.is_empty()).count() > 5,
        "the stream should not hold everything: {parts:?}"
    );
    // llama.cpp prints generated pieces without the clean-up.
    assert_eq!(stream_all(StreamDecoder::new(&tok, true), &ids), text);
}
