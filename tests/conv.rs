//! The convolution layers: the transposed convolution against PyTorch's numbers, each layer's
//! gradients against central differences, and a whole small convolutional autoencoder against
//! an f64 re-implementation written from the definitions. Errors are normwise, as in
//! `tests/gradients.rs`; run with `-- --nocapture` to see each `maxdiff`. The fast layers
//! against the reference engine's loops, on odd sizes, are in `tests/reference.rs`.

mod common;

use common::{Engine, numeric_gradient, random, relative_error};
use dae::engine::activation::Activation;
use dae::engine::conv::Conv2d;
use dae::engine::conv_transpose::ConvTranspose2d;
use dae::engine::layer::Layer;
use dae::engine::lowering::{Image, Scratch};
use dae::engine::model::Model;
use dae::engine::pool::MaxPool2d;
use ndarray::{Array1, Array2};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

fn conv(input: Image, outputs: usize, k: usize, seed: u64) -> Conv2d {
    let w = random((outputs, k * k * input.channels), -0.5, 0.5, seed);
    Conv2d::from_parts(input, w, Array1::from_iter(random((1, outputs), -0.5, 0.5, seed + 1)))
}

fn conv_t(input: Image, outputs: usize, stride: usize, seed: u64) -> ConvTranspose2d {
    let w = random((input.channels, 9 * outputs), -0.5, 0.5, seed);
    let b = Array1::from_iter(random((1, outputs), -0.5, 0.5, seed + 1));
    ConvTranspose2d::from_parts(input, stride, w, b)
}

/// What PyTorch 2.15 gives for a 2×2 input [[1, 2], [3, 4]], a kernel 1..k·k (row major) and no
/// bias, at stride `s` (`padding = k / 2`, `output_padding = s − 1`, so the image grows `s`-fold):
///   x = torch.tensor([[1., 2.], [3., 4.]]).reshape(1, 1, 2, 2)
///   w = torch.arange(1., k * k + 1).reshape(1, 1, k, k)
///   F.conv_transpose2d(x, w, stride=s, padding=k // 2, output_padding=s - 1).reshape(2 * s, 2 * s)
/// Stride 2 is the conv model's; stride 3 and 4 leave pixels that no window reaches (0, the
/// bias); a 5×5 kernel at stride 3 overlaps its neighbours' windows.
const PYTORCH_CONV_TRANSPOSE: [(usize, usize, &[f32]); 4] = [
    (
        3,
        2,
        &[
            5., 14., 10., 12., //
            14., 36., 24., 30., //
            15., 34., 20., 24., //
            24., 55., 32., 36.,
        ],
    ),
    (
        3,
        3,
        &[
            5., 6., 8., 10., 12., 0., //
            8., 9., 14., 16., 18., 0., //
            6., 9., 4., 8., 12., 0., //
            15., 18., 16., 20., 24., 0., //
            24., 27., 28., 32., 36., 0., //
            0., 0., 0., 0., 0., 0.,
        ],
    ),
    (
        3,
        4,
        &[
            5., 6., 0., 8., 10., 12., 0., 0., //
            8., 9., 0., 14., 16., 18., 0., 0., //
            0., 0., 0., 0., 0., 0., 0., 0., //
            6., 9., 0., 4., 8., 12., 0., 0., //
            15., 18., 0., 16., 20., 24., 0., 0., //
            24., 27., 0., 28., 32., 36., 0., 0., //
            0., 0., 0., 0., 0., 0., 0., 0., //
            0., 0., 0., 0., 0., 0., 0., 0.,
        ],
    ),
    (
        5,
        3,
        &[
            13., 36., 39., 26., 28., 30., //
            27., 67., 77., 48., 54., 60., //
            47., 117., 127., 78., 84., 90., //
            39., 86., 93., 52., 56., 60., //
            54., 121., 128., 72., 76., 80., //
            69., 156., 163., 92., 96., 100.,
        ],
    ),
];

#[test]
fn conv_transpose2d_scatters_as_pytorch_does_at_every_stride() {
    let x = Array2::from_shape_vec((1, 4), vec![1.0, 2.0, 3.0, 4.0]).unwrap();
    for (k, stride, expected) in PYTORCH_CONV_TRANSPOSE {
        let w = Array2::from_shape_vec((1, k * k), (1..=k * k).map(|v| v as f32).collect()).unwrap();
        let layer = Layer::ConvTranspose2d(ConvTranspose2d::from_parts(
            Image::new(2, 2, 1),
            stride,
            w,
            Array1::zeros(1),
        ));
        let fast = common::forward(&layer, x.view(), None);
        let reference = dae::reference::model::layer_forward(&layer, x.view());
        assert_eq!(fast.as_slice().unwrap(), expected, "fast engine, {k}×{k} kernel, stride {stride}");
        assert_eq!(
            reference.as_slice().unwrap(),
            expected,
            "reference engine, {k}×{k} kernel, stride {stride}"
        );
    }
}

#[test]
fn max_pool_takes_the_largest_of_each_block_and_the_first_of_a_tie() {
    let pool = MaxPool2d { input: Image::new(2, 4, 1) };
    let x = Array2::from_shape_vec((1, 8), vec![1.0, 5.0, 7.0, 7.0, 3.0, 2.0, 7.0, 0.0]).unwrap();
    let y = common::forward(&Layer::MaxPool2d(pool), x.view(), None);
    assert_eq!(y.as_slice().unwrap(), [5.0, 7.0]);
    let mut d_prev = Array2::from_elem((1, 8), f32::NAN);
    let delta = Array2::from_shape_vec((1, 2), vec![10.0, 20.0]).unwrap();
    pool.backward_input(delta.view(), (Activation::Identity, x.view()), d_prev.view_mut());
    // The tie of three 7s goes to the first in reading order.
    assert_eq!(d_prev.as_slice().unwrap(), [0.0, 10.0, 20.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
}

/// `Σ c ⊙ y`, a linear probe whose gradient with respect to `y` is `c`.
fn probe(c: &Array2<f32>, y: &Array2<f32>) -> f64 {
    c.iter().zip(y.iter()).map(|(&c, &y)| f64::from(c) * f64::from(y)).sum()
}

/// Pre-activations `z₀` whose values are all distinct and at least 0.05 apart, and away from
/// ReLU's kink: finite differences of step 1e-2 then never cross a kink or swap a maximum.
fn spread_inputs(shape: (usize, usize), seed: u64) -> Array2<f32> {
    let n = shape.0 * shape.1;
    let mut values: Vec<f32> = (0..n).map(|i| (i as f32 - n as f32 / 2.0 + 0.5) * 0.05).collect();
    values.iter_mut().filter(|v| v.abs() < 0.02).for_each(|v| *v += 0.03);
    values.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    Array2::from_shape_vec(shape, values).unwrap()
}

/// Checks a layer's `dW`, `db` and `δ_prev` (through a ReLU before it) against central
/// differences of `L = Σ c ⊙ layer(relu(z₀))`, computed with the layer's own fast forward.
fn check_layer(name: &str, layer: Layer, batch: usize) {
    let z0 = spread_inputs((batch, layer.inputs()), 5);
    let a0 = z0.mapv(|v| v.max(0.0));
    let c = random((batch, layer.outputs()), -1.0, 1.0, 6);
    let mut analytic = layer.clone();
    let (lowered, partials) = layer.scratch_needs(batch);
    let mut scratch = Scratch::new(2, lowered, partials);
    let mut dz0 = Array2::from_elem(z0.dim(), f32::NAN);
    let prev = Some((Activation::Relu, a0.view(), dz0.view_mut()));
    analytic.backward(a0.view(), c.view(), prev, &mut scratch, None);

    let mut z = z0.clone();
    let numeric = numeric_gradient(z.as_slice_mut().unwrap(), 1e-2, |z| {
        let a = Array2::from_shape_vec(z0.dim(), z.iter().map(|v| v.max(0.0)).collect()).unwrap();
        probe(&c, &common::forward(&layer, a.view(), None))
    });
    assert!(relative_error(&format!("{name} δ_prev"), dz0.as_slice().unwrap(), &numeric) < 1e-3);

    let grads: Vec<Vec<f32>> =
        analytic.params_and_grads().into_iter().flatten().map(|(_, g)| g.to_vec()).collect();
    for (t, grad) in grads.iter().enumerate() {
        let mut probe_layer = layer.clone();
        let mut theta = probe_layer.params_and_grads().unwrap()[t].0.to_vec();
        let numeric = numeric_gradient(&mut theta, 1e-2, |theta| {
            probe_layer.params_and_grads().unwrap()[t].0.copy_from_slice(theta);
            probe(&c, &common::forward(&probe_layer, a0.view(), None))
        });
        let what = if t == 0 { "dW" } else { "db" };
        assert!(relative_error(&format!("{name} {what}"), grad, &numeric) < 1e-3, "{name} {what}");
    }
}

#[test]
fn conv2d_gradients() {
    check_layer("conv2d 5×4×3 → 9, k 3 (lowered)", Layer::Conv2d(conv(Image::new(5, 4, 3), 9, 3, 6)), 3);
    check_layer("conv2d 5×4×3 → 2, k 3", Layer::Conv2d(conv(Image::new(5, 4, 3), 2, 3, 7)), 3);
    check_layer("conv2d 3×3×1 → 2, k 5", Layer::Conv2d(conv(Image::new(3, 3, 1), 2, 5, 8)), 2);
}

#[test]
fn conv2d_gradients_over_many_groups() {
    // 40 images of 4×4×2 make two groups and a short one: the partial sums must add up.
    check_layer("conv2d 4×4×2 → 2, 40 images", Layer::Conv2d(conv(Image::new(4, 4, 2), 2, 3, 9)), 40);
    check_layer("conv2d 4×4×2 → 8, 40 images", Layer::Conv2d(conv(Image::new(4, 4, 2), 8, 3, 9)), 40);
}

#[test]
fn conv_transpose2d_gradients() {
    let layer = Layer::ConvTranspose2d(conv_t(Image::new(3, 2, 3), 2, 2, 10));
    check_layer("conv_transpose2d 3×2×3 → 6×4×2", layer, 3);
    // Stride 3 and stride 1, over several groups and a short one.
    let layer = Layer::ConvTranspose2d(conv_t(Image::new(2, 3, 2), 3, 3, 11));
    check_layer("conv_transpose2d 2×3×2 → 6×9×3", layer, 3);
    let layer = Layer::ConvTranspose2d(conv_t(Image::new(3, 3, 2), 2, 1, 12));
    check_layer("conv_transpose2d 3×3×2 → 3×3×2, 70 images", layer, 70);
}

#[test]
fn max_pool_gradients() {
    check_layer("max_pool2d 4×6×2", Layer::MaxPool2d(MaxPool2d { input: Image::new(4, 6, 2) }), 2);
}

/// A small convolutional autoencoder of the same shape as the real one, on 8×8 images, with
/// fewer channels: 8×8×1 → 8×8×3 → 4×4×3 → 4×4×8 → 2×2×8 → 4×4×3 → 8×8×2 → 8×8×1 (the
/// second convolution, 8 wide, is lowered to a product; the others run directly).
fn small_conv_autoencoder() -> Model {
    let layers = vec![
        Layer::Conv2d(conv(Image::new(8, 8, 1), 3, 3, 20)),
        Layer::MaxPool2d(MaxPool2d { input: Image::new(8, 8, 3) }),
        Layer::Conv2d(conv(Image::new(4, 4, 3), 8, 3, 22)),
        Layer::MaxPool2d(MaxPool2d { input: Image::new(4, 4, 8) }),
        Layer::ConvTranspose2d(conv_t(Image::new(2, 2, 8), 3, 2, 24)),
        Layer::ConvTranspose2d(conv_t(Image::new(4, 4, 3), 2, 2, 26)),
        Layer::Conv2d(conv(Image::new(8, 8, 2), 1, 3, 28)),
    ];
    let (relu, none) = (Activation::Relu, Activation::Identity);
    Model { layers, activations: vec![relu, none, relu, none, relu, relu, Activation::Sigmoid] }
}

/// An image batch in f64: `data[b][(y·W + x)·C + c]`.
type Batch = Vec<Vec<f64>>;

/// The mean BCE of `model` on `x` against `y`, recomputed in f64 from the definitions, by loops.
fn loss_f64(model: &Model, x: &Array2<f32>, y: &Array2<f32>) -> f64 {
    let mut a: Batch = x.rows().into_iter().map(|r| r.iter().map(|&v| f64::from(v)).collect()).collect();
    let last = model.layers.len() - 1;
    for (l, layer) in model.layers.iter().enumerate() {
        a = match layer {
            Layer::Conv2d(c) => conv_f64(c, &a),
            Layer::ConvTranspose2d(c) => conv_t_f64(c, &a),
            Layer::MaxPool2d(p) => pool_f64(p, &a),
            Layer::Dense(_) => unreachable!("no dense layer here"),
        };
        if l < last && model.activations[l] == Activation::Relu {
            a.iter_mut().flatten().for_each(|v| *v = v.max(0.0));
        }
    }
    let bce = |z: f64, y: f64| z.max(0.0) - z * y + (-z.abs()).exp().ln_1p();
    let z = a.iter().flatten();
    z.zip(y.iter()).map(|(&z, &y)| bce(z, f64::from(y))).sum::<f64>() / y.len() as f64
}

fn conv_f64(c: &Conv2d, x: &Batch) -> Batch {
    let (Image { height: h, width: w, channels: ci }, o, k) = (c.input, c.w.nrows(), c.kernel());
    let p = (k / 2) as isize;
    x.iter()
        .map(|img| {
            let mut out = vec![0.0; h * w * o];
            for (oy, ox, oc) in grid(h, w, o) {
                let mut sum = f64::from(c.b[oc]);
                for (ky, kx, ic) in grid(k, k, ci) {
                    let (iy, ix) = (oy as isize + ky as isize - p, ox as isize + kx as isize - p);
                    if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < w {
                        let v = img[(iy as usize * w + ix as usize) * ci + ic];
                        sum += v * f64::from(c.w[[oc, (ky * k + kx) * ci + ic]]);
                    }
                }
                out[(oy * w + ox) * o + oc] = sum;
            }
            out
        })
        .collect()
}

fn conv_t_f64(c: &ConvTranspose2d, x: &Batch) -> Batch {
    let (input, output, k, s) = (c.input, c.output(), c.kernel(), c.stride);
    let p = (k / 2) as isize;
    x.iter()
        .map(|img| {
            let mut out: Vec<f64> = (0..output.len()).map(|i| f64::from(c.b[i % output.channels])).collect();
            for (iy, ix, ic) in grid(input.height, input.width, input.channels) {
                for (ky, kx, oc) in grid(k, k, output.channels) {
                    let oy = (s * iy) as isize - p + ky as isize;
                    let ox = (s * ix) as isize - p + kx as isize;
                    if oy >= 0 && ox >= 0 && (oy as usize) < output.height && (ox as usize) < output.width {
                        let v = img[(iy * input.width + ix) * input.channels + ic];
                        let at = (oy as usize * output.width + ox as usize) * output.channels + oc;
                        out[at] += v * f64::from(c.w[[ic, (ky * k + kx) * output.channels + oc]]);
                    }
                }
            }
            out
        })
        .collect()
}

fn pool_f64(p: &MaxPool2d, x: &Batch) -> Batch {
    let (input, output) = (p.input, p.output());
    let c = input.channels;
    x.iter()
        .map(|img| {
            let mut out = vec![f64::NEG_INFINITY; output.len()];
            for (iy, ix, ch) in grid(2 * output.height, 2 * output.width, c) {
                let at = ((iy / 2) * output.width + ix / 2) * c + ch;
                out[at] = out[at].max(img[(iy * input.width + ix) * c + ch]);
            }
            out
        })
        .collect()
}

fn grid(a: usize, b: usize, c: usize) -> impl Iterator<Item = (usize, usize, usize)> {
    (0..a).flat_map(move |i| (0..b).flat_map(move |j| (0..c).map(move |l| (i, j, l))))
}

/// Every parameter of a small convolutional autoencoder, through the mean BCE the trainer
/// minimises, against central differences of the f64 re-implementation, by each engine (the
/// reference's assembly too: which activation's slope follows a pool).
#[test]
fn whole_conv_network_gradients() {
    let (batch, d) = (3, 64);
    let x = random((batch, d), 0.0, 1.0, 40);
    let y = random((batch, d), 0.0, 1.0, 41);
    let model = small_conv_autoencoder();
    for engine in [Engine::Fast, Engine::Reference] {
        assert_eq!(common::check_whole_model(engine, &model, &x, &y, loss_f64), 10);
    }
}
