//! Evaluation of a trained model: image quality of its reconstructions ([`quality`]) and a
//! k-nearest-neighbour test of its codes ([`knn`]), put together in [`evaluate`].

pub mod evaluate;
pub mod knn;
pub mod quality;
