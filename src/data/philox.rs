//! Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC 2011): a
//! counter-based generator, the one JAX, PyTorch and TensorFlow use on GPUs.
//!
//! It is a pure function from a 128-bit counter and a 64-bit key to 128 random bits, so the
//! noise of pixel `p` of image `i` is computed directly from `(seed, i, p)` — no state to carry,
//! nothing that depends on which thread asks or in what order, and sixteen counters can run side
//! by side in vector lanes ([`philox4x32_10_x16`]). Checked against the Random123 known-answer
//! vectors in `tests/noise.rs`.

use crate::engine::kernel::{self, Path};

/// The round multipliers and the key schedule's Weyl increments.
const M0: u32 = 0xD251_1F53;
const M1: u32 = 0xCD9E_8D57;
const W0: u32 = 0x9E37_79B9;
const W1: u32 = 0xBB67_AE85;

/// The high and low halves of the 64-bit product `a·b`.
#[inline(always)]
fn mulhilo(a: u32, b: u32) -> (u32, u32) {
    let product = u64::from(a) * u64::from(b);
    ((product >> 32) as u32, product as u32)
}

/// Ten rounds of Philox4x32 on `counter` under `key`.
///
/// ```
/// // The first of Random123's known-answer vectors.
/// let words = dae::data::philox::philox4x32_10([0; 4], [0; 2]);
/// assert_eq!(words, [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]);
/// ```
#[inline(always)]
pub fn philox4x32_10(counter: [u32; 4], key: [u32; 2]) -> [u32; 4] {
    let [mut c0, mut c1, mut c2, mut c3] = counter;
    let [mut k0, mut k1] = key;
    for round in 0..10 {
        if round > 0 {
            k0 = k0.wrapping_add(W0);
            k1 = k1.wrapping_add(W1);
        }
        let (hi0, lo0) = mulhilo(M0, c0);
        let (hi1, lo1) = mulhilo(M1, c2);
        (c0, c1, c2, c3) = (hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0);
    }
    [c0, c1, c2, c3]
}

/// Sixteen Philox4x32-10 blocks at once: `out[4b..4b + 4]` is [`philox4x32_10`] of the counter
/// whose first word is `counter[0] + b` (wrapping), `b = 0 … 15`, and whose other three are
/// `counter`'s.
///
/// The same bits on every path (integer arithmetic); on x86-64 the sixteen run side by side in
/// vector lanes, chosen like the products' kernel ([`crate::engine::kernel::path`]): one 512-bit
/// vector per word of the state with AVX-512, two passes of eight counters in 256-bit vectors
/// with AVX2, one block after another otherwise.
#[inline]
pub fn philox4x32_10_x16(counter: [u32; 4], key: [u32; 2], out: &mut [u32; 64]) {
    philox4x32_10_x16_on(kernel::path(), counter, key, out);
}

/// [`philox4x32_10_x16`] on a given path, which this CPU must support (tests run every path).
pub fn philox4x32_10_x16_on(path: Path, counter: [u32; 4], key: [u32; 2], out: &mut [u32; 64]) {
    assert!(path.supported(), "the {} path on a CPU without it", path.name());
    #[cfg(target_arch = "x86_64")]
    match path {
        // SAFETY: the CPU has AVX-512 (asserted above).
        Path::Avx512 => return unsafe { lanes::x16_avx512(counter, key, out) },
        // SAFETY: the CPU has AVX2 (asserted above).
        Path::Avx2 => return unsafe { lanes::x16_avx2(counter, key, out) },
        Path::Portable => {}
    }
    for (b, out) in (0..).zip(out.chunks_exact_mut(4)) {
        let [first, rest @ ..] = counter;
        let [c1, c2, c3] = rest;
        out.copy_from_slice(&philox4x32_10([first.wrapping_add(b), c1, c2, c3], key));
    }
}

/// [`philox4x32_10_x16`] in vector lanes: lane `i` runs one counter's ten rounds, the four
/// words of the state in four vectors. Lanes are 32 bits wide, and a vector multiply
/// (`mul_epu32`) multiplies only the even lanes, into 64-bit products; so each round multiplies
/// the even lanes and (shifted down) the odd ones apart and blends the halves back (`mulhilo`;
/// the masks `0xAAAA`, `0xAA` take the odd lanes from the second operand). At the end a 4 × 4
/// transposition within each 128-bit group of lanes turns the four word-vectors into whole
/// blocks; the counters are placed so that the blocks then come out in counter order.
#[cfg(target_arch = "x86_64")]
mod lanes {
    use std::arch::x86_64::*;

    use super::{M0, M1, W0, W1};

    /// The key of every round: `key + round·(W0, W1)`.
    #[inline(always)]
    fn round_keys(key: [u32; 2]) -> [[u32; 2]; 10] {
        std::array::from_fn(|r| {
            let r = r as u32;
            [key[0].wrapping_add(r.wrapping_mul(W0)), key[1].wrapping_add(r.wrapping_mul(W1))]
        })
    }

    /// Sixteen counters in one 512-bit vector per word.
    #[target_feature(enable = "avx512f")]
    pub(super) fn x16_avx512(counter: [u32; 4], key: [u32; 2], out: &mut [u32; 64]) {
        // Lane 4L + j (128-bit group L) runs counter 4j + L: after the transposition,
        // vector j holds blocks 4j … 4j + 3.
        let order = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
        let set = |w: u32| _mm512_set1_epi32(w as i32);
        let mut c =
            [_mm512_add_epi32(set(counter[0]), order), set(counter[1]), set(counter[2]), set(counter[3])];
        let (m0, m1) = (set(M0), set(M1));
        // The high and low halves of `m·c` in every lane: `m` holds the multiplier in each lane.
        let mulhilo = |m: __m512i, c: __m512i| {
            let even = _mm512_mul_epu32(c, m);
            let odd = _mm512_mul_epu32(_mm512_srli_epi64(c, 32), m);
            let hi = _mm512_mask_blend_epi32(0xAAAA, _mm512_srli_epi64(even, 32), odd);
            let lo = _mm512_mask_blend_epi32(0xAAAA, even, _mm512_slli_epi64(odd, 32));
            (hi, lo)
        };
        for [k0, k1] in round_keys(key) {
            let (hi0, lo0) = mulhilo(m0, c[0]);
            let (hi1, lo1) = mulhilo(m1, c[2]);
            let xor3 = |a, b, k| _mm512_xor_si512(_mm512_xor_si512(a, b), set(k));
            c = [xor3(hi1, c[1], k0), lo1, xor3(hi0, c[3], k1), lo0];
        }
        let (t0, t1) = (_mm512_unpacklo_epi32(c[0], c[1]), _mm512_unpackhi_epi32(c[0], c[1]));
        let (t2, t3) = (_mm512_unpacklo_epi32(c[2], c[3]), _mm512_unpackhi_epi32(c[2], c[3]));
        let blocks = [
            _mm512_unpacklo_epi64(t0, t2),
            _mm512_unpackhi_epi64(t0, t2),
            _mm512_unpacklo_epi64(t1, t3),
            _mm512_unpackhi_epi64(t1, t3),
        ];
        for (v, out) in blocks.into_iter().zip(out.chunks_exact_mut(16)) {
            // SAFETY: `out` holds 16 numbers; an unaligned store.
            unsafe { _mm512_storeu_si512(out.as_mut_ptr().cast(), v) };
        }
    }

    /// Eight counters in one 256-bit vector per word, twice.
    #[target_feature(enable = "avx2")]
    pub(super) fn x16_avx2(counter: [u32; 4], key: [u32; 2], out: &mut [u32; 64]) {
        // Lane 4L + j runs counter 2j + L: after the transposition, vector j holds blocks 2j, 2j + 1.
        let order = _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7);
        let set = |w: u32| _mm256_set1_epi32(w as i32);
        let (m0, m1) = (set(M0), set(M1));
        let mulhilo = |m: __m256i, c: __m256i| {
            let even = _mm256_mul_epu32(c, m);
            let odd = _mm256_mul_epu32(_mm256_srli_epi64(c, 32), m);
            let hi = _mm256_blend_epi32(_mm256_srli_epi64(even, 32), odd, 0xAA);
            let lo = _mm256_blend_epi32(even, _mm256_slli_epi64(odd, 32), 0xAA);
            (hi, lo)
        };
        for (half, out) in (0..2u32).zip(out.chunks_exact_mut(32)) {
            let first = set(counter[0].wrapping_add(8 * half));
            let mut c = [_mm256_add_epi32(first, order), set(counter[1]), set(counter[2]), set(counter[3])];
            for [k0, k1] in round_keys(key) {
                let (hi0, lo0) = mulhilo(m0, c[0]);
                let (hi1, lo1) = mulhilo(m1, c[2]);
                let xor3 = |a, b, k| _mm256_xor_si256(_mm256_xor_si256(a, b), set(k));
                c = [xor3(hi1, c[1], k0), lo1, xor3(hi0, c[3], k1), lo0];
            }
            let (t0, t1) = (_mm256_unpacklo_epi32(c[0], c[1]), _mm256_unpackhi_epi32(c[0], c[1]));
            let (t2, t3) = (_mm256_unpacklo_epi32(c[2], c[3]), _mm256_unpackhi_epi32(c[2], c[3]));
            let blocks = [
                _mm256_unpacklo_epi64(t0, t2),
                _mm256_unpackhi_epi64(t0, t2),
                _mm256_unpacklo_epi64(t1, t3),
                _mm256_unpackhi_epi64(t1, t3),
            ];
            for (v, out) in blocks.into_iter().zip(out.chunks_exact_mut(8)) {
                // SAFETY: `out` holds 8 numbers; an unaligned store.
                unsafe { _mm256_storeu_si256(out.as_mut_ptr().cast(), v) };
            }
        }
    }
}
