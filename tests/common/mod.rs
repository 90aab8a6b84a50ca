//! Small generated data sets, so that tests need neither the network nor real MNIST, and the
//! gradient checks' tools: random inputs, central differences, normwise errors.

#![allow(dead_code)] // each test binary uses its own part of this module

use dae::data::mnist::{Images, Mnist, Split};
use ndarray::Array2;
use ndarray_rand::RandomExt;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::Uniform;

/// `count` images of `side × side` pixels: each a bright horizontal or vertical bar at a random
/// place on a faint random background, labelled 0 (horizontal) or 1 (vertical).
pub fn bars(count: usize, side: usize, seed: u64) -> Split {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut pixels = Vec::with_capacity(count * side * side);
    let mut labels = Vec::with_capacity(count);
    for _ in 0..count {
        let vertical = rng.random::<bool>();
        let at = rng.random_range(0..side);
        for y in 0..side {
            for x in 0..side {
                let on = if vertical { x == at } else { y == at };
                pixels.push(if on { rng.random_range(230..=255) } else { rng.random_range(0..8) });
            }
        }
        labels.push(u8::from(vertical));
    }
    Split { images: Images { count, rows: side, cols: side, pixels }, labels }
}

/// A data set of bars: `train` training images and `test` test images of 8×8 pixels.
pub fn bars_dataset(train: usize, test: usize) -> Mnist {
    bars_dataset_of_side(train, 8, test)
}

/// A data set of bars of `side × side` pixels.
pub fn bars_dataset_of_side(train: usize, side: usize, test: usize) -> Mnist {
    Mnist { train: bars(train, side, 1), test: bars(test, side, 2) }
}

/// The bytes of a gzipped IDX file of `u8` with dimensions `dims`.
pub fn idx_gz(dims: &[u32], body: &[u8]) -> Vec<u8> {
    let mut bytes = vec![0, 0, 0x08, dims.len() as u8];
    dims.iter().for_each(|d| bytes.extend(d.to_be_bytes()));
    bytes.extend(body);
    gzip(&bytes)
}

/// `bytes`, gzipped.
pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

/// Writes `data` into `dir` under MNIST's four file names, as `data-fetch.sh` leaves them.
pub fn write_dataset(dir: &std::path::Path, data: &Mnist) {
    for (split, images, labels) in [
        (&data.train, "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
        (&data.test, "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
    ] {
        let i = &split.images;
        let dims = [i.count as u32, i.rows as u32, i.cols as u32];
        std::fs::write(dir.join(images), idx_gz(&dims, &i.pixels)).unwrap();
        std::fs::write(dir.join(labels), idx_gz(&[split.labels.len() as u32], &split.labels)).unwrap();
    }
}

/// Uniform random entries in `[lo, hi)` of the given shape, from `seed`.
pub fn random(shape: (usize, usize), lo: f32, hi: f32, seed: u64) -> Array2<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    Array2::random_using(shape, Uniform::new(lo, hi).unwrap(), &mut rng)
}

/// `‖analytic − numeric‖∞ / ‖numeric‖∞`, printed with the name of what was checked.
pub fn relative_error(name: &str, analytic: &[f32], numeric: &[f64]) -> f64 {
    assert_eq!(analytic.len(), numeric.len());
    let max_diff = analytic.iter().zip(numeric).map(|(&a, &n)| (f64::from(a) - n).abs()).fold(0.0, f64::max);
    let scale = numeric.iter().map(|n| n.abs()).fold(0.0, f64::max);
    assert!(scale > 1e-6, "{name}: the gradient is too small to check anything");
    let err = max_diff / scale;
    println!("{name}: maxdiff {max_diff:.3e}, max |grad| {scale:.3e}, relative {err:.3e}");
    err
}

/// Central differences `(f(θ⁺) − f(θ⁻)) / (θ⁺ − θ⁻)` of `loss` for every entry of `theta`, with
/// `θ± = θ ± h` as f32 holds them. Those are rounded (near 0.3, each by up to 1.5e-8, half of
/// f32's spacing there), so the step may be off by 1.5e-5 of `2h`: dividing by `2h` put that
/// error into every gradient checked (the whole network read near 1.3e-5; by the step taken, 4e-8
/// to 4e-7).
pub fn numeric_gradient(theta: &mut [f32], h: f32, mut loss: impl FnMut(&[f32]) -> f64) -> Vec<f64> {
    (0..theta.len())
        .map(|i| {
            let (orig, up, down) = (theta[i], theta[i] + h, theta[i] - h);
            theta[i] = up;
            let plus = loss(theta);
            theta[i] = down;
            let minus = loss(theta);
            theta[i] = orig;
            (plus - minus) / (f64::from(up) - f64::from(down))
        })
        .collect()
}

/// Which engine's gradients [`check_whole_model`] checks.
#[derive(Debug, Clone, Copy)]
pub enum Engine {
    /// `src/engine/`: the model's forward, loss and backward on a workspace.
    Fast,
    /// `src/reference/`: `forward`, `loss_and_delta` and `backward`, as `train_step` calls them.
    Reference,
}

/// `engine`'s mean BCE of `model` on `x` against `y`, and the gradient of every parameter in
/// the model's order of tensors (`W₀`, `b₀`, `W₁`, …).
fn loss_and_gradients(
    engine: Engine,
    model: &dae::engine::model::Model,
    x: &Array2<f32>,
    y: &Array2<f32>,
) -> (f64, Vec<Vec<f32>>) {
    use dae::engine::loss::Loss;
    use dae::engine::model::Workspace;
    let pixels = y.len() as f64;
    match engine {
        Engine::Fast => {
            let mut model = model.clone();
            let mut ws = Workspace::new(&model, x.nrows());
            model.forward(x.view(), &mut ws);
            let loss = model.loss_and_delta(Loss::Bce, y.view(), &mut ws) / pixels;
            model.backward(x.view(), &mut ws, None);
            (loss, model.params_and_grads().map(|(_, g)| g.to_vec()).collect())
        }
        Engine::Reference => {
            use dae::reference;
            let outputs = reference::forward(model, x.view());
            let logits = outputs.last().expect("a layer").view();
            let (total, delta) = reference::loss::loss_and_delta(Loss::Bce, logits, y.view());
            let grads = reference::backward(model, x.view(), &outputs, delta);
            let tensors =
                grads.iter().flatten().flat_map(|g| [g.dw.iter().copied().collect(), g.db.to_vec()]);
            (total / pixels, tensors.collect())
        }
    }
}

/// Checks every parameter of `model` through the mean BCE the trainer minimises on `x` against
/// `y`: `engine`'s forward against `loss_f64` (an f64 re-implementation), then each of its
/// gradients against central differences of `loss_f64`, normwise within 1e-5. Returns the
/// tensors checked.
pub fn check_whole_model(
    engine: Engine,
    model: &dae::engine::model::Model,
    x: &Array2<f32>,
    y: &Array2<f32>,
    loss_f64: impl Fn(&dae::engine::model::Model, &Array2<f32>, &Array2<f32>) -> f64,
) -> usize {
    let (loss, analytic) = loss_and_gradients(engine, model, x, y);
    let expected = loss_f64(model, x, y);
    assert!((loss - expected).abs() < 1e-6, "{engine:?} forward: {loss} vs f64 {expected}");
    for (t, grad) in analytic.iter().enumerate() {
        let mut probe = model.clone();
        let mut theta = probe.params_and_grads().nth(t).unwrap().0.to_vec();
        let numeric = numeric_gradient(&mut theta, 1e-3, |theta| {
            probe.params_and_grads().nth(t).unwrap().0.copy_from_slice(theta);
            loss_f64(&probe, x, y)
        });
        let name = format!("{engine:?}, tensor {t} ({})", if t % 2 == 0 { "weight" } else { "bias" });
        assert!(relative_error(&name, grad, &numeric) < 1e-5, "{name}");
    }
    analytic.len()
}

/// The fast engine's forward through `layer` (then `activation`), on a scratch of its own.
pub fn forward(
    layer: &dae::engine::layer::Layer,
    x: ndarray::ArrayView2<f32>,
    activation: Option<dae::engine::activation::Activation>,
) -> Array2<f32> {
    let (lowered, partials) = layer.scratch_needs(x.nrows());
    let scratch = dae::engine::lowering::Scratch::new(rayon::current_num_threads(), lowered, partials);
    let mut out = Array2::from_elem((x.nrows(), layer.outputs()), f32::NAN);
    layer.forward(x, out.view_mut(), activation, &scratch.buffers);
    out
}
