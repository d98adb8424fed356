//! The `jamjet` command line; everything lives in [`jamjet::cli`].

/// The command line's allocator. The library leaves the choice to its
/// host; see docs/performance.md for what it changes.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    jamjet::cli::main()
}
