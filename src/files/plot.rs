//! `loss.svg`: training and validation loss per epoch, drawn with `plotters`. The one chart the
//! project needs, not a plotting layer.

use std::io;
use std::path::Path;

use plotters::prelude::*;

use crate::files::output::write_atomic;
use crate::train::EpochStats;

/// Draws the training and validation loss of each epoch in `history` and writes it to `path`.
pub fn write_loss_curve(path: &Path, history: &[EpochStats], loss_name: &str) -> io::Result<()> {
    let mut svg = String::new();
    draw(&mut svg, history, loss_name).map_err(|e| io::Error::other(e.to_string()))?;
    write_atomic(path, |w| w.write_all(svg.as_bytes()))
}

fn draw(svg: &mut String, history: &[EpochStats], loss_name: &str) -> Result<(), Box<dyn std::error::Error>> {
    let root = SVGBackend::with_string(svg, (640, 400)).into_drawing_area();
    root.fill(&WHITE)?;
    // Only finite values set the range (an infinite one would make the axis endless); a
    // history with none gets the unit interval.
    let losses = history.iter().flat_map(|e| [e.train_loss, e.val_loss]).filter(|v| v.is_finite());
    let (low, high) = losses.fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), v| (l.min(v), h.max(v)));
    let (low, high) = if low <= high { (low, high) } else { (0.0, 1.0) };
    let pad = 0.05 * (high - low).max(1e-3);
    let epochs = history.len().max(2) as f64;
    let mut chart = ChartBuilder::on(&root)
        .caption(format!("{loss_name} per epoch"), ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(56)
        .build_cartesian_2d(1.0..epochs, (low - pad)..(high + pad))?;
    chart
        .configure_mesh()
        .x_desc("epoch")
        .y_desc(loss_name)
        .x_labels(history.len().clamp(2, 20))
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format!("{y:.3}"))
        .draw()?;
    let series = [("training", BLUE, false), ("validation", RED, true)];
    for (name, color, validation) in series {
        let points: Vec<(f64, f64)> = history
            .iter()
            .map(|e| (e.epoch as f64, if validation { e.val_loss } else { e.train_loss }))
            .filter(|(_, loss)| loss.is_finite())
            .collect();
        chart
            .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))?
            .label(name)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], color.stroke_width(2)));
        chart.draw_series(points.into_iter().map(|p| Circle::new(p, 3, color.filled())))?;
    }
    chart.configure_series_labels().border_style(BLACK).background_style(WHITE).draw()?;
    root.present()?;
    Ok(())
}
