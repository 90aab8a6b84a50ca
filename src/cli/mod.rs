//! The command line: the flags ([`args`]) and what each command does ([`commands`]).

pub mod args;
pub mod commands;
pub mod memory;

pub use args::main;
