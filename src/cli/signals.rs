//! Stopping a training run cleanly. Ctrl-C (SIGINT), `kill` or `timeout` (SIGTERM) and a closed
//! terminal (SIGHUP) let the step under way finish and the run save; the process then exits with
//! 128 plus the signal's number, as the shell reports a process the signal ended: 130, 143, 129.
//! A signal the process was started ignoring (`nohup` ignores SIGHUP, a shell's `&` SIGINT)
//! stays ignored. The other commands end at once on these signals ([`end_on_signals`]); every
//! command removes the temporary file it was writing before it ends so.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU8, Ordering};

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use signal_hook::low_level::signal_name;

use crate::cli::commands::Failure;
use crate::files::atomic::exit_removing_partial_files;

/// The run's epochs are under way: a signal sets the interrupt flag.
const TRAINING: u8 = 0;
/// The epochs are done and saved: a signal ends the process at once.
const ENDING: u8 = 1;
/// A signal has been acted on, by the signal's thread or the run's: the other does nothing.
const HANDLED: u8 = 2;

/// The signals a training run stops on, caught on a thread of their own.
pub struct Stopper {
    /// The last signal caught; 0 before any.
    signal: Arc<AtomicI32>,
    /// [`TRAINING`], [`ENDING`] or [`HANDLED`].
    stage: Arc<AtomicU8>,
    /// The trainer's flag, which it reads before every step.
    interrupt: Arc<AtomicBool>,
}

impl Stopper {
    /// Catches SIGINT, SIGTERM and SIGHUP (those not ignored) from now until the process ends:
    /// each sets [`Stopper::interrupt_flag`], which the trainer reads before every step. `out`
    /// is the run's folder, for the message.
    pub fn install(out: &Path) -> std::io::Result<Stopper> {
        let interrupt = Arc::new(AtomicBool::new(false));
        let mut signals = Signals::new([SIGINT, SIGTERM, SIGHUP].into_iter().filter(|&s| !ignored(s)))?;
        let stopper = Stopper {
            signal: Arc::new(AtomicI32::new(0)),
            stage: Arc::new(AtomicU8::new(TRAINING)),
            interrupt,
        };
        let (signal, stage, interrupt) =
            (Arc::clone(&stopper.signal), Arc::clone(&stopper.stage), Arc::clone(&stopper.interrupt));
        let out = out.display().to_string();
        std::thread::spawn(move || {
            for caught in signals.forever() {
                signal.store(caught, Ordering::SeqCst);
                // The flag first, then the claim: if the run has not reached its end, it finds the
                // flag there ([`Stopper::epochs_done`]) and acts; exactly one of the two does.
                interrupt.store(true, Ordering::SeqCst);
                if stage.compare_exchange(ENDING, HANDLED, Ordering::SeqCst, Ordering::SeqCst).is_ok() {
                    let name = signal_name(caught).unwrap_or("a signal");
                    say_err!(
                        "interrupted by {name} after the last epoch; saved in {out}; 'dae report {out}' makes its report"
                    );
                    exit_removing_partial_files(128 + caught);
                }
            }
        });
        Ok(stopper)
    }

    /// The flag a signal sets, for the trainer ([`crate::train::Trainer::with_interrupt`]).
    pub fn interrupt_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.interrupt)
    }

    /// The epochs are done and their files saved whole: from now on a signal ends the process
    /// at once, rather than waiting for the end-of-run work (the report's measurements, a
    /// minute for a large model). True if a signal came before, which the caller then reports.
    pub fn epochs_done(&self) -> bool {
        self.stage.store(ENDING, Ordering::SeqCst);
        self.interrupt.load(Ordering::SeqCst)
            && self.stage.compare_exchange(ENDING, HANDLED, Ordering::SeqCst, Ordering::SeqCst).is_ok()
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

/// Ends the process on SIGINT, SIGTERM and SIGHUP (those not ignored) from now on, as the
/// signal would, with 128 plus its number, but first removes the temporary file being written
/// (without this, `encode` interrupted left `.dae-<pid>-XXXXXX.partial` beside its CSV).
pub fn end_on_signals() -> std::io::Result<()> {
    let mut signals = Signals::new([SIGINT, SIGTERM, SIGHUP].into_iter().filter(|&s| !ignored(s)))?;
    std::thread::spawn(move || {
        if let Some(caught) = signals.forever().next() {
            say_err!("interrupted by {}", signal_name(caught).unwrap_or("a signal"));
            exit_removing_partial_files(128 + caught);
        }
    });
    Ok(())
}

/// Whether `signal` is ignored: so the process was started (`nohup`, a shell's `&`), and a
/// handler would undo what was asked of it.
fn ignored(signal: i32) -> bool {
    let mut old = std::mem::MaybeUninit::<libc::sigaction>::zeroed();
    // SAFETY: with a null new action, sigaction only writes the current one into `old`.
    let read = unsafe { libc::sigaction(signal, std::ptr::null(), old.as_mut_ptr()) };
    // SAFETY: on success `old` was written; before, it was zeroed, a valid sigaction.
    read == 0 && unsafe { old.assume_init() }.sa_sigaction == libc::SIG_IGN
}
