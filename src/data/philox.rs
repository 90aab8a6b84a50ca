//! Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC 2011): a
//! counter-based generator, the one JAX, PyTorch and TensorFlow use on GPUs.
//!
//! It is a pure function from a 128-bit counter and a 64-bit key to 128 random bits, so the
//! noise of pixel `p` of image `i` is computed directly from `(seed, i, p)` — no state to carry,
//! nothing that depends on which thread asks or in what order, and a loop over counters that the
//! compiler vectorizes. Checked against the Random123 known-answer vectors in `tests/noise.rs`.

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
