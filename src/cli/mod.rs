//! The command line: the flags ([`args`]) and what each command does ([`commands`]).

/// `print!` for what a command reports, without its panic: a closed or full standard output
/// (`dae … | head -1`, `> /dev/full`) loses the lines, not the run, which goes on and saves.
macro_rules! say_raw {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stdout(), $($arg)*);
    }};
}

/// `println!`, as [`say_raw!`].
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// `eprintln!`, as [`say_raw!`], for standard error.
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
