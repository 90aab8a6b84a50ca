//! What both benchmarks share: random inputs, timing on a thread of the pool, a whole training
//! step, criterion's settings.

use criterion::{Bencher, Criterion, Throughput};
use dae::engine::adam::Adam;
use dae::engine::aligned;
use dae::engine::loss::Loss;
use dae::engine::model::{Model, Workspace};
use dae::train::profile::Profile;
use dae::train::train_step;
use ndarray::Array2;
use ndarray_rand::RandomExt;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::Uniform;
use std::hint::black_box;
use std::time::{Duration, Instant};

/// Uniform random entries in `[0, 1)` of the given shape.
pub fn random(shape: (usize, usize)) -> Array2<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    // On a cache line's start, as the engine's own buffers are (`dae::engine::aligned`).
    aligned::copy_of(&Array2::random_using(shape, Uniform::new(0.0, 1.0).unwrap(), &mut rng))
}

/// Times `routine` with the timing loop on a thread of the rayon pool, as the binary runs
/// training: a parallel loop started from outside the pool costs about 20 µs more to start.
pub fn in_pool(b: &mut Bencher, mut routine: impl FnMut() + Send) {
    b.iter_custom(|iters| {
        rayon::scope(|_| {
            let start = Instant::now();
            for _ in 0..iters {
                routine();
            }
            start.elapsed()
        })
    })
}

/// Criterion with a short warm-up, `seconds` of measurement and `samples` samples.
pub fn config(seconds: u64, samples: usize) -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(seconds))
        .sample_size(samples)
}

/// A whole training step of `model` on a batch of 256 random images (forward, BCE, backward,
/// Adam), as the group `name`; the rate is in images per second.
pub fn bench_training_step(c: &mut Criterion, name: &str, mut model: Model) {
    const BATCH: usize = 256;
    let mut adam = Adam::new(1e-3, model.param_sizes());
    let mut ws = Workspace::for_training(&model, BATCH);
    let mut profile = Profile::default();
    let d = model.widths()[0];
    let (input, target) = (random((BATCH, d)), random((BATCH, d)));
    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function(format!("batch256_{}threads", rayon::current_num_threads()), |b| {
        in_pool(b, || {
            let step = train_step(
                &mut model,
                &mut adam,
                Loss::Bce,
                input.view(),
                target.view(),
                &mut ws,
                &mut profile,
            );
            black_box(step);
        })
    });
    group.finish();
}
