//! Backpropagation by hand: one training step of a tiny 2-3-2 network, with every number printed.
//! Run with `cargo run --release --example backprop_by_hand`; read `docs/backprop.md` §2–8 first,
//! since the printout follows it section by section: forward (§2), loss (§3), the backward pass
//! through the layers and activations (§5, §6), a finite-difference check (§9) and one Adam step
//! (§7, §8).
//! It uses only the reference engine (`dae::reference`), the one written as the textbook writes it.
//!
//! Shapes: `B = 2` rows in the batch, `D = 2` numbers per row, `H = 3` hidden units.

use ndarray::{Array2, ArrayView1, ArrayView2, array};

use dae::engine::activation::Activation;
use dae::engine::adam::Adam;
use dae::engine::dense::Dense;
use dae::engine::layer::Layer;
use dae::engine::loss::Loss;
use dae::engine::model::Model;
use dae::reference::loss::loss_and_delta;
use dae::reference::model::layer_forward;
use dae::reference::{activation, adam, backward, forward};

/// Adam's learning rate: large, so that the step is plain to see.
const LR: f32 = 0.1;
/// The finite-difference step `h`. In f32 the loss is rounded at about 1e-7, an error that the
/// difference quotient divides by 2h; the quotient's own error grows as h², so 1e-2 balances both.
const STEP: f32 = 1e-2;
/// The largest relative difference between the analytic and the numeric gradient we accept.
const BAR: f64 = 1e-3;
/// The first layer's weight checked by finite differences: hidden unit 2, input 1 (counting from 0).
const CHECKED: [usize; 2] = [2, 1];

/// The 2-3-2 network, `x̂ = σ(ReLU(X̃·W₁ᵀ + b₁)·W₂ᵀ + b₂)`, with small hand-picked weights.
/// Counting from 0, hidden unit 1 is off (Z₁ < 0) for row 1 and unit 2 for row 0, so the mask
/// [A₁ > 0] has two zeros, yet every unit is on for some row and every gradient is non-zero.
fn network() -> Model {
    let layer1 = Dense::from_parts(array![[0.6, 0.4], [0.9, -0.5], [-0.7, 0.8]], array![0.15, -0.2, 0.05]);
    let layer2 = Dense::from_parts(array![[0.8, 0.5, -0.6], [-0.3, -0.7, 0.9]], array![0.15, -0.05]);
    Model {
        layers: vec![Layer::Dense(layer1), Layer::Dense(layer2)],
        activations: vec![Activation::Relu, Activation::Sigmoid],
    }
}

/// Layer `l`'s dense parameters.
fn dense(model: &Model, l: usize) -> &Dense {
    model.layers[l].as_dense().expect("every layer of this network is dense")
}

/// Prints a matrix under its label and shape, one row per line, in aligned columns.
fn show(label: &str, m: ArrayView2<f32>) {
    println!("{label}  ({}, {})", m.nrows(), m.ncols());
    for row in m.rows() {
        let cells: Vec<String> = row.iter().map(|v| format!("{v:>11.6}")).collect();
        println!("   {}", cells.join(""));
    }
}

/// Prints a vector under its label and shape, on one line.
fn show_vector(label: &str, v: ArrayView1<f32>) {
    let cells: Vec<String> = v.iter().map(|v| format!("{v:>11.6}")).collect();
    println!("{label}  ({},)\n   {}", v.len(), cells.join(""));
}

/// The mean BCE `L` of `model` on the batch, by the reference forward pass and loss.
fn mean_loss(model: &Model, input: ArrayView2<f32>, target: ArrayView2<f32>) -> f64 {
    let outputs = forward(model, input);
    let logits = outputs.last().expect("the network has layers");
    let (total, _) = loss_and_delta(Loss::Bce, logits.view(), target); // Σ ℓ over the B·D entries
    total / logits.len() as f64
}

/// Central difference `(L(w + h) − L(w − h)) / 2h` for the weight `CHECKED` of the first layer,
/// divided by the step actually taken once `w ± h` is rounded to f32.
fn numeric_gradient(model: &Model, input: ArrayView2<f32>, target: ArrayView2<f32>) -> f64 {
    let w = dense(model, 0).w()[CHECKED];
    let loss_at = |value: f32| {
        let mut moved = model.clone();
        let layer = moved.layers[0].as_dense_mut().expect("the first layer is dense");
        layer.w_mut()[CHECKED] = value;
        mean_loss(&moved, input, target)
    };
    let (up, down) = (w + STEP, w - STEP);
    (loss_at(up) - loss_at(down)) / (f64::from(up) - f64::from(down))
}

fn main() {
    let input: Array2<f32> = array![[0.8, 0.3], [0.1, 0.9]]; // X̃, the corrupted rows
    let target: Array2<f32> = array![[0.9, 0.2], [0.2, 0.8]]; // X, the clean rows
    let mut model = network();
    let (x_tilde, x) = (input.view(), target.view());

    println!("== Forward pass (§2): Z = A_prev·Wᵀ + b, A = f(Z) ==");
    show("X̃  = input, B = 2 rows", x_tilde);
    show("X  = clean target", x);
    show("W₁", dense(&model, 0).w());
    show_vector("b₁", dense(&model, 0).b.view());
    // `forward` returns A₁ and the logits Z₂; Z₁ (before the ReLU) we get from `layer_forward`,
    // the same function `forward` calls on each layer.
    let outputs = forward(&model, x_tilde);
    let (a1, z2) = (&outputs[0], &outputs[1]);
    show("Z₁ = X̃·W₁ᵀ + b₁", layer_forward(&model.layers[0], x_tilde).view());
    show("A₁ = ReLU(Z₁)  (a unit with Z₁ < 0 is off: 0)", a1.view());
    show("W₂", dense(&model, 1).w());
    show_vector("b₂", dense(&model, 1).b.view());
    show("Z₂ = A₁·W₂ᵀ + b₂  (the logits)", z2.view());
    show("x̂  = σ(Z₂)  (the reconstruction)", activation::forward(Activation::Sigmoid, z2.clone()).view());

    println!("\n== Loss (§3): ℓ = max(z, 0) − z·y + ln(1 + e^(−|z|)), L = mean over B·D ==");
    let (total, delta2) = loss_and_delta(Loss::Bce, z2.view(), x);
    println!("L = {:.6}", total / z2.len() as f64);

    println!("\n== Backward pass (§5, §6), output layer first ==");
    let grads = backward(&model, x_tilde, &outputs, delta2.clone());
    let grad = |l: usize| grads[l].as_ref().expect("a dense layer has gradients");
    show("δ₂ = ∂L/∂Z₂ = (σ(Z₂) − X)/(B·D)", delta2.view());
    show("dW₂ = δ₂ᵀ·A₁", grad(1).dw.view());
    show_vector("db₂ = Σ_rows δ₂", grad(1).db.view());
    // The step `backward` takes between the layers, written out: δ₂·W₂, then the ReLU's mask.
    let da1 = dae::reference::dense::backward_input(dense(&model, 1), delta2.view());
    show("dA₁ = δ₂·W₂", da1.view());
    let delta1 = activation::backward(Activation::Relu, a1.view(), da1);
    show("δ₁ = dA₁ ⊙ [A₁ > 0]  (zero where the unit is off)", delta1.view());
    show("dW₁ = δ₁ᵀ·X̃", grad(0).dw.view());
    show_vector("db₁ = Σ_rows δ₁", grad(0).db.view());

    println!("\n== Gradient check (§9): central difference on W₁{CHECKED:?}, h = {STEP} ==");
    println!("(unit 2 is off for row 0, so only row 1 adds to this gradient: δ₁[1, 2]·X̃[1, 1])");
    let analytic = f64::from(grad(0).dw[CHECKED]);
    let numeric = numeric_gradient(&model, x_tilde, x);
    let relative = (analytic - numeric).abs() / analytic.abs().max(numeric.abs());
    let verdict = if relative < BAR { "OK" } else { "NOT OK" };
    println!("analytic dW₁{CHECKED:?} = {analytic:.6}   (δ₁ᵀ·X̃ above)");
    println!("numeric  (L(w⁺) − L(w⁻))/(w⁺ − w⁻) = {numeric:.6}   (w± = w ± h, as f32 rounds them)");
    println!("relative difference {relative:.1e}  (bar {BAR:.0e})  {verdict}");

    println!("\n== One Adam step (§7), lr = {LR}: w ← w − lr·m̂/(√v̂ + ε) ==");
    let before = model.clone();
    let mut optimizer = Adam::new(LR, model.param_sizes());
    adam::step(&mut optimizer, &mut model, &grads);
    for (l, n) in ["₁", "₂"].into_iter().enumerate() {
        let (old, new) = (dense(&before, l), dense(&model, l));
        show(&format!("W{n} before"), old.w());
        show(&format!("W{n} after"), new.w());
        show(&format!("W{n} after − before"), (&new.w() - &old.w()).view());
        show_vector(&format!("b{n} before"), old.b.view());
        show_vector(&format!("b{n} after"), new.b.view());
    }
    println!("On the first step m̂ = g and √v̂ = |g|, so m̂/√v̂ = g/|g|: every weight with a non-zero");
    println!("gradient moves by about lr = {LR} against its gradient's sign, whatever the gradient's");
    println!("size, and a weight whose gradient is zero does not move (here every gradient is non-zero).");
    println!("L after the step = {:.6}", mean_loss(&model, x_tilde, x));
}
