//! The KV cache: each layer's rotated keys and values for every position,
//! `[n_layer][positions][kv_dim]`, in f32, f16 (llama.cpp's default) or
//! Q8_0; an all-f16 cache's keys in tiles of 64 positions ([`KeyTiles`]).
//! A sliding-window layer (gpt-oss) keeps a ring of [`ring_positions`]
//! instead of the whole context: position t in slot t mod that, so its
//! memory does not grow with the context; how far back a session can then
//! rewind is [`KvCache::can_rewind_to`].

use std::fmt;

use half::f16;
use half::slice::{HalfBitsSliceExt, HalfFloatSliceExt};

use crate::config::ModelConfig;
use crate::error::{Error, Result};
use moe_quant::{quantize_activations, QType};

/// How one side (keys or values) of the cache stores its numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KvElem {
    F32,
    F16,
    /// llama.cpp's Q8_0 blocks: 32 values as an f16 scale and 32 int8
    /// (34 bytes), quantized as llama.cpp's copy into its cache does.
    Q8_0,
}

impl KvElem {
    /// The names llama.cpp's `-ctk`/`-ctv` take.
    pub fn parse(s: &str) -> Option<KvElem> {
        match s {
            "f32" => Some(KvElem::F32),
            "f16" => Some(KvElem::F16),
            "q8_0" => Some(KvElem::Q8_0),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            KvElem::F32 => "f32",
            KvElem::F16 => "f16",
            KvElem::Q8_0 => "q8_0",
        }
    }

    /// Bytes for `n` values (a whole number of 32-value blocks for Q8_0),
    /// saturating.
    pub fn bytes_for(self, n: u64) -> u64 {
        match self {
            KvElem::F32 => n.saturating_mul(4),
            KvElem::F16 => n.saturating_mul(2),
            KvElem::Q8_0 => n.div_ceil(32).saturating_mul(34),
        }
    }
}

/// The KV cache's key and value types, as llama.cpp's `-ctk`/`-ctv`:
/// both f32 is its arithmetic without flash attention (exact keys and
/// values); otherwise each side is f16 or q8_0 and attention is its flash
/// attention's arithmetic on those (f16 for both is its default).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KvType {
    pub k: KvElem,
    pub v: KvElem,
}

impl Default for KvType {
    fn default() -> KvType {
        KvType::F32
    }
}

impl KvType {
    pub const F32: KvType = KvType { k: KvElem::F32, v: KvElem::F32 };
    pub const F16: KvType = KvType { k: KvElem::F16, v: KvElem::F16 };
    pub const Q8_0: KvType = KvType { k: KvElem::Q8_0, v: KvElem::Q8_0 };

    /// A key and a value type; f32 only for both (f32 with another type
    /// is a combination llama.cpp's CPU flash attention does not run).
    pub fn new(k: KvElem, v: KvElem) -> Result<KvType, String> {
        if (k == KvElem::F32) != (v == KvElem::F32) {
            return Err(format!(
                "a KV cache of {} keys and {} values is not supported: use f32 for both, or f16/q8_0 for each",
                k.name(),
                v.name()
            ));
        }
        Ok(KvType { k, v })
    }

    /// Whether attention runs llama.cpp's flash-attention arithmetic.
    pub fn flash(self) -> bool {
        self.k != KvElem::F32
    }

    /// Bytes of `n` key values and `n` value values.
    pub fn bytes_for(self, n: u64) -> u64 {
        self.k.bytes_for(n).saturating_add(self.v.bytes_for(n))
    }
}

impl fmt::Display for KvType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.k == self.v {
            f.write_str(self.k.name())
        } else {
            write!(f, "{} K, {} V", self.k.name(), self.v.name())
        }
    }
}

/// One side of the cache.
pub enum KvStore {
    F32(Vec<f32>),
    /// f16 bit patterns.
    F16(Vec<u16>),
    /// Q8_0 blocks; a position's row is `kv_dim / 32` blocks.
    Q8_0(Vec<u8>),
}

impl KvStore {
    fn new(elem: KvElem, n: usize) -> KvStore {
        match elem {
            KvElem::F32 => KvStore::F32(vec![0.0; n]),
            KvElem::F16 => KvStore::F16(vec![0; n]),
            KvElem::Q8_0 => KvStore::Q8_0(vec![0; n / 32 * 34]),
        }
    }

    /// Writes `x` at value offset `at` (a multiple of 32 for Q8_0).
    fn store(&mut self, at: usize, x: &[f32]) {
        match self {
            KvStore::F32(s) => s[at..at + x.len()].copy_from_slice(x),
            KvStore::F16(s) => s[at..at + x.len()].reinterpret_cast_mut::<f16>().convert_from_f32_slice(x),
            KvStore::Q8_0(s) => {
                let (from, n) = (at / 32 * 34, x.len() / 32 * 34);
                quantize_activations(QType::Q8_0, x, &mut s[from..from + n]);
            }
        }
    }
}

/// Positions per key tile of an all-f16 cache (llama.cpp's tiled flash
/// attention's `GGML_FA_TILE_KV`).
pub const KEY_TILE: usize = 64;

/// The most tokens a session runs in one pass over a sliding-window
/// layer's ring (a prompt micro-batch, a speculative verification): the
/// ring holds the window and this many positions more.
pub const RING_SLACK: usize = 4096;

/// The positions layer `l`'s cache holds for a context of `n_ctx`: all of
/// them, or for a sliding-window layer a ring of its window plus `slack`
/// ([`RING_SLACK`]; tests take less), in whole key tiles, if that is fewer.
pub fn ring_positions(c: &ModelConfig, l: usize, n_ctx: usize, slack: usize) -> usize {
    match c.window(l) {
        Some(w) => n_ctx.min(w.saturating_add(slack).div_ceil(KEY_TILE) * KEY_TILE),
        None => n_ctx,
    }
}

/// Where one KV head's keys lie in an all-f16 cache, which stores keys in
/// tiles of [`KEY_TILE`] positions, dimension-major within a tile (so that
/// attention reads a tile's keys with positions in the vector lanes, as
/// its scores need them, without transposing): position t's dimension d
/// at `offset + (t / KEY_TILE)·tile_stride + d·KEY_TILE + t % KEY_TILE`.
/// A tile's lanes past the last stored position hold zeros or older
/// values. In a ring (`wrap` positions, whole tiles) position t is stored
/// as t mod `wrap`.
#[derive(Debug, Clone, Copy)]
pub struct KeyTiles {
    pub offset: usize,
    pub tile_stride: usize,
    pub wrap: usize,
}

impl KeyTiles {
    /// Where the tile holding position `t0` (a multiple of [`KEY_TILE`])
    /// starts: `head_dim · KEY_TILE` values from there.
    pub fn tile(self, t0: usize) -> usize {
        self.offset + (t0 % self.wrap) / KEY_TILE * self.tile_stride
    }

    /// Where position t's dimension d lies.
    pub fn at(self, t: usize, d: usize) -> usize {
        self.tile(t) + d * KEY_TILE + t % KEY_TILE
    }
}

pub struct KvCache {
    kv_dim: usize,
    head_dim: usize,
    /// Keys in [`KeyTiles`] (an all-f16 cache), each layer's
    /// positions rounded up to whole tiles; otherwise position-major as
    /// the values.
    key_tiles: bool,
    /// Each layer's positions ([`ring_positions`]), where its keys and
    /// values start (in values), and its window if it is a ring.
    positions: Vec<usize>,
    key_base: Vec<usize>,
    value_base: Vec<usize>,
    rings: Vec<Option<usize>>,
    /// One past the highest position stored since the last reset: a ring
    /// has overwritten every position below `stored_end − its positions`.
    stored_end: usize,
    pub k: KvStore,
    pub v: KvStore,
    /// The chunk sizes of the Hadamard rotations of a quantized cache
    /// ([`super::hadamard`]): Q and K, V and the attention output.
    pub rotate_k: Option<usize>,
    pub rotate_v: Option<usize>,
}

impl KvCache {
    /// A zeroed cache of `n_ctx` positions, sliding-window layers in rings
    /// of their window plus `slack` ([`RING_SLACK`]). A Q8_0 side needs a head size
    /// that is a whole number of 32-value blocks (as llama.cpp's flash
    /// attention). The config's sizes are bounded (`config::limits`), but
    /// a context is the caller's: an element count past usize is an
    /// error, not a wrapped (release) or panicking (debug) multiplication.
    pub fn with_ring_slack(c: &ModelConfig, n_ctx: usize, kv_type: KvType, slack: usize) -> Result<KvCache> {
        let kv_type = KvType::new(kv_type.k, kv_type.v).map_err(Error::InvalidArgument)?;
        let hd = c.head_dim;
        if (kv_type.k == KvElem::Q8_0 || kv_type.v == KvElem::Q8_0) && !hd.is_multiple_of(32) {
            return Err(Error::InvalidArgument(format!("a q8_0 KV cache needs a head size that is a multiple of 32; this model's is {hd}")));
        }
        let key_tiles = kv_type == KvType::F16;
        let too_big = || {
            Error::InvalidArgument(format!(
                "a context of {n_ctx} positions needs a KV cache of {} layers × {n_ctx} × {} values, more than this machine can address; lower -c/--ctx-size",
                c.n_layer,
                c.kv_dim()
            ))
        };
        let kv_dim = c.kv_dim();
        let (mut positions, mut key_base, mut value_base, mut rings) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let (mut n_keys, mut n_values) = (0usize, 0usize);
        for l in 0..c.n_layer {
            let p = ring_positions(c, l, n_ctx, slack);
            // Keys may be padded to whole tiles.
            let p_keys = if key_tiles { p.div_ceil(KEY_TILE).checked_mul(KEY_TILE).ok_or_else(too_big)? } else { p };
            positions.push(p);
            key_base.push(n_keys);
            value_base.push(n_values);
            rings.push(c.window(l).filter(|_| p < n_ctx));
            n_keys = p_keys.checked_mul(kv_dim).and_then(|x| x.checked_add(n_keys)).ok_or_else(too_big)?;
            n_values = p.checked_mul(kv_dim).and_then(|x| x.checked_add(n_values)).ok_or_else(too_big)?;
        }
        let (rotate_k, rotate_v) = super::hadamard::rotations(kv_type.k == KvElem::Q8_0, kv_type.v == KvElem::Q8_0, hd);
        Ok(KvCache {
            kv_dim,
            head_dim: hd,
            key_tiles,
            positions,
            key_base,
            value_base,
            rings,
            stored_end: 0,
            k: KvStore::new(kv_type.k, n_keys),
            v: KvStore::new(kv_type.v, n_values),
            rotate_k,
            rotate_v,
        })
    }

    /// The cache's bytes (keys and values, all layers).
    pub fn bytes(&self) -> u64 {
        let side = |s: &KvStore| match s {
            KvStore::F32(v) => 4 * v.len() as u64,
            KvStore::F16(v) => 2 * v.len() as u64,
            KvStore::Q8_0(v) => v.len() as u64,
        };
        side(&self.k) + side(&self.v)
    }

    /// Whether a session that stored positions up to `stored_end` can go
    /// back to `pos` and go on from there: every ring still holds the
    /// window before `pos` (position 0 always: nothing is needed).
    pub fn can_rewind_to(&self, pos: usize) -> bool {
        pos == 0
            || self.rings.iter().zip(&self.positions).all(|(ring, &held)| match ring {
                // Positions below stored_end − held are overwritten; the
                // next token at `pos` sees pos + 1 − w onwards.
                Some(w) => (pos + 1).saturating_sub(*w) >= self.stored_end.saturating_sub(held),
                None => true,
            })
    }

    /// After a rewind to `pos` (see [`KvCache::can_rewind_to`]): position 0
    /// forgets what the rings overwrote.
    pub fn rewound(&mut self, pos: usize) {
        if pos == 0 {
            self.stored_end = 0;
        }
    }

    /// The most tokens a pass may hold: every ring keeps the window before
    /// its first token and all of its own (`usize::MAX` without rings).
    pub fn max_pass(&self) -> usize {
        self.rings.iter().zip(&self.positions).filter_map(|(ring, &held)| ring.map(|w| held + 1 - w.min(held))).min().unwrap_or(usize::MAX)
    }

    /// Stores position `pos` of layer `l` (rounded to f16 or quantized to
    /// Q8_0 as llama.cpp's copy into its cache does).
    pub fn store(&mut self, l: usize, pos: usize, k: &[f32], v: &[f32]) {
        self.stored_end = self.stored_end.max(pos + 1);
        let at = self.value_base[l] + (pos % self.positions[l]) * self.kv_dim;
        let (hd, kv_dim) = (self.head_dim, self.kv_dim);
        let first = self.key_tiles.then(|| self.key_tiles_of(l, 0));
        match (&mut self.k, first) {
            (KvStore::F16(keys), Some(first)) => {
                for (h, kh) in k[..kv_dim].chunks_exact(hd).enumerate() {
                    // KV head h's tiles follow head 0's by h·hd·KEY_TILE.
                    let tiles = KeyTiles { offset: first.offset + h * hd * KEY_TILE, ..first };
                    for (d, &x) in kh.iter().enumerate() {
                        keys[tiles.at(pos, d)] = f16::from_f32(x).to_bits();
                    }
                }
            }
            _ => self.k.store(at, &k[..self.kv_dim]),
        }
        self.v.store(at, &v[..self.kv_dim]);
    }

    fn key_tiles_of(&self, l: usize, kvh: usize) -> KeyTiles {
        let wrap = self.positions[l].div_ceil(KEY_TILE) * KEY_TILE;
        KeyTiles { offset: self.key_base[l] + kvh * self.head_dim * KEY_TILE, tile_stride: KEY_TILE * self.kv_dim, wrap }
    }

    /// Where KV head `kvh` of layer `l` lies in an all-f16 cache's keys.
    pub fn key_tiles(&self, l: usize, kvh: usize) -> KeyTiles {
        assert!(self.key_tiles, "keys in tiles: an all-f16 cache only");
        self.key_tiles_of(l, kvh)
    }

    /// Where KV head `kvh` of layer `l` lies in the value array, and in
    /// the key array unless keys are in tiles ([`KvCache::key_tiles`]):
    /// position t at `offset + t·stride`, in values (a Q8_0 side turns
    /// these into bytes with [`q8_0_layout`]).
    pub fn layout(&self, l: usize, kvh: usize, head_dim: usize) -> super::attention::ValueLayout {
        super::attention::ValueLayout { offset: self.value_base[l] + kvh * head_dim, stride: self.kv_dim, wrap: self.positions[l] }
    }
}

/// A layout in values as one in bytes of Q8_0 blocks (both are multiples
/// of 32 where a Q8_0 side exists, see [`KvCache::with_ring_slack`]).
pub fn q8_0_layout(l: super::attention::ValueLayout) -> super::attention::ValueLayout {
    super::attention::ValueLayout { offset: l.offset / 32 * 34, stride: l.stride / 32 * 34, wrap: l.wrap }
}
