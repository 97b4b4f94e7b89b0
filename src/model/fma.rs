//! Hardware FMA for the forward pass's element-wise loops.
//!
//! `f32::mul_add` is always fused (one rounding), which the llama.cpp-exact
//! arithmetic needs; but on the baseline x86-64 target it compiles to a
//! library call per element. [`fma_dispatch!`] compiles a loop a second
//! time with the CPU's FMA instructions and picks that copy at run time when
//! the CPU has them. Both copies compute the same fused operations, so
//! results are bit-identical either way. Its dispatch is one of the three
//! places that hold the model's `unsafe` (with [`super::flash_simd`] and
//! [`super::libm_exp`]).

/// Whether this CPU has FMA (checked once).
#[cfg(target_arch = "x86_64")]
pub fn available() -> bool {
    static FMA: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *FMA.get_or_init(|| std::is_x86_feature_detected!("fma") && std::is_x86_feature_detected!("avx2"))
}

/// Defines `pub fn $name(args) -> ret` that runs `$body` compiled with FMA
/// when the CPU supports it, else the same body compiled for the baseline.
macro_rules! fma_dispatch {
    ($(#[$m:meta])* pub fn $name:ident$(<$lt:lifetime>)?($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block) => {
        $(#[$m])*
        pub fn $name$(<$lt>)?($($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            fn body$(<$lt>)?($($arg: $ty),*) $(-> $ret)? $body

            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2,fma")]
                fn with_fma$(<$lt>)?($($arg: $ty),*) $(-> $ret)? {
                    body($($arg),*)
                }
                if $crate::model::fma::available() {
                    // SAFETY: `with_fma` only requires AVX2 and FMA, and
                    // `available()` checked that this CPU has them.
                    return unsafe { with_fma($($arg),*) };
                }
            }
            body($($arg),*)
        }
    };
}

pub(crate) use fma_dispatch;
