//! `jamjet._native`: the Rust runtime embedded in a Python process.
//!
//! A thin layer: a runtime handle ([`Runtime`]), a compiled workflow
//! ([`Workflow`]), and what a step is called with ([`StepCall`], with its
//! [`Reply`]). Everything a user imports is the pure-Python package above
//! it (`python/jamjet/`), which also drives the user's coroutines: the
//! runtime never awaits Python. A sync step's function is handed to Python
//! on a caller thread ([`callers`]), an async one through the step loop's
//! [`Inbox`]; Python answers through the `Reply`, at once (a sync step) or
//! later from its event loop (an async step).
//!
//! Each long operation takes an optional `callback`: without one it
//! blocks the calling thread with the GIL released; with one it returns
//! at once and calls `callback(ok, value)` from a caller thread when done
//! (how the Python layer makes it awaitable on its own loop).
//!
//! Errors cross as the exceptions of `jamjet.errors`, made in one place
//! ([`Fail`]); no panic crosses (a panic in a step is the runtime's to
//! catch and journal).

mod call;
mod callers;
mod fail;
mod runtime;

use pyo3::prelude::*;

pub use call::{Inbox, Reply, StepCall, Ticket};
pub use fail::Fail;
pub use runtime::{Runtime, Workflow};

/// The tokio runtime every `Runtime` of this process runs on: built on
/// first use, and refused in a process forked from the one that built it
/// (its threads did not come along).
fn tokio() -> Result<&'static tokio::runtime::Runtime, Fail> {
    static TOKIO: std::sync::OnceLock<(tokio::runtime::Runtime, u32)> = std::sync::OnceLock::new();
    let pid = std::process::id();
    let (rt, owner) = TOKIO.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .thread_name("jamjet-runtime")
            .build()
            .expect("cannot start the async runtime");
        (rt, pid)
    });
    if *owner != pid {
        return Err(Fail::new(
            "JamjetError",
            format!(
                "this process (pid {pid}) was forked from the one that started the JamJet runtime (pid {owner}); \
                 its runtime threads did not come along: open the Runtime in the child, after the fork"
            ),
        ));
    }
    Ok(rt)
}

/// Run the `jamjet` command line with `argv` (its first item the program
/// name); returns the exit code.
#[pyfunction]
fn cli_main(py: Python<'_>, argv: Vec<String>) -> i32 {
    py.detach(|| jamjet::cli::main_with(argv))
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Runtime>()?;
    m.add_class::<Workflow>()?;
    m.add_class::<StepCall>()?;
    m.add_class::<Reply>()?;
    m.add_class::<Ticket>()?;
    m.add_class::<Inbox>()?;
    m.add_function(wrap_pyfunction!(cli_main, m)?)?;
    m.add_function(wrap_pyfunction!(runtime::compile, m)?)?;
    m.add_function(wrap_pyfunction!(runtime::compile_file, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    // Whether this is a debug build (what a benchmark must not measure).
    m.add("debug_build", cfg!(debug_assertions))?;
    Ok(())
}
