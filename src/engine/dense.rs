//! The dense (fully connected) layer: `Z = X·Wᵀ + b`, with its hand-written backward pass.
//!
//! Shapes: `B` rows in the batch, `I` inputs, `O` outputs. `W` is stored `(O, I)` like PyTorch's
//! `nn.Linear`, so a model file reads the same in both; `Wᵀ` is a stride swap, never a copy.
//! Backward overwrites `dw` and `db` (no accumulation across calls).

use ndarray::{Array1, Array2, ArrayView2, ArrayViewMut2, Axis};
use ndarray_rand::RandomExt;
use rand::Rng;
use rand_distr::Uniform;
use rayon::prelude::*;

use crate::engine::activation::Activation;
use crate::engine::adam::LayerStep;
use crate::engine::gemm::{column_sums, par_matmul, par_matmul_with, row_blocks, rows_per_block};

/// A dense layer's parameters and the gradients of the last backward pass.
#[derive(Debug, Clone, PartialEq)]
pub struct Dense {
    /// Weights, `(O, I)`.
    pub w: Array2<f32>,
    /// Biases, `(O,)`.
    pub b: Array1<f32>,
    /// `∂L/∂W`, `(O, I)`.
    pub dw: Array2<f32>,
    /// `∂L/∂b`, `(O,)`.
    pub db: Array1<f32>,
}

impl Dense {
    /// Glorot-uniform weights `U(−√(6/(I+O)), √(6/(I+O)))` and zero biases, as Keras does.
    pub fn glorot(inputs: usize, outputs: usize, rng: &mut impl Rng) -> Dense {
        let limit = (6.0 / (inputs + outputs) as f32).sqrt();
        let uniform = Uniform::new_inclusive(-limit, limit).expect("a finite, ordered range");
        let w = Array2::random_using((outputs, inputs), uniform, rng);
        Dense::from_parts(w, Array1::zeros(outputs))
    }

    /// A layer with the given weights `(O, I)` and biases `(O,)`; gradients start at zero.
    pub fn from_parts(w: Array2<f32>, b: Array1<f32>) -> Dense {
        assert_eq!(w.nrows(), b.len(), "one bias per output");
        let (dw, db) = (Array2::zeros(w.raw_dim()), Array1::zeros(b.raw_dim()));
        Dense { w, b, dw, db }
    }

    /// `I`, the number of inputs.
    pub fn inputs(&self) -> usize {
        self.w.ncols()
    }

    /// `O`, the number of outputs.
    pub fn outputs(&self) -> usize {
        self.w.nrows()
    }

    /// Forward: `A = f(X·Wᵀ + b)`, or the pre-activation `Z` when `activation` is `None`.
    ///
    /// Shapes: `x` (B, I) → `out` (B, O). Bias and activation are fused into the product.
    pub fn forward(&self, x: ArrayView2<f32>, out: ArrayViewMut2<f32>, activation: Option<Activation>) {
        let blocks = rayon::iter::repeat_n((), row_blocks(x.nrows()));
        self.forward_with(x, out, blocks, |_, z, _| {
            if let Some(f) = activation {
                f.forward(z);
            }
        });
    }

    /// Forward with an epilogue of the caller's: `Z = X·Wᵀ + b`, then `epilogue(i, z, item)` on
    /// each row `z` of `Z` while it is in cache, with `i` its index within its block of
    /// [`rows_per_block`]`(B)` rows and `item` that block's item of `side` (see
    /// [`par_matmul_with`]).
    ///
    /// Shapes: `x` (B, I) → `out` (B, O).
    pub fn forward_with<S, F>(&self, x: ArrayView2<f32>, out: ArrayViewMut2<f32>, side: S, epilogue: F)
    where
        S: IndexedParallelIterator,
        F: Fn(usize, &mut [f32], &mut S::Item) + Sync,
    {
        debug_assert_eq!((x.ncols(), out.dim()), (self.inputs(), (x.nrows(), self.outputs())));
        let b = self.b.as_slice().expect("biases are contiguous");
        par_matmul_with(x, self.w.t(), out, side, |_, mut block, mut item| {
            for (i, mut row) in block.rows_mut().into_iter().enumerate() {
                let z = row.as_slice_mut().expect("rows are contiguous");
                z.iter_mut().zip(b).for_each(|(z, b)| *z += b);
                epilogue(i, z, &mut item);
            }
        });
    }

    /// Backward, parameters: `dW = δᵀ·X` and `db = Σ_rows δ`, where `δ = ∂L/∂Z`; given Adam's
    /// `step` and this layer's moments `[W's, b's]`, also the update of `W` and `b`. Each block
    /// of outputs gets its rows of `dW`, its entries of `db` and, right after, their update,
    /// while all of it is in cache.
    ///
    /// Shapes: `x` (B, I), `delta` (B, O) → `dw` (O, I), `db` (O,). The work is split over the
    /// outputs (rows of `dW`), so no thread sums another's partial results.
    pub fn backward_params(&mut self, x: ArrayView2<f32>, delta: ArrayView2<f32>, adam: Option<LayerStep>) {
        debug_assert_eq!((x.nrows(), x.ncols()), (delta.nrows(), self.inputs()));
        let outputs = rows_per_block(self.outputs());
        let weights = outputs * self.inputs();
        let db = self.db.as_slice_mut().expect("contiguous").par_chunks_mut(outputs);
        let Some((step, [wm, bm])) = adam else {
            return par_matmul_with(delta.t(), x, self.dw.view_mut(), db, |first, _, db| {
                column_sums(delta, first, db)
            });
        };
        let side = (
            db,
            self.w.as_slice_mut().expect("contiguous").par_chunks_mut(weights),
            wm.m.par_chunks_mut(weights),
            wm.v.par_chunks_mut(weights),
            self.b.as_slice_mut().expect("contiguous").par_chunks_mut(outputs),
            bm.m.par_chunks_mut(outputs),
            bm.v.par_chunks_mut(outputs),
        );
        par_matmul_with(delta.t(), x, self.dw.view_mut(), side.into_par_iter(), |first, dw, params| {
            let (db, w, w_m, w_v, b, b_m, b_v) = params;
            column_sums(delta, first, db);
            step.update(w, dw.as_slice().expect("contiguous"), w_m, w_v);
            step.update(b, db, b_m, b_v);
        });
    }

    /// Backward, input: `∂L/∂X = δ·W`, then through the previous layer's activation:
    /// `δ_prev = (δ·W) ⊙ f′(Z_prev)`, read off that layer's output `a_prev`.
    ///
    /// Shapes: `delta` (B, O), `a_prev` (B, I) → `delta_prev` (B, I).
    pub fn backward_input(
        &self,
        delta: ArrayView2<f32>,
        prev: (Activation, ArrayView2<f32>),
        delta_prev: ArrayViewMut2<f32>,
    ) {
        let (f, a_prev) = prev;
        debug_assert_eq!(delta_prev.dim(), a_prev.dim());
        par_matmul(delta, self.w.view(), delta_prev, |first, mut block| {
            let rows = first..first + block.nrows();
            let a = a_prev.slice_axis(Axis(0), rows.into());
            for (mut d, a) in block.rows_mut().into_iter().zip(a.rows()) {
                let d = d.as_slice_mut().expect("rows are contiguous");
                f.backward(a.as_slice().expect("rows are contiguous"), d);
            }
        });
    }
}
