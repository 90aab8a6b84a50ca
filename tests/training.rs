//! Training end to end on generated data: the loss falls, a seed fixes every number, and the
//! thread count changes none.

mod common;

use dae::data::mnist::Mnist;
use dae::train::{Config, Trainer};

fn tiny_config() -> Config {
    Config { epochs: 3, batch_size: 16, lr: 3e-3, seed: 7, hidden: vec![16, 8, 4], ..Config::default() }
}

/// Trains `config.epochs` epochs and returns each epoch's `(train_loss, val_loss)`.
fn losses<'a>(config: &Config, data: &'a Mnist) -> (Vec<(f64, f64)>, Trainer<'a>) {
    let mut trainer = Trainer::new(config.clone(), data);
    let history = (0..config.epochs)
        .map(|_| {
            let s = trainer.train_epoch(|_, _| {}).expect("finite loss");
            (s.train_loss, s.val_loss)
        })
        .collect();
    (history, trainer)
}

#[test]
fn loss_falls_on_generated_data() {
    let data = common::bars_dataset(512, 128);
    let config = Config { epochs: 30, ..tiny_config() };
    let (history, _) = losses(&config, &data);
    let (first, last) = (history[0], history[history.len() - 1]);
    println!("{history:?}");
    assert!(last.0 < 0.5 * first.0, "training loss {first:?} → {last:?}");
    assert!(last.1 < 0.75 * first.1, "validation loss {first:?} → {last:?}");
    let falls = history.windows(2).filter(|w| w[1].1 < w[0].1).count();
    assert!(falls >= 20, "validation loss fell in only {falls} of 29 epochs");
}

/// The first three epochs of a tiny problem, as literals: any change to initialisation,
/// shuffling, corruption or arithmetic shows here. (The last digits may move on a CPU whose
/// matrix kernel sums in another order, hence the tolerance.)
#[test]
fn fixed_seed_trajectory() {
    let data = common::bars_dataset(256, 64);
    let (history, _) = losses(&tiny_config(), &data);
    let expected = [
        (0.6497634188272059, 0.5600264919921756),
        (0.4784244707552716, 0.4235496250912547),
        (0.4049876951612532, 0.3936885488219559),
    ];
    println!("{history:?}");
    for (got, want) in history.iter().zip(expected) {
        assert!((got.0 - want.0).abs() < 1e-5 && (got.1 - want.1).abs() < 1e-5, "{history:?}");
    }
}

#[test]
fn same_seed_same_weights_for_any_thread_count() {
    // Batches of 300 and a last one of 200: three shards of the data-parallel step, then two,
    // each with a short last shard. Batches of 48: two shards of 24, and a last batch of 20 in
    // one shard.
    let data = common::bars_dataset(500, 100);
    for batch_size in [300, 48] {
        same_weights_for_any_thread_count(&data, Config { epochs: 2, batch_size, ..tiny_config() });
    }
}

/// Trains `config` on 1, 2 and 3 threads: the same losses and parameters, to the bit.
fn same_weights_for_any_thread_count(data: &dae::data::mnist::Mnist, config: Config) {
    let run = |threads| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| {
            let (history, trainer) = losses(&config, data);
            (history, trainer.model)
        })
    };
    let (history1, model1) = run(1);
    for threads in [2, 3] {
        let (history, model) = run(threads);
        assert_eq!(history, history1, "losses with {threads} threads");
        let bits = |m: &mut dae::engine::model::Model| {
            m.params_and_grads()
                .flat_map(|(p, _)| p.iter().map(|v| v.to_bits()).collect::<Vec<_>>())
                .collect::<Vec<_>>()
        };
        assert_eq!(bits(&mut model.clone()), bits(&mut model1.clone()), "parameters with {threads} threads");
    }
}

#[test]
fn different_seeds_give_different_runs() {
    let data = common::bars_dataset(128, 32);
    let (a, _) = losses(&Config { epochs: 1, ..tiny_config() }, &data);
    let (b, _) = losses(&Config { epochs: 1, seed: 8, ..tiny_config() }, &data);
    assert_ne!(a, b);
}

/// The interrupt flag stops training before the next step, the error says where, and the same
/// trainer, let go on, ends the epoch exactly as one never stopped.
#[test]
fn an_interrupted_epoch_goes_on_exactly_where_it_stopped() {
    use std::sync::atomic::Ordering;
    let data = common::bars_dataset(256, 64);
    let (straight, _) = losses(&Config { epochs: 1, ..tiny_config() }, &data);

    let mut trainer = Trainer::new(Config { epochs: 1, ..tiny_config() }, &data);
    let flag = trainer.interrupt_flag();
    let stop_after_3 = |done: usize, _| {
        if done == 3 {
            flag.store(true, Ordering::Relaxed);
        }
    };
    let err = trainer.train_epoch(stop_after_3).expect_err("interrupted");
    assert_eq!(err.to_string(), "interrupted after step 3 of epoch 1");
    assert_eq!((trainer.progress.epoch, trainer.progress.step), (0, 3));
    flag.store(false, Ordering::Relaxed);
    let stats = trainer.train_epoch(|_, _| {}).unwrap();
    assert_eq!((stats.train_loss, stats.val_loss), straight[0]);

    flag.store(true, Ordering::Relaxed);
    let err = trainer.train_epoch(|_, _| {}).expect_err("interrupted before its first step");
    assert_eq!(err.to_string(), "interrupted after epoch 1");
}

#[test]
fn the_conv_model_gives_the_same_bits_for_any_thread_count() {
    let data = common::bars_dataset_of_side(200, 8, 60);
    let config = Config { epochs: 1, batch_size: 50, arch: dae::train::Arch::Conv, ..tiny_config() };
    let run = |threads| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| losses(&config, &data).1.model)
    };
    let bits = |mut m: dae::engine::model::Model| {
        m.params_and_grads()
            .flat_map(|(p, _)| p.iter().map(|v| v.to_bits()).collect::<Vec<_>>())
            .collect::<Vec<_>>()
    };
    let one = bits(run(1));
    for threads in [2, 3] {
        assert_eq!(bits(run(threads)), one, "conv parameters with {threads} threads");
    }
}

/// A weight that is NaN from the start (a state file edited by hand) hides behind a ReLU, whose
/// `max(NaN, 0)` is 0, and the loss stays finite; the epoch's end finds it, and the epoch is
/// refused, as a diverged loss is, rather than saved.
#[test]
fn a_nan_weight_behind_a_finite_loss_stops_the_epoch() {
    let data = common::bars_dataset(256, 64);
    let mut trainer = Trainer::new(Config { epochs: 1, ..tiny_config() }, &data);
    trainer.model.params_mut().next().expect("W₀")[0] = f32::NAN;
    let err = trainer.train_epoch(|_, _| {}).expect_err("a NaN weight");
    assert_eq!(err.to_string(), "layers.0.weight became NaN or infinite in epoch 1");
}

/// The codes the report written after each epoch draws, made through the step's buffers, are
/// `evaluate::encode`'s (which `dae report` draws) bit for bit, in batches of any size; the
/// reference engine's are the same to rounding.
#[test]
fn the_trainers_codes_are_the_models() {
    let data = common::bars_dataset(64, 40);
    for batch_size in [16, 7] {
        let config = Config { batch_size, ..tiny_config() };
        let mut trainer = Trainer::new(config.clone(), &data);
        trainer.train_epoch(|_, _| {}).unwrap();
        let codes = trainer.codes(usize::MAX);
        let noisy = trainer.test_set().1.to_owned();
        assert_eq!(codes.dim(), (40, 4));
        assert!(codes.iter().any(|&c| c > 0.0), "codes, not zeros");
        assert_eq!(codes, dae::eval::evaluate::encode(&trainer.model, noisy.view()), "batch {batch_size}");
        assert_eq!(trainer.codes(3), codes.slice(ndarray::s![..3, ..]));

        let model = trainer.model.clone();
        let mut reference = Trainer::new(config, &data).with_engine(dae::train::Engine::Reference);
        reference.model = model;
        let difference = (&reference.codes(usize::MAX) - &codes).mapv(f32::abs);
        assert!(difference.iter().all(|&d| d < 1e-5), "the reference engine's codes: {difference}");
    }
}
