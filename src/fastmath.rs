//! `exp` and `ln(1 + x)` for f32, written branch-free so that a loop over them vectorizes.
//!
//! The loss evaluates one of each per pixel — 47 million per epoch — and the C library's
//! scalar `expf`/`log1pf` made it the slowest phase of training. These are the textbook
//! constructions (Cody–Waite range reduction, a short polynomial, an exponent built from bits),
//! accurate to a few units in the last place; `tests/fastmath.rs` measures them against `std`.

/// `ln 2` split in two, so that `n·LN2_HI` is exact for the `n` we use (Cody–Waite).
const LN2_HI: f32 = 0.693_145_75;
const LN2_LO: f32 = 1.428_606_8e-6;

/// 1.5·2²³: adding it to an f32 of magnitude below 2²² rounds that to an integer.
const ROUNDER: f32 = 12_582_912.0;

/// `eˣ` for `x ≤ 0`; `x < −87` (where `eˣ` leaves the normal range) gives 0.
///
/// `eˣ = 2ⁿ · eʳ` with `n = round(x / ln 2)` and `|r| ≤ ln 2 / 2`; `eʳ` by its Taylor series to
/// `r⁷/7!`, whose first omitted term is below 1.1e-8 of the result.
#[inline]
pub fn exp_nonpositive(x: f32) -> f32 {
    let underflow = x < -87.0;
    let x = x.max(-87.0);
    // Round x/ln 2 to the nearest integer n by adding 1.5·2²³: the sum's last mantissa bits
    // then hold n itself, so 2ⁿ is built from bits without a float-to-int conversion (which,
    // saturating in Rust, would keep the loop from vectorizing; so would `round()`).
    let shifted = x * std::f32::consts::LOG2_E + ROUNDER;
    let n = shifted - ROUNDER;
    let r = (x - n * LN2_HI) - n * LN2_LO;
    let p = 1.0 / 5040.0;
    let p = p * r + 1.0 / 720.0;
    let p = p * r + 1.0 / 120.0;
    let p = p * r + 1.0 / 24.0;
    let p = p * r + 1.0 / 6.0;
    let p = p * r + 0.5;
    let p = p * r + 1.0;
    let p = p * r + 1.0;
    let exponent = shifted
        .to_bits()
        .wrapping_sub(ROUNDER.to_bits())
        .wrapping_add(127);
    let two_n = f32::from_bits(exponent << 23);
    if underflow { 0.0 } else { p * two_n }
}

/// `ln(1 + x)` for `0 ≤ x ≤ 1`, accurate even for tiny `x`.
///
/// `ln(1 + x) = 2·atanh(s)` with `s = x / (2 + x) ≤ 1/3`, and
/// `atanh(s) = s·(1 + s²/3 + s⁴/5 + … + s¹⁶/17)`; the first omitted term is below 3e-10.
#[inline]
pub fn ln_1p_unit(x: f32) -> f32 {
    let s = x / (2.0 + x);
    let s2 = s * s;
    let p = 1.0 / 17.0;
    let p = p * s2 + 1.0 / 15.0;
    let p = p * s2 + 1.0 / 13.0;
    let p = p * s2 + 1.0 / 11.0;
    let p = p * s2 + 1.0 / 9.0;
    let p = p * s2 + 1.0 / 7.0;
    let p = p * s2 + 1.0 / 5.0;
    let p = p * s2 + 1.0 / 3.0;
    let p = p * s2 + 1.0;
    2.0 * s * p
}
