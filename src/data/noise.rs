//! Corruption of the input, the "denoising" in denoising autoencoder.
//!
//! Every random number comes from Philox4x32-10 ([`crate::data::philox`]), keyed by the seed, at the
//! counter `(pixel / 4, image, purpose, offset)`. So an image's corruption is the same every
//! epoch (as in the notebook, which corrupts once), the same for any thread count and batch
//! order, and never has to be stored: a batch regenerates it at a few nanoseconds a pixel.

use std::fmt;
use std::str::FromStr;

use ndarray::{Array2, ArrayViewMut2, Axis};
use rayon::prelude::*;

use crate::data::mnist::Images;
use crate::data::philox::philox4x32_10;
use crate::data::rng::Purpose;
#[cfg(target_arch = "x86_64")]
use crate::engine::fastmath::{Compiled, compiled_for};
use crate::engine::fastmath::{ln_positive, sin_cos_2pi};
use crate::engine::gemm::MIN_ROWS;
use crate::engine::prefetch::prefetch;

/// How an input image is corrupted; pixels are in `[0, 1]`. Written `gaussian:0.5`,
/// `masking:0.3` or `salt-pepper:0.2` on the command line and in `metrics.json`.
///
/// ```
/// use dae::data::noise::{Noise, NoiseStream};
/// use dae::data::rng::Purpose;
///
/// let noise: Noise = "masking:0.5".parse().unwrap();
/// let pixels = [255u8; 16];
/// let (mut clean, mut noisy) = ([0.0; 16], [0.0; 16]);
/// noise.corrupt(&pixels, NoiseStream::new(42, Purpose::TrainNoise, 0, 7), &mut clean, &mut noisy);
/// assert_eq!(clean, [1.0; 16]);
/// assert!(noisy.iter().all(|&v| v == 0.0 || v == 1.0));
/// assert!("blur:2".parse::<Noise>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Noise {
    /// `x̃ = clip(x + σ·N(0, 1), 0, 1)`, the notebook's corruption with `σ = 0.5`.
    Gaussian(f32),
    /// Each pixel set to 0 with probability `p`.
    Masking(f32),
    /// Each pixel set to 0 or 1 (half each) with probability `p`.
    SaltPepper(f32),
}

/// Pixels handled per pass with AVX-512's 32 registers of 16 lanes: the random numbers for them
/// sit in a small buffer on the stack, and their Philox blocks run side by side in vector lanes.
const WIDE_PASS: usize = 64;

/// Pixels per pass with narrower vectors (AVX2's 16 registers of 8 lanes, or a baseline build's):
/// with 64, the words of sixteen Philox blocks did not fit in AVX2's registers, and the Gaussian
/// noise of 256 images took 389–413 µs on a Zen 4, with 32 331–351 µs (with AVX-512, 32 were
/// 2% slower than 64).
const NARROW_PASS: usize = 32;

/// Pixels per pass as the build was compiled: [`WIDE_PASS`] if for AVX-512.
const AS_BUILT_PASS: usize = if cfg!(target_feature = "avx512f") { WIDE_PASS } else { NARROW_PASS };

/// Where one image's random numbers come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoiseStream {
    /// The seed, as Philox's key.
    pub key: [u32; 2],
    /// The image's index in its set.
    pub image: u32,
    /// Training or test corruption.
    pub purpose: Purpose,
    /// 0 for noise fixed across epochs; the epoch for fresh noise.
    pub offset: u32,
}

impl NoiseStream {
    /// The stream of image `image` for `(seed, purpose, offset)`.
    pub fn new(seed: u64, purpose: Purpose, offset: u32, image: u32) -> NoiseStream {
        NoiseStream { key: [seed as u32, (seed >> 32) as u32], image, purpose, offset }
    }

    /// The random words for the `N` pixels from `first` (a multiple of `N`, itself a multiple of
    /// 4) on: `words[j]` is word `j % 4` of Philox's block `first / 4 + j / 4`. All of them before any
    /// is used: `N / 4` independent blocks in one loop, which the compiler runs side by side in
    /// vector lanes (one block at a time inside the Box–Muller loop, it could not).
    #[inline(always)]
    fn words<const N: usize>(&self, first: usize) -> [u32; N] {
        const { assert!(N.is_multiple_of(4), "whole Philox blocks") };
        let mut words = [0; N];
        for (block, words) in (first as u32 / 4..).zip(words.chunks_exact_mut(4)) {
            let counter = [block, self.image, self.purpose as u32, self.offset];
            words.copy_from_slice(&philox4x32_10(counter, self.key));
        }
        words
    }

    /// Uniform numbers in `[0, 1)` for the `N` pixels from `first` (a multiple of `N`) on.
    #[inline(always)]
    fn uniforms<const N: usize>(&self, first: usize, out: &mut [f32; N]) {
        for (o, w) in out.iter_mut().zip(self.words::<N>(first)) {
            *o = unit(w);
        }
    }

    /// Standard normal numbers for the `N` pixels from `first` (a multiple of `N`) on, by the
    /// Box–Muller transform: `√(−2 ln u)·(cos 2πv, sin 2πv)` for uniform `u ∈ (0, 1]`, `v`, from
    /// two words side by side.
    #[inline(always)]
    fn normals<const N: usize>(&self, first: usize, out: &mut [f32; N]) {
        for (pair, uv) in out.chunks_exact_mut(2).zip(self.words::<N>(first).chunks_exact(2)) {
            let radius = (-2.0 * ln_positive(1.0 - unit(uv[0]))).sqrt();
            let (sin, cos) = sin_cos_2pi(unit(uv[1]));
            pair[0] = radius * cos;
            pair[1] = radius * sin;
        }
    }
}

/// `v`, but 0 for a subnormal `v` (below `f32::MIN_POSITIVE`, 1.2e-38). Only a `σ` below about
/// 1e-28 makes one (`|ε|` is 0 or above 1e-10 here), and the pixel would slow every product that
/// reads it (an Intel Xeon takes some thirty times as long over a subnormal number):
/// `gaussian:1e-39` had made an epoch 23 times as long as `gaussian:0`, for the same losses.
#[inline(always)]
fn flush(v: f32) -> f32 {
    if v < f32::MIN_POSITIVE { 0.0 } else { v }
}

/// The top 24 bits of `w` as a number in `[0, 1)`, a multiple of 2⁻²⁴.
#[inline(always)]
fn unit(w: u32) -> f32 {
    (w >> 8) as f32 * (1.0 / 16_777_216.0)
}

impl Noise {
    /// Writes the clean image `x = pixels / 255` and its corruption `x̃`.
    ///
    /// The loop is compiled for the products' path (AVX-512, or AVX2 and FMA) in functions of its
    /// own rather than through [`fastmath`](crate::engine::fastmath)'s `for_this_cpu!`: that
    /// macro's closure was left outside its AVX-512 function by the compiler in some builds, and
    /// the build for any x86-64 then corrupted at a tenth of the speed (`fmaf` called for every
    /// multiply-add: a data phase of 1.26 s over 3 epochs against 0.10 s).
    pub fn corrupt(&self, pixels: &[u8], stream: NoiseStream, clean: &mut [f32], noisy: &mut [f32]) {
        debug_assert_eq!((pixels.len(), clean.len()), (noisy.len(), noisy.len()));
        #[cfg(target_arch = "x86_64")]
        match compiled_for() {
            // SAFETY: the CPU has AVX-512 (F, VL, BW, DQ), AVX2 and FMA (`compiled_for`).
            Compiled::Avx512 => unsafe { self.corrupt_avx512(pixels, stream, clean, noisy) },
            // SAFETY: the CPU has AVX2 and FMA (`compiled_for`).
            Compiled::Avx2 => unsafe { self.corrupt_avx2_fma(pixels, stream, clean, noisy) },
            Compiled::AsBuilt => self.corrupt_here::<AS_BUILT_PASS>(pixels, stream, clean, noisy),
        }
        #[cfg(not(target_arch = "x86_64"))]
        self.corrupt_here::<AS_BUILT_PASS>(pixels, stream, clean, noisy);
    }

    /// [`Noise::corrupt`] compiled for AVX-512.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512vl,avx512bw,avx512dq,avx2,fma")]
    fn corrupt_avx512(&self, pixels: &[u8], stream: NoiseStream, clean: &mut [f32], noisy: &mut [f32]) {
        self.corrupt_here::<WIDE_PASS>(pixels, stream, clean, noisy)
    }

    /// [`Noise::corrupt`] compiled for AVX2 and FMA.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    fn corrupt_avx2_fma(&self, pixels: &[u8], stream: NoiseStream, clean: &mut [f32], noisy: &mut [f32]) {
        self.corrupt_here::<NARROW_PASS>(pixels, stream, clean, noisy)
    }

    /// [`Noise::corrupt`], `N` pixels a pass ([`WIDE_PASS`], [`NARROW_PASS`]); the same numbers
    /// for any `N`.
    #[inline(always)]
    fn corrupt_here<const N: usize>(
        &self,
        pixels: &[u8],
        stream: NoiseStream,
        clean: &mut [f32],
        noisy: &mut [f32],
    ) {
        let mut random = [0.0f32; N];
        let passes = pixels.chunks(N).zip(clean.chunks_mut(N)).zip(noisy.chunks_mut(N));
        for (pass, ((pixels, clean), noisy)) in passes.enumerate() {
            match self {
                Noise::Gaussian(_) => stream.normals(pass * N, &mut random),
                _ => stream.uniforms(pass * N, &mut random),
            }
            for (x, &p) in clean.iter_mut().zip(pixels) {
                *x = f32::from(p) / 255.0;
            }
            let entries = noisy.iter_mut().zip(clean.iter()).zip(random);
            match *self {
                Noise::Gaussian(std) => {
                    entries.for_each(|((n, &x), r)| *n = flush((x + std * r).clamp(0.0, 1.0)))
                }
                Noise::Masking(p) => entries.for_each(|((n, &x), r)| *n = if r < p { 0.0 } else { x }),
                Noise::SaltPepper(p) => entries.for_each(|((n, &x), r)| {
                    let speck = if r < p / 2.0 { 0.0 } else { 1.0 };
                    *n = if r < p { speck } else { x };
                }),
            }
        }
    }
}

/// Fills `clean` and `noisy` (B, D) with the images `indices` (B of them), each corrupted from
/// its own stream `(seed, purpose, offset, image)`; blocks of rows are filled in parallel.
pub fn corrupt_batch(
    noise: Noise,
    images: &Images,
    indices: &[u32],
    key: (u64, Purpose, u32),
    mut clean: ArrayViewMut2<f32>,
    mut noisy: ArrayViewMut2<f32>,
) {
    debug_assert_eq!((clean.nrows(), noisy.nrows()), (indices.len(), indices.len()));
    (
        clean.axis_chunks_iter_mut(Axis(0), MIN_ROWS),
        noisy.axis_chunks_iter_mut(Axis(0), MIN_ROWS),
        indices.par_chunks(MIN_ROWS),
    )
        .into_par_iter()
        .for_each(|(clean, noisy, indices)| corrupt_rows(noise, images, indices, key, clean, noisy));
}

/// [`corrupt_batch`] on the calling thread.
pub fn corrupt_rows(
    noise: Noise,
    images: &Images,
    indices: &[u32],
    (seed, purpose, offset): (u64, Purpose, u32),
    mut clean: ArrayViewMut2<f32>,
    mut noisy: ArrayViewMut2<f32>,
) {
    debug_assert_eq!((clean.nrows(), noisy.nrows()), (indices.len(), indices.len()));
    let rows = clean.rows_mut().into_iter().zip(noisy.rows_mut()).zip(indices).enumerate();
    for (row, ((mut x, mut x_noisy), &i)) in rows {
        // The images come in shuffled order, so no hardware prefetcher foresees the next.
        if let Some(&n) = indices.get(row + 1) {
            prefetch(images.image(n as usize));
        }
        let stream = NoiseStream::new(seed, purpose, offset, i);
        let (x, x_noisy) = (x.as_slice_mut().expect("row"), x_noisy.as_slice_mut().expect("row"));
        noise.corrupt(images.image(i as usize), stream, x, x_noisy);
    }
}

/// A whole set scaled to `[0, 1]` and corrupted from the streams of `(seed, purpose)`: the
/// clean images and the corrupted ones, each (N, D).
pub fn corrupt_set(images: &Images, noise: Noise, seed: u64, purpose: Purpose) -> (Array2<f32>, Array2<f32>) {
    let shape = (images.count, images.pixels_per_image());
    let (mut clean, mut noisy) = (Array2::zeros(shape), Array2::zeros(shape));
    let indices: Vec<u32> = (0..images.count as u32).collect();
    corrupt_batch(noise, images, &indices, (seed, purpose, 0), clean.view_mut(), noisy.view_mut());
    (clean, noisy)
}

impl Noise {
    /// The kind, as the command line writes it: `gaussian`, `masking` or `salt-pepper`.
    pub fn kind(&self) -> &'static str {
        match self {
            Noise::Gaussian(_) => "gaussian",
            Noise::Masking(_) => "masking",
            Noise::SaltPepper(_) => "salt-pepper",
        }
    }

    /// The strength: `σ` for Gaussian noise, `p` for the others.
    pub fn level(&self) -> f32 {
        match *self {
            Noise::Gaussian(level) | Noise::Masking(level) | Noise::SaltPepper(level) => level,
        }
    }
}

impl fmt::Display for Noise {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Noise::Gaussian(s) => write!(f, "gaussian:{s}"),
            Noise::Masking(p) => write!(f, "masking:{p}"),
            Noise::SaltPepper(p) => write!(f, "salt-pepper:{p}"),
        }
    }
}

impl FromStr for Noise {
    type Err = String;

    /// Parses `gaussian:STD` (STD ≥ 0), `masking:P` or `salt-pepper:P` (0 ≤ P ≤ 1).
    fn from_str(spec: &str) -> Result<Noise, String> {
        const FORMS: &str = "expected gaussian:STD, masking:P or salt-pepper:P";
        let (kind, level) = spec.split_once(':').ok_or_else(|| format!("'{spec}': {FORMS}"))?;
        let level: f32 = level.parse().map_err(|_| format!("'{level}' is not a number; {FORMS}"))?;
        let (noise, max) = match kind {
            "gaussian" => (Noise::Gaussian(level), f32::INFINITY),
            "masking" => (Noise::Masking(level), 1.0),
            "salt-pepper" => (Noise::SaltPepper(level), 1.0),
            _ => return Err(format!("unknown noise '{kind}'; {FORMS}")),
        };
        if !(level >= 0.0 && level <= max) || level.is_infinite() {
            let range = if max == 1.0 { "P from 0 to 1" } else { "a finite STD of 0 or more" };
            return Err(format!("noise level {level} out of range for {kind}: {range}; {FORMS}"));
        }
        Ok(noise)
    }
}
