//! Training: the loop that shuffles, corrupts, steps and validates ([`trainer`]), the clock
//! that times its phases ([`profile`]), the watch on units that stopped firing
//! ([`dead_units`]), and what a run needs in memory, counted before it starts ([`memory`]).

pub mod dead_units;
pub mod memory;
pub mod profile;
pub mod trainer;

pub use trainer::{Arch, Config, Engine, EpochStats, Progress, TrainError, Trainer, train_step};
