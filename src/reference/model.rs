//! The whole model, forward and backward through its layers, and one training step
//! (`docs/backprop.md` §8): forward, loss, backward, update, each its own call.
//!
//! Shapes: `x` (B, D) a batch of inputs (to train, the corrupted images, `docs/backprop.md`'s
//! `X̃`; the target is the clean `X`). The formulas count layers from 1 to `N`: layer `l` maps
//! `A_{l−1}` (B, I_l) to `A_l` (B, O_l), with `A_0 = x`, and the last layer's output is the
//! logits `Z_N` (B, D). The code counts from 0, like Python lists: the layer at index `k` (the
//! formulas' layer `k + 1`) reads `outputs[k − 1]` (or `x`) and writes `outputs[k]`, which the
//! formulas call `A_{k+1}` (the last, `outputs[N − 1]`, is the logits `Z_N`: no sigmoid).

use ndarray::{Array2, ArrayView2};

use crate::engine::adam::Adam;
use crate::engine::layer::Layer;
use crate::engine::loss::Loss;
use crate::engine::model::Model;
use crate::reference::conv::Conv;
use crate::reference::{Gradients, activation, adam, conv, dense, loss, pool};

/// One optimisation step on a batch: returns the loss summed over the batch's `B·D` entries.
///
/// Shapes: `input` (B, D), the corrupted images; `target` (B, D), the clean ones.
pub fn train_step(
    model: &mut Model,
    optimizer: &mut Adam,
    loss: Loss,
    input: ArrayView2<f32>,
    target: ArrayView2<f32>,
) -> f64 {
    let outputs = forward(model, input); // A₁ … A_{N−1}, and the logits Z_N
    let logits = outputs.last().expect("at least one layer");
    let (total, delta) = loss::loss_and_delta(loss, logits.view(), target); // Σℓ, δ_N = ∂L/∂Z_N
    let grads = backward(model, input, &outputs, delta); // dW_l, db_l for every layer
    adam::step(optimizer, model, &grads); // W_l ← W_l − lr·m̂/(√v̂ + ε)
    total
}

/// Forward: `A_l = f_l(layer_l(A_{l−1}))` for every layer, with `A_0 = x`. Returns every
/// layer's output; the last is the logits `Z_N`, before the output's sigmoid, which the loss
/// takes in its stable form (or [`reconstruct`] applies).
///
/// Shapes: `x` (B, D) → `A_l` (B, O_l) for each layer `l`, the last (B, D).
pub fn forward(model: &Model, x: ArrayView2<f32>) -> Vec<Array2<f32>> {
    let last = model.layers.len() - 1;
    let mut outputs: Vec<Array2<f32>> = Vec::with_capacity(model.layers.len());
    for (k, layer) in model.layers.iter().enumerate() {
        let a_prev = if k == 0 { x } else { outputs[k - 1].view() };
        let z = layer_forward(layer, a_prev);
        outputs.push(if k < last { activation::forward(model.activations[k], z) } else { z });
    }
    outputs
}

/// Backward: from `δ_N = ∂L/∂Z_N`, for each layer from the last to the first, the layer's
/// gradients and then the gradient before the previous layer's activation:
///
/// ```text
/// dW_l, db_l    = the layer's backward from δ_l and A_{l−1}
/// δ_{l−1}       = dA_{l−1} ⊙ f′_{l−1}(A_{l−1}),   dA_{l−1} = the layer's backward input
/// ```
///
/// The code counts layers from 0: its loop index, call it `k`, is the formula's `l − 1`, so
/// `a_prev` is `A_{l−1}` (`outputs[k − 1]`, or `x`) and `f′_{l−1}` is `model.activations[k − 1]`'s.
///
/// Shapes: `x` (B, D), `outputs` as [`forward`] returns them, `delta` (B, D). Returns one
/// entry per layer, `None` for a layer without parameters (a max-pool).
pub fn backward(
    model: &Model,
    x: ArrayView2<f32>,
    outputs: &[Array2<f32>],
    delta: Array2<f32>,
) -> Vec<Option<Gradients>> {
    let mut grads = vec![None; model.layers.len()];
    let mut delta = delta;
    for k in (0..model.layers.len()).rev() {
        let a_prev = if k == 0 { x } else { outputs[k - 1].view() };
        grads[k] = layer_backward(&model.layers[k], a_prev, delta.view());
        if k > 0 {
            let da_prev = layer_backward_input(&model.layers[k], a_prev, delta.view());
            delta = activation::backward(model.activations[k - 1], a_prev, da_prev);
        }
    }
    grads
}

/// The reconstruction `x̂ = σ(Z_N)` of `x`, the model's output.
///
/// Shapes: `x` (B, D) → `x̂` (B, D).
pub fn reconstruct(model: &Model, x: ArrayView2<f32>) -> Array2<f32> {
    let logits = forward(model, x).pop().expect("at least one layer");
    activation::forward(*model.activations.last().expect("at least one layer"), logits)
}

/// A layer's forward pass, `Z = layer(A_prev)`, before its activation.
///
/// Shapes: `a_prev` (B, I) → `Z` (B, O).
pub fn layer_forward(layer: &Layer, a_prev: ArrayView2<f32>) -> Array2<f32> {
    match layer {
        Layer::Dense(d) => dense::forward(d, a_prev),
        Layer::Conv2d(c) => conv::forward(Conv::Conv2d(c), a_prev),
        Layer::ConvTranspose2d(c) => conv::forward(Conv::Transposed(c), a_prev),
        Layer::MaxPool2d(p) => pool::forward(p, a_prev),
    }
}

/// A layer's parameter gradients from `δ = ∂L/∂Z`, if it has parameters.
///
/// Shapes: `a_prev` (B, I), `delta` (B, O).
pub fn layer_backward(layer: &Layer, a_prev: ArrayView2<f32>, delta: ArrayView2<f32>) -> Option<Gradients> {
    match layer {
        Layer::Dense(_) => Some(dense::backward(a_prev, delta)),
        Layer::Conv2d(c) => Some(conv::backward(Conv::Conv2d(c), a_prev, delta)),
        Layer::ConvTranspose2d(c) => Some(conv::backward(Conv::Transposed(c), a_prev, delta)),
        Layer::MaxPool2d(_) => None,
    }
}

/// A layer's input gradient `dA_prev = ∂L/∂A_prev` from `δ = ∂L/∂Z`.
///
/// Shapes: `a_prev` (B, I), `delta` (B, O) → `dA_prev` (B, I).
pub fn layer_backward_input(layer: &Layer, a_prev: ArrayView2<f32>, delta: ArrayView2<f32>) -> Array2<f32> {
    match layer {
        Layer::Dense(d) => dense::backward_input(d, delta),
        Layer::Conv2d(c) => conv::backward_input(Conv::Conv2d(c), delta),
        Layer::ConvTranspose2d(c) => conv::backward_input(Conv::Transposed(c), delta),
        Layer::MaxPool2d(p) => pool::backward_input(p, a_prev, delta),
    }
}
