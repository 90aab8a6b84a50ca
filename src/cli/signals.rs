//! Stopping a training run cleanly. Ctrl-C (SIGINT), `kill` or `timeout` (SIGTERM) and a closed
//! terminal (SIGHUP) let the step under way finish and the run save; the process then exits with
//! 128 plus the signal's number, as the shell reports a process the signal ended: 130, 143, 129.
//! A signal the process was started ignoring (`nohup` ignores SIGHUP, a shell's `&` SIGINT)
//! stays ignored. The other commands end at once on these signals ([`end_on_signals`]); every
//! command removes the temporary file it was writing before it ends so. A command whose work is
//! done and written says so and ends with success, and a signal then changes nothing
//! ([`finished`]): the process never says one thing and ends another way.

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

/// Who says how the process ends, the command or a signal's thread: whichever claims it first,
/// so that a signal at the very end cannot say "interrupted" after the command said "wrote",
/// nor let it end with success after saying "interrupted".
struct LastWord(AtomicU8);

/// Nothing has claimed the last word yet.
const OPEN: u8 = 0;
/// The command has: its work is done (or a signal it found stopped it), and it says so itself.
const COMMAND: u8 = 1;
/// A signal's thread has: it says so and ends the process.
const SIGNAL: u8 = 2;

impl LastWord {
    /// Claims the last word for `who` ([`COMMAND`] or [`SIGNAL`]): true if it is `who`'s, now or
    /// already.
    fn claim(&self, who: u8) -> bool {
        match self.0.compare_exchange(OPEN, who, Ordering::SeqCst, Ordering::SeqCst) {
            Ok(_) => true,
            Err(holder) => holder == who,
        }
    }
}

/// The process's last word.
static LAST_WORD: LastWord = LastWord(AtomicU8::new(OPEN));

/// The command's work is done and written: it may say so and end with success, and a signal
/// from now on is ignored. If a signal came first, its thread is ending the process, having
/// said so: this thread then waits for the end instead of going on.
pub fn finished() {
    if !LAST_WORD.claim(COMMAND) {
        loop {
            std::thread::park();
        }
    }
}

/// The signals a training run stops on, caught on a thread of their own.
pub struct Stopper {
    /// The last signal caught; 0 before any.
    signal: Arc<AtomicI32>,
    /// [`TRAINING`] or [`ENDING`].
    stage: Arc<AtomicU8>,
    /// The trainer's flag, which it reads before every step.
    interrupt: Arc<AtomicBool>,
}

impl Stopper {
    /// Catches SIGINT, SIGTERM and SIGHUP (those not ignored) from now until the process ends:
    /// each sets [`Stopper::interrupt_flag`], which the trainer reads before every step. `out`
    /// is the run's folder, and `report` the command that writes its report, for the message.
    pub fn install(out: &Path, report: &str) -> std::io::Result<Stopper> {
        let interrupt = Arc::new(AtomicBool::new(false));
        let mut signals = Signals::new([SIGINT, SIGTERM, SIGHUP].into_iter().filter(|&s| !ignored(s)))?;
        let stopper = Stopper {
            signal: Arc::new(AtomicI32::new(0)),
            stage: Arc::new(AtomicU8::new(TRAINING)),
            interrupt,
        };
        let (signal, stage, interrupt) =
            (Arc::clone(&stopper.signal), Arc::clone(&stopper.stage), Arc::clone(&stopper.interrupt));
        let (out, report) = (out.display().to_string(), report.to_string());
        std::thread::spawn(move || {
            for caught in signals.forever() {
                signal.store(caught, Ordering::SeqCst);
                // The flag first, then the stage: if the run has not reached its end, it finds the
                // flag there ([`Stopper::epochs_done`]) and acts; where both see the other, the
                // claim decides which of the two does.
                interrupt.store(true, Ordering::SeqCst);
                if stage.load(Ordering::SeqCst) == ENDING && LAST_WORD.claim(SIGNAL) {
                    let name = signal_name(caught).unwrap_or("a signal");
                    say_err!(
                        "interrupted by {name} after the last epoch; saved in {out}; make its report with {report}"
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
    /// minute for a large model). True if a signal came before, which the caller then reports
    /// (if the signal's thread has already, this thread waits for it to end the process).
    pub fn epochs_done(&self) -> bool {
        self.stage.store(ENDING, Ordering::SeqCst);
        let stopped = self.interrupt.load(Ordering::SeqCst);
        if stopped {
            finished();
        }
        stopped
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
        for caught in signals.forever() {
            if LAST_WORD.claim(SIGNAL) {
                say_err!("interrupted by {}", signal_name(caught).unwrap_or("a signal"));
                exit_removing_partial_files(128 + caught);
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_word_is_whoever_claims_it_first() {
        let (ended, stopped) = (LastWord(AtomicU8::new(OPEN)), LastWord(AtomicU8::new(OPEN)));
        assert!(ended.claim(COMMAND) && ended.claim(COMMAND), "the command's, and still its");
        assert!(!ended.claim(SIGNAL), "a signal after it is ignored");
        assert!(stopped.claim(SIGNAL));
        assert!(!stopped.claim(COMMAND), "the command waits for the signal's thread to end it");
    }
}
