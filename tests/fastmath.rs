//! The vectorizable `exp` and `ln(1 + x)` against the standard library over their whole domain.

use dae::engine::fastmath::{exp_nonpositive, ln_1p_unit, ln_positive, sin_cos_2pi};

/// Relative error in units of f32's machine epsilon (2⁻²³ ≈ 1.19e-7).
fn ulps(got: f32, want: f64) -> f64 {
    (f64::from(got) - want).abs() / want.abs() / f64::from(f32::EPSILON)
}

#[test]
fn exp_is_within_a_few_ulps_down_to_underflow() {
    let mut worst: f64 = 0.0;
    for i in 0..=2_000_000 {
        let x = -87.0 * i as f32 / 2_000_000.0;
        worst = worst.max(ulps(exp_nonpositive(x), f64::from(x).exp()));
    }
    println!("exp: worst {worst:.2} ulp");
    assert!(worst < 4.0, "{worst} ulp");
    assert_eq!(exp_nonpositive(0.0), 1.0);
    assert_eq!(exp_nonpositive(-88.0), 0.0);
    assert_eq!(exp_nonpositive(f32::NEG_INFINITY), 0.0);
}

#[test]
fn ln_1p_is_within_a_few_ulps_on_the_unit_interval() {
    let mut worst: f64 = 0.0;
    for i in 1..=2_000_000 {
        let x = i as f32 / 2_000_000.0;
        worst = worst.max(ulps(ln_1p_unit(x), f64::from(x).ln_1p()));
    }
    for x in [1e-30f32, 1e-20, 1e-10, 1e-7, 3e-5] {
        worst = worst.max(ulps(ln_1p_unit(x), f64::from(x).ln_1p()));
    }
    println!("ln_1p: worst {worst:.2} ulp");
    assert!(worst < 4.0, "{worst} ulp");
    assert_eq!(ln_1p_unit(0.0), 0.0);
}

#[test]
fn ln_is_within_a_few_ulps_on_the_unit_interval_and_beyond() {
    let mut worst: f64 = 0.0;
    for i in 1..=2_000_000u32 {
        let x = i as f32 / 2_000_000.0;
        let want = f64::from(x).ln();
        // Relative error is meaningless where ln x crosses zero; there, compare absolutely.
        let err = (f64::from(ln_positive(x)) - want).abs() / want.abs().max(1.0) / f64::from(f32::EPSILON);
        worst = worst.max(err);
    }
    for x in [f32::MIN_POSITIVE, 1e-30, 2.0f32.powi(-24), 3.5, 1e10, f32::MAX] {
        worst = worst.max(ulps(ln_positive(x), f64::from(x).ln()));
    }
    println!("ln: worst {worst:.2} ulp");
    assert!(worst < 4.0, "{worst} ulp");
    assert_eq!(ln_positive(1.0), 0.0);
}

#[test]
fn sin_cos_of_a_turn_fraction_are_accurate_on_every_quadrant() {
    let mut worst: f64 = 0.0;
    for i in 0..=1_000_000 {
        let v = i as f32 / 1_000_000.0;
        let (s, c) = sin_cos_2pi(v);
        let angle = std::f64::consts::TAU * f64::from(v);
        worst = worst.max((f64::from(s) - angle.sin()).abs()).max((f64::from(c) - angle.cos()).abs());
    }
    println!("sin/cos: worst absolute error {worst:.2e}");
    assert!(worst < 3e-7, "{worst}");
    assert_eq!(sin_cos_2pi(0.25), (1.0, 0.0));
}
