//! Shared test fixtures: a loopback HTTP server that counts calls per
//! idempotency key, and helpers to drive the real `jamjet` binary.
#![allow(dead_code)]

pub mod mcp_http;
pub mod model_server;

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};

pub mod a2a_agent;
pub mod a2a_py;
pub mod dev;
pub mod mcp;
pub mod pg;
pub mod py_mcp;
pub mod workers;

/// What the loopback server saw.
#[derive(Default, Debug)]
pub struct Seen {
    /// Idempotency key -> the bodies received under it, in order.
    pub by_key: HashMap<String, Vec<Value>>,
    /// Requests that came without an Idempotency-Key header.
    pub without_key: usize,
}

/// A loopback server on 127.0.0.1:0.
///
/// - `POST /step/{n}` answers `{"n": n, "v": body.v * 2 + n}` after `delay_ms`
///   (from the body, default 0);
/// - `POST /flaky/{n}` fails with 503 the first `n` times per key, then answers like step;
/// - `GET /status/{code}` answers with that status;
/// - `POST /secret/{n}` answers `n` bytes of text with a `Set-Cookie` and
///   an `X-Session-Token` header (what must not reach a journal).
pub struct Server {
    pub url: String,
    pub seen: Arc<Mutex<Seen>>,
}

async fn step(
    State(seen): State<Arc<Mutex<Seen>>>,
    UrlPath(n): UrlPath<i64>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Json<Value> {
    record(&seen, &headers, &body);
    if let Some(ms) = body["delay_ms"].as_u64() {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    let v = body["v"].as_i64().unwrap_or(0);
    Json(json!({ "n": n, "v": v * 2 + n }))
}

async fn flaky(
    State(seen): State<Arc<Mutex<Seen>>>,
    UrlPath(n): UrlPath<usize>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Result<Json<Value>, (StatusCode, &'static str)> {
    let count = record(&seen, &headers, &body);
    if count <= n {
        return Err((StatusCode::SERVICE_UNAVAILABLE, "try again"));
    }
    Ok(Json(json!({ "ok": true, "calls": count })))
}

fn record(seen: &Mutex<Seen>, headers: &HeaderMap, body: &Value) -> usize {
    let mut seen = seen.lock().unwrap();
    match headers.get("idempotency-key").and_then(|v| v.to_str().ok()) {
        Some(k) => {
            let list = seen.by_key.entry(k.to_string()).or_default();
            list.push(body.clone());
            list.len()
        }
        None => {
            seen.without_key += 1;
            0
        }
    }
}

/// 429 with `Retry-After: 1` for the first `n` calls of a key, then 200.
async fn limited(
    State(seen): State<Arc<Mutex<Seen>>>,
    UrlPath(n): UrlPath<usize>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Result<Json<Value>, (StatusCode, HeaderMap, &'static str)> {
    let count = record(&seen, &headers, &body);
    if count <= n {
        let mut h = HeaderMap::new();
        h.insert("retry-after", "1".parse().unwrap());
        return Err((StatusCode::TOO_MANY_REQUESTS, h, "slow down"));
    }
    Ok(Json(json!({ "ok": true, "calls": count })))
}

impl Server {
    pub async fn start() -> Server {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let app = Router::new()
            .route("/step/{n}", post(step))
            .route("/flaky/{n}", post(flaky))
            .route("/limited/{n}", post(limited))
            .route(
                "/status/{code}",
                get(|UrlPath(code): UrlPath<u16>| async move {
                    let mut h = HeaderMap::new();
                    h.insert("retry-after", "0".parse().unwrap());
                    (StatusCode::from_u16(code).unwrap(), h, "status page")
                }),
            )
            .route(
                "/secret/{n}",
                post(|UrlPath(n): UrlPath<usize>| async move {
                    let mut h = HeaderMap::new();
                    h.insert("set-cookie", "session=cookie-s3cr3t".parse().unwrap());
                    h.insert("x-session-token", "token-s3cr3t".parse().unwrap());
                    h.insert("content-type", "text/plain".parse().unwrap());
                    (StatusCode::OK, h, "x".repeat(n))
                }),
            )
            .with_state(seen.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Server { url, seen }
    }
}

/// The `jamjet` binary built for this test run.
pub fn jamjet() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_jamjet"));
    c.env_remove("JAMJET_DATA_DIR").env("JAMJET_LOG", "error");
    c
}

/// `jamjet run FILE --input INPUT` on `data_dir`, its output discarded:
/// for a test that kills it mid-run. Add environment, then `.spawn()`.
pub fn run_to_kill(data_dir: &Path, file: &Path, input: &str) -> Command {
    let mut c = jamjet();
    c.arg("--data-dir").arg(data_dir).arg("run").arg(file).args(["--input", input]);
    c.stdin(std::process::Stdio::null()).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null());
    c
}

/// How a bounded run of a command ended: its output, and its own peak
/// resident memory and time (from `wait4`, not the other tests' children).
pub struct Finished {
    pub output: Output,
    pub max_rss_bytes: u64,
    pub took: Duration,
}

/// Run `cmd` (stdin closed, output captured) to its end, killing it past
/// `limit` and then failing with `what` and what it printed to stderr.
#[allow(clippy::zombie_processes, reason = "the child is reaped by wait4, which also reads its rusage")]
pub fn run_bounded(mut cmd: impl std::borrow::BorrowMut<Command>, limit: Duration, what: &str) -> Finished {
    use std::io::Read;
    use std::os::unix::process::ExitStatusExt;
    fn drain(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<Vec<u8>> {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = pipe.read_to_end(&mut buf);
            buf
        })
    }
    let began = std::time::Instant::now();
    let mut child = cmd
        .borrow_mut()
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: cannot start: {e}"));
    let (out, err) = (drain(child.stdout.take().unwrap()), drain(child.stderr.take().unwrap()));
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: rusage is plain data that wait4 fills for our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        let reaped = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
        assert!(reaped >= 0, "{what}: wait4: {}", std::io::Error::last_os_error());
        if reaped == pid {
            break;
        }
        if began.elapsed() > limit {
            let _ = child.kill();
            unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
            let out = String::from_utf8_lossy(&out.join().unwrap()).into_owned();
            let err = String::from_utf8_lossy(&err.join().unwrap()).into_owned();
            panic!("{what} did not finish within {limit:?}; stdout:\n{out}\nstderr:\n{err}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let output = Output {
        status: std::process::ExitStatus::from_raw(status),
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    };
    // Linux reports ru_maxrss in KiB.
    Finished { output, max_rss_bytes: usage.ru_maxrss as u64 * 1024, took: began.elapsed() }
}

/// How long one `jamjet` command in a test may take before it is killed
/// and the test fails saying so (a hang fails the test, not the CI run).
pub const COMMAND_LIMIT: Duration = Duration::from_secs(300);

/// `Command::output`, bounded by [`COMMAND_LIMIT`] (stdin closed, as there).
pub trait OutputBounded {
    fn output_bounded(&mut self) -> Output;
}

impl OutputBounded for Command {
    fn output_bounded(&mut self) -> Output {
        let what = format!("{:?}", self.get_args().collect::<Vec<_>>());
        run_bounded(self, COMMAND_LIMIT, &format!("jamjet {what}")).output
    }
}

/// A `jamjet` process held at a pause (`JAMJET_PAUSE_AFTER`): it still
/// holds its data dir (and its socket answers) until [`Paused::kill`].
pub struct Paused {
    child: std::process::Child,
    reader: std::thread::JoinHandle<()>,
}

impl Paused {
    /// `kill -9` it, and wait for it and its stderr reader.
    pub fn kill(mut self) {
        let _ = self.child.kill(); // SIGKILL
        self.child.wait().unwrap();
        self.reader.join().unwrap();
    }
}

/// Run `cmd` (a `jamjet` command) with `JAMJET_PAUSE_AFTER=pause` and read
/// its stderr until it says it paused (at most `limit`): the process is
/// held right after that event is durable. `what` names it in the
/// failure, with what it printed.
pub fn run_until_paused(mut cmd: Command, pause: &str, limit: Duration, what: &str) -> Paused {
    use std::io::BufRead;
    let mut child = cmd
        .env("JAMJET_PAUSE_AFTER", pause)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: cannot start: {e}"));
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let (name, n) = pause.split_once(':').unwrap_or((pause, "1"));
    let want = format!("jamjet: paused after {name} #{n}");
    let deadline = std::time::Instant::now() + limit;
    let mut said = Vec::new();
    let paused = loop {
        // A timeout, or the process closed its stderr (it ended without pausing).
        let Ok(line) = rx.recv_timeout(deadline.saturating_duration_since(std::time::Instant::now())) else {
            break false;
        };
        let done = line == want;
        said.push(line);
        if done {
            break true;
        }
    };
    if !paused {
        let ended_by_itself = child.try_wait().unwrap();
        Paused { child, reader }.kill();
        let how = match ended_by_itself {
            Some(s) => format!("exited {s}"),
            None => "still ran".into(),
        };
        panic!("{what} did not pause after {pause} within {limit:?} (it {how}); stderr:\n{}", said.join("\n"));
    }
    Paused { child, reader }
}

/// [`run_until_paused`], then `kill -9` it: the process dies right after
/// that event is durable.
pub fn kill_when_paused(cmd: Command, pause: &str, limit: Duration, what: &str) {
    run_until_paused(cmd, pause, limit, what).kill();
}

/// Run `jamjet` with `args` on `data_dir` to completion.
pub fn jamjet_out(data_dir: &Path, args: &[&str]) -> Output {
    jamjet().arg("--data-dir").arg(data_dir).args(args).output_bounded()
}

/// Run `jamjet ... --json` and parse stdout, failing loudly on a bad exit.
pub fn jamjet_json(data_dir: &Path, args: &[&str]) -> Value {
    jamjet_json_with(data_dir, &[], args)
}

/// [`jamjet_json`] with environment variables set for the command.
pub fn jamjet_json_with(data_dir: &Path, env: &[(&str, &str)], args: &[&str]) -> Value {
    let out = jamjet().envs(env.iter().copied()).arg("--data-dir").arg(data_dir).args(args).output_bounded();
    assert!(out.status.success(), "jamjet {args:?} failed: {}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("jamjet {args:?} printed no JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

/// Three branches, each waiting for an event of its own.
pub const GATHER: &str = r#"
id: gather
state_schema: { answers: list, answer: any }
nodes:
  ask:
    type: parallel
    for_each: "{{ [1, 2, 3] }}"
    branches: [wait_answer]
    join: done
    output_key: answers
  wait_answer: { type: wait, event: "answer:{{ item }}", output_key: answer, next: done }
  done: { type: end }
"#;

/// The payment workflow: park until `payment:<order_id>`.
pub const PAY: &str = r#"id: pay
state_schema: { order_id: str, payment: any, decision: any }
nodes:
  wait_payment: { type: wait, event: "payment:{{ state.order_id }}", output_key: payment, next: done }
  done: { type: end }
"#;

/// An approval, then a wait for the shipment: the execution lives on
/// after its decision, so a second decision meets a live execution.
pub const REVIEW: &str = r#"id: review
state_schema: { order_id: str, decision: any, shipped: any }
nodes:
  review: { type: approval, prompt: "Ship order {{ state.order_id }}?", output_key: decision, next: ship }
  ship: { type: wait, event: "shipped:{{ state.order_id }}", output_key: shipped, next: done }
  done: { type: end }
"#;

/// Two steps, then the end.
pub const TWO_STEPS: &str = r#"id: two
version: "1"
state_schema: { a: int, b: int }
nodes:
  first: { type: set, values: { a: 1 }, next: second }
  second: { type: set, values: { b: 2 } }
"#;

/// Every file under `dir` (for a byte scan of a data dir).
pub fn files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() { todo.push(p) } else { out.push(p) }
        }
    }
    out
}

/// Write `yaml` to `dir/name`; its path, for the command line.
pub fn workflow_file(dir: &std::path::Path, name: &str, yaml: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, yaml).unwrap();
    path.to_str().unwrap().to_string()
}
