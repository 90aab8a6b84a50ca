//! Stopping a training run cleanly. Ctrl-C (SIGINT), `kill` or `timeout` (SIGTERM) and a closed
//! terminal (SIGHUP) let the step under way finish and the run save; the process then exits with
//! 128 plus the signal's number, as the shell reports a process the signal ended: 130, 143, 129.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use signal_hook::low_level::signal_name;

use crate::cli::commands::Failure;

/// The signals a training run stops on, caught on a thread of their own.
pub struct Stopper {
    /// The last signal caught; 0 before any.
    signal: Arc<AtomicI32>,
    /// Set once the epochs are done and saved: a signal then ends the process at once.
    done: Arc<AtomicBool>,
}

impl Stopper {
    /// Catches SIGINT, SIGTERM and SIGHUP from now until the process ends: each sets `interrupt`,
    /// which the trainer reads before every step. `out` is the run's folder, for the message.
    pub fn install(interrupt: Arc<AtomicBool>, out: &Path) -> std::io::Result<Stopper> {
        let mut signals = Signals::new([SIGINT, SIGTERM, SIGHUP])?;
        let stopper = Stopper { signal: Arc::new(AtomicI32::new(0)), done: Arc::new(AtomicBool::new(false)) };
        let (signal, done, out) =
            (Arc::clone(&stopper.signal), Arc::clone(&stopper.done), out.display().to_string());
        std::thread::spawn(move || {
            for caught in signals.forever() {
                signal.store(caught, Ordering::SeqCst);
                // The flag first: whichever of this and the end of the loop sees the other, one acts.
                interrupt.store(true, Ordering::SeqCst);
                if done.load(Ordering::SeqCst) {
                    let name = signal_name(caught).unwrap_or("a signal");
                    say_err!(
                        "interrupted by {name} after the last epoch; saved in {out}; 'dae report {out}' makes its report"
                    );
                    std::process::exit(128 + caught);
                }
            }
        });
        Ok(stopper)
    }

    /// The epochs are done and their files saved whole: from now on a signal ends the process
    /// at once, rather than waiting for the end-of-run work (the report's measurements, a
    /// minute for a large model).
    pub fn epochs_done(&self) {
        self.done.store(true, Ordering::SeqCst);
    }

    /// The caught signal's name, `SIGTERM` say.
    pub fn signal_name(&self) -> &'static str {
        signal_name(self.signal.load(Ordering::SeqCst)).unwrap_or("a signal")
    }

    /// How the run ends once the signal has stopped it.
    pub fn failure(&self) -> Failure {
        Failure::Interrupted(self.signal.load(Ordering::SeqCst))
    }
}
