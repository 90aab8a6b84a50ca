//! Our matrix-product kernel for CPUs with AVX2 and FMA but no AVX-512 (most laptops and
//! desktops, AMD before Zen 4): [`kernel`](crate::engine::kernel)'s tile loop on AVX2's 8-wide
//! vectors and 16 registers. A tile of `C` is 6 rows by 16 columns: 12 accumulators, two vectors
//! of a row of `B` and one broadcast number of `A`, 15 registers — so a full tile loads `B`
//! without masks, which would take two more.
//!
//! The same sums in the same order as the AVX-512 kernel and `matrixmultiply`, and the same
//! finishes: every path gives the same bits (`tests/gemm.rs`).

use std::arch::x86_64::{
    __m256, __m256i, _CMP_NLE_UQ, _mm256_add_ps, _mm256_and_ps, _mm256_cmp_ps, _mm256_cmpgt_epi32,
    _mm256_fmadd_ps, _mm256_loadu_ps, _mm256_maskload_ps, _mm256_maskstore_ps, _mm256_max_ps,
    _mm256_permute2f128_ps, _mm256_set1_epi32, _mm256_set1_ps, _mm256_setr_epi32, _mm256_setzero_ps,
    _mm256_shuffle_ps, _mm256_storeu_ps, _mm256_unpackhi_ps, _mm256_unpacklo_ps,
};

use crate::engine::kernel::{Finish, Lanes, Operands, gemm_with, transpose_with};

/// `C ← A·B`, finished by `finish`, with AVX2 and FMA; the shapes and layouts are [`Operands`]'.
///
/// # Safety
/// The CPU must have AVX2 and FMA. Every element the shapes and strides name must lie inside
/// live allocations, `C`'s must be writable and overlap neither `A` nor `B`; so must `finish`'s
/// operands, for `C`'s shape.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn gemm(operands: Operands, finish: Finish) {
    // SAFETY: forwarded; the CPU has AVX2 and FMA, which this function is compiled for and into
    // which the generic kernel and `Avx2`'s operations are inlined.
    unsafe { gemm_with::<Avx2>(operands, finish) }
}

/// AVX2 and FMA: 8 lanes, a lane's mask in its sign bit, 6 rows a tile.
struct Avx2;

impl Lanes for Avx2 {
    type V = __m256;
    type Mask = __m256i;
    const LANES: usize = 8;
    const MR: usize = 6;
    #[inline(always)]
    unsafe fn mask(width: usize) -> __m256i {
        unsafe {
            _mm256_cmpgt_epi32(
                _mm256_set1_epi32(width.min(8) as i32),
                _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
            )
        }
    }
    #[inline(always)]
    unsafe fn zero() -> __m256 {
        unsafe { _mm256_setzero_ps() }
    }
    #[inline(always)]
    unsafe fn splat(x: f32) -> __m256 {
        unsafe { _mm256_set1_ps(x) }
    }
    #[inline(always)]
    unsafe fn fma(a: __m256, b: __m256, c: __m256) -> __m256 {
        unsafe { _mm256_fmadd_ps(a, b, c) }
    }
    #[inline(always)]
    unsafe fn add(x: __m256, y: __m256) -> __m256 {
        unsafe { _mm256_add_ps(x, y) }
    }
    #[inline(always)]
    unsafe fn relu(z: __m256) -> __m256 {
        // The second operand wins for a NaN `z`: 0, as with AVX-512.
        unsafe { _mm256_max_ps(z, _mm256_setzero_ps()) }
    }
    #[inline(always)]
    unsafe fn where_positive(a: __m256, s: __m256) -> __m256 {
        unsafe { _mm256_and_ps(_mm256_cmp_ps::<_CMP_NLE_UQ>(a, _mm256_setzero_ps()), s) }
    }
    #[inline(always)]
    unsafe fn load(p: *const f32, mask: __m256i) -> __m256 {
        unsafe { _mm256_maskload_ps(p, mask) }
    }
    #[inline(always)]
    unsafe fn load_all(p: *const f32) -> __m256 {
        unsafe { _mm256_loadu_ps(p) }
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, mask: __m256i, x: __m256) {
        unsafe { _mm256_maskstore_ps(p, mask, x) }
    }
    #[inline(always)]
    unsafe fn store_all(p: *mut f32, x: __m256) {
        unsafe { _mm256_storeu_ps(p, x) }
    }
}

/// [`kernel::transpose`](crate::engine::kernel::transpose) with AVX2: `out[p·ldo + j] =
/// m[j·ld + p]` for `j < n`, `p < rows`, `Mᵀ` row by row, in blocks of 8×8 transposed in
/// registers. (`ndarray`'s copy, number by number, took 40–57 µs for the first layer's `Wᵀ` on a
/// Zen 4; this takes 16.)
///
/// # Safety
/// The CPU must have AVX2 and FMA (the path's features); `m` must hold `M[j, p]` for those `j`
/// and `p`, and `out` the `n` numbers from `p·ldo` for each `p < rows`.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn transpose(m: *const f32, ld: usize, n: usize, rows: usize, out: *mut f32, ldo: usize) {
    // SAFETY: forwarded; the CPU has AVX2 and FMA, which this function is compiled for.
    unsafe { transpose_with::<Avx2, 8>(m, ld, n, rows, out, ldo, |r| transpose8(r)) }
}

/// The transpose of an 8×8 block held as 8 rows: 32-bit and 64-bit interleaves within each
/// 128-bit half, then the halves exchanged.
#[target_feature(enable = "avx2,fma")]
#[inline]
fn transpose8(r: [__m256; 8]) -> [__m256; 8] {
    let mut t = [_mm256_setzero_ps(); 8];
    for i in 0..4 {
        t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    let mut u = [_mm256_setzero_ps(); 8];
    for q in 0..2 {
        let (a, b, c, d) = (t[4 * q], t[4 * q + 1], t[4 * q + 2], t[4 * q + 3]);
        u[4 * q] = _mm256_shuffle_ps::<0x44>(a, c);
        u[4 * q + 1] = _mm256_shuffle_ps::<0xee>(a, c);
        u[4 * q + 2] = _mm256_shuffle_ps::<0x44>(b, d);
        u[4 * q + 3] = _mm256_shuffle_ps::<0xee>(b, d);
    }
    std::array::from_fn(|i| {
        if i < 4 {
            _mm256_permute2f128_ps::<0x20>(u[i], u[4 + i])
        } else {
            _mm256_permute2f128_ps::<0x31>(u[i - 4], u[i])
        }
    })
}
