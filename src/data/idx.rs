//! Our reader for the IDX format that MNIST ships in, plain or gzipped.
//!
//! An IDX file is a 4-byte magic (`0x00 0x00`, a dtype byte, the rank), one big-endian `u32` per
//! dimension, then the items in row-major order. We read only `u8` data, the dtype of every
//! MNIST-like set. Every header field is checked against the bytes actually present before the body
//! is kept, so a lying header cannot make us allocate, and a body larger than the memory there is
//! (a small gzip file can unpack to gigabytes; a plain file can be larger than memory) is refused
//! before it is read; bad input is an [`IdxError`], never a panic. Whether a file is gzipped is
//! decided by its first bytes, not its name; a gzip file may hold several members, one after
//! another (what `cat a.gz b.gz` makes), and zeros may pad it; anything else after the last
//! member is an error.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

use byteorder::{BigEndian, ReadBytesExt};
use flate2::bufread::GzDecoder;
use thiserror::Error;

use crate::memory;

/// The dtype byte of unsigned 8-bit data.
const DTYPE_U8: u8 = 0x08;
/// The first two bytes of every gzip stream.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// An IDX tensor of `u8`: its dimensions and its items, row-major.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Idx {
    /// The size of each dimension, outermost first.
    pub dims: Vec<usize>,
    /// The items, row-major; as many as the product of `dims`.
    pub data: Vec<u8>,
}

/// What was wrong with an IDX file, and which file.
#[derive(Debug, Error)]
#[error("{}: {kind}", path.display())]
pub struct IdxError {
    /// The file.
    pub path: PathBuf,
    /// What was wrong with it.
    pub kind: IdxErrorKind,
}

/// The ways an IDX file can be bad.
#[derive(Debug, Error)]
pub enum IdxErrorKind {
    /// The file could not be opened or read.
    #[error("cannot read: {0}")]
    Io(#[from] io::Error),
    /// The file starts like gzip but does not decompress.
    #[error("gzip: {0}")]
    Gzip(io::Error),
    /// Fewer bytes than the header (or the header itself) needs; both counts include the header.
    #[error("truncated: expected {expected} bytes, found {found}")]
    Truncated {
        /// Bytes needed.
        expected: u64,
        /// Bytes present.
        found: u64,
    },
    /// More bytes than the header promises.
    #[error("longer than the {expected} bytes its header promises")]
    TrailingData {
        /// Bytes promised, header included.
        expected: u64,
    },
    /// The first two bytes are not zero.
    #[error("not an IDX file: magic bytes {found:02x?}, expected [00, 00, dtype, rank]")]
    BadMagic {
        /// The first two bytes.
        found: [u8; 2],
    },
    /// A dtype other than unsigned bytes.
    #[error("unsupported dtype 0x{0:02x}: only unsigned bytes (0x08) are read")]
    UnsupportedDtype(u8),
    /// Another number of dimensions than the caller needs.
    #[error("expected rank {expected}, found rank {found}")]
    WrongRank {
        /// The rank needed.
        expected: usize,
        /// The rank in the file.
        found: usize,
    },
    /// A body larger than the memory a command may take ([`memory::limit`]).
    #[error("{0}")]
    OutOfMemory(String),
    /// Dimensions whose product does not fit in memory's address space.
    #[error("header dimensions {dims:?} overflow the address space")]
    TooLarge {
        /// The dimensions in the header.
        dims: Vec<u32>,
    },
}

impl IdxError {
    /// The error `kind` in the file at `path`.
    pub fn new(path: &Path, kind: IdxErrorKind) -> Self {
        IdxError { path: path.to_path_buf(), kind }
    }
}

/// Reads the IDX file at `path`, gzipped or not.
pub fn read(path: &Path) -> Result<Idx, IdxError> {
    read_beside(path, 0)
}

/// [`read`], where `held` bytes are held already (the files of a data set read before it): a
/// body that does not fit in the memory limit beside them and the program is refused before it
/// is read.
pub fn read_beside(path: &Path, held: u64) -> Result<Idx, IdxError> {
    let file = File::open(path).map_err(|e| IdxError::new(path, e.into()))?;
    // A regular file's length tells a lying header at once; a pipe's is not known.
    let length = file.metadata().ok().filter(|m| m.is_file()).map(|m| m.len());
    read_with_length(BufReader::new(file), length, held).map_err(|kind| IdxError::new(path, kind))
}

/// Reads an IDX file of rank `rank` at `path`, beside `held` bytes ([`read_beside`]).
pub fn read_rank(path: &Path, rank: usize, held: u64) -> Result<Idx, IdxError> {
    let idx = read_beside(path, held)?;
    if idx.dims.len() != rank {
        let kind = IdxErrorKind::WrongRank { expected: rank, found: idx.dims.len() };
        return Err(IdxError::new(path, kind));
    }
    Ok(idx)
}

/// Reads IDX bytes from any reader, gunzipping them first (every member) if they start with
/// gzip's magic.
pub fn read_from(reader: impl io::BufRead) -> Result<Idx, IdxErrorKind> {
    read_with_length(reader, None, 0)
}

/// [`read_from`], for bytes whose count is `length` if it is known, beside `held` bytes.
fn read_with_length(
    mut reader: impl io::BufRead,
    length: Option<u64>,
    held: u64,
) -> Result<Idx, IdxErrorKind> {
    // Both bytes of the magic, though a pipe may hand over one at a time; then put back.
    let mut head = Vec::with_capacity(GZIP_MAGIC.len());
    (&mut reader).take(GZIP_MAGIC.len() as u64).read_to_end(&mut head)?;
    let gzipped = head == GZIP_MAGIC;
    let mut reader = io::Cursor::new(head).chain(reader);
    if gzipped {
        let mut gz = BufReader::new(Members { member: Some(GzDecoder::new(reader)), later_unread: false });
        parse(&mut gz, Stored::Gzipped, held)
    } else {
        parse(&mut reader, Stored::Plain { length }, held)
    }
}

/// The unpacked bytes of every member of a gzip stream, one after another, as `gunzip` reads
/// them, and zeros after the last (padding, which `gunzip` skips too). Other bytes after it are
/// an error that says so, whether they do not start like a member or fail before a member's
/// first byte (`flate2`'s `MultiGzDecoder` took them for a member and reported "unexpected end
/// of file" or "invalid gzip header", as if the file's own start were at fault).
struct Members<R> {
    /// The member being read; `None` once the stream has ended.
    member: Option<GzDecoder<R>>,
    /// Whether that member follows another and has given no byte yet.
    later_unread: bool,
}

impl<R: io::BufRead> Read for Members<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let Some(member) = &mut self.member else { return Ok(0) };
            let n = match member.read(buf) {
                // A lone 0x1f, a header cut short or not gzip's, a first block that is not deflate
                // (not the file's own errors, such as EIO, nor an interrupted read).
                Err(e) if self.later_unread && is_not_gzip(&e) => {
                    return Err(trailing(&format!("not a whole gzip member ({e})")));
                }
                read => read?,
            };
            if n > 0 || buf.is_empty() {
                self.later_unread &= n == 0;
                return Ok(n);
            }
            let mut rest = self.member.take().expect("a member").into_inner();
            // By the first byte alone, which a buffer that ends mid-stream still holds.
            match rest.fill_buf()? {
                [] => return Ok(0),
                [0, ..] => return zeros_to_the_end(rest).map(|()| 0),
                [first, ..] if *first != GZIP_MAGIC[0] => return Err(trailing("not gzip")),
                _ => (self.member, self.later_unread) = (Some(GzDecoder::new(rest)), true),
            }
        }
    }
}

/// Whether `e` is flate2's for bytes that are not gzip's (a header or deflate block, or their end).
fn is_not_gzip(e: &io::Error) -> bool {
    use io::ErrorKind::{InvalidData, InvalidInput, UnexpectedEof};
    matches!(e.kind(), InvalidData | InvalidInput | UnexpectedEof)
}

/// Reads `rest` to its end, which must hold zeros alone.
fn zeros_to_the_end(mut rest: impl io::BufRead) -> io::Result<()> {
    loop {
        let zeros = match rest.fill_buf()? {
            [] => return Ok(()),
            bytes if bytes.iter().any(|&b| b != 0) => return Err(trailing("not gzip (zeros, then others)")),
            bytes => bytes.len(),
        };
        rest.consume(zeros);
    }
}

/// The error of bytes after a gzip stream that are `what` ("not gzip").
fn trailing(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("bytes after the end of the gzip stream that are {what}"),
    )
}

/// How the bytes [`parse`] reads were stored.
#[derive(Debug, Clone, Copy)]
enum Stored {
    /// Gzipped: what is read is unpacked, of a length no file says.
    Gzipped,
    /// As they are, `length` bytes in all if that is known (a file's, not a pipe's).
    Plain { length: Option<u64> },
}

/// How far past the promised body a gzipped file is unpacked (and dropped) to reach its checksum.
const LOOKAHEAD: u64 = 1 << 20;

fn parse(reader: &mut impl Read, stored: Stored, held: u64) -> Result<Idx, IdxErrorKind> {
    let gzipped = matches!(stored, Stored::Gzipped);
    let io_kind = |e: io::Error| {
        if gzipped { IdxErrorKind::Gzip(e) } else { e.into() }
    };
    let mut magic = [0u8; 4];
    let got = read_up_to(reader, &mut magic).map_err(io_kind)?;
    if got < 4 {
        return Err(IdxErrorKind::Truncated { expected: 4, found: got as u64 });
    }
    if magic[..2] != [0, 0] {
        return Err(IdxErrorKind::BadMagic { found: [magic[0], magic[1]] });
    }
    if magic[2] != DTYPE_U8 {
        return Err(IdxErrorKind::UnsupportedDtype(magic[2]));
    }
    let rank = usize::from(magic[3]);
    let header_len = 4 + 4 * rank as u64;
    let mut dims32 = Vec::with_capacity(rank);
    for i in 0..rank {
        let dim = reader.read_u32::<BigEndian>().map_err(|e| match e.kind() {
            io::ErrorKind::UnexpectedEof => {
                IdxErrorKind::Truncated { expected: header_len, found: 4 + 4 * i as u64 }
            }
            _ => io_kind(e),
        })?;
        dims32.push(dim);
    }
    // The whole file's length, `header_len + body_len + 1` (the byte read past the end) included,
    // must be a number: a header is free to claim 2⁶⁴ − 1 items.
    let body_len = dims32
        .iter()
        .try_fold(1u64, |n, &d| n.checked_mul(u64::from(d)))
        .filter(|&n| usize::try_from(n).is_ok() && n.checked_add(header_len + 1).is_some())
        .ok_or_else(|| IdxErrorKind::TooLarge { dims: dims32.clone() })?;
    // A plain file shorter or longer than its header says is refused before any of it is read.
    if let Stored::Plain { length: Some(length) } = stored {
        let expected = header_len + body_len;
        if length < expected {
            return Err(IdxErrorKind::Truncated { expected, found: length });
        }
        if length > expected {
            return Err(IdxErrorKind::TrailingData { expected });
        }
    }
    // A body larger than memory is refused before it is read: a small gzip file can unpack to a
    // thousand times its size, and a plain file can be larger than memory.
    let what = || {
        let unpacked = if gzipped { "unpacked, " } else { "" };
        let beside = match held {
            0 => String::new(),
            held => format!(", beside the {} of the files read before it,", memory::size(held)),
        };
        format!("{unpacked}the body of dimensions {dims32:?} its header declares{beside}")
    };
    let need = memory::PROCESS.saturating_add(held).saturating_add(header_len + body_len);
    memory::check(need, what).map_err(IdxErrorKind::OutOfMemory)?;
    // Read at most one byte more than promised: the vector grows only as real bytes arrive.
    let mut data = Vec::new();
    reader.by_ref().take(body_len + 1).read_to_end(&mut data).map_err(io_kind)?;
    let found = data.len() as u64;
    if found < body_len {
        let (expected, found) = (header_len + body_len, header_len + found);
        return Err(IdxErrorKind::Truncated { expected, found });
    }
    if found > body_len {
        // A corrupt deflate stream can unpack to more than its header promises: the checksum at
        // the stream's end, read for at most [`LOOKAHEAD`] more bytes, tells the two apart.
        if gzipped {
            io::copy(&mut reader.take(LOOKAHEAD), &mut io::sink()).map_err(io_kind)?;
        }
        return Err(IdxErrorKind::TrailingData { expected: header_len + body_len });
    }
    let dims = dims32.into_iter().map(|d| d as usize).collect();
    Ok(Idx { dims, data })
}

/// Like `read_exact`, but says how many bytes it got instead of failing on a short read.
fn read_up_to(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match reader.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}
