//! Matrix products: a naive triple loop kept as the reference, and the fast path that the
//! engine uses — our own kernel for AVX-512 or for AVX2 with FMA ([`kernel`], chosen when the
//! program starts), or `matrixmultiply`'s where that cannot serve, with the rows of the output
//! split across the rayon pool.
//!
//! Strides first, as in BLAS: a matrix is a pointer plus a row stride and a column stride, so a
//! transposed operand (`Wᵀ`, `δᵀ`) is the same memory read with its strides swapped. `ndarray`
//! views carry exactly that, and [`matmul`] hands them to the kernel as they are — but for a
//! right operand whose rows are not contiguous, which our kernel reads a row at a time and so
//! gets as a copy.
//!
//! Bit-for-bit reproducibility across thread counts: the kernel sums every output element over
//! `k` in the same order whichever rows a thread is given, so splitting the rows of `C` never
//! changes a result.

use std::cell::RefCell;

use ndarray::{ArrayView2, ArrayViewMut2, Axis};
use rayon::prelude::*;

use crate::engine::activation::Activation;
use crate::engine::aligned;
use crate::engine::fastmath::for_this_cpu;
use crate::engine::kernel;

/// `C ← A·B` by the definition `C[i,j] = Σₖ A[i,k]·B[k,j]`. The reference for [`matmul`].
///
/// Shapes: `a` (M, K), `b` (K, N), `c` (M, N).
pub fn matmul_naive(a: ArrayView2<f32>, b: ArrayView2<f32>, mut c: ArrayViewMut2<f32>) {
    let (m, k) = a.dim();
    let n = b.ncols();
    assert_eq!((b.nrows(), c.dim()), (k, (m, n)), "matmul_naive: shapes disagree");
    for i in 0..m {
        for j in 0..n {
            let mut sum = 0.0;
            for p in 0..k {
                sum += a[[i, p]] * b[[p, j]];
            }
            c[[i, j]] = sum;
        }
    }
}

/// `C ← A·B` on one thread, any strides: through our [`kernel`] when `C`'s rows are contiguous
/// (a `B` whose rows are not is copied row by row first, into a buffer of the thread's), else
/// through `matrixmultiply::sgemm`: on a CPU with neither AVX-512 nor AVX2 and FMA, and for a
/// `B` of more than [`MAX_COPY`] numbers to copy, or one met while the thread's buffer holds
/// another. Both give the same bits.
///
/// Shapes: `a` (M, K), `b` (K, N), `c` (M, N).
///
/// A transposed operand is only a view with swapped strides:
///
/// ```
/// use dae::engine::gemm::matmul;
/// use ndarray::{Array2, array};
///
/// let x = array![[1.0f32, 2.0], [3.0, 4.0]]; // (B, I)
/// let w = array![[1.0f32, 0.0], [1.0, 1.0], [0.0, 2.0]]; // (O, I), stored as PyTorch does
/// let mut y = Array2::zeros((2, 3));
/// matmul(x.view(), w.t(), y.view_mut()); // Y = X·Wᵀ
/// assert_eq!(y, array![[1.0, 3.0, 4.0], [3.0, 7.0, 8.0]]);
/// ```
pub fn matmul(a: ArrayView2<f32>, b: ArrayView2<f32>, c: ArrayViewMut2<f32>) {
    matmul_finish(a, b, c, Finish::Plain);
}

/// A layer's elementwise work on a product `S = A·B` (M, N), done as its output is stored: in
/// registers by our kernel where it can (bias, ReLU and ReLU's derivative), else in a pass over
/// `C` right after the product. The same bits either way, but for the sign of ReLU(−0), which
/// `f32::max` leaves open and no later sum can see.
#[derive(Debug, Clone, Copy)]
pub enum Finish<'a> {
    /// `C = S`.
    Plain,
    /// `C = f(S + 1·bᵀ)`: a layer's bias `b` (N,), then its activation `f` if any.
    Bias(&'a [f32], Option<Activation>),
    /// `C = S ⊙ f′`, with `f′` read off the activation's output `a` (M, N): `δ` of a layer from
    /// `∂L/∂a`.
    Slope(Activation, ArrayView2<'a, f32>),
}

impl<'a> Finish<'a> {
    /// The finish of rows `first…first + rows` of `C`.
    fn rows(self, first: usize, rows: usize) -> Finish<'a> {
        match self {
            Finish::Slope(f, mut a) => {
                a.slice_axis_inplace(Axis(0), (first..first + rows).into());
                Finish::Slope(f, a)
            }
            other => other,
        }
    }

    /// The finish as a pass over `c` (M, N), row by row; a row whose numbers are not
    /// contiguous (a strided `C` or `a`) is done number by number.
    fn apply(self, mut c: ArrayViewMut2<f32>) {
        use std::slice::{from_mut, from_ref};
        match self {
            Finish::Plain => {}
            Finish::Bias(b, f) => c.rows_mut().into_iter().for_each(|mut z| {
                z.iter_mut().zip(b).for_each(|(z, b)| *z += b);
                match (f, z.as_slice_mut()) {
                    (None, _) => {}
                    (Some(f), Some(z)) => f.forward(z),
                    (Some(f), None) => z.iter_mut().for_each(|z| f.forward(from_mut(z))),
                }
            }),
            Finish::Slope(f, a) => c.rows_mut().into_iter().zip(a.rows()).for_each(|(mut d, a)| {
                match (a.as_slice(), d.as_slice_mut()) {
                    (Some(a), Some(d)) => f.backward(a, d),
                    _ => d.iter_mut().zip(a).for_each(|(d, a)| f.backward(from_ref(a), from_mut(d))),
                }
            }),
        }
    }

    /// The part our kernel does in registers, and the rest, for a pass afterwards.
    #[cfg(target_arch = "x86_64")]
    fn split(self) -> (kernel::Finish, Finish<'a>) {
        match self {
            Finish::Bias(b, None | Some(Activation::Identity)) => {
                (kernel::Finish::Bias(b.as_ptr()), Finish::Plain)
            }
            Finish::Bias(b, Some(Activation::Relu)) => (kernel::Finish::BiasRelu(b.as_ptr()), Finish::Plain),
            // No bias left to add (an empty one): the activation alone.
            Finish::Bias(b, f) => (kernel::Finish::Bias(b.as_ptr()), Finish::Bias(&[], f)),
            Finish::Slope(Activation::Relu, a) if a.strides()[1] == 1 => {
                (kernel::Finish::ReluSlope(a.as_ptr(), a.strides()[0]), Finish::Plain)
            }
            other => (kernel::Finish::Plain, other),
        }
    }
}

/// [`matmul`], then `finish` (see [`Finish`]).
///
/// Shapes: `a` (M, K), `b` (K, N), `c` (M, N), and `finish`'s operands to match `C`.
pub fn matmul_finish(a: ArrayView2<f32>, b: ArrayView2<f32>, c: ArrayViewMut2<f32>, finish: Finish) {
    matmul_finish_on(kernel::path(), a, b, c, finish);
}

/// [`matmul_finish`] on the given path rather than the program's ([`kernel::path`]): to compare
/// the paths in one process (tests, benchmarks). Panics if this CPU cannot run `path`.
pub fn matmul_finish_on(
    path: kernel::Path,
    a: ArrayView2<f32>,
    b: ArrayView2<f32>,
    mut c: ArrayViewMut2<f32>,
    finish: Finish,
) {
    assert!(path.supported(), "matmul: this CPU cannot run {}", path.name());
    let (m, k) = a.dim();
    let n = b.ncols();
    assert_eq!((b.nrows(), c.dim()), (k, (m, n)), "matmul: shapes disagree");
    match finish {
        Finish::Bias(b, _) => assert_eq!(b.len(), n, "matmul: one bias per column"),
        Finish::Slope(_, a) => assert_eq!(a.dim(), (m, n), "matmul: a slope for every output"),
        Finish::Plain => {}
    }
    if path == kernel::Path::Portable || c.strides()[1] != 1 || m == 0 || n == 0 {
        sgemm(a, b, c.view_mut());
        return finish.apply(c);
    }
    if b.strides()[1] == 1 || n == 1 {
        return own_kernel(path, a, b, c, finish);
    }
    if k * n > MAX_COPY {
        sgemm(a, b, c.view_mut());
        return finish.apply(c);
    }
    ROW_MAJOR.with(|buffer| match buffer.try_borrow_mut() {
        Ok(mut buffer) => own_kernel(path, a, row_major(path, b, &mut buffer), c, finish),
        Err(_) => {
            sgemm(a, b, c.view_mut());
            finish.apply(c);
        }
    });
}

/// The most numbers of a right operand [`matmul`] copies row by row (the notebook's model's
/// largest weight matrix has 100,352): a larger one goes to `sgemm`, which packs it a panel at a
/// time, rather than into a copy that each thread would keep.
pub const MAX_COPY: usize = 1 << 20;

thread_local! {
    /// A thread's copy of a right operand whose rows are not contiguous (a dense layer's `Wᵀ`, a
    /// convolution's transposed kernel), for [`matmul`]; it grows to the largest such operand
    /// once and is reused.
    static ROW_MAJOR: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// `b` copied into `buffer` row by row by `path`'s transpose, and seen as a matrix there.
fn row_major<'a>(path: kernel::Path, b: ArrayView2<f32>, buffer: &'a mut Vec<f32>) -> ArrayView2<'a, f32> {
    let (k, n) = b.dim();
    let buffer = aligned::slice_of(buffer, k * n);
    copy_into_on(path, b, ArrayViewMut2::from_shape((k, n), &mut *buffer).expect("K·N numbers"));
    ArrayView2::from_shape((k, n), &*buffer).expect("K·N numbers")
}

/// `out ← b`, for an `out` whose rows are contiguous: a `b` whose columns are contiguous (the
/// transpose of a row-major matrix, such as `Wᵀ`) through the transpose of the path's kernel
/// ([`kernel::transpose`], [`kernel_avx2::transpose`](crate::engine::kernel_avx2::transpose)),
/// any other number by number.
///
/// Shapes: `b` (K, N), `out` (K, N).
pub fn copy_into(b: ArrayView2<f32>, out: ArrayViewMut2<f32>) {
    copy_into_on(kernel::path(), b, out);
}

/// [`copy_into`] by the transpose of the given path (one this CPU runs) rather than the program's.
fn copy_into_on(path: kernel::Path, b: ArrayView2<f32>, mut out: ArrayViewMut2<f32>) {
    assert_eq!(b.dim(), out.dim(), "copy_into: shapes disagree");
    #[cfg(target_arch = "x86_64")]
    if let (&[1, ld], &[ldo, 1]) = (b.strides(), out.strides())
        && ld >= 0
        && ldo >= 0
    {
        let (k, n) = b.dim();
        let (m, ld, o, ldo) = (b.as_ptr(), ld as usize, out.as_mut_ptr(), ldo as usize);
        // SAFETY: the CPU runs the path (`kernel::path`, or checked by `matmul_finish_on`); `b`
        // is a live view whose column `j` holds its K rows contiguously from `ld·j`; `out` is a
        // live, exclusively borrowed view whose row `p` holds N numbers from `ldo·p`.
        match path {
            kernel::Path::Avx512 => return unsafe { kernel::transpose(m, ld, n, k, o, ldo) },
            kernel::Path::Avx2 => {
                return unsafe { crate::engine::kernel_avx2::transpose(m, ld, n, k, o, ldo) };
            }
            kernel::Path::Portable => {}
        }
    }
    out.assign(&b);
}

/// [`matmul_finish`] through our kernel for `path` ([`kernel::gemm`],
/// [`kernel_avx2::gemm`](crate::engine::kernel_avx2::gemm)); `b`'s and `c`'s rows are
/// contiguous, and the CPU runs `path`, one of ours.
#[cfg(target_arch = "x86_64")]
fn own_kernel(
    path: kernel::Path,
    a: ArrayView2<f32>,
    b: ArrayView2<f32>,
    mut c: ArrayViewMut2<f32>,
    finish: Finish,
) {
    let [rsa, csa] = strides(a.strides());
    let (rsb, rsc) = (b.strides()[0], c.strides()[0]);
    let (in_kernel, rest) = finish.split();
    let operands = kernel::Operands {
        dims: (a.nrows(), a.ncols(), b.ncols()),
        a: a.as_ptr(),
        a_strides: (rsa, csa),
        b: b.as_ptr(),
        rsb,
        c: c.as_mut_ptr(),
        rsc,
    };
    // SAFETY: the CPU runs `path` (the caller's contract, which `matmul_finish_on` checks); the
    // pointers come from live views whose dimensions were checked by `matmul_finish_on`, as were
    // the finish's (a bias of N numbers, a slope of C's shape with contiguous rows); each stride
    // is the view's own and `B`'s and `C`'s rows are contiguous (`n == 1` needs no column
    // stride); `c` is borrowed mutably, so it aliases no other operand.
    unsafe {
        match path {
            kernel::Path::Avx512 => kernel::gemm(operands, in_kernel),
            kernel::Path::Avx2 => crate::engine::kernel_avx2::gemm(operands, in_kernel),
            kernel::Path::Portable => unreachable!("matrixmultiply's path takes sgemm"),
        }
    }
    rest.apply(c);
}

/// Never called: off x86-64 [`matmul_finish`] always takes `sgemm`.
#[cfg(not(target_arch = "x86_64"))]
fn own_kernel(
    _: kernel::Path,
    a: ArrayView2<f32>,
    b: ArrayView2<f32>,
    mut c: ArrayViewMut2<f32>,
    finish: Finish,
) {
    sgemm(a, b, c.view_mut());
    finish.apply(c);
}

/// `C ← A·B` through `matrixmultiply::sgemm`, any strides. Shapes as [`matmul`]'s.
pub fn sgemm(a: ArrayView2<f32>, b: ArrayView2<f32>, mut c: ArrayViewMut2<f32>) {
    let (m, k) = a.dim();
    let n = b.ncols();
    assert_eq!((b.nrows(), c.dim()), (k, (m, n)), "sgemm: shapes disagree");
    let [rsa, csa] = strides(a.strides());
    let [rsb, csb] = strides(b.strides());
    let [rsc, csc] = strides(c.strides());
    // SAFETY: the three pointers come from live views whose dimensions were checked above, and
    // each stride is the view's own; `c` is borrowed mutably, so it aliases neither `a` nor `b`.
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            1.0,
            a.as_ptr(),
            rsa,
            csa,
            b.as_ptr(),
            rsb,
            csb,
            0.0,
            c.as_mut_ptr(),
            rsc,
            csc,
        );
    }
}

fn strides(s: &[isize]) -> [isize; 2] {
    [s[0], s[1]]
}

/// `C ← A·B`, its blocks of rows spread over the current rayon pool, one per thread. Each block
/// is [`matmul`]'s product of `A`'s rows, so the bits are the same for any number of threads.
///
/// Shapes: `a` (M, K), `b` (K, N), `c` (M, N).
pub fn par_matmul(a: ArrayView2<f32>, b: ArrayView2<f32>, c: ArrayViewMut2<f32>) {
    par_matmul_with(a, b, c, Finish::Plain);
}

/// [`par_matmul`] with each block finished as it is stored (see [`Finish`]): a dense layer's
/// bias and activation.
pub fn par_matmul_with(a: ArrayView2<f32>, b: ArrayView2<f32>, mut c: ArrayViewMut2<f32>, finish: Finish) {
    let block = rows_per_block(c.nrows());
    c.axis_chunks_iter_mut(Axis(0), block).into_par_iter().enumerate().for_each(|(i, c_block)| {
        let first = i * block;
        let rows = c_block.nrows();
        let a_block = a.slice_axis(Axis(0), (first..first + rows).into());
        matmul_finish(a_block, b, c_block, finish.rows(first, rows));
    });
}

/// `sums[j] = Σᵢ m[i, first + j]`: the bias gradient `δᵀ·1` of a dense layer, the columns of
/// `m` from `first` on, rows added in order. Walks the slice of a contiguous `m` (an ndarray
/// view per row cost more than the additions).
pub fn column_sums(m: ArrayView2<f32>, first: usize, sums: &mut [f32]) {
    let columns = first..first + sums.len();
    let (m, n) = (m.as_slice().expect("column_sums: a contiguous matrix"), m.ncols());
    sums.fill(0.0);
    for_this_cpu!(for row in m.chunks_exact(n) {
        sums.iter_mut().zip(&row[columns.clone()]).for_each(|(s, v)| *s += v);
    });
}

/// Rows per block so that each thread of the current pool gets one block, but no block is
/// smaller than [`MIN_ROWS`]: a task must be worth starting.
pub fn rows_per_block(rows: usize) -> usize {
    rows.div_ceil(rayon::current_num_threads()).max(MIN_ROWS)
}

/// The fewest rows a parallel task is given.
pub const MIN_ROWS: usize = 16;
