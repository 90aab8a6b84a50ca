//! The reconstruction losses on the output layer's logits `z`, with their gradients
//! (`docs/backprop.md` §3, §4). The model's output is `x̂ = σ(z)`; the loss takes `z` itself so
//! that binary cross-entropy has its stable form and its gradient collapses to `σ(z) − y`.
//! `L` is the mean of `ℓ` over all `B·D` entries, as Keras's losses are.

use ndarray::{Array2, ArrayView2};

use crate::engine::loss::Loss;
use crate::reference::activation::sigmoid;

/// The loss summed over all entries, `Σ ℓ(z, y)`, and `δ = ∂L/∂Z = ∂ℓ/∂z / (B·D)` for `L` the
/// mean.
///
/// Shapes: `z` (B, D) logits, `y` (B, D) targets → `δ` (B, D).
pub fn loss_and_delta(loss: Loss, z: ArrayView2<f32>, y: ArrayView2<f32>) -> (f64, Array2<f32>) {
    let scale = 1.0 / z.len() as f32; // 1/(B·D)
    let mut total = 0.0;
    let mut delta = Array2::zeros(z.raw_dim());
    for ((d, &z), &y) in delta.iter_mut().zip(&z).zip(&y) {
        let (l, dl_dz) = match loss {
            Loss::Bce => bce(z, y),
            Loss::Mse => mse(z, y),
        };
        total += f64::from(l); // Σ ℓ
        *d = scale * dl_dz; // δ = ∂ℓ/∂z / (B·D)
    }
    (total, delta)
}

/// Binary cross-entropy from the logit, and its derivative:
///
/// ```text
/// ℓ = −y·ln σ(z) − (1 − y)·ln(1 − σ(z)) = max(z, 0) − z·y + ln(1 + e^{−|z|})
/// ∂ℓ/∂z = σ(z) − y
/// ```
///
/// The second form never takes `e` to a positive power nor `ln 0`.
pub fn bce(z: f32, y: f32) -> (f32, f32) {
    let loss = z.max(0.0) - z * y + (-z.abs()).exp().ln_1p();
    (loss, sigmoid(z) - y)
}

/// Squared error through the sigmoid, and its derivative:
///
/// ```text
/// ℓ = (σ(z) − y)²
/// ∂ℓ/∂z = 2·(σ(z) − y)·σ(z)·(1 − σ(z))
/// ```
pub fn mse(z: f32, y: f32) -> (f32, f32) {
    let p = sigmoid(z);
    ((p - y) * (p - y), 2.0 * (p - y) * p * (1.0 - p))
}
