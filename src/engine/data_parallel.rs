//! The training step of a dense model, data-parallel: the batch is cut into shards of
//! [`shard_rows`] rows; each shard's rows are written (the trainer corrupts them there), and its
//! forward pass, loss and backward pass run, start to end on one thread, into gradients of the
//! shard's own ([`Shards::passes`]). Only its products `dW_s = δ_sᵀ·A_s` ([`weight_gradient`])
//! are left to the end, cut into [`pieces`] that a thread done with its own shards takes too.
//! Then every thread adds the shards' gradients for its part of each layer's rows, in shard
//! order, and takes Adam's step there ([`Shards::update`]; the sum and Adam in
//! [`Update::sum_and_step`], `Wᵀ` in `Update::write_wt`).
//!
//! Why the pieces: a shard is fixed by the batch size (for the bits), so when the host slows
//! one core (an Intel Xeon model 207's VM ran one of its two about a fifth slower through most
//! steps), the other would wait for it at the end of every step's passes. The `dW_s` are the
//! products that no later product needs (6 of a shard's 17, 39% of its multiply-adds in the
//! notebook's model), so they can wait for whichever thread is free. The cost: another core
//! reads some of this shard's `δ` and `A`, once. The sums, and so the bits, are unchanged.
//!
//! Why not split each product over the threads instead: a step of the notebook's model has
//! seventeen products, and a pool that shares each of them meets at a barrier after each (about
//! twenty a step, with the loss and the updates), where a thread that waits can lose its core
//! to anything else that runs, and where the rows one core wrote are read by the other. Here a
//! step is two parts for a [`Team`] whose threads wait between them without giving their
//! cores away (every [`PROBE_EVERY`]th step a third, the probe below), and a shard's images and
//! activations stay on the core that made them but for the pieces of `dW_s` another thread
//! takes; what crosses is those, the shards' gradients, once, in the update, and the weights it
//! wrote. A step of a batch of 256 on two threads, shards `s0` and `s1` of 128 rows:
//!
//! ```text
//!           part 1: the passes (Shards::passes)              part 2: the update (Shards::update)
//! thread 0  s0: corrupt, forward, loss, δ and db_s;          rows 0..O/2 of each layer:
//!           dW_s0 in pieces, then pieces of s1's left        dW = dW_s0 + dW_s1, Adam's step
//! thread 1  s1: corrupt, forward, loss, δ and db_s;          rows O/2..O of each layer:
//!           dW_s1 in pieces, then pieces of s0's left        the same
//! ```
//!
//! (`O/2`: in whole cache lines of `Wᵀ`, [`Update::part`].) With three threads and two shards,
//! the third has no shard of its own and takes pieces as the shards' backward passes end.
//!
//! How the update writes them depends on how far apart the cores are, which the team measures
//! every [`PROBE_EVERY`] steps ([`Team::round_trip`]). When the cores are near (sharing a cache),
//! the update writes `W` in place, and each layer's `Wᵀ` beside it, which every forward product
//! reads as it is: on a Zen 4, 2.8% off an epoch against each product copying `W` into a `Wᵀ` of
//! its own ([`crate::engine::gemm::matmul`]). Far apart (a Zen 4 VM's cores at times, an Intel Xeon
//! model 207's at most probes), `W` is streamed to memory ([`crate::engine::stream`]) and `Wᵀ`
//! left out of date: a store into a line the other core holds waits for it, and taking `W`'s
//! lines back from the other core's cache had been most of the update.
//!
//! The same bits on any number of threads: the shards are fixed by the batch size alone (and each
//! image's noise by its index), every product of a shard, or piece of one, sums in the kernel's
//! order whichever thread runs it ([`crate::engine::kernel`]), the update adds the shards in their
//! order whatever thread computed them and steps each weight alone, and the loss is summed row
//! by row in order. Nor does the probe's choice change a bit: a `Wᵀ` written beside `W` and one
//! copied from it hold the same numbers. The grouping differs from one product over the whole batch,
//! `dW = Σ_s δ_sᵀ·A_s` rather than `δᵀ·A`, so `dW` and `db` are a few units in the last place
//! from the reference engine's (`tests/reference.rs` holds them within a bar).
//!
//! Shapes: a batch of `B` rows makes `⌈B / R⌉` shards of `R` rows (the last may have fewer),
//! where `R` = [`shard_rows`] of the largest batch; layer `l` maps `H_{l−1} → H_l`; `D` pixels an
//! image.

use std::ops::Range;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::*};
use std::time::{Duration, Instant};

use ndarray::{Array1, Array2, ArrayViewMut2, ShapeBuilder, s};

use crate::engine::adam::Adam;
use crate::engine::aligned;
use crate::engine::dense::{Dense, Piece, Update, Write, weight_gradient};
use crate::engine::gemm::MAX_COPY;
use crate::engine::loss::Loss;
use crate::engine::model::{FLOAT, Model};
use crate::engine::team::{SharedSlice, Team, spin_until};

/// The most rows of a shard: a batch of 256 makes two, one for each of two threads. Measured on
/// a 2-core Intel Xeon (model 167), two threads, two epochs of the notebook's model: shards of 64
/// rows took 0.66 s of passes and 0.13 s of update, shards of 128 0.62 + 0.12 s
/// (smaller products and one more set of gradients to add). More than two threads have no more
/// shards to share at batch 256; a larger batch makes more.
pub const SHARD_ROWS: usize = 128;

/// Steps between two measurements of how far apart the team's cores are
/// ([`Team::round_trip`]), which choose how the update writes `W` ([`Shards::update`]): the host
/// may move them while a run trains (on a Zen 4 VM, every few minutes).
pub const PROBE_EVERY: usize = 64;

/// The round trips of a measurement; its median is taken.
const TRIPS: usize = 15;

/// A round trip of a cache line between the team's first two cores longer than this says they
/// are far apart: on a 2-core Zen 4 VM, ~90–110 ns near, ~500 ns far (a C ping-pong); on a 2-core
/// Intel Xeon (model 207) this probe reads 325–375 ns, and there the update in place took 2.5
/// times as long as streamed (`cargo bench`; whole epochs 3% longer).
pub const FAR: Duration = Duration::from_nanos(250);

/// The longest side of a piece of a shard's `dW_s` ([`pieces`]): 96 = 8 of the kernel's tiles of
/// 12 rows = 3 of its tiles of 32 columns, so that no piece splits a tile.
pub const PIECE: usize = 96;

/// The pieces that a layer's `dW` of `(O, I)` is cut into, for the threads to share: blocks of
/// [`PIECE`] rows if it has at least as many rows as columns, else of [`PIECE`] columns. The
/// first and last layers of the notebook's model make 9 pieces each (784 = 8·96 + 16).
///
/// ```
/// use dae::engine::data_parallel::pieces;
/// use dae::engine::dense::Piece;
/// assert_eq!(pieces(200, 64).collect::<Vec<_>>(), [Piece::Rows(0..96), Piece::Rows(96..192), Piece::Rows(192..200)]);
/// assert_eq!(pieces(32, 64).collect::<Vec<_>>(), [Piece::Columns(0..64)]);
/// ```
pub fn pieces(outputs: usize, inputs: usize) -> impl Iterator<Item = Piece> {
    let long = outputs.max(inputs);
    (0..long).step_by(PIECE).map(move |first| {
        let block = first..long.min(first + PIECE);
        if outputs >= inputs { Piece::Rows(block) } else { Piece::Columns(block) }
    })
}

/// The fewest rows [`shard_rows`] gives a shard, unless the whole batch has fewer: a batch of
/// more than 16 rows makes two shards or more.
pub const MIN_SHARD_ROWS: usize = 16;

/// The rows of each shard for batches of up to `capacity` rows: half the batch, but no more than
/// [`SHARD_ROWS`] and no fewer than [`MIN_SHARD_ROWS`] (or the whole batch, if it is smaller).
/// A function of the batch size alone, so the shards, and the bits, are the same for any number
/// of threads; and two threads share any batch of more than 16 rows (with shards of 128 rows, a
/// batch of 128 was one shard on one thread: 0.72 s an epoch against 0.42 s in two shards of 64,
/// Intel Xeon model 167). At least 1, so that an empty batch makes no shards.
///
/// ```
/// use dae::engine::data_parallel::shard_rows;
/// assert_eq!([shard_rows(1024), shard_rows(256), shard_rows(100), shard_rows(20), shard_rows(8)], [128, 128, 50, 16, 8]);
/// ```
pub fn shard_rows(capacity: usize) -> usize {
    capacity.div_ceil(2).clamp(MIN_SHARD_ROWS, SHARD_ROWS).min(capacity).max(1)
}

/// The buffers of a data-parallel step, one shard per [`shard_rows`] rows of the largest batch,
/// and the team of threads that runs it; made once.
#[derive(Debug)]
pub struct Shards {
    shards: Vec<Shard>,
    /// The rows of each shard, [`shard_rows`] of the largest batch.
    rows: usize,
    team: Team,
    /// Each layer's [`Update`] during a step's update; kept for its room.
    updates: Vec<Update>,
    /// How the update writes `W`, as last chosen; and the steps since the choice.
    write: Write,
    since: usize,
    /// A way to write `W` fixed by [`Shards::fix_write`], instead of the choice.
    fixed: Option<Write>,
    /// The pieces of every layer's `dW_s`, as `(layer, piece)`, in the backward pass's order (the
    /// last layer's first), so that the pieces left for another thread are the first layer's.
    pieces: Vec<(usize, Piece)>,
    /// How far each shard's passes are, for the team to share its pieces.
    claims: Vec<Claims>,
    /// Each shard's `dW_s` of each layer, lent to the team during the passes (shard `s`, layer
    /// `l` at `s·L + l`).
    lent: Vec<Lent>,
    /// The passes run so far.
    round: usize,
    /// The time members spent waiting for another's `δ`s, to take pieces of its `dW_s`.
    waited: Duration,
}

/// How the team shares a shard's pieces of `dW_s` in the passes. Two cache lines of its own (an
/// Intel core fetches lines in pairs): each shard's are written while another shard's are read.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Claims {
    /// The number of the last passes ([`Shards::round`]) in which the shard's owner was done with
    /// its `δ`s (or gave up on them, panicking): from then on any member may take its pieces.
    ready: AtomicUsize,
    /// The next of its pieces to take.
    next: AtomicUsize,
}

/// A member's shards in passes number `round`, every `team`-th from `member` on: if the member
/// panics, it marks them all ready when dropped, so that no other member waits for them forever
/// (the panic then reaches the caller of [`Team::run`]).
struct Owned<'a> {
    claims: &'a [Claims],
    member: usize,
    team: usize,
    round: usize,
}

impl Drop for Owned<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for claims in self.claims.iter().skip(self.member).step_by(self.team) {
                claims.ready.store(self.round, Release);
            }
        }
    }
}

/// A shard's `dW_s` of one layer, `(O, I)`, lent to the team for the passes: its pieces are
/// written at once by whichever members take them.
#[derive(Debug)]
struct Lent {
    dw: *mut f32,
    shape: (usize, usize),
}

// SAFETY: members write through it to pieces each has taken alone (the contract of `Lent::piece`).
unsafe impl Send for Lent {}
// SAFETY: as above.
unsafe impl Sync for Lent {}

impl Lent {
    fn new(dw: &mut Array2<f32>) -> Lent {
        assert!(dw.is_standard_layout(), "a row-major dW");
        Lent { dw: dw.as_mut_ptr(), shape: dw.dim() }
    }

    /// The numbers of `piece` of the matrix, (|r|, I) or (O, |c|).
    ///
    /// # Safety
    /// The matrix it was made from is alive and used by nothing else, and no other view of
    /// these numbers lives while this one does.
    unsafe fn piece(&self, piece: &Piece) -> ArrayViewMut2<'_, f32> {
        let (outputs, inputs) = self.shape;
        let (rows, columns) = match piece {
            Piece::Rows(r) => (r.clone(), 0..inputs),
            Piece::Columns(c) => (0..outputs, c.clone()),
        };
        assert!(rows.end <= outputs && columns.end <= inputs, "a piece of the matrix");
        let shape = (rows.len(), columns.len()).strides((inputs, 1));
        // SAFETY: the piece lies inside the (O, I) row-major matrix, alive and the caller's alone.
        unsafe { ArrayViewMut2::from_shape_ptr(shape, self.dw.add(rows.start * inputs + columns.start)) }
    }
}

/// One shard's buffers: its rows of the batch, of each layer's output and `δ`, its rows'
/// losses, and the gradients of every layer's parameters over its rows.
#[derive(Debug)]
struct Shard {
    /// The corrupted images, the input `x̃`, (R, D).
    input: Array2<f32>,
    /// The clean images, the target `x`, (R, D).
    target: Array2<f32>,
    /// Layer `l`'s activated output, (R, H_l); the logits `z` for the last layer.
    outputs: Vec<Array2<f32>>,
    /// `δ_l = ∂L/∂Z_l`, (R, H_l).
    deltas: Vec<Array2<f32>>,
    /// The loss summed over each row.
    row_loss: Vec<f32>,
    /// `dW_s` of each layer, (H_l, H_{l−1}), written in pieces ([`pieces`]) by whichever
    /// members take them. The first shard's become the layers' in the update
    /// ([`Dense::swap_gradients`]), and it gets the layers' previous ones, overwritten by its
    /// next passes' pieces.
    dw: Vec<Array2<f32>>,
    /// `db_s` of each layer, (H_l,).
    db: Vec<Array1<f32>>,
}

impl Shards {
    /// The buffers for `model`, whose layers must all be dense, and batches of up to `capacity`
    /// rows, with a team of as many threads as the current rayon pool has.
    pub fn new(model: &Model, capacity: usize) -> Shards {
        let layers: Vec<&Dense> = dense_layers(model).collect();
        let (rows, d) = (shard_rows(capacity), model.layers[0].inputs());
        let buffers = || layers.iter().map(|d| aligned::zeros((rows, d.outputs()))).collect();
        let shard = || Shard {
            input: aligned::zeros((rows, d)),
            target: aligned::zeros((rows, d)),
            outputs: buffers(),
            deltas: buffers(),
            row_loss: vec![0.0; rows],
            dw: layers.iter().map(|d| aligned::zeros(d.w().dim())).collect(),
            db: layers.iter().map(|d| Array1::zeros(d.b.raw_dim())).collect(),
        };
        let count = capacity.div_ceil(rows);
        let shards = (0..count).map(|_| shard()).collect();
        let team = Team::new(rayon::current_num_threads());
        let updates = Vec::with_capacity(layers.len());
        let each = layers.iter().enumerate().rev();
        let pieces = each.flat_map(|(l, d)| pieces(d.outputs(), d.inputs()).map(move |p| (l, p))).collect();
        let claims = (0..count).map(|_| Claims::default()).collect();
        let lent = Vec::with_capacity(count * layers.len());
        let (write, since, fixed, round, waited) = (Write::InPlace, 0, None, 0, Duration::ZERO);
        Shards { shards, rows, team, updates, write, since, fixed, pieces, claims, lent, round, waited }
    }

    /// Has the update write `W` as `write` says, or (`None`) as the cores' distance chooses
    /// ([`Shards::update`]): for tests and benchmarks of either way.
    pub fn fix_write(&mut self, write: Option<Write>) {
        self.fixed = write;
    }

    /// How the next update writes `W`: [`Write::Streamed`] if the team's cores are far apart,
    /// measured every [`PROBE_EVERY`] steps ([`Team::round_trip`]), else [`Write::InPlace`].
    fn choose_write(&mut self) -> Write {
        if let Some(write) = self.fixed {
            return write;
        }
        if self.since == 0 {
            let far = self.team.round_trip(TRIPS).is_some_and(|trip| trip > FAR);
            self.write = if far { Write::Streamed } else { Write::InPlace };
        }
        self.since = (self.since + 1) % PROBE_EVERY;
        self.write
    }

    /// The bytes [`Shards::new`] allocates for a dense model of these `widths` (input first) and
    /// batches of `capacity` rows, with the copy of the largest `Wᵀ` each thread of the team
    /// makes for its products (see [`crate::engine::gemm::matmul`]), counted without allocating
    /// any.
    pub fn bytes(widths: &[usize], capacity: usize) -> u64 {
        let per_row: u64 = 2 * widths.iter().map(|&w| w as u64).sum::<u64>() + 1;
        let gradients: u64 = widths.windows(2).map(|w| (w[0] as u64 + 1) * w[1] as u64).sum();
        let rows = shard_rows(capacity);
        let shards = capacity.div_ceil(rows) as u64;
        let largest = widths.windows(2).map(|w| (w[0] * w[1]).min(MAX_COPY)).max().unwrap_or(0);
        let copies = (rayon::current_num_threads() - 1) as u64 * largest as u64;
        // Each shard's input, target, outputs, deltas and `dW`s start on a line, as each copy.
        let layers = widths.len().saturating_sub(1) as u64;
        let buffers = shards * (2 + 3 * layers) + (rayon::current_num_threads() - 1) as u64;
        let aligned = buffers * aligned::SLACK_BYTES;
        FLOAT * (shards * (rows as u64 * per_row + gradients) + copies) + aligned
    }

    /// The threads of its team.
    pub fn threads(&self) -> usize {
        self.team.size()
    }

    /// The time the team's threads have spent waiting for one another so far, summed over them:
    /// in every run of the team ([`Team::waited`]), the passes, the updates (with the probe every
    /// [`PROBE_EVERY`] steps) and validation's passes; and inside the passes, for another
    /// member's `δ`s, to take pieces of its `dW_s`.
    pub fn waited(&self) -> Duration {
        self.team.waited() + self.waited
    }

    /// The shards a batch of `rows` rows makes.
    pub fn count(&self, rows: usize) -> usize {
        rows.div_ceil(self.rows)
    }

    /// The first part of a step on a batch of `rows` rows, each shard on one thread of the team:
    /// `batch(rows, input, target)` writes the batch's rows `rows` (the shard's) into the shard's
    /// `input` and `target` (R, D); then the shard's forward pass, loss and backward pass, into its
    /// own buffers and gradients. Returns the loss summed over the batch's `B·D` entries, row by
    /// row in order.
    ///
    /// The products `dW_s = δᵀ·A` are left to the end, cut into [`pieces`], which any member may
    /// take once the shard's `δ`s are written: its own thread, and then a thread done with its
    /// own shards, so that neither waits long for a core the host has slowed. Each piece is the
    /// same product whoever takes it, so the bits stay those of any number of threads.
    pub fn passes<F>(&mut self, model: &Model, loss: Loss, rows: usize, batch: F) -> f64
    where
        F: Fn(Range<usize>, ArrayViewMut2<f32>, ArrayViewMut2<f32>) + Sync,
    {
        self.each_shard(model, loss, rows, batch, true)
    }

    /// [`Shards::passes`] without the backward pass: the loss of a batch, with every layer's
    /// output left in the shards for [`Shards::outputs`] (validation).
    pub fn forward_loss<F>(&mut self, model: &Model, loss: Loss, rows: usize, batch: F) -> f64
    where
        F: Fn(Range<usize>, ArrayViewMut2<f32>, ArrayViewMut2<f32>) + Sync,
    {
        self.each_shard(model, loss, rows, batch, false)
    }

    /// Each shard's layer outputs (R, H_l) of the last pass over a batch of `rows` rows, and how
    /// many of their rows it filled, shard by shard.
    pub fn outputs(&self, rows: usize) -> impl Iterator<Item = (&[Array2<f32>], usize)> {
        let shards = self.shards[..self.count(rows)].iter().enumerate();
        shards.map(move |(s, shard)| (&shard.outputs[..], self.rows.min(rows - s * self.rows)))
    }

    /// Panics unless `model` is of the shape the shards were made for (else a member would take
    /// a piece of one layer's `dW_s` as another's): each layer's `(H_l, H_{l−1})` that of the
    /// first shard's `dW_s`. Without allocating (a step allocates nothing).
    fn check_model(&self, model: &Model) {
        let Some(shard) = self.shards.first() else { return };
        let shapes = model.layers.iter().map(|l| (l.outputs(), l.inputs()));
        let made_for = shard.dw.iter().map(Array2::dim);
        assert!(shapes.eq(made_for), "a model of widths {:?} in shards made for another", model.widths());
    }

    /// [`Shards::passes`], with the backward pass or without.
    fn each_shard<F>(&mut self, model: &Model, loss: Loss, rows: usize, batch: F, backward: bool) -> f64
    where
        F: Fn(Range<usize>, ArrayViewMut2<f32>, ArrayViewMut2<f32>) + Sync,
    {
        assert!(rows <= self.shards.len() * self.rows, "a batch of {rows} rows in shards made for fewer");
        self.check_model(model);
        // The loss is the mean over the whole batch's B·D pixels, not the shard's: so the sum of
        // the shards' `dW_s` is the batch's gradient (backprop.md §3, §5).
        let (scale, r, count) = (1.0 / (rows * model.layers[0].inputs()) as f32, self.rows, self.count(rows));
        self.round += 1;
        self.lent.clear();
        if backward {
            for (shard, claims) in self.shards[..count].iter_mut().zip(&self.claims) {
                self.lent.extend(shard.dw.iter_mut().map(Lent::new));
                claims.next.store(0, Relaxed);
            }
        }
        let (round, team, layers) = (self.round, self.team.size(), model.layers.len());
        let (claims, pieces, lent) = (&self.claims, &self.pieces, &self.lent);
        let shards = SharedSlice::new(&mut self.shards[..count]);
        let waited = AtomicU64::new(0);
        // The batch's rows in shard `s`.
        let range = |s: usize| s * r..rows.min((s + 1) * r);
        // The pieces of shard `s`'s `dW_s` still left, once its `δ`s are written.
        let take = |s: usize| {
            // SAFETY: its owner is done writing the shard (`ready`), and every member only reads
            // it from now on (the pieces of `dW_s` are written through `lent`).
            let shard = unsafe { &*shards.at(s) };
            let n = range(s).len();
            while let Some((l, piece)) = pieces.get(claims[s].next.fetch_add(1, Relaxed)) {
                let a_prev = if *l == 0 { &shard.input } else { &shard.outputs[l - 1] };
                // SAFETY: the shard's `dW_s` stays lent until `run` returns, and this piece of it
                // is this member's alone: each number of `next` is taken once.
                let dw = unsafe { lent[s * layers + l].piece(piece) };
                weight_gradient(shard.deltas[*l].slice(s![..n, ..]), a_prev.slice(s![..n, ..]), dw, piece);
            }
        };
        self.team.run(&|member| {
            let _owned = Owned { claims: &claims[..count], member, team, round };
            for s in (member..count).step_by(team) {
                // The block ends the `&mut` borrow before the shard is marked ready.
                {
                    // SAFETY: shard `s` is this member's alone (`s mod T`) until it is ready.
                    let shard = unsafe { &mut *shards.at(s) };
                    let n = range(s).len();
                    batch(range(s), shard.input.slice_mut(s![..n, ..]), shard.target.slice_mut(s![..n, ..]));
                    shard.forward_loss(model, loss, n, scale);
                    if backward {
                        shard.backward(model, n);
                    }
                }
                claims[s].ready.store(round, Release);
                if backward {
                    take(s);
                }
            }
            for s in (0..count).filter(|s| backward && s % team != member) {
                let start = Instant::now();
                spin_until(|| claims[s].ready.load(Acquire) == round);
                waited.fetch_add(start.elapsed().as_nanos() as u64, Relaxed);
                take(s);
            }
        });
        self.waited += Duration::from_nanos(waited.into_inner());
        // The pointers are spent: none outlives the borrows they were made from.
        self.lent.clear();
        let row_losses = self.outputs(rows).zip(&self.shards).map(|((_, n), shard)| &shard.row_loss[..n]);
        row_losses.flatten().map(|&v| f64::from(v)).sum()
    }

    /// The second part of a step, on the gradients of the last [`Shards::passes`] over a batch
    /// of `rows` rows: the first shard's gradients become each layer's `dw` and `db` (exchanged,
    /// not copied); each thread of the team takes its part of every layer's rows, adds the other
    /// shards' `dW_s` and `db_s` there in shard order, and takes Adam's step on them
    /// ([`Update::sum_and_step`]). The new `W` and `Wᵀ` are written where they are, unless the team's
    /// cores are far apart: then `W` is streamed and `Wᵀ` left out of date ([`Write`]; whichever, the same
    /// numbers); returns which.
    /// Afterwards each layer's `dw` and `db` hold the batch's gradients.
    /// Once after each [`Shards::passes`]: a second call would add the other shards' gradients
    /// again.
    pub fn update(&mut self, model: &mut Model, adam: &mut Adam, rows: usize) -> Write {
        assert!(rows > 0, "an update after passes over an empty batch");
        self.check_model(model);
        let step = adam.next_step();
        let write = self.choose_write();
        let mut moments = adam.moments();
        self.updates.clear();
        let denses = model.layers.iter_mut().map(|l| l.as_dense_mut().expect("a dense model"));
        let first = &mut self.shards[0];
        for ((dense, dw), db) in denses.zip(&mut first.dw).zip(&mut first.db) {
            // The first shard's gradients become the layer's, to which the others are added.
            dense.swap_gradients(dw, db);
            let pair = [moments.next(), moments.next()].map(|m| m.expect("moments for every tensor"));
            self.updates.push(dense.update_parts(pair, write));
        }
        let shards = &self.shards[..self.count(rows)];
        let (updates, team) = (&self.updates, self.team.size());
        self.team.run(&|member| {
            for (l, update) in updates.iter().enumerate() {
                let shard =
                    |s: usize| (shards[s].dw[l].view(), shards[s].db[l].as_slice().expect("contiguous"));
                // SAFETY: the layers and moments are not touched otherwise until `run` returns,
                // and each member takes its own part of each layer's rows.
                unsafe { update.sum_and_step(update.part(member, team), shards.len(), shard, step) };
            }
        });
        // The pointers are spent: none outlives the borrows they were made from.
        self.updates.clear();
        write
    }
}

impl Shard {
    /// The forward pass of the shard's first `rows` rows of `input`, and the loss against
    /// `target` with `δ_out = scale·∂ℓ/∂z`.
    fn forward_loss(&mut self, model: &Model, loss: Loss, rows: usize, scale: f32) {
        let last = model.layers.len() - 1;
        for (l, dense) in dense_layers(model).enumerate() {
            let (done, rest) = self.outputs.split_at_mut(l);
            let a_prev =
                if l == 0 { self.input.slice(s![..rows, ..]) } else { done[l - 1].slice(s![..rows, ..]) };
            // The output layer's sigmoid is left to the loss, which takes the logits `z` for its
            // stable form (backprop.md §3).
            let activation = (l < last).then_some(model.activations[l]);
            dense.forward_shard(a_prev, rest[0].slice_mut(s![..rows, ..]), activation);
        }
        let (z, y) = (self.outputs[last].slice(s![..rows, ..]), self.target.slice(s![..rows, ..]));
        let delta = self.deltas[last].slice_mut(s![..rows, ..]);
        loss.rows(z, y, scale, delta, &mut self.row_loss[..rows]);
    }

    /// The backward pass of the last [`Shard::forward_loss`], from `δ_out`: writes every layer's
    /// `δ` and the shard's `db_s`, all but the `dW_s` ([`Shards::passes`] takes them in pieces).
    fn backward(&mut self, model: &Model, rows: usize) {
        for (l, dense) in dense_layers(model).enumerate().rev() {
            let (below, here) = self.deltas.split_at_mut(l);
            let a_prev = if l == 0 {
                self.input.slice(s![..rows, ..])
            } else {
                self.outputs[l - 1].slice(s![..rows, ..])
            };
            let prev = (l > 0).then(|| (model.activations[l - 1], below[l - 1].slice_mut(s![..rows, ..])));
            let db = self.db[l].as_slice_mut().expect("contiguous");
            dense.backward_shard(a_prev, here[0].slice(s![..rows, ..]), db, prev);
        }
    }
}

/// The layers of `model`, each a dense one.
fn dense_layers(model: &Model) -> impl DoubleEndedIterator<Item = &Dense> + ExactSizeIterator {
    model.layers.iter().map(|l| l.as_dense().expect("a dense model"))
}
