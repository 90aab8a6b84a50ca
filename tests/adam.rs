//! Adam against steps worked out by hand, and the engine's reproducibility.

use dae::engine::activation::Activation;
use dae::engine::adam::Adam;
use dae::engine::dense::Dense;
use dae::engine::layer::Layer;
use dae::engine::model::Model;
use dae::reference::{self, Gradients};
use ndarray::{Array1, Array2, array};

/// Three steps on two weights, lr 0.1, β₁ 0.9, β₂ 0.999, ε 1e-7. Expected values from the
/// paper's Algorithm 1 in f64:
///
/// ```python
/// w=[1.0,-0.5]; m=[0,0]; v=[0,0]; lr=0.1; b1=0.9; b2=0.999; eps=1e-7
/// for t,g in enumerate([[0.5,-0.1],[-0.25,0.2],[0.0,0.3]],1):
///   for i in range(2):
///     m[i]=b1*m[i]+(1-b1)*g[i]; v[i]=b2*v[i]+(1-b2)*g[i]**2
///     w[i]-=lr*(m[i]/(1-b1**t))/(math.sqrt(v[i]/(1-b2**t))+eps)
///   print(w)
/// ```
const GRADIENTS: [[f32; 2]; 3] = [[0.5, -0.1], [-0.25, 0.2], [0.0, 0.3]];
const EXPECTED: [[f64; 2]; 3] = [
    [0.900000019999996, -0.4000000999999],
    [0.873366322772819, -0.43661042955255297],
    [0.8527783987957809, -0.50474631395932],
];

/// The weights after a step, within 1e-6 of the script's.
fn assert_weights(w: &[f32], expected: [f64; 2]) {
    for (w, e) in w.iter().zip(expected) {
        assert!((f64::from(*w) - e).abs() < 1e-6, "{w} vs {e}");
    }
}

/// The moments of the first tensor after the three steps, from the same script. In f32, 1 − β₂
/// rounds to 0.00100004673, so `v` is only good to about 5e-5 relative.
fn assert_moments(adam: &Adam) {
    assert_eq!(adam.t, 3);
    let close = |a: f32, e: f64| (f64::from(a) - e).abs() <= 1e-4 * e.abs();
    assert!(close(adam.m[0][0], 0.018) && close(adam.m[0][1], 0.0399), "{:?}", adam.m);
    assert!(close(adam.v[0][0], 3.1193775e-4) && close(adam.v[0][1], 1.3994001e-4), "{:?}", adam.v);
}

#[test]
fn adam_matches_hand_computed_steps() {
    let mut adam = Adam::new(0.1, [2]);
    let mut w = [1.0f32, -0.5];
    for (g, e) in GRADIENTS.iter().zip(EXPECTED) {
        adam.step([(&mut w[..], &g[..])].into_iter());
        assert_weights(&w, e);
    }
    assert_moments(&adam);
}

/// The reference's step ([`reference::adam::step`]) from the same gradients, the two weights
/// being a one-input layer's `W` (2, 1): the script's values too, so that the reference's Adam
/// is checked on its own, not only held to the fast one.
#[test]
fn the_reference_adam_matches_hand_computed_steps() {
    let layer = Dense::from_parts(array![[1.0f32], [-0.5]], Array1::zeros(2));
    let mut model = Model { layers: vec![Layer::Dense(layer)], activations: vec![Activation::Sigmoid] };
    let mut adam = Adam::new(0.1, model.param_sizes());
    for (g, e) in GRADIENTS.iter().zip(EXPECTED) {
        let dw = Array2::from_shape_vec((2, 1), g.to_vec()).unwrap();
        reference::adam::step(&mut adam, &mut model, &[Some(Gradients { dw, db: Array1::zeros(2) })]);
        assert_weights(model.layers[0].as_dense().unwrap().w().as_slice().unwrap(), e);
    }
    assert_moments(&adam);
}

/// The first step moves every weight by almost exactly `lr` against its gradient's sign,
/// whatever the gradient's size: `m̂/√v̂ = g/|g|`. Checked on a tensor large enough to be
/// updated in parallel chunks.
#[test]
fn first_step_is_lr_times_sign_on_large_tensors() {
    let n = 100_000;
    let mut adam = Adam::new(1e-3, [n]);
    let mut w: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin()).collect();
    let before = w.clone();
    let g: Vec<f32> =
        (0..n).map(|i| ((i as f32 * 1.3).cos() + 1.5) * if i % 3 == 0 { -1e-3 } else { 2.0 }).collect();
    adam.step([(&mut w[..], &g[..])].into_iter());
    for ((w, b), g) in w.iter().zip(&before).zip(&g) {
        let step = b - w;
        assert!((step - 1e-3 * g.signum()).abs() < 1e-6, "step {step} for gradient {g}");
    }
}

/// A tensor large enough to be updated in parallel chunks takes, over three steps (so that the
/// moments it keeps matter), the steps of its parts updated one at a time by Adams of their own:
/// the same weights and moments, to the bit.
#[test]
fn a_large_tensor_in_parallel_chunks_steps_as_its_parts_do() {
    let (n, part) = (100_000, 10_000);
    let start: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin()).collect();
    let gradient = |t: usize| -> Vec<f32> { (0..n).map(|i| ((i * (t + 2)) as f32 * 0.013).cos()).collect() };
    let (mut whole, mut w) = (Adam::new(1e-3, [n]), start.clone());
    let mut parts: Vec<Adam> = (0..n / part).map(|_| Adam::new(1e-3, [part])).collect();
    let mut w_parts = start;
    for t in 0..3 {
        let g = gradient(t);
        whole.step([(&mut w[..], &g[..])].into_iter());
        for ((adam, w), g) in parts.iter_mut().zip(w_parts.chunks_mut(part)).zip(g.chunks(part)) {
            adam.step([(w, g)].into_iter());
        }
    }
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    let joined = |f: fn(&Adam) -> &[f32]| parts.iter().flat_map(|a| f(a).to_vec()).collect::<Vec<_>>();
    assert_eq!(bits(&w), bits(&w_parts), "weights");
    assert_eq!(bits(whole.m[0].as_slice().unwrap()), bits(&joined(|a| a.m[0].as_slice().unwrap())), "m");
    assert_eq!(bits(whole.v[0].as_slice().unwrap()), bits(&joined(|a| a.v[0].as_slice().unwrap())), "v");
}

/// Training takes Adam's step inside the backward pass, each layer as soon as its gradients
/// exist; that must be exactly the step taken over all tensors afterwards, for every kind of
/// layer, over several steps (so that the moments matter).
#[test]
fn a_step_fused_into_backward_is_the_step_after_it() {
    use dae::engine::loss::Loss;
    use dae::engine::model::{Model, Workspace};
    use ndarray::Array2;
    use rand::SeedableRng;

    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let models = [Model::autoencoder(64, &[24, 8], &mut rng), Model::conv_autoencoder(8, 8, &mut rng)];
    for model in models {
        let x = Array2::from_shape_fn((40, 64), |(i, j)| ((i * 7 + j * 3) % 11) as f32 / 10.0);
        let (mut fused, mut apart) = (model.clone(), model);
        let mut adam_fused = Adam::new(1e-2, fused.param_sizes());
        let mut adam_apart = adam_fused.clone();
        let mut ws = Workspace::new(&fused, x.nrows());
        for _ in 0..3 {
            fused.forward(x.view(), &mut ws);
            fused.loss_and_delta(Loss::Bce, x.view(), &mut ws);
            fused.backward(x.view(), &mut ws, Some(&mut adam_fused));

            apart.forward(x.view(), &mut ws);
            apart.loss_and_delta(Loss::Bce, x.view(), &mut ws);
            apart.backward(x.view(), &mut ws, None);
            adam_apart.step(apart.params_and_grads());
        }
        assert_eq!(fused, apart, "the models after three steps");
        assert_eq!(adam_fused, adam_apart, "Adam's moments and step count");
        assert!(adam_fused.m[0].iter().any(|&m| m != 0.0), "the moments moved");
        // The fused step also rewrote the dense layers' kept `Wᵀ`, which their forward reads;
        // `apart`'s were changed through `params_and_grads`, so its forward transposes `W`.
        let (mut out_fused, mut out_apart) = (Array2::zeros((40, 64)), Array2::zeros((40, 64)));
        let mut ws_apart = Workspace::new(&apart, x.nrows());
        fused.reconstruct(x.view(), &mut ws, out_fused.view_mut());
        apart.reconstruct(x.view(), &mut ws_apart, out_apart.view_mut());
        assert_eq!(out_fused, out_apart, "the reconstructions after three steps");
    }
}
