//! Atomic writes, and `metrics.json`.
//!
//! Every file a run leaves is written to a temporary name in the same folder, then renamed into
//! place, so a crash never leaves half a file under the final name, and a signal that ends the
//! process leaves no temporary one ([`exit_removing_partial_files`]). Model files are laid out by
//! [`crate::files::checkpoint`] and images by [`crate::files::pngio`]; both write through [`write_atomic`].

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use tempfile::NamedTempFile;

use crate::train::{Config, Engine, EpochStats};

/// Writes `path` atomically with whatever `write` puts into the temporary file.
pub fn write_atomic(path: &Path, write: impl FnOnce(&mut dyn Write) -> io::Result<()>) -> io::Result<()> {
    let (file, _writing) = written(path, write)?;
    file.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// Writes each `(path, bytes)` atomically, and all of them or none: every file is written
/// whole to its temporary name before any is renamed into place, so a full disk on the last
/// leaves none of them (though a rename that fails after others leaves those). The path that
/// failed comes with the error. The temporary files stay open, and locked, until renamed
/// ([`remove_stale_temps`]): the limit on open files is raised for them if it must be.
pub fn write_all_atomic(files: &[(&Path, &[u8])]) -> Result<(), (PathBuf, io::Error)> {
    let Some(&(first, _)) = files.first() else { return Ok(()) };
    room_for_open_files(files.len()).map_err(|e| (first.to_path_buf(), e))?;
    let mut staged = Vec::new();
    for &(path, bytes) in files {
        // Dropped on an error, each temporary file written so far goes.
        staged.push((path, written(path, |w| w.write_all(bytes)).map_err(|e| (path.to_path_buf(), e))?));
    }
    for (path, (file, _writing)) in staged {
        file.persist(path).map_err(|e| (path.to_path_buf(), e.error))?;
    }
    Ok(())
}

/// Room for `count` more open files, with a margin for the rest of the program: the soft limit
/// raised towards the hard one if it is lower, an error naming both if even that is too low.
fn room_for_open_files(count: usize) -> io::Result<()> {
    const MARGIN: u64 = 64;
    let need = count as u64 + MARGIN;
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: `getrlimit` writes the struct it is given.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 || limit.rlim_cur >= need {
        return Ok(());
    }
    let raised = libc::rlimit { rlim_cur: need.min(limit.rlim_max), rlim_max: limit.rlim_max };
    // SAFETY: `setrlimit` reads the struct it is given; a soft limit up to the hard one is allowed.
    if raised.rlim_cur >= need && unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
        return Ok(());
    }
    Err(io::Error::other(format!(
        "{count} files written at once need {need} open files, and this process may open {} (ulimit -n)",
        limit.rlim_max
    )))
}

/// A temporary file beside `path`, holding whatever `write` put into it, synced to the disk
/// and listed in [`WRITING`] until the guard is dropped.
fn written(
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> io::Result<(NamedTempFile, Writing)> {
    let folder = folder_of(path);
    let (mut file, writing) = {
        // Made under the lock, so that an exit that holds it sees every temporary file.
        let mut writing = WRITING.lock().unwrap_or_else(|e| e.into_inner());
        let file = temp_file_in(folder)?;
        writing.push(folder.to_path_buf());
        (file, Writing(folder.to_path_buf()))
    };
    {
        let mut buffered = io::BufWriter::new(file.as_file_mut());
        write(&mut buffered)?;
        buffered.flush()?;
    }
    file.as_file().sync_all()?;
    Ok((file, writing))
}

/// The folder of each temporary file [`write_atomic`] is writing now, for
/// [`exit_removing_partial_files`].
static WRITING: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// A temporary file's folder, listed in [`WRITING`] while the file is written.
struct Writing(PathBuf);

impl Drop for Writing {
    fn drop(&mut self) {
        let mut writing = WRITING.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = writing.iter().position(|folder| *folder == self.0) {
            writing.swap_remove(i);
        }
    }
}

/// Ends the process with `code` (for a signal: `std::process::exit` runs no destructor), first
/// removing this process's temporary files from every folder [`write_atomic`] is writing in, and
/// the folders of every [`MadeFolders`] not kept. It holds the locks under which `write_atomic`
/// makes those files and `MadeFolders` those folders to the end, so none is begun after it
/// looked.
pub fn exit_removing_partial_files(code: i32) -> ! {
    let writing = WRITING.lock().unwrap_or_else(|e| e.into_inner());
    for folder in writing.iter() {
        let names = std::fs::read_dir(folder).into_iter().flatten().flatten();
        for entry in
            names.filter(|e| temp_writer(&e.file_name().to_string_lossy()) == Some(std::process::id()))
        {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    // Then the folders made for an output not written yet, which are empty now (the deepest
    // were listed last).
    let made = MADE.lock().unwrap_or_else(|e| e.into_inner());
    for folder in made.iter().rev() {
        let _ = std::fs::remove_dir(folder);
    }
    std::process::exit(code)
}

/// The folders this process made for a command's output, the deepest first: removed when
/// dropped, if still empty, unless kept ([`MadeFolders::keep`]: the command wrote into them), so
/// a command that fails leaves no empty folders behind; and by [`exit_removing_partial_files`]
/// if a signal ends the process first. Only folders its own `mkdir` made are listed: one that
/// was there, or that another process made first, is never removed (`--out ghost/../mine`
/// removed the user's empty `mine`, and a refused run the folder of the run that held it).
#[derive(Debug)]
pub struct MadeFolders {
    made: Vec<PathBuf>,
    kept: bool,
    /// A run folder and the lock this process holds on it, released after the folders go: if
    /// this process made the folder, its lock file goes with it, removed while still held.
    lock: Option<(PathBuf, RunLock)>,
}

/// Every folder of a [`MadeFolders`] not yet kept, for [`exit_removing_partial_files`].
static MADE: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

impl MadeFolders {
    /// Makes the folder `path` and those above it that are missing, one `mkdir` at a time,
    /// each listed under a lock as it is made, for [`exit_removing_partial_files`].
    pub fn create(path: &Path) -> io::Result<MadeFolders> {
        let mut made = MadeFolders { made: Vec::new(), kept: false, lock: None };
        let mut levels: Vec<&Path> = path.ancestors().filter(|p| !p.as_os_str().is_empty()).collect();
        levels.reverse();
        let mut listed = MADE.lock().unwrap_or_else(|e| e.into_inner());
        for level in levels {
            match std::fs::create_dir(level) {
                Ok(()) => {
                    made.made.insert(0, level.to_path_buf());
                    listed.push(level.to_path_buf());
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => {
                    // The folders made so far go with `made`, whose drop takes the lock.
                    drop(listed);
                    return Err(e);
                }
            }
        }
        Ok(made)
    }

    /// Holds `lock` on the run folder `run` until dropped.
    pub fn hold(&mut self, run: &Path, lock: RunLock) {
        self.lock = Some((run.to_path_buf(), lock));
    }

    /// The command wrote into the folders: they stay.
    pub fn keep(&mut self) {
        self.kept = true;
        self.unlist(&mut MADE.lock().unwrap_or_else(|e| e.into_inner()));
    }

    /// Takes the folders off [`MADE`] (whose order, shallow to deep, stays).
    fn unlist(&self, listed: &mut Vec<PathBuf>) {
        for folder in &self.made {
            if let Some(i) = listed.iter().position(|f| f == folder) {
                listed.remove(i);
            }
        }
    }
}

impl Drop for MadeFolders {
    fn drop(&mut self) {
        if self.kept {
            return;
        }
        // Under the lock, so that a signal's exit never finds a folder listed that is gone (and
        // perhaps made again by another process).
        let mut listed = MADE.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((run, lock)) = &self.lock
            && self.made.first() == Some(run)
            && lock.created()
        {
            let _ = std::fs::remove_file(run.join(".lock"));
        }
        for folder in &self.made {
            let _ = std::fs::remove_dir(folder);
        }
        self.unlist(&mut listed);
    }
}

/// The folder `path` lies in: its parent, or `.` for a bare file name.
pub fn folder_of(path: &Path) -> &Path {
    path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."))
}

/// The regular file `path`, opened to read, and its length: a FIFO, a device or a folder is
/// refused, saying what it is, rather than read forever (a FIFO) or until memory runs out.
pub fn open_regular(path: &Path) -> io::Result<(File, u64)> {
    use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
    // Without O_NONBLOCK, opening a FIFO waits for a writer; on a regular file it changes nothing.
    let file = OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(path)?;
    let meta = file.metadata()?;
    let kind = meta.file_type();
    if !kind.is_file() {
        let what = match () {
            _ if kind.is_dir() => "a folder",
            _ if kind.is_fifo() => "a FIFO",
            _ if kind.is_char_device() || kind.is_block_device() => "a device",
            _ if kind.is_socket() => "a socket",
            _ => "not a regular file",
        };
        return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("{what}, not a file")));
    }
    Ok((file, meta.len()))
}

/// The bytes of the regular file `path` ([`open_regular`]), at most `max` of them: a larger
/// file is refused rather than read until memory runs out.
pub fn read_regular(path: &Path, max: u64) -> io::Result<Vec<u8>> {
    let refuse = |what: String| Err(io::Error::new(io::ErrorKind::InvalidInput, what));
    let (file, len) = open_regular(path)?;
    if len > max {
        return refuse(format!("{len} bytes, more than the {max} this file can have"));
    }
    let mut bytes = Vec::with_capacity(len as usize);
    file.take(max + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return refuse(format!("more than {max} bytes"));
    }
    Ok(bytes)
}

/// A temporary file in `dir`, named `.dae-<pid>-XXXXXX.partial` after the process writing it
/// and locked while it is open (so that [`remove_stale_temps`] knows whose it is and whether
/// it is still being written), readable by all like a file made the ordinary way (`rw-r--r--`
/// before the umask), not `rw-------` as temporary files are by default. A sweep in another
/// process may take the file between its making and its locking (the name's process id is no
/// one's there, in another PID namespace): then another is made.
fn temp_file_in(dir: &Path) -> io::Result<NamedTempFile> {
    use std::os::unix::fs::MetadataExt;
    let mut builder = tempfile::Builder::new();
    let prefix = format!("{TEMP_PREFIX}{}-", std::process::id());
    builder.prefix(&prefix).suffix(TEMP_SUFFIX).rand_bytes(6);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o644));
    }
    for _ in 0..LOCK_ATTEMPTS {
        let file = builder.tempfile_in(dir)?;
        match file.as_file().try_lock() {
            // Still in the folder once locked: no sweep removed it first.
            Ok(()) if file.as_file().metadata()?.nlink() > 0 => return Ok(file),
            // Removed, or being removed by a sweep that holds it: another.
            Ok(()) | Err(TryLockError::WouldBlock) => {}
            // A file system without locks: its age protects it ([`STALE_AFTER`]).
            Err(TryLockError::Error(_)) => return Ok(file),
        }
    }
    Err(io::Error::other(format!("temporary files were removed as they were made, {LOCK_ATTEMPTS} times")))
}

/// How old a temporary file must be before [`remove_stale_temps`] takes it for a dead
/// writer's where the file system has no locks to say so.
const STALE_AFTER: std::time::Duration = std::time::Duration::from_secs(60);

/// How this program's temporary files begin and end: `.dae-<pid>-XXXXXX.partial`.
const TEMP_PREFIX: &str = ".dae-";
const TEMP_SUFFIX: &str = ".partial";

/// Removes from `dir` the temporary files that writers of this program left when they were
/// killed before renaming them: only files named `.dae-<pid>-XXXXXX.partial`, only regular
/// files, and only those whose writer is gone: no process `pid` runs here, and no process holds
/// the file's lock (a writer in another PID namespace, a container sharing the folder, has
/// another `pid` here but the same lock); on a file system without locks, a file a minute old
/// or more. Anything else, however named, is not ours and stays.
/// Clearing is a courtesy: a file that cannot be removed (another user's, in a shared folder)
/// is left, not an error.
pub fn remove_stale_temps(dir: &Path) -> io::Result<()> {
    for entry in std::fs::read_dir(dir)?.flatten() {
        let Some(pid) = temp_writer(&entry.file_name().to_string_lossy()) else { continue };
        if !entry.file_type().is_ok_and(|t| t.is_file()) || is_running(pid) {
            continue;
        }
        // Open to write: NFS grants an exclusive lock only on such a file.
        let mut options = OpenOptions::new();
        options.read(true).write(true);
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK);
        }
        let Ok(file) = options.open(entry.path()) else { continue };
        let gone = match file.try_lock() {
            // Held while removed, so no writer can lock it meanwhile (`temp_file_in`).
            Ok(()) => true,
            Err(TryLockError::WouldBlock) => false,
            Err(TryLockError::Error(_)) => file
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|t| t.elapsed().is_ok_and(|age| age >= STALE_AFTER)),
        };
        if gone && file.metadata().is_ok_and(|m| m.is_file()) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    Ok(())
}

/// The writer's process id, if `name` is one of our temporary files' names.
fn temp_writer(name: &str) -> Option<u32> {
    let middle = name.strip_prefix(TEMP_PREFIX)?.strip_suffix(TEMP_SUFFIX)?;
    let (pid, random) = middle.split_once('-')?;
    let ours = random.len() == 6 && random.chars().all(|c| c.is_ascii_alphanumeric());
    ours.then(|| pid.parse().ok()).flatten()
}

/// Whether process `pid` is running (or exists but is another user's).
fn is_running(pid: u32) -> bool {
    if pid == std::process::id() {
        return true;
    }
    let Ok(pid) = libc::pid_t::try_from(pid) else { return false };
    // SAFETY: signal 0 sends nothing; it only asks whether `pid` could be signalled.
    let alive = unsafe { libc::kill(pid, 0) } == 0;
    alive || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// A run folder held by this process: an exclusive lock on `DIR/.lock`, which the operating
/// system releases when the process ends, however it ends. The file holds the holder's process
/// id, so that a second run into the same folder can say who holds it.
#[derive(Debug)]
pub struct RunLock {
    _file: File,
    /// Whether this process made the lock file.
    created: bool,
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
    /// The lock file was removed or replaced every time it was locked.
    #[error(".lock was removed or replaced {0} times as it was taken; other processes are using the folder")]
    Contended(usize),
    /// The lock file could not be made: the folder is not writable.
    #[error("cannot write into it: {0}")]
    Io(#[from] io::Error),
    /// `DIR/.lock` is something else than a file of ours: what it is.
    #[error(".lock is {0}; remove it if no run is using the folder")]
    NotAFile(&'static str),
}

/// How often [`RunLock::acquire`] opens `.lock` anew when the file it locked was no longer
/// the folder's `.lock` by then.
const LOCK_ATTEMPTS: usize = 8;

impl RunLock {
    /// Takes `dir` for this process. `DIR/.lock` is opened without following a link, and must
    /// be a regular file: a link there, planted to make the run write elsewhere, is refused.
    ///
    /// A run that fails before its first save removes the `.lock` it made while it still holds
    /// it; a process that had opened that file just before then locks a file no longer in the
    /// folder, while a third makes a new `.lock` and takes the folder too. So once locked, the
    /// file must still be the one at `DIR/.lock` (same device and inode), or it is opened again.
    pub fn acquire(dir: &Path) -> Result<RunLock, LockError> {
        use std::os::unix::fs::MetadataExt;
        let path = dir.join(".lock");
        for _ in 0..LOCK_ATTEMPTS {
            let (mut file, created) = RunLock::lock(&path)?;
            let held = file.metadata()?;
            match std::fs::symlink_metadata(&path) {
                Ok(now) if (now.dev(), now.ino()) == (held.dev(), held.ino()) => {
                    file.set_len(0)?;
                    write!(file, "{}", std::process::id())?;
                    file.sync_all()?;
                    return Ok(RunLock { _file: file, created });
                }
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
        }
        Err(LockError::Contended(LOCK_ATTEMPTS))
    }

    /// Whether this process made `DIR/.lock` (it was not there when it was opened): the one
    /// process that may remove it again, while it holds it.
    pub fn created(&self) -> bool {
        self.created
    }

    /// Opens and locks `path`, a regular file of one name, without checking that it is still
    /// there once locked; and whether this call made it.
    fn lock(path: &Path) -> Result<(File, bool), LockError> {
        use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
        let mut options = OpenOptions::new();
        options.read(true).write(true);
        // Without following a link, and without waiting on a FIFO.
        options.custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK);
        // Made if missing (a link there counts as there), else opened as it is.
        let opened = match options.clone().create_new(true).open(path) {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => options.open(path).map(|f| (f, false)),
            made => made.map(|f| (f, true)),
        };
        let (mut file, created) = opened.map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => LockError::NotAFile("a symbolic link"),
            // A folder cannot be opened to write.
            Some(libc::EISDIR) => LockError::NotAFile("a folder"),
            _ => LockError::Io(e),
        })?;
        let meta = file.metadata()?;
        if !meta.is_file() {
            return Err(LockError::NotAFile("not a regular file"));
        }
        // A hard link is a regular file too, but another name of a file we would overwrite.
        if meta.nlink() > 1 {
            return Err(LockError::NotAFile("a hard link to another file"));
        }
        match file.try_lock() {
            Ok(()) => Ok((file, created)),
            Err(TryLockError::WouldBlock) => {
                let mut pid = String::new();
                let _ = file.read_to_string(&mut pid);
                let holder = match pid.trim().parse::<u32>() {
                    Ok(pid) => format!("process {pid}"),
                    Err(_) => "a process".to_string(),
                };
                Err(LockError::Held { holder })
            }
            Err(TryLockError::Error(e)) => Err(e.into()),
        }
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
            if d.epoch <= last || d.epoch > self.history.len() {
                return Err(format!(
                    "dead_units: epoch {} after {last}, with {} run",
                    d.epoch,
                    self.history.len()
                ));
            }
            if d.layers.len() != d.shares.len() || d.shares.iter().any(|s| !(0.0..=1.0).contains(s)) {
                return Err(format!("dead_units, epoch {}: one share in [0, 1] per layer expected", d.epoch));
            }
            last = d.epoch;
        }
        Ok(())
    }
}
