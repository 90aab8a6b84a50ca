//! A k-nearest-neighbour classifier: how well do features separate the classes?
//!
//! Used to measure the autoencoder's codes as features ("robust feature learning") beside raw
//! pixels. Distances are Euclidean; the products `q·r` of a block of queries with every
//! reference row are matrix products, so the whole search is about as fast as our kernel.

use std::cmp::Ordering::Greater;

use ndarray::{Array1, ArrayView2, Axis, s};
use rayon::prelude::*;

use crate::engine::aligned;
use crate::engine::gemm::{copy_into, matmul};

/// Queries handled at a time: 128 queries × 5,000 references is 2.6 MB of products.
pub const QUERY_BLOCK: usize = 128;

/// References in each piece of the products that a thread takes.
pub const REFERENCE_ROWS: usize = 128;

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
    ///
    /// The products are `block · queriesᵀ` (R, Q), [`QUERY_BLOCK`] queries at a time (`queriesᵀ`
    /// copied by rows once, through the kernel's transpose, [`copy_into`]), in pieces of
    /// [`REFERENCE_ROWS`] references that the threads share: each piece is the shape of a dense
    /// layer's forward on a shard, `(128, 784)·(784, 128)`, both operands in a core's cache
    /// while our kernel runs. (`queries · blockᵀ` on the pool went to `sgemm` at about half the
    /// kernel's rate; `block · queriesᵀ` on the pool, 2,500 references a thread, read them from
    /// memory once for every 32 queries.) Each dot product is the same sum in any of these, so
    /// the neighbours are too. Then each thread takes a share of the queries and reads their
    /// columns down the references, [`LANES`] at a time. `dae eval` took 11.9–12.4 s before,
    /// 6.0–7.1 s after, alternated (Intel Xeon model 207).
    pub fn add(&mut self, queries: ArrayView2<f32>, block: ArrayView2<f32>, first: usize) {
        assert_eq!((queries.nrows(), queries.ncols()), (self.best.len(), block.ncols()), "shapes");
        let norms: Array1<f32> = block.rows().into_iter().map(|r| r.dot(&r)).collect();
        let chunk = QUERY_BLOCK.min(queries.nrows());
        let mut products = aligned::zeros((block.nrows(), chunk));
        let mut queries_t = aligned::zeros((queries.ncols(), chunk));
        let k = self.k;
        for (q, best) in queries.axis_chunks_iter(Axis(0), QUERY_BLOCK).zip(self.best.chunks_mut(QUERY_BLOCK))
        {
            let mut queries_t = queries_t.slice_mut(s![.., ..q.nrows()]);
            copy_into(q.t(), queries_t.view_mut());
            let mut products = products.slice_mut(s![.., ..q.nrows()]);
            (
                products.axis_chunks_iter_mut(Axis(0), REFERENCE_ROWS),
                block.axis_chunks_iter(Axis(0), REFERENCE_ROWS),
            )
                .into_par_iter()
                .for_each(|(c, references)| matmul(references, queries_t.view(), c));
            let share = best.len().div_ceil(rayon::current_num_threads());
            best.par_chunks_mut(share).enumerate().for_each(|(t, best)| {
                let columns = t * share..t * share + best.len();
                // The distance a candidate must not exceed to be looked at: the k-th nearest's
                // (any, while fewer than k are known).
                let bound = |best: &Vec<(f32, usize)>| if best.len() == k { best[k - 1].0 } else { LAST };
                let mut bounds: Vec<f32> = best.iter().map(bound).collect();
                for (j, (&norm, dots)) in norms.iter().zip(products.rows()).enumerate() {
                    let dots = &dots.to_slice().expect("contiguous rows")[columns.clone()];
                    let lanes = dots.chunks(LANES).zip(bounds.chunks_mut(LANES)).zip(best.chunks_mut(LANES));
                    for ((dots, bounds), best) in lanes {
                        // Whether `r` may be among the nearest so far of any of these queries,
                        // without a branch per query: a distance not greater than the bound, or
                        // NaN (which the exact comparison then places). Most pieces have none.
                        let near = dots.iter().zip(&*bounds).fold(false, |near, (&dot, &b)| {
                            near | ((norm - 2.0 * dot).partial_cmp(&b) != Some(Greater))
                        });
                        if !near {
                            continue;
                        }
                        for ((best, bound_at), &dot) in best.iter_mut().zip(bounds).zip(dots) {
                            let distance = norm - 2.0 * dot;
                            if distance.total_cmp(bound_at).is_le() {
                                keep_nearest(best, k, (distance, first + j));
                                *bound_at = bound(best);
                            }
                        }
                    }
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

/// Queries a thread looks at together for whether a reference is near any of them: a vector's
/// worth.
pub const LANES: usize = 16;

/// The last `f32` in `total_cmp`'s order, after every number and every other NaN.
const LAST: f32 = f32::from_bits(0x7fff_ffff);

/// Puts `candidate` into `best` (nearest first, at most `k`) if it is among the `k` nearest:
/// equal distances in index order, and NaN after every number.
fn keep_nearest(best: &mut Vec<(f32, usize)>, k: usize, (distance, j): (f32, usize)) {
    // `total_cmp` puts a NaN whose sign bit is set (x86's `∞ − ∞`) before every number.
    let candidate = (if distance.is_nan() { LAST } else { distance }, j);
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
