//! Portable SIMD kernels through the `wide` crate.

pub(crate) fn kernels(_t: crate::QType) -> Option<crate::dispatch::Kernels> {
    None
}
