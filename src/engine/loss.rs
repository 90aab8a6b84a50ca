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
        // Three loops over the row: the number each entry's loss and slope share (BCE:
        // `e = e^{−|z|}`; MSE: `p = σ(z)`), into `dz` for now; the loss from it; the slope from
        // it, written over it. In one loop each entry's work was one long chain of dependent
        // operations (`exp`, two divisions, `ln(1 + x)`'s series), too long for enough entries
        // to be in flight (on AVX2's 16 registers above all); in three, the BCE took a third
        // less time on AVX2 (the same bits; docs/performance.md). MSE follows the same shape.
        match self {
            Loss::Bce => {
                dz.iter_mut().zip(z).for_each(|(e, &z)| *e = exp_nonpositive(-z.abs()));
                let total = lane_sum(z, y, dz, bce);
                dz.iter_mut().zip(z).zip(y).for_each(|((e, &z), &y)| *e = scale * bce_slope(z, y, *e));
                total
            }
            Loss::Mse => {
                dz.iter_mut().zip(z).for_each(|(p, &z)| *p = sigmoid(z));
                let total = lane_sum(z, y, dz, |_, y, p| mse(p, y));
                dz.iter_mut().zip(y).for_each(|(p, &y)| *p = scale * mse_slope(*p, y));
                total
            }
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

/// BCE from logits, `ℓ = max(z, 0) − z·y + ln(1 + e^{−|z|})`, given `e = e^{−|z|}` (which never
/// overflows; [`Loss::forward_backward`] computes it in a loop of its own).
#[inline(always)]
fn bce(z: f32, y: f32, e: f32) -> f32 {
    z.max(0.0) - z * y + ln_1p_unit(e)
}

/// The BCE's slope `∂ℓ/∂z = σ(z) − y` (the sigmoid's slope cancels against the log's), from the
/// same `e`: `σ(z) = 1/(1 + e)` for `z ≥ 0`, `e/(1 + e)` below. Branch-free, so the loop over a
/// row vectorizes.
#[inline(always)]
fn bce_slope(z: f32, y: f32, e: f32) -> f32 {
    let numerator = if z >= 0.0 { 1.0 } else { e };
    numerator / (1.0 + e) - y
}

/// MSE through the sigmoid, `ℓ = (p − y)²` with `p = σ(z)`.
#[inline(always)]
fn mse(p: f32, y: f32) -> f32 {
    let r = p - y;
    r * r
}

/// MSE's slope `∂ℓ/∂z = 2·(p − y)·p·(1 − p)`, the sigmoid's slope `p·(1 − p)` by the chain rule.
#[inline(always)]
fn mse_slope(p: f32, y: f32) -> f32 {
    2.0 * (p - y) * p * (1.0 - p)
}

/// `Σᵢ f(zᵢ, yᵢ, sᵢ)` over a row, with `s` the shared numbers the first loop left in `dz` (the
/// BCE's `e^{−|z|}`, MSE's `σ(z)`).
///
/// A single running sum would keep the loop from vectorizing (float addition is not
/// associative, so the compiler may not reorder it). Instead entry `i` is added to partial sum
/// `i mod 16` (one AVX-512 register's worth, two of AVX2's), and the sixteen are added at the
/// end: a fixed order, so the same on every run.
#[inline(always)]
fn lane_sum(z: &[f32], y: &[f32], s: &[f32], f: impl Fn(f32, f32, f32) -> f32) -> f32 {
    const LANES: usize = 16;
    let mut sums = [0.0f32; LANES];
    let mut entries = |z: &[f32], y: &[f32], s: &[f32]| {
        for (((&z, &y), &s), sum) in z.iter().zip(y).zip(s).zip(sums.iter_mut()) {
            *sum += f(z, y, s);
        }
    };
    let (z, y, s) = (z.chunks_exact(LANES), y.chunks_exact(LANES), s.chunks_exact(LANES));
    let (z_rest, y_rest, s_rest) = (z.remainder(), y.remainder(), s.remainder());
    for ((z, y), s) in z.zip(y).zip(s) {
        entries(z, y, s);
    }
    entries(z_rest, y_rest, s_rest);
    sums.iter().sum()
}
