//! MCP servers for the tests: the example server (`examples/mcp_server.rs`)
//! over stdio or streamable HTTP, and the npm reference server
//! `@modelcontextprotocol/server-everything` that `.ci/run` installs.
//!
//! Why a nested `cargo build --example mcp_server`: integration tests get
//! `CARGO_BIN_EXE_*` only for `[[bin]]` targets, and making the example a
//! bin would pull rmcp's server side (and axum) into the library's normal
//! dependencies. A plain `cargo test` already builds every example before
//! any test runs, and cargo releases its build lock before running tests,
//! so the nested build is a fast no-op there; under `cargo test --test mcp`
//! it builds (or rebuilds a stale) example once per test binary.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

/// The pinned reference server; `.ci/run` installs exactly this.
pub const EVERYTHING_PACKAGE: &str = "@modelcontextprotocol/server-everything@2026.8.31";

/// The example MCP server's binary, built for this test run's profile.
pub fn example_server() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| example_binary("mcp_server"))
}

/// `cargo build --example NAME` for this test run's profile (a no-op under
/// a plain `cargo test`, see above); the built binary's path.
pub fn example_binary(name: &str) -> PathBuf {
    // target/<profile>/deps/<test binary>
    let exe = std::env::current_exe().expect("the test binary's path");
    let profile_dir = exe.parent().and_then(Path::parent).expect("target/<profile>/deps");
    let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") | None => "dev".to_string(),
        Some(other) => other.to_string(),
    };
    let status = Command::new(env!("CARGO"))
        .args(["build", "--quiet", "--example", name, "--profile", &profile])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("CARGO_TARGET_DIR", profile_dir.parent().expect("the target dir"))
        .status()
        .unwrap_or_else(|e| panic!("running cargo build --example {name}: {e}"));
    assert!(status.success(), "cargo build --example {name} failed: {status}");
    let bin = profile_dir.join("examples").join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(bin.exists(), "{} is missing after the build", bin.display());
    bin
}

/// The example server over streamable HTTP on 127.0.0.1:0, killed on drop.
pub struct HttpServer {
    pub url: String,
    child: Child,
}

impl HttpServer {
    pub fn start(count_file: &Path) -> HttpServer {
        HttpServer::start_at("127.0.0.1:0", count_file)
    }

    /// On a given address (to stand in for a server that went away).
    pub fn start_at(addr: &str, count_file: &Path) -> HttpServer {
        let mut child = Command::new(example_server())
            .args(["--http", addr, "--count-file"])
            .arg(count_file)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting the example MCP server over HTTP");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(Duration::from_secs(30)).unwrap_or_default();
        let url = line.trim().to_string();
        if !url.starts_with("http://127.0.0.1:") {
            let _ = child.kill();
            panic!("the example MCP server printed no URL within 30 s (got {line:?})");
        }
        HttpServer { url, child }
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where server-everything is installed: `$JAMJET_MCP_EVERYTHING_DIR`, or
/// `target/npm-mcp` (where `.ci/run` puts it). `None` when it is not there
/// and this is not CI (with a note on how to install it); under `CI=true`
/// a missing install fails the test.
pub fn everything_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("JAMJET_MCP_EVERYTHING_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/npm-mcp"));
    let bin = dir.join("node_modules/.bin/mcp-server-everything");
    if bin.exists() {
        return Some(dir);
    }
    let how = format!(
        "install it with: mkdir -p {d} && (cd {d} && npm install --save-exact {EVERYTHING_PACKAGE}) \
         (or set JAMJET_MCP_EVERYTHING_DIR to a directory where it is installed)",
        d = dir.display()
    );
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("the reference MCP server is not installed at {}: {how}", bin.display());
    }
    eprintln!("SKIPPED: the reference MCP server is not installed at {}; {how}", bin.display());
    None
}

/// Whether a process is still running (not gone, not a zombie).
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command name in parentheses.
        Ok(stat) => stat.rsplit_once(')').is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// Wait (bounded) until `pid` is gone.
pub fn gone_within(pid: u32, limit: Duration) -> bool {
    let deadline = std::time::Instant::now() + limit;
    while std::time::Instant::now() < deadline {
        if !alive(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    !alive(pid)
}

/// The lines `<key> <pid>` the example server's `count`/`crash` recorded.
pub fn recorded(count_file: &Path) -> Vec<(String, u32)> {
    let text = std::fs::read_to_string(count_file).unwrap_or_default();
    text.lines().filter_map(|l| l.split_once(' ')).map(|(k, p)| (k.to_string(), p.parse().expect("a pid"))).collect()
}
