//! The A2A project's Python SDK (`a2a-sdk` on PyPI), for interop tests:
//! a virtualenv at `target/py-a2a` (where `.ci/run` makes it) or
//! `$JAMJET_A2A_PYTHON` (a python that can `import a2a`).

use std::path::{Path, PathBuf};

/// What `.ci/run` installs; keep in step with it.
pub const A2A_SDK: &str = "'a2a-sdk[http-server]==1.3.0' 'uvicorn==0.54.0'";

/// The python that has `a2a-sdk`. `None` when it is not there and this is
/// not CI (with a note on how to install it); under `CI=true` a missing
/// install fails the test.
pub fn python() -> Option<PathBuf> {
    let python = std::env::var_os("JAMJET_A2A_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/py-a2a/bin/python"));
    if python.exists() {
        return Some(python);
    }
    let how = format!(
        "install it with: python3 -m venv target/py-a2a && target/py-a2a/bin/pip install {A2A_SDK} \
         (or set JAMJET_A2A_PYTHON to a python that has it)"
    );
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("the Python a2a-sdk is not installed at {}: {how}", python.display());
    }
    eprintln!("SKIPPED: the Python a2a-sdk is not installed at {}; {how}", python.display());
    None
}
