//! Our matrix-product kernel for CPUs with AVX2 and FMA but no AVX-512 (most laptops and
//! desktops, AMD before Zen 4): [`kernel`](crate::engine::kernel)'s, read the same way, with
//! 8-wide vectors and 16 registers. A tile of `C` is [`MR`] = 6 rows by [`NR`] = 16 columns: 12
//! accumulators, two vectors of a row of `B` and one broadcast number of `A`, 15 registers.
//!
//! The same sums in the same order as the AVX-512 kernel and `matrixmultiply`: every output
//! summed over `k` in blocks of [`KC`], each block from zero with one fused multiply-add per term
//! in order, the blocks added to `C` in turn; and the same finishes. So every path gives the same
//! bits (`tests/gemm.rs`).

use std::arch::x86_64::{
    __m256, __m256i, _CMP_NLE_UQ, _mm256_add_ps, _mm256_and_ps, _mm256_cmp_ps, _mm256_cmpgt_epi32,
    _mm256_fmadd_ps, _mm256_loadu_ps, _mm256_maskload_ps, _mm256_maskstore_ps, _mm256_max_ps,
    _mm256_set1_epi32, _mm256_set1_ps, _mm256_setr_epi32, _mm256_setzero_ps,
};

use crate::engine::kernel::{Finish, KC, Operands};

/// Rows of `C` in a tile.
pub const MR: usize = 6;
/// Columns of `C` in a tile: two 8-wide vectors.
pub const NR: usize = 16;

/// `C ← A·B`, finished by `finish`; the shapes and layouts are [`Operands`]'.
///
/// # Safety
/// The CPU must have AVX2 and FMA. Every element the shapes and strides name must lie inside
/// live allocations, `C`'s must be writable and overlap neither `A` nor `B`; so must `finish`'s
/// operands, for `C`'s shape.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn gemm(operands: Operands, finish: Finish) {
    // SAFETY (all): forwarded; a row `i` and column `j` passed to a finish lie inside `C`, so
    // inside the bias (N numbers) and `a` (C's shape).
    unsafe {
        match finish {
            Finish::Plain => run(operands, |_, _, _, s| s),
            Finish::Bias(bias) => run(operands, move |_, j, columns, s| add(s, load(bias.add(j), columns))),
            Finish::BiasRelu(bias) => run(operands, move |_, j, columns, s| {
                // `max(z, 0)` is 0 for a NaN `z` (the second operand wins), as `f32::max` is.
                let [z_low, z_high] = add(s, load(bias.add(j), columns));
                [_mm256_max_ps(z_low, _mm256_setzero_ps()), _mm256_max_ps(z_high, _mm256_setzero_ps())]
            }),
            Finish::ReluSlope(a, rs) => run(operands, move |i, j, columns, s| {
                // Kept where `a ≤ 0` is false, so also where `a` is NaN, as `Activation::backward` does.
                let [a_low, a_high] = load(a.offset(i as isize * rs).add(j), columns);
                let keep = |a| _mm256_cmp_ps::<_CMP_NLE_UQ>(a, _mm256_setzero_ps());
                [_mm256_and_ps(keep(a_low), s[0]), _mm256_and_ps(keep(a_high), s[1])]
            }),
        }
    }
}

/// The product tile by tile, as [`kernel`](crate::engine::kernel)'s; `finish(i, j, columns, s)`
/// gives row `i` of `C` at columns `j…` from their sums `s`, when they are stored the last time.
///
/// # Safety
/// As [`gemm`]'s.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn run<F>(operands: Operands, finish: F)
where
    F: Fn(usize, usize, Columns, [__m256; 2]) -> [__m256; 2] + Copy,
{
    let Operands { dims: (m, k, n), a, a_strides: (rsa, csa), b, rsb, c, rsc } = operands;
    // One block even when `k` is 0: its tiles, of depth 0, store (finished) zeros.
    for first in (0..k.max(1)).step_by(KC) {
        let depth = KC.min(k - first);
        // SAFETY (all offsets below): inside the operands by the caller's contract.
        let (a, b) = unsafe { (a.offset(first as isize * csa), b.offset(first as isize * rsb)) };
        for j in (0..n).step_by(NR) {
            let width = NR.min(n - j);
            let columns = Columns::new(width);
            for i in (0..m).step_by(MR) {
                let tile = Tile {
                    depth,
                    a: unsafe { a.offset(i as isize * rsa) },
                    a_strides: (rsa, csa),
                    b: unsafe { b.add(j) },
                    rsb,
                    c: unsafe { c.offset(i as isize * rsc).add(j) },
                    rsc,
                    columns,
                    accumulate: first > 0,
                    at: (i, j),
                    finish: (first + depth == k).then_some(finish),
                };
                // A last block of columns no wider than one vector multiplies that vector alone;
                // only a block narrower than its vectors loads `B` through masks, whose two
                // registers a full tile needs for its accumulators (AVX2 has 16).
                unsafe {
                    match width {
                        8 => tile.run::<1, true>(MR.min(m - i)),
                        ..=8 => tile.run::<1, false>(MR.min(m - i)),
                        NR => tile.run::<2, true>(MR.min(m - i)),
                        _ => tile.run::<2, false>(MR.min(m - i)),
                    }
                };
            }
        }
    }
}

/// Which of a tile's [`NR`] columns exist: one lane mask per 8-wide half, a lane's sign bit set
/// where its column exists (as `_mm256_maskload_ps` reads it).
#[derive(Debug, Clone, Copy)]
struct Columns([__m256i; 2]);

impl Columns {
    /// The first `width` columns, `1 ≤ width ≤ NR`.
    #[target_feature(enable = "avx2,fma")]
    fn new(width: usize) -> Columns {
        let lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        let below = |w: usize| _mm256_cmpgt_epi32(_mm256_set1_epi32(w.min(8) as i32), lanes);
        Columns([below(width), below(width.saturating_sub(8))])
    }
}

/// The numbers of a row of a tile at `p`, its existing columns only (the others 0), in its
/// first `V` 8-wide vectors.
///
/// # Safety
/// `p` points to the row's first number, and its existing columns are readable.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn load<const V: usize>(p: *const f32, columns: Columns) -> [__m256; V] {
    // SAFETY: the caller's contract; the other lanes are masked off (and read as 0).
    std::array::from_fn(|h| unsafe { _mm256_maskload_ps(p.add(8 * h), columns.0[h]) })
}

/// Stores the first `V` vectors of a row of a tile at `p`, its existing columns only.
///
/// # Safety
/// `p` points to the row's first number, and its existing columns are writable.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn store<const V: usize>(p: *mut f32, columns: Columns, x: [__m256; V]) {
    for (h, x) in x.into_iter().enumerate() {
        // SAFETY: the caller's contract; the other lanes are masked off.
        unsafe { _mm256_maskstore_ps(p.add(8 * h), columns.0[h], x) };
    }
}

/// `x + y`, vector by vector.
#[target_feature(enable = "avx2,fma")]
#[inline]
fn add<const V: usize>(x: [__m256; V], y: [__m256; V]) -> [__m256; V] {
    std::array::from_fn(|h| _mm256_add_ps(x[h], y[h]))
}

/// One tile of `C`, as [`kernel`](crate::engine::kernel)'s: its first row of `A`, its `depth`
/// rows of `B`, whether to add to `C` or overwrite it, and how to finish (after the last block).
struct Tile<F> {
    depth: usize,
    a: *const f32,
    a_strides: (isize, isize),
    b: *const f32,
    rsb: isize,
    c: *mut f32,
    rsc: isize,
    columns: Columns,
    accumulate: bool,
    /// The row and column of `C` where the tile starts.
    at: (usize, usize),
    finish: Option<F>,
}

impl<F> Tile<F>
where
    F: Fn(usize, usize, Columns, [__m256; 2]) -> [__m256; 2] + Copy,
{
    /// The tile with its first `rows` rows (`1 ≤ rows ≤ MR`) and its first `V` vectors of
    /// columns, all of whose columns exist if `FULL`; each row count a kernel of its own so the
    /// accumulators stay in registers.
    ///
    /// # Safety
    /// As [`gemm`]'s, for the tile; with `V = 1`, the tile's columns past the first 8 do not exist.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn run<const V: usize, const FULL: bool>(&self, rows: usize) {
        // SAFETY: forwarded.
        unsafe {
            match rows {
                6 => self.rows::<6, V, FULL>(),
                5 => self.rows::<5, V, FULL>(),
                4 => self.rows::<4, V, FULL>(),
                3 => self.rows::<3, V, FULL>(),
                2 => self.rows::<2, V, FULL>(),
                _ => self.rows::<1, V, FULL>(),
            }
        }
    }

    /// `acc[r] = Σₚ A[r, p]·B[p, ·]` over the block, one fused multiply-add per term in order of
    /// `p`; then `C[r, ·] ← acc[r]`, or `C[r, ·] + acc[r]` after the first block, finished.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn rows<const R: usize, const V: usize, const FULL: bool>(&self) {
        let (rsa, csa) = self.a_strides;
        let mut acc: [[__m256; V]; R] = [[_mm256_setzero_ps(); V]; R];
        let (mut a, mut b) = (self.a, self.b);
        for _ in 0..self.depth {
            // SAFETY: row `p` of the block of `B` and column `p` of the tile's rows of `A`.
            unsafe {
                let b_row: [__m256; V] = if FULL {
                    std::array::from_fn(|h| _mm256_loadu_ps(b.add(8 * h)))
                } else {
                    load(b, self.columns)
                };
                for (r, acc) in acc.iter_mut().enumerate() {
                    let a_rp = _mm256_set1_ps(*a.offset(r as isize * rsa));
                    for (acc, b) in acc.iter_mut().zip(b_row) {
                        *acc = _mm256_fmadd_ps(a_rp, b, *acc);
                    }
                }
                a = a.offset(csa);
                b = b.offset(self.rsb);
            }
        }
        for (r, acc) in acc.iter().enumerate() {
            // SAFETY: row `r` of the tile of `C`, its existing columns only (masked).
            unsafe {
                let c = self.c.offset(r as isize * self.rsc);
                let mut sums = *acc;
                if self.accumulate {
                    sums = add(load(c, self.columns), sums);
                }
                if let Some(finish) = self.finish {
                    // The finishes work on a whole tile row; a one-vector row's second is empty.
                    let whole = std::array::from_fn(|h| sums.get(h).copied().unwrap_or(_mm256_setzero_ps()));
                    let done = finish(self.at.0 + r, self.at.1, self.columns, whole);
                    sums = std::array::from_fn(|h| done[h]);
                }
                store(c, self.columns, sums);
            }
        }
    }
}
