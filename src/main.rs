//! `dae`: trains the denoising autoencoder of the reference notebook on MNIST.
//!
//! A thin entry point: it parses flags, loads data, and hands everything else to the library.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use std::sync::atomic::Ordering;

use anyhow::Context;
use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};

use dae::checkpoint;
use dae::figure;
use dae::loss::Loss;
use dae::mnist::Mnist;
use dae::noise::Noise;
use dae::output::Metrics;
use dae::profile;
use dae::train::{Config, TrainError, Trainer};

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
    #[arg(long, default_value_t = 1e-3, value_parser = positive, allow_negative_numbers = true)]
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
    #[arg(long, default_value = "bce")]
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
    /// Continue the run saved in DIR (its settings, weights, optimizer state and progress)
    /// until --epochs epochs in all are done, appending to its metrics.json.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["batch_size", "lr", "seed", "noise", "fresh_noise", "loss", "layers", "out"])]
    resume: Option<PathBuf>,
}

fn positive(s: &str) -> Result<f32, String> {
    match s.parse::<f32>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err(format!("'{s}' is not a positive, finite number")),
    }
}

/// How a run ends, and the exit status that says so.
enum Failure {
    /// Bad flags: status 2.
    Usage(String),
    /// Bad data or files, or training that diverged: status 1.
    Error(anyhow::Error),
    /// Ctrl-C, after saving: status 130.
    Interrupted,
}

impl<E: Into<anyhow::Error>> From<E> for Failure {
    fn from(e: E) -> Failure {
        Failure::Error(e.into())
    }
}

fn main() -> ExitCode {
    let args = match Args::try_parse() {
        Ok(args) => args,
        Err(e) if !e.use_stderr() => e.exit(), // --help and --version
        Err(e) => {
            let message = e.to_string();
            eprintln!("{}", message.lines().next().unwrap_or("error: bad arguments"));
            return ExitCode::from(2);
        }
    };
    let threads = args.threads.map_or_else(default_threads, |t| t as usize);
    // Everything runs on a thread of the pool: a parallel loop started from outside the pool
    // must wake the workers (about 20 µs); one started on a worker costs well under 1 µs.
    let result = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(Failure::from)
        .and_then(|pool| pool.install(|| run(args, threads)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(message)) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
        Err(Failure::Error(e)) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
        Err(Failure::Interrupted) => ExitCode::from(130),
    }
}

fn run(args: Args, threads: usize) -> Result<(), Failure> {
    let out = args.resume.clone().unwrap_or_else(|| args.out.clone());
    prepare_out(&out)?;
    let data = Mnist::load(&args.data)?;
    let (mut trainer, mut metrics) = match &args.resume {
        None => {
            let config = config_from(&args);
            (Trainer::new(config.clone(), &data), Metrics { config, threads, history: Vec::new() })
        }
        Some(dir) => resume(dir, &args, threads, &data)?,
    };
    let config = trainer.config.clone();
    let interrupt = trainer.interrupt_flag();
    ctrlc::set_handler(move || interrupt.store(true, Ordering::Relaxed))?;
    let steps = data.train.images.count.div_ceil(config.batch_size);
    for epoch in trainer.progress.epoch + 1..=config.epochs {
        let bar = progress_bar(epoch, config.epochs);
        let stats = trainer.train_epoch(|done, total| {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
        });
        bar.finish_and_clear();
        let stats = match stats {
            Ok(stats) => stats,
            Err(TrainError::Interrupted { epoch, step }) => {
                save(&out, &trainer, &metrics)?;
                eprintln!(
                    "interrupted after step {step} of epoch {epoch}; saved in {0}; continue with --resume {0}",
                    out.display()
                );
                return Err(Failure::Interrupted);
            }
            Err(e) => return Err(e.into()),
        };
        println!(
            "epoch {epoch}/{}  loss {:.4}  val_loss {:.4}  {:.2} s  {:.1} ms/step",
            config.epochs,
            stats.train_loss,
            stats.val_loss,
            stats.seconds,
            1e3 * stats.seconds / steps as f64,
        );
        metrics.history.push(stats);
        save(&out, &trainer, &metrics)?;
    }
    let images = &data.test.images;
    let samples = trainer.samples(10);
    let views: Vec<_> = samples.iter().map(|a| a.view()).collect();
    let path = out.join("reconstructions.png");
    figure::write_grid(&path, &views, (images.rows, images.cols), 4)
        .with_context(|| format!("{}: cannot write", path.display()))?;
    println!("wrote {}", out.display());
    if args.profile {
        let first = &trainer.model.layers[0];
        let sgemm = profile::sgemm_gflops(config.batch_size, first.inputs(), first.outputs(), 0.5);
        println!("{}", trainer.profile.report(&trainer.model, sgemm));
    }
    Ok(())
}

fn config_from(args: &Args) -> Config {
    Config {
        epochs: args.epochs as usize,
        batch_size: args.batch_size as usize,
        lr: args.lr,
        seed: args.seed,
        noise: args.noise,
        fresh_noise: args.fresh_noise,
        loss: args.loss,
        hidden: args.layers.iter().map(|&w| w as usize).collect(),
    }
}

/// The trainer and metrics of the run saved in `dir`, set to go on to `--epochs` in all.
fn resume<'a>(
    dir: &Path,
    args: &Args,
    threads: usize,
    data: &'a Mnist,
) -> Result<(Trainer<'a>, Metrics), Failure> {
    let path = dir.join("metrics.json");
    let mut metrics =
        Metrics::read(&path).with_context(|| format!("{}: cannot read the run", path.display()))?;
    let (model, adam, progress) = checkpoint::load_state(&dir.join("state.safetensors"), metrics.config.lr)?;
    let (inputs, pixels) = (model.widths()[0], data.train.images.pixels_per_image());
    if inputs != pixels {
        let message = format!("the saved model takes {inputs} pixels, the images in --data have {pixels}");
        return Err(Failure::Error(anyhow::anyhow!("{}: {message}", dir.display())));
    }
    if progress.epoch >= args.epochs as usize {
        let message = format!(
            "--epochs {}: the run in {} has done {} already",
            args.epochs,
            dir.display(),
            progress.epoch
        );
        return Err(Failure::Usage(message));
    }
    // metrics.json is written before the state, so it may be an epoch ahead of it.
    metrics.history.truncate(progress.epoch);
    metrics.config.epochs = args.epochs as usize;
    metrics.threads = threads;
    Ok((Trainer::resume(metrics.config.clone(), data, model, adam, progress), metrics))
}

/// Writes the run's files into `out`: the model, `metrics.json`, and last the state that
/// `--resume` reads, so that whatever a crash interrupts, the state on disk is whole.
fn save(out: &Path, trainer: &Trainer, metrics: &Metrics) -> Result<(), Failure> {
    checkpoint::save(&trainer.model, &out.join("model.safetensors"))?;
    let path = out.join("metrics.json");
    metrics.write(&path).with_context(|| format!("{}: cannot write", path.display()))?;
    checkpoint::save_state(&trainer.model, &trainer.adam, trainer.progress, &out.join("state.safetensors"))?;
    Ok(())
}

fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Creates `--out` unless it exists as a folder; a file there is a usage error.
fn prepare_out(out: &Path) -> Result<(), Failure> {
    if out.exists() && !out.is_dir() {
        return Err(Failure::Usage(format!("--out {}: exists and is not a folder", out.display())));
    }
    std::fs::create_dir_all(out).with_context(|| format!("--out {}: cannot create", out.display()))?;
    Ok(())
}

/// A bar for one epoch's steps; indicatif draws it only when stderr is a terminal.
fn progress_bar(epoch: usize, epochs: usize) -> ProgressBar {
    let bar = ProgressBar::new(0);
    let style = ProgressStyle::with_template("epoch {msg} [{bar:30}] {pos}/{len} steps {elapsed_precise}")
        .expect("a valid template")
        .progress_chars("=> ");
    bar.set_style(style);
    bar.set_message(format!("{epoch}/{epochs}"));
    bar
}
