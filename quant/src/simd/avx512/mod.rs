//! AVX-512 (F/BW/VL) + VNNI kernels (x86-64).

/// Whether this CPU has AVX-512 F, BW, VL and VNNI (and AVX2, FMA, F16C).
pub(crate) fn available() -> bool {
    super::avx2::available()
        && std::arch::is_x86_feature_detected!("avx512f")
        && std::arch::is_x86_feature_detected!("avx512bw")
        && std::arch::is_x86_feature_detected!("avx512vl")
        && std::arch::is_x86_feature_detected!("avx512vnni")
}

pub(crate) fn kernels(_t: crate::QType) -> Option<crate::dispatch::Kernels> {
    None
}
