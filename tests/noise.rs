//! Corruption: the notebook's Gaussian noise, masking and salt-and-pepper, each fixed per image
//! by the seed and independent of how images are batched.

use dae::data::mnist::Images;
use dae::data::noise::{Noise, corrupt_batch};
use dae::data::philox::philox4x32_10;
use dae::data::rng::Purpose;
use dae::engine::fastmath::{ln_positive, sin_cos_2pi};
use ndarray::Array2;

/// 50 images of 20×20 pixels with every gray level present.
fn images() -> Images {
    let pixels = (0..50 * 400).map(|i| (i * 31 % 256) as u8).collect();
    Images { count: 50, rows: 20, cols: 20, pixels }
}

fn corrupt(noise: Noise, indices: &[u32], seed: u64) -> (Array2<f32>, Array2<f32>) {
    let mut clean = Array2::zeros((indices.len(), 400));
    let mut noisy = Array2::zeros((indices.len(), 400));
    corrupt_batch(
        noise,
        &images(),
        indices,
        (seed, Purpose::TrainNoise, 0),
        clean.view_mut(),
        noisy.view_mut(),
    );
    (clean, noisy)
}

#[test]
fn gaussian_noise_is_clipped_and_has_the_right_spread() {
    let all: Vec<u32> = (0..50).collect();
    let (clean, noisy) = corrupt(Noise::Gaussian(0.5), &all, 1);
    let images = images();
    for (c, &p) in clean.iter().zip(&images.pixels) {
        assert_eq!(*c, f32::from(p) / 255.0);
    }
    assert!(noisy.iter().all(|v| (0.0..=1.0).contains(v)));
    // Where x is mid-gray, clipping rarely bites: x̃ − x is close to N(0, 0.5²) there.
    let diffs: Vec<f64> = clean
        .iter()
        .zip(noisy.iter())
        .filter(|(c, _)| (0.45..0.55).contains(*c))
        .map(|(c, n)| f64::from(n - c))
        .collect();
    let mean = diffs.iter().sum::<f64>() / diffs.len() as f64;
    assert!(diffs.len() > 2000 && mean.abs() < 0.03, "n {} mean {mean}", diffs.len());
    // σ from the median of |x̃ − x|, which is 0.6745·σ for N(0, σ²): clipping moves only
    // differences beyond 0.45, far above the median, so it leaves the median be. Over some 2,000
    // pixels its error is about 2%: the bar of 6% tells 0.5 from 0.45 or 0.55.
    let mut size: Vec<f64> = diffs.iter().map(|d| d.abs()).collect();
    size.sort_by(f64::total_cmp);
    let sigma = size[size.len() / 2] / 0.6745;
    assert!((sigma - 0.5).abs() < 0.03, "σ estimated {sigma}");
}

/// A `σ` so small that a black pixel's noise would be a subnormal number (which would slow every
/// product that reads it) leaves it black; one a little larger still corrupts it.
#[test]
fn noise_too_small_for_a_normal_number_leaves_a_black_pixel_black() {
    let all: Vec<u32> = (0..50).collect();
    let black = |clean: &Array2<f32>| clean.iter().map(|&c| c == 0.0).collect::<Vec<_>>();
    let (clean, noisy) = corrupt(Noise::Gaussian(1e-39), &all, 1);
    let on_black: Vec<f32> = noisy.iter().zip(black(&clean)).filter(|(_, b)| *b).map(|(&v, _)| v).collect();
    assert!(on_black.len() > 50 && on_black.iter().all(|&v| v == 0.0));
    let (_, noisy) = corrupt(Noise::Gaussian(1e-20), &all, 1);
    let on_black = noisy.iter().zip(black(&clean)).filter(|(_, b)| *b).map(|(&v, _)| v);
    let positive: Vec<f32> = on_black.filter(|&v| v > 0.0).collect();
    assert!(positive.len() > 20 && positive.iter().all(|v| v.is_normal()), "{positive:?}");
}

/// Every pixel's noise, to the last bit, is the Box–Muller transform of its own two Philox words,
/// computed here one pair at a time: pixels `2q, 2q + 1` of image `i` take words `2q mod 4` and
/// `(2q + 1) mod 4` of the block at counter `(2q / 4, i, purpose, 0)`, however many pixels the
/// engine handles a pass: 64 with AVX-512, 32 with AVX2 (CI runs this file on every path the CPU
/// has, `DAE_KERNEL`).
#[test]
fn each_pixels_noise_is_box_muller_on_its_own_philox_words() {
    let (seed, image, std) = (0x1234_5678_9abc_def0u64, 13u32, 0.5f32);
    let (clean, noisy) = corrupt(Noise::Gaussian(std), &[image], seed);
    let key = [seed as u32, (seed >> 32) as u32];
    let unit = |w: u32| (w >> 8) as f32 * (1.0 / 16_777_216.0);
    for q in 0..200 {
        let words = philox4x32_10([q / 2, image, Purpose::TrainNoise as u32, 0], key);
        let (u, v) = (words[(2 * q % 4) as usize], words[(2 * q % 4 + 1) as usize]);
        let radius = (-2.0 * ln_positive(1.0 - unit(u))).sqrt();
        let (sin, cos) = sin_cos_2pi(unit(v));
        for (p, normal) in [(2 * q as usize, radius * cos), (2 * q as usize + 1, radius * sin)] {
            let want = (clean[[0, p]] + std * normal).clamp(0.0, 1.0);
            assert_eq!(noisy[[0, p]].to_bits(), want.to_bits(), "pixel {p}");
        }
    }
}

#[test]
fn an_images_corruption_depends_only_on_seed_and_index() {
    let (_, batch) = corrupt(Noise::Gaussian(0.5), &[7, 3, 41], 9);
    let (_, alone) = corrupt(Noise::Gaussian(0.5), &[3], 9);
    assert_eq!(batch.row(1), alone.row(0));
    let (_, other_seed) = corrupt(Noise::Gaussian(0.5), &[3], 10);
    assert_ne!(alone, other_seed);
}

#[test]
fn masking_and_salt_pepper_hit_the_requested_fraction() {
    let all: Vec<u32> = (0..50).collect();
    let (clean, masked) = corrupt(Noise::Masking(0.3), &all, 2);
    let changed = clean.iter().zip(masked.iter()).filter(|(c, m)| c != m).count();
    assert!(masked.iter().zip(clean.iter()).all(|(m, c)| *m == 0.0 || m == c));
    let nonzero = clean.iter().filter(|&&c| c != 0.0).count();
    let fraction = changed as f64 / nonzero as f64;
    assert!((0.28..0.32).contains(&fraction), "masked {fraction}");

    let (clean, sp) = corrupt(Noise::SaltPepper(0.2), &all, 3);
    let salt = sp.iter().zip(clean.iter()).filter(|(s, c)| **s == 1.0 && **c != 1.0).count() as f64;
    let pepper = sp.iter().zip(clean.iter()).filter(|(s, c)| **s == 0.0 && **c != 0.0).count() as f64;
    let n = clean.len() as f64;
    assert!((0.09..0.11).contains(&(salt / n)) && (0.09..0.11).contains(&(pepper / n)), "{salt} {pepper}");
}

#[test]
fn noise_specs_parse_or_say_what_is_accepted() {
    assert_eq!("gaussian:0.5".parse(), Ok(Noise::Gaussian(0.5)));
    assert_eq!("masking:0.3".parse(), Ok(Noise::Masking(0.3)));
    assert_eq!("salt-pepper:0.2".parse(), Ok(Noise::SaltPepper(0.2)));
    assert_eq!(Noise::SaltPepper(0.2).to_string(), "salt-pepper:0.2");
    for bad in ["gaussian", "blur:0.5", "masking:1.5", "gaussian:-1", "gaussian:NaN", "masking:x"] {
        let err = bad.parse::<Noise>().unwrap_err();
        assert!(err.contains("expected gaussian:STD, masking:P or salt-pepper:P"), "{bad}: {err}");
    }
}

/// The Random123 known-answer vectors for Philox4x32-10 (`tests/kat_vectors` of the Random123
/// distribution): counter, key, expected output.
#[test]
fn philox_matches_the_random123_known_answers() {
    use dae::data::philox::philox4x32_10;
    assert_eq!(philox4x32_10([0; 4], [0; 2]), [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]);
    assert_eq!(philox4x32_10([u32::MAX; 4], [u32::MAX; 2]), [0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd]);
    assert_eq!(
        philox4x32_10([0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344], [0xa4093822, 0x299f31d0]),
        [0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1]
    );
}

/// Box–Muller over Philox gives standard normal numbers: mean, variance, and the share within
/// one and two standard deviations, over 200,000 draws (each bound is several standard errors
/// wide).
#[test]
fn gaussian_draws_have_the_moments_of_a_standard_normal() {
    let images = Images { count: 1, rows: 1, cols: 200_000, pixels: vec![128; 200_000] };
    let (mut clean, mut noisy) = (Array2::zeros((1, 200_000)), Array2::zeros((1, 200_000)));
    // A tiny σ keeps every draw inside [0, 1], so (x̃ − x)/σ is the normal number itself.
    let sigma = 0.05;
    corrupt_batch(
        Noise::Gaussian(sigma),
        &images,
        &[0],
        (4, Purpose::TrainNoise, 0),
        clean.view_mut(),
        noisy.view_mut(),
    );
    let z: Vec<f64> = noisy.iter().zip(clean.iter()).map(|(n, c)| f64::from((n - c) / sigma)).collect();
    let n = z.len() as f64;
    let mean = z.iter().sum::<f64>() / n;
    let var = z.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
    let within = |k: f64| z.iter().filter(|v| v.abs() < k).count() as f64 / n;
    println!("mean {mean:.4} var {var:.4} P(<1) {:.4} P(<2) {:.4}", within(1.0), within(2.0));
    assert!(mean.abs() < 0.01 && (var - 1.0).abs() < 0.015, "mean {mean}, variance {var}");
    assert!((within(1.0) - 0.6827).abs() < 0.005 && (within(2.0) - 0.9545).abs() < 0.003);
}
