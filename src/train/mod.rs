//! Training: the loop that shuffles, corrupts, steps and validates ([`trainer`]), the clock
//! that times its phases ([`profile`]), and the watch on units that stopped firing
//! ([`dead_units`]).

pub mod dead_units;
pub mod memory;
pub mod profile;
pub mod trainer;

pub use trainer::{Arch, Config, Engine, EpochStats, Progress, TrainError, Trainer, train_step};
