//! One step of a model: a dense layer, a convolution, a transposed convolution or a max-pool,
//! behind one interface so that a model is a plain sequence of them.
//!
//! Every layer maps a batch `(B, I)` to `(B, O)`: an image is one row, `H·W·C` numbers stored
//! channels last, so dense and convolutional layers chain without reshaping. Each forward may
//! fuse an activation; each backward overwrites the layer's gradients and, if asked, writes the
//! gradient of the previous layer's pre-activation.

use ndarray::{ArrayView2, ArrayViewMut2};

use crate::engine::activation::Activation;
use crate::engine::adam::LayerStep;
use crate::engine::conv::Conv2d;
use crate::engine::conv_transpose::ConvTranspose2d;
use crate::engine::dense::Dense;
use crate::engine::lowering::{Buffers, Scratch};
use crate::engine::pool::MaxPool2d;

/// A layer of a model.
#[derive(Debug, Clone, PartialEq)]
pub enum Layer {
    /// `Z = X·Wᵀ + b`.
    Dense(Dense),
    /// A `k × k` convolution, stride 1, "same" padding.
    Conv2d(Conv2d),
    /// A transposed convolution that enlarges the image `S` times.
    ConvTranspose2d(ConvTranspose2d),
    /// 2×2 max-pooling.
    MaxPool2d(MaxPool2d),
}

/// A tensor of parameters and its gradient.
pub type ParamAndGrad<'a> = (&'a mut [f32], &'a [f32]);

/// The names of the layers' kinds, as model files write them ([`Layer::kind`]).
pub const LAYER_KINDS: [&str; 4] = ["dense", "conv2d", "conv_transpose2d", "max_pool2d"];

impl Layer {
    /// The name of the layer's kind, as model files write it.
    pub fn kind(&self) -> &'static str {
        match self {
            Layer::Dense(_) => "dense",
            Layer::Conv2d(_) => "conv2d",
            Layer::ConvTranspose2d(_) => "conv_transpose2d",
            Layer::MaxPool2d(_) => "max_pool2d",
        }
    }

    /// The dense layer, if this is one.
    pub fn as_dense(&self) -> Option<&Dense> {
        if let Layer::Dense(d) = self { Some(d) } else { None }
    }

    /// The dense layer, if this is one, to change.
    pub fn as_dense_mut(&mut self) -> Option<&mut Dense> {
        if let Layer::Dense(d) = self { Some(d) } else { None }
    }

    /// `I`, the numbers in one input row.
    pub fn inputs(&self) -> usize {
        match self {
            Layer::Dense(d) => d.inputs(),
            Layer::Conv2d(c) => c.input.len(),
            Layer::ConvTranspose2d(c) => c.input.len(),
            Layer::MaxPool2d(p) => p.input.len(),
        }
    }

    /// `O`, the numbers in one output row.
    pub fn outputs(&self) -> usize {
        match self {
            Layer::Dense(d) => d.outputs(),
            Layer::Conv2d(c) => c.output().len(),
            Layer::ConvTranspose2d(c) => c.output().len(),
            Layer::MaxPool2d(p) => p.output().len(),
        }
    }

    /// The units of one output row: a dense layer's outputs, or an image's channels (a
    /// channel's unit is the same filter at every pixel). Output `j` belongs to unit
    /// `j % units()`, since images are stored channels last.
    pub fn units(&self) -> usize {
        match self {
            Layer::Dense(d) => d.outputs(),
            Layer::Conv2d(c) => c.output().channels,
            Layer::ConvTranspose2d(c) => c.output().channels,
            Layer::MaxPool2d(p) => p.output().channels,
        }
    }

    /// Forward: `out = f(layer(x))`, or the layer's output alone when `activation` is `None`.
    ///
    /// Shapes: `x` (B, I) → `out` (B, O).
    pub fn forward(
        &self,
        x: ArrayView2<f32>,
        out: ArrayViewMut2<f32>,
        activation: Option<Activation>,
        buffers: &Buffers,
    ) {
        match self {
            Layer::Dense(d) => d.forward(x, out, activation),
            Layer::Conv2d(c) => c.forward(x, out, activation, buffers),
            Layer::ConvTranspose2d(c) => c.forward(x, out, activation, buffers),
            Layer::MaxPool2d(p) => p.forward(x, out),
        }
    }

    /// Backward from `δ = ∂L/∂Z` (B, O) for the input `x` (B, I): overwrites the parameters'
    /// gradients, and with `prev = (f, a_prev, delta_prev)` writes `δ_prev = ∂L/∂Z_prev` (B, I),
    /// the gradient before the previous layer's activation `f`, whose output was `a_prev`.
    /// Given Adam's step and the layer's moments, it then updates the parameters too; `δ_prev`
    /// is always computed from the weights as they were.
    pub fn backward(
        &mut self,
        x: ArrayView2<f32>,
        delta: ArrayView2<f32>,
        prev: Option<(Activation, ArrayView2<f32>, ArrayViewMut2<f32>)>,
        scratch: &mut Scratch,
        adam: Option<LayerStep>,
    ) {
        match self {
            Layer::Dense(d) => {
                // A dense layer reads `f′` off its own input, which is the previous layer's output.
                let prev = prev.map(|(f, a_prev, delta_prev)| {
                    debug_assert_eq!(a_prev, x, "the previous layer's output is this layer's input");
                    (f, delta_prev)
                });
                d.backward(x, delta, prev);
            }
            Layer::Conv2d(c) => c.backward(x, delta, prev, scratch),
            Layer::ConvTranspose2d(c) => c.backward(x, delta, prev, scratch),
            Layer::MaxPool2d(p) => {
                if let Some((f, a_prev, delta_prev)) = prev {
                    p.backward_input(delta, (f, a_prev), delta_prev);
                }
            }
        }
        if let (Some((step, moments)), Some(tensors)) = (adam, self.params_and_grads()) {
            for ((w, g), moments) in tensors.into_iter().zip(moments) {
                step.update_par(w, g, moments);
            }
        }
    }

    /// The weights and biases, if the layer has any, to read (unlike
    /// [`Layer::params_and_grads`], which lets them change and so marks a dense layer's `Wᵀ` out
    /// of date).
    pub fn params(&self) -> Option<[&[f32]; 2]> {
        let (w, b) = match self {
            Layer::Dense(d) => (d.w(), d.b.view()),
            Layer::Conv2d(Conv2d { w, b, .. }) | Layer::ConvTranspose2d(ConvTranspose2d { w, b, .. }) => {
                (w.view(), b.view())
            }
            Layer::MaxPool2d(_) => return None,
        };
        let contiguous = "contiguous";
        Some([w.to_slice().expect(contiguous), b.to_slice().expect(contiguous)])
    }

    /// The weights and biases with their gradients, if the layer has any.
    pub fn params_and_grads(&mut self) -> Option<[ParamAndGrad<'_>; 2]> {
        let (w, b, dw, db) = match self {
            Layer::Dense(d) => return Some(d.params_and_grads()),
            Layer::Conv2d(Conv2d { w, b, dw, db, .. }) => (w, b, dw, db),
            Layer::ConvTranspose2d(ConvTranspose2d { w, b, dw, db, .. }) => (w, b, dw, db),
            Layer::MaxPool2d(_) => return None,
        };
        let contiguous = "contiguous";
        Some([
            (w.as_slice_mut().expect(contiguous), dw.as_slice().expect(contiguous)),
            (b.as_slice_mut().expect(contiguous), db.as_slice().expect(contiguous)),
        ])
    }

    /// The sizes of the weight and bias tensors, if the layer has any.
    pub fn param_sizes(&self) -> Option<[usize; 2]> {
        match self {
            Layer::Dense(d) => Some([d.w().len(), d.b.len()]),
            Layer::Conv2d(c) => Some([c.w.len(), c.b.len()]),
            Layer::ConvTranspose2d(c) => Some([c.w.len(), c.b.len()]),
            Layer::MaxPool2d(_) => None,
        }
    }

    /// What the layer needs of [`Scratch`] for batches of `capacity` rows: the numbers of one
    /// group's lowered matrix, and of all groups' partial gradients.
    pub fn scratch_needs(&self, capacity: usize) -> (usize, usize) {
        let needs =
            |(group, lowered): (usize, usize), params: usize| (lowered, capacity.div_ceil(group) * params);
        match self {
            Layer::Conv2d(c) => needs(c.group(), c.w.len() + c.b.len()),
            Layer::ConvTranspose2d(c) => needs(c.group(), c.w.len() + c.b.len()),
            Layer::Dense(_) | Layer::MaxPool2d(_) => (0, 0),
        }
    }

    /// A bound on the magnitude of every number the layer's forward pass computes (each partial
    /// sum of its products, each output before the activation) for inputs of magnitude at most
    /// `input`: by the triangle inequality, the largest over its outputs `o` of `|b_o| + input ·
    /// Σ|w|`, the sum over the weights that output `o` takes. A transposed convolution's output
    /// pixel takes some of its kernel's taps, bounded here by all of them.
    pub fn bound(&self, input: f64) -> f64 {
        // A max-pool takes the largest of its inputs.
        let Some([w, b]) = self.params() else { return input };
        let mut sums = vec![0.0; b.len()];
        let magnitude = |v: &f32| f64::from(v.abs());
        match self {
            // `W` is `(C, k·k·O)`: weight `j` of a row feeds output channel `j mod O`.
            Layer::ConvTranspose2d(_) => {
                w.iter().enumerate().for_each(|(j, v)| sums[j % b.len()] += magnitude(v))
            }
            // `W` is `(O, ·)`: row `o` feeds output `o`.
            _ => {
                for (sum, row) in sums.iter_mut().zip(w.chunks((w.len() / b.len().max(1)).max(1))) {
                    *sum = row.iter().map(magnitude).sum();
                }
            }
        }
        sums.iter().zip(b).map(|(sum, b)| magnitude(b) + input * sum).fold(0.0, f64::max)
    }

    /// Floating-point operations of the layer's products for one image: `(forward, dW, dX)`,
    /// a multiply-add counted as two.
    pub fn flops(&self) -> (usize, usize, usize) {
        let product = match self {
            Layer::Dense(d) => 2 * d.inputs() * d.outputs(),
            Layer::Conv2d(c) => 2 * c.output().pixels() * c.w.len(),
            Layer::ConvTranspose2d(c) => 2 * c.input.pixels() * c.w.len(),
            Layer::MaxPool2d(_) => 0,
        };
        (product, product, product)
    }
}
