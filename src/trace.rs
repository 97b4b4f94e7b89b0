//! Recording routing traces (`moe run --trace FILE`): the forward pass's
//! side (pass boundaries and each MoE layer's routing, from a
//! [`ForwardObserver`]) and the cache's side (requests, prefetch hints,
//! accesses, from a [`TracingSource`] around the expert source) go to one
//! [`TraceWriter`]. The format is documented in [`moe_offload::trace`].

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use moe_offload::trace::fnv1a64;
use moe_offload::{ExpertCache, SharedTrace, Trace, TraceHeader, TraceWriter, TracingSource};

use crate::error::{Error, Result};
use crate::gguf::GgufFile;
use crate::model::{ForwardObserver, Model};

/// A model file's identity as a trace records it: file name, size, and the
/// FNV-1a 64 of its bytes before the tensor data (header, keys, tensor
/// index: cheap to hash, and different for any other model or quant mix).
pub fn model_identity(file: &GgufFile) -> Result<(String, u64, u64)> {
    let name = file.path().file_name().map_or_else(|| file.path().display().to_string(), |n| n.to_string_lossy().into_owned());
    let wf = file.file();
    let head = wf.bytes(0..file.data_offset()).map_err(|e| Error::InvalidArgument(format!("{}: {e}", file.path().display())))?;
    Ok((name, wf.len(), fnv1a64(head)))
}

/// The header a trace of `model` starts with.
pub fn header_for(model: &Model, settings: &str) -> Result<TraceHeader> {
    let c = model.config();
    let (model_name, model_size, model_id) = model_identity(model.file())?;
    Ok(TraceHeader {
        model_name,
        model_size,
        model_id,
        n_layer: c.n_layer,
        n_expert: c.n_expert,
        n_expert_used: c.n_expert_used,
        expert_bytes: model.expert_ranges().iter().map(|l| l.iter().map(ExpertCache::footprint).collect()).collect(),
        settings: settings.to_string(),
    })
}

/// Starts tracing `model` into `path`: wraps its expert source (call after
/// the cache is set up) and returns the writer and the observer to install
/// on the session.
pub fn start(model: &mut Model, path: &Path, settings: &str) -> Result<(SharedTrace, TraceObserver)> {
    let file = std::fs::File::create(path).map_err(|e| Error::Io { path: path.to_path_buf(), source: e })?;
    start_with(model, Box::new(std::io::BufWriter::with_capacity(1 << 16, file)), settings)
}

/// As [`start`], writing to `out`.
pub fn start_with(model: &mut Model, out: Box<dyn std::io::Write + Send>, settings: &str) -> Result<(SharedTrace, TraceObserver)> {
    if !model.config().is_moe() {
        return Err(Error::InvalidArgument(format!("--trace: {} is a dense model; a routing trace needs experts", model.file().path().display())));
    }
    let header = header_for(model, settings)?;
    let trace: SharedTrace = Arc::new(Mutex::new(TraceWriter::new(out, &header)));
    let bytes = header.expert_bytes.clone();
    let t = Arc::clone(&trace);
    model.wrap_expert_source(move |inner| Box::new(TracingSource::new(inner, t, bytes)));
    Ok((Arc::clone(&trace), TraceObserver { trace, started: Instant::now() }))
}

/// Writes pass boundaries and routes.
pub struct TraceObserver {
    trace: SharedTrace,
    started: Instant,
}

impl ForwardObserver for TraceObserver {
    fn batch_start(&mut self, pos: usize, n_tokens: usize) {
        self.started = Instant::now();
        lock(&self.trace).pass_start(pos as u64, n_tokens as u64);
    }

    fn routed(&mut self, layer: usize, chosen: &[(usize, f32)], _k: usize) {
        lock(&self.trace).route(layer as u32, chosen);
    }

    fn batch_end(&mut self) {
        let us = self.started.elapsed().as_micros() as u64;
        lock(&self.trace).pass_end(us);
    }
}

fn lock(t: &SharedTrace) -> std::sync::MutexGuard<'_, TraceWriter> {
    t.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Reads a trace and checks that it was recorded on `model` (if given).
pub fn read_for(path: &Path, model: Option<&GgufFile>) -> Result<Trace> {
    let trace = Trace::read(path)?;
    if let Some(f) = model {
        let (name, size, id) = model_identity(f)?;
        trace.check_model(path, &name, size, id)?;
    }
    Ok(trace)
}

/// What to tell a user about a trace cut short by a killed or crashed
/// recording run (`None` for a whole trace).
pub fn cut_note(trace: &Trace, path: &Path) -> Option<String> {
    trace.cut_short.then(|| {
        format!(
            "{} ends without its end record (the recording run was interrupted or crashed): it holds {} whole passes, {} tokens",
            path.display(),
            trace.passes.len(),
            trace.tokens()
        )
    })
}
