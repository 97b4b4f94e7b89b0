//! AVX-512 (F/BW/VL) + VNNI kernels (x86-64): 512-bit vectors, `vpdpbusd`
//! for the 32-element formats, 64-wide `maddubs` for the K-quants.
//!
//! Every kernel is a `#[target_feature]` function; [`kernels`] hands out
//! safe wrappers only after [`available`] has confirmed the features at run
//! time, which is what makes calling them sound. (The feature list includes
//! AVX2/FMA/F16C, so the AVX2 helpers are callable from here.)

mod float;
mod ktile;
mod legacy;
mod mxfp4;
mod q2k_q3k_q6k;
mod q4k_q5k;
mod util;

use super::avx2::{kernel_table, tile_fn, tile_table};

/// Whether this CPU has AVX-512 F, BW, VL and VNNI (and AVX2, FMA, F16C).
pub(crate) fn available() -> bool {
    super::avx2::available()
        && std::arch::is_x86_feature_detected!("avx512f")
        && std::arch::is_x86_feature_detected!("avx512bw")
        && std::arch::is_x86_feature_detected!("avx512vl")
        && std::arch::is_x86_feature_detected!("avx512vnni")
}

// Rows per pass (last column), measured with benches/kernels.rs at L2 size:
// 4 rows for the legacy and float kernels, except Q4_0 and MXFP4 with 8
// (the shared activation work weighs most there: Q4_0 L2 13.0 -> 14.0
// GB/s, MXFP4 14.3 -> 15.2 and DRAM 12.3 -> 13.3; Q8_0 loses 8 % with 8),
// 2 for the K-quants (4 is no faster there and spills more).
kernel_table! {
    features = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c";
    F32 => float::dot_f32, 4;
    F16 => float::dot_f16, 4;
    BF16 => float::dot_bf16, 4;
    Q4_0 => legacy::q4_0, 8;
    Q4_1 => legacy::q4_1, 4;
    Q5_0 => legacy::q5_0, 4;
    Q5_1 => legacy::q5_1, 4;
    Q8_0 => legacy::q8_0, 4;
    Q2_K => q2k_q3k_q6k::q2_k, 2;
    Q3_K => q2k_q3k_q6k::q3_k, 2;
    Q4_K => q4k_q5k::q4_k, 2;
    Q5_K => q4k_q5k::q5_k, 2;
    Q6_K => q2k_q3k_q6k::q6_k, 2;
    MXFP4 => mxfp4::mxfp4, 8;
}

tile_table! {
    tile: crate::dispatch::TileFn, crate::simd::TILE;
    Q4_0 => legacy::tile::q4_0;
    Q4_1 => legacy::tile::q4_1;
    Q5_0 => legacy::tile::q5_0;
    Q5_1 => legacy::tile::q5_1;
    Q8_0 => legacy::tile::q8_0;
    Q2_K => ktile::q2_k;
    Q3_K => ktile::q3_k;
    Q4_K => ktile::q4_k;
    Q5_K => ktile::q5_k;
    Q6_K => ktile::q6_k;
    MXFP4 => mxfp4::tile;
}

// The wide tiles (4 rows × 8 activations) where they beat two 4 × 4 tiles:
// each row's codes and scales are made once for twice the activations.
// `cargo bench -p moe-quant --bench kernels -- pp512 q4_k q5_k avx512`
// (GMAC/s, 2 threads, 4 × 4 -> 4 × 8): Q4_K 14336x4096 178-179 -> 180-181,
// 4096x14336 183-187 -> 200-213; Q5_K 150-160 -> 159-165, 158-164 -> 174-178.
// The tiles look bound by their multiplies (`vpmaddubsw` + `vpdpwssd`, two
// per 64 products, which vec_dot's lanes fix): halving the decoding work
// per activation gained at most 10%. Q6_K's 4 × 8 tile was slower (148 -> 136: LLVM kept its loops).
tile_table! {
    wide_tile: crate::dispatch::WideTileFn, crate::simd::WIDE;
    Q4_K => ktile::q4_k;
    Q5_K => ktile::q5_k;
}
