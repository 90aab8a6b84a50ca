//! The training loop allocates nothing once it runs: every buffer is made in `Trainer::new`.
//!
//! A counting global allocator watches whole epochs after the first. Rayon's own bookkeeping
//! between its two workers allocates now and then (8 epochs in 100 measured; none with one
//! worker), which no code of ours can prevent; an allocation in the training loop would come
//! back every epoch. So of three epochs after the first, the one with the fewest allocations
//! must have none. On our kernels' paths every
//! product goes through our own kernel, which allocates nothing (a thread's copy of a transposed
//! right operand, a dense layer's `Wᵀ` or a convolution's kernel, is reused once it has grown);
//! without, through `matrixmultiply`, which takes a packing
//! buffer from the heap on every call (its API offers no way to pass one in), recognisable by its
//! SIMD alignment of 16 bytes or more, which no buffer of ours asks for.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use dae::data::mnist::Mnist;
use dae::engine::kernel;
use dae::train::{Arch, Config, Trainer};

struct Counting;

static OURS: AtomicUsize = AtomicUsize::new(0);
static PACKING: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.align() >= 16 { &PACKING } else { &OURS }.fetch_add(1, Relaxed);
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        OURS.fetch_add(1, Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// The counters are global: the tests take turns, from before they make their data, so that
/// one test's setup is never counted in the other's epoch.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Trains `config` on the data `make_data` makes for an epoch on two threads, then counts the
/// allocations of each of three more epochs: (ours, the kernel's packing buffers) of the epoch
/// with the fewest.
fn steady_epoch_allocations(config: Config, make_data: impl FnOnce() -> Mnist) -> (usize, usize) {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let data = make_data();
    // One pool for both tests: a pool of their own, dropped, would end its threads while the
    // next test counts, and a thread's exit allocates (about one run in fifteen caught one).
    static POOL: OnceLock<rayon::ThreadPool> = OnceLock::new();
    let pool = POOL.get_or_init(|| rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap());
    pool.install(|| {
        let mut trainer = Trainer::new(config, &data);
        trainer.train_epoch(|_, _| {}).unwrap();
        let counts = (0..3).map(|_| {
            let (ours, packing) = (OURS.load(Relaxed), PACKING.load(Relaxed));
            trainer.train_epoch(|_, _| {}).unwrap();
            (OURS.load(Relaxed) - ours, PACKING.load(Relaxed) - packing)
        });
        counts.min().expect("three epochs")
    })
}

#[test]
fn an_epoch_after_the_first_allocates_nothing_but_matrixmultiplys_packing_buffers() {
    let config = Config { batch_size: 64, hidden: vec![32, 16, 8], ..Config::default() };
    let (ours, packing) = steady_epoch_allocations(config, || common::bars_dataset(640, 200));
    println!("steady epoch: {ours} allocations of ours, {packing} packing buffers");
    assert_eq!(ours, 0, "allocations in the steady-state training loop");
    if kernel::path() != kernel::Path::Portable {
        assert_eq!(packing, 0, "every product through our kernel");
    } else {
        // One buffer per `sgemm` call. An epoch has 10 steps of two shards (32 rows each), each
        // shard 17 products (6 forward, 6 dW, 5 dX), and 4 validation batches: three of 64 rows
        // in two shards and one of 8 rows in one, 6 products a shard.
        assert_eq!(packing, 10 * 2 * 17 + (3 * 2 + 1) * 6);
    }
}

#[test]
fn a_conv_epoch_after_the_first_allocates_nothing_but_matrixmultiplys_packing_buffers() {
    let config = Config { batch_size: 64, arch: Arch::Conv, ..Config::default() };
    let (ours, packing) = steady_epoch_allocations(config, || common::bars_dataset_of_side(300, 12, 100));
    println!("steady conv epoch: {ours} allocations of ours, {packing} packing buffers");
    assert_eq!(ours, 0, "allocations in the steady-state training loop");
    assert_eq!(
        packing == 0,
        kernel::path() != kernel::Path::Portable,
        "the lowered layers multiply through `sgemm` only without AVX-512 or AVX2"
    );
}
