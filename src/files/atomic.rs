//! Files written whole or not at all, and what a writer that was stopped leaves behind.
//!
//! Every file a run leaves is written to a temporary name in the same folder, then renamed into
//! place, so a crash never leaves half a file under the final name, and a signal that ends the
//! process leaves no temporary one ([`exit_removing_partial_files`]); the temporary files of a
//! writer that was killed outright are cleared by the next ([`remove_stale_temps`]), and a
//! command that fails removes the folders it made ([`MadeFolders`]). Model files are laid out by
//! [`crate::files::checkpoint`] and images by [`crate::files::pngio`]; both write through
//! [`write_atomic`].

use std::fs::{OpenOptions, TryLockError};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use tempfile::NamedTempFile;

use crate::files::run_lock::RunLock;

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
    /// this process made the lock file, it goes too, removed while still held, so that a
    /// command that fails leaves the folder as it found it.
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
    for _ in 0..TEMP_ATTEMPTS {
        let file = builder.tempfile_in(dir).map_err(|e| {
            // `tempfile`'s error names the temporary file; the folder is what the user chose.
            let cause =
                e.raw_os_error().map_or_else(|| io::Error::from(e.kind()), io::Error::from_raw_os_error);
            io::Error::new(e.kind(), format!("cannot make a file in {}: {cause}", dir.display()))
        })?;
        match file.as_file().try_lock() {
            // Still in the folder once locked: no sweep removed it first.
            Ok(()) if file.as_file().metadata()?.nlink() > 0 => return Ok(file),
            // Removed, or being removed by a sweep that holds it: another.
            Ok(()) | Err(TryLockError::WouldBlock) => {}
            // A file system without locks: its age protects it ([`STALE_AFTER`]).
            Err(TryLockError::Error(_)) => return Ok(file),
        }
    }
    Err(io::Error::other(format!("temporary files were removed as they were made, {TEMP_ATTEMPTS} times")))
}

/// How often [`temp_file_in`] makes another file when a sweep took the one it made.
const TEMP_ATTEMPTS: usize = 8;

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
