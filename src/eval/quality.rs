//! How close a reconstruction is to the clean image: BCE, MSE, PSNR and SSIM, per image.
//!
//! Images are row-major with values in `[0, 1]` (data range 1). These are measurements for
//! reports, computed in f64; the training losses live in [`crate::engine::loss`].

/// The four measures of one image against its clean original, or their means over a set.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Quality {
    /// Binary cross-entropy, predictions clamped to `[1e-7, 1 − 1e-7]` as Keras does.
    pub bce: f64,
    /// Mean squared error.
    pub mse: f64,
    /// Peak signal-to-noise ratio in dB: `10·log₁₀(1 / MSE)`.
    pub psnr: f64,
    /// Structural similarity, in `[−1, 1]`.
    pub ssim: f64,
}

impl Quality {
    /// The measures of `image` against `clean`, both `rows × cols`.
    pub fn of(image: &[f32], clean: &[f32], (rows, cols): (usize, usize)) -> Quality {
        let mse = mse(image, clean);
        Quality { bce: bce(image, clean), mse, psnr: psnr(mse), ssim: ssim(image, clean, (rows, cols)) }
    }

    /// The mean of each measure over `qualities`.
    pub fn mean(qualities: &[Quality]) -> Quality {
        let n = qualities.len() as f64;
        let sum = |f: fn(&Quality) -> f64| qualities.iter().map(f).sum::<f64>() / n;
        Quality { bce: sum(|q| q.bce), mse: sum(|q| q.mse), psnr: sum(|q| q.psnr), ssim: sum(|q| q.ssim) }
    }
}

/// `mean((a − b)²)`.
pub fn mse(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(&a, &b)| (f64::from(a) - f64::from(b)).powi(2)).sum::<f64>() / a.len() as f64
}

/// `mean(−y·ln p − (1 − y)·ln(1 − p))` with `p` clamped to `[1e-7, 1 − 1e-7]`.
pub fn bce(p: &[f32], y: &[f32]) -> f64 {
    const EPS: f64 = 1e-7;
    let entry = |p: f64, y: f64| {
        let p = p.clamp(EPS, 1.0 - EPS);
        -y * p.ln() - (1.0 - y) * (1.0 - p).ln()
    };
    p.iter().zip(y).map(|(&p, &y)| entry(f64::from(p), f64::from(y))).sum::<f64>() / p.len() as f64
}

/// PSNR in dB for data range 1, from the mean squared error. An error below 1e-10 counts as
/// 1e-10, 100 dB: one image reproduced exactly cannot make a mean over images infinite.
///
/// ```
/// use dae::eval::quality::{mse, psnr};
/// let clean = [0.0f32, 1.0, 0.5, 0.5];
/// let noisy = [0.1f32, 0.9, 0.6, 0.4];
/// assert!((psnr(mse(&noisy, &clean)) - 20.0).abs() < 1e-4); // an error of 0.1 everywhere
/// ```
pub fn psnr(mse: f64) -> f64 {
    10.0 * (1.0 / mse.max(1e-10)).log10()
}

/// Side of the square window SSIM averages over.
const WINDOW: usize = 7;

/// SSIM (Wang et al., 2004) as scikit-image computes it by default: 7×7 uniform windows, sample
/// (co)variances, `C₁ = (0.01)²`, `C₂ = (0.03)²`, the mean over every window that lies inside
/// the image:
///
/// `SSIM = (2μₐμ_b + C₁)(2σ_ab + C₂) / ((μₐ² + μ_b² + C₁)(σₐ² + σ_b² + C₂))`.
///
/// Images narrower than 7 pixels use one window as wide as they are; for a single pixel, where
/// a variance is undefined, the result is NaN.
pub fn ssim(a: &[f32], b: &[f32], (rows, cols): (usize, usize)) -> f64 {
    let window = WINDOW.min(rows).min(cols);
    if window < 2 {
        return f64::NAN;
    }
    let (c1, c2) = (0.01f64.powi(2), 0.03f64.powi(2));
    let n = (window * window) as f64;
    let at = |img: &[f32], y: usize, x: usize| f64::from(img[y * cols + x]);
    let mut total = 0.0;
    for top in 0..=rows - window {
        for left in 0..=cols - window {
            let [mut sa, mut sb, mut saa, mut sbb, mut sab] = [0.0f64; 5];
            for y in top..top + window {
                for x in left..left + window {
                    let (p, q) = (at(a, y, x), at(b, y, x));
                    (sa, sb, saa, sbb, sab) = (sa + p, sb + q, saa + p * p, sbb + q * q, sab + p * q);
                }
            }
            let (mu_a, mu_b) = (sa / n, sb / n);
            let sample = n / (n - 1.0);
            let var_a = sample * (saa / n - mu_a * mu_a);
            let var_b = sample * (sbb / n - mu_b * mu_b);
            let cov = sample * (sab / n - mu_a * mu_b);
            total += (2.0 * mu_a * mu_b + c1) * (2.0 * cov + c2)
                / ((mu_a * mu_a + mu_b * mu_b + c1) * (var_a + var_b + c2));
        }
    }
    total / ((rows - window + 1) * (cols - window + 1)) as f64
}
