//! The `jamjet` command line; everything lives in [`jamjet::cli`].

fn main() -> std::process::ExitCode {
    jamjet::cli::main()
}
