//! `dae`: trains the denoising autoencoder of the reference notebook on MNIST, and uses it.
//!
//! A thin entry point: the flags are in `dae::cli`, what each command does in `dae::cli::commands`.

fn main() -> std::process::ExitCode {
    dae::cli::main()
}
