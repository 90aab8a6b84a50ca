//! A denoising autoencoder for MNIST, trained by backpropagation written out by hand.
//!
//! The numeric core is ours: dense layers, activations, losses and Adam on `ndarray`, matrix
//! products through `matrixmultiply`, threads through `rayon`, and an IDX reader for the data.
//! Read it in the order of a forward pass: [`mnist`] and [`noise`] make a batch, [`dense`] and
//! [`activation`] carry it through the [`model`], [`loss`] scores it, the backward passes beside
//! each forward send the gradient back, and [`adam`] takes the step; [`train`] loops.
//! [`evaluate`] measures a trained model ([`quality`], [`knn`]); [`cli`] and [`commands`] are
//! the command line. The derivations are in `docs/backprop.md`, the reasons for the speed in
//! `docs/performance.md`.

#![warn(missing_docs)]

pub mod activation;
pub mod adam;
pub mod checkpoint;
pub mod cli;
pub mod commands;
pub mod dense;
pub mod evaluate;
pub mod fastmath;
pub mod figure;
pub mod gemm;
pub mod idx;
pub mod knn;
pub mod loss;
pub mod mnist;
pub mod model;
pub mod noise;
pub mod output;
pub mod philox;
pub mod plot;
pub mod pngio;
pub mod profile;
pub mod quality;
pub mod rng;
pub mod train;
