//! Reconstruction losses on the output layer's logits `z`, each fused with its gradient.
//!
//! The model's output is `x̂ = σ(z)`; the losses take `z` itself so that binary cross-entropy
//! can use its stable form and its gradient collapses to `σ(z) − y` (the sigmoid's slope cancels
//! against the log's, as in Nielsen's `CrossEntropyCost.delta`). Both are means over all `B·D`
//! entries, like Keras's `binary_crossentropy` and `mean_squared_error`.

use std::fmt;
use std::str::FromStr;

use ndarray::{ArrayView2, ArrayViewMut2};

use crate::engine::activation::sigmoid;
use crate::engine::fastmath::{self, exp_nonpositive, ln_1p_unit};

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

    /// [`Loss::forward_backward`] row by row: `row_loss[r] = Σᵢ ℓ(z[r, i], y[r, i])` and
    /// `dz = scale · ∂ℓ/∂z` (overwritten).
    ///
    /// Shapes: `z`, `y`, `dz` (R, D) → `row_loss` (R,).
    pub fn rows(
        self,
        z: ArrayView2<f32>,
        y: ArrayView2<f32>,
        scale: f32,
        mut dz: ArrayViewMut2<f32>,
        row_loss: &mut [f32],
    ) {
        for (((z, y), mut dz), out) in z.rows().into_iter().zip(y.rows()).zip(dz.rows_mut()).zip(row_loss) {
            let (z, y) = (z.as_slice().expect("row"), y.as_slice().expect("row"));
            *out = self.forward_backward(z, y, scale, dz.as_slice_mut().expect("row"));
        }
    }

    /// `Σᵢ ℓ(zᵢ, yᵢ)` over one row, and `dzᵢ = scale · ∂ℓ/∂zᵢ` (overwritten).
    ///
    /// Pass `scale = 1/(B·D)` to get the gradient of the mean.
    pub fn forward_backward(self, z: &[f32], y: &[f32], scale: f32, dz: &mut [f32]) -> f32 {
        debug_assert_eq!((z.len(), y.len()), (dz.len(), dz.len()));
        fastmath::for_this_cpu!(self.forward_backward_here(z, y, scale, dz))
    }

    #[inline(always)]
    fn forward_backward_here(self, z: &[f32], y: &[f32], scale: f32, dz: &mut [f32]) -> f32 {
        match self {
            Loss::Bce => {
                // `e^{−|z|}` first, into `dz`, then the rest from it: in one loop each logit's
                // work is one long chain of dependent operations (`exp`, a division, `ln(1 + x)`),
                // and with AVX2's 16 registers too few logits were in flight to hide it; two
                // loops, each about half the chain, took a third less time (the same bits).
                // docs/performance.md has the figures.
                dz.iter_mut().zip(z).for_each(|(e, &z)| *e = exp_nonpositive(-z.abs()));
                map_sum(z, y, scale, dz, bce)
            }
            Loss::Mse => map_sum(z, y, scale, dz, |z, y, _| mse(z, y)),
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
/// `σ(z)` and the log term share one `e = e^{−|z|}`, which never overflows; the caller computes
/// it in a loop of its own ([`Loss::forward_backward`]). Branch-free, so the loop over a row
/// vectorizes.
#[inline(always)]
fn bce(z: f32, y: f32, e: f32) -> (f32, f32) {
    let loss = z.max(0.0) - z * y + ln_1p_unit(e);
    let numerator = if z >= 0.0 { 1.0 } else { e };
    let p = numerator / (1.0 + e);
    (loss, p - y)
}

/// MSE through the sigmoid: `ℓ = (σ(z) − y)²`, `∂ℓ/∂z = 2·(σ(z) − y)·σ(z)·(1 − σ(z))`.
#[inline(always)]
fn mse(z: f32, y: f32) -> (f32, f32) {
    let p = sigmoid(z);
    let r = p - y;
    (r * r, 2.0 * r * p * (1.0 - p))
}

/// Applies `f(z, y, d) = (ℓ, ∂ℓ/∂z)` entrywise, with `d = dz[i]` as the caller left it (the
/// BCE's `e^{−|z|}`; MSE ignores it), writes `scale·∂ℓ/∂z` into `dz` and returns `Σℓ`.
///
/// A single running sum would keep the loop from vectorizing (float addition is not
/// associative, so the compiler may not reorder it). Instead entry `i` is added to partial sum
/// `i mod 16`, one vector register's worth, and the sixteen are added at the end: a fixed order,
/// so the same on every run.
#[inline(always)]
fn map_sum(z: &[f32], y: &[f32], scale: f32, dz: &mut [f32], f: impl Fn(f32, f32, f32) -> (f32, f32)) -> f32 {
    const LANES: usize = 16;
    let mut sums = [0.0f32; LANES];
    let mut entries = |z: &[f32], y: &[f32], dz: &mut [f32]| {
        for (((&z, &y), dz), sum) in z.iter().zip(y).zip(dz).zip(sums.iter_mut()) {
            let (loss, grad) = f(z, y, *dz);
            *sum += loss;
            *dz = scale * grad;
        }
    };
    let (z, y) = (z.chunks_exact(LANES), y.chunks_exact(LANES));
    let (z_rest, y_rest) = (z.remainder(), y.remainder());
    let mut dz = dz.chunks_exact_mut(LANES);
    for ((z, y), dz) in z.zip(y).zip(dz.by_ref()) {
        entries(z, y, dz);
    }
    entries(z_rest, y_rest, dz.into_remainder());
    sums.iter().sum()
}
