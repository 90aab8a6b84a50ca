//! Exercises in backpropagation: one stub per exercise, for you to fill in. Each doc comment
//! states the formula and the shapes; `docs/exercises.md` says what to derive first, and
//! `tests/exercises.rs` checks your answer. Compiled only with `--features exercises`; nothing
//! in the engine uses this module.
//!
//! Shapes as in [`crate::reference`]: `B` rows in a batch, `I` and `O` a layer's input and
//! output numbers per row, an image one row of `H·W·C` numbers stored channels last.

// Until an exercise is solved its arguments are unused, and that is not worth a warning.
#![allow(unused_variables)]

use ndarray::{Array2, ArrayView2};

use crate::engine::lowering::Image;
use crate::engine::model::Model;
use crate::reference::Gradients;

/// Exercise 1. A dense layer's backward pass, by loops (no `.dot`): from `δ = ∂L/∂Z` for
/// `Z = A_prev·Wᵀ + b`,
///
/// ```text
/// dW[o, i]      = Σₙ δ[n, o]·A_prev[n, i]
/// db[o]         = Σₙ δ[n, o]
/// dA_prev[n, i] = Σₒ δ[n, o]·W[o, i]
/// ```
///
/// Shapes: `w` (O, I), `a_prev` (B, I), `delta` (B, O) → `(Gradients { dW (O, I), db (O,) },
/// dA_prev (B, I))`.
pub fn dense_backward(
    w: ArrayView2<f32>,
    a_prev: ArrayView2<f32>,
    delta: ArrayView2<f32>,
) -> (Gradients, Array2<f32>) {
    todo!("exercise 1: see docs/exercises.md")
}

/// Exercise 2. Leaky ReLU, forward: `a = z` if `z > 0`, else `slope·z` (`0 < slope < 1`).
///
/// Shapes: `z` (B, O) → `A` (B, O).
pub fn leaky_relu_forward(z: Array2<f32>, slope: f32) -> Array2<f32> {
    todo!("exercise 2: see docs/exercises.md")
}

/// Exercise 2. Leaky ReLU, backward: `δ = ∂L/∂A ⊙ f′`, with `f′` read off the output `a`:
/// `f′ = 1` if `a > 0`, else `slope`.
///
/// Shapes: `a` (B, O), `da` (B, O) → `δ` (B, O).
pub fn leaky_relu_backward(a: ArrayView2<f32>, da: Array2<f32>, slope: f32) -> Array2<f32> {
    todo!("exercise 2: see docs/exercises.md")
}

/// Exercise 3. tanh, forward: `a = tanh(z) = (e^z − e^{−z}) / (e^z + e^{−z})`.
///
/// Shapes: `z` (B, O) → `A` (B, O).
pub fn tanh_forward(z: Array2<f32>) -> Array2<f32> {
    todo!("exercise 3: see docs/exercises.md")
}

/// Exercise 3. tanh, backward: `δ = ∂L/∂A ⊙ f′`, with `f′ = 1 − a²` read off the output `a`.
///
/// Shapes: `a` (B, O), `da` (B, O) → `δ` (B, O).
pub fn tanh_backward(a: ArrayView2<f32>, da: Array2<f32>) -> Array2<f32> {
    todo!("exercise 3: see docs/exercises.md")
}

/// Exercise 4. Squared error on a linear output (no sigmoid), `ℓ = (z − y)²`: returns the
/// loss summed over all entries, `Σ ℓ`, and `δ = ∂L/∂Z = 2·(z − y) / (B·D)` for `L` the mean,
/// as [`crate::reference::loss::loss_and_delta`] does for its losses.
///
/// Shapes: `z` (B, D), `y` (B, D) → `δ` (B, D).
pub fn mse_linear(z: ArrayView2<f32>, y: ArrayView2<f32>) -> (f64, Array2<f32>) {
    todo!("exercise 4: see docs/exercises.md")
}

/// Exercise 5. 2×2 average pooling, forward:
/// `Z[y, x, c] = ¼·Σ X[2y + dy, 2x + dx, c]` over `dy, dx ∈ {0, 1}`.
///
/// Shapes: `x` (B, H·W·C) for the image `input` = `(H, W, C)`, `H` and `W` even →
/// `Z` (B, (H/2)·(W/2)·C).
pub fn avg_pool_forward(x: ArrayView2<f32>, input: Image) -> Array2<f32> {
    todo!("exercise 5: see docs/exercises.md")
}

/// Exercise 5. 2×2 average pooling, backward: each of a block's four inputs gets a quarter of
/// its output's gradient, `dX[2y + dy, 2x + dx, c] = δ[y, x, c] / 4`.
///
/// Shapes: `delta` (B, (H/2)·(W/2)·C) for the image `input` = `(H, W, C)` → `dX` (B, H·W·C).
pub fn avg_pool_backward(delta: ArrayView2<f32>, input: Image) -> Array2<f32> {
    todo!("exercise 5: see docs/exercises.md")
}

/// Exercise 6. 2×2 max-pooling, backward, by loops: `dX = δ` at the first largest input of
/// each block in reading order (top left, top right, bottom left, bottom right), 0 at the
/// other three. The same numbers as [`crate::reference::pool::backward_input`].
///
/// Shapes: `x` (B, H·W·C) the forward's input, for the image `input` = `(H, W, C)`;
/// `delta` (B, (H/2)·(W/2)·C) → `dX` (B, H·W·C).
pub fn max_pool_backward(x: ArrayView2<f32>, delta: ArrayView2<f32>, input: Image) -> Array2<f32> {
    todo!("exercise 6: see docs/exercises.md")
}

/// SGD with momentum's settings and state: a velocity `v` for every parameter tensor, in the
/// order [`Model::params_and_grads`] lists them (`W₀, b₀, W₁, b₁, …`).
#[derive(Debug, Clone, PartialEq)]
pub struct Momentum {
    /// The learning rate.
    pub lr: f32,
    /// `μ`, how much of the last step's velocity a step keeps.
    pub mu: f32,
    /// The velocities, one vector per parameter tensor.
    pub v: Vec<Vec<f32>>,
}

impl Momentum {
    /// Zero velocities for tensors of the given sizes (pass [`Model::param_sizes`]).
    pub fn new(lr: f32, mu: f32, sizes: impl IntoIterator<Item = usize>) -> Momentum {
        Momentum { lr, mu, v: sizes.into_iter().map(|n| vec![0.0; n]).collect() }
    }
}

/// Exercise 7. One step of SGD with momentum over every parameter `w` of `model`, with its
/// gradient `g` from `grads` (one entry per layer, `None` for a layer without parameters),
/// as [`crate::reference::adam::step`] does for Adam:
///
/// ```text
/// v ← μ·v + g
/// w ← w − lr·v
/// ```
pub fn momentum_step(opt: &mut Momentum, model: &mut Model, grads: &[Option<Gradients>]) {
    todo!("exercise 7: see docs/exercises.md")
}
