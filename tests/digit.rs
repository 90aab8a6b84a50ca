//! A user's digit made into one like the data set's: transparency laid on the background its
//! strokes suggest, dark on light inverted, and an image of another size scaled and centred as
//! MNIST's digits were (bounding box into 20/28 of the side, centre of mass in the middle).

use dae::data::digit::{Background, prepare};

/// A `rows × cols` image, 0 but for the rectangle `top..bottom, left..right` at `ink`, on `paper`.
fn drawing(
    (rows, cols): (usize, usize),
    (top, bottom, left, right): (usize, usize, usize, usize),
    ink: f32,
    paper: f32,
) -> Vec<f32> {
    (0..rows * cols)
        .map(|i| {
            let (y, x) = (i / cols, i % cols);
            if (top..bottom).contains(&y) && (left..right).contains(&x) { ink } else { paper }
        })
        .collect()
}

#[test]
fn a_dark_digit_on_white_is_inverted_and_a_light_one_on_black_is_not() {
    let (pixels, prepared) = prepare(dark_digit(), None, (28, 28), (28, 28));
    assert!(prepared.inverted && !prepared.fitted, "{prepared:?}");
    assert!((pixels[0] - 0.05).abs() < 1e-6 && (pixels[10 * 28 + 13] - 0.9).abs() < 1e-6);
    assert_eq!(prepared.to_string(), "dark on light, inverted");
    let light = drawing((28, 28), (4, 24, 12, 16), 0.9, 0.0);
    let (pixels, prepared) = prepare(light.clone(), None, (28, 28), (28, 28));
    assert_eq!((pixels, prepared.to_string()), (light, "as it was".to_string()));
}

#[test]
fn transparency_lies_on_the_background_the_strokes_suggest() {
    // Opaque dark strokes on a transparent page: laid on white, then inverted.
    let gray = drawing((28, 28), (4, 24, 12, 16), 0.0, 0.0);
    let alpha = drawing((28, 28), (4, 24, 12, 16), 1.0, 0.0);
    let (pixels, prepared) = prepare(gray, Some(&alpha), (28, 28), (28, 28));
    assert_eq!((prepared.background, prepared.inverted), (Some(Background::White), true));
    assert_eq!((pixels[0], pixels[10 * 28 + 13]), (0.0, 1.0));
    assert_eq!(prepared.to_string(), "on white, dark on light, inverted");
    // Light strokes: laid on black, as they are.
    let gray = drawing((28, 28), (4, 24, 12, 16), 0.8, 0.8);
    let (pixels, prepared) = prepare(gray, Some(&alpha), (28, 28), (28, 28));
    assert_eq!((prepared.background, prepared.inverted), (Some(Background::Black), false));
    assert_eq!((pixels[0], pixels[10 * 28 + 13]), (0.0, 0.8));
}

/// A tall bar far off centre in a large image: its bounding box scaled to 20 of 28 pixels high,
/// keeping its shape, and its centre of mass moved to the middle.
#[test]
fn another_size_is_scaled_into_a_twenty_pixel_box_and_centred_by_its_mass() {
    let image = drawing((300, 200), (20, 170, 150, 180), 1.0, 0.0); // 150 high, 30 wide
    let (pixels, prepared) = prepare(image, None, (300, 200), (28, 28));
    assert!(prepared.fitted && !prepared.inverted);
    assert_eq!(prepared.to_string(), "200×300 scaled and centred");
    let lit: Vec<(usize, usize)> = (0..784).filter(|&i| pixels[i] > 0.5).map(|i| (i / 28, i % 28)).collect();
    let rows = lit.iter().map(|p| p.0).max().unwrap() - lit.iter().map(|p| p.0).min().unwrap() + 1;
    let cols = lit.iter().map(|p| p.1).max().unwrap() - lit.iter().map(|p| p.1).min().unwrap() + 1;
    assert_eq!((rows, cols), (20, 4), "20 high, 30·20/150 = 4 wide");
    let mass: f32 = pixels.iter().sum();
    let centre = |f: fn(usize) -> usize| {
        pixels.iter().enumerate().map(|(i, v)| (f(i) as f32 + 0.5) * v).sum::<f32>() / mass
    };
    let (cy, cx) = (centre(|i| i / 28), centre(|i| i % 28));
    assert!((cy - 14.0).abs() <= 0.5 && (cx - 14.0).abs() <= 0.5, "centre of mass ({cy}, {cx})");
    // A blank page stays blank, and says so; so does a white one, once inverted.
    let (blank, prepared) = prepare(vec![0.0; 60 * 40], None, (60, 40), (28, 28));
    assert!(blank.iter().all(|&v| v == 0.0));
    assert_eq!(prepared.to_string(), "blank, no stroke to denoise, 40×60 scaled and centred");
    let (_, white) = prepare(vec![0.97; 28 * 28], None, (28, 28), (28, 28));
    assert_eq!(white.to_string(), "dark on light, inverted, blank, no stroke to denoise");
    assert!(!prepare(dark_digit(), None, (28, 28), (28, 28)).1.blank, "a digit is not blank");
}

/// A dark digit on white, 28×28.
fn dark_digit() -> Vec<f32> {
    drawing((28, 28), (4, 24, 12, 16), 0.1, 0.95)
}
