//! The notebook's figure: a row of originals, a row of corrupted inputs, a row of
//! reconstructions, drawn as one grayscale PNG. It lays out pixels; encoding the PNG is
//! [`crate::files::pngio`]'s job.

use std::io;
use std::path::Path;

use ndarray::ArrayView2;

use crate::files::pngio::{gray_level, write_bytes};

/// Pixels between digits and around the edge.
pub const GAP: usize = 4;

/// An 8-bit grayscale picture, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Canvas {
    /// Rows of pixels.
    pub height: usize,
    /// Columns of pixels.
    pub width: usize,
    /// `height · width` gray levels.
    pub pixels: Vec<u8>,
}

/// Lays out `rows` (each (N, h·w), values in `[0, 1]`) as a grid of `rows.len()` × N images of
/// `h × w` pixels, each magnified `zoom` times, on a dark gray ground.
pub fn grid(rows: &[ArrayView2<f32>], (h, w): (usize, usize), zoom: usize) -> Canvas {
    let n = rows.iter().map(|r| r.nrows()).max().unwrap_or(0);
    let (cell_w, cell_h) = (w * zoom + GAP, h * zoom + GAP);
    let (width, height) = (n * cell_w + GAP, rows.len() * cell_h + GAP);
    let mut pixels = vec![48u8; width * height];
    for (r, images) in rows.iter().enumerate() {
        for (c, image) in images.rows().into_iter().enumerate() {
            let (top, left) = (GAP + r * cell_h, GAP + c * cell_w);
            for y in 0..h * zoom {
                for x in 0..w * zoom {
                    pixels[(top + y) * width + left + x] = gray_level(image[(y / zoom) * w + x / zoom]);
                }
            }
        }
    }
    Canvas { height, width, pixels }
}

/// Draws [`grid`] of `rows` and writes it to `path` as an 8-bit grayscale PNG.
pub fn write_grid(
    path: &Path,
    rows: &[ArrayView2<f32>],
    (h, w): (usize, usize),
    zoom: usize,
) -> io::Result<()> {
    let canvas = grid(rows, (h, w), zoom);
    write_bytes(path, (canvas.height, canvas.width), &canvas.pixels)
}
