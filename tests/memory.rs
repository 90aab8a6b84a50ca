//! The memory a command counts before it starts is the memory it then takes: a counting
//! allocator follows the bytes live, and their peak over a run's work must be within the count
//! made beforehand (or the check would let through what then aborts), and not far below it (or
//! it would refuse what fits).

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

use dae::data::mnist::Mnist;
use dae::eval::evaluate;
use dae::files::checkpoint::Snapshots;
use dae::files::metrics::Metrics;
use dae::report::{self, Run};
use dae::train::memory::{model_training_bytes, training_bytes};
use dae::train::{Arch, Config, Trainer};

struct Peak;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(bytes: usize) {
    let live = LIVE.fetch_add(bytes, SeqCst) + bytes;
    PEAK.fetch_max(live, SeqCst);
}

// SAFETY: forwards every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Peak {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        grew(layout.size());
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), SeqCst);
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        grew(new_size);
        LIVE.fetch_sub(layout.size(), SeqCst);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Peak = Peak;

/// The counters are global: the tests take turns.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The most bytes live at once while `work` runs on two threads, above those live before it.
/// The threads are new, so that what they grow on first use (each one's row-by-row copy of a
/// right operand) is counted whichever test ran before: with one pool for all, a test that ran
/// first had grown them, and a count short by a copy passed or failed by the order of the tests.
/// The pool is never dropped: its threads would free their buffers whenever they ended, perhaps
/// in the middle of the next measurement.
fn peak_of(work: impl FnOnce() + Send) -> usize {
    let pool = Box::leak(Box::new(rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap()));
    pool.install(|| {
        let before = LIVE.load(SeqCst);
        PEAK.store(before, SeqCst);
        work();
        PEAK.load(SeqCst) - before
    })
}

/// `counted` is at least `peak`, and under half as much again. The count is for the worst case,
/// every thread growing what it grows on first use (a copy of a right operand, a lowered
/// matrix); a run grows them only on the threads that took such work, which varies from run to
/// run: the conv training's peak was 11.6 MB in some runs and 14.8 MB in others, for a count of
/// 16.7 MB.
fn check(what: &str, counted: u64, peak: usize) {
    let ratio = counted as f64 / peak as f64;
    println!("{what}: counted {counted} bytes, peak {peak} ({ratio:.3}×)");
    assert!(counted >= peak as u64, "{what}: counted {counted} bytes, but {peak} were live at once");
    assert!(ratio < 1.5, "{what}: counted {counted} bytes, {ratio:.2}× the {peak} used");
}

/// A run's first epoch with its validation, samples, report and saved state, as `dae` trains
/// one.
fn train(config: Config, data: &Mnist) {
    let dir = tempfile::tempdir().unwrap();
    let mut trainer = Trainer::new(config.clone(), data);
    let stats = trainer.train_epoch(|_, _| {}).unwrap();
    let samples = trainer.samples(10);
    assert_eq!(samples[2].nrows(), 10);
    let mut snapshots = Snapshots::new(10, data.test.images.pixels_per_image(), 1);
    snapshots.push(samples[2].view());
    let (engine, history) = (Default::default(), vec![stats]);
    let metrics =
        Metrics { config, data: None, threads: 2, engine, run: None, history, dead_units: Vec::new() };
    let codes = trainer.codes(report::TEST_SHOWN);
    let (clean, noisy) = trainer.test_set();
    let image = (data.test.images.rows, data.test.images.cols);
    let labels = &data.test.labels;
    let (model, measured) = (&trainer.model, None);
    let run = Run {
        dir: dir.path(),
        metrics: &metrics,
        model,
        image,
        clean,
        noisy,
        codes: codes.view(),
        labels,
        snapshots: &snapshots,
        measured,
    };
    assert!(report::render(&run).unwrap().contains("principal components"));
    let path = dir.path().join("state.safetensors");
    let (image, progress) = ((data.test.images.rows, data.test.images.cols), trainer.progress);
    dae::files::checkpoint::save_state(&trainer.model, image, &trainer.adam, progress, None, None, &path)
        .unwrap();
}

#[test]
fn training_takes_what_it_counts() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let data = common::bars_dataset_of_side(1024, 28, 256);
    let config = Config { batch_size: 128, hidden: vec![256, 128, 64], epochs: 1, ..Config::default() };
    let counted = training_bytes(&config, &data, 128);
    check("dense training", counted, peak_of(|| train(config, &data)));
    // A wide code: the report's principal components of 2,000 of them take the most.
    let data = common::bars_dataset_of_side(256, 28, 2000);
    let config = Config { batch_size: 64, hidden: vec![1024], epochs: 1, ..Config::default() };
    let counted = training_bytes(&config, &data, 64);
    check("dense training, 1024 numbers a code", counted, peak_of(|| train(config, &data)));

    let data = common::bars_dataset_of_side(256, 16, 64);
    let config = Config { batch_size: 64, arch: Arch::Conv, epochs: 1, ..Config::default() };
    let counted = training_bytes(&config, &data, 64);
    check("conv training", counted, peak_of(|| train(config, &data)));
}

#[test]
fn a_dense_model_is_counted_from_its_widths_as_if_built() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let data = common::bars_dataset_of_side(64, 12, 16);
    let config = Config { hidden: vec![40, 20, 10], ..Config::default() };
    let model = Trainer::new(config.clone(), &data).model;
    for rows in [1, 7, 64] {
        assert_eq!(
            training_bytes(&config, &data, rows),
            model_training_bytes(&model, &data, rows, config.epochs),
            "{rows} rows"
        );
    }
}

#[test]
fn evaluation_takes_what_it_counts() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    for (arch, side) in [(Arch::Dense, 28), (Arch::Conv, 16)] {
        let data = common::bars_dataset_of_side(512, side, 512);
        let model = Trainer::new(Config { arch, ..Config::default() }, &data).model;
        let counted = evaluate::bytes_needed(&model, &data);
        let noise = Config::default().noise;
        let peak = peak_of(|| {
            evaluate::evaluate(&model, &data, noise, 1);
        });
        check(&format!("{arch} evaluation"), counted, peak);
    }
}
