//! Corruption: the notebook's Gaussian noise, masking and salt-and-pepper, each fixed per image
//! by the seed and independent of how images are batched.

use dae::mnist::Images;
use dae::noise::{Noise, corrupt_batch};
use dae::rng::Purpose;
use ndarray::Array2;

/// 50 images of 20×20 pixels with every gray level present.
fn images() -> Images {
    let pixels = (0..50 * 400).map(|i| (i * 31 % 256) as u8).collect();
    Images {
        count: 50,
        rows: 20,
        cols: 20,
        pixels,
    }
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
    let within_half = diffs.iter().filter(|d| d.abs() < 0.45).count() as f64 / diffs.len() as f64;
    // P(|N(0, 0.5²)| < 0.45) = 0.632; clipping at ±0.45..0.55 moves a little mass inward.
    assert!(
        diffs.len() > 500 && mean.abs() < 0.03,
        "n {} mean {mean}",
        diffs.len()
    );
    assert!((0.6..0.7).contains(&within_half), "{within_half}");
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
    let changed = clean
        .iter()
        .zip(masked.iter())
        .filter(|(c, m)| c != m)
        .count();
    assert!(
        masked
            .iter()
            .zip(clean.iter())
            .all(|(m, c)| *m == 0.0 || m == c)
    );
    let nonzero = clean.iter().filter(|&&c| c != 0.0).count();
    let fraction = changed as f64 / nonzero as f64;
    assert!((0.28..0.32).contains(&fraction), "masked {fraction}");

    let (clean, sp) = corrupt(Noise::SaltPepper(0.2), &all, 3);
    let salt = sp
        .iter()
        .zip(clean.iter())
        .filter(|(s, c)| **s == 1.0 && **c != 1.0)
        .count() as f64;
    let pepper = sp
        .iter()
        .zip(clean.iter())
        .filter(|(s, c)| **s == 0.0 && **c != 0.0)
        .count() as f64;
    let n = clean.len() as f64;
    assert!(
        (0.09..0.11).contains(&(salt / n)) && (0.09..0.11).contains(&(pepper / n)),
        "{salt} {pepper}"
    );
}

#[test]
fn noise_specs_parse_or_say_what_is_accepted() {
    assert_eq!("gaussian:0.5".parse(), Ok(Noise::Gaussian(0.5)));
    assert_eq!("masking:0.3".parse(), Ok(Noise::Masking(0.3)));
    assert_eq!("salt-pepper:0.2".parse(), Ok(Noise::SaltPepper(0.2)));
    assert_eq!(Noise::SaltPepper(0.2).to_string(), "salt-pepper:0.2");
    for bad in [
        "gaussian",
        "blur:0.5",
        "masking:1.5",
        "gaussian:-1",
        "gaussian:NaN",
        "masking:x",
    ] {
        let err = bad.parse::<Noise>().unwrap_err();
        assert!(
            err.contains("expected gaussian:STD, masking:P or salt-pepper:P"),
            "{bad}: {err}"
        );
    }
}
