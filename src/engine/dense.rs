//! The dense (fully connected) layer: `Z = A_prev·Wᵀ + b`, with its hand-written backward pass.
//!
//! Shapes: `B` rows in the batch, `I` inputs, `O` outputs. `W` is stored `(O, I)` like PyTorch's
//! `nn.Linear`, so a model file reads the same in both. The forward's right operand is `Wᵀ`,
//! which our kernel reads row by row: Adam's step writes a copy of it, `(I, O)`, beside `W`
//! where it can ([`Write::InPlace`]). Without that copy, each product reads `W` with its strides
//! swapped and copies it, so transposed, into a buffer of its thread first
//! ([`crate::engine::gemm::matmul`]).
//! Backward overwrites `dw` and `db` (no accumulation across calls).
//!
//! The training step runs [`Dense::forward_shard`], [`Dense::backward_shard`] and
//! [`weight_gradient`] on each thread's shard of the batch ([`crate::engine::data_parallel`]),
//! then [`Update`] takes Adam's step;
//! [`Dense::forward`] splits the rows of one large batch over the rayon pool (evaluation), and
//! [`Dense::backward`], the same backward into the layer's own gradients, serves
//! [`Model::backward`](crate::engine::model::Model::backward), which the tests hold to finite
//! differences and to the reference engine.

use std::ops::Range;

use ndarray::{Array1, Array2, ArrayView2, ArrayViewMut2, ShapeBuilder, s};
use ndarray_rand::RandomExt;
use rand::Rng;
use rand_distr::Uniform;

use crate::engine::activation::Activation;
use crate::engine::adam::{Moments, Step};
use crate::engine::aligned;
use crate::engine::fastmath::for_this_cpu;
use crate::engine::gemm::{Finish, column_sums, copy_into, matmul, matmul_finish, par_matmul_with};
use crate::engine::stream;

/// The weights [`Update::sum_and_step`] adds and steps at a time, with their moments and gradients:
/// enough to stream, few enough to stay in cache between the passes over them.
const UPDATE_BLOCK: usize = 16 * 1024;

/// The weights [`Write::Streamed`] steps at a time in a buffer on the stack: 4 KB, which stay
/// in the first-level cache until they are streamed into `W`.
const STREAM_CHUNK: usize = 1024;

/// The floats of a cache line: [`Update::part`] shares out rows of `W` in multiples of
/// it where it can, so that no line of `Wᵀ` is written by two threads.
const LINE_FLOATS: usize = 16;

/// How [`Update::sum_and_step`] writes the new `W`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Write {
    /// Where it is, and the same numbers into the layer's `Wᵀ`: for a thread alone, whose lines
    /// stay in its cache for the next forward pass, or for threads on cores near each other,
    /// which take the other's new rows from its cache cheaply.
    InPlace,
    /// Stepped in a buffer and streamed into `W` ([`stream`]), and the layer's `Wᵀ` left out of
    /// date (each forward product copies `W`, transposed, into a buffer of its own): for threads
    /// on cores far apart, where a store into a line the other core holds waits for it. Each new
    /// row goes to memory without first taking its lines from their caches.
    Streamed,
}

/// A dense layer's parameters and the gradients of the last backward pass (of the data-parallel
/// step: its shards' gradients summed, [`crate::engine::data_parallel::Shards::update`]).
#[derive(Debug, Clone)]
pub struct Dense {
    /// Weights, `(O, I)`, row-major; read with [`Dense::w`], changed through [`Dense::w_mut`],
    /// [`Dense::params_and_grads`] or [`Dense::update_parts`].
    w: Array2<f32>,
    /// `Wᵀ`, `(I, O)`, row-major: the forward's right operand, if `wt_current`.
    wt: Array2<f32>,
    /// Whether `wt` holds `Wᵀ`: set where it is written ([`Dense::from_parts`],
    /// [`Dense::update_parts`] for [`Write::InPlace`]), cleared where `W` changes without it.
    wt_current: bool,
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
        let w = aligned::copy_of(&w);
        let (dw, db) = (aligned::zeros(w.dim()), Array1::zeros(b.raw_dim()));
        let wt = aligned::zeros((w.ncols(), w.nrows()));
        let mut dense = Dense { w, wt, wt_current: false, b, dw, db };
        dense.write_wt();
        dense
    }

    /// `wt ← Wᵀ`, unless it holds it already.
    fn write_wt(&mut self) {
        if !self.wt_current {
            copy_into(self.w.t(), self.wt.view_mut());
            self.wt_current = true;
        }
    }

    /// The forward's right operand `Wᵀ`, `(I, O)`: the layer's copy, or `W` read with its
    /// strides swapped if the copy is out of date.
    fn w_t(&self) -> ArrayView2<'_, f32> {
        if self.wt_current { self.wt.view() } else { self.w.t() }
    }

    /// The weights `W`, `(O, I)`.
    pub fn w(&self) -> ArrayView2<'_, f32> {
        self.w.view()
    }

    /// The weights `W`, `(O, I)`, to change. The layer's `Wᵀ` is then out of date: the forward
    /// reads `W` until [`Dense::update_parts`] writes it again.
    pub fn w_mut(&mut self) -> ArrayViewMut2<'_, f32> {
        self.wt_current = false;
        self.w.view_mut()
    }

    /// The weights and biases, each with its gradient, to change. The layer's `Wᵀ` is then out
    /// of date, as after [`Dense::w_mut`].
    pub fn params_and_grads(&mut self) -> [(&mut [f32], &[f32]); 2] {
        self.wt_current = false;
        let contiguous = "contiguous";
        [
            (self.w.as_slice_mut().expect(contiguous), self.dw.as_slice().expect(contiguous)),
            (self.b.as_slice_mut().expect(contiguous), self.db.as_slice().expect(contiguous)),
        ]
    }

    /// `I`, the number of inputs.
    pub fn inputs(&self) -> usize {
        self.w.ncols()
    }

    /// `O`, the number of outputs.
    pub fn outputs(&self) -> usize {
        self.w.nrows()
    }

    /// Forward: `A = f(A_prev·Wᵀ + b)`, or the pre-activation `Z` when `activation` is `None`,
    /// the rows split over the rayon pool.
    ///
    /// Shapes: `a_prev` (B, I) → `out` (B, O). Bias and activation are fused into the product.
    pub fn forward(&self, a_prev: ArrayView2<f32>, out: ArrayViewMut2<f32>, activation: Option<Activation>) {
        debug_assert_eq!((a_prev.ncols(), out.dim()), (self.inputs(), (a_prev.nrows(), self.outputs())));
        let finish = Finish::Bias(self.b.as_slice().expect("biases are contiguous"), activation);
        par_matmul_with(a_prev, self.w_t(), out, finish);
    }

    /// Forward on the calling thread, for a thread that runs a shard of the batch from start to
    /// end ([`crate::engine::data_parallel`]): `A = f(A_prev·Wᵀ + b)`, or `Z` when `activation`
    /// is `None`, bias and activation fused into the product as in [`Dense::forward`].
    ///
    /// Shapes: `a_prev` (R, I) → `out` (R, O), `R` the shard's rows.
    pub fn forward_shard(
        &self,
        a_prev: ArrayView2<f32>,
        out: ArrayViewMut2<f32>,
        activation: Option<Activation>,
    ) {
        let finish = Finish::Bias(self.b.as_slice().expect("biases are contiguous"), activation);
        matmul_finish(a_prev, self.w_t(), out, finish);
    }

    /// Backward: `dW = δᵀ·A_prev` and `db = Σ_rows δ` over the rows, into the layer's own
    /// gradients; with `prev`, also `δ_prev = (δ·W) ⊙ f′(A_prev)`, `f′` read off the previous
    /// layer's output ([`Dense::backward_shard`]).
    ///
    /// Shapes: `a_prev` (B, I), `delta` (B, O) → `dw` (O, I), `db` (O,), `delta_prev` (B, I).
    pub fn backward(
        &mut self,
        a_prev: ArrayView2<f32>,
        delta: ArrayView2<f32>,
        prev: Option<(Activation, ArrayViewMut2<f32>)>,
    ) {
        let Dense { w, dw, db, .. } = self;
        let db = db.as_slice_mut().expect("contiguous");
        backward(w.view(), a_prev, delta, (dw.view_mut(), db), prev);
    }

    /// Backward on the calling thread for a shard of the batch ([`crate::engine::data_parallel`]),
    /// all of it but `dW_s`: `db_s = Σ_rows δ` over the shard's rows into a gradient of the
    /// caller's, and with `prev`, `δ_prev = (δ·W) ⊙ f′(A_prev)`, read off the previous layer's
    /// output `a_prev` (the `⊙ f′` is the product's finish, [`Finish::Slope`]). `dW_s = δᵀ·A_prev`
    /// is left to [`weight_gradient`], in pieces that any thread may take. The layer is not
    /// changed: [`Update::sum_and_step`] adds the shards' gradients and steps.
    ///
    /// Shapes: `a_prev` (R, I), `delta` (R, O) → `db` (O,), `delta_prev` (R, I).
    pub fn backward_shard(
        &self,
        a_prev: ArrayView2<f32>,
        delta: ArrayView2<f32>,
        db: &mut [f32],
        prev: Option<(Activation, ArrayViewMut2<f32>)>,
    ) {
        bias_and_delta(self.w.view(), a_prev, delta, db, prev);
    }

    /// Exchanges the layer's gradients `dW`, `db` with `dw`, `db` of the same shapes: the
    /// data-parallel step hands the layer its first shard's gradients this way, and the update
    /// adds the other shards' to them, one array fewer to read and write than summing them into
    /// a third.
    pub fn swap_gradients(&mut self, dw: &mut Array2<f32>, db: &mut Array1<f32>) {
        assert_eq!((dw.dim(), db.len()), (self.dw.dim(), self.db.len()), "gradients of the layer's shapes");
        std::mem::swap(&mut self.dw, dw);
        std::mem::swap(&mut self.db, db);
    }

    /// What Adam's step on this layer writes, for a team of threads that each take some rows of
    /// `W` ([`Update::sum_and_step`]), writing `W` as `write` says: the parameters (and `Wᵀ`, brought up
    /// to date first, for [`Write::InPlace`]), their gradients and the moments `[W's, b's]`.
    pub fn update_parts(&mut self, [wm, bm]: [Moments; 2], write: Write) -> Update {
        match write {
            Write::InPlace => self.write_wt(),
            Write::Streamed => self.wt_current = false,
        }
        let (w, b) = (self.w.len(), self.b.len());
        assert_eq!(
            [wm.m.len(), wm.v.len(), bm.m.len(), bm.v.len()],
            [w, w, b, b],
            "moments of W's and b's sizes"
        );
        assert_eq!(self.dw.dim(), self.w.dim(), "dW of W's shape");
        assert_eq!((b, self.db.len()), (self.outputs(), self.outputs()), "b and db of W's rows");
        let contiguous = "contiguous";
        Update {
            shape: (self.outputs(), self.inputs()),
            w: self.w.as_mut_ptr(),
            wt: self.wt.as_mut_ptr(),
            write,
            b: self.b.as_slice_mut().expect(contiguous).as_mut_ptr(),
            dw: self.dw.as_slice_mut().expect(contiguous).as_mut_ptr(),
            db: self.db.as_slice_mut().expect(contiguous).as_mut_ptr(),
            moments: [wm.m.as_mut_ptr(), wm.v.as_mut_ptr(), bm.m.as_mut_ptr(), bm.v.as_mut_ptr()],
        }
    }
}

/// Layers are equal if their parameters and gradients are: `Wᵀ` is a copy of `W`, whether
/// current or not.
impl PartialEq for Dense {
    fn eq(&self, other: &Dense) -> bool {
        (&self.w, &self.b, &self.dw, &self.db) == (&other.w, &other.b, &other.dw, &other.db)
    }
}

/// [`Dense::backward`], for weights `w` `(O, I)`.
fn backward(
    w: ArrayView2<f32>,
    a_prev: ArrayView2<f32>,
    delta: ArrayView2<f32>,
    (dw, db): (ArrayViewMut2<f32>, &mut [f32]),
    prev: Option<(Activation, ArrayViewMut2<f32>)>,
) {
    matmul(delta.t(), a_prev, dw);
    bias_and_delta(w, a_prev, delta, db, prev);
}

/// A piece of a weight gradient `dW` (O, I): some of its rows (outputs), or some of its columns
/// (inputs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// Rows `r` of `dW`: `δ[:, r]ᵀ·A_prev`.
    Rows(Range<usize>),
    /// Columns `c` of `dW`: `δᵀ·A_prev[:, c]`.
    Columns(Range<usize>),
}

/// `dW = δᵀ·A_prev`, summed over the batch's rows, or a piece of it: rows `r` of `dW` are
/// `δ[:, r]ᵀ·A_prev`, columns `c` are `δᵀ·A_prev[:, c]`. Every number of `dW` is summed over the
/// rows in the same order whichever piece holds it, so the pieces make the whole product's bits
/// (`tests/data_parallel.rs`).
///
/// Shapes: `delta` (B, O), `a_prev` (B, I) → `dw` (|r|, I) for `Rows(r)`, (O, |c|) for
/// `Columns(c)`.
pub fn weight_gradient(
    delta: ArrayView2<f32>,
    a_prev: ArrayView2<f32>,
    dw: ArrayViewMut2<f32>,
    piece: &Piece,
) {
    match piece {
        Piece::Rows(r) => matmul(delta.slice(s![.., r.clone()]).t(), a_prev, dw),
        Piece::Columns(c) => matmul(delta.t(), a_prev.slice(s![.., c.clone()]), dw),
    }
}

/// `db = Σ_rows δ`, and with `prev`, `δ_prev = (δ·W) ⊙ f′(A_prev)`: the backward pass of weights
/// `w` `(O, I)` but for `dW` ([`weight_gradient`]).
fn bias_and_delta(
    w: ArrayView2<f32>,
    a_prev: ArrayView2<f32>,
    delta: ArrayView2<f32>,
    db: &mut [f32],
    prev: Option<(Activation, ArrayViewMut2<f32>)>,
) {
    column_sums(delta, 0, db);
    if let Some((f, delta_prev)) = prev {
        matmul_finish(delta, w, delta_prev, Finish::Slope(f, a_prev));
    }
}

/// A dense layer's parameters, gradients and Adam's moments, lent to a team of threads
/// for one step of Adam, each thread on rows of its own ([`Dense::update_parts`]).
#[derive(Debug)]
pub struct Update {
    /// `(O, I)`.
    shape: (usize, usize),
    w: *mut f32,
    /// `Wᵀ`, `(I, O)`, written for [`Write::InPlace`].
    wt: *mut f32,
    /// How the new `W` is written.
    write: Write,
    b: *mut f32,
    dw: *mut f32,
    db: *mut f32,
    /// `W`'s `m` and `v`, then `b`'s.
    moments: [*mut f32; 4],
}

// SAFETY: threads write through it to disjoint rows only (the contract of `Update::sum_and_step`).
unsafe impl Sync for Update {}
// SAFETY: as above.
unsafe impl Send for Update {}

/// [`Step::update`] of weights `w` that other threads read: the new weights are worked out in
/// a buffer on the stack, [`STREAM_CHUNK`] at a time, and streamed into `w` ([`stream::copy`]).
///
/// # Safety
/// The calling thread runs [`stream::fence`] before any other access to `w`.
unsafe fn update_streamed(step: Step, w: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32]) {
    let mut next = [0.0; STREAM_CHUNK];
    let (gs, ms, vs) = (g.chunks(STREAM_CHUNK), m.chunks_mut(STREAM_CHUNK), v.chunks_mut(STREAM_CHUNK));
    for (((w, g), m), v) in w.chunks_mut(STREAM_CHUNK).zip(gs).zip(ms).zip(vs) {
        let next = &mut next[..w.len()];
        next.copy_from_slice(w);
        step.update(next, g, m, v);
        // SAFETY: forwarded.
        unsafe { stream::copy(w, next) };
    }
}

/// Rows of a dense layer: of `W` and its gradient and moments (n, I), of `b` and its (n,).
struct Rows<'a> {
    w: &'a mut [f32],
    dw: &'a mut [f32],
    w_m: &'a mut [f32],
    w_v: &'a mut [f32],
    b: &'a mut [f32],
    db: &'a mut [f32],
    b_m: &'a mut [f32],
    b_v: &'a mut [f32],
}

impl Update {
    /// `O`, the layer's outputs: the rows of `W` to share out.
    pub fn outputs(&self) -> usize {
        self.shape.0
    }

    /// The rows of `W` that member `member` of a team of `team` threads updates: a `team`-th of
    /// them, in whole lines of `Wᵀ`'s rows where the layer has enough.
    pub fn part(&self, member: usize, team: usize) -> Range<usize> {
        let outputs = self.shape.0;
        let bound = |t: usize| match t {
            t if t == team => outputs,
            t => outputs * t / team / LINE_FLOATS * LINE_FLOATS,
        };
        bound(member)..bound(member + 1)
    }

    /// Adam's step on the layer's rows `rows` (outputs) from the shards' gradients: the layer's
    /// `dw` and `db` hold the first shard's ([`Dense::swap_gradients`]), and `shard(s)` lends
    /// shard `s`'s `(dW_s, db_s)` for `1 ≤ s < shards` (never `shard(0)`), added to them in
    /// order (`dW = dW₀ + dW₁ + …`); then those rows of `W` and `b`, written as
    /// [`Dense::update_parts`] was told (with [`Write::InPlace`], the same columns of `Wᵀ` too).
    /// Done in blocks of rows that stay in cache.
    ///
    /// Shapes: each `dW_s` (O, I), each `db_s` (O,).
    ///
    /// # Safety
    /// The layer and moments given to [`Dense::update_parts`] are not used otherwise until every
    /// call on this `Update` has returned, and calls that run at once are given disjoint rows.
    pub unsafe fn sum_and_step<'g, G>(&self, rows: Range<usize>, shards: usize, shard: G, step: Step)
    where
        G: Fn(usize) -> (ArrayView2<'g, f32>, &'g [f32]),
    {
        let (outputs, inputs) = self.shape;
        assert!(rows.end <= outputs, "rows of the layer");
        // Before any thread reads the streamed `W`, however this ends (update_streamed).
        let _fence = (self.write == Write::Streamed).then_some(stream::Fence);
        let block = (UPDATE_BLOCK / inputs).max(1);
        for first in rows.clone().step_by(block) {
            let n = block.min(rows.end - first);
            // SAFETY: forwarded; rows `first..first + n` are inside `rows`.
            let Rows { w, dw, w_m, w_v, b, db, b_m, b_v } = unsafe { self.block(first, n) };
            for s in 1..shards {
                let (dw_s, db_s) = shard(s);
                let dw_s = &dw_s.to_slice().expect("contiguous")[first * inputs..(first + n) * inputs];
                for_this_cpu!(dw.iter_mut().zip(dw_s).for_each(|(d, g)| *d += g));
                db.iter_mut().zip(&db_s[first..first + n]).for_each(|(d, g)| *d += g);
            }
            match self.write {
                Write::InPlace => {
                    step.update(w, dw, w_m, w_v);
                    // SAFETY: forwarded; `w` holds the rows `first..first + n`.
                    unsafe { self.write_wt(first, w) };
                }
                // SAFETY: `_fence` runs the fence before anything else reads or writes `w`.
                Write::Streamed => unsafe { update_streamed(step, w, dw, w_m, w_v) },
            }
            step.update(b, db, b_m, b_v);
        }
    }

    /// Columns `first..first + n` of `Wᵀ` ← `rows`ᵀ, the new rows `first..first + n` of `W`,
    /// `(n, I)`.
    ///
    /// # Safety
    /// As [`Update::sum_and_step`]'s, for rows `first..first + n` of the layer.
    unsafe fn write_wt(&self, first: usize, rows: &[f32]) {
        let (outputs, inputs) = self.shape;
        let rows = ArrayView2::from_shape((rows.len() / inputs, inputs), rows).expect("whole rows of W");
        // SAFETY: the columns lie inside the (I, O) `Wᵀ` that `update_parts` lent, and are the
        // caller's alone, as its rows of `W` are.
        let wt = unsafe {
            ArrayViewMut2::from_shape_ptr((inputs, rows.nrows()).strides((outputs, 1)), self.wt.add(first))
        };
        copy_into(rows.t(), wt);
    }

    /// Rows `first..first + n` of the layer, as slices.
    ///
    /// # Safety
    /// As [`Update::sum_and_step`]'s, for these rows, which must be the layer's (`first + n ≤ O`).
    unsafe fn block(&self, first: usize, n: usize) -> Rows<'_> {
        let inputs = self.shape.1;
        let [w_m, w_v, b_m, b_v] = self.moments;
        // SAFETY: the rows lie inside the layer's (O, I) and (O,) arrays and its moments, which
        // `update_parts` checked; no other thread touches them and nothing else uses the layer
        // (the caller's contract).
        let rows =
            |p: *mut f32, len: usize| unsafe { std::slice::from_raw_parts_mut(p.add(first * len), n * len) };
        Rows {
            w: rows(self.w, inputs),
            dw: rows(self.dw, inputs),
            w_m: rows(w_m, inputs),
            w_v: rows(w_v, inputs),
            b: rows(self.b, 1),
            db: rows(self.db, 1),
            b_m: rows(b_m, 1),
            b_v: rows(b_v, 1),
        }
    }
}
