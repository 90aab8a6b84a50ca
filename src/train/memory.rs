//! What a run needs in memory, counted before any of it is allocated, so that a model or an
//! image size that asks for more than the machine has is refused with the figures instead of an
//! allocation that aborts the process (images of 4096×4096 ask the convolutional model's
//! buffers for 3.1 TB at 256 images a step).

use crate::data::mnist::Mnist;
use crate::engine::aligned;
use crate::engine::data_parallel::Shards;
use crate::engine::gemm::MAX_COPY;
use crate::engine::layer::Layer;
use crate::engine::model::{FLOAT, Model, Workspace, autoencoder_widths};
use crate::report::{self, Measured, TEST_SHOWN};
use crate::train::{Arch, Config};

/// The bytes a run of `config` on `data` holds at its peak with batches of `rows` images: the
/// model (a dense layer with its `Wᵀ`), its gradients and Adam's two moments; a batch's buffers
/// and the clean and corrupted batch; the test set clean and corrupted; and the codes the
/// report written after each epoch adds. Not the data set itself, which is loaded by then.
/// A dense model is counted from its widths, without building it; a convolutional one is
/// built (its parameters are few whatever the image size) and counted.
pub fn training_bytes(config: &Config, data: &Mnist, rows: usize) -> u64 {
    let images = &data.train.images;
    match config.arch {
        Arch::Dense => {
            let widths = autoencoder_widths(images.pixels_per_image(), &config.hidden);
            let pairs = || widths.windows(2).map(|w| (w[0] as u64, w[1] as u64));
            let parameters: u64 = pairs().map(|(i, o)| i * o + o).sum();
            // Each `W`, `Wᵀ`, `dW` and buffer below starts on a cache line ([`aligned`]).
            let (layers, slack) = (widths.len() as u64 - 1, aligned::SLACK_BYTES);
            let model = FLOAT * pairs().map(|(i, o)| 3 * i * o + 2 * o).sum::<u64>() + 3 * layers * slack;
            // Outputs and deltas of every layer and the row's loss, and each thread's copy of the
            // largest `Wᵀ` (as [`Workspace::bytes`] counts them); the shards of the data-parallel
            // step.
            let outputs: u64 = widths[1..].iter().map(|&w| w as u64).sum();
            let copy = pairs().map(|(i, o)| (i * o).min(MAX_COPY as u64)).max().unwrap_or(0);
            let threads = rayon::current_num_threads().min(64) as u64;
            let workspace = (rows as u64).saturating_mul(FLOAT * (2 * outputs + 1))
                + FLOAT * threads * copy
                + (2 * layers + 2 * threads) * slack;
            let workspace = workspace.saturating_add(Shards::bytes(&widths, rows));
            let report = Report {
                code: *config.hidden.last().expect("a hidden layer"),
                units: widths[1],
                kernels: false,
                epochs: config.epochs,
            };
            run_bytes(model, (parameters, 2 * layers), workspace, report, rows, data)
        }
        Arch::Conv => {
            let mut rng = crate::data::rng::stream(config.seed, crate::data::rng::Purpose::Init, 0);
            let model = config.arch.model((images.rows, images.cols), &[], &mut rng);
            model_training_bytes(&model, data, rows, config.epochs)
        }
    }
}

/// [`training_bytes`] of a run of `model` (one being resumed), with the copies of its
/// convolutions' kernels that saving it makes (in PyTorch's order; a dense layer's weights are
/// written as they are), to `epochs` in all.
pub fn model_training_bytes(model: &Model, data: &Mnist, rows: usize, epochs: usize) -> u64 {
    let sizes = model.param_sizes();
    let parameters = (sizes.iter().map(|&n| n as u64).sum(), sizes.len() as u64);
    let kernels = model.layers.iter().filter(|l| !matches!(l, Layer::Dense(_)));
    let copies: u64 = kernels.filter_map(|l| l.param_sizes()).map(|[w, _]| FLOAT * w as u64).sum();
    let held = model.bytes() + copies;
    let code = model.layers[model.bottleneck()].outputs();
    let kernels = matches!(model.layers[0], Layer::Conv2d(_));
    let report = Report { code, units: model.layers[0].units(), kernels, epochs };
    run_bytes(held, parameters, Workspace::training_bytes(model, rows), report, rows, data)
}

/// What the end of a run of `model` on `data` holds at its peak, once the training's buffers are
/// gone: the model, the first [`TEST_SHOWN`] test images clean and corrupted (which the report
/// draws), and the report's measurements on a few thousand images ([`Measured::bytes`]). Not the
/// data set. It does not depend on the batch size: a smaller batch cannot make it fit.
pub fn end_of_run_bytes(model: &Model, data: &Mnist) -> u64 {
    let test = &data.test.images;
    let shown = 2 * FLOAT * (TEST_SHOWN.min(test.count) * test.pixels_per_image()) as u64;
    model.bytes().saturating_add(shown).saturating_add(Measured::bytes(model, data))
}

/// What a run's report depends on: the numbers of its code, its first layer's units (or
/// channels) and the epochs it runs to.
struct Report {
    code: usize,
    units: usize,
    kernels: bool,
    epochs: usize,
}

/// What the report written after each epoch adds while the run holds its buffers: the codes of
/// `code` numbers of the first [`TEST_SHOWN`] corrupted test images, f32
/// ([`Trainer::codes`](crate::train::Trainer::codes)), and their copy in f64 for the principal
/// components ([`crate::eval::pca::project`]), with `--layers 2048` 47 MiB; and its pictures
/// ([`report::pictures_bytes`]).
fn report_bytes(report: &Report, data: &Mnist) -> u64 {
    let shown = data.test.images.count.min(TEST_SHOWN) as u64;
    let codes = 3 * (FLOAT * shown).saturating_mul(report.code as u64);
    let image = (data.test.images.rows, data.test.images.cols);
    let pictures = report::pictures_bytes(report.units, report.kernels, report.epochs, image);
    codes.saturating_add(pictures)
}

/// The model's `model` bytes, Adam's moments of its `(parameters, tensors)` (each moment on a
/// cache line), a batch's `workspace`, the clean and corrupted batch of `rows` images, the test
/// set clean and corrupted, the order of the training images, and what the report adds
/// ([`report_bytes`]).
fn run_bytes(
    model: u64,
    (parameters, tensors): (u64, u64),
    workspace: u64,
    report: Report,
    rows: usize,
    data: &Mnist,
) -> u64 {
    let d = data.train.images.pixels_per_image() as u64;
    let batches = 2 * FLOAT * d * rows as u64;
    let test = 2 * FLOAT * d * data.test.images.count as u64 + FLOAT * data.train.images.count as u64;
    let moments = 2 * (FLOAT * parameters + tensors * aligned::SLACK_BYTES);
    let held = model.saturating_add(moments).saturating_add(workspace);
    held.saturating_add(report_bytes(&report, data)).saturating_add(batches + test + SMALL)
}

/// What the run's small bookkeeping takes at most: the dead-unit watch, the samples the figure
/// shows, the lists of layers and tensors (a few kilobytes for the notebook's model).
const SMALL: u64 = 1 << 20;
