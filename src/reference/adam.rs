//! Adam (Kingma & Ba, 2015, Algorithm 1), one step over every parameter of a model
//! (`docs/backprop.md` §7). It uses the fast engine's [`Adam`] for its settings and state (the
//! step count `t` and the moments `m`, `v` of every tensor), so a run saved by either engine
//! goes on in the other.

use crate::engine::adam::Adam;
use crate::engine::model::Model;
use crate::reference::Gradients;

/// One step: every parameter `w` of `model` moves against its gradient `g` from `grads`, one
/// entry per layer (`None` for a layer without parameters).
///
/// ```text
/// m ← β₁·m + (1 − β₁)·g            running mean of gradients
/// v ← β₂·v + (1 − β₂)·g²           running mean of squared gradients
/// m̂ = m / (1 − β₁ᵗ),  v̂ = v / (1 − β₂ᵗ)    bias corrections (m and v start at 0)
/// w ← w − lr·m̂ / (√v̂ + ε)
/// ```
pub fn step(adam: &mut Adam, model: &mut Model, grads: &[Option<Gradients>]) {
    adam.t += 1;
    let t = adam.t as i32;
    let (beta1, beta2) = (adam.beta1, adam.beta2);
    // The tensors in file order, W₀, b₀, W₁, b₁, …, as `adam.m` and `adam.v` hold their moments.
    let grads: Vec<&[f32]> = grads
        .iter()
        .flatten()
        .flat_map(|g| [g.dw.as_slice(), g.db.as_slice()])
        .map(|g| g.expect("gradients are contiguous"))
        .collect();
    assert_eq!(grads.len(), adam.m.len(), "a gradient for every tensor");
    let params = model.params_and_grads().map(|(w, _)| w);
    for (((w, g), m), v) in params.zip(grads).zip(&mut adam.m).zip(&mut adam.v) {
        assert_eq!((w.len(), g.len()), (m.len(), m.len()), "a gradient and moments for every weight");
        for i in 0..w.len() {
            m[i] = beta1 * m[i] + (1.0 - beta1) * g[i];
            v[i] = beta2 * v[i] + (1.0 - beta2) * g[i] * g[i];
            let m_hat = m[i] / (1.0 - beta1.powi(t));
            let v_hat = v[i] / (1.0 - beta2.powi(t));
            w[i] -= adam.lr * m_hat / (v_hat.sqrt() + adam.eps);
        }
    }
}
