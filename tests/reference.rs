//! The fast engine held to the reference engine (`src/reference/`): every forward and backward,
//! both losses, Adam fused and not, and whole training steps of the dense and the convolutional
//! model, on random inputs and shapes with ragged tails. Each check prints its `maxdiff`
//! (`cargo test --test reference -- --nocapture`).
//!
//! The reference's own gradients are checked against central differences here too, layer by
//! layer (and whole models in `tests/gradients.rs` and `tests/conv.rs`, its Adam against values
//! worked out by hand in `tests/adam.rs`), so that neither engine's correctness rests on the
//! other's.
//!
//! Equal to the bit where both engines add the same terms in the same order: a dense layer
//! (the reference's `.dot` is `matrixmultiply`, whose order of sums our kernel keeps), the
//! activations' slopes and max-pooling. Elsewhere within a stated bar, normwise (the largest
//! difference over the largest reference value), each for a reason named at its test.

mod common;

use common::random;
use dae::engine::activation::Activation;
use dae::engine::adam::{Adam, m_floor};
use dae::engine::conv::Conv2d;
use dae::engine::conv_transpose::ConvTranspose2d;
use dae::engine::dense::{Dense, Write};
use dae::engine::layer::Layer;
use dae::engine::loss::Loss;
use dae::engine::lowering::{Image, Scratch};
use dae::engine::model::{Model, Workspace};
use dae::engine::pool::MaxPool2d;
use dae::reference::{self, Gradients, activation, model as reference_model};
use dae::train::profile::Profile;
use ndarray::{Array1, Array2, ArrayView2};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// The largest `|fast − reference|`, over the largest `|reference|`.
fn normwise(fast: &[f32], reference: &[f32]) -> (f32, f32) {
    assert_eq!(fast.len(), reference.len(), "sizes");
    let max_diff = fast.iter().zip(reference).map(|(f, r)| (f - r).abs()).fold(0.0, f32::max);
    let scale = reference.iter().map(|r| r.abs()).fold(0.0, f32::max);
    (max_diff, if scale > 0.0 { max_diff / scale } else { max_diff })
}

/// Every number of `fast` equal to `reference`'s (as `f32`s: 0 equals −0).
fn assert_same(what: &str, fast: &[f32], reference: &[f32]) {
    let (max_diff, _) = normwise(fast, reference);
    let same = fast.iter().zip(reference).all(|(f, r)| f == r);
    println!("{what}: maxdiff {max_diff:.3e} {}", if same { "OK (bits)" } else { "NOT OK" });
    assert!(same, "{what}: not the same numbers");
    assert!(reference.iter().any(|&r| r != 0.0), "{what}: all zero, which proves nothing");
}

/// `fast` within `bar` of `reference`, normwise.
fn assert_close(what: &str, fast: &[f32], reference: &[f32], bar: f32) {
    let (max_diff, relative) = normwise(fast, reference);
    let ok = relative <= bar;
    println!("{what}: maxdiff {max_diff:.3e}, relative {relative:.3e} {}", if ok { "OK" } else { "NOT OK" });
    assert!(ok, "{what}: relative difference {relative:e} over the bar {bar:e}");
    assert!(reference.iter().any(|&r| r != 0.0), "{what}: all zero, which proves nothing");
}

fn slice(a: &Array2<f32>) -> &[f32] {
    a.as_slice().expect("contiguous")
}

/// The fast engine's backward through `layer` from `delta`, for an input `a_prev` that the
/// activation `f` output: the parameters' gradients, and `δ_prev`.
fn fast_backward(
    layer: &mut Layer,
    a_prev: ArrayView2<f32>,
    delta: ArrayView2<f32>,
    f: Activation,
) -> (Option<Gradients>, Array2<f32>) {
    let (lowered, partials) = layer.scratch_needs(a_prev.nrows());
    let mut scratch = Scratch::new(rayon::current_num_threads(), lowered, partials);
    let mut delta_prev = Array2::from_elem(a_prev.raw_dim(), f32::NAN);
    layer.backward(a_prev, delta, Some((f, a_prev, delta_prev.view_mut())), &mut scratch, None);
    (gradients_of(layer), delta_prev)
}

/// The reference's backward through `layer`: the parameters' gradients, and `δ_prev`.
fn reference_backward(
    layer: &Layer,
    a_prev: ArrayView2<f32>,
    delta: ArrayView2<f32>,
    f: Activation,
) -> (Option<Gradients>, Array2<f32>) {
    let grads = reference_model::layer_backward(layer, a_prev, delta);
    let da_prev = reference_model::layer_backward_input(layer, a_prev, delta);
    (grads, activation::backward(f, a_prev, da_prev))
}

/// An input that activation `f` could have output: `f` of random numbers in `[−1, 1)`.
fn activated(f: Activation, shape: (usize, usize), seed: u64) -> Array2<f32> {
    activation::forward(f, random(shape, -1.0, 1.0, seed))
}

/// Compares one layer's forward and backward, fast against reference: to the bit if `bar` is
/// `None`, else within it.
fn compare_layer(name: &str, layer: Layer, batch: usize, f: Activation, bar: Option<f32>) {
    let check = |what: &str, fast: &[f32], reference: &[f32]| match bar {
        None => assert_same(&format!("{name} {what}"), fast, reference),
        Some(bar) => assert_close(&format!("{name} {what}"), fast, reference, bar),
    };
    let x = activated(f, (batch, layer.inputs()), 1);
    let relu = Some(Activation::Relu);
    let z = reference_model::layer_forward(&layer, x.view());
    if !matches!(layer, Layer::MaxPool2d(_)) {
        check("forward", slice(&common::forward(&layer, x.view(), None)), slice(&z));
    }
    let a = activation::forward(Activation::Relu, z);
    check("forward with ReLU", slice(&common::forward(&layer, x.view(), relu)), slice(&a));

    let delta = random((batch, layer.outputs()), -1.0, 1.0, 2);
    let (grads, delta_prev) = reference_backward(&layer, x.view(), delta.view(), f);
    let mut fast = layer.clone();
    let (fast_grads, fast_delta_prev) = fast_backward(&mut fast, x.view(), delta.view(), f);
    check(&format!("δ_prev through {f:?}"), slice(&fast_delta_prev), slice(&delta_prev));
    if let (Some(g), Some(fast_g)) = (grads, fast_grads) {
        check("dW", slice(&fast_g.dw), slice(&g.dw));
        check("db", fast_g.db.as_slice().unwrap(), g.db.as_slice().unwrap());
    }
}

fn dense(inputs: usize, outputs: usize, seed: u64) -> Layer {
    let w = random((outputs, inputs), -0.5, 0.5, seed);
    Layer::Dense(Dense::from_parts(w, Array1::from_iter(random((1, outputs), -0.5, 0.5, seed + 1))))
}

/// A dense layer sums every product in the reference's order: the same bits, forward and
/// backward, through ReLU and the sigmoid, on shapes with ragged tails (37 rows, 29 and 50
/// columns, one row, one output) and with more outputs than rows (97 against 16).
#[test]
fn a_dense_layer_is_the_reference_to_the_bit() {
    for (batch, inputs, outputs) in [(37, 50, 29), (64, 784, 33), (1, 3, 1), (20, 17, 20), (16, 40, 97)] {
        for f in [Activation::Relu, Activation::Sigmoid] {
            let name = format!("dense {batch}×{inputs}→{outputs}");
            compare_layer(&name, dense(inputs, outputs, 3), batch, f, None);
        }
    }
}

/// The convolutions sum the same products as the reference's loops, but grouped otherwise
/// (lowered products in blocks of 256 terms, partial gradients per group of images, the output
/// layer tap by tap), so they agree to rounding: below 1e-6 of the largest value on these sizes,
/// a bar of 1e-5. Every path: lowered by rows (C ≥ 8) and transposed (C < 8), by taps (O < 8),
/// kernels of 1, 3 and 5, odd sides, batches of one and of more than one group.
#[test]
fn convolutions_are_the_reference_within_rounding() {
    let conv = |input: Image, outputs: usize, k: usize, seed: u64| {
        let w = random((outputs, k * k * input.channels), -0.5, 0.5, seed);
        let b = Array1::from_iter(random((1, outputs), -0.5, 0.5, seed + 1));
        Layer::Conv2d(Conv2d::from_parts(input, w, b))
    };
    let sizes = [
        (5, 7, 3, 4, 3, 1),
        (5, 7, 3, 4, 3, 70),
        (1, 1, 1, 1, 3, 9),
        (6, 5, 2, 3, 5, 3),
        (4, 3, 2, 2, 1, 2),
        (5, 7, 3, 9, 3, 1),
        (5, 4, 3, 8, 3, 70),
        (1, 1, 1, 8, 3, 2),
        (6, 5, 2, 8, 5, 3),
        (4, 3, 2, 8, 1, 2),
        (5, 6, 8, 9, 3, 3),
        (4, 4, 9, 8, 5, 40),
        (7, 7, 32, 1, 3, 5),
        // Bias gradients 32 columns at a time and one at a time.
        (3, 5, 2, 40, 3, 3),
    ];
    for (i, (h, w, c, o, k, batch)) in sizes.into_iter().enumerate() {
        let name = format!("conv2d {h}×{w}×{c}→{o} k{k} batch {batch}");
        let layer = conv(Image::new(h, w, c), o, k, 7 + 3 * i as u64);
        compare_layer(&name, layer, batch, Activation::Relu, Some(1e-5));
    }
}

/// The transposed convolution: the same sums as its loops, grouped otherwise (the bar of
/// [`convolutions_are_the_reference_within_rounding`]), for strides 1 to 3 and kernels of 1, 3 and 5.
#[test]
fn transposed_convolutions_are_the_reference_within_rounding() {
    for (h, w, c, o, k, stride, batch) in [
        (3, 4, 3, 2, 3, 2, 1),
        (3, 4, 3, 2, 3, 2, 40),
        (1, 1, 1, 1, 3, 2, 2),
        (5, 3, 2, 3, 3, 1, 2),
        (2, 3, 2, 2, 3, 3, 2),
        (2, 3, 9, 10, 3, 3, 2),
        // Three windows on a pixel along an axis; every pixel covered at stride 3; gaps.
        (3, 4, 2, 3, 5, 2, 3),
        (3, 2, 2, 2, 5, 3, 2),
        (3, 4, 2, 3, 1, 2, 2),
    ] {
        let wt = random((c, k * k * o), -0.5, 0.5, 8);
        let b = Array1::from_iter(random((1, o), -0.5, 0.5, 9));
        let layer = Layer::ConvTranspose2d(ConvTranspose2d::from_parts(Image::new(h, w, c), stride, wt, b));
        let name = format!("conv_transpose2d {h}×{w}×{c}→{o} k{k} stride {stride} batch {batch}");
        compare_layer(&name, layer, batch, Activation::Relu, Some(1e-5));
    }
}

/// Max-pooling compares and copies: the same bits, including which of a tie gets the
/// gradient. After a ReLU the ties are zeros, whose gradient `f′` then zeroes whoever gets it;
/// so the ties are also tried on inputs of four levels, without an activation.
#[test]
fn max_pooling_is_the_reference_to_the_bit() {
    for (h, w, c, batch) in [(4, 6, 3, 5), (2, 2, 1, 1), (8, 8, 32, 3)] {
        let pool = Layer::MaxPool2d(MaxPool2d { input: Image::new(h, w, c) });
        compare_layer(&format!("max_pool2d {h}×{w}×{c}"), pool.clone(), batch, Activation::Relu, None);
        let x = random((batch, h * w * c), 0.0, 4.0, 3).mapv(f32::floor);
        let delta = random((batch, pool.outputs()), -1.0, 1.0, 4);
        let (_, delta_prev) = reference_backward(&pool, x.view(), delta.view(), Activation::Identity);
        let (_, fast) = fast_backward(&mut pool.clone(), x.view(), delta.view(), Activation::Identity);
        assert_same(&format!("max_pool2d {h}×{w}×{c} δ_prev with ties"), slice(&fast), slice(&delta_prev));
    }
}

/// The fast losses evaluate `e^x` and `ln(1 + x)` by their own polynomials
/// (`engine::fastmath`, within 2 units in the last place of the exact values, which
/// `tests/fastmath.rs` measures; the reference calls `std`'s), and sum each row in 16 lanes: the loss agrees to 1e-6 relative, `δ` to 1e-6 of its
/// largest entry.
#[test]
fn losses_are_the_reference_within_rounding() {
    let (rows, d) = (9, 53);
    let z = random((rows, d), -8.0, 8.0, 10);
    let y = random((rows, d), 0.0, 1.0, 11);
    for loss in [Loss::Bce, Loss::Mse] {
        let (total, delta) = reference::loss::loss_and_delta(loss, z.view(), y.view());
        let scale = 1.0 / (rows * d) as f32;
        let mut fast_delta = Array2::zeros((rows, d));
        let mut fast_total = 0.0;
        for ((z, y), mut dz) in z.rows().into_iter().zip(y.rows()).zip(fast_delta.rows_mut()) {
            let (z, y) = (z.as_slice().unwrap(), y.as_slice().unwrap());
            fast_total += f64::from(loss.forward_backward(z, y, scale, dz.as_slice_mut().unwrap()));
        }
        let relative = (fast_total - total).abs() / total;
        println!("{loss} loss: fast {fast_total}, reference {total}, relative {relative:.3e}");
        assert!(relative < 1e-6, "{loss}: loss {fast_total} vs {total}");
        assert_close(&format!("{loss} δ"), slice(&fast_delta), slice(&delta), 1e-6);
    }
}

/// Every parameter of `model` as one list of numbers.
fn parameters(model: &Model) -> Vec<f32> {
    model.clone().params_and_grads().flat_map(|(w, _)| w.to_vec()).collect()
}

/// The fast Adam, fused into the backward pass and as a step of its own, against the
/// reference's step from the same gradients, three steps for each model. The fast step
/// computes `lr·m̂/(√v̂ + ε)` as `α·m/(c·√v + ε)` with the bias corrections folded into `α` and
/// `c`: the distance each weight has moved agrees to 1e-5 of the largest, and the moments to
/// the bit (their formulas are the same).
#[test]
fn adam_is_the_reference_fused_or_not() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    for model in [Model::autoencoder(64, &[24, 8], &mut rng), Model::conv_autoencoder(8, 8, &mut rng)] {
        let x = random((20, 64), 0.0, 1.0, 12);
        let start = parameters(&model);
        let (mut fused, mut apart, mut plain) = (model.clone(), model.clone(), model);
        let mut adam_fused = Adam::new(1e-2, fused.param_sizes());
        let (mut adam_apart, mut adam_plain) = (adam_fused.clone(), adam_fused.clone());
        let mut ws = Workspace::new(&fused, x.nrows());
        for _ in 0..3 {
            fused.forward_loss(x.view(), Loss::Bce, x.view(), &mut ws);
            fused.backward(x.view(), &mut ws, Some(&mut adam_fused));

            apart.forward_loss(x.view(), Loss::Bce, x.view(), &mut ws);
            apart.backward(x.view(), &mut ws, None);
            adam_apart.step(apart.params_and_grads());
            // The reference steps from the gradients the fast engine computed: Adam alone is
            // compared.
            let grads = apart.layers.iter().map(gradients_of).collect::<Vec<_>>();
            reference::adam::step(&mut adam_plain, &mut plain, &grads);
        }
        let moved = |m: &Model| parameters(m).iter().zip(&start).map(|(w, s)| w - s).collect::<Vec<_>>();
        assert_close("Adam fused, distance moved", &moved(&fused), &moved(&plain), 1e-5);
        assert_close("Adam apart, distance moved", &moved(&apart), &moved(&plain), 1e-5);
        // The moments are the gradients' running means, by the same formulas in both engines:
        // the same bits, fused or not (which also holds the fused path's gradients to the bit).
        for fast in [&adam_apart, &adam_fused] {
            assert_eq!(fast.m, adam_plain.m, "first moments");
            assert_eq!(fast.v, adam_plain.v, "second moments");
        }
        assert_eq!((adam_fused.t, adam_plain.t), (3, 3), "steps counted");
    }
}

/// Gradients that fall silent, as a dead ReLU unit's do: after one step of gradients in
/// `[−1, 1]` (in `±1e-20` for the second layer, whose `v` would start subnormal), a thousand of
/// zeros. Each `m` shrinks by β₁ a step, and `lr·m` would be subnormal
/// (slow on Intel CPUs) from about step 720, `m` itself from about 800; both engines set `m` to 0
/// once it is below `m_floor(lr)`. At every step no moment is below its floor, the two engines'
/// moments are the same bits, and at the end every `m` is 0 while `v`, which shrinks by β₂, is
/// not.
#[test]
fn silent_gradients_leave_moments_zero_not_subnormal() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let (mut fast, mut plain) = {
        let model = Model::autoencoder(16, &[8], &mut rng);
        (model.clone(), model)
    };
    let mut adam_fast = Adam::new(1e-3, fast.param_sizes());
    let mut adam_plain = adam_fast.clone();
    let small = |floor: f32| move |x: &f32| *x != 0.0 && x.abs() < floor;
    for step in 0..1000 {
        for (l, layer) in fast.layers.iter_mut().enumerate() {
            let dense = layer.as_dense_mut().expect("a dense model");
            let (o, i) = dense.dw.dim();
            let size = match (step, l) {
                (0, 0) => 1.0,
                (0, _) => 1e-20,
                _ => 0.0,
            };
            dense.dw.assign(&(random((o, i), -1.0, 1.0, 40 + l as u64) * size));
            dense.db.assign(&(random((1, o), -1.0, 1.0, 50 + l as u64).row(0).to_owned() * size));
        }
        let grads = fast.layers.iter().map(gradients_of).collect::<Vec<_>>();
        adam_fast.step(fast.params_and_grads());
        reference::adam::step(&mut adam_plain, &mut plain, &grads);
        let (m, v) = (adam_fast.m.iter().chain(&adam_plain.m), adam_fast.v.iter().chain(&adam_plain.v));
        assert!(!m.flatten().any(small(m_floor(1e-3))), "an m below its floor after step {}", step + 1);
        assert!(!v.flatten().any(small(f32::MIN_POSITIVE)), "a subnormal v after step {}", step + 1);
        assert_eq!((&adam_fast.m, &adam_fast.v), (&adam_plain.m, &adam_plain.v), "step {}", step + 1);
    }
    assert!(adam_fast.m.iter().flatten().all(|&m| m == 0.0), "every m set to 0");
    assert!(adam_fast.v.iter().flatten().filter(|&&v| v > 0.0).count() > 100, "v still positive");
}

/// The fast engine's gradients of a layer, as the reference holds them.
fn gradients_of(layer: &Layer) -> Option<Gradients> {
    match layer {
        Layer::Dense(d) => Some(Gradients { dw: d.dw.clone(), db: d.db.clone() }),
        Layer::Conv2d(c) => Some(Gradients { dw: c.dw.clone(), db: c.db.clone() }),
        Layer::ConvTranspose2d(c) => Some(Gradients { dw: c.dw.clone(), db: c.db.clone() }),
        Layer::MaxPool2d(_) => None,
    }
}

/// Five whole training steps, the fast engine's `train_step` (a dense model's shards on the team,
/// then the update that adds their gradients and takes Adam's step; a conv model's products on
/// the pool, Adam inside its backward pass) against the reference's, from the same model on the
/// same batches: the losses agree to 1e-5 relative at every step, and the distance each weight
/// has moved to `bar` of the largest. The differences are the rounding of the tests above,
/// carried through five steps: measured 1.6e-5 (dense) and 2.6e-5 (conv) against a bar of 1e-4,
/// the losses within 3e-9. A dense model's update writes `W` as `write` says (`None`: as
/// the distance between the cores chooses).
fn compare_steps(name: &str, model: Model, d: usize, batch: usize, bar: f32, write: Option<Write>) {
    let (mut fast, mut plain) = (model.clone(), model.clone());
    let start = parameters(&model);
    let mut fast_adam = Adam::new(1e-3, model.param_sizes());
    let mut plain_adam = fast_adam.clone();
    let mut ws = Workspace::for_training(&model, batch);
    if let Some(shards) = ws.shards.as_mut() {
        shards.fix_write(write);
    }
    let mut profile = Profile::default();
    for step in 0..5 {
        let target = random((batch, d), 0.0, 1.0, 20 + step);
        let input = (&target + &random((batch, d), -0.3, 0.3, 40 + step)).mapv(|v| v.clamp(0.0, 1.0));
        let (input, target) = (input.view(), target.view());
        let loss_fast = dae::train::train_step(
            &mut fast,
            &mut fast_adam,
            Loss::Bce,
            input,
            target,
            &mut ws,
            &mut profile,
        );
        let loss_plain = reference::train_step(&mut plain, &mut plain_adam, Loss::Bce, input, target);
        let relative = (loss_fast - loss_plain).abs() / loss_plain;
        println!(
            "{name} step {step}: loss fast {loss_fast}, reference {loss_plain}, relative {relative:.3e}"
        );
        assert!(relative < 1e-5, "{name} step {step}: loss {loss_fast} vs {loss_plain}");
    }
    let moved = |m: &Model| parameters(m).iter().zip(&start).map(|(w, s)| w - s).collect::<Vec<_>>();
    assert_close(&format!("{name} after 5 steps, distance moved"), &moved(&fast), &moved(&plain), bar);
}

#[test]
fn the_dense_training_step_is_the_reference() {
    // 300 rows: three shards of the data-parallel step, the last of 44. Both ways of writing `W`,
    // whichever this machine's cores would choose.
    let model = Model::autoencoder(48, &[20, 12, 6], &mut ChaCha8Rng::seed_from_u64(3));
    for write in [Write::InPlace, Write::Streamed] {
        compare_steps(
            &format!("dense 48→20→12→6→12→20→48, {write:?}"),
            model.clone(),
            48,
            300,
            1e-4,
            Some(write),
        );
    }
}

#[test]
fn the_convolutional_training_step_is_the_reference() {
    let model = Model::conv_autoencoder(8, 8, &mut ChaCha8Rng::seed_from_u64(4));
    compare_steps("conv 8×8", model, 64, 12, 1e-4, None);
}

/// `Σ c ⊙ z`, a linear probe: its gradient with respect to `z` is exactly `c`.
fn probe(c: &Array2<f32>, z: &Array2<f32>) -> f64 {
    c.iter().zip(z).map(|(&c, &z)| f64::from(c) * f64::from(z)).sum()
}

/// The reference's own gradients against central differences, layer by layer, through the
/// probe `L = Σ C ⊙ layer(X)` (so `δ = C`): `dW`, `db` and `dX` of a dense layer, both
/// convolutions and max-pooling (whose inputs are spread apart, so no step swaps a maximum).
///
/// The step is `h = 1e-2` and the bar 1e-3 (normwise) because the layers run in f32: their
/// outputs are rounded to about 6e-8 of their size, which a central difference divides by `2h`
/// (with `h = 1e-3` the errors reached 3e-4, the convolution's `dX`). The layers are linear in
/// what is varied (max-pooling piecewise, and no step crosses a piece), so a large `h` adds no
/// error of its own. Measured: 0 (max-pooling) to 2.4e-5 (the convolution's `dX`).
#[test]
fn the_reference_gradients_are_central_differences() {
    use common::{numeric_gradient, relative_error};
    let conv = Conv2d::from_parts(
        Image::new(4, 5, 2),
        random((3, 18), -0.5, 0.5, 60),
        Array1::from(vec![0.1, -0.2, 0.3]),
    );
    let conv_t = ConvTranspose2d::from_parts(
        Image::new(2, 3, 2),
        2,
        random((2, 27), -0.5, 0.5, 61),
        Array1::from(vec![0.2, -0.1, 0.05]),
    );
    let layers = [
        dense(7, 4, 62),
        Layer::Conv2d(conv),
        Layer::ConvTranspose2d(conv_t),
        Layer::MaxPool2d(MaxPool2d { input: Image::new(4, 4, 2) }),
    ];
    for layer in layers {
        let batch = 3;
        // Inputs a step of 1e-2 cannot reorder: distinct values at least 0.05 apart.
        let n = batch * layer.inputs();
        let mut values: Vec<f32> = (0..n).map(|i| ((i * 37) % n) as f32 * 0.05 - 1.0).collect();
        let x = Array2::from_shape_vec((batch, layer.inputs()), values.clone()).unwrap();
        let c = random((batch, layer.outputs()), -1.0, 1.0, 63);
        let name = layer.kind();
        let dx = reference_model::layer_backward_input(&layer, x.view(), c.view());
        let numeric = numeric_gradient(&mut values, 1e-2, |v| {
            let x = Array2::from_shape_vec((batch, layer.inputs()), v.to_vec()).unwrap();
            probe(&c, &reference_model::layer_forward(&layer, x.view()))
        });
        assert!(relative_error(&format!("{name} dX"), slice(&dx), &numeric) < 1e-3);
        let Some(grads) = reference_model::layer_backward(&layer, x.view(), c.view()) else { continue };
        let mut layer = layer;
        let [(w, _), (b, _)] = layer.params_and_grads().unwrap();
        let (mut w0, mut b0) = (w.to_vec(), b.to_vec());
        for (theta, analytic, what) in
            [(&mut w0, slice(&grads.dw), "dW"), (&mut b0, grads.db.as_slice().unwrap(), "db")]
        {
            let numeric = numeric_gradient(theta, 1e-2, |t| {
                let mut probed = layer.clone();
                let [(w, _), (b, _)] = probed.params_and_grads().unwrap();
                if what == "dW" {
                    w.copy_from_slice(t)
                } else {
                    b.copy_from_slice(t)
                }
                probe(&c, &reference_model::layer_forward(&probed, x.view()))
            });
            assert!(relative_error(&format!("{name} {what}"), analytic, &numeric) < 1e-3);
        }
    }
}

/// The reference losses' `δ` against central differences of their mean (in f64 from f32 terms),
/// and each activation's backward against central differences through a probe; `h` and the bar
/// as in the layers' test, where the curvature of the sigmoid and the losses costs `O(h²)`, about
/// 1e-5 here (measured at most 1.6e-5, the sigmoid's).
#[test]
fn the_reference_loss_and_activation_gradients_are_central_differences() {
    use common::{numeric_gradient, relative_error};
    let y = random((2, 9), 0.0, 1.0, 70);
    let z = random((2, 9), -4.0, 4.0, 71);
    for loss in [Loss::Bce, Loss::Mse] {
        let (_, delta) = reference::loss::loss_and_delta(loss, z.view(), y.view());
        let mut values = z.as_slice().unwrap().to_vec();
        let numeric = numeric_gradient(&mut values, 1e-2, |v| {
            let z = Array2::from_shape_vec((2, 9), v.to_vec()).unwrap();
            reference::loss::loss_and_delta(loss, z.view(), y.view()).0 / y.len() as f64
        });
        assert!(relative_error(&format!("reference {loss} δ"), slice(&delta), &numeric) < 1e-3);
    }
    let c = random((2, 9), -1.0, 1.0, 72);
    // Away from ReLU's kink, where a step of 1e-2 would cross it.
    let z = z.mapv(|v| if v.abs() < 0.1 { v + 0.2 } else { v });
    for f in [Activation::Relu, Activation::Sigmoid, Activation::Identity] {
        let a = activation::forward(f, z.clone());
        let delta = activation::backward(f, a.view(), c.clone());
        let mut values = z.as_slice().unwrap().to_vec();
        let numeric = numeric_gradient(&mut values, 1e-2, |v| {
            probe(&c, &activation::forward(f, Array2::from_shape_vec((2, 9), v.to_vec()).unwrap()))
        });
        assert!(relative_error(&format!("reference {f:?} backward"), slice(&delta), &numeric) < 1e-3);
    }
}
