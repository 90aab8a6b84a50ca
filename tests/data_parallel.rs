//! The data-parallel step's pieces: the team of threads that runs it, and the shards' passes held
//! to the model's own (the whole step is held to the reference engine in `tests/reference.rs`,
//! and to itself on 1, 2 and 3 threads in `tests/training.rs`).

mod common;

use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use common::random;
use dae::engine::adam::Adam;
use dae::engine::data_parallel::{MIN_SHARD_ROWS, PIECE, SHARD_ROWS, Shards, pieces, shard_rows};
use dae::engine::dense::{Dense, Piece, Write, weight_gradient};
use dae::engine::gemm::matmul;
use dae::engine::loss::Loss;
use dae::engine::model::{Model, Workspace};
use dae::engine::team::Team;
use ndarray::{Array1, Array2, ArrayViewMut2, s};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// A batch for [`Shards::passes`] that copies its rows from `input` and `target`.
fn copy_rows<'a>(
    input: &'a Array2<f32>,
    target: &'a Array2<f32>,
) -> impl Fn(std::ops::Range<usize>, ArrayViewMut2<f32>, ArrayViewMut2<f32>) + Sync + 'a {
    move |r, mut x, mut y| {
        x.assign(&input.slice(s![r.clone(), ..]));
        y.assign(&target.slice(s![r, ..]));
    }
}

/// Every member runs each job once, for teams of 1 to 4 (more members than a 2-core machine has
/// cores, too); the same team serves many rounds.
#[test]
fn a_team_runs_each_job_once_on_every_member() {
    for size in 1..=4 {
        let mut team = Team::new(size);
        assert_eq!(team.size(), size);
        for _ in 0..100 {
            let runs: Vec<AtomicUsize> = (0..size).map(|_| AtomicUsize::new(0)).collect();
            team.run(&|m| {
                runs[m].fetch_add(1, Relaxed);
            });
            assert!(runs.iter().all(|r| r.load(Relaxed) == 1), "team of {size}: {runs:?}");
        }
    }
}

/// A member that panics does not hang the team: the panic reaches the caller once every member
/// is done, and the team serves the next round; a panic in the caller's own part and a member's
/// at once is raised once, and leaves nothing for the next round.
#[test]
fn a_panic_in_a_member_reaches_the_caller() {
    let mut team = Team::new(2);
    let last = team.size() - 1;
    for failing in [vec![last], vec![0, last]] {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            team.run(&|member| assert!(!failing.contains(&member), "member {member} fails"));
        }));
        assert!(outcome.is_err(), "the panic of {failing:?} was raised in the caller");
    }
    let ran = AtomicUsize::new(0);
    team.run(&|_| {
        ran.fetch_add(1, Relaxed);
    });
    assert_eq!(ran.into_inner(), team.size());
}

/// A member whose panic's payload panics again when dropped still counts itself done: the
/// caller gets a panic, not a wait for ever.
#[test]
fn a_payload_that_panics_when_dropped_hangs_no_team() {
    struct Bomb;
    impl Drop for Bomb {
        fn drop(&mut self) {
            panic!("the payload's drop panics too");
        }
    }
    let (done, finished) = std::sync::mpsc::channel();
    // On a thread of its own, so that a hang fails the test rather than stalling it.
    std::thread::spawn(move || {
        let mut team = Team::new(2);
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            team.run(&|member| {
                if member == 1 {
                    std::panic::panic_any(Bomb);
                }
            })
        }));
        done.send(outcome.is_err()).unwrap();
    });
    let raised = finished.recv_timeout(std::time::Duration::from_secs(60));
    assert_eq!(raised, Ok(true), "the team hung, or raised no panic");
}

/// Shards made for one model refuse the passes and the update of another with the same shapes
/// of layers but fewer of them (their pieces would be taken as another layer's, by two members
/// at once), and a layer whose `b` and `db` are shorter than its rows (the update would step
/// past their ends).
#[test]
fn shards_refuse_a_model_they_were_not_made_for() {
    let rng = &mut ChaCha8Rng::seed_from_u64(4);
    let (deep, shallow) = (Model::autoencoder(8, &[8, 8], rng), Model::autoencoder(8, &[8], rng));
    let (input, target) = (random((32, 8), 0.0, 1.0, 1), random((32, 8), 0.0, 1.0, 2));
    let mut shards = Shards::new(&deep, 32);
    let mut adam = Adam::new(1e-3, deep.param_sizes());
    for mut model in [shallow, deep.clone()] {
        let passes = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            shards.passes(&model, Loss::Bce, 32, copy_rows(&input, &target))
        }));
        let update = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            shards.update(&mut model, &mut adam, 32);
        }));
        let wrong = model.widths() != deep.widths();
        assert_eq!((passes.is_err(), update.is_err()), (wrong, wrong), "widths {:?}", model.widths());
    }
    let mut short = Model::autoencoder(4, &[64], rng);
    for layer in &mut short.layers {
        let dense = layer.as_dense_mut().unwrap();
        (dense.b, dense.db) = (Array1::zeros(1), Array1::zeros(1));
    }
    let mut shards = Shards::new(&short, 16);
    let mut adam = Adam::new(1e-3, short.param_sizes());
    let update = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        shards.update(&mut short, &mut adam, 16);
    }));
    assert!(update.is_err(), "an update with b and db of 1 number for 64 rows");
}

/// The shards' forward pass and loss are the model's, to the bit: the same products row by row,
/// the same per-row losses added in the same order; on a batch of three shards, the last short.
#[test]
fn the_shards_forward_pass_is_the_models_to_the_bit() {
    let model = Model::autoencoder(48, &[20, 12, 6], &mut ChaCha8Rng::seed_from_u64(5));
    let rows = 2 * SHARD_ROWS + 44;
    let (input, target) = (random((rows, 48), 0.0, 1.0, 1), random((rows, 48), 0.0, 1.0, 2));
    let mut ws = Workspace::new(&model, rows);
    let expected = model.forward_loss(input.view(), Loss::Bce, target.view(), &mut ws);
    let mut shards = Shards::new(&model, rows);
    let copy = copy_rows(&input, &target);
    let loss = shards.forward_loss(&model, Loss::Bce, rows, copy);
    assert_eq!(loss.to_bits(), expected.to_bits(), "loss {loss} against {expected}");
    let mut first = 0;
    for (outputs, n) in shards.outputs(rows) {
        // Every layer, the last as logits in both.
        for (l, output) in outputs.iter().enumerate() {
            let whole = ws.outputs[l].slice(s![first..first + n, ..]);
            assert_eq!(output.slice(s![..n, ..]), whole, "layer {l}, rows {first}..{}", first + n);
        }
        first += n;
    }
    assert_eq!(first, rows, "every row in a shard");
}

/// `dW = δᵀ·A` made in pieces ([`pieces`]), of rows or of columns, is the whole product to the
/// bit: each number is summed over the same rows in the same order.
#[test]
fn a_weight_gradient_in_pieces_is_the_whole_product_to_the_bit() {
    for (outputs, inputs) in [(200, 64), (64, 200), (97, 97)] {
        let (delta, a) = (random((37, outputs), -1.0, 1.0, 1), random((37, inputs), -1.0, 1.0, 2));
        let mut whole = Array2::zeros((outputs, inputs));
        matmul(delta.t(), a.view(), whole.view_mut());
        let mut pieced = Array2::from_elem((outputs, inputs), f32::NAN);
        let all: Vec<Piece> = pieces(outputs, inputs).collect();
        assert!(all.len() > 1, "({outputs}, {inputs}) makes several pieces");
        for piece in &all {
            let dw = match piece {
                Piece::Rows(r) => pieced.slice_mut(s![r.clone(), ..]),
                Piece::Columns(c) => pieced.slice_mut(s![.., c.clone()]),
            };
            weight_gradient(delta.view(), a.view(), dw, piece);
        }
        assert_eq!(pieced.mapv(f32::to_bits), whole.mapv(f32::to_bits), "({outputs}, {inputs})");
    }
}

/// The shards' backward pass and the update's sum of their gradients are the model's backward
/// pass, to the bit, on a batch of one shard (`dW_s = δᵀ·A` over the same rows, by the same
/// product, here in pieces of rows and of columns); on a batch of three, the shards'
/// `Σ_s δ_sᵀ·A_s` differs from `δᵀ·A` by rounding alone. Adam's step at a learning rate of 0
/// leaves the weights as they were. On 1, 2 and 3 threads: a member with no shard of its own
/// takes pieces of the others'.
#[test]
fn the_shards_gradients_are_the_models() {
    // Layers of more than `PIECE` inputs or outputs, made in several pieces.
    let model = Model::autoencoder(200, &[100, 12, 6], &mut ChaCha8Rng::seed_from_u64(6));
    assert!(model.widths().iter().any(|&w| w > PIECE));
    for (rows, threads) in [(MIN_SHARD_ROWS - 3, 1), (MIN_SHARD_ROWS - 3, 2), (2 * SHARD_ROWS + 44, 3)] {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        let (input, target) = (random((rows, 200), 0.0, 1.0, 3), random((rows, 200), 0.0, 1.0, 4));
        let mut expected = model.clone();
        let mut ws = Workspace::new(&expected, rows);
        expected.forward_loss(input.view(), Loss::Bce, target.view(), &mut ws);
        expected.backward(input.view(), &mut ws, None);

        let mut sharded = model.clone();
        // Room for whole shards: the last one's rows past the batch hold an earlier batch's
        // numbers, which its pieces must not read.
        let capacity = rows.div_ceil(shard_rows(rows)) * shard_rows(rows);
        let mut shards = pool.install(|| Shards::new(&sharded, capacity));
        assert_eq!(shards.threads(), threads, "a team of every thread, on any number of cores");
        let earlier = random((capacity, 200), 0.0, 1.0, 5);
        let copy_earlier = copy_rows(&earlier, &earlier);
        shards.passes(&sharded, Loss::Bce, capacity, copy_earlier);
        let copy = copy_rows(&input, &target);
        shards.passes(&sharded, Loss::Bce, rows, copy);
        let mut adam = Adam::new(0.0, sharded.param_sizes());
        shards.update(&mut sharded, &mut adam, rows);

        for (l, (got, want)) in sharded.layers.iter().zip(&expected.layers).enumerate() {
            let (got, want) = (got.as_dense().unwrap(), want.as_dense().unwrap());
            assert_eq!(got.w(), model.layers[l].as_dense().unwrap().w(), "layer {l}: W unchanged at lr 0");
            assert!(want.dw.iter().any(|&g| g != 0.0), "layer {l}: gradients that prove something");
            if shard_rows(rows) == rows {
                assert_eq!(
                    (&got.dw, &got.db),
                    (&want.dw, &want.db),
                    "layer {l}, one shard, {threads} threads"
                );
            } else {
                let scale = want.dw.iter().fold(0.0f32, |m, g| m.max(g.abs()));
                let worst = got.dw.iter().zip(&want.dw).fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
                assert!(worst <= 1e-5 * scale, "layer {l}, three shards: dW off by {worst} of {scale}");
                let worst = got.db.iter().zip(&want.db).fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
                assert!(worst <= 1e-5 * scale.max(1e-3), "layer {l}, three shards: db off by {worst}");
            }
        }
    }
}

/// A shard whose batch panics hangs no member, though the others wait for its `δ`s to take
/// pieces of its `dW_s`, and for those of the shards its member never reached (four shards on
/// two threads): the panic reaches the caller, and the shards serve the next batch.
#[test]
fn a_panic_in_a_shard_reaches_the_caller_of_the_passes() {
    let (done, finished) = std::sync::mpsc::channel();
    // On a thread of its own, so that a hang fails the test rather than stalling it.
    std::thread::spawn(move || {
        let model = Model::autoencoder(48, &[20, 12, 6], &mut ChaCha8Rng::seed_from_u64(8));
        let rows = 4 * SHARD_ROWS;
        let (input, target) = (random((rows, 48), 0.0, 1.0, 5), random((rows, 48), 0.0, 1.0, 6));
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
        let mut shards = pool.install(|| Shards::new(&model, rows));
        let copy = copy_rows(&input, &target);
        for failing in [0, SHARD_ROWS] {
            let failing_copy = |r: std::ops::Range<usize>, x: ArrayViewMut2<f32>, y: ArrayViewMut2<f32>| {
                assert_ne!(r.start, failing, "the batch of rows {r:?} fails");
                copy(r, x, y);
            };
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                shards.passes(&model, Loss::Bce, rows, failing_copy);
            }));
            assert!(outcome.is_err(), "the panic of the shard at row {failing} was raised");
        }
        let loss = shards.passes(&model, Loss::Bce, rows, copy);
        let mut ws = Workspace::new(&model, rows);
        assert_eq!(loss, model.forward_loss(input.view(), Loss::Bce, target.view(), &mut ws));
        done.send(()).unwrap();
    });
    let waited = finished.recv_timeout(std::time::Duration::from_secs(60));
    assert!(waited.is_ok(), "the passes hung, or failed: {waited:?}");
}

/// Adam's step writes the same bits into `W` in place and streamed ([`Write`]), over several
/// blocks of rows that start anywhere in a cache line (301 inputs a row), and leaves the rows
/// outside its part alone; the next forward pass, which reads the layer's `Wᵀ` written beside `W`
/// in place (and `W` itself after a streamed step), is a new layer's with those weights.
/// (`tests/training.rs` holds whole runs on 1, 2 and 3 threads to one model file, but a machine
/// of one core runs none of them streamed.)
#[test]
fn a_streamed_update_writes_the_same_bits_as_one_in_place() {
    let (outputs, inputs) = (128, 301);
    let w0 = random((outputs, inputs), -1.0, 1.0, 1);
    let x = random((5, inputs), -1.0, 1.0, 2);
    let run = |write: Write| {
        let mut dense = Dense::from_parts(w0.clone(), Array1::zeros(outputs));
        let mut adam = Adam::new(1e-2, [outputs * inputs, outputs]);
        for t in 0..3 {
            dense.dw.assign(&random((outputs, inputs), -1.0, 1.0, 10 + t));
            dense.db.assign(&random((1, outputs), -1.0, 1.0, 20 + t).row(0));
            let step = adam.next_step();
            let mut moments = adam.moments();
            let update = dense.update_parts([moments.next().unwrap(), moments.next().unwrap()], write);
            // SAFETY: nothing else uses the layer or its moments while `rows` runs.
            unsafe { update.sum_and_step(3..120, 1, |_| unreachable!("one shard"), step) };
            let (mut y, mut expected) = (Array2::zeros((5, outputs)), Array2::zeros((5, outputs)));
            dense.forward_shard(x.view(), y.view_mut(), None);
            let fresh = Dense::from_parts(dense.w().to_owned(), dense.b.clone());
            fresh.forward_shard(x.view(), expected.view_mut(), None);
            assert_eq!(y, expected, "{write:?}, step {t}: the forward reads the new weights");
        }
        (dense.w().to_owned(), dense.b.clone(), adam.m.clone(), adam.v.clone())
    };
    let (in_place, streamed) = (run(Write::InPlace), run(Write::Streamed));
    assert!(in_place == streamed, "the same weights, biases and moments");
    let w = &in_place.0;
    assert_eq!(
        (w.slice(s![..3, ..]), w.slice(s![120.., ..])),
        (w0.slice(s![..3, ..]), w0.slice(s![120.., ..]))
    );
    assert!(
        (3..120).all(|r| w.row(r).iter().zip(w0.row(r)).all(|(a, b)| a != b)),
        "every weight of the part moved"
    );
}

/// Whichever way the update writes `W` (in place with `Wᵀ` beside it, or streamed without), a
/// few steps of the shards on two threads end in the same model, to the bit; and the way chosen
/// by the cores' distance, as the training step runs, does too.
#[test]
fn the_shards_train_to_the_same_bits_however_w_is_written() {
    // Layers of 16 outputs and more, which the update splits between the two threads.
    let model = Model::autoencoder(64, &[48, 32, 6], &mut ChaCha8Rng::seed_from_u64(7));
    let rows = 2 * SHARD_ROWS + 44;
    let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
    let train = |write: &(dyn Fn(u64) -> Option<Write> + Sync)| {
        pool.install(|| {
            let mut model = model.clone();
            let mut shards = Shards::new(&model, rows);
            let mut adam = Adam::new(1e-2, model.param_sizes());
            for step in 0..5 {
                shards.fix_write(write(step));
                let (input, target) =
                    (random((rows, 64), 0.0, 1.0, 10 + step), random((rows, 64), 0.0, 1.0, 20 + step));
                let copy = copy_rows(&input, &target);
                shards.passes(&model, Loss::Bce, rows, copy);
                shards.update(&mut model, &mut adam, rows);
            }
            model
        })
    };
    let in_place = train(&|_| Some(Write::InPlace));
    assert!(in_place != model, "weights that moved");
    assert!(train(&|_| Some(Write::Streamed)) == in_place, "streamed");
    assert!(train(&|_| None) == in_place, "as the cores' distance chooses");
    // In place after streamed steps, whose `Wᵀ` the forward must not read.
    let turns = |step| Some(if step % 3 == 1 { Write::InPlace } else { Write::Streamed });
    assert!(train(&turns) == in_place, "by turns");
}

/// A team of two measures a cache line's round trip between its threads (a probe that never
/// returns would hang here); a team of one has none to measure.
#[test]
fn a_team_measures_the_round_trip_between_its_cores() {
    assert_eq!(Team::new(1).round_trip(15), None);
    let mut team = Team::new(2);
    if team.size() == 2 {
        let trip = team.round_trip(15).expect("two members");
        assert!(trip > std::time::Duration::ZERO && trip < std::time::Duration::from_millis(100), "{trip:?}");
    }
}

/// A team counts the time its members wait for one another: a member that finishes 20 ms before
/// the other has waited about 20 ms, members that work as long wait little, and one that works
/// alone never waits.
#[test]
fn a_team_counts_the_time_its_members_wait_for_one_another() {
    use std::time::Duration;
    let mut alone = Team::new(1);
    alone.run(&|_| std::thread::sleep(Duration::from_millis(5)));
    assert_eq!(alone.waited(), Duration::ZERO);
    let mut team = Team::new(2);
    if team.size() == 2 {
        let start = std::time::Instant::now();
        team.run(&|member| std::thread::sleep(Duration::from_millis(if member == 1 { 20 } else { 0 })));
        let (waited, run) = (team.waited(), start.elapsed());
        assert!(waited >= Duration::from_millis(19) && waited <= 2 * run, "{waited:?} of a run of {run:?}");
        // Both at work for 10 ms: the 20 ms of work are not waiting, however late a member starts.
        let start = std::time::Instant::now();
        team.run(&|_| std::thread::sleep(Duration::from_millis(10)));
        let (more, run) = (team.waited() - waited, start.elapsed());
        assert!(more + Duration::from_millis(15) < 2 * run, "{more:?} of a run of {run:?}");
    }
}
