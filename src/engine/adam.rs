//! Adam (Kingma & Ba, 2015), its bias corrections folded into two numbers per step.
//!
//! One moment pair `(m, v)` per parameter tensor, indexed in the order the model lists its
//! tensors. The update is the paper's Algorithm 1 with `ε` added to `√v̂`, as PyTorch does;
//! Keras adds `ε` to `√v` before the bias correction, the same step but where `√v̂` is within a
//! few 1e-6 of 0 (`docs/backprop.md` §7). The reference (`crate::reference::adam`) writes the
//! equations one a line; here `α = lr/(1 − β₁ᵗ)` and `c = 1/√(1 − β₂ᵗ)` are fixed once a step
//! and each weight moves by `α·m/(c·√v + ε)`, the same step to rounding.
//!
//! A step is two parts: [`Adam::next_step`] advances `t` and fixes the step's numbers, then
//! [`Step::update`] moves each tensor. The dense model's training step calls the second part on
//! each thread's rows of each layer, once the shards' gradients are added
//! ([`crate::engine::dense::Update::sum_and_step`]); the convolutional model's, from inside the backward
//! pass, on each layer as soon as its gradients exist ([`crate::engine::model::Model::backward`]);
//! [`Adam::step`] does both parts over a list of tensors.

use ndarray::Array1;
use rayon::prelude::*;

use crate::engine::aligned;
use crate::engine::fastmath::for_this_cpu;

/// Elements per parallel task; smaller tensors are updated on the calling thread.
const CHUNK: usize = 16 * 1024;

/// Adam's settings and state.
#[derive(Debug, Clone, PartialEq)]
pub struct Adam {
    /// The learning rate (step size).
    pub lr: f32,
    /// Decay of the first moment, the running mean of gradients.
    pub beta1: f32,
    /// Decay of the second moment, the running mean of squared gradients.
    pub beta2: f32,
    /// Added to `√v̂` so that a step never divides by zero.
    pub eps: f32,
    /// Steps taken so far.
    pub t: u32,
    /// First moments, one vector per parameter tensor, each from a cache line's start
    /// ([`aligned::vector`]; a clone keeps the offset from its allocation, not the alignment).
    pub m: Vec<Array1<f32>>,
    /// Second moments, as the first.
    pub v: Vec<Array1<f32>>,
}

/// One tensor's moments, to update along with it.
#[derive(Debug)]
pub struct Moments<'a> {
    /// The first moment `m`.
    pub m: &'a mut [f32],
    /// The second moment `v`.
    pub v: &'a mut [f32],
}

/// Adam's step for one layer: the step's numbers and the moments of its weights and biases.
pub type LayerStep<'a> = (Step, [Moments<'a>; 2]);

impl Adam {
    /// Keras's defaults but for the learning rate: `β₁ = 0.9, β₂ = 0.999, ε = 1e-7`; zero moments
    /// for tensors of the given sizes.
    pub fn new(lr: f32, sizes: impl IntoIterator<Item = usize>) -> Adam {
        // On a line's start, as the weights are: with the moments 4 or 16 bytes into a line (where
        // the allocator put a `Vec`), the AVX-512 update of 100,352 weights took 81 µs instead of
        // 31 on a Zen 4 (`cargo bench -- adam_100352`; docs/performance.md).
        let (m, v) = sizes.into_iter().map(|n| (aligned::vector(n), aligned::vector(n))).unzip();
        Adam { lr, beta1: 0.9, beta2: 0.999, eps: 1e-7, t: 0, m, v }
    }

    /// Starts step `t + 1`: counts it and returns the numbers its updates use.
    pub fn next_step(&mut self) -> Step {
        self.t += 1;
        let t = self.t as i32;
        let bias1 = 1.0 - self.beta1.powi(t); // m̂ = m / (1 − β₁ᵗ)
        let bias2 = 1.0 - self.beta2.powi(t); // v̂ = v / (1 − β₂ᵗ)
        let (alpha, c) = (self.lr / bias1, 1.0 / bias2.sqrt());
        let m_floor = m_floor(self.lr);
        Step { beta1: self.beta1, beta2: self.beta2, eps: self.eps, alpha, c, m_floor }
    }

    /// Every tensor's moments, in the model's order of tensors.
    pub fn moments(&mut self) -> impl DoubleEndedIterator<Item = Moments<'_>> {
        self.m.iter_mut().zip(&mut self.v).map(|(m, v)| Moments {
            m: m.as_slice_mut().expect("contiguous"),
            v: v.as_slice_mut().expect("contiguous"),
        })
    }

    /// One whole step over all tensors: `params[i] -= update(grads[i])`.
    pub fn step<'a>(&mut self, tensors: impl Iterator<Item = (&'a mut [f32], &'a [f32])>) {
        let step = self.next_step();
        for ((w, g), moments) in tensors.zip(self.moments()) {
            step.update_par(w, g, moments);
        }
    }
}

/// The numbers one step needs, bias corrections included.
#[derive(Debug, Clone, Copy)]
pub struct Step {
    beta1: f32,
    beta2: f32,
    eps: f32,
    /// `α = lr / (1 − β₁ᵗ)`, the learning rate with `m̂`'s correction.
    alpha: f32,
    /// `c = 1 / √(1 − β₂ᵗ)`, so that `√v̂ = c·√v`.
    c: f32,
    /// An `m` smaller than this is set to 0 ([`m_floor`]).
    m_floor: f32,
}

impl Step {
    /// Updates the weights `w` from their gradient `g` and moments `(m, v)`, all the same length,
    /// on the calling thread.
    ///
    /// `lr·m̂ / (√v̂ + ε)` is computed as `α·m / (c·√v + ε)`: the bias corrections are two
    /// numbers of the step, not two divisions a weight (PyTorch's implementation does the same).
    /// What is left, a square root and a division, bounds the loop: 0.51 → 0.34 ns a weight on
    /// one Zen 4 core with all of it in cache.
    ///
    /// The moments never hold subnormal numbers, which Intel CPUs compute in slow microcode
    /// ([`m_floor`]).
    pub fn update(&self, w: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32]) {
        assert_eq!((w.len(), g.len(), m.len()), (v.len(), v.len(), v.len()), "tensor sizes");
        for_this_cpu!(for (((w, &g), m), v) in w.iter_mut().zip(g).zip(m).zip(v) {
            // m ← β₁·m + (1 − β₁)·g, 0 below its floor
            *m = zero_below(self.m_floor, self.beta1 * *m + (1.0 - self.beta1) * g);
            // v ← β₂·v + (1 − β₂)·g², 0 if subnormal
            *v = zero_below(f32::MIN_POSITIVE, self.beta2 * *v + (1.0 - self.beta2) * g * g);
            *w -= self.alpha * *m / (self.c * v.sqrt() + self.eps); // w ← w − lr·m̂ / (√v̂ + ε)
        });
    }

    /// [`Step::update`] on a whole tensor, in parallel chunks if it is large.
    pub fn update_par(&self, w: &mut [f32], g: &[f32], Moments { m, v }: Moments) {
        if w.len() < 2 * CHUNK {
            return self.update(w, g, m, v);
        }
        (w.par_chunks_mut(CHUNK), g.par_chunks(CHUNK), m.par_chunks_mut(CHUNK), v.par_chunks_mut(CHUNK))
            .into_par_iter()
            .for_each(|(w, g, m, v)| self.update(w, g, m, v));
    }
}

/// The smallest `|m|` Adam keeps, `f32::MIN_POSITIVE / min(lr, 1)`: below it, `m` is set to 0.
/// Both engines use it, so they hold the same moments.
///
/// Why: a weight whose gradient stays 0 (a weight of a ReLU unit that has stopped firing) has
/// its `m` shrink by `β₁` every step. After `ln(lr·|m₀| / 1.2e-38) / ln(1/β₁)` steps (742 from
/// `m₀ = 0.1` at `lr = 1e-3`), the step's numerator `α·m` (`α ≥ lr`) is smaller than
/// `f32::MIN_POSITIVE ≈ 1.2e-38`, a subnormal number; 66 steps later `m` is too, and it never
/// reaches 0: `β₁·m` rounds back to the same few smallest subnormals for good. Intel CPUs
/// multiply and divide subnormal numbers in slow microcode (30× slower on a Xeon): before this
/// floor, a third of the first layer's moments were there from the fourth epoch of the
/// notebook's run to its end, and Adam's step took 0.48 ms instead of 0.13
/// (`docs/performance.md`). Set to 0, `m` stays 0 until a gradient arrives, and `α·m` is either
/// 0 or a normal number. The step such an `m` makes is below `10·1.2e-38 / ε ≈ 1.2e-30`
/// (`α ≤ 10·lr`): it moves no weight larger than 1e-22, less than half of whose last bit it is.
pub fn m_floor(lr: f32) -> f32 {
    f32::MIN_POSITIVE / lr.min(1.0)
}

/// `x`, or 0 if `|x| < floor`.
#[inline(always)]
fn zero_below(floor: f32, x: f32) -> f32 {
    if x.abs() < floor { 0.0 } else { x }
}
