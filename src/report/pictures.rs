//! The report's gray pictures: rows of digits, a dense layer's weights as images, and a
//! convolution's kernels with their responses to a digit. Values are mapped to `[0, 1]` here
//! and laid out by [`crate::files::figure::grid`].

use ndarray::{Array2, ArrayView2, Axis};

use crate::engine::layer::Layer;
use crate::engine::lowering::Buffers;
use crate::engine::model::Model;
use crate::files::figure::{Canvas, grid};

/// Images per row of a grid of weights or responses.
const PER_ROW: usize = 16;

/// One row of `images` (N, h·w), values in `[0, 1]`, each magnified `zoom` times.
pub fn digits(images: ArrayView2<f32>, image: (usize, usize), zoom: usize) -> Canvas {
    grid(&[images], image, zoom)
}

/// `items` (N, h·w) laid out [`PER_ROW`] to a row.
fn rows_of(items: &Array2<f32>, image: (usize, usize), zoom: usize) -> Canvas {
    let rows: Vec<ArrayView2<f32>> = items.axis_chunks_iter(Axis(0), PER_ROW).collect();
    grid(&rows, image, zoom)
}

/// Each row of `w` (units, h·w), scaled by its own largest magnitude: 0 is mid-gray, positive
/// lighter, negative darker.
pub fn signed(w: ArrayView2<f32>, image: (usize, usize), zoom: usize) -> Canvas {
    let mut shown = w.to_owned();
    for mut unit in shown.rows_mut() {
        let largest = unit.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let scale = if largest > 0.0 { 0.5 / largest } else { 0.0 };
        unit.mapv_inplace(|v| 0.5 + v * scale);
    }
    rows_of(&shown, image, zoom)
}

/// The response of each of the first convolution's channels to the image `x` (1, D): the layer's
/// activated output, one `H × W` map per channel, each scaled by its own largest value (a map
/// that is 0 everywhere stays black).
pub fn responses(model: &Model, x: ArrayView2<f32>, zoom: usize) -> Option<Canvas> {
    let Layer::Conv2d(conv) = &model.layers[0] else { return None };
    let out = conv.output();
    // The first layer alone: the whole forward pass's buffers can be as large as the run's.
    let (lowered, _) = model.layers[0].scratch_needs(1);
    let mut output = Array2::zeros((1, out.len()));
    let activation = Some(model.activations[0]);
    model.layers[0].forward(x, output.view_mut(), activation, &Buffers::new(1, lowered));
    let values = output.row(0);
    let mut maps = Array2::from_shape_fn((out.channels, out.pixels()), |(c, p)| values[p * out.channels + c]);
    for mut map in maps.rows_mut() {
        let largest = map.iter().fold(0.0f32, |m, &v| m.max(v));
        let scale = if largest > 0.0 { 1.0 / largest } else { 0.0 };
        map.mapv_inplace(|v| v * scale);
    }
    Some(rows_of(&maps, (out.height, out.width), zoom))
}
