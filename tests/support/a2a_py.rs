//! The A2A project's Python SDK (`a2a-sdk` on PyPI), for interop tests:
//! a virtualenv at `target/py-a2a` (where `.ci/run` makes it) or
//! `$JAMJET_A2A_PYTHON` (a python that can `import a2a`); and
//! [`sdk_client`], which drives an agent with it (`tests/a2a/sdk_client.py`).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;

/// How long one run of `sdk_client.py` may take (its own waits are bounded too).
const SDK_CLIENT_LIMIT: Duration = Duration::from_secs(120);

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

/// Run `tests/a2a/sdk_client.py BASE SCENARIO ARG` (the official client
/// against the agent at `base`, within [`SDK_CLIENT_LIMIT`]); its JSON lines,
/// one per step. `None` when the SDK is not installed, as [`python`] says.
/// It blocks: call it off an async runtime's workers.
pub fn sdk_client(base: &str, scenario: &str, arg: &str) -> Option<Vec<Value>> {
    let python = python()?;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/a2a/sdk_client.py");
    let mut child = std::process::Command::new(python)
        .arg(script)
        .args([base, scenario, arg])
        .current_dir(std::env::temp_dir())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running python");
    let deadline = Instant::now() + SDK_CLIENT_LIMIT;
    while child.try_wait().unwrap().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "sdk_client.py {scenario} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Some(String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect())
}

/// The line of step `name` of [`sdk_client`]'s output.
pub fn step<'a>(lines: &'a [Value], name: &str) -> &'a Value {
    lines.iter().find(|l| l["step"] == name).unwrap_or_else(|| panic!("no step {name} in {lines:?}"))
}
