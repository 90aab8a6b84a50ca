//! The vectorizable `exp` and `ln(1 + x)` against the standard library over their whole domain.

use dae::fastmath::{exp_nonpositive, ln_1p_unit};

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
