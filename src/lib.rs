//! A denoising autoencoder for MNIST, trained by backpropagation written out by hand.
//!
//! The numeric core is ours: layers, activations, losses and Adam on `ndarray`, matrix products
//! through our own AVX-512 kernel (`matrixmultiply` without AVX-512), threads through `rayon`,
//! and an IDX reader for the data. The folders are the pipeline, each using only the ones
//! listed before it:
//!
//! 1. [`engine`]: matrix products, layers, activations, losses, Adam, and the model;
//! 2. [`data`]: the IDX reader, the data set and its corruption (which borrows the engine's
//!    fast `exp` and `ln`);
//! 3. [`train`]: the training loop and its profile;
//! 4. [`eval`]: what a trained model is worth;
//! 5. [`files`]: model, state, metrics, images and charts on disk;
//! 6. [`report`]: the page that shows what a run's network learned;
//! 7. [`cli`]: the flags and the commands.
//!
//! The derivations are in `docs/backprop.md`, the reasons for the speed in
//! `docs/performance.md`.

#![warn(missing_docs)]

pub mod cli;
pub mod data;
pub mod engine;
pub mod eval;
#[cfg(feature = "exercises")]
pub mod exercises;
pub mod files;
pub mod reference;
pub mod report;
pub mod train;
