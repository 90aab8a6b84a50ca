//! The dense layer, `Z = A_prev·Wᵀ + b`, and its backward pass (`docs/backprop.md` §2, §5).
//!
//! Shapes: `A_prev` (B, I), `W` (O, I) as PyTorch's `nn.Linear` stores it, `b` (O,), `Z` (B, O).

use ndarray::{Array1, Array2, ArrayView2};

use crate::engine::dense::Dense;
use crate::reference::Gradients;

/// Forward: `Z = A_prev·Wᵀ + b`, that is `Z[n, o] = Σᵢ A_prev[n, i]·W[o, i] + b[o]`.
///
/// Shapes: `a_prev` (B, I) → `Z` (B, O).
pub fn forward(layer: &Dense, a_prev: ArrayView2<f32>) -> Array2<f32> {
    // `a_prev @ W.T + b` in NumPy; `+ b` adds the biases to every row. (`w()` reads `W`, which
    // the fast engine keeps private so that its copy of `Wᵀ` cannot go stale.)
    a_prev.dot(&layer.w().t()) + &layer.b
}

/// Backward, parameters: from `δ = ∂L/∂Z`,
///
/// ```text
/// dW = δᵀ·A_prev      (O, B)·(B, I) → (O, I)     ∂L/∂W[o, i] = Σₙ δ[n, o]·A_prev[n, i]
/// db = Σ_rows δ       (O,)                       ∂L/∂b[o]    = Σₙ δ[n, o]
/// ```
///
/// Shapes: `a_prev` (B, I), `delta` (B, O).
pub fn backward(a_prev: ArrayView2<f32>, delta: ArrayView2<f32>) -> Gradients {
    let dw = delta.t().dot(&a_prev);
    let mut db = Array1::zeros(delta.ncols());
    for row in delta.rows() {
        db += &row;
    }
    Gradients { dw, db }
}

/// Backward, input: `dA_prev = δ·W`, `∂L/∂A_prev[n, i] = Σₒ δ[n, o]·W[o, i]`.
///
/// Shapes: `delta` (B, O) → `dA_prev` (B, I).
pub fn backward_input(layer: &Dense, delta: ArrayView2<f32>) -> Array2<f32> {
    delta.dot(&layer.w())
}
