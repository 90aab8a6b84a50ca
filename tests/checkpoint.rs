//! Model files: what is saved loads back bit for bit, in PyTorch's layout, and a bad file is
//! an error that names it.

use dae::engine::model::Model;
use dae::files::checkpoint::{load, save};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

fn model() -> Model {
    Model::autoencoder(20, &[8, 4], &mut ChaCha8Rng::seed_from_u64(5))
}

#[test]
fn save_then_load_gives_the_same_model() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.safetensors");
    let mut m = model();
    m.layers[1].as_dense_mut().unwrap().b.fill(0.25);
    save(&m, (4, 5), &path).unwrap();
    let loaded = load(&path).unwrap();
    assert_eq!(loaded, m);
    assert_eq!(loaded.widths(), [20, 8, 4, 8, 20]);
    // No temporary file is left beside it.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

/// A safetensors file's header, as JSON, and its length: the eight bytes that start the file.
fn header_of(bytes: &[u8]) -> (usize, serde_json::Value) {
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    (header_len, serde_json::from_slice(&bytes[8..8 + header_len]).unwrap())
}

#[test]
fn the_file_uses_pytorch_names_and_shapes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.safetensors");
    save(&model(), (4, 5), &path).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let (_, header) = header_of(&bytes);
    assert_eq!(header["layers.0.weight"]["shape"], serde_json::json!([8, 20]));
    assert_eq!(header["layers.0.weight"]["dtype"], "F32");
    assert_eq!(header["layers.3.bias"]["shape"], serde_json::json!([20]));
    assert_eq!(header["__metadata__"]["activations"], "relu,relu,relu,sigmoid");
    assert_eq!(header["__metadata__"]["image"], "4x5");
    assert_eq!(dae::files::checkpoint::image_shape(&path).unwrap(), Some((4, 5)));
}

#[test]
fn bad_files_are_errors_naming_them() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.safetensors");
    save(&model(), (4, 5), &good).unwrap();
    let bytes = std::fs::read(&good).unwrap();
    let data = bytes.len() - 8 - u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let truncated = format!(
        "truncated, or its header is wrong: its tensors end {data} bytes after the header, and {} are there",
        data - 10
    );
    let longer = [&bytes[..], b"more"].concat();
    let cases = [
        ("truncated.safetensors", bytes[..bytes.len() - 10].to_vec(), truncated.as_str()),
        ("longer.safetensors", longer, "4 bytes after its last tensor"),
        ("header.safetensors", bytes[..40].to_vec(), "but 32 follow: truncated, or not a safetensors file"),
        ("garbage.safetensors", b"definitely not a model".to_vec(), "not a safetensors file"),
        ("empty.safetensors", Vec::new(), "truncated: 0 bytes, fewer than the 8"),
    ];
    for (name, contents, expected) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, contents).unwrap();
        let msg = load(&path).unwrap_err().to_string();
        assert!(msg.contains(name) && msg.contains(expected), "{msg}");
    }
    let msg = load(&dir.path().join("missing.safetensors")).unwrap_err().to_string();
    assert!(msg.contains("missing.safetensors"), "{msg}");
}

/// Saves `m` (a model spoiled on purpose) as `name` and returns the message loading it gives.
fn refusal(m: &Model, name: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    save(m, (4, 5), &path).unwrap();
    let msg = load(&path).expect_err("a spoiled model must be refused").to_string();
    assert!(msg.contains(name), "the message names the file: {msg}");
    msg
}

#[test]
fn layers_that_do_not_chain_are_an_error() {
    let mut m = model();
    m.layers.swap(1, 2);
    let msg = refusal(&m, "mismatched.safetensors");
    assert!(msg.contains("layers.1.weight takes 4 inputs, layer 0 gives 8"), "{msg}");
}

#[test]
fn a_model_with_non_finite_weights_is_refused() {
    let mut m = model();
    m.layers[2].as_dense_mut().unwrap().w_mut()[[1, 3]] = f32::NAN;
    let msg = refusal(&m, "nan.safetensors");
    assert!(msg.contains("'layers.2.weight' holds NaN at index 7"), "{msg}");
}

#[test]
fn a_model_that_is_not_an_autoencoder_is_refused() {
    use dae::engine::activation::Activation;
    let mut one_layer = model();
    one_layer.layers.truncate(1);
    one_layer.activations = vec![Activation::Sigmoid];
    let msg = refusal(&one_layer, "one-layer.safetensors");
    assert!(msg.contains("activations 'sigmoid': expected two or more layers, the last a sigmoid"), "{msg}");
    let mut relu_out = model();
    relu_out.activations[3] = Activation::Relu;
    assert!(refusal(&relu_out, "relu-out.safetensors").contains("the last a sigmoid"));
    let mut empty = model();
    empty.layers[0] = dae::engine::layer::Layer::Dense(dae::engine::dense::Dense::from_parts(
        ndarray::Array2::zeros((0, 20)),
        ndarray::Array1::zeros(0),
    ));
    let msg = refusal(&empty, "empty.safetensors");
    assert!(msg.contains("layers.0.weight has shape [0, 20]; a layer needs a width"), "{msg}");
}

/// A model is refused exactly where its bound on a layer's outputs reaches f32's largest number:
/// weights of `w` everywhere in a 4 → 2 → 4 model, biases 0, bound the output layer's logits by
/// `2·4w` on images of ones, which that image reaches.
#[test]
fn a_model_whose_outputs_can_overflow_f32_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("large.safetensors");
    for (scale, loads) in [(0.99, true), (1.01, false)] {
        let mut m = Model::autoencoder(4, &[2], &mut ChaCha8Rng::seed_from_u64(1));
        let w = scale * f64::from(f32::MAX) / 8.0;
        // W₀, b₀, W₁, b₁.
        for (tensor, value) in m.params_mut().zip([w as f32, 0.0, 1.0, 0.0]) {
            tensor.fill(value);
        }
        assert_eq!(m.bounds(), [4.0 * f64::from(w as f32), 8.0 * f64::from(w as f32)]);
        save(&m, (2, 2), &path).unwrap();
        match load(&path) {
            Ok(_) => assert!(loads, "{scale}: loaded"),
            Err(e) => {
                let message = e.to_string();
                assert!(!loads, "{scale}: {message}");
                let expected = "large.safetensors: weights too large: layers.1's outputs can reach 3.4e38";
                assert!(message.contains(expected), "{message}");
            }
        }
    }
}

/// Each kind of layer's bound by hand (and every kind among those a model file may name): a
/// dense layer and a convolution take row `o` of their `W` into output `o`, a transposed
/// convolution (`W` of `(C, k·k·O)`) column `j` into channel `j mod O`, a max-pool passes its
/// input's bound on.
#[test]
fn each_kind_of_layer_is_bounded_by_its_weights_into_each_output() {
    use dae::engine::{conv::Conv2d, conv_transpose::ConvTranspose2d, dense::Dense, layer::Layer};
    use dae::engine::{lowering::Image, pool::MaxPool2d};
    use ndarray::{Array1, array};
    let w = array![[1.0, -2.0, 3.0], [4.0, 5.0, -6.0]];
    let image = |channels| Image { height: 2, width: 2, channels };
    // Rows: 6 and 15, and biases 10 and 0: 10 + 2·6 = 22 against 2·15 = 30.
    let by_rows = Array1::from(vec![10.0, 0.0]);
    let dense = Layer::Dense(Dense::from_parts(w.clone(), by_rows.clone()));
    let conv = Layer::Conv2d(Conv2d::from_parts(image(3), w.clone(), by_rows));
    // Columns (k = 1, C = 2, O = 3): 5, 7 and 9, and biases 0, 0 and 1: 1 + 2·9 = 19.
    let transposed = ConvTranspose2d::from_parts(image(2), 1, w, Array1::from(vec![0.0, 0.0, 1.0]));
    let pool = Layer::MaxPool2d(MaxPool2d { input: image(3) });
    let layers = [dense, conv, Layer::ConvTranspose2d(transposed), pool];
    let kinds = layers.each_ref().map(Layer::kind);
    assert_eq!(kinds, dae::engine::layer::LAYER_KINDS, "every kind, as model files name it");
    let bounds = layers.map(|l| l.bound(2.0));
    assert_eq!(bounds, [30.0, 30.0, 19.0, 2.0]);
}

/// Every number a layer outputs lies within its bound ([`Model::bounds`]), for the dense and
/// the convolutional model (a transposed convolution's output takes some of its taps) on images
/// of pixels in `[0, 1]`.
#[test]
fn each_layers_outputs_lie_within_its_bound() {
    let rng = &mut ChaCha8Rng::seed_from_u64(3);
    for m in [Model::autoencoder(64, &[16, 8], rng), Model::conv_autoencoder(8, 8, rng)] {
        let x = ndarray::Array2::from_shape_fn((5, 64), |(i, j)| ((i * 64 + j) as f32 * 0.618).fract());
        let mut ws = dae::engine::model::Workspace::new(&m, 5);
        m.forward(x.view(), &mut ws);
        for (l, (output, bound)) in ws.outputs.iter().zip(m.bounds()).enumerate() {
            let largest = output.iter().fold(0.0f64, |a, &v| a.max(f64::from(v.abs())));
            assert!(largest <= bound && largest > 0.0, "layer {l}: {largest} against {bound}");
        }
    }
}

/// A layer kind no model has, written into a file's metadata by hand, is named as such (it was
/// refused for a weight of the wrong rank).
#[test]
fn a_model_of_an_unknown_layer_kind_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bogus.safetensors");
    save(&model(), (4, 5), &path).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let (header_len, mut header) = header_of(&bytes);
    header["__metadata__"]["layers"] = "dense,bogus,dense,dense".into();
    let header = serde_json::to_vec(&header).unwrap();
    let mut edited = (header.len() as u64).to_le_bytes().to_vec();
    edited.extend(header);
    edited.extend(&bytes[8 + header_len..]);
    std::fs::write(&path, edited).unwrap();
    let message = load(&path).unwrap_err().to_string();
    assert!(
        message.contains("bogus.safetensors: metadata 'layers': unknown layer kind 'bogus'"),
        "{message}"
    );
}

#[test]
fn a_conv_model_saves_in_pytorchs_layouts_and_loads_back_bit_for_bit() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("conv.safetensors");
    let m = Model::conv_autoencoder(8, 12, &mut ChaCha8Rng::seed_from_u64(6));
    save(&m, (8, 12), &path).unwrap();
    assert_eq!(load(&path).unwrap(), m);
    let bytes = std::fs::read(&path).unwrap();
    let (header_len, header) = header_of(&bytes);
    // nn.Conv2d (out, in, k, k); nn.ConvTranspose2d (in, out, k, k); the pools hold nothing.
    assert_eq!(header["layers.0.weight"]["shape"], serde_json::json!([32, 1, 3, 3]));
    assert_eq!(header["layers.2.weight"]["shape"], serde_json::json!([32, 32, 3, 3]));
    assert_eq!(header["layers.4.weight"]["shape"], serde_json::json!([32, 32, 3, 3]));
    assert_eq!(header["layers.6.bias"]["shape"], serde_json::json!([1]));
    assert!(header.get("layers.1.weight").is_none());
    let meta = &header["__metadata__"];
    assert_eq!(
        meta["layers"],
        "conv2d,max_pool2d,conv2d,max_pool2d,conv_transpose2d,conv_transpose2d,conv2d"
    );
    assert_eq!(meta["activations"], "relu,identity,relu,identity,relu,relu,sigmoid");
    // PyTorch's order: weight[o, c, ky, kx] is our kernel's tap (ky, kx) of channel c.
    let dae::engine::layer::Layer::Conv2d(conv) = &m.layers[2] else { panic!("a convolution") };
    let start = header["layers.2.weight"]["data_offsets"][0].as_u64().unwrap() as usize + 8 + header_len;
    let at = |o: usize, c: usize, ky: usize, kx: usize| {
        let i = start + 4 * (((o * 32 + c) * 3 + ky) * 3 + kx);
        f32::from_le_bytes(bytes[i..i + 4].try_into().unwrap())
    };
    assert_eq!(at(5, 7, 2, 1), conv.w[[5, (2 * 3 + 1) * 32 + 7]]);
    assert_eq!(at(31, 0, 0, 2), conv.w[[31, 2 * 32]]);
}

#[test]
fn a_conv_model_whose_widths_disagree_with_its_tensors_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let m = Model::conv_autoencoder(8, 8, &mut ChaCha8Rng::seed_from_u64(6));
    let path = dir.path().join("conv.safetensors");
    // Saved as if its images were 8×12: the first convolution's input no longer matches.
    save(&m, (8, 12), &path).unwrap();
    let message = load(&path).unwrap_err().to_string();
    assert!(message.contains("conv.safetensors") && message.contains("width"), "{message}");
}

/// The same model gives the same bytes: the header's metadata keys come out in one order.
#[test]
fn the_same_model_gives_the_same_file() {
    let dir = tempfile::tempdir().unwrap();
    let files: Vec<Vec<u8>> = (0..8)
        .map(|i| {
            let path = dir.path().join(format!("m{i}.safetensors"));
            save(&model(), (4, 5), &path).unwrap();
            std::fs::read(&path).unwrap()
        })
        .collect();
    assert!(files.windows(2).all(|w| w[0] == w[1]), "every save gives the same bytes");
    assert_eq!(load(&dir.path().join("m0.safetensors")).unwrap(), model());
}

/// The report's snapshots ride in the state file: they load back as saved, a state without them
/// (written before they were kept) still loads, and snapshots that disagree with the run's
/// progress — a file edited by hand — are refused, naming the tensor.
#[test]
fn the_states_snapshots_load_back_and_must_match_the_runs_progress() {
    use dae::engine::adam::Adam;
    use dae::files::checkpoint::{Snapshots, load_state, save_state};
    use dae::train::Progress;

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.safetensors");
    let m = model();
    let adam = Adam::new(1e-3, m.param_sizes());
    let mut snapshots = Snapshots::new(3, 20, 2);
    for e in 0..2 {
        snapshots.push(ndarray::Array2::from_shape_fn((3, 20), |(i, j)| (e + i + j) as f32 / 30.0).view());
    }
    let progress = |epoch| Progress { epoch, step: 0, loss_sum: 0.0 };

    save_state(&m, (4, 5), &adam, progress(3), Some(&snapshots), None, &path).unwrap();
    let state = load_state(&path, 1e-3).unwrap();
    assert_eq!(state.snapshots.as_ref(), Some(&snapshots));
    assert_eq!(state.snapshots.unwrap().epoch(1)[(2, 19)], (1.0f32 + 2.0 + 19.0) / 30.0);

    save_state(&m, (4, 5), &adam, progress(3), None, None, &path).unwrap();
    assert_eq!(load_state(&path, 1e-3).unwrap().snapshots, None);

    // Epochs 2 and 3 kept, but the run claims five done.
    save_state(&m, (4, 5), &adam, progress(5), Some(&snapshots), None, &path).unwrap();
    let message = load_state(&path, 1e-3).unwrap_err().to_string();
    assert!(
        message.contains("state.safetensors")
            && message
                .contains("report.reconstructions holds 2 epoch(s) from epoch 2 on, but the run has done 5"),
        "{message}"
    );
    // A first epoch at the top of the numbers: an error, not an overflow.
    snapshots.first = usize::MAX;
    save_state(&m, (4, 5), &adam, progress(5), Some(&snapshots), None, &path).unwrap();
    let message = load_state(&path, 1e-3).unwrap_err().to_string();
    assert!(message.contains(&format!("holds 2 epoch(s) from epoch {} on", usize::MAX)), "{message}");
}

/// Adam's moments load back bit for bit, each on a cache line's start; a moment of the wrong
/// size — a file edited by hand — is refused, naming the tensor and both sizes.
#[test]
fn the_states_moments_load_back_on_a_line_and_must_fit_the_model() {
    use dae::engine::adam::Adam;
    use dae::engine::aligned::{LINE, vector};
    use dae::files::checkpoint::{load_state, save_state};
    use dae::train::Progress;

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.safetensors");
    let m = model();
    let mut adam = Adam::new(1e-3, m.param_sizes());
    adam.t = 7;
    for (t, (m, v)) in adam.m.iter_mut().zip(&mut adam.v).enumerate() {
        m.iter_mut().enumerate().for_each(|(i, x)| *x = (t * 100 + i) as f32 * 1e-3);
        v.iter_mut().enumerate().for_each(|(i, x)| *x = (t * 100 + i) as f32 * 1e-6);
    }
    let progress = Progress { epoch: 1, step: 0, loss_sum: 0.0 };
    save_state(&m, (4, 5), &adam, progress, None, None, &path).unwrap();
    let loaded = load_state(&path, 1e-3).unwrap().adam;
    assert_eq!((&loaded.m, &loaded.v, loaded.t), (&adam.m, &adam.v, 7));
    let on_a_line = |x: &ndarray::Array1<f32>| (x.as_ptr() as usize).is_multiple_of(LINE);
    assert!(loaded.m.iter().chain(&loaded.v).all(on_a_line));

    let needed = adam.m[1].len();
    adam.m[1] = vector(3);
    save_state(&m, (4, 5), &adam, progress, None, None, &path).unwrap();
    let message = load_state(&path, 1e-3).unwrap_err().to_string();
    assert!(
        message.contains("state.safetensors")
            && message.contains(&format!("adam.m.1 has 3 values, the model needs {needed}")),
        "{message}"
    );
}

/// A second moment below zero (a file edited by hand) is refused, naming the tensor: Adam's
/// `√v` would make the weights NaN behind a finite loss, and the run would save them.
#[test]
fn a_negative_second_moment_is_refused() {
    use dae::engine::adam::Adam;
    use dae::files::checkpoint::{load_state, save_state};
    use dae::train::Progress;

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.safetensors");
    let m = model();
    let mut adam = Adam::new(1e-3, m.param_sizes());
    adam.t = 3;
    let progress = Progress { epoch: 1, step: 0, loss_sum: 0.0 };
    // A negative first moment is a fine one.
    adam.m[2][0] = -0.5;
    save_state(&m, (4, 5), &adam, progress, None, None, &path).unwrap();
    assert!(load_state(&path, 1e-3).is_ok());
    adam.v[2][1] = -1.0;
    save_state(&m, (4, 5), &adam, progress, None, None, &path).unwrap();
    let message = load_state(&path, 1e-3).unwrap_err().to_string();
    assert!(
        message.contains("state.safetensors") && message.contains("adam.v.2 holds -1 at index 1"),
        "{message}"
    );
}

/// A state changed after the run wrote it is refused for its checksum, which covers the whole
/// file: a weight edited by hand to 3e38 (which Adam could never have reached), one flipped bit
/// in the last moment, Adam's step count in the header. The checksum's key edited is a key no
/// state has. A state from before states had a checksum loads as it is.
#[test]
fn a_state_changed_since_it_was_written_is_refused() {
    use dae::engine::adam::Adam;
    use dae::files::checkpoint::{load_state, save_state};
    use dae::train::Progress;

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.safetensors");
    let m = model();
    let adam = Adam::new(1e-3, m.param_sizes());
    let progress = Progress { epoch: 1, step: 0, loss_sum: 0.0 };
    save_state(&m, (4, 5), &adam, progress, None, None, &path).unwrap();
    let saved = std::fs::read(&path).unwrap();
    let data = 8 + u64::from_le_bytes(saved[..8].try_into().unwrap()) as usize;
    assert_eq!(load_state(&path, 1e-3).unwrap().model.param_sizes(), m.param_sizes());

    let header = String::from_utf8(saved[8..data].to_vec()).unwrap();
    let mut edited = saved.clone();
    edited[data..data + 4].copy_from_slice(&3e38f32.to_le_bytes());
    let mut flipped = saved.clone();
    *flipped.last_mut().unwrap() ^= 1;
    let mut steps = saved.clone();
    let t = header.find("\"adam.t\":\"0\"").unwrap() + 10;
    steps[8 + t] = b'9';
    for bytes in [edited, flipped, steps] {
        std::fs::write(&path, &bytes).unwrap();
        let message = load_state(&path, 1e-3).unwrap_err().to_string();
        assert!(
            message.contains("state.safetensors: it does not match the checksum the run saved in it")
                && message.contains("edited by hand, or damaged"),
            "{message}"
        );
    }
    let mut renamed = saved.clone();
    let key = header.find("\"checksum\"").unwrap();
    renamed[8 + key + 7] = b'U';
    std::fs::write(&path, &renamed).unwrap();
    let message = load_state(&path, 1e-3).unwrap_err().to_string();
    assert!(message.contains("metadata 'checksUm' is not one a run's state has"), "{message}");

    // The same file with the checksum's entry blanked out of the header, as before states had one.
    let entry = header.find("\"checksum\"").unwrap();
    let end = entry + header[entry..].find(',').unwrap() + 1;
    let mut old = saved.clone();
    old[8 + entry..8 + end].fill(b' ');
    std::fs::write(&path, &old).unwrap();
    assert!(load_state(&path, 1e-3).is_ok());
}
