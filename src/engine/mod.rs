//! The fast engine: matrix products, layers, activations, losses, the optimizer, and the model
//! that chains the layers. Everything here works on `ndarray` arrays of `f32` and knows nothing
//! of files, data sets or the command line.
//!
//! It computes what the reference engine ([`crate::reference`](mod@crate::reference)) computes, which
//! `tests/reference.rs` checks; read that one first. Here the same steps are spread over threads
//! and fused where it pays. Read it from the training step down: [`data_parallel`] runs a dense
//! model's step, each shard of the batch on a thread of a [`team`], then Adam on the summed
//! gradients; [`dense`] is the layer, on one thread for a shard or, over a whole batch, with its
//! forward product split by rows ([`gemm`]); the products call our [`kernel`] (with
//! [`fastmath`] for the elementwise functions); [`model`] chains the layers for everything else
//! (evaluation, and the convolutional model's step, Adam inside each layer's backward); [`conv`]
//! and [`conv_transpose`] turn a convolution into products through [`lowering`], and [`pool`]
//! needs none; [`layer`] puts the four behind one interface, [`activation`] follows each layer,
//! [`loss`] scores the output and [`adam`] takes the step, whose new weights [`stream`] writes
//! when other threads read them.

pub mod activation;
pub mod adam;
pub mod aligned;
pub mod conv;
pub mod conv_transpose;
pub mod data_parallel;
pub mod dense;
pub mod fastmath;
pub mod gemm;
pub mod kernel;
#[cfg(target_arch = "x86_64")]
pub mod kernel_avx2;
pub mod layer;
pub mod loss;
pub mod lowering;
pub mod model;
pub mod pool;
pub mod prefetch;
pub mod stream;
pub mod team;
