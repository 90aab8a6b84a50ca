//! Reconstruction losses on the output layer's logits `z`, each fused with its gradient.
//!
//! The model's output is `x̂ = σ(z)`; the losses take `z` itself so that binary cross-entropy
//! can use its stable form and its gradient collapses to `σ(z) − y` (the sigmoid's slope cancels
//! against the log's, as in Nielsen's `CrossEntropyCost.delta`). Both are means over all `B·D`
//! entries, like Keras's `binary_crossentropy` and `mean_squared_error`.

use std::fmt;
use std::str::FromStr;

use crate::engine::activation::sigmoid;
use crate::engine::fastmath::{exp_nonpositive, ln_1p_unit};

/// Which reconstruction loss to minimise; written `bce` or `mse` on the command line and in
/// `metrics.json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loss {
    /// Binary cross-entropy `ℓ = −y·ln x̂ − (1 − y)·ln(1 − x̂)`.
    Bce,
    /// Squared error `ℓ = (x̂ − y)²`.
    Mse,
}

impl Loss {
    /// The name used on the command line and in `metrics.json`.
    pub fn name(self) -> &'static str {
        match self {
            Loss::Bce => "bce",
            Loss::Mse => "mse",
        }
    }

    /// `Σᵢ ℓ(zᵢ, yᵢ)` over one row, and `dzᵢ = scale · ∂ℓ/∂zᵢ` (overwritten).
    ///
    /// Pass `scale = 1/(B·D)` to get the gradient of the mean.
    pub fn forward_backward(self, z: &[f32], y: &[f32], scale: f32, dz: &mut [f32]) -> f32 {
        debug_assert_eq!((z.len(), y.len()), (dz.len(), dz.len()));
        match self {
            Loss::Bce => map_sum(z, y, scale, dz, bce),
            Loss::Mse => map_sum(z, y, scale, dz, mse),
        }
    }
}

impl fmt::Display for Loss {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Loss {
    type Err = String;

    fn from_str(s: &str) -> Result<Loss, String> {
        match s {
            "bce" => Ok(Loss::Bce),
            "mse" => Ok(Loss::Mse),
            _ => Err(format!("unknown loss '{s}'; expected bce or mse")),
        }
    }
}

/// BCE from logits: `ℓ = max(z, 0) − z·y + ln(1 + e^{−|z|})`, `∂ℓ/∂z = σ(z) − y`.
///
/// `σ(z)` and the log term share one `e^{−|z|}`, which never overflows. Branch-free, so the
/// loop over a row vectorizes.
#[inline]
fn bce(z: f32, y: f32) -> (f32, f32) {
    let e = exp_nonpositive(-z.abs());
    let loss = z.max(0.0) - z * y + ln_1p_unit(e);
    let numerator = if z >= 0.0 { 1.0 } else { e };
    let p = numerator / (1.0 + e);
    (loss, p - y)
}

/// MSE through the sigmoid: `ℓ = (σ(z) − y)²`, `∂ℓ/∂z = 2·(σ(z) − y)·σ(z)·(1 − σ(z))`.
#[inline]
fn mse(z: f32, y: f32) -> (f32, f32) {
    let p = sigmoid(z);
    let r = p - y;
    (r * r, 2.0 * r * p * (1.0 - p))
}

/// Applies `f(z, y) = (ℓ, ∂ℓ/∂z)` entrywise, writes `scale·∂ℓ/∂z` into `dz` and returns `Σℓ`.
///
/// A running sum inside the loop would keep it from vectorizing (float addition is not
/// associative, so the compiler may not reorder it). Instead each block of 64 entries writes its
/// losses to a small buffer — a loop the compiler vectorizes — which [`lane_sum`] then adds.
#[inline]
fn map_sum(z: &[f32], y: &[f32], scale: f32, dz: &mut [f32], f: impl Fn(f32, f32) -> (f32, f32)) -> f32 {
    const BLOCK: usize = 64;
    let mut losses = [0.0f32; BLOCK];
    let mut total = 0.0;
    for ((z, y), dz) in z.chunks(BLOCK).zip(y.chunks(BLOCK)).zip(dz.chunks_mut(BLOCK)) {
        let losses = &mut losses[..z.len()];
        for (((&z, &y), dz), loss) in z.iter().zip(y).zip(dz).zip(losses.iter_mut()) {
            let (l, grad) = f(z, y);
            *loss = l;
            *dz = scale * grad;
        }
        total += lane_sum(losses);
    }
    total
}

/// `Σ x` in eight interleaved partial sums, added at the end: a fixed order, so the same on
/// every run, and one the compiler can vectorize.
#[inline]
fn lane_sum(x: &[f32]) -> f32 {
    const LANES: usize = 8;
    let mut sums = [0.0f32; LANES];
    let mut chunks = x.chunks_exact(LANES);
    for chunk in chunks.by_ref() {
        for (s, v) in sums.iter_mut().zip(chunk) {
            *s += v;
        }
    }
    for (s, v) in sums.iter_mut().zip(chunks.remainder()) {
        *s += v;
    }
    sums.iter().sum()
}
