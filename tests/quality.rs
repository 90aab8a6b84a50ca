//! The evaluation measures against values worked out independently, and k-NN on sets whose
//! answers are known.

use dae::eval::knn;
use dae::eval::quality::{Quality, bce, mse, psnr, ssim};
use ndarray::{Array2, array};

#[test]
fn mse_psnr_and_bce_of_known_images() {
    let clean = [0.0f32, 0.5, 1.0, 0.25];
    let image = [0.1f32, 0.5, 0.8, 0.25];
    // (0.01 + 0 + 0.04 + 0) / 4
    assert!((mse(&image, &clean) - 0.0125).abs() < 1e-7, "{}", mse(&image, &clean));
    // 10·log₁₀(1 / 0.0125) = 19.0309 dB
    assert!((psnr(0.0125) - 19.030_899_869_919_43).abs() < 1e-9);
    assert_eq!((psnr(0.0), psnr(1e-12)), (100.0, 100.0), "an exact image counts as 100 dB");
    // −[ln 0.9 + 0.5 ln 0.5·2 + ln 0.8 + (0.25 ln 0.25 + 0.75 ln 0.75)] / 4
    let expected =
        -((0.9f64).ln() + (0.5f64).ln() + (0.8f64).ln() + 0.25 * (0.25f64).ln() + 0.75 * (0.75f64).ln())
            / 4.0;
    assert!((bce(&image, &clean) - expected).abs() < 1e-7, "{} vs {expected}", bce(&image, &clean));
    // Exact 0 and 1 predictions are clamped, not infinite.
    assert!((bce(&[0.0], &[1.0]) - (1e7f64).ln()).abs() < 1e-6);
}

/// Expected values from scikit-image 0.26, `structural_similarity(…, data_range=1.0)` with its
/// defaults (7×7 uniform window, sample covariance), on the images built the same way:
///
/// ```python
/// import numpy as np; from skimage.metrics import structural_similarity as ssim
/// y, x = np.mgrid[0:10, 0:12]
/// a = ((x * 7 + y * 3) % 11) / 10.0
/// b = np.clip(a + ((x * y) % 5) / 20.0 - 0.1, 0, 1)
/// print(repr(ssim(b, a, data_range=1.0)), repr(ssim(1 - a, a, data_range=1.0)))
/// # 0.9751090248165507 -0.9904319157431861
/// ```
#[test]
fn ssim_matches_scikit_image() {
    let (rows, cols) = (10, 12);
    let a: Vec<f32> =
        (0..rows * cols).map(|i| (((i % cols) * 7 + (i / cols) * 3) % 11) as f32 / 10.0).collect();
    assert!((ssim(&a, &a, (rows, cols)) - 1.0).abs() < 1e-12);
    let b: Vec<f32> = a
        .iter()
        .enumerate()
        .map(|(i, &v)| (v + (((i % cols) * (i / cols)) % 5) as f32 / 20.0 - 0.1).clamp(0.0, 1.0))
        .collect();
    let s = ssim(&b, &a, (rows, cols));
    assert!((s - 0.975_109_024_816_550_7).abs() < 1e-6, "{s}");
    assert!((s - ssim(&a, &b, (rows, cols))).abs() < 1e-12, "symmetric");
    let inverted: Vec<f32> = a.iter().map(|v| 1.0 - v).collect();
    let s = ssim(&inverted, &a, (rows, cols));
    assert!((s + 0.990_431_915_743_186_1).abs() < 1e-6, "{s}");
}

#[test]
fn quality_means_each_measure() {
    let q = [
        Quality { bce: 1.0, mse: 0.1, psnr: 10.0, ssim: 0.5 },
        Quality { bce: 3.0, mse: 0.3, psnr: 20.0, ssim: 0.7 },
    ];
    let m = Quality::mean(&q);
    assert!((m.bce - 2.0).abs() < 1e-12 && (m.mse - 0.2).abs() < 1e-12);
    assert!((m.psnr - 15.0).abs() < 1e-12 && (m.ssim - 0.6).abs() < 1e-12);
}

#[test]
fn knn_votes_the_majority_of_the_k_nearest() {
    // Two clusters on a line: label 0 around 0, label 1 around 10, and one stray 1 near 0.
    let reference = array![[0.0f32], [0.5], [1.0], [1.2], [9.0], [10.0], [11.0]];
    let labels = [0u8, 0, 0, 1, 1, 1, 1];
    let queries = array![[0.2f32], [1.1], [9.5], [5.4]];
    // k = 1: 0.2 → 0; 1.1 → 1.0 or 1.2, both 0.1 away: the lower index (label 0) wins;
    // 9.5 → 9.0 or 10.0, tie → index 4 (label 1); 5.4 → 1.2 (label 1).
    assert_eq!(knn::accuracy(reference.view(), &labels, queries.view(), &[0, 0, 1, 1], 1), 1.0);
    // k = 3: 1.1 → {1.0, 1.2, 0.5} = 0, 1, 0 → 0; 5.4 → {1.2, 1.0, 9.0} = 1, 0, 1 → 1.
    assert_eq!(knn::accuracy(reference.view(), &labels, queries.view(), &[0, 0, 1, 1], 3), 1.0);
    // k = 7: every query sees four 1s and three 0s.
    assert_eq!(knn::accuracy(reference.view(), &labels, queries.view(), &[0, 0, 1, 1], 7), 0.5);
}

#[test]
fn knn_on_more_queries_than_one_block() {
    // 600 queries (five blocks of 128): points on two far-apart lines.
    let reference =
        Array2::from_shape_fn((40, 3), |(i, j)| if i % 2 == 0 { j as f32 } else { 100.0 + j as f32 });
    let labels: Vec<u8> = (0..40).map(|i| (i % 2) as u8).collect();
    let queries = Array2::from_shape_fn((600, 3), |(i, j)| if i % 3 == 0 { 99.0 + j as f32 } else { 1.0 });
    let truth: Vec<u8> = (0..600).map(|i| u8::from(i % 3 == 0)).collect();
    assert_eq!(knn::accuracy(reference.view(), &labels, queries.view(), &truth, 5), 1.0);
    let wrong: Vec<u8> = truth.iter().map(|l| 1 - l).collect();
    assert_eq!(knn::accuracy(reference.view(), &labels, queries.view(), &wrong, 5), 0.0);
}

/// The reference set fed a block at a time finds the neighbours the whole set does, ties
/// included: every query's vote is the same, so the accuracy is, for any labelling.
#[test]
fn knn_on_the_reference_set_in_blocks_is_knn_on_it_whole() {
    // Integer coordinates, so that many distances tie; 300 queries, 97 references.
    let reference = Array2::from_shape_fn((97, 4), |(i, j)| ((i * 7 + j * 3) % 5) as f32);
    let queries = Array2::from_shape_fn((300, 4), |(i, j)| ((i * 5 + j * 11) % 6) as f32);
    for seed in 0..4u8 {
        let labels: Vec<u8> = (0..97).map(|i| ((i as u8).wrapping_mul(31) ^ seed) % 3).collect();
        let truth: Vec<u8> = (0..300).map(|i| ((i as u8).wrapping_mul(17) ^ seed) % 3).collect();
        let whole = knn::accuracy(reference.view(), &labels, queries.view(), &truth, 5);
        for block in [1, 10, 32, 96] {
            let mut neighbours = knn::Neighbours::new(queries.nrows(), 5);
            for first in (0..97).step_by(block) {
                let rows = reference.slice(ndarray::s![first..(first + block).min(97), ..]);
                neighbours.add(queries.view(), rows, first);
            }
            assert_eq!(neighbours.accuracy(&labels, &truth), whole, "blocks of {block}, labels {seed}");
        }
        assert!(whole > 0.0 && whole < 1.0, "a labelling that tells something: {whole}");
    }
}

/// Against a search by brute force in integers, on sizes that leave every piece ragged: 300
/// queries (blocks of 128, 128 and 44, shared by the threads) and 301 references (pieces of 128,
/// 128 and 45), whose integer coordinates tie many distances. The same vote for every query,
/// so the same accuracy, for several labellings and k.
#[test]
fn knn_is_the_brute_force_search() {
    let reference = Array2::from_shape_fn((301, 5), |(i, j)| ((i * 7 + j * 3 + i / 11) % 6) as f32);
    let queries = Array2::from_shape_fn((300, 5), |(i, j)| ((i * 5 + j * 11 + i / 7) % 7) as f32);
    let distance = |q: usize, r: usize| -> i64 {
        let d = |j| (queries[[q, j]] - reference[[r, j]]) as i64;
        (0..5).map(|j| d(j) * d(j)).sum()
    };
    for (seed, k) in [(0u8, 1), (1, 5), (2, 5), (3, 12)] {
        let labels: Vec<u8> = (0..301).map(|i| ((i as u8).wrapping_mul(31) ^ seed) % 4).collect();
        let truth: Vec<u8> = (0..300).map(|i| ((i as u8).wrapping_mul(17) ^ seed) % 4).collect();
        let correct = (0..300).filter(|&q| {
            let mut order: Vec<usize> = (0..301).collect();
            order.sort_by_key(|&r| (distance(q, r), r));
            let mut counts = [0; 4];
            order[..k].iter().for_each(|&r| counts[labels[r] as usize] += 1);
            let most = *counts.iter().max().unwrap();
            let vote = order[..k].iter().map(|&r| labels[r]).find(|&l| counts[l as usize] == most);
            vote == Some(truth[q])
        });
        let expected = correct.count() as f64 / 300.0;
        let found = knn::accuracy(reference.view(), &labels, queries.view(), &truth, k);
        assert_eq!(found, expected, "labels {seed}, k = {k}");
        assert!(expected > 0.1 && expected < 0.9, "a labelling that tells something: {expected}");
    } // Every query's own nearest, not only a count: the first 200 references each labelled
    // apart, and each query's truth the brute-force nearest's label (ties to the lower index).
    let first = reference.slice(ndarray::s![..200, ..]);
    let labels: Vec<u8> = (0..200).map(|i| i as u8).collect();
    let nearest: Vec<u8> =
        (0..300).map(|q| (0..200).min_by_key(|&r| (distance(q, r), r)).unwrap() as u8).collect();
    assert_eq!(knn::accuracy(first, &labels, queries.view(), &nearest, 1), 1.0);
}

#[test]
fn ssim_of_small_images_uses_one_window_as_wide_as_the_image() {
    let a = [0.1f32, 0.9, 0.4, 0.6];
    assert!((ssim(&a, &a, (2, 2)) - 1.0).abs() < 1e-12);
    let b = [0.9f32, 0.1, 0.6, 0.4];
    assert!(ssim(&b, &a, (2, 2)) < 0.0);
    assert!(ssim(&[0.5], &[0.5], (1, 1)).is_nan(), "undefined for one pixel");
}
