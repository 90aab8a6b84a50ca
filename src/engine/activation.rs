//! Elementwise activations, each with its derivative beside it.
//!
//! Both are written in terms of the activation's *output* `a = f(z)`, which is what a layer keeps
//! after the forward pass: ReLU's slope is `[a > 0]`, the sigmoid's is `a·(1 − a)`. Gradients
//! are overwritten in place, never accumulated.

use crate::engine::fastmath::{exp_nonpositive, for_this_cpu};

/// The nonlinearity that follows a layer (the identity after a pooling layer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// `a = max(z, 0)`
    Relu,
    /// `a = σ(z) = 1 / (1 + e^{−z})`
    Sigmoid,
    /// `a = z`: no nonlinearity (after a max-pool).
    Identity,
}

impl Activation {
    /// The name used in model files and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Activation::Relu => "relu",
            Activation::Sigmoid => "sigmoid",
            Activation::Identity => "identity",
        }
    }

    /// Parses [`Activation::name`].
    pub fn from_name(name: &str) -> Option<Activation> {
        match name {
            "relu" => Some(Activation::Relu),
            "sigmoid" => Some(Activation::Sigmoid),
            "identity" => Some(Activation::Identity),
            _ => None,
        }
    }

    /// `a = f(z)`, in place.
    pub fn forward(self, z: &mut [f32]) {
        for_this_cpu!(match self {
            Activation::Relu => z.iter_mut().for_each(|v| *v = v.max(0.0)),
            Activation::Sigmoid => z.iter_mut().for_each(|v| *v = sigmoid(*v)),
            Activation::Identity => {}
        })
    }

    /// `∂L/∂z = ∂L/∂a · f′(z)`, in place over `da`, with `f′` read off the output `a`.
    pub fn backward(self, a: &[f32], da: &mut [f32]) {
        for_this_cpu!(self.backward_here(a, da))
    }

    /// [`Activation::backward`] compiled as its caller is: for a loop already inside
    /// [`for_this_cpu`] that calls it on a few numbers at a time.
    #[inline(always)]
    pub(crate) fn backward_here(self, a: &[f32], da: &mut [f32]) {
        debug_assert_eq!(a.len(), da.len());
        match self {
            Activation::Relu => {
                // `f′ = [a > 0]`, as the zeroing of `da` where `a ≤ 0`: the same but for a NaN
                // `a`, whose `da` stays (a NaN loss or weight ends training either way).
                for (d, &a) in da.iter_mut().zip(a) {
                    if a <= 0.0 {
                        *d = 0.0;
                    }
                }
            }
            Activation::Sigmoid => {
                for (d, &a) in da.iter_mut().zip(a) {
                    *d *= a * (1.0 - a);
                }
            }
            Activation::Identity => {}
        }
    }
}

/// `σ(z) = 1 / (1 + e^{−z})`, without overflow: the exponent is never positive.
#[inline(always)]
pub fn sigmoid(z: f32) -> f32 {
    let e = exp_nonpositive(-z.abs());
    let numerator = if z >= 0.0 { 1.0 } else { e };
    numerator / (1.0 + e)
}
