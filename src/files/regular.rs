//! Reading only regular files: a FIFO, a device or a folder named as a data, model or image
//! file is refused, saying what it is, rather than read forever or until memory runs out.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::path::Path;

/// The regular file `path`, opened to read, and its length: a FIFO, a device or a folder is
/// refused, saying what it is, rather than read forever (a FIFO) or until memory runs out.
pub fn open_regular(path: &Path) -> io::Result<(File, u64)> {
    use std::os::unix::fs::OpenOptionsExt;
    // Without O_NONBLOCK, opening a FIFO waits for a writer; on a regular file it changes nothing.
    let file = OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(path)?;
    let meta = file.metadata()?;
    if !meta.file_type().is_file() {
        let what = not_a_file(meta.file_type());
        return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("{what}, not a file")));
    }
    Ok((file, meta.len()))
}

/// What a path of this `kind`, not a regular file, is: "a folder", "a FIFO", "a device"…
pub fn not_a_file(kind: std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    match () {
        _ if kind.is_dir() => "a folder",
        _ if kind.is_fifo() => "a FIFO",
        _ if kind.is_char_device() || kind.is_block_device() => "a device",
        _ if kind.is_socket() => "a socket",
        _ => "not a regular file",
    }
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
