//! Matrix-vector products over borrowed quantized matrices.

use std::cell::RefCell;

use crate::dispatch::{check_lengths, kernels_for, tier, Kernels};
use crate::pool::ColumnBlock;
use crate::{quantize_activations, QType, Tier};

/// Below this many weight bytes a matvec runs on the calling thread: the
/// hand-off to the [`pool`](crate::pool) costs about a microsecond.
const PARALLEL_MIN_BYTES: usize = 48 * 1024;

/// Weight bytes per block of rows in [`QMatrix::matmul`]: small enough to
/// stay in L1 while each activation vector of the batch passes through.
const MATMUL_BLOCK_BYTES: usize = 16 * 1024;

/// Activation bytes per pass of a [`QMatrix::matmul`] span: well inside
/// a 1-2 MB L2, beside the span's weights.
const MATMUL_ACTS_BYTES: usize = 1 << 20;

/// Most rows of one thread's share of a [`QMatrix::matmul`]; shares are
/// multiples of 16 rows, whole 64-byte lines of each output row.
const SPAN_ROWS: usize = 64;

/// Chunks per pool thread: a few, so that a thread that is descheduled or
/// slower is balanced by the others.
const CHUNKS_PER_THREAD: usize = 4;

/// Rows per chunk: a multiple of 4 so that the 4-row kernels see whole
/// groups, and at least 16.
fn rows_per_chunk(rows: usize, threads: usize) -> usize {
    let chunks = CHUNKS_PER_THREAD * threads.max(1);
    rows.div_ceil(chunks).next_multiple_of(4).max(16)
}

thread_local! {
    /// [`QMatrix::matmul`]'s activations as the tiles read them, where a
    /// tier rearranges them ([`Kernels::tile_acts`]): grown once per thread.
    static TILE_ACTS: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// A borrowed row-major matrix of `rows` rows of `cols` elements in `qtype`:
/// one GGUF 2-D tensor (ne0 = cols, ne1 = rows) or one expert's slab.
#[derive(Debug, Clone, Copy)]
pub struct QMatrix<'a> {
    pub qtype: QType,
    pub rows: usize,
    pub cols: usize,
    pub bytes: &'a [u8],
}

impl<'a> QMatrix<'a> {
    /// A checked view: `qtype` must be a weight type, `cols` a whole number
    /// of blocks, and `bytes.len() == rows · row_bytes(cols)`.
    pub fn new(qtype: QType, rows: usize, cols: usize, bytes: &'a [u8]) -> Option<Self> {
        if !qtype.is_weight_type() {
            return None;
        }
        let need = qtype.row_bytes_usize(cols)?.checked_mul(rows)?;
        (bytes.len() == need).then_some(Self {
            qtype,
            rows,
            cols,
            bytes,
        })
    }

    /// Bytes of one row.
    ///
    /// # Panics
    /// If `cols` is not a whole number of blocks (only possible for a
    /// `QMatrix` built by hand rather than with [`Self::new`]).
    pub fn row_bytes(&self) -> usize {
        self.qtype.row_bytes_usize(self.cols).unwrap_or_else(|| {
            panic!(
                "QMatrix: {} columns is not a whole number of {} blocks",
                self.cols, self.qtype
            )
        })
    }

    /// Row `i`'s bytes.
    ///
    /// # Panics
    /// If `i >= rows`.
    pub fn row(&self, i: usize) -> &'a [u8] {
        assert!(i < self.rows, "row {i} out of {} rows", self.rows);
        let rb = self.row_bytes();
        &self.bytes[i * rb..(i + 1) * rb]
    }

    /// Dequantize row `i` into `dst` (`cols` elements), e.g. an embedding lookup.
    pub fn dequantize_row(&self, i: usize, dst: &mut [f32]) {
        crate::dequantize_row(self.qtype, self.row(i), dst);
    }

    /// `out[r] = row_r · act` for every row, with `act` already quantized to
    /// `qtype.vec_dot_type()`, using the active [`tier`]'s multi-row kernel.
    /// Large matrices are split across the compute [`pool`](crate::pool) in chunks of rows.
    /// Does not allocate.
    ///
    /// # Panics
    /// If `act` is not `cols` elements of the activation type or
    /// `out.len() != rows`.
    pub fn matvec(&self, act: &[u8], out: &mut [f32]) {
        self.matvec_with(tier(), act, out);
    }

    /// [`Self::matvec`] with the kernels of a given `tier`. Each output is
    /// bit-identical to that tier's `vec_dot` of the row.
    ///
    /// # Panics
    /// As [`Self::matvec`], and if this CPU cannot run `tier`.
    pub fn matvec_with(&self, tier: Tier, act: &[u8], out: &mut [f32]) {
        self.matvec_on(crate::pool::global(), tier, act, out);
    }

    /// [`Self::matvec_with`] on a given compute pool (e.g. a one-thread
    /// pool, for benchmarks).
    pub fn matvec_on(&self, pool: &crate::pool::Pool, tier: Tier, act: &[u8], out: &mut [f32]) {
        assert_eq!(
            out.len(),
            self.rows,
            "matvec: out has {} slots for {} rows",
            out.len(),
            self.rows
        );
        if self.rows == 0 {
            return;
        }
        assert!(
            self.qtype.is_weight_type(),
            "matvec: {} is not a weight type",
            self.qtype
        );
        let k = kernels_for(tier, self.qtype)
            .unwrap_or_else(|| panic!("matvec: tier {tier} is not available on this CPU"));
        let (rb, cols) = (self.row_bytes(), self.cols);
        assert_eq!(
            Some(self.bytes.len()),
            rb.checked_mul(self.rows),
            "matvec: matrix bytes do not match its shape"
        );
        check_lengths(self.qtype, rb, act.len(), cols);
        let run = |first_row: usize, out: &mut [f32]| {
            (k.rows)(&self.bytes[first_row * rb..], rb, act, cols, out);
        };
        if self.bytes.len() < PARALLEL_MIN_BYTES || pool.threads() < 2 {
            run(0, out);
        } else {
            let chunk = rows_per_chunk(self.rows, pool.threads());
            pool.for_each_slice_mut(out, chunk, &|c, o| run(c * chunk, o));
        }
    }

    /// `out[j·rows + r] = row_r · act_j` for `n` activation vectors stored
    /// back to back in `acts` (each `cols` elements of the activation type):
    /// a matrix-matrix product for a batch of tokens. Each output is
    /// bit-identical to the tier's `vec_dot` of the row, as in
    /// [`Self::matvec`]; the weights are streamed once per batch in blocks of
    /// rows that stay in L1 while every vector passes through. Allocates
    /// only where a tier rearranges the activations for its tiles
    /// ([`Kernels::tile_acts`]): a per-thread copy, grown to the largest
    /// batch seen.
    ///
    /// # Panics
    /// If `acts` is not `n` vectors of `cols` elements of the activation
    /// type or `out.len() != n · rows`.
    pub fn matmul(&self, acts: &[u8], n: usize, out: &mut [f32]) {
        self.matmul_with(tier(), acts, n, out);
    }

    /// [`Self::matmul`] with the kernels of a given `tier`.
    pub fn matmul_with(&self, tier: Tier, acts: &[u8], n: usize, out: &mut [f32]) {
        if n == 1 {
            return self.matvec_with(tier, acts, out);
        }
        assert_eq!(out.len(), n * self.rows, "matmul: out has {} slots for {n} × {} rows", out.len(), self.rows);
        if n == 0 || self.rows == 0 {
            return;
        }
        let act_row = self.qtype.vec_dot_type().row_bytes_usize(self.cols).unwrap_or(0);
        assert_eq!(acts.len(), n * act_row, "matmul: {} activation bytes for {n} vectors of {act_row}", acts.len());
        let k = kernels_for(tier, self.qtype)
            .unwrap_or_else(|| panic!("matmul: tier {tier} is not available on this CPU"));
        let (rb, cols) = (self.row_bytes(), self.cols);
        assert_eq!(Some(self.bytes.len()), rb.checked_mul(self.rows), "matmul: matrix bytes do not match its shape");
        check_lengths(self.qtype, rb, act_row, cols);
        match k.tile_acts {
            Some(arrange) if k.tile.is_some() && n >= 4 => TILE_ACTS.with(|cell| {
                // A nested matmul on this thread (none today) would get a
                // buffer of its own.
                let mut fresh = Vec::new();
                let mut held = cell.try_borrow_mut();
                let buf = match held.as_deref_mut() {
                    Ok(b) => b,
                    Err(_) => &mut fresh,
                };
                buf.clear();
                buf.extend_from_slice(acts);
                buf.chunks_exact_mut(act_row).for_each(arrange);
                self.matmul_kernels(k, acts, buf, n, out);
            }),
            _ => self.matmul_kernels(k, acts, acts, n, out),
        }
    }

    /// [`Self::matmul_with`]'s work, with `tile_acts` the activations as
    /// `k.tile_acts` arranges them for the tiles (else `acts` again).
    fn matmul_kernels(&self, k: Kernels, acts: &[u8], tile_acts: &[u8], n: usize, out: &mut [f32]) {
        let (rb, cols) = (self.row_bytes(), self.cols);
        let act_row = acts.len() / n;
        let block = (MATMUL_BLOCK_BYTES / rb).clamp(4, 64) / 4 * 4;
        let act = |j: usize| &acts[j * act_row..(j + 1) * act_row];
        let tile_act = |j: usize| &tile_acts[j * act_row..(j + 1) * act_row];
        // Activations `tokens` (a range starting at a multiple of 4) against
        // one sub-block of `width` rows from `start` (L1-sized).
        let sub_block = |b: &mut ColumnBlock<'_, f32>, start: usize, width: usize, tokens: std::ops::Range<usize>| {
            let w = &self.bytes[(b.start() + start) * rb..(b.start() + start + width) * rb];
            // Tiles of 4 rows × 8 activations where the tier has them, then
            // 4 × 4, then the leftover rows and activations one activation
            // at a time.
            let (mut rows_done, mut acts_done) = (0, tokens.start);
            if let Some(tile) = k.tile {
                rows_done = width / 4 * 4;
                let mut out = |j: usize, r: usize, y: &[[f32; 4]]| {
                    for (c, yc) in y.iter().enumerate() {
                        b.row(j + c)[start + r..start + r + 4].copy_from_slice(yc);
                    }
                };
                if let Some(wide) = k.wide_tile {
                    while acts_done + 8 <= tokens.end {
                        let j = acts_done;
                        for r in (0..rows_done).step_by(4) {
                            out(j, r, &wide(&w[r * rb..], rb, core::array::from_fn(|c| tile_act(j + c)), cols));
                        }
                        acts_done += 8;
                    }
                }
                while acts_done + 4 <= tokens.end {
                    let j = acts_done;
                    for r in (0..rows_done).step_by(4) {
                        out(j, r, &tile(&w[r * rb..], rb, core::array::from_fn(|c| tile_act(j + c)), cols));
                    }
                    acts_done += 4;
                }
            }
            for j in tokens {
                let from = if j < acts_done { rows_done } else { 0 };
                if from < width {
                    (k.rows)(&w[from * rb..], rb, act(j), cols, &mut b.row(j)[start + from..start + width]);
                }
            }
        };
        // Tokens per pass over a span: as many as fit MATMUL_ACTS_BYTES, so
        // that they stay in L2 while the span's sub-blocks go by (a 512-token
        // batch of 14336-element activations is 8 MB); a multiple of 4.
        let group = (MATMUL_ACTS_BYTES / act_row.max(1)).max(4) / 4 * 4;
        // A thread's share is whole spans of 16 to SPAN_ROWS rows, so that
        // two threads never write the same cache line of `out` (16 f32 per
        // line, written once per token): with 4-row shares they did, which
        // cost 3% of a 7B prompt at 2 threads. Small matrices get shorter
        // spans, to keep CHUNKS_PER_THREAD chunks per thread.
        let run = |mut b: ColumnBlock<'_, f32>| {
            let width = b.width();
            for t0 in (0..n).step_by(group) {
                for start in (0..width).step_by(block) {
                    sub_block(&mut b, start, block.min(width - start), t0..(t0 + group).min(n));
                }
            }
        };
        let pool = crate::pool::for_work(self.bytes.len() * n >= PARALLEL_MIN_BYTES);
        let span = (self.rows / (pool.threads() * CHUNKS_PER_THREAD)).clamp(16, SPAN_ROWS) / 16 * 16;
        pool.for_each_column_block(out, self.rows, span, &run);
    }

    /// Quantize `x` into `scratch` (as `qtype.vec_dot_type()`), then [`Self::matvec`].
    pub fn matvec_f32(&self, x: &[f32], scratch: &mut Activations, out: &mut [f32]) {
        scratch.quantize(self.qtype.vec_dot_type(), x);
        self.matvec(scratch.bytes(), out);
    }
}

/// A reusable buffer of quantized activations: quantize once, multiply by
/// several matrices that share the activation type (gate, up, experts).
#[derive(Debug, Clone)]
pub struct Activations {
    act_type: QType,
    n: usize,
    bytes: Vec<u8>,
}

impl Default for Activations {
    fn default() -> Self {
        Self::new()
    }
}

impl Activations {
    /// An empty buffer; it grows on first use and is reused after that.
    pub fn new() -> Self {
        Self {
            act_type: QType::F32,
            n: 0,
            bytes: Vec::new(),
        }
    }

    /// An empty buffer with room for `n` elements of any activation type.
    pub fn with_capacity(n: usize) -> Self {
        Self {
            act_type: QType::F32,
            n: 0,
            bytes: Vec::with_capacity(4 * n),
        }
    }

    /// Quantize `x` as `act_type` (see [`crate::quantize_activations`]),
    /// replacing the previous contents. Does not allocate once the buffer
    /// has held a row at least this large.
    pub fn quantize(&mut self, act_type: QType, x: &[f32]) {
        let len = act_type.row_bytes_usize(x.len()).unwrap_or_else(|| {
            panic!(
                "Activations::quantize: {} elements is not a whole number of {act_type} blocks",
                x.len()
            )
        });
        self.bytes.resize(len, 0);
        quantize_activations(act_type, x, &mut self.bytes);
        self.act_type = act_type;
        self.n = x.len();
    }

    /// The type the buffer currently holds.
    pub fn act_type(&self) -> QType {
        self.act_type
    }

    /// Elements currently held.
    pub fn n(&self) -> usize {
        self.n
    }

    /// The quantized bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}
