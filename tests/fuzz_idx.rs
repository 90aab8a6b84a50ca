//! The IDX reader on mutated files: never a panic, never a hang, never an allocation larger
//! than the input justifies.
//!
//! Inputs start from valid files (plain and gzipped, ranks 0–4) and are mutated the ways files
//! break: flipped bytes, cut short, junk appended, header fields replaced by random or extreme
//! values, gzip streams cut or corrupted. `cargo test` runs 20,000 inputs; the million-input run
//! is `cargo test --release --test fuzz_idx -- --ignored` (CI runs it).

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{Cursor, Read};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::Instant;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Records the largest single allocation since the last reset.
struct Largest;

static LARGEST: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards every call to the system allocator unchanged; only records sizes.
unsafe impl GlobalAlloc for Largest {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Relaxed);
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Largest = Largest;

/// The decompressor's and buffered reader's own state, whatever the input: zlib's window and
/// tables plus two 8 KiB buffers, rounded up.
const FIXED_OVERHEAD: usize = 128 * 1024;

/// A valid IDX file of random rank and dimensions, plain or gzipped.
fn valid(rng: &mut ChaCha8Rng) -> Vec<u8> {
    let rank = rng.random_range(0..=4);
    let dims: Vec<u32> = (0..rank).map(|_| rng.random_range(0..=9)).collect();
    let n = dims.iter().product::<u32>() as usize;
    let body: Vec<u8> = (0..n).map(|_| rng.random()).collect();
    let mut bytes = vec![0, 0, 0x08, rank as u8];
    dims.iter().for_each(|d| bytes.extend(d.to_be_bytes()));
    bytes.extend(body);
    if rng.random() { common::gzip(&bytes) } else { bytes }
}

/// One of the ways a file breaks, applied to `bytes`.
fn mutate(bytes: &mut Vec<u8>, rng: &mut ChaCha8Rng) {
    match rng.random_range(0..7) {
        0 => {
            for _ in 0..rng.random_range(1..=4) {
                if !bytes.is_empty() {
                    let i = rng.random_range(0..bytes.len());
                    bytes[i] ^= 1 << rng.random_range(0..8);
                }
            }
        }
        1 => bytes.truncate(rng.random_range(0..=bytes.len())),
        2 => bytes.extend((0..rng.random_range(1..64)).map(|_| rng.random::<u8>())),
        3 if bytes.len() >= 8 => {
            // A header dimension replaced by a random or extreme value.
            let at = 4 + 4 * rng.random_range(0..(bytes.len() - 4) / 4).min(3);
            let value: u32 = if rng.random() { rng.random() } else { u32::MAX - rng.random_range(0..3) };
            bytes[at..at + 4].copy_from_slice(&value.to_be_bytes());
        }
        4 if bytes.len() >= 4 => bytes[rng.random_range(2..4)] = rng.random(),
        5 => *bytes = common::gzip(bytes),
        _ => *bytes = (0..rng.random_range(0..32)).map(|_| rng.random()).collect(),
    }
}

/// The length of `bytes` as the reader sees it: gunzipped if it is gzip, capped at 64 MiB.
fn content_len(bytes: &[u8]) -> usize {
    if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        let _ = flate2::read::MultiGzDecoder::new(bytes).take(64 << 20).read_to_end(&mut out);
        out.len().max(bytes.len())
    } else {
        bytes.len()
    }
}

fn fuzz(inputs: usize, seed: u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let start = Instant::now();
    let (mut ok, mut worst_ratio) = (0, 0.0f64);
    for i in 0..inputs {
        let mut bytes = valid(&mut rng);
        for _ in 0..rng.random_range(0..=3) {
            mutate(&mut bytes, &mut rng);
        }
        LARGEST.store(0, Relaxed);
        let result = dae::data::idx::read_from(Cursor::new(&bytes));
        let largest = LARGEST.load(Relaxed);
        let justified = 2 * content_len(&bytes) + FIXED_OVERHEAD;
        assert!(largest <= justified, "input {i}: allocated {largest} bytes for {bytes:02x?}");
        worst_ratio = worst_ratio.max(largest as f64 / justified as f64);
        ok += usize::from(result.is_ok());
    }
    let seconds = start.elapsed().as_secs_f64();
    println!(
        "{inputs} inputs in {seconds:.1} s: {ok} read, {} rejected; largest allocation {:.0}% of the bound",
        inputs - ok,
        100.0 * worst_ratio
    );
    assert!(ok > inputs / 20 && ok < inputs, "the mutations should leave some files valid and break most");
}

#[test]
fn twenty_thousand_mutated_files() {
    fuzz(20_000, 1);
}

#[test]
#[ignore = "a million inputs: cargo test --release --test fuzz_idx -- --ignored"]
fn a_million_mutated_files() {
    fuzz(1_000_000, 2);
}
