//! Files a run reads and writes: model and state files ([`checkpoint`]), `metrics.json` and the
//! atomic write every file goes through ([`output`]), PNG images ([`pngio`]), the figure of
//! reconstructions ([`figure`]) and the loss curve ([`plot`]).

pub mod checkpoint;
pub mod figure;
pub mod output;
pub mod plot;
pub mod pngio;
