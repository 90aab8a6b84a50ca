//! Files in the safetensors format: the model, laid out like PyTorch's `nn.Linear` stack, and
//! the training state that `--resume` needs besides it.
//!
//! - `model.safetensors`: `layers.{i}.weight` (out, in) and `layers.{i}.bias` (out,), f32, with
//!   the activations, widths and image shape (`28x28`) in the metadata; PyTorch's
//!   `load_state_dict` takes it as it is.
//! - `state.safetensors`: everything `--resume` needs in one file, written last after every
//!   epoch: the same layers, Adam's moments `adam.m.{t}` and `adam.v.{t}` for each parameter
//!   tensor `t` in file order, and Adam's step count and the run's [`Progress`] in the metadata.
//!
//! Loading checks every name, shape and dtype and says what it found.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use ndarray::{Array1, Array2};
use safetensors::{Dtype, SafeTensors, tensor::TensorView};
use thiserror::Error;

use crate::engine::activation::Activation;
use crate::engine::adam::Adam;
use crate::engine::dense::Dense;
use crate::engine::model::Model;
use crate::files::output::write_atomic;
use crate::train::Progress;

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
type Named<'a> = (String, Vec<usize>, &'a [f32]);

/// Writes `tensors` and `metadata` to `path` as safetensors, atomically.
fn write(path: &Path, tensors: Vec<Named>, metadata: HashMap<String, String>) -> Result<(), CheckpointError> {
    let bytes: Vec<Vec<u8>> =
        tensors.iter().map(|(_, _, values)| values.iter().flat_map(|v| v.to_le_bytes()).collect()).collect();
    let views = tensors.iter().zip(&bytes).map(|((name, shape, _), data)| {
        let view = TensorView::new(Dtype::F32, shape.clone(), data).expect("shape matches data");
        (name.clone(), view)
    });
    let file = safetensors::serialize(views, Some(metadata)).map_err(|e| error(path, e))?;
    write_atomic(path, |w| w.write_all(&file)).map_err(|e| error(path, e))
}

/// Writes `model`, trained on images of `image` = (rows, cols) pixels, to `path`.
pub fn save(model: &Model, image: (usize, usize), path: &Path) -> Result<(), CheckpointError> {
    let (tensors, metadata) = model_tensors(model, image);
    write(path, tensors, metadata)
}

/// The model's tensors and metadata, as [`save`] writes them.
fn model_tensors(model: &Model, (rows, cols): (usize, usize)) -> (Vec<Named<'_>>, HashMap<String, String>) {
    let mut tensors = Vec::new();
    for (i, layer) in model.layers.iter().enumerate() {
        let (w, b) = (layer.w.as_slice().expect("contiguous"), layer.b.as_slice().expect("contiguous"));
        tensors.push((format!("layers.{i}.weight"), vec![layer.outputs(), layer.inputs()], w));
        tensors.push((format!("layers.{i}.bias"), vec![layer.outputs()], b));
    }
    let activations: Vec<&str> = model.activations.iter().map(|a| a.name()).collect();
    let widths: Vec<String> = model.widths().iter().map(usize::to_string).collect();
    let metadata = HashMap::from([
        ("format".to_string(), "pt".to_string()),
        ("activations".to_string(), activations.join(",")),
        ("widths".to_string(), widths.join(",")),
        ("image".to_string(), format!("{rows}x{cols}")),
    ]);
    (tensors, metadata)
}

/// Writes the model, Adam's moments and step count, and the run's progress to `path`.
pub fn save_state(
    model: &Model,
    image: (usize, usize),
    adam: &Adam,
    progress: Progress,
    path: &Path,
) -> Result<(), CheckpointError> {
    let (mut tensors, mut metadata) = model_tensors(model, image);
    for (t, (m, v)) in adam.m.iter().zip(&adam.v).enumerate() {
        tensors.push((format!("adam.m.{t}"), vec![m.len()], &m[..]));
        tensors.push((format!("adam.v.{t}"), vec![v.len()], &v[..]));
    }
    metadata.extend([
        ("adam.t".to_string(), adam.t.to_string()),
        ("epoch".to_string(), progress.epoch.to_string()),
        ("step".to_string(), progress.step.to_string()),
        // Rust prints an f64 with the fewest digits that read back to the same bits.
        ("loss_sum".to_string(), progress.loss_sum.to_string()),
    ]);
    write(path, tensors, metadata)
}

/// The bytes of a safetensors file and its metadata map.
struct File {
    bytes: Vec<u8>,
    metadata: HashMap<String, String>,
}

impl File {
    fn read(path: &Path) -> Result<File, CheckpointError> {
        let bytes = std::fs::read(path).map_err(|e| error(path, e))?;
        let not_safetensors = |e| error(path, format!("not a safetensors file: {e}"));
        let (_, meta) = SafeTensors::read_metadata(&bytes).map_err(not_safetensors)?;
        SafeTensors::deserialize(&bytes).map_err(not_safetensors)?;
        let metadata = meta.metadata().clone().unwrap_or_default();
        Ok(File { bytes, metadata })
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

/// Reads a model written by [`save`].
pub fn load(path: &Path) -> Result<Model, CheckpointError> {
    let file = File::read(path)?;
    let model = read_model(&file, path)?;
    let tensors = file.tensors().len();
    if tensors != 2 * model.layers.len() {
        return Err(error(path, format!("{tensors} tensors for {} layers", model.layers.len())));
    }
    Ok(model)
}

/// The (rows, cols) of the images the model in `path` was trained on, if the file says.
pub fn image_shape(path: &Path) -> Result<Option<(usize, usize)>, CheckpointError> {
    let file = File::read(path)?;
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
    let st = file.tensors();
    let mut layers = Vec::new();
    for i in 0..activations.len() {
        let (w_shape, w) = tensor(&st, path, &format!("layers.{i}.weight"), 2)?;
        let (b_shape, b) = tensor(&st, path, &format!("layers.{i}.bias"), 1)?;
        let (outputs, inputs) = (w_shape[0], w_shape[1]);
        if outputs == 0 || inputs == 0 {
            return Err(error(
                path,
                format!("layers.{i}.weight has shape {w_shape:?}; a layer needs a width"),
            ));
        }
        if b_shape != [outputs] {
            return Err(error(path, format!("layers.{i}.bias has shape {b_shape:?}, expected [{outputs}]")));
        }
        if let Some(prev) = layers.last().map(Dense::outputs).filter(|&p| p != inputs) {
            let message = format!("layers.{i}.weight takes {inputs} inputs, layer {} gives {prev}", i - 1);
            return Err(error(path, message));
        }
        let w = Array2::from_shape_vec((outputs, inputs), w).expect("shape checked");
        layers.push(Dense::from_parts(w, Array1::from(b)));
    }
    Ok(Model { layers, activations })
}

/// Reads a state written by [`save_state`]; Adam gets learning rate `lr` and its default betas
/// and epsilon.
pub fn load_state(path: &Path, lr: f32) -> Result<(Model, Adam, Progress), CheckpointError> {
    let file = File::read(path)?;
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
            *moment = values;
        }
    }
    if st.len() != 3 * sizes.len() {
        return Err(error(path, format!("{} tensors for {} parameter tensors", st.len(), sizes.len())));
    }
    let progress = Progress {
        epoch: file.meta(path, "epoch")?,
        step: file.meta(path, "step")?,
        loss_sum: file.meta(path, "loss_sum")?,
    };
    Ok((model, adam, progress))
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
