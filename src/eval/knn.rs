//! A k-nearest-neighbour classifier: how well do features separate the classes?
//!
//! Used to measure the autoencoder's codes as features ("robust feature learning") beside raw
//! pixels. Distances are Euclidean; the products `q·r` for a block of queries against every
//! reference row are one matrix product, so the whole search is as fast as the GEMM.

use ndarray::{Array1, Array2, ArrayView2, Axis, s};
use rayon::prelude::*;

use crate::engine::gemm::par_matmul;

/// Queries handled per matrix product: 256 queries × 60,000 references is 61 MB of products.
const QUERY_BLOCK: usize = 256;

/// The fraction of `queries` (Q, F) whose label among `query_labels` is the majority label of
/// their `k` nearest rows in `reference` (N, F) labelled `labels`. A tie between labels goes to
/// the one whose member is nearest; equal distances to the lower index.
pub fn accuracy(
    reference: ArrayView2<f32>,
    labels: &[u8],
    queries: ArrayView2<f32>,
    query_labels: &[u8],
    k: usize,
) -> f64 {
    assert_eq!((reference.nrows(), queries.nrows()), (labels.len(), query_labels.len()));
    assert!(k >= 1 && k <= reference.nrows(), "k = {k} for {} references", reference.nrows());
    // ‖q − r‖² = ‖q‖² − 2 q·r + ‖r‖²; ‖q‖² is the same for every r, so it never changes the order.
    let norms: Array1<f32> = reference.rows().into_iter().map(|r| r.dot(&r)).collect();
    let mut products = Array2::zeros((QUERY_BLOCK.min(queries.nrows()), reference.nrows()));
    let mut correct = 0;
    for (block, truth) in queries.axis_chunks_iter(Axis(0), QUERY_BLOCK).zip(query_labels.chunks(QUERY_BLOCK))
    {
        let mut products = products.slice_mut(s![..block.nrows(), ..]);
        par_matmul(block, reference.t(), products.view_mut(), |_, _| {});
        correct += products
            .axis_iter(Axis(0))
            .into_par_iter()
            .zip(truth)
            .filter(|(dots, label)| {
                let distance = |j: usize| norms[j] - 2.0 * dots[j];
                vote(nearest(reference.nrows(), k, distance), labels) == **label
            })
            .count();
    }
    correct as f64 / queries.nrows() as f64
}

/// The indices of the `k` smallest `distance(j)` for `j < n`, nearest first; equal distances
/// in index order, and NaN after every number.
fn nearest(n: usize, k: usize, distance: impl Fn(usize) -> f32) -> Vec<usize> {
    let order = |a: &usize, b: &usize| distance(*a).total_cmp(&distance(*b)).then(a.cmp(b));
    let mut best: Vec<usize> = (0..k).collect();
    best.sort_by(order);
    for j in k..n {
        if order(&j, &best[k - 1]).is_lt() {
            let at = best.partition_point(|b| order(b, &j).is_lt());
            best.insert(at, j);
            best.pop();
        }
    }
    best
}

/// The majority label of `neighbours` (nearest first); a tie goes to the label seen first.
fn vote(neighbours: Vec<usize>, labels: &[u8]) -> u8 {
    let mut counts = [0usize; 256];
    neighbours.iter().for_each(|&j| counts[labels[j] as usize] += 1);
    let most = counts.iter().max().copied().unwrap_or(0);
    neighbours.iter().map(|&j| labels[j]).find(|&l| counts[l as usize] == most).expect("k ≥ 1")
}
