//! The public kernel surface, which picks an implementation tier once.
//!
//! Tiers, best first: [`Tier::Avx512Vnni`] > [`Tier::Avx2`] > [`Tier::Portable`]
//! ([`Tier::Scalar`] is the reference and is never picked automatically).
//! [`tier`] detects the best one the CPU supports at run time, once. The
//! `MOE_QUANT_TIER` environment variable (`scalar`, `portable`, `avx2`,
//! `avx512`) forces one; a tier the CPU lacks (or an unknown name) falls back
//! to the best available tier with a one-line warning on stderr, so forcing
//! never executes an unsupported instruction.
//!
//! For the quantized formats (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, MXFP4 and the
//! K-quants) every tier is bit-identical to the scalar one, which follows
//! llama.cpp's x86 float order. For the float types every tier agrees with
//! the scalar one up to float reassociation: only the order in which the
//! products are summed differs (see `tests/simd_vs_scalar.rs`).
//!
//! Activation precondition: the Q8_0/Q8_1/Q8_K quants must lie in
//! -127..=127, which [`crate::quantize_activations`] guarantees. (Only the
//! AVX2 Q8_0 kernel's sign trick could differ on a −128 activation facing a
//! negative weight; every other kernel is exact for any bytes.)

use std::sync::OnceLock;

use crate::QType;

/// A dot product of one weight row (`w_row`, in the weight type) with one
/// activation row (`act`, in the weight type's `vec_dot_type`), both of `n`
/// elements. Implementations may assume the lengths were validated: a
/// mismatched length gives a wrong number (the rows are cut to the shorter
/// length), never a memory error.
pub type VecDotFn = fn(w_row: &[u8], act: &[u8], n: usize) -> f32;

/// Dot products of `out.len()` consecutive weight rows of `row_bytes` bytes
/// each (from the start of `w`) with one activation row of `n` elements:
/// `out[i] = dot(w[i·row_bytes..][..row_bytes], act)`. The result for each
/// row is bit-identical to the tier's [`VecDotFn`] on that row; SIMD tiers
/// process several rows per pass over the activations.
///
/// # Panics
/// If `w` holds fewer than `out.len()` rows.
pub type RowsDotFn = fn(w: &[u8], row_bytes: usize, act: &[u8], n: usize, out: &mut [f32]);

/// Dot products of 4 consecutive weight rows of `row_bytes` bytes (from
/// the start of `w`) with 4 activation rows of `n` elements:
/// `out[c][r] = dot(row r, acts[c])`, each bit-identical to the tier's
/// [`VecDotFn`]. Each weight block is decoded once for the 4 activations:
/// the inner kernel of a matrix-matrix product. Where the tier's
/// [`Kernels::tile_acts`] is set, `acts` are rearranged by it.
///
/// # Panics
/// If `w` holds fewer than 4 rows.
pub type TileFn = fn(w: &[u8], row_bytes: usize, acts: [&[u8]; 4], n: usize) -> [[f32; 4]; 4];

/// A [`TileFn`] of 4 rows × 8 activations: `out[c][r] = dot(row r,
/// acts[c])`, each bit-identical to the tier's [`VecDotFn`]; each weight
/// block is decoded once for 8 activations.
///
/// # Panics
/// If `w` holds fewer than 4 rows.
pub type WideTileFn = fn(w: &[u8], row_bytes: usize, acts: [&[u8]; 8], n: usize) -> [[f32; 4]; 8];

/// Rearranges one activation row (in the weight type's `vec_dot_type`) in
/// place into the order a tier's tiles read ([`Kernels::tile_acts`]).
pub type TileActsFn = fn(act: &mut [u8]);

/// The kernels of one tier for one weight type.
#[derive(Clone, Copy)]
pub struct Kernels {
    /// One row.
    pub dot: VecDotFn,
    /// Several consecutive rows (matvec).
    pub rows: RowsDotFn,
    /// 4 rows × 4 activations (matmul), where the tier has one.
    pub tile: Option<TileFn>,
    /// 4 rows × 8 activations (matmul), where the tier has one (and a
    /// `tile`, which takes the tokens left over).
    pub wide_tile: Option<WideTileFn>,
    /// Where set, `tile` and `wide_tile` read activation rows rearranged
    /// by this function (once per matmul), not as quantized; `dot` and
    /// `rows` read them as quantized.
    pub tile_acts: Option<TileActsFn>,
}

impl std::fmt::Debug for Kernels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Kernels")
    }
}

/// A family of kernel implementations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Tier {
    /// Reference kernels ([`crate::scalar`]); runs everywhere.
    Scalar,
    /// Portable SIMD through the `wide` crate; runs on every architecture.
    /// The quantized formats, F16 and F32 have `wide` kernels; BF16 uses
    /// the scalar kernel inside this tier.
    Portable,
    /// x86-64 AVX2 + FMA + F16C.
    Avx2,
    /// x86-64 AVX-512 F/BW/VL with VNNI (`vpdpbusd`), plus AVX2/FMA/F16C.
    Avx512Vnni,
}

impl Tier {
    /// Every tier, worst first.
    pub const ALL: [Tier; 4] = [Tier::Scalar, Tier::Portable, Tier::Avx2, Tier::Avx512Vnni];

    /// The name used by `MOE_QUANT_TIER`.
    pub fn name(self) -> &'static str {
        match self {
            Tier::Scalar => "scalar",
            Tier::Portable => "portable",
            Tier::Avx2 => "avx2",
            Tier::Avx512Vnni => "avx512",
        }
    }

    /// The tier called `name` (as [`Tier::name`] spells it).
    pub fn from_name(name: &str) -> Option<Tier> {
        Tier::ALL.into_iter().find(|t| t.name() == name)
    }

    /// Whether this CPU can run the tier (detected at run time).
    pub fn is_available(self) -> bool {
        match self {
            Tier::Scalar | Tier::Portable => true,
            Tier::Avx2 => avx2_available(),
            Tier::Avx512Vnni => avx512_available(),
        }
    }
}

impl std::fmt::Display for Tier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(target_arch = "x86_64")]
fn avx2_available() -> bool {
    crate::simd::avx2::available()
}
#[cfg(not(target_arch = "x86_64"))]
fn avx2_available() -> bool {
    false
}
#[cfg(target_arch = "x86_64")]
fn avx512_available() -> bool {
    crate::simd::avx512::available()
}
#[cfg(not(target_arch = "x86_64"))]
fn avx512_available() -> bool {
    false
}

/// The tiers this CPU supports, worst first (always starts with
/// [`Tier::Scalar`] and [`Tier::Portable`]).
pub fn available_tiers() -> Vec<Tier> {
    Tier::ALL.into_iter().filter(|t| t.is_available()).collect()
}

/// The best tier this CPU supports.
pub fn best_tier() -> Tier {
    *available_tiers()
        .last()
        .expect("scalar is always available")
}

/// The tier in use, chosen on first call: `MOE_QUANT_TIER` if set to an
/// available tier, else [`best_tier`].
pub fn tier() -> Tier {
    static TIER: OnceLock<Tier> = OnceLock::new();
    *TIER.get_or_init(|| {
        let best = best_tier();
        match std::env::var("MOE_QUANT_TIER") {
            Err(_) => best,
            Ok(v) => match Tier::from_name(v.trim()) {
                Some(t) if t.is_available() => t,
                Some(t) => {
                    eprintln!(
                        "moe-quant: MOE_QUANT_TIER={t} is not supported by this CPU; using {best}"
                    );
                    best
                }
                None => {
                    eprintln!(
                        "moe-quant: unknown MOE_QUANT_TIER={v:?} \
                         (scalar|portable|avx2|avx512); using {best}"
                    );
                    best
                }
            },
        }
    })
}

/// The kernels of `tier` for weights of `w_type`, or `None` for the
/// activation-only types (Q8_1, Q8_K) and for a tier this CPU cannot run.
pub fn kernels_for(tier: Tier, w_type: QType) -> Option<Kernels> {
    if !w_type.is_weight_type() || !tier.is_available() {
        return None;
    }
    let simd = match tier {
        Tier::Scalar => None,
        Tier::Portable => crate::simd::portable::kernels(w_type),
        #[cfg(target_arch = "x86_64")]
        Tier::Avx2 => crate::simd::avx2::kernels(w_type)
            .map(|k| Kernels {
                tile: crate::simd::avx2::tile(w_type),
                wide_tile: crate::simd::avx2::wide_tile(w_type),
                tile_acts: crate::simd::avx2::tile_acts(w_type),
                ..k
            }),
        #[cfg(target_arch = "x86_64")]
        Tier::Avx512Vnni => crate::simd::avx512::kernels(w_type)
            .map(|k| Kernels { tile: crate::simd::avx512::tile(w_type), wide_tile: crate::simd::avx512::wide_tile(w_type), ..k }),
        #[cfg(not(target_arch = "x86_64"))]
        Tier::Avx2 | Tier::Avx512Vnni => None,
    };
    simd.or_else(|| crate::scalar::kernels(w_type))
}

/// The dot kernel of `tier` for weights of `w_type`, or `None` for the
/// activation-only types and for a tier this CPU cannot run.
pub fn vec_dot_fn_for(tier: Tier, w_type: QType) -> Option<VecDotFn> {
    kernels_for(tier, w_type).map(|k| k.dot)
}

/// The multi-row kernel of `tier` for weights of `w_type` (see [`RowsDotFn`]).
pub fn rows_dot_fn_for(tier: Tier, w_type: QType) -> Option<RowsDotFn> {
    kernels_for(tier, w_type).map(|k| k.rows)
}

/// The kernel of the active [`tier`] for weights of `w_type`.
pub fn vec_dot_fn(w_type: QType) -> Option<VecDotFn> {
    vec_dot_fn_for(tier(), w_type)
}

/// Dot product of a weight row of `n` elements in `w_type` with activations
/// already quantized to `w_type.vec_dot_type()` (see
/// [`crate::quantize_activations`]), with the active tier's kernel.
///
/// # Panics
/// If `w_type` is activation-only, `n` is not a whole number of blocks, or a
/// slice length does not match `n`.
pub fn vec_dot(w_type: QType, w_row: &[u8], act: &[u8], n: usize) -> f32 {
    vec_dot_with(tier(), w_type, w_row, act, n)
}

/// [`vec_dot`] with the kernel of a given `tier`.
///
/// # Panics
/// As [`vec_dot`], and if this CPU cannot run `tier`.
pub fn vec_dot_with(tier: Tier, w_type: QType, w_row: &[u8], act: &[u8], n: usize) -> f32 {
    assert!(
        w_type.is_weight_type(),
        "vec_dot: {w_type} is not a weight type"
    );
    let f = vec_dot_fn_for(tier, w_type)
        .unwrap_or_else(|| panic!("vec_dot: tier {tier} is not available on this CPU"));
    check_lengths(w_type, w_row.len(), act.len(), n);
    f(w_row, act, n)
}

pub(crate) fn check_lengths(w_type: QType, w_len: usize, act_len: usize, n: usize) {
    let act_type = w_type.vec_dot_type();
    let (w_want, a_want) = (w_type.row_bytes_usize(n), act_type.row_bytes_usize(n));
    assert_eq!(
        Some(w_len),
        w_want,
        "vec_dot: {w_type} row of {n} needs {w_want:?} bytes, got {w_len}"
    );
    assert_eq!(
        Some(act_len),
        a_want,
        "vec_dot: {act_type} activations of {n} need {a_want:?} bytes, got {act_len}"
    );
}
