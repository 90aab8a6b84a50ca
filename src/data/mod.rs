//! The data: MNIST-format files read by our own IDX parser, the data set in memory, and its
//! corruption by noise, with the seeded random streams that drive it.

pub mod idx;
pub mod mnist;
pub mod noise;
pub mod philox;
pub mod rng;
