//! `exp`, `ln`, `ln(1 + x)` and `sin`/`cos` for f32, written branch-free so that a loop over
//! them vectorizes.
//!
//! The loss evaluates `exp` and `ln(1 + x)` once per pixel — 47 million per epoch — and the C
//! library's scalar `expf`/`log1pf` made it the slowest phase of training; the Gaussian noise
//! needs `ln` and `sin`/`cos` as often. These are the textbook constructions (Cody–Waite range
//! reduction, a short polynomial or series, an exponent built from bits), accurate to a few units
//! in the last place; `tests/fastmath.rs` measures them against `std`. They are not a general
//! math library: each covers only the domain its caller needs, stated on the function.
//!
//! Here too is `for_this_cpu!`, which compiles a loop for the CPU's vector instructions when
//! the build does not target them.

/// `ln 2` split in two, so that `n·LN2_HI` is exact for the `n` we use (Cody–Waite).
const LN2_HI: f32 = 0.693_145_75;
const LN2_LO: f32 = 1.428_606_8e-6;

/// 1.5·2²³: adding it to an f32 of magnitude below 2²² rounds that to an integer.
const ROUNDER: f32 = 12_582_912.0;

/// `eˣ` for `x ≤ 0`; `x < −87` (where `eˣ` leaves the normal range) gives 0.
///
/// `eˣ = 2ⁿ · eʳ` with `n = round(x / ln 2)` and `|r| ≤ ln 2 / 2`; `eʳ` by its Taylor series to
/// `r⁷/7!`, whose first omitted term is below 1.1e-8 of the result.
#[inline(always)]
pub fn exp_nonpositive(x: f32) -> f32 {
    let underflow = x < -87.0;
    let x = x.max(-87.0);
    // Round x/ln 2 to the nearest integer n by adding 1.5·2²³: the sum's last mantissa bits
    // then hold n itself, so 2ⁿ is built from bits without a float-to-int conversion (which,
    // saturating in Rust, would keep the loop from vectorizing; so would `round()`).
    let shifted = x * std::f32::consts::LOG2_E + ROUNDER;
    let n = shifted - ROUNDER;
    let r = mul_add(-n, LN2_LO, mul_add(-n, LN2_HI, x));
    let taylor = [1.0 / 5040.0, 1.0 / 720.0, 1.0 / 120.0, 1.0 / 24.0, 1.0 / 6.0, 0.5, 1.0, 1.0];
    let p = horner(r, taylor);
    let exponent = shifted.to_bits().wrapping_sub(ROUNDER.to_bits()).wrapping_add(127);
    let two_n = f32::from_bits(exponent << 23);
    if underflow { 0.0 } else { p * two_n }
}

/// `ln(1 + x)` for `0 ≤ x ≤ 1`, accurate even for tiny `x`.
///
/// `ln(1 + x) = 2·atanh(s)` with `s = x / (2 + x) ≤ 1/3`, and
/// `atanh(s) = s·(1 + s²/3 + s⁴/5 + … + s¹⁴/15)`; the first omitted term is below 1.4e-9 of it.
#[inline(always)]
pub fn ln_1p_unit(x: f32) -> f32 {
    2.0 * atanh_series::<8>(x / (2.0 + x))
}

/// `ln x` for a positive, normal `x` (not zero, subnormal, infinite or NaN).
///
/// `x = m·2ᵉ` with `m ∈ [√½, √2)`, read off the bits; `ln x = e·ln 2 + 2·atanh(s)` with
/// `s = (m − 1)/(m + 1)`, `|s| ≤ 0.172`, where the series to `s⁹/9` suffices: the first omitted
/// term is below 2.1e-9 of it.
#[inline(always)]
pub fn ln_positive(x: f32) -> f32 {
    // Offsetting the bits by those of √½ puts m in [√½, √2) rather than [1, 2).
    let offset = x.to_bits().wrapping_sub(0x3f35_04f3);
    let e = (offset as i32 >> 23) as f32;
    let m = f32::from_bits((offset & 0x007f_ffff).wrapping_add(0x3f35_04f3));
    e * LN2_HI + (e * LN2_LO + 2.0 * atanh_series::<5>((m - 1.0) / (m + 1.0)))
}

/// `atanh(s) = s·(1 + s²/3 + s⁴/5 + …)`, its first `N` terms.
#[inline(always)]
fn atanh_series<const N: usize>(s: f32) -> f32 {
    // Horner's rule on s² with the coefficients 1/(2N − 1), …, 1/3, 1.
    let mut p = 1.0 / (2 * N - 1) as f32;
    for k in (0..N - 1).rev() {
        p = mul_add(p, s * s, 1.0 / (2 * k + 1) as f32);
    }
    s * p
}

/// `(sin 2πv, cos 2πv)` for any finite `v`.
///
/// `v` is reduced to `r = v − q/4` with `q` the nearest quarter turn, so `|2πr| ≤ π/4`, where
/// Taylor series to the 9th and 10th power are exact to f32 (the first omitted terms are below
/// 1.8e-9); then rotated by `q` quarter turns.
#[inline(always)]
pub fn sin_cos_2pi(v: f32) -> (f32, f32) {
    let quarters = 4.0 * v;
    let shifted = quarters + ROUNDER;
    let q = shifted - ROUNDER;
    let a = (quarters - q) * std::f32::consts::FRAC_PI_2;
    let a2 = a * a;
    let sin = a * horner(a2, [1.0 / 362_880.0, -1.0 / 5040.0, 1.0 / 120.0, -1.0 / 6.0, 1.0]);
    let cos = horner(a2, [-1.0 / 3_628_800.0, 1.0 / 40_320.0, -1.0 / 720.0, 1.0 / 24.0, -0.5, 1.0]);
    // Rotating by q quarter turns: q mod 4 = 1 maps (s, c) to (c, −s), 2 to (−s, −c), 3 to (−c, s).
    let q = shifted.to_bits().wrapping_sub(ROUNDER.to_bits()) & 3;
    let (s, c) = if q & 1 == 1 { (cos, -sin) } else { (sin, cos) };
    if q & 2 == 2 { (-s, -c) } else { (s, c) }
}

/// The polynomial with `coefficients` (highest power first) at `x`, by Horner's rule: one
/// multiply-add per coefficient.
#[inline(always)]
fn horner<const N: usize>(x: f32, coefficients: [f32; N]) -> f32 {
    let mut p = coefficients[0];
    for &c in &coefficients[1..] {
        p = mul_add(p, x, c);
    }
    p
}

/// `a·b + c` with one rounding, so every build gives the same bits: one instruction where the
/// code is compiled for FMA (a build for the machine it runs on, or a loop compiled for it at run
/// time, [`for_this_cpu`]); a library call otherwise (a CPU without FMA, slow but the same
/// numbers). Rust never fuses `a * b + c` on its own.
#[inline(always)]
fn mul_add(a: f32, b: f32, c: f32) -> f32 {
    a.mul_add(b, c)
}

/// Runs `$body` compiled for the instruction set of the products' path
/// ([`crate::engine::kernel::path`]: AVX-512, or AVX2 and FMA) when the build does not target it
/// (the default build, for any x86-64, whose `mul_add` would otherwise call the library for
/// every term and whose loops would use 128-bit vectors); otherwise (a build with `-C
/// target-cpu=native` on such a CPU) as built. The same bits either way.
///
/// Only what the compiler inlines into the body is compiled anew (loops written in it,
/// `#[inline(always)]` functions), so wrap a whole loop, once per row or block, not each number;
/// inside a body, call a function's `_here` form (`Activation::backward_here`), not one that
/// dispatches again for every few numbers (a max-pool's backward did: 7.6% of its time).
///
/// Why a macro: a closure is one function, compiled once for the baseline, so a function taking
/// a closure cannot compile it anew (tried: a dense epoch 0.40 → 1.75 s). The closure still has to
/// be inlined into `with_avx512` for its code to use AVX-512, and LLVM refuses when the body, as
/// it stands after its own inlining, calls a function that returns an array or a pair by value
/// ("conflicting attributes" under `-C remark=inline`): so compute slices before the body, return
/// nothing from it, and keep library functions that may stay calls (`array::from_fn`,
/// `Iterator::reduce`) out of it. Two bodies left out whatever was tried have `#[target_feature]`
/// functions of their own instead: [`Noise::corrupt`](crate::data::noise::Noise::corrupt), the
/// largest, and `conv::pixel_sums_of`. The macro writes `$body` three times: in a closure only
/// `with_avx512` calls, in one only `with_avx2_fma` calls (each inlined there, being called
/// once), and as it is. So the body must not `return` or use `?`: in the closures' copies they
/// would leave the closure alone.
macro_rules! for_this_cpu {
    ($body:expr) => {{
        #[cfg(target_arch = "x86_64")]
        let result = match $crate::engine::fastmath::compiled_for() {
            $crate::engine::fastmath::Compiled::Avx512 => {
                let body = || $body;
                // SAFETY: the CPU has every feature `with_avx512` enables (`compiled_for`).
                unsafe { $crate::engine::fastmath::with_avx512(body) }
            }
            $crate::engine::fastmath::Compiled::Avx2 => {
                let body = || $body;
                // SAFETY: the CPU has AVX2 and FMA (`compiled_for`).
                unsafe { $crate::engine::fastmath::with_avx2_fma(body) }
            }
            $crate::engine::fastmath::Compiled::AsBuilt => $body,
        };
        #[cfg(not(target_arch = "x86_64"))]
        let result = $body;
        result
    }};
}
pub(crate) use for_this_cpu;

/// Which copy of a [`for_this_cpu`] body runs.
#[cfg(target_arch = "x86_64")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Compiled {
    /// Compiled for AVX-512 (F, VL, BW, DQ), AVX2 and FMA at run time.
    Avx512,
    /// Compiled for AVX2 and FMA at run time.
    Avx2,
    /// As the build compiled it.
    AsBuilt,
}

/// The copy of a [`for_this_cpu`] body for the products' path on this CPU: the path's
/// instruction set, unless the build targets it already (then the build's own code); on the
/// AVX-512 path of a CPU without VL, BW or DQ, the AVX2 copy; on the portable path, as built.
/// Decided once: asked each time a body runs, some of which run on a few numbers.
#[cfg(target_arch = "x86_64")]
#[inline]
pub(crate) fn compiled_for() -> Compiled {
    static COMPILED: std::sync::OnceLock<Compiled> = std::sync::OnceLock::new();
    *COMPILED.get_or_init(|| {
        use std::arch::is_x86_feature_detected as has;

        use crate::engine::kernel::{Path, path};
        let avx2 = || has!("avx2") && has!("fma");
        let avx512 = || avx2() && has!("avx512f") && has!("avx512vl") && has!("avx512bw") && has!("avx512dq");
        match path() {
            Path::Avx512 if cfg!(target_feature = "avx512f") => Compiled::AsBuilt,
            Path::Avx512 if avx512() => Compiled::Avx512,
            Path::Avx512 | Path::Avx2 if cfg!(target_feature = "fma") => Compiled::AsBuilt,
            Path::Avx512 | Path::Avx2 if avx2() => Compiled::Avx2,
            _ => Compiled::AsBuilt,
        }
    })
}

/// `f()`, with AVX-512 enabled in whatever the compiler inlines into it ([`for_this_cpu`]).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vl,avx512bw,avx512dq,avx2,fma")]
pub(crate) fn with_avx512<R>(f: impl FnOnce() -> R) -> R {
    f()
}

/// `f()`, with AVX2 and FMA enabled in whatever the compiler inlines into it ([`for_this_cpu`]).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
pub(crate) fn with_avx2_fma<R>(f: impl FnOnce() -> R) -> R {
    f()
}
