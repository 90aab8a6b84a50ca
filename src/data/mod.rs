//! The data: MNIST-format files read by our own IDX parser, the data set in memory, and its
//! corruption by noise, with the seeded random streams that drive it; and a digit of the
//! user's, made into an image like the data set's.

pub mod digit;
pub mod idx;
pub mod mnist;
pub mod noise;
pub mod philox;
pub mod rng;
