//! Dead ReLU units: those that output 0 for every validation image. A unit silent on every
//! image passes no gradient back, so its own weights stop changing and Adam's moments for them
//! decay towards zero; only a change in the layers before it can wake it again.
//!
//! Watched during validation, at the cost of a pass, row by row, over the outputs of each layer
//! that still has a silent unit; a layer whose units have all fired is not looked at again.

use ndarray::Array2;

use crate::engine::activation::Activation;
use crate::engine::model::Model;

/// For each ReLU layer of a model, which of its units have fired since the last [`DeadUnits::reset`].
#[derive(Debug, Clone)]
pub struct DeadUnits {
    /// `(l, fired)`: layer `l` and, per unit, whether it output a positive number.
    layers: Vec<(usize, Vec<bool>)>,
}

impl DeadUnits {
    /// A watch over every hidden layer of `model` followed by a ReLU.
    pub fn new(model: &Model) -> DeadUnits {
        let last = model.layers.len() - 1;
        let relu = |l: &usize| *l < last && model.activations[*l] == Activation::Relu;
        let layers = (0..model.layers.len()).filter(relu).map(|l| (l, vec![false; model.layers[l].units()]));
        DeadUnits { layers: layers.collect() }
    }

    /// Forgets every unit's firing.
    pub fn reset(&mut self) {
        self.layers.iter_mut().for_each(|(_, fired)| fired.fill(false));
    }

    /// Looks at the first `rows` rows of each watched layer's output in `outputs` (B, H_l), the
    /// activated outputs of a forward pass.
    pub fn observe(&mut self, outputs: &[Array2<f32>], rows: usize) {
        for (l, fired) in self.layers.iter_mut().filter(|(_, fired)| fired.contains(&false)) {
            let values = &outputs[*l].as_slice().expect("contiguous")[..rows * outputs[*l].ncols()];
            // A row of a dense layer, or a pixel's channels of a convolution's.
            for units in values.chunks_exact(fired.len()) {
                fired.iter_mut().zip(units).for_each(|(fired, &v)| *fired |= v > 0.0);
            }
        }
    }

    /// The indices of the watched layers, input first.
    pub fn layers(&self) -> Vec<usize> {
        self.layers.iter().map(|(l, _)| *l).collect()
    }

    /// For each watched layer, the share of its units that never fired, in `[0, 1]`.
    pub fn shares(&self) -> Vec<f64> {
        let share = |fired: &Vec<bool>| fired.iter().filter(|f| !**f).count() as f64 / fired.len() as f64;
        self.layers.iter().map(|(_, fired)| share(fired)).collect()
    }
}
