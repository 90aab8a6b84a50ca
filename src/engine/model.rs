//! The autoencoder: a sequence of layers, ReLU inside and a sigmoid at the output, with the
//! forward and backward passes over a batch and the buffers they reuse.
//!
//! Shape legend, used across the crate:
//! - `B`: rows in a batch (images);
//! - `D`: pixels per image, the model's input and output width (784 for MNIST);
//! - `H₀ … H_{N−2}`: the widths of the hidden layers of `N` layers; layer `l` (from 0) maps
//!   `H_{l−1} → H_l`, with `H_{−1} = H_{N−1} = D`. A convolutional layer's width is its image's `H·W·C` numbers,
//!   stored channels last. Counted from 0, layer `l`'s output and `δ` are `docs/backprop.md`'s
//!   `A_{l+1}` and `δ_{l+1}` (the last layer's output is the logits, its `Z_N`).
//!
//! The notebook's model is dense, `D → 128 → 64 → 32 → 64 → 128 → D`; the convolutional one maps
//! 28×28×1 → 28×28×32 → 14×14×32 → 14×14×32 → 7×7×32 → 14×14×32 → 28×28×32 → 28×28×1.

use ndarray::{Array2, ArrayView2, ArrayViewMut2, Axis, s};
use rand::Rng;
use rayon::prelude::*;

use crate::engine::activation::Activation;
use crate::engine::adam::Adam;
use crate::engine::aligned;
use crate::engine::conv::Conv2d;
use crate::engine::conv_transpose::ConvTranspose2d;
use crate::engine::data_parallel::Shards;
use crate::engine::dense::Dense;
use crate::engine::gemm::{MAX_COPY, rows_per_block};
use crate::engine::layer::{Layer, ParamAndGrad};
use crate::engine::loss::Loss;
use crate::engine::lowering::{Image, Scratch};
use crate::engine::pool::MaxPool2d;

/// A sequential model; `activations[l]` follows `layers[l]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    /// The layers, input first.
    pub layers: Vec<Layer>,
    /// The activation after each layer.
    pub activations: Vec<Activation>,
}

impl Model {
    /// The denoising autoencoder: encoder widths `hidden` (e.g. `[128, 64, 32]`) and a decoder
    /// that mirrors them back to `inputs`; ReLU after every layer but the last, a sigmoid there.
    ///
    /// ```
    /// use dae::engine::model::{Model, Workspace};
    /// use ndarray::Array2;
    /// use rand::SeedableRng;
    ///
    /// let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    /// let model = Model::autoencoder(784, &[128, 64, 32], &mut rng);
    /// assert_eq!(model.widths(), [784, 128, 64, 32, 64, 128, 784]);
    ///
    /// let x = Array2::from_elem((2, 784), 0.5f32); // (B, D)
    /// let mut ws = Workspace::new(&model, 2);
    /// let mut x_hat = Array2::zeros((2, 784));
    /// model.reconstruct(x.view(), &mut ws, x_hat.view_mut());
    /// assert!(x_hat.iter().all(|&p| p > 0.0 && p < 1.0)); // a sigmoid's outputs
    /// ```
    pub fn autoencoder(inputs: usize, hidden: &[usize], rng: &mut impl Rng) -> Model {
        let widths = autoencoder_widths(inputs, hidden);
        let layers: Vec<Layer> =
            widths.windows(2).map(|w| Layer::Dense(Dense::glorot(w[0], w[1], rng))).collect();
        let activations = autoencoder_activations(layers.len());
        Model { layers, activations }
    }

    /// The convolutional denoising autoencoder of the Keras example, for `height × width`
    /// grayscale images (both divisible by 4):
    ///
    /// ```text
    /// Conv2d 3×3, 32, ReLU → MaxPool 2×2 → Conv2d 3×3, 32, ReLU → MaxPool 2×2         (encoder)
    /// ConvTranspose2d 3×3 stride 2, 32, ReLU → ConvTranspose2d 3×3 stride 2, 32, ReLU   (decoder)
    /// Conv2d 3×3, 1, sigmoid
    /// ```
    ///
    /// ```
    /// use dae::engine::model::Model;
    /// use rand::SeedableRng;
    ///
    /// let model = Model::conv_autoencoder(28, 28, &mut rand_chacha::ChaCha8Rng::seed_from_u64(0));
    /// assert_eq!(model.widths(), [784, 25088, 6272, 6272, 1568, 6272, 25088, 784]);
    /// assert_eq!(model.param_sizes().iter().sum::<usize>(), 28_353);
    /// ```
    pub fn conv_autoencoder(height: usize, width: usize, rng: &mut impl Rng) -> Model {
        const CHANNELS: usize = 32;
        let image = |scale: usize, channels| Image::new(height / scale, width / scale, channels);
        let layers = vec![
            Layer::Conv2d(Conv2d::glorot(image(1, 1), CHANNELS, 3, rng)),
            Layer::MaxPool2d(MaxPool2d { input: image(1, CHANNELS) }),
            Layer::Conv2d(Conv2d::glorot(image(2, CHANNELS), CHANNELS, 3, rng)),
            Layer::MaxPool2d(MaxPool2d { input: image(2, CHANNELS) }),
            Layer::ConvTranspose2d(ConvTranspose2d::glorot(image(4, CHANNELS), CHANNELS, 3, 2, rng)),
            Layer::ConvTranspose2d(ConvTranspose2d::glorot(image(2, CHANNELS), CHANNELS, 3, 2, rng)),
            Layer::Conv2d(Conv2d::glorot(image(1, CHANNELS), 1, 3, rng)),
        ];
        let (relu, none, sigmoid) = (Activation::Relu, Activation::Identity, Activation::Sigmoid);
        Model { layers, activations: vec![relu, none, relu, none, relu, relu, sigmoid] }
    }

    /// Whether every layer is dense (the model of [`Model::autoencoder`]).
    pub fn is_dense(&self) -> bool {
        self.layers.iter().all(|l| matches!(l, Layer::Dense(_)))
    }

    /// The widths from input to output, e.g. `[784, 128, 64, 32, 64, 128, 784]`.
    pub fn widths(&self) -> Vec<usize> {
        let mut widths = vec![self.layers[0].inputs()];
        widths.extend(self.layers.iter().map(Layer::outputs));
        widths
    }

    /// For images of pixels in `[0, 1]`, a bound on every number each layer's forward pass
    /// computes ([`Layer::bound`]), in layer order: no product, sum or output of this model can
    /// overflow f32 if every bound is below `f32::MAX`. A sigmoid's output is in `[0, 1]`; ReLU
    /// and the identity keep their input's bound.
    pub fn bounds(&self) -> Vec<f64> {
        let mut input = 1.0;
        let layers = self.layers.iter().zip(&self.activations);
        layers
            .map(|(layer, &activation)| {
                let bound = layer.bound(input);
                input = if activation == Activation::Sigmoid { 1.0 } else { bound };
                bound
            })
            .collect()
    }

    /// Every parameter tensor and its gradient, in file order (`W₀, b₀, W₁, b₁, …`).
    pub fn params_and_grads(&mut self) -> impl Iterator<Item = ParamAndGrad<'_>> {
        self.layers.iter_mut().flat_map(|layer| layer.params_and_grads().into_iter().flatten())
    }

    /// Every parameter tensor, to change, in file order (`W₀, b₀, W₁, b₁, …`).
    pub fn params_mut(&mut self) -> impl Iterator<Item = &mut [f32]> {
        self.params_and_grads().map(|(w, _)| w)
    }

    /// The number of elements of each parameter tensor, in the order of [`Model::params_and_grads`].
    pub fn param_sizes(&self) -> Vec<usize> {
        self.layers.iter().flat_map(|l| l.param_sizes().into_iter().flatten()).collect()
    }

    /// The bytes the layers hold: parameters and their gradients, and a dense layer's `Wᵀ`.
    pub fn bytes(&self) -> u64 {
        self.bytes_with(true)
    }

    /// [`Model::bytes`] without the gradients: what a model that only runs forward (`eval`,
    /// `encode`, `denoise`) takes. Its gradients are allocated as zeros, which the system gives as
    /// pages it maps only when written: never, without a backward pass (a `--layers 2048` model
    /// counted 69.1 MiB for `denoise` with them, which peaked at 48 MiB).
    pub fn forward_bytes(&self) -> u64 {
        self.bytes_with(false)
    }

    /// [`Model::bytes`], with the gradients or without.
    fn bytes_with(&self, gradients: bool) -> u64 {
        // `W` and `dW` (and `Wᵀ`) each start on a cache line ([`aligned`]).
        let bytes = |layer: &Layer| {
            let [w, b] = layer.param_sizes()?;
            let copies = if matches!(layer, Layer::Dense(_)) { 2 } else { 1 } + usize::from(gradients);
            let biases = if gradients { 2 } else { 1 };
            Some(FLOAT * (copies * w + biases * b) as u64 + copies as u64 * aligned::SLACK_BYTES)
        };
        self.layers.iter().filter_map(bytes).sum()
    }

    /// Forward pass over `x` (B, D). Afterwards `ws.outputs[l]` (B, H_l) holds each layer's
    /// activated output, except the last, which holds the logits `z` (B, D): the output sigmoid
    /// is left to the loss, which needs `z` for its stable form, or to [`Model::reconstruct`].
    pub fn forward(&self, x: ArrayView2<f32>, ws: &mut Workspace) {
        (0..self.layers.len()).for_each(|l| self.forward_layer(l, x, ws));
    }

    /// Layer `l`'s forward pass, from `x` (B, D) if it is the first, else from the layer before.
    fn forward_layer(&self, l: usize, x: ArrayView2<f32>, ws: &mut Workspace) {
        let rows = x.nrows();
        let (done, rest) = ws.outputs.split_at_mut(l);
        let input = if l == 0 { x } else { done[l - 1].slice(s![..rows, ..]) };
        let activation = (l + 1 < self.layers.len()).then_some(self.activations[l]);
        self.layers[l].forward(input, rest[0].slice_mut(s![..rows, ..]), activation, &ws.scratch.buffers);
    }

    /// The forward pass and then [`Model::loss_and_delta`]: returns the loss summed over all
    /// entries and leaves `∂L/∂z` in `ws.deltas[last]`.
    pub fn forward_loss(
        &self,
        x: ArrayView2<f32>,
        loss: Loss,
        target: ArrayView2<f32>,
        ws: &mut Workspace,
    ) -> f64 {
        self.forward(x, ws);
        self.loss_and_delta(loss, target, ws)
    }

    /// The loss of the last forward pass against `target` (B, D), summed over all entries, and
    /// `ws.deltas[last] = ∂L/∂z` for `L` the *mean* over the `B·D` entries.
    pub fn loss_and_delta(&self, loss: Loss, target: ArrayView2<f32>, ws: &mut Workspace) -> f64 {
        let (rows, d) = target.dim();
        let scale = 1.0 / (rows * d) as f32;
        let last = self.layers.len() - 1;
        let z = ws.outputs[last].slice(s![..rows, ..]);
        let mut delta = ws.deltas[last].slice_mut(s![..rows, ..]);
        let row_loss = &mut ws.row_loss[..rows];
        let block = rows_per_block(rows);
        (
            z.axis_chunks_iter(Axis(0), block),
            target.axis_chunks_iter(Axis(0), block),
            delta.axis_chunks_iter_mut(Axis(0), block),
            row_loss.par_chunks_mut(block),
        )
            .into_par_iter()
            .for_each(|(z, y, dz, out)| loss.rows(z, y, scale, dz, out));
        sum_in_order(row_loss)
    }

    /// Backward pass for the batch `x` (B, D) of the last forward pass, from `ws.deltas[last]`:
    /// overwrites every layer's `dw` and `db`. Given `adam`, also takes Adam's next step, each
    /// layer as soon as its gradients exist (while they are in cache) rather than in a pass of
    /// its own at the end; the result is the same as [`Adam::step`] after the backward pass.
    pub fn backward(&mut self, x: ArrayView2<f32>, ws: &mut Workspace, mut adam: Option<&mut Adam>) {
        let rows = x.nrows();
        let step = adam.as_mut().map(|adam| adam.next_step());
        // The layers go last to first, so their moments are taken from the end.
        let mut moments = adam.map(|adam| adam.moments().rev());
        for l in (0..self.layers.len()).rev() {
            let (below, here) = ws.deltas.split_at_mut(l);
            let delta = here[0].slice(s![..rows, ..]);
            let input = if l == 0 { x } else { ws.outputs[l - 1].slice(s![..rows, ..]) };
            let prev =
                (l > 0).then(|| (self.activations[l - 1], input, below[l - 1].slice_mut(s![..rows, ..])));
            let layer_step = match (step, moments.as_mut()) {
                (Some(step), Some(moments)) if self.layers[l].param_sizes().is_some() => {
                    let biases = moments.next().expect("moments for every tensor");
                    let weights = moments.next().expect("moments for every tensor");
                    Some((step, [weights, biases]))
                }
                _ => None,
            };
            self.layers[l].backward(input, delta, prev, &mut ws.scratch, layer_step);
        }
    }

    /// The reconstruction `x̂ = σ(z)` (B, D) of `x` (B, D), written into `out`.
    pub fn reconstruct(&self, x: ArrayView2<f32>, ws: &mut Workspace, mut out: ArrayViewMut2<f32>) {
        self.forward(x, ws);
        let z = ws.outputs[self.layers.len() - 1].slice(s![..x.nrows(), ..]);
        out.assign(&z);
        let f = *self.activations.last().expect("at least one layer");
        f.forward(out.as_slice_mut().expect("contiguous output"));
    }

    /// The layer whose output is the code: the narrowest one before the output layer.
    pub fn bottleneck(&self) -> usize {
        let hidden = &self.layers[..self.layers.len() - 1];
        (0..hidden.len()).min_by_key(|&l| hidden[l].outputs()).expect("a hidden layer")
    }

    /// The codes `h` (B, H_code) of `x` (B, D), written into `out`: the encoder alone.
    pub fn encode(&self, x: ArrayView2<f32>, ws: &mut Workspace, mut out: ArrayViewMut2<f32>) {
        let code = self.bottleneck();
        (0..=code).for_each(|l| self.forward_layer(l, x, ws));
        out.assign(&ws.outputs[code].slice(s![..x.nrows(), ..]));
    }
}

/// The widths of [`Model::autoencoder`]'s layers from input to output, e.g. `[784, 128, 64, 32,
/// 64, 128, 784]` for `hidden = [128, 64, 32]`.
pub fn autoencoder_widths(inputs: usize, hidden: &[usize]) -> Vec<usize> {
    let mut widths = vec![inputs];
    widths.extend(hidden);
    widths.extend(hidden.iter().rev().skip(1));
    widths.push(inputs);
    widths
}

/// The activations of [`Model::autoencoder`]'s `layers` layers (at least one): ReLU after every
/// layer but the last, a sigmoid there.
pub fn autoencoder_activations(layers: usize) -> Vec<Activation> {
    let mut activations = vec![Activation::Relu; layers];
    *activations.last_mut().expect("at least one layer") = Activation::Sigmoid;
    activations
}

/// The bytes of one number, for the counts of memory made before allocating it.
pub const FLOAT: u64 = std::mem::size_of::<f32>() as u64;

/// Adds per-row sums in row order, so the total does not depend on how rows were split.
fn sum_in_order(values: &[f32]) -> f64 {
    values.iter().map(|&v| f64::from(v)).sum()
}

/// The buffers one batch needs, allocated once for batches of up to `capacity` rows.
#[derive(Debug)]
pub struct Workspace {
    /// Each layer's output, (capacity, H_l); logits for the last layer.
    pub outputs: Vec<Array2<f32>>,
    /// `∂L/∂Z` of each layer, (capacity, H_l).
    pub deltas: Vec<Array2<f32>>,
    /// The loss summed over each row.
    pub row_loss: Vec<f32>,
    /// The convolution layers' lowered matrices and partial gradients.
    pub scratch: Scratch,
    /// A dense model's shards, for its data-parallel training step; made by
    /// [`Workspace::for_training`] only.
    pub shards: Option<Shards>,
}

impl Workspace {
    /// Buffers for `model` and batches of up to `capacity` rows.
    pub fn new(model: &Model, capacity: usize) -> Workspace {
        let buffers = || model.layers.iter().map(|l| aligned::zeros((capacity, l.outputs()))).collect();
        let (threads, lowered, partials) = Workspace::scratch_sizes(model, capacity);
        let scratch = Scratch::new(threads, lowered, partials);
        Workspace {
            outputs: buffers(),
            deltas: buffers(),
            row_loss: vec![0.0; capacity],
            scratch,
            shards: None,
        }
    }

    /// [`Workspace::new`], and for a dense model the [`Shards`] of its training step.
    pub fn for_training(model: &Model, capacity: usize) -> Workspace {
        let shards = model.is_dense().then(|| Shards::new(model, capacity));
        Workspace { shards, ..Workspace::new(model, capacity) }
    }

    /// The bytes [`Workspace::for_training`] allocates (see [`Workspace::bytes`]).
    pub fn training_bytes(model: &Model, capacity: usize) -> u64 {
        let shards = if model.is_dense() { Shards::bytes(&model.widths(), capacity) } else { 0 };
        Workspace::bytes(model, capacity) + shards
    }

    /// The bytes [`Workspace::new`] allocates for `model` and batches of `capacity` rows, with
    /// what the layers grow on their first pass (each thread's row-by-row copy of a right operand
    /// read transposed: a dense layer's `Wᵀ`, a convolution's kernel), counted without allocating
    /// any: what a command checks against the memory it has before it starts.
    pub fn bytes(model: &Model, capacity: usize) -> u64 {
        let rows = capacity as u64;
        let (threads, lowered, partials) = Workspace::scratch_sizes(model, capacity);
        let per_row = FLOAT * Workspace::numbers_per_row(model) as u64;
        let copy = model.layers.iter().filter_map(Layer::param_sizes).map(|[w, _]| w.min(MAX_COPY)).max();
        let copy = copy.unwrap_or(0);
        let per_thread = (lowered + copy) as u64;
        let aligned = (2 * model.layers.len() + 2 * threads) as u64 * aligned::SLACK_BYTES;
        rows.saturating_mul(per_row) + FLOAT * (threads as u64 * per_thread + partials as u64) + aligned
    }

    /// The scratch [`Workspace::new`] makes for `model` and `capacity` rows: `(threads, lowered,
    /// partials)`, a lowered matrix per thread (but no more than 64 threads: a thread without
    /// one shares, through a lock) and room for the largest layer's partial gradients.
    fn scratch_sizes(model: &Model, capacity: usize) -> (usize, usize, usize) {
        let needs = model.layers.iter().map(|l| l.scratch_needs(capacity));
        let (lowered, partials) = needs.fold((0, 0), |(a, b), (c, d)| (a.max(c), b.max(d)));
        (rayon::current_num_threads().min(64), lowered, partials)
    }

    /// The numbers a batch row adds to the buffers of `model`: its outputs, deltas and loss.
    fn numbers_per_row(model: &Model) -> usize {
        2 * model.layers.iter().map(Layer::outputs).sum::<usize>() + 1
    }

    /// The bytes a batch row adds to the buffers of `model`: its outputs, deltas and loss.
    pub fn bytes_per_row(model: &Model) -> usize {
        FLOAT as usize * Workspace::numbers_per_row(model)
    }

    /// The largest batch these buffers hold.
    pub fn capacity(&self) -> usize {
        self.row_loss.len()
    }
}
