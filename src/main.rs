//! `dae`: trains the denoising autoencoder of the reference notebook on MNIST.
//!
//! A thin entry point: it parses flags, loads data, and hands everything else to the library.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};

use dae::checkpoint;
use dae::figure;
use dae::loss::Loss;
use dae::mnist::Mnist;
use dae::noise::Noise;
use dae::output::Metrics;
use dae::profile;
use dae::train::{Config, Trainer};

/// Train a denoising autoencoder on MNIST with hand-written backpropagation.
///
/// The defaults are the reference experiment: inputs corrupted by clip(x + 0.5·N(0,1), 0, 1),
/// a 784→128→64→32→64→128→784 network (ReLU inside, sigmoid out), binary cross-entropy against
/// the clean image, Adam, batch 256, 10 epochs, validation on the corrupted test set.
#[derive(Debug, Parser)]
#[command(version, about, long_about)]
struct Args {
    /// Passes over the 60,000 training images.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    epochs: u32,
    /// Images per optimisation step.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..))]
    batch_size: u32,
    /// Adam's learning rate.
    #[arg(long, default_value_t = 1e-3, value_parser = positive)]
    lr: f32,
    /// Seed for the weights, the shuffling and the corruption; the same seed gives the same run.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Worker threads [default: all cores]. Results are identical for any count.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    threads: Option<u32>,
    /// Corruption of the inputs: gaussian:STD, masking:P or salt-pepper:P.
    #[arg(long, default_value = "gaussian:0.5")]
    noise: Noise,
    /// Draw new corruption every epoch instead of once.
    #[arg(long)]
    fresh_noise: bool,
    /// Reconstruction loss: bce or mse.
    #[arg(long, default_value = "bce", value_parser = parse_loss)]
    loss: Loss,
    /// The encoder's hidden widths, comma-separated; the decoder mirrors them.
    #[arg(long, default_value = "128,64,32", value_delimiter = ',', value_parser = clap::value_parser!(u32).range(1..))]
    layers: Vec<u32>,
    /// Folder with the four MNIST files (as ./data-fetch.sh leaves them).
    #[arg(long, default_value = "data")]
    data: PathBuf,
    /// Folder for metrics.json, model.safetensors and reconstructions.png.
    #[arg(long, default_value = "runs/latest")]
    out: PathBuf,
    /// After training, print the time per phase and the achieved GFLOP/s.
    #[arg(long)]
    profile: bool,
}

fn positive(s: &str) -> Result<f32, String> {
    match s.parse::<f32>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err(format!("'{s}' is not a positive, finite number")),
    }
}

fn parse_loss(s: &str) -> Result<Loss, String> {
    match s {
        "bce" => Ok(Loss::Bce),
        "mse" => Ok(Loss::Mse),
        _ => Err(format!("unknown loss '{s}'; expected bce or mse")),
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let threads = args.threads.map_or_else(default_threads, |t| t as usize);
    // Everything runs on a thread of the pool: a parallel loop started from outside the pool
    // must wake the workers (about 20 µs); one started on a worker costs well under 1 µs.
    let result = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(anyhow::Error::from)
        .and_then(|pool| pool.install(|| run(args, threads)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args, threads: usize) -> Result<()> {
    prepare_out(&args.out)?;
    let data = Mnist::load(&args.data)?;
    let config = Config {
        epochs: args.epochs as usize,
        batch_size: args.batch_size as usize,
        lr: args.lr,
        seed: args.seed,
        noise: args.noise,
        fresh_noise: args.fresh_noise,
        loss: args.loss,
        hidden: args.layers.iter().map(|&w| w as usize).collect(),
    };
    let mut trainer = Trainer::new(config.clone(), &data);
    let mut history = Vec::new();
    for epoch in 1..=config.epochs {
        let bar = progress_bar(epoch, config.epochs);
        let stats = trainer.train_epoch(|done, total| {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
        });
        bar.finish_and_clear();
        let stats = stats?;
        let steps = data.train.images.count.div_ceil(config.batch_size);
        println!(
            "epoch {epoch}/{}  loss {:.4}  val_loss {:.4}  {:.2} s  {:.1} ms/step",
            config.epochs,
            stats.train_loss,
            stats.val_loss,
            stats.seconds,
            1e3 * stats.seconds / steps as f64,
        );
        history.push(stats);
        checkpoint::save(&trainer.model, &args.out.join("model.safetensors"))?;
        let metrics = Metrics {
            config: &config,
            threads,
            history: &history,
        };
        let path = args.out.join("metrics.json");
        metrics
            .write(&path)
            .with_context(|| format!("{}: cannot write", path.display()))?;
    }
    let images = &data.test.images;
    let samples = trainer.samples(10);
    let views: Vec<_> = samples.iter().map(|a| a.view()).collect();
    let path = args.out.join("reconstructions.png");
    figure::write_grid(&path, &views, (images.rows, images.cols), 4)
        .with_context(|| format!("{}: cannot write", path.display()))?;
    println!("wrote {}", args.out.display());
    if args.profile {
        let first = &trainer.model.layers[0];
        let sgemm = profile::sgemm_gflops(config.batch_size, first.inputs(), first.outputs(), 0.5);
        println!("{}", trainer.profile.report(&trainer.model, sgemm));
    }
    Ok(())
}

fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Creates `--out` unless it exists as a folder; a file there is an error.
fn prepare_out(out: &Path) -> Result<()> {
    if out.exists() && !out.is_dir() {
        bail!("--out {}: exists and is not a folder", out.display());
    }
    std::fs::create_dir_all(out).with_context(|| format!("--out {}: cannot create", out.display()))
}

/// A bar for one epoch's steps; indicatif draws it only when stderr is a terminal.
fn progress_bar(epoch: usize, epochs: usize) -> ProgressBar {
    let bar = ProgressBar::new(0);
    let style =
        ProgressStyle::with_template("epoch {msg} [{bar:30}] {pos}/{len} steps {elapsed_precise}")
            .expect("a valid template")
            .progress_chars("=> ");
    bar.set_style(style);
    bar.set_message(format!("{epoch}/{epochs}"));
    bar
}
