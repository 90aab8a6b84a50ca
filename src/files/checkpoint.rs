//! Files in the safetensors format: the model, laid out as PyTorch lays out the same layers,
//! and the training state that `--resume` needs besides it.
//!
//! - `model.safetensors`: for each layer `i` with parameters, `layers.{i}.weight` and
//!   `layers.{i}.bias` (out,), f32, the weight in PyTorch's layout: `nn.Linear` (out, in),
//!   `nn.Conv2d` (out, in, k, k), `nn.ConvTranspose2d` (in, out, k, k). The metadata holds the
//!   activations, the widths, the image shape (`28x28`) and, for a model that is not all dense,
//!   the kinds of its layers (`conv2d,max_pool2d,…`); PyTorch's `load_state_dict` takes the
//!   tensors as they are into an `nn.ModuleList` of the same layers.
//! - `state.safetensors`: everything `--resume` needs in one file, written last after every
//!   epoch: the same layers, Adam's moments `adam.m.{t}` and `adam.v.{t}` for each parameter
//!   tensor `t` in file order, Adam's step count, the run's [`Progress`], its name and its
//!   settings ([`Config`], as JSON) in the metadata, and the report's [`Snapshots`] as
//!   `report.reconstructions`, u8 (epochs, images, D). A checksum of the whole file in the
//!   metadata tells one changed since the run wrote it.
//!
//! Loading checks every name, shape and dtype and says what it found.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use ndarray::{Array1, Array2, Array3};
use safetensors::tensor::{Metadata, TensorInfo};
use safetensors::{Dtype, SafeTensors};
use thiserror::Error;

use crate::engine::activation::Activation;
use crate::engine::adam::Adam;
use crate::engine::conv::Conv2d;
use crate::engine::conv_transpose::ConvTranspose2d;
use crate::engine::dense::Dense;
use crate::engine::layer::{LAYER_KINDS, Layer};
use crate::engine::lowering::Image;
use crate::engine::model::Model;
use crate::engine::pool::MaxPool2d;
use crate::files::atomic::write_atomic;
use crate::train::{Config, Progress};

/// Why a model or state file could not be written or read.
#[derive(Debug, Error)]
#[error("{}: {message}", path.display())]
pub struct CheckpointError {
    /// The file.
    pub path: PathBuf,
    /// What was wrong with it.
    pub message: String,
}

fn error(path: &Path, message: impl ToString) -> CheckpointError {
    CheckpointError { path: path.to_path_buf(), message: message.to_string() }
}

/// A tensor to write: its name, shape and values.
type Named<'a> = (String, Vec<usize>, Values<'a>);

/// The values of a tensor to write.
enum Values<'a> {
    F32(std::borrow::Cow<'a, [f32]>),
    U8(&'a [u8]),
}

impl<'a> From<&'a [f32]> for Values<'a> {
    fn from(values: &'a [f32]) -> Values<'a> {
        Values::F32(values.into())
    }
}

impl From<Vec<f32>> for Values<'_> {
    fn from(values: Vec<f32>) -> Values<'static> {
        Values::F32(values.into())
    }
}

/// Writes `tensors` and `metadata` to `path` as safetensors, atomically, each tensor's bytes
/// straight from where it lives: a state as large as memory allows is written without a second
/// copy of it. The header is the `safetensors` crate's, its keys sorted (the crate's metadata is
/// a `HashMap`, whose order changes from run to run; sorted, the same model gives the same bytes).
/// With `checksum`, the metadata's [`CHECKSUM`] entry holds the file's CRC-32.
fn write(
    path: &Path,
    tensors: Vec<Named>,
    mut metadata: HashMap<String, String>,
    checksum: bool,
) -> Result<(), CheckpointError> {
    if checksum {
        metadata.insert(CHECKSUM.to_string(), UNSUMMED.to_string());
    }
    let mut offset = 0;
    let infos = tensors
        .iter()
        .map(|(name, shape, values)| {
            let (dtype, bytes) = match values {
                Values::F32(v) => (Dtype::F32, 4 * v.len()),
                Values::U8(v) => (Dtype::U8, v.len()),
            };
            let info = TensorInfo { dtype, shape: shape.clone(), data_offsets: (offset, offset + bytes) };
            offset += bytes;
            (name.clone(), info)
        })
        .collect();
    let header = Metadata::new(Some(metadata), infos).map_err(|e| error(path, e))?;
    // serde_json's maps are sorted by key.
    let mut header =
        serde_json::to_value(&header).and_then(|v| serde_json::to_vec(&v)).map_err(|e| error(path, e))?;
    header.resize(header.len().next_multiple_of(8), b' ');
    if checksum {
        let mut crc = crc32fast::Hasher::new();
        crc.update(&(header.len() as u64).to_le_bytes());
        crc.update(&header);
        for (_, _, values) in &tensors {
            let hashed = values.bytes(|b| {
                crc.update(b);
                Ok(())
            });
            hashed.expect("hashing does not fail");
        }
        let at = checksum_at(&header).expect("the entry just written");
        header[at..at + UNSUMMED.len()].copy_from_slice(crc32(crc).as_bytes());
    }
    write_atomic(path, |w| {
        w.write_all(&(header.len() as u64).to_le_bytes())?;
        w.write_all(&header)?;
        tensors.iter().try_for_each(|(_, _, values)| values.bytes(|b| w.write_all(b)))
    })
    .map_err(|e| error(path, e))
}

impl Values<'_> {
    /// Hands the values' bytes, as the file stores them (little-endian), to `f`, a piece at a
    /// time.
    fn bytes(&self, mut f: impl FnMut(&[u8]) -> std::io::Result<()>) -> std::io::Result<()> {
        match self {
            Values::F32(v) => {
                let mut bytes = [0u8; 4 * 1024];
                for chunk in v.chunks(1024) {
                    bytes
                        .chunks_exact_mut(4)
                        .zip(chunk)
                        .for_each(|(b, v)| b.copy_from_slice(&v.to_le_bytes()));
                    f(&bytes[..4 * chunk.len()])?;
                }
                Ok(())
            }
            Values::U8(v) => f(v),
        }
    }
}

/// The metadata key of a state's checksum: the CRC-32 of the whole file, as `crc32:` and eight
/// hex digits, taken with this entry's value written [`UNSUMMED`].
const CHECKSUM: &str = "checksum";

/// The checksum's value while the sum is taken.
const UNSUMMED: &str = "crc32:00000000";

/// A CRC-32 as [`CHECKSUM`] writes it.
fn crc32(crc: crc32fast::Hasher) -> String {
    format!("crc32:{:08x}", crc.finalize())
}

/// Where the value of the header's one [`CHECKSUM`] entry starts in `header`, the JSON as
/// written; `None` if it has none, or more than one.
fn checksum_at(header: &[u8]) -> Option<usize> {
    let key = format!("\"{CHECKSUM}\":\"");
    let mut found = header.windows(key.len()).enumerate().filter(|(_, w)| *w == key.as_bytes());
    match (found.next(), found.next()) {
        (Some((at, _)), None) => Some(at + key.len()),
        _ => None,
    }
}

/// The metadata keys [`save_state`] writes: a state with any other (a key edited by hand, say
/// [`CHECKSUM`]'s, which would take the file for one from before states had a checksum) is
/// refused.
const STATE_KEYS: [&str; 13] = [
    "format",
    "activations",
    "widths",
    "image",
    "layers",
    "run",
    "config",
    "report.first_epoch",
    "adam.t",
    "epoch",
    "step",
    "loss_sum",
    CHECKSUM,
];

/// Writes `model`, trained on images of `image` = (rows, cols) pixels, to `path`.
pub fn save(model: &Model, image: (usize, usize), path: &Path) -> Result<(), CheckpointError> {
    let (tensors, metadata) = model_tensors(model, image);
    write(path, tensors, metadata, false)
}

/// The model's tensors and metadata, as [`save`] writes them.
fn model_tensors(model: &Model, (rows, cols): (usize, usize)) -> (Vec<Named<'_>>, HashMap<String, String>) {
    let mut tensors = Vec::new();
    for (i, layer) in model.layers.iter().enumerate() {
        let (shape, w, b) = match layer {
            Layer::Dense(d) => {
                (vec![d.outputs(), d.inputs()], d.w().to_slice().expect("contiguous").into(), &d.b)
            }
            Layer::Conv2d(c) => {
                let (k, channels) = (c.kernel(), c.input.channels);
                (vec![c.w.nrows(), channels, k, k], channels_first(&c.w, channels).into(), &c.b)
            }
            Layer::ConvTranspose2d(c) => {
                let (k, outputs) = (c.kernel(), c.b.len());
                (vec![c.w.nrows(), outputs, k, k], channels_first(&c.w, outputs).into(), &c.b)
            }
            Layer::MaxPool2d(_) => continue,
        };
        tensors.push((format!("layers.{i}.weight"), shape, w));
        tensors.push((format!("layers.{i}.bias"), vec![b.len()], b.as_slice().expect("contiguous").into()));
    }
    let activations: Vec<&str> = model.activations.iter().map(|a| a.name()).collect();
    let widths: Vec<String> = model.widths().iter().map(usize::to_string).collect();
    let mut metadata = HashMap::from([
        ("format".to_string(), "pt".to_string()),
        ("activations".to_string(), activations.join(",")),
        ("widths".to_string(), widths.join(",")),
        ("image".to_string(), format!("{rows}x{cols}")),
    ]);
    if !model.is_dense() {
        let kinds: Vec<&str> = model.layers.iter().map(Layer::kind).collect();
        metadata.insert("layers".to_string(), kinds.join(","));
    }
    (tensors, metadata)
}

/// A kernel kept `(R, k·k·C)`, taps in `(ky, kx, c)` order, as PyTorch's `(R, C, k, k)`.
fn channels_first(w: &Array2<f32>, channels: usize) -> Vec<f32> {
    let (rows, taps) = (w.nrows(), w.ncols() / channels);
    let w = w.view().into_shape_with_order((rows, taps, channels)).expect("k·k·C per row");
    w.permuted_axes([0, 2, 1]).iter().copied().collect()
}

/// The inverse of [`channels_first`]: PyTorch's `(R, C, k, k)` as `(R, k·k·C)`.
fn channels_last(values: Vec<f32>, rows: usize, channels: usize, taps: usize) -> Array2<f32> {
    let w = Array3::from_shape_vec((rows, channels, taps), values).expect("shape checked");
    let w: Vec<f32> = w.permuted_axes([0, 2, 1]).iter().copied().collect();
    Array2::from_shape_vec((rows, taps * channels), w).expect("the same count")
}

/// The same test images reconstructed after each epoch, kept small (8-bit gray levels) for the
/// report's "learning to denoise" figure.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshots {
    /// Images per epoch.
    pub images: usize,
    /// Pixels per image.
    pub pixels: usize,
    /// The epoch of the first snapshot, 1-based (later than 1 for a run begun before they
    /// were kept).
    pub first: usize,
    /// `epochs · images · pixels` gray levels, epoch by epoch.
    pub gray: Vec<u8>,
}

impl Snapshots {
    /// Room for `images` images of `pixels` pixels per epoch from epoch `first` on, none taken yet.
    pub fn new(images: usize, pixels: usize, first: usize) -> Snapshots {
        Snapshots { images, pixels, first, gray: Vec::new() }
    }

    /// The epochs recorded.
    pub fn epochs(&self) -> usize {
        self.gray.len().checked_div(self.images * self.pixels).unwrap_or(0)
    }

    /// Records the next epoch's reconstructions `x̂` (images, pixels), values in `[0, 1]`.
    pub fn push(&mut self, reconstructions: ndarray::ArrayView2<f32>) {
        assert_eq!(reconstructions.dim(), (self.images, self.pixels), "one epoch's images");
        self.gray.extend(reconstructions.iter().map(|&v| crate::files::pngio::gray_level(v)));
    }

    /// Epoch `e`'s (0-based) reconstructions, (images, pixels), values in `[0, 1]`.
    pub fn epoch(&self, e: usize) -> Array2<f32> {
        let size = self.images * self.pixels;
        let gray = &self.gray[e * size..(e + 1) * size];
        Array2::from_shape_fn((self.images, self.pixels), |(i, j)| {
            f32::from(gray[i * self.pixels + j]) / 255.0
        })
    }
}

/// Everything `--resume` needs, as `state.safetensors` holds it.
#[derive(Debug, Clone)]
pub struct State {
    /// The model.
    pub model: Model,
    /// Its optimizer.
    pub adam: Adam,
    /// How far the run had come.
    pub progress: Progress,
    /// The reconstructions after each finished epoch; `None` in files from before they were kept.
    pub snapshots: Option<Snapshots>,
    /// The run it belongs to, as `metrics.json` names it; `None` in files from before runs
    /// were named.
    pub run: Option<String>,
    /// The settings it was trained with, as `metrics.json` holds them; `None` in files from
    /// before states kept them.
    pub config: Option<Config>,
}

/// The run a state belongs to: its name and settings, as `metrics.json` holds them.
#[derive(Debug, Clone, Copy)]
pub struct Owner<'a> {
    /// The run's name.
    pub run: &'a str,
    /// Its settings.
    pub config: &'a Config,
}

/// Writes the model, Adam's moments and step count, the run's progress, the snapshots and the
/// run's name and settings to `path`.
pub fn save_state(
    model: &Model,
    image: (usize, usize),
    adam: &Adam,
    progress: Progress,
    snapshots: Option<&Snapshots>,
    owner: Option<Owner>,
    path: &Path,
) -> Result<(), CheckpointError> {
    let (mut tensors, mut metadata) = model_tensors(model, image);
    if let Some(owner) = owner {
        metadata.insert("run".to_string(), owner.run.to_string());
        let config = serde_json::to_string(owner.config).map_err(|e| error(path, e))?;
        metadata.insert("config".to_string(), config);
    }
    for (t, (m, v)) in adam.m.iter().zip(&adam.v).enumerate() {
        tensors.push((format!("adam.m.{t}"), vec![m.len()], m.as_slice().expect("contiguous").into()));
        tensors.push((format!("adam.v.{t}"), vec![v.len()], v.as_slice().expect("contiguous").into()));
    }
    if let Some(snapshots) = snapshots {
        let shape = vec![snapshots.epochs(), snapshots.images, snapshots.pixels];
        tensors.push(("report.reconstructions".to_string(), shape, Values::U8(&snapshots.gray)));
        metadata.insert("report.first_epoch".to_string(), snapshots.first.to_string());
    }
    metadata.extend([
        ("adam.t".to_string(), adam.t.to_string()),
        ("epoch".to_string(), progress.epoch.to_string()),
        ("step".to_string(), progress.step.to_string()),
        // Rust prints an f64 with the fewest digits that read back to the same bits.
        ("loss_sum".to_string(), progress.loss_sum.to_string()),
    ]);
    write(path, tensors, metadata, true)
}

/// The bytes of a safetensors file and its metadata map.
struct File {
    bytes: Vec<u8>,
    metadata: HashMap<String, String>,
}

impl File {
    fn read(path: &Path) -> Result<File, CheckpointError> {
        // The file is read whole, and its tensors made beside it, then the layers from them (a
        // dense layer's `Wᵀ` too): three times its size, asked of the memory limit before a byte
        // is read; a command's own count comes after. (Loading a 266 MiB state peaked at 2.5
        // times its size, a 89 MiB model for `denoise` at 3.2 with the rest of the command.)
        let len = std::fs::metadata(path).map_or(0, |m| m.len());
        let need = crate::memory::PROCESS.saturating_add(len.saturating_mul(3));
        let what = || format!("reading it ({}) and building what it holds", crate::memory::size(len));
        crate::memory::check(need, what).map_err(|m| error(path, m))?;
        // The largest state a run writes (`--layers 65536,65536` is refused) is under 4 GiB.
        let bytes = crate::files::regular::read_regular(path, 4 << 30).map_err(|e| error(path, e))?;
        check_length(&bytes).map_err(|m| error(path, m))?;
        let not_safetensors = |e| error(path, format!("not a safetensors file: {e}"));
        let (_, meta) = SafeTensors::read_metadata(&bytes).map_err(not_safetensors)?;
        SafeTensors::deserialize(&bytes).map_err(not_safetensors)?;
        let metadata = meta.metadata().clone().unwrap_or_default();
        Ok(File { bytes, metadata })
    }

    /// Whether the file is as [`save_state`] wrote it: its [`CHECKSUM`] matches, and its
    /// metadata has no key a state never has. A state from before states had a checksum has
    /// none, and is taken as it is.
    fn check_sum(&self, path: &Path) -> Result<(), CheckpointError> {
        if let Some(key) = self.metadata.keys().find(|k| !STATE_KEYS.contains(&k.as_str())) {
            return Err(error(
                path,
                format!("metadata '{key}' is not one a run's state has: the file was edited"),
            ));
        }
        let Some(saved) = self.metadata.get(CHECKSUM) else { return Ok(()) };
        let header = 8 + u64::from_le_bytes(self.bytes[..8].try_into().expect("8 bytes")) as usize;
        let computed = checksum_at(&self.bytes[8..header]).map(|at| 8 + at).and_then(|at| {
            let value = self.bytes.get(at..at + UNSUMMED.len())?;
            let mut crc = crc32fast::Hasher::new();
            crc.update(&self.bytes[..at]);
            crc.update(UNSUMMED.as_bytes());
            crc.update(&self.bytes[at + UNSUMMED.len()..]);
            (value == saved.as_bytes()).then(|| crc32(crc))
        });
        if computed.as_ref() != Some(saved) {
            let message = "it does not match the checksum the run saved in it: the file was changed since \
                the run wrote it (edited by hand, or damaged)";
            return Err(error(path, message));
        }
        Ok(())
    }

    fn tensors(&self) -> SafeTensors<'_> {
        SafeTensors::deserialize(&self.bytes).expect("checked in File::read")
    }

    /// The metadata entry `key`, parsed.
    fn meta<T: std::str::FromStr>(&self, path: &Path, key: &str) -> Result<T, CheckpointError> {
        let value =
            self.metadata.get(key).ok_or_else(|| error(path, format!("no '{key}' in the metadata")))?;
        value.parse().map_err(|_| error(path, format!("metadata '{key}' = '{value}' is not a valid value")))
    }
}

/// Whether the file's length is what its header says: the header's own length in the first 8
/// bytes, then the tensors' bytes up to the largest offset it gives. A file cut short, or with
/// bytes after its last tensor, is named as such (the `safetensors` crate's word for both is
/// "incomplete metadata").
fn check_length(bytes: &[u8]) -> Result<(), String> {
    let Some((length, rest)) = bytes.split_first_chunk::<8>() else {
        return Err(format!(
            "truncated: {} bytes, fewer than the 8 that give its header's length",
            bytes.len()
        ));
    };
    let header = u64::from_le_bytes(*length);
    let Some(header) = usize::try_from(header).ok().and_then(|n| rest.get(..n)) else {
        if let Some(kind) = other_format(bytes) {
            return Err(format!("not a safetensors file: {kind}"));
        }
        return Err(format!(
            "its first 8 bytes give a header of {header} bytes, but {} follow: truncated, or not a safetensors file",
            rest.len()
        ));
    };
    // Offsets the crate will check in detail; here only the end of the last tensor, if every
    // tensor gives one (else the crate names what is wrong).
    let end = serde_json::from_slice::<serde_json::Value>(header).ok().and_then(|json| {
        let tensors = json.as_object()?.iter().filter(|(name, _)| *name != "__metadata__");
        let ends: Option<Vec<u64>> = tensors.map(|(_, t)| t.get("data_offsets")?.get(1)?.as_u64()).collect();
        Some(ends?.into_iter().max().unwrap_or(0))
    });
    let have = (rest.len() - header.len()) as u64;
    match end {
        Some(need) if need > have => Err(format!(
            "truncated, or its header is wrong: its tensors end {need} bytes after the header, and {have} are there"
        )),
        Some(need) if need < have => Err(format!(
            "{} bytes after its last tensor: added to since it was written, or not what dae writes",
            have - need
        )),
        _ => Ok(()),
    }
}

/// What a file whose header cannot be read is, where its first bytes say: a model flag given
/// an image, a PyTorch checkpoint or the run's `metrics.json`. (Only once the header's length is
/// known to be wrong: the length of a real header may begin with any of these bytes.)
fn other_format(bytes: &[u8]) -> Option<&'static str> {
    const KINDS: [(&[u8], &str); 6] = [
        (b"\x89PNG\r\n\x1a\n", "it is a PNG image"),
        (b"GIF8", "it is a GIF image"),
        (b"\xff\xd8\xff", "it is a JPEG image"),
        (b"\x1f\x8b", "it is gzip data"),
        (b"PK\x03\x04", "it is a ZIP archive, as PyTorch's .pt files are"),
        (b"{", "it is JSON text, as a run's metrics.json is"),
    ];
    // A header's length whose first byte is `{` comes before the header's own `{`; JSON text
    // does not have one there.
    if bytes.get(8) == Some(&b'{') {
        return None;
    }
    KINDS.iter().find(|(magic, _)| bytes.starts_with(magic)).map(|&(_, kind)| kind)
}

/// Reads a model written by [`save`].
pub fn load(path: &Path) -> Result<Model, CheckpointError> {
    let file = File::read(path)?;
    if file.metadata.contains_key("adam.t") {
        let message =
            "a run's training state (for --resume), not a model; the model is model.safetensors beside it";
        return Err(error(path, message.to_string()));
    }
    let model = read_model(&file, path)?;
    let (tensors, expected) = (file.tensors().len(), model.param_sizes().len());
    if tensors != expected {
        return Err(error(path, format!("{tensors} tensors, the layers have {expected}")));
    }
    // Weights edited by hand to near f32's largest load, and then make codes of `inf` and
    // measures of NaN; a trained model's bounds are many orders of magnitude below.
    let bounds = model.bounds();
    if let Some((l, bound)) =
        bounds.iter().enumerate().find(|(_, b)| b.is_nan() || **b >= f64::from(f32::MAX))
    {
        let message = format!(
            "weights too large: layers.{l}'s outputs can reach {bound:.1e} on images in [0, 1], past \
             f32's largest number, 3.4e38"
        );
        return Err(error(path, message));
    }
    Ok(model)
}

/// The (rows, cols) of the images the model in `path` was trained on, if the file says.
pub fn image_shape(path: &Path) -> Result<Option<(usize, usize)>, CheckpointError> {
    image_of(&File::read(path)?, path)
}

/// The (rows, cols) in `file`'s metadata, if it has them.
fn image_of(file: &File, path: &Path) -> Result<Option<(usize, usize)>, CheckpointError> {
    let Some(shape) = file.metadata.get("image") else { return Ok(None) };
    let parsed = shape.split_once('x').and_then(|(r, c)| Some((r.parse().ok()?, c.parse().ok()?)));
    parsed.map(Some).ok_or_else(|| error(path, format!("metadata 'image' = '{shape}' is not ROWSxCOLS")))
}

/// The layers and activations stored in `file`.
fn read_model(file: &File, path: &Path) -> Result<Model, CheckpointError> {
    let names: String = file.meta(path, "activations")?;
    let activations = names
        .split(',')
        .map(|n| Activation::from_name(n).ok_or_else(|| error(path, format!("unknown activation '{n}'"))))
        .collect::<Result<Vec<_>, _>>()?;
    // The shape every model here has: an encoder and a decoder, ReLU inside, a sigmoid out.
    if activations.len() < 2 || activations.last() != Some(&Activation::Sigmoid) {
        let message = format!("activations '{names}': expected two or more layers, the last a sigmoid");
        return Err(error(path, message));
    }
    let kinds: Vec<String> = match file.metadata.get("layers") {
        Some(kinds) => kinds.split(',').map(str::to_string).collect(),
        None => vec!["dense".to_string(); activations.len()],
    };
    if let Some(kind) = kinds.iter().find(|k| !LAYER_KINDS.contains(&k.as_str())) {
        let known = LAYER_KINDS.join(", ");
        let message = format!("metadata 'layers': unknown layer kind '{kind}' (known: {known})");
        return Err(error(path, message));
    }
    if kinds.len() != activations.len() {
        let message = format!("{} layers but {} activations", kinds.len(), activations.len());
        return Err(error(path, message));
    }
    let widths: Option<Vec<usize>> = file
        .metadata
        .get("widths")
        .map(|w| {
            w.split(',')
                .map(|v| v.parse().map_err(|_| error(path, format!("metadata 'widths' = '{w}'"))))
                .collect()
        })
        .transpose()?;
    let st = file.tensors();
    if let Some((rows, cols)) = image_of(file, path)?
        && (rows == 0 || cols == 0 || rows.saturating_mul(cols) > 1 << 24)
    {
        let message = format!("metadata 'image' = {rows}x{cols}: not an image size (1 to 16777216 pixels)");
        return Err(error(path, message));
    }
    let mut image = match file.metadata.get("image") {
        Some(_) => image_of(file, path)?.map(|(h, w)| Image::new(h, w, 1)),
        None => None,
    };
    let mut layers: Vec<Layer> = Vec::new();
    for (i, kind) in kinds.iter().enumerate() {
        let layer = read_layer(&st, path, i, kind, image, widths.as_deref())?;
        if let Some(prev) = layers.last().map(Layer::outputs).filter(|&p| p != layer.inputs()) {
            let message =
                format!("layers.{i}.weight takes {} inputs, layer {} gives {prev}", layer.inputs(), i - 1);
            return Err(error(path, message));
        }
        check_geometry(&layer).map_err(|m| error(path, format!("layers.{i}: {m}")))?;
        image = match &layer {
            Layer::Dense(_) => None,
            Layer::Conv2d(c) => Some(c.output()),
            Layer::ConvTranspose2d(c) => Some(c.output()),
            Layer::MaxPool2d(p) => Some(p.output()),
        };
        layers.push(layer);
    }
    let model = Model { layers, activations };
    if let Some((rows, cols)) = image_of(file, path)?
        && (rows == 0 || cols == 0 || rows.checked_mul(cols) != Some(model.widths()[0]))
    {
        let d = model.widths()[0];
        let pixels = if d == 1 { "1 pixel".to_string() } else { format!("{d} pixels") };
        let message = format!("metadata 'image' = {rows}x{cols}, but the model takes {pixels}");
        return Err(error(path, message));
    }
    let widths_now = model.widths();
    let (input, output) = (widths_now[0], widths_now[widths_now.len() - 1]);
    if input != output {
        let message = format!(
            "the model maps {input} numbers to {output}: an autoencoder's output is its input's size"
        );
        return Err(error(path, message));
    }
    if let Some(widths) = widths.filter(|w| *w != model.widths()) {
        let message = format!("metadata 'widths' = {widths:?}, the tensors give {:?}", model.widths());
        return Err(error(path, message));
    }
    Ok(model)
}

/// Whether a convolutional layer's kernel fits its image: odd (a "same" window has a centre)
/// and no larger than the image's smaller side.
fn check_geometry(layer: &Layer) -> Result<(), String> {
    let (kernel, image) = match layer {
        Layer::Conv2d(c) => (c.kernel(), c.input),
        Layer::ConvTranspose2d(c) => (c.kernel(), c.output()),
        Layer::Dense(_) | Layer::MaxPool2d(_) => return Ok(()),
    };
    let side = image.height.min(image.width);
    match kernel {
        k if k % 2 == 1 && k <= side => Ok(()),
        k => Err(format!(
            "a {k}×{k} kernel on {}×{} images; expected an odd size up to {side}",
            image.height, image.width
        )),
    }
}

/// Layer `i`, of kind `kind`, on images `image` (the previous layer's output, if an image).
fn read_layer(
    st: &SafeTensors,
    path: &Path,
    i: usize,
    kind: &str,
    image: Option<Image>,
    widths: Option<&[usize]>,
) -> Result<Layer, CheckpointError> {
    let image =
        || image.ok_or_else(|| error(path, format!("layers.{i} is a {kind}, but its input is not an image")));
    if kind == "max_pool2d" {
        let input = image()?;
        if input.height % 2 != 0 || input.width % 2 != 0 {
            let message = format!(
                "layers.{i} pools a {}×{} image; 2×2 pooling needs even sides",
                input.width, input.height
            );
            return Err(error(path, message));
        }
        return Ok(Layer::MaxPool2d(MaxPool2d { input }));
    }
    let rank = if kind == "dense" { 2 } else { 4 };
    let name = format!("layers.{i}.weight");
    let (w_shape, w) = tensor(st, path, &name, rank)?;
    let (b_shape, b) = tensor(st, path, &format!("layers.{i}.bias"), 1)?;
    if w_shape.contains(&0) {
        return Err(error(path, format!("{name} has shape {w_shape:?}; a layer needs a width")));
    }
    let outputs = if kind == "conv_transpose2d" { w_shape[1] } else { w_shape[0] };
    if b_shape != [outputs] {
        return Err(error(path, format!("layers.{i}.bias has shape {b_shape:?}, expected [{outputs}]")));
    }
    let b = Array1::from(b);
    if kind == "dense" {
        let w = Array2::from_shape_vec((w_shape[0], w_shape[1]), w).expect("shape checked");
        return Ok(Layer::Dense(Dense::from_parts(w, b)));
    }
    let (k, input) = (w_shape[2], image()?);
    let channels = if kind == "conv_transpose2d" { w_shape[0] } else { w_shape[1] };
    if w_shape[3] != k || k % 2 == 0 || channels != input.channels {
        let message = format!(
            "{name} has shape {w_shape:?}; expected an odd square kernel over the input's {} channels",
            input.channels
        );
        return Err(error(path, message));
    }
    match kind {
        "conv2d" => {
            Ok(Layer::Conv2d(Conv2d::from_parts(input, channels_last(w, outputs, channels, k * k), b)))
        }
        "conv_transpose2d" => {
            // The stride is what makes the output as wide as the metadata says.
            let width = widths.and_then(|w| w.get(i + 1)).copied().unwrap_or(0);
            let scale = width / (input.pixels() * outputs).max(1);
            let stride = (1..=8).find(|s| s * s == scale && width == scale * input.pixels() * outputs);
            let stride = stride
                .ok_or_else(|| error(path, format!("layers.{i}: no stride gives a width of {width}")))?;
            let w = channels_last(w, channels, outputs, k * k);
            Ok(Layer::ConvTranspose2d(ConvTranspose2d::from_parts(input, stride, w, b)))
        }
        _ => Err(error(path, format!("unknown layer kind '{kind}'"))),
    }
}

/// Reads a state written by [`save_state`]; Adam gets learning rate `lr` and its default betas
/// and epsilon.
pub fn load_state(path: &Path, lr: f32) -> Result<State, CheckpointError> {
    let file = File::read(path)?;
    file.check_sum(path)?;
    let model = read_model(&file, path)?;
    let sizes = model.param_sizes();
    let st = file.tensors();
    let mut adam = Adam::new(lr, sizes.iter().copied());
    adam.t = file.meta(path, "adam.t")?;
    for (t, &size) in sizes.iter().enumerate() {
        for (name, moment) in [("m", &mut adam.m[t]), ("v", &mut adam.v[t])] {
            let (shape, values) = tensor(&st, path, &format!("adam.{name}.{t}"), 1)?;
            if shape != [size] {
                return Err(error(
                    path,
                    format!("adam.{name}.{t} has {} values, the model needs {size}", shape[0]),
                ));
            }
            // A negative second moment would make Adam's `√v` NaN, and the weights with it.
            let negative = if name == "v" { values.iter().position(|&v| v < 0.0) } else { None };
            if let Some(at) = negative {
                let v = values[at];
                let message = format!(
                    "adam.v.{t} holds {v} at index {at}: a second moment (a mean of squares) is never negative"
                );
                return Err(error(path, message));
            }
            moment.assign(&Array1::from(values));
        }
    }
    let snapshots = read_snapshots(&file, path, model.widths()[0])?;
    if st.len() != 3 * sizes.len() + usize::from(snapshots.is_some()) {
        return Err(error(path, format!("{} tensors for {} parameter tensors", st.len(), sizes.len())));
    }
    let progress = Progress {
        epoch: file.meta(path, "epoch")?,
        step: file.meta(path, "step")?,
        loss_sum: file.meta(path, "loss_sum")?,
    };
    if !(progress.loss_sum.is_finite() && progress.loss_sum >= 0.0) {
        return Err(error(path, format!("loss_sum = {}: not a finite sum of losses", progress.loss_sum)));
    }
    if adam.t >= i32::MAX as u32 {
        return Err(error(
            path,
            format!("adam.t = {}: more steps than Adam counts (at most {})", adam.t, i32::MAX),
        ));
    }
    // Checked sums: the numbers come from a file that may have been edited.
    let agrees = |s: &&Snapshots| {
        s.first.checked_add(s.epochs()).is_some_and(|n| Some(n) == progress.epoch.checked_add(1))
    };
    if let Some(s) = snapshots.as_ref().filter(|s| !agrees(s)) {
        let (first, epochs, done) = (s.first, s.epochs(), progress.epoch);
        let message = format!(
            "report.reconstructions holds {epochs} epoch(s) from epoch {first} on, but the run has done {done}"
        );
        return Err(error(path, message));
    }
    let settings = |json: &String| serde_json::from_str(json);
    let config = file.metadata.get("config").map(settings).transpose();
    let config =
        config.map_err(|e| error(path, format!("metadata 'config' is not a run's settings: {e}")))?;
    Ok(State { model, adam, progress, snapshots, run: file.metadata.get("run").cloned(), config })
}

/// The snapshots in a state file, of images of `pixels` pixels; `None` if the file has none.
fn read_snapshots(file: &File, path: &Path, pixels: usize) -> Result<Option<Snapshots>, CheckpointError> {
    let st = file.tensors();
    let Ok(t) = st.tensor("report.reconstructions") else { return Ok(None) };
    let first: usize = file.meta(path, "report.first_epoch")?;
    match (t.dtype(), t.shape()) {
        (Dtype::U8, &[_, images, p]) if p == pixels && images > 0 && first > 0 => {
            Ok(Some(Snapshots { images, pixels, first, gray: t.data().to_vec() }))
        }
        (dtype, shape) => {
            let message = format!(
                "'report.reconstructions' is {dtype:?} of shape {shape:?} from epoch {first}, expected U8 (epochs, images, {pixels}) from epoch 1 or later"
            );
            Err(error(path, message))
        }
    }
}

/// The tensor `name`: f32 of rank `rank`, as its shape and values.
fn tensor(
    st: &SafeTensors,
    path: &Path,
    name: &str,
    rank: usize,
) -> Result<(Vec<usize>, Vec<f32>), CheckpointError> {
    let t = st.tensor(name).map_err(|_| error(path, format!("no tensor '{name}'")))?;
    if t.dtype() != Dtype::F32 || t.shape().len() != rank {
        let message =
            format!("'{name}' is {:?} of shape {:?}, expected F32 of rank {rank}", t.dtype(), t.shape());
        return Err(error(path, message));
    }
    let values: Vec<f32> =
        t.data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
    if let Some(at) = values.iter().position(|v| !v.is_finite()) {
        return Err(error(
            path,
            format!("'{name}' holds {} at index {at}; a trained model has none", values[at]),
        ));
    }
    Ok((t.shape().to_vec(), values))
}
