//! A team of threads that stays with a training step: the caller and `T − 1` threads of its
//! own, which wait for the next job by spinning on the CPU rather than yielding it.
//!
//! Why not rayon's pool for the step: a rayon worker that runs out of work calls
//! `sched_yield` a few dozen times before it sleeps, and a yield hands its core to whatever else
//! is runnable there, for as long as the scheduler gives it (a tick). Work that arrives in the
//! meantime waits for that thread to come back. On a quiet machine nothing else is runnable; with
//! a low-priority background job on each core (`nice -n 19`, what a laptop's indexer or a
//! browser tab looks like), a step of two parallel regions on rayon took 1.6 times as long
//! (0.67–0.75 s an epoch against 0.41–0.46 s; `docs/performance.md`). A team
//! member between two parts of a step spins (`spin_loop`), which keeps its core; only after
//! [`SPIN`] without work does it sleep, and then the next job wakes it.
//!
//! The work is a job `job(t)` run once by each member `t` (the caller is member 0);
//! [`Team::run`] returns when every member has finished it, so a job may borrow from the
//! caller's stack.
//!
//! Use it for a step's work, which the job splits itself (a step's shards, and the pieces of
//! their gradients that members share out through an atomic counter); rayon's pool stays the
//! right tool for the rest, where its work stealing balances many small tasks.

use std::cell::UnsafeCell;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::*};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long a member spins for work before it sleeps (and a caller or a probe waiting on the
/// members before it yields between looks): longer than the gap between two parts of a step or
/// two steps (tens of microseconds), short enough that a member does not take a core from the
/// rayon pool for long after training pauses (to validate, say).
pub const SPIN: Duration = Duration::from_micros(500);

/// The caller and the threads of a team.
pub struct Team {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
    /// The time its members spent waiting for one another in its runs, summed ([`Team::waited`]).
    waited: Duration,
}

/// A job as the members see it: a borrowed closure with its lifetime erased (see [`Team::run`]).
type Job = *const (dyn Fn(usize) + Sync);

/// What the members share.
struct Shared {
    /// Counts the jobs handed out; a member runs a job when it sees the count change.
    round: AtomicUsize,
    /// The current job, written by the caller before `round` changes.
    job: UnsafeCell<Option<Job>>,
    /// Members other than the caller that have finished the current job.
    done: AtomicUsize,
    /// Whether a member's job panicked.
    panicked: AtomicBool,
    /// Nanoseconds the members other than the caller spent in the current job, summed.
    busy: AtomicU64,
    /// Set when the team is dropped.
    stop: AtomicBool,
    /// Members asleep, and where they sleep.
    sleepers: Mutex<usize>,
    wake: Condvar,
}

// SAFETY: `job` is written only by the caller while no member reads it (before `round` changes,
// after every member has counted itself in `done`), and read by members only in between; the
// closure it points to is `Sync`.
unsafe impl Sync for Shared {}
// SAFETY: as above; the pointer is only dereferenced while `Team::run` keeps the closure alive.
unsafe impl Send for Shared {}

impl Team {
    /// A team of `threads` members (at least one): the caller and `threads − 1` new threads.
    /// Give it no more than the machine has cores, as the command line does: a member that waits
    /// for one without a core spins on its own until [`SPIN`] has passed, and then yields its
    /// core at every look, so the team is correct but slow (the tests use more, for the bits).
    pub fn new(threads: usize) -> Team {
        let shared = Arc::new(Shared {
            round: AtomicUsize::new(0),
            job: UnsafeCell::new(None),
            done: AtomicUsize::new(0),
            panicked: AtomicBool::new(false),
            busy: AtomicU64::new(0),
            stop: AtomicBool::new(false),
            sleepers: Mutex::new(0),
            wake: Condvar::new(),
        });
        let threads = (1..threads.max(1))
            .map(|member| {
                let shared = Arc::clone(&shared);
                std::thread::Builder::new()
                    .name(format!("dae-team-{member}"))
                    .spawn(move || shared.serve(member))
                    .expect("a thread for the team")
            })
            .collect();
        Team { shared, threads, waited: Duration::ZERO }
    }

    /// `T`, the members, the caller included.
    pub fn size(&self) -> usize {
        self.threads.len() + 1
    }

    /// Runs `job(t)` on every member `t` at once, the caller as member 0, and returns when all
    /// have finished; a panic in any member is raised here after all have. `&mut self`: one job
    /// at a time, and never one from inside another.
    pub fn run(&mut self, job: &(dyn Fn(usize) + Sync)) {
        let others = self.threads.len();
        if others == 0 {
            return job(0);
        }
        let shared = &*self.shared;
        let start = Instant::now();
        // SAFETY: the lifetime is erased only for the members, which call the job before they
        // count themselves done; this function does not return before all of them have.
        let erased: Job = unsafe { std::mem::transmute::<&(dyn Fn(usize) + Sync), Job>(job) };
        // SAFETY: no member reads `job` now: all counted the last round done (or there was none).
        unsafe { *shared.job.get() = Some(erased) };
        shared.done.store(0, Relaxed);
        shared.round.fetch_add(1, SeqCst);
        if *shared.sleepers.lock().unwrap_or_else(|e| e.into_inner()) > 0 {
            shared.wake.notify_all();
        }
        let mine = catch_unwind(AssertUnwindSafe(|| job(0)));
        let busy = start.elapsed();
        spin_until(|| shared.done.load(Acquire) >= others);
        // Every member's time from the start to the end of the run, less its time in the job.
        let busy = busy + Duration::from_nanos(shared.busy.swap(0, Relaxed));
        self.waited += (start.elapsed() * self.size() as u32).saturating_sub(busy);
        let theirs = shared.panicked.swap(false, Relaxed);
        if let Err(panic) = mine {
            resume_unwind(panic);
        }
        assert!(!theirs, "a thread of the team panicked");
    }

    /// The time the members spent waiting for one another inside [`Team::run`] since the team was
    /// made, summed over them: for each run, `T` times its length less each member's time in
    /// its job (a member that starts late, or finishes early, waits). Zero for a team of one.
    pub fn waited(&self) -> Duration {
        self.waited
    }

    /// How long a cache line takes to go from the caller to the team's first thread and back:
    /// the median of `trips` trips (ping-pong on one atomic number), which says whether their
    /// cores share a cache (on a Zen 4 VM, ~100 ns) or sit far apart (~500 ns); `None` for a
    /// team of one. A trip at most ~100 ns longer than the line's for the clock's reads.
    pub fn round_trip(&mut self, trips: usize) -> Option<Duration> {
        if self.size() < 2 || trips == 0 {
            return None;
        }
        const MOST: usize = 64;
        let trips = trips.min(MOST);
        let (ball, median) = (AtomicUsize::new(0), AtomicU64::new(0));
        self.run(&|member| match member {
            0 => {
                let mut nanos = [0; MOST];
                for (trip, nanos) in nanos[..trips].iter_mut().enumerate() {
                    let start = Instant::now();
                    ball.store(2 * trip + 1, Release);
                    spin_until(|| ball.load(Acquire) == 2 * trip + 2);
                    *nanos = start.elapsed().as_nanos() as u64;
                }
                let nanos = &mut nanos[..trips];
                nanos.sort_unstable();
                median.store(nanos[trips / 2], Relaxed);
            }
            1 => {
                for trip in 0..trips {
                    spin_until(|| ball.load(Acquire) == 2 * trip + 1);
                    ball.store(2 * trip + 2, Release);
                }
            }
            _ => {}
        });
        Some(Duration::from_nanos(median.into_inner()))
    }
}

/// Waits until `done()`: spinning, and after [`SPIN`] yielding the core at each look, so that a
/// member that lost its core gets it back sooner. The clock is read only once a wait has lasted
/// 64 looks, so a short wait (a probe's round trip) is not lengthened by it.
pub(crate) fn spin_until(done: impl Fn() -> bool) {
    let mut since = None;
    loop {
        for _ in 0..64 {
            if done() {
                return;
            }
            std::hint::spin_loop();
        }
        if since.get_or_insert_with(Instant::now).elapsed() > SPIN {
            std::thread::yield_now();
        }
    }
}

/// A slice's first element, for members that reach its elements as their job says: each element
/// changed by one member at a time, or read by any.
pub(crate) struct SharedSlice<T>(*mut T);

impl<T> SharedSlice<T> {
    /// The slice's first element; its borrow ends here, so the caller keeps `items` borrowed
    /// for as long as the members reach them through it.
    pub(crate) fn new(items: &mut [T]) -> SharedSlice<T> {
        SharedSlice(items.as_mut_ptr())
    }

    /// The address of element `i`.
    pub(crate) fn at(&self, i: usize) -> *mut T {
        self.0.wrapping_add(i)
    }
}

// SAFETY: an element is changed by one member at a time (`T: Send`) or read by several (`T: Sync`),
// as its users' jobs ensure.
unsafe impl<T: Send + Sync> Sync for SharedSlice<T> {}

impl Shared {
    /// A member's life: wait for a round, run its job, count itself done; until the team stops.
    fn serve(&self, member: usize) {
        let mut seen = 0;
        loop {
            seen = self.next_round(seen);
            if self.stop.load(Acquire) {
                return;
            }
            // SAFETY: the caller wrote the job before it changed `round` and keeps it alive until
            // this member counts itself done.
            let job = unsafe { (*self.job.get()).expect("a job with every round") };
            let start = Instant::now();
            // SAFETY: see above.
            if let Err(panic) = catch_unwind(AssertUnwindSafe(|| unsafe { (*job)(member) })) {
                self.panicked.store(true, Relaxed);
                // Not dropped: a payload whose drop panics would end this thread before it
                // counts itself done, and the caller would wait for it for ever.
                std::mem::forget(panic);
            }
            self.busy.fetch_add(start.elapsed().as_nanos() as u64, Relaxed);
            self.done.fetch_add(1, Release);
        }
    }

    /// Waits until `round` differs from `seen` and returns it: spinning for [`SPIN`], then
    /// asleep until the caller wakes the team.
    fn next_round(&self, seen: usize) -> usize {
        let start = Instant::now();
        loop {
            for _ in 0..64 {
                let round = self.round.load(Acquire);
                if round != seen {
                    return round;
                }
                std::hint::spin_loop();
            }
            if start.elapsed() > SPIN {
                break;
            }
        }
        let mut sleepers = self.sleepers.lock().unwrap_or_else(|e| e.into_inner());
        *sleepers += 1;
        while self.round.load(SeqCst) == seen {
            sleepers = self.wake.wait(sleepers).unwrap_or_else(|e| e.into_inner());
        }
        *sleepers -= 1;
        self.round.load(Acquire)
    }
}

impl Drop for Team {
    fn drop(&mut self) {
        self.shared.stop.store(true, Release);
        self.shared.round.fetch_add(1, SeqCst);
        drop(self.shared.sleepers.lock().unwrap_or_else(|e| e.into_inner()));
        self.shared.wake.notify_all();
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

impl std::fmt::Debug for Team {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "Team of {}", self.size())
    }
}
