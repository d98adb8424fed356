//! The official MCP Python SDK (`mcp` on PyPI), for the Python tool server
//! of docs/migrating-from-openai.md (`examples/python/tools_server.py`): a
//! virtualenv at `target/py-mcp` (where `.ci/run` makes it) or
//! `$JAMJET_MCP_PYTHON` (a python that can `import mcp`).

use std::path::{Path, PathBuf};

/// What `.ci/run` installs; keep in step with it.
pub const MCP_SDK: &str = "mcp==2.3.0";

/// The folder of the python that has `mcp` (to put first on `PATH`, as
/// the guide does). `None` when it is not there and this is not CI (with a
/// note on how to install it); under `CI=true` a missing install fails the
/// test.
pub fn bin_dir() -> Option<PathBuf> {
    let python = std::env::var_os("JAMJET_MCP_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/py-mcp/bin/python3"));
    if python.exists() {
        return Some(python.parent().expect("a python in a folder").to_path_buf());
    }
    let how = format!(
        "run: python3 -m venv target/py-mcp && target/py-mcp/bin/pip install {MCP_SDK} \
         (or set JAMJET_MCP_PYTHON to a python3 that has it)"
    );
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("the Python MCP SDK is not installed at {}: {how}", python.display());
    }
    eprintln!("SKIPPED: the Python MCP SDK is not installed at {}; {how}", python.display());
    None
}
