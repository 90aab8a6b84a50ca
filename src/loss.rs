//! Reconstruction losses on the output layer's logits `z`, each fused with its gradient.
//!
//! The model's output is `x̂ = σ(z)`; the losses take `z` itself so that binary cross-entropy
//! can use its stable form and its gradient collapses to `σ(z) − y` (the sigmoid's slope cancels
//! against the log's, as in Nielsen's `CrossEntropyCost.delta`). Both are means over all `B·D`
//! entries, like Keras's `binary_crossentropy` and `mean_squared_error`.

use crate::activation::sigmoid;

/// Which reconstruction loss to minimise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loss {
    /// Binary cross-entropy `ℓ = −y·ln x̂ − (1 − y)·ln(1 − x̂)`.
    Bce,
    /// Squared error `ℓ = (x̂ − y)²`.
    Mse,
}

impl Loss {
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
            Loss::Bce => bce_forward_backward(z, y, scale, dz),
            Loss::Mse => mse_forward_backward(z, y, scale, dz),
        }
    }
}

/// BCE from logits: `ℓ = max(z, 0) − z·y + ln(1 + e^{−|z|})`, `∂ℓ/∂z = σ(z) − y`.
fn bce_forward_backward(z: &[f32], y: &[f32], scale: f32, dz: &mut [f32]) -> f32 {
    let mut sum = 0.0;
    for ((&z, &y), dz) in z.iter().zip(y).zip(dz) {
        let (loss, p) = bce(z, y);
        sum += loss;
        *dz = scale * (p - y);
    }
    sum
}

/// One entry of BCE from the logit, and `σ(z)`; both from the same `e^{−|z|}`, which never
/// overflows.
fn bce(z: f32, y: f32) -> (f32, f32) {
    let e = (-z.abs()).exp();
    let loss = z.max(0.0) - z * y + e.ln_1p();
    let p = if z >= 0.0 {
        1.0 / (1.0 + e)
    } else {
        e / (1.0 + e)
    };
    (loss, p)
}

/// MSE through the sigmoid: `ℓ = (σ(z) − y)²`, `∂ℓ/∂z = 2·(σ(z) − y)·σ(z)·(1 − σ(z))`.
fn mse_forward_backward(z: &[f32], y: &[f32], scale: f32, dz: &mut [f32]) -> f32 {
    let mut sum = 0.0;
    for ((&z, &y), dz) in z.iter().zip(y).zip(dz) {
        let p = sigmoid(z);
        let r = p - y;
        sum += r * r;
        *dz = scale * 2.0 * r * p * (1.0 - p);
    }
    sum
}
