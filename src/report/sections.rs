//! The report's six sections, each a figure and a caption that says what to look for.

use std::io;

use ndarray::s;

use crate::engine::layer::Layer;
use crate::eval::pca;
use crate::files::figure::{GAP, magnification};
use crate::files::plot;
use crate::report::html::{self, escape, figure, spread, table};
use crate::report::{Run, pictures};
use crate::train::dead_units::DeadUnits;

/// Epoch rows shown at most in a table or in the digits figure; a longer run shows an even
/// selection, first and last included (metrics.json keeps them all).
pub const MOST_ROWS: usize = 30;
/// First-layer units drawn at most.
pub const UNITS_SHOWN: usize = 256;

/// One layer in a few words: `dense 784→128`, `conv 3×3 → 28×28×32`.
pub fn describe(layer: &Layer) -> String {
    let image = |i: crate::engine::lowering::Image| format!("{}×{}×{}", i.height, i.width, i.channels);
    match layer {
        Layer::Dense(d) => format!("dense {}→{}", d.inputs(), d.outputs()),
        Layer::Conv2d(c) => format!("conv {0}×{0} → {1}", c.kernel(), image(c.output())),
        Layer::ConvTranspose2d(c) => format!("transposed conv {0}×{0} → {1}", c.kernel(), image(c.output())),
        Layer::MaxPool2d(p) => format!("max-pool 2×2 → {}", image(p.output())),
    }
}

/// `x` with `places` decimals, or in scientific notation from a million on: a number from a
/// hand-edited file (1e308) is a table cell or a line, not 309 digits.
pub fn fixed(x: f64, places: usize) -> String {
    if x.abs() < 1e6 { format!("{x:.places$}") } else { format!("{x:.places$e}") }
}

fn section(id: &str, title: &str, content: &str) -> String {
    format!("<section id=\"{id}\">\n<h2>{title}</h2>\n{content}</section>\n")
}

fn pending(what: &str) -> String {
    format!("<p class=\"pending\">{what}</p>\n")
}

/// Section 1: The settings, the epoch table and the loss curves.
pub fn the_run(run: &Run) -> io::Result<String> {
    let (m, config) = (run.metrics, &run.metrics.config);
    let model = if run.model.is_dense() {
        let widths: Vec<String> = run.model.widths().iter().map(usize::to_string).collect();
        format!("dense, {}", widths.join("→"))
    } else {
        let layers: Vec<String> = run.model.layers.iter().map(describe).collect();
        format!("convolutional: {}", layers.join(", "))
    };
    let parameters: usize = run.model.param_sizes().iter().sum();
    let corruption = format!(
        "{}, {}",
        config.noise,
        if config.fresh_noise { "drawn anew each epoch" } else { "drawn once" }
    );
    let mut settings = vec![
        ("model", format!("{model}; ReLU inside, sigmoid out")),
        ("parameters", parameters.to_string()),
        ("epochs", format!("{} of {}", m.history.len(), config.epochs)),
        ("batch size", config.batch_size.to_string()),
        ("optimizer", format!("Adam, learning rate {}, β 0.9/0.999, ε 1e-7", config.lr)),
        ("seed", config.seed.to_string()),
        ("corruption", corruption),
        ("loss", config.loss.name().to_uppercase()),
        ("threads", m.threads.to_string()),
        ("engine", m.engine.to_string()),
    ];
    if let Some(data) = &m.data {
        let [train, test] = data.images;
        let text = format!("{} ({train} training, {test} test images, CRC-32 {:08x})", data.path, data.crc32);
        settings.push(("data", text));
    }
    let settings: Vec<Vec<String>> =
        settings.into_iter().map(|(k, v)| vec![k.to_string(), escape(&v)]).collect();
    let shown = spread(m.history.len(), MOST_ROWS);
    let epochs: Vec<Vec<String>> = shown
        .iter()
        .map(|&i| {
            let e = &m.history[i];
            let [train, val] = [e.train_loss, e.val_loss].map(|l| fixed(l, 4));
            let seconds = match e.from_step {
                0 => fixed(e.seconds, 2),
                step => format!("{} (resumed: from step {})", fixed(e.seconds, 2), step.saturating_add(1)),
            };
            vec![e.epoch.to_string(), train, val, seconds]
        })
        .collect();
    let loss = config.loss.name().to_uppercase();
    let curves = if m.history.is_empty() {
        pending("No epoch has finished yet.")
    } else {
        figure(
            &html::svg(&plot::loss_curve(&m.history, &loss)?, "loss per epoch"),
            &format!(
                "The training loss is the mean {loss} over an epoch's steps as they went; the validation \
                 loss is measured after the epoch, on the corrupted test set against the clean images. \
                 Look for both falling and flattening out. Validation below training early on is \
                 normal (the training mean includes the epoch's first, worse steps); validation \
                 turning up while training still falls would mean overfitting."
            ),
        )
    };
    let selection =
        if shown.len() < m.history.len() { " (a selection; metrics.json has every epoch)" } else { "" };
    let content = format!(
        "{}<h3>Epochs{selection}</h3>\n{}{curves}",
        table("settings", &["setting", "value"], &settings),
        table(
            "epochs",
            &["epoch", &format!("training {loss}"), &format!("validation {loss}"), "seconds"],
            &epochs
        ),
    );
    Ok(section("run", "1. The run", &content))
}

/// How many times section 2 magnifies digits of `(h, w)` pixels: to about 56 pixels, at most twice.
pub fn digits_zoom((h, w): (usize, usize)) -> usize {
    magnification(h.max(w), 56).min(2)
}

/// Section 2: The same test digits: clean, corrupted, and reconstructed after each epoch.
pub fn learning_to_denoise(run: &Run) -> io::Result<String> {
    let snapshots = run.snapshots;
    let n = snapshots.images.min(run.clean.nrows());
    let noise = run.metrics.config.noise;
    let row = |label: String, images: ndarray::ArrayView2<f32>| -> io::Result<Vec<String>> {
        let zoom = digits_zoom(run.image);
        let picture = html::png(&pictures::digits(images, run.image, zoom), 1, &label)?;
        Ok(vec![escape(&label), picture])
    };
    let mut rows = vec![
        row("clean".to_string(), run.clean.slice(s![..n, ..]))?,
        row(format!("corrupted ({noise})"), run.noisy.slice(s![..n, ..]))?,
    ];
    let shown = spread(snapshots.epochs(), MOST_ROWS);
    for &e in &shown {
        rows.push(row(format!("after epoch {}", snapshots.first + e), snapshots.epoch(e).view())?);
    }
    let mut caption = format!(
        "The first {n} test digits: clean; corrupted by {noise} as validation corrupts them (the \
         network's input); and the network's reconstruction of that input after each epoch{}. Look \
         for blurred, average-looking digits in the first rows turning into each digit's own \
         strokes, and for the noise not coming back. The network never trains on these images.",
        if shown.len() < snapshots.epochs() { " (an even selection of epochs)" } else { "" }
    );
    if snapshots.first > 1 {
        caption +=
            &format!(" Epochs before {} ran before this program kept reconstructions.", snapshots.first);
    }
    let digits = table("digits", &["", ""], &rows);
    let content = if snapshots.epochs() == 0 {
        figure(&digits, &caption) + &pending("No epoch has finished yet.")
    } else {
        figure(&digits, &caption)
    };
    Ok(section("denoising", "2. Learning to denoise", &content))
}

/// Section 3: The first layer's weights as images, or a convolution's kernels and their responses.
pub fn first_layer(run: &Run) -> io::Result<String> {
    let (h, w) = run.image;
    let content = match &run.model.layers[0] {
        Layer::Dense(dense) if dense.inputs() == h * w => {
            let shown = dense.outputs().min(UNITS_SHOWN);
            let picture = pictures::signed(dense.w().slice(s![..shown, ..]), run.image, 1);
            let of = if shown < dense.outputs() { format!(" (the first {shown})") } else { String::new() };
            figure(
                &html::png(&picture, 2, "first-layer weights")?,
                &format!(
                    "Each of the first layer's {} units{of} as a {w}×{h} image of its weights: \
                     mid-gray is 0, lighter is positive, darker negative, each unit scaled to its own \
                     largest weight. A unit's input is the dot product of the image with this \
                     picture, so it responds to digits that cover its light parts and avoid its dark \
                     ones. Look for strokes and blobs — pieces of digits, often light beside dark \
                     (edge detectors). A unit that still looks like the random noise it started as \
                     has learned nothing: most likely it is one of the first layer's dead units \
                     (section 5), which get no gradient.",
                    dense.outputs()
                ),
            )
        }
        Layer::Conv2d(conv) if conv.input.channels == 1 => {
            let k = conv.kernel();
            // Each kernel as wide as its response below it (shown twice its size), as near as a
            // whole magnification allows, and no wider than 64 pixels.
            let zoom = magnification(k, (2 * conv.input.width + GAP).min(64));
            let kernels = pictures::signed(conv.w.view(), (k, k), zoom);
            let responses =
                pictures::responses(run.model, run.clean.slice(s![..1, ..]), 1).expect("a convolution");
            figure(
                &format!(
                    "{}<br>\n{}",
                    html::png(&kernels, 1, "first-layer kernels")?,
                    html::png(&responses, 2, "responses to the first test digit")?
                ),
                &format!(
                    "Top: the first convolution's {} kernels, {k}×{k} weights each (mid-gray 0, lighter \
                     positive, darker negative, each scaled to its own largest weight). Bottom, below \
                     each kernel: its response to the first clean test digit after the ReLU, \
                     each scaled to its own largest value (black is 0). Look for kernels that are \
                     light on one side and dark on the other — edge detectors — lighting up along the \
                     edges of one orientation; a map that is black everywhere is a channel this digit \
                     does not excite.",
                    conv.w.nrows()
                ),
            )
        }
        layer => pending(&format!("The first layer ({}) is not drawn.", escape(&describe(layer)))),
    };
    Ok(section("features", "3. What the first layer detects", &content))
}

/// Section 4: The codes of corrupted test images projected on their two principal components, and
/// the k-NN accuracy of codes and pixels.
pub fn codes(run: &Run) -> io::Result<String> {
    let (n, width) = run.codes.dim();
    let code = run.model.bottleneck();
    let mut content = if n < 2 || width < 2 {
        pending(&format!("{n} test images with codes of {width} numbers: too few to project on a plane."))
    } else {
        let p = pca::project(run.codes);
        let [first, second] = p.explained().map(|e| 100.0 * e);
        let axes = (
            &*format!("first principal component ({first:.1}% of the variance)"),
            &*format!("second principal component ({second:.1}%)"),
        );
        let chart = plot::scatter(p.points.view(), &run.labels[..n], axes)?;
        figure(
            &html::svg(&chart, "codes projected on two principal components"),
            &format!(
                "The codes — the output of layer {code}, {} ({width} numbers) — of the first {n} \
                 corrupted test images, projected on their two principal components (computed by this \
                 program) and coloured by the digit's label, which the network never sees. Look for \
                 a region per digit: ones and zeros usually sit at opposite ends, while 4, 7 and 9 \
                 share one region and 3, 5 and 8 another. Two of {width} directions keep only part of the codes' variance; the k-NN \
                 accuracy below measures all of it.",
                escape(&describe(&run.model.layers[code]))
            ),
        )
    };
    content += &match run.measured {
        Some(m) => format!(
            "<p>k-nearest-neighbour accuracy on the first {} clean test images (k = {}, the first {} \
             training images as reference): <strong>codes {:.3}</strong> ({width} numbers per image) \
             against raw pixels {:.3} ({} numbers). {} (<code>dae eval</code> measures it on the whole \
             sets.)</p>\n",
            m.test,
            m.knn.k,
            m.train,
            m.knn.codes,
            m.knn.pixels,
            run.image.0 * run.image.1,
            if width < run.image.0 * run.image.1 {
                "Codes that do about as well as pixels with far fewer numbers kept what tells digits apart."
            } else {
                "With no fewer numbers than the pixels, these codes are not a compression: what sets \
                 them apart from pixels is what removing the corruption taught the layers before \
                 them."
            }
        ),
        None => pending(
            "The k-NN accuracy of codes and pixels is measured when training ends (or by dae report).",
        ),
    };
    Ok(section("codes", "4. The codes", &content))
}

/// Section 5: The share of dead ReLU units per layer and epoch.
pub fn dead_units(run: &Run) -> io::Result<String> {
    let watched = DeadUnits::new(run.model).layers();
    let (records, others): (Vec<_>, Vec<_>) =
        run.metrics.dead_units.iter().partition(|d| d.layers == watched);
    let content = match records.last() {
        _ if watched.is_empty() => pending("The model has no hidden ReLU layer."),
        None if others.is_empty() => pending("No epoch has recorded its dead units yet."),
        None => pending(&format!(
            "metrics.json's dead units name layers {:?}, but this model's hidden ReLU layers are {:?}: \
             the records are not this model's, and none is shown.",
            others[0].layers, watched
        )),
        Some(last) => {
            let names: Vec<String> =
                watched.iter().map(|&l| format!("{l}: {}", describe(&run.model.layers[l]))).collect();
            // Epochs from before dead units were recorded are left out, so the x axis is the epoch.
            let mut shares =
                vec![vec![f64::NAN; watched.len()]; records.iter().map(|d| d.epoch).max().unwrap_or(0)];
            records.iter().for_each(|d| shares[d.epoch - 1] = d.shares.clone());
            let rows: Vec<Vec<String>> = names
                .iter()
                .zip(&watched)
                .zip(&last.shares)
                .map(|((name, &l), share)| {
                    let units = run.model.layers[l].units();
                    let dead = (share * units as f64).round();
                    vec![escape(name), units.to_string(), format!("{dead:.0} ({:.1}%)", 100.0 * share)]
                })
                .collect();
            figure(
                &html::svg(&plot::dead_units(&names, &shares)?, "dead units per layer and epoch"),
                &format!(
                    "For each hidden ReLU layer, the share of its units (a convolution's unit is a \
                     channel) that output 0 on every one of the {} validation images after each \
                     epoch. A silent unit passes no gradient back, so its own weights stop changing \
                     and Adam's moments for them decay towards zero; only a change in the layers \
                     before it can wake it again, which is why a share can also fall. A share \
                     that keeps growing epoch after epoch means units die faster than they learn — \
                     a learning rate too high for the layer is the usual cause.",
                    run.labels.len()
                ),
            ) + &table("dead", &["layer", "units", &format!("dead after epoch {}", last.epoch)], &rows)
        }
    };
    Ok(section("dead-units", "5. Dead units", &content))
}

/// Section 6: PSNR of the corrupted input and of the reconstruction as the corruption grows.
pub fn noise(run: &Run) -> io::Result<String> {
    let Some(measured) = run.measured else {
        let text = "The noise sweep is measured when training ends (or by dae report).";
        return Ok(section("noise", "6. How much noise it takes", &pending(text)));
    };
    // One row per strength, an input and a reconstruction column per kind of corruption.
    let mut levels: Vec<f32> = measured.sweep.iter().map(|r| r.noise.level()).collect();
    levels.sort_by(f32::total_cmp);
    levels.dedup();
    let rows: Vec<Vec<String>> = levels
        .iter()
        .map(|&level| {
            let mut row = vec![format!("{level:.1}")];
            for (kind, _) in plot::NOISE_KINDS {
                let found =
                    measured.sweep.iter().find(|r| r.noise.kind() == kind && r.noise.level() == level);
                row.extend(match found {
                    Some(r) => {
                        [format!("{:.2}", r.noisy), format!("<strong>{:.2}</strong>", r.reconstructed)]
                    }
                    None => ["–".to_string(), "–".to_string()],
                });
            }
            row
        })
        .collect();
    let head = [
        "σ or p",
        "Gaussian: input",
        "output",
        "masking: input",
        "output",
        "salt-and-pepper: input",
        "output",
    ];
    let worse: Vec<String> =
        measured.sweep.iter().filter(|r| r.reconstructed < r.noisy).map(|r| r.noise.to_string()).collect();
    let verdict = if worse.is_empty() {
        "Here the reconstruction is cleaner than its input at every level tried.".to_string()
    } else {
        format!(
            "Here the reconstruction is worse than its input at {}: a model trained on {} treats every \
             input as that noisy, and smooths away detail that lighter corruption left intact.",
            worse.join(", "),
            run.metrics.config.noise
        )
    };
    let content = figure(
        &html::svg(&plot::noise_sweep(&measured.sweep)?, "PSNR against the corruption's strength"),
        &format!(
            "PSNR in dB against the clean image (higher is better; mean over the first {} test images) \
             of the corrupted input (dashed) and of the network's reconstruction (solid, bold in the \
             table), as the corruption \
             grows, for three kinds of corruption; the network was trained on {} only. Look for the \
             solid line above the dashed one: the gap is what denoising adds, and how slowly it \
             closes shows how far the model carries beyond the noise it was trained on. {verdict}",
            measured.test, run.metrics.config.noise
        ),
    ) + &table("sweep", &head, &rows);
    Ok(section("noise", "6. How much noise it takes", &content))
}
