//! The reference engine: backpropagation as the textbook writes it. Read this first.
//!
//! Every layer is a `forward` and a `backward` of plain functions side by side, each with its
//! formula and the shapes of its arrays; the loss, Adam and one training step are the same. No
//! threads, no `unsafe`, no kernel, nothing fused and no buffers kept between calls: each
//! function takes arrays and returns new ones, but for Adam's step, which updates the model and
//! its moments in place. Matrix products are `ndarray`'s `.dot`, and the
//! convolutions are loops over their definitions.
//!
//! It works on the fast engine's own types ([`Model`](crate::engine::model::Model), its layers
//! and [`Adam`](crate::engine::adam::Adam)'s state), so a model trained by one engine is used,
//! saved and resumed by the other. `dae --engine reference` trains with it (the trainer times
//! [`train_step`]'s four calls one by one); `tests/reference.rs`
//! holds every forward and backward of the fast engine ([`crate::engine`]) equal to these.
//!
//! Shapes: `B` rows in a batch (images), `I` and `O` a layer's input and output numbers per
//! row, `D` pixels per image. An image is one row, its `H·W·C` numbers stored channels last.
//! The derivations are in `docs/backprop.md` §2–8 (dense) and §10–15 (convolutions). Reading
//! order: [`dense`] and [`activation`], [`loss`], [`adam`], then [`model`] with
//! [`model::train_step`], which puts them together; [`conv`] and [`pool`] for the
//! convolutional model.

use ndarray::{Array1, Array2};

pub mod activation;
pub mod adam;
pub mod conv;
pub mod dense;
pub mod loss;
pub mod model;
pub mod pool;

pub use model::{backward, forward, train_step};

/// The gradients of one layer's parameters, `∂L/∂W` and `∂L/∂b`, each shaped as the parameter.
#[derive(Debug, Clone, PartialEq)]
pub struct Gradients {
    /// `dW`, shaped as the layer's `W`.
    pub dw: Array2<f32>,
    /// `db`, shaped as the layer's `b`.
    pub db: Array1<f32>,
}
