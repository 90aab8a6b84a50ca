//! Numbers that start on a cache line: the buffers the matrix kernel reads and writes, and
//! Adam's moments.
//!
//! The allocator gives a large `Vec<f32>` 16-byte alignment, so every 64-byte AVX-512 load or
//! store of a row whose length is a multiple of 16 numbers straddles two cache lines, and a
//! store that does costs about two. Started on a 64-byte boundary, such a row is whole lines.
//! Measured on an Intel Xeon (model 167): a convolution layer's forward 4.14 → 3.42 ms with the
//! engine's buffers so placed (docs/performance.md). Only the speed depends on it, never a
//! number. A clone of such a matrix keeps the offset from its allocation, not the alignment.

use ndarray::{Array1, Array2, s};

/// Bytes in a cache line, and in an AVX-512 register.
pub const LINE: usize = 64;

/// The numbers one needs beyond `len` to be sure of `len` from a line's start.
const SLACK: usize = LINE / size_of::<f32>() - 1;

/// The bytes each buffer from this module takes beyond its numbers', for the counts of memory.
pub const SLACK_BYTES: u64 = (SLACK * size_of::<f32>()) as u64;

/// A `(rows, cols)` matrix of zeros, stored by rows, whose first number starts a cache line.
pub fn zeros((rows, cols): (usize, usize)) -> Array2<f32> {
    let len = rows.checked_mul(cols).expect("a matrix that fits in memory");
    vector(len).into_shape_with_order((rows, cols)).expect("a contiguous run")
}

/// `len` zeros whose first number starts a cache line.
pub fn vector(len: usize) -> Array1<f32> {
    let mut numbers = Array1::<f32>::zeros(len + SLACK);
    let start = numbers.as_ptr().align_offset(LINE).min(SLACK);
    numbers.slice_collapse(s![start..start + len]);
    numbers
}

/// `m`, copied into a matrix from [`zeros`].
pub fn copy_of(m: &Array2<f32>) -> Array2<f32> {
    let mut copy = zeros(m.dim());
    copy.assign(m);
    copy
}

/// `len` numbers of `buffer` from a cache line's start, growing it to hold them: a scratch
/// buffer. Reused without growing, they are the same numbers as before; a growth may move them.
pub fn slice_of(buffer: &mut Vec<f32>, len: usize) -> &mut [f32] {
    if buffer.len() < len + SLACK {
        buffer.resize(len + SLACK, 0.0);
    }
    // `align_offset` may in principle decline (`usize::MAX`): then not aligned, still right.
    let start = buffer.as_ptr().align_offset(LINE).min(SLACK);
    &mut buffer[start..start + len]
}
