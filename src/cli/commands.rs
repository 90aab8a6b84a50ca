//! What each command does: train (and resume), eval, denoise, encode. Each prints what a person
//! watching needs and returns a [`Failure`] that says how it ended. The flags are parsed in
//! [`crate::cli`]; the numeric work is in the library's other modules.

use std::collections::HashMap;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow};
use indicatif::{ProgressBar, ProgressStyle};
use ndarray::{Array2, ArrayView2, Axis, s};

use crate::cli::signals::{self, Stopper};
use crate::data::digit::{self, Background};
use crate::data::mnist::{self, Mnist};
use crate::data::noise::{Noise, NoiseStream, corrupt_set};
use crate::data::rng::Purpose;
use crate::engine::layer::Layer;
use crate::engine::model::{Model, Workspace, autoencoder_activations, autoencoder_widths};
use crate::eval::evaluate::{self, Evaluation};
use crate::files::atomic::{MadeFolders, folder_of, remove_stale_temps, write_all_atomic, write_atomic};
use crate::files::checkpoint::{self, Owner, Snapshots, State};
use crate::files::figure;
use crate::files::metrics::{DataPrint, DeadShares, Metrics, new_run_name};
use crate::files::plot;
use crate::files::pngio::{self, Picture};
use crate::files::run_lock::RunLock;
use crate::memory;
use crate::report::sections::fixed;
use crate::report::{self, DIGITS_SHOWN, MEASURED_TEST, MEASURED_TRAIN, Measured, TEST_SHOWN};
use crate::train::memory::{end_of_run_bytes, model_training_bytes, training_bytes};
use crate::train::profile;
use crate::train::{Arch, Config, Engine, TrainError, Trainer};

/// How a command ends when it does not succeed.
#[derive(Debug)]
pub enum Failure {
    /// Bad flags: exit status 2.
    Usage(String),
    /// Bad data or files, or training that diverged: exit status 1.
    Error(anyhow::Error),
    /// A signal that stops a run (Ctrl-C, `kill`, a closed terminal), after saving: exit status
    /// 128 plus the signal's number, as the shell reports a process the signal ended (130 for
    /// Ctrl-C's SIGINT, 143 for SIGTERM, 129 for SIGHUP).
    Interrupted(i32),
}

impl<E: Into<anyhow::Error>> From<E> for Failure {
    fn from(e: E) -> Failure {
        Failure::Error(e.into())
    }
}

/// A training run as the command line asked for it.
#[derive(Debug, Clone)]
pub struct Training {
    /// The run's settings.
    pub config: Config,
    /// The folder with the data set.
    pub data: PathBuf,
    /// The folder for the run's files.
    pub out: PathBuf,
    /// A run folder to continue; its settings replace `config`, and its epochs too unless
    /// `--epochs` was given.
    pub resume: Option<PathBuf>,
    /// The settings given on the command line, by flag id (`lr`, `seed`, …): with `resume`,
    /// each must agree with the run's, but `epochs`, which sets how far it goes on (the run's
    /// own number when not given).
    pub given: Vec<&'static str>,
    /// Print the time per phase after training, and the median epoch against its products' floor.
    pub profile: bool,
    /// The engine that computes the steps, recorded in `metrics.json`.
    pub engine: Engine,
    /// The size of the pool the run is on, recorded in `metrics.json`.
    pub threads: usize,
}

/// Trains (or resumes), printing one line per epoch and saving the run after each; at the end,
/// measures the noise sweep and the k-NN accuracy for the report.
pub fn train(plan: &Training) -> Result<(), Failure> {
    let out = plan.resume.clone().unwrap_or_else(|| plan.out.clone());
    let flag = if plan.resume.is_some() { "--resume" } else { "--out" };
    if plan.resume.is_some() {
        check_run_folder(&out).map_err(|m| anyhow!("--resume {m}"))?;
    }
    // A new run's settings and data are checked before its folder is made or taken, so that a
    // refused command leaves nothing behind.
    let data = load_data_of_run(&plan.data, plan.resume.as_deref())?;
    // A training file copied over the test one (or the other way) still loads: said, not refused.
    if data.train.images.pixels == data.test.images.pixels {
        say_err!(
            "warning: {}: the training and test images are the same; the validation loss and the report \
             measure images the model trains on",
            shell_word(&plan.data)
        );
    }
    if plan.resume.is_none() {
        let canonical = |p: &Path| std::fs::canonicalize(p).ok();
        if canonical(&out).is_some_and(|o| Some(o) == canonical(&plan.data)) {
            return Err(Failure::Usage(format!("--out {}: the --data folder; name another", out.display())));
        }
        plan.config.check().map_err(Failure::Usage)?;
        if plan.config.arch == Arch::Conv && plan.given.contains(&"layers") {
            return Err(Failure::Usage(CONV_HAS_NO_LAYERS.to_string()));
        }
        check_arch(&plan.config, &data)?;
        let config = &plan.config;
        let model = || {
            let mut rng = crate::data::rng::stream(config.seed, Purpose::Init, 0);
            config.arch.model((data.train.images.rows, data.train.images.cols), &config.hidden, &mut rng)
        };
        let training = |rows| training_bytes(config, &data, rows);
        check_training_memory(config, &data, false, training, || end_of_run_bytes(&model(), &data))?;
    }
    // What to type next, should the run stop: the --data it trains on goes with it.
    let data_flag = match plan.data == Path::new(DATA) {
        true => String::new(),
        false => format!(" --data {}", shell_word(&plan.data)),
    };
    let resume_flags = format!("--resume {}{data_flag}", shell_word(&out));
    let report = format!("dae report {}{data_flag}", shell_word(&out));
    // From here on a signal stops the run cleanly, at the first step if it comes before it.
    let stopper = Stopper::install(&out, &report)?;
    // A run that ends before it saves anything takes the folders it made with it.
    let mut made = prepare_out(&out)?;
    let lock =
        RunLock::acquire(&out).map_err(|e| Failure::Error(anyhow!("{flag} {}: {e}", out.display())))?;
    made.hold(&out, lock);
    // A run that was killed before renaming its temporary files left them; the folder is ours now.
    remove_stale_temps(&out).with_context(|| format!("{flag} {}: cannot clear", out.display()))?;
    let (trainer, mut metrics, mut snapshots) = match &plan.resume {
        None => {
            let print = Some(DataPrint::of(&data, &plan.data));
            let metrics = Metrics {
                config: plan.config.clone(),
                data: print,
                threads: plan.threads,
                engine: plan.engine,
                run: Some(new_run_name()),
                history: Vec::new(),
                dead_units: Vec::new(),
            };
            let snapshots = Snapshots::new(shown(&data), data.test.images.pixels_per_image(), 1);
            let trainer = Trainer::new(plan.config.clone(), &data).with_engine(plan.engine);
            // Refused as the training's own need is: a setting that asks too much (status 2).
            check_report_memory(&trainer.model, &data, &out).map_err(|e| match e {
                Failure::Error(e) => Failure::Usage(format!("{e:#}")),
                other => other,
            })?;
            (trainer, metrics, snapshots)
        }
        Some(dir) => resume(dir, plan, &data)?,
    };
    let mut trainer = trainer.with_interrupt(stopper.interrupt_flag());
    // A previous run in the folder is set aside when this one first has something to save: a
    // run that fails before then (its first epoch diverged) leaves it in place, and so does one
    // whose first save fails (a full disk): what it wrote goes, and the previous run comes back.
    let mut first_save = plan.resume.is_none();
    let mut save_run = |trainer: &mut Trainer, metrics: &Metrics, snapshots: &Snapshots, samples: &[_; 3]| {
        let first = std::mem::take(&mut first_save);
        let aside = if first { set_aside_previous_run(&out)? } else { None };
        let saved = save(&out, trainer, metrics, snapshots, samples).map_err(|failure| match failure {
            // Each file is replaced whole, the state (what --resume reads) last: the one saved
            // before is still there. `--epochs`, as metrics.json may not say it yet.
            Failure::Error(e) if !first => {
                let (kept, epochs) = (shell_word(&out), metrics.config.epochs);
                let next = format!("once it can be written, continue with {resume_flags} --epochs {epochs}");
                anyhow!("{e:#}; the run's state as saved before stays in {kept}; {next}").into()
            }
            failure => failure,
        });
        match (&aside, &saved) {
            (Some(aside), Ok(())) => {
                say!("the run that was in {} is now in {}", shell_word(&out), shell_word(aside))
            }
            (_, Err(_)) if first => {
                // Half a run (no state file to resume from) would be set aside later as a run.
                RUN_FILES.iter().for_each(|f| drop(std::fs::remove_file(out.join(f))));
                if let Some(aside) = &aside {
                    move_back(aside, &out, &RUN_FILES);
                }
            }
            _ => {}
        }
        if saved.is_ok() {
            made.keep();
        }
        saved
    };
    let config = trainer.config.clone();
    // The kernel's rate is measured before training and again after it, and the higher kept: a
    // neighbour busy while it is measured once would lower the floor it sets and flatter the run.
    let calibrate = |trainer: &Trainer| {
        let (m, k, n) = profile::typical_product(&trainer.model, trainer.batch_rows());
        profile::kernel_gflops(m, k, n, 0.5)
    };
    let kernel_before = plan.profile.then(|| calibrate(&trainer));
    let steps = data.train.images.count.div_ceil(config.batch_size);
    let first_epoch = trainer.progress.epoch + 1;
    for epoch in first_epoch..=config.epochs {
        let bar = progress_bar(epoch, config.epochs, steps);
        // Without a terminal the bar is hidden: a line every ten seconds instead.
        let mut said = std::time::Instant::now();
        let stats = trainer.train_epoch(|done, total| {
            bar.set_position(done as u64);
            if bar.is_hidden() && said.elapsed().as_secs() >= 10 {
                say_err!("epoch {epoch}/{}: step {done} of {total}", config.epochs);
                said = std::time::Instant::now();
            }
        });
        bar.finish_and_clear();
        let stats = match stats {
            Ok(stats) => stats,
            Err(TrainError::Interrupted(progress)) if progress.epoch == 0 && progress.step == 0 => {
                // Nothing trained, nothing to save: a previous run in the folder stays, and a
                // folder this run made goes (`MadeFolders`).
                say_err!("interrupted by {} before the first step; nothing was saved", stopper.signal_name());
                return Err(stopper.failure());
            }
            Err(TrainError::Interrupted(progress)) => {
                let samples = trainer.samples(DIGITS_SHOWN);
                save_run(&mut trainer, &metrics, &snapshots, &samples)?;
                let out = shell_word(&out);
                let by = stopper.signal_name();
                say_err!(
                    "interrupted by {by} after {progress}; saved in {out}; continue with {resume_flags}"
                );
                return Err(stopper.failure());
            }
            Err(e) => {
                // A resumed run keeps its settings: the smaller rate is a new run's.
                let hint = match plan.resume {
                    None => "try a smaller --lr".to_string(),
                    Some(_) => format!("the run's --lr is {}; a new run may take a smaller one", config.lr),
                };
                return Err(anyhow!("{e}; {hint}").into());
            }
        };
        let part = match stats.from_step {
            0 => String::new(),
            step => format!(" (steps {} to {steps})", step + 1),
        };
        say!(
            "epoch {epoch}/{}  loss {}  val_loss {}  {:.2} s{part}  {}/step",
            config.epochs,
            fixed(stats.train_loss, 4),
            fixed(stats.val_loss, 4),
            stats.seconds,
            duration(stats.seconds / (steps - stats.from_step) as f64),
        );
        metrics.history.push(stats);
        let dead = trainer.dead_units();
        metrics.dead_units.push(DeadShares { epoch, layers: dead.layers(), shares: dead.shares() });
        let samples = trainer.samples(DIGITS_SHOWN);
        snapshots.push(samples[2].view());
        save_run(&mut trainer, &metrics, &snapshots, &samples)?;
    }
    if stopper.epochs_done() {
        let (by, out) = (stopper.signal_name(), shell_word(&out));
        say_err!("interrupted by {by} after the last epoch; saved in {out}; make its report with {report}");
        return Err(stopper.failure());
    }
    let profile = kernel_before.map(|before| {
        let kernel = calibrate(&trainer).max(before);
        let (train, test) = (data.train.images.count, data.test.images.count);
        let ours = &metrics.history[first_epoch - 1..];
        let floor = profile::Floor::of(&trainer.model, train, test, ours);
        trainer.profile.report(&trainer.model, kernel).with_floor(floor).to_string()
    });
    let (model, clean, noisy) = trainer.finish();
    // The report draws the first test images only: the rest (50 MB of MNIST's) goes before the
    // measurements take their memory.
    let shown = |set: Array2<f32>| set.slice(s![..TEST_SHOWN.min(set.nrows()), ..]).to_owned();
    let (clean, noisy) = (shown(clean), shown(noisy));
    let measured = measure(&model, &data, config.seed);
    let codes = evaluate::encode(&model, noisy.view());
    let test_set = (clean.view(), noisy.view(), codes.view());
    let run = report_of(&out, &metrics, &model, &data, test_set, &snapshots, Some(&measured));
    write_report(&out, &run).map_err(|e| match e {
        Failure::Error(e) => anyhow!("{e:#}; the run itself is saved, and {report} writes its report").into(),
        other => other,
    })?;
    signals::finished();
    say!("wrote {}", shell_word(&out));
    if let Some(profile) = profile {
        say!("{profile}");
    }
    Ok(())
}

/// The test images the figure and the snapshots show: [`DIGITS_SHOWN`], or all if fewer.
fn shown(data: &Mnist) -> usize {
    DIGITS_SHOWN.min(data.test.images.count)
}

/// The trainer, metrics and snapshots of the run saved in `dir`, set to go on to
/// `plan.config.epochs` if `--epochs` was given, else to the epochs its metrics.json records
/// (those it was started, or last resumed, with).
fn resume<'a>(
    dir: &Path,
    plan: &Training,
    data: &'a Mnist,
) -> Result<(Trainer<'a>, Metrics, Snapshots), Failure> {
    let (mut metrics, state) = open_run(dir, data, &plan.data)?;
    check_given(plan, &metrics.config, dir)?;
    let (done, given) = (state.progress.epoch, plan.given.contains(&"epochs"));
    let epochs = if given { plan.config.epochs } else { metrics.config.epochs };
    if done >= epochs {
        let message = if given {
            format!("--epochs {epochs}: the run in {} has done {done} already", dir.display())
        } else {
            let dir = dir.display();
            format!(
                "the run in {dir} has done all {epochs} of its epochs; give --epochs N with N above {done}"
            )
        };
        return Err(Failure::Usage(message));
    }
    let steps = data.train.images.count.div_ceil(metrics.config.batch_size);
    let (done, step, path) = (state.progress.epoch, state.progress.step, dir.join("state.safetensors"));
    if step >= steps {
        return Err(anyhow!("{}: step {step} of an epoch of {steps} steps", path.display()).into());
    }
    // Adam counts every step the run took: `t` is the progress's step, epochs of `steps` each.
    let taken = done.checked_mul(steps).and_then(|n| n.checked_add(step));
    if taken != Some(state.adam.t as usize) {
        let taken = taken.map_or("more than a count holds".into(), |n| n.to_string());
        let t = state.adam.t;
        let message = format!("adam.t = {t}, but {done} epochs of {steps} steps and {step} more are {taken}");
        return Err(anyhow!("{}: {message}", path.display()).into());
    }
    let bytes = |rows| model_training_bytes(&state.model, data, rows, epochs);
    let end = || end_of_run_bytes(&state.model, data);
    check_training_memory(&metrics.config, data, true, bytes, end).map_err(|e| match e {
        Failure::Usage(m) => anyhow!("{}: {m}", dir.display()).into(),
        other => other,
    })?;
    metrics.config.epochs = epochs;
    metrics.threads = plan.threads;
    metrics.engine = plan.engine;
    let snapshots = snapshots_of(&state, data);
    let trainer = Trainer::resume(metrics.config.clone(), data, state.model, state.adam, state.progress)
        .with_engine(plan.engine);
    Ok((trainer, metrics, snapshots))
}

/// The first setting other than the epochs (which `--epochs` may raise) in which `a` and `b`
/// differ: its name and its two values, as metrics.json writes them.
fn first_difference(a: &Config, b: &Config) -> Option<(String, String, String)> {
    // Through the text metrics.json holds: an f32 made a JSON value directly would show its
    // f64 digits (0.0010000000474974513 for 0.001).
    let json = |c: &Config| {
        serde_json::to_string(c).and_then(|text| serde_json::from_str::<serde_json::Value>(&text))
    };
    let (a, b) = (json(a).ok()?, json(b).ok()?);
    let (a, b) = (a.as_object()?, b.as_object()?);
    a.iter()
        .filter(|(name, _)| name.as_str() != "epochs")
        .find(|(name, value)| b.get(*name) != Some(*value))
        .map(|(name, value)| {
            (name.clone(), value.to_string(), b.get(name).map_or("nothing".into(), |v| v.to_string()))
        })
}

/// The snapshots of a run's state, or new ones from its next epoch on if it kept none.
fn snapshots_of(state: &State, data: &Mnist) -> Snapshots {
    let pixels = data.test.images.pixels_per_image();
    state.snapshots.clone().unwrap_or_else(|| Snapshots::new(shown(data), pixels, state.progress.epoch + 1))
}

/// Whether `dir` is a run's folder, before anything is read or locked: a folder that holds a
/// `metrics.json`. If not, what it is, in a line that starts with `dir`.
fn check_run_folder(dir: &Path) -> Result<(), String> {
    let what = if !dir.exists() {
        "no such folder"
    } else if !dir.is_dir() {
        "not a folder"
    } else if std::fs::symlink_metadata(dir.join("metrics.json")).is_err() {
        "not a run (no metrics.json)"
    } else {
        return Ok(());
    };
    Err(format!(
        "{}: {what}; name the folder of a run, which training writes (runs/latest, or its --out)",
        dir.display()
    ))
}

/// The metrics and state of the run saved in `dir`, checked against each other and against
/// `data` (read from `data_path`); the metrics cut to the epochs the state has done.
fn open_run(dir: &Path, data: &Mnist, data_path: &Path) -> Result<(Metrics, State), Failure> {
    let path = dir.join("metrics.json");
    let mut metrics =
        Metrics::read(&path).with_context(|| format!("{}: cannot read the run", path.display()))?;
    metrics.config.check().map_err(|m| anyhow!("{}: {m}", path.display()))?;
    // Before the state is read: a run of other data is refused without loading it (a 266 MiB
    // state took 709 MiB to be refused so).
    let print = DataPrint::of(data, data_path);
    if let Some(saved) = metrics.data.as_ref().filter(|saved| !saved.same_data(&print)) {
        let message = format!(
            "the run was trained on the data in {} ({}); --data {} holds other data ({})",
            saved.path,
            saved.describe(),
            print.path,
            print.describe()
        );
        return Err(anyhow!("{}: {message}", path.display()).into());
    }
    metrics.data = Some(print);
    let state_path = dir.join("state.safetensors");
    if std::fs::symlink_metadata(&state_path).is_err() {
        // What a run killed outright while saving its first epoch leaves (a run whose first
        // save fails removes what it wrote).
        let message = "metrics.json but no state.safetensors: the run was stopped while saving its first \
                       epoch, or the file was removed; train it anew";
        return Err(anyhow!("{}: {message}", dir.display()).into());
    }
    let state = checkpoint::load_state(&state_path, metrics.config.lr)?;
    if let (Some(ours), Some(theirs)) = (&metrics.run, &state.run)
        && ours != theirs
    {
        let message = format!("is run {theirs}'s state, and {} is run {ours}'s history", path.display());
        return Err(anyhow!("{}: {message}: two runs' files in one folder", state_path.display()).into());
    }
    // A run from before runs were named takes a name now, which its state takes at the next save.
    metrics.run = metrics.run.take().or_else(|| state.run.clone()).or_else(|| Some(new_run_name()));
    check_fits(&state.model, None, data, dir)?;
    check_report_memory(&state.model, data, dir)?;
    check_agrees(&metrics.config, &state.model, data).map_err(|m| anyhow!("{}: {m}", path.display()))?;
    // The settings the model does not show: a batch size or seed edited by hand would shift
    // where a half-done epoch goes on.
    if let Some(saved) = &state.config
        && let Some((name, ours, theirs)) = first_difference(saved, &metrics.config)
    {
        let message = format!(
            "was saved with {name} = {ours}, and {} says {theirs}: one was edited, or they are two runs'",
            path.display()
        );
        return Err(anyhow!("{}: {message}", state_path.display()).into());
    }
    if let Some(s) = state.snapshots.as_ref().filter(|s| s.images != shown(data)) {
        let message =
            format!("report.reconstructions holds {} images an epoch, {} expected", s.images, shown(data));
        return Err(anyhow!("{}: {message}", state_path.display()).into());
    }
    // metrics.json is written before the state, so it may be an epoch ahead of it; never behind.
    let done = state.progress.epoch;
    if metrics.history.len() < done {
        let message =
            format!("holds {}, but the state has done {done}", plural(metrics.history.len(), "epoch"));
        return Err(anyhow!("{}: {message}", path.display()).into());
    }
    metrics.history.truncate(done);
    metrics.dead_units.retain(|d| d.epoch <= done);
    Ok((metrics, state))
}

/// Writes the report of the run in `dir` anew, measuring the noise sweep and the k-NN accuracy
/// of its model on `data` (which must be the data it was trained on).
pub fn report(dir: &Path, data_path: &Path) -> Result<(), Failure> {
    check_run_folder(dir).map_err(|m| anyhow!(m))?;
    let data = load_data_of_run(data_path, Some(dir))?;
    let lock = RunLock::acquire(dir).map_err(|e| Failure::Error(anyhow!("{}: {e}", dir.display())))?;
    let (metrics, state) = open_run(dir, &data, data_path).inspect_err(|_| {
        // A folder that is not a whole run, or a run of other data, is left as it was found:
        // the lock file goes, while it is still held.
        if lock.created() {
            let _ = std::fs::remove_file(dir.join(".lock"));
        }
    })?;
    remove_stale_temps(dir).with_context(|| format!("{}: cannot clear", dir.display()))?;
    let config = &metrics.config;
    let shown = data.test.head(TEST_SHOWN).images;
    let (clean, noisy) = corrupt_set(&shown, config.noise, config.seed, Purpose::TestNoise);
    let snapshots = snapshots_of(&state, &data);
    // Adam's moments, twice the model, are no part of the report: they go before it measures
    // (a `--layers 4096,2048` run's report peaked at twice the need it was checked for).
    let State { model, adam, .. } = state;
    drop(adam);
    let measured = measure(&model, &data, config.seed);
    let codes = evaluate::encode(&model, noisy.view());
    let views = (clean.view(), noisy.view(), codes.view());
    let run = report_of(dir, &metrics, &model, &data, views, &snapshots, Some(&measured));
    write_report(dir, &run)?;
    signals::finished();
    say!("wrote {}", shell_word(&dir.join("report.html")));
    Ok(())
}

/// The report's noise sweep and k-NN accuracy of `model`, saying so while it measures them.
fn measure(model: &Model, data: &Mnist, seed: u64) -> Measured {
    let (test, train) =
        (MEASURED_TEST.min(data.test.images.count), MEASURED_TRAIN.min(data.train.images.count));
    let doing = stage(&format!(
        "measuring the report's noise sweep and k-NN accuracy on {test} test and {}",
        plural(train, "training image")
    ));
    let measured = Measured::of(model, data, seed);
    doing.finish_and_clear();
    measured
}

/// The report of a run in `dir`; `test` is the clean and the corrupted test set, and the codes
/// of the first [`TEST_SHOWN`] corrupted images.
fn report_of<'a>(
    dir: &'a Path,
    metrics: &'a Metrics,
    model: &'a Model,
    data: &'a Mnist,
    (clean, noisy, codes): (ArrayView2<'a, f32>, ArrayView2<'a, f32>, ArrayView2<'a, f32>),
    snapshots: &'a Snapshots,
    measured: Option<&'a Measured>,
) -> report::Run<'a> {
    let images = &data.test.images;
    report::Run {
        dir,
        metrics,
        model,
        image: (images.rows, images.cols),
        clean,
        noisy,
        codes,
        labels: &data.test.labels,
        snapshots,
        measured,
    }
}

/// Writes `run`'s report as `report.html` in `dir`.
fn write_report(dir: &Path, run: &report::Run) -> Result<(), Failure> {
    let path = dir.join("report.html");
    report::write(&path, run).with_context(|| cannot_write(&path))?;
    Ok(())
}

/// The data folder every command reads when `--data` is not given (as `./data-fetch.sh` fills it).
pub const DATA: &str = "data";

/// Why `--layers` and the convolutional model do not go together.
const CONV_HAS_NO_LAYERS: &str =
    "--layers: the conv model's layers are fixed; --layers sets the widths of --arch dense";

/// A usage error if a setting given beside `--resume DIR` differs from the run's `saved` one;
/// one that agrees is accepted.
fn check_given(plan: &Training, saved: &Config, dir: &Path) -> Result<(), Failure> {
    let asked = &plan.config;
    if saved.arch == Arch::Conv && plan.given.contains(&"layers") {
        return Err(Failure::Usage(CONV_HAS_NO_LAYERS.to_string()));
    }
    for &id in &plan.given {
        let (flag, asked, saved) = match id {
            "batch_size" => ("--batch-size", asked.batch_size.to_string(), saved.batch_size.to_string()),
            "lr" => ("--lr", asked.lr.to_string(), saved.lr.to_string()),
            "seed" => ("--seed", asked.seed.to_string(), saved.seed.to_string()),
            "noise" => ("--noise", asked.noise.to_string(), saved.noise.to_string()),
            "fresh_noise" if asked.fresh_noise != saved.fresh_noise => {
                let dir = dir.display();
                let message = format!(
                    "--fresh-noise: the run in {dir} draws its noise once, and a resumed run keeps its settings"
                );
                return Err(Failure::Usage(message));
            }
            "loss" => ("--loss", asked.loss.to_string(), saved.loss.to_string()),
            "layers" => ("--layers", join(&asked.hidden), join(&saved.hidden)),
            "arch" => ("--arch", asked.arch.to_string(), saved.arch.to_string()),
            "out" if same_file(&plan.out, dir) => continue,
            "out" => {
                let (asked, dir) = (plan.out.display(), dir.display());
                let message = format!(
                    "--out {asked}: a resumed run writes into its own folder, {dir}; leave --out out"
                );
                return Err(Failure::Usage(message));
            }
            _ => continue,
        };
        if asked != saved {
            return Err(Failure::Usage(format!(
                "{flag} {asked}: the run in {} has {saved}, and a resumed run keeps its settings",
                dir.display()
            )));
        }
    }
    Ok(())
}

/// An error unless the model in a run's state is the one its settings describe.
fn check_agrees(config: &Config, model: &Model, data: &Mnist) -> Result<(), String> {
    match config.arch {
        Arch::Conv if model.is_dense() => {
            Err("arch 'conv', but state.safetensors holds a dense model".to_string())
        }
        Arch::Dense if !model.is_dense() => {
            Err("arch 'dense', but state.safetensors holds a convolutional model".to_string())
        }
        Arch::Dense => {
            let expected = autoencoder_widths(data.train.images.pixels_per_image(), &config.hidden);
            let widths = model.widths();
            if widths != expected {
                return Err(format!(
                    "hidden {:?} makes widths {expected:?}, but state.safetensors holds {widths:?}",
                    config.hidden
                ));
            }
            let activations = autoencoder_activations(model.layers.len());
            match (0..activations.len()).find(|&i| model.activations[i] != activations[i]) {
                None => Ok(()),
                Some(i) => Err(format!(
                    "layer {i}: arch 'dense' has {} after it, but state.safetensors holds {}",
                    activations[i].name(),
                    model.activations[i].name()
                )),
            }
        }
        Arch::Conv => {
            // The conv model's layers are fixed by the image size: the state's must be those.
            let images = &data.train.images;
            let init = &mut crate::data::rng::stream(0, Purpose::Init, 0);
            let expected = Model::conv_autoencoder(images.rows, images.cols, init);
            let layer = |m: &Model, i: usize| {
                let (layer, activation) = (&m.layers[i], m.activations[i].name());
                let sizes = layer
                    .param_sizes()
                    .map_or("no parameters".into(), |[w, b]| format!("{w} + {b} parameters"));
                (report::sections::describe(layer), sizes, activation)
            };
            let (ours, theirs) = (expected.layers.len(), model.layers.len());
            if ours != theirs {
                return Err(format!("arch 'conv' has {ours} layers, but state.safetensors holds {theirs}"));
            }
            match (0..ours).find(|&i| layer(&expected, i) != layer(model, i)) {
                None => Ok(()),
                Some(i) => {
                    let [(a, x, f), (b, y, g)] = [layer(&expected, i), layer(model, i)];
                    Err(format!(
                        "layer {i}: arch 'conv' has {a} ({f}, {x}), but state.safetensors holds {b} ({g}, {y})"
                    ))
                }
            }
        }
    }
}

/// The files a run leaves in its folder.
const RUN_FILES: [&str; 6] = [
    "metrics.json",
    "model.safetensors",
    "state.safetensors",
    "reconstructions.png",
    "loss.svg",
    "report.html",
];

/// Moves the files of a run already in `out` into a new sibling folder `<out>.<n>` (the first
/// free `n`), so that a new run neither replaces nor mixes with it; that folder is returned.
/// `out` must be held ([`RunLock`]), so no other run is writing them.
fn set_aside_previous_run(out: &Path) -> Result<Option<PathBuf>, Failure> {
    let present: Vec<&str> = RUN_FILES.iter().copied().filter(|f| out.join(f).exists()).collect();
    if present.is_empty() {
        return Ok(None);
    }
    // `--out .` or `..` has no name of its own: its canonical path does. (A named one keeps its
    // name, a link's included, so the run goes beside it.)
    let out_named = match out.file_name() {
        Some(_) => out.to_path_buf(),
        None => out.canonicalize().unwrap_or_else(|_| out.to_path_buf()),
    };
    let name = out_named.file_name().map_or(b"run".as_slice(), |n| n.as_bytes());
    let aside = (1..)
        .map(|n| out_named.with_file_name(aside_name(name, n)))
        .find(|p| std::fs::symlink_metadata(p).is_err())
        .expect("a free name");
    std::fs::create_dir(&aside).with_context(|| format!("{}: cannot create", aside.display()))?;
    for (i, file) in present.iter().enumerate() {
        if let Err(e) = move_file(&out.join(file), &aside.join(file)) {
            move_back(&aside, out, &present[..i]);
            let message = format!("{}: cannot move into {}: {e}", out.join(file).display(), aside.display());
            return Err(anyhow!(message).into());
        }
    }
    Ok(Some(aside))
}

/// Moves the `files` that are in `aside` back into `out` and removes `aside`: a run set aside
/// by [`set_aside_previous_run`] goes back where it was, and nothing is left behind.
fn move_back(aside: &Path, out: &Path, files: &[&str]) {
    for file in files.iter().filter(|f| aside.join(f).exists()) {
        let _ = move_file(&aside.join(file), &out.join(file));
    }
    let _ = std::fs::remove_dir(aside);
}

/// `<name>.<n>`, byte for byte (a name that is not UTF-8 stays what it was), with `name` cut
/// short where the whole would exceed a file name's 255 bytes.
fn aside_name(name: &[u8], n: usize) -> std::ffi::OsString {
    let suffix = format!(".{n}");
    let keep = name.len().min(255 - suffix.len());
    let mut bytes = name[..keep].to_vec();
    bytes.extend(suffix.as_bytes());
    std::ffi::OsString::from_vec(bytes)
}

/// Moves `from` to `to`: a rename, or where they lie on different filesystems (a run folder that
/// is a mount point, or a link to one), an atomic copy ([`write_atomic`]: a process killed part
/// way leaves a temporary file, never half of `to`) and then the original removed.
fn move_file(from: &Path, to: &Path) -> std::io::Result<()> {
    match std::fs::rename(from, to) {
        Err(e) if e.raw_os_error() == Some(libc::EXDEV) => {
            write_atomic(to, |w| std::io::copy(&mut std::fs::File::open(from)?, w).map(drop))?;
            std::fs::remove_file(from).inspect_err(|_| {
                let _ = std::fs::remove_file(to); // the original is still there: one copy only
            })
        }
        moved => moved,
    }
}

/// Writes the run's files into `out`: the model, the figure of `samples` (clean, corrupted and
/// reconstructed test images, [`Trainer::samples`]), `metrics.json`, the loss curve, the report,
/// and last the state that `--resume` reads, so that whatever a crash interrupts, the state on
/// disk is whole.
fn save(
    out: &Path,
    trainer: &mut Trainer,
    metrics: &Metrics,
    snapshots: &Snapshots,
    samples: &[Array2<f32>; 3],
) -> Result<(), Failure> {
    let data = trainer.data();
    let image = (data.test.images.rows, data.test.images.cols);
    checkpoint::save(&trainer.model, image, &out.join("model.safetensors"))?;
    let views: Vec<_> = samples.iter().map(|a| a.view()).collect();
    let path = out.join("reconstructions.png");
    let labels = ["original", "noisy", "reconstruction"];
    let zoom = figure::magnification(image.0.max(image.1), 112).min(4);
    figure::write_grid(&path, &views, &labels, image, zoom).with_context(|| cannot_write(&path))?;
    let path = out.join("metrics.json");
    metrics.write(&path).with_context(|| cannot_write(&path))?;
    if !metrics.history.is_empty() {
        let path = out.join("loss.svg");
        let loss = metrics.config.loss.name().to_uppercase();
        plot::write_loss_curve(&path, &metrics.history, &loss).with_context(|| cannot_write(&path))?;
    }
    let codes = trainer.codes(TEST_SHOWN);
    let (clean, noisy) = trainer.test_set();
    let test_set = (clean, noisy, codes.view());
    let run = report_of(out, metrics, &trainer.model, data, test_set, snapshots, None);
    write_report(out, &run)?;
    let state = out.join("state.safetensors");
    let owner = metrics.run.as_deref().map(|run| Owner { run, config: &metrics.config });
    checkpoint::save_state(
        &trainer.model,
        image,
        &trainer.adam,
        trainer.progress,
        Some(snapshots),
        owner,
        &state,
    )?;
    Ok(())
}

/// The data set in `data`; if it cannot be loaded for a run in `run` whose metrics.json names
/// another `--data`, the error says that one (`report` run from another folder, say, where the
/// default `data` is not the run's).
fn load_data_of_run(data: &Path, run: Option<&Path>) -> Result<Mnist, Failure> {
    Mnist::load(data).map_err(|e| {
        let trained_on =
            |run: &Path| Some(PathBuf::from(Metrics::read(&run.join("metrics.json")).ok()?.data?.path));
        match run.and_then(|run| Some((run, trained_on(run)?))) {
            Some((run, theirs)) if theirs != data => {
                let run = run.display();
                anyhow!("{e}; the run in {run} was trained with --data {}", shell_word(&theirs)).into()
            }
            _ => e.into(),
        }
    })
}

/// Measures the model in `model` on the test set in `data` and prints a table.
pub fn eval(model: &Path, data: &Path, noise: Noise, seed: u64) -> Result<(), Failure> {
    let data = Mnist::load(data)?;
    let net = checkpoint::load(model)?;
    check_fits(&net, checkpoint::image_shape(model)?, &data, model)?;
    check_measuring(&net, &data, model)?;
    let (test, train) = (data.test.images.count, data.train.images.count);
    let doing = stage(&format!("denoising {} corrupted by {noise}", plural(test, "test image")));
    let (noisy, reconstructed) = evaluate::denoising(&net, &data, noise, seed);
    doing.finish_and_clear();
    let whose = if test == 1 { "test image's" } else { "test images'" };
    let doing = stage(&format!(
        "k-NN accuracy of {test} {whose} codes and pixels against {}",
        plural(train, "training image")
    ));
    let knn = evaluate::features(&net, &data);
    doing.finish_and_clear();
    let table = table(&Evaluation { noisy, reconstructed, knn }, &net, &data, noise);
    signals::finished();
    print_result(&table)
}

/// Writes what a command is for (`eval`'s table, the sweep's rows) to standard output. Unlike
/// [`say!`]'s lines, these are the result: a full disk or a failed write is an error. A reader
/// that has gone (`| head -1`) took what it wanted, which ends nothing.
fn print_result(text: &str) -> Result<(), Failure> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(anyhow!("standard output: {e}").into()),
        _ => Ok(()),
    }
}

/// Says what a command is doing, for a stage that takes more than a moment: on a terminal, a
/// spinner with the stage's name until it is finished; elsewhere, a line on stderr as it starts.
fn stage(what: &str) -> ProgressBar {
    let spinner = ProgressBar::new_spinner();
    if spinner.is_hidden() {
        say_err!("{what}");
    } else {
        spinner.set_message(format!("{what}…"));
        spinner.enable_steady_tick(std::time::Duration::from_millis(100));
    }
    spinner
}

/// Prints how much noise the model in `model` takes on the test set in `data`: a row per
/// corruption of [`evaluate::sweep_noises`].
pub fn sweep(model: &Path, data: &Path, seed: u64) -> Result<(), Failure> {
    let data = Mnist::load(data)?;
    let net = checkpoint::load(model)?;
    check_fits(&net, checkpoint::image_shape(model)?, &data, model)?;
    check_measuring(&net, &data, model)?;
    let images = plural(data.test.images.count, "test image");
    print_result(&format!("PSNR against the clean image, mean over {images} (corruption seed {seed})\n"))?;
    print_result(&format!("{:<16} {:>11} {:>15}\n", "corruption", "input", "reconstruction"))?;
    for noise in evaluate::sweep_noises() {
        let row = evaluate::sweep_row(&net, &data, noise, seed);
        // One decimal for every level, `gaussian:1.0` among `gaussian:0.9` (the report's way too).
        let noise = format!("{}:{:.1}", row.noise.kind(), row.noise.level());
        print_result(&format!("{noise:<16} {:>8.2} dB {:>12.2} dB\n", row.noisy, row.reconstructed))?;
    }
    Ok(())
}

fn table(e: &Evaluation, model: &Model, data: &Mnist, noise: Noise) -> String {
    let count = data.test.images.count;
    let row = |name: &str, q: &crate::eval::quality::Quality| {
        // SSIM needs windows of at least 2×2 pixels.
        let ssim = if q.ssim.is_nan() { "n/a".to_string() } else { format!("{:.4}", q.ssim) };
        format!("{name:<16} {:>7.4} {:>7.4} {:>7.2} dB {ssim:>6}\n", q.bce, q.mse, q.psnr)
    };
    let code = plural(model.layers[model.bottleneck()].outputs(), "number");
    let d = data.test.images.pixels_per_image();
    let images = plural(count, "test image");
    format!(
        "{images}, corrupted by {noise}; each measure against the clean image\n\
         {:<16} {:>7} {:>7} {:>10} {:>6}\n{}{}\
         k-NN accuracy (k = {}, training set as reference): codes {:.4} ({code}), pixels {:.4} ({d})\n",
        "",
        "BCE",
        "MSE",
        "PSNR",
        "SSIM",
        row("noisy input", &e.noisy),
        row("reconstruction", &e.reconstructed),
        e.knn.k,
        e.knn.codes,
        e.knn.pixels,
    )
}

/// The model file `--model` names: the file itself, or a run folder's `model.safetensors`. A
/// missing one is named with the way to make one (a newcomer's first `eval` comes before any
/// training).
pub fn model_file(model: &Path) -> Result<PathBuf, Failure> {
    let missing = |what: &str| {
        let model = model.display();
        anyhow!("--model {model}: {what}; train a model first (training saves runs/latest/model.safetensors)")
    };
    if !model.exists() {
        return Err(missing("no such file").into());
    }
    if !model.is_dir() {
        return Ok(model.to_path_buf());
    }
    let file = model.join("model.safetensors");
    match file.is_file() {
        true => Ok(file),
        false => Err(missing("a folder without a model.safetensors").into()),
    }
}

/// The most pixels `denoise` reads of an image it scales: a 4096×4096 drawing.
const MAX_PIXELS: usize = 1 << 24;

/// Denoises each of `images` with the model in `model` and writes the results into `out`: each
/// image made into a digit like the data set's first ([`digit::prepare`]), unless `as_is`, and
/// with `noise` corrupted by it from its seed first, the corrupted image written beside.
pub fn denoise(
    model: &Path,
    images: &[PathBuf],
    out: &Path,
    (noise, seed): (Option<Noise>, u64),
    as_is: bool,
) -> Result<(), Failure> {
    let net = checkpoint::load(model)?;
    // The model, and its file as read beside it.
    let file = std::fs::metadata(model).map_or(0, |m| m.len());
    let held = memory::PROCESS + file + net.forward_bytes() + Workspace::bytes(&net, 1);
    memory::check(held, || "one image through this model".into())
        .map_err(|m| anyhow!("{}: {m}", model.display()))?;
    let d = net.widths()[0];
    let side = (d as f64).sqrt().round() as usize;
    let shape = checkpoint::image_shape(model)?.or((side * side == d).then_some((side, side)));
    let targets = denoise_targets(images, out, noise.is_some())?;
    let inputs = by_canonical(images.iter().chain([&model.to_path_buf()]));
    check_out_folder(out)?;
    for target in targets.iter().flat_map(|pair| pair.iter().flatten()) {
        check_output_file(target, &inputs)?;
        check_replaces_its_own(target)?;
    }
    for path in images {
        // The size from the header, before a pixel is decoded, and before anything is written.
        let (rows, cols) = pngio::size(path)?;
        let too_many = rows.saturating_mul(cols) > MAX_PIXELS;
        // An image taken as it is (or for a model without an image size) must be the model's.
        let exact = as_is || shape.is_none();
        if too_many || exact && shape.map_or(rows * cols != d, |s| s != (rows, cols)) {
            let expected = match shape {
                _ if too_many => format!("at most {MAX_PIXELS} pixels are read"),
                Some((r, c)) => {
                    format!("the model takes {c}×{r}{}", if as_is { " with --as-is" } else { "" })
                }
                None => format!("the model takes {}", plural(d, "pixel")),
            };
            let message = format!("the image is {cols}×{rows} (width×height); {expected}");
            return Err(anyhow!("{}: {message}", path.display()).into());
        }
    }
    // Every image is read and denoised, its PNG files made in memory, before anything is
    // written: a corrupt image among them leaves neither the others' results nor a folder.
    let mut files = Vec::with_capacity(2 * images.len());
    let png = |target: &Path, size, pixels: &[f32]| {
        pngio::encode_gray(size, pixels).with_context(|| cannot_write(target))
    };
    let mut ws = Workspace::new(&net, 1);
    for (i, (path, [target, noisy_target])) in images.iter().zip(&targets).enumerate() {
        let opened = pngio::open_picture(path, MAX_PIXELS)?;
        // One image at a time, beside the model and the results so far (of the model's size).
        let need = held.saturating_add(opened.bytes());
        memory::check(need, || "decoding this image".into())
            .map_err(|m| anyhow!("{}: {m}", path.display()))?;
        let Picture { gray, alpha, kind } = opened.read()?;
        let (rows, cols) = shape.unwrap_or((gray.rows, gray.cols));
        let (pixels, how) = if as_is {
            let mut pixels = gray.pixels;
            if let Some(alpha) = alpha {
                digit::lay_on(&mut pixels, &alpha, Background::Black);
            }
            (pixels, "as it was".to_string())
        } else {
            let size = (gray.rows, gray.cols);
            let (pixels, prepared) = digit::prepare(gray.pixels, alpha.as_deref(), size, (rows, cols));
            (pixels, prepared.to_string())
        };
        let mut input = Array2::from_shape_vec((1, d), pixels).expect("d pixels");
        if let (Some(noise), Some(noisy_target)) = (noise, noisy_target) {
            let bytes: Vec<u8> = input.iter().map(|&v| pngio::gray_level(v)).collect();
            let mut clean = vec![0.0; d];
            let stream = NoiseStream::new(seed, Purpose::TestNoise, 0, i as u32);
            noise.corrupt(&bytes, stream, &mut clean, input.as_slice_mut().expect("contiguous"));
            let said = format!("{} -> {} (corrupted by {noise})", path.display(), noisy_target.display());
            files.push((
                noisy_target,
                png(noisy_target, (rows, cols), input.as_slice().expect("contiguous"))?,
                said,
            ));
        }
        let mut output = Array2::zeros((1, d));
        net.reconstruct(input.view(), &mut ws, output.view_mut());
        let target = target.as_ref().expect("every image has a result");
        let said = format!("{} -> {} ({kind}, {how})", path.display(), target.display());
        files.push((target, png(target, (rows, cols), output.as_slice().expect("contiguous"))?, said));
    }
    let mut made = prepare_out(out)?;
    remove_stale_temps(out).with_context(|| format!("--out {}: cannot clear", out.display()))?;
    // All results or none: a full disk on the last leaves none of them.
    let all: Vec<_> = files.iter().map(|(target, bytes, _)| (target.as_path(), &bytes[..])).collect();
    write_all_atomic(&all).map_err(|(target, e)| anyhow!(e).context(cannot_write(&target)))?;
    made.keep();
    signals::finished();
    files.iter().for_each(|(_, _, said)| say!("{said}"));
    Ok(())
}

/// The files denoising `images` into `out` writes, per image: `out/<name>`, and with `noisy`
/// also `out/<stem>.noisy.png`. A usage error if two of them coincide, or one would replace an
/// input image: a denoised image must never replace the user's original, nor another result.
fn denoise_targets(
    images: &[PathBuf],
    out: &Path,
    noisy: bool,
) -> Result<Vec<[Option<PathBuf>; 2]>, Failure> {
    // Each path made canonical once: a thousand images were a million comparisons, each two
    // `canonicalize` calls (15 minutes for ten thousand).
    let mut given = HashMap::new();
    for image in images {
        if let Some(earlier) = canonical(image).and_then(|c| given.insert(c, image)) {
            let message = format!(
                "{} is given twice (as {} too); name each image once",
                image.display(),
                earlier.display()
            );
            return Err(Failure::Usage(message));
        }
    }
    let mut seen = std::collections::HashSet::new();
    let mut targets = Vec::new();
    for path in images {
        let name = path.file_name().ok_or_else(|| anyhow!("{}: not a file", path.display()))?;
        // NAME.png and NAME.noisy.png from the name's own bytes (which need not be text).
        let stem = Path::new(name).file_stem().expect("a file name");
        let named = |suffix: &str| {
            let mut name = stem.to_os_string();
            name.push(suffix);
            out.join(name)
        };
        let pair = [Some(named(".png")), noisy.then(|| named(".noisy.png"))];
        for target in pair.iter().flatten() {
            if canonical(target).is_some_and(|c| given.contains_key(&c)) {
                let message = format!("--out {}: would overwrite {}", out.display(), target.display());
                return Err(Failure::Usage(message));
            }
            if !seen.insert(target.clone()) {
                let message = format!(
                    "two results would be written to {}; denoise the images into different folders",
                    target.display()
                );
                return Err(Failure::Usage(message));
            }
        }
        targets.push(pair);
    }
    Ok(targets)
}

/// Whether `a` and `b` name the same file, existing or not (a data file the loader would read).
fn same_file(a: &Path, b: &Path) -> bool {
    matches!((canonical(a), canonical(b)), (Some(a), Some(b)) if a == b)
}

/// The canonical path of `p`; for a file that does not exist yet, its folder's and its name.
fn canonical(p: &Path) -> Option<PathBuf> {
    p.canonicalize().ok().or_else(|| Some(folder_of(p).canonicalize().ok()?.join(p.file_name()?)))
}

/// `paths` by their canonical paths, each as it was given (the first, of two that are one file).
fn by_canonical<'a>(paths: impl IntoIterator<Item = &'a PathBuf>) -> HashMap<PathBuf, PathBuf> {
    let mut map = HashMap::new();
    for path in paths {
        if let Some(c) = canonical(path) {
            map.entry(c).or_insert_with(|| path.clone());
        }
    }
    map
}

/// A usage error unless `out` may be written by renaming a new file over it: nothing there, or
/// a regular file (not a link) that is not one of the command's `inputs` (by their canonical
/// paths, [`by_canonical`]), nor one of a run folder's files. (Renaming over a device or a link
/// would replace it, as root even `/dev/null` or `/dev/stdout`; over a run's state, lose the run;
/// over its `.lock`, let a second run in.)
fn check_output_file(out: &Path, inputs: &HashMap<PathBuf, PathBuf>) -> Result<(), Failure> {
    let refuse = |why: &str| Err(Failure::Usage(format!("--out {}: {why}", out.display())));
    if let Ok(target) = std::fs::read_link(out) {
        // A file is written by renaming a new one over its name: over a link, the link goes
        // (`/dev/stdout`, a link to the process's output, would become a file for everyone).
        let target = target.display();
        return refuse(&format!("is a link to {target}, which writing would replace; name the file itself"));
    }
    if std::fs::metadata(out).is_ok_and(|meta| !meta.is_file()) {
        return refuse("exists and is not a regular file; name a new file or one to replace");
    }
    if let Some(input) = canonical(out).and_then(|c| inputs.get(&c)) {
        return refuse(&format!("is {}, an input of this command; name another file", input.display()));
    }
    let name = out.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    let folder = folder_of(out);
    let a_run = [".lock", "metrics.json", "state.safetensors"].iter().any(|f| folder.join(f).exists());
    if a_run && (name == ".lock" || RUN_FILES.contains(&name)) {
        let folder = folder.canonicalize().unwrap_or_else(|_| folder.to_path_buf());
        return refuse(&format!("is a file of the run in {}; name another file", folder.display()));
    }
    Ok(())
}

/// A usage error if `target` holds something other than a PNG this program wrote: `denoise`
/// replaces its own earlier results, never another file that has an image's name (an input
/// named `train-labels-idx1-ubyte.gz` denoised into the data folder replaced the labels; a
/// `seven.png` denoised into a folder of photos replaced the photo of that name).
fn check_replaces_its_own(target: &Path) -> Result<(), Failure> {
    match pngio::holds_what_dae_did_not_write(target) {
        false => Ok(()),
        true => Err(Failure::Usage(format!(
            "--out {}: exists without dae's mark (Software: dae); denoise replaces only its own \
             results, so remove it first",
            target.display()
        ))),
    }
}

/// Writes the label and bottleneck code of every test image in `data` to the CSV file `out`,
/// or to standard output if `out` is `-`.
pub fn encode(model: &Path, data: &Path, out: &Path) -> Result<(), Failure> {
    // `-` is standard output: no file to check, make or replace.
    let file = (out != Path::new("-")).then_some(out);
    if let Some(out) = file {
        check_csv_out(out, model, data)?;
    }
    let data = Mnist::load(data)?;
    let net = checkpoint::load(model)?;
    check_fits(&net, checkpoint::image_shape(model)?, &data, model)?;
    check_measuring(&net, &data, model)?;
    let encode = || evaluate::encode(&net, evaluate::scaled(&data.test.images).view());
    let wrote = |(rows, numbers): (usize, usize)| {
        format!("wrote {} of {} to", plural(rows, "code"), plural(numbers, "number"))
    };
    let Some(out) = file else {
        let codes = encode();
        match write_codes(&mut std::io::stdout().lock(), codes.view(), &data.test.labels) {
            Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                return Err(anyhow!("standard output: {e}").into());
            }
            // A reader that has gone (`| head`) took what it wanted, as with `eval`'s table.
            written => {
                signals::finished();
                if written.is_ok() {
                    say_err!("{} standard output", wrote(codes.dim()));
                }
            }
        }
        return Ok(());
    };
    let parent = folder_of(out);
    let mut made =
        MadeFolders::create(parent).with_context(|| format!("--out {}: cannot create", parent.display()))?;
    // What encodes killed before renaming their temporary files left beside it.
    remove_stale_temps(parent).with_context(|| format!("--out {}: cannot clear", parent.display()))?;
    // Encoded once the temporary file is made: a folder it cannot be made in fails at once.
    let mut shape = (0, 0);
    write_atomic(out, |w| {
        let codes = encode();
        shape = codes.dim();
        write_codes(w, codes.view(), &data.test.labels)
    })
    .with_context(|| cannot_write(out))?;
    made.keep();
    signals::finished();
    say!("{} {}", wrote(shape), out.display());
    Ok(())
}

/// A usage error if `encode`'s CSV file `out` cannot be written: it names a folder, its folder
/// is a file, or it is one of the inputs (the model at `model`, the data files in `data`).
fn check_csv_out(out: &Path, model: &Path, data: &Path) -> Result<(), Failure> {
    if out.is_dir() || out.as_os_str().to_string_lossy().ends_with('/') {
        let what = if out.is_dir() { "is a folder" } else { "names a folder (it ends in /)" };
        return Err(Failure::Usage(format!("--out {}: {what}; name the CSV file to write", out.display())));
    }
    let parent = folder_of(out);
    if parent.exists() && !parent.is_dir() {
        let (out, parent) = (out.display(), parent.display());
        return Err(Failure::Usage(format!("--out {out}: {parent} is not a folder")));
    }
    let mut inputs = vec![model.to_path_buf()];
    for name in [mnist::TRAIN_IMAGES, mnist::TRAIN_LABELS, mnist::TEST_IMAGES, mnist::TEST_LABELS] {
        inputs.extend([data.join(name), data.join(format!("{name}.gz"))]);
    }
    check_output_file(out, &by_canonical(&inputs))
}

/// `encode`'s CSV: a header, then a row per image, its label and its code (N, H_code).
fn write_codes(w: &mut dyn std::io::Write, codes: ArrayView2<f32>, labels: &[u8]) -> std::io::Result<()> {
    let mut csv = csv::Writer::from_writer(w);
    // The writer's own error, unwrapped: a closed pipe stays one.
    let io = |e: csv::Error| match e.into_kind() {
        csv::ErrorKind::Io(e) => e,
        other => std::io::Error::other(format!("{other:?}")),
    };
    let mut header = vec!["label".to_string()];
    header.extend((0..codes.ncols()).map(|j| format!("code{j}")));
    csv.write_record(&header).map_err(io)?;
    for (code, label) in codes.axis_iter(Axis(0)).zip(labels) {
        let mut record = vec![label.to_string()];
        record.extend(code.iter().map(|v| v.to_string()));
        csv.write_record(&record).map_err(io)?;
    }
    csv.flush()
}

/// The most parameters a model may have: its training state (weights and Adam's two moments)
/// is then 3 GiB, under the 4 GiB `--resume` reads back.
const MAX_PARAMETERS: u64 = 1 << 28;

/// A usage error if the model `config` asks for cannot be built for `data`'s images.
fn check_arch(config: &Config, data: &Mnist) -> Result<(), Failure> {
    let images = &data.train.images;
    match config.arch {
        Arch::Dense => check_size(&config.hidden, images.pixels_per_image()),
        // Two poolings halve the sides twice, and the second convolution's 3×3 kernel must fit
        // the half-size image (a model file with a kernel larger than its image is refused).
        Arch::Conv if [images.rows, images.cols].iter().any(|&s| !s.is_multiple_of(4) || s < 8) => {
            Err(Failure::Usage(format!(
                "--arch conv: the images are {}×{}; the convolutional model needs sides of 8 or more that divide by 4",
                images.cols, images.rows
            )))
        }
        Arch::Conv => Ok(()),
    }
}

/// A usage error if the autoencoder with encoder widths `hidden` on `d` pixels is too large to
/// train here, rather than an allocation that aborts.
fn check_size(hidden: &[usize], d: usize) -> Result<(), Failure> {
    let widths = autoencoder_widths(d, hidden);
    let parameters: u64 = widths.windows(2).map(|w| (w[0] * w[1] + w[1]) as u64).sum();
    if parameters > MAX_PARAMETERS {
        let message = format!(
            "--layers {}: {parameters} parameters; at most {MAX_PARAMETERS} (a training state of 3 GiB) are supported",
            join(hidden)
        );
        return Err(Failure::Usage(message));
    }
    Ok(())
}

/// An error unless `model` takes images of the size in `data`: as many pixels and, for a
/// convolutional model or one whose file records the images it was trained on (`image`, rows
/// and columns), the same height and width.
fn check_fits(
    model: &Model,
    image: Option<(usize, usize)>,
    data: &Mnist,
    source: &Path,
) -> Result<(), Failure> {
    let images = &data.test.images;
    let (inputs, pixels) = (model.widths()[0], images.pixels_per_image());
    if inputs != pixels {
        let message = format!("the saved model takes {inputs} pixels, the images in --data have {pixels}");
        return Err(anyhow!("{}: {message}", source.display()).into());
    }
    let shape = match model.layers.first() {
        Some(Layer::Conv2d(first)) => Some((first.input.height, first.input.width)),
        _ => image,
    };
    if let Some((h, w)) = shape
        && (h, w) != (images.rows, images.cols)
    {
        let message = format!(
            "the saved model takes {w}×{h} images, the images in --data are {}×{}",
            images.cols, images.rows
        );
        return Err(anyhow!("{}: {message}", source.display()).into());
    }
    Ok(())
}

/// An error unless the end of a run of `model` on `data` (in `dir`) fits in memory: the report's
/// measurements ([`Measured::bytes`]) beside the model, the test images it draws, clean and
/// corrupted, and the data set.
fn check_report_memory(model: &Model, data: &Mnist, dir: &Path) -> Result<(), Failure> {
    let need = (data.bytes() + memory::PROCESS).saturating_add(end_of_run_bytes(model, data));
    memory::check(need, || measuring_for_the_report(data)).map_err(|m| anyhow!("{}: {m}", dir.display()))?;
    Ok(())
}

/// "measuring the model for the report on 2000 test and 10000 training images".
fn measuring_for_the_report(data: &Mnist) -> String {
    let (test, train) =
        (MEASURED_TEST.min(data.test.images.count), MEASURED_TRAIN.min(data.train.images.count));
    format!("measuring the model for the report on {test} test and {}", plural(train, "training image"))
}

/// An error unless measuring `model` (from `source`) on all of `data`'s test images fits in memory.
fn check_measuring(model: &Model, data: &Mnist, source: &Path) -> Result<(), Failure> {
    let test = data.test.images.count;
    // The data set, loaded by now, stays in memory too.
    let need = data.bytes() + memory::PROCESS + model.forward_bytes() + evaluate::bytes_needed(model, data);
    memory::check(need, || format!("measuring this model on {test} test images"))
        .map_err(|m| anyhow!("{}: {m}", source.display()))?;
    Ok(())
}

/// A usage error if a run of `config` on `data`, which needs `bytes(rows)` bytes with batches
/// of `rows` images besides the data set and the program itself, needs more memory than there
/// is with them: it names the batch size that fits (for a new run, if `resumed`), or says that
/// none does. A smaller batch fits only if the end of the run, which needs `end_of_run()` bytes
/// whatever the batch ([`end_of_run_bytes`]), fits too; that is asked only once a batch has
/// been found that leaves room for the model, so that `end_of_run` may build one.
fn check_training_memory(
    config: &Config,
    data: &Mnist,
    resumed: bool,
    bytes: impl Fn(usize) -> u64,
    end_of_run: impl FnOnce() -> u64,
) -> Result<(), Failure> {
    // The data set, loaded by now, stays in memory while the run trains.
    let held = data.bytes() + memory::PROCESS;
    let bytes = |rows| held.saturating_add(bytes(rows));
    let images = &data.train.images;
    let rows = config.batch_size.min(images.count);
    let what = || {
        let model = match config.arch {
            Arch::Dense => format!("the dense model --layers {}", join(&config.hidden)),
            Arch::Conv => "the convolutional model".to_string(),
        };
        // A batch is the whole training set when that is smaller than --batch-size.
        let flag = if rows == config.batch_size { format!("--batch-size {rows}: ") } else { String::new() };
        format!("{flag}training {model} on {}×{} images, {rows} a step,", images.cols, images.rows)
    };
    memory::check(bytes(rows), what).map_err(|message| {
        let limit = memory::limit().map_or(u64::MAX, |l| l.bytes);
        let fits = memory::most_rows(bytes, limit, rows);
        let end = match fits {
            0 => 0,
            _ => held.saturating_add(end_of_run()),
        };
        let hint = match (fits, resumed) {
            (0, _) => format!(
                "not even one image a step fits (the data set and the program take {} of it)",
                memory::size(held)
            ),
            _ if end > limit => {
                let needs = format!("{} needs {}", measuring_for_the_report(data), memory::size(end));
                format!("a smaller batch would not help: at the end of the run, {needs}")
            }
            (n, false) => format!("--batch-size {n} fits"),
            // A resumed run keeps its batch size.
            (n, true) => format!("a new run with --batch-size {n} would fit"),
        };
        Failure::Usage(format!("{message}; {hint}"))
    })
}

/// `path` as a word of a shell command that names it: as it is if it is made of letters, digits
/// and `/._-+,:=@%`; else in single quotes (a `'` inside written `'\''`); a name that is not text,
/// or holds a control character, in bash's `$'…'` with such bytes as `\xHH`. A relative path
/// that starts with `-` gets `./` before it, or a command would read it as a flag.
fn shell_word(path: &Path) -> String {
    let bytes = path.as_os_str().as_bytes();
    let bytes = if bytes.starts_with(b"-") { [b"./", bytes].concat() } else { bytes.to_vec() };
    let plain = |b: u8| b.is_ascii_alphanumeric() || b"/._-+,:=@%".contains(&b);
    match String::from_utf8(bytes) {
        Ok(text) if !text.is_empty() && text.bytes().all(plain) => text,
        Ok(text) if !text.chars().any(char::is_control) => format!("'{}'", text.replace('\'', r"'\''")),
        Ok(text) => escaped(text.as_bytes()),
        Err(e) => escaped(e.as_bytes()),
    }
}

/// `bytes` in bash's `$'…'`: printable ASCII as it is (but `'` and `\\` escaped), every other
/// byte as `\xHH`.
fn escaped(bytes: &[u8]) -> String {
    let inside: String = bytes
        .iter()
        .map(|&b| match b {
            b'\'' | b'\\' => format!("\\{}", b as char),
            b' '..=b'~' => (b as char).to_string(),
            _ => format!("\\x{b:02x}"),
        })
        .collect();
    format!("$'{inside}'")
}

/// "128,64,32".
fn join(widths: &[usize]) -> String {
    widths.iter().map(usize::to_string).collect::<Vec<_>>().join(",")
}

/// `seconds` as people write a step's time: "1.4 ms", or "85 µs" below a millisecond (a
/// batch of one image).
fn duration(seconds: f64) -> String {
    if seconds < 1e-3 { format!("{:.0} µs", 1e6 * seconds) } else { format!("{:.1} ms", 1e3 * seconds) }
}

/// "1 number", "2 numbers".
fn plural(n: usize, thing: &str) -> String {
    if n == 1 { format!("1 {thing}") } else { format!("{n} {thing}s") }
}

fn cannot_write(path: &Path) -> String {
    format!("{}: cannot write", path.display())
}

/// Creates `out` unless it exists as a folder, returning the folders it made; a file, or a link
/// to nothing, there is a usage error.
fn prepare_out(out: &Path) -> Result<MadeFolders, Failure> {
    check_out_folder(out)?;
    Ok(MadeFolders::create(out).with_context(|| format!("--out {}: cannot create", out.display()))?)
}

/// A usage error unless `out` is a folder, or nothing (not a link to nothing).
fn check_out_folder(out: &Path) -> Result<(), Failure> {
    let is_link = std::fs::symlink_metadata(out).is_ok_and(|m| m.file_type().is_symlink());
    if is_link && !out.exists() {
        let target = std::fs::read_link(out).map_or("?".into(), |t| t.display().to_string());
        return Err(Failure::Usage(format!(
            "--out {}: a link to {target}, which does not exist",
            out.display()
        )));
    }
    if out.exists() && !out.is_dir() {
        return Err(Failure::Usage(format!("--out {}: exists and is not a folder", out.display())));
    }
    Ok(())
}

/// A bar for one epoch's `steps`; indicatif draws it only when stderr is a terminal.
fn progress_bar(epoch: usize, epochs: usize, steps: usize) -> ProgressBar {
    let bar = ProgressBar::new(steps as u64);
    let style = ProgressStyle::with_template("epoch {msg} [{bar:30}] {pos}/{len} steps {elapsed_precise}")
        .expect("a valid template")
        .progress_chars("=> ");
    bar.set_style(style);
    bar.set_message(format!("{epoch}/{epochs}"));
    bar
}

#[cfg(test)]
mod tests {
    use super::shell_word;
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    use std::path::Path;

    /// Each hint's folder pastes back into a shell as the same name (the hints printed `-lead`
    /// for a folder `-lead`, which a command reads as flags, and a name that is not text with
    /// U+FFFD in it, which names another folder).
    #[test]
    fn a_path_is_written_as_a_shell_reads_it_back() {
        let word = |bytes: &[u8]| shell_word(Path::new(OsStr::from_bytes(bytes)));
        assert_eq!(word(b"runs/latest"), "runs/latest");
        assert_eq!(word(b"/tmp/the run"), "'/tmp/the run'");
        assert_eq!(word(b"it's $HOME"), r"'it'\''s $HOME'");
        assert_eq!(word(b"-lead"), "./-lead");
        assert_eq!(word(b""), "''");
        assert_eq!(word(b"r\xff\nx"), r"$'r\xff\x0ax'");
        assert_eq!(word(b"a\tb'c"), r"$'a\x09b\'c'");
    }
}
