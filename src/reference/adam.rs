//! Adam (Kingma & Ba, 2015, Algorithm 1), one step over every parameter of a model
//! (`docs/backprop.md` §7). It uses the fast engine's [`Adam`] for its settings and state (the
//! step count `t` and the moments `m`, `v` of every tensor), so a run saved by either engine
//! goes on in the other.

use crate::engine::adam::{Adam, m_floor};
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
///
/// `ε` sits where Algorithm 1 puts it, as in PyTorch; Keras adds it to `√v` before the bias
/// correction, the same step but where `√v̂` is within a few 1e-6 of 0 (`docs/backprop.md` §7).
///
/// The moments never hold subnormal numbers, slow on Intel CPUs: an `m` below
/// [`m_floor`]`(lr) = f32::MIN_POSITIVE / min(lr, 1)`, where `lr·m` would be subnormal, and a `v`
/// below `f32::MIN_POSITIVE` are set to 0.
pub fn step(adam: &mut Adam, model: &mut Model, grads: &[Option<Gradients>]) {
    adam.t += 1;
    let t = adam.t as i32;
    let (lr, beta1, beta2, eps) = (adam.lr, adam.beta1, adam.beta2, adam.eps);
    // The gradients in the order the model lists its tensors, W₀, b₀, W₁, b₁, … (layers
    // without parameters skipped), which is also the order of `adam.m` and `adam.v`.
    let mut gradients: Vec<&[f32]> = Vec::new();
    for g in grads.iter().flatten() {
        gradients.push(g.dw.as_slice().expect("contiguous"));
        gradients.push(g.db.as_slice().expect("contiguous"));
    }
    assert_eq!(gradients.len(), adam.m.len(), "a gradient for every tensor");
    for (i, w) in model.params_mut().enumerate() {
        let (g, m, v) = (gradients[i], &mut adam.m[i], &mut adam.v[i]);
        assert_eq!((g.len(), m.len()), (w.len(), w.len()), "a gradient and moments for every weight");
        for j in 0..w.len() {
            m[j] = beta1 * m[j] + (1.0 - beta1) * g[j];
            v[j] = beta2 * v[j] + (1.0 - beta2) * g[j] * g[j];
            if m[j].abs() < m_floor(lr) {
                m[j] = 0.0;
            }
            if v[j].abs() < f32::MIN_POSITIVE {
                v[j] = 0.0;
            }
            let m_hat = m[j] / (1.0 - beta1.powi(t));
            let v_hat = v[j] / (1.0 - beta2.powi(t));
            w[j] -= lr * m_hat / (v_hat.sqrt() + eps);
        }
    }
}
