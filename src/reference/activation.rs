//! The activations after each layer, `A = f(Z)` elementwise, and the step back through them
//! (`docs/backprop.md` §6). Both derivatives are read off the output `A`, which the forward pass
//! keeps: ReLU's `f′ = [a > 0]` (0 at exactly `z = 0`, as in PyTorch and TensorFlow), the
//! sigmoid's `f′ = a·(1 − a)`.

use ndarray::{Array2, ArrayView2, Zip};

use crate::engine::activation::Activation;

/// Forward: `A = f(Z)`. ReLU's `z.max(0)` is 0 for a NaN `z` (Rust's `max` returns the number
/// that is not NaN), so a NaN weight can hide behind a finite loss: the trainer checks the loss
/// every step and the weights after every epoch.
///
/// Shapes: `z` (B, O) → `A` (B, O).
pub fn forward(f: Activation, z: Array2<f32>) -> Array2<f32> {
    match f {
        Activation::Relu => z.mapv(|z| z.max(0.0)),
        Activation::Sigmoid => z.mapv(sigmoid),
        Activation::Identity => z,
    }
}

/// Backward: `δ = ∂L/∂Z = ∂L/∂A ⊙ f′(Z)`, with `f′` read off the output `a`.
///
/// Shapes: `a` (B, O), `da` (B, O) → `δ` (B, O).
pub fn backward(f: Activation, a: ArrayView2<f32>, da: Array2<f32>) -> Array2<f32> {
    Zip::from(&da).and(&a).map_collect(|&da, &a| match f {
        Activation::Relu => {
            if a > 0.0 { da } else { 0.0 } // f′ = [a > 0]
        }
        Activation::Sigmoid => da * (a * (1.0 - a)), // f′ = a·(1 − a)
        Activation::Identity => da,
    })
}

/// `σ(z) = 1 / (1 + e^{−z})`. For `z < −88.7228` (`−ln f32::MAX`), `e^{−z}` overflows to infinity
/// and `σ` to 0, its limit, so the plain formula is safe in floating point.
pub fn sigmoid(z: f32) -> f32 {
    1.0 / (1.0 + (-z).exp())
}
