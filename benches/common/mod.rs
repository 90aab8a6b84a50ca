//! What both benchmarks share: random inputs, timing on a thread of the pool, criterion's
//! settings.

use criterion::{Bencher, Criterion};
use ndarray::Array2;
use ndarray_rand::RandomExt;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::Uniform;
use std::time::{Duration, Instant};

/// Uniform random entries in `[0, 1)` of the given shape.
pub fn random(shape: (usize, usize)) -> Array2<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    Array2::random_using(shape, Uniform::new(0.0, 1.0).unwrap(), &mut rng)
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
