//! The report page: every section's figure is there and drawn from the run's numbers, `dae
//! report` writes the same page again, and a page written mid-run says what it still lacks.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use dae::files::checkpoint::Snapshots;
use dae::files::metrics::{DeadShares, Metrics};
use dae::report::{self, Run};
use dae::train::dead_units::DeadUnits;
use dae::train::{Config, Trainer};
use ndarray::Array2;

fn dae(args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_dae")).args(args).env_remove("DAE_MEMORY").output().unwrap();
    assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"), "{args:?}");
    out
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// 12×12 bars, 600 training and 300 test images, trained for three epochs with `extra` flags.
fn trained(extra: &[&str]) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    common::write_dataset(dir.path(), &common::bars_dataset_of_side(600, 12, 300));
    let run = dir.path().join("run");
    let mut args = vec!["--data", s(dir.path()), "--out", s(&run), "--epochs", "3", "--batch-size", "32"];
    args.extend(extra);
    let out = dae(&args);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    (dir, run)
}

/// The HTML of the section `id` of `page`.
fn section<'a>(page: &'a str, id: &str) -> &'a str {
    let start = page.find(&format!("<section id=\"{id}\">")).unwrap_or_else(|| panic!("no section {id}"));
    let end = start + page[start..].find("</section>").expect("a closed section");
    &page[start..end]
}

/// The decoded PNG pictures in `html`, each as (width, height, gray levels).
fn pngs(html: &str) -> Vec<(u32, u32, Vec<u8>)> {
    let prefix = "src=\"data:image/png;base64,";
    html.match_indices(prefix)
        .map(|(at, _)| {
            let data = &html[at + prefix.len()..];
            let bytes = STANDARD.decode(&data[..data.find('"').unwrap()]).unwrap();
            let mut reader = png::Decoder::new(std::io::Cursor::new(bytes)).read_info().unwrap();
            let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
            let frame = reader.next_frame(&mut pixels).unwrap();
            (frame.width, frame.height, pixels)
        })
        .collect()
}

/// The SVG charts in `html`, as text.
fn svgs(html: &str) -> Vec<String> {
    let prefix = "src=\"data:image/svg+xml;base64,";
    html.match_indices(prefix)
        .map(|(at, _)| {
            let data = &html[at + prefix.len()..];
            String::from_utf8(STANDARD.decode(&data[..data.find('"').unwrap()]).unwrap()).unwrap()
        })
        .collect()
}

/// The rows of the table with class `class` in `html`, each as its cells' text.
fn table_rows(html: &str, class: &str) -> Vec<Vec<String>> {
    let start =
        html.find(&format!("<table class=\"{class}\">")).unwrap_or_else(|| panic!("no table {class}"));
    let body = &html[start..start + html[start..].find("</table>").unwrap()];
    let body = &body[body.find("<tbody>").unwrap()..];
    body.split("<tr>")
        .skip(1)
        .map(|row| {
            row.split("<td>").skip(1).map(|cell| cell[..cell.find("</td>").unwrap()].to_string()).collect()
        })
        .collect()
}

/// Whether a picture has more than one gray level (a blank one would not).
fn varied(pixels: &[u8]) -> bool {
    pixels.iter().any(|&p| p != pixels[0])
}

/// The bare number in a table cell, bold or not.
fn number(cell: &str) -> f64 {
    cell.trim_start_matches("<strong>").trim_end_matches("</strong>").parse().unwrap()
}

#[test]
fn a_dense_runs_report_draws_every_section_from_its_numbers() {
    let (data, run) = trained(&["--layers", "32,16,8", "--lr", "3e-3"]);
    let page = std::fs::read_to_string(run.join("report.html")).unwrap();
    assert!(!page.contains("class=\"pending\""), "the finished run's report lacks nothing");
    assert!(
        !page.contains("http:") && !page.contains("https:") && !page.contains("<script"),
        "self-contained"
    );
    let metrics = Metrics::read(&run.join("metrics.json")).unwrap();

    // 1. The epoch table holds the run's losses, and the chart is drawn.
    let the_run = section(&page, "run");
    let epochs = table_rows(the_run, "epochs");
    let losses: Vec<(f64, f64)> = epochs.iter().map(|r| (number(&r[1]), number(&r[2]))).collect();
    let expected: Vec<(f64, f64)> = metrics.history.iter().map(|e| (e.train_loss, e.val_loss)).collect();
    assert_eq!(losses.len(), 3);
    for ((a, b), (x, y)) in losses.iter().zip(&expected) {
        assert!((a - x).abs() <= 5e-5 && (b - y).abs() <= 5e-5, "{losses:?} vs {expected:?}");
    }
    assert_eq!(svgs(the_run).len(), 1);
    assert!(svgs(the_run)[0].contains("validation"));

    // 2. Clean, corrupted, then one row of ten 12×12 digits (magnified twice) per epoch, each
    // different from the one before.
    let rows = pngs(section(&page, "denoising"));
    assert_eq!(rows.len(), 2 + 3);
    for (width, height, pixels) in &rows {
        assert_eq!((*width, *height), (10 * (24 + 4) + 4, 24 + 8));
        assert!(varied(pixels));
    }
    assert!(rows.windows(2).all(|w| w[0].2 != w[1].2), "each row shows other images");

    // 3. The first layer's 32 units as 12×12 images, 16 to a row, magnified by the page only.
    let features = pngs(section(&page, "features"));
    assert_eq!(features.len(), 1);
    assert_eq!((features[0].0, features[0].1), (16 * (12 + 4) + 4, 2 * (12 + 4) + 4));
    assert!(varied(&features[0].2));

    // 4. A dot per test image (300 here) and one per label in the legend; the k-NN numbers.
    let codes = section(&page, "codes");
    let scatter = &svgs(codes)[0];
    assert_eq!(scatter.matches("<circle").count(), 300 + 2);
    let accuracy = |label: &str| -> f64 {
        let at = codes.find(label).unwrap_or_else(|| panic!("no '{label}'")) + label.len();
        codes[at..at + 5].parse().unwrap()
    };
    let (by_codes, by_pixels) = (accuracy("<strong>codes "), accuracy("raw pixels "));
    assert!(codes.contains("(8 numbers per image)") && codes.contains("with far fewer numbers"), "{codes}");
    assert!(by_codes > 0.9 && by_pixels > 0.9, "bars are easy to tell apart: {by_codes}, {by_pixels}");

    // 5. A line per ReLU layer, and the table of the last epoch agrees with metrics.json.
    let dead = section(&page, "dead-units");
    assert_eq!(svgs(dead).len(), 1);
    let table = table_rows(dead, "dead");
    let last = metrics.dead_units.last().unwrap();
    assert_eq!((last.epoch, last.layers.clone()), (3, vec![0, 1, 2, 3, 4]));
    assert_eq!(table.len(), 5);
    for (row, share) in table.iter().zip(&last.shares) {
        assert!(row[2].contains(&format!("({:.1}%)", 100.0 * share)), "{row:?}");
    }

    // 6. Ten strengths, three kinds; the reconstruction of a corruption like the training one
    // beats its input.
    let noise = section(&page, "noise");
    let points = 10 + 9 + 9;
    assert_eq!(svgs(noise)[0].matches("<circle").count(), 2 * points, "input and reconstruction, each level");
    let sweep = table_rows(noise, "sweep");
    assert_eq!(sweep.len(), 10);
    let gaussian_half = &sweep[4];
    assert_eq!(gaussian_half[0], "0.5");
    assert!(number(&gaussian_half[2]) > number(&gaussian_half[1]) + 1.0, "{gaussian_half:?}");

    // `dae report` writes the same page again.
    std::fs::remove_file(run.join("report.html")).unwrap();
    let again = dae(&["report", s(&run), "--data", s(data.path())]);
    assert!(again.status.success(), "{}", String::from_utf8_lossy(&again.stderr));
    assert_eq!(std::fs::read_to_string(run.join("report.html")).unwrap(), page);
}

#[test]
fn a_conv_runs_report_draws_its_kernels_and_their_responses() {
    let (_data, run) = trained(&["--arch", "conv"]);
    let page = std::fs::read_to_string(run.join("report.html")).unwrap();
    assert!(!page.contains("class=\"pending\""));
    let features = pngs(section(&page, "features"));
    assert_eq!(features.len(), 2, "kernels, then responses");
    let ((kw, kh, kernels), (rw, rh, responses)) = (&features[0], &features[1]);
    assert_eq!(
        (*kw, *kh),
        (16 * (3 * 9 + 4) + 4, 2 * (3 * 9 + 4) + 4),
        "32 kernels of 3×3, magnified to the width of their responses (2·12 + 4 = 28, by 9)"
    );
    assert_eq!((*rw, *rh), (16 * (12 + 4) + 4, 2 * (12 + 4) + 4), "32 maps of 12×12");
    assert!(varied(kernels) && varied(responses));
    // Its codes, 3×3×32, outnumber the 12×12 pixels: the caption says so.
    let codes = section(&page, "codes");
    assert!(codes.contains("(288 numbers per image)") && codes.contains("are not a compression"), "{codes}");
    let dead = table_rows(section(&page, "dead-units"), "dead");
    let layers: Vec<&str> = dead.iter().map(|r| r[0].as_str()).collect();
    assert_eq!(
        layers,
        [
            "0: conv 3×3 → 12×12×32",
            "2: conv 3×3 → 6×6×32",
            "4: transposed conv 3×3 → 6×6×32",
            "5: transposed conv 3×3 → 12×12×32"
        ]
    );
    assert!(dead.iter().all(|r| r[1] == "32"), "a convolution's units are its channels");
}

#[test]
fn a_report_written_during_training_says_what_it_still_lacks() {
    let data = common::bars_dataset_of_side(256, 8, 64);
    let config = Config { batch_size: 32, hidden: vec![16, 8], ..Config::default() };
    let mut trainer = Trainer::new(config.clone(), &data);
    let stats = trainer.train_epoch(|_, _| {}).unwrap();
    let mut snapshots = Snapshots::new(10, 64, 1);
    snapshots.push(trainer.samples(10)[2].view());
    let metrics = Metrics {
        config,
        data: None,
        threads: 1,
        engine: Default::default(),
        run: None,
        history: vec![stats],
        dead_units: Vec::new(),
    };
    let codes = trainer.codes(report::TEST_SHOWN);
    let (clean, noisy) = trainer.test_set();
    let run = Run {
        dir: Path::new("runs/<b>odd</b>"),
        metrics: &metrics,
        model: &trainer.model,
        image: (8, 8),
        clean,
        noisy,
        codes: codes.view(),
        labels: &data.test.labels,
        snapshots: &snapshots,
        measured: None,
    };
    let page = report::render(&run).unwrap();
    assert!(section(&page, "noise").contains("measured when training ends"));
    assert!(section(&page, "codes").contains("measured when training ends"));
    assert!(section(&page, "dead-units").contains("No epoch has recorded"));
    assert_eq!(pngs(section(&page, "denoising")).len(), 3);
    assert!(page.contains("runs/&lt;b&gt;odd&lt;/b&gt;") && !page.contains("<b>odd"), "text is escaped");

    // A hand-edited metrics.json's absurd but finite numbers stay numbers, not 309 digits.
    let mut edited = metrics.clone();
    (edited.history[0].train_loss, edited.history[0].seconds) = (1e308, 2.5e9);
    let page = report::render(&Run { metrics: &edited, ..run }).unwrap();
    let cells = &table_rows(section(&page, "run"), "epochs")[0];
    assert_eq!((cells[1].as_str(), cells[3].as_str()), ("1.0000e308", "2.50e9"));
    // An epoch resumed part way timed only its part, and says so.
    edited.history[0].from_step = 3;
    let page = report::render(&Run { metrics: &edited, ..run }).unwrap();
    assert_eq!(table_rows(section(&page, "run"), "epochs")[0][3], "2.50e9 (resumed: from step 4)");
    // Dead units recorded for layers this model does not have are named, not taken for none.
    edited.dead_units = vec![DeadShares { epoch: 1, layers: vec![7], shares: vec![0.5] }];
    let page = report::render(&Run { metrics: &edited, ..run }).unwrap();
    let dead = section(&page, "dead-units");
    assert!(dead.contains("name layers [7], but this model's hidden ReLU layers are [0, 1, 2]"), "{dead}");
}

#[test]
fn dead_units_are_the_ones_silent_on_every_image() {
    let data = common::bars_dataset_of_side(64, 8, 16);
    let model = Trainer::new(Config { hidden: vec![4, 2], ..Config::default() }, &data).model;
    let mut dead = DeadUnits::new(&model);
    assert_eq!(dead.layers(), [0, 1, 2], "the hidden ReLU layers; not the sigmoid output");
    // Layer 0 (4 units): unit 1 fires in the second batch only, unit 3 never.
    let mut outputs: Vec<Array2<f32>> = model.widths()[1..].iter().map(|&w| Array2::zeros((3, w))).collect();
    outputs[0][(0, 0)] = 0.5;
    outputs[0][(1, 2)] = 1e-30;
    outputs[0][(2, 1)] = 9.0; // beyond the 2 rows observed
    outputs[1].fill(1.0);
    dead.observe(&outputs, 2);
    assert_eq!(dead.shares(), [0.5, 0.0, 1.0]);
    outputs[0][(1, 1)] = 0.1;
    outputs[0][(1, 3)] = -1.0;
    dead.observe(&outputs, 2);
    assert_eq!(dead.shares(), [0.25, 0.0, 1.0]);
    dead.reset();
    assert_eq!(dead.shares(), [1.0, 1.0, 1.0]);
}

#[test]
fn a_run_begun_before_snapshots_were_kept_reports_the_epochs_it_has() {
    use dae::files::checkpoint::{load_state, save_state};
    let dir = tempfile::tempdir().unwrap();
    common::write_dataset(dir.path(), &common::bars_dataset_of_side(256, 8, 64));
    let (d, run) = (s(dir.path()), dir.path().join("run"));
    let train = |epochs: &str, flag: &str| {
        let out = dae(&["--data", d, flag, s(&run), "--epochs", epochs, "--layers", "16,8"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    };
    train("1", "--out");
    // The state as a version without snapshots wrote it.
    let path = run.join("state.safetensors");
    let state = load_state(&path, 1e-3).unwrap();
    save_state(&state.model, (8, 8), &state.adam, state.progress, None, None, &path).unwrap();
    train("2", "--resume");
    let page = std::fs::read_to_string(run.join("report.html")).unwrap();
    let denoising = section(&page, "denoising");
    assert!(denoising.contains("after epoch 2") && !denoising.contains("after epoch 1"), "{denoising}");
    assert!(denoising.contains("Epochs before 2 ran before this program kept reconstructions"));
    assert_eq!(pngs(denoising).len(), 3);
    assert_eq!(load_state(&path, 1e-3).unwrap().snapshots.unwrap().first, 2);
}
