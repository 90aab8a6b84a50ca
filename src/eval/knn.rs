//! A k-nearest-neighbour classifier: how well do features separate the classes?
//!
//! Used to measure the autoencoder's codes as features ("robust feature learning") beside raw
//! pixels. Distances are Euclidean; the products `q·r` for a block of queries against every
//! reference row are one matrix product, so the whole search is as fast as the GEMM.

use ndarray::{Array1, Array2, ArrayView2, Axis, s};
use rayon::prelude::*;

use crate::engine::gemm::par_matmul;

/// Queries handled per matrix product: 256 queries × 5,000 references is 5 MB of products.
pub const QUERY_BLOCK: usize = 256;

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
    assert!(k >= 1 && k <= reference.nrows(), "k = {k} for {} references", reference.nrows());
    assert_eq!(reference.nrows(), labels.len(), "a label per reference");
    let mut neighbours = Neighbours::new(queries.nrows(), k);
    neighbours.add(queries, reference, 0);
    neighbours.accuracy(labels, query_labels)
}

/// The `k` nearest references of every query found so far, fed the reference set a block of
/// rows at a time, so that it never needs to be held whole (60,000 convolutional codes are
/// 376 MB). The result does not depend on the blocks: each distance is the same sum either way.
#[derive(Debug, Clone)]
pub struct Neighbours {
    k: usize,
    /// Per query, up to `k` of `(distance, reference index)`, nearest first.
    best: Vec<Vec<(f32, usize)>>,
}

impl Neighbours {
    /// No references seen yet, for `queries` queries.
    pub fn new(queries: usize, k: usize) -> Neighbours {
        assert!(k >= 1, "k = 0");
        Neighbours { k, best: vec![Vec::with_capacity(k + 1); queries] }
    }

    /// Takes in `block` (R, F), the references `first…first + R`, for `queries` (Q, F), the same
    /// queries every time. Distances are `‖r‖² − 2 q·r`: `‖q − r‖²` less `‖q‖²`, which is the same
    /// for every `r` and so never changes the order.
    pub fn add(&mut self, queries: ArrayView2<f32>, block: ArrayView2<f32>, first: usize) {
        assert_eq!((queries.nrows(), queries.ncols()), (self.best.len(), block.ncols()), "shapes");
        let norms: Array1<f32> = block.rows().into_iter().map(|r| r.dot(&r)).collect();
        let mut products = Array2::zeros((QUERY_BLOCK.min(queries.nrows()), block.nrows()));
        let k = self.k;
        for (q, best) in queries.axis_chunks_iter(Axis(0), QUERY_BLOCK).zip(self.best.chunks_mut(QUERY_BLOCK))
        {
            let mut products = products.slice_mut(s![..q.nrows(), ..]);
            par_matmul(q, block.t(), products.view_mut());
            (products.axis_iter(Axis(0)), best).into_par_iter().for_each(|(dots, best)| {
                for (j, (&norm, &dot)) in norms.iter().zip(&dots).enumerate() {
                    keep_nearest(best, k, (norm - 2.0 * dot, first + j));
                }
            });
        }
    }

    /// The fraction of queries whose label, `query_labels[i]`, is the majority label among
    /// their neighbours, labelled by `labels` (one per reference).
    pub fn accuracy(&self, labels: &[u8], query_labels: &[u8]) -> f64 {
        assert_eq!(query_labels.len(), self.best.len(), "a label per query");
        assert!(self.best.iter().all(|b| b.len() == self.k), "at least k references seen");
        let correct = self
            .best
            .iter()
            .zip(query_labels)
            .filter(|(best, label)| vote(best.iter().map(|&(_, j)| j).collect(), labels) == **label);
        correct.count() as f64 / query_labels.len() as f64
    }
}

/// Puts `candidate` into `best` (nearest first, at most `k`) if it is among the `k` nearest:
/// equal distances in index order, and NaN after every number.
fn keep_nearest(best: &mut Vec<(f32, usize)>, k: usize, candidate: (f32, usize)) {
    let order = |a: &(f32, usize), b: &(f32, usize)| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1));
    if best.len() == k && order(&candidate, &best[k - 1]).is_ge() {
        return;
    }
    let at = best.partition_point(|b| order(b, &candidate).is_lt());
    best.insert(at, candidate);
    best.truncate(k);
}

/// The majority label of `neighbours` (nearest first); a tie goes to the label seen first.
fn vote(neighbours: Vec<usize>, labels: &[u8]) -> u8 {
    let mut counts = [0usize; 256];
    neighbours.iter().for_each(|&j| counts[labels[j] as usize] += 1);
    let most = counts.iter().max().copied().unwrap_or(0);
    neighbours.iter().map(|&j| labels[j]).find(|&l| counts[l as usize] == most).expect("k ≥ 1")
}
