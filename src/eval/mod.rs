//! Evaluation of a trained model: image quality of its reconstructions ([`quality`]) and a
//! k-nearest-neighbour test of its codes ([`knn`]), put together in [`evaluate`]; and the
//! principal components that draw its codes on a page ([`pca`]).

pub mod evaluate;
pub mod knn;
pub mod pca;
pub mod quality;
