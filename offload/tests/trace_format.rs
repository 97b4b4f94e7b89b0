//! The routing-trace format: a written trace reads back exactly; truncated,
//! foreign, wrong-version and wrong-model files give clear errors.

use std::path::Path;
use std::sync::{Arc, Mutex};

use moe_offload::trace::{Event, Outcome, TraceReader, TraceWriter};
use moe_offload::{ExpertKey, Trace, TraceError, TraceHeader};

fn header() -> TraceHeader {
    TraceHeader {
        model_name: "tiny.gguf".into(),
        model_size: 123_456,
        model_id: 0xfeed_beef,
        n_layer: 2,
        n_expert: 4,
        n_expert_used: 2,
        expert_bytes: vec![vec![4096, 4096, 4096, 8192], vec![12_288; 4]],
        settings: "budget=1000 prefetch=off".into(),
    }
}

fn key(layer: u32, expert: u32) -> ExpertKey {
    ExpertKey { layer, expert }
}

/// A two-pass trace (a 2-token prompt batch, then a decode step).
fn write(out: &Sink) {
    let mut w = TraceWriter::new(Box::new(out.clone()), &header());
    w.pass_start(0, 2);
    w.route(0, &[(1, 0.75), (3, 0.25), (0, 0.5), (1, 0.5)]);
    w.request(&[key(0, 0), key(0, 1), key(0, 3)]);
    w.access(key(0, 0), Outcome::Miss, 4096, 150);
    w.access(key(0, 1), Outcome::Hit, 0, 0);
    w.access(key(0, 3), Outcome::Miss, 8192, 20);
    w.pass_end(9000);
    w.pass_start(2, 1);
    w.route(1, &[(2, 0.6), (3, 0.4)]);
    w.request(&[key(1, 2), key(1, 3)]);
    w.prefetch(&[(key(1, 0), true), (key(0, 2), false)]);
    w.access(key(1, 2), Outcome::Prefetched, 0, 0);
    w.access(key(1, 3), Outcome::PrefetchedLate, 0, 7);
    w.pass_end(4000);
    w.finish().unwrap();
}

/// A `Write` into a buffer the test keeps a handle to.
#[derive(Clone, Default)]
struct Sink(Arc<Mutex<Vec<u8>>>);
impl std::io::Write for Sink {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn bytes() -> Vec<u8> {
    let sink = Sink::default();
    write(&sink);
    let v = sink.0.lock().unwrap().clone();
    v
}

/// Bytes of the header alone.
fn header_len() -> usize {
    let sink = Sink::default();
    TraceWriter::new(Box::new(sink.clone()), &header())
        .finish()
        .unwrap();
    let n = sink.0.lock().unwrap().len();
    n - 3 // the end record: tag, 0 passes, 0 accesses
}

fn read(b: &[u8]) -> Result<Trace, TraceError> {
    TraceReader::new(b, Path::new("test.trace"))?.read_all()
}

#[test]
fn round_trip() {
    let b = bytes();
    let t = read(&b).unwrap();
    assert_eq!(t.header, header());
    assert_eq!(t.passes.len(), 2);
    let p = &t.passes[0];
    assert_eq!(
        (p.pos, p.n_tokens, p.wall_us, p.wait_us()),
        (0, 2, 9000, 170)
    );
    assert_eq!(p.routes.len(), 1);
    let weights: Vec<f32> = p.routes[0].chosen.iter().map(|c| c.1).collect();
    assert_eq!(
        p.routes[0].chosen.iter().map(|c| c.0).collect::<Vec<_>>(),
        [1, 3, 0, 1]
    );
    for (w, want) in weights.iter().zip([0.75, 0.25, 0.5, 0.5]) {
        assert!((w - want).abs() < 1.0 / 65535.0);
    }
    assert_eq!(
        p.events[0],
        Event::Request {
            layer: 0,
            experts: vec![0, 1, 3]
        }
    );
    assert_eq!(
        p.events[1],
        Event::Access {
            key: key(0, 0),
            outcome: Outcome::Miss,
            bytes: 4096,
            wait_us: 150
        }
    );
    let q = &t.passes[1];
    assert_eq!(
        q.events[1],
        Event::Prefetch(vec![(key(1, 0), true), (key(0, 2), false)])
    );
    assert_eq!(
        q.events[3],
        Event::Access {
            key: key(1, 3),
            outcome: Outcome::PrefetchedLate,
            bytes: 0,
            wait_us: 7
        }
    );
    assert_eq!(t.tokens(), 3);
    assert_eq!(t.accesses().filter(|a| a.1.is_hit()).count(), 2);
    assert_eq!(t.header.setting("budget"), Some("1000"));
    assert_eq!(t.header.setting("prefetch"), Some("off"));
    assert_eq!(t.header.bytes_of(key(0, 3)), 8192);
    // Compact: the header is ~65 bytes, an access 5 to 8.
    assert!(b.len() < 200, "{} bytes", b.len());
}

#[test]
fn a_cut_header_is_an_error_naming_the_cut_and_cut_records_a_shorter_trace() {
    let b = bytes();
    let full = read(&b).unwrap();
    assert!(!full.cut_short);
    let mut header_read = false;
    for cut in 0..b.len() {
        match read(&b[..cut]) {
            // Past the header, a cut (a killed recording run) keeps the
            // whole passes before it.
            Ok(t) => {
                header_read = true;
                assert!(t.cut_short, "cut {cut}");
                assert_eq!(t.header, full.header, "cut {cut}");
                assert_eq!(t.passes[..], full.passes[..t.passes.len()], "cut {cut}");
            }
            Err(e) => {
                assert!(!header_read, "cut {cut}: an error after a shorter cut read: {e}");
                let msg = e.to_string();
                assert!(msg.contains("test.trace"), "cut {cut}: {msg}");
                match e {
                    TraceError::NotATrace { .. } => assert!(cut < 8, "cut {cut}: {msg}"),
                    TraceError::Truncated { offset, .. } => {
                        assert!(offset <= cut as u64, "cut {cut}: {msg}")
                    }
                    other => panic!("cut {cut}: unexpected {other}"),
                }
            }
        }
    }
    assert!(header_read);
    // The last pass is only kept once its end record is there.
    let t = read(&b[..b.len() - 1]).unwrap();
    assert!(t.cut_short && t.passes.len() == full.passes.len());
}

#[test]
fn wrong_magic_version_and_model() {
    let mut b = bytes();
    let e = read(b"GGUF\x03\0\0\0\0\0").unwrap_err();
    assert!(matches!(e, TraceError::NotATrace { .. }), "{e}");
    b[8] = 9;
    let e = read(&b).unwrap_err();
    assert!(
        e.to_string()
            .contains("version 9; this moe reads version 1"),
        "{e}"
    );
    let t = read(&bytes()).unwrap();
    let p = Path::new("x.trace");
    t.check_model(p, "tiny.gguf", 123_456, 0xfeed_beef).unwrap();
    let e = t.check_model(p, "other.gguf", 123_456, 0x1234).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("tiny.gguf") && msg.contains("other.gguf") && msg.contains("tensor index"),
        "{msg}"
    );
    let e = t.check_model(p, "tiny.gguf", 99, 0xfeed_beef).unwrap_err();
    assert!(e.to_string().contains("size differs"), "{e}");
}

#[test]
fn corrupt_records_are_named() {
    let h = header_len();
    let mut b = bytes();
    assert_eq!(b[h], 1, "the first record is a pass start");
    b[h] = 77;
    let e = read(&b).unwrap_err();
    assert!(e.to_string().contains("unknown record tag 77"), "{e}");
    // Pass start (tag, pos 0, 2 tokens), then the route's tag and layer.
    let mut b = bytes();
    assert_eq!(b[h + 3], 2, "then a route");
    b[h + 4] = 99;
    let e = read(&b).unwrap_err();
    assert!(
        e.to_string()
            .contains("layer 99 in a route; the model has 2"),
        "{e}"
    );
}

#[test]
fn file_round_trip_and_missing_file() {
    let dir = std::env::temp_dir().join(format!("moe-trace-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("a.trace");
    std::fs::write(&path, bytes()).unwrap();
    assert_eq!(Trace::read(&path).unwrap(), read(&bytes()).unwrap());
    let e = Trace::read(&dir.join("missing.trace")).unwrap_err();
    assert!(e.to_string().contains("missing.trace"), "{e}");
    std::fs::remove_dir_all(&dir).ok();
}
