//! The training step of a dense model, data-parallel: the batch is cut into shards of
//! [`SHARD_ROWS`] rows; each shard's forward pass, loss and backward pass run start to end on one
//! thread, into gradients of the shard's own ([`Shards::passes`]); then one pass over the pool
//! adds the shards' gradients, in shard order, and takes Adam's step ([`Shards::update`]).
//!
//! Why not split each product over the threads instead: a step of the notebook's model has
//! seventeen products, and a pool that shares each of them meets at a barrier after each (about
//! twenty a step, with the loss and the updates), where a thread that waits can lose its core
//! to anything else that runs, and where the rows one core wrote are read by the other. Here a
//! step has two parallel regions, and a shard's activations never leave the core that made them;
//! what crosses is the shards' gradients, once, in the update.
//!
//! The same bits on any pool: the shards are fixed by the batch size alone, every product of a
//! shard sums in the kernel's order, and the update adds the shards in their order whatever
//! thread computed them. The grouping differs from one product over the whole batch, `dW =
//! Σ_s δ_sᵀ·A_s` rather than `δᵀ·A`, so `dW` and `db` are a few units in the last place from the
//! reference engine's (`tests/reference.rs` holds them within a bar).
//!
//! Shapes: a batch of `B` rows makes `⌈B / R⌉` shards of `R` = [`SHARD_ROWS`] rows (the last
//! may have fewer); layer `l` maps `H_{l−1} → H_l`.

use ndarray::{Array1, Array2, ArrayView2, Axis, s};
use rayon::prelude::*;

use crate::engine::adam::{Adam, Moments};
use crate::engine::dense::Dense;
use crate::engine::loss::Loss;
use crate::engine::model::{FLOAT, Model};

/// The rows of a shard: a batch of 256 makes two, one for each of two threads. Measured on a
/// 2-core Intel Xeon (model 167), two threads, an epoch of the notebook's model: shards of 64
/// rows took 0.66 + 0.13 s of products and updates over two epochs, shards of 128 0.62 + 0.12 s
/// (smaller products and one more set of gradients to add). A pool of more than two threads
/// has no more shards to share at batch 256; a larger batch makes more.
pub const SHARD_ROWS: usize = 128;

/// The buffers of a data-parallel step: one shard per [`SHARD_ROWS`] rows of the largest
/// batch, made once.
#[derive(Debug)]
pub struct Shards {
    shards: Vec<Shard>,
}

/// One shard's buffers: its rows of each layer's output and `δ`, its rows' losses, and the
/// gradients of every layer's parameters over its rows.
#[derive(Debug)]
struct Shard {
    /// Layer `l`'s activated output, (R, H_l); the logits `z` for the last layer.
    outputs: Vec<Array2<f32>>,
    /// `δ_l = ∂L/∂Z_l`, (R, H_l).
    deltas: Vec<Array2<f32>>,
    /// The loss summed over each row.
    row_loss: Vec<f32>,
    /// `dW_s` of each layer, (H_l, H_{l−1}).
    dw: Vec<Array2<f32>>,
    /// `db_s` of each layer, (H_l,).
    db: Vec<Array1<f32>>,
}

impl Shards {
    /// The buffers for `model`, whose layers must all be dense, and batches of up to `capacity`
    /// rows.
    pub fn new(model: &Model, capacity: usize) -> Shards {
        let layers: Vec<&Dense> = dense_layers(model).collect();
        let rows = capacity.min(SHARD_ROWS);
        let buffers = || layers.iter().map(|d| Array2::zeros((rows, d.outputs()))).collect();
        let shard = || Shard {
            outputs: buffers(),
            deltas: buffers(),
            row_loss: vec![0.0; rows],
            dw: layers.iter().map(|d| Array2::zeros(d.w().raw_dim())).collect(),
            db: layers.iter().map(|d| Array1::zeros(d.b.raw_dim())).collect(),
        };
        Shards { shards: (0..capacity.div_ceil(SHARD_ROWS)).map(|_| shard()).collect() }
    }

    /// The bytes [`Shards::new`] allocates for a dense model of these `widths` (input first) and
    /// batches of `capacity` rows, counted without allocating them.
    pub fn bytes(widths: &[usize], capacity: usize) -> u64 {
        let per_row: u64 = 2 * widths[1..].iter().map(|&w| w as u64).sum::<u64>() + 1;
        let gradients: u64 = widths.windows(2).map(|w| (w[0] as u64 + 1) * w[1] as u64).sum();
        let shards = capacity.div_ceil(SHARD_ROWS) as u64;
        FLOAT * shards * (capacity.min(SHARD_ROWS) as u64 * per_row + gradients)
    }

    /// Every shard's forward pass, loss and backward pass, a shard to a thread, into the shard's
    /// own buffers and gradients: the first parallel region of a step. Returns the loss summed
    /// over the batch's `B·D` entries, row by row in order.
    ///
    /// Shapes: `input` (B, D) corrupted, `target` (B, D) clean.
    pub fn passes(
        &mut self,
        model: &Model,
        loss: Loss,
        input: ArrayView2<f32>,
        target: ArrayView2<f32>,
    ) -> f64 {
        let (rows, d) = input.dim();
        let scale = 1.0 / (rows * d) as f32;
        let shards = &mut self.shards[..rows.div_ceil(SHARD_ROWS)];
        let (inputs, targets) =
            (input.axis_chunks_iter(Axis(0), SHARD_ROWS), target.axis_chunks_iter(Axis(0), SHARD_ROWS));
        (&mut *shards, inputs, targets)
            .into_par_iter()
            .for_each(|(shard, x, y)| shard.pass(model, loss, x, y, scale));
        let row_losses = shards.iter().zip(input.axis_chunks_iter(Axis(0), SHARD_ROWS));
        row_losses.flat_map(|(shard, x)| &shard.row_loss[..x.nrows()]).map(|&v| f64::from(v)).sum()
    }

    /// Adam's step on every layer from the gradients of the last [`Shards::passes`] over a
    /// batch of `rows` rows: the second parallel region. Each layer's `dW = Σ_s dW_s` and
    /// `db = Σ_s db_s`, shards added in order, then its update ([`Dense::update`]).
    pub fn update(&self, model: &mut Model, adam: &mut Adam, rows: usize) {
        let shards = &self.shards[..rows.div_ceil(SHARD_ROWS)];
        let step = adam.next_step();
        let moments = adam.m.par_chunks_mut(2).zip(adam.v.par_chunks_mut(2));
        model.layers.par_iter_mut().zip(moments).enumerate().for_each(|(l, (layer, (m, v)))| {
            let dense = layer.as_dense_mut().expect("a dense model");
            let ([m_w, m_b], [v_w, v_b]) = (m, v) else { unreachable!("two tensors a layer") };
            let moments = [Moments { m: m_w, v: v_w }, Moments { m: m_b, v: v_b }];
            let shard = |s: usize| (shards[s].dw[l].view(), shards[s].db[l].as_slice().expect("contiguous"));
            dense.update(shards.len(), shard, (step, moments));
        });
    }
}

impl Shard {
    /// The forward pass of the shard's rows `x` (R, D), the loss against `y` (R, D) with
    /// `δ_out = scale·∂ℓ/∂z`, and the backward pass, which writes the shard's `dW_s` and `db_s`
    /// of every layer.
    fn pass(&mut self, model: &Model, loss: Loss, x: ArrayView2<f32>, y: ArrayView2<f32>, scale: f32) {
        let rows = x.nrows();
        let last = model.layers.len() - 1;
        for (l, dense) in dense_layers(model).enumerate() {
            let (done, rest) = self.outputs.split_at_mut(l);
            let a_prev = if l == 0 { x } else { done[l - 1].slice(s![..rows, ..]) };
            let activation = (l < last).then_some(model.activations[l]);
            dense.forward_rows(a_prev, rest[0].slice_mut(s![..rows, ..]), activation);
        }
        let z = self.outputs[last].slice(s![..rows, ..]);
        let mut delta = self.deltas[last].slice_mut(s![..rows, ..]);
        for (((z, y), mut dz), row_loss) in
            z.rows().into_iter().zip(y.rows()).zip(delta.rows_mut()).zip(&mut self.row_loss)
        {
            let (z, y, dz) =
                (z.as_slice().expect("row"), y.as_slice().expect("row"), dz.as_slice_mut().expect("row"));
            *row_loss = loss.forward_backward(z, y, scale, dz);
        }
        for (l, dense) in dense_layers(model).enumerate().rev() {
            let (below, here) = self.deltas.split_at_mut(l);
            let a_prev = if l == 0 { x } else { self.outputs[l - 1].slice(s![..rows, ..]) };
            let prev = (l > 0).then(|| (model.activations[l - 1], below[l - 1].slice_mut(s![..rows, ..])));
            let gradients = (self.dw[l].view_mut(), self.db[l].as_slice_mut().expect("contiguous"));
            dense.backward_rows(a_prev, here[0].slice(s![..rows, ..]), gradients, prev);
        }
    }
}

/// The layers of `model`, each a dense one.
fn dense_layers(model: &Model) -> impl DoubleEndedIterator<Item = &Dense> + ExactSizeIterator {
    model.layers.iter().map(|l| l.as_dense().expect("a dense model"))
}
