//! The loss curve draws whatever the history holds: infinite, NaN and huge losses are left out
//! of the axis (an infinite one once made `plotters` loop forever), and the file is written.

use dae::files::plot::{loss_curve, write_loss_curve};
use dae::train::EpochStats;

#[test]
fn the_loss_curve_survives_losses_that_are_not_finite() {
    let dir = tempfile::tempdir().unwrap();
    let epoch =
        |epoch, train_loss, val_loss| EpochStats { epoch, train_loss, val_loss, seconds: 1.0, from_step: 0 };
    let histories = [
        vec![epoch(1, 0.3, f64::INFINITY)],
        vec![epoch(1, f64::NAN, f64::NAN), epoch(2, f64::NEG_INFINITY, f64::INFINITY)],
        vec![epoch(1, 0.3, 1e30), epoch(2, 0.2, 0.25)],
        vec![epoch(1, 0.2, 0.2)],
        // Finite, but a range too wide to divide (once a drawing that never ended).
        vec![epoch(1, -f64::MAX, f64::MAX), epoch(2, 0.2, 0.25)],
        vec![epoch(1, -1.7e308, 1.7e308)],
        vec![epoch(1, 1e12, 1e12), epoch(2, 1e12, 1e12)],
    ];
    for (i, history) in histories.iter().enumerate() {
        let path = dir.path().join(format!("loss{i}.svg"));
        write_loss_curve(&path, history, "BCE").unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        let drawn = history.iter().flat_map(|e| [e.train_loss, e.val_loss]);
        let drawn = drawn.filter(|v| v.is_finite() && v.abs() <= 1e15).count();
        assert_eq!(svg.matches("<circle").count(), drawn, "history {i}: a point per drawable loss");
    }
}

/// Every `<circle>`'s centre and colour in `svg`.
fn circles(svg: &str) -> Vec<(String, String)> {
    let attr = |c: &str, name: &str| {
        c.split(&format!(" {name}=\"")).nth(1).unwrap().split('"').next().unwrap().to_string()
    };
    svg.split("<circle")
        .skip(1)
        .map(|c| (format!("{},{}", attr(c, "cx"), attr(c, "cy")), attr(c, "fill")))
        .collect()
}

/// Layers that lost the same share of units draw lines that would hide one another: each is
/// moved a little to the side, so no two layers' points share a place.
#[test]
fn equal_lines_of_dead_units_stay_apart() {
    let names: Vec<String> = (0..3).map(|i| format!("layer {i}")).collect();
    let shares = vec![vec![0.25, 0.25, 0.1]; 4];
    let svg = dae::files::plot::dead_units(&names, &shares).unwrap();
    let points = circles(&svg);
    assert_eq!(points.len(), 12, "a point per layer and epoch");
    for (i, (at, colour)) in points.iter().enumerate() {
        for (other, other_colour) in &points[i + 1..] {
            assert!(at != other || colour == other_colour, "two layers' points at {at}");
        }
    }
}

/// A sweep panel's axis ends at its strongest corruption: σ up to 1.0, masking to 0.9.
#[test]
fn each_sweep_panel_ends_at_its_strongest_level() {
    use dae::data::noise::Noise;
    use dae::eval::evaluate::SweepRow;
    let rows: Vec<SweepRow> = dae::eval::evaluate::sweep_noises()
        .into_iter()
        .map(|noise| SweepRow { noise, noisy: 10.0, reconstructed: 15.0 + f64::from(noise.level()) })
        .collect();
    assert!(rows.iter().any(|r| r.noise == Noise::Masking(0.9)));
    let svg = dae::files::plot::noise_sweep(&rows).unwrap();
    let ticks = |label: &str| svg.matches(&format!(">\n{label}\n</text>")).count();
    assert_eq!(ticks("1.0"), 1, "only the Gaussian panel's axis reaches 1.0");
    assert_eq!(ticks("0.9"), 3, "every panel's reaches 0.9");
}

/// The figure names its rows on the left: a margin as wide as the longest label, text in each
/// row's band, and the grid beside it unchanged.
#[test]
fn the_figure_labels_its_rows() {
    use dae::files::figure::{GAP, grid, labelled};
    let images = ndarray::Array2::from_elem((2, 16), 0.5f32);
    let canvas = grid(&[images.view(), images.view()], (4, 4), 2);
    let band = 4 * 2 + GAP;
    let with = labelled(&canvas, &["noisy", "original"], band);
    let margin = with.width - canvas.width;
    assert_eq!(margin, 8 * 6 * 2 + 2 * GAP, "room for eight capitals of 6 pixels, doubled");
    for (row, line) in with.pixels.chunks_exact(with.width).enumerate() {
        assert_eq!(&line[margin..], &canvas.pixels[row * canvas.width..(row + 1) * canvas.width]);
    }
    let lit = |rows: std::ops::Range<usize>| {
        rows.flat_map(|y| (0..margin).map(move |x| (y, x)))
            .filter(|&(y, x)| with.pixels[y * with.width + x] > 100)
            .count()
    };
    assert!(lit(0..GAP + band) > 20 && lit(GAP + band..GAP + 2 * band) > 20, "a label in each band");
    assert_eq!(lit(0..GAP), 0, "none above the first row");
}

/// Shares of dead units from a hand-edited file: out of range (1e308, negative, NaN) or fewer
/// than the layers; the chart is drawn without them, and promptly.
#[test]
fn dead_units_out_of_range_are_left_out() {
    let names: Vec<String> = (0..2).map(|i| format!("layer {i}")).collect();
    let shares = vec![vec![0.25, 1e308], vec![-1.0, f64::NAN], vec![0.5]];
    let svg = dae::files::plot::dead_units(&names, &shares).unwrap();
    assert_eq!(circles(&svg).len(), 2, "0.25 and 0.5 drawn, the rest not");
}

/// A loss that barely moves still gets ticks that read differently (they all read "0.693" for 0.69315 to 0.69312).
#[test]
fn a_flat_loss_curve_has_ticks_that_differ() {
    let epoch = |epoch, loss| EpochStats {
        epoch,
        train_loss: loss,
        val_loss: loss - 2e-5,
        seconds: 1.0,
        from_step: 0,
    };
    for history in [vec![epoch(1, 0.69415), epoch(2, 0.69412)], vec![epoch(1, 0.2), epoch(2, 0.1)]] {
        let svg = loss_curve(&history, "BCE").unwrap();
        let ticks: Vec<&str> = svg
            .split("</text>")
            .filter_map(|t| t.rsplit('>').next().map(str::trim))
            .filter(|t| t.starts_with("0."))
            .collect();
        assert!(ticks.len() >= 4, "{ticks:?}");
        let distinct: std::collections::HashSet<_> = ticks.iter().collect();
        assert_eq!(distinct.len(), ticks.len(), "{ticks:?}");
    }
}
