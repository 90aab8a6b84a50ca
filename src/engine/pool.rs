//! Max-pooling over 2×2 blocks, with its backward pass: each output pixel is the largest of
//! four, and its gradient goes back to that one input alone.
//!
//! Shapes: `B` images of `H × W` pixels and `C` channels in (`H`, `W` even), `(H/2) × (W/2)` out,
//! channels last: `(B, H·W·C)` → `(B, (H/2)·(W/2)·C)`. A tie goes to the first of the block in
//! reading order (top left, top right, bottom left, bottom right), as in PyTorch. No parameters.

use ndarray::{ArrayView2, ArrayViewMut2, Axis};
use rayon::prelude::*;

use crate::engine::activation::Activation;
use crate::engine::fastmath::for_this_cpu;
use crate::engine::lowering::Image;

/// The fewest images a parallel task pools.
const IMAGES_PER_TASK: usize = 4;

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
        let rows = (x.axis_iter(Axis(0)), out.axis_iter_mut(Axis(0))).into_par_iter();
        rows.with_min_len(IMAGES_PER_TASK).for_each(|(x, mut y)| {
            let (x, y) = (x.as_slice().expect("contiguous"), y.as_slice_mut().expect("contiguous"));
            for_this_cpu!(self.for_each_block(|[x0, x1, x2, x3], out| {
                let c = self.input.channels;
                let y = &mut y[out..out + c];
                let (x0, x1, x2, x3) = (&x[x0..x0 + c], &x[x1..x1 + c], &x[x2..x2 + c], &x[x3..x3 + c]);
                // All four in one pass: a pass per pixel stored `y` and read it straight back,
                // each masked store stalling the load after it.
                for ((((y, &v0), &v1), &v2), &v3) in y.iter_mut().zip(x0).zip(x1).zip(x2).zip(x3) {
                    *y = larger(larger(larger(v0, v1), v2), v3);
                }
            }));
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
        debug_assert!(
            self.input.height.is_multiple_of(2) && self.input.width.is_multiple_of(2),
            "even sides"
        );
        (delta.axis_iter(Axis(0)), a_prev.axis_iter(Axis(0)), delta_prev.axis_iter_mut(Axis(0)))
            .into_par_iter()
            .with_min_len(IMAGES_PER_TASK)
            .for_each(|(delta, a, mut d_prev)| {
                let (delta, a) = (delta.as_slice().expect("contiguous"), a.as_slice().expect("contiguous"));
                let d_prev = d_prev.as_slice_mut().expect("contiguous");
                for_this_cpu!(self.for_each_block(
                    |[top_left, top_right, bottom_left, bottom_right], out| {
                        let (top, bottom) = d_prev.split_at_mut(bottom_left);
                        let (d0, d1) = top[top_left..top_left + 2 * c].split_at_mut(c);
                        let (d2, d3) = bottom[..2 * c].split_at_mut(c);
                        let a = |at: usize| &a[at..at + c];
                        let a_block = [a(top_left), a(top_right), a(bottom_left), a(bottom_right)];
                        route(a_block, &delta[out..out + c], [&mut *d0, &mut *d1, &mut *d2, &mut *d3]);
                        // `⊙ f′(a_prev)` while the block is in cache.
                        for (d, a) in [d0, d1, d2, d3].into_iter().zip(a_block) {
                            f.backward_here(a, d);
                        }
                    }
                ));
            });
    }

    /// Calls `f(block, out)` for every 2×2 block of one image: `block` the offsets of its four
    /// pixels in reading order, `out` the offset of the output pixel.
    #[inline(always)]
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

/// One block's backward along its channels: `d[i][j] = delta[j]` for the first `i` whose
/// `a[i][j]` is the largest of the four, 0 for the others. Written with comparisons and selects
/// on slices of one length, so that the loop vectorizes.
#[inline(always)]
fn route(a: [&[f32]; 4], delta: &[f32], d: [&mut [f32]; 4]) {
    let n = delta.len();
    let [a0, a1, a2, a3] = a;
    let [d0, d1, d2, d3] = d;
    let (a0, a1, a2, a3) = (&a0[..n], &a1[..n], &a2[..n], &a3[..n]);
    let (d0, d1, d2, d3) = (&mut d0[..n], &mut d1[..n], &mut d2[..n], &mut d3[..n]);
    for j in 0..n {
        let max = larger(larger(a0[j], a1[j]), larger(a2[j], a3[j]));
        // The gradient `g` goes to the first that holds the maximum and is then used up.
        let g = delta[j];
        let (g0, g) = if a0[j] == max { (g, 0.0) } else { (0.0, g) };
        let (g1, g) = if a1[j] == max { (g, 0.0) } else { (0.0, g) };
        let (g2, g) = if a2[j] == max { (g, 0.0) } else { (0.0, g) };
        (d0[j], d1[j], d2[j], d3[j]) = (g0, g1, g2, g);
    }
}

/// `max(a, b)` as one comparison and a select (`f32::max`'s care for NaN keeps loops scalar).
#[inline]
fn larger(a: f32, b: f32) -> f32 {
    if a >= b { a } else { b }
}
