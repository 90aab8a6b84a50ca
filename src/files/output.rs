//! Atomic writes, and `metrics.json`.
//!
//! Every file a run leaves is written to a temporary name in the same folder, then renamed into
//! place, so a crash never leaves half a file under the final name. Model files are laid out by
//! [`crate::files::checkpoint`] and images by [`crate::files::pngio`]; both write through [`write_atomic`].

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{self, Read, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};
use tempfile::NamedTempFile;

use crate::train::{Config, Engine, EpochStats};

/// Writes `path` atomically with whatever `write` puts into the temporary file.
pub fn write_atomic(path: &Path, write: impl FnOnce(&mut dyn Write) -> io::Result<()>) -> io::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut file = temp_file_in(dir)?;
    {
        let mut buffered = io::BufWriter::new(file.as_file_mut());
        write(&mut buffered)?;
        buffered.flush()?;
    }
    file.as_file().sync_all()?;
    file.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// A temporary file in `dir`, readable by all like a file made the ordinary way (`rw-r--r--`
/// before the umask), not `rw-------` as temporary files are by default.
fn temp_file_in(dir: &Path) -> io::Result<NamedTempFile> {
    let mut builder = tempfile::Builder::new();
    builder.prefix(".tmp-");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o644));
    }
    builder.tempfile_in(dir)
}

/// A run folder held by this process: an exclusive lock on `DIR/.lock`, which the operating
/// system releases when the process ends, however it ends. The file holds the holder's process
/// id, so that a second run into the same folder can say who holds it.
#[derive(Debug)]
pub struct RunLock {
    _file: File,
}

/// Why a run folder could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process holds the folder.
    #[error("another run is writing into it ({holder}); wait for it to end or choose another folder")]
    Held {
        /// "process 1234", or "a process" if the lock file does not say.
        holder: String,
    },
    /// The lock file could not be made: the folder is not writable.
    #[error("cannot write into it: {0}")]
    Io(#[from] io::Error),
}

impl RunLock {
    /// Takes `dir` for this process, then removes the temporary files that runs killed before
    /// they could rename them left behind (no other process can be writing them now).
    pub fn acquire(dir: &Path) -> Result<RunLock, LockError> {
        let path = dir.join(".lock");
        let mut file = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut pid = String::new();
                let _ = file.read_to_string(&mut pid);
                let holder = match pid.trim().parse::<u32>() {
                    Ok(pid) => format!("process {pid}"),
                    Err(_) => "a process".to_string(),
                };
                return Err(LockError::Held { holder });
            }
            Err(TryLockError::Error(e)) => return Err(e.into()),
        }
        file.set_len(0)?;
        write!(file, "{}", std::process::id())?;
        file.sync_all()?;
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            if entry.file_name().to_string_lossy().starts_with(".tmp-") && entry.file_type()?.is_file() {
                std::fs::remove_file(entry.path())?;
            }
        }
        Ok(RunLock { _file: file })
    }
}

/// What identifies a data set: where it was read from, its shape, and a CRC-32 of every pixel
/// and label, so that a run resumed on other data is noticed whatever the folder is called.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataPrint {
    /// The `--data` folder.
    pub path: String,
    /// Training and test images.
    pub images: [usize; 2],
    /// Rows and columns of an image.
    pub size: [usize; 2],
    /// CRC-32 of the training images, training labels, test images and test labels, in order.
    pub crc32: u32,
}

impl DataPrint {
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

impl Metrics {
    /// Writes `metrics.json` at `path`, atomically.
    pub fn write(&self, path: &Path) -> io::Result<()> {
        write_atomic(path, |w| {
            serde_json::to_writer_pretty(&mut *w, self)?;
            writeln!(w)
        })
    }

    /// Reads a `metrics.json`.
    pub fn read(path: &Path) -> io::Result<Metrics> {
        let text = std::fs::read_to_string(path)?;
        serde_json::from_str(&text).map_err(io::Error::other)
    }
}
