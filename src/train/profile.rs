//! Where a run's time goes: wall-clock seconds per phase of training, and the matrix products'
//! achieved rate. Collected always (a few clock reads per step); printed with `--profile`.

use std::fmt;
use std::time::{Duration, Instant};

use ndarray::Array2;

use crate::engine::aligned;
use crate::engine::data_parallel::FAR;
use crate::engine::dense::Write;
use crate::engine::gemm::par_matmul;
use crate::engine::layer::Layer;
use crate::engine::model::Model;
use crate::train::EpochStats;

/// The phases of an epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Gathering a batch, scaling it to `[0, 1]` and corrupting it.
    Data,
    /// The passes over the batch, where every product is: forward, loss and backward
    /// (`dW`, `db`, `δ` through each activation). The convolutional model's Adam runs inside
    /// its backward pass, layer by layer, and is counted here too.
    Passes,
    /// Adam's step: for a dense model, after the shards' gradients are added
    /// ([`crate::engine::data_parallel`]); for the reference engine, its `adam::step`.
    Update,
    /// Forward and loss over the corrupted test set.
    Validation,
}

const PHASES: [Phase; 4] = [Phase::Data, Phase::Passes, Phase::Update, Phase::Validation];

/// Seconds spent in each phase, the images trained on, and, for the data-parallel step, how its
/// update wrote the weights and how long its threads waited for one another.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Profile {
    seconds: [f64; 4],
    /// Training images processed.
    pub images: usize,
    /// Steps whose update wrote `W` in place with `Wᵀ` beside it, and steps that streamed it
    /// ([`Write`]; the data-parallel step of a dense model only).
    pub writes: (usize, usize),
    /// Per phase, the data-parallel step's threads' time waiting for one another
    /// ([`crate::engine::team::Team::waited`]) and their time in all, each summed over the
    /// threads, in seconds; and the most threads that ran a phase.
    waits: [(f64, f64); 4],
    threads: usize,
}

impl Profile {
    /// Runs `f`, adding its wall-clock time to `phase`.
    pub fn time<R>(&mut self, phase: Phase, f: impl FnOnce() -> R) -> R {
        let start = Instant::now();
        let result = f();
        self.add(phase, start.elapsed());
        result
    }

    /// Adds `elapsed` to `phase`.
    pub fn add(&mut self, phase: Phase, elapsed: Duration) {
        self.seconds[phase as usize] += elapsed.as_secs_f64();
    }

    /// Adds to `phase` a piece of work that kept `threads` threads for `elapsed`, during which
    /// they waited `waited` in all for one another.
    pub fn add_wait(&mut self, phase: Phase, waited: Duration, threads: usize, elapsed: Duration) {
        let wait = &mut self.waits[phase as usize];
        wait.0 += waited.as_secs_f64();
        wait.1 += threads as f64 * elapsed.as_secs_f64();
        self.threads = self.threads.max(threads);
    }

    /// The share of the threads' time in `phase` that they spent waiting for one another, if
    /// more than one ran it: their waits ([`crate::engine::team::Team::waited`]) over the threads
    /// times the phase's wall-clock time. A thread left without a shard (a batch of fewer) waits;
    /// the update's share includes the probe of the cores' distance every few dozen steps.
    pub fn waiting(&self, phase: Phase) -> Option<f64> {
        let (waited, spent) = self.waits[phase as usize];
        (self.threads > 1 && spent > 0.0).then(|| waited / spent)
    }

    /// Counts a step whose update wrote `W` as `write` says.
    pub fn count(&mut self, write: Write) {
        match write {
            Write::InPlace => self.writes.0 += 1,
            Write::Streamed => self.writes.1 += 1,
        }
    }

    /// Seconds spent in `phase`.
    pub fn seconds(&self, phase: Phase) -> f64 {
        self.seconds[phase as usize]
    }

    /// Seconds spent in all phases.
    pub fn total(&self) -> f64 {
        self.seconds.iter().sum()
    }

    /// A table of the phases, with the forward and backward passes' achieved GFLOP/s for
    /// `model`, set against `kernel_gflops`, the kernel's rate on the same threads.
    pub fn report(&self, model: &Model, kernel_gflops: f64) -> Report<'_> {
        let flops_per_image = training_flops_per_image(model);
        Report { profile: self, flops_per_image, kernel_gflops, floor: None }
    }
}

/// An epoch's matrix products and the time they need at the kernel's rate: the floor no
/// epoch can go below without a faster kernel or fewer FLOPs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Floor {
    /// FLOP of the training steps' products.
    pub training: f64,
    /// FLOP of validation's forward products.
    pub validation: f64,
    /// The median of the whole epochs this process trained, seconds; `None` if it trained
    /// none whole.
    pub median_epoch: Option<f64>,
}

impl Floor {
    /// The floor of an epoch of `model` over `train` training and `test` validation images,
    /// beside the median of the whole epochs in `history`, the epochs this process trained (an
    /// earlier one may have run on another engine or thread count; one resumed part way timed
    /// only its part).
    pub fn of(model: &Model, train: usize, test: usize, history: &[EpochStats]) -> Floor {
        let forward: usize = model.layers.iter().map(|l| l.flops().0).sum();
        let training = training_flops_per_image(model) * train as f64;
        let whole = history.iter().filter(|e| e.from_step == 0);
        let mut seconds: Vec<f64> = whole.map(|e| e.seconds).collect();
        seconds.sort_by(f64::total_cmp);
        let median_epoch = match seconds.len() {
            0 => None,
            n => Some((seconds[(n - 1) / 2] + seconds[n / 2]) / 2.0),
        };
        Floor { training, validation: (forward * test) as f64, median_epoch }
    }
}

impl<'a> Report<'a> {
    /// The report with the epoch's floor beside it.
    pub fn with_floor(self, floor: Floor) -> Report<'a> {
        Report { floor: Some(floor), ..self }
    }
}

/// Floating-point operations of the matrix products for one training image: per layer the
/// forward product, `dW` and `dX` (for a dense layer `I → O`, `2·I·O` each); the first layer
/// needs no `dX`.
pub fn training_flops_per_image(model: &Model) -> f64 {
    let all: usize = model.layers.iter().map(|l| l.flops()).map(|(f, dw, dx)| f + dw + dx).sum();
    (all - model.layers[0].flops().2) as f64
}

/// The shape `(m, k, n)` of a typical product of a training step of `model` on batches of
/// `batch` rows, on which to measure the kernel's rate: for a dense model the first layer's
/// forward product, for a convolutional one the forward product of a group of its costliest
/// lowered convolution.
pub fn typical_product(model: &Model, batch: usize) -> (usize, usize, usize) {
    let lowered = model.layers.iter().filter_map(|l| match l {
        Layer::Conv2d(c) if !c.by_taps() => Some(c),
        _ => None,
    });
    match lowered.max_by_key(|c| c.w.len() * c.output().pixels()) {
        Some(c) => (c.group().0 * c.output().pixels(), c.w.ncols(), c.w.nrows()),
        None => (batch, model.layers[0].inputs(), model.layers[0].outputs()),
    }
}

/// A printable [`Profile`].
pub struct Report<'a> {
    profile: &'a Profile,
    flops_per_image: f64,
    kernel_gflops: f64,
    floor: Option<Floor>,
}

impl fmt::Display for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let p = self.profile;
        let total = p.total();
        writeln!(f, "{:<12} {:>9} {:>7}", "phase", "seconds", "share")?;
        for phase in PHASES {
            let s = p.seconds(phase);
            writeln!(f, "{:<12} {s:>9.3} {:>6.1}%", format!("{phase:?}").to_lowercase(), 100.0 * s / total)?;
        }
        writeln!(f, "{:<12} {total:>9.3}", "total")?;
        let products = p.seconds(Phase::Passes) + p.seconds(Phase::Update);
        let gflops = self.flops_per_image * p.images as f64 / products / 1e9;
        write!(
            f,
            "passes+update: {gflops:.1} GFLOP/s ({:.2} MFLOP per image), {:.0}% of the kernel's {:.1} GFLOP/s here \
             (products through {})",
            self.flops_per_image / 1e6,
            100.0 * gflops / self.kernel_gflops,
            self.kernel_gflops,
            crate::engine::kernel::path().describe(),
        )?;
        if let Some(floor) = self.floor {
            let total = floor.training + floor.validation;
            let seconds = total / (self.kernel_gflops * 1e9);
            write!(
                f,
                "\nan epoch's products: {:.1} GFLOP ({:.1} training, {:.1} validation); at the kernel's rate \
                 they need {seconds:.3} s, ",
                total / 1e9,
                floor.training / 1e9,
                floor.validation / 1e9,
            )?;
            match floor.median_epoch {
                Some(median) => {
                    write!(f, "and the median epoch, {median:.3} s, is {:.2}× that floor", median / seconds)?
                }
                None => write!(
                    f,
                    "and no whole epoch was trained to set beside it (a resumed one times its part)"
                )?,
            }
        }
        if let (in_place, streamed @ 1..) | (in_place @ 1.., streamed) = p.writes
            && p.threads > 1
        {
            write!(
                f,
                "\nthe update wrote W in place, with Wᵀ beside it, in {in_place} of {} steps, and streamed it \
                 in {streamed} (the cores far apart: a cache line's round trip over {} ns)",
                in_place + streamed,
                FAR.as_nanos(),
            )?;
        }
        if let (Some(passes), Some(update)) = (p.waiting(Phase::Passes), p.waiting(Phase::Update)) {
            write!(
                f,
                "\nthe threads waited for one another {:.1}% of their time in the passes (with the data), \
                 {:.1}% in the update",
                100.0 * passes,
                100.0 * update,
            )?;
        }
        if gflops > self.kernel_gflops {
            // The kernel cannot run faster inside training than alone: the machine was busier
            // while it was measured.
            write!(
                f,
                "\n(the machine was busier while the kernel was measured than during training: the share is unreliable)"
            )?;
        }
        Ok(())
    }
}

/// The kernel's rate in GFLOP/s on the current pool, measured for about `seconds` on the
/// product `(m, k)·(k, n)`: the ceiling that [`Report`] compares the training step with.
pub fn kernel_gflops(m: usize, k: usize, n: usize, seconds: f64) -> f64 {
    // On a cache line's start, as the engine's own buffers are.
    let a = aligned::copy_of(&Array2::from_shape_fn((m, k), |(i, j)| ((i * 7 + j * 3) % 11) as f32 / 11.0));
    let b = aligned::copy_of(&Array2::from_shape_fn((k, n), |(i, j)| ((i * 5 + j) % 13) as f32 / 13.0));
    let mut c = aligned::zeros((m, n));
    // The best of five slices: a neighbour's burst on a shared machine slows one slice, not all.
    let mut slice = || {
        let start = Instant::now();
        let mut runs = 0;
        while runs < 3 || start.elapsed().as_secs_f64() < seconds / 5.0 {
            par_matmul(a.view(), b.view(), c.view_mut());
            runs += 1;
        }
        (2 * m * k * n * runs) as f64 / start.elapsed().as_secs_f64() / 1e9
    };
    (0..5).map(|_| slice()).fold(0.0, f64::max)
}
