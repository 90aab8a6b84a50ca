//! The IDX reader on files the test writes: plain and gzipped, several ranks, and each way a
//! file can be bad. Every bad case must be an error that names the file — never a panic.

mod common;

use std::io::BufReader;
use std::path::{Path, PathBuf};

use common::gzip;
use dae::data::idx::{self, Idx, IdxErrorKind};
use dae::data::mnist::{DataError, Mnist, read_images};

/// An IDX file's bytes: `dims` in the header and `body` after it, dtype `dtype`.
fn idx_bytes(dtype: u8, dims: &[u32], body: &[u8]) -> Vec<u8> {
    let mut bytes = vec![0, 0, dtype, dims.len() as u8];
    dims.iter().for_each(|d| bytes.extend(d.to_be_bytes()));
    bytes.extend(body);
    bytes
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn body(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 % 256) as u8).collect()
}

#[test]
fn reads_plain_and_gzipped_files_of_any_rank() {
    let dir = tempfile::tempdir().unwrap();
    for dims in [vec![5u32], vec![3, 4, 2], vec![2, 3, 2, 2]] {
        let n = dims.iter().product::<u32>() as usize;
        let bytes = idx_bytes(0x08, &dims, &body(n));
        for (name, file) in [("plain", bytes.clone()), ("gz", gzip(&bytes))] {
            let path = write(dir.path(), name, &file);
            let got = idx::read(&path).unwrap();
            assert_eq!(got.dims, dims.iter().map(|&d| d as usize).collect::<Vec<_>>());
            assert_eq!(got.data, body(n), "{name} {dims:?}");
            // From a reader that hands over one byte at a time, as a pipe may.
            assert_eq!(
                idx::read_from(BufReader::with_capacity(1, &file[..])).unwrap(),
                got,
                "{name} {dims:?}"
            );
        }
    }
}

#[test]
fn gzip_is_detected_by_content_not_name() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = idx_bytes(0x08, &[2, 2], &[1, 2, 3, 4]);
    let gz_named_plain = write(dir.path(), "images.idx", &gzip(&bytes));
    let plain_named_gz = write(dir.path(), "images.idx.gz", &bytes);
    assert_eq!(idx::read(&gz_named_plain).unwrap().data, [1, 2, 3, 4]);
    assert_eq!(idx::read(&plain_named_gz).unwrap().data, [1, 2, 3, 4]);
}

/// Reads `bytes` from a file and returns the error's kind and its message.
fn error_of(bytes: &[u8]) -> (IdxErrorKind, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "bad-file", bytes);
    let err = idx::read(&path).expect_err("a bad file must be an error");
    let message = err.to_string();
    assert!(message.contains("bad-file"), "the message names the file: {message}");
    (err.kind, message)
}

#[test]
fn empty_file_is_truncated() {
    let (kind, msg) = error_of(&[]);
    assert!(matches!(kind, IdxErrorKind::Truncated { expected: 4, found: 0 }), "{msg}");
}

#[test]
fn truncated_header_and_body_are_reported_with_sizes() {
    let full = idx_bytes(0x08, &[10, 28, 28], &body(10 * 28 * 28));
    let (kind, msg) = error_of(&full[..9]);
    assert!(matches!(kind, IdxErrorKind::Truncated { expected: 16, found: 8 }), "{msg}");
    let (kind, msg) = error_of(&full[..1000]);
    assert!(matches!(kind, IdxErrorKind::Truncated { expected: 7856, found: 1000 }), "{msg}");
    assert!(msg.contains("expected 7856 bytes, found 1000"), "{msg}");
}

#[test]
fn truncated_gzip_is_an_error() {
    let gz = gzip(&idx_bytes(0x08, &[10, 28, 28], &body(10 * 28 * 28)));
    let (kind, msg) = error_of(&gz[..gz.len() / 2]);
    assert!(matches!(kind, IdxErrorKind::Gzip(_) | IdxErrorKind::Truncated { .. }), "{msg}");
}

#[test]
fn gzip_of_garbage_is_an_error() {
    let (kind, msg) = error_of(&gzip(b"this is not an IDX file at all"));
    assert!(matches!(kind, IdxErrorKind::BadMagic { found: [b't', b'h'] }), "{msg}");
}

#[test]
fn corrupt_gzip_stream_is_an_error() {
    let mut gz = gzip(&idx_bytes(0x08, &[100], &body(100)));
    let n = gz.len();
    gz[10..n - 8].iter_mut().for_each(|b| *b ^= 0x5a);
    let (kind, msg) = error_of(&gz);
    assert!(matches!(kind, IdxErrorKind::Gzip(_) | IdxErrorKind::BadMagic { .. }), "{msg}");
}

#[test]
fn wrong_magic_unsupported_dtype_and_rank() {
    let (kind, msg) = error_of(b"\x89PNG\r\n\x1a\n0000");
    assert!(matches!(kind, IdxErrorKind::BadMagic { found: [0x89, b'P'] }), "{msg}");
    let (kind, msg) = error_of(&idx_bytes(0x0d, &[1], &[0, 0, 0, 0]));
    assert!(matches!(kind, IdxErrorKind::UnsupportedDtype(0x0d)), "{msg}");

    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "rank2", &idx_bytes(0x08, &[2, 2], &[1, 2, 3, 4]));
    let err = idx::read_rank(&path, 3, 0).unwrap_err();
    assert!(matches!(err.kind, IdxErrorKind::WrongRank { expected: 3, found: 2 }), "{err}");
}

/// A header that claims more than the file holds allocates no more than the file holds; a
/// gzipped one that claims more than the machine's memory is refused before any of its body is
/// read (a gzip file of a few megabytes can unpack to gigabytes).
#[test]
fn a_header_claiming_billions_of_images_in_a_small_file_allocates_nothing_big() {
    let lying = idx_bytes(0x08, &[4_000_000_000, 28, 28], &body(1000));
    let (kind, msg) = error_of(&lying);
    assert!(matches!(kind, IdxErrorKind::Truncated { found: 1016, .. }), "{msg}");
    let (kind, msg) = error_of(&gzip(&lying));
    assert!(matches!(kind, IdxErrorKind::OutOfMemory(_)), "{msg}");
    let needle =
        "bad-file: unpacked, the body of dimensions [4000000000, 28, 28] its header declares needs 2.9 TiB";
    assert!(msg.contains(needle), "{msg}");
    let (kind, msg) = error_of(&idx_bytes(0x08, &[u32::MAX, u32::MAX, u32::MAX], &[]));
    assert!(matches!(kind, IdxErrorKind::TooLarge { .. }), "{msg}");
    // A product of 2⁶⁴ − 1 items: the file's length would not be a number.
    let (kind, msg) = error_of(&idx_bytes(0x08, &[1_722_007_169, 42_009_217, 255], &[]));
    assert!(matches!(kind, IdxErrorKind::TooLarge { .. }), "{msg}");
}

/// A gzip file of several members (`cat a.gz b.gz`, what `bgzip` writes) reads whole, as
/// `gunzip` reads it, and so does one padded with zeros (which `gunzip` skips); other bytes after
/// the last member are an error.
#[test]
fn a_gzip_file_of_several_members_reads_whole() {
    let whole = idx_bytes(0x08, &[2, 3], &[1, 2, 3, 4, 5, 6]);
    let mut members = gzip(&whole[..9]);
    members.extend(gzip(&whole[9..]));
    let read = Idx { dims: vec![2, 3], data: vec![1, 2, 3, 4, 5, 6] };
    assert_eq!(idx::read_from(&members[..]).unwrap(), read);
    let mut padded = members.clone();
    padded.extend([0; 20_000]);
    assert_eq!(idx::read_from(&padded[..]).unwrap(), read);
    // Read 7 bytes at a time, the zeros (and the junk after them, below) span many buffers.
    assert_eq!(idx::read_from(BufReader::with_capacity(7, &padded[..])).unwrap(), read);
    padded.push(1);
    let err = idx::read_from(BufReader::with_capacity(7, &padded[..])).unwrap_err().to_string();
    assert!(err.contains("not gzip (zeros, then others)"), "{err}");
    let third = gzip(&[]);
    let mut zeros_then_junk = vec![0; 600];
    zeros_then_junk.push(7);
    for (junk, said) in [
        (&b"junk at the end"[..], "that are not gzip"),
        (b"garbage!", "that are not gzip"),
        (&zeros_then_junk, "that are not gzip (zeros, then others)"),
        (b"\x1f", "that are not a whole gzip member (unexpected end of file)"),
        (b"\x1f\x00", "that are not a whole gzip member"),
        (&third[..5], "that are not a whole gzip member"),
        (&third[..third.len() - 1], "that are not a whole gzip member"),
        (b"\x1f\x8bgarbage!", "that are not a whole gzip member (invalid gzip header)"),
        (b"\x1f\0\0\0\0\0\0\0\0\0\0", "that are not a whole gzip member (invalid gzip header)"),
    ] {
        let mut trailed = members.clone();
        trailed.extend(junk);
        let (kind, msg) = error_of(&trailed);
        assert!(matches!(kind, IdxErrorKind::Gzip(_)), "{msg}");
        assert!(msg.contains(said), "{junk:?}: {msg}");
    }
}

#[test]
fn trailing_bytes_are_an_error() {
    let (kind, msg) = error_of(&idx_bytes(0x08, &[3], &[1, 2, 3, 4]));
    assert!(matches!(kind, IdxErrorKind::TrailingData { expected: 11 }), "{msg}");
    let long = gzip(&idx_bytes(0x08, &[3], &[1, 2, 3, 4]));
    let (kind, msg) = error_of(&long);
    assert!(matches!(kind, IdxErrorKind::TrailingData { expected: 11 }), "{msg}");
    // A gzip file whose checksum fails is corrupt, not long (a flipped byte in the deflate
    // stream can unpack to more than the header promises; here the stored checksum is flipped).
    let mut corrupt = long;
    let crc = corrupt.len() - 8;
    corrupt[crc] ^= 0xff;
    let (kind, msg) = error_of(&corrupt);
    assert!(matches!(kind, IdxErrorKind::Gzip(_)) && msg.contains("checksum"), "{msg}");
}

#[test]
fn zero_images_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "empty-set", &idx_bytes(0x08, &[0, 28, 28], &[]));
    let err = read_images(&path).unwrap_err();
    assert!(err.to_string().contains("empty-set: no pixels to read: dimensions 0×28×28"), "{err}");
}

#[test]
fn missing_file_is_an_error_naming_it() {
    let err = idx::read(Path::new("/nonexistent/train-images")).unwrap_err();
    assert!(matches!(err.kind, IdxErrorKind::Io(_)) && err.to_string().contains("/nonexistent/train-images"));
}

/// Writes a consistent four-file data set into `dir`, then lets `spoil` replace some files.
fn dataset(dir: &Path, spoil: &[(&str, Vec<u8>)]) {
    let images =
        |n: u32, side: u32| gzip(&idx_bytes(0x08, &[n, side, side], &body((n * side * side) as usize)));
    let labels =
        |n: u32| gzip(&idx_bytes(0x08, &[n], &body(n as usize).iter().map(|b| b % 10).collect::<Vec<_>>()));
    let files = [
        ("train-images-idx3-ubyte.gz", images(6, 4)),
        ("train-labels-idx1-ubyte.gz", labels(6)),
        ("t10k-images-idx3-ubyte.gz", images(3, 4)),
        ("t10k-labels-idx1-ubyte.gz", labels(3)),
    ];
    for (name, bytes) in files.iter().chain(spoil) {
        write(dir, name, bytes);
    }
}

#[test]
fn loads_a_consistent_dataset() {
    let dir = tempfile::tempdir().unwrap();
    dataset(dir.path(), &[]);
    let data = Mnist::load(dir.path()).unwrap();
    assert_eq!((data.train.images.count, data.test.images.count), (6, 3));
    assert_eq!(data.train.images.pixels_per_image(), 16);
    assert_eq!(data.train.labels, [0, 7, 4, 1, 8, 5]);
}

#[test]
fn dataset_inconsistencies_are_errors() {
    let cases: [(&str, Vec<u8>, &str); 3] = [
        // 5 rows of 6: 6 wide, 5 high.
        ("t10k-images-idx3-ubyte.gz", gzip(&idx_bytes(0x08, &[3, 5, 6], &body(90))), "test images are 6×5"),
        (
            "train-labels-idx1-ubyte.gz",
            gzip(&idx_bytes(0x08, &[5], &[1, 2, 3, 4, 5])),
            "5 labels for 6 images",
        ),
        ("t10k-labels-idx1-ubyte.gz", gzip(&idx_bytes(0x08, &[3], &[1, 12, 3])), "label 12 at item 1"),
    ];
    for (file, bytes, expected) in cases {
        let dir = tempfile::tempdir().unwrap();
        dataset(dir.path(), &[(file, bytes)]);
        let err = Mnist::load(dir.path()).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, DataError::Inconsistent { .. }), "{msg}");
        assert!(msg.contains(file) && msg.contains(expected), "{msg}");
    }
}

/// A plain file beside its `.gz` (a data set unpacked over MNIST's, or `gunzip -k`) is refused,
/// rather than one of them read without a word.
#[test]
fn a_file_both_gzipped_and_plain_is_an_error_naming_both() {
    let dir = tempfile::tempdir().unwrap();
    dataset(dir.path(), &[]);
    write(dir.path(), "t10k-labels-idx1-ubyte", &idx_bytes(0x08, &[3], &[1, 2, 3]));
    let err = Mnist::load(dir.path()).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, DataError::Inconsistent { .. }), "{msg}");
    let plain = dir.path().join("t10k-labels-idx1-ubyte");
    let gz = dir.path().join("t10k-labels-idx1-ubyte.gz");
    assert!(msg.starts_with(&format!("{}: {} is there too", plain.display(), gz.display())), "{msg}");
    let hint = format!("remove one (./data-fetch.sh {} says which is MNIST's)", dir.path().display());
    assert!(msg.ends_with(&hint), "{msg}");
    std::fs::remove_file(&gz).unwrap();
    assert_eq!(Mnist::load(dir.path()).unwrap().test.labels, [1, 2, 3]);
}

/// A link that cannot be followed (a loop) or leads nowhere is named as one, not taken for the
/// folder's fault nor for a missing file (nor, beside the `.gz`, read past).
#[test]
fn a_link_whose_target_cannot_be_reached_is_named() {
    let dir = tempfile::tempdir().unwrap();
    dataset(dir.path(), &[]);
    let link = dir.path().join("t10k-labels-idx1-ubyte");
    std::os::unix::fs::symlink(&link, &link).unwrap();
    let msg = Mnist::load(dir.path()).unwrap_err().to_string();
    assert!(
        msg.starts_with(&format!("{}: a link whose target cannot be reached: ", link.display())),
        "{msg}"
    );
    std::fs::remove_file(&link).unwrap();
    std::os::unix::fs::symlink("/nonexistent/labels", &link).unwrap();
    let msg = Mnist::load(dir.path()).unwrap_err().to_string();
    assert_eq!(msg, format!("{}: a link whose target is not there", link.display()));
}

#[test]
fn missing_dataset_says_how_to_get_it() {
    let dir = tempfile::tempdir().unwrap();
    let msg = Mnist::load(dir.path()).unwrap_err().to_string();
    assert!(msg.contains("train-images-idx3-ubyte.gz") && msg.contains("data-fetch.sh"), "{msg}");
}
