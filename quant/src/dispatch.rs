//! The public kernel surface, which picks an implementation tier once.
//!
//! Today only the scalar tier exists. SIMD tiers (AVX2, AVX-512 VNNI, `wide`)
//! will be added as further [`Tier`] variants; [`tier`] will then pick the
//! best one the CPU supports, and the `MOE_QUANT_TIER` environment variable
//! will force one for tests and benchmarks. Every tier must agree with the
//! scalar one to a stated tolerance.

use std::sync::OnceLock;

use crate::QType;

/// A dot product of one weight row (`w_row`, in the weight type) with one
/// activation row (`act`, in the weight type's `vec_dot_type`), both of `n`
/// elements. Implementations may assume the lengths were validated.
pub type VecDotFn = fn(w_row: &[u8], act: &[u8], n: usize) -> f32;

/// A family of kernel implementations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Tier {
    /// Portable reference kernels ([`crate::scalar`]).
    Scalar,
}

impl Tier {
    pub fn name(self) -> &'static str {
        match self {
            Tier::Scalar => "scalar",
        }
    }
}

/// The tier in use, chosen on first call. `MOE_QUANT_TIER=scalar` forces the
/// scalar tier; an unknown or unavailable value falls back to the default.
pub fn tier() -> Tier {
    static TIER: OnceLock<Tier> = OnceLock::new();
    *TIER.get_or_init(|| match std::env::var("MOE_QUANT_TIER").as_deref() {
        Ok("scalar") => Tier::Scalar,
        _ => Tier::Scalar,
    })
}

/// The kernel of `tier` for weights of `w_type`, or `None` for the
/// activation-only types (Q8_1, Q8_K), which have no dot product.
pub fn vec_dot_fn_for(tier: Tier, w_type: QType) -> Option<VecDotFn> {
    match tier {
        Tier::Scalar => crate::scalar::vec_dot_fn(w_type),
    }
}

/// The kernel of the active [`tier`] for weights of `w_type`.
pub fn vec_dot_fn(w_type: QType) -> Option<VecDotFn> {
    vec_dot_fn_for(tier(), w_type)
}

/// Dot product of a weight row of `n` elements in `w_type` with activations
/// already quantized to `w_type.vec_dot_type()` (see
/// [`crate::quantize_activations`]).
///
/// # Panics
/// If `w_type` is activation-only, `n` is not a whole number of blocks, or a
/// slice length does not match `n`.
pub fn vec_dot(w_type: QType, w_row: &[u8], act: &[u8], n: usize) -> f32 {
    let f = vec_dot_fn(w_type).unwrap_or_else(|| panic!("vec_dot: {w_type} is not a weight type"));
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
