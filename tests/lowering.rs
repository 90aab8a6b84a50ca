//! `col2im` ([`Windows::raise`]) against its definition, to the bit: every window's row added
//! back onto the pixels it covers, windows in order, onto an image of zeros.

use dae::engine::lowering::{Image, Windows};

/// The definition: an image of zeros, then each window's taps added in window order.
fn raise_by_definition(windows: &Windows, lowered: &[f32]) -> Vec<f32> {
    let (k, s, p, c) = (windows.kernel, windows.stride, windows.padding, windows.big.channels);
    let (height, width) = (windows.big.height as isize, windows.big.width as isize);
    let (grid_h, grid_w) = windows.grid();
    let mut image = vec![0.0f32; windows.big.len()];
    for (q, row) in lowered.chunks_exact(windows.row_len()).enumerate() {
        let (oy, ox) = (q / grid_w, q % grid_w);
        assert!(oy < grid_h);
        for (tap, source) in row.chunks_exact(c).enumerate() {
            let y = (oy * s + tap / k) as isize - p as isize;
            let x = (ox * s + tap % k) as isize - p as isize;
            if (0..height).contains(&y) && (0..width).contains(&x) {
                let at = (y * width + x) as usize * c;
                image[at..at + c].iter_mut().zip(source).for_each(|(v, x)| *v += x);
            }
        }
    }
    image
}

/// Numbers of many magnitudes, so that another order of additions would round differently.
fn numbers(n: usize) -> Vec<f32> {
    (0..n).map(|i| ((i as f32 * 0.618_034).fract() - 0.5) * 10f32.powi((i % 7) as i32 - 3)).collect()
}

#[test]
fn raise_is_its_definition_to_the_bit_for_every_kernel_stride_and_padding() {
    let mut checked = 0;
    for (k, s, p) in (1..=5).flat_map(|k| (1..=4).flat_map(move |s| (0..k + 2).map(move |p| (k, s, p)))) {
        // Spans of `k·C` numbers or fewer: with 16 and 7 channels, also spans that `raise`
        // moves sixteen at a time, whole or with a rest.
        for (h, w, c) in [(1, 1, 1), (2, 5, 1), (5, 2, 3), (7, 7, 2), (6, 9, 1), (4, 4, 16), (5, 6, 7)] {
            if h + 2 * p < k || w + 2 * p < k {
                continue; // no window fits
            }
            let windows = Windows { big: Image::new(h, w, c), kernel: k, stride: s, padding: p };
            let lowered = numbers(windows.count() * windows.row_len());
            // Whatever the image held is overwritten: where every pixel is covered, nothing
            // zeroes it first.
            let mut image = vec![f32::NAN; windows.big.len()];
            let spans = std::cell::RefCell::new(Vec::new());
            windows.raise(&lowered, &mut image, |at, pixels| spans.borrow_mut().push((at, pixels.len())));
            let expected = raise_by_definition(&windows, &lowered);
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&image), bits(&expected), "k {k}, stride {s}, padding {p}, {h}×{w}×{c}");
            // `finish` sees every pixel once, in order, in whole rows.
            let mut next = 0;
            for (at, len) in spans.into_inner() {
                assert_eq!((at, len % (w * c)), (next, 0), "k {k}, stride {s}, padding {p}, {h}×{w}×{c}");
                next += len;
            }
            assert_eq!(next, windows.big.len());
            checked += 1;
        }
    }
    assert!(checked > 200, "{checked} shapes");
}
