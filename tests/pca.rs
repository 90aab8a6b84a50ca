//! PCA against a case whose answer is known exactly: points on three orthogonal axes of a
//! rotated frame, spread 3, 2 and 0.5, so the sample covariance's eigenvectors are the frame's
//! axes and its eigenvalues 2·3²/5, 2·2²/5 and 2·0.5²/5.

use dae::eval::pca::project;
use ndarray::{Array1, Array2, array};

/// An orthonormal frame of R³ (a rotation), its axes as rows.
fn frame() -> Array2<f64> {
    let (a, b) = (0.3f64, 1.1f64);
    let rz = array![[a.cos(), -a.sin(), 0.0], [a.sin(), a.cos(), 0.0], [0.0, 0.0, 1.0]];
    let rx = array![[1.0, 0.0, 0.0], [0.0, b.cos(), -b.sin()], [0.0, b.sin(), b.cos()]];
    rz.dot(&rx).t().to_owned()
}

#[test]
fn pca_finds_the_axes_their_variances_and_each_points_coordinates() {
    let axes = frame();
    let spread = [3.0, 2.0, 0.5];
    let offset = array![0.25, -1.0, 2.0];
    // ±spread along each axis, around an offset the centring must remove.
    let mut points = Vec::new();
    for (axis, s) in axes.rows().into_iter().zip(spread) {
        for sign in [1.0, -1.0] {
            let p: Array1<f64> = &offset + &(&axis * (sign * s));
            points.extend(p.iter().map(|&v| v as f32));
        }
    }
    let x = Array2::from_shape_vec((6, 3), points).unwrap();
    let p = project(x.view());
    for j in 0..2 {
        let along = p.components.column(j).dot(&axes.row(j)).abs();
        assert!((along - 1.0).abs() < 1e-6, "component {j} is axis {j}: |cos| = {along}");
        let largest =
            p.components.column(j).iter().copied().fold(0.0f64, |m, c| if c.abs() > m.abs() { c } else { m });
        assert!(largest > 0.0, "the sign convention");
    }
    let expected = spread.map(|s| 2.0 * s * s / 5.0);
    let total: f64 = expected.iter().sum();
    for j in 0..2 {
        assert!((p.variances[j] - expected[j]).abs() < 1e-5, "{:?} vs {expected:?}", p.variances);
    }
    assert!((p.total_variance - total).abs() < 1e-5);
    assert!((p.explained()[0] - expected[0] / total).abs() < 1e-6);
    // The first point, +3 along the first axis, lies at (±3, 0).
    assert!((p.points[(0, 0)].abs() - 3.0).abs() < 1e-5 && p.points[(0, 1)].abs() < 1e-5);
    // The third, +2 along the second axis, at (0, ±2).
    assert!(p.points[(2, 0)].abs() < 1e-5 && (p.points[(2, 1)].abs() - 2.0).abs() < 1e-5);
}

#[test]
fn nearly_equal_leading_variances_still_give_an_orthonormal_pair() {
    // Variances 1 and 1 + 1e-9 along x and y: the plane is found, whatever the turn within it.
    let x = array![
        [1.0f32, 0.0, 0.0],
        [-1.0, 0.0, 0.0],
        [0.0, 1.0, 0.0],
        [0.0, -1.0, 0.0],
        [0.0, 0.0, 0.01],
        [0.0, 0.0, -0.01]
    ];
    let p = project(x.view());
    let c = &p.components;
    assert!((c.column(0).dot(&c.column(0)) - 1.0).abs() < 1e-9 && c.column(0).dot(&c.column(1)).abs() < 1e-9);
    assert!(c[(2, 0)].abs() < 1e-6 && c[(2, 1)].abs() < 1e-6, "both in the x-y plane: {c:?}");
    assert!((p.explained()[0] + p.explained()[1] - 1.0).abs() < 1e-4);
}
