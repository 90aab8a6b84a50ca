//! The engine: matrix products, layers, activations, losses, the optimizer, and the model that
//! chains the layers. Everything here works on `ndarray` arrays of `f32` and knows nothing of
//! files, data sets or the command line.
//!
//! Read it bottom up: [`gemm`] multiplies (through [`kernel`], with [`fastmath`] for the
//! elementwise functions), [`dense`] is a layer built on it; [`lowering`] turns a convolution
//! into products for [`conv`] and [`conv_transpose`], and [`pool`] needs none; [`layer`] puts
//! the four behind one interface, [`activation`] follows each layer, [`model`] chains them,
//! [`loss`] scores the output and [`adam`] takes the step.

pub mod activation;
pub mod adam;
pub mod conv;
pub mod conv_transpose;
pub mod dense;
pub mod fastmath;
pub mod gemm;
pub mod kernel;
pub mod layer;
pub mod loss;
pub mod lowering;
pub mod model;
pub mod pool;
pub mod prefetch;
