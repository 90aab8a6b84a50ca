//! The convolution and the transposed convolution, by loops over their definitions
//! (`docs/backprop.md` §11, §12, §14).
//!
//! Both are sums of products: every number of an output image is its channel's bias plus a sum
//! of products `W[w_at]·X[at]`, a weight times an input number. The two layers differ only in which
//! products they sum, which [`Conv::for_each_product`] lists; forward and backward are then
//! written once for both. Backward follows the forward's products one by one, and each sends
//! the gradient `δ[out]` of the number it was added to back to its two factors:
//!
//! ```text
//! forward     Z[out]   += W[w_at]·X[at]
//! backward    dW[w_at] += δ[out]·X[at]        dX[at] += δ[out]·W[w_at]
//! ```
//!
//! `X` is the layer's input (`A_prev` in `docs/backprop.md`) and `dX` its gradient. Shapes: `B`
//! images; the input image `(H, W, C)` and the output image `(H′, W′, O)` are rows of `H·W·C`
//! and `H′·W′·O` numbers, channels last.

use ndarray::{Array1, Array2, ArrayView2};

use crate::engine::conv::Conv2d;
use crate::engine::conv_transpose::ConvTranspose2d;
use crate::engine::lowering::Image;
use crate::reference::Gradients;

/// A convolution or a transposed convolution: a layer whose output is a sum of products.
#[derive(Debug, Clone, Copy)]
pub enum Conv<'a> {
    /// `k × k` kernels `W` (O, k·k·C), stride 1, padding `p = ⌊k/2⌋`:
    /// `Z[y, x, o] = b[o] + Σ_{ky, kx, c} W[o, (ky, kx, c)]·X[y + ky − p, x + kx − p, c]`,
    /// zero where the window leaves the image. The output is as large as the input.
    Conv2d(&'a Conv2d),
    /// `k × k` kernels `W` (C, k·k·O), stride `S`, padding `p = ⌊k/2⌋`: every input pixel
    /// `(y, x)` adds its patch, `X[y, x, c]·W[c, (ky, kx, o)]`, to output pixel
    /// `(S·y − p + ky, S·x − p + kx)` where that lies inside the output, which is `S` times
    /// larger than the input.
    Transposed(&'a ConvTranspose2d),
}

impl Conv<'_> {
    /// The weights `W`, as the layer stores them.
    fn w(&self) -> &Array2<f32> {
        match self {
            Conv::Conv2d(c) => &c.w,
            Conv::Transposed(c) => &c.w,
        }
    }

    /// The biases `b` (O,).
    fn b(&self) -> &Array1<f32> {
        match self {
            Conv::Conv2d(c) => &c.b,
            Conv::Transposed(c) => &c.b,
        }
    }

    /// The input and output images.
    fn images(&self) -> (Image, Image) {
        match self {
            Conv::Conv2d(c) => (c.input, c.output()),
            Conv::Transposed(c) => (c.input, c.output()),
        }
    }

    /// Calls `f(out, w_at, at)` for every product `W[w_at]·X[at]` that the forward pass adds to
    /// `Z[out]`, for one image: `out` and `at` are positions in the output and input rows, `w_at`
    /// a position in `W`'s numbers, row by row. (The callback plays the part of a Python
    /// generator: read `f`'s body as that of `for out, w_at, at in products(): …`.)
    pub fn for_each_product(&self, mut f: impl FnMut(usize, usize, usize)) {
        match *self {
            Conv::Conv2d(conv) => {
                let (k, p, Image { height, width, channels }) =
                    (conv.kernel(), conv.kernel() / 2, conv.input);
                let (outputs, taps) = (conv.output().channels, conv.w.ncols());
                for (y, x, o) in indices(height, width, outputs) {
                    let out = (y * width + x) * outputs + o;
                    for ky in 0..k {
                        for kx in 0..k {
                            // The input pixel under tap (ky, kx) of the window centred on (y, x);
                            // a tap on the zero padding outside the image adds nothing.
                            let (Some(iy), Some(ix)) = (inside(y + ky, p, height), inside(x + kx, p, width))
                            else {
                                continue;
                            };
                            for c in 0..channels {
                                let w_at = o * taps + (ky * k + kx) * channels + c; // W[o, (ky, kx, c)]
                                f(out, w_at, (iy * width + ix) * channels + c);
                            }
                        }
                    }
                }
            }
            Conv::Transposed(conv) => {
                let (k, p, s) = (conv.kernel(), conv.kernel() / 2, conv.stride);
                let (input, output, taps) = (conv.input, conv.output(), conv.w.ncols());
                for (y, x, c) in indices(input.height, input.width, input.channels) {
                    let at = (y * input.width + x) * input.channels + c;
                    for ky in 0..k {
                        for kx in 0..k {
                            // The output pixel that tap (ky, kx) of input pixel (y, x)'s patch lands
                            // on; a tap that lands outside the output is dropped.
                            let (Some(oy), Some(ox)) =
                                (inside(s * y + ky, p, output.height), inside(s * x + kx, p, output.width))
                            else {
                                continue;
                            };
                            for o in 0..output.channels {
                                let w_at = c * taps + (ky * k + kx) * output.channels + o; // W[c, (ky, kx, o)]
                                f((oy * output.width + ox) * output.channels + o, w_at, at);
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Forward: `Z[out] = b[o] + Σ W[w_at]·X[at]` over the layer's products.
///
/// Shapes: `x` (B, H·W·C) → `Z` (B, H′·W′·O).
pub fn forward(layer: Conv, x: ArrayView2<f32>) -> Array2<f32> {
    let (input, output) = layer.images();
    debug_assert_eq!(x.ncols(), input.len());
    let (w, b) = (slice(layer.w()), layer.b());
    let mut z = Array2::zeros((x.nrows(), output.len()));
    for (x, mut z) in x.rows().into_iter().zip(z.rows_mut()) {
        let (x, z) = (x.as_slice().expect("contiguous rows"), z.as_slice_mut().expect("contiguous rows"));
        for (out, z) in z.iter_mut().enumerate() {
            *z = b[out % output.channels];
        }
        layer.for_each_product(|out, w_at, at| z[out] += w[w_at] * x[at]);
    }
    z
}

/// Backward, parameters: from `δ = ∂L/∂Z`, summed over every image,
///
/// ```text
/// dW[w_at] = Σ δ[out]·X[at]     over the products of W[w_at]
/// db[o]    = Σ δ[out]           over the output numbers of channel o
/// ```
///
/// Shapes: `x` (B, H·W·C), `delta` (B, H′·W′·O) → `dW` shaped as `W`, `db` (O,).
pub fn backward(layer: Conv, x: ArrayView2<f32>, delta: ArrayView2<f32>) -> Gradients {
    let channels = layer.images().1.channels;
    let mut dw = Array2::zeros(layer.w().raw_dim());
    let mut db = Array1::zeros(channels);
    for (x, delta) in x.rows().into_iter().zip(delta.rows()) {
        let (x, delta) = (x.as_slice().expect("contiguous rows"), delta.as_slice().expect("contiguous rows"));
        let dw = dw.as_slice_mut().expect("a new array");
        layer.for_each_product(|out, w_at, at| dw[w_at] += delta[out] * x[at]);
        for (out, d) in delta.iter().enumerate() {
            db[out % channels] += d;
        }
    }
    Gradients { dw, db }
}

/// Backward, input: `dX[at] = Σ δ[out]·W[w_at]` over the products that read `X[at]`.
///
/// Shapes: `delta` (B, H′·W′·O) → `dX` (B, H·W·C).
pub fn backward_input(layer: Conv, delta: ArrayView2<f32>) -> Array2<f32> {
    let w = slice(layer.w());
    let mut dx = Array2::zeros((delta.nrows(), layer.images().0.len()));
    for (delta, mut dx) in delta.rows().into_iter().zip(dx.rows_mut()) {
        let (delta, dx) =
            (delta.as_slice().expect("contiguous rows"), dx.as_slice_mut().expect("contiguous rows"));
        layer.for_each_product(|out, w_at, at| dx[at] += delta[out] * w[w_at]);
    }
    dx
}

/// The numbers of `w`, row by row.
fn slice(w: &Array2<f32>) -> &[f32] {
    w.as_slice().expect("weights are contiguous")
}

/// `position − padding` if that lies in `0..size`, a row or column inside the image; `None`
/// where it falls outside.
fn inside(position: usize, padding: usize, size: usize) -> Option<usize> {
    if position < padding || position - padding >= size { None } else { Some(position - padding) }
}

/// Every `(i, j, l)` with `i < a`, `j < b`, `l < c`, in row-major order.
fn indices(a: usize, b: usize, c: usize) -> impl Iterator<Item = (usize, usize, usize)> {
    (0..a).flat_map(move |i| (0..b).flat_map(move |j| (0..c).map(move |l| (i, j, l))))
}
