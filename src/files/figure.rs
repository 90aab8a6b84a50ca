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

/// The whole magnification that shows images of `side` pixels about `width` pixels wide, at
/// least 1: MNIST's 28-pixel digits 4× in a 112-pixel cell, a 4096-pixel image as it is.
pub fn magnification(side: usize, width: usize) -> usize {
    (width / side.max(1)).max(1)
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

/// Draws [`grid`] of `rows`, each row named on its left by its label in `labels`, and writes it
/// to `path` as an 8-bit grayscale PNG.
pub fn write_grid(
    path: &Path,
    rows: &[ArrayView2<f32>],
    labels: &[&str],
    (h, w): (usize, usize),
    zoom: usize,
) -> io::Result<()> {
    let canvas = labelled(&grid(rows, (h, w), zoom), labels, h * zoom + GAP);
    write_bytes(path, (canvas.height, canvas.width), &canvas.pixels)
}

/// `canvas` with a margin on its left where `labels[r]` is written, in capitals, beside the
/// band of `band` pixels that row `r` of the grid takes.
pub fn labelled(canvas: &Canvas, labels: &[&str], band: usize) -> Canvas {
    const SCALE: usize = 2;
    let longest = labels.iter().map(|l| l.chars().count()).max().unwrap_or(0);
    let margin = if longest == 0 { 0 } else { longest * 6 * SCALE + 2 * GAP };
    let width = margin + canvas.width;
    let mut pixels = vec![48u8; width * canvas.height];
    for (row, line) in pixels.chunks_exact_mut(width).zip(canvas.pixels.chunks_exact(canvas.width)) {
        row[margin..].copy_from_slice(line);
    }
    for (r, label) in labels.iter().enumerate() {
        let top = GAP + r * band + band.saturating_sub(7 * SCALE + GAP) / 2;
        for (i, c) in label.chars().enumerate() {
            let Some(glyph) = glyph(c.to_ascii_uppercase()) else { continue };
            for (y, bits) in glyph.iter().enumerate() {
                for x in (0..5).filter(|x| bits & (0x10 >> x) != 0) {
                    let (py, px) = (top + y * SCALE, GAP + (i * 6 + x) * SCALE);
                    for (dy, dx) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
                        if py + dy < canvas.height {
                            pixels[(py + dy) * width + px + dx] = 220;
                        }
                    }
                }
            }
        }
    }
    Canvas { height: canvas.height, width, pixels }
}

/// The capitals the figure's labels use, 5×7 pixels each: a row of five bits per line, the
/// leftmost pixel the highest bit. (A font crate would need a font file; these are all we draw.)
fn glyph(c: char) -> Option<[u8; 7]> {
    Some(match c {
        'A' => [0x0E, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11],
        'C' => [0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E],
        'D' => [0x1E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x1E],
        'E' => [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F],
        'G' => [0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F],
        'I' => [0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E],
        'L' => [0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F],
        'N' => [0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11],
        'O' => [0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E],
        'R' => [0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11],
        'S' => [0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E],
        'T' => [0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04],
        'U' => [0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E],
        'Y' => [0x11, 0x11, 0x11, 0x0A, 0x04, 0x04, 0x04],
        ' ' => [0; 7],
        _ => return None,
    })
}
