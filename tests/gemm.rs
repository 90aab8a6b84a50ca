//! The fast matrix product against the naive triple loop, on awkward sizes (0, 1, primes, sizes
//! that are no multiple of the kernel's tile) and strided layouts, and its bits across threads.

use dae::engine::activation::Activation;
use dae::engine::gemm::{Finish, copy_into, matmul, matmul_finish_on, matmul_naive, par_matmul, sgemm};
use dae::engine::kernel::Path;
use ndarray::{Array2, ArrayView2, ShapeBuilder, s};
use ndarray_rand::RandomExt;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::Uniform;

fn random(shape: (usize, usize), seed: u64) -> Array2<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    Array2::random_using(shape, Uniform::new(-1.0, 1.0).unwrap(), &mut rng)
}

fn max_diff(a: ArrayView2<f32>, b: ArrayView2<f32>) -> f32 {
    a.iter().zip(b.iter()).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

const SIZES: [usize; 8] = [0, 1, 2, 7, 16, 17, 31, 67];

#[test]
fn matmul_matches_naive_on_awkward_sizes() {
    for &m in &SIZES {
        for &k in &SIZES {
            for &n in &SIZES {
                let (a, b) = (random((m, k), 1), random((k, n), 2));
                let mut fast = Array2::from_elem((m, n), f32::NAN);
                let mut naive = Array2::zeros((m, n));
                matmul(a.view(), b.view(), fast.view_mut());
                matmul_naive(a.view(), b.view(), naive.view_mut());
                let d = max_diff(fast.view(), naive.view());
                assert!(d <= 1e-5 * k.max(1) as f32, "{m}×{k}×{n}: {d}");
            }
        }
    }
}

#[test]
fn matmul_reads_transposed_and_column_major_views() {
    let (m, k, n) = (13, 29, 11);
    let a_t = random((k, m), 3); // read as its transpose
    let b_cm = Array2::from_shape_vec((k, n).f(), random((k, n), 4).into_raw_vec_and_offset().0).unwrap();
    let mut fast = Array2::zeros((m, n));
    let mut naive = Array2::zeros((m, n));
    matmul(a_t.t(), b_cm.view(), fast.view_mut());
    matmul_naive(a_t.t(), b_cm.view(), naive.view_mut());
    assert!(max_diff(fast.view(), naive.view()) < 1e-5);
    // A strided output: every other column of a wider matrix.
    let mut wide = Array2::zeros((m, 2 * n));
    matmul(a_t.t(), b_cm.view(), wide.slice_mut(ndarray::s![.., ..;2]));
    assert!(max_diff(wide.slice(ndarray::s![.., ..;2]), naive.view()) < 1e-5);
    assert!(wide.slice(ndarray::s![.., 1..;2]).iter().all(|&v| v == 0.0));
}

#[test]
fn par_matmul_gives_the_same_bits_for_any_thread_count() {
    let (m, k, n) = (257, 131, 67);
    let (a, b) = (random((m, k), 5), random((k, n), 6));
    let product = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        let mut c = Array2::zeros((m, n));
        pool.install(|| par_matmul(a.view(), b.view(), c.view_mut()));
        c
    };
    let one = product(1);
    let mut naive = Array2::zeros((m, n));
    matmul_naive(a.view(), b.view(), naive.view_mut());
    assert!(max_diff(one.view(), naive.view()) < 1e-4);
    for threads in [2, 3, 4, 7] {
        let c = product(threads);
        for ((i, j), &v) in c.indexed_iter() {
            assert_eq!(v.to_bits(), one[[i, j]].to_bits(), "{threads} threads at {i},{j}");
        }
    }
}

/// Our kernels sum in `matrixmultiply`'s order (blocks of 256 along `k`), so every path this CPU
/// has gives the same bits: on every tail of the AVX-512 kernel's 12×32 tile and the AVX2
/// kernel's 6×16, several blocks along `k`, and each layout of `A` and `B` (a `B` with columns
/// contiguous is copied row by row first).
#[test]
fn matmul_gives_the_bits_of_matrixmultiply() {
    // The last has a `B` too large to copy (`sgemm` multiplies it when its rows are strided).
    let shapes = [
        (1, 1, 1),
        (13, 257, 17),
        (25, 300, 33),
        (12, 784, 128),
        (7, 513, 64),
        (40, 9, 32),
        (9, 40, 29),
        (3, 1024, 784),
        (2, 1100, 1000),
    ];
    for (m, k, n) in shapes {
        let (a, b) = (random((m, k), 7), random((k, n), 8));
        let a_t = a.t().to_owned();
        let b_cm = Array2::from_shape_vec((k, n).f(), b.t().iter().copied().collect()).unwrap();
        assert_eq!(b_cm, b);
        for (a, b) in
            [(a.view(), b.view()), (a_t.t(), b.view()), (a.view(), b_cm.view()), (a_t.t(), b_cm.view())]
        {
            let mut theirs = Array2::zeros((m, n));
            sgemm(a, b, theirs.view_mut());
            for path in Path::ALL.into_iter().filter(|p| p.supported()) {
                let mut ours = Array2::from_elem((m, n), f32::NAN);
                matmul_finish_on(path, a, b, ours.view_mut(), Finish::Plain);
                let same = ours.iter().zip(theirs.iter()).all(|(x, y)| x.to_bits() == y.to_bits());
                assert!(
                    same,
                    "{} {m}×{k}×{n}, strides {:?} {:?}: max diff {}",
                    path.name(),
                    a.strides(),
                    b.strides(),
                    max_diff(ours.view(), theirs.view())
                );
            }
        }
    }
}

/// `copy_into` writes a transposed matrix into columns of a wider one and leaves the other
/// columns alone, on sizes around the register blocks (16×16 with AVX-512, 8×8 with AVX2).
#[test]
fn copy_into_transposes_into_a_slab_of_columns() {
    for (rows, columns) in [(1, 1), (5, 3), (8, 8), (9, 7), (3, 24), (16, 16), (17, 33), (64, 20)] {
        let w = random((rows, columns), 7); // (O_block, I), as a block of W
        let mut wt = Array2::from_elem((columns, rows + 9), f32::NAN); // (I, O): wider than the block
        copy_into(w.t(), wt.slice_mut(s![.., 4..4 + rows]));
        assert_eq!(wt.slice(s![.., 4..4 + rows]), w.t(), "{rows}×{columns}");
        assert!(wt.slice(s![.., ..4]).iter().chain(wt.slice(s![.., 4 + rows..])).all(|v| v.is_nan()));
    }
}

/// A finished product is the product, then the finish's formula as a separate pass, bit for
/// bit: in our kernels' registers (bias, ReLU, ReLU's derivative), in a pass after them (the
/// sigmoid's), and after `sgemm` (an output whose rows are strided, or the portable path); on
/// every path this CPU has, tile tails, several blocks along `k`, and `k = 0`.
#[test]
fn a_finished_product_is_the_product_then_the_formula() {
    use Activation::{Identity, Relu, Sigmoid};
    for (m, k, n) in
        [(1, 1, 1), (13, 40, 37), (5, 0, 20), (30, 300, 33), (25, 17, 16), (13, 300, 24), (7, 40, 29)]
    {
        let (a, b, bias) =
            (random((m, k), 9), random((k, n), 10), random((1, n), 11).into_shape_with_order(n).unwrap());
        // An activation's output: ReLU's is 0 in about half its entries.
        let out = random((m, n), 12).mapv(|v| v.max(0.0));
        let mut product = Array2::zeros((m, n));
        matmul(a.view(), b.view(), product.view_mut());
        let finishes = [
            (Finish::Bias(bias.as_slice().unwrap(), None), None),
            (Finish::Bias(bias.as_slice().unwrap(), Some(Relu)), Some(Relu)),
            (Finish::Bias(bias.as_slice().unwrap(), Some(Sigmoid)), Some(Sigmoid)),
            (Finish::Slope(Relu, out.view()), None),
            (Finish::Slope(Sigmoid, out.view()), None),
            (Finish::Slope(Identity, out.view()), None),
        ];
        for (finish, activation) in finishes {
            let mut expected = product.clone();
            for (mut row, a_row) in expected.rows_mut().into_iter().zip(out.rows()) {
                let z = row.as_slice_mut().unwrap();
                match finish {
                    Finish::Bias(..) => {
                        z.iter_mut().zip(&bias).for_each(|(z, b)| *z += b);
                        activation.inspect(|f| f.forward(z));
                    }
                    Finish::Slope(f, _) => f.backward(a_row.as_slice().unwrap(), z),
                    Finish::Plain => unreachable!(),
                }
            }
            for path in Path::ALL.into_iter().filter(|p| p.supported()) {
                let mut ours = Array2::from_elem((m, n), f32::NAN);
                matmul_finish_on(path, a.view(), b.view(), ours.view_mut(), finish);
                let mut strided = Array2::from_elem((m, 2 * n), f32::NAN);
                matmul_finish_on(path, a.view(), b.view(), strided.slice_mut(s![.., ..;2]), finish);
                for got in [ours.view(), strided.slice(s![.., ..;2])] {
                    // `==`, not bits: `f32::max` may give either zero for ReLU(−0), the kernel +0.
                    let same = got.iter().zip(&expected).all(|(x, y)| x == y);
                    assert!(same, "{} {m}×{k}×{n}, {finish:?}", path.name());
                }
            }
        }
    }
}
