//! Crafted but legal vocabs load in time near-linear in their size, and
//! still encode right: pieces that all collided in the old unkeyed piece
//! index, tens of thousands of long control tokens, nested user-defined
//! tokens, 10 MB tokens, a million duplicate merges, a long piece outside
//! the byte-level alphabet, and the special-token splitter's worst case
//! (every candidate walking down a chain of prefixes that do not fit).
//!
//! Each load runs under a hang guard of 20 s (the old code took minutes on
//! most of these; the new one well under a second in release). Speed
//! figures belong in benchmarks; this only catches quadratic blow-ups.

#[path = "tokenizer_common/hostile.rs"]
mod hostile;

use std::sync::mpsc;
use std::time::Duration;

use hostile::*;
use moe::gguf::{Array, GgufWriter, Value};
use moe::tokenizer::{byte_to_char, Tokenizer};

const HANG_GUARD: Duration = Duration::from_secs(20);

/// Runs `f` on its own thread; fails the test if it takes over the guard.
fn within_guard<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(HANG_GUARD) {
        Ok(v) => v,
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("{what} took over {HANG_GUARD:?}"),
        Err(mpsc::RecvTimeoutError::Disconnected) => panic!("{what} panicked"),
    }
}

fn load(w: GgufWriter<'static>, name: &str) -> Tokenizer {
    let md = round_trip(w, name);
    within_guard(&format!("loading the {name} vocab"), move || {
        Tokenizer::from_metadata(&md).expect("the vocab loads")
    })
}

/// The byte tokens of `text`, as SentencePiece byte fallback gives them.
fn byte_ids(text: &str) -> Vec<u32> {
    text.bytes().map(|b| 3 + b as u32).collect()
}

fn no_space_prefix(v: &SpmVocab) -> GgufWriter<'static> {
    let mut w = v.writer();
    w.add_kv("tokenizer.ggml.add_space_prefix", Value::Bool(false));
    w
}

#[test]
fn pieces_colliding_in_the_old_index() {
    let colliding = old_hash_colliding(262_144);
    let h = old_index_hash(colliding[0].as_bytes());
    assert!(colliding.iter().all(|t| old_index_hash(t.as_bytes()) == h));
    // One of them, with every prefix a piece too, so encoding its text
    // merges up to it. Distinct printable bytes: no other pair merges.
    let (k, chosen) = colliding
        .iter()
        .enumerate()
        .find(|(_, t)| {
            let b = t.as_bytes();
            b.iter().all(|&c| c.is_ascii_graphic()) && (0..16).all(|i| !b[i + 1..].contains(&b[i]))
        })
        .map(|(k, t)| (k, t.clone()))
        .expect("a colliding piece of distinct printable bytes");
    let prefixes = (2..16).map(|n| (chosen[..n].to_string(), NORMAL));
    let v = SpmVocab::new(colliding.iter().map(|t| (t.clone(), NORMAL)).chain(prefixes));
    let tok = load(no_space_prefix(&v), "colliding");

    for (i, t) in colliding.iter().enumerate().step_by(97) {
        assert_eq!(tok.token_id(t), Some(FIRST_EXTRA + i as u32), "{t:?}");
    }
    assert_eq!(tok.token_id("no such piece"), None);
    let id = FIRST_EXTRA + k as u32;
    assert_eq!(tok.encode(&chosen, false, false).unwrap(), [id]);
    let text = format!("hi{chosen}yo");
    let want: Vec<u32> = [byte_ids("hi"), vec![id], byte_ids("yo")].concat();
    let ids = tok.encode(&text, false, false).unwrap();
    assert_eq!(ids, want);
    assert_eq!(tok.decode(&ids, false), text);
}

#[test]
fn duplicate_piece_is_an_error_naming_both_ids() {
    let mut pieces = old_hash_colliding(131_072);
    pieces.push(pieces[1000].clone());
    let v = SpmVocab::new(pieces.into_iter().map(|t| (t, NORMAL)));
    let md = round_trip(v.writer(), "duplicate");
    let err = within_guard("loading the duplicate vocab", move || {
        Tokenizer::from_metadata(&md).err().expect("a duplicate piece is an error")
    });
    let msg = err.to_string();
    let (first, second) = (FIRST_EXTRA + 1000, FIRST_EXTRA + 131_072);
    assert!(msg.contains(&format!("id {first} and id {second}")), "{msg}");
}

#[test]
fn fifty_thousand_long_control_tokens() {
    let controls = long_strings(50_000, 200);
    let v = SpmVocab::new(controls.iter().map(|t| (t.clone(), CONTROL)));
    let tok = load(no_space_prefix(&v), "controls");
    let id = |i: usize| FIRST_EXTRA + i as u32;

    let text = format!("hello{}world{}{}!", controls[123], controls[49_999], controls[7]);
    let want: Vec<u32> =
        [byte_ids("hello"), vec![id(123)], byte_ids("world"), vec![id(49_999), id(7)], byte_ids("!")].concat();
    let ids = tok.encode(&text, false, true).unwrap();
    assert_eq!(ids, want);
    assert_eq!(tok.decode(&ids, false), text);
    // Unparsed, control texts are only text.
    assert_eq!(tok.encode(&text, false, false).unwrap(), byte_ids(&text));

    // A text of 2,000 of them, back to back.
    let order: Vec<usize> = (0..2_000).map(|i| i * 7919 % 50_000).collect();
    let text: String = order.iter().map(|&i| controls[i].as_str()).collect();
    let ids = within_guard("encoding 2,000 control tokens", move || tok.encode(&text, false, true).unwrap());
    assert_eq!(ids, order.iter().map(|&i| id(i)).collect::<Vec<_>>());
}

#[test]
fn nested_user_defined_tokens_take_the_longest_first() {
    // "a", "aa", ..., 300 a's: llama.cpp places the longest wherever it
    // fits, left to right, then the next longest in what is left.
    let v = SpmVocab::new((1..=300).map(|n| ("a".repeat(n), USER_DEFINED)));
    let tok = load(no_space_prefix(&v), "nested");
    let id = |n: u32| FIRST_EXTRA + n - 1;
    let text = "a".repeat(100_000);
    let ids = within_guard("encoding 100,000 a's", move || tok.encode(&text, false, false).unwrap());
    let want: Vec<u32> = std::iter::repeat_n(id(300), 333).chain([id(100)]).collect();
    assert_eq!(ids, want);
}

#[test]
fn ten_megabyte_tokens() {
    let normal = "n".repeat(10 << 20);
    let control = "c".repeat(10 << 20);
    let v = SpmVocab::new([(normal.clone(), NORMAL), (control.clone(), CONTROL), ("cc".into(), CONTROL)]);
    let tok = load(no_space_prefix(&v), "huge");
    assert_eq!(tok.token_id(&normal), Some(FIRST_EXTRA));
    assert_eq!(tok.token_piece_special(FIRST_EXTRA + 1).len(), control.len());
    let text = format!("x{control}c");
    let ids = within_guard("encoding a 10 MB control token", move || tok.encode(&text, false, true).unwrap());
    assert_eq!(ids, [byte_ids("x"), vec![FIRST_EXTRA + 1], byte_ids("c")].concat());
}

/// A byte-level BPE vocab: the 256 byte chars, then `extra`.
fn bpe_vocab(extra: &[String], merges: Vec<String>) -> GgufWriter<'static> {
    let tokens = (0..=255u8).map(|b| byte_to_char(b).to_string()).chain(extra.iter().cloned());
    let mut w = GgufWriter::new();
    w.add_kv("general.architecture", Value::String("llama".into()))
        .add_kv("tokenizer.ggml.model", Value::String("gpt2".into()))
        .add_kv("tokenizer.ggml.pre", Value::String("gpt-2".into()))
        .add_kv("tokenizer.ggml.tokens", Array::from_strings(tokens).into())
        .add_kv("tokenizer.ggml.merges", Array::from_strings(merges).into());
    w
}

#[test]
fn a_million_duplicate_merges() {
    let mut merges = vec!["a b".to_string(); 1_000_000];
    merges.push("ab c".into());
    merges.push("x yz".into()); // not pieces: dropped
    let tok = load(bpe_vocab(&["ab".into(), "abc".into()], merges), "merges");
    assert_eq!(tok.encode("abc", false, false).unwrap(), [257]);
    assert_eq!(tok.encode("abab", false, false).unwrap(), [256, 256]);
}

#[test]
fn a_long_piece_outside_the_byte_alphabet() {
    // llama.cpp renders each of its chars with the whole piece after it:
    // 30 GB for these 300 KB. Rendered here in space linear in the piece.
    let piece = "日".repeat(100_000);
    let tok = load(bpe_vocab(std::slice::from_ref(&piece), Vec::new()), "unk-bytes");
    let rendered = tok.token_piece(256);
    assert!(rendered.starts_with(format!("[UNK_BYTE_0xe697a5{piece}]").as_bytes()));
    assert!(rendered.len() < 64 * piece.len(), "{} bytes", rendered.len());
}

/// The special-token splitter's worst case: every position of a text whose
/// longest special token runs into one placed before it (a longer one), and
/// each of those has a chain of shorter prefixes that run into it too.
/// Tokens `a^k y z^j` (k + j ≤ N) under the longer `y z^(N+1)`, text
/// `(a^N y z^(N+1))^R`: the `y z…` tokens are placed first, then every `a`
/// walks down its chain (up to N steps) and finds nothing that fits. The
/// work is the text's length × N/4 (N at most the cube root of the
/// vocab's bytes), and the answer llama.cpp's: the a's stay text.
#[test]
fn special_tokens_that_all_run_into_a_longer_one() {
    const N: usize = 300;
    let a_run = "a".repeat(N);
    let cut = format!("y{}", "z".repeat(N + 1));
    let mut specials = vec![(cut.clone(), USER_DEFINED)];
    for k in 1..=N {
        for j in 0..=N - k {
            specials.push((format!("{}y{}", &a_run[..k], "z".repeat(j)), USER_DEFINED));
        }
    }
    let v = SpmVocab::new(specials);
    let tok = load(no_space_prefix(&v), "prefix chains");
    let unit = format!("{a_run}{cut}");
    let text = unit.repeat((1 << 20) / unit.len());
    let reps = text.len() / unit.len();
    let t0 = std::time::Instant::now();
    let ids = within_guard("splitting 1 MiB of crossing special tokens", move || tok.encode(&text, false, false).unwrap());
    eprintln!("split and encoded {reps} × {} bytes in {:.2} s", unit.len(), t0.elapsed().as_secs_f64());
    let want: Vec<u32> = [byte_ids(&a_run), vec![FIRST_EXTRA]].concat().repeat(reps);
    assert_eq!(ids, want);
}
