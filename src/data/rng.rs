//! One seed, many independent random streams, each fixed by name.
//!
//! Initial weights and the shuffling come from a ChaCha8 generator keyed by `(seed, purpose)`
//! and set to stream `index` (an epoch); corruption comes from Philox4x32-10 at a counter made of
//! the same purpose and the image ([`crate::data::noise`]). Both are named algorithms, so a seed means
//! the same numbers in every release, and a stream depends on nothing but its key and index —
//! not on the thread that draws it, nor on what was drawn before.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// What a stream of random numbers is for; each purpose gets its own key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Initial weights.
    Init = 1,
    /// The order of training images; indexed by epoch.
    Shuffle = 2,
    /// Corruption of training images (by Philox; indexed by image and, with fresh noise, epoch).
    TrainNoise = 3,
    /// Corruption of test images (by Philox; indexed by image).
    TestNoise = 4,
}

/// The generator for `(seed, purpose)` positioned at the start of stream `index`.
pub fn stream(seed: u64, purpose: Purpose, index: u64) -> ChaCha8Rng {
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&seed.to_le_bytes());
    key[8..16].copy_from_slice(&(purpose as u64).to_le_bytes());
    let mut rng = ChaCha8Rng::from_seed(key);
    rng.set_stream(index);
    rng
}
