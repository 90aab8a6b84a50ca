//! A digit as people have one, made into the kind of image the model was trained on, the way
//! MNIST's digits were made: light on dark, the digit's bounding box scaled to fit a box of 20
//! pixels in 28 (the same share of any other side), and centred by its centre of mass.
//!
//! Works on gray levels in `[0, 1]` (see [`crate::files::pngio::read_picture`]); reading and
//! writing files is not its business.

use std::fmt;

/// What [`prepare`] did to an image, to say so.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Prepared {
    /// The gray levels that went in, `(rows, cols)`.
    pub from: (usize, usize),
    /// The colour the transparent parts were laid on, if the image had any: white under dark
    /// strokes, black under light ones.
    pub background: Option<Background>,
    /// Whether the image was dark on light, and so inverted.
    pub inverted: bool,
    /// Whether the digit was scaled and centred into the model's size.
    pub fitted: bool,
    /// Whether the image has no stroke: no pixel above 0.1 once light on dark (a blank page, a
    /// colour swatch), so that the model is shown nothing a digit is made of.
    pub blank: bool,
}

/// What lies under an image's transparent pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Background {
    /// Black, for light strokes.
    Black,
    /// White, for dark strokes.
    White,
}

impl fmt::Display for Prepared {
    /// "on white, dark on light inverted, 200×300 fitted into 28×28"-style notes, or "as it was".
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let mut notes = Vec::new();
        if let Some(background) = self.background {
            notes.push(format!("on {}", if background == Background::White { "white" } else { "black" }));
        }
        if self.inverted {
            notes.push("dark on light, inverted".to_string());
        }
        if self.blank {
            notes.push("blank, no stroke to denoise".to_string());
        }
        if self.fitted {
            notes.push(format!("{}×{} scaled and centred", self.from.1, self.from.0));
        }
        if notes.is_empty() { f.write_str("as it was") } else { f.write_str(&notes.join(", ")) }
    }
}

/// `gray` (rows × cols, values in `[0, 1]`, with `alpha` its opacity if it has one) made into a
/// `size` (rows, cols) image as MNIST's were: transparency laid on the background its strokes
/// suggest; inverted if its border is light (a dark digit drawn on white); and, if it is not
/// already of `size`, the digit's bounding box scaled to fit `20/28` of it, keeping its
/// aspect ratio, and placed so that its centre of mass is the image's centre.
pub fn prepare(
    mut pixels: Vec<f32>,
    alpha: Option<&[f32]>,
    (rows, cols): (usize, usize),
    size: (usize, usize),
) -> (Vec<f32>, Prepared) {
    assert_eq!(pixels.len(), rows * cols, "rows × cols gray levels");
    let mut prepared = Prepared { from: (rows, cols), ..Prepared::default() };
    // In place: a drawing may be 16 million pixels, and the gray levels were the caller's to give.
    if let Some(alpha) = alpha {
        let background = background_of(&pixels, alpha);
        lay_on(&mut pixels, alpha, background);
        prepared.background = Some(background);
    }
    if border_mean(&pixels, (rows, cols)) > 0.5 {
        pixels.iter_mut().for_each(|y| *y = 1.0 - *y);
        prepared.inverted = true;
    }
    prepared.blank = !pixels.iter().any(|&y| y > 0.1);
    if (rows, cols) != size {
        pixels = fit(&pixels, (rows, cols), size);
        prepared.fitted = true;
    }
    (pixels, prepared)
}

/// `gray` seen through its opacity `alpha` over `background`, `a·y + (1 − a)·under`, in place.
pub fn lay_on(gray: &mut [f32], alpha: &[f32], background: Background) {
    let under = if background == Background::White { 1.0 } else { 0.0 };
    gray.iter_mut().zip(alpha).for_each(|(y, a)| *y = a * *y + (1.0 - a) * under);
}

/// The background that the opaque strokes of an image suggest: white under dark strokes (a
/// pen on paper), black under light ones.
fn background_of(gray: &[f32], alpha: &[f32]) -> Background {
    let opaque = gray.iter().zip(alpha).filter(|(_, a)| **a > 0.5).map(|(y, _)| *y);
    let (sum, count) = opaque.fold((0.0f32, 0usize), |(sum, count), y| (sum + y, count + 1));
    let mean = sum / count.max(1) as f32;
    if count > 0 && mean < 0.5 { Background::White } else { Background::Black }
}

/// The mean gray level of the outermost rows and columns: MNIST's background is black.
fn border_mean(pixels: &[f32], (rows, cols): (usize, usize)) -> f32 {
    let on_border = |i: usize| {
        let (y, x) = (i / cols, i % cols);
        y == 0 || x == 0 || y + 1 == rows || x + 1 == cols
    };
    let border: Vec<f32> =
        pixels.iter().enumerate().filter(|(i, _)| on_border(*i)).map(|(_, v)| *v).collect();
    border.iter().sum::<f32>() / border.len().max(1) as f32
}

/// The light digit of `pixels` (rows × cols) scaled into `size` as MNIST's were: its bounding
/// box (the pixels above 0.1) fitted into `20/28` of `size` keeping its aspect ratio, each new
/// pixel the mean of the old ones it covers (weighted by how much of each), then moved so that
/// the centre of mass is the centre.
fn fit(pixels: &[f32], (rows, cols): (usize, usize), (to_rows, to_cols): (usize, usize)) -> Vec<f32> {
    // The bounding box of the lit pixels, in one pass; a blank image has no digit, and the whole
    // of it is scaled.
    let lit = (0..pixels.len()).filter(|&i| pixels[i] > 0.1).map(|i| (i / cols, i % cols));
    let unseen = (rows, cols, 0, 0);
    let (top, left, bottom, right) =
        lit.fold(unseen, |(t, l, b, r), (y, x)| (t.min(y), l.min(x), b.max(y + 1), r.max(x + 1)));
    let (top, left, bottom, right) =
        if bottom == 0 { (0, 0, rows, cols) } else { (top, left, bottom, right) };
    let (box_rows, box_cols) = (bottom - top, right - left);
    let room = (to_rows.min(to_cols) as f64 * 20.0 / 28.0).round().max(1.0);
    let scale = room / box_rows.max(box_cols) as f64;
    let (new_rows, new_cols) = (
        ((box_rows as f64 * scale).round() as usize).max(1),
        ((box_cols as f64 * scale).round() as usize).max(1),
    );
    let mut digit = vec![0.0f32; new_rows * new_cols];
    for (y, x) in (0..new_rows).flat_map(|y| (0..new_cols).map(move |x| (y, x))) {
        let (sy, sx) = (overlaps(y, new_rows, box_rows), overlaps(x, new_cols, box_cols));
        let (mut sum, mut weight) = (0.0, 0.0);
        for &(oy, wy) in &sy {
            for &(ox, wx) in &sx {
                sum += wy * wx * f64::from(pixels[(top + oy) * cols + left + ox]);
                weight += wy * wx;
            }
        }
        digit[y * new_cols + x] = (sum / weight) as f32;
    }
    centred(&digit, (new_rows, new_cols), (to_rows, to_cols))
}

/// The old pixels that new pixel `i` of `new` covers along an axis of `old` pixels, each with
/// the length of its overlap.
fn overlaps(i: usize, new: usize, old: usize) -> Vec<(usize, f64)> {
    let step = old as f64 / new as f64;
    let (from, to) = (i as f64 * step, (i + 1) as f64 * step);
    let cells = from.floor() as usize..(to.ceil() as usize).min(old);
    cells.map(|o| (o, to.min(o as f64 + 1.0) - from.max(o as f64))).filter(|(_, w)| *w > 0.0).collect()
}

/// `digit` (rows × cols) placed in a black `size` image so that its centre of mass falls on
/// the image's centre, as near as whole pixels and the image's edges allow.
fn centred(digit: &[f32], (rows, cols): (usize, usize), (to_rows, to_cols): (usize, usize)) -> Vec<f32> {
    let mass: f64 = digit.iter().map(|&v| f64::from(v)).sum();
    // The centre of mass of the pixels' centres along an axis, in pixels from the top or left.
    let centre = |coordinate: &dyn Fn(usize) -> usize, len: usize| {
        if mass == 0.0 {
            return len as f64 / 2.0;
        }
        let moment: f64 =
            digit.iter().enumerate().map(|(i, &v)| (coordinate(i) as f64 + 0.5) * f64::from(v)).sum();
        moment / mass
    };
    let (cy, cx) = (centre(&|i| i / cols, rows), centre(&|i| i % cols, cols));
    let place = |centre: f64, len: usize, to: usize| {
        let at = (to as f64 / 2.0 - centre).round();
        at.clamp(0.0, to.saturating_sub(len) as f64) as usize
    };
    let (top, left) = (place(cy, rows, to_rows), place(cx, cols, to_cols));
    let mut image = vec![0.0; to_rows * to_cols];
    for (y, row) in digit.chunks_exact(cols).enumerate().take(to_rows - top) {
        let start = (top + y) * to_cols + left;
        let n = cols.min(to_cols - left);
        image[start..start + n].copy_from_slice(&row[..n]);
    }
    image
}
