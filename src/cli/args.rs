//! The command line: the flags of each command, and how a run's end becomes an exit status.
//!
//! `dae [FLAGS]` trains (the reference experiment by default); `dae eval`, `dae denoise` and
//! `dae encode` use a trained model; `dae report` writes a run's page again. What each command
//! does is in [`crate::cli::commands`].

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::cli::commands::{self, Failure};
use crate::data::noise::Noise;
use crate::engine::loss::Loss;
use crate::train::{Arch, Config, Engine};

/// Train a denoising autoencoder on MNIST with hand-written backpropagation.
///
/// Without a command, trains. The defaults are the reference experiment: inputs corrupted by
/// clip(x + 0.5·N(0,1), 0, 1), a 784→128→64→32→64→128→784 network (ReLU inside, sigmoid out),
/// binary cross-entropy against the clean image, Adam, batch 256, 10 epochs, validation on the
/// corrupted test set. Writes metrics.json, model.safetensors, state.safetensors,
/// reconstructions.png, loss.svg and report.html into --out after every epoch.
#[derive(Debug, Parser)]
#[command(version, about, long_about, args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    train: TrainArgs,
    /// Worker threads, 1 to 1024 [default: all cores]. Results are identical for any count.
    /// No more are started than the machine has cores: an extra worker only waits for a core,
    /// and its waiting slows the others.
    #[arg(long, global = true, value_parser = clap::value_parser!(u32).range(1..=1024))]
    threads: Option<u32>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Train a model (what `dae` does without a command).
    Train(TrainArgs),
    /// Measure a model on the test set: BCE, MSE, PSNR and SSIM of the corrupted input and of
    /// the reconstruction, and the k-NN accuracy of its codes beside that of raw pixels.
    Eval(EvalArgs),
    /// Denoise your own PNG images, writing DIR/NAME.png: any size and kind (gray or colour,
    /// with transparency or not), each made into a digit as MNIST's were (light on dark, scaled
    /// into 20 of 28 pixels and centred).
    Denoise(DenoiseArgs),
    /// Write the label and bottleneck code of every test image, clean (not corrupted), to a CSV
    /// file.
    Encode(EncodeArgs),
    /// Write DIR/report.html anew for a run: its settings and loss curves, test digits after
    /// every epoch, first-layer features, codes, dead units and a noise sweep. Training writes
    /// it too; this measures the sweep and the k-NN accuracy again and fills in a report that an
    /// interrupted run left without them.
    Report(ReportArgs),
}

#[derive(Debug, Args)]
struct TrainArgs {
    /// Passes over the training images: 10 if not given. With --resume, the passes in all, and
    /// if not given the run's own.
    #[arg(long, default_value_t = 10, hide_default_value = true, value_parser = clap::value_parser!(u32).range(1..))]
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
    /// Corruption of the inputs: gaussian:STD, masking:P or salt-pepper:P.
    #[arg(long, default_value = "gaussian:0.5")]
    noise: Noise,
    /// Draw new corruption every epoch instead of once.
    #[arg(long)]
    fresh_noise: bool,
    /// Reconstruction loss: bce or mse.
    #[arg(long, default_value = "bce")]
    loss: Loss,
    /// The model: dense (the notebook's 784→128→64→32→64→128→784) or conv (the Keras example's
    /// convolutional autoencoder: 3×3 convolutions and 2×2 max-pooling down to 7×7×32, two
    /// transposed convolutions back up; for images whose sides divide by 4 and are 8 or more).
    #[arg(long, default_value = "dense")]
    arch: Arch,
    /// The dense model's hidden widths, comma-separated, each 1 to 65,536, at most 100 of them; the
    /// decoder mirrors them.
    #[arg(long, default_value = "128,64,32", value_delimiter = ',', value_parser = width)]
    layers: Vec<u32>,
    /// Folder with the four MNIST-format files (as ./data-fetch.sh leaves them).
    #[arg(long, default_value = commands::DATA, value_parser = path())]
    data: PathBuf,
    /// Folder for the run's files.
    ///
    /// A run already there is moved, whole, to OUT.1 (or .2, …) when this one first saves.
    #[arg(long, default_value = "runs/latest", value_parser = path())]
    out: PathBuf,
    /// After training, print the time per phase, the achieved GFLOP/s, the median epoch against
    /// the floor its products set at the kernel's rate (measured before training and after, the
    /// higher kept), and, with two threads or more on a dense model, how long they waited for
    /// one another and how the update wrote the weights.
    #[arg(long)]
    profile: bool,
    /// Which engine computes the steps and the validation: fast (our kernel, threads that each
    /// run a shard of the batch) or reference (src/reference/: plain functions, one
    /// thread, nothing fused; the same numbers to rounding, for reading and stepping through in a
    /// debugger; on a 2-core Intel Xeon 3.9 times slower than fast on the dense model, 91
    /// times on the conv one).
    #[arg(long, default_value = "fast")]
    engine: Engine,
    /// Continue the run saved in DIR (its settings, weights, optimizer state and progress)
    /// until --epochs epochs in all are done (if not given: the epochs its metrics.json records,
    /// those it was started or last resumed with), appending to its metrics.json.
    /// A setting given beside it must agree with the run's (only --epochs, --data, --threads,
    /// --engine and --profile are free).
    #[arg(long, value_name = "DIR", value_parser = path())]
    resume: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct EvalArgs {
    /// A model.safetensors written by training, or the run folder that holds it.
    #[arg(long, value_parser = path())]
    model: PathBuf,
    /// Folder with the data set (the training set is the k-NN reference).
    #[arg(long, default_value = commands::DATA, value_parser = path())]
    data: PathBuf,
    /// Corruption of the test images.
    #[arg(long, default_value = "gaussian:0.5")]
    noise: Noise,
    /// Seed of the corruption (the training seed gives validation's exact corruption).
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Instead, how much noise the model takes: the PSNR of the corrupted input and of the
    /// reconstruction for Gaussian σ 0.1 to 1.0, masking and salt-and-pepper 0.1 to 0.9.
    #[arg(long, conflicts_with = "noise")]
    sweep: bool,
}

#[derive(Debug, Args)]
struct DenoiseArgs {
    /// A model.safetensors written by training, or the run folder that holds it.
    #[arg(long, value_parser = path())]
    model: PathBuf,
    /// PNG images, any size and kind (with --as-is: of the model's input size).
    #[arg(required = true, value_name = "IMAGE.png", value_parser = path())]
    images: Vec<PathBuf>,
    /// Folder for the denoised images, NAME.png; a file there of that name is replaced only if dae wrote
    /// it.
    #[arg(long, value_parser = path())]
    out: PathBuf,
    /// Corrupt each image first (for a demonstration) and write the corrupted one too, as
    /// NAME.noisy.png.
    #[arg(long)]
    noise: Option<Noise>,
    /// Seed of that corruption.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Take each image's gray levels as they are: not inverted when dark on light, not scaled
    /// and centred as MNIST's digits were (the image must then be the model's size);
    /// transparency lies on black.
    #[arg(long)]
    as_is: bool,
}

#[derive(Debug, Args)]
struct EncodeArgs {
    /// A model.safetensors written by training, or the run folder that holds it.
    #[arg(long, value_parser = path())]
    model: PathBuf,
    /// Folder with the data set.
    #[arg(long, default_value = commands::DATA, value_parser = path())]
    data: PathBuf,
    /// The CSV file to write, or - for standard output: a header, then one row per test image,
    /// its label and its code.
    #[arg(long, value_parser = path())]
    out: PathBuf,
}

#[derive(Debug, Args)]
struct ReportArgs {
    /// The folder of a run (training's --out).
    #[arg(value_name = "DIR", value_parser = path())]
    dir: PathBuf,
    /// Folder with the data set the run was trained on.
    #[arg(long, default_value = commands::DATA, value_parser = path())]
    data: PathBuf,
}

/// A path that names something, in any bytes the system allows: an empty one is refused (clap's
/// own parser would say that no value was given).
fn path() -> impl clap::builder::TypedValueParser<Value = PathBuf> {
    use clap::builder::TypedValueParser;
    clap::builder::OsStringValueParser::new().try_map(|s| match s.is_empty() {
        true => Err("an empty path names no file or folder"),
        false => Ok(PathBuf::from(s)),
    })
}

/// One width of `--layers`: a whole number from 1 to 65,536.
fn width(s: &str) -> Result<u32, String> {
    const FORM: &str = "widths are written 128,64,32";
    if s.is_empty() {
        return Err(format!("an empty width (two commas in a row, or one at an end); {FORM}"));
    }
    match s.parse::<u32>() {
        Ok(w) if (1..=65_536).contains(&w) => Ok(w),
        Ok(w) => Err(format!("{w} is not in 1..=65536")),
        Err(e) if *e.kind() == std::num::IntErrorKind::PosOverflow => Err(format!("{s} is not in 1..=65536")),
        Err(_) => Err(format!("'{s}' is not a whole number of units; {FORM}")),
    }
}

fn positive(s: &str) -> Result<f32, String> {
    match s.parse::<f32>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err(format!("'{s}' is not a positive, finite number")),
    }
}

impl TrainArgs {
    fn config(&self) -> Config {
        Config {
            epochs: self.epochs as usize,
            batch_size: self.batch_size as usize,
            lr: self.lr,
            seed: self.seed,
            noise: self.noise,
            fresh_noise: self.fresh_noise,
            loss: self.loss,
            hidden: self.layers.iter().map(|&w| w as usize).collect(),
            arch: self.arch,
        }
    }
}

/// Prints the help or the version that `e` holds, as a command's result: a standard output that
/// cannot take it (`> /dev/full`) is an error, one that was closed (`| head -1`) is not.
fn help_or_version(e: &clap::Error) -> ExitCode {
    use std::io::Write as _;
    match e.print().and_then(|()| std::io::stdout().flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            say_err!("error: standard output: {e}");
            ExitCode::FAILURE
        }
        _ => ExitCode::SUCCESS,
    }
}

/// Parses the command line, runs the command on a pool of `--threads` workers, and turns the
/// outcome into the exit status: 0, 1 for bad data or files, 2 for bad usage, 128 plus the
/// signal's number for a run a signal stopped (130 for Ctrl-C).
/// Errors are one line on stderr, and a usage error's tips a line each after it.
pub fn main() -> ExitCode {
    let parsed = Cli::command().try_get_matches().and_then(|m| Ok((Cli::from_arg_matches(&m)?, given(&m))));
    let (cli, given) = match parsed {
        Ok(parsed) => parsed,
        Err(e) if !e.use_stderr() => return help_or_version(&e),
        Err(e) => {
            say_err!("{}", usage_message(&e));
            return ExitCode::from(2);
        }
    };
    if let Err(message) = crate::memory::set_limit().and(crate::engine::kernel::Path::from_env()) {
        say_err!("error: {}", escaped(&message));
        return ExitCode::from(2);
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = cli.threads.map_or(cores, |t| (t as usize).min(cores));
    // Everything runs on a thread of the pool: a parallel loop started from outside the pool
    // must wake the workers (about 20 µs); one started on a worker costs well under 1 µs.
    let result = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(Failure::from)
        .and_then(|pool| pool.install(|| run(cli, given, threads)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(message)) => {
            say_err!("error: {}", escaped(&message));
            ExitCode::from(2)
        }
        Err(Failure::Error(e)) => {
            say_err!("error: {}", escaped(&format!("{e:#}")));
            ExitCode::FAILURE
        }
        Err(Failure::Interrupted(signal)) => ExitCode::from((128 + signal) as u8),
    }
}

/// `message` with its control characters escaped (a newline as `\n`): a path may hold any of
/// them, and an error is one line.
fn escaped(message: &str) -> String {
    message
        .chars()
        .map(|c| if c.is_control() { c.escape_debug().to_string() } else { c.to_string() })
        .collect()
}

/// clap's message cut to what helps: its first line (with the arguments it lists, when it ends
/// in a colon), clap's tips, and a tip of ours where the command line put something in the
/// wrong place; each tip a line of its own.
fn usage_message(e: &clap::Error) -> String {
    let message = e.to_string();
    let mut lines = vec![one_line(&message)];
    let tips = message.lines().map(str::trim).filter(|l| l.starts_with("tip:"));
    lines.extend(tips.map(|tip| format!("  {tip}")));
    lines.extend(our_tip(e, &message).map(|tip| format!("  tip: {tip}")));
    lines.join("\n")
}

/// clap's first line, and when that ends in a colon (as "the following required arguments were
/// not provided:" does), the indented lines it introduces.
fn one_line(message: &str) -> String {
    let mut lines = message.lines();
    let first = lines.next().unwrap_or("error: bad arguments").to_string();
    if !first.ends_with(':') {
        return first;
    }
    let listed: Vec<&str> = lines.take_while(|l| l.starts_with(' ')).map(str::trim).collect();
    format!("{first} {}", listed.join(", "))
}

/// What clap does not say: the commands there are, for a command it does not know; where an
/// input goes, for a word on its own (`dae eval model.safetensors`); which command a flag
/// belongs to, for a flag given before its command or to the wrong one (`dae --model X eval`,
/// `dae --data X train`); and why a negative number is taken for a flag (`--epochs -1`).
fn our_tip(e: &clap::Error, message: &str) -> Option<String> {
    use clap::error::{ContextKind, ErrorKind};
    let cli = Cli::command();
    let commands: Vec<&str> = cli.get_subcommands().map(|c| c.get_name()).collect();
    match e.kind() {
        ErrorKind::InvalidSubcommand => {
            Some(format!("the commands are {}; 'dae --help' says what each does", commands.join(", ")))
        }
        // `dae --data X train`: a flag both the top level (training's) and the command take.
        ErrorKind::ArgumentConflict => {
            let command = e.get(ContextKind::InvalidSubcommand)?.to_string();
            let flag = e.get(ContextKind::PriorArg)?.to_string();
            Some(format!("a command's flags go after it: dae {command} {} …", flag.split(' ').next()?))
        }
        ErrorKind::UnknownArgument => {
            let arg = e.get(ContextKind::InvalidArg)?.to_string();
            if arg.parse::<f64>().is_ok() {
                return Some(format!("{arg} is read as a flag: no setting takes a negative number"));
            }
            if !arg.starts_with('-') {
                if arg.ends_with(".safetensors") {
                    return Some(format!("name a model with --model: --model {arg}"));
                }
                let usage = message.lines().find_map(|l| l.strip_prefix("Usage: "))?;
                return Some(format!("every input but denoise's images is named by a flag: {usage}"));
            }
            let name = arg.trim_start_matches('-').split('=').next()?;
            let has = |c: &clap::Command| c.get_arguments().any(|a| a.get_long() == Some(name));
            let owners: Vec<&str> = cli.get_subcommands().filter(|c| has(c)).map(|c| c.get_name()).collect();
            let (first, owners) = (owners.first()?, owners.join(", "));
            // The command the flag was given to, as clap's usage line names it.
            let usage = message.lines().find_map(|l| l.strip_prefix("Usage: dae "));
            let given_to = usage.and_then(|u| u.split(' ').next()).filter(|w| commands.contains(w));
            Some(match given_to {
                Some(command) => format!("{arg} is a flag of {owners}, not of {command}"),
                None => {
                    format!("{arg} is a flag of {owners}; a command's flags go after it: dae {first} {arg} …")
                }
            })
        }
        _ => None,
    }
}

/// The training settings a resumed run keeps, by their flags' ids, and `epochs`, which it
/// takes from the run unless given.
const SETTINGS: [&str; 10] =
    ["epochs", "batch_size", "lr", "seed", "noise", "fresh_noise", "loss", "layers", "arch", "out"];

/// Which of [`SETTINGS`] were given on the command line (not left at their defaults).
fn given(matches: &clap::ArgMatches) -> Vec<&'static str> {
    let train = matches.subcommand_matches("train").unwrap_or(matches);
    let on_line = |id: &&str| train.value_source(id) == Some(clap::parser::ValueSource::CommandLine);
    SETTINGS.iter().copied().filter(|id| on_line(id)).collect()
}

fn run(cli: Cli, given: Vec<&'static str>, threads: usize) -> Result<(), Failure> {
    let command = cli.command.unwrap_or(Command::Train(cli.train));
    // Training stops on a signal at its next step and saves (`Stopper`); the rest end at once.
    if !matches!(command, Command::Train(_)) {
        crate::cli::signals::end_on_signals()?;
    }
    let result = match command {
        Command::Train(t) => {
            let plan = commands::Training {
                config: t.config(),
                data: t.data.clone(),
                out: t.out.clone(),
                resume: t.resume.clone(),
                given,
                profile: t.profile,
                engine: t.engine,
                threads,
            };
            commands::train(&plan)
        }
        Command::Eval(e) if e.sweep => commands::sweep(&commands::model_file(&e.model)?, &e.data, e.seed),
        Command::Eval(e) => commands::eval(&commands::model_file(&e.model)?, &e.data, e.noise, e.seed),
        Command::Denoise(d) => {
            commands::denoise(&commands::model_file(&d.model)?, &d.images, &d.out, (d.noise, d.seed), d.as_is)
        }
        Command::Encode(e) => commands::encode(&commands::model_file(&e.model)?, &e.data, &e.out),
        Command::Report(r) => commands::report(&r.dir, &r.data),
    };
    // What the command said last, its result or its error, is how the process ends: a signal
    // from now on changes nothing.
    crate::cli::signals::finished();
    result
}
