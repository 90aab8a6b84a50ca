//! The kernel's buffers and Adam's moments start on a cache line, whatever the allocator
//! returned.

use dae::engine::adam::Adam;
use dae::engine::aligned::{LINE, copy_of, slice_of, vector, zeros};
use ndarray::Array2;

fn starts_a_line(p: *const f32) -> bool {
    (p as usize).is_multiple_of(LINE)
}

#[test]
fn matrices_start_on_a_cache_line_and_hold_what_they_should() {
    for (rows, cols) in [(1, 1), (3, 5), (256, 784), (32, 288)] {
        let z = zeros((rows, cols));
        assert_eq!(z.dim(), (rows, cols));
        assert!(z.is_standard_layout() && starts_a_line(z.as_ptr()), "{rows}×{cols}");
        assert!(z.iter().all(|&v| v == 0.0));
        let m = Array2::from_shape_fn((rows, cols), |(i, j)| (i * cols + j) as f32);
        let c = copy_of(&m);
        assert_eq!(c, m);
        assert!(starts_a_line(c.as_ptr()));
        // A transposed view copies into rows too.
        let t = copy_of(&m.t().to_owned());
        assert_eq!(t, m.t());
        assert!(t.is_standard_layout() && starts_a_line(t.as_ptr()));
    }
}

#[test]
fn a_scratch_slice_starts_on_a_cache_line_as_it_grows() {
    let mut buffer = Vec::new();
    for len in [0, 1, 17, 1000, 100_352, 5] {
        let s = slice_of(&mut buffer, len);
        assert_eq!(s.len(), len);
        assert!(starts_a_line(s.as_ptr()), "{len} numbers");
        s.fill(1.0);
    }
    // Reused without growing, it keeps its place and what was written there.
    let first = slice_of(&mut buffer, 5).as_ptr();
    assert_eq!(slice_of(&mut buffer, 5).as_ptr(), first);
    assert_eq!(slice_of(&mut buffer, 5), &[1.0; 5]);
}

#[test]
fn adams_moments_start_on_a_cache_line_as_the_weights_do() {
    let mut adam = Adam::new(1e-3, [100_352, 128, 3, 0]);
    for moments in adam.moments() {
        for (name, x) in [("m", moments.m), ("v", moments.v)] {
            assert!(x.is_empty() || starts_a_line(x.as_ptr()), "{name} of {} numbers", x.len());
            assert!(x.iter().all(|&v| v == 0.0));
        }
    }
    assert_eq!(adam.m.iter().map(|m| m.len()).collect::<Vec<_>>(), [100_352, 128, 3, 0]);
    let v = vector(17);
    assert_eq!(v.len(), 17);
    assert!(starts_a_line(v.as_ptr()));
}
