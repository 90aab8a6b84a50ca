//! Files a run reads and writes: model and state files ([`checkpoint`]), `metrics.json`
//! ([`metrics`]), PNG images ([`pngio`]), the figure of reconstructions ([`figure`]) and the loss
//! curve ([`plot`]); the atomic write every file goes through and what a stopped writer leaves
//! ([`atomic`]), the lock that gives a run folder to one run ([`run_lock`]), and reading only
//! regular files ([`regular`]).

pub mod atomic;
pub mod checkpoint;
pub mod figure;
pub mod metrics;
pub mod plot;
pub mod pngio;
pub mod regular;
pub mod run_lock;
