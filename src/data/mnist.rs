//! The MNIST data set as the engine holds it: images as compact `u8` pixels, labels as `u8`.
//!
//! Files are found by their usual names in one folder (gzipped or not) and read with our own
//! [`crate::data::idx`] reader. Scaling to `[0, 1]` and corruption happen per batch, elsewhere:
//! keeping the pixels as bytes costs 47 MB for the training set instead of 188 MB as `f32`.

use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::data::idx::{self, IdxError};

/// A set of `count` grayscale images of `rows × cols` pixels, row-major, one byte a pixel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Images {
    /// Number of images (`N`).
    pub count: usize,
    /// Pixel rows per image.
    pub rows: usize,
    /// Pixel columns per image.
    pub cols: usize,
    /// `count · rows · cols` bytes, 0 (black) to 255 (white).
    pub pixels: Vec<u8>,
}

impl Images {
    /// Pixels per image (`D` in the model's shape legend).
    pub fn pixels_per_image(&self) -> usize {
        self.rows * self.cols
    }

    /// The bytes of image `i`.
    pub fn image(&self, i: usize) -> &[u8] {
        let d = self.pixels_per_image();
        &self.pixels[i * d..(i + 1) * d]
    }
}

/// One split of the data set: images and their labels (0–9).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    /// The images.
    pub images: Images,
    /// One label per image.
    pub labels: Vec<u8>,
}

/// The training and test splits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mnist {
    /// What the model learns from (60,000 images in MNIST).
    pub train: Split,
    /// What it is validated and evaluated on (10,000).
    pub test: Split,
}

/// Why a data set could not be loaded.
#[derive(Debug, Error)]
pub enum DataError {
    /// The folder is not there, or is not a folder.
    #[error("{}: {what}; --data names the folder that holds the four MNIST files (./data-fetch.sh fills ./data)", path.display())]
    Folder {
        /// The path given.
        path: PathBuf,
        /// What is there instead: "no such folder", "a file, not a folder", …
        what: String,
    },
    /// A file is not in the folder.
    #[error("{}: not found (run ./data-fetch.sh, or pass --data DIR)", .0.display())]
    Missing(PathBuf),
    /// A file is not valid IDX.
    #[error(transparent)]
    Idx(#[from] IdxError),
    /// Files that are valid alone but do not fit together.
    #[error("{}: {message}", path.display())]
    Inconsistent {
        /// The file found at fault.
        path: PathBuf,
        /// What does not fit.
        message: String,
    },
}

/// The training images' file name, without `.gz` (MNIST's usual names, as `data-fetch.sh`
/// writes them).
pub const TRAIN_IMAGES: &str = "train-images-idx3-ubyte";
/// The training labels' file name, without `.gz`.
pub const TRAIN_LABELS: &str = "train-labels-idx1-ubyte";
/// The test images' file name, without `.gz`.
pub const TEST_IMAGES: &str = "t10k-images-idx3-ubyte";
/// The test labels' file name, without `.gz`.
pub const TEST_LABELS: &str = "t10k-labels-idx1-ubyte";

impl Mnist {
    /// The bytes its pixels and labels take in memory.
    pub fn bytes(&self) -> u64 {
        self.train.bytes() + self.test.bytes()
    }

    /// Loads the four files from `dir`, each as `NAME.gz` or plain `NAME` (not both).
    pub fn load(dir: &Path) -> Result<Mnist, DataError> {
        let what = match std::fs::metadata(dir) {
            Ok(meta) if meta.is_dir() => None,
            Ok(meta) if meta.is_file() => Some("a file, not a folder".to_string()),
            Ok(meta) => {
                Some(format!("{}, not a folder", crate::files::regular::not_a_file(meta.file_type())))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some("no such folder".to_string()),
            Err(e) => Some(e.to_string()),
        };
        if let Some(what) = what {
            return Err(DataError::Folder { path: dir.to_path_buf(), what });
        }
        // Each file is checked against the memory limit beside those read before it.
        let train = Split::load(dir, TRAIN_IMAGES, TRAIN_LABELS, 0)?;
        let test = Split::load(dir, TEST_IMAGES, TEST_LABELS, train.bytes())?;
        let (a, b) = (&train.images, &test.images);
        if (a.rows, a.cols) != (b.rows, b.cols) {
            return Err(DataError::Inconsistent {
                path: find(dir, TEST_IMAGES)?,
                message: format!(
                    "test images are {}×{}, training images are {}×{} (width×height)",
                    b.cols, b.rows, a.cols, a.rows
                ),
            });
        }
        Ok(Mnist { train, test })
    }

    /// The first `train` training and `test` test images (all, where there are fewer), with
    /// their labels.
    pub fn head(&self, train: usize, test: usize) -> Mnist {
        Mnist { train: self.train.head(train), test: self.test.head(test) }
    }
}

impl Split {
    /// The bytes its pixels and labels take in memory.
    pub fn bytes(&self) -> u64 {
        (self.images.pixels.len() + self.labels.len()) as u64
    }

    /// The first `n` images (all, if fewer) and their labels.
    pub fn head(&self, n: usize) -> Split {
        let n = n.min(self.images.count);
        let pixels = self.images.pixels[..n * self.images.pixels_per_image()].to_vec();
        let images = Images { count: n, pixels, ..self.images };
        Split { images, labels: self.labels[..n].to_vec() }
    }

    /// The images and labels of a split, read beside `held` bytes already in memory.
    fn load(dir: &Path, images: &str, labels: &str, held: u64) -> Result<Split, DataError> {
        let images_path = find(dir, images)?;
        let images = read_images_beside(&images_path, held)?;
        let labels_path = find(dir, labels)?;
        let labels = idx::read_rank(&labels_path, 1, held + images.pixels.len() as u64)?.data;
        let inconsistent = |message| DataError::Inconsistent { path: labels_path.clone(), message };
        if labels.len() != images.count {
            let msg = format!("{} labels for {} images", labels.len(), images.count);
            return Err(inconsistent(msg));
        }
        if let Some(pos) = labels.iter().position(|&l| l > 9) {
            return Err(inconsistent(format!("label {} at item {pos} is not a digit 0–9", labels[pos])));
        }
        Ok(Split { images, labels })
    }
}

/// Reads a rank-3 IDX file `(count, rows, cols)` of images; an empty set is an error.
pub fn read_images(path: &Path) -> Result<Images, DataError> {
    read_images_beside(path, 0)
}

/// [`read_images`], beside `held` bytes already in memory ([`idx::read_beside`]).
fn read_images_beside(path: &Path, held: u64) -> Result<Images, DataError> {
    let idx = idx::read_rank(path, 3, held)?;
    let [count, rows, cols] = [idx.dims[0], idx.dims[1], idx.dims[2]];
    if count == 0 || rows == 0 || cols == 0 {
        let message = format!("no pixels to read: dimensions {count}×{rows}×{cols}");
        return Err(DataError::Inconsistent { path: path.to_path_buf(), message });
    }
    Ok(Images { count, rows, cols, pixels: idx.data })
}

/// `dir/NAME.gz` or `dir/NAME`, whichever exists, as a regular file (a FIFO would block the
/// reader, a device feed it without end). Both is an error: they may differ (a data set
/// unpacked over MNIST's), and reading one without a word could train on the wrong one. A
/// folder that may not be searched says so, rather than that the files are missing; a link
/// whose target is not there or cannot be reached (a loop, a folder that may not be searched)
/// is named, rather than read past or taken for the folder's fault.
fn find(dir: &Path, name: &str) -> Result<PathBuf, DataError> {
    let gz = dir.join(format!("{name}.gz"));
    let plain = dir.join(name);
    let mut found = None;
    for path in [&gz, &plain] {
        // The name's own entry (a link not followed), beside what it leads to.
        let entry = path.symlink_metadata();
        let link = entry.as_ref().is_ok_and(|m| m.is_symlink());
        let inconsistent = |message: String| Err(DataError::Inconsistent { path: path.clone(), message });
        match path.try_exists() {
            Ok(true) if found.is_some() => {
                return inconsistent(format!(
                    "{} is there too; dae does not guess which to read, so remove one \
                     (./data-fetch.sh {} says which is MNIST's)",
                    gz.display(),
                    dir.display()
                ));
            }
            Ok(true) => found = Some(path.clone()),
            Ok(false) if link => return inconsistent("a link whose target is not there".to_string()),
            Ok(false) => {}
            Err(e) if link => return inconsistent(format!("a link whose target cannot be reached: {e}")),
            // Not even the name can be looked at: the folder may not be searched.
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied && entry.is_err() => {
                return Err(DataError::Folder { path: dir.to_path_buf(), what: e.to_string() });
            }
            Err(e) => return inconsistent(e.to_string()),
        }
    }
    let Some(path) = found else {
        return Err(DataError::Missing(gz));
    };
    let what = match std::fs::metadata(&path).map(|m| m.file_type()) {
        Ok(kind) if kind.is_file() => return Ok(path),
        Ok(kind) => crate::files::regular::not_a_file(kind),
        Err(_) => "not a regular file",
    };
    Err(DataError::Inconsistent { path, message: format!("{what}, not a data file") })
}
