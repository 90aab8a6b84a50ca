//! The convolutional model's hot path: each layer's forward and backward at batch 256 on the
//! whole pool, and one training step. Throughput is in FLOP/s of the layer's matrix products
//! (criterion prints it as "elem/s"); the step's in images per second.
//!
//! `cargo bench --bench conv`; `cargo bench --bench conv -- forward` for the forward passes only.

mod common;

use common::{in_pool, random};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use dae::engine::activation::Activation;
use dae::engine::aligned;
use dae::engine::model::{Model, Workspace};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

const BATCH: usize = 256;

/// Every layer of the model with parameters (and the pools), forward and backward (the weight
/// gradient and, but for the first layer, the input gradient through a ReLU).
fn layers(c: &mut Criterion) {
    let mut model = Model::conv_autoencoder(28, 28, &mut ChaCha8Rng::seed_from_u64(1));
    let ws = Workspace::new(&model, BATCH);
    let mut scratch = ws.scratch;
    for (l, layer) in model.layers.iter_mut().enumerate() {
        let name = format!("conv_layers/{l}_{}_{}to{}", layer.kind(), layer.inputs(), layer.outputs());
        let (x, delta) = (random((BATCH, layer.inputs())), random((BATCH, layer.outputs())));
        let mut y = aligned::zeros((BATCH, layer.outputs()));
        let mut dx = aligned::zeros((BATCH, layer.inputs()));
        let (forward, dw, d_input) = layer.flops();
        let mut group = c.benchmark_group(&name);
        group.throughput(Throughput::Elements((BATCH * forward) as u64));
        group.bench_function("forward", |b| {
            in_pool(b, || layer.forward(x.view(), y.view_mut(), Some(Activation::Relu), &scratch.buffers))
        });
        let backward_flops = if l == 0 { dw } else { dw + d_input };
        group.throughput(Throughput::Elements((BATCH * backward_flops) as u64));
        group.bench_function("backward", |b| {
            in_pool(b, || {
                let prev = (l > 0).then(|| (Activation::Relu, x.view(), dx.view_mut()));
                layer.backward(x.view(), delta.view(), prev, &mut scratch, None)
            })
        });
        group.finish();
    }
}

/// A whole training step of the convolutional model on a batch of 256.
fn training_step(c: &mut Criterion) {
    common::bench_training_step(
        c,
        "conv_train_step",
        Model::conv_autoencoder(28, 28, &mut ChaCha8Rng::seed_from_u64(2)),
    );
}

criterion_group! {
    name = benches;
    config = common::config(3, 10);
    targets = layers, training_step
}
criterion_main!(benches);
