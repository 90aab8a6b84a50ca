//! Small generated data sets, so that tests need neither the network nor real MNIST.

#![allow(dead_code)] // each test binary uses its own part of this module

use dae::mnist::{Images, Mnist, Split};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// `count` images of `side × side` pixels: each a bright horizontal or vertical bar at a random
/// place on a faint random background, labelled 0 (horizontal) or 1 (vertical).
pub fn bars(count: usize, side: usize, seed: u64) -> Split {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut pixels = Vec::with_capacity(count * side * side);
    let mut labels = Vec::with_capacity(count);
    for _ in 0..count {
        let vertical = rng.random::<bool>();
        let at = rng.random_range(0..side);
        for y in 0..side {
            for x in 0..side {
                let on = if vertical { x == at } else { y == at };
                pixels.push(if on {
                    rng.random_range(230..=255)
                } else {
                    rng.random_range(0..8)
                });
            }
        }
        labels.push(u8::from(vertical));
    }
    Split {
        images: Images {
            count,
            rows: side,
            cols: side,
            pixels,
        },
        labels,
    }
}

/// A data set of bars: `train` training images and `test` test images of 8×8 pixels.
pub fn bars_dataset(train: usize, test: usize) -> Mnist {
    Mnist {
        train: bars(train, 8, 1),
        test: bars(test, 8, 2),
    }
}
