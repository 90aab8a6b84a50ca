//! The training loop: shuffle, corrupt, forward, loss, backward, Adam — then validate.
//!
//! A step goes through the fast engine or, with [`Engine::Reference`], through the reference
//! engine ([`crate::reference::train_step`]); both train the same model. The fast engine's step
//! for a dense model is the data-parallel one ([`crate::engine::data_parallel`]), which the epoch
//! runs itself so that each shard corrupts its own images; [`train_step`] takes the same step on
//! a batch already made, and any model's. Everything
//! a fast step touches is allocated once, in [`Trainer::new`]; a step reuses it. One seed
//! drives initial weights, shuffling and corruption through separate named streams, so a run is
//! reproduced exactly by its seed, whatever the thread count.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ndarray::{Array2, ArrayView2, ArrayViewMut2, Axis, s};
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::data::mnist::Mnist;
use crate::data::noise::{Noise, corrupt_batch, corrupt_rows, corrupt_set};
use crate::data::rng::{self, Purpose};
use crate::engine::adam::Adam;
use crate::engine::data_parallel::Shards;
use crate::engine::loss::Loss;
use crate::engine::model::{Model, Workspace};
use crate::reference;
use crate::train::dead_units::DeadUnits;
use crate::train::profile::{Phase, Profile};

/// The settings of a run; [`Config::default`] is the notebook's experiment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Config {
    /// Epochs to train in all.
    pub epochs: usize,
    /// Images per step.
    pub batch_size: usize,
    /// Adam's learning rate.
    pub lr: f32,
    /// Seed of the weights, the shuffling and the corruption.
    pub seed: u64,
    /// How inputs are corrupted.
    #[serde(with = "as_text")]
    pub noise: Noise,
    /// Draw new corruption every epoch instead of once.
    pub fresh_noise: bool,
    /// The reconstruction loss.
    #[serde(with = "as_text")]
    pub loss: Loss,
    /// The encoder's hidden widths of the dense model; the decoder mirrors them.
    pub hidden: Vec<usize>,
    /// Which model: dense (the notebook's) or convolutional. Files from before there was a
    /// choice were dense.
    #[serde(default, with = "as_text")]
    pub arch: Arch,
}

/// The family of the model trained: written `dense` or `conv`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Arch {
    /// [`Model::autoencoder`]: dense layers of the widths in [`Config::hidden`].
    #[default]
    Dense,
    /// [`Model::conv_autoencoder`]: the Keras example's convolutional model.
    Conv,
}

impl Arch {
    /// A fresh model of this family for images of `rows × cols` pixels, from `rng`.
    pub fn model(self, (rows, cols): (usize, usize), hidden: &[usize], rng: &mut impl rand::Rng) -> Model {
        match self {
            Arch::Dense => Model::autoencoder(rows * cols, hidden, rng),
            Arch::Conv => Model::conv_autoencoder(rows, cols, rng),
        }
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(match self {
            Arch::Dense => "dense",
            Arch::Conv => "conv",
        })
    }
}

impl std::str::FromStr for Arch {
    type Err = String;

    fn from_str(s: &str) -> Result<Arch, String> {
        match s {
            "dense" => Ok(Arch::Dense),
            "conv" => Ok(Arch::Conv),
            _ => Err(format!("unknown architecture '{s}'; expected dense or conv")),
        }
    }
}

/// Which engine computes the steps: written `fast` or `reference`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    /// [`crate::engine`]: our kernel, and threads that each run a shard of the batch.
    #[default]
    Fast,
    /// [`crate::reference`](mod@crate::reference): plain functions, a step on one thread,
    /// nothing fused; the same numbers to rounding, far slower. (The corruption of a batch, which
    /// is data rather than the step, is spread over the pool for both engines.)
    Reference,
}

impl fmt::Display for Engine {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(match self {
            Engine::Fast => "fast",
            Engine::Reference => "reference",
        })
    }
}

impl std::str::FromStr for Engine {
    type Err = String;

    fn from_str(s: &str) -> Result<Engine, String> {
        match s {
            "fast" => Ok(Engine::Fast),
            "reference" => Ok(Engine::Reference),
            _ => Err(format!("unknown engine '{s}'; expected fast or reference")),
        }
    }
}

impl Default for Config {
    fn default() -> Config {
        Config {
            epochs: 10,
            batch_size: 256,
            lr: 1e-3,
            seed: 42,
            noise: Noise::Gaussian(0.5),
            fresh_noise: false,
            loss: Loss::Bce,
            hidden: vec![128, 64, 32],
            arch: Arch::Dense,
        }
    }
}

/// The most hidden widths a dense model takes (twice as many layers, the decoder's included).
pub const MAX_HIDDEN: usize = 100;

impl Config {
    /// Whether the settings are ones the command line accepts, whatever file they came from:
    /// the reason in a line if not, naming the setting.
    pub fn check(&self) -> Result<(), String> {
        let in_range = |name: &str, value: usize, max: usize| match value {
            1.. if value <= max => Ok(()),
            _ => Err(format!("{name} {value} is not in 1..={max}")),
        };
        in_range("epochs", self.epochs, u32::MAX as usize)?;
        in_range("batch_size", self.batch_size, u32::MAX as usize)?;
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(format!("lr {} is not a positive, finite number", self.lr));
        }
        if self.hidden.is_empty() {
            return Err("hidden holds no widths".to_string());
        }
        // Deeper than any autoencoder needs, and short of a state file whose header the
        // safetensors format refuses to read (120,000 widths made one of 115 MB).
        if self.hidden.len() > MAX_HIDDEN {
            return Err(format!(
                "hidden holds {} widths (--layers); at most {MAX_HIDDEN}",
                self.hidden.len()
            ));
        }
        self.hidden.iter().try_for_each(|&w| in_range("a hidden width of", w, 65_536))
    }
}

/// (De)serializes a setting as the text the command line takes (`gaussian:0.5`, `bce`).
mod as_text {
    use std::fmt::Display;
    use std::str::FromStr;

    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<T: Display, S: Serializer>(value: &T, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(value)
    }

    pub fn deserialize<'de, T: FromStr<Err = String>, D: Deserializer<'de>>(d: D) -> Result<T, D::Error> {
        String::deserialize(d)?.parse().map_err(D::Error::custom)
    }
}

/// One finished epoch, as `metrics.json` records it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EpochStats {
    /// 1-based.
    pub epoch: usize,
    /// Mean loss over the epoch's training steps, as they went.
    pub train_loss: f64,
    /// Mean loss on the corrupted test set after the epoch.
    pub val_loss: f64,
    /// Training plus validation; for an epoch resumed part way, only the part after resuming.
    pub seconds: f64,
    /// The step this process began the epoch at: 0 for a whole epoch, more for one resumed part
    /// way, whose `seconds` time only the steps from here on.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub from_step: usize,
}

fn is_zero(step: &usize) -> bool {
    *step == 0
}

/// Why training stopped early.
#[derive(Debug, Error)]
pub enum TrainError {
    /// The loss became NaN or infinite: training diverged.
    #[error("the loss became {loss} at epoch {epoch}, step {step}")]
    NonFinite {
        /// The epoch (1-based).
        epoch: usize,
        /// The step within it (1-based).
        step: usize,
        /// The batch's loss.
        loss: f64,
    },
    /// The validation loss became NaN or infinite: training diverged.
    #[error("the validation loss became {loss} after epoch {epoch}")]
    NonFiniteValidation {
        /// The epoch (1-based).
        epoch: usize,
        /// The validation loss.
        loss: f64,
    },
    /// A parameter became NaN or infinite while the losses stayed finite: training diverged.
    #[error("{tensor} became NaN or infinite in epoch {epoch}")]
    NonFiniteWeights {
        /// The epoch (1-based).
        epoch: usize,
        /// The tensor, as model.safetensors names it (`layers.0.weight`).
        tensor: String,
    },
    /// The interrupt flag was found set before a step; how far training had come.
    #[error("interrupted after {0}")]
    Interrupted(Progress),
}

impl fmt::Display for Progress {
    /// "epoch 4" at an epoch's end, "step 22 of epoch 5" within one.
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self.step {
            0 => write!(f, "epoch {}", self.epoch),
            step => write!(f, "step {step} of epoch {}", self.epoch + 1),
        }
    }
}

/// A run in progress: the model, its optimizer, and every buffer a step needs.
pub struct Trainer<'a> {
    /// The run's settings.
    pub config: Config,
    /// The model being trained.
    pub model: Model,
    /// Its optimizer.
    pub adam: Adam,
    data: &'a Mnist,
    ws: Workspace,
    /// The clean batch `x` (B, D), the target.
    clean: Array2<f32>,
    /// The corrupted batch `x̃` (B, D), the input.
    noisy: Array2<f32>,
    /// This epoch's order of training images.
    order: Vec<u32>,
    /// The corrupted test set (N_test, D), made once.
    test_noisy: Array2<f32>,
    /// The clean test set (N_test, D).
    test_clean: Array2<f32>,
    /// How far training has come.
    pub progress: Progress,
    /// Set from outside (on Ctrl-C) to stop after the current step.
    interrupt: Arc<AtomicBool>,
    /// Time per phase, over all epochs so far.
    pub profile: Profile,
    /// Which ReLU units fired during the last validation.
    dead: DeadUnits,
    /// The engine that computes the steps and the validation.
    pub engine: Engine,
}

/// How far a run has come: enough, with the seed, to continue it exactly where it stopped,
/// because each epoch's order and every image's corruption are derived from the seed alone.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Progress {
    /// Epochs finished.
    pub epoch: usize,
    /// Steps finished within the next epoch (0 at an epoch's boundary).
    pub step: usize,
    /// The training loss summed over those steps' entries.
    pub loss_sum: f64,
}

impl<'a> Trainer<'a> {
    /// A fresh model and optimizer for `data`, initialised from `config.seed`.
    pub fn new(config: Config, data: &'a Mnist) -> Trainer<'a> {
        let images = &data.train.images;
        let mut init = rng::stream(config.seed, Purpose::Init, 0);
        let model = config.arch.model((images.rows, images.cols), &config.hidden, &mut init);
        let adam = Adam::new(config.lr, model.param_sizes());
        Trainer::resume(config, data, model, adam, Progress::default())
    }

    /// Continues a run from its model, optimizer and progress (see [`crate::files::checkpoint`]).
    pub fn resume(
        config: Config,
        data: &'a Mnist,
        model: Model,
        adam: Adam,
        progress: Progress,
    ) -> Trainer<'a> {
        let d = data.train.images.pixels_per_image();
        // No batch is larger than the training set, whatever --batch-size says.
        let rows = config.batch_size.min(data.train.images.count);
        let ws = Workspace::for_training(&model, rows);
        let (test_clean, test_noisy) =
            corrupt_set(&data.test.images, config.noise, config.seed, Purpose::TestNoise);
        let dead = DeadUnits::new(&model);
        Trainer {
            adam,
            ws,
            clean: Array2::zeros((rows, d)),
            noisy: Array2::zeros((rows, d)),
            order: (0..data.train.images.count as u32).collect(),
            test_noisy,
            test_clean,
            data,
            model,
            config,
            progress,
            interrupt: Arc::new(AtomicBool::new(false)),
            profile: Profile::default(),
            dead,
            engine: Engine::Fast,
        }
    }

    /// The same run, its steps and validation computed by `engine`.
    pub fn with_engine(self, engine: Engine) -> Trainer<'a> {
        Trainer { engine, ..self }
    }

    /// The rows of the largest batch: `--batch-size`, or the whole training set if smaller.
    pub fn batch_rows(&self) -> usize {
        self.ws.capacity()
    }

    /// The data set being trained on.
    pub fn data(&self) -> &'a Mnist {
        self.data
    }

    /// A flag that, once set, stops training after the step under way with
    /// [`TrainError::Interrupted`]; safe to set from a signal handler.
    pub fn interrupt_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.interrupt)
    }

    /// This trainer, stopped by `flag` rather than a flag of its own: one a signal handler set
    /// up before the trainer existed.
    pub fn with_interrupt(mut self, flag: Arc<AtomicBool>) -> Trainer<'a> {
        self.interrupt = flag;
        self
    }

    /// Trains the rest of the current epoch and validates; `on_step(done, total)` is called
    /// after every step.
    pub fn train_epoch(&mut self, mut on_step: impl FnMut(usize, usize)) -> Result<EpochStats, TrainError> {
        let (start, from_step) = (Instant::now(), self.progress.step);
        let epoch = self.progress.epoch + 1;
        let images = &self.data.train.images;
        // Each epoch's order depends on the seed and the epoch alone, so a resumed run repeats it.
        self.order.iter_mut().enumerate().for_each(|(i, o)| *o = i as u32);
        self.order.shuffle(&mut rng::stream(self.config.seed, Purpose::Shuffle, epoch as u64));
        let noise_offset = if self.config.fresh_noise { epoch as u32 } else { 0 };
        let key = (self.config.seed, Purpose::TrainNoise, noise_offset);
        let steps = self.order.len().div_ceil(self.config.batch_size);
        let batches = self.order.chunks(self.config.batch_size).enumerate().skip(self.progress.step);
        for (step, batch) in batches {
            // Checked before a step, so a step under way always finishes, and a flag set during
            // the last step or validation stops the next epoch before it starts.
            if self.interrupt.load(Ordering::Relaxed) {
                return Err(TrainError::Interrupted(self.progress));
            }
            let rows = batch.len();
            let (noise, loss) = (self.config.noise, self.config.loss);
            let (model, adam, profile) = (&mut self.model, &mut self.adam, &mut self.profile);
            let batch_loss = match (self.engine, self.ws.shards.as_mut()) {
                // The data-parallel step makes each shard's rows of the batch on its own thread.
                (Engine::Fast, Some(shards)) => {
                    let corrupt =
                        |rows: Range<usize>, noisy: ArrayViewMut2<f32>, clean: ArrayViewMut2<f32>| {
                            corrupt_rows(noise, images, &batch[rows], key, clean, noisy)
                        };
                    shards_step(shards, model, adam, loss, rows, corrupt, profile)
                }
                (engine, _) => {
                    let mut clean = self.clean.slice_mut(s![..rows, ..]);
                    let mut noisy = self.noisy.slice_mut(s![..rows, ..]);
                    profile.time(Phase::Data, || {
                        corrupt_batch(noise, images, batch, key, clean.view_mut(), noisy.view_mut())
                    });
                    let (input, target) = (noisy.view(), clean.view());
                    match engine {
                        Engine::Fast => train_step(model, adam, loss, input, target, &mut self.ws, profile),
                        Engine::Reference => reference_step(model, adam, loss, input, target, profile),
                    }
                }
            };
            if !batch_loss.is_finite() {
                return Err(TrainError::NonFinite { epoch, step: step + 1, loss: batch_loss });
            }
            self.progress.step = step + 1;
            self.progress.loss_sum += batch_loss;
            self.profile.images += rows;
            on_step(step + 1, steps);
        }
        let train_loss = self.progress.loss_sum / images.pixels.len() as f64;
        let validation = Instant::now();
        let val_loss = self.validate();
        self.profile.add(Phase::Validation, validation.elapsed());
        if !val_loss.is_finite() {
            return Err(TrainError::NonFiniteValidation { epoch, loss: val_loss });
        }
        // A NaN weight can hide behind a finite loss (a ReLU's max(NaN, 0) is 0); a model file
        // that holds one is refused when loaded, so it is never saved.
        let bad = self.model.layers.iter().enumerate().find_map(|(i, layer)| {
            let k = layer.params()?.iter().position(|p| p.iter().any(|v| !v.is_finite()))?;
            Some(format!("layers.{i}.{}", ["weight", "bias"][k]))
        });
        if let Some(tensor) = bad {
            return Err(TrainError::NonFiniteWeights { epoch, tensor });
        }
        self.progress = Progress { epoch, step: 0, loss_sum: 0.0 };
        let seconds = start.elapsed().as_secs_f64();
        Ok(EpochStats { epoch, train_loss, val_loss, seconds, from_step })
    }

    /// The mean loss of the reconstructions of the corrupted test set against the clean one;
    /// also watches which ReLU units stay silent on all of it ([`Trainer::dead_units`]).
    pub fn validate(&mut self) -> f64 {
        let rows = self.test_clean.nrows();
        let mut total = 0.0;
        self.dead.reset();
        for start in (0..rows).step_by(self.ws.capacity()) {
            let end = (start + self.ws.capacity()).min(rows);
            let x = self.test_noisy.slice(s![start..end, ..]);
            let target = self.test_clean.slice(s![start..end, ..]);
            if self.engine == Engine::Reference {
                let outputs = reference::forward(&self.model, x);
                let logits = outputs.last().expect("at least one layer").view();
                total += reference::loss::loss_and_delta(self.config.loss, logits, target).0;
                self.dead.observe(&outputs, end - start);
                continue;
            }
            // The gradient it also writes is not used; computing it with the loss costs less
            // than a pass for the loss alone.
            if let Some(shards) = self.ws.shards.as_mut() {
                total +=
                    shards.forward_loss(&self.model, self.config.loss, end - start, copy_rows(x, target));
                shards.outputs(end - start).for_each(|(outputs, rows)| self.dead.observe(outputs, rows));
                continue;
            }
            total += self.model.forward_loss(x, self.config.loss, target, &mut self.ws);
            self.dead.observe(&self.ws.outputs, end - start);
        }
        total / self.test_clean.len() as f64
    }

    /// The ReLU units that output 0 on every image of the last validation.
    pub fn dead_units(&self) -> &DeadUnits {
        &self.dead
    }

    /// The test set: clean (N_test, D), and corrupted as validation corrupts it (N_test, D).
    pub fn test_set(&self) -> (ArrayView2<'_, f32>, ArrayView2<'_, f32>) {
        (self.test_clean.view(), self.test_noisy.view())
    }

    /// Ends the run, keeping what its report needs: the model, and the test set clean and
    /// corrupted, each (N_test, D). The rest goes, above all the step's buffers, the most memory a
    /// run holds (146 MB for the convolutional model at batch 256).
    pub fn finish(self) -> (Model, Array2<f32>, Array2<f32>) {
        (self.model, self.test_clean, self.test_noisy)
    }

    /// The codes of the first `n` corrupted test images (all, if fewer), (n, H_code): the output of the
    /// model's bottleneck, through the step's buffers as [`Trainer::samples`] reconstructs.
    pub fn codes(&mut self, n: usize) -> Array2<f32> {
        let n = n.min(self.test_noisy.nrows());
        let code = self.model.bottleneck();
        let mut out = Array2::zeros((n, self.model.layers[code].outputs()));
        let (noisy, rows) = (self.test_noisy.slice(s![..n, ..]), self.ws.capacity());
        for (x, mut codes) in
            noisy.axis_chunks_iter(Axis(0), rows).zip(out.axis_chunks_iter_mut(Axis(0), rows))
        {
            match self.engine {
                Engine::Reference => codes.assign(&reference::forward(&self.model, x)[code]),
                Engine::Fast => self.model.encode(x, &mut self.ws, codes),
            }
        }
        out
    }

    /// The first `n` test images (all, if fewer): clean, corrupted and reconstructed, each (n, D),
    /// through the step's buffers (a second set could take as much memory as the run).
    pub fn samples(&mut self, n: usize) -> [Array2<f32>; 3] {
        let n = n.min(self.test_clean.nrows());
        let clean = self.test_clean.slice(s![..n, ..]).to_owned();
        let noisy = self.test_noisy.slice(s![..n, ..]).to_owned();
        if self.engine == Engine::Reference {
            let out = reference::model::reconstruct(&self.model, noisy.view());
            return [clean, noisy, out];
        }
        let mut out = Array2::zeros(noisy.raw_dim());
        let rows = self.ws.capacity();
        for (x, x_hat) in noisy.axis_chunks_iter(Axis(0), rows).zip(out.axis_chunks_iter_mut(Axis(0), rows)) {
            self.model.reconstruct(x, &mut self.ws, x_hat);
        }
        [clean, noisy, out]
    }
}

/// One optimisation step on a batch: forward, loss, backward, Adam. Returns the loss summed
/// over the batch's `B·D` entries. A dense model trained from [`Workspace::for_training`]'s
/// buffers takes the data-parallel step ([`crate::engine::data_parallel`]); any other model, or
/// one given [`Workspace::new`]'s, the model's forward and backward passes over the whole batch,
/// with Adam inside the backward. There a dense layer's forward product is split by rows over
/// the pool and its backward runs on one thread, `dW = δᵀ·A` one product as the reference
/// computes it (other bits than the data-parallel step's); a convolution's groups of images are
/// spread over the pool, and its `dW` is summed over the groups in their order.
///
/// Shapes: `input` (B, D) corrupted, `target` (B, D) clean.
pub fn train_step(
    model: &mut Model,
    adam: &mut Adam,
    loss: Loss,
    input: ArrayView2<f32>,
    target: ArrayView2<f32>,
    ws: &mut Workspace,
    profile: &mut Profile,
) -> f64 {
    if let Some(shards) = ws.shards.as_mut() {
        return shards_step(shards, model, adam, loss, input.nrows(), copy_rows(input, target), profile);
    }
    let total = profile.time(Phase::Passes, || model.forward_loss(input, loss, target, ws));
    profile.time(Phase::Passes, || model.backward(input, ws, Some(adam)));
    total
}

/// A batch for [`Shards::passes`] that copies its rows from `input` and `target` (B, D).
fn copy_rows<'a>(
    input: ArrayView2<'a, f32>,
    target: ArrayView2<'a, f32>,
) -> impl Fn(Range<usize>, ArrayViewMut2<f32>, ArrayViewMut2<f32>) + Sync + 'a {
    move |rows, mut x, mut y| {
        x.assign(&input.slice(s![rows.clone(), ..]));
        y.assign(&target.slice(s![rows, ..]));
    }
}

/// The data-parallel step on a batch of `rows` rows whose shards `batch` writes (see
/// [`Shards::passes`]), timed: the time `batch` took, over the threads that ran shards, into
/// [`Phase::Data`], the rest of the passes into [`Phase::Passes`], the update into
/// [`Phase::Update`].
fn shards_step<F>(
    shards: &mut Shards,
    model: &mut Model,
    adam: &mut Adam,
    loss: Loss,
    rows: usize,
    batch: F,
    profile: &mut Profile,
) -> f64
where
    F: Fn(Range<usize>, ArrayViewMut2<f32>, ArrayViewMut2<f32>) + Sync,
{
    let nanos = AtomicU64::new(0);
    let timed = |range: Range<usize>, x: ArrayViewMut2<f32>, y: ArrayViewMut2<f32>| {
        let start = Instant::now();
        batch(range, x, y);
        nanos.fetch_add(start.elapsed().as_nanos() as u64, Ordering::Relaxed);
    };
    let (start, waited) = (Instant::now(), shards.waited());
    let total = shards.passes(model, loss, rows, timed);
    let (passes, threads) = (start.elapsed(), shards.threads());
    let busy = threads.min(shards.count(rows)) as u64;
    let data = Duration::from_nanos(nanos.into_inner() / busy);
    profile.add(Phase::Data, data);
    profile.add(Phase::Passes, passes.saturating_sub(data));
    profile.add_wait(Phase::Passes, shards.waited() - waited, threads, passes);
    let (start, waited) = (Instant::now(), shards.waited());
    let write = shards.update(model, adam, rows);
    let update = start.elapsed();
    profile.add(Phase::Update, update);
    profile.add_wait(Phase::Update, shards.waited() - waited, threads, update);
    profile.count(write);
    total
}

/// [`reference::train_step`]'s four calls, each timed into its phase: the forward pass, the
/// loss and the backward pass into [`Phase::Passes`], Adam's step into [`Phase::Update`].
fn reference_step(
    model: &mut Model,
    adam: &mut Adam,
    loss: Loss,
    input: ArrayView2<f32>,
    target: ArrayView2<f32>,
    profile: &mut Profile,
) -> f64 {
    let outputs = profile.time(Phase::Passes, || reference::forward(model, input));
    let logits = outputs.last().expect("at least one layer").view();
    let (total, delta) =
        profile.time(Phase::Passes, || reference::loss::loss_and_delta(loss, logits, target));
    let grads = profile.time(Phase::Passes, || reference::backward(model, input, &outputs, delta));
    profile.time(Phase::Update, || reference::adam::step(adam, model, &grads));
    total
}
