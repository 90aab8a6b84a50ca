//! 2×2 max-pooling and its backward pass (`docs/backprop.md` §13): each output is the largest
//! of four inputs, and its gradient goes back to that one input alone.
//!
//! Shapes: `B` images of `H × W` pixels and `C` channels in (`H`, `W` even), `(H/2) × (W/2)`
//! out, channels last: `(B, H·W·C)` → `(B, (H/2)·(W/2)·C)`.

use ndarray::{Array2, ArrayView1, ArrayView2};

use crate::engine::pool::MaxPool2d;

/// Forward: `Z[y, x, c] = max(A_prev[2y + dy, 2x + dx, c])` over `dy, dx ∈ {0, 1}`.
///
/// The argument `x` holds `A_prev`, the layer's input (not the clean images `X` of
/// `docs/backprop.md`).
///
/// Shapes: `x` (B, H·W·C) → `Z` (B, (H/2)·(W/2)·C).
pub fn forward(pool: &MaxPool2d, x: ArrayView2<f32>) -> Array2<f32> {
    let mut z = Array2::zeros((x.nrows(), pool.output().len()));
    for (x, mut z) in x.rows().into_iter().zip(z.rows_mut()) {
        for_each_block(pool, |out, block| z[out] = x[largest(x, block)]);
    }
    z
}

/// Backward, input: `dX = δ` at the block's largest input, 0 at the other three. A tie goes to
/// the first of the block in reading order, as in PyTorch.
///
/// Shapes: `x` (B, H·W·C) the forward's input, `delta` (B, (H/2)·(W/2)·C) → `dX` (B, H·W·C).
pub fn backward_input(pool: &MaxPool2d, x: ArrayView2<f32>, delta: ArrayView2<f32>) -> Array2<f32> {
    let mut dx = Array2::zeros(x.raw_dim());
    for ((x, delta), mut dx) in x.rows().into_iter().zip(delta.rows()).zip(dx.rows_mut()) {
        for_each_block(pool, |out, block| dx[largest(x, block)] = delta[out]);
    }
    dx
}

/// Calls `f(out, block)` for every output number of one image: `block` the positions of its
/// four inputs, top left, top right, bottom left, bottom right.
fn for_each_block(pool: &MaxPool2d, mut f: impl FnMut(usize, [usize; 4])) {
    let (input, output) = (pool.input, pool.output());
    let at = |y: usize, x: usize, c: usize| (y * input.width + x) * input.channels + c;
    for y in 0..output.height {
        for x in 0..output.width {
            for c in 0..output.channels {
                let out = (y * output.width + x) * output.channels + c;
                let (top, left) = (2 * y, 2 * x);
                let block =
                    [at(top, left, c), at(top, left + 1, c), at(top + 1, left, c), at(top + 1, left + 1, c)];
                f(out, block);
            }
        }
    }
}

/// Which of `block`'s four positions in `x` holds the largest number, the first if several do.
fn largest(x: ArrayView1<f32>, block: [usize; 4]) -> usize {
    let mut best = block[0];
    for at in block {
        if x[at] > x[best] {
            best = at;
        }
    }
    best
}
