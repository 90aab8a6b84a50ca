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
    profile.add(Phase::Passes, Duration::from_millis(300));
    profile.add(Phase::Update, Duration::from_millis(700));
    profile.images = 60_000;
    // 1,126,400 FLOP per image × 60,000 images in 1 s: 67.6 GFLOP/s.
    let calm = profile.report(&model, 100.0).to_string();
    assert!(calm.contains("67.6 GFLOP/s") && calm.contains("68% of the kernel's 100.0 GFLOP/s"), "{calm}");
    assert!(!calm.contains("unreliable"), "{calm}");
    // The floor: 67.6 GFLOP of training products and 4.4 of validation's forward products, at
    // 100 GFLOP/s 0.720 s; an epoch of 1.08 s is 1.50 times it.
    let epoch = |epoch, seconds| dae::train::EpochStats {
        epoch,
        train_loss: 0.2,
        val_loss: 0.2,
        seconds,
        from_step: 0,
    };
    // Median 1.08 s: the epoch resumed at step 100, which timed only its part, is left out.
    let resumed = dae::train::EpochStats { from_step: 100, ..epoch(4, 0.1) };
    let history = [epoch(1, 1.2), epoch(2, 0.9), epoch(3, 1.08), resumed];
    let floor = dae::train::profile::Floor::of(&model, 60_000, 10_000, &history);
    let with_floor = profile.report(&model, 100.0).with_floor(floor).to_string();
    let expected = "an epoch's products: 72.0 GFLOP (67.6 training, 4.4 validation); at the kernel's rate they \
                    need 0.720 s, and the median epoch, 1.080 s, is 1.50× that floor";
    assert!(with_floor.contains(expected), "{with_floor}");
    // A run whose only epoch was resumed part way has no median to set beside the floor.
    let floor = dae::train::profile::Floor::of(&model, 60_000, 10_000, &[resumed]);
    let partial = profile.report(&model, 100.0).with_floor(floor).to_string();
    assert!(partial.contains("need 0.720 s, and no whole epoch was trained"), "{partial}");
    let busy = profile.report(&model, 50.0).to_string();
    assert!(busy.contains("135% of the kernel's") && busy.contains("the share is unreliable"), "{busy}");
}
