//! The charts, drawn with `plotters` as SVG text: the loss curve (also written as `loss.svg`),
//! the share of dead units, the noise sweep, and the codes' scatter plot. Each chart is one
//! function from numbers to SVG; laying them out on a page is [`crate::report`]'s job.

use std::error::Error;
use std::io;
use std::ops::Range;
use std::path::Path;

use ndarray::ArrayView2;
use plotters::chart::MeshStyle;
use plotters::coord::Shift;
use plotters::coord::types::RangedCoordf64;
use plotters::element::DashedPathElement;
use plotters::prelude::*;

use crate::eval::evaluate::SweepRow;
use crate::files::atomic::write_atomic;
use crate::train::EpochStats;

/// Ten colours that stay apart on screen and in print (Tableau's "tab10"), one per digit.
pub const TEN: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// The kinds of corruption a sweep tries, and their panels' titles.
pub const NOISE_KINDS: [(&str, &str); 3] =
    [("gaussian", "Gaussian, σ"), ("masking", "masking, p"), ("salt-pepper", "salt-and-pepper, p")];

type Drawn = Result<(), Box<dyn Error>>;
/// A named line of `(epoch, value)` points.
type Series = (String, RGBColor, Vec<(usize, f64)>);
type Axis = RangedCoordf64;
type Chart<'a, 'b> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<Axis, Axis>>;

/// The axes' grid and labels as every chart here has them: bold lines only, readable text.
fn mesh<'m, 'a, 'b>(
    chart: &'m mut Chart<'a, 'b>,
    x_name: &str,
    y_name: &str,
) -> MeshStyle<'a, 'm, Axis, Axis, SVGBackend<'b>> {
    let mut mesh = chart.configure_mesh();
    mesh.x_desc(x_name)
        .y_desc(y_name)
        .light_line_style(TRANSPARENT)
        .label_style(("sans-serif", 13))
        .axis_desc_style(("sans-serif", 14));
    mesh
}

/// The legend in the upper right corner, on white.
fn legend<'a, 'b: 'a>(chart: &mut Chart<'a, 'b>) -> Drawn {
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .label_font(("sans-serif", 13))
        .border_style(BLACK)
        .background_style(WHITE.mix(0.9))
        .draw()?;
    Ok(())
}

/// Draws on a white `size` (width, height) canvas with `draw` and returns the SVG.
fn svg(size: (u32, u32), draw: impl FnOnce(&DrawingArea<SVGBackend, Shift>) -> Drawn) -> io::Result<String> {
    let mut text = String::new();
    let drawn = (|| {
        let root = SVGBackend::with_string(&mut text, size).into_drawing_area();
        root.fill(&WHITE)?;
        draw(&root)?;
        root.present()?;
        Ok::<(), Box<dyn Error>>(())
    })();
    drawn.map_err(|e| io::Error::other(e.to_string()))?;
    Ok(text)
}

/// The largest magnitude a chart draws: a range wider than the plotting library can divide into
/// ticks (`high − low` overflowing to infinity) would never finish drawing, and no loss, share
/// or PSNR of a run comes near it.
const LARGEST: f64 = 1e15;

/// Whether a chart draws `v`: finite, and within [`LARGEST`].
fn plottable(v: f64) -> bool {
    v.is_finite() && v.abs() <= LARGEST
}

/// The range that shows every [`plottable`] one of `values` with a 5% margin; the unit interval
/// if there is none. The margin is never narrower than a millionth of the values, so that equal
/// values still make a range the axis can divide.
fn finite_range(values: impl Iterator<Item = f64>) -> Range<f64> {
    let drawn = values.filter(|&v| plottable(v));
    let (low, high) = drawn.fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), v| (l.min(v), h.max(v)));
    let (low, high) = if low <= high { (low, high) } else { (0.0, 1.0) };
    let pad = 0.05 * (high - low).max(1e-3).max(1e-6 * low.abs().max(high.abs()));
    low - pad..high + pad
}

/// Writes [`loss_curve`] to `path`.
pub fn write_loss_curve(path: &Path, history: &[EpochStats], loss_name: &str) -> io::Result<()> {
    let svg = loss_curve(history, loss_name)?;
    write_atomic(path, |w| w.write_all(svg.as_bytes()))
}

/// The training and validation loss of each epoch in `history`.
pub fn loss_curve(history: &[EpochStats], loss_name: &str) -> io::Result<String> {
    let losses = finite_range(history.iter().flat_map(|e| [e.train_loss, e.val_loss]));
    let series = [("training", BLUE, false), ("validation", RED, true)].map(|(name, color, validation)| {
        let points = history.iter().map(|e| (e.epoch, if validation { e.val_loss } else { e.train_loss }));
        (name.to_string(), color, points.collect::<Vec<_>>())
    });
    // Three decimals, or as many more as a narrow range needs for its ticks to differ (a loss
    // that barely moves, 0.69315 to 0.69312, read "0.693" on every tick).
    let width = losses.end - losses.start;
    let decimals = ((1.0 - width.log10()).ceil() as usize).clamp(3, 8);
    let label = |y: &f64| format!("{y:.decimals$}");
    per_epoch(&format!("{loss_name} per epoch"), loss_name, losses, &series, &label, Spread::Exact)
}

/// The share of dead units of each watched layer (named in `names`) per epoch: `shares[e][i]`
/// for the layer `names[i]` after epoch `e + 1`.
pub fn dead_units(names: &[String], shares: &[Vec<f64>]) -> io::Result<String> {
    let series: Vec<_> = names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let share =
                |s: &Vec<f64>| s.get(i).copied().filter(|s| (0.0..=1.0).contains(s)).unwrap_or(f64::NAN);
            let points = shares.iter().enumerate().map(|(e, s)| (e + 1, 100.0 * share(s))).collect();
            (name.clone(), TEN[i % TEN.len()], points)
        })
        .collect();
    // Shares are in [0, 1]; anything else in a hand-edited file is not drawn.
    let most =
        shares.iter().flatten().filter(|s| (0.0..=1.0).contains(*s)).fold(0.0f64, |m, &s| m.max(100.0 * s));
    // At least 0-10%, so that a few dead units do not look like many; room above for the legend.
    let range = -0.5..(most * 1.6).max(10.0);
    let label = |y: &f64| format!("{y:.0}%");
    per_epoch("dead ReLU units per layer", "% of the layer's units", range, &series, &label, Spread::Apart)
}

/// How the lines of a chart over the epochs are drawn: as they are, or each moved a little to
/// the side and marked by a smaller dot than the one before, so that lines with the same values
/// (layers that lost the same share of units) stay visible side by side.
#[derive(Clone, Copy, PartialEq)]
enum Spread {
    /// Every point where it is.
    Exact,
    /// Series `i` of `n` moved by `(i − (n − 1)/2)·0.06` epochs, its dots a pixel smaller each.
    Apart,
}

/// Lines of `(epoch, value)` points over the epochs, with a legend.
fn per_epoch(
    title: &str,
    y_name: &str,
    y_range: Range<f64>,
    series: &[Series],
    y_label: &dyn Fn(&f64) -> String,
    spread: Spread,
) -> io::Result<String> {
    let epochs = series.iter().flat_map(|(_, _, p)| p.iter().map(|(e, _)| *e)).max().unwrap_or(1).max(2);
    svg((640, 400), |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(title, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(64)
            .build_cartesian_2d(0.8..epochs as f64 + 0.2, y_range)?;
        mesh(&mut chart, "epoch", y_name)
            .x_labels(epochs.clamp(2, 20))
            .x_label_formatter(&|x| format!("{x:.0}"))
            .y_label_formatter(y_label)
            .draw()?;
        for (i, (name, color, points)) in series.iter().enumerate() {
            let (shift, dot) = match spread {
                Spread::Exact => (0.0, 3),
                Spread::Apart => ((i as f64 - (series.len() - 1) as f64 / 2.0) * 0.06, 5 - (i as i32).min(3)),
            };
            let points: Vec<(f64, f64)> =
                points.iter().filter(|(_, v)| plottable(*v)).map(|&(e, v)| (e as f64 + shift, v)).collect();
            let color = *color;
            chart
                .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))?
                .label(name)
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], color.stroke_width(2)));
            chart.draw_series(points.into_iter().map(|p| Circle::new(p, dot, color.filled())))?;
        }
        legend(&mut chart)
    })
}

/// The PSNR of the corrupted input (dashed) and of the reconstruction (solid) against the
/// corruption's strength, one panel per kind of corruption in `rows`.
pub fn noise_sweep(rows: &[SweepRow]) -> io::Result<String> {
    let decibels = finite_range(rows.iter().flat_map(|r| [r.noisy, r.reconstructed]));
    svg((960, 340), |root| {
        for (panel, (kind, name)) in root.split_evenly((1, 3)).iter().zip(NOISE_KINDS) {
            let mut chart = ChartBuilder::on(panel)
                .caption(name, ("sans-serif", 18))
                .margin(10)
                .x_label_area_size(32)
                .y_label_area_size(48)
                .build_cartesian_2d(0.0..strongest(rows, kind) + 0.05, decibels.clone())?;
            mesh(&mut chart, name.rsplit(' ').next().unwrap_or(""), "PSNR, dB")
                .y_label_formatter(&|y| format!("{y:.0}"))
                .draw()?;
            let points = |f: fn(&SweepRow) -> f64| -> Vec<(f64, f64)> {
                let mine = rows.iter().filter(|r| r.noise.kind() == kind);
                mine.map(|r| (f64::from(r.noise.level()), f(r))).filter(|(_, v)| plottable(*v)).collect()
            };
            let (input, output) = (points(|r| r.noisy), points(|r| r.reconstructed));
            let gray = RGBColor(90, 90, 90);
            chart
                .draw_series(DashedLineSeries::new(input.clone(), 6, 4, gray.stroke_width(2)))?
                .label("corrupted input")
                .legend(move |(x, y)| {
                    DashedPathElement::new([(x, y), (x + 20, y)], 6, 4, gray.stroke_width(2))
                });
            chart.draw_series(input.into_iter().map(|p| Circle::new(p, 2, gray.filled())))?;
            let blue = TEN[0];
            chart
                .draw_series(LineSeries::new(output.clone(), blue.stroke_width(2)))?
                .label("reconstruction")
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], blue.stroke_width(2)));
            chart.draw_series(output.into_iter().map(|p| Circle::new(p, 3, blue.filled())))?;
            legend(&mut chart)?;
        }
        Ok(())
    })
}

/// The strongest level of the corruption `kind` among `rows` (1 if there is none): the end of
/// its panel's axis.
fn strongest(rows: &[SweepRow], kind: &str) -> f64 {
    let levels = rows.iter().filter(|r| r.noise.kind() == kind).map(|r| f64::from(r.noise.level()));
    let strongest = levels.fold(0.0, f64::max);
    if strongest > 0.0 { strongest } else { 1.0 }
}

/// A scatter plot of `points` (N, 2), each coloured by its label in `labels` (N,) with a legend
/// of the labels present.
pub fn scatter(points: ArrayView2<f64>, labels: &[u8], (x_name, y_name): (&str, &str)) -> io::Result<String> {
    assert_eq!(points.dim(), (labels.len(), 2), "a label per point, two coordinates each");
    // A fifth more room on the right, where the legend goes, so that it covers no point.
    let x = finite_range(points.column(0).iter().copied());
    let x = x.start..x.end + 0.25 * (x.end - x.start);
    let y = finite_range(points.column(1).iter().copied());
    svg((640, 560), |root| {
        let mut chart = ChartBuilder::on(root)
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(56)
            .build_cartesian_2d(x, y)?;
        mesh(&mut chart, x_name, y_name).draw()?;
        let mut present: Vec<u8> = labels.to_vec();
        present.sort_unstable();
        present.dedup();
        for label in present {
            let color = TEN[label as usize % TEN.len()];
            let mine = points.rows().into_iter().zip(labels).filter(|(_, l)| **l == label);
            let dots = mine.map(|(p, _)| Circle::new((p[0], p[1]), 2, color.mix(0.7).filled()));
            chart
                .draw_series(dots)?
                .label(label.to_string())
                .legend(move |(x, y)| Circle::new((x + 6, y), 4, color.filled()));
        }
        legend(&mut chart)
    })
}
