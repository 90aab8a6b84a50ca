//! Principal component analysis in two dimensions: the two directions along which a set of
//! points varies most, and each point's coordinates along them, to draw codes on a page.
//!
//! Computed here, by orthogonal (subspace) iteration on the centred points `X` (N, F): two
//! vectors are multiplied by the covariance `C = XᵀX / (N − 1)` — as `Xᵀ(X·V)`, never forming the
//! F × F matrix — and made orthonormal again, until the plane they span stops moving. A
//! Rayleigh–Ritz step (the exact eigenvectors of `C` restricted to that plane, a 2 × 2 problem)
//! after each multiplication sorts the two directions within the plane. In f64.

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
    let covariance_times = |v: &Array2<f64>| x.t().dot(&x.dot(v)) / (n - 1) as f64;
    // A fixed start, so the same points always give the same signs.
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let mut v = orthonormal(Array2::from_shape_fn((f, 2), |_| rng.random::<f64>() - 0.5));
    for _ in 0..MAX_ITERATIONS {
        let next = rayleigh_ritz(&orthonormal(covariance_times(&v)), &covariance_times);
        let settled = (0..2).all(|j| 1.0 - next.column(j).dot(&v.column(j)).abs() < TOLERANCE);
        v = next;
        if settled {
            break;
        }
    }
    for mut column in v.columns_mut() {
        let largest = column.iter().copied().fold(0.0f64, |m, c| if c.abs() > m.abs() { c } else { m });
        if largest < 0.0 {
            column.mapv_inplace(|c| -c);
        }
    }
    let points = x.dot(&v);
    let variance = |j: usize| points.column(j).dot(&points.column(j)) / (n - 1) as f64;
    let total_variance = x.iter().map(|v| v * v).sum::<f64>() / (n - 1) as f64;
    Projection { variances: [variance(0), variance(1)], points, components: v, total_variance }
}

/// The two columns of `v` (F, 2) made orthonormal by Gram–Schmidt.
fn orthonormal(mut v: Array2<f64>) -> Array2<f64> {
    let first: Array1<f64> = v.column(0).to_owned();
    let first = &first / first.dot(&first).sqrt();
    let mut second: Array1<f64> = v.column(1).to_owned();
    second = &second - &(&first * first.dot(&second));
    let second = &second / second.dot(&second).sqrt();
    v.column_mut(0).assign(&first);
    v.column_mut(1).assign(&second);
    v
}

/// The orthonormal `v` (F, 2) turned within its plane onto the eigenvectors of `C` restricted
/// to it, the larger eigenvalue first: for `H = VᵀCV = [[a, b], [b, d]]` the turn is by
/// `θ = ½·atan2(2b, a − d)`.
fn rayleigh_ritz(v: &Array2<f64>, covariance_times: &impl Fn(&Array2<f64>) -> Array2<f64>) -> Array2<f64> {
    let h = v.t().dot(&covariance_times(v));
    let theta = 0.5 * (2.0 * h[(0, 1)]).atan2(h[(0, 0)] - h[(1, 1)]);
    let (s, c) = theta.sin_cos();
    v.dot(&ndarray::array![[c, -s], [s, c]])
}
