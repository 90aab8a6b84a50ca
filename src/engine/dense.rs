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
use crate::engine::gemm::{par_matmul, par_matmul_with, rows_per_block};

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
        debug_assert_eq!((x.ncols(), out.dim()), (self.inputs(), (x.nrows(), self.outputs())));
        let b = self.b.as_slice().expect("biases are contiguous");
        par_matmul(x, self.w.t(), out, |_, mut block| {
            for mut row in block.rows_mut() {
                let row = row.as_slice_mut().expect("rows are contiguous");
                row.iter_mut().zip(b).for_each(|(z, b)| *z += b);
                if let Some(f) = activation {
                    f.forward(row);
                }
            }
        });
    }

    /// Backward, parameters: `dW = δᵀ·X` and `db = Σ_rows δ`, where `δ = ∂L/∂Z`; given Adam's
    /// `step` and this layer's moments `[W's, b's]`, also the update of `W` and `b`, each block
    /// of `W`'s rows right after its block of `dW` is computed, while both are in cache.
    ///
    /// Shapes: `x` (B, I), `delta` (B, O) → `dw` (O, I), `db` (O,). The product is split over
    /// the outputs (rows of `dW`), so no thread sums another's partial results.
    pub fn backward_params(&mut self, x: ArrayView2<f32>, delta: ArrayView2<f32>, adam: Option<LayerStep>) {
        debug_assert_eq!((x.nrows(), x.ncols()), (delta.nrows(), self.inputs()));
        self.db.fill(0.0);
        for row in delta.axis_iter(Axis(0)) {
            self.db += &row;
        }
        let Some((step, [weights, biases])) = adam else {
            return par_matmul(delta.t(), x, self.dw.view_mut(), |_, _| {});
        };
        let rows = rows_per_block(self.outputs()) * self.inputs();
        let side = (
            self.w.as_slice_mut().expect("contiguous").par_chunks_mut(rows),
            weights.m.par_chunks_mut(rows),
            weights.v.par_chunks_mut(rows),
        );
        par_matmul_with(delta.t(), x, self.dw.view_mut(), side.into_par_iter(), |_, dw, (w, m, v)| {
            step.update(w, dw.as_slice().expect("contiguous"), m, v)
        });
        let b = self.b.as_slice_mut().expect("contiguous");
        step.update(b, self.db.as_slice().expect("contiguous"), biases.m, biases.v);
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
