//! The transposed convolution ("deconvolution"): each input pixel scatters a `k × k` patch,
//! weighted by its channels, into an output `stride` times larger; with padding `⌊k/2⌋` and an
//! output padding of `stride − 1` the output is exactly `stride·H × stride·W`, the size Keras's
//! `padding="same"` and PyTorch's `padding=1, output_padding=1` give for 3×3, stride 2. Where a
//! patch lands is PyTorch's (input pixel `y` at `s·y − 1 … s·y + 1`), which `tests/conv.rs`
//! checks against PyTorch's numbers.
//!
//! Its forward pass is a convolution's input gradient and its input gradient a convolution's
//! forward pass ([`crate::engine::conv`]), over windows of the *output*: `Y = raise(X·W)`,
//! `δ_prev = lower(δ)·Wᵀ`.
//!
//! Shapes: `B` images of `H × W` pixels and `C` channels in, `(S·H) × (S·W)` pixels and `O`
//! channels out, channels last. The kernel is kept `(C, k·k·O)` with taps in `(ky, kx, o)` order;
//! model files hold PyTorch's `(C, O, k, k)`. Backward overwrites `dw` and `db`.

use ndarray::{Array1, Array2, ArrayView2, ArrayViewMut2, Axis};
use ndarray_rand::RandomExt;
use rand::Rng;
use rand_distr::Uniform;

use crate::engine::activation::Activation;
use crate::engine::aligned;
use crate::engine::conv::{
    PrevGroup, add_bias_and_activate, as_matrix, as_matrix_mut, backward_by_group, forward_by_group,
    lower_images, pixel_sums, raise_images,
};
use crate::engine::gemm::matmul;
use crate::engine::lowering::{Buffers, Image, Scratch, Windows, group_size};

/// A transposed convolution's parameters and the gradients of the last backward pass.
#[derive(Debug, Clone, PartialEq)]
pub struct ConvTranspose2d {
    /// Kernels, `(C, k·k·O)`: row `c` is the patch that input channel `c` adds.
    pub w: Array2<f32>,
    /// Biases, `(O,)`.
    pub b: Array1<f32>,
    /// `∂L/∂W`, `(C, k·k·O)`.
    pub dw: Array2<f32>,
    /// `∂L/∂b`, `(O,)`.
    pub db: Array1<f32>,
    /// The input image `(H, W, C)`.
    pub input: Image,
    /// `S`: the output is `S` times the input's height and width.
    pub stride: usize,
}

impl ConvTranspose2d {
    /// Glorot-uniform kernels `U(±√(6/(k²C + k²O)))` and zero biases.
    pub fn glorot(input: Image, outputs: usize, kernel: usize, stride: usize, rng: &mut impl Rng) -> Self {
        let taps = kernel * kernel;
        let limit = (6.0 / (taps * (input.channels + outputs)) as f32).sqrt();
        let uniform = Uniform::new_inclusive(-limit, limit).expect("a finite, ordered range");
        let w = Array2::random_using((input.channels, taps * outputs), uniform, rng);
        ConvTranspose2d::from_parts(input, stride, w, Array1::zeros(outputs))
    }

    /// A layer on `input` images with kernels `w` `(C, k·k·O)` and biases `b` `(O,)`.
    pub fn from_parts(input: Image, stride: usize, w: Array2<f32>, b: Array1<f32>) -> Self {
        assert_eq!(w.nrows(), input.channels, "one kernel row per input channel");
        let (w, db) = (aligned::copy_of(&w), Array1::zeros(b.raw_dim()));
        let dw = aligned::zeros(w.dim());
        let layer = ConvTranspose2d { w, b, dw, db, input, stride };
        assert_eq!(layer.kernel().pow(2) * layer.b.len(), layer.w.ncols(), "k·k·O taps per kernel");
        layer
    }

    /// `k`, the kernel's side.
    pub fn kernel(&self) -> usize {
        ((self.w.ncols() / self.b.len().max(1)) as f64).sqrt().round() as usize
    }

    /// The output image `(S·H, S·W, O)`.
    pub fn output(&self) -> Image {
        let Image { height, width, .. } = self.input;
        Image::new(self.stride * height, self.stride * width, self.b.len())
    }

    /// The windows of the output that the input pixels scatter into: one per input pixel.
    pub fn windows(&self) -> Windows {
        let kernel = self.kernel();
        Windows { big: self.output(), kernel, stride: self.stride, padding: kernel / 2 }
    }

    /// Images per group, and the numbers of a group's lowered matrix.
    pub fn group(&self) -> (usize, usize) {
        let per_image = self.windows().count() * self.windows().row_len();
        let images = group_size(per_image.max(self.input.len()).max(self.output().len()));
        (images, images * per_image)
    }

    /// Forward: `Y = raise(X·W) + b`, then the activation if any.
    ///
    /// Shapes: `x` (B, H·W·C) → `out` (B, S·H·S·W·O); a group of `G` images is `(G·H·W, C)`,
    /// times `W` `(C, k·k·O)` gives each input pixel's patch `(G·H·W, k·k·O)`, raised into the
    /// output.
    pub fn forward(
        &self,
        x: ArrayView2<f32>,
        out: ArrayViewMut2<f32>,
        activation: Option<Activation>,
        buffers: &Buffers,
    ) {
        let (windows, channels) = (self.windows(), self.input.channels);
        let b = self.b.as_slice().expect("contiguous");
        forward_by_group(self.group(), x, out, buffers, |x, out, buffer| {
            let pixels = x.len() / channels;
            let mut patches = as_matrix_mut(buffer, (pixels, self.w.ncols()));
            matmul(as_matrix(&x, (pixels, channels)), self.w.view(), patches.view_mut());
            raise_images(&windows, patches.view(), out, |_, _, y| add_bias_and_activate(y, b, activation));
        });
    }

    /// Backward: `dW = Xᵀ·lower(δ)`, `db = Σ_pixels δ`, and, given the previous layer's
    /// activation, output `a_prev` and room `delta_prev`, `δ_prev = (lower(δ)·Wᵀ) ⊙ f′(a_prev)`.
    ///
    /// Shapes: `x` (B, H·W·C), `delta` (B, S·H·S·W·O) → `dw` (C, k·k·O), `db` (O,), `delta_prev`
    /// (B, H·W·C). Each group's `dW` and `db` are summed in group order.
    pub fn backward(
        &mut self,
        x: ArrayView2<f32>,
        delta: ArrayView2<f32>,
        prev: Option<(Activation, ArrayView2<f32>, ArrayViewMut2<f32>)>,
        scratch: &mut Scratch,
    ) {
        let (windows, group, w) = (self.windows(), self.group(), self.w.view());
        let (dw, db) =
            (self.dw.as_slice_mut().expect("contiguous"), self.db.as_slice_mut().expect("contiguous"));
        backward_by_group(group, x, delta, prev, scratch, dw, db, |x, delta, partial, prev, buffer| {
            backward_group(&windows, w, x, delta, partial, prev, buffer)
        });
    }
}

/// [`ConvTranspose2d::backward`] for one group of images: its partial `dW` and `db` into
/// `partial`, and its rows of `δ_prev` if asked. `buffer` holds the group's lowered `δ`.
fn backward_group(
    windows: &Windows,
    w: ArrayView2<f32>,
    x: ArrayView2<f32>,
    delta: ArrayView2<f32>,
    partial: &mut [f32],
    prev: Option<PrevGroup>,
    buffer: &mut [f32],
) {
    let (channels, row_len) = w.dim();
    let outputs = windows.big.channels;
    let pixels = x.len() / channels;
    let x = as_matrix(&x, (pixels, channels));
    let (dw, db) = partial.split_at_mut(w.len());
    let lowered = lower_images(windows, delta, buffer);
    let lowered = lowered.slice_axis(Axis(0), (0..pixels).into());
    matmul(x.t(), lowered, as_matrix_mut(dw, (channels, row_len)));
    pixel_sums(as_matrix(&delta, (delta.len() / outputs, outputs)), db);
    if let Some((f, a_prev, mut delta_prev)) = prev {
        let mut d = as_matrix_mut(delta_prev.as_slice_mut().expect("contiguous"), (pixels, channels));
        matmul(lowered, w.t(), d.view_mut());
        f.backward(a_prev.as_slice().expect("contiguous"), d.as_slice_mut().expect("contiguous"));
    }
}
