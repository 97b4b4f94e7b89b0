//! x86 vector versions of [`super::flash_tiled`]'s order, bit-identical to
//! its reference: the same fused operations in the same order. Per tile
//! of 64 positions the keys are converted once, dimension-major as the
//! cache stores them, so that a vector holds 16 positions' products and each score is one FMA chain
//! over the dimensions; the values are converted once, position-major, so
//! that a vector holds 16 dimensions of the accumulator. Queries go in
//! blocks whose chains interleave. This module holds `unsafe` (with
//! [`super::libm_exp`] and [`super::fma`]).

#![allow(unsafe_code)]

#[cfg(target_arch = "x86_64")]
pub use x86::{avx2, avx512};

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::super::flash_tiled::{tile_rescale, HeadCache, Scratch, WindowSinks, KV_TILE};
    use super::super::lanes::reduce16;

    /// The head sizes the kernels serve, and whole queries.
    fn check_shape(q: &[f32], hd: usize, out: &[f32]) -> usize {
        assert!(hd > 0 && hd.is_multiple_of(64) && hd <= 256, "tiled flash kernel: head size {hd}");
        assert!(q.len().is_multiple_of(hd) && out.len() == q.len() && !q.is_empty(), "tiled flash kernel: {} query and {} output values", q.len(), out.len());
        q.len() / hd
    }

    /// `ggml_v_expf` (AVX-512), as [`super::super::ops::vexp`] lane by lane.
    #[inline]
    #[target_feature(enable = "avx512f,avx512vl,avx2,fma,f16c")]
    fn vexp512(x: __m512) -> __m512 {
        let c = |bits: u32| _mm512_set1_ps(f32::from_bits(bits));
        let r = c(0x4b40_0000);
        let z = _mm512_fmadd_ps(x, c(0x3fb8_aa3b), r);
        let n = _mm512_sub_ps(z, r);
        let b = _mm512_fnmadd_ps(n, c(0x35bf_be8e), _mm512_fnmadd_ps(n, c(0x3f31_7200), x));
        let d = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(_mm512_abs_ps(n), _mm512_set1_ps(192.0));
        let u = _mm512_mul_ps(b, b);
        let j = _mm512_fmadd_ps(
            _mm512_fmadd_ps(_mm512_fmadd_ps(c(0x3c07_2010), b, c(0x3d2b_9f17)), u, _mm512_fmadd_ps(c(0x3e2a_af33), b, c(0x3eff_fedb))),
            u,
            _mm512_fmadd_ps(c(0x3f7f_fff6), b, _mm512_set1_ps(1.0)),
        );
        let res = _mm512_scalef_ps(j, n);
        if d == 0 {
            return res;
        }
        let alt = _mm512_mask_blend_ps(_mm512_cmp_ps_mask::<_CMP_LE_OQ>(n, _mm512_setzero_ps()), _mm512_set1_ps(f32::INFINITY), _mm512_setzero_ps());
        _mm512_mask_blend_ps(d, res, alt)
    }

    /// (the head's cache, hd, first position, positions, keys tile out, values tile out)
    type LoadTile = unsafe fn(HeadCache<'_>, usize, usize, usize, &mut [f32], &mut [f32]);
    type Scores = unsafe fn(&[f32], usize, &[f32], usize, &[usize; 4], f32, &mut [f32]);
    type Accumulate = unsafe fn(&[f32], &[f32], usize, usize, usize, &mut [f32]);

    /// One tier's pieces of the tile loop ([`run`]). Each needs its tier's
    /// CPU features (`unsafe` to call elsewhere).
    struct Ops {
        /// Most queries per [`Ops::scores`] and per [`Ops::accumulate`]
        /// call for a head size.
        scores_block: usize,
        accumulate_block: fn(usize) -> usize,
        load_tile: LoadTile,
        /// (queries, k, keys tile, hd, each query's positions, scale, weights out)
        scores: Scores,
        softmax: unsafe fn(&mut [f32; KV_TILE], &mut f32, &mut f32) -> Option<f32>,
        /// (weights, values tile, positions, hd, k, accumulators)
        accumulate: Accumulate,
    }

    #[allow(clippy::too_many_arguments)]
    pub fn avx512(q: &[f32], n_pos: &[usize], ws: WindowSinks<'_>, head: HeadCache<'_>, hd: usize, scale: f32, scratch: &mut Scratch, out: &mut [f32]) {
        const OPS: Ops = Ops {
            scores_block: 4,
            accumulate_block: |hd| (16 / (hd / 16)).max(1),
            load_tile,
            scores: scores_dispatch,
            softmax,
            accumulate: accumulate_dispatch,
        };
        // SAFETY: `kernel` hands this out only for the AVX-512 tier, which
        // `is_available` checked (AVX-512 F/VL, with AVX2/FMA/F16C).
        unsafe { run(&OPS, q, n_pos, ws, head, hd, scale, scratch, out) }
    }

    #[allow(clippy::too_many_arguments)]
    pub fn avx2(q: &[f32], n_pos: &[usize], ws: WindowSinks<'_>, head: HeadCache<'_>, hd: usize, scale: f32, scratch: &mut Scratch, out: &mut [f32]) {
        const OPS: Ops = Ops {
            scores_block: 1,
            accumulate_block: |_| 1,
            load_tile: avx2::load_tile,
            scores: avx2::scores,
            softmax: avx2::softmax,
            accumulate: avx2::accumulate,
        };
        // SAFETY: `kernel` hands this out only for the AVX2 tier or above,
        // which `is_available` checked (AVX2, FMA, F16C).
        unsafe { run(&OPS, q, n_pos, ws, head, hd, scale, scratch, out) }
    }

    /// The tile loop, the same for every tier: per tile, convert keys and
    /// values once, then every query's scores, softmax and accumulation.
    ///
    /// # Safety
    /// The CPU has the features `ops`' functions are compiled for.
    #[allow(clippy::too_many_arguments)]
    unsafe fn run(ops: &Ops, q: &[f32], n_pos: &[usize], ws: WindowSinks<'_>, head: HeadCache<'_>, hd: usize, scale: f32, scratch: &mut Scratch, out: &mut [f32]) {
        let n = check_shape(q, hd, out);
        assert_eq!(n_pos.len(), n, "tiled flash kernel: a position count per query");
        let max_pos = n_pos.iter().copied().max().unwrap_or(0);
        scratch.prepare(n, hd, n * KV_TILE);
        let Scratch { keys: kt, values: vt, acc, m, s, p } = scratch;
        for t0 in (ws.first_tile()..max_pos).step_by(KV_TILE) {
            // Each query's positions in this tile (0: past its own).
            let lens = |g: usize| n_pos[g].saturating_sub(t0).min(KV_TILE);
            // SAFETY: the caller's CPU features; kt and vt hold a tile of
            // hd (checked: a multiple of 64, at most 256) values a position.
            unsafe { (ops.load_tile)(head, hd, t0, (0..n).map(lens).max().unwrap_or(0), kt, vt) };
            let mut g = 0;
            while g < n {
                let k = ops.scores_block.min(n - g);
                let ls: [usize; 4] = core::array::from_fn(|j| if j < k { lens(g + j) } else { 0 });
                // SAFETY: the caller's CPU features; k ≤ scores_block queries
                // of hd values, a tile of weights each, a tile of keys.
                unsafe { (ops.scores)(&q[g * hd..(g + k) * hd], k, kt, hd, &ls, scale, &mut p[g * KV_TILE..(g + k) * KV_TILE]) };
                g += k;
            }
            for g in 0..n {
                if lens(g) == 0 {
                    continue;
                }
                let pg: &mut [f32; KV_TILE] = (&mut p[g * KV_TILE..(g + 1) * KV_TILE]).try_into().expect("a tile");
                ws.mask(g, t0, pg);
                // SAFETY: the caller's CPU features (a whole tile by type).
                match unsafe { (ops.softmax)(pg, &mut m[g], &mut s[g]) } {
                    // A tile that adds nothing (every score −∞): weights 0.
                    None => pg.fill(0.0),
                    Some(ms) if ms != 1.0 => {
                        for a in &mut acc[g * hd..(g + 1) * hd] {
                            *a *= ms;
                        }
                    }
                    Some(_) => {}
                }
            }
            // Blocks of queries with the same positions in this tile (a
            // query past its own positions is not touched: ggml skips it).
            let most = (ops.accumulate_block)(hd);
            let mut g = 0;
            while g < n {
                let len = lens(g);
                let mut k = 1;
                while k < most && g + k < n && lens(g + k) == len {
                    k += 1;
                }
                if len > 0 {
                    // SAFETY: the caller's CPU features; k queries' tiles of
                    // weights and accumulators, len ≤ 64 positions of vt.
                    unsafe { (ops.accumulate)(&p[g * KV_TILE..(g + k) * KV_TILE], vt, len, hd, k, &mut acc[g * hd..(g + k) * hd]) };
                }
                g += k;
            }
        }
        for g in 0..n {
            ws.finish(g, &mut acc[g * hd..(g + 1) * hd], m[g], s[g], &mut out[g * hd..(g + 1) * hd]);
        }
    }

    /// [`scores`] for k = 1..=4 queries.
    #[target_feature(enable = "avx512f,avx512vl,avx2,fma,f16c")]
    fn scores_dispatch(qb: &[f32], k: usize, kt: &[f32], hd: usize, ls: &[usize; 4], scale: f32, pb: &mut [f32]) {
        match k {
            1 => scores::<1>(qb, kt, hd, ls, scale, pb),
            2 => scores::<2>(qb, kt, hd, ls, scale, pb),
            3 => scores::<3>(qb, kt, hd, ls, scale, pb),
            _ => scores::<4>(qb, kt, hd, ls, scale, pb),
        }
    }

    /// [`accumulate`] for a head size and a block of k queries.
    #[target_feature(enable = "avx512f,avx512vl,avx2,fma,f16c")]
    fn accumulate_dispatch(pb: &[f32], vt: &[f32], len: usize, hd: usize, k: usize, ab: &mut [f32]) {
        match (hd / 16, k) {
            (4, 1) => accumulate::<4, 1>(pb, vt, len, ab),
            (4, 2) => accumulate::<4, 2>(pb, vt, len, ab),
            (4, 3) => accumulate::<4, 3>(pb, vt, len, ab),
            (4, _) => accumulate::<4, 4>(pb, vt, len, ab),
            (8, 1) => accumulate::<8, 1>(pb, vt, len, ab),
            (8, _) => accumulate::<8, 2>(pb, vt, len, ab),
            (12, _) => accumulate::<12, 1>(pb, vt, len, ab),
            _ => accumulate::<16, 1>(pb, vt, len, ab),
        }
    }

    /// [`super::super::flash_tiled::tile_softmax`] with the exps 16 lanes
    /// at a time.
    #[inline]
    #[target_feature(enable = "avx512f,avx512vl,avx2,fma,f16c")]
    fn softmax(p: &mut [f32; KV_TILE], m: &mut f32, s: &mut f32) -> Option<f32> {
        let (m_new, ms) = tile_rescale(p, m, s)?;
        let mut sum = 0.0f64;
        for lanes in p.chunks_exact_mut(16) {
            // SAFETY: 16 values.
            let e = vexp512(_mm512_sub_ps(unsafe { _mm512_loadu_ps(lanes.as_ptr()) }, _mm512_set1_ps(m_new)));
            // SAFETY: 16 values.
            unsafe { _mm512_storeu_ps(lanes.as_mut_ptr(), e) };
            let lanes: &[f32; 16] = (&*lanes).try_into().expect("16 lanes");
            sum += reduce16(lanes) as f64;
        }
        *s = (*s as f64 + sum) as f32;
        Some(ms)
    }

    /// Converts positions `t0..t0 + len` to f32: the keys' whole tile,
    /// dimension-major as stored, into `kt` (`kt[d·64 + i]`; lanes past
    /// `len` hold zeros or older values: their scores are masked), values
    /// position-major into `vt` (`vt[i·hd + d]`).
    #[inline]
    #[target_feature(enable = "avx512f,avx512vl,avx2,fma,f16c")]
    fn load_tile(head: HeadCache<'_>, hd: usize, t0: usize, len: usize, kt: &mut [f32], vt: &mut [f32]) {
        let HeadCache { keys, values, tiles, layout } = head;
        // The whole tile of keys, already dimension-major.
        let k = &keys[tiles.tile(t0)..][..hd * KV_TILE];
        let kt = &mut kt[..hd * KV_TILE];
        for (src, dst) in k.chunks_exact(16).zip(kt.chunks_exact_mut(16)) {
            // SAFETY: 16 values each.
            unsafe { _mm512_storeu_ps(dst.as_mut_ptr(), _mm512_cvtph_ps(_mm256_loadu_si256(src.as_ptr().cast()))) };
        }
        for i in 0..len {
            let at = layout.at(t0 + i);
            let v = &values[at..][..hd];
            let vrow = &mut vt[i * hd..(i + 1) * hd];
            for c in (0..hd).step_by(16) {
                // SAFETY: c + 16 <= hd = v.len() = vrow.len().
                unsafe { _mm512_storeu_ps(vrow.as_mut_ptr().add(c), _mm512_cvtph_ps(_mm256_loadu_si256(v.as_ptr().add(c).cast()))) };
            }
        }
    }

    /// Scores of `Q` queries against the tile: for each, four 16-lane FMA
    /// chains over the dimensions (lane = position), times `scale`; lanes
    /// at or past query g's `lens[g]` are −∞. Into `p` (Q·64).
    #[inline]
    #[target_feature(enable = "avx512f,avx512vl,avx2,fma,f16c")]
    fn scores<const Q: usize>(q: &[f32], kt: &[f32], hd: usize, lens: &[usize; 4], scale: f32, p: &mut [f32]) {
        assert!(Q <= 4 && q.len() >= Q * hd && kt.len() >= hd * KV_TILE && p.len() >= Q * KV_TILE, "tiled flash kernel: scores' blocks");
        let mut a = [[_mm512_setzero_ps(); 4]; Q];
        for d in 0..hd {
            // SAFETY: d·64 + 64 <= hd·64 = kt.len(); g·hd + d < Q·hd = q.len().
            unsafe {
                let k: [__m512; 4] = core::array::from_fn(|b| _mm512_loadu_ps(kt.as_ptr().add(d * KV_TILE + 16 * b)));
                for (g, ag) in a.iter_mut().enumerate() {
                    let qd = _mm512_set1_ps(*q.get_unchecked(g * hd + d));
                    for b in 0..4 {
                        ag[b] = _mm512_fmadd_ps(k[b], qd, ag[b]);
                    }
                }
            }
        }
        for (g, ag) in a.iter().enumerate() {
            for (b, v) in ag.iter().enumerate() {
                let valid = lens[g].saturating_sub(16 * b).min(16);
                let mask: __mmask16 = ((1u32 << valid) - 1) as u16;
                let sv = _mm512_mask_blend_ps(mask, _mm512_set1_ps(f32::NEG_INFINITY), _mm512_mul_ps(*v, _mm512_set1_ps(scale)));
                // SAFETY: g·64 + 16·b + 16 <= Q·64 = p.len().
                unsafe { _mm512_storeu_ps(p.as_mut_ptr().add(g * KV_TILE + 16 * b), sv) };
            }
        }
    }

    /// `acc[d] = fma(v_i[d], p_i, acc[d])` over the tile's positions in
    /// order, for K queries with N 16-lane accumulators each (hd = 16·N).
    #[inline]
    #[target_feature(enable = "avx512f,avx512vl,avx2,fma,f16c")]
    fn accumulate<const N: usize, const K: usize>(p: &[f32], vt: &[f32], len: usize, acc: &mut [f32]) {
        let hd = 16 * N;
        assert!(acc.len() >= K * hd && vt.len() >= KV_TILE * hd && p.len() >= K * KV_TILE && len <= KV_TILE, "tiled flash kernel: accumulate's blocks");
        // SAFETY: acc holds K·hd values, vt 64·hd, p K·64 (the caller's
        // blocks); i < len <= 64.
        unsafe {
            let mut a: [[__m512; N]; K] = core::array::from_fn(|g| core::array::from_fn(|c| _mm512_loadu_ps(acc.as_ptr().add(g * hd + 16 * c))));
            for i in 0..len {
                let w: [__m512; K] = core::array::from_fn(|g| _mm512_set1_ps(*p.get_unchecked(g * KV_TILE + i)));
                for c in 0..N {
                    let v = _mm512_loadu_ps(vt.as_ptr().add(i * hd + 16 * c));
                    for (ag, &wg) in a.iter_mut().zip(&w) {
                        ag[c] = _mm512_fmadd_ps(v, wg, ag[c]);
                    }
                }
            }
            for (g, ag) in a.iter().enumerate() {
                for (c, v) in ag.iter().enumerate() {
                    _mm512_storeu_ps(acc.as_mut_ptr().add(g * hd + 16 * c), *v);
                }
            }
        }
    }

    /// The AVX2 pieces: 8-lane vectors, one query at a time.
    mod avx2 {
        use std::arch::x86_64::*;

        use super::super::super::flash_tiled::{tile_rescale, HeadCache, KV_TILE};
        use super::super::super::lanes::reduce16;
        use super::super::super::ops::vexp;

        /// [`super::load_tile`] in 8-lane vectors.
        #[target_feature(enable = "avx2,fma,f16c")]
        pub fn load_tile(head: HeadCache<'_>, hd: usize, t0: usize, len: usize, kt: &mut [f32], vt: &mut [f32]) {
            let HeadCache { keys, values, tiles, layout } = head;
            let k = &keys[tiles.tile(t0)..][..hd * KV_TILE];
            let kt = &mut kt[..hd * KV_TILE];
            for (src, dst) in k.chunks_exact(8).zip(kt.chunks_exact_mut(8)) {
                // SAFETY: 8 values each.
                unsafe { _mm256_storeu_ps(dst.as_mut_ptr(), _mm256_cvtph_ps(_mm_loadu_si128(src.as_ptr().cast()))) };
            }
            for i in 0..len {
                let at = layout.at(t0 + i);
                let v = &values[at..][..hd];
                let vrow = &mut vt[i * hd..(i + 1) * hd];
                for c in (0..hd).step_by(8) {
                    // SAFETY: c + 8 <= hd = v.len() = vrow.len().
                    unsafe { _mm256_storeu_ps(vrow.as_mut_ptr().add(c), _mm256_cvtph_ps(_mm_loadu_si128(v.as_ptr().add(c).cast()))) };
                }
            }
        }

        /// Each query's scores: eight 8-lane FMA chains over the dimensions
        /// (lane = position), times `scale`, −∞ at or past its positions.
        #[target_feature(enable = "avx2,fma,f16c")]
        pub fn scores(qb: &[f32], k: usize, kt: &[f32], hd: usize, ls: &[usize; 4], scale: f32, pb: &mut [f32]) {
            assert!(k <= 4 && qb.len() >= k * hd && kt.len() >= hd * KV_TILE && pb.len() >= k * KV_TILE, "tiled flash kernel: scores' blocks");
            for (g, &lg) in ls.iter().enumerate().take(k) {
                let mut a = [_mm256_setzero_ps(); 8];
                for d in 0..hd {
                    // SAFETY: d·64 + 64 <= hd·64 = kt.len(); g·hd + d < k·hd = qb.len().
                    unsafe {
                        let qd = _mm256_set1_ps(*qb.get_unchecked(g * hd + d));
                        for (b, ab) in a.iter_mut().enumerate() {
                            *ab = _mm256_fmadd_ps(_mm256_loadu_ps(kt.as_ptr().add(d * KV_TILE + 8 * b)), qd, *ab);
                        }
                    }
                }
                for (b, ab) in a.iter().enumerate() {
                    let valid = lg.saturating_sub(8 * b).min(8) as i32;
                    let keep = _mm256_cmpgt_epi32(_mm256_set1_epi32(valid), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
                    let sv = _mm256_blendv_ps(_mm256_set1_ps(f32::NEG_INFINITY), _mm256_mul_ps(*ab, _mm256_set1_ps(scale)), _mm256_castsi256_ps(keep));
                    // SAFETY: g·64 + 8·b + 8 <= k·64 = pb.len().
                    unsafe { _mm256_storeu_ps(pb.as_mut_ptr().add(g * KV_TILE + 8 * b), sv) };
                }
            }
        }

        /// [`vexp`] on 8 lanes: ggml's AVX-512 algorithm, its `scalef` as a
        /// multiply by 2^n (exact, one rounding, for n in −126..=127; other
        /// lanes, below e^−87, go lane by lane through [`vexp`]).
        #[inline]
        #[target_feature(enable = "avx2,fma,f16c")]
        fn vexp256(x: __m256) -> __m256 {
            let c = |bits: u32| _mm256_set1_ps(f32::from_bits(bits));
            let r = c(0x4b40_0000);
            let z = _mm256_fmadd_ps(x, c(0x3fb8_aa3b), r);
            let n = _mm256_sub_ps(z, r);
            let b = _mm256_fnmadd_ps(n, c(0x35bf_be8e), _mm256_fnmadd_ps(n, c(0x3f31_7200), x));
            let u = _mm256_mul_ps(b, b);
            let j = _mm256_fmadd_ps(
                _mm256_fmadd_ps(_mm256_fmadd_ps(c(0x3c07_2010), b, c(0x3d2b_9f17)), u, _mm256_fmadd_ps(c(0x3e2a_af33), b, c(0x3eff_fedb))),
                u,
                _mm256_fmadd_ps(c(0x3f7f_fff6), b, _mm256_set1_ps(1.0)),
            );
            // n in −126..=127 (also false for NaN): 2^n is a normal float.
            let inside = _mm256_and_ps(_mm256_cmp_ps::<_CMP_GE_OQ>(n, _mm256_set1_ps(-126.0)), _mm256_cmp_ps::<_CMP_LE_OQ>(n, _mm256_set1_ps(127.0)));
            if _mm256_movemask_ps(inside) == 0xff {
                let pow2 = _mm256_castsi256_ps(_mm256_slli_epi32::<23>(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127))));
                return _mm256_mul_ps(j, pow2);
            }
            let mut lanes = [0.0f32; 8];
            // SAFETY: 8 values.
            unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), x) };
            for l in lanes.iter_mut() {
                *l = vexp(*l);
            }
            // SAFETY: 8 values.
            unsafe { _mm256_loadu_ps(lanes.as_ptr()) }
        }

        /// [`super::softmax`] with 8-lane exps.
        #[target_feature(enable = "avx2,fma,f16c")]
        pub fn softmax(p: &mut [f32; KV_TILE], m: &mut f32, s: &mut f32) -> Option<f32> {
            let (m_new, ms) = tile_rescale(p, m, s)?;
            for lanes in p.chunks_exact_mut(8) {
                // SAFETY: 8 values.
                unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), vexp256(_mm256_sub_ps(_mm256_loadu_ps(lanes.as_ptr()), _mm256_set1_ps(m_new)))) };
            }
            let mut sum = 0.0f64;
            for lanes in p.chunks_exact(16) {
                sum += reduce16(lanes.try_into().expect("16 lanes")) as f64;
            }
            *s = (*s as f64 + sum) as f32;
            Some(ms)
        }

        /// `acc[d] = fma(v_i[d], p_i, acc[d])` over the positions in order,
        /// one query at a time, N 8-lane accumulators (hd = 8·N).
        #[target_feature(enable = "avx2,fma,f16c")]
        pub fn accumulate(pb: &[f32], vt: &[f32], len: usize, hd: usize, k: usize, ab: &mut [f32]) {
            for g in 0..k {
                let (p, acc) = (&pb[g * KV_TILE..(g + 1) * KV_TILE], &mut ab[g * hd..(g + 1) * hd]);
                match hd / 8 {
                    8 => accumulate_one::<8>(p, vt, len, acc),
                    16 => accumulate_one::<16>(p, vt, len, acc),
                    24 => accumulate_one::<24>(p, vt, len, acc),
                    _ => accumulate_one::<32>(p, vt, len, acc),
                }
            }
        }

        #[inline]
        #[target_feature(enable = "avx2,fma,f16c")]
        fn accumulate_one<const N: usize>(p: &[f32], vt: &[f32], len: usize, acc: &mut [f32]) {
            let hd = 8 * N;
            assert!(acc.len() >= hd && vt.len() >= KV_TILE * hd && p.len() >= KV_TILE && len <= KV_TILE, "tiled flash kernel: accumulate's block");
            // SAFETY: acc holds hd values, vt 64·hd, p 64; i < len <= 64.
            unsafe {
                let mut a: [__m256; N] = core::array::from_fn(|c| _mm256_loadu_ps(acc.as_ptr().add(8 * c)));
                for i in 0..len {
                    let w = _mm256_set1_ps(*p.get_unchecked(i));
                    for (c, ac) in a.iter_mut().enumerate() {
                        *ac = _mm256_fmadd_ps(_mm256_loadu_ps(vt.as_ptr().add(i * hd + 8 * c)), w, *ac);
                    }
                }
                for (c, ac) in a.iter().enumerate() {
                    _mm256_storeu_ps(acc.as_mut_ptr().add(8 * c), *ac);
                }
            }
        }
    }
}
