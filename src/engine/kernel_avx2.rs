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
    _mm256_set1_epi32, _mm256_set1_ps, _mm256_setr_epi32, _mm256_setzero_ps,
};

use crate::engine::kernel::{Finish, Lanes, Operands, gemm_with};

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
}
