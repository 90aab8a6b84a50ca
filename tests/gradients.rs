//! Every hand-written gradient against central finite differences, on random, non-trivial
//! inputs (zeros and ones hide bugs). Errors are normwise: the largest difference over the
//! largest gradient. Single layers and losses are differentiated in f32 (bar 1e-3); the whole
//! network against an f64 re-implementation of the forward pass (bar 1e-5). Each check prints
//! its `maxdiff`, so a reader sees how far inside the bar it is:
//! `cargo test --test gradients -- --nocapture`.

mod common;

use common::{Engine, numeric_gradient, random, relative_error};
use dae::engine::activation::Activation;
use dae::engine::dense::Dense;
use dae::engine::loss::Loss;
use dae::engine::model::Model;
use ndarray::{Array1, Array2, ArrayView2};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

const TOLERANCE: f64 = 1e-3;

/// `Σ c ⊙ z`, a linear probe: its gradient with respect to `z` is exactly `c`.
fn probe(c: &Array2<f32>, z: ArrayView2<f32>) -> f64 {
    c.iter().zip(z.iter()).map(|(&c, &z)| f64::from(c) * f64::from(z)).sum()
}

fn layer(inputs: usize, outputs: usize, seed: u64) -> Dense {
    let w = random((outputs, inputs), -0.8, 0.8, seed);
    let b = Array1::from_iter(random((1, outputs), -0.5, 0.5, seed + 1));
    Dense::from_parts(w, b)
}

#[test]
fn dense_weight_and_bias_gradients() {
    let (batch, inputs, outputs) = (5, 7, 4);
    let x = random((batch, inputs), -1.0, 1.0, 1);
    let c = random((batch, outputs), -1.0, 1.0, 2);
    let mut dense = layer(inputs, outputs, 3);
    let mut z = Array2::zeros((batch, outputs));
    dense.backward(x.view(), c.view(), None);

    let mut w = dense.w().to_owned();
    let numeric = numeric_gradient(w.as_slice_mut().unwrap(), 1e-2, |w| {
        let d = Dense::from_parts(
            Array2::from_shape_vec((outputs, inputs), w.to_vec()).unwrap(),
            dense.b.clone(),
        );
        d.forward(x.view(), z.view_mut(), None);
        probe(&c, z.view())
    });
    assert!(relative_error("dW", dense.dw.as_slice().unwrap(), &numeric) < TOLERANCE);

    let mut b = dense.b.to_vec();
    let numeric = numeric_gradient(&mut b, 1e-2, |b| {
        let d = Dense::from_parts(dense.w().to_owned(), Array1::from(b.to_vec()));
        d.forward(x.view(), z.view_mut(), None);
        probe(&c, z.view())
    });
    assert!(relative_error("db", dense.db.as_slice().unwrap(), &numeric) < TOLERANCE);
}

/// The training step's shard forward, on one thread ([`Dense::forward_shard`]), computes the
/// numbers of the pooled one checked above, to the bit: the same products, each row's sums in
/// the same order. (Their backward is one function, [`Dense::backward`].)
#[test]
fn dense_shard_forward_is_the_pooled_one_to_the_bit() {
    let (batch, inputs, outputs) = (37, 50, 29);
    let x = random((batch, inputs), -1.0, 1.0, 20);
    let dense = layer(inputs, outputs, 22);
    let (mut y, mut y_rows) = (Array2::zeros((batch, outputs)), Array2::zeros((batch, outputs)));
    dense.forward(x.view(), y.view_mut(), Some(Activation::Relu));
    dense.forward_shard(x.view(), y_rows.view_mut(), Some(Activation::Relu));
    assert_eq!(y, y_rows, "forward");
    assert!(y.iter().any(|&v| v != 0.0), "numbers that prove something");
}

/// Weights changed through `w_mut` or `params_and_grads` must be the ones the next forward uses
/// (the layer's copy of `Wᵀ` is then out of date), on the pool and on one thread.
#[test]
fn dense_forward_reads_weights_changed_in_place() {
    let x = random((3, 5), -1.0, 1.0, 4);
    // Each way of changing W on a layer fresh from `from_parts`, whose `Wᵀ` is current.
    let ways: [fn(&mut Dense); 2] =
        [|d| d.w_mut()[[1, 3]] += 0.5, |d| d.params_and_grads()[0].0[5 + 3] += 0.5 /* W[1, 3] */];
    for change in ways {
        let mut dense = layer(5, 2, 5);
        let (mut before, mut after, mut fresh) =
            (Array2::zeros((3, 2)), Array2::zeros((3, 2)), Array2::zeros((3, 2)));
        dense.forward(x.view(), before.view_mut(), None);
        change(&mut dense);
        dense.forward(x.view(), after.view_mut(), None);
        let mut rows = Array2::zeros((3, 2));
        dense.forward_shard(x.view(), rows.view_mut(), None);
        assert_eq!(after, rows);
        Dense::from_parts(dense.w().to_owned(), dense.b.clone()).forward(x.view(), fresh.view_mut(), None);
        assert_eq!(after, fresh);
        // Only output 1 reads W[1, 3]: it moved by 0.5·x[·, 3], output 0 did not move.
        for r in 0..3 {
            assert_eq!(after[[r, 0]], before[[r, 0]]);
            assert!((after[[r, 1]] - before[[r, 1]] - 0.5 * x[[r, 3]]).abs() < 1e-6);
        }
    }
}

/// `∂L/∂z₀` through `a₀ = f(z₀)` and `z = a₀·Wᵀ + b`: checks `δ·W` and `f′` together,
/// for a layer with fewer outputs than the batch has rows, and for one with more.
fn check_input_gradient(f: Activation, (batch, inputs, outputs): (usize, usize, usize)) -> f64 {
    let mut z0 = random((batch, inputs), -2.0, 2.0, 10);
    // Keep every pre-activation away from ReLU's kink, where the derivative does not exist.
    z0.mapv_inplace(|v| if v.abs() < 0.1 { v + 0.2_f32.copysign(v) } else { v });
    let c = random((batch, outputs), -1.0, 1.0, 11);
    let mut dense = layer(inputs, outputs, 12);
    let mut z = Array2::zeros((batch, outputs));
    let mut a0 = z0.clone();
    f.forward(a0.as_slice_mut().unwrap());
    let mut dz0 = Array2::zeros((batch, inputs));
    dense.backward(a0.view(), c.view(), Some((f, dz0.view_mut())));

    let numeric = numeric_gradient(z0.as_slice_mut().unwrap(), 1e-2, |z0| {
        let mut a0 = Array2::from_shape_vec((batch, inputs), z0.to_vec()).unwrap();
        f.forward(a0.as_slice_mut().unwrap());
        dense.forward(a0.view(), z.view_mut(), None);
        probe(&c, z.view())
    });
    relative_error(&format!("dX through {f:?}"), dz0.as_slice().unwrap(), &numeric)
}

#[test]
fn dense_input_gradient_through_relu() {
    assert!(check_input_gradient(Activation::Relu, (6, 9, 5)) < TOLERANCE);
    assert!(check_input_gradient(Activation::Relu, (3, 9, 11)) < TOLERANCE);
}

#[test]
fn dense_input_gradient_through_sigmoid() {
    assert!(check_input_gradient(Activation::Sigmoid, (6, 9, 5)) < TOLERANCE);
    assert!(check_input_gradient(Activation::Sigmoid, (3, 9, 11)) < TOLERANCE);
}

/// `Σ ℓ(z, y)` over a short row, for finite differences of the loss alone.
fn check_loss(loss: Loss) -> f64 {
    let z = random((1, 16), -6.0, 6.0, 20);
    let y = random((1, 16), 0.0, 1.0, 21);
    let (y, mut z) = (y.into_raw_vec_and_offset().0, z.into_raw_vec_and_offset().0);
    let mut dz = vec![0.0; z.len()];
    loss.forward_backward(&z, &y, 1.0, &mut dz);
    let mut scratch = vec![0.0; z.len()];
    let numeric =
        numeric_gradient(&mut z, 1e-2, |z| f64::from(loss.forward_backward(z, &y, 1.0, &mut scratch)));
    relative_error(&format!("{loss:?} from logits"), &dz, &numeric)
}

#[test]
fn sigmoid_bce_gradient() {
    assert!(check_loss(Loss::Bce) < TOLERANCE);
}

#[test]
fn sigmoid_mse_gradient() {
    assert!(check_loss(Loss::Mse) < TOLERANCE);
}

#[test]
fn bce_is_stable_for_large_logits() {
    let z = [-200.0f32, -30.0, 30.0, 200.0];
    let y = [0.25f32, 1.0, 0.0, 0.75];
    let mut dz = [0.0; 4];
    let sum = Loss::Bce.forward_backward(&z, &y, 1.0, &mut dz);
    // ℓ ≈ max(z,0) − z·y for |z| ≫ 1: 50 + 30 + 30 + 50.
    assert!((sum - 160.0).abs() < 1e-3, "sum {sum}");
    // ∂ℓ/∂z = σ(z) − y: σ is 0 or 1 to f32 precision.
    let expected = [-0.25f32, -1.0, 1.0, 0.25];
    for (d, e) in dz.iter().zip(expected) {
        assert!((d - e).abs() < 1e-6, "{dz:?}");
    }
}

/// The mean BCE of the autoencoder on `x` against `y`, recomputed in f64 by the plainest code:
/// what the whole-network check differentiates numerically. In f32, finite
/// differences of a mean over many entries drown in rounding before `h` is small enough to stay
/// clear of ReLU's kinks; in f64 they do not.
fn loss_f64(model: &Model, x: &Array2<f32>, y: &Array2<f32>) -> f64 {
    let mut a: Array2<f64> = x.mapv(f64::from);
    let last = model.layers.len() - 1;
    for (l, layer) in model.layers.iter().enumerate() {
        let mut z = a.dot(&layer.as_dense().unwrap().w().mapv(f64::from).t())
            + layer.as_dense().unwrap().b.mapv(f64::from);
        if l < last {
            z.mapv_inplace(|v| v.max(0.0));
        }
        a = z;
    }
    let bce = |z: f64, y: f64| z.max(0.0) - z * y + (-z.abs()).exp().ln_1p();
    a.iter().zip(y.iter()).map(|(&z, &y)| bce(z, f64::from(y))).sum::<f64>() / a.len() as f64
}

/// Every parameter of a whole small autoencoder, through the mean BCE the trainer minimises,
/// against central differences of the f64 re-implementation: the fast engine's gradients and
/// the reference engine's, each on its own (neither is checked through the other).
#[test]
fn whole_network_gradients() {
    let (batch, d) = (5, 12);
    let x = random((batch, d), 0.0, 1.0, 30);
    let y = random((batch, d), 0.0, 1.0, 31);
    let mut rng = ChaCha8Rng::seed_from_u64(32);
    let mut model = Model::autoencoder(d, &[8, 6, 3], &mut rng);
    for (l, layer) in model.layers.iter_mut().enumerate() {
        // Non-zero biases, so that their gradients are not hidden behind the weights'.
        let layer = layer.as_dense_mut().unwrap();
        layer.b = Array1::from_iter(random((1, layer.b.len()), -0.3, 0.3, 33 + l as u64));
    }
    for engine in [Engine::Fast, Engine::Reference] {
        assert_eq!(common::check_whole_model(engine, &model, &x, &y, loss_f64), 12);
    }
}
