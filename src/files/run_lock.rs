//! A run folder held by one process at a time (`DIR/.lock`).

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{self, Read, Write};
use std::path::Path;

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
        RunLock::acquire_seen(dir, || {})
    }

    /// [`RunLock::acquire`], calling `opened` each time `.lock` is open but not yet locked: the
    /// moment at which a holder that removes it leaves this process an orphan to lock.
    fn acquire_seen(dir: &Path, mut opened: impl FnMut()) -> Result<RunLock, LockError> {
        use std::os::unix::fs::MetadataExt;
        let path = dir.join(".lock");
        for _ in 0..LOCK_ATTEMPTS {
            let (mut file, created) = RunLock::lock(&path, &mut opened)?;
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
    /// there once locked; and whether this call made it. `between` is called in between.
    fn lock(path: &Path, between: &mut impl FnMut()) -> Result<(File, bool), LockError> {
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
        between();
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The race [`RunLock::acquire`] checks for, made to happen: `b` opens `.lock` while `a`
    /// holds it; `a` removes it and lets go before `b` locks. `b` must not keep the orphan it
    /// locked (which `c`, making a new `.lock`, would then hold beside it) but take the new one.
    #[test]
    fn a_lock_file_removed_between_open_and_lock_is_not_kept() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = Some(RunLock::acquire(dir.path()).unwrap());
        let b = RunLock::acquire_seen(dir.path(), || {
            if let Some(holder) = a.take() {
                std::fs::remove_file(dir.path().join(".lock")).unwrap();
                drop(holder);
            }
        })
        .unwrap();
        assert!(a.is_none() && b.created(), "b took the folder through a new .lock");
        let c = RunLock::acquire(dir.path());
        assert!(matches!(c, Err(LockError::Held { .. })), "b holds the folder's .lock: {c:?}");
    }
}
