//! `report.html`: one self-contained page that shows what a run's network learned — the run and
//! its loss curves, digits sharpening epoch by epoch, what the first layer detects, the codes
//! projected to a plane, dead units, and how much noise the model takes.
//!
//! Each section is a function from the run to HTML ([`sections`]); the pictures are gray PNGs
//! ([`pictures`]) and `plotters` charts ([`crate::files::plot`]), inlined as data URIs
//! ([`html`]). The page has no script and loads nothing. Rewritten after every epoch from what
//! training keeps; the two measurements that need many forward passes, the noise sweep and the
//! k-NN accuracy ([`Measured`]), are made when training ends and by `dae report`.

pub mod html;
pub mod pictures;
pub mod sections;

use std::io;
use std::path::Path;

use ndarray::ArrayView2;

use crate::data::mnist::Mnist;
use crate::engine::model::Model;
use crate::eval::evaluate::{self, Knn, SweepRow};
use crate::files::atomic::write_atomic;
use crate::files::checkpoint::Snapshots;
use crate::files::figure::GAP;
use crate::files::metrics::Metrics;

/// Everything a report shows, borrowed from a run.
#[derive(Debug, Clone, Copy)]
pub struct Run<'a> {
    /// The run's folder, named in the title.
    pub dir: &'a Path,
    /// Its settings and epochs.
    pub metrics: &'a Metrics,
    /// The model as it is now.
    pub model: &'a Model,
    /// (rows, cols) of an image.
    pub image: (usize, usize),
    /// The first [`TEST_SHOWN`] test images (all, if fewer), clean (n, D).
    pub clean: ArrayView2<'a, f32>,
    /// The same, corrupted as validation corrupts them (n, D).
    pub noisy: ArrayView2<'a, f32>,
    /// The model's codes of the first [`TEST_SHOWN`] of `noisy` (all, if fewer), (n, C): the
    /// output of its bottleneck ([`Model::bottleneck`]).
    pub codes: ArrayView2<'a, f32>,
    /// The test labels (N_test,).
    pub labels: &'a [u8],
    /// Reconstructions of the first test images after each epoch.
    pub snapshots: &'a Snapshots,
    /// The sweep and k-NN accuracy, once measured.
    pub measured: Option<&'a Measured>,
}

/// Test images the report draws, the first of the set: the codes of 2,000, and the digits and
/// first-layer responses of a few of them. A run keeps no more of its test set for the report.
pub const TEST_SHOWN: usize = 2_000;

/// The test digits the figures show, reconstructed after every epoch.
pub const DIGITS_SHOWN: usize = 10;

/// What drawing the report's pictures holds at its peak, for a model whose first layer has
/// `units` units (or channels, and then `kernels` drawn too) run to `epochs` on images of
/// `(h, w)` pixels: every pixel of the digits figure (clean, corrupted and a row per epoch
/// shown, [`DIGITS_SHOWN`] to a row, magnified as [`sections::learning_to_denoise`] does) and of
/// up to [`UNITS_SHOWN`](sections::UNITS_SHOWN) units' pictures (an image each, and a kernel of
/// at most 64 pixels a side), each with its gap, held as a canvas, its PNG and the page's text at
/// once. Measured: 1.8 MB for a model of 256 units after one epoch on 28×28 images, about 6
/// bytes a pixel; 8 are counted.
pub fn pictures_bytes(units: usize, kernels: bool, epochs: usize, (h, w): (usize, usize)) -> u64 {
    let zoom = sections::digits_zoom((h, w));
    let rows = epochs.min(sections::MOST_ROWS) + 2;
    let cell = |side_h: usize, side_w: usize| ((side_h + GAP) * (side_w + GAP)) as u64;
    let digits = (rows * DIGITS_SHOWN) as u64 * cell(h * zoom, w * zoom);
    let unit = cell(h, w) + if kernels { cell(64, 64) } else { 0 };
    8 * (digits + units.min(sections::UNITS_SHOWN) as u64 * unit)
}

/// Test images the end-of-run measurements use: the first [`MEASURED_TEST`]; and training
/// images the k-NN classifier takes as reference: the first [`MEASURED_TRAIN`]. Enough for a
/// figure (an accuracy to ±1%, a PSNR to ±0.1 dB) at a tenth of the cost of the whole sets,
/// which `dae eval` measures.
pub const MEASURED_TEST: usize = 2_000;
/// See [`MEASURED_TEST`].
pub const MEASURED_TRAIN: usize = 10_000;

/// The measurements that cost many forward passes: made at the end, not every epoch.
#[derive(Debug, Clone, PartialEq)]
pub struct Measured {
    /// Test images measured.
    pub test: usize,
    /// Training images the k-NN classifier searched.
    pub train: usize,
    /// PSNR of input and reconstruction for each corruption of the sweep.
    pub sweep: Vec<SweepRow>,
    /// k-NN accuracy of codes and pixels.
    pub knn: Knn,
}

impl Measured {
    /// The bytes [`Measured::of`] holds at its peak for `model` on `data`, counted before any is
    /// allocated: the images it measures on, copied, and [`evaluate`]'s buffers for them.
    pub fn bytes(model: &Model, data: &Mnist) -> u64 {
        let test = MEASURED_TEST.min(data.test.images.count);
        let train = MEASURED_TRAIN.min(data.train.images.count);
        let d = data.test.images.pixels_per_image();
        let copies = ((test + train) * (d + 1)) as u64;
        copies.saturating_add(evaluate::bytes_on(model, test, train, d))
    }

    /// Measures `model` on the first test images of `data`, corrupted from `seed`'s test-noise
    /// streams (the same corruption as the whole set's), against the first training images.
    pub fn of(model: &Model, data: &Mnist, seed: u64) -> Measured {
        let data = data.head(MEASURED_TRAIN, MEASURED_TEST);
        Measured {
            test: data.test.images.count,
            train: data.train.images.count,
            sweep: evaluate::sweep(model, &data, seed),
            knn: evaluate::features(model, &data),
        }
    }
}

/// Writes the report of `run` to `path`, atomically.
pub fn write(path: &Path, run: &Run) -> io::Result<()> {
    let page = render(run)?;
    write_atomic(path, |w| w.write_all(page.as_bytes()))
}

/// The report of `run` as one HTML page.
pub fn render(run: &Run) -> io::Result<String> {
    let done = run.metrics.history.len();
    let title = format!("{} — denoising autoencoder report", run.dir.display());
    let body = [
        sections::the_run(run)?,
        sections::learning_to_denoise(run)?,
        sections::first_layer(run)?,
        sections::codes(run)?,
        sections::dead_units(run)?,
        sections::noise(run)?,
    ]
    .join("\n");
    Ok(format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n\
         <h1>Denoising autoencoder: what the network learned</h1>\n\
         <p class=\"lead\">Run <code>{}</code>, {} of {} written by <code>dae</code> {}.</p>\n\
         {body}\n</body>\n</html>\n",
        html::escape(&title),
        html::escape(&run.dir.display().to_string()),
        epochs(done),
        run.metrics.config.epochs,
        env!("CARGO_PKG_VERSION"),
    ))
}

/// "1 epoch", "3 epochs".
fn epochs(n: usize) -> String {
    if n == 1 { "1 epoch".to_string() } else { format!("{n} epochs") }
}

/// The page's look: a readable column on a laptop, figures that never overflow it, nothing
/// broken across printed pages.
const STYLE: &str = "
body { font: 16px/1.5 system-ui, sans-serif; max-width: 1000px; margin: 2em auto; padding: 0 1em; color: #222; }
h1 { font-size: 1.6em; } h2 { font-size: 1.3em; margin-top: 2em; border-bottom: 1px solid #ccc; }
.lead { color: #555; }
figure { margin: 1em 0; } figcaption { color: #444; max-width: 46em; margin-top: .5em; }
img { max-width: 100%; height: auto; } img.pixels { image-rendering: pixelated; }
table { border-collapse: collapse; margin: .5em 0; font-variant-numeric: tabular-nums; }
td, th { padding: .15em .7em; text-align: right; border-bottom: 1px solid #eee; }
td:first-child, th:first-child, table.settings td, table.settings th { text-align: left; }
table.digits td { padding: 2px .5em; border: none; vertical-align: middle; }
.pending { color: #777; font-style: italic; }
@media print { body { max-width: none; } section, figure, table { break-inside: avoid; } }
";
