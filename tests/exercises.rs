#![cfg(feature = "exercises")]
//! The checks of the exercises in `src/exercises.rs` (see `docs/exercises.md`): each against
//! numbers worked out by hand, against central differences, or against the reference engine.
//! Until an exercise is solved its tests panic at its `todo!`. Run them with
//! `cargo test --features exercises --test exercises`, one exercise by a part of its tests'
//! names (`… --test exercises leaky`); `-- --nocapture` prints each gradient check's `maxdiff`.

mod common;

use common::{numeric_gradient, random, relative_error};
use dae::engine::activation::Activation;
use dae::engine::dense::Dense;
use dae::engine::layer::Layer;
use dae::engine::lowering::Image;
use dae::engine::model::Model;
use dae::engine::pool::MaxPool2d;
use dae::exercises::{self, Momentum};
use dae::reference::{self, Gradients};
use ndarray::{Array1, Array2, ArrayView2, array};

/// Central differences in f32 through a layer: the bar of `tests/gradients.rs`.
const TOLERANCE: f64 = 1e-3;

/// `Σ c ⊙ z`, a linear probe: its gradient with respect to `z` is exactly `c`.
fn probe(c: &Array2<f32>, z: ArrayView2<f32>) -> f64 {
    c.iter().zip(z.iter()).map(|(&c, &z)| f64::from(c) * f64::from(z)).sum()
}

/// Every number of `actual` within `tolerance` of `expected`'s.
fn assert_near(what: &str, actual: &Array2<f32>, expected: &Array2<f32>, tolerance: f32) {
    assert_eq!(actual.dim(), expected.dim(), "{what}: shape");
    let max_diff = actual.iter().zip(expected).map(|(a, e)| (a - e).abs()).fold(0.0, f32::max);
    assert!(max_diff <= tolerance, "{what}: maxdiff {max_diff:e}\n{actual}\nexpected\n{expected}");
}

fn dense_layer(inputs: usize, outputs: usize, seed: u64) -> Dense {
    let w = random((outputs, inputs), -0.8, 0.8, seed);
    Dense::from_parts(w, Array1::from_iter(random((1, outputs), -0.5, 0.5, seed + 1)))
}

// Exercise 1: a dense layer's backward pass, by loops.

/// A layer of 3 inputs and 2 outputs on a batch of 2, worked out by hand (every product is
/// exact in f32, so the numbers must be equal to the bit):
///
/// ```text
/// A_prev = [[ 2, −1,  3],    W = [[0.5, −1,  2],    δ = [[ 2,  −1],
///           [−2,  4,  2]]         [3,    1, −2]]         [−0.5, 3]]
///
/// dW[0] = 2·[2, −1, 3] − 0.5·[−2, 4, 2] = [4 + 1, −2 − 2, 6 − 1]      = [5, −4, 5]
/// dW[1] = −1·[2, −1, 3] + 3·[−2, 4, 2]  = [−2 − 6, 1 + 12, −3 + 6]    = [−8, 13, 3]
/// db    = [2 − 0.5, −1 + 3]                                         = [1.5, 2]
/// dX[0] = 2·[0.5, −1, 2] − 1·[3, 1, −2] = [1 − 3, −2 − 1, 4 + 2]      = [−2, −3, 6]
/// dX[1] = −0.5·[0.5, −1, 2] + 3·[3, 1, −2] = [−0.25 + 9, 0.5 + 3, −1 − 6] = [8.75, 3.5, −7]
/// ```
#[test]
fn dense_backward_on_literal_numbers() {
    let a_prev = array![[2.0, -1.0, 3.0], [-2.0, 4.0, 2.0]];
    let w = array![[0.5, -1.0, 2.0], [3.0, 1.0, -2.0]];
    let delta = array![[2.0, -1.0], [-0.5, 3.0]];
    let (grads, dx) = exercises::dense_backward(w.view(), a_prev.view(), delta.view());
    assert_eq!(grads.dw, array![[5.0, -4.0, 5.0], [-8.0, 13.0, 3.0]], "dW");
    assert_eq!(grads.db, array![1.5, 2.0], "db");
    assert_eq!(dx, array![[-2.0, -3.0, 6.0], [8.75, 3.5, -7.0]], "dX");
}

/// The same three gradients as the reference engine's `.dot` on random numbers and a batch
/// larger than the layer, within rounding (the loops may sum in another order).
#[test]
fn dense_backward_matches_the_reference() {
    let (batch, inputs, outputs) = (7, 5, 3);
    let layer = dense_layer(inputs, outputs, 1);
    let a_prev = random((batch, inputs), -1.0, 1.0, 3);
    let delta = random((batch, outputs), -1.0, 1.0, 4);
    let (grads, dx) = exercises::dense_backward(layer.w(), a_prev.view(), delta.view());
    let expected = reference::dense::backward(a_prev.view(), delta.view());
    assert_near("dW", &grads.dw, &expected.dw, 1e-5);
    let as_row = |b: &Array1<f32>| b.clone().insert_axis(ndarray::Axis(0));
    assert_near("db", &as_row(&grads.db), &as_row(&expected.db), 1e-5);
    assert_near("dX", &dx, &reference::dense::backward_input(&layer, delta.view()), 1e-5);
}

// Exercises 2 and 3: activations, checked through a dense layer.

/// The normwise error of `∂L/∂Z₀` for `L = Σ C ⊙ dense(f(Z₀))`: the analytic gradient,
/// `backward(f(Z₀), dA)` with `dA = C·W` from the reference's dense layer, against central
/// differences of the forward pass.
fn gradient_through_dense(
    name: &str,
    forward: impl Fn(Array2<f32>) -> Array2<f32>,
    backward: impl Fn(ArrayView2<f32>, Array2<f32>) -> Array2<f32>,
) -> f64 {
    let (batch, inputs, outputs) = (4, 6, 3);
    let mut z0 = random((batch, inputs), -2.0, 2.0, 10);
    // Keep every pre-activation away from 0, where a leaky ReLU has a kink.
    z0.mapv_inplace(|v| if v.abs() < 0.1 { v + 0.2_f32.copysign(v) } else { v });
    let c = random((batch, outputs), -1.0, 1.0, 11);
    let layer = dense_layer(inputs, outputs, 12);
    let a0 = forward(z0.clone());
    let dz0 = backward(a0.view(), reference::dense::backward_input(&layer, c.view()));

    let numeric = numeric_gradient(z0.as_slice_mut().unwrap(), 1e-2, |z0| {
        let a0 = forward(Array2::from_shape_vec((batch, inputs), z0.to_vec()).unwrap());
        probe(&c, reference::dense::forward(&layer, a0.view()).view())
    });
    relative_error(name, dz0.as_slice().unwrap(), &numeric)
}

/// Forward and backward by hand, slope 0.1. At `z = 0` the output is 0, and the slope taken
/// there is `slope`, as ReLU's `[a > 0]` takes 0.
///
/// ```text
/// z  = [−2,   −0.5,  0,    0.25,  3]
/// a  = [−0.2, −0.05, 0,    0.25,  3]       slope·z where z ≤ 0
/// dA = [1.5,  −2,    4,    0.5,  −4]
/// δ  = [0.15, −0.2,  0.4,  0.5,  −4]       slope·dA where a ≤ 0
/// ```
#[test]
fn leaky_relu_on_literal_values() {
    let a = exercises::leaky_relu_forward(array![[-2.0, -0.5, 0.0, 0.25, 3.0]], 0.1);
    assert_near("a", &a, &array![[-0.2, -0.05, 0.0, 0.25, 3.0]], 1e-7);
    let delta = exercises::leaky_relu_backward(a.view(), array![[1.5, -2.0, 4.0, 0.5, -4.0]], 0.1);
    assert_near("δ", &delta, &array![[0.15, -0.2, 0.4, 0.5, -4.0]], 1e-7);
}

#[test]
fn leaky_relu_gradient_through_a_dense_layer() {
    let slope = 0.2;
    let forward = |z| exercises::leaky_relu_forward(z, slope);
    let backward = |a: ArrayView2<f32>, da| exercises::leaky_relu_backward(a, da, slope);
    assert!(gradient_through_dense("dZ₀ through leaky ReLU", forward, backward) < TOLERANCE);
}

/// Forward against Python's `math.tanh`, in f64:
///
/// ```python
/// import math
/// print([math.tanh(z) for z in [-2.0, -0.5, 0.25, 3.0]])
/// ```
///
/// and backward by hand, `δ = dA·(1 − a²)` for outputs `a` given directly:
///
/// ```text
/// a  = [−0.5,  0.25,    0.8,   0]
/// dA = [1.5,  −2,       0.5,  −4]
/// δ  = [1.5·0.75, −2·0.9375, 0.5·0.36, −4·1] = [1.125, −1.875, 0.18, −4]
/// ```
#[test]
fn tanh_on_literal_values() {
    let a = exercises::tanh_forward(array![[-2.0, -0.5, 0.25, 3.0]]);
    let expected = [-0.9640275800758169, -0.46211715726000974, 0.24491866240370913, 0.9950547536867305];
    assert_eq!(a.dim(), (1, 4), "a: shape");
    for (a, e) in a.iter().zip(expected) {
        assert!((f64::from(*a) - e).abs() < 1e-6, "a: {a} where Python gives {e}");
    }
    let a = array![[-0.5, 0.25, 0.8, 0.0]];
    let delta = exercises::tanh_backward(a.view(), array![[1.5, -2.0, 0.5, -4.0]]);
    assert_near("δ", &delta, &array![[1.125, -1.875, 0.18, -4.0]], 1e-6);
}

#[test]
fn tanh_gradient_through_a_dense_layer() {
    let (forward, backward) = (exercises::tanh_forward, exercises::tanh_backward);
    assert!(gradient_through_dense("dZ₀ through tanh", forward, backward) < TOLERANCE);
}

// Exercise 4: squared error on a linear output.

/// By hand: `z − y = [−0.5, −1.5, 1.5, −0.5]`, so `Σ ℓ = 0.25 + 2.25 + 2.25 + 0.25 = 5` and
/// `δ = 2·(z − y)/4 = [−0.25, −0.75, 0.75, −0.25]`, every number exact in binary.
#[test]
fn mse_linear_on_literal_values() {
    let z = array![[0.5, -1.5], [2.0, 0.25]];
    let y = array![[1.0, 0.0], [0.5, 0.75]];
    let (total, delta) = exercises::mse_linear(z.view(), y.view());
    assert_eq!(total, 5.0, "Σ ℓ");
    assert_eq!(delta, array![[-0.25, -0.75], [0.75, -0.25]], "δ");
}

/// `δ` against central differences of the mean `L = Σ ℓ / (B·D)`.
#[test]
fn mse_linear_gradient_by_finite_differences() {
    let (batch, d) = (3, 5);
    let mut z = random((batch, d), -2.0, 2.0, 20);
    let y = random((batch, d), 0.0, 1.0, 21);
    let (_, delta) = exercises::mse_linear(z.view(), y.view());
    let numeric = numeric_gradient(z.as_slice_mut().unwrap(), 1e-2, |z| {
        let z = ArrayView2::from_shape((batch, d), z).unwrap();
        exercises::mse_linear(z, y.view()).0 / (batch * d) as f64
    });
    assert!(relative_error("δ of (z − y)²", delta.as_slice().unwrap(), &numeric) < TOLERANCE);
}

// Exercise 5: average pooling.

/// By hand, on a 2×4 image of one channel (its blocks `[1, 5, 3, 2]` and `[7, 7, 7, 0]`) and a
/// 2×2 image of two channels (channel 0 holds 1…4, channel 1 holds 10…40):
///
/// ```text
/// Z  = [(1 + 5 + 3 + 2)/4, (7 + 7 + 7 + 0)/4] = [2.75, 5.25]
/// δ  = [10, 20]  →  dX = [2.5, 2.5, 5, 5,  2.5, 2.5, 5, 5]
/// Z  = [(1 + 2 + 3 + 4)/4, (10 + 20 + 30 + 40)/4] = [2.5, 25]
/// δ  = [−4, 8]   →  dX = [−1, 2] at each of the four pixels
/// ```
#[test]
fn avg_pool_on_literal_values() {
    let one_channel = Image::new(2, 4, 1);
    let x = array![[1.0, 5.0, 7.0, 7.0, 3.0, 2.0, 7.0, 0.0]];
    assert_eq!(exercises::avg_pool_forward(x.view(), one_channel), array![[2.75, 5.25]]);
    let dx = exercises::avg_pool_backward(array![[10.0, 20.0]].view(), one_channel);
    assert_eq!(dx, array![[2.5, 2.5, 5.0, 5.0, 2.5, 2.5, 5.0, 5.0]]);

    let two_channels = Image::new(2, 2, 2);
    let x = array![[1.0, 10.0, 2.0, 20.0, 3.0, 30.0, 4.0, 40.0]];
    assert_eq!(exercises::avg_pool_forward(x.view(), two_channels), array![[2.5, 25.0]]);
    let dx = exercises::avg_pool_backward(array![[-4.0, 8.0]].view(), two_channels);
    assert_eq!(dx, array![[-1.0, 2.0, -1.0, 2.0, -1.0, 2.0, -1.0, 2.0]]);
}

/// `dX` against central differences of `Σ C ⊙ avg_pool(X)`, for a batch of 4×6 images of three
/// channels.
#[test]
fn avg_pool_gradient_by_finite_differences() {
    let (batch, input) = (2, Image::new(4, 6, 3));
    let mut x = random((batch, input.len()), -1.0, 1.0, 30);
    let c = random((batch, input.len() / 4), -1.0, 1.0, 31);
    let dx = exercises::avg_pool_backward(c.view(), input);
    let numeric = numeric_gradient(x.as_slice_mut().unwrap(), 1e-2, |x| {
        let x = ArrayView2::from_shape((batch, input.len()), x).unwrap();
        probe(&c, exercises::avg_pool_forward(x, input).view())
    });
    assert!(relative_error("dX of average pooling", dx.as_slice().unwrap(), &numeric) < TOLERANCE);
}

// Exercise 6: max-pooling's backward pass, by loops.

/// The block `[1, 5, 3, 2]` sends its gradient to the 5; the block `[7, 7, 7, 0]` has three
/// maxima and sends its gradient to the first, the top left.
#[test]
fn max_pool_backward_on_a_literal_block() {
    let x = array![[1.0, 5.0, 7.0, 7.0, 3.0, 2.0, 7.0, 0.0]];
    let dx = exercises::max_pool_backward(x.view(), array![[10.0, 20.0]].view(), Image::new(2, 4, 1));
    assert_eq!(dx, array![[0.0, 10.0, 20.0, 0.0, 0.0, 0.0, 0.0, 0.0]]);
}

/// The reference engine's numbers, to the bit, on inputs of three levels only (0, 1 and 2), so
/// that most blocks hold ties, on several shapes: one block, several channels, a batch.
#[test]
fn max_pool_backward_matches_the_reference_with_ties() {
    let shapes = [(1, Image::new(2, 2, 1)), (3, Image::new(4, 6, 2)), (2, Image::new(6, 2, 3))];
    for (seed, (batch, input)) in shapes.into_iter().enumerate() {
        let seed = 40 + 2 * seed as u64;
        let x = random((batch, input.len()), 0.0, 3.0, seed).mapv(f32::floor);
        let delta = random((batch, input.len() / 4), -1.0, 1.0, seed + 1);
        let expected = reference::pool::backward_input(&MaxPool2d { input }, x.view(), delta.view());
        let dx = exercises::max_pool_backward(x.view(), delta.view(), input);
        assert_eq!(dx, expected, "{batch} images of {input:?}");
    }
}

// Exercise 7: SGD with momentum.

/// Two steps on a layer of two weights and one bias, lr 0.1, μ 0.9, worked out by hand:
///
/// ```text
///                 W                 b
/// start           [0.5,  −0.3]      [0.2]
/// g₁              [0.4,  −0.2]      [0.1]
/// v = g₁          [0.4,  −0.2]      [0.1]
/// w − 0.1·v       [0.46, −0.28]     [0.19]
/// g₂              [−0.1,  0.3]      [0.25]
/// v = 0.9·v + g₂  [0.26,  0.12]     [0.34]       0.36 − 0.1, −0.18 + 0.3, 0.09 + 0.25
/// w − 0.1·v       [0.434, −0.292]   [0.156]
/// ```
#[test]
fn momentum_two_steps_worked_by_hand() {
    let layer = Dense::from_parts(array![[0.5, -0.3]], array![0.2]);
    let mut model = Model { layers: vec![Layer::Dense(layer)], activations: vec![Activation::Sigmoid] };
    let mut opt = Momentum::new(0.1, 0.9, model.param_sizes());
    let gradients = |dw, db| vec![Some(Gradients { dw, db })];
    exercises::momentum_step(&mut opt, &mut model, &gradients(array![[0.4, -0.2]], array![0.1]));
    let dense = model.layers[0].as_dense().unwrap();
    assert_near("W after one step", &dense.w().to_owned(), &array![[0.46, -0.28]], 1e-6);
    assert!((dense.b[0] - 0.19).abs() < 1e-6, "b after one step: {}", dense.b);

    exercises::momentum_step(&mut opt, &mut model, &gradients(array![[-0.1, 0.3]], array![0.25]));
    let dense = model.layers[0].as_dense().unwrap();
    assert_near("W after two steps", &dense.w().to_owned(), &array![[0.434, -0.292]], 1e-6);
    assert!((dense.b[0] - 0.156).abs() < 1e-6, "b after two steps: {}", dense.b);
    let v: Vec<f32> = opt.v.concat();
    assert!(v.iter().zip([0.26, 0.12, 0.34]).all(|(v, e)| (v - e).abs() < 1e-6), "velocities {v:?}");
}

/// A model whose middle layer, a max-pool, has no parameters: its `None` is skipped, and each
/// tensor gets its own gradient (the first step is `w − lr·g`).
#[test]
fn momentum_skips_layers_without_parameters() {
    let (first, last) = (dense_layer(2, 4, 50), dense_layer(1, 2, 52));
    let pool = MaxPool2d { input: Image::new(2, 2, 1) };
    let layers = vec![Layer::Dense(first.clone()), Layer::MaxPool2d(pool), Layer::Dense(last.clone())];
    let activations = vec![Activation::Relu, Activation::Identity, Activation::Sigmoid];
    let mut model = Model { layers, activations };
    let grads = [(4, 2, 54), (2, 1, 56)].map(|(o, i, seed)| Gradients {
        dw: random((o, i), -1.0, 1.0, seed),
        db: Array1::from_iter(random((1, o), -1.0, 1.0, seed + 1)),
    });
    let mut opt = Momentum::new(0.5, 0.9, model.param_sizes());
    exercises::momentum_step(&mut opt, &mut model, &[Some(grads[0].clone()), None, Some(grads[1].clone())]);
    for (l, (before, g)) in [(0, (&first, &grads[0])), (2, (&last, &grads[1]))] {
        let after = model.layers[l].as_dense().unwrap();
        assert_near(&format!("W of layer {l}"), &after.w().to_owned(), &(&before.w() - &(0.5 * &g.dw)), 1e-6);
        let b = |b: Array1<f32>| b.insert_axis(ndarray::Axis(0));
        assert_near(&format!("b of layer {l}"), &b(after.b.clone()), &b(&before.b - &(0.5 * &g.db)), 1e-6);
    }
}
