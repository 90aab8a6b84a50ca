//! A denoising autoencoder for MNIST, trained by backpropagation written out by hand.
//!
//! Where to start reading, as README's "Read it" says:
//!
//! 1. `docs/backprop.md` §2–8: the formulas, with the shapes of a batch at every step;
//! 2. [`reference`](mod@reference): the same formulas as plain code, each layer's forward and backward side by
//!    side, the loss, Adam, and [`reference::train_step`], forward, loss, backward and update as
//!    four calls; then `cargo run --release --example backprop_by_hand` prints every one of its
//!    numbers for a tiny network, and `docs/exercises.md` has you write some. The convolutional model's
//!    layers follow with backprop.md §10–15: [`reference::conv`], [`reference::pool`];
//! 3. [`train::trainer`]: the loop around the step, shuffling, corrupting and validating;
//! 4. [`engine`]: the fast engine, which computes what the reference computes, with our own
//!    matrix kernel and threads that each run a shard of the batch; with
//!    `docs/performance.md`, which says why each piece is there and what it buys.
//!
//! The modules, each using only the ones listed before it: [`memory`] (the memory a command may
//! take, checked before anything large is allocated); [`engine`] (the fast layers, losses,
//! Adam and model, and the types both engines share); [`reference`](mod@reference); [`data`] (the IDX reader,
//! the data set and its corruption); [`train`] (the loop and its profile); [`eval`] (what a
//! trained model is worth); [`files`] (model, state, metrics, images and charts on disk);
//! [`report`] (the page that shows what a run learned); [`cli`] (the flags and the commands).

#![warn(missing_docs)]

pub mod cli;
pub mod data;
pub mod engine;
pub mod eval;
#[cfg(feature = "exercises")]
pub mod exercises;
pub mod files;
pub mod memory;
pub mod reference;
pub mod report;
pub mod train;
