//! The commands end to end through the binary, on a small generated data set: training with
//! each noise and loss, then `eval`, `encode` and `denoise` on the model it wrote.

mod common;

use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileTypeExt;
use std::path::Path;
use std::process::{Command, Output};

use dae::files::checkpoint;
use dae::files::metrics::Metrics;
use dae::files::pngio;

fn dae(args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_dae")).args(args).env_remove("DAE_MEMORY").output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    out
}

fn ok(args: &[&str]) -> String {
    let out = dae(args);
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A data set of 10×10 bars and a model trained on it for `epochs` with `extra` flags.
fn trained(epochs: &str, extra: &[&str]) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    common::write_dataset(dir.path(), &common::bars_dataset_of_side(1024, 10, 256));
    let run = dir.path().join("run");
    let mut args = vec!["--data", s(dir.path()), "--out", s(&run), "--epochs", epochs, "--batch-size", "32"];
    args.extend(extra);
    args.extend(["--layers", "32,16,8", "--lr", "3e-3"]);
    ok(&args);
    (dir, run)
}

/// The training and validation loss of each epoch of the run in `run`.
fn losses(run: &Path) -> Vec<(f64, f64)> {
    Metrics::read(&run.join("metrics.json"))
        .unwrap()
        .history
        .iter()
        .map(|e| (e.train_loss, e.val_loss))
        .collect()
}

#[test]
fn training_writes_every_file_and_the_loss_curve_has_each_epoch() {
    let (_dir, run) = trained("4", &[]);
    for file in ["metrics.json", "model.safetensors", "state.safetensors", "reconstructions.png", "loss.svg"]
    {
        assert!(run.join(file).is_file(), "{file}");
    }
    let svg = std::fs::read_to_string(run.join("loss.svg")).unwrap();
    assert_eq!(svg.matches("<circle").count(), 2 * 4, "a point per epoch for training and validation");
    assert!(svg.contains("validation") && svg.contains("BCE per epoch"));
    let model = checkpoint::load(&run.join("model.safetensors")).unwrap();
    assert_eq!(model.widths(), [100, 32, 16, 8, 16, 32, 100]);
    assert_eq!(checkpoint::image_shape(&run.join("model.safetensors")).unwrap(), Some((10, 10)));
}

#[test]
fn every_noise_and_loss_trains() {
    for extra in [
        &["--noise", "masking:0.3"][..],
        &["--noise", "salt-pepper:0.2"],
        &["--loss", "mse"],
        &["--fresh-noise"],
    ] {
        let (_dir, run) = trained("6", extra);
        let h = losses(&run);
        assert!(h[5].0 < 0.8 * h[0].0 && h[5].1 < h[0].1, "{extra:?}: {h:?}");
        let config = Metrics::read(&run.join("metrics.json")).unwrap().config;
        assert_eq!(
            serde_json::to_value(&config).unwrap()[extra[0].trim_start_matches("--").replace('-', "_")],
            match extra {
                ["--fresh-noise"] => serde_json::json!(true),
                [_, value] => serde_json::json!(value),
                _ => unreachable!(),
            }
        );
    }
}

#[test]
fn fresh_noise_changes_the_run_and_fixed_noise_repeats_it() {
    let (_a, fixed) = trained("2", &[]);
    let (_b, fixed_again) = trained("2", &[]);
    let (_c, fresh) = trained("2", &["--fresh-noise"]);
    assert_eq!(losses(&fixed), losses(&fixed_again));
    // Fresh noise draws epoch e's corruption at counter offset e, fixed noise always at 0: the
    // training losses differ from the first epoch on.
    assert_ne!(losses(&fixed)[0].0, losses(&fresh)[0].0);
    assert_ne!(losses(&fixed)[1].0, losses(&fresh)[1].0);
}

/// Reads `eval`'s table: (PSNR noisy, PSNR reconstructed, k-NN codes, k-NN pixels).
fn eval_numbers(table: &str) -> (f64, f64, f64, f64) {
    let psnr = |row: &str| {
        let line = table.lines().find(|l| l.starts_with(row)).unwrap();
        line.split_whitespace().rev().nth(2).unwrap().parse::<f64>().unwrap()
    };
    let knn = table.lines().find(|l| l.starts_with("k-NN")).unwrap();
    let after = |word: &str| {
        knn.split(word).nth(1).unwrap().split_whitespace().next().unwrap().parse::<f64>().unwrap()
    };
    (psnr("noisy input"), psnr("reconstruction"), after("codes "), after("pixels "))
}

#[test]
fn eval_reports_denoising_and_feature_quality() {
    let (dir, run) = trained("25", &[]);
    let model = run.join("model.safetensors");
    let out = dae(&["eval", "--model", s(&model), "--data", s(dir.path())]);
    let (table, stderr) = (String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap());
    println!("{table}");
    // Without a terminal, each stage that takes a while is a line on stderr.
    assert_eq!(
        stderr,
        "denoising 256 test images corrupted by gaussian:0.5\n\
         k-NN accuracy of 256 test images' codes and pixels against 1024 training images\n"
    );
    let (noisy, reconstructed, codes, pixels) = eval_numbers(&table);
    assert!(noisy > 4.0 && noisy < 12.0, "{table}");
    assert!(reconstructed > noisy + 3.0, "the model denoises: {table}");
    // Horizontal against vertical bars: both features separate them almost perfectly.
    assert!(codes > 0.9 && pixels > 0.9, "{table}");
    // The reconstruction's BCE is the validation loss of the last epoch (same corruption, same seed).
    let bce: f64 = table
        .lines()
        .find(|l| l.starts_with("reconstruction"))
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    assert!((bce - losses(&run)[24].1).abs() < 5e-4, "{bce} vs {:?}", losses(&run)[24]);
}

/// `encode --out` never replaces one of its inputs or something that is not a regular file
/// (renaming over `/dev/null` as root would replace the device), and makes the folder it names.
#[test]
fn encode_refuses_to_write_over_its_inputs_or_a_device() {
    let (dir, run) = trained("1", &[]);
    let model = run.join("model.safetensors");
    let before = std::fs::read(&model).unwrap();
    let images = dir.path().join("t10k-images-idx3-ubyte.gz");
    // A name the data loader would read, though no such file exists (the data are gzipped):
    // written, it would be read as labels by every later command.
    let unzipped_labels = dir.path().join("t10k-labels-idx1-ubyte");
    for (out, needle) in [
        (model.clone(), "an input of this command"),
        (images.clone(), "an input of this command"),
        (unzipped_labels.clone(), "an input of this command"),
        (Path::new("/dev/null").to_path_buf(), "exists and is not a regular file"),
    ] {
        let failed = dae(&["encode", "--model", s(&model), "--data", s(dir.path()), "--out", s(&out)]);
        assert_eq!(failed.status.code(), Some(2), "{out:?}");
        let stderr = String::from_utf8_lossy(&failed.stderr);
        assert!(
            stderr.contains(&format!("--out {}: ", out.display())) && stderr.contains(needle),
            "{stderr}"
        );
    }
    assert_eq!(std::fs::read(&model).unwrap(), before);
    assert!(!unzipped_labels.exists());
    assert!(std::fs::metadata("/dev/null").unwrap().file_type().is_char_device());
    let nested = dir.path().join("new").join("codes.csv");
    ok(&["encode", "--model", s(&model), "--data", s(dir.path()), "--out", s(&nested)]);
    assert!(nested.is_file());
    // A folder it may not write in is named, not the temporary file it could not make there.
    let failed = dae(&["encode", "--model", s(&model), "--data", s(dir.path()), "--out", "/sys/codes.csv"]);
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert_eq!(failed.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("/sys/codes.csv: cannot write: cannot make a file in /sys: "), "{stderr}");
    assert!(!stderr.contains(".partial"), "{stderr}");
    // `-` is standard output, the same CSV, and no file of that name.
    let printed = ok(&["encode", "--model", s(&model), "--data", s(dir.path()), "--out", "-"]);
    assert_eq!(printed, std::fs::read_to_string(&nested).unwrap());
    assert!(!Path::new("-").exists());
}

/// `eval --sweep`: a row per corruption, the input's PSNR falling as the corruption grows
/// within each kind, every figure finite; it takes no --noise.
#[test]
fn eval_sweep_measures_every_corruption() {
    let (dir, run) = trained("2", &[]);
    let model = run.join("model.safetensors");
    let table = ok(&["eval", "--model", s(&model), "--data", s(dir.path()), "--sweep"]);
    let rows: Vec<(String, f64, f64)> = table
        .lines()
        .skip(2)
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f[0].to_string(), f[1].parse().unwrap(), f[3].parse().unwrap())
        })
        .collect();
    assert_eq!(rows.len(), 10 + 9 + 9, "{table}");
    assert!(rows.iter().all(|(_, a, b)| a.is_finite() && b.is_finite()), "{table}");
    for kind in ["gaussian", "masking", "salt-pepper"] {
        let inputs: Vec<f64> = rows.iter().filter(|r| r.0.starts_with(kind)).map(|r| r.1).collect();
        assert!(inputs.windows(2).all(|w| w[1] < w[0]), "{kind}: {inputs:?}");
    }
    let out =
        dae(&["eval", "--model", s(&model), "--data", s(dir.path()), "--sweep", "--noise", "masking:0.5"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn encode_writes_a_label_and_a_code_per_test_image() {
    let (dir, run) = trained("2", &[]);
    let csv = dir.path().join("codes.csv");
    ok(&["encode", "--model", s(&run.join("model.safetensors")), "--data", s(dir.path()), "--out", s(&csv)]);
    let text = std::fs::read_to_string(&csv).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next().unwrap(), "label,code0,code1,code2,code3,code4,code5,code6,code7");
    let rows: Vec<Vec<f64>> = lines.map(|l| l.split(',').map(|v| v.parse().unwrap()).collect()).collect();
    assert_eq!(rows.len(), 256);
    let labels = common::bars_dataset_of_side(1024, 10, 256).test.labels;
    for (row, label) in rows.iter().zip(labels) {
        assert_eq!(row.len(), 9);
        assert_eq!(row[0], f64::from(label));
        assert!(row[1..].iter().all(|&c| c >= 0.0), "codes come out of a ReLU");
    }
}

#[test]
fn denoise_writes_cleaner_images_and_refuses_the_wrong_kind() {
    let (dir, run) = trained("25", &[]);
    let model = run.join("model.safetensors");
    let data = common::bars_dataset_of_side(1024, 10, 256);
    let clean: Vec<f32> = data.test.images.image(3).iter().map(|&p| f32::from(p) / 255.0).collect();
    let input = dir.path().join("bar.png");
    pngio::write_gray(&input, (10, 10), &clean).unwrap();
    let out = dir.path().join("denoised");
    ok(&["denoise", "--model", s(&model), s(&input), "--out", s(&out), "--noise", "gaussian:0.5"]);
    let noisy = pngio::read_picture(&out.join("bar.noisy.png"), 100).unwrap().gray;
    let denoised = pngio::read_picture(&out.join("bar.png"), 100).unwrap().gray;
    assert_eq!((denoised.rows, denoised.cols), (10, 10));
    let mse = |x: &[f32]| dae::eval::quality::mse(x, &clean);
    assert!(
        mse(&denoised.pixels) < 0.5 * mse(&noisy.pixels),
        "{} vs {}",
        mse(&denoised.pixels),
        mse(&noisy.pixels)
    );

    let wrong = dir.path().join("wrong.png");
    pngio::write_gray(&wrong, (12, 12), &[0.5; 144]).unwrap();
    let failed = dae(&["denoise", "--model", s(&model), s(&wrong), "--out", s(&out), "--as-is"]);
    assert_eq!(failed.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&failed.stderr)
            .contains("wrong.png: the image is 12×12 (width×height); the model takes 10×10 with --as-is")
    );
    // A corrupt image after a good one: nothing is written, not even the folder.
    let cut = dir.path().join("cut.png");
    let whole = std::fs::read(&input).unwrap();
    let idat = whole.windows(4).position(|w| w == b"IDAT").unwrap();
    std::fs::write(&cut, &whole[..idat + 6]).unwrap();
    let fresh = dir.path().join("fresh");
    let failed = dae(&["denoise", "--model", s(&model), s(&input), s(&cut), "--out", s(&fresh)]);
    assert_eq!(failed.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(stderr.contains("cut.png: corrupt PNG") && failed.stdout.is_empty(), "{stderr}");
    assert!(!fresh.exists(), "no folder, and no result of bar.png in it");
    // A chunk whose checksum is wrong is named by its four letters (the decoder's own message
    // printed the debug form of its chunk type).
    let mut flipped = whole.clone();
    let length = u32::from_be_bytes(whole[idat - 4..idat].try_into().unwrap()) as usize;
    flipped[idat + 4 + length] ^= 1;
    std::fs::write(&cut, &flipped).unwrap();
    let failed = dae(&["denoise", "--model", s(&model), s(&cut), "--out", s(&fresh)]);
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(stderr.contains("cut.png: corrupt PNG: CRC error") && stderr.contains(" IDAT chunk"), "{stderr}");
    assert!(!stderr.contains("ChunkType") && !fresh.exists(), "{stderr}");
    // Never over the original, and never two results to one name.
    let original = std::fs::read(&input).unwrap();
    let failed = dae(&["denoise", "--model", s(&model), s(&input), "--out", s(dir.path())]);
    assert_eq!(failed.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&failed.stderr).contains("would overwrite"));
    assert_eq!(std::fs::read(&input).unwrap(), original, "the original is intact");
    let twin = out.join("bar.png");
    let failed =
        dae(&["denoise", "--model", s(&model), s(&input), s(&twin), "--out", s(&dir.path().join("o2"))]);
    assert_eq!(failed.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&failed.stderr).contains("two results would be written to"));
    // A result is NAME.png whatever the image's own name ends in (a PNG named like a data set's
    // labels is no reason to write a file named so); never over a file of another kind that has
    // that name, nor over a PNG that dae did not write (a photo of that name in the folder),
    // while an earlier result is replaced.
    let (labels, o4) = (dir.path().join("labels.gz"), dir.path().join("o4"));
    std::fs::copy(&input, &labels).unwrap();
    std::fs::create_dir(&o4).unwrap();
    std::fs::write(o4.join("labels.png"), b"not an image").unwrap();
    let failed = dae(&["denoise", "--model", s(&model), s(&labels), "--out", s(&o4)]);
    assert_eq!(failed.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&failed.stderr);
    let refused =
        "labels.png: exists without dae's mark (Software: dae); denoise replaces only its own results";
    assert!(stderr.contains(refused), "{stderr}");
    assert_eq!(std::fs::read(o4.join("labels.png")).unwrap(), b"not an image");
    let mut photo = Vec::new();
    let mut encoder = png::Encoder::new(&mut photo, 3, 2);
    encoder.set_color(png::ColorType::Rgb);
    let mut writer = encoder.write_header().unwrap();
    writer.write_image_data(&[200; 18]).unwrap();
    writer.finish().unwrap();
    std::fs::write(o4.join("labels.png"), &photo).unwrap();
    let failed = dae(&["denoise", "--model", s(&model), s(&labels), "--out", s(&o4)]);
    assert_eq!(failed.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&failed.stderr).contains(refused));
    assert_eq!(std::fs::read(o4.join("labels.png")).unwrap(), photo, "the photo is intact");
    std::fs::copy(&input, o4.join("labels.png")).unwrap();
    assert!(dae(&["denoise", "--model", s(&model), s(&labels), "--out", s(&o4)]).status.success());
    // An --out that is a file is named as one (not as holding a result that is not dae's).
    let failed = dae(&["denoise", "--model", s(&model), s(&labels), "--out", s(&o4.join("labels.png"))]);
    assert_eq!(failed.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&failed.stderr).contains("labels.png: exists and is not a folder"));
    assert!(pngio::read_picture(&o4.join("labels.png"), 100).is_ok() && !o4.join("labels.gz").exists());
    // Names that are not text keep their bytes, so two of them are two results.
    let named = |bytes: &[u8]| dir.path().join(std::ffi::OsStr::from_bytes(bytes));
    let (a, b, o5) = (named(b"a\xfe.png"), named(b"a\xff.png"), dir.path().join("o5"));
    std::fs::copy(&input, &a).unwrap();
    std::fs::copy(&input, &b).unwrap();
    let both = Command::new(env!("CARGO_BIN_EXE_dae"))
        .env_remove("DAE_MEMORY")
        .args(["denoise", "--model", s(&model), "--out", s(&o5), "--noise", "gaussian:0.5"])
        .args([&a, &b])
        .output()
        .unwrap();
    assert!(both.status.success(), "{}", String::from_utf8_lossy(&both.stderr));
    let mut written: Vec<Vec<u8>> =
        std::fs::read_dir(&o5).unwrap().map(|e| e.unwrap().file_name().as_bytes().to_vec()).collect();
    written.sort();
    assert_eq!(written, [&b"a\xfe.noisy.png"[..], b"a\xfe.png", b"a\xff.noisy.png", b"a\xff.png"]);
    // With --noise, `a.png`'s corrupted copy and `a.noisy.png`'s result share a name.
    let noisy_twin = dir.path().join("bar.noisy.png");
    std::fs::copy(&input, &noisy_twin).unwrap();
    let o3 = dir.path().join("o3");
    let args = [
        "denoise",
        "--model",
        s(&model),
        s(&input),
        s(&noisy_twin),
        "--out",
        s(&o3),
        "--noise",
        "gaussian:0.5",
    ];
    let failed = dae(&args);
    assert_eq!(failed.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(
        stderr.contains("two results would be written to") && stderr.contains("bar.noisy.png"),
        "{stderr}"
    );
    assert!(!o3.exists(), "a refused run makes no folder");
    // 27 wide, 28 high: said width first. And a 389-byte file that claims 100000×100000
    // pixels is refused from its header, without a 10 GB allocation.
    pngio::write_gray(&wrong, (28, 27), &[0.5; 28 * 27]).unwrap();
    let failed = dae(&["denoise", "--model", s(&model), s(&wrong), "--out", s(&out), "--as-is"]);
    assert!(String::from_utf8_lossy(&failed.stderr).contains("the image is 27×28 (width×height)"));
    std::fs::write(&wrong, png_header_only(100_000, 100_000)).unwrap();
    let failed = dae(&["denoise", "--model", s(&model), s(&wrong), "--out", s(&out)]);
    assert_eq!(failed.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(
        stderr.contains(
            "wrong.png: the image is 100000×100000 (width×height); at most 16777216 pixels are read"
        ),
        "{stderr}"
    );
    // A header whose rows alone are too long to decode is refused for its size too.
    std::fs::write(&wrong, png_header_only(70_000_000, 1)).unwrap();
    let failed = dae(&["denoise", "--model", s(&model), s(&wrong), "--out", s(&out)]);
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(stderr.contains("the image is 70000000×1 (width×height); at most 16777216 pixels"), "{stderr}");
    // A 1-bit image is read, saying what it was, in the singular.
    let mut one_bit = Vec::new();
    let mut encoder = png::Encoder::new(&mut one_bit, 10, 10);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::One);
    // Rows of 10 bits in 2 bytes: a bar 4 pixels wide down rows 2 to 7, on black.
    let rows: Vec<u8> = (0..10).flat_map(|y| if (2..8).contains(&y) { [0x1e, 0] } else { [0, 0] }).collect();
    encoder.write_header().unwrap().write_image_data(&rows).unwrap();
    std::fs::write(&wrong, one_bit).unwrap();
    let said = ok(&["denoise", "--model", s(&model), s(&wrong), "--out", s(&out)]);
    assert!(said.contains("wrong.png (grayscale at 1 bit, as it was)"), "{said}");
    std::fs::write(&wrong, b"not a png").unwrap();
    let failed = dae(&["denoise", "--model", s(&model), s(&wrong), "--out", s(&out)]);
    assert_eq!(failed.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&failed.stderr).contains("wrong.png: not a PNG image"));
}

/// `bytes` of `width × height` pixels of `color` at `depth` bits as a PNG file.
fn png_of(color: png::ColorType, depth: png::BitDepth, (width, height): (u32, u32), bytes: &[u8]) -> Vec<u8> {
    let mut file = Vec::new();
    let mut encoder = png::Encoder::new(&mut file, width, height);
    encoder.set_color(color);
    encoder.set_depth(depth);
    encoder.write_header().unwrap().write_image_data(bytes).unwrap();
    file
}

/// Images as people have them: the same bar as gray, gray with alpha, RGB and RGBA, at 8 and
/// 16 bits, all denoised to the same result; a 200×300 drawing of a dark bar on white, inverted
/// and scaled down as MNIST's digits were, which the model then cleans better than its input.
#[test]
fn denoise_takes_any_png_and_makes_it_a_digit_like_the_data_sets() {
    use png::{BitDepth, ColorType};
    let (dir, run) = trained("25", &[]);
    let model = run.join("model.safetensors");
    let data = common::bars_dataset_of_side(1024, 10, 256);
    let bar = data.test.images.image(3).to_vec();
    let kinds: [(&str, ColorType, Vec<u8>); 4] = [
        ("gray", ColorType::Grayscale, bar.clone()),
        ("gray-alpha", ColorType::GrayscaleAlpha, bar.iter().flat_map(|&v| [v, 255]).collect()),
        ("rgb", ColorType::Rgb, bar.iter().flat_map(|&v| [v, v, v]).collect()),
        ("rgba", ColorType::Rgba, bar.iter().flat_map(|&v| [v, v, v, 255]).collect()),
    ];
    let out = dir.path().join("kinds");
    let mut results = Vec::new();
    for (name, color, bytes) in kinds {
        let wide: Vec<u8> = bytes.iter().flat_map(|&v| [v, v]).collect(); // 16 bits: v·257
        for (depth, bytes, bits) in [(BitDepth::Eight, &bytes, 8), (BitDepth::Sixteen, &wide, 16)] {
            let path = dir.path().join(format!("{name}{bits}.png"));
            std::fs::write(&path, png_of(color, depth, (10, 10), bytes)).unwrap();
            let said = ok(&["denoise", "--model", s(&model), s(&path), "--out", s(&out)]);
            assert!(said.contains(&format!("at {bits} bits, as it was)")), "{said}");
            results.push(std::fs::read(out.join(format!("{name}{bits}.png"))).unwrap());
        }
    }
    assert!(results.iter().all(|r| *r == results[0]), "every kind gives the same result");

    // A dark vertical bar on white, 200 wide and 300 high, drawn in RGB.
    let drawing: Vec<u8> = (0..300 * 200)
        .flat_map(|i| {
            let (y, x) = (i / 200, i % 200);
            let ink = (60..240).contains(&y) && (90..110).contains(&x);
            let v = if ink { 20 } else { 250 };
            [v, v, v]
        })
        .collect();
    let path = dir.path().join("drawing.png");
    std::fs::write(&path, png_of(ColorType::Rgb, BitDepth::Eight, (200, 300), &drawing)).unwrap();
    let args = ["denoise", "--model", s(&model), s(&path), "--out", s(&out), "--noise", "gaussian:0.5"];
    let said = ok(&args);
    let noisy_path = out.join("drawing.noisy.png");
    assert!(
        said.contains(&format!("drawing.png -> {} (corrupted by gaussian:0.5)", noisy_path.display())),
        "{said}"
    );
    assert!(said.contains("(RGB at 8 bits, dark on light, inverted, 200×300 scaled and centred)"), "{said}");
    // The clean digit it was made into, as the library makes it: a bar, lit in the middle column.
    let gray: Vec<f32> = drawing.chunks_exact(3).map(|p| f32::from(p[0]) / 255.0).collect();
    let (clean, _) = dae::data::digit::prepare(gray.clone(), None, (300, 200), (10, 10));
    assert!(clean[5 * 10 + 5] > 0.8 && clean[0] < 0.01, "{clean:?}");
    let noisy = pngio::read_picture(&noisy_path, 100).unwrap().gray.pixels;
    let denoised = pngio::read_picture(&out.join("drawing.png"), 100).unwrap().gray.pixels;
    let psnr = |x: &[f32]| dae::eval::quality::psnr(dae::eval::quality::mse(x, &clean));
    assert!(
        psnr(&denoised) > psnr(&noisy) + 1.0,
        "{} dB against the input's {} dB",
        psnr(&denoised),
        psnr(&noisy)
    );
}

#[test]
fn a_model_of_another_shape_is_refused_with_a_clear_message() {
    let (_dir, run) = trained("1", &[]);
    let other = tempfile::tempdir().unwrap();
    common::write_dataset(other.path(), &common::bars_dataset(64, 16));
    let out = dae(&["eval", "--model", s(&run.join("model.safetensors")), "--data", s(other.path())]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("the saved model takes 100 pixels, the images in --data have 64"), "{stderr}");

    // As many pixels in another shape: a dense model records the images it was trained on, and
    // eval and encode refuse 20×5 images for a model of 10×10 (they used to measure it).
    let mut wide = common::bars_dataset_of_side(64, 10, 16);
    for split in [&mut wide.train, &mut wide.test] {
        (split.images.rows, split.images.cols) = (5, 20);
    }
    common::write_dataset(other.path(), &wide);
    let model = run.join("model.safetensors");
    let csv = other.path().join("codes.csv");
    for args in [
        &["eval", "--model", s(&model), "--data", s(other.path())][..],
        &["encode", "--model", s(&model), "--data", s(other.path()), "--out", s(&csv)],
    ] {
        let out = dae(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let needle = "model.safetensors: the saved model takes 10×10 images, the images in --data are 20×5";
        assert!(stderr.contains(needle), "{stderr}");
    }
    assert!(!csv.exists());
}

/// A batch bigger than the data set is the whole set, one step an epoch; buffers are sized to
/// the data, not to the flag (4 billion rows of 100 pixels would be 1.6 TB).
#[test]
fn a_batch_larger_than_the_data_set_is_one_step_an_epoch() {
    let dir = tempfile::tempdir().unwrap();
    common::write_dataset(dir.path(), &common::bars_dataset_of_side(256, 10, 64));
    let run = dir.path().join("run");
    let out = ok(&[
        "--data",
        s(dir.path()),
        "--out",
        s(&run),
        "--epochs",
        "3",
        "--batch-size",
        "4000000000",
        "--profile",
    ]);
    assert!(out.contains("epoch 3/3") && out.contains("passes+update"), "{out}");
    let h = losses(&run);
    assert!(h[2].0 < h[0].0, "{h:?}");
}

/// Images smaller than SSIM's window and a training set smaller than k: eval still answers.
#[test]
fn eval_on_tiny_images_and_a_tiny_training_set() {
    let dir = tempfile::tempdir().unwrap();
    common::write_dataset(dir.path(), &common::bars_dataset_of_side(3, 4, 6));
    let run = dir.path().join("run");
    ok(&["--data", s(dir.path()), "--out", s(&run), "--epochs", "2", "--layers", "8,2"]);
    let table = ok(&["eval", "--model", s(&run.join("model.safetensors")), "--data", s(dir.path())]);
    assert!(table.contains("6 test images") && table.contains("k = 3"), "{table}");
    // One pixel, one test image, a one-number code: SSIM is undefined below 2×2 pixels, and
    // counts of one are singular.
    let one = tempfile::tempdir().unwrap();
    common::write_dataset(one.path(), &common::bars_dataset_of_side(3, 1, 1));
    let run = one.path().join("run");
    ok(&["--data", s(one.path()), "--out", s(&run), "--epochs", "1", "--layers", "1"]);
    let table = ok(&["eval", "--model", s(&run.join("model.safetensors")), "--data", s(one.path())]);
    assert!(table.starts_with("1 test image,") && table.contains("(1 number)"), "{table}");
    assert!(table.contains("n/a") && !table.contains("NaN"), "{table}");
    // A 1-pixel image is often reproduced exactly: its PSNR is capped at 100 dB, as the sweep's.
    assert!(!table.contains("inf"), "{table}");
}

/// The convolutional model through every command: train, resume to exactly the weights of an
/// uninterrupted run, eval (its code is the 3×3×32 bottleneck of a 12×12 image), encode, denoise;
/// and refusals naming the file or flag for data it cannot take.
#[test]
fn the_conv_model_trains_resumes_and_serves_every_command() {
    let dir = tempfile::tempdir().unwrap();
    common::write_dataset(dir.path(), &common::bars_dataset_of_side(256, 12, 64));
    let d = s(dir.path());
    let train = |out: &Path, epochs: &str| {
        ok(&[
            "--arch",
            "conv",
            "--data",
            d,
            "--out",
            s(out),
            "--epochs",
            epochs,
            "--batch-size",
            "32",
            "--lr",
            "3e-3",
        ])
    };
    let (straight, resumed) = (dir.path().join("straight"), dir.path().join("resumed"));
    train(&straight, "2");
    train(&resumed, "1");
    ok(&["--data", d, "--resume", s(&resumed), "--epochs", "2"]);
    let model = straight.join("model.safetensors");
    assert_eq!(
        checkpoint::load(&resumed.join("model.safetensors")).unwrap(),
        checkpoint::load(&model).unwrap()
    );
    assert_eq!(losses(&straight), losses(&resumed));
    for file in ["metrics.json", "state.safetensors", "reconstructions.png", "loss.svg"] {
        assert!(straight.join(file).is_file(), "{file}");
    }
    // Every noise and loss, and fresh noise, train the convolutional model too.
    let other = dir.path().join("other");
    let flags =
        ["--noise", "masking:0.3", "--loss", "mse", "--fresh-noise", "--epochs", "1", "--out", s(&other)];
    ok(&[&["--arch", "conv", "--data", d, "--batch-size", "32"][..], &flags].concat());
    assert_eq!(losses(&other).len(), 1);

    let table = ok(&["eval", "--model", s(&model), "--data", d]);
    assert!(table.contains("(288 numbers)"), "{table}");
    let (noisy_psnr, reconstructed_psnr, ..) = eval_numbers(&table);
    assert!(reconstructed_psnr > noisy_psnr, "{table}");

    let csv = dir.path().join("codes.csv");
    ok(&["encode", "--model", s(&model), "--data", d, "--out", s(&csv)]);
    let text = std::fs::read_to_string(&csv).unwrap();
    assert_eq!(text.lines().count(), 1 + 64);
    assert_eq!(text.lines().next().unwrap().split(',').count(), 1 + 288);

    let image = dir.path().join("bar.png");
    pngio::write_gray(&image, (12, 12), &[0.5; 144]).unwrap();
    let denoised = dir.path().join("denoised");
    ok(&["denoise", "--model", s(&model), s(&image), "--out", s(&denoised)]);
    assert_eq!(pngio::read_picture(&denoised.join("bar.png"), 144).unwrap().gray.pixels.len(), 144);

    // The same number of pixels in another shape: 16×9 images for a model of 12×12.
    let other = tempfile::tempdir().unwrap();
    let mut tall = common::bars_dataset_of_side(32, 12, 16);
    for split in [&mut tall.train, &mut tall.test] {
        (split.images.rows, split.images.cols) = (9, 16);
    }
    common::write_dataset(other.path(), &tall);
    let out = dae(&["eval", "--model", s(&model), "--data", s(other.path())]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr
            .contains("model.safetensors: the saved model takes 12×12 images, the images in --data are 16×9"),
        "{stderr}"
    );

    // Sides that do not divide by 4.
    let odd = tempfile::tempdir().unwrap();
    common::write_dataset(odd.path(), &common::bars_dataset_of_side(32, 10, 16));
    let out = dae(&["--arch", "conv", "--data", s(odd.path()), "--out", s(&odd.path().join("run"))]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--arch conv: the images are 10×10"), "{stderr}");

    // Sides of 4: the second convolution's 3×3 kernel would not fit its 2×2 image, and no command
    // could load the model (training used to write it all the same).
    let small = tempfile::tempdir().unwrap();
    common::write_dataset(small.path(), &common::bars_dataset_of_side(32, 4, 16));
    let run = small.path().join("run");
    let out = dae(&["--arch", "conv", "--data", s(small.path()), "--out", s(&run), "--epochs", "1"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("the images are 4×4; the convolutional model needs sides of 8 or more"),
        "{stderr}"
    );
    assert!(!run.exists());
    // Sides of 8 train a model that loads.
    common::write_dataset(small.path(), &common::bars_dataset_of_side(32, 8, 16));
    ok(&["--arch", "conv", "--data", s(small.path()), "--out", s(&run), "--epochs", "1"]);
    ok(&["eval", "--model", s(&run), "--data", s(small.path())]);
}

/// A PNG that is nearly all header: an 8-bit grayscale image of `width × height` whose pixel
/// data is one compressed row of zeros (the rest missing): a few hundred bytes.
fn png_header_only(width: u32, height: u32) -> Vec<u8> {
    use std::io::Write;
    let chunk = |kind: &[u8], body: &[u8]| {
        let mut crc = flate2::Crc::new();
        crc.update(kind);
        crc.update(body);
        let mut bytes = (body.len() as u32).to_be_bytes().to_vec();
        bytes.extend(kind);
        bytes.extend(body);
        bytes.extend(crc.sum().to_be_bytes());
        bytes
    };
    let mut header = width.to_be_bytes().to_vec();
    header.extend(height.to_be_bytes());
    header.extend([8, 0, 0, 0, 0]); // 8 bits, grayscale, deflate, no filter, no interlace
    let mut zlib = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    zlib.write_all(&vec![0; 1 + width as usize]).unwrap();
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend(chunk(b"IHDR", &header));
    png.extend(chunk(b"IDAT", &zlib.finish().unwrap()));
    png.extend(chunk(b"IEND", &[]));
    png
}

/// `--engine reference` trains the run the fast engine trains, dense and convolutional: the
/// same seed ends one epoch on the same validation loss to within 1e-3 (to rounding, in fact),
/// and each engine's files serve the other: `eval` reads the model, and `--resume` with the
/// other engine goes on from the state, to the same second epoch. (The conv model's loops take
/// a debug build 0.2 s an image, so it trains on fewer.)
#[test]
fn the_reference_engine_trains_the_same_run_and_its_files_serve_the_fast_one() {
    for (arch, images) in [("dense", 256), ("conv", 64)] {
        let dir = tempfile::tempdir().unwrap();
        common::write_dataset(dir.path(), &common::bars_dataset_of_side(images, 8, 32));
        let train = |engine: &str, run: &Path, extra: &[&str]| {
            let mut args = vec!["--data", s(dir.path()), "--engine", engine, "--arch", arch];
            args.extend(["--batch-size", "32", "--lr", "3e-3"]);
            if arch == "dense" {
                args.extend(["--layers", "32,16,8"]);
            }
            args.extend(extra);
            ok(&args);
            let metrics = Metrics::read(&run.join("metrics.json")).unwrap();
            assert_eq!(metrics.engine.to_string(), engine, "{arch}: metrics.json names the engine");
            losses(run)
        };
        let (fast, reference) =
            (dir.path().join(format!("{arch}-fast")), dir.path().join(format!("{arch}-ref")));
        let f = train("fast", &fast, &["--epochs", "1", "--out", s(&fast)]);
        let r = train("reference", &reference, &["--epochs", "1", "--out", s(&reference)]);
        println!("{arch}: fast {f:?}, reference {r:?}");
        assert!((f[0].1 - r[0].1).abs() < 1e-3, "{arch}: validation {f:?} vs {r:?}");
        assert!((f[0].1 - r[0].1).abs() < 1e-6, "{arch}: not to rounding: {f:?} vs {r:?}");

        let table =
            ok(&["eval", "--data", s(dir.path()), "--model", s(&reference.join("model.safetensors"))]);
        let row = table.lines().find(|l| l.starts_with("reconstruction")).unwrap();
        let bce: f64 = row.split_whitespace().nth(1).unwrap().parse().unwrap();
        assert!((bce - r[0].1).abs() < 1e-3, "{arch}: eval's BCE {bce} of the reference's model vs {r:?}");
        // Each run's second epoch through the other engine.
        let f2 = train("reference", &fast, &["--epochs", "2", "--resume", s(&fast)]);
        let r2 = train("fast", &reference, &["--epochs", "2", "--resume", s(&reference)]);
        assert!((f2[1].1 - r2[1].1).abs() < 1e-6 && f2[1].1 < f2[0].1, "{arch}: {f2:?} vs {r2:?}");
    }
}

/// Without a terminal, the stages after training that take a while each say what they do on
/// stderr: the report's measurements, at the end of training and in `report`; stdout keeps the
/// epochs and the files written.
#[test]
fn the_report_measurements_say_what_they_do() {
    let dir = tempfile::tempdir().unwrap();
    common::write_dataset(dir.path(), &common::bars_dataset_of_side(128, 8, 32));
    let run = dir.path().join("run");
    let measuring =
        "measuring the report's noise sweep and k-NN accuracy on 32 test and 128 training images\n";
    let out = dae(&["--data", s(dir.path()), "--out", s(&run), "--epochs", "1"]);
    assert!(out.status.success());
    assert_eq!(String::from_utf8(out.stderr).unwrap(), measuring);
    assert!(String::from_utf8(out.stdout).unwrap().starts_with("epoch 1/1  loss "));
    let out = dae(&["report", s(&run), "--data", s(dir.path())]);
    assert!(out.status.success());
    assert_eq!(String::from_utf8(out.stderr).unwrap(), measuring);
}

/// A PNG whose text chunk takes 2 MiB (photo tools write metadata of that size) reads, and its
/// size too (a limit of 1 MiB called it "not a PNG image").
#[test]
fn a_png_with_megabytes_of_metadata_reads() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big_text.png");
    let mut bytes = Vec::new();
    let mut encoder = png::Encoder::new(&mut bytes, 4, 4);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.add_text_chunk("Comment".into(), "x".repeat(2 << 20)).unwrap();
    let mut writer = encoder.write_header().unwrap();
    writer.write_image_data(&[51; 16]).unwrap();
    writer.finish().unwrap();
    std::fs::write(&path, bytes).unwrap();
    assert_eq!(pngio::size(&path).unwrap(), (4, 4));
    assert_eq!(pngio::read_picture(&path, 16).unwrap().gray.pixels, [0.2; 16]);
}

/// A model whose weights overflow f32 (edited by hand to 1e38: finite numbers, a file that
/// parses) is refused by every command that runs it, in one line naming the model and the
/// layer, instead of writing codes of `inf`, a table of meaningless measures or an image.
#[test]
fn a_model_that_overflows_is_refused_by_each_command_that_runs_it() {
    let (dir, run) = trained("1", &[]);
    let mut model = checkpoint::load(&run.join("model.safetensors")).unwrap();
    model.params_mut().next().unwrap().fill(1e38);
    let huge = dir.path().join("huge.safetensors");
    checkpoint::save(&model, (10, 10), &huge).unwrap();
    let image = dir.path().join("bar.png");
    pngio::write_gray(&image, (10, 10), &[0.5; 100]).unwrap();
    let (codes, denoised) = (dir.path().join("codes.csv"), dir.path().join("denoised"));
    let (model, data) = (s(&huge), s(dir.path()));
    for args in [
        vec!["eval", "--model", model, "--data", data],
        vec!["eval", "--sweep", "--model", model, "--data", data],
        vec!["encode", "--model", model, "--data", data, "--out", s(&codes)],
        vec!["encode", "--model", model, "--data", data, "--out", "-"],
        vec!["denoise", "--model", model, s(&image), "--out", s(&denoised)],
    ] {
        let failed = dae(&args);
        let stderr = String::from_utf8_lossy(&failed.stderr);
        assert_eq!(failed.status.code(), Some(1), "{args:?}: {stderr}");
        let refused = "huge.safetensors: weights too large: layers.0's outputs can reach 1.0e40";
        assert!(stderr.contains(refused), "{args:?}: {stderr}");
        assert_eq!((stderr.lines().count(), failed.stdout.len()), (1, 0), "{args:?}: {stderr}");
    }
    assert!(!codes.exists() && !denoised.exists(), "nothing written");
}
