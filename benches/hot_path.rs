//! Where a training step's time goes. Throughput is counted in floating-point operations, so
//! criterion's "elem/s" reads as FLOP/s (a multiply-add is 2 FLOP); the step benchmark counts
//! images, so its rate is images per second.
//!
//! `cargo bench` runs everything; `cargo bench -- sgemm` only the matrix products (through
//! `matmul`, on the path the program chose: `DAE_KERNEL` forces one);
//! `cargo bench -- kernel_paths` the products on every path this CPU has side by side (our
//! AVX-512 and AVX2 kernels, `matrixmultiply`'s); `cargo bench -- elementwise` the loss, Adam,
//! the noise and the copy into `Wᵀ`.

mod common;

use common::{in_pool, random};
use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use dae::data::noise::{Noise, NoiseStream};
use dae::data::rng::Purpose;
use dae::engine::adam::{Adam, Moments};
use dae::engine::aligned;
use dae::engine::data_parallel::{SHARD_ROWS, Shards};
use dae::engine::dense::{Dense, Piece, Write, weight_gradient};
use dae::engine::gemm::{Finish, copy_into, matmul, matmul_finish_on, matmul_naive, par_matmul};
use dae::engine::kernel::Path;
use dae::engine::loss::Loss;
use dae::engine::model::Model;
use ndarray::{Array1, ArrayViewMut2, s};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::hint::black_box;
use std::ops::Range;

const BATCH: usize = 256;
/// The notebook's model's layers, (inputs, outputs).
const LAYERS: [(usize, usize); 6] = [(784, 128), (128, 64), (64, 32), (32, 64), (64, 128), (128, 784)];

/// One thread's sgemm rate on every product of a training step: per layer `I → O`, the forward
/// `X·Wᵀ` (B×I·I×O), the weight gradient `δᵀ·X` (O×B·B×I) and the input gradient `δ·W` (B×O·O×I).
fn sgemm_shapes(c: &mut Criterion) {
    let mut group = c.benchmark_group("sgemm_1thread");
    for (i, o) in LAYERS {
        let (x, w, delta) = (random((BATCH, i)), random((o, i)), random((BATCH, o)));
        group.throughput(Throughput::Elements((2 * BATCH * i * o) as u64));
        let mut y = aligned::zeros((BATCH, o));
        group.bench_function(BenchmarkId::new("forward", format!("{i}x{o}")), |b| {
            b.iter(|| matmul(x.view(), w.t(), y.view_mut()))
        });
        let mut dw = aligned::zeros((o, i));
        group.bench_function(BenchmarkId::new("dW", format!("{i}x{o}")), |b| {
            b.iter(|| matmul(delta.t(), x.view(), dw.view_mut()))
        });
        let mut dx = aligned::zeros((BATCH, i));
        group.bench_function(BenchmarkId::new("dX", format!("{i}x{o}")), |b| {
            b.iter(|| matmul(delta.view(), w.view(), dx.view_mut()))
        });
    }
    group.finish();
}

/// Why the kernel matters: the triple loop and [`matmul`] (our kernel on this CPU's path) on the
/// same 64×64×64 product.
fn naive_vs_matmul(c: &mut Criterion) {
    let n = 64;
    let (a, b) = (random((n, n)), random((n, n)));
    let mut out = aligned::zeros((n, n));
    let mut group = c.benchmark_group("naive_vs_matmul_64");
    group.throughput(Throughput::Elements((2 * n * n * n) as u64));
    group.bench_function("naive", |bch| bch.iter(|| matmul_naive(a.view(), b.view(), out.view_mut())));
    group.bench_function("matmul", |bch| bch.iter(|| matmul(a.view(), b.view(), out.view_mut())));
    group.finish();
}

/// Every product path this CPU has, side by side on one thread (`kernel::Path`: our AVX-512 and
/// AVX2 kernels, `matrixmultiply`'s portable one): each layer's forward product `X·Wᵀ` on a
/// shard of the batch (128 rows; the weights copied by rows first in ours, packed in theirs),
/// all seventeen products of a shard's step, and a convolution's group `(392, 288)·(288, 32)`.
/// The same bits on every path.
fn kernel_paths(c: &mut Criterion) {
    let mut group = c.benchmark_group("kernel_paths");
    let paths = || Path::ALL.into_iter().filter(|p| p.supported());
    let rows = SHARD_ROWS;
    for (i, o) in LAYERS {
        let (x, w) = (random((rows, i)), random((o, i)));
        let mut y = aligned::zeros((rows, o));
        group.throughput(Throughput::Elements((2 * rows * i * o) as u64));
        for path in paths() {
            group.bench_function(BenchmarkId::new(path.name(), format!("forward_{rows}x{i}x{o}")), |b| {
                b.iter(|| matmul_finish_on(path, x.view(), w.t(), y.view_mut(), Finish::Plain))
            });
        }
    }
    // A shard's every product of a step, of the shapes `Shard::forward_loss`, `Shard::backward` and
    // the pieces of its `dW_s` multiply (without their finishes: bias, ReLU, ReLU's derivative):
    // per layer the forward `X·Wᵀ`, the weight gradient `δᵀ·X` and (but for the first layer) the
    // input gradient `δ·W`.
    let operands: Vec<_> =
        LAYERS.iter().map(|&(i, o)| (random((rows, i)), random((o, i)), random((rows, o)))).collect();
    let flops: usize =
        LAYERS.iter().enumerate().map(|(l, &(i, o))| 2 * rows * i * o * if l == 0 { 2 } else { 3 }).sum();
    group.throughput(Throughput::Elements(flops as u64));
    for path in paths() {
        let mut outputs: Vec<_> = LAYERS
            .iter()
            .map(|&(i, o)| (aligned::zeros((rows, o)), aligned::zeros((o, i)), aligned::zeros((rows, i))))
            .collect();
        group.bench_function(BenchmarkId::new(path.name(), format!("shard_products_{rows}")), |b| {
            b.iter(|| {
                for (l, ((x, w, delta), (y, dw, dx))) in operands.iter().zip(&mut outputs).enumerate() {
                    matmul_finish_on(path, x.view(), w.t(), y.view_mut(), Finish::Plain);
                    matmul_finish_on(path, delta.t(), x.view(), dw.view_mut(), Finish::Plain);
                    if l > 0 {
                        matmul_finish_on(path, delta.view(), w.view(), dx.view_mut(), Finish::Plain);
                    }
                }
            })
        });
    }
    let (lowered, w) = (random((392, 288)), random((32, 288)));
    let mut y = aligned::zeros((392, 32));
    group.throughput(Throughput::Elements((2 * 392 * 288 * 32) as u64));
    for path in paths() {
        group.bench_function(BenchmarkId::new(path.name(), "conv_group_392x288x32"), |b| {
            b.iter(|| matmul_finish_on(path, lowered.view(), w.t(), y.view_mut(), Finish::Plain))
        });
    }
    group.finish();
}

/// The pool's sgemm rate (all cores) on the largest forward product, beside one thread's; and
/// on the output layer's `δ·W` (256×784 by 784×128), split by rows of the output.
fn sgemm_parallel(c: &mut Criterion) {
    let threads = rayon::current_num_threads();
    let (x, w) = (random((BATCH, 784)), random((128, 784)));
    let mut y = aligned::zeros((BATCH, 128));
    let mut group = c.benchmark_group("sgemm_pool");
    group.throughput(Throughput::Elements((2 * BATCH * 784 * 128) as u64));
    group.bench_function(format!("forward_784x128_{threads}threads"), |b| {
        in_pool(b, || par_matmul(x.view(), w.t(), y.view_mut()))
    });
    let (delta, w_out) = (random((BATCH, 784)), random((784, 128)));
    let mut d = aligned::zeros((BATCH, 128));
    group.bench_function(format!("dX_128x784_rows_{threads}threads"), |b| {
        in_pool(b, || par_matmul(delta.view(), w_out.view(), d.view_mut()))
    });
    group.finish();
}

/// One dense layer 784 → 128, as the training step runs it: a shard's forward with bias and
/// ReLU and its backward, 128 rows on one thread, into the shard's own gradients.
fn dense_layer(c: &mut Criterion) {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let dense = Dense::glorot(784, 128, &mut rng);
    let shard = BATCH / 2;
    let (x, delta, a_prev) = (random((shard, 784)), random((shard, 128)), random((shard, 784)));
    let (mut y, mut dx) = (aligned::zeros((shard, 128)), aligned::zeros((shard, 784)));
    let (mut dw, mut db) = (aligned::zeros((128, 784)), vec![0.0; 128]);
    let mut group = c.benchmark_group("dense_784x128");
    group.throughput(Throughput::Elements((3 * 2 * shard * 784 * 128) as u64));
    group.bench_function("forward_backward_shard_128_1thread", |b| {
        b.iter(|| {
            let relu = dae::engine::activation::Activation::Relu;
            dense.forward_shard(x.view(), y.view_mut(), Some(relu));
            weight_gradient(delta.view(), a_prev.view(), dw.view_mut(), &Piece::Rows(0..128));
            dense.backward_shard(a_prev.view(), delta.view(), &mut db, Some((relu, dx.view_mut())));
        })
    });
    group.finish();
}

/// One thread's rate on the work outside the products, in elements a second: Adam's update of
/// the first layer's 100,352 weights (in cache, as the fused update finds the gradient); the
/// same late in a run with a third of them silent (gradient 0, `m` between 1.2e-38 and 1.2e-33,
/// where `α·m` can be subnormal, as a dead unit's moments are; each iteration from the same
/// moments), the BCE loss with its gradient on a batch's 256×784 logits, and the Gaussian corruption of 256
/// images; and the copy of a weight matrix into `Wᵀ`.
fn elementwise(c: &mut Criterion) {
    let mut group = c.benchmark_group("elementwise_1thread");
    let n = 784 * 128;
    let mut adam = Adam::new(1e-3, [n]);
    let (mut w, g) = (random((1, n)), aligned::copy_of(&random((1, n)).mapv(|g| g - 0.5)));
    let step = adam.next_step();
    let Moments { m, v } = adam.moments().next().expect("one tensor");
    group.throughput(Throughput::Elements(n as u64));
    group.bench_function("adam_100352", |b| {
        b.iter(|| step.update(w.as_slice_mut().unwrap(), g.as_slice().unwrap(), m, v))
    });
    // Late in a run (t = 1000): a silent weight's `m` between 1.2e-38 and 1.2e-33, its `v` 1e-8.
    let late_step = Adam { t: 999, ..Adam::new(1e-3, []) }.next_step();
    let silent = |i: usize| i.is_multiple_of(3);
    // Each on a cache line's start, as the engine's are.
    let on_line = |x: Vec<f32>| {
        let mut line = aligned::vector(x.len());
        line.assign(&Array1::from(x));
        line
    };
    let g_silent = on_line(g.iter().enumerate().map(|(i, &g)| if silent(i) { 0.0 } else { g }).collect());
    let v_silent: Vec<f32> = v.iter().enumerate().map(|(i, &v)| if silent(i) { 1e-8 } else { v }).collect();
    let m_silent: Vec<f32> = m
        .iter()
        .enumerate()
        .map(|(i, &m)| if silent(i) { 1.2e-38 * 1e5f32.powf((i as f32 * 0.618).fract()) } else { m })
        .collect();
    group.bench_function("adam_100352_third_silent", |b| {
        b.iter_batched_ref(
            || (on_line(m_silent.clone()), on_line(v_silent.clone())),
            |(m, v)| {
                let (m, v) = (m.as_slice_mut().unwrap(), v.as_slice_mut().unwrap());
                late_step.update(w.as_slice_mut().unwrap(), g_silent.as_slice().unwrap(), m, v)
            },
            BatchSize::LargeInput,
        )
    });
    let (z, y) = (aligned::copy_of(&random((BATCH, 784)).mapv(|z| 20.0 * z - 10.0)), random((BATCH, 784)));
    let mut dz = aligned::zeros((BATCH, 784));
    group.throughput(Throughput::Elements((BATCH * 784) as u64));
    group.bench_function("bce_256x784", |b| {
        b.iter(|| {
            let rows = z.rows().into_iter().zip(y.rows()).zip(dz.rows_mut());
            rows.map(|((z, y), mut dz)| {
                let (z, y) = (z.as_slice().unwrap(), y.as_slice().unwrap());
                Loss::Bce.forward_backward(z, y, 1.0 / (BATCH * 784) as f32, dz.as_slice_mut().unwrap())
            })
            .sum::<f32>()
        })
    });
    // The first layer's `Wᵀ` (784, 128), copied by rows for a shard's forward product through
    // the transpose of the program's path (`DAE_KERNEL`).
    let (w1, mut w1_t) = (random((128, 784)), aligned::zeros((784, 128)));
    group.throughput(Throughput::Elements((128 * 784) as u64));
    group.bench_function("transpose_128x784", |b| b.iter(|| copy_into(w1.t(), w1_t.view_mut())));
    let pixels: Vec<u8> = (0..BATCH * 784).map(|i| (i * 37 % 256) as u8).collect();
    let (mut clean, mut noisy) = (vec![0.0; 784], vec![0.0; 784]);
    group.bench_function("gaussian_noise_256x784", |b| {
        b.iter(|| {
            for (i, image) in pixels.chunks(784).enumerate() {
                let stream = NoiseStream::new(42, Purpose::TrainNoise, 0, i as u32);
                Noise::Gaussian(0.5).corrupt(image, stream, &mut clean, &mut noisy);
            }
        })
    });
    group.finish();
}

/// The two parallel regions of the data-parallel step of the notebook's model on a batch of
/// 256 (`engine::data_parallel`): every shard's forward, loss and backward pass, and the update
/// that adds the shards' gradients and takes Adam's step, each way it can write `W` ([`Write`]):
/// in place with `Wᵀ` beside it, or streamed without, after which each forward product of the
/// passes copies `W`, transposed, first. The rate is in images per second.
fn data_parallel(c: &mut Criterion) {
    let mut model = Model::autoencoder(784, &[128, 64, 32], &mut ChaCha8Rng::seed_from_u64(2));
    let mut adam = Adam::new(1e-3, model.param_sizes());
    let mut shards = Shards::new(&model, BATCH);
    let (input, target) = (random((BATCH, 784)), random((BATCH, 784)));
    let mut group = c.benchmark_group(format!("data_parallel_{}threads", rayon::current_num_threads()));
    group.throughput(Throughput::Elements(BATCH as u64));
    let batch = |rows: Range<usize>, mut x: ArrayViewMut2<f32>, mut y: ArrayViewMut2<f32>| {
        x.assign(&input.slice(s![rows.clone(), ..]));
        y.assign(&target.slice(s![rows, ..]));
    };
    group.bench_function("passes", |b| {
        in_pool(b, || {
            black_box(shards.passes(&model, Loss::Bce, BATCH, batch));
        })
    });
    for (name, write) in [("update_in_place", Write::InPlace), ("update_streamed", Write::Streamed)] {
        shards.fix_write(Some(write));
        group.bench_function(name, |b| {
            in_pool(b, || {
                black_box(shards.update(&mut model, &mut adam, BATCH));
            })
        });
    }
    group.bench_function("passes_copying_w_t", |b| {
        in_pool(b, || {
            black_box(shards.passes(&model, Loss::Bce, BATCH, batch));
        })
    });
    group.finish();
}

/// A whole training step of the notebook's model on a batch of 256: forward, BCE, backward,
/// Adam. The rate is in images per second; one epoch is 60,000 images.
fn training_step(c: &mut Criterion) {
    common::bench_training_step(
        c,
        "train_step",
        Model::autoencoder(784, &[128, 64, 32], &mut ChaCha8Rng::seed_from_u64(2)),
    );
}

criterion_group! {
    name = benches;
    config = common::config(2, 100);
    targets = sgemm_shapes, naive_vs_matmul, kernel_paths, sgemm_parallel, dense_layer, elementwise, data_parallel, training_step
}
criterion_main!(benches);
