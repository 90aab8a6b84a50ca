//! The convolution layer: `k × k` kernels, stride 1, zero "same" padding, with its hand-written
//! backward pass. Computed by lowering ([`crate::engine::lowering`]): a group of images is copied
//! window by window into a matrix, and the convolution is one matrix product with the kernel. A
//! layer with fewer than 8 outputs works tap by tap instead ([`Conv2d::by_taps`]). The
//! definition by loops is the reference engine's ([`crate::reference::conv`]), which
//! `tests/reference.rs` holds both to.
//!
//! Shapes: `B` images of `H × W` pixels, `C` input and `O` output channels, stored channels last:
//! the input `(B, H·W·C)`, the output `(B, H·W·O)`. The kernel is kept `(O, k·k·C)` with taps in
//! `(ky, kx, c)` order, the order of a lowered row; model files hold PyTorch's `(O, C, k, k)`.
//! Backward overwrites `dw` and `db`.

use ndarray::{Array1, Array2, ArrayView2, ArrayViewMut2, Axis};
use ndarray_rand::RandomExt;
use rand::Rng;
use rand_distr::Uniform;
use rayon::prelude::*;

use crate::engine::activation::Activation;
use crate::engine::aligned;
use crate::engine::fastmath::for_this_cpu;
#[cfg(target_arch = "x86_64")]
use crate::engine::fastmath::{Compiled, compiled_for};
use crate::engine::gemm::{Finish, matmul, matmul_finish};
use crate::engine::lowering::{Buffers, Image, Scratch, Windows, group_size, sum_groups};

/// A convolution layer's parameters and the gradients of the last backward pass.
#[derive(Debug, Clone, PartialEq)]
pub struct Conv2d {
    /// Kernels, `(O, k·k·C)`.
    pub w: Array2<f32>,
    /// Biases, `(O,)`.
    pub b: Array1<f32>,
    /// `∂L/∂W`, `(O, k·k·C)`.
    pub dw: Array2<f32>,
    /// `∂L/∂b`, `(O,)`.
    pub db: Array1<f32>,
    /// The input image `(H, W, C)`.
    pub input: Image,
}

impl Conv2d {
    /// Glorot-uniform kernels `U(±√(6/(k²C + k²O)))` and zero biases, as Keras and the peers do.
    pub fn glorot(input: Image, outputs: usize, kernel: usize, rng: &mut impl Rng) -> Conv2d {
        let taps = kernel * kernel;
        let limit = (6.0 / (taps * (input.channels + outputs)) as f32).sqrt();
        let uniform = Uniform::new_inclusive(-limit, limit).expect("a finite, ordered range");
        let w = Array2::random_using((outputs, taps * input.channels), uniform, rng);
        Conv2d::from_parts(input, w, Array1::zeros(outputs))
    }

    /// A layer on `input` images with kernels `w` `(O, k·k·C)` and biases `b` `(O,)`.
    pub fn from_parts(input: Image, w: Array2<f32>, b: Array1<f32>) -> Conv2d {
        assert_eq!(w.nrows(), b.len(), "one bias per output channel");
        let (w, db) = (aligned::copy_of(&w), Array1::zeros(b.raw_dim()));
        let dw = aligned::zeros(w.dim());
        let conv = Conv2d { w, b, dw, db, input };
        assert_eq!(conv.kernel().pow(2) * input.channels, conv.w.ncols(), "k·k·C taps per kernel");
        conv
    }

    /// `k`, the kernel's side.
    pub fn kernel(&self) -> usize {
        ((self.w.ncols() / self.input.channels.max(1)) as f64).sqrt().round() as usize
    }

    /// The output image `(H, W, O)`.
    pub fn output(&self) -> Image {
        Image { channels: self.w.nrows(), ..self.input }
    }

    /// The windows of the input that make the output pixels: stride 1, padding `⌊k/2⌋`.
    pub fn windows(&self) -> Windows {
        let kernel = self.kernel();
        Windows { big: self.input, kernel, stride: 1, padding: kernel / 2 }
    }

    /// Images per group, and the numbers of a group's buffer: its lowered matrix, and the input
    /// channels first if it [lowers transposed](Conv2d::lowers_transposed) (or, for a layer that
    /// multiplies [by taps](Conv2d::by_taps), its tap products forward, their gradients and its
    /// output's channels first backward).
    pub fn group(&self) -> (usize, usize) {
        let windows = self.windows();
        let per_image = if self.by_taps() {
            windows.count() * self.w.len() / self.input.channels
        } else {
            windows.count() * windows.row_len()
        };
        let images = group_size(per_image.max(self.input.len()).max(self.output().len()));
        if self.by_taps() {
            // `Δᵀ`, then `δ`'s output channels first (see `backward_group_by_taps`).
            return (images, images * (per_image + self.output().len()));
        }
        if !self.lowers_transposed() {
            return (images, images * per_image);
        }
        // The input channels first, and `dWᵀ` (see `backward_group`).
        (images, images * (per_image + self.input.len()) + self.w.len())
    }

    /// Forward: `Y = lower(X)·Wᵀ + b`, then the activation if any.
    ///
    /// Shapes: `x` (B, H·W·C) → `out` (B, H·W·O); a group of `G` images is lowered to
    /// `(G·H·W, k·k·C)` (or, with few channels, to its transpose) and multiplied by `Wᵀ`
    /// `(k·k·C, O)` into `(G·H·W, O)`, its output rows. A layer with few outputs multiplies
    /// [by taps](Conv2d::by_taps) instead, then adds its biases and activation in a pass.
    pub fn forward(
        &self,
        x: ArrayView2<f32>,
        out: ArrayViewMut2<f32>,
        activation: Option<Activation>,
        buffers: &Buffers,
    ) {
        let (windows, outputs) = (self.windows(), self.w.nrows());
        let b = self.b.as_slice().expect("contiguous");
        forward_by_group(self.group(), x, out, buffers, |x, mut out, buffer| {
            let pixels = out.len() / outputs;
            if self.by_taps() {
                self.forward_by_taps(x, out.view_mut(), buffer);
                return add_bias_and_activate(out.as_slice_mut().expect("contiguous"), b, activation);
            }
            // The bias and activation as `Y` is stored: in the kernel's registers for a ReLU.
            let (y, finish) = (
                as_matrix_mut(out.as_slice_mut().expect("contiguous"), (pixels, outputs)),
                Finish::Bias(b, activation),
            );
            if self.lowers_transposed() {
                matmul_finish(lower_images_transposed(&windows, x, buffer).t(), self.w.t(), y, finish);
            } else {
                let lowered = lower_images(&windows, x, buffer);
                matmul_finish(lowered.slice_axis(Axis(0), (0..pixels).into()), self.w.t(), y, finish);
            }
        });
    }

    /// Backward: `dW = δᵀ·lower(X)`, `db = Σ_pixels δ`, and, given the previous layer's
    /// activation, output `a_prev` and room `delta_prev`, the input's gradient
    /// `δ_prev = raise(δ·W) ⊙ f′(a_prev)`.
    ///
    /// Shapes: `x` (B, H·W·C), `delta` (B, H·W·O) → `dw` (O, k·k·C), `db` (O,), `delta_prev`
    /// (B, H·W·C). Each group's `dW` and `db` are summed in group order. `lower(X)` is made
    /// again, group by group, rather than kept from the forward pass: kept, it would be a 58 MB
    /// array for the model's second convolution at batch 256, read back from memory, where lowering
    /// again reads the 6 MB input into a buffer that stays in cache (reasoned, not measured).
    pub fn backward(
        &mut self,
        x: ArrayView2<f32>,
        delta: ArrayView2<f32>,
        prev: Option<(Activation, ArrayView2<f32>, ArrayViewMut2<f32>)>,
        scratch: &mut Scratch,
    ) {
        let (windows, group, w, by_taps) = (self.windows(), self.group(), self.w.view(), self.by_taps());
        let transposed = self.lowers_transposed();
        let (dw, db) =
            (self.dw.as_slice_mut().expect("contiguous"), self.db.as_slice_mut().expect("contiguous"));
        backward_by_group(group, x, delta, prev, scratch, dw, db, |x, delta, partial, prev, buffer| {
            if by_taps {
                backward_group_by_taps(&windows, w, x, delta, partial, prev, buffer)
            } else {
                backward_group(&windows, transposed, w, x, delta, partial, prev, buffer)
            }
        });
    }

    /// Whether the forward pass lowers its input transposed ([`Windows::lower_transposed`]):
    /// with fewer than 8 input channels, where a window's row would be copied a number or two
    /// at a time. The first layer (`C = 1`): 2.6 ms forward lowered by rows, 2.0 transposed;
    /// the second convolution (`C = 32`, whole blocks of 32 numbers): 5.6 by rows, 6.8 transposed (batch
    /// 256, the bench, side by side).
    pub fn lowers_transposed(&self) -> bool {
        self.input.channels < 8
    }

    /// Whether the layer works tap by tap instead of window by window: with fewer than 8 output
    /// channels (the output layer has one), the lowered product `(·, k·k·C)·(k·k·C, O)` would
    /// be a few columns wide, where the kernel's tile is 32 (16 in a last block), and compute
    /// mostly padding. The products are then `(·, C)·(C, O·k·k)` forward, `(O·k·k, ·)·(·, C)`
    /// and `(·, O·k·k)·(O·k·k, C)` backward, wide on one side.
    pub fn by_taps(&self) -> bool {
        self.w.nrows() < 8
    }

    /// The forward product of a group multiplied by taps: the product of every input pixel
    /// with every tap, `P = X·Tapsᵀ` `(G·H·W, C)·(C, O·k·k)` into `buffer`, then each output
    /// adds its window's, `y[q, o] = Σ_t P[q + s_t, (o, t)]` with `s_t` tap `t`'s offset from
    /// the window's centre (no bias yet).
    fn forward_by_taps(&self, x: ArrayView2<f32>, mut out: ArrayViewMut2<f32>, buffer: &mut [f32]) {
        let (c, taps) = (self.input.channels, taps(self.w.view(), self.input.channels));
        let pixels = x.len() / c;
        let mut products = as_matrix_mut(buffer, (pixels, taps.nrows()));
        matmul(as_matrix(&x, (pixels, c)), taps.t(), products.view_mut());
        let (windows, outputs) = (self.windows(), self.w.nrows());
        let per_image = self.input.pixels() * taps.nrows();
        let products = products.as_slice().expect("contiguous").chunks_exact(per_image);
        for (products, mut y) in products.zip(out.rows_mut()) {
            windows.sum_taps(outputs, products, y.as_slice_mut().expect("contiguous rows"));
        }
    }
}

/// The kernel `(O, k·k·C)` read as `Taps` `(O·k·k, C)`: one row per output and tap.
fn taps(w: ArrayView2<f32>, c: usize) -> ArrayView2<f32> {
    w.into_shape_with_order((w.len() / c, c)).expect("k·k·C per row")
}

/// Runs `product(x, out, buffer)` on every group of `group` images in parallel, with its
/// thread's buffer (its first `lowered` numbers); `product` writes the group's output rows,
/// biases and activation included.
pub(crate) fn forward_by_group<F>(
    (group, lowered): (usize, usize),
    x: ArrayView2<f32>,
    mut out: ArrayViewMut2<f32>,
    buffers: &Buffers,
    product: F,
) where
    F: Fn(ArrayView2<f32>, ArrayViewMut2<f32>, &mut [f32]) + Sync,
{
    (x.axis_chunks_iter(Axis(0), group), out.axis_chunks_iter_mut(Axis(0), group))
        .into_par_iter()
        .for_each(|(x, out)| buffers.with_buffer(|buffer| product(x, out, &mut buffer[..lowered])));
}

/// Runs `each(x, δ, partial, prev, buffer)` on every group of `group` images in parallel, each
/// group with its own slice of the partial gradients (`stride` numbers) and its thread's buffer
/// (its first `lowered` numbers), then sums the partials in group order into `dw` and `db`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn backward_by_group<F>(
    (group, lowered): (usize, usize),
    x: ArrayView2<f32>,
    delta: ArrayView2<f32>,
    prev: Option<(Activation, ArrayView2<f32>, ArrayViewMut2<f32>)>,
    scratch: &mut Scratch,
    dw: &mut [f32],
    db: &mut [f32],
    each: F,
) where
    F: Fn(ArrayView2<f32>, ArrayView2<f32>, &mut [f32], Option<PrevGroup>, &mut [f32]) + Sync,
{
    let stride = dw.len() + db.len();
    let Scratch { buffers, partials } = scratch;
    let partials = &mut partials[..x.nrows().div_ceil(group) * stride];
    let run = |x, delta, partial: &mut [f32], prev| {
        buffers.with_buffer(|buffer| each(x, delta, partial, prev, &mut buffer[..lowered]))
    };
    let (xs, deltas) = (x.axis_chunks_iter(Axis(0), group), delta.axis_chunks_iter(Axis(0), group));
    match prev {
        None => (xs, deltas, partials.par_chunks_mut(stride))
            .into_par_iter()
            .for_each(|(x, delta, partial)| run(x, delta, partial, None)),
        Some((f, a_prev, mut delta_prev)) => (
            xs,
            deltas,
            partials.par_chunks_mut(stride),
            a_prev.axis_chunks_iter(Axis(0), group),
            delta_prev.axis_chunks_iter_mut(Axis(0), group),
        )
            .into_par_iter()
            .for_each(|(x, delta, partial, a, d)| run(x, delta, partial, Some((f, a, d)))),
    }
    sum_groups(partials, stride, 0, dw);
    sum_groups(partials, stride, dw.len(), db);
}

/// What a group needs to compute its rows of the input gradient: the previous layer's
/// activation, its output rows `a_prev`, and the rows of `δ_prev` to write.
pub(crate) type PrevGroup<'a> = (Activation, ArrayView2<'a, f32>, ArrayViewMut2<'a, f32>);

/// [`Conv2d::backward`] for one group of images: its partial `dW` and `db` into `partial`, and
/// its rows of `δ_prev` if asked. `buffer` holds the group's lowered input (`transposed` or by
/// rows, as the forward pass lowered it), then `δ·W`.
#[allow(clippy::too_many_arguments)]
fn backward_group(
    windows: &Windows,
    transposed: bool,
    w: ArrayView2<f32>,
    x: ArrayView2<f32>,
    delta: ArrayView2<f32>,
    partial: &mut [f32],
    prev: Option<PrevGroup>,
    buffer: &mut [f32],
) {
    let (outputs, row_len) = w.dim();
    let pixels = delta.len() / outputs;
    let delta = as_matrix(&delta, (pixels, outputs));
    let (dw, db) = partial.split_at_mut(w.len());
    if transposed {
        // `dWᵀ = lower(X)ᵀ·δ`, `(k·k·C, G·H·W)·(G·H·W, O)`: 32 outputs wide where `dW` would be
        // `k·k·C` (9) wide, the same sums term for term.
        let (buffer, dw_t) = buffer.split_at_mut(buffer.len() - w.len());
        let mut dw_t = as_matrix_mut(dw_t, (row_len, outputs));
        matmul(lower_images_transposed(windows, x, buffer), delta, dw_t.view_mut());
        as_matrix_mut(dw, (outputs, row_len)).assign(&dw_t.t());
    } else {
        let lowered = lower_images(windows, x, buffer);
        matmul(
            delta.t(),
            lowered.slice_axis(Axis(0), (0..pixels).into()),
            as_matrix_mut(dw, (outputs, row_len)),
        );
    }
    pixel_sums(delta, db);
    if let Some((f, a_prev, mut delta_prev)) = prev {
        let mut d_lowered = as_matrix_mut(buffer, (pixels, row_len));
        matmul(delta, w, d_lowered.view_mut());
        raise_images(windows, d_lowered.view(), delta_prev.view_mut(), |g, at, d| {
            f.backward(&a_prev.row(g).as_slice().expect("contiguous rows")[at..at + d.len()], d)
        });
    }
}

/// [`Conv2d::backward`] for one group of images multiplied by taps: the gradient of every
/// tap product, `Δ[q, (o, t)] = δ[q − s_t, o]` (`δ` read through `q`'s window with the kernel
/// flipped), then `dW = Δᵀ·X` `(O·k·k, G·H·W)·(G·H·W, C)` and `δ_prev = (Δ·Taps) ⊙ f′(a_prev)`
/// `(G·H·W, O·k·k)·(O·k·k, C)`. `buffer` holds `Δᵀ`, made as a transposed lowering of each
/// output channel's plane of `δ` ([`Windows::lower_transposed_flipped`]), then those planes.
fn backward_group_by_taps(
    windows: &Windows,
    w: ArrayView2<f32>,
    x: ArrayView2<f32>,
    delta: ArrayView2<f32>,
    partial: &mut [f32],
    prev: Option<PrevGroup>,
    buffer: &mut [f32],
) {
    let (outputs, c) = (w.nrows(), windows.big.channels);
    let taps = taps(w, c);
    let (per_pixel, pixels) = (taps.nrows(), x.len() / c);
    let (d_products_t, planes) = buffer.split_at_mut(per_pixel * pixels);
    let over_delta = Windows { big: Image { channels: outputs, ..windows.big }, ..*windows };
    let planes = over_delta.planes_of(delta, &mut planes[..delta.len()]);
    let per_output = Windows { big: Image { channels: 1, ..windows.big }, ..*windows };
    let kk = per_pixel / outputs;
    for (plane, rows) in planes.chunks_exact(pixels).zip(d_products_t.chunks_exact_mut(kk * pixels)) {
        per_output.lower_transposed_flipped(plane, x.nrows(), rows);
    }
    let d_products_t = ArrayView2::from_shape((per_pixel, pixels), &*d_products_t).expect("O·k·k rows");
    let (dw, db) = partial.split_at_mut(w.len());
    let x = as_matrix(&x, (pixels, c));
    matmul(d_products_t, x, as_matrix_mut(dw, (per_pixel, c)));
    pixel_sums(as_matrix(&delta, (delta.len() / outputs, outputs)), db);
    if let Some((f, a_prev, mut delta_prev)) = prev {
        let mut d = as_matrix_mut(delta_prev.as_slice_mut().expect("contiguous"), (pixels, c));
        matmul(d_products_t.t(), taps, d.view_mut());
        f.backward(a_prev.as_slice().expect("contiguous"), d.as_slice_mut().expect("contiguous"));
    }
}

/// `db[o] = Σ_pixels δ[pixel, o]`, the bias gradient of a group's `δ` `(pixels, O)`, with the
/// pixels in four interleaved chains (pixel `i` into chain `i mod 4`) added at the end as
/// `(c₀ + c₁) + (c₂ + c₃)`. In one chain per output, each of a group's tens of thousands of
/// additions waits for the one before; four chains run side by side. A dense layer sums its
/// few hundred rows in one chain ([`column_sums`](crate::engine::gemm::column_sums)).
pub(crate) fn pixel_sums(delta: ArrayView2<f32>, db: &mut [f32]) {
    let (m, n) = (delta.as_slice().expect("pixel_sums: a contiguous δ"), delta.ncols());
    debug_assert_eq!(db.len(), n, "one sum per column");
    let blocks = n / 32 * 32;
    for first in (0..blocks).step_by(32) {
        pixel_sums_of::<32>(m, n, first, &mut db[first..first + 32]);
    }
    for first in blocks..n {
        pixel_sums_of::<1>(m, n, first, &mut db[first..first + 1]);
    }
}

/// [`pixel_sums`] of the `W` columns from `first` on: a fixed width, whose chains the compiler
/// keeps in registers. Compiled for the products' path on this CPU by `#[target_feature]`
/// functions of its own, not [`for_this_cpu`]: its body, a closure there, was left a call
/// compiled for the baseline (1.2% of a conv step).
fn pixel_sums_of<const W: usize>(m: &[f32], n: usize, first: usize, db: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    match compiled_for() {
        // SAFETY: the CPU has AVX-512 (F, VL, BW, DQ), AVX2 and FMA (`compiled_for`).
        Compiled::Avx512 => unsafe { pixel_sums_avx512::<W>(m, n, first, db) },
        // SAFETY: the CPU has AVX2 and FMA (`compiled_for`).
        Compiled::Avx2 => unsafe { pixel_sums_avx2_fma::<W>(m, n, first, db) },
        Compiled::AsBuilt => pixel_sums_here::<W>(m, n, first, db),
    }
    #[cfg(not(target_arch = "x86_64"))]
    pixel_sums_here::<W>(m, n, first, db);
}

/// [`pixel_sums_of`] compiled for AVX-512.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vl,avx512bw,avx512dq,avx2,fma")]
fn pixel_sums_avx512<const W: usize>(m: &[f32], n: usize, first: usize, db: &mut [f32]) {
    pixel_sums_here::<W>(m, n, first, db)
}

/// [`pixel_sums_of`] compiled for AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn pixel_sums_avx2_fma<const W: usize>(m: &[f32], n: usize, first: usize, db: &mut [f32]) {
    pixel_sums_here::<W>(m, n, first, db)
}

/// [`pixel_sums_of`]'s body, inlined into each copy.
#[inline(always)]
fn pixel_sums_here<const W: usize>(m: &[f32], n: usize, first: usize, db: &mut [f32]) {
    // Local to the loop, so that no bounds check's panic can see them: kept in registers.
    let mut chains = [[0.0f32; W]; 4];
    let rows = m.chunks_exact(n * 4);
    let last = rows.remainder();
    for rows in rows {
        let row = |c: usize| -> &[f32; W] { rows[c * n + first..][..W].try_into().expect("W columns") };
        let (r0, r1, r2, r3) = (row(0), row(1), row(2), row(3));
        let [c0, c1, c2, c3] = &mut chains;
        for j in 0..W {
            c0[j] += r0[j];
            c1[j] += r1[j];
            c2[j] += r2[j];
            c3[j] += r3[j];
        }
    }
    for (chain, row) in chains.iter_mut().zip(last.chunks_exact(n)) {
        chain.iter_mut().zip(&row[first..first + W]).for_each(|(s, v)| *s += v);
    }
    let [c0, c1, c2, c3] = chains;
    for (j, db) in db.iter_mut().enumerate() {
        *db = (c0[j] + c1[j]) + (c2[j] + c3[j]);
    }
}

/// Lowers each image (row) of `x` into consecutive blocks of `buffer`; the lowered matrix
/// `(rows·windows, k·k·C)`, with room to spare after it if the group is short.
pub(crate) fn lower_images<'a>(
    windows: &Windows,
    x: ArrayView2<f32>,
    buffer: &'a mut [f32],
) -> ArrayView2<'a, f32> {
    let per_image = windows.count() * windows.row_len();
    for (image, lowered) in x.rows().into_iter().zip(buffer.chunks_exact_mut(per_image)) {
        windows.lower(image.as_slice().expect("contiguous rows"), lowered);
    }
    let rows = buffer.len() / windows.row_len();
    ArrayView2::from_shape((rows, windows.row_len()), &*buffer).expect("whole rows")
}

/// Lowers the images (rows) of `x` into the head of `buffer` transposed, `(k·k·C, rows·windows)`
/// ([`Windows::lower_transposed`]), putting their channels first in the numbers after it (a
/// grayscale image's are its own: [`Windows::planes_of`]).
pub(crate) fn lower_images_transposed<'a>(
    windows: &Windows,
    x: ArrayView2<f32>,
    buffer: &'a mut [f32],
) -> ArrayView2<'a, f32> {
    let (rows, columns) = (windows.row_len(), x.nrows() * windows.count());
    let (lowered_t, rest) = buffer.split_at_mut(rows * columns);
    let planes = windows.planes_of(x, &mut rest[..x.len()]);
    windows.lower_transposed(planes, x.nrows(), lowered_t);
    ArrayView2::from_shape((rows, columns), &*lowered_t).expect("whole rows")
}

/// Raises each image's block of rows of `lowered` into the matching row of `images`, and
/// calls `finish(image, at, pixels)` on its rows of pixels as they are complete
/// ([`Windows::raise`]).
pub(crate) fn raise_images(
    windows: &Windows,
    lowered: ArrayView2<f32>,
    mut images: ArrayViewMut2<f32>,
    finish: impl Fn(usize, usize, &mut [f32]),
) {
    let lowered = lowered.as_slice().expect("contiguous");
    let per_image = windows.count() * windows.row_len();
    let images = images.rows_mut().into_iter().zip(lowered.chunks_exact(per_image));
    for (g, (mut image, block)) in images.enumerate() {
        windows
            .raise(block, image.as_slice_mut().expect("contiguous rows"), |at, pixel| finish(g, at, pixel));
    }
}

/// `y += b` on every row of `y` `(P, O)`, stored by rows, then the activation. With one output
/// (`O = 1`) a row is one number, so `y` is added to in one loop, not row by row.
pub(crate) fn add_bias_and_activate(y: &mut [f32], b: &[f32], activation: Option<Activation>) {
    for_this_cpu!(match b {
        [b] => y.iter_mut().for_each(|v| *v += b),
        _ =>
            for row in y.chunks_exact_mut(b.len()) {
                row.iter_mut().zip(b).for_each(|(v, b)| *v += b);
            },
    });
    if let Some(f) = activation {
        f.forward(y);
    }
}

/// A contiguous block of batch rows seen as a matrix of another shape (the same numbers).
pub(crate) fn as_matrix<'a>(rows: &'a ArrayView2<f32>, shape: (usize, usize)) -> ArrayView2<'a, f32> {
    ArrayView2::from_shape(shape, rows.as_slice().expect("contiguous rows")).expect("the same count")
}

/// The first `rows · cols` numbers of `data` as a `(rows, cols)` matrix.
pub(crate) fn as_matrix_mut(data: &mut [f32], (rows, cols): (usize, usize)) -> ArrayViewMut2<'_, f32> {
    ArrayViewMut2::from_shape((rows, cols), &mut data[..rows * cols]).expect("enough numbers")
}
