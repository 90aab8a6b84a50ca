//! `--profile`'s report: phases, the products' rate, and a warning when the calibration cannot
//! be trusted (the products ran faster in training than the kernel alone, so the machine was
//! busier while it was measured).

use dae::engine::model::Model;
use dae::train::profile::{Phase, Profile};
use rand::SeedableRng;
use std::time::Duration;

#[test]
fn the_report_shows_every_phase_and_warns_when_the_share_exceeds_the_kernel() {
    let model = Model::autoencoder(784, &[128, 64, 32], &mut rand_chacha::ChaCha8Rng::seed_from_u64(0));
    let mut profile = Profile::default();
    profile.add(Phase::Forward, Duration::from_millis(300));
    profile.add(Phase::Backward, Duration::from_millis(700));
    profile.images = 60_000;
    // 1,126,400 FLOP per image × 60,000 images in 1 s: 67.6 GFLOP/s.
    let calm = profile.report(&model, 100.0).to_string();
    assert!(calm.contains("67.6 GFLOP/s") && calm.contains("68% of sgemm's 100.0 GFLOP/s"), "{calm}");
    assert!(!calm.contains("unreliable"), "{calm}");
    let busy = profile.report(&model, 50.0).to_string();
    assert!(busy.contains("135% of sgemm's") && busy.contains("the share is unreliable"), "{busy}");
}
