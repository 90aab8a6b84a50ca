//! Max-pooling over 2×2 blocks, with its backward pass: each output pixel is the largest of
//! four, and its gradient goes back to that one input alone.
//!
//! Shapes: `B` images of `H × W` pixels and `C` channels in (`H`, `W` even), `(H/2) × (W/2)` out,
//! channels last: `(B, H·W·C)` → `(B, (H/2)·(W/2)·C)`. A tie goes to the first of the block in
//! reading order (top left, top right, bottom left, bottom right), as in PyTorch. No parameters.

use ndarray::{ArrayView2, ArrayViewMut2, Axis};
use rayon::prelude::*;

use crate::engine::activation::Activation;
use crate::engine::lowering::Image;

/// Max-pooling over 2×2 blocks of an `input` image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaxPool2d {
    /// The input image `(H, W, C)`.
    pub input: Image,
}

impl MaxPool2d {
    /// The output image `(H/2, W/2, C)`.
    pub fn output(&self) -> Image {
        let Image { height, width, channels } = self.input;
        Image::new(height / 2, width / 2, channels)
    }

    /// Forward: `y[oy, ox, c] = max(x[2oy + dy, 2ox + dx, c])` over `dy, dx ∈ {0, 1}`.
    ///
    /// Shapes: `x` (B, H·W·C) → `out` (B, (H/2)·(W/2)·C).
    pub fn forward(&self, x: ArrayView2<f32>, mut out: ArrayViewMut2<f32>) {
        (x.axis_iter(Axis(0)), out.axis_iter_mut(Axis(0))).into_par_iter().for_each(|(x, mut y)| {
            let (x, y) = (x.as_slice().expect("contiguous"), y.as_slice_mut().expect("contiguous"));
            self.for_each_block(|block, out| {
                let y = &mut y[out..out + self.input.channels];
                y.copy_from_slice(&x[block[0]..block[0] + y.len()]);
                for &at in &block[1..] {
                    y.iter_mut().zip(&x[at..]).for_each(|(y, &v)| *y = y.max(v));
                }
            });
        });
    }

    /// Backward: `δ_prev` at the block's maximum is `δ`, elsewhere 0; then through the previous
    /// layer's activation, `⊙ f′(a_prev)`. The maximum is found again in `a_prev`, the input.
    ///
    /// Shapes: `delta` (B, (H/2)·(W/2)·C), `a_prev` (B, H·W·C) → `delta_prev` (B, H·W·C).
    pub fn backward_input(
        &self,
        delta: ArrayView2<f32>,
        (f, a_prev): (Activation, ArrayView2<f32>),
        mut delta_prev: ArrayViewMut2<f32>,
    ) {
        let c = self.input.channels;
        (delta.axis_iter(Axis(0)), a_prev.axis_iter(Axis(0)), delta_prev.axis_iter_mut(Axis(0)))
            .into_par_iter()
            .for_each(|(delta, a, mut d_prev)| {
                let (delta, a) = (delta.as_slice().expect("contiguous"), a.as_slice().expect("contiguous"));
                let d_prev = d_prev.as_slice_mut().expect("contiguous");
                d_prev.fill(0.0);
                self.for_each_block(|block, out| {
                    for (j, &d) in delta[out..out + c].iter().enumerate() {
                        // The first of the four that holds the maximum.
                        let winner =
                            block.iter().fold(block[0], |w, &at| if a[at + j] > a[w + j] { at } else { w });
                        d_prev[winner + j] = d;
                    }
                });
                f.backward(a, d_prev);
            });
    }

    /// Calls `f(block, out)` for every 2×2 block of one image: `block` the offsets of its four
    /// pixels in reading order, `out` the offset of the output pixel.
    fn for_each_block(&self, mut f: impl FnMut([usize; 4], usize)) {
        let Image { width, channels: c, .. } = self.input;
        let out = self.output();
        for oy in 0..out.height {
            for ox in 0..out.width {
                let top = (2 * oy * width + 2 * ox) * c;
                let bottom = top + width * c;
                f([top, top + c, bottom, bottom + c], (oy * out.width + ox) * c);
            }
        }
    }
}
