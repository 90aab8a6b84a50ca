//! Principal component analysis in two dimensions: the two directions along which a set of
//! points varies most, and each point's coordinates along them, to draw codes on a page.
//!
//! Computed here, by orthogonal (subspace) iteration on the centred points `X` (N, F): two
//! vectors are multiplied by the covariance `C = XᵀX / (N − 1)` — a pass over the points, never
//! forming the F × F matrix — and made orthonormal again, until the plane they span stops
//! moving. A Rayleigh–Ritz step (the exact eigenvectors of `C` restricted to that plane, a 2 × 2
//! problem) after each multiplication sorts the two directions within the plane. In f64.

use ndarray::{Array1, Array2, ArrayView2, Axis};
use rand::{Rng, SeedableRng};

/// Multiplications at most; the plane settles long before unless the second and third
/// variances are nearly equal, in which case any plane between them is as good to draw.
const MAX_ITERATIONS: usize = 500;

/// When `1 − |v_new · v_old|` is below this for both directions, they have settled.
const TOLERANCE: f64 = 1e-12;

/// The points along their two principal components.
#[derive(Debug, Clone, PartialEq)]
pub struct Projection {
    /// Each point's coordinates along the first and second component, (N, 2).
    pub points: Array2<f64>,
    /// The unit directions of the components, (F, 2); each with its largest entry positive.
    pub components: Array2<f64>,
    /// The variance of the points along each component.
    pub variances: [f64; 2],
    /// The total variance of the points, summed over all F directions.
    pub total_variance: f64,
}

impl Projection {
    /// The share of the total variance along each component, in `[0, 1]`.
    pub fn explained(&self) -> [f64; 2] {
        self.variances.map(|v| if self.total_variance > 0.0 { v / self.total_variance } else { 0.0 })
    }
}

/// The two principal components of the rows of `x` (N, F), N ≥ 2 and F ≥ 2.
///
/// ```
/// use dae::eval::pca::project;
/// use ndarray::array;
///
/// // Points spread 3 along (1, 1)/√2, 1 along (1, −1)/√2.
/// let s = std::f32::consts::FRAC_1_SQRT_2;
/// let x = array![[3.0 * s, 3.0 * s], [-3.0 * s, -3.0 * s], [s, -s], [-s, s]];
/// let p = project(x.view());
/// assert!((p.components[(0, 0)] - 0.5f64.sqrt()).abs() < 1e-6);
/// assert!((p.points[(0, 0)].abs() - 3.0).abs() < 1e-6);
/// assert!((p.explained()[0] - 0.9).abs() < 1e-6);
/// ```
pub fn project(x: ArrayView2<f32>) -> Projection {
    let (n, f) = x.dim();
    assert!(n >= 2 && f >= 2, "PCA in two dimensions needs 2 points of 2 features, not {n} of {f}");
    let x = x.mapv(f64::from);
    let mean = x.mean_axis(Axis(0)).expect("n ≥ 2");
    let x = x - &mean;
    // Directions are rows here, (2, F). A fixed start, so the same points give the same signs.
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let mut v = orthonormal(Array2::from_shape_fn((2, f), |_| rng.random::<f64>() - 0.5));
    let mut ritz = v.clone();
    for _ in 0..MAX_ITERATIONS {
        let cv = covariance_times(&x, &v);
        let turn = ritz_turn(&v, &cv);
        let next = turn.dot(&v);
        let settled = (0..2).all(|j| 1.0 - next.row(j).dot(&ritz.row(j)).abs() < TOLERANCE);
        ritz = next;
        if settled {
            break;
        }
        // C·(turn·V) = turn·(C·V): the next plane without another pass over the points.
        v = orthonormal(turn.dot(&cv));
    }
    for mut direction in ritz.rows_mut() {
        let largest = direction.iter().copied().fold(0.0f64, |m, c| if c.abs() > m.abs() { c } else { m });
        if largest < 0.0 {
            direction.mapv_inplace(|c| -c);
        }
    }
    let points = x.dot(&ritz.t());
    let variance = |j: usize| points.column(j).dot(&points.column(j)) / (n - 1) as f64;
    let total_variance = x.iter().map(|v| v * v).sum::<f64>() / (n - 1) as f64;
    Projection {
        variances: [variance(0), variance(1)],
        points,
        components: ritz.t().to_owned(),
        total_variance,
    }
}

/// `C·V` for directions `v` (2, F) as rows: `(X·Vᵀ)ᵀ·X / (N − 1)`, (2, F), in one pass over the
/// points `x` (N, F). Each point `xᵢ` adds `(xᵢ·vⱼ)·xᵢ` to row `j` while it is in cache; two
/// matrix products would read all of `x` twice, and with two columns they are bound by memory.
fn covariance_times(x: &Array2<f64>, v: &Array2<f64>) -> Array2<f64> {
    let mut cv = Array2::zeros(v.raw_dim());
    for point in x.rows() {
        for (mut out, direction) in cv.rows_mut().into_iter().zip(v.rows()) {
            out.scaled_add(point.dot(&direction), &point);
        }
    }
    cv / (x.nrows() - 1) as f64
}

/// The two rows of `v` (2, F) made orthonormal by Gram–Schmidt.
fn orthonormal(mut v: Array2<f64>) -> Array2<f64> {
    let first: Array1<f64> = v.row(0).to_owned();
    let first = &first / first.dot(&first).sqrt();
    let mut second: Array1<f64> = v.row(1).to_owned();
    second = &second - &(&first * first.dot(&second));
    let second = &second / second.dot(&second).sqrt();
    v.row_mut(0).assign(&first);
    v.row_mut(1).assign(&second);
    v
}

/// The turn (2, 2) that takes the orthonormal rows of `v` (2, F) within their plane onto the
/// eigenvectors of `C` restricted to it, the larger eigenvalue first, given `cv = C·v`: for
/// `H = V·(C·V)ᵀ = [[a, b], [b, d]]` it turns by `θ = ½·atan2(2b, a − d)` (Rayleigh–Ritz).
fn ritz_turn(v: &Array2<f64>, cv: &Array2<f64>) -> Array2<f64> {
    let h = v.dot(&cv.t());
    let theta = 0.5 * (2.0 * h[(0, 1)]).atan2(h[(0, 0)] - h[(1, 1)]);
    let (s, c) = theta.sin_cos();
    ndarray::array![[c, s], [-s, c]]
}
