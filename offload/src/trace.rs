//! Routing traces: what the router chose and what the expert cache did,
//! forward pass by forward pass, in a compact streamable binary format
//! (`moe run --trace FILE`), and its reader (`moe simulate`, `moe report`).
//!
//! # Format, version 1
//!
//! Little-endian; `varint` is unsigned LEB128; `str` is a varint length and
//! UTF-8 bytes. The header:
//!
//! | field | type |
//! |---|---|
//! | magic `MOETRACE` | 8 bytes |
//! | version (1) | u16 |
//! | model file name (no directory) | str |
//! | model file size in bytes | u64 |
//! | model id: FNV-1a 64 of the file's bytes before the tensor data (GGUF header, keys, tensor index) | u64 |
//! | n_layer, n_expert, n_expert_used | varint ×3 |
//! | bytes per expert: what the cache charges (slabs rounded to pages), `[layer][expert]` | varint × n_layer·n_expert |
//! | recording settings, `key=value` pairs separated by spaces (budget, prefetch, batch…) | str |
//!
//! Then records, each a tag byte and its fields:
//!
//! | tag | record | fields |
//! |---|---|---|
//! | 1 | pass start | first position, tokens in the pass (varint ×2) |
//! | 2 | route | layer; then per token of the pass, `n_expert_used` × (expert varint, weight u16 = round(w · 65535)) |
//! | 3 | request | layer, count, experts (varints): the experts the layer asked the cache for (a batch's union) |
//! | 4 | prefetch | count; then per hint (layer varint, expert varint, issued u8: 1 if a read started) |
//! | 5 | access | layer, expert (varint), outcome u8, bytes read on demand, wait in µs (varint ×2) |
//! | 6 | pass end | wall time of the pass in µs (varint) |
//! | 255 | end | passes, accesses (varint ×2): a trace without it was cut short |
//!
//! Access outcomes: 0 hit, 1 miss, 2 prefetched (first use of a prefetch
//! that was ready: a hit), 3 prefetched late (the read was still under
//! way: a miss), 4 unknown (no cache: experts read from the mapping).
//! Records of one pass come in the order they happened: pass start, then
//! per MoE layer its route, request, prefetch hints and accesses, then
//! pass end. About 0.3 KB per token and layer pair of Mixtral-8x7B is
//! written; see README for measured sizes.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use crate::expert::ExpertKey;

pub const MAGIC: &[u8; 8] = b"MOETRACE";
pub const VERSION: u16 = 1;

const PASS_START: u8 = 1;
const ROUTE: u8 = 2;
const REQUEST: u8 = 3;
const PREFETCH: u8 = 4;
const ACCESS: u8 = 5;
const PASS_END: u8 = 6;
const END: u8 = 255;

/// Which model a trace was recorded on, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceHeader {
    pub model_name: String,
    pub model_size: u64,
    pub model_id: u64,
    pub n_layer: usize,
    pub n_expert: usize,
    pub n_expert_used: usize,
    /// Cache charge of each expert, `[layer][expert]`.
    pub expert_bytes: Vec<Vec<u64>>,
    /// `key=value` pairs separated by spaces.
    pub settings: String,
}

impl TraceHeader {
    /// A setting's value, if recorded.
    pub fn setting(&self, key: &str) -> Option<&str> {
        self.settings
            .split(' ')
            .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
    }

    pub fn bytes_of(&self, key: ExpertKey) -> u64 {
        self.expert_bytes[key.layer as usize][key.expert as usize]
    }

    /// All experts' bytes.
    pub fn all_bytes(&self) -> u64 {
        self.expert_bytes.iter().flatten().sum()
    }
}

/// How one `with_expert` call went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Hit,
    Miss,
    Prefetched,
    PrefetchedLate,
    Unknown,
}

impl Outcome {
    fn code(self) -> u8 {
        match self {
            Outcome::Hit => 0,
            Outcome::Miss => 1,
            Outcome::Prefetched => 2,
            Outcome::PrefetchedLate => 3,
            Outcome::Unknown => 4,
        }
    }

    fn from_code(c: u8) -> Option<Outcome> {
        Some(match c {
            0 => Outcome::Hit,
            1 => Outcome::Miss,
            2 => Outcome::Prefetched,
            3 => Outcome::PrefetchedLate,
            4 => Outcome::Unknown,
            _ => return None,
        })
    }

    /// Whether the cache's statistics count it as a hit.
    pub fn is_hit(self) -> bool {
        matches!(self, Outcome::Hit | Outcome::Prefetched)
    }
}

/// A cache-side event inside a pass.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// The layer's chosen experts, as asked of the cache.
    Request { layer: u32, experts: Vec<u32> },
    /// Prediction hints, and whether each started a read.
    Prefetch(Vec<(ExpertKey, bool)>),
    /// One `with_expert` call.
    Access {
        key: ExpertKey,
        outcome: Outcome,
        bytes: u64,
        wait_us: u64,
    },
}

/// One layer's routing in a pass: `chosen[token * k + slot]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    pub layer: u32,
    pub chosen: Vec<(u32, f32)>,
}

/// One forward pass (a prompt micro-batch or a decode step).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Pass {
    pub pos: u64,
    pub n_tokens: u64,
    pub routes: Vec<Route>,
    pub events: Vec<Event>,
    pub wall_us: u64,
}

impl Pass {
    pub fn accesses(&self) -> impl Iterator<Item = (ExpertKey, Outcome, u64, u64)> + '_ {
        self.events.iter().filter_map(|e| match *e {
            Event::Access {
                key,
                outcome,
                bytes,
                wait_us,
            } => Some((key, outcome, bytes, wait_us)),
            _ => None,
        })
    }

    /// Total wait for reads in this pass, µs.
    pub fn wait_us(&self) -> u64 {
        self.accesses().map(|a| a.3).sum()
    }
}

/// A whole trace, read into memory.
#[derive(Debug, Clone, PartialEq)]
pub struct Trace {
    pub header: TraceHeader,
    pub passes: Vec<Pass>,
    /// The file ends without its end record (the recording run was killed
    /// or crashed): `passes` are the whole passes before the cut.
    pub cut_short: bool,
}

/// What can be wrong with a trace file.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path}: not a moe routing trace (no MOETRACE magic at the start)")]
    NotATrace { path: PathBuf },
    #[error("{path}: trace format version {found}; this moe reads version {VERSION}")]
    Version { path: PathBuf, found: u16 },
    #[error("{path}: truncated at byte {offset} inside {what} (the recording was cut short, or the file is incomplete)")]
    Truncated {
        path: PathBuf,
        offset: u64,
        what: &'static str,
    },
    #[error("{path}: ends after {passes} passes without the end record (the run was interrupted, or the file was cut)")]
    NoEnd { path: PathBuf, passes: usize },
    #[error("{path}: corrupt at byte {offset}: {what}")]
    Corrupt {
        path: PathBuf,
        offset: u64,
        what: String,
    },
    #[error("trace {path} was recorded on {recorded}, not on {given}: {why}")]
    WrongModel {
        path: PathBuf,
        recorded: String,
        given: String,
        why: String,
    },
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_varint(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

/// FNV-1a 64 of `bytes` (the model id of the header).
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    })
}

/// Writes a trace record by record. Write errors are kept and reported by
/// [`TraceWriter::finish`] (a full disk must not kill the generation).
pub struct TraceWriter {
    out: Box<dyn Write + Send>,
    buf: Vec<u8>,
    error: Option<io::Error>,
    passes: u64,
    accesses: u64,
    /// Tokens of the current pass (routes are per token).
    n_tokens: u64,
    k: usize,
    bytes_written: u64,
    /// When the output was last flushed to the file.
    flushed_at: std::time::Instant,
}

/// How often a trace reaches its file at least: a recording run that is
/// killed or crashes loses at most this much of its passes (a reader takes
/// the whole passes before the cut).
pub const FLUSH_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

impl TraceWriter {
    /// A writer to `out`, starting with `header`.
    pub fn new(out: Box<dyn Write + Send>, header: &TraceHeader) -> TraceWriter {
        let mut w = TraceWriter {
            out,
            buf: Vec::with_capacity(1 << 12),
            error: None,
            passes: 0,
            accesses: 0,
            n_tokens: 0,
            k: header.n_expert_used,
            bytes_written: 0,
            flushed_at: std::time::Instant::now(),
        };
        w.buf.extend_from_slice(MAGIC);
        w.buf.extend_from_slice(&VERSION.to_le_bytes());
        put_str(&mut w.buf, &header.model_name);
        w.buf.extend_from_slice(&header.model_size.to_le_bytes());
        w.buf.extend_from_slice(&header.model_id.to_le_bytes());
        for v in [header.n_layer, header.n_expert, header.n_expert_used] {
            put_varint(&mut w.buf, v as u64);
        }
        for &b in header.expert_bytes.iter().flatten() {
            put_varint(&mut w.buf, b);
        }
        put_str(&mut w.buf, &header.settings);
        w.flush_buf();
        w
    }

    /// A buffered file writer.
    pub fn create(path: &Path, header: &TraceHeader) -> io::Result<TraceWriter> {
        let f = File::create(path)?;
        Ok(TraceWriter::new(
            Box::new(BufWriter::with_capacity(1 << 16, f)),
            header,
        ))
    }

    fn flush_buf(&mut self) {
        if self.error.is_none() {
            if let Err(e) = self.out.write_all(&self.buf) {
                self.error = Some(e);
            }
        }
        self.bytes_written += self.buf.len() as u64;
        self.buf.clear();
    }

    pub fn pass_start(&mut self, pos: u64, n_tokens: u64) {
        self.n_tokens = n_tokens;
        self.buf.push(PASS_START);
        put_varint(&mut self.buf, pos);
        put_varint(&mut self.buf, n_tokens);
    }

    /// `chosen[token * k + slot]` for the pass's tokens.
    pub fn route(&mut self, layer: u32, chosen: &[(usize, f32)]) {
        self.buf.push(ROUTE);
        put_varint(&mut self.buf, layer as u64);
        debug_assert_eq!(chosen.len() as u64, self.n_tokens * self.k as u64);
        for &(e, w) in chosen {
            put_varint(&mut self.buf, e as u64);
            let q = (w.clamp(0.0, 1.0) * 65535.0).round() as u16;
            self.buf.extend_from_slice(&q.to_le_bytes());
        }
    }

    pub fn request(&mut self, keys: &[ExpertKey]) {
        let Some(first) = keys.first() else { return };
        self.buf.push(REQUEST);
        put_varint(&mut self.buf, first.layer as u64);
        put_varint(&mut self.buf, keys.len() as u64);
        for k in keys {
            put_varint(&mut self.buf, k.expert as u64);
        }
    }

    pub fn prefetch(&mut self, hints: &[(ExpertKey, bool)]) {
        if hints.is_empty() {
            return;
        }
        self.buf.push(PREFETCH);
        put_varint(&mut self.buf, hints.len() as u64);
        for &(k, issued) in hints {
            put_varint(&mut self.buf, k.layer as u64);
            put_varint(&mut self.buf, k.expert as u64);
            self.buf.push(u8::from(issued));
        }
    }

    pub fn access(&mut self, key: ExpertKey, outcome: Outcome, bytes: u64, wait_us: u64) {
        self.accesses += 1;
        self.buf.push(ACCESS);
        put_varint(&mut self.buf, key.layer as u64);
        put_varint(&mut self.buf, key.expert as u64);
        self.buf.push(outcome.code());
        put_varint(&mut self.buf, bytes);
        put_varint(&mut self.buf, wait_us);
    }

    /// Ends the pass and hands its records to the output.
    pub fn pass_end(&mut self, wall_us: u64) {
        self.passes += 1;
        self.buf.push(PASS_END);
        put_varint(&mut self.buf, wall_us);
        self.flush_buf();
        if self.flushed_at.elapsed() >= FLUSH_INTERVAL && self.error.is_none() {
            self.flushed_at = std::time::Instant::now();
            if let Err(e) = self.out.flush() {
                self.error = Some(e);
            }
        }
    }

    /// Bytes written so far (header included).
    pub fn bytes_written(&self) -> u64 {
        self.bytes_written + self.buf.len() as u64
    }

    pub fn passes(&self) -> u64 {
        self.passes
    }

    /// Writes the end record and flushes; the first write error, if any.
    pub fn finish(&mut self) -> io::Result<u64> {
        self.buf.push(END);
        put_varint(&mut self.buf, self.passes);
        put_varint(&mut self.buf, self.accesses);
        self.flush_buf();
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        self.out.flush()?;
        Ok(self.bytes_written)
    }
}

/// Reads a trace record by record from any reader.
pub struct TraceReader<R: Read> {
    r: R,
    path: PathBuf,
    offset: u64,
    pub header: TraceHeader,
    done: bool,
}

impl TraceReader<BufReader<File>> {
    pub fn open(path: &Path) -> Result<Self, TraceError> {
        let f = File::open(path).map_err(|source| TraceError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        TraceReader::new(BufReader::with_capacity(1 << 16, f), path)
    }
}

/// One record as read.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    PassStart { pos: u64, n_tokens: u64 },
    Route(Route),
    Event(Event),
    PassEnd { wall_us: u64 },
    End { passes: u64, accesses: u64 },
}

impl<R: Read> TraceReader<R> {
    /// Reads and checks the header; `path` names the source in errors.
    pub fn new(r: R, path: &Path) -> Result<Self, TraceError> {
        let mut t = TraceReader {
            r,
            path: path.to_path_buf(),
            offset: 0,
            header: TraceHeader {
                model_name: String::new(),
                model_size: 0,
                model_id: 0,
                n_layer: 0,
                n_expert: 0,
                n_expert_used: 0,
                expert_bytes: Vec::new(),
                settings: String::new(),
            },
            done: false,
        };
        let mut magic = [0u8; 8];
        match t.fill(&mut magic, "the magic") {
            Ok(()) if &magic == MAGIC => {}
            Ok(()) | Err(TraceError::Truncated { .. }) => {
                return Err(TraceError::NotATrace { path: t.path })
            }
            Err(e) => return Err(e),
        }
        let mut v = [0u8; 2];
        t.fill(&mut v, "the version")?;
        let found = u16::from_le_bytes(v);
        if found != VERSION {
            return Err(TraceError::Version {
                path: t.path,
                found,
            });
        }
        const H: &str = "the header";
        t.header.model_name = t.string(H)?;
        t.header.model_size = t.u64(H)?;
        t.header.model_id = t.u64(H)?;
        let n_layer = t.count(H, 1 << 16)?;
        let n_expert = t.count(H, 1 << 16)?;
        let n_used = t.count(H, 1 << 16)?;
        if n_used == 0 || n_used > n_expert || n_layer == 0 {
            return Err(t.corrupt(format!(
                "impossible shape: {n_layer} layers, {n_expert} experts, {n_used} used"
            )));
        }
        if n_layer * n_expert > 1 << 20 {
            return Err(t.corrupt(format!(
                "{n_layer} layers of {n_expert} experts is more than any model has"
            )));
        }
        t.header.expert_bytes = (0..n_layer)
            .map(|_| {
                (0..n_expert)
                    .map(|_| t.varint(H))
                    .collect::<Result<Vec<_>, _>>()
            })
            .collect::<Result<_, _>>()?;
        t.header.settings = t.string(H)?;
        (t.header.n_layer, t.header.n_expert, t.header.n_expert_used) = (n_layer, n_expert, n_used);
        Ok(t)
    }

    fn fill(&mut self, buf: &mut [u8], what: &'static str) -> Result<(), TraceError> {
        match self.r.read_exact(buf) {
            Ok(()) => {
                self.offset += buf.len() as u64;
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Err(TraceError::Truncated {
                path: self.path.clone(),
                offset: self.offset,
                what,
            }),
            Err(source) => Err(TraceError::Io {
                path: self.path.clone(),
                source,
            }),
        }
    }

    fn byte(&mut self, what: &'static str) -> Result<u8, TraceError> {
        let mut b = [0u8];
        self.fill(&mut b, what)?;
        Ok(b[0])
    }

    fn u64(&mut self, what: &'static str) -> Result<u64, TraceError> {
        let mut b = [0u8; 8];
        self.fill(&mut b, what)?;
        Ok(u64::from_le_bytes(b))
    }

    fn varint(&mut self, what: &'static str) -> Result<u64, TraceError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte(what)?;
            v |= ((b & 0x7f) as u64) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(self.corrupt(format!("a varint in {what} runs over 64 bits")))
    }

    fn count(&mut self, what: &'static str, max: u64) -> Result<usize, TraceError> {
        let v = self.varint(what)?;
        if v > max {
            return Err(self.corrupt(format!("a count of {v} in {what} (at most {max} expected)")));
        }
        Ok(v as usize)
    }

    fn string(&mut self, what: &'static str) -> Result<String, TraceError> {
        let n = self.count(what, 1 << 16)?;
        let mut b = vec![0u8; n];
        self.fill(&mut b, what)?;
        String::from_utf8(b).map_err(|_| self.corrupt(format!("a string in {what} is not UTF-8")))
    }

    fn corrupt(&self, what: String) -> TraceError {
        TraceError::Corrupt {
            path: self.path.clone(),
            offset: self.offset,
            what,
        }
    }

    fn layer(&mut self, what: &'static str) -> Result<u32, TraceError> {
        let l = self.varint(what)?;
        if l >= self.header.n_layer as u64 {
            return Err(self.corrupt(format!(
                "layer {l} in {what}; the model has {}",
                self.header.n_layer
            )));
        }
        Ok(l as u32)
    }

    fn expert(&mut self, what: &'static str) -> Result<u32, TraceError> {
        let e = self.varint(what)?;
        if e >= self.header.n_expert as u64 {
            return Err(self.corrupt(format!(
                "expert {e} in {what}; the model has {}",
                self.header.n_expert
            )));
        }
        Ok(e as u32)
    }

    /// The next record; `None` after the end record. `n_tokens` is the
    /// current pass's token count (routes need it).
    pub fn next_record(&mut self, n_tokens: u64) -> Result<Option<Record>, TraceError> {
        if self.done {
            return Ok(None);
        }
        let mut tag = [0u8];
        match self.r.read(&mut tag) {
            Ok(0) => {
                return Err(TraceError::NoEnd {
                    path: self.path.clone(),
                    passes: 0,
                })
            }
            Ok(_) => self.offset += 1,
            Err(source) => {
                return Err(TraceError::Io {
                    path: self.path.clone(),
                    source,
                })
            }
        }
        Ok(Some(match tag[0] {
            PASS_START => {
                let pos = self.varint("a pass start")?;
                let n = self.varint("a pass start")?;
                if n == 0 || n > 1 << 24 {
                    return Err(self.corrupt(format!("a pass of {n} tokens")));
                }
                Record::PassStart { pos, n_tokens: n }
            }
            ROUTE => {
                let layer = self.layer("a route")?;
                let n = n_tokens as usize * self.header.n_expert_used;
                let mut chosen = Vec::with_capacity(n);
                for _ in 0..n {
                    let e = self.expert("a route")?;
                    let mut w = [0u8; 2];
                    self.fill(&mut w, "a route")?;
                    chosen.push((e, u16::from_le_bytes(w) as f32 / 65535.0));
                }
                Record::Route(Route { layer, chosen })
            }
            REQUEST => {
                let layer = self.layer("a request")?;
                let n = self.count("a request", self.header.n_expert as u64)?;
                let experts = (0..n)
                    .map(|_| self.expert("a request"))
                    .collect::<Result<_, _>>()?;
                Record::Event(Event::Request { layer, experts })
            }
            PREFETCH => {
                let n = self.count("a prefetch", 1 << 20)?;
                let mut hints = Vec::with_capacity(n);
                for _ in 0..n {
                    let layer = self.layer("a prefetch")?;
                    let expert = self.expert("a prefetch")?;
                    hints.push((ExpertKey { layer, expert }, self.byte("a prefetch")? != 0));
                }
                Record::Event(Event::Prefetch(hints))
            }
            ACCESS => {
                let layer = self.layer("an access")?;
                let expert = self.expert("an access")?;
                let code = self.byte("an access")?;
                let outcome = Outcome::from_code(code)
                    .ok_or_else(|| self.corrupt(format!("access outcome {code}")))?;
                let bytes = self.varint("an access")?;
                let wait_us = self.varint("an access")?;
                Record::Event(Event::Access {
                    key: ExpertKey { layer, expert },
                    outcome,
                    bytes,
                    wait_us,
                })
            }
            PASS_END => Record::PassEnd {
                wall_us: self.varint("a pass end")?,
            },
            END => {
                self.done = true;
                Record::End {
                    passes: self.varint("the end record")?,
                    accesses: self.varint("the end record")?,
                }
            }
            t => return Err(self.corrupt(format!("unknown record tag {t}"))),
        }))
    }

    /// Reads every remaining record into passes, checking their order and
    /// the end record's counts.
    pub fn read_all(mut self) -> Result<Trace, TraceError> {
        let mut passes: Vec<Pass> = Vec::new();
        let mut open: Option<Pass> = None;
        let mut accesses = 0u64;
        loop {
            let n = open.as_ref().map_or(0, |p| p.n_tokens);
            let rec = match self.next_record(n) {
                // A recording cut short by a crash or a kill: the whole
                // passes before the cut are still a valid trace.
                Err(TraceError::NoEnd { .. } | TraceError::Truncated { .. }) => {
                    return Ok(Trace {
                        header: self.header,
                        passes,
                        cut_short: true,
                    })
                }
                r => r?,
            };
            let outside = |s: &Self, what: &str| s.corrupt(format!("{what} outside a pass"));
            match rec {
                None => unreachable!("read_all stops at the end record"),
                Some(Record::PassStart { pos, n_tokens }) => {
                    if open.is_some() {
                        return Err(
                            self.corrupt("a pass starts before the previous one ended".into())
                        );
                    }
                    open = Some(Pass {
                        pos,
                        n_tokens,
                        ..Pass::default()
                    });
                }
                Some(Record::Route(r)) => open
                    .as_mut()
                    .ok_or_else(|| outside(&self, "a route"))?
                    .routes
                    .push(r),
                Some(Record::Event(e)) => {
                    accesses += u64::from(matches!(e, Event::Access { .. }));
                    open.as_mut()
                        .ok_or_else(|| outside(&self, "an event"))?
                        .events
                        .push(e)
                }
                Some(Record::PassEnd { wall_us }) => {
                    let mut p = open.take().ok_or_else(|| outside(&self, "a pass end"))?;
                    p.wall_us = wall_us;
                    passes.push(p);
                }
                Some(Record::End {
                    passes: np,
                    accesses: na,
                }) => {
                    if open.is_some() || np != passes.len() as u64 || na != accesses {
                        return Err(self.corrupt(format!(
                            "the end record counts {np} passes and {na} accesses, the file holds {} and {accesses}",
                            passes.len()
                        )));
                    }
                    return Ok(Trace {
                        header: self.header,
                        passes,
                        cut_short: false,
                    });
                }
            }
        }
    }
}

impl Trace {
    pub fn read(path: &Path) -> Result<Trace, TraceError> {
        TraceReader::open(path)?.read_all()
    }

    /// Whether the trace was recorded on the model of `name`, `size` bytes
    /// and id `id`; the error says what differs.
    pub fn check_model(
        &self,
        path: &Path,
        name: &str,
        size: u64,
        id: u64,
    ) -> Result<(), TraceError> {
        let h = &self.header;
        let why = if h.model_id != id {
            Some("its header and tensor index differ")
        } else if h.model_size != size {
            Some("its size differs")
        } else {
            None
        };
        match why {
            None => Ok(()),
            Some(why) => Err(TraceError::WrongModel {
                path: path.to_path_buf(),
                recorded: format!(
                    "{} ({} bytes, id {:016x})",
                    h.model_name, h.model_size, h.model_id
                ),
                given: format!("{name} ({size} bytes, id {id:016x})"),
                why: why.into(),
            }),
        }
    }

    /// Every access in order.
    pub fn accesses(&self) -> impl Iterator<Item = (ExpertKey, Outcome, u64, u64)> + '_ {
        self.passes.iter().flat_map(|p| p.accesses())
    }

    /// Tokens in all passes.
    pub fn tokens(&self) -> u64 {
        self.passes.iter().map(|p| p.n_tokens).sum()
    }
}
