//! schemathesis against the real `jamjet dev`: the binary on 127.0.0.1:0
//! serving `tests/a2a/workflows`, fuzzed from its own `/openapi.json` by
//! the `st` CLI (a pinned version in `target/py-schemathesis`, installed by
//! `.ci/run`; or `$JAMJET_SCHEMATHESIS`), once without keys (loopback) and
//! once with keys (`JAMJET_API_KEYS`, the key sent as a bearer header), a
//! bounded number of examples per operation. Checks: no 5xx, every status
//! documented, every response's content type and body as documented. Any
//! finding fails the test with schemathesis's report (seed included).
//! Outside CI a missing install is SKIPPED with the command that installs
//! it; under `CI=true` it fails.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use support::dev::DevServer;

/// What `.ci/run` installs; keep in step with it.
const SCHEMATHESIS: &str = "schemathesis==4.32.5";
/// Test cases per operation and phase: bounded so that both runs together
/// stay well under two minutes on 2 cores.
const MAX_EXAMPLES: &str = "40";
/// One whole `st run`, at most.
const RUN_LIMIT: Duration = Duration::from_secs(240);
const CHECKS: &str = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance";

/// The `st` to run, or `None` (SKIPPED) outside CI when it is not installed.
fn st() -> Option<PathBuf> {
    let st = std::env::var_os("JAMJET_SCHEMATHESIS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/py-schemathesis/bin/st"));
    if st.exists() {
        return Some(st);
    }
    let how = format!(
        "install it with: python3 -m venv target/py-schemathesis && target/py-schemathesis/bin/pip install \
         '{SCHEMATHESIS}' (or set JAMJET_SCHEMATHESIS to an `st` executable)"
    );
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("schemathesis is not installed at {}: {how}", st.display());
    }
    eprintln!("SKIPPED: schemathesis is not installed at {}; {how}", st.display());
    None
}

/// Run `st run` against `server` (with `key` as a bearer header), bounded
/// by [`RUN_LIMIT`]; fails with its report on any finding.
fn fuzz(st: &Path, server: &DevServer, key: Option<&str>, label: &str) {
    let work = tempfile::tempdir().unwrap();
    let mut cmd = std::process::Command::new(st);
    cmd.current_dir(work.path())
        .arg("run")
        .arg(format!("{}/openapi.json", server.url))
        .args(["--checks", CHECKS, "--max-examples", MAX_EXAMPLES, "--request-timeout", "10", "--workers", "1"])
        .args(["--no-color", "--suppress-health-check", "all"]);
    if let Some(key) = key {
        cmd.args(["--header", &format!("Authorization: Bearer {key}")]);
    }
    let ran = support::run_bounded(cmd, RUN_LIMIT, &format!("{label}: st run"));
    let (out, err) = (String::from_utf8_lossy(&ran.output.stdout), String::from_utf8_lossy(&ran.output.stderr));
    let report = format!("{out}\n{err}");
    let status = ran.output.status;
    assert!(status.success(), "{label}: schemathesis found problems ({status}):\n{report}");
    assert!(out.contains("passed"), "{label}: schemathesis ran no test:\n{report}");
    eprintln!("{label}: schemathesis passed in {:.1} s", ran.took.as_secs_f64());
}

fn workflows() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/a2a/workflows").to_str().unwrap().to_string()
}

#[test]
fn the_api_answers_as_its_openapi_document_says_without_keys() {
    let Some(st) = st() else { return };
    let dir = tempfile::tempdir().unwrap();
    let server = DevServer::start(dir.path(), &["--workflows", &workflows()]);
    fuzz(&st, &server, None, "without keys");
}

#[test]
fn the_api_answers_as_its_openapi_document_says_with_keys() {
    let Some(st) = st() else { return };
    let dir = tempfile::tempdir().unwrap();
    let key = "jj_schemathesis-key";
    let server = DevServer::start_env(dir.path(), &["--workflows", &workflows()], &[("JAMJET_API_KEYS", key)]);
    fuzz(&st, &server, Some(key), "with keys");
}
