//! Small generated data sets, so that tests need neither the network nor real MNIST.

#![allow(dead_code)] // each test binary uses its own part of this module

use dae::data::mnist::{Images, Mnist, Split};
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
                pixels.push(if on { rng.random_range(230..=255) } else { rng.random_range(0..8) });
            }
        }
        labels.push(u8::from(vertical));
    }
    Split { images: Images { count, rows: side, cols: side, pixels }, labels }
}

/// A data set of bars: `train` training images and `test` test images of 8×8 pixels.
pub fn bars_dataset(train: usize, test: usize) -> Mnist {
    bars_dataset_of_side(train, 8, test)
}

/// A data set of bars of `side × side` pixels.
pub fn bars_dataset_of_side(train: usize, side: usize, test: usize) -> Mnist {
    Mnist { train: bars(train, side, 1), test: bars(test, side, 2) }
}

/// The bytes of a gzipped IDX file of `u8` with dimensions `dims`.
pub fn idx_gz(dims: &[u32], body: &[u8]) -> Vec<u8> {
    let mut bytes = vec![0, 0, 0x08, dims.len() as u8];
    dims.iter().for_each(|d| bytes.extend(d.to_be_bytes()));
    bytes.extend(body);
    gzip(&bytes)
}

/// `bytes`, gzipped.
pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

/// Writes `data` into `dir` under MNIST's four file names, as `data-fetch.sh` leaves them.
pub fn write_dataset(dir: &std::path::Path, data: &Mnist) {
    for (split, images, labels) in [
        (&data.train, "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
        (&data.test, "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
    ] {
        let i = &split.images;
        let dims = [i.count as u32, i.rows as u32, i.cols as u32];
        std::fs::write(dir.join(images), idx_gz(&dims, &i.pixels)).unwrap();
        std::fs::write(dir.join(labels), idx_gz(&[split.labels.len() as u32], &split.labels)).unwrap();
    }
}
