//! The command line: the flags ([`args`]) and what each command does ([`commands`]).

/// `println!` for what a command reports along the way, without its panic: a closed or full
/// standard output (`dae … | head -1`, `> /dev/full`) loses the lines, not the run, which goes
/// on and saves. (A command's result itself, `eval`'s table, is written so that a failed write
/// is an error.)
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// `eprintln!`, as [`say!`], for standard error.
macro_rules! say_err {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

pub mod args;
pub mod commands;
pub mod signals;

pub use args::main;
