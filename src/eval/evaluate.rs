//! What a trained model is worth: how well it denoises the test set, and how good its codes
//! are as features.
//!
//! Denoising: BCE, MSE, PSNR and SSIM of the corrupted input and of the reconstruction, each
//! against the clean image, averaged over the test images. Features: the accuracy of a 5-nearest-
//! neighbour classifier on the test set with the training set as reference, once on the
//! bottleneck codes of the clean images and once on their raw pixels.

use ndarray::{Array2, ArrayView2, Axis, s};
use rayon::prelude::*;

use crate::data::mnist::{Images, Mnist};
use crate::data::noise::{Noise, corrupt_set};
use crate::data::rng::Purpose;
use crate::engine::model::{FLOAT, Model, Workspace};
use crate::eval::knn;
use crate::eval::quality::{Quality, mse, psnr};

/// Rows per forward pass, at most.
const BATCH: usize = 1000;
/// The most a forward pass's buffers may take: 1000 rows of the convolutional model's would
/// take 572 MB, more than the whole training run.
const WORKSPACE_BYTES: usize = 32 << 20;
/// Neighbours that vote in the k-NN check.
pub const K: usize = 5;

/// A model's evaluation on the test set.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Evaluation {
    /// The corrupted inputs against the clean images.
    pub noisy: Quality,
    /// The reconstructions against the clean images.
    pub reconstructed: Quality,
    /// The codes as features.
    pub knn: Knn,
}

/// How well a nearest-neighbour classifier tells the test digits apart, on codes and on pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Knn {
    /// The neighbours that voted: [`K`], or the whole training set if smaller.
    pub k: usize,
    /// Accuracy on the bottleneck codes of the clean images.
    pub codes: f64,
    /// Accuracy on the raw pixels.
    pub pixels: f64,
}

/// Evaluates `model` on `data`'s test set corrupted by `noise` from `seed`'s test-noise
/// streams (the same corruption as validation during training with that seed).
pub fn evaluate(model: &Model, data: &Mnist, noise: Noise, seed: u64) -> Evaluation {
    let (noisy, reconstructed) = denoising(model, data, noise, seed);
    Evaluation { noisy, reconstructed, knn: features(model, data) }
}

/// The quality of `data`'s test set corrupted by `noise` from `seed`'s test-noise streams, and
/// of `model`'s reconstruction of it, each against the clean images: the first half of
/// [`evaluate`].
pub fn denoising(model: &Model, data: &Mnist, noise: Noise, seed: u64) -> (Quality, Quality) {
    let images = &data.test.images;
    let shape = (images.rows, images.cols);
    let (clean, noisy) = corrupt_set(images, noise, seed, Purpose::TestNoise);
    let reconstructed = apply(model, noisy.view(), Model::reconstruct, images.pixels_per_image());
    let quality = |x: &Array2<f32>| {
        let per_image: Vec<Quality> = (x.axis_iter(Axis(0)), clean.axis_iter(Axis(0)))
            .into_par_iter()
            .map(|(x, c)| Quality::of(x.as_slice().expect("row"), c.as_slice().expect("row"), shape))
            .collect();
        Quality::mean(&per_image)
    };
    (quality(&noisy), quality(&reconstructed))
}

/// Training images scaled, encoded and searched at a time by [`features`], at most: 5,000
/// images, or fewer when their pixels and codes would take more than [`REFERENCE_BYTES`].
const REFERENCE_BLOCK: usize = 5000;
/// The most a block of training images and their codes may take: 5,000 images and the
/// convolutional model's 1,568-number codes take 47 MB.
const REFERENCE_BYTES: usize = 48 << 20;

/// Training images per block of [`features`] for `model`'s codes of images of `d` pixels.
fn reference_block(model: &Model, d: usize) -> usize {
    let code = model.layers[model.bottleneck()].outputs();
    (REFERENCE_BYTES / (FLOAT as usize * (code + d))).clamp(1, REFERENCE_BLOCK)
}

/// The bytes [`evaluate`] holds at its peak for `model` on `data`'s test set, counted before
/// any is allocated: the larger of [`denoising`]'s (the test set clean, corrupted and
/// reconstructed) and [`features`]'s (the scaled test set and its codes, a block of training
/// images and theirs, the block's products with the queries and the queries transposed), each
/// with a forward pass's buffers. [`sweep_row`] and [`encode`] need no more.
pub fn bytes_needed(model: &Model, data: &Mnist) -> u64 {
    let (test, train) = (data.test.images.count, data.train.images.count);
    bytes_on(model, test, train, data.test.images.pixels_per_image())
}

/// [`bytes_needed`] on `n` test and `train` training images of `d` pixels.
pub fn bytes_on(model: &Model, n: usize, train: usize, d: usize) -> u64 {
    let buffers = Workspace::bytes(model, rows_per_batch(model).min(n));
    let block = reference_block(model, d).min(train) as u64;
    let code = model.layers[model.bottleneck()].outputs() as u64;
    let queries = knn::QUERY_BLOCK.min(n) as u64;
    let (n, d) = (n as u64, d as u64);
    let denoising = FLOAT * 3 * n * d;
    let features = FLOAT * (n * (d + code) + 2 * block * (d + code) + queries * (block + d));
    denoising.max(features).saturating_add(buffers)
}

/// The k-NN accuracy on the test set, the training set as reference, of `model`'s codes of the
/// clean images and of their raw pixels: the second half of [`evaluate`]. The training set is
/// scaled and encoded a block at a time, never whole.
pub fn features(model: &Model, data: &Mnist) -> Knn {
    let (train, test) = (&data.train.images, scaled(&data.test.images));
    let test_codes = encode(model, test.view());
    // A training set smaller than K votes with all it has.
    let k = K.min(train.count);
    let mut codes = knn::Neighbours::new(test.nrows(), k);
    let mut pixels = knn::Neighbours::new(test.nrows(), k);
    let rows = reference_block(model, train.pixels_per_image());
    for first in (0..train.count).step_by(rows) {
        let block = scaled_rows(train, first, rows);
        codes.add(test_codes.view(), encode(model, block.view()).view(), first);
        pixels.add(test.view(), block.view(), first);
    }
    let (train_labels, test_labels) = (&data.train.labels, &data.test.labels);
    Knn {
        k,
        codes: codes.accuracy(train_labels, test_labels),
        pixels: pixels.accuracy(train_labels, test_labels),
    }
}

/// One row of a [`sweep`]: a corruption, and the mean per-image PSNR of the corrupted input
/// and of its reconstruction, each against the clean image.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SweepRow {
    /// The corruption.
    pub noise: Noise,
    /// PSNR of the corrupted input, dB.
    pub noisy: f64,
    /// PSNR of the reconstruction, dB.
    pub reconstructed: f64,
}

/// The corruptions a sweep tries: Gaussian `σ` from 0.1 to 1.0, masking and salt-and-pepper
/// from 0.1 to 0.9, in steps of 0.1.
pub fn sweep_noises() -> Vec<Noise> {
    let levels = |n: usize| (1..=n).map(|i| i as f32 / 10.0);
    let gaussian = levels(10).map(Noise::Gaussian);
    gaussian.chain(levels(9).map(Noise::Masking)).chain(levels(9).map(Noise::SaltPepper)).collect()
}

/// How much noise `model` takes: a [`sweep_row`] for each of [`sweep_noises`].
pub fn sweep(model: &Model, data: &Mnist, seed: u64) -> Vec<SweepRow> {
    sweep_noises().into_iter().map(|noise| sweep_row(model, data, noise, seed)).collect()
}

/// The test set corrupted by `noise` from `seed`'s test-noise streams, reconstructed, and both
/// measured by PSNR ([`psnr`] caps an image's at 100 dB). Forward passes only.
pub fn sweep_row(model: &Model, data: &Mnist, noise: Noise, seed: u64) -> SweepRow {
    let images = &data.test.images;
    let mean_psnr = |x: &Array2<f32>, clean: &Array2<f32>| {
        let per_image: Vec<f64> = (x.axis_iter(Axis(0)), clean.axis_iter(Axis(0)))
            .into_par_iter()
            .map(|(x, c)| psnr(mse(x.as_slice().expect("row"), c.as_slice().expect("row"))))
            .collect();
        per_image.iter().sum::<f64>() / per_image.len() as f64
    };
    let (clean, noisy) = corrupt_set(images, noise, seed, Purpose::TestNoise);
    let reconstructed = apply(model, noisy.view(), Model::reconstruct, images.pixels_per_image());
    SweepRow { noise, noisy: mean_psnr(&noisy, &clean), reconstructed: mean_psnr(&reconstructed, &clean) }
}

/// The bottleneck codes (N, H_code) of `x` (N, D).
pub fn encode(model: &Model, x: ArrayView2<f32>) -> Array2<f32> {
    let width = model.layers[model.bottleneck()].outputs();
    apply(model, x, Model::encode, width)
}

/// Runs `f` (reconstruct or encode) over `x` (N, D) in batches whose buffers fit in
/// [`WORKSPACE_BYTES`], into an (N, `width`) array.
fn apply(
    model: &Model,
    x: ArrayView2<f32>,
    f: fn(&Model, ArrayView2<f32>, &mut Workspace, ndarray::ArrayViewMut2<f32>),
    width: usize,
) -> Array2<f32> {
    let rows_per_batch = rows_per_batch(model);
    let mut ws = Workspace::new(model, rows_per_batch.min(x.nrows()));
    let mut out = Array2::zeros((x.nrows(), width));
    for (i, batch) in x.axis_chunks_iter(Axis(0), rows_per_batch).enumerate() {
        let rows = s![i * rows_per_batch..i * rows_per_batch + batch.nrows(), ..];
        f(model, batch, &mut ws, out.slice_mut(rows));
    }
    out
}

/// Rows per forward pass of [`apply`]: as many as fit in [`WORKSPACE_BYTES`], 1 to [`BATCH`].
fn rows_per_batch(model: &Model) -> usize {
    (WORKSPACE_BYTES / Workspace::bytes_per_row(model)).clamp(1, BATCH)
}

/// Every image scaled to `[0, 1]`, (N, D).
pub fn scaled(images: &Images) -> Array2<f32> {
    scaled_rows(images, 0, images.count)
}

/// Images `first…first + count` (fewer at the end) scaled to `[0, 1]`, (count, D).
fn scaled_rows(images: &Images, first: usize, count: usize) -> Array2<f32> {
    let (d, count) = (images.pixels_per_image(), count.min(images.count - first));
    let pixels = &images.pixels[first * d..(first + count) * d];
    Array2::from_shape_fn((count, d), |(i, j)| f32::from(pixels[i * d + j]) / 255.0)
}
