//! Training: the loop that shuffles, corrupts, steps and validates ([`trainer`]), and the clock
//! that times its phases ([`profile`]).

pub mod profile;
pub mod trainer;

pub use trainer::{Arch, Config, EpochStats, Progress, TrainError, Trainer, train_step};
