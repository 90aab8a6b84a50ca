//! Corruption of the input, the "denoising" in denoising autoencoder.
//!
//! Each image's corruption is drawn from its own random stream, keyed by the run's seed and the
//! image's index, so it is the same every epoch (as in the notebook, which corrupts once), the
//! same for any thread count, and never has to be stored: a batch regenerates it.

use std::fmt;
use std::str::FromStr;

use ndarray::{ArrayViewMut2, Axis};
use rand::Rng;
use rand_distr::StandardNormal;
use rayon::prelude::*;

use crate::mnist::Images;
use crate::rng::{self, Purpose};

/// How an input image is corrupted; pixels are in `[0, 1]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Noise {
    /// `x̃ = clip(x + σ·N(0, 1), 0, 1)`, the notebook's corruption with `σ = 0.5`.
    Gaussian(f32),
    /// Each pixel set to 0 with probability `p`.
    Masking(f32),
    /// Each pixel set to 0 or 1 (half each) with probability `p`.
    SaltPepper(f32),
}

impl Noise {
    /// Writes the clean image `x = pixels / 255` and its corruption `x̃`, drawing from `rng`.
    pub fn corrupt(&self, pixels: &[u8], rng: &mut impl Rng, clean: &mut [f32], noisy: &mut [f32]) {
        debug_assert_eq!((pixels.len(), clean.len()), (noisy.len(), noisy.len()));
        for ((&p, x), x_noisy) in pixels.iter().zip(clean).zip(noisy) {
            *x = f32::from(p) / 255.0;
            *x_noisy = match *self {
                Noise::Gaussian(std) => {
                    let n: f32 = rng.sample(StandardNormal);
                    (*x + std * n).clamp(0.0, 1.0)
                }
                Noise::Masking(p) => {
                    if rng.random::<f32>() < p {
                        0.0
                    } else {
                        *x
                    }
                }
                Noise::SaltPepper(p) => {
                    let u = rng.random::<f32>();
                    if u < p / 2.0 {
                        0.0
                    } else if u < p {
                        1.0
                    } else {
                        *x
                    }
                }
            };
        }
    }
}

/// Fills `clean` and `noisy` (B, D) with the images `indices` (B of them), corrupting image `i`
/// with the stream `(seed, purpose, i + offset)`; rows are filled in parallel.
pub fn corrupt_batch(
    noise: Noise,
    images: &Images,
    indices: &[u32],
    (seed, purpose, offset): (u64, Purpose, u64),
    mut clean: ArrayViewMut2<f32>,
    mut noisy: ArrayViewMut2<f32>,
) {
    debug_assert_eq!(
        (clean.nrows(), noisy.nrows()),
        (indices.len(), indices.len())
    );
    (
        clean.axis_iter_mut(Axis(0)),
        noisy.axis_iter_mut(Axis(0)),
        indices,
    )
        .into_par_iter()
        .for_each(|(mut x, mut x_noisy, &i)| {
            let mut rng = rng::stream(seed, purpose, u64::from(i) + offset);
            let (x, x_noisy) = (
                x.as_slice_mut().expect("row"),
                x_noisy.as_slice_mut().expect("row"),
            );
            noise.corrupt(images.image(i as usize), &mut rng, x, x_noisy);
        });
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
        let (kind, level) = spec
            .split_once(':')
            .ok_or_else(|| format!("'{spec}': {FORMS}"))?;
        let level: f32 = level
            .parse()
            .map_err(|_| format!("'{level}' is not a number; {FORMS}"))?;
        let (noise, max) = match kind {
            "gaussian" => (Noise::Gaussian(level), f32::INFINITY),
            "masking" => (Noise::Masking(level), 1.0),
            "salt-pepper" => (Noise::SaltPepper(level), 1.0),
            _ => return Err(format!("unknown noise '{kind}'; {FORMS}")),
        };
        if !(level >= 0.0 && level <= max) || level.is_infinite() {
            return Err(format!(
                "noise level {level} out of range for {kind}; {FORMS}"
            ));
        }
        Ok(noise)
    }
}
