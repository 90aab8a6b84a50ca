//! `metrics.json`: a run's settings, the data it was trained on, and its history.

use std::io;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::files::atomic::write_atomic;
use crate::files::regular::read_regular;
use crate::train::{Config, Engine, EpochStats};

/// What identifies a data set: where it was read from, its shape, and a CRC-32 of every pixel
/// and label, so that a run resumed on other data is noticed whatever the folder is called.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataPrint {
    /// The `--data` folder, as a path from the root (as given, in files from before).
    pub path: String,
    /// Training and test images.
    pub images: [usize; 2],
    /// Rows and columns of an image.
    pub size: [usize; 2],
    /// CRC-32 of the training images, training labels, test images and test labels, in order.
    pub crc32: u32,
}

impl DataPrint {
    /// "60000+10000 images of 28×28, CRC-32 1a2b3c4d".
    pub fn describe(&self) -> String {
        let [train, test] = self.images;
        let [rows, cols] = self.size;
        format!("{train}+{test} images of {cols}×{rows}, CRC-32 {:08x}", self.crc32)
    }

    /// Whether `other` prints the same data, wherever it was read from.
    pub fn same_data(&self, other: &DataPrint) -> bool {
        (self.images, self.size, self.crc32) == (other.images, other.size, other.crc32)
    }

    /// The print of `data`, read from `path`.
    pub fn of(data: &crate::data::mnist::Mnist, path: &Path) -> DataPrint {
        let mut crc = flate2::Crc::new();
        for split in [&data.train, &data.test] {
            crc.update(&split.images.pixels);
            crc.update(&split.labels);
        }
        // Whole, so that it names the folder from wherever the run is reported on or resumed.
        let path = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
        DataPrint {
            path: path.display().to_string(),
            images: [data.train.images.count, data.test.images.count],
            size: [data.train.images.rows, data.train.images.cols],
            crc32: crc.sum(),
        }
    }
}

/// `metrics.json`: the settings and one entry per finished epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// The run's settings.
    pub config: Config,
    /// The data set it trains on (absent in files from before it was recorded).
    #[serde(default)]
    pub data: Option<DataPrint>,
    /// The threads of the latest session of the run.
    pub threads: usize,
    /// The engine of the latest session of the run (absent in files from before there was a
    /// choice, which were fast).
    #[serde(default)]
    pub engine: Engine,
    /// The run's name, which its state file carries too, so that one run's state is never
    /// resumed under another's history (absent in files from before runs were named).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<String>,
    /// One entry per finished epoch.
    pub history: Vec<EpochStats>,
    /// The dead ReLU units after each epoch (absent in files from before they were recorded).
    #[serde(default)]
    pub dead_units: Vec<DeadShares>,
}

/// After one epoch, the share of each ReLU layer's units that output 0 on every validation
/// image ([`crate::train::dead_units`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadShares {
    /// 1-based.
    pub epoch: usize,
    /// The watched layers' indices in the model, input first.
    pub layers: Vec<usize>,
    /// For each, the share of its units that never fired, in `[0, 1]`.
    pub shares: Vec<f64>,
}

/// A new run's name: 16 hexadecimal digits, drawn from the operating system's randomness (a name,
/// not a number any result depends on, so not from the run's seed: two runs of one seed are two
/// runs).
pub fn new_run_name() -> String {
    format!("{:016x}", rand::random::<u64>())
}

impl Metrics {
    /// Writes `metrics.json` at `path`, atomically; never a file [`Metrics::read`] would refuse
    /// (a NaN would be written as `null`).
    pub fn write(&self, path: &Path) -> io::Result<()> {
        self.check().map_err(io::Error::other)?;
        write_atomic(path, |w| {
            serde_json::to_writer_pretty(&mut *w, self)?;
            writeln!(w)
        })
    }

    /// Reads a `metrics.json`.
    pub fn read(path: &Path) -> io::Result<Metrics> {
        let bytes = read_regular(path, 64 << 20)?;
        let metrics: Metrics = serde_json::from_slice(&bytes).map_err(io::Error::other)?;
        metrics.check().map_err(io::Error::other)?;
        Ok(metrics)
    }

    /// Whether every number is one a run writes: no more epochs done than `config.epochs`,
    /// epochs 1, 2, … in order, losses and seconds finite and not negative, dead-unit records
    /// for epochs that ran, in order, each with one share in `[0, 1]` per layer it names. The
    /// first fault, in a line, if not.
    pub fn check(&self) -> Result<(), String> {
        if self.history.len() > self.config.epochs {
            let (done, epochs) = (self.history.len(), self.config.epochs);
            return Err(format!(
                "history holds {done} epochs, more than the run's config.epochs of {epochs}"
            ));
        }
        // An epoch resumes at a step it has (the data's training images, in batches).
        let steps =
            self.data.as_ref().map_or(usize::MAX, |d| d.images[0].div_ceil(self.config.batch_size.max(1)));
        for (i, e) in self.history.iter().enumerate() {
            if e.epoch != i + 1 {
                return Err(format!("history[{i}] is epoch {}, expected {}", e.epoch, i + 1));
            }
            let numbers = [("train_loss", e.train_loss), ("val_loss", e.val_loss), ("seconds", e.seconds)];
            if let Some((name, v)) = numbers.iter().find(|(_, v)| !(v.is_finite() && *v >= 0.0)) {
                return Err(format!("epoch {}: {name} = {v}, not a finite number ≥ 0", e.epoch));
            }
            if e.from_step >= steps {
                return Err(format!(
                    "epoch {}: from_step = {}, but an epoch has {steps} steps",
                    e.epoch, e.from_step
                ));
            }
        }
        let mut last = 0;
        for d in &self.dead_units {
            if d.epoch > self.history.len() {
                let run = self.history.len();
                let epochs = if run == 1 { "epoch" } else { "epochs" };
                return Err(format!("dead_units names epoch {}, but history holds {run} {epochs}", d.epoch));
            }
            if d.epoch == 0 {
                return Err("dead_units names epoch 0; epochs count from 1".to_string());
            }
            if d.epoch <= last {
                let order = "expected each epoch once, in order";
                return Err(format!("dead_units: epoch {} after epoch {last}; {order}", d.epoch));
            }
            if d.layers.len() != d.shares.len() || d.shares.iter().any(|s| !(0.0..=1.0).contains(s)) {
                return Err(format!("dead_units, epoch {}: one share in [0, 1] per layer expected", d.epoch));
            }
            last = d.epoch;
        }
        Ok(())
    }
}
