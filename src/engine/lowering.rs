//! Lowering a convolution to a matrix product: `im2col` copies every k×k window of an image into
//! one row of a matrix, so that the convolution becomes that matrix times the kernel; `col2im` is
//! its adjoint, adding each row back onto the window it came from.
//!
//! Images are stored channels last (`H, W, C`, the pixel's channels side by side), one image per
//! row of a batch `(B, H·W·C)`. A lowered row holds the window's taps in the order `(ky, kx, c)`,
//! so each tap copies `C` contiguous numbers. This module also splits a batch into fixed groups
//! of images, the unit of parallel work for the convolution layers.

use std::ops::Range;
use std::sync::Mutex;

use ndarray::ArrayView2;
use rayon::prelude::*;

use crate::engine::aligned;
use crate::engine::fastmath::for_this_cpu;

/// The geometry of an image: `height × width` pixels of `channels` numbers, stored channels last.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Image {
    /// `H`, rows of pixels.
    pub height: usize,
    /// `W`, columns of pixels.
    pub width: usize,
    /// `C`, numbers per pixel.
    pub channels: usize,
}

impl Image {
    /// An image of `height × width` pixels with `channels` numbers each.
    pub fn new(height: usize, width: usize, channels: usize) -> Image {
        Image { height, width, channels }
    }

    /// `H·W`.
    pub fn pixels(&self) -> usize {
        self.height * self.width
    }

    /// `H·W·C`, the length of the image's row in a batch.
    pub fn len(&self) -> usize {
        self.pixels() * self.channels
    }

    /// Whether the image holds no numbers.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A `k × k` window sliding over a `big` image with `stride` and zero `padding`: window `(oy, ox)`
/// covers rows `oy·stride − padding + ky` and columns `ox·stride − padding + kx`, `0 ≤ ky, kx < k`.
///
/// For a convolution, `big` is its input and the windows are its output pixels. For a transposed
/// convolution, `big` is its *output*: its windows are the input pixels, each scattering into one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Windows {
    /// The image the windows read (or, for `col2im`, write).
    pub big: Image,
    /// `k`.
    pub kernel: usize,
    /// Pixels between neighbouring windows.
    pub stride: usize,
    /// Zero rows and columns around `big`.
    pub padding: usize,
}

impl Windows {
    /// `(rows, columns)` of windows: `⌊(H + 2·padding − k) / stride⌋ + 1` by the same for `W`.
    pub fn grid(&self) -> (usize, usize) {
        let along = |n: usize| (n + 2 * self.padding - self.kernel) / self.stride + 1;
        (along(self.big.height), along(self.big.width))
    }

    /// The number of windows, which is the number of rows of the lowered matrix of one image.
    pub fn count(&self) -> usize {
        let (h, w) = self.grid();
        h * w
    }

    /// `k·k·C`, the length of one lowered row.
    pub fn row_len(&self) -> usize {
        self.kernel * self.kernel * self.big.channels
    }

    /// The taps of window `(oy, ox)` that fall inside the image, a rectangle: rows `ky < k` and
    /// columns `kx < k` with `0 ≤ oy·stride − padding + ky < H` and `0 ≤ ox·stride − padding + kx
    /// < W`. Tap `(ky, kx)`'s pixel is `(oy·stride − padding + ky, ox·stride − padding + kx)`.
    /// Both ranges are empty if either is (a window wholly in the padding).
    pub fn taps_inside(&self, oy: usize, ox: usize) -> (Range<usize>, Range<usize>) {
        let (k, s, p) = (self.kernel, self.stride, self.padding);
        let along = |o: usize, size: usize| {
            let start = o * s; // the window's first pixel, plus p
            let first = p.saturating_sub(start).min(k);
            first..(size + p).saturating_sub(start).min(k).max(first)
        };
        match (along(oy, self.big.height), along(ox, self.big.width)) {
            (rows, columns) if rows.is_empty() || columns.is_empty() => (0..0, 0..0),
            inside => inside,
        }
    }

    /// Whether window `(oy, ox)` lies wholly inside the image.
    #[inline]
    pub fn is_inside(&self, oy: usize, ox: usize) -> bool {
        let (k, s, p) = (self.kernel, self.stride, self.padding);
        let (top, left) = (oy * s, ox * s);
        top >= p && left >= p && top - p + k <= self.big.height && left - p + k <= self.big.width
    }

    /// `im2col`: row `oy·W_out + ox` of `lowered` `(windows, k·k·C)` gets window `(oy, ox)` of
    /// `image` `(H·W·C,)`, taps in `(ky, kx, c)` order, zeros where the window leaves the image.
    ///
    /// Filled tap by tap: for each tap, the windows where it falls inside the image form a
    /// rectangle, and each gets its `C` numbers without a test. (Window by window, a first
    /// layer with `C = 1` spent more time in the per-tap calls than in its product.)
    pub fn lower(&self, image: &[f32], lowered: &mut [f32]) {
        let (c, row_len) = (self.big.channels, self.row_len());
        debug_assert_eq!((image.len(), lowered.len()), (self.big.len(), self.count() * row_len));
        let (grid_h, grid_w) = self.grid();
        for (i, row) in lowered.chunks_exact_mut(row_len).enumerate() {
            if !self.is_inside(i / grid_w, i % grid_w) {
                row.fill(0.0);
            }
        }
        for_this_cpu!({
            // The closure captures these by reference; read where they are used, in the inner
            // loop, the compiler loaded them from memory for every copy in some builds. Copied
            // here, at the top of the body, they stay in registers.
            let (k, s, p, width) = (self.kernel, self.stride, self.padding, self.big.width);
            let (c, row_len, grid_w) = (c, row_len, grid_w);
            for ky in 0..k {
                for kx in 0..k {
                    let tap = (ky * k + kx) * c;
                    let columns = self.inside(kx, grid_w, width);
                    for oy in self.inside(ky, grid_h, self.big.height) {
                        let y = oy * s + ky - p;
                        for ox in columns.clone() {
                            let at = (y * width + ox * s + kx - p) * c;
                            let to = (oy * grid_w + ox) * row_len + tap;
                            copy(&image[at..at + c], &mut lowered[to..to + c]);
                        }
                    }
                }
            }
        });
    }

    /// The forward sum of a convolution multiplied by taps, for one image of a "same"
    /// convolution (stride 1): each window adds its taps' products, `y[q, o] = Σ_t z[q + s_t,
    /// (o, t)]` with `s_t = (ky − padding, kx − padding)` tap `t`'s offset, `z` `(H·W, O·k·k)`
    /// the product of every pixel with every tap and `y` `(H·W·O,)`; taps in order, and none
    /// where the tap leaves the image. Tap by tap over the rectangle of windows where it falls
    /// inside, as [`Windows::lower`] copies.
    pub fn sum_taps(&self, outputs: usize, z: &[f32], y: &mut [f32]) {
        let (k, (grid_h, grid_w)) = (self.kernel, self.grid());
        let (per_pixel, kk) = (outputs * k * k, k * k);
        debug_assert_eq!(
            (self.stride, (grid_h, grid_w), z.len(), y.len()),
            (
                1,
                (self.big.height, self.big.width),
                self.big.pixels() * per_pixel,
                self.big.pixels() * outputs
            )
        );
        y.fill(0.0);
        for_this_cpu!(for ky in 0..k {
            for kx in 0..k {
                let columns = self.inside(kx, grid_w, self.big.width);
                let rows = if columns.is_empty() { 0..0 } else { self.inside(ky, grid_h, self.big.height) };
                for oy in rows {
                    let from = ((oy + ky - self.padding) * self.big.width + columns.start + kx
                        - self.padding)
                        * per_pixel
                        + ky * k
                        + kx;
                    let to = (oy * grid_w + columns.start) * outputs;
                    for o in 0..outputs {
                        let ys = y[to + o..].iter_mut().step_by(outputs).take(columns.len());
                        ys.zip(z[from + o * kk..].iter().step_by(per_pixel)).for_each(|(y, z)| *y += z);
                    }
                }
            }
        });
    }

    /// The windows along one axis (`windows` of them, over `size` pixels) whose tap at offset
    /// `offset` falls inside the image: `0 ≤ o·stride − padding + offset < size`.
    fn inside(&self, offset: usize, windows: usize, size: usize) -> Range<usize> {
        let (s, p) = (self.stride, self.padding);
        let first = p.saturating_sub(offset).div_ceil(s);
        let end = ((size + p).saturating_sub(offset)).div_ceil(s).min(windows);
        first..end.max(first)
    }

    /// `col2im`, the adjoint of [`Windows::lower`]: `image` `(H·W·C,)` is overwritten with the sum,
    /// over windows, of each lowered row added back onto the pixels its window covers; then
    /// `finish(at, pixels)` on every span of whole rows of pixels (`at` its first number's
    /// offset), as soon as the last window that covers them has added its numbers (where the
    /// windows leave gaps, on the whole image at the end).
    ///
    /// A pixel's first number, from the first window that covers it, is stored as `0 + v`
    /// rather than added to a zero stored before: no pass to zero the image first (where every
    /// pixel is covered), the same sums. Along `x`, the pixel under tap `kx` of window `ox` is
    /// also under tap `kx + stride` of window `ox − 1`, if that tap exists (`kx + stride < k`):
    /// so window `ox` comes first on its pixels at taps `kx ≥ k − stride`, and at every tap if
    /// `ox = 0`; the same along `y`, and a window stores where it comes first along both. After
    /// the row of windows `oy`, the image rows above `(oy + 1)·stride − padding` are complete.
    ///
    /// A window's taps `(ky, kx₀..kx₁)` inside the image are `(kx₁ − kx₀)·C` numbers in a row
    /// of both `lowered` and `image`: added (or stored) as one span.
    pub fn raise(&self, lowered: &[f32], image: &mut [f32], finish: impl Fn(usize, &mut [f32])) {
        let (c, k, s, p, row_len) =
            (self.big.channels, self.kernel, self.stride, self.padding, self.row_len());
        debug_assert_eq!((image.len(), lowered.len()), (self.big.len(), self.count() * row_len));
        let (grid_h, grid_w) = self.grid();
        let covered = self.covers_every_pixel();
        if !covered {
            image.fill(0.0);
        }
        // Along one axis, window `o` stores rather than adds at taps `t ≥ first_tap(o)`: every
        // tap of the first window, the taps the window before cannot reach of the others, and
        // none where the image was zeroed.
        let first_tap = |o: usize| match (covered, o) {
            (false, _) => k,
            (true, 0) => 0,
            (true, _) => k - s,
        };
        let line = self.big.width * c;
        let mut done = 0;
        for_this_cpu!(for (oy, windows) in lowered.chunks_exact(grid_w * row_len).enumerate() {
            for (ox, row) in windows.chunks_exact(row_len).enumerate() {
                let (rows, columns) = self.taps_inside(oy, ox);
                for ky in rows {
                    let from = (ky * k + columns.start) * c;
                    let at = ((oy * s + ky - p) * self.big.width + ox * s + columns.start - p) * c;
                    let len = columns.len() * c;
                    let (source, pixels) = (&row[from..from + len], &mut image[at..at + len]);
                    let stored_from = if ky >= first_tap(oy) {
                        first_tap(ox).clamp(columns.start, columns.end) - columns.start
                    } else {
                        columns.len()
                    };
                    let (added, stored) = pixels.split_at_mut(stored_from * c);
                    add_into(added, source);
                    store_into(stored, &source[stored_from * c..]);
                }
            }
            let complete = if oy + 1 == grid_h {
                self.big.height
            } else if covered {
                ((oy + 1) * s).saturating_sub(self.padding).min(self.big.height)
            } else {
                done
            };
            if complete > done {
                finish(done * line, &mut image[done * line..complete * line]);
                done = complete;
            }
        });
    }

    /// Whether every pixel of the image lies under some window: no gaps between windows
    /// (`stride ≤ k`), and the last windows reach the last row and column.
    fn covers_every_pixel(&self) -> bool {
        let (k, s, p) = (self.kernel, self.stride, self.padding);
        let (grid_h, grid_w) = self.grid();
        let reaches = |windows: usize, size: usize| windows > 0 && (windows - 1) * s + k >= size + p;
        s <= k && p < k && reaches(grid_h, self.big.height) && reaches(grid_w, self.big.width)
    }
}

/// The lowered matrix stored transposed, `(k·k·C, G·H·W)`: one row per tap and channel, one
/// column per window, for a "same" convolution (stride 1, as many windows as pixels) with few
/// channels. By rows, a window's row takes `k·k` copies of `C` numbers each, one number apiece
/// for a grayscale image; transposed, a whole image's part of a row is one shifted copy of its
/// channel: tap `(ky, kx)` of window `(oy, ox)` is pixel `(oy + ky − p, ox + kx − p)`, so the
/// image's plane moved by `(ky − p)·W + (kx − p)`, then zeros where that leaves the image.
/// `lower(X)·Wᵀ` reads it as `(lowered_t)ᵀ`.
impl Windows {
    /// `images` `(G, H·W·C)`, channels last, into `planes` `(C, G, H·W)`, channels first.
    pub fn channels_first(&self, images: ArrayView2<f32>, planes: &mut [f32]) {
        let (c, count, pixels) = (self.big.channels, images.nrows(), self.big.pixels());
        debug_assert_eq!(planes.len(), c * count * pixels);
        for (g, image) in images.rows().into_iter().enumerate() {
            let image = image.as_slice().expect("contiguous rows");
            for (i, pixel) in image.chunks_exact(c).enumerate() {
                for (channel, &v) in pixel.iter().enumerate() {
                    planes[(channel * count + g) * pixels + i] = v;
                }
            }
        }
    }

    /// [`Windows::channels_first`] into `planes`, or, for images of one channel, which are
    /// their own planes, the images' numbers themselves (no copy).
    pub fn planes_of<'a>(&self, images: ArrayView2<'a, f32>, planes: &'a mut [f32]) -> &'a [f32] {
        match images.to_slice() {
            Some(images) if self.big.channels == 1 => images,
            _ => {
                self.channels_first(images, planes);
                planes
            }
        }
    }

    /// `im2col`, transposed: row `(ky·k + kx)·C + c` of `lowered_t` `(k·k·C, G·H·W)` holds
    /// channel `c` of tap `(ky, kx)` for every window of the `G` images in `planes` (made by
    /// [`Windows::channels_first`]); zeros where the window leaves the image.
    pub fn lower_transposed(&self, planes: &[f32], count: usize, lowered_t: &mut [f32]) {
        self.lower_taps(planes, count, lowered_t, |tap| tap);
    }

    /// [`Windows::lower_transposed`] with the kernel flipped (rotated half a turn): tap
    /// `(ky, kx)`'s rows hold tap `(k−1−ky, k−1−kx)`'s numbers. That tap lies at the opposite
    /// offset (`k` is odd in a "same" convolution), so row `(ky, kx)` of window `q` holds pixel
    /// `q − (ky − p, kx − p)`: the window whose tap `(ky, kx)` reads pixel `q`, as a backward
    /// pass needs it.
    pub fn lower_transposed_flipped(&self, planes: &[f32], count: usize, lowered_t: &mut [f32]) {
        let last = self.kernel * self.kernel - 1;
        self.lower_taps(planes, count, lowered_t, |tap| last - tap);
    }

    /// Tap `(ky, kx)`'s shifted planes into the rows of tap `row_of(ky·k + kx)`.
    fn lower_taps(
        &self,
        planes: &[f32],
        count: usize,
        lowered_t: &mut [f32],
        row_of: impl Fn(usize) -> usize,
    ) {
        let (k, c, (h, w)) = (self.kernel, self.big.channels, (self.big.height, self.big.width));
        debug_assert_eq!((self.stride, self.grid()), (1, (h, w)), "a \"same\" convolution");
        debug_assert_eq!(lowered_t.len(), k * k * c * count * h * w);
        let per_tap = c * count * h * w;
        for (ky, kx) in (0..k).flat_map(|ky| (0..k).map(move |kx| (ky, kx))) {
            // The windows where the tap falls inside the image, as `lower` fills them.
            let inside = (self.inside(ky, h, h), self.inside(kx, w, w));
            let shift =
                (ky as isize - self.padding as isize) * w as isize + kx as isize - self.padding as isize;
            let rows = &mut lowered_t[row_of(ky * k + kx) * per_tap..][..per_tap];
            for (to, from) in rows.chunks_exact_mut(h * w).zip(planes.chunks_exact(h * w)) {
                shift_plane(from, to, w, inside.clone(), shift);
            }
        }
    }
}

/// `to[i] = from[i + shift]` on a plane `w` wide, for the windows in `rows × columns`; zero
/// elsewhere.
fn shift_plane(
    from: &[f32],
    to: &mut [f32],
    w: usize,
    (rows, columns): (Range<usize>, Range<usize>),
    shift: isize,
) {
    // Along the valid rows the shift is one contiguous copy; the numbers it wraps round from the
    // next or previous row fall in the invalid columns, which are zeroed after it.
    let (start, end) = (rows.start * w, rows.end * w);
    let lo = start.max((-shift).max(0) as usize).min(end);
    let hi = end.min((from.len() as isize - shift).max(0) as usize).max(lo);
    to[..lo].fill(0.0);
    if lo < hi {
        to[lo..hi].copy_from_slice(&from[(lo as isize + shift) as usize..(hi as isize + shift) as usize]);
    }
    to[hi..].fill(0.0);
    if columns != (0..w) {
        for row in to[start..end].chunks_exact_mut(w) {
            row[..columns.start].fill(0.0);
            row[columns.end..].fill(0.0);
        }
    }
}

/// One buffer per worker thread, for the lowered matrix of the group of images it works on.
#[derive(Debug)]
pub struct Buffers {
    buffers: Vec<Mutex<Vec<f32>>>,
    len: usize,
}

impl Buffers {
    /// `threads` buffers of `len` numbers each, from a cache line's start ([`aligned`]).
    pub fn new(threads: usize, len: usize) -> Buffers {
        let buffer = || {
            let mut buffer = Vec::new();
            aligned::slice_of(&mut buffer, len); // sized once, so that a step never grows it
            Mutex::new(buffer)
        };
        Buffers { buffers: (0..threads.max(1)).map(|_| buffer()).collect(), len }
    }

    /// Runs `f` with the calling thread's buffer: thread `i`'s is buffer `i mod n` of the `n`.
    /// A thread holds it only while `f` runs and `f` starts no parallel work, so with a buffer
    /// for every thread of the pool the lock is never contended; beyond 64 threads
    /// ([`Workspace::new`](crate::engine::model::Workspace::new) makes no more), threads `i` and
    /// `i + n` take turns.
    pub fn with_buffer<R>(&self, f: impl FnOnce(&mut [f32]) -> R) -> R {
        let i = rayon::current_thread_index().unwrap_or(0) % self.buffers.len();
        let mut buffer = self.buffers[i].lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        f(aligned::slice_of(&mut buffer, self.len))
    }
}

/// Scratch memory for the convolution layers: the threads' buffers, and room for the partial
/// gradients of every group of a batch, which are summed in group order.
#[derive(Debug)]
pub struct Scratch {
    /// A lowered matrix per thread.
    pub buffers: Buffers,
    /// Partial `dW` and `db` of each group of images, one after another.
    pub partials: Vec<f32>,
}

impl Scratch {
    /// `threads` buffers of `lowered` numbers each, and room for `partials` partial gradients.
    pub fn new(threads: usize, lowered: usize, partials: usize) -> Scratch {
        Scratch { buffers: Buffers::new(threads, lowered), partials: vec![0.0; partials] }
    }
}

/// `total[j] = Σ_g partials[g·stride + offset + j]`, adding the groups in order: the same bits
/// whatever the number of threads, which split the elements of `total`, never the groups.
pub fn sum_groups(partials: &[f32], stride: usize, offset: usize, total: &mut [f32]) {
    const CHUNK: usize = 1024;
    total.par_chunks_mut(CHUNK).enumerate().for_each(|(i, chunk)| {
        let start = offset + i * CHUNK;
        chunk.fill(0.0);
        for_this_cpu!(for group in partials.chunks_exact(stride) {
            let part = &group[start..start + chunk.len()];
            chunk.iter_mut().zip(part).for_each(|(t, p)| *t += p);
        });
    });
}

/// Images per group for a layer whose largest buffer of a group — the lowered matrix, the
/// input or the output — takes `per_image` numbers per image: as many as fit in about 512 KiB
/// (half a Zen 4 core's L2 cache), so that the epilogue and the backward pass find the group's
/// numbers still in cache; 1 to 32.
///
/// Weight gradients are summed per group and then over groups in order, so the group size,
/// which depends on the layer alone, fixes the order of every sum whatever the thread count.
pub fn group_size(per_image: usize) -> usize {
    const FLOATS: usize = 128 * 1024;
    (FLOATS / per_image.max(1)).clamp(1, 32)
}

/// `to += from`, sixteen numbers at a time (one AVX-512 vector, two AVX2 ones), then the rest
/// one by one. A span of `raise` is a few hundred numbers or fewer: as one plain loop, a build
/// not tuned for this CPU planned it 64 at a time and spent most spans in the loop's slower
/// tail. (One function for both, taking the operation as a closure, was not inlined into
/// `for_this_cpu!`'s copies in that build, so it ran as baseline code: layer 5's forward took
/// 5.5 ms instead of 3.7.)
#[inline(always)]
fn add_into(to: &mut [f32], from: &[f32]) {
    let (n, blocks) = (to.len(), to.len() / 16 * 16);
    let from = &from[..n];
    let mut i = 0;
    while i < blocks {
        let (t, v) = (&mut to[i..i + 16], &from[i..i + 16]);
        for j in 0..16 {
            t[j] += v[j];
        }
        i += 16;
    }
    for j in blocks..n {
        to[j] += from[j];
    }
}

/// `to ← 0 + from`, as [`add_into`] adds: `raise`'s first number at a pixel. `0 + v`, not `v`:
/// a `−0.0` becomes `+0.0`, as it would added to a pixel zeroed first.
#[inline(always)]
fn store_into(to: &mut [f32], from: &[f32]) {
    let (n, blocks) = (to.len(), to.len() / 16 * 16);
    let from = &from[..n];
    let mut i = 0;
    while i < blocks {
        let (t, v) = (&mut to[i..i + 16], &from[i..i + 16]);
        for j in 0..16 {
            t[j] = 0.0 + v[j];
        }
        i += 16;
    }
    for j in blocks..n {
        to[j] = 0.0 + from[j];
    }
}

/// `to ← from`: a channel or a few, too short for a call to `memcpy` to pay, so one number as
/// one number, 32 (the model's channels) as one fixed-size move, more in blocks of eight (one
/// 256-bit move each) and then one by one. (A loop over blocks of any count, the compiler turns
/// back into a call to `memcpy`.)
#[inline(always)]
fn copy(from: &[f32], to: &mut [f32]) {
    if let ([f], [t]) = (from, &mut *to) {
        *t = *f;
        return;
    }
    if let (Ok(f), Ok(t)) = (<&[f32; 32]>::try_from(from), <&mut [f32; 32]>::try_from(&mut *to)) {
        *t = *f;
        return;
    }
    let (from_blocks, to_blocks) = (from.chunks_exact(8), to.chunks_exact_mut(8));
    let from_rest = from_blocks.remainder();
    let mut to_blocks = to_blocks;
    for (f, t) in from_blocks.zip(to_blocks.by_ref()) {
        let f: &[f32; 8] = f.try_into().expect("blocks of eight");
        let t: &mut [f32; 8] = t.try_into().expect("blocks of eight");
        *t = *f;
    }
    for (t, f) in to_blocks.into_remainder().iter_mut().zip(from_rest) {
        *t = *f;
    }
}
