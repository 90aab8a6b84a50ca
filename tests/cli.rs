//! The binary on bad input: every case exits with 2 (bad usage) or 1 (bad data or files), says
//! what was wrong in one line on stderr naming the file or flag, never panics, and loses nothing.
//! Then the faults: a diverging loss, Ctrl-C, and SIGKILL in the middle of an epoch.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use dae::files::checkpoint;
use dae::files::metrics::Metrics;

/// `dae`, without a `DAE_MEMORY` of the caller's (README suggests one), which would change what
/// fits: the tests that mean a limit set it.
fn dae() -> Command {
    let mut dae = default_signals(Command::new(env!("CARGO_BIN_EXE_dae")));
    dae.env_remove("DAE_MEMORY");
    dae
}

/// `command`, with SIGINT, SIGTERM and SIGHUP at their default actions: tests run in the
/// background (a shell's `&`, as CI may) inherit SIGINT ignored, which `dae`, like any program,
/// keeps ignored.
fn default_signals(mut command: Command) -> Command {
    use std::os::unix::process::CommandExt;
    // SAFETY: between fork and exec only `signal`, which is async-signal-safe, runs.
    unsafe {
        command.pre_exec(|| {
            for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
                libc::signal(signal, libc::SIG_DFL);
            }
            Ok(())
        });
    }
    command
}

/// A folder holding a small, valid data set of 8×8 bars.
fn dataset(train: usize) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    common::write_dataset(dir.path(), &common::bars_dataset(train, 64));
    dir
}

/// Runs `dae` with `args` and checks how it failed: exit `code`, one line on stderr (for a usage
/// error, then its tips, a line each) that, tips included, contains each of `needles`, and no
/// panic.
fn fails(args: &[&str], code: i32, needles: &[&str]) -> Output {
    fails_as(dae(), args, code, needles)
}

/// [`fails`], for `dae` started as `command` (with an environment of its own).
fn fails_as(mut command: Command, args: &[&str], code: i32, needles: &[&str]) -> Output {
    let out = command.args(args).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "{args:?}: {stderr}");
    let mut lines = stderr.trim_end().lines();
    assert!(lines.next().is_some_and(|l| l.starts_with("error: ")), "{args:?}: {stderr}");
    let tips = lines.inspect(|l| assert!(l.starts_with("  tip: "), "{args:?}: {stderr}")).count();
    assert!(tips <= if code == 2 { 2 } else { 0 }, "{args:?}: {tips} lines after the first: {stderr}");
    assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    for needle in needles {
        assert!(stderr.contains(needle), "{args:?}: {stderr:?} should mention {needle:?}");
    }
    out
}

/// A small data set and, in its folder `run`, a run of one epoch on it.
fn one_epoch() -> (tempfile::TempDir, PathBuf) {
    let data = dataset(64);
    let out = data.path().join("run");
    let run =
        dae().args(["--data", path_str(data.path()), "--out", path_str(&out), "--epochs", "1"]).output();
    assert!(run.unwrap().status.success());
    (data, out)
}

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn bad_flags_exit_2_naming_the_flag() {
    let data = dataset(64);
    let d = path_str(data.path());
    let out = tempfile::tempdir().unwrap();
    let file = out.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    let deep = vec!["1"; 101].join(",");
    let cases: [(&[&str], &str); 19] = [
        (&["--epochs", "0"], "--epochs"),
        (&["--batch-size", "0"], "--batch-size"),
        (&["--lr", "-1"], "--lr"),
        (&["--lr", "NaN"], "--lr"),
        (&["--threads", "0"], "--threads"),
        (&["--noise", "blur:0.5"], "expected gaussian:STD, masking:P or salt-pepper:P"),
        (&["--noise", "masking:1.5"], "out of range for masking: P from 0 to 1"),
        (&["--noise", "gaussian:-1"], "out of range for gaussian: a finite STD of 0 or more"),
        (&["--layers", "128,0"], "--layers <LAYERS>': 0 is not in 1..=65536"),
        (&["--layers", "128,,32"], "an empty width (two commas in a row, or one at an end)"),
        (&["--layers", "12x"], "'12x' is not a whole number of units; widths are written 128,64,32"),
        (&["--layers", "4000000000"], "--layers <LAYERS>': 4000000000 is not in 1..=65536"),
        (&["--layers", "5000000000"], "--layers <LAYERS>': 5000000000 is not in 1..=65536"),
        (&["--layers", "65536,65536"], "--layers 65536,65536: 8598519872 parameters; at most 268435456"),
        (&["--layers", &deep], "hidden holds 101 widths (--layers); at most 100"),
        (&["--out", path_str(&file)], "a-file"),
        (&["--out", d], "the --data folder"),
        (&["--no-such-flag"], "--no-such-flag"),
        (&["--out", ""], "invalid value '' for '--out <OUT>': an empty path names no file or folder"),
    ];
    for (args, needle) in cases {
        let mut all = vec!["--data", d];
        all.extend(args);
        fails(&all, 2, &[needle]);
    }
    // Nothing was written over the file that --out named, or into the data.
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "x");
    assert!(!data.path().join(".lock").exists(), "nothing written into the data folder");
    // A missing argument is named, on the one line.
    let out = dae().args(["eval"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("required arguments were not provided: --model <MODEL>"), "{stderr}");
}

/// A mistyped flag or command, an input without its flag, and a flag before its command or on
/// the wrong one: the error's line, then clap's suggestion and ours, which says what is where.
#[test]
fn usage_errors_say_what_to_type_instead() {
    let cases: [(&[&str], &[&str]); 8] = [
        (&["--epoch", "3"], &["unexpected argument '--epoch'", "tip: a similar argument exists: '--epochs'"]),
        (
            &["--data", "x", "train", "--resume", "r"],
            &[
                "'train' cannot be used with '--data <DATA>'",
                "a command's flags go after it: dae train --data",
            ],
        ),
        (
            &["--epochs", "-1"],
            &["unexpected argument '-1'", "-1 is read as a flag: no setting takes a negative"],
        ),
        (
            &["evaluate"],
            &["'evaluate'", "similar subcommand exists: 'eval'", "train, eval, denoise, encode, report"],
        ),
        (
            &["eval", "runs/x/model.safetensors"],
            &["'runs/x/model.safetensors'", "--model runs/x/model.safetensors"],
        ),
        (
            &["--model", "m.safetensors", "eval"],
            &["'--model'", "a command's flags go after it: dae eval --model"],
        ),
        (&["--sweep"], &["'--sweep'", "--sweep is a flag of eval; a command's flags go after it"]),
        (
            &["eval", "--out", "x", "--model", "m"],
            &["'--out'", "--out is a flag of train, denoise, encode, not of eval"],
        ),
    ];
    for (args, needles) in cases {
        let out = fails(args, 2, needles);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.lines().count() >= 2, "{args:?}: a tip: {stderr}");
    }
}

#[test]
fn missing_data_says_how_to_get_it() {
    fails(
        &["--data", "/nonexistent/mnist"],
        1,
        &["/nonexistent/mnist: no such folder; --data", "./data-fetch.sh"],
    );
    let data = dataset(64);
    let file = data.path().join("train-images-idx3-ubyte.gz");
    fails(&["--data", path_str(&file)], 1, &["train-images-idx3-ubyte.gz: a file, not a folder; --data"]);
    let empty = tempfile::tempdir().unwrap();
    fails(
        &["--data", path_str(empty.path())],
        1,
        &["train-images-idx3-ubyte.gz: not found (run ./data-fetch.sh, or pass --data DIR)"],
    );
    // A file that cannot even be looked at is named, with why: not "not found".
    let looped = empty.path().join("train-images-idx3-ubyte.gz");
    std::os::unix::fs::symlink(&looped, &looped).unwrap();
    fails(
        &["--data", path_str(empty.path())],
        1,
        &[
            "train-images-idx3-ubyte.gz: a link whose target cannot be reached: Too many levels of symbolic links",
        ],
    );
    std::fs::remove_file(data.path().join("t10k-labels-idx1-ubyte.gz")).unwrap();
    fails(&["--data", path_str(data.path())], 1, &["t10k-labels-idx1-ubyte.gz", "not found"]);
}

#[test]
fn bad_data_files_exit_1_naming_the_file() {
    let images = "train-images-idx3-ubyte.gz";
    let valid = common::idx_gz(&[64, 8, 8], &[7; 64 * 64]);
    let header_only = |dims: &[u32]| {
        let mut raw = vec![0u8, 0, 8, dims.len() as u8];
        dims.iter().for_each(|d| raw.extend(d.to_be_bytes()));
        raw
    };
    let mut raw_4g = header_only(&[4_000_000_000, 28, 28]);
    raw_4g.extend([0; 1000]);
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (images, vec![], "truncated"),
        (images, valid[..valid.len() / 2].to_vec(), images),
        (images, common::gzip(b"garbage, not IDX"), "not an IDX file"),
        (images, b"\x89PNG\r\n\x1a\n....".to_vec(), "not an IDX file"),
        (
            images,
            {
                let mut r = header_only(&[64, 8, 8]);
                r[2] = 0x0d;
                r
            },
            "unsupported dtype 0x0d",
        ),
        (images, common::idx_gz(&[64, 64], &[7; 64 * 64]), "expected rank 3, found rank 2"),
        (images, common::gzip(&raw_4g), "[4000000000, 28, 28] its header declares needs 2.9 TiB of memory"),
        (images, raw_4g, "truncated: expected 3136000000016 bytes"),
        (images, header_only(&[64, 8, 8]), "expected 4112 bytes, found 16"),
        (images, common::idx_gz(&[0, 8, 8], &[]), "no pixels to read"),
        ("t10k-images-idx3-ubyte.gz", common::idx_gz(&[64, 7, 7], &[7; 64 * 49]), "test images are 7×7"),
        ("train-labels-idx1-ubyte.gz", common::idx_gz(&[63], &[1; 63]), "63 labels for 64 images"),
        ("t10k-labels-idx1-ubyte.gz", common::idx_gz(&[64], &[11; 64]), "label 11 at item 0"),
    ];
    for (file, bytes, needle) in cases {
        let data = dataset(64);
        std::fs::write(data.path().join(file), &bytes).unwrap();
        fails(
            &["--data", path_str(data.path()), "--out", path_str(&data.path().join("out"))],
            1,
            &[file, needle],
        );
    }
}

#[test]
fn a_diverging_run_stops_naming_the_step_and_keeps_the_last_good_files() {
    let data = dataset(256);
    let out = data.path().join("run");
    let (d, o) = (path_str(data.path()), path_str(&out));
    let ok = dae().args(["--data", d, "--out", o, "--epochs", "1", "--batch-size", "16"]).output().unwrap();
    assert!(ok.status.success());
    let before = std::fs::read(out.join("state.safetensors")).unwrap();
    fails(
        &["--data", d, "--out", o, "--epochs", "3", "--batch-size", "16", "--lr", "1e6"],
        1,
        &["the loss became NaN at epoch 1, step", "--lr"],
    );
    // The new run saved nothing, so the earlier one stays where it was, whole.
    assert_eq!(std::fs::read(out.join("state.safetensors")).unwrap(), before, "the good state was kept");
    assert!(checkpoint::load(&out.join("model.safetensors")).is_ok());
    assert!(!data.path().join("run.1").exists(), "nothing was set aside");
}

/// A new run into a folder that holds a run moves that run, whole and unchanged, into the first
/// free `<folder>.<n>`, and says so: rerunning a command never loses or mixes a run.
#[test]
fn a_new_run_sets_the_previous_one_aside() {
    let data = dataset(256);
    let out = data.path().join("latest");
    let (d, o) = (path_str(data.path()), path_str(&out));
    let run = |seed: &str| {
        let output = dae().args(["--data", d, "--out", o, "--epochs", "1", "--seed", seed]).output().unwrap();
        assert!(output.status.success());
        String::from_utf8(output.stdout).unwrap()
    };
    run("1");
    let first: Vec<Vec<u8>> = ["metrics.json", "state.safetensors", "loss.svg"]
        .iter()
        .map(|f| std::fs::read(out.join(f)).unwrap())
        .collect();
    let said = run("2");
    assert!(said.contains(&format!("the run that was in {o} is now in {o}.1")), "{said}");
    run("3");
    for (file, bytes) in ["metrics.json", "state.safetensors", "loss.svg"].iter().zip(&first) {
        assert_eq!(&std::fs::read(data.path().join("latest.1").join(file)).unwrap(), bytes, "{file}");
    }
    let seed = |dir: &str| Metrics::read(&data.path().join(dir).join("metrics.json")).unwrap().config.seed;
    assert_eq!((seed("latest.1"), seed("latest.2"), seed("latest")), (1, 2, 3));
}

/// A new run whose first save fails part way (a disk that fills; here a limit on a file's size,
/// `ulimit -f`, that the state file, written last, exceeds) removes what it wrote and puts the
/// previous run back where it was, byte for byte, with no `<folder>.1` left behind; into a
/// folder of its own making, it removes the folder (half a run, with no state to resume from,
/// was left there).
#[test]
fn a_first_save_that_fails_puts_the_previous_run_back() {
    let data = dataset(256);
    let out = data.path().join("run");
    let (d, o) = (path_str(data.path()), path_str(&out));
    let args = ["--data", d, "--out", o, "--epochs", "1", "--seed"];
    assert!(dae().args(args).arg("1").output().unwrap().status.success());
    let files = || {
        let mut files: Vec<_> = std::fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| !p.ends_with(".lock"))
            .map(|p| (p.file_name().unwrap().to_owned(), std::fs::read(&p).unwrap()))
            .collect();
        files.sort();
        files
    };
    let before = files();
    let size = |name: &str| before.iter().find(|(n, _)| n == name).unwrap().1.len() as u64;
    let limit = size("state.safetensors") - 1;
    assert!(
        before.iter().all(|(n, b)| n == "state.safetensors" || (b.len() as u64) < limit),
        "only the state exceeds it"
    );
    let limited = || dae_writing_at_most(limit);
    let too_large = ["state.safetensors", "File too large"];
    let output = fails_as(limited(), &[&args[..], &["2"]].concat(), 1, &too_large);
    assert!(
        !String::from_utf8_lossy(&output.stdout).contains("is now in"),
        "nothing was said to be set aside"
    );
    assert!(before == files(), "the previous run is back, unchanged, and nothing of the new one is left");
    assert!(!data.path().join("run.1").exists(), "no folder set aside is left");

    let new = data.path().join("new");
    fails_as(limited(), &["--data", d, "--out", path_str(&new), "--epochs", "1"], 1, &too_large);
    assert!(!new.exists(), "the folder it made is gone");
}

/// A run records its `--data` as a path from the root, though given relative to the working
/// folder; `report` and `--resume` from another folder, where the default `data` is not there,
/// name that folder beside the error.
#[test]
fn report_and_resume_from_elsewhere_name_the_runs_data() {
    let data = dataset(64);
    let (parent, name) = (data.path().parent().unwrap(), data.path().file_name().unwrap());
    let out = data.path().join("run");
    let trained = dae().current_dir(parent).arg("--data").arg(name).args(["--out", path_str(&out)]).output();
    assert!(trained.unwrap().status.success());
    let metrics = Metrics::read(&out.join("metrics.json")).unwrap();
    let whole = data.path().canonicalize().unwrap();
    assert_eq!(metrics.data.unwrap().path, path_str(&whole), "recorded from the root");
    let elsewhere = tempfile::tempdir().unwrap();
    let said = format!("the run in {} was trained with --data {}", out.display(), whole.display());
    for args in [&["report", path_str(&out)][..], &["--resume", path_str(&out), "--epochs", "2"]] {
        let mut command = dae();
        command.current_dir(elsewhere.path());
        fails_as(command, args, 1, &["data: no such folder", &said]);
    }
}

/// A save that fails after the run's first (the state file of epoch 2 larger than `ulimit -f`
/// allows) says that the run's state as saved before stays and how to continue it; the flags it
/// names do.
#[test]
fn a_later_save_that_fails_says_how_to_continue() {
    let data = dataset(256);
    let out = data.path().join("run");
    let (d, o) = (path_str(data.path()), path_str(&out));
    assert!(dae().args(["--data", d, "--out", o, "--epochs", "1"]).output().unwrap().status.success());
    let limit = std::fs::metadata(out.join("state.safetensors")).unwrap().len();
    let resume = ["--data", d, "--resume", o, "--epochs", "2"];
    let stays =
        format!("the run's state as saved before stays in {o}; once it can be written, continue with");
    let flags = format!("--resume {o} --data {d} --epochs 2");
    let failed =
        fails_as(dae_writing_at_most(limit), &resume, 1, &["state.safetensors: File too large", &stays]);
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(stderr.trim_end().ends_with(&flags), "{stderr}");
    // As it says: the flags it names, and nothing else, continue the run.
    let flags: Vec<&str> = flags.split(' ').collect();
    let resumed = dae().args(&flags).output().unwrap();
    assert!(String::from_utf8_lossy(&resumed.stdout).contains("epoch 2/2"), "{resumed:?}");
}

/// One step an epoch (the whole set in a batch) with a huge rate: the step's own loss is
/// finite, the weights after it are not, and validation finds out. Nothing non-finite is saved
/// and nothing hangs (an infinite loss once sent the loss curve's axis into an endless loop).
#[test]
fn a_validation_loss_that_is_not_finite_stops_the_run_and_saves_nothing() {
    let data = dataset(256);
    let out = data.path().join("run");
    let (d, o) = (path_str(data.path()), path_str(&out));
    fails(
        &["--data", d, "--out", o, "--epochs", "2", "--batch-size", "100000", "--lr", "1e30"],
        1,
        &["the validation loss became", "after epoch 1", "--lr"],
    );
    assert!(!out.exists(), "the folder it made is gone, its lock file with it");
}

#[test]
fn bad_state_files_exit_1_naming_the_file() {
    let (data, out) = one_epoch();
    let (d, o) = (path_str(data.path()), path_str(&out));
    let state = out.join("state.safetensors");
    let good = std::fs::read(&state).unwrap();
    let model = std::fs::read(out.join("model.safetensors")).unwrap();
    for (bytes, needle) in [
        (good[..good.len() - 100].to_vec(), "truncated, or its header is wrong: its tensors end "),
        (b"not a model".to_vec(), "not a safetensors file"),
        (model, "no 'adam.t' in the metadata"),
    ] {
        std::fs::write(&state, bytes).unwrap();
        fails(&["--data", d, "--resume", o, "--epochs", "2"], 1, &["state.safetensors", needle]);
    }
    std::fs::write(&state, &good).unwrap();
    let other = tempfile::tempdir().unwrap();
    common::write_dataset(other.path(), &common::bars_dataset_of_side(64, 16, 10));
    let elsewhere = ["--data", path_str(other.path()), "--resume", o, "--epochs", "2"];
    // Refused by the data's print in metrics.json, before the state is read.
    fails(&elsewhere, 1, &["metrics.json: the run was trained on the data in", "holds other data"]);
    // A run from before metrics.json kept the print: by the model's size, once it is read.
    let path = out.join("metrics.json");
    let mut metrics = Metrics::read(&path).unwrap();
    metrics.data = None;
    metrics.write(&path).unwrap();
    fails(&elsewhere, 1, &["the saved model takes 64 pixels, the images in --data have 256"]);
}

/// Starts a long run on `data` into `out`, and waits until it has finished `epochs` epochs.
fn start_and_wait(data: &Path, out: &Path, epochs: usize) -> Child {
    start_and_wait_as(dae(), data, out, epochs)
}

/// [`start_and_wait`], with `command` as the program (`nohup dae`, say).
fn start_and_wait_as(mut command: Command, data: &Path, out: &Path, epochs: usize) -> Child {
    let child = command
        .args(["--data", path_str(data), "--out", path_str(out), "--epochs", "1000", "--batch-size", "8"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while Metrics::read(&out.join("metrics.json")).map_or(0, |m| m.history.len()) < epochs {
        assert!(Instant::now() < deadline, "the run did not get through {epochs} epochs");
        std::thread::sleep(Duration::from_millis(5));
    }
    child
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill").args([&format!("-{name}"), &child.id().to_string()]).status().unwrap();
    assert!(status.success());
}

#[test]
fn sigkill_mid_epoch_leaves_a_loadable_state_of_a_finished_epoch() {
    let data = dataset(4096);
    let out = data.path().join("run");
    let mut child = start_and_wait(data.path(), &out, 2);
    std::thread::sleep(Duration::from_millis(7));
    signal(&child, "KILL");
    child.wait().unwrap();
    let state = checkpoint::load_state(&out.join("state.safetensors"), 1e-3).unwrap();
    let (model, progress) = (state.model, state.progress);
    assert_eq!(progress.step, 0, "saved at an epoch's end");
    // metrics.json showed two epochs; the state, written after it, has at least the first.
    assert!(progress.epoch >= 1);
    assert_eq!(model.widths(), [64, 128, 64, 32, 64, 128, 64]);
    assert!(checkpoint::load(&out.join("model.safetensors")).is_ok());
    let metrics = Metrics::read(&out.join("metrics.json")).unwrap();
    assert!(metrics.history.len() >= progress.epoch);
    let leftovers: Vec<PathBuf> =
        std::fs::read_dir(&out).unwrap().map(|e| e.unwrap().path()).filter(|p| is_our_temp(p)).collect();
    assert!(leftovers.len() <= 1, "at most the one file being written when killed: {leftovers:?}");
}

/// SIGTERM (what `kill`, `timeout` and container runtimes send) and SIGHUP (a closed terminal)
/// are Ctrl-C: the step finishes, the run is saved, no temporary file is left; the exit status is
/// the shell's for the signal, 128 plus its number. The hint names the run's `--data` (it was
/// left out, and the command it gave failed), and quotes a folder a shell would split, as the
/// folder it saved in does.
#[test]
fn sigterm_and_sighup_save_like_ctrl_c_and_leave_no_temporary_files() {
    for (name, status) in [("TERM", 143), ("HUP", 129)] {
        let data = dataset(2048);
        let out = data.path().join("the run");
        let child = start_and_wait(data.path(), &out, 1);
        signal(&child, name);
        let output = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(status), "{stderr}");
        let said = format!("interrupted by SIG{name} after ");
        let (o, d) = (out.display(), data.path().display());
        let hint = format!("; saved in '{o}'; continue with --resume '{o}' --data {d}\n");
        assert!(stderr.contains(&said) && stderr.ends_with(&hint), "{stderr}");
        assert!(checkpoint::load_state(&out.join("state.safetensors"), 1e-3).is_ok());
        assert_eq!(temporary_files(&out), Vec::<PathBuf>::new());
    }
}

/// --profile after --resume sets the floor beside the epochs this process trained, not those
/// of earlier sessions (which may have run on another engine or thread count).
#[test]
fn a_resumed_profile_times_its_own_epochs() {
    let data = dataset(256);
    let out = data.path().join("run");
    let (d, o) = (path_str(data.path()), path_str(&out));
    let first = ["--data", d, "--out", o, "--epochs", "1", "--engine", "reference"];
    assert!(dae().args(first).status().unwrap().success());
    let resumed = dae().args(["--data", d, "--resume", o, "--epochs", "2", "--profile"]).output().unwrap();
    assert!(resumed.status.success());
    let said = String::from_utf8_lossy(&resumed.stdout);
    let second = Metrics::read(&out.join("metrics.json")).unwrap().history[1].seconds;
    assert!(said.contains(&format!("the median epoch, {second:.3} s,")), "{said}");
}

/// --profile says how the data-parallel step's threads shared their time (how long they waited
/// for one another, how the update wrote `W`) when there were two, and says nothing of it for one.
#[test]
fn a_profile_tells_how_the_threads_shared_the_step() {
    let data = dataset(512);
    let d = path_str(data.path());
    for threads in ["1", "2"] {
        let out = data.path().join(format!("run{threads}"));
        let args = ["--data", d, "--out", path_str(&out), "--epochs", "1", "--profile", "--threads", threads];
        let run = dae().args(args).output().unwrap();
        assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
        let said = String::from_utf8_lossy(&run.stdout);
        let two = threads == "2" && std::thread::available_parallelism().map_or(1, |n| n.get()) > 1;
        let waited = said.lines().find(|l| l.starts_with("the threads waited for one another "));
        let wrote = said.lines().find(|l| l.starts_with("the update wrote W in place"));
        assert_eq!((waited.is_some(), wrote.is_some()), (two, two), "{said}");
        if let Some(line) = waited {
            let shares: Vec<f64> =
                line.split_whitespace().filter_map(|w| w.strip_suffix('%')?.parse().ok()).collect();
            assert!(shares.len() == 2 && shares.iter().all(|s| (0.0..100.0).contains(s)), "{line}");
        }
    }
}

/// A signal before the first step (here during --profile's half-second calibration) saves
/// nothing, and the folder the run made goes with it.
#[test]
fn a_signal_before_the_first_step_leaves_nothing() {
    let data = dataset(64);
    let out = data.path().join("new");
    let args = ["--data", path_str(data.path()), "--out", path_str(&out), "--epochs", "1", "--profile"];
    let child = dae().args(args).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(150));
    signal(&child, "TERM");
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(143), "{stderr}");
    assert!(stderr.contains("interrupted by SIGTERM before the first step; nothing was saved"), "{stderr}");
    assert!(!out.exists(), "the run's folder was removed");
}

/// A signal the run was started ignoring stays ignored: under `nohup`, SIGHUP (a closed
/// terminal) does not stop it, and SIGTERM still does.
#[test]
fn under_nohup_sighup_is_ignored() {
    let data = dataset(2048);
    let out = data.path().join("run");
    let mut nohup = default_signals(Command::new("nohup"));
    nohup.arg(env!("CARGO_BIN_EXE_dae")).env_remove("DAE_MEMORY");
    let child = start_and_wait_as(nohup, data.path(), &out, 1);
    signal(&child, "HUP");
    let epochs = |m: Metrics| m.history.len();
    let after_hup = epochs(Metrics::read(&out.join("metrics.json")).unwrap());
    let deadline = Instant::now() + Duration::from_secs(60);
    while Metrics::read(&out.join("metrics.json")).map_or(0, epochs) < after_hup + 2 {
        assert!(Instant::now() < deadline, "the run stopped at SIGHUP");
        std::thread::sleep(Duration::from_millis(5));
    }
    signal(&child, "TERM");
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(143), "{}", String::from_utf8_lossy(&output.stderr));
}

/// A run folder is one run's: a second run into it is refused, naming the process that holds
/// it; once that run ends, the folder is free again, and temporary files a killed run left are
/// cleared when the next run takes the folder.
#[test]
fn a_run_folder_is_held_by_one_run_at_a_time() {
    let data = dataset(2048);
    let out = data.path().join("run");
    let mut child = start_and_wait(data.path(), &out, 1);
    let (d, o) = (path_str(data.path()), path_str(&out));
    let holder = format!("process {}", child.id());
    fails(
        &["--data", d, "--out", o, "--epochs", "1"],
        1,
        &["--out", o, "another run is writing into it", &holder],
    );
    fails(&["--data", d, "--resume", o, "--epochs", "900"], 1, &["--resume", &holder]);
    signal(&child, "KILL");
    child.wait().unwrap();
    let left = out.join(format!(".dae-{}-AbC123.partial", dead_pid()));
    std::fs::write(&left, b"half a file").unwrap();
    let args = ["--data", d, "--resume", o, "--epochs", "1000", "--threads", "1"];
    let resumed = dae().args(args).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while left.exists() {
        assert!(Instant::now() < deadline, "the stale temporary file was not cleared");
        std::thread::sleep(Duration::from_millis(5));
    }
    signal(&resumed, "KILL");
    resumed.wait_with_output().unwrap();
}

#[test]
fn resume_names_a_missing_or_wrong_folder_and_creates_nothing() {
    let data = dataset(64);
    let d = path_str(data.path());
    let missing = data.path().join("missing");
    fails(
        &["--data", d, "--resume", path_str(&missing), "--epochs", "2"],
        1,
        &["--resume", "no such folder", "which training writes (runs/latest, or its --out)"],
    );
    assert!(!missing.exists(), "no folder was made");
    let file = data.path().join("train-images-idx3-ubyte.gz");
    fails(&["--data", d, "--resume", path_str(&file), "--epochs", "2"], 1, &["--resume", "not a folder"]);

    // A folder that is not a run, or not a whole one, is left as it was found: no `.lock`.
    let folder = data.path().join("mine");
    std::fs::create_dir(&folder).unwrap();
    std::fs::write(folder.join("notes.txt"), "mine").unwrap();
    let f = path_str(&folder);
    fails(&["--data", d, "--resume", f], 1, &["--resume", "not a run (no metrics.json)"]);
    std::fs::write(folder.join("metrics.json"), "{}").unwrap();
    fails(&["--data", d, "--resume", f], 1, &["metrics.json", "missing field"]);
    let mut left: Vec<_> = std::fs::read_dir(&folder).unwrap().map(|e| e.unwrap().file_name()).collect();
    left.sort();
    assert_eq!(left, ["metrics.json", "notes.txt"]);
}

/// `metrics.json` edited by hand: its settings get the command line's checks, and must describe
/// the model in the state beside it. Each refusal names the file and the setting.
#[test]
fn resumed_settings_are_checked_like_the_command_lines() {
    let data = dataset(256);
    let out = data.path().join("run");
    let (d, o) = (path_str(data.path()), path_str(&out));
    let ok = dae().args(["--data", d, "--out", o, "--epochs", "1", "--batch-size", "64"]).output().unwrap();
    assert!(ok.status.success());
    let metrics = out.join("metrics.json");
    let good = std::fs::read_to_string(&metrics).unwrap();
    for (from, to, needle) in [
        ("\"batch_size\": 64", "\"batch_size\": 0", "batch_size 0 is not in 1..=4294967295"),
        ("\"batch_size\": 64", "\"batch_size\": 1000000000000", "batch_size 1000000000000 is not in"),
        ("\"lr\": 0.001", "\"lr\": 0.0", "lr 0 is not a positive, finite number"),
        ("\"lr\": 0.001", "\"lr\": -0.5", "lr -0.5 is not a positive, finite number"),
        (
            "\"arch\": \"dense\"",
            "\"arch\": \"conv\"",
            "arch 'conv', but state.safetensors holds a dense model",
        ),
    ] {
        assert!(good.contains(from), "{good}");
        std::fs::write(&metrics, good.replace(from, to)).unwrap();
        fails(&["--data", d, "--resume", o, "--epochs", "2"], 1, &["metrics.json", needle]);
    }
    let hidden = good.replacen("128", "100", 1);
    std::fs::write(&metrics, hidden).unwrap();
    fails(
        &["--data", d, "--resume", o, "--epochs", "2"],
        1,
        &["metrics.json: hidden [100, 64, 32]", "state.safetensors holds"],
    );
}

/// A setting repeated beside `--resume` is accepted when it agrees with the run's, and refused,
/// naming the run's value, when it does not.
#[test]
fn resume_accepts_settings_that_agree_and_names_the_saved_one_that_differs() {
    let data = dataset(256);
    let out = data.path().join("run");
    let (d, o) = (path_str(data.path()), path_str(&out));
    let ok = dae().args(["--data", d, "--out", o, "--epochs", "1", "--batch-size", "64"]).output().unwrap();
    assert!(ok.status.success());
    fails(
        &["--data", d, "--resume", o, "--epochs", "2", "--seed", "7"],
        2,
        &["--seed 7: the run in", "has 42"],
    );
    fails(
        &["--data", d, "--resume", o, "--epochs", "2", "--batch-size", "32"],
        2,
        &["--batch-size 32", "has 64"],
    );
    fails(
        &["--data", d, "--resume", o, "--epochs", "2", "--fresh-noise"],
        2,
        &["--fresh-noise: the run in", "draws its noise once"],
    );
    let agreeing = ["--data", d, "--resume", o, "--epochs", "2", "--seed", "42", "--batch-size", "64"];
    let resumed = dae().args(agreeing).output().unwrap();
    assert!(resumed.status.success(), "{}", String::from_utf8_lossy(&resumed.stderr));
}

/// Without `--epochs`, a resumed run goes on to the epochs its metrics.json records (what the hint
/// after Ctrl-C, `continue with --resume DIR`, promises), not to the flag's default of 10; and
/// one that has done them all says so.
#[test]
fn resume_without_epochs_keeps_the_runs_own() {
    let (data, out) = one_epoch();
    let (d, o) = (path_str(data.path()), path_str(&out));
    fails(
        &["--data", d, "--resume", o],
        2,
        &["has done all 1 of its epochs", "give --epochs N with N above 1"],
    );
    let metrics = out.join("metrics.json");
    let mut edited = Metrics::read(&metrics).unwrap();
    edited.config.epochs = 3;
    edited.write(&metrics).unwrap();
    let resumed = dae().args(["--data", d, "--resume", o]).output().unwrap();
    assert!(resumed.status.success(), "{}", String::from_utf8_lossy(&resumed.stderr));
    let after = Metrics::read(&metrics).unwrap();
    assert_eq!((after.history.len(), after.config.epochs), (3, 3));
    fails(
        &["--data", d, "--resume", o, "--epochs", "3"],
        2,
        &["--epochs 3: the run in", "has done 3 already"],
    );
}

/// Standard output and error that cannot be written to (`dae … | head -1`, `> /dev/full`) lose
/// the lines, not the run: it trains, saves and reports as it would (it used to panic after the
/// first epoch's line, before saving the epoch).
#[test]
fn a_full_standard_output_loses_lines_not_the_run() {
    let data = dataset(64);
    let out = data.path().join("run");
    let (d, o) = (path_str(data.path()), path_str(&out));
    let full = || Stdio::from(std::fs::OpenOptions::new().write(true).open("/dev/full").unwrap());
    let args = ["--data", d, "--out", o, "--epochs", "2", "--layers", "8,4,2"];
    let status = dae().args(args).stdout(full()).stderr(full()).status().unwrap();
    assert!(status.success(), "{status}");
    assert_eq!(Metrics::read(&out.join("metrics.json")).unwrap().history.len(), 2);
    assert!(out.join("report.html").is_file() && out.join("model.safetensors").is_file());
    let status = dae().args(["report", o, "--data", d]).stdout(full()).stderr(full()).status().unwrap();
    assert!(status.success(), "report: {status}");
    // eval's and the sweep's lines are their result, and so are the help and the version: a full
    // disk loses it, which is an error.
    for args in [
        &["eval", "--model", o, "--data", d][..],
        &["eval", "--sweep", "--model", o, "--data", d],
        &["--help"],
        &["eval", "--help"],
        &["--version"],
    ] {
        let output = dae().args(args).stdout(full()).output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains("error: standard output: No space left on device"), "{stderr}");
    }
}

/// The epoch line gives a step's time in microseconds when it is under a millisecond (a batch of
/// one image printed "0.0 ms/step").
#[test]
fn a_short_step_is_timed_in_microseconds() {
    let data = dataset(64);
    let (d, o) = (path_str(data.path()), data.path().join("run"));
    let args =
        ["--data", d, "--out", path_str(&o), "--epochs", "1", "--batch-size", "1", "--layers", "8,4,2"];
    let run = dae().args(args).output().unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success() && stdout.contains("/step") && !stdout.contains(" 0.0 ms/step"), "{stdout}");
}

/// Paths that are not what they seem get a message that says what they are.
#[test]
fn odd_output_paths_are_named_for_what_they_are() {
    let data = dataset(64);
    let d = path_str(data.path());
    let link = data.path().join("link");
    std::os::unix::fs::symlink(data.path().join("nowhere"), &link).unwrap();
    fails(
        &["--data", d, "--out", path_str(&link)],
        2,
        &["--out", "a link to", "nowhere, which does not exist"],
    );
    let model = data.path().join("m.safetensors");
    checkpoint::save(
        &dae::engine::model::Model::autoencoder(
            64,
            &[8],
            &mut <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(1),
        ),
        (8, 8),
        &model,
    )
    .unwrap();
    let folder = format!("{}/", data.path().join("newdir").display());
    fails(
        &["encode", "--model", path_str(&model), "--data", d, "--out", &folder],
        2,
        &["newdir/: names a folder (it ends in /); name the CSV file to write"],
    );
    let file = data.path().join("plain");
    std::fs::write(&file, "").unwrap();
    let under_a_file = format!("{}/codes.csv", file.display());
    fails(
        &["encode", "--model", path_str(&model), "--data", d, "--out", &under_a_file],
        2,
        &["plain/codes.csv:", "plain is not a folder"],
    );
    fails(
        &["encode", "--model", path_str(&model), "--data", d, "--out", path_str(data.path())],
        2,
        &["is a folder; name the CSV file to write"],
    );
    // A link (as /dev/stdout is one): renaming over it would replace the link with a file.
    let to_file = data.path().join("to-file.csv");
    std::os::unix::fs::symlink(&file, &to_file).unwrap();
    let needle =
        format!("--out {}: is a link to {}, which writing would replace", to_file.display(), file.display());
    fails(&["encode", "--model", path_str(&model), "--data", d, "--out", path_str(&to_file)], 2, &[&needle]);
    assert!(std::fs::symlink_metadata(&to_file).unwrap().file_type().is_symlink());
    // A run's own files: codes written over its state would lose the run, over its lock let a
    // second run write into it.
    let (_kept, run) = one_epoch();
    for name in ["state.safetensors", "metrics.json", ".lock"] {
        let out = run.join(name);
        let before = std::fs::read(&out).unwrap();
        let needle = format!("--out {}: is a file of the run in {}", out.display(), run.display());
        fails(&["encode", "--model", path_str(&model), "--data", d, "--out", path_str(&out)], 2, &[&needle]);
        assert_eq!(std::fs::read(&out).unwrap(), before);
    }
}

/// A run resumed on other data of the same shape is noticed: `metrics.json` records a CRC-32 of
/// the data set, and the message names both folders.
#[test]
fn resume_on_other_data_is_refused() {
    let data = dataset(256);
    let out = data.path().join("run");
    let (d, o) = (path_str(data.path()), path_str(&out));
    assert!(dae().args(["--data", d, "--out", o, "--epochs", "1"]).output().unwrap().status.success());
    let other = tempfile::tempdir().unwrap();
    let mut changed = common::bars_dataset_of_side(256, 8, 64);
    changed.train.images.pixels[100] ^= 1;
    common::write_dataset(other.path(), &changed);
    let needles = ["metrics.json: the run was trained on the data in", d, "holds other data"];
    fails(&["--data", path_str(other.path()), "--resume", o, "--epochs", "2"], 1, &needles);
    // The same data from another folder is the same data.
    common::write_dataset(other.path(), &common::bars_dataset_of_side(256, 8, 64));
    let resumed =
        dae().args(["--data", path_str(other.path()), "--resume", o, "--epochs", "2"]).output().unwrap();
    assert!(resumed.status.success(), "{}", String::from_utf8_lossy(&resumed.stderr));
}

/// `--threads` beyond the machine's cores starts no more workers than it has (extra ones only
/// wait, and their waiting cost 64 threads on 2 cores 6.6 times the epoch time); the results
/// are the same bits either way.
#[test]
fn threads_beyond_the_cores_start_no_more_workers_and_change_no_result() {
    let data = dataset(256);
    let cores = std::thread::available_parallelism().unwrap().get();
    let run = |threads: &str| {
        let out = data.path().join(format!("t{threads}"));
        let args =
            ["--data", path_str(data.path()), "--out", path_str(&out), "--epochs", "1", "--threads", threads];
        assert!(dae().args(args).output().unwrap().status.success());
        let metrics = Metrics::read(&out.join("metrics.json")).unwrap();
        (metrics.threads, metrics.history[0].val_loss, std::fs::read(out.join("model.safetensors")).unwrap())
    };
    let (one, many) = (run("1"), run("1024"));
    assert_eq!(one.0, 1);
    assert_eq!(many.0, cores, "workers started for --threads 1024");
    assert_eq!((one.1.to_bits(), &one.2), (many.1.to_bits(), &many.2), "the same loss and model bytes");
}

/// Every matrix-product path this CPU has (`DAE_KERNEL`) trains the same bits: our kernel sums
/// in `matrixmultiply`'s order. A path that does not exist, or that this CPU cannot run, is
/// refused before anything starts.
#[test]
fn every_kernel_path_trains_the_same_bits() {
    use dae::engine::kernel::Path as Kernel;
    let data = dataset(256);
    let run = |kernel: Kernel| {
        let out = data.path().join(kernel.name());
        let args = ["--data", path_str(data.path()), "--out", path_str(&out), "--epochs", "1", "--profile"];
        let output = dae().env("DAE_KERNEL", kernel.name()).args(args).output().unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        let used = format!("(products through {})", kernel.describe());
        assert!(String::from_utf8_lossy(&output.stdout).contains(&used));
        std::fs::read(out.join("model.safetensors")).unwrap()
    };
    let portable = run(Kernel::Portable);
    for kernel in [Kernel::Avx512, Kernel::Avx2] {
        if kernel.supported() {
            assert_eq!(run(kernel), portable, "the model's bytes on {} and portable", kernel.name());
        } else {
            let refused = dae().env("DAE_KERNEL", kernel.name()).args(["--epochs", "1"]).output().unwrap();
            assert_eq!(refused.status.code(), Some(2));
            let message = format!("DAE_KERNEL={}: this CPU cannot run it", kernel.name());
            assert!(String::from_utf8_lossy(&refused.stderr).contains(&message));
        }
    }
    let unknown = dae().env("DAE_KERNEL", "sse9").args(["--epochs", "1"]).output().unwrap();
    assert_eq!(unknown.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&unknown.stderr);
    assert_eq!(stderr.trim(), "error: DAE_KERNEL=sse9: expected avx512, avx2 or portable");
    // In any case, with spaces around it, as DAE_MEMORY's units: the command runs (and here
    // finds no run to report on).
    let spaced = dae().env("DAE_KERNEL", " Portable ").args(["report", "nowhere"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&spaced.stderr);
    assert!(stderr.contains("nowhere: no such folder") && !stderr.contains("DAE_KERNEL"), "{stderr}");
    assert!(stderr.contains("which training writes (runs/latest, or its --out)"), "{stderr}");
}

/// A test set that is the training set (a file copied over the other) trains, but is said to be:
/// the validation would measure images the model trains on.
#[test]
fn a_test_set_that_is_the_training_set_is_said_to_be() {
    let dir = tempfile::tempdir().unwrap();
    let mut data = common::bars_dataset(64, 64);
    let (d, out) = (path_str(dir.path()), dir.path().join("run"));
    let args = ["--data", d, "--out", path_str(&out), "--epochs", "1"];
    let warning = "the training and test images are the same";
    for same in [false, true] {
        if same {
            data.test = data.train.clone();
        }
        common::write_dataset(dir.path(), &data);
        let run = dae().args(args).output().unwrap();
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(run.status.success(), "{stderr}");
        assert_eq!(stderr.contains(&format!("warning: {d}: {warning}")), same, "{stderr}");
        std::fs::remove_dir_all(&out).unwrap();
    }
}

/// A folder that cannot be written is named before any training, not after an epoch.
#[test]
fn an_unwritable_out_is_named_before_training() {
    let data = dataset(256);
    let d = path_str(data.path());
    let out = fails(
        &["--data", d, "--out", "/proc/self", "--epochs", "1"],
        1,
        &["--out /proc/self: cannot write into it"],
    );
    assert!(out.stdout.is_empty(), "no epoch ran");
}

/// In a terminal the progress bar starts at `0/STEPS`, never at a full bar of `0/0` (run under
/// `script`, which gives the program a terminal).
#[test]
fn the_progress_bar_knows_its_length_from_the_first_frame() {
    let data = dataset(256);
    let out = data.path().join("run");
    let command = format!(
        "{} --data {} --out {} --epochs 1 --batch-size 16",
        env!("CARGO_BIN_EXE_dae"),
        path_str(data.path()),
        path_str(&out)
    );
    let shown = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env_remove("DAE_MEMORY")
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&shown.stdout);
    assert!(shown.contains("/16 steps"), "{shown}");
    assert!(!shown.contains("0/0 steps"), "{shown}");
}

/// Whether `path` is named as this program names its temporary files.
fn is_our_temp(path: &Path) -> bool {
    let name = path.file_name().unwrap().to_string_lossy().to_string();
    name.starts_with(".dae-") && name.ends_with(".partial")
}

/// `dae`, allowed files of at most `bytes` bytes (`ulimit -f`): a write past them fails with
/// EFBIG, as on a full disk (`SIGXFSZ` ignored, which would kill it).
fn dae_writing_at_most(bytes: u64) -> Command {
    use std::os::unix::process::CommandExt;
    let mut limited = dae();
    // SAFETY: between fork and exec only `setrlimit` and `signal`, both async-signal-safe, run.
    unsafe {
        limited.pre_exec(move || {
            let rlimit = libc::rlimit { rlim_cur: bytes, rlim_max: bytes };
            libc::setrlimit(libc::RLIMIT_FSIZE, &rlimit);
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            Ok(())
        });
    }
    limited
}

/// The id of a process that has ended.
fn dead_pid() -> u32 {
    let mut child = Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    pid
}

/// A link planted at `RUN/.lock` never makes a run write through it: `report`, `--resume` and
/// `--out` refuse it, naming it, and the file it points to stays byte for byte as it was; a
/// dangling link creates nothing; a folder in its place is named as one.
#[test]
fn the_run_lock_never_follows_a_link() {
    let (data, run) = one_epoch();
    let d = path_str(data.path());
    let victim = data.path().join("victim.txt");
    std::fs::write(&victim, "precious").unwrap();
    std::fs::remove_file(run.join(".lock")).unwrap();
    std::os::unix::fs::symlink(&victim, run.join(".lock")).unwrap();
    let r = path_str(&run);
    // Every command that takes the folder refuses the link and leaves the victim as it was.
    let every_command_refuses = |message: &str| {
        for args in [
            &["report", r, "--data", d][..],
            &["--data", d, "--resume", r, "--epochs", "2"],
            &["--data", d, "--out", r],
        ] {
            fails(args, 1, &[message]);
            assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious", "{args:?}");
        }
    };
    every_command_refuses(".lock is a symbolic link");
    std::fs::remove_file(run.join(".lock")).unwrap();
    let nowhere = data.path().join("created-through-the-link");
    std::os::unix::fs::symlink(&nowhere, run.join(".lock")).unwrap();
    fails(&["report", r, "--data", d], 1, &[".lock is a symbolic link"]);
    assert!(!nowhere.exists(), "a dangling link made no file");
    // A hard link is a regular file, but another name of the victim.
    std::fs::remove_file(run.join(".lock")).unwrap();
    std::fs::hard_link(&victim, run.join(".lock")).unwrap();
    every_command_refuses(".lock is a hard link to another file");
    // A folder in its place is named as such, not the run's folder as unwritable.
    std::fs::remove_file(run.join(".lock")).unwrap();
    std::fs::create_dir(run.join(".lock")).unwrap();
    every_command_refuses(".lock is a folder; remove it if no run is using the folder");
}

/// One holder at a time even while holders remove `.lock` as a run that fails before its first
/// save does (while it still holds it, as its last act in the folder): a taker that opened the
/// file just before it went must not lock the orphan while another takes the new `.lock`. Four
/// threads take the folder in turn 400 times in all (each take syncs the file: seconds on a slow
/// disk), each removing `.lock` before letting go every other time. A stress test: the race
/// itself, forced, is `run_lock`'s own unit test.
#[test]
fn a_removed_lock_file_is_never_held_twice() {
    use dae::files::run_lock::RunLock;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let dir = tempfile::tempdir().unwrap();
    // Only the taker that made the file may remove it.
    assert!(RunLock::acquire(dir.path()).unwrap().created(), "made where there was none");
    assert!(!RunLock::acquire(dir.path()).unwrap().created(), "taken as it was");
    let (holders, most, taken) = (AtomicUsize::new(0), AtomicUsize::new(0), AtomicUsize::new(0));
    let until = Instant::now() + Duration::from_secs(20);
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| {
                let mut turn = 0;
                while taken.load(Ordering::SeqCst) < 400 && Instant::now() < until {
                    let Ok(lock) = RunLock::acquire(dir.path()) else { continue };
                    let now = holders.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    taken.fetch_add(1, Ordering::SeqCst);
                    turn += 1;
                    // The holding ends here, before `.lock` is removed: from then on another
                    // may take the folder (a run removes it as it ends).
                    holders.fetch_sub(1, Ordering::SeqCst);
                    if turn % 2 == 0 {
                        let _ = std::fs::remove_file(dir.path().join(".lock"));
                    }
                    drop(lock);
                }
            });
        }
    });
    assert!(taken.into_inner() >= 400, "the folder was taken 400 times");
    assert_eq!(most.into_inner(), 1, "two threads held the folder at once");
}

/// Only this program's own temporary files, of writers that have ended, are ever removed, and
/// only in a folder it recognised: a foreign `.tmp-notes`, and ours of a live writer (here, or
/// in another PID namespace: its lock), stay; a folder that is not a run gets no `.lock` either.
#[test]
fn only_our_dead_writers_temporary_files_are_removed() {
    let dir = tempfile::tempdir().unwrap();
    let notes = dir.path().join(".tmp-notes");
    std::fs::write(&notes, "hi").unwrap();
    fails(&["report", path_str(dir.path())], 1, &["not a run (no metrics.json)"]);
    assert_eq!(std::fs::read_to_string(&notes).unwrap(), "hi");
    assert!(!dir.path().join(".lock").exists(), "no lock left in a folder that is not a run");

    let (data, run) = one_epoch();
    // Nor one that holds a run's metrics.json but not its state.
    std::fs::copy(run.join("metrics.json"), dir.path().join("metrics.json")).unwrap();
    let (d, only_metrics) = (path_str(data.path()), path_str(dir.path()));
    let killed_in_first_save = ["no state.safetensors", "stopped while saving its first epoch"];
    fails(&["report", only_metrics, "--data", d], 1, &killed_in_first_save);
    assert!(!dir.path().join(".lock").exists(), "no lock left beside a metrics.json alone");
    fails(&["--resume", only_metrics, "--data", d, "--epochs", "2"], 1, &killed_in_first_save);
    let dead = run.join(format!(".dae-{}-XyZ789.partial", dead_pid()));
    let live = run.join(format!(".dae-{}-XyZ789.partial", std::process::id()));
    // A writer in another PID namespace (a container sharing the folder) has a process id that
    // is no one's here, but holds its file's lock.
    let elsewhere = run.join(format!(".dae-{}-Other1.partial", dead_pid()));
    let foreign =
        [run.join(".tmp-notes"), run.join(".dae-notes.partial"), run.join(".dae-1-toolong.partial")];
    for file in [&dead, &live, &elsewhere].into_iter().chain(&foreign) {
        std::fs::write(file, "x").unwrap();
    }
    let writing = std::fs::File::open(&elsewhere).unwrap();
    writing.lock().unwrap();
    let out = dae().args(["report", path_str(&run), "--data", path_str(data.path())]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!dead.exists(), "a dead writer's temporary file is cleared");
    let stay = [&live, &elsewhere].into_iter().chain(&foreign);
    assert!(stay.clone().all(|f| f.exists()), "the rest stay: {:?}", stay.collect::<Vec<_>>());
    drop(writing);

    // Beside an encoded CSV too, where killed encodes leave theirs.
    let stale = data.path().join(format!(".dae-{}-Enc001.partial", dead_pid()));
    std::fs::write(&stale, [0u8; 1000]).unwrap();
    let csv = data.path().join("codes.csv");
    let args =
        ["encode", "--model", path_str(&run), "--data", path_str(data.path()), "--out", path_str(&csv)];
    assert!(dae().args(args).output().unwrap().status.success());
    assert!(!stale.exists() && csv.is_file());
}

fn temporary_files(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).filter(|p| is_our_temp(p)).collect()
}

/// Ctrl-C finishes the step, saves, exits 130; `--resume` then ends on exactly the weights of a
/// run that was never interrupted.
#[test]
fn ctrl_c_saves_and_resume_matches_an_uninterrupted_run() {
    let data = dataset(2048);
    let interrupted = data.path().join("interrupted");
    let child = start_and_wait(data.path(), &interrupted, 1);
    std::thread::sleep(Duration::from_millis(3));
    signal(&child, "INT");
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("interrupted by SIGINT after ") && stderr.contains("--resume"), "{stderr}");
    let progress = checkpoint::load_state(&interrupted.join("state.safetensors"), 1e-3).unwrap().progress;
    let epochs = (progress.epoch + 2).to_string();

    let (d, i) = (path_str(data.path()), path_str(&interrupted));
    let resumed = dae().args(["--data", d, "--resume", i, "--epochs", &epochs]).output().unwrap();
    assert!(resumed.status.success(), "{}", String::from_utf8_lossy(&resumed.stderr));
    // The resumed epoch times the steps it ran, and says which.
    let said = String::from_utf8_lossy(&resumed.stdout);
    let epoch = progress.epoch + 1;
    let part = format!("epoch {epoch}/{epochs}");
    let line = said.lines().find(|l| l.starts_with(&part)).unwrap_or_else(|| panic!("{said}"));
    if progress.step > 0 {
        assert!(line.contains(&format!(" s (steps {} to 256) ", progress.step + 1)), "{line}");
    }
    let from = Metrics::read(&interrupted.join("metrics.json")).unwrap().history[epoch - 1].from_step;
    assert_eq!(from, progress.step);
    let straight = data.path().join("straight");
    let args = ["--data", d, "--out", path_str(&straight), "--epochs", &epochs, "--batch-size", "8"];
    assert!(dae().args(args).output().unwrap().status.success());

    let load = |dir: &Path| checkpoint::load_state(&dir.join("state.safetensors"), 1e-3).unwrap();
    let (a, b) = (load(&interrupted), load(&straight));
    assert_eq!(a.model, b.model, "weights");
    assert_eq!((a.adam.m, a.adam.v, a.adam.t), (b.adam.m, b.adam.v, b.adam.t), "Adam's state");
    assert_eq!(a.snapshots, b.snapshots, "the report's reconstructions");
    let (ma, mb) = (
        Metrics::read(&interrupted.join("metrics.json")).unwrap(),
        Metrics::read(&straight.join("metrics.json")).unwrap(),
    );
    let losses = |m: &Metrics| m.history.iter().map(|e| (e.train_loss, e.val_loss)).collect::<Vec<_>>();
    assert_eq!(losses(&ma), losses(&mb), "every epoch's losses");
    assert_eq!(ma.dead_units, mb.dead_units, "every epoch's dead units");
}

#[test]
fn bad_model_files_exit_1_naming_the_file() {
    let (data, out) = one_epoch();
    let d = path_str(data.path());
    let model = out.join("model.safetensors");
    let good = std::fs::read(&model).unwrap();
    let bad = data.path().join("bad.safetensors");
    let b = path_str(&bad);
    for (bytes, needle) in [
        (good[..good.len() / 2].to_vec(), "truncated, or its header is wrong: its tensors end "),
        (b"GIF89a, not a model at all".to_vec(), "not a safetensors file: it is a GIF image"),
        (b"\x89PNG\r\n\x1a\n and an image".to_vec(), "not a safetensors file: it is a PNG image"),
        (b"PK\x03\x04, PyTorch's torch.save".to_vec(), "it is a ZIP archive, as PyTorch's .pt files are"),
        (std::fs::read(out.join("metrics.json")).unwrap(), "it is JSON text, as a run's metrics.json is"),
        (b"\xfe\xfe\xfe\xfe\xfe\xfe\xfe\xfe, random".to_vec(), "truncated, or not a safetensors file"),
    ] {
        std::fs::write(&bad, bytes).unwrap();
        fails(&["eval", "--model", b, "--data", d], 1, &["bad.safetensors", needle]);
        fails(
            &["encode", "--model", b, "--data", d, "--out", path_str(&data.path().join("c.csv"))],
            1,
            &["bad.safetensors", needle],
        );
    }
    fails(
        &["eval", "--model", path_str(&data.path().join("none.safetensors")), "--data", d],
        1,
        &["none.safetensors", "no such file; train a model first"],
    );
    // A name with a newline in it is named on one line (`fails` counts them).
    fails(&["eval", "--model", "no\nsuch\r.safetensors", "--data", d], 1, &["no\\nsuch\\r.safetensors"]);
    fails(&["--data", "no\ndata"], 1, &["no\\ndata"]);
    // Layers that do not chain: the file of a model whose second layer was swapped for its third.
    let mut m = checkpoint::load(&model).unwrap();
    m.layers.swap(1, 2);
    checkpoint::save(&m, (8, 8), &bad).unwrap();
    fails(
        &["eval", "--model", b, "--data", d],
        1,
        &["bad.safetensors", "layers.1.weight takes 64 inputs, layer 0 gives 128"],
    );
}

/// `--model` takes a run folder for its model.safetensors; given the run's state file instead,
/// it says what that is and names the model; given a folder without a model, says so.
#[test]
fn model_flags_take_a_run_folder_and_explain_a_state_file() {
    let (data, run) = one_epoch();
    let d = path_str(data.path());
    let out = dae().args(["eval", "--model", path_str(&run), "--data", d]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("k-NN accuracy"));
    // The sweep's levels with one decimal each, 1.0 among 0.9 (it printed `gaussian:1`).
    let sweep = dae().args(["eval", "--sweep", "--model", path_str(&run), "--data", d]).output().unwrap();
    let table = String::from_utf8_lossy(&sweep.stdout);
    assert!(table.contains("\ngaussian:0.9 ") && table.contains("\ngaussian:1.0 "), "{table}");
    assert!(table.contains("\nsalt-pepper:0.1 ") && table.contains("\nmasking:0.9 "), "{table}");
    let encoded = data.path().join("codes.csv");
    let out =
        dae().args(["encode", "--model", path_str(&run), "--data", d, "--out", path_str(&encoded)]).output();
    assert!(out.unwrap().status.success() && encoded.is_file());
    let state = run.join("state.safetensors");
    fails(
        &["eval", "--model", path_str(&state), "--data", d],
        1,
        &[
            "state.safetensors: a run's training state (for --resume), not a model; the model is model.safetensors beside it",
        ],
    );
    fails(&["eval", "--model", d, "--data", d], 1, &["a folder without a model.safetensors"]);
}

/// Help wraps its lines (to the terminal, or to 100 columns without one).
#[test]
fn help_lines_are_wrapped() {
    for args in [&["-h"][..], &["--help"], &["eval", "--help"]] {
        let out = dae().args(args).output().unwrap();
        let help = String::from_utf8(out.stdout).unwrap();
        let longest = help.lines().map(|l| l.chars().count()).max().unwrap();
        assert!(longest <= 100, "{args:?}: a line of {longest} characters");
    }
}

/// A failed command removes only the folders its own `mkdir` made: not a user's empty folder
/// reached through `..`, and not the lock file or folder of a run that holds it (a refused run
/// into `ghost/../busy` removed the running one's `.lock`, and a third run then took its folder).
#[test]
fn a_failed_run_removes_no_folder_and_no_lock_it_did_not_make() {
    let data = dataset(256);
    let (d, root) = (path_str(data.path()), data.path());
    std::fs::create_dir(root.join("keepme")).unwrap();
    let keepme = root.join("ghost/../keepme");
    let args =
        ["--data", d, "--out", path_str(&keepme), "--epochs", "1", "--batch-size", "100000", "--lr", "1e30"];
    fails(&args, 1, &["the validation loss became"]);
    assert!(root.join("keepme").is_dir(), "the user's folder stays");
    assert!(!root.join("ghost").exists(), "the folder it made goes");

    let busy = root.join("busy");
    std::fs::create_dir(&busy).unwrap();
    let held = std::fs::File::create(busy.join(".lock")).unwrap();
    held.try_lock().unwrap();
    let refused = root.join("ghost/../busy");
    fails(
        &["--data", d, "--out", path_str(&refused), "--epochs", "1"],
        1,
        &["another run is writing into it"],
    );
    assert!(busy.join(".lock").is_file(), "the holder's lock file stays");
    assert!(!root.join("ghost").exists(), "the folder it made goes");
}

/// An `encode` whose CSV cannot be written (here a limit on a file's size, `ulimit -f`; a full
/// disk alike) leaves no folder it made for it behind.
#[test]
fn an_encode_that_cannot_write_removes_the_folders_it_made() {
    let (data, run) = one_epoch();
    let csv = data.path().join("codes/of/run/codes.csv");
    let limited = dae_writing_at_most(100);
    let model = run.join("model.safetensors");
    let args =
        ["encode", "--model", path_str(&model), "--data", path_str(data.path()), "--out", path_str(&csv)];
    fails_as(limited, &args, 1, &["codes.csv", "File too large"]);
    assert!(!data.path().join("codes").exists(), "the folders it made are gone");
}

/// `denoise` writes all its results or none: with room for one result but not the next (a file
/// size limit between the two), it writes neither, and removes the folders it made (the first
/// result was left behind).
#[test]
fn a_denoise_that_cannot_write_every_result_writes_none() {
    let (data, run) = one_epoch();
    let model = path_str(&run);
    let (blank, busy) = (data.path().join("blank.png"), data.path().join("busy.png"));
    dae::files::pngio::write_gray(&blank, (8, 8), &[0.0; 64]).unwrap();
    let checkers: Vec<f32> = (0..64).map(|i| ((i * 7 + i / 8) % 3) as f32 / 2.0).collect();
    dae::files::pngio::write_gray(&busy, (8, 8), &checkers).unwrap();
    let free = data.path().join("free");
    let args = |out: &Path, first: &Path, second: &Path| {
        ["denoise", "--model", model, path_str(first), path_str(second), "--out", path_str(out)]
            .map(String::from)
    };
    assert!(dae().args(args(&free, &blank, &busy)).output().unwrap().status.success());
    let size = |name: &str| std::fs::metadata(free.join(name)).unwrap().len();
    let (small, large) = match (size("blank.png"), size("busy.png")) {
        (b, c) if b < c => ((&blank, b), (&busy, c)),
        (b, c) if c < b => ((&busy, c), (&blank, b)),
        sizes => panic!("the two results should differ in size: {sizes:?}"),
    };
    let limited = dae_writing_at_most(large.1 - 1);
    let out = data.path().join("new/out");
    let args = args(&out, small.0, large.0);
    let large_name = large.0.file_name().unwrap().to_str().unwrap();
    fails_as(limited, &args.each_ref().map(String::as_str), 1, &[large_name, "File too large"]);
    assert!(!data.path().join("new").exists(), "no result, and no folder, is left");
}

/// `denoise` keeps every result's temporary file open until all are written: with fewer open
/// files allowed than that, it raises its own limit where the hard limit lets it, and otherwise
/// says so before writing anything (with `ulimit -n 64`, 100 images failed at the 61st).
#[test]
fn a_denoise_of_many_images_raises_its_open_files_limit_or_says_so() {
    use std::os::unix::process::CommandExt;
    let (data, run) = one_epoch();
    let png = data.path().join("a.png");
    dae::files::pngio::write_gray(&png, (8, 8), &[0.5; 64]).unwrap();
    let images: Vec<PathBuf> = (0..100).map(|i| data.path().join(format!("i{i}.png"))).collect();
    for image in &images {
        std::fs::copy(&png, image).unwrap();
    }
    let with_open_files = |soft: u64, hard: u64| {
        let mut command = dae();
        // SAFETY: between fork and exec only `setrlimit`, which is async-signal-safe, runs.
        unsafe {
            command.pre_exec(move || {
                let rlimit = libc::rlimit { rlim_cur: soft, rlim_max: hard };
                libc::setrlimit(libc::RLIMIT_NOFILE, &rlimit);
                Ok(())
            });
        }
        command
    };
    let denoise = |out: &Path| {
        let mut args = vec!["denoise".to_string(), "--model".into(), path_str(&run).into()];
        args.extend(images.iter().map(|i| path_str(i).to_string()));
        args.extend(["--out".into(), path_str(out).into(), "--noise".into(), "gaussian:0.5".into()]);
        args
    };
    let raised = data.path().join("raised");
    let out = with_open_files(64, 4096).args(denoise(&raised)).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read_dir(&raised).unwrap().count(), 200, "every result and its corruption");
    let held = data.path().join("held");
    let args = denoise(&held);
    let needles = ["200 files written at once need 264 open files", "may open 64 (ulimit -n)"];
    fails_as(with_open_files(64, 64), &args.iter().map(String::as_str).collect::<Vec<_>>(), 1, &needles);
    assert!(!held.exists(), "nothing written, no folder left");
}

/// A command other than training that a signal ends removes the temporary file it was writing
/// and the folders it made for it: `encode` of 20,000 images by a conv model into two new
/// folders, SIGTERM once its `.partial` file is there (which was left, empty, beside the CSV;
/// then the folders were left, empty).
#[test]
fn sigterm_during_encode_leaves_no_temporary_file() {
    let data = tempfile::tempdir().unwrap();
    common::write_dataset(data.path(), &common::bars_dataset_of_side(16, 28, 4));
    let (d, run) = (path_str(data.path()), data.path().join("run"));
    let train = ["--data", d, "--out", path_str(&run), "--epochs", "1", "--arch", "conv"];
    assert!(dae().args(train).output().unwrap().status.success());
    let many = tempfile::tempdir().unwrap();
    common::write_dataset(many.path(), &common::bars_dataset_of_side(16, 28, 20_000));
    let (out, model) = (many.path().join("codes/sub"), run.join("model.safetensors"));
    let encode = ["encode", "--model", path_str(&model), "--data", path_str(many.path())];
    let csv = out.join("codes.csv");
    let child = dae().args(encode).arg("--out").arg(&csv).stderr(Stdio::piped()).spawn().unwrap();
    let partial = || {
        let names = std::fs::read_dir(&out).into_iter().flatten().map(|e| e.unwrap().file_name());
        names.filter(|n| n.to_string_lossy().ends_with(".partial")).count()
    };
    let start = Instant::now();
    while partial() == 0 && start.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(2));
    }
    assert_eq!(partial(), 1, "encode writes through a temporary file");
    signal(&child, "TERM");
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(143), "{stderr}");
    assert!(stderr.contains("interrupted by SIGTERM"), "{stderr}");
    assert_eq!(partial(), 0, "the temporary file is gone");
    assert!(!csv.exists(), "no CSV, whole or half");
    assert!(!many.path().join("codes").exists(), "the folders it made are gone");
}

/// SIGTERM during the end-of-run work (here the report's measurements of a wide model, seconds
/// long) ends the process at once with SIGTERM's 143, leaving the last epoch's files whole.
#[test]
fn sigterm_after_the_last_epoch_ends_the_run_at_once() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    common::write_dataset(dir.path(), &common::bars_dataset_of_side(2000, 28, 2000));
    let out = dir.path().join("run");
    let args = [
        "--data",
        path_str(dir.path()),
        "--out",
        path_str(&out),
        "--epochs",
        "1",
        "--layers",
        "2048,1024,512",
    ];
    let mut child = dae().args(args).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    // Past the epoch's progress lines (one every ten seconds on a slow machine) to the measuring.
    let measuring = lines.by_ref().map(|l| l.unwrap()).find(|l| l.starts_with("measuring the report's"));
    assert!(measuring.is_some(), "the measurements were announced");
    std::thread::sleep(Duration::from_millis(300));
    let sent = Instant::now();
    signal(&child, "TERM");
    let status = child.wait().unwrap();
    let rest: Vec<String> = lines.map(|l| l.unwrap()).collect();
    assert_eq!(status.code(), Some(143), "{rest:?}");
    assert!(sent.elapsed() < Duration::from_secs(1), "ended {:?} after the signal", sent.elapsed());
    let hint = format!("; make its report with dae report {} --data {}", out.display(), dir.path().display());
    let said =
        |l: &String| l.starts_with("interrupted by SIGTERM after the last epoch") && l.ends_with(&hint);
    assert!(rest.iter().any(said), "{rest:?}");
    assert_eq!(Metrics::read(&out.join("metrics.json")).unwrap().history.len(), 1);
    assert!(checkpoint::load(&out.join("model.safetensors")).is_ok());
}

/// A signal that comes once a command has said what it wrote changes nothing: the process ends
/// with success and says no more. (It could say "interrupted" after "wrote" and end with 143, or
/// end with success after saying "interrupted", whichever of its threads ended it first.)
#[test]
fn a_signal_after_the_result_changes_nothing() {
    use std::io::{BufRead, BufReader};
    let (data, run) = one_epoch();
    let args = ["report", path_str(&run), "--data", path_str(data.path())];
    for _ in 0..3 {
        let mut child = dae().args(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let wrote = lines.by_ref().map(|l| l.unwrap()).find(|l| l.starts_with("wrote "));
        assert!(wrote.is_some(), "the report was written");
        signal(&child, "TERM");
        let output = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{:?}: {stderr}", output.status);
        assert!(!stderr.contains("interrupted"), "{stderr}");
    }
}

/// Sets every value of the f32 tensor `name` in the state file `path` to `value`, with the
/// checksum made to match ([`reseal`]), as though the run had written these numbers.
fn fill_tensor(path: &Path, name: &str, value: f32) {
    let mut bytes = std::fs::read(path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let offsets = &header[name]["data_offsets"];
    let (start, end) = (offsets[0].as_u64().unwrap() as usize, offsets[1].as_u64().unwrap() as usize);
    for chunk in bytes[8 + n + start..8 + n + end].chunks_exact_mut(4) {
        chunk.copy_from_slice(&value.to_le_bytes());
    }
    std::fs::write(path, &bytes).unwrap();
    reseal(path);
}

/// Makes the checksum of the state file `path`, if it has one, match the file as it now is: the
/// CRC-32 of the whole file with the entry's value written `crc32:00000000`.
fn reseal(path: &Path) {
    let mut bytes = std::fs::read(path).unwrap();
    let key = b"\"checksum\":\"";
    let Some(at) = bytes.windows(key.len()).position(|w| w == key).map(|at| at + key.len()) else { return };
    bytes[at..at + 14].copy_from_slice(b"crc32:00000000");
    let sum = format!("crc32:{:08x}", crc32fast::hash(&bytes));
    bytes[at..at + 14].copy_from_slice(sum.as_bytes());
    std::fs::write(path, bytes).unwrap();
}

/// A state edited to disagree with its run, its checksum made anew, is refused by --resume
/// rather than trained on under the run's name: a dense model's activations are fixed too (ReLU
/// inside, a sigmoid out), and Adam has taken one step for every step the progress counts.
#[test]
fn a_dense_state_that_disagrees_with_its_run_is_refused() {
    use dae::engine::activation::Activation;
    let (data, run) = one_epoch();
    let (d, r) = (path_str(data.path()), path_str(&run));
    let path = run.join("state.safetensors");
    let good = std::fs::read(&path).unwrap();
    let mut state = checkpoint::load_state(&path, 1e-3).unwrap();
    let save = |state: &checkpoint::State| {
        let (model, adam, progress) = (&state.model, &state.adam, state.progress);
        checkpoint::save_state(model, (8, 8), adam, progress, state.snapshots.as_ref(), None, &path).unwrap();
    };
    state.model.activations[2] = Activation::Identity;
    save(&state);
    let needle = "layer 2: arch 'dense' has relu after it, but state.safetensors holds identity";
    fails(&["--data", d, "--resume", r, "--epochs", "2"], 1, &["metrics.json: ", needle]);

    std::fs::write(&path, &good).unwrap();
    let mut state = checkpoint::load_state(&path, 1e-3).unwrap();
    assert_eq!((state.progress.epoch, state.progress.step, state.adam.t), (1, 0, 1));
    state.adam.t = 7;
    save(&state);
    let needle = "state.safetensors: adam.t = 7, but 1 epochs of 1 steps and 0 more are 1";
    fails(&["--data", d, "--resume", r, "--epochs", "2"], 1, &[needle]);
    std::fs::write(&path, &good).unwrap();
    let resumed = dae().args(["--data", d, "--resume", r, "--epochs", "2"]).output().unwrap();
    assert!(resumed.status.success(), "{}", String::from_utf8_lossy(&resumed.stderr));
}

/// The conv model's layers are fixed by the image size: a state whose conv model differs (here
/// a first layer with another activation, saved without a run's name) is refused by --resume,
/// naming the layer.
#[test]
fn a_conv_state_of_another_model_is_refused() {
    use dae::engine::activation::Activation;
    let data = dataset(64);
    let run = data.path().join("run");
    let (d, r) = (path_str(data.path()), path_str(&run));
    assert!(
        dae().args(["--data", d, "--out", r, "--epochs", "1", "--arch", "conv"]).status().unwrap().success()
    );
    let path = run.join("state.safetensors");
    let mut state = checkpoint::load_state(&path, 1e-3).unwrap();
    state.model.activations[0] = Activation::Sigmoid;
    let (model, adam, progress) = (&state.model, &state.adam, state.progress);
    checkpoint::save_state(model, (8, 8), adam, progress, state.snapshots.as_ref(), None, &path).unwrap();
    let needle = "layer 0: arch 'conv' has conv 3×3 → 8×8×32 (relu, 288 + 32 parameters), \
                  but state.safetensors holds conv 3×3 → 8×8×32 (sigmoid, 288 + 32 parameters)";
    fails(&["--data", d, "--resume", r, "--epochs", "2"], 1, &["metrics.json: ", needle]);
}

/// A resumed run that diverges cannot take a smaller --lr (it keeps its settings), so the hint
/// says what it has and where a smaller one goes.
#[test]
fn a_resumed_run_that_diverges_says_its_rate_is_fixed() {
    let (data, run) = one_epoch();
    fill_tensor(&run.join("state.safetensors"), "adam.m.0", f32::MAX);
    let (d, r) = (path_str(data.path()), path_str(&run));
    let output = fails(&["--data", d, "--resume", r, "--epochs", "2"], 1, &["NaN or infinite", "in epoch 2"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("; the run's --lr is 0.001; a new run may take a smaller one"), "{stderr}");
    assert!(!stderr.contains("try a smaller"), "{stderr}");
}

/// `path`, a safetensors file, with its metadata `key` set to `value` (the header rewritten,
/// the tensors' bytes as they were, a state's checksum made to match: [`reseal`]).
fn set_metadata(path: &Path, key: &str, value: &str) {
    let bytes = std::fs::read(path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let mut header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    header["__metadata__"][key] = serde_json::Value::String(value.to_string());
    let mut text = serde_json::to_vec(&header).unwrap();
    while !text.len().is_multiple_of(8) {
        text.push(b' ');
    }
    let mut out = (text.len() as u64).to_le_bytes().to_vec();
    out.extend(text);
    out.extend(&bytes[8 + n..]);
    std::fs::write(path, out).unwrap();
    reseal(path);
}

/// Numbers in a state or metrics file that no run writes are refused when the file is read,
/// naming the file and the number, before anything is trained or written: nothing non-finite
/// ever reaches metrics.json.
#[test]
fn numbers_no_run_writes_are_refused_at_load() {
    let (data, run) = one_epoch();
    let (d, r) = (path_str(data.path()), path_str(&run));
    let state = run.join("state.safetensors");
    let good = std::fs::read(&state).unwrap();
    for (key, value, needle) in [
        ("loss_sum", "NaN", "loss_sum = NaN: not a finite sum of losses"),
        ("loss_sum", "inf", "loss_sum = inf: not a finite sum of losses"),
        ("adam.t", "3000000000", "adam.t = 3000000000: more steps than Adam counts"),
        ("step", "1000000000", "step 1000000000 of an epoch of 1 steps"),
        ("config", "{\"seed\": 1}", "metadata 'config' is not a run's settings: missing field"),
    ] {
        set_metadata(&state, key, value);
        fails(&["--data", d, "--resume", r, "--epochs", "2"], 1, &["state.safetensors", needle]);
        std::fs::write(&state, &good).unwrap();
    }
    let metrics_path = run.join("metrics.json");
    let metrics = std::fs::read_to_string(&metrics_path).unwrap();
    let (history, dead) = metrics.split_once("\"dead_units\"").unwrap();
    let dead_at_0 = format!("{history}\"dead_units\"{}", dead.replacen("\"epoch\": 1", "\"epoch\": 0", 1));
    // An empty history beside the epochs' dead units (each epoch's entry deleted by hand).
    let (head, epochs) = history.split_once("\"history\": [").unwrap();
    let dead_later = format!("{head}\"history\": []{}", &epochs[epochs.rfind(']').unwrap() + 1..])
        + "\"dead_units\""
        + dead;
    let cases = [
        (dead_at_0, "dead_units names epoch 0; epochs count from 1"),
        (dead_later, "dead_units names epoch 1, but history holds 0 epochs"),
        (metrics.replacen("\"train_loss\": 0.", "\"train_loss\": -0.", 1), "train_loss = -0."),
        (
            metrics.replacen("\"train_loss\"", "\"from_step\": 18446744073709551615, \"train_loss\"", 1),
            "epoch 1: from_step = 18446744073709551615, but an epoch has 1 steps",
        ),
    ];
    for (text, needle) in cases {
        assert_ne!(text, metrics, "the edit for {needle} applied");
        std::fs::write(&metrics_path, text).unwrap();
        fails(&["report", r, "--data", d], 1, &["metrics.json", needle]);
        fails(&["--data", d, "--resume", r, "--epochs", "2"], 1, &["metrics.json", needle]);
    }
    // More epochs done than the run was to do ("2 epochs of 1", the report said).
    std::fs::write(&metrics_path, &metrics).unwrap();
    let mut longer = Metrics::read(&metrics_path).unwrap();
    let mut second = longer.history[0];
    second.epoch = 2;
    longer.history.push(second);
    // (`Metrics::write` refuses to write it.)
    std::fs::write(&metrics_path, serde_json::to_string(&longer).unwrap()).unwrap();
    let needle = "history holds 2 epochs, more than the run's config.epochs of 1";
    fails(&["report", r, "--data", d], 1, &["metrics.json", needle]);
}

/// A conv model whose image metadata is no image size is refused naming the image, not a layer.
#[test]
fn a_conv_models_image_size_is_named_when_it_is_wrong() {
    let data = tempfile::tempdir().unwrap();
    common::write_dataset(data.path(), &common::bars_dataset_of_side(64, 8, 16));
    let run = data.path().join("run");
    let args = ["--data", path_str(data.path()), "--out", path_str(&run), "--epochs", "1", "--arch", "conv"];
    assert!(dae().args(args).output().unwrap().status.success());
    let model = run.join("model.safetensors");
    for size in ["0x0", "100000x100000"] {
        set_metadata(&model, "image", size);
        let needle = format!("metadata 'image' = {size}: not an image size");
        fails(&["eval", "--model", path_str(&model), "--data", path_str(data.path())], 1, &[&needle]);
    }
}

/// Hand-made models that are not autoencoders, or whose kernel does not fit the image, are
/// refused at load by every command, instead of panicking in the middle of one.
#[test]
fn models_whose_shapes_lie_are_refused_at_load() {
    use dae::engine::activation::Activation;
    use dae::engine::conv::Conv2d;
    use dae::engine::dense::Dense;
    use dae::engine::layer::Layer;
    use dae::engine::lowering::Image;
    use dae::engine::model::Model;
    use ndarray::{Array1, Array2};
    let data = dataset(64);
    let d = path_str(data.path());
    let (relu, sigmoid) = (Activation::Relu, Activation::Sigmoid);
    let dense = |i: usize, o: usize| Layer::Dense(Dense::from_parts(Array2::zeros((o, i)), Array1::zeros(o)));
    let conv = |k: usize, c: usize, o: usize| {
        let w = Array2::zeros((o, k * k * c));
        Layer::Conv2d(Conv2d::from_parts(Image::new(8, 8, c), w, Array1::zeros(o)))
    };
    let cases = [
        (
            Model { layers: vec![dense(64, 16), dense(16, 10)], activations: vec![relu, sigmoid] },
            "maps 64 numbers to 10",
        ),
        (
            Model { layers: vec![conv(3, 1, 4), conv(3, 4, 2)], activations: vec![relu, sigmoid] },
            "maps 64 numbers to 128",
        ),
        (
            Model { layers: vec![conv(9, 1, 4), conv(3, 4, 1)], activations: vec![relu, sigmoid] },
            "layers.0: a 9×9 kernel on 8×8 images",
        ),
    ];
    for (model, needle) in cases {
        let path = data.path().join("model.safetensors");
        dae::files::checkpoint::save(&model, (8, 8), &path).unwrap();
        let m = path_str(&path);
        let png = data.path().join("in.png");
        dae::files::pngio::write_gray(&png, (8, 8), &[0.5; 64]).unwrap();
        let out = data.path().join("out");
        for args in [
            &["eval", "--model", m, "--data", d][..],
            &["eval", "--sweep", "--model", m, "--data", d],
            &["encode", "--model", m, "--data", d, "--out", path_str(&data.path().join("c.csv"))],
            &["denoise", "--model", m, path_str(&png), "--out", path_str(&out), "--noise", "gaussian:0.5"],
        ] {
            fails(args, 1, &["model.safetensors", needle]);
        }
        assert!(!out.exists(), "{needle}: denoise wrote nothing");
    }
}

/// Only regular files are read: a model, state, metrics or data file that is a device, a FIFO
/// or a folder is refused at once, saying what it is (it used to read /dev/zero until memory
/// ran out, and wait on a FIFO forever).
#[test]
fn only_regular_files_are_read() {
    let (data, run) = one_epoch();
    let (d, r) = (path_str(data.path()), path_str(&run));
    let fifo = data.path().join("fifo");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    fails(&["eval", "--model", "/dev/zero", "--data", d], 1, &["/dev/zero: a device, not a file"]);
    fails(&["eval", "--model", path_str(&fifo), "--data", d], 1, &["fifo: a FIFO, not a file"]);
    let model = path_str(&run);
    let denoised = data.path().join("denoised");
    let denoise = ["denoise", "--model", model, path_str(&fifo), "--out", path_str(&denoised)];
    fails(&denoise, 1, &["fifo: cannot read: a FIFO, not a file"]);
    assert!(!denoised.exists());
    std::fs::remove_file(run.join("metrics.json")).unwrap();
    std::os::unix::fs::symlink("/dev/zero", run.join("metrics.json")).unwrap();
    fails(&["report", r, "--data", d], 1, &["metrics.json", "a device, not a file"]);
    let labels = data.path().join("t10k-labels-idx1-ubyte.gz");
    std::fs::remove_file(&labels).unwrap();
    assert!(Command::new("mkfifo").arg(&labels).status().unwrap().success());
    fails(
        &["--data", d, "--out", path_str(&data.path().join("o"))],
        1,
        &["t10k-labels-idx1-ubyte.gz: a FIFO, not a data file"],
    );
    std::fs::remove_file(&labels).unwrap();
    std::os::unix::fs::symlink("/dev/zero", &labels).unwrap();
    let out = data.path().join("o");
    let device = ["t10k-labels-idx1-ubyte.gz: a device, not a data file"];
    fails(&["--data", d, "--out", path_str(&out)], 1, &device);
}

/// Settings that cannot go together, and an image given twice, are refused naming why.
#[test]
fn contradictions_are_refused_naming_why() {
    let data = dataset(64);
    let d = path_str(data.path());
    fails(
        &["--data", d, "--arch", "conv", "--layers", "7"],
        2,
        &["--layers: the conv model's layers are fixed"],
    );
    let (_kept, run) = one_epoch();
    let png = data.path().join("a.png");
    dae::files::pngio::write_gray(&png, (8, 8), &[0.5; 64]).unwrap();
    let again = data.path().join(".").join("a.png");
    let out = path_str(&data.path().join("out")).to_string();
    fails(
        &["denoise", "--model", path_str(&run), path_str(&png), path_str(&again), "--out", &out],
        2,
        &["a.png is given twice"],
    );
}

/// A run's state and history carry its name: another run's state.safetensors copied into a run
/// is refused by --resume and report, naming both runs, and nothing is written.
#[test]
fn another_runs_state_is_refused() {
    let (data, a) = one_epoch();
    let d = path_str(data.path());
    let b = data.path().join("b");
    let args = ["--data", d, "--out", path_str(&b), "--epochs", "1", "--seed", "7", "--lr", "0.01"];
    assert!(dae().args(args).output().unwrap().status.success());
    let name = |run: &Path| Metrics::read(&run.join("metrics.json")).unwrap().run.unwrap();
    let (name_a, name_b) = (name(&a), name(&b));
    assert_ne!(name_a, name_b);
    std::fs::copy(b.join("state.safetensors"), a.join("state.safetensors")).unwrap();
    let metrics_before = std::fs::read(a.join("metrics.json")).unwrap();
    let needle =
        format!("is run {name_b}'s state, and {}/metrics.json is run {name_a}'s history", a.display());
    fails(&["--data", d, "--resume", path_str(&a), "--epochs", "2"], 1, &[&needle]);
    fails(&["report", path_str(&a), "--data", d], 1, &[&needle]);
    assert_eq!(std::fs::read(a.join("metrics.json")).unwrap(), metrics_before);
}

/// A state keeps the settings it was trained with: a metrics.json whose batch size (or seed)
/// was edited by hand, which would shift where a half-done epoch goes on, is refused by --resume,
/// naming the setting and both values; the epochs may differ, as --epochs raises them.
#[test]
fn a_hand_edited_setting_is_refused_by_resume() {
    use serde_json::json;
    let (data, run) = one_epoch();
    let (d, r) = (path_str(data.path()), path_str(&run));
    let path = run.join("metrics.json");
    let original: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let edit = |name: &str, value: serde_json::Value| {
        let mut edited = original.clone();
        edited["config"][name] = value;
        std::fs::write(&path, edited.to_string()).unwrap();
    };
    for (name, value) in [("batch_size", json!(64)), ("seed", json!(1)), ("lr", json!(0.002))] {
        edit(name, value.clone());
        let saved = &original["config"][name];
        let needle = format!(
            "state.safetensors: was saved with {name} = {saved}, and {} says {value}",
            path.display()
        );
        fails(&["--data", d, "--resume", r, "--epochs", "2"], 1, &[&needle]);
    }
    edit("epochs", json!(5));
    assert!(dae().args(["--data", d, "--resume", r, "--epochs", "2"]).output().unwrap().status.success());
}

/// A run folder on another filesystem than its parent (here a link to one on /dev/shm, as a
/// container's volume would be): training into it twice sets the first run aside by copying,
/// where a rename cannot cross, and leaves no empty folder when it cannot.
#[test]
fn a_run_folder_on_another_filesystem_is_set_aside_whole() {
    use std::os::unix::fs::MetadataExt;
    let data = dataset(64);
    let Ok(elsewhere) = tempfile::tempdir_in("/dev/shm") else { return println!("no /dev/shm: skipped") };
    if std::fs::metadata(elsewhere.path()).unwrap().dev() == std::fs::metadata(data.path()).unwrap().dev() {
        return println!("/dev/shm is on the same filesystem: skipped");
    }
    let m = data.path().join("M");
    std::os::unix::fs::symlink(elsewhere.path(), &m).unwrap();
    let args = ["--data", path_str(data.path()), "--out", path_str(&m), "--epochs", "1"];
    assert!(dae().args(args).output().unwrap().status.success());
    let first = std::fs::read(m.join("metrics.json")).unwrap();
    let out = dae().args(args).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let aside = data.path().join("M.1");
    assert_eq!(std::fs::read(aside.join("metrics.json")).unwrap(), first, "the first run, whole");
    assert!(aside.join("state.safetensors").is_file() && m.join("state.safetensors").is_file());
    assert!(!data.path().join("M.2").exists());
}

/// A model whose image size does not multiply to its input, and a history behind its state,
/// are refused before any work (the first panicked in denoise; the second trained an epoch,
/// overwrote the model, then failed).
#[test]
fn files_that_disagree_with_themselves_are_refused_first() {
    let (data, run) = one_epoch();
    let (d, r) = (path_str(data.path()), path_str(&run));
    let model = data.path().join("lying.safetensors");
    std::fs::copy(run.join("model.safetensors"), &model).unwrap();
    for (size, why) in [
        ("1x1", "but the model takes 64 pixels"),
        ("0x0", "not an image size (1 to 16777216 pixels)"),
        ("100000x100000", "not an image size (1 to 16777216 pixels)"),
    ] {
        set_metadata(&model, "image", size);
        let png = data.path().join("a.png");
        dae::files::pngio::write_gray(&png, (8, 8), &[0.5; 64]).unwrap();
        let needle =
            format!("metadata 'image' = {size}{}{why}", if why.starts_with("but") { ", " } else { ": " });
        fails(
            &[
                "denoise",
                "--model",
                path_str(&model),
                path_str(&png),
                "--out",
                path_str(&data.path().join("o")),
            ],
            1,
            &[&needle],
        );
    }
    let args = ["--data", d, "--resume", r, "--epochs", "2"];
    assert!(dae().args(args).output().unwrap().status.success());
    let path = run.join("metrics.json");
    let mut metrics = Metrics::read(&path).unwrap();
    metrics.history.truncate(1);
    metrics.dead_units.truncate(1);
    metrics.write(&path).unwrap();
    let model_before = std::fs::read(run.join("model.safetensors")).unwrap();
    fails(
        &["--data", d, "--resume", r, "--epochs", "3"],
        1,
        &["metrics.json: holds 1 epoch, but the state has done 2"],
    );
    assert_eq!(std::fs::read(run.join("model.safetensors")).unwrap(), model_before);
}

/// A run folder whose name is not UTF-8, or is as long as a name can be, is set aside like any
/// other: `<name>.1` byte for byte, cut short where it would exceed 255 bytes.
#[test]
fn any_folder_name_is_set_aside() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let data = dataset(64);
    let long = "a".repeat(255);
    let cases: [(&[u8], Vec<u8>); 2] = [
        (b"run-\xff", b"run-\xff.1".to_vec()),
        (long.as_bytes(), format!("{}.1", &long[..253]).into_bytes()),
    ];
    for (name, aside) in cases {
        let out = data.path().join(OsStr::from_bytes(name));
        let run = || {
            let mut command = dae();
            command.arg("--data").arg(data.path()).arg("--out").arg(&out).args(["--epochs", "1"]);
            let output = command.output().unwrap();
            assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        };
        run();
        run();
        let aside = data.path().join(OsStr::from_bytes(&aside));
        assert!(aside.join("metrics.json").is_file() && out.join("metrics.json").is_file(), "{aside:?}");
    }
}

/// `dae` allowed `limit` of memory (`DAE_MEMORY`).
fn dae_within(limit: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut command = dae();
    command.env("DAE_MEMORY", limit);
    command
}

/// The memory a run is checked for holds the data set too, which stays loaded while it trains
/// (MNIST's 52 MiB were left out, a third of the notebook's run); and each of its files is
/// checked beside those read before it (each was checked alone, and all four were loaded past
/// the limit before a refusal).
#[test]
fn the_memory_checked_for_holds_the_data_set() {
    use dae::train::{Config, memory::training_bytes};
    let data = tempfile::tempdir().unwrap();
    let set = common::bars_dataset_of_side(9000, 28, 3000);
    common::write_dataset(data.path(), &set);
    let (d, out) = (path_str(data.path()), data.path().join("run"));
    let held = (12_000 * (784 + 1)) as u64;
    assert_eq!(set.bytes(), held);
    let config = Config { epochs: 1, ..Config::default() };
    let need = held + dae::memory::PROCESS + training_bytes(&config, &set, 256);
    let needs = format!("needs {} of memory", dae::memory::size(need));
    let args = ["--data", d, "--out", path_str(&out), "--epochs", "1"];
    // Where no step fits, the refusal says how much the data set takes (it blamed the step).
    let data_alone =
        format!("the data set and the program take {} of it", dae::memory::size(held + dae::memory::PROCESS));
    fails_as(dae_within("30MiB"), &args, 2, &[&needs, &data_alone]);
    // The training split's 9000 images and labels, then the test images' 3000 beside them.
    let train = 9000 * (784 + 1);
    let test_images = dae::memory::PROCESS + train + 16 + 3000 * 784;
    let beside = format!(
        "t10k-images-idx3-ubyte.gz: unpacked, the body of dimensions [3000, 28, 28] its header declares, \
         beside the {} of the files read before it, needs {} of memory",
        dae::memory::size(train),
        dae::memory::size(test_images)
    );
    fails_as(dae_within((test_images - 1).to_string()), &args, 1, &[&beside]);
}

/// A run that needs more memory than there is is refused before anything is allocated, with
/// both figures and the batch size that fits, which then trains (one 4096×4096 image used to
/// abort in the allocator, asking for 4.8 GB; `--layers 65536,1024` peaked at 10.6 GB).
#[test]
fn training_that_needs_more_memory_than_there_is_is_refused_saying_what_fits() {
    let data = tempfile::tempdir().unwrap();
    common::write_dataset(data.path(), &common::bars_dataset_of_side(16, 128, 4));
    let (d, out) = (path_str(data.path()), data.path().join("run"));
    let o = path_str(&out);
    let conv = ["--data", d, "--out", o, "--arch", "conv", "--epochs", "1", "--batch-size", "16"];
    let refused = fails_as(
        dae_within("64MiB"),
        &conv,
        2,
        &[
            "--batch-size 16",
            "training the convolutional model on 128×128 images",
            "DAE_MEMORY allows 64.0 MiB",
        ],
    );
    assert!(!out.exists(), "a refused run makes no folder");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    let fits = stderr.split("--batch-size ").last().and_then(|t| t.split(' ').next()).unwrap();
    let rows: usize = fits.parse().unwrap_or_else(|_| panic!("a batch size that fits: {stderr}"));
    assert!((1..16).contains(&rows), "{stderr}");
    let mut conv = conv.to_vec();
    conv[9] = fits;
    let run = dae_within("64MiB").args(&conv).output().unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    // A resumed run keeps its batch size: the hint is for a new run.
    let resumed =
        fails_as(dae_within("56MiB"), &["--data", d, "--resume", o, "--epochs", "2"], 1, &["needs"]);
    let stderr = String::from_utf8_lossy(&resumed.stderr);
    assert!(stderr.contains("; a new run with --batch-size ") && stderr.contains(" would fit"), "{stderr}");

    let dense = ["--data", d, "--out", o, "--layers", "4096,4096", "--epochs", "1"];
    fails_as(dae_within("64MiB"), &dense, 2, &["--layers 4096,4096", "not even one image a step fits"]);
    fails_as(dae_within("8 parsecs"), &dense, 2, &["DAE_MEMORY=8 parsecs: expected a size"]);
    fails_as(
        dae_within("0"),
        &dense,
        2,
        &["DAE_MEMORY=0: expected a size of at least 1 byte and under 16 EiB"],
    );
    // 16 EiB: one byte past the largest size there is.
    let too_large = "18446744073709551616";
    fails_as(
        dae_within(too_large),
        &dense,
        2,
        &[&format!("DAE_MEMORY={too_large}: expected a size of at least 1 byte")],
    );
    // Not UTF-8: refused too, not taken for unset.
    use std::os::unix::ffi::OsStrExt;
    let not_text = std::ffi::OsStr::from_bytes(b"8\xffGiB");
    fails_as(dae_within(not_text), &dense, 2, &["DAE_MEMORY=8\u{fffd}GiB: expected a size"]);
}

/// A batch size the refusal names is one that fits to the end of the run: where the report's
/// measurements at the end do not fit, whatever the batch, it says so instead (the notebook's
/// model at `DAE_MEMORY=140MiB` was told `--batch-size 222 fits`, then refused at that size).
#[test]
fn a_smaller_batch_is_named_only_if_the_end_of_the_run_fits_too() {
    use dae::train::Config;
    use dae::train::memory::{end_of_run_bytes, training_bytes};
    let data = tempfile::tempdir().unwrap();
    let set = common::bars_dataset_of_side(600, 28, 200);
    common::write_dataset(data.path(), &set);
    let config = Config { epochs: 1, ..Config::default() };
    let mut rng = dae::data::rng::stream(config.seed, dae::data::rng::Purpose::Init, 0);
    let model = config.arch.model((28, 28), &config.hidden, &mut rng);
    let held = set.bytes() + dae::memory::PROCESS;
    let (end, training) =
        (held + end_of_run_bytes(&model, &set), |rows| held + training_bytes(&config, &set, rows));
    // The end of the run needs more than a step of one image, and less than one of 256.
    assert!(training(1) < end && end < training(256), "{} {end} {}", training(1), training(256));
    let (d, out) = (path_str(data.path()), data.path().join("run"));
    let args = ["--data", d, "--out", path_str(&out), "--epochs", "1"];
    let needs = format!(
        "a smaller batch would not help: at the end of the run, measuring the model for the report on 200 \
         test and 600 training images needs {}",
        dae::memory::size(end)
    );
    fails_as(dae_within((end - 1).to_string()), &args, 2, &["--batch-size 256: training", &needs]);
    assert!(!out.exists(), "a refused run makes no folder");
    let refused = fails_as(dae_within(end.to_string()), &args, 2, &["--batch-size 256: training"]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    let fits = stderr.split("; --batch-size ").nth(1).and_then(|t| t.strip_suffix(" fits\n"));
    let fits = fits.unwrap_or_else(|| panic!("a batch size that fits: {stderr}"));
    let run = dae_within(end.to_string()).args(args).args(["--batch-size", fits]).output().unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
}

/// A dense model of 8×8 images with one hidden layer of `hidden` units, saved in `dir` as
/// `name`; and what `denoise` counts for it before any image: the program, the file, the model
/// as it runs forward and its buffers for one image.
fn saved_for_denoise(dir: &Path, name: &str, hidden: usize) -> (dae::engine::model::Model, PathBuf, u64) {
    use dae::engine::model::{Model, Workspace};
    let mut rng = dae::data::rng::stream(1, dae::data::rng::Purpose::Init, 0);
    let model = Model::autoencoder(64, &[hidden], &mut rng);
    let path = dir.join(name);
    checkpoint::save(&model, (8, 8), &path).unwrap();
    let file = std::fs::metadata(&path).unwrap().len();
    let need = dae::memory::PROCESS + file + model.forward_bytes() + Workspace::bytes(&model, 1);
    (model, path, need)
}

/// A model that only runs forward is counted without its gradients, which it never writes:
/// `denoise` refuses one image only below that count (a `--layers 2048` model was counted at
/// 69.1 MiB with them, for a peak of 48 MiB).
#[test]
fn denoise_counts_the_model_without_its_gradients() {
    let dir = tempfile::tempdir().unwrap();
    let (model, path, need) = saved_for_denoise(dir.path(), "wide.safetensors", 1024);
    let png = dir.path().join("in.png");
    dae::files::pngio::write_gray(&png, (8, 8), &[0.5; 64]).unwrap();
    // The gradients: a `dW` of 1024×64 and one of 64×1024, and the biases'.
    assert_eq!(model.bytes() - model.forward_bytes(), 4 * (2 * 1024 * 64 + 1024 + 64) + 2 * 60);
    let (m, out) = (path_str(&path), dir.path().join("out"));
    let denoise = ["denoise", "--model", m, path_str(&png), "--out", path_str(&out), "--as-is"];
    let needs = format!("one image through this model needs {}", dae::memory::size(need));
    fails_as(dae_within((need - 1).to_string()), &denoise, 1, &["wide.safetensors", &needs]);
    assert!(!out.exists(), "denoise wrote nothing");
    // And the image beside it.
    let limit = need + dae::files::pngio::open_picture(&png, 64).unwrap().bytes();
    let run = dae_within(limit.to_string()).args(denoise).output().unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    assert!(out.join("in.png").is_file());
}

/// `denoise` counts what decoding each image takes before it decodes it, and refuses an image
/// that does not fit beside the model, naming it, with nothing written (a 4096×4096 RGBA image
/// at 16 bits took 262 MB under `DAE_MEMORY=20MiB`).
#[test]
fn denoise_refuses_an_image_too_large_to_decode_before_decoding_it() {
    let dir = tempfile::tempdir().unwrap();
    let (_, path, model_need) = saved_for_denoise(dir.path(), "small.safetensors", 16);
    let (small, large) = (dir.path().join("small.png"), dir.path().join("large.png"));
    dae::files::pngio::write_gray(&small, (8, 8), &[0.5; 64]).unwrap();
    dae::files::pngio::write_gray(&large, (1000, 1500), &vec![0.0; 1_500_000]).unwrap();
    let decoding = dae::files::pngio::open_picture(&large, 1 << 24).unwrap().bytes();
    // One byte a pixel decoded, then four of gray levels (the image is opaque, so no opacity).
    assert_eq!(decoding, 5 * 1_500_000);
    let need = model_need + decoding;
    let (m, out) = (path_str(&path), dir.path().join("out"));
    let denoise = ["denoise", "--model", m, path_str(&small), path_str(&large), "--out", path_str(&out)];
    let needs = format!("large.png: decoding this image needs {}", dae::memory::size(need));
    fails_as(dae_within((need - 1).to_string()), &denoise, 1, &[&needs]);
    assert!(!out.exists(), "denoise wrote nothing, not even the small image's result");
    let run = dae_within(need.to_string()).args(denoise).output().unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    assert!(out.join("large.png").is_file() && out.join("small.png").is_file());
}

/// A plain (not gzipped) data file whose body is larger than the memory there is is refused by
/// its header, before any of it is read (one whose header declared 2.8 GB was read whole first).
#[test]
fn a_plain_data_file_larger_than_memory_is_refused_before_it_is_read() {
    let data = tempfile::tempdir().unwrap();
    common::write_dataset(data.path(), &common::bars_dataset_of_side(16, 16, 4));
    let images = data.path().join("train-images-idx3-ubyte.gz");
    let mut plain = vec![0, 0, 0x08, 3];
    [128u32, 128, 128].iter().for_each(|d| plain.extend(d.to_be_bytes()));
    plain.resize(plain.len() + 128 * 128 * 128, 7);
    std::fs::write(&images, plain).unwrap();
    let (d, out) = (path_str(data.path()), data.path().join("run"));
    let args = ["--data", d, "--out", path_str(&out), "--epochs", "1"];
    let needles = [
        path_str(&images),
        "the body of dimensions [128, 128, 128] its header declares needs 14.0 MiB of memory",
        "DAE_MEMORY allows 1.0 MiB",
    ];
    fails_as(dae_within("1MiB"), &args, 1, &needles);
    assert!(!out.exists(), "a refused run makes no folder");
}

/// A hand-made model too large for the memory there is, 1 → 4096 channels of 1×1 kernels (an
/// eval used to ask for 6.6 GB of it), is refused by every command at load, naming the file,
/// and denoise writes nothing.
#[test]
fn a_model_that_needs_more_memory_than_there_is_is_refused_at_load() {
    use dae::engine::activation::Activation;
    use dae::engine::conv::Conv2d;
    use dae::engine::layer::Layer;
    use dae::engine::lowering::Image;
    use dae::engine::model::Model;
    use ndarray::{Array1, Array2};
    let data = dataset(64);
    let d = path_str(data.path());
    let conv = |c: usize, o: usize| {
        Layer::Conv2d(Conv2d::from_parts(Image::new(8, 8, c), Array2::zeros((o, c)), Array1::zeros(o)))
    };
    let model = Model {
        layers: vec![conv(1, 4096), conv(4096, 1)],
        activations: vec![Activation::Relu, Activation::Sigmoid],
    };
    let path = data.path().join("wide.safetensors");
    checkpoint::save(&model, (8, 8), &path).unwrap();
    let m = path_str(&path);
    let csv = data.path().join("codes.csv");
    for args in [
        &["eval", "--model", m, "--data", d][..],
        &["eval", "--sweep", "--model", m, "--data", d],
        &["encode", "--model", m, "--data", d, "--out", path_str(&csv)],
    ] {
        fails_as(
            dae_within("32MiB"),
            args,
            1,
            &["wide.safetensors", "measuring this model on 64 test images needs"],
        );
    }
    assert!(!csv.exists());
    let png = data.path().join("in.png");
    dae::files::pngio::write_gray(&png, (8, 8), &[0.5; 64]).unwrap();
    let out = data.path().join("out");
    let denoise = ["denoise", "--model", m, path_str(&png), "--out", path_str(&out)];
    // A file is not even read where three times its size does not fit (a 93 MB model was read
    // and built, peaking at 283 MiB, before a refusal under 20 MiB).
    let file = std::fs::metadata(&path).unwrap().len();
    let reading = format!("reading it ({}) and building what it holds needs", dae::memory::size(file));
    fails_as(dae_within("1MiB"), &denoise, 1, &["wide.safetensors", &reading]);
    let read = (dae::memory::PROCESS + 3 * file + 1).to_string();
    fails_as(dae_within(read), &denoise, 1, &["wide.safetensors", "one image through this model needs"]);
    assert!(!out.exists(), "denoise wrote nothing");
    let run = dae().args(["eval", "--model", m, "--data", d]).output().unwrap();
    assert!(run.status.success(), "the machine has the memory: {}", String::from_utf8_lossy(&run.stderr));
}
