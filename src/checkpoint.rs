//! Model files in the safetensors format, laid out like PyTorch's `nn.Linear` stack:
//! `layers.{i}.weight` (out, in) and `layers.{i}.bias` (out,), f32, with the activations in the
//! file's metadata. Loading checks every name, shape and dtype and says what it found.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use ndarray::{Array1, Array2};
use safetensors::{Dtype, SafeTensors, tensor::TensorView};
use thiserror::Error;

use crate::activation::Activation;
use crate::dense::Dense;
use crate::model::Model;
use crate::output::write_atomic;

/// Why a model file could not be written or read.
#[derive(Debug, Error)]
#[error("{}: {message}", path.display())]
pub struct CheckpointError {
    pub path: PathBuf,
    pub message: String,
}

fn error(path: &Path, message: impl ToString) -> CheckpointError {
    CheckpointError {
        path: path.to_path_buf(),
        message: message.to_string(),
    }
}

/// Writes `model` to `path` (atomically).
pub fn save(model: &Model, path: &Path) -> Result<(), CheckpointError> {
    let bytes = |a: &[f32]| -> Vec<u8> { a.iter().flat_map(|v| v.to_le_bytes()).collect() };
    let mut tensors = Vec::new();
    for (i, layer) in model.layers.iter().enumerate() {
        let w = bytes(layer.w.as_slice().expect("contiguous"));
        let b = bytes(layer.b.as_slice().expect("contiguous"));
        tensors.push((
            format!("layers.{i}.weight"),
            (vec![layer.outputs(), layer.inputs()], w),
        ));
        tensors.push((format!("layers.{i}.bias"), (vec![layer.outputs()], b)));
    }
    let views = tensors.iter().map(|(name, (shape, data))| {
        let view = TensorView::new(Dtype::F32, shape.clone(), data).expect("shape matches data");
        (name.clone(), view)
    });
    let activations: Vec<&str> = model.activations.iter().map(|a| a.name()).collect();
    let widths: Vec<String> = model.widths().iter().map(usize::to_string).collect();
    let metadata = HashMap::from([
        ("format".to_string(), "pt".to_string()),
        ("activations".to_string(), activations.join(",")),
        ("widths".to_string(), widths.join(",")),
    ]);
    let file = safetensors::serialize(views, Some(metadata)).map_err(|e| error(path, e))?;
    write_atomic(path, |w| w.write_all(&file)).map_err(|e| error(path, e))
}

/// Reads a model written by [`save`].
pub fn load(path: &Path) -> Result<Model, CheckpointError> {
    let file = std::fs::read(path).map_err(|e| error(path, e))?;
    let (_, meta) = SafeTensors::read_metadata(&file)
        .map_err(|e| error(path, format!("not a safetensors file: {e}")))?;
    let st = SafeTensors::deserialize(&file)
        .map_err(|e| error(path, format!("not a safetensors file: {e}")))?;
    let info = meta.metadata().as_ref();
    let names = info
        .and_then(|m| m.get("activations"))
        .ok_or_else(|| error(path, "no 'activations' in the metadata"))?;
    let activations = names
        .split(',')
        .map(|n| {
            Activation::from_name(n).ok_or_else(|| error(path, format!("unknown activation '{n}'")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut layers = Vec::new();
    for i in 0..activations.len() {
        let w = tensor(&st, path, &format!("layers.{i}.weight"), 2)?;
        let b = tensor(&st, path, &format!("layers.{i}.bias"), 1)?;
        let (outputs, inputs) = (w.0[0], w.0[1]);
        if b.0 != [outputs] {
            return Err(error(
                path,
                format!("layers.{i}.bias has shape {:?}, expected [{outputs}]", b.0),
            ));
        }
        if let Some(prev) = layers.last().map(Dense::outputs).filter(|&p| p != inputs) {
            return Err(error(
                path,
                format!(
                    "layers.{i}.weight takes {inputs} inputs, layer {} gives {prev}",
                    i - 1
                ),
            ));
        }
        let w = Array2::from_shape_vec((outputs, inputs), w.1).expect("shape checked");
        layers.push(Dense::from_parts(w, Array1::from(b.1)));
    }
    if st.len() != 2 * layers.len() {
        return Err(error(
            path,
            format!("{} tensors for {} layers", st.len(), layers.len()),
        ));
    }
    Ok(Model {
        layers,
        activations,
    })
}

/// The tensor `name`: f32 of rank `rank`, as its shape and values.
fn tensor(
    st: &SafeTensors,
    path: &Path,
    name: &str,
    rank: usize,
) -> Result<(Vec<usize>, Vec<f32>), CheckpointError> {
    let t = st
        .tensor(name)
        .map_err(|_| error(path, format!("no tensor '{name}'")))?;
    if t.dtype() != Dtype::F32 || t.shape().len() != rank {
        return Err(error(
            path,
            format!(
                "'{name}' is {:?} of shape {:?}, expected F32 of rank {rank}",
                t.dtype(),
                t.shape()
            ),
        ));
    }
    let values = t
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    Ok((t.shape().to_vec(), values))
}
