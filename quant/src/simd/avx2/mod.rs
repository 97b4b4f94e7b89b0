//! AVX2 + FMA + F16C kernels (x86-64).
//!
//! Every kernel is a `#[target_feature]` function; [`kernels`] hands out
//! safe wrappers only after [`available`] has confirmed the features at run
//! time, which is what makes calling them sound.

mod float;
mod ktile;
mod legacy;
pub(crate) mod mxfp4;
pub(crate) mod q2k_q3k_q6k;
pub(crate) mod q4k_q5k;
pub(crate) mod util;

/// Whether this CPU has AVX2, FMA and F16C.
pub(crate) fn available() -> bool {
    std::arch::is_x86_feature_detected!("avx2")
        && std::arch::is_x86_feature_detected!("fma")
        && std::arch::is_x86_feature_detected!("f16c")
}

/// Builds `kernels(t)` for an x86 tier from `QType => kernel, rows;` lines:
/// safe `dot`/`rows` wrappers around the `#[target_feature]` kernel, handed
/// out only when the tier's `available()` is true.
macro_rules! kernel_table {
    (features = $feat:literal; $($qt:ident => $m:ident::$k:ident, $r:literal;)*) => {
        /// This tier's kernels for `t`, or `None` if the CPU lacks the
        /// tier's features or the tier has no kernel for `t`.
        pub(crate) fn kernels(t: $crate::QType) -> Option<$crate::dispatch::Kernels> {
            if !available() {
                return None;
            }
            match t {
                $($crate::QType::$qt => {
                    fn dot(w: &[u8], a: &[u8], _n: usize) -> f32 {
                        // SAFETY: `dot` is only handed out by `kernels`,
                        // which returns nothing unless `available()` found
                        // every target feature the kernel is compiled with.
                        // The kernel bounds its own loads by the slice
                        // lengths, so any slices are fine.
                        let [y] = unsafe { $m::$k::<1>([w], a) };
                        y
                    }
                    fn rows(w: &[u8], rb: usize, a: &[u8], _n: usize, out: &mut [f32]) {
                        // The row loop runs with the tier's features, so the
                        // kernel is inlined into it and one row's tail (the
                        // horizontal sum, the store) overlaps the next row's
                        // loads: short rows (Qwen3's 2048-wide output
                        // matrix, 8 K-quant blocks a row) lose less per row.
                        #[target_feature(enable = $feat)]
                        fn row_loop(w: &[u8], rb: usize, a: &[u8], out: &mut [f32]) {
                            $crate::simd::rows_by::<$r>(w, rb, out, |r| $m::$k::<$r>(r, a), |r| {
                                let [y] = $m::$k::<1>([r], a);
                                y
                            })
                        }
                        // SAFETY: as in `dot`: handed out only after
                        // `available()`; loads bounded by the kernel.
                        unsafe { row_loop(w, rb, a, out) }
                    }
                    Some($crate::dispatch::Kernels { dot, rows, tile: None, wide_tile: None, tile_acts: None })
                })*
                _ => None,
            }
        }
    };
}
pub(crate) use kernel_table;

/// `tile_fn!(C, FnType; path::to::kernel)`: `Some` safe tile function
/// (`FnType`: [`crate::dispatch::TileFn`] for C = 4 activations,
/// [`crate::dispatch::WideTileFn`] for [`crate::simd::WIDE`]) around a
/// `#[target_feature]` tile kernel of 4 rows × C activations; only to be
/// used after the tier's `available()` returned true.
macro_rules! tile_fn {
    ($c:expr, $ty:ty; $($k:ident)::+) => {{
        fn tile(w: &[u8], rb: usize, acts: [&[u8]; $c], _n: usize) -> [[f32; 4]; $c] {
            let rows: [&[u8]; 4] = core::array::from_fn(|r| &w[r * rb..(r + 1) * rb]);
            // SAFETY: handed out only after `available()` found every
            // target feature the kernel is compiled with; the kernel
            // bounds its loads by the slice lengths.
            unsafe { $($k)::+(&rows, &acts) }
        }
        Some(tile as $ty)
    }};
}
pub(crate) use tile_fn;

/// Builds `NAME(t)` for an x86 tier from `NAME: FnType, C;` and then
/// `QType => path::to::kernel;` lines: the tier's tile kernels of 4 rows
/// × C activations, handed out only when its `available()` is true.
macro_rules! tile_table {
    ($name:ident: $ty:ty, $c:expr; $($qt:ident => $($k:ident)::+;)*) => {
        /// The tile kernel (matmul) for `t`, for the types that have one.
        pub(crate) fn $name(t: $crate::QType) -> Option<$ty> {
            if !available() {
                return None;
            }
            match t {
                $($crate::QType::$qt => tile_fn!($c, $ty; $($k)::+),)*
                _ => None,
            }
        }
    };
}
pub(crate) use tile_table;

tile_table! {
    tile: crate::dispatch::TileFn, crate::simd::TILE;
    Q4_0 => legacy::tile::q4_0;
    Q4_1 => legacy::tile::q4_1;
    Q5_0 => legacy::tile::q5_0;
    Q5_1 => legacy::tile::q5_1;
    Q8_0 => legacy::tile::q8_0;
    Q4_K => ktile::q4_k;
    Q5_K => ktile::q5_k;
    Q6_K => ktile::q6_k;
    MXFP4 => mxfp4::tile;
}

// Wide tiles (4 rows × 8 activations): each row's codes and scales made
// once for twice the activations, though 16 more sums spill to L1.
// `cargo bench -p moe-quant --bench kernels -- pp512 q4_k q5_k avx2`
// (GMAC/s, 2 threads, 4 × 4 -> 4 × 8, same minutes): Q4_K 84.5-91.1 ->
// 87.7-92.9, Q5_K 73.2-74.4 -> 79.0-85.9. (4 × 2 halves of a 4 × 4 tile,
// with no spills: Q4_K 69-71, slower.)
tile_table! {
    wide_tile: crate::dispatch::WideTileFn, crate::simd::WIDE;
    Q4_K => ktile::q4_k;
    Q5_K => ktile::q5_k;
    Q6_K => ktile::q6_k;
}

/// The activation order the tiles of `t` read, where it is not Q8_K's own:
/// Q4_K, Q5_K and Q6_K pair each two 32-quant chunks
/// ([`ktile::pair_subblocks`]).
pub(crate) fn tile_acts(t: crate::QType) -> Option<crate::dispatch::TileActsFn> {
    match t {
        crate::QType::Q4_K | crate::QType::Q5_K | crate::QType::Q6_K if available() => Some(ktile::pair_subblocks),
        _ => None,
    }
}

// Rows per pass (last column), measured with benches/kernels.rs at L2 size:
// 4 rows helps the legacy and float kernels (+10-70 %: activation loads and
// scale conversions are shared, more independent FMA chains); the K-quant
// kernels have enough work per block and run best one row at a time (16
// registers: more rows spill).
kernel_table! {
    features = "avx2,fma,f16c";
    F32 => float::dot_f32, 4;
    F16 => float::dot_f16, 4;
    BF16 => float::dot_bf16, 4;
    Q4_0 => legacy::q4_0, 4;
    Q4_1 => legacy::q4_1, 4;
    Q5_0 => legacy::q5_0, 4;
    Q5_1 => legacy::q5_1, 4;
    Q8_0 => legacy::q8_0, 4;
    Q2_K => q2k_q3k_q6k::q2_k, 1;
    Q3_K => q2k_q3k_q6k::q3_k, 1;
    Q4_K => q4k_q5k::q4_k, 1;
    Q5_K => q4k_q5k::q5_k, 1;
    Q6_K => q2k_q3k_q6k::q6_k, 1;
    MXFP4 => mxfp4::mxfp4, 4;
}
