//! Helpers for tests of many `jamjet worker` processes on one PostgreSQL
//! store (`tests/pg_workers.rs`, `tests/pg_restart.rs`): the workflow they
//! run, starting workers, submitting and handing back, and the checks.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use jamjet::journal::{Event, PgJournal, PgOptions, Status};
use jamjet::{ExecutionId, Runtime};
use serde_json::{Value, json};

use super::jamjet;

pub const WORKFLOW: &str = r#"
id: shared
version: 1.0.0
state_schema: { base: str, seed: int, delay: int, a: dict, b: dict, c: dict, total: int }
nodes:
  a:
    type: http
    method: POST
    url: "{{ state.base }}/step/1"
    body: { v: "{{ state.seed }}", delay_ms: "{{ state.delay }}" }
    output_key: a
    next: pause
  pause:
    type: wait
    duration_ms: 150
    next: b
  b:
    type: http
    method: POST
    url: "{{ state.base }}/step/2"
    body: { v: "{{ state.a.v }}", delay_ms: "{{ state.delay }}" }
    output_key: b
    next: c
  c:
    type: http
    method: POST
    url: "{{ state.base }}/step/3"
    body: { v: "{{ state.b.v }}", delay_ms: "{{ state.delay }}" }
    output_key: c
    next: total
  total:
    type: set
    values: { total: "{{ state.a.v + state.b.v + state.c.v }}" }
"#;

/// [`WORKFLOW`] with a fan-out of two calls after the first, and a wait
/// for the signal `go` (sent by the test) before the timer.
pub const WORKFLOW_FULL: &str = r#"
id: shared-full
version: 1.0.0
state_schema: { base: str, seed: int, delay: int, a: dict, b: dict, d: dict, go: any, c: dict, total: int }
nodes:
  a:
    type: http
    method: POST
    url: "{{ state.base }}/step/1"
    body: { v: "{{ state.seed }}", delay_ms: "{{ state.delay }}" }
    output_key: a
    next: split
  split:
    type: parallel
    branches: [b, d]
    join: gate
    merge: keys
  b:
    type: http
    method: POST
    url: "{{ state.base }}/step/2"
    body: { v: "{{ state.a.v }}", delay_ms: "{{ state.delay }}" }
    output_key: b
    next: gate
  d:
    type: http
    method: POST
    url: "{{ state.base }}/step/4"
    body: { v: "{{ state.a.v }}", delay_ms: "{{ state.delay }}" }
    output_key: d
    next: gate
  gate:
    type: wait
    event: go
    output_key: go
    next: pause
  pause:
    type: wait
    duration_ms: 150
    next: c
  c:
    type: http
    method: POST
    url: "{{ state.base }}/step/3"
    body: { v: "{{ state.b.v + state.d.v + state.go }}", delay_ms: "{{ state.delay }}" }
    output_key: c
    next: total
  total:
    type: set
    values: { total: "{{ state.a.v + state.b.v + state.c.v + state.d.v }}" }
"#;

/// The state an uninterrupted run of [`WORKFLOW_FULL`] ends with, signalled `go: job`.
pub fn expected_full(job: usize) -> Value {
    let a = (job as i64 * 7 + 1) * 2 + 1;
    let (b, d) = (a * 2 + 2, a * 2 + 4);
    let c = (b + d + job as i64) * 2 + 3;
    json!({ "a": a, "b": b, "d": d, "c": c, "go": job, "total": a + b + c + d })
}

/// How long a worker's lease lasts here (takeover after a kill comes this long after).
pub const LEASE: &str = "1s";

pub fn input(base: &str, job: usize, delay: u64) -> Value {
    json!({ "base": base, "seed": job as i64 * 7 + 1, "delay": delay })
}

/// The state an uninterrupted run ends with (what `step/{n}` answers: v * 2 + n).
pub fn expected(job: usize) -> Value {
    let a = (job as i64 * 7 + 1) * 2 + 1;
    let b = a * 2 + 2;
    let c = b * 2 + 3;
    json!({ "a": a, "b": b, "c": c, "total": a + b + c })
}

/// A `jamjet worker` process, killed (`kill -9`) when dropped while it
/// still runs: a test that fails leaves no worker behind.
pub struct Worker(pub Child);

impl std::ops::Deref for Worker {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Worker {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// A `jamjet worker` on `url`, its stderr in `log`.
pub fn worker(url: &str, log: &Path) -> Worker {
    worker_with(url, log, LEASE)
}

/// [`worker`] with another lease time.
pub fn worker_with(url: &str, log: &Path, lease: &str) -> Worker {
    Worker(
        jamjet()
            .env("JAMJET_LOG", "warn")
            .args(["--store", url, "worker", "--lease-time", lease, "--drain-timeout", "5s", "--capacity", "50"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .expect("start jamjet worker"),
    )
}

/// A runtime of this test on the store (claims nothing: it only submits and reads).
pub async fn open(url: &str) -> Runtime {
    let options = PgOptions { command: "test".into(), ..Default::default() };
    let journal = PgJournal::open_with(url, options).await.expect("open the store");
    Runtime::builder().journal(Arc::new(journal)).resume_on_open(false).open().await.expect("open a runtime")
}

/// Submit `n` executions and hand them back (this runtime shuts down).
pub async fn submit(url: &str, base: &str, n: usize, delay: u64) -> Vec<ExecutionId> {
    submit_of(WORKFLOW, url, base, n, delay).await
}

/// [`submit`] of `yaml`.
pub async fn submit_of(yaml: &str, url: &str, base: &str, n: usize, delay: u64) -> Vec<ExecutionId> {
    let wf = jamjet::ir::compile_str(yaml, "shared.yaml").unwrap();
    let rt = open(url).await;
    let mut ids = Vec::new();
    for job in 0..n {
        ids.push(rt.submit(&wf, input(base, job, delay)).await.expect("submit"));
    }
    rt.shutdown().await;
    ids
}

/// How many of `ids` completed (a fresh read of the store each time).
pub async fn completed(reader: &Runtime, ids: &[ExecutionId]) -> usize {
    let mut n = 0;
    for id in ids {
        if reader.status(*id).is_ok_and(|m| m.status == Status::Completed) {
            n += 1;
        }
    }
    n
}

/// Wait (bounded) until every one of `ids` completed; the workers' logs on failure.
pub async fn all_complete(reader: &Runtime, ids: &[ExecutionId], limit: Duration, logs: &[std::path::PathBuf]) {
    let began = Instant::now();
    loop {
        let done = completed(reader, ids).await;
        if done == ids.len() {
            return;
        }
        if began.elapsed() > limit {
            let logs: Vec<String> = logs
                .iter()
                .map(|p| format!("{}:\n{}", p.display(), std::fs::read_to_string(p).unwrap_or_default()))
                .collect();
            panic!("only {done} of {} executions completed in {limit:?}\n{}", ids.len(), logs.join("\n"));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Every node visit of `id` completed exactly once, and every scheduled one completed.
pub fn once_each(reader: &Runtime, id: ExecutionId) {
    let mut done: BTreeMap<(String, u32), usize> = BTreeMap::new();
    let mut scheduled = BTreeSet::new();
    for r in reader.events(id).unwrap() {
        match r.event {
            Event::NodeCompleted { node, visit, .. } => *done.entry((node, visit)).or_default() += 1,
            Event::NodeScheduled { node, visit } => {
                scheduled.insert((node, visit));
            }
            _ => {}
        }
    }
    assert!(done.values().all(|&n| n == 1), "{id}: a visit completed twice: {done:?}");
    assert_eq!(done.keys().cloned().collect::<BTreeSet<_>>(), scheduled, "{id}");
}

pub fn kill9(child: &mut Child) {
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
}

pub fn signal(child: &Child, sig: &str) {
    let ok = std::process::Command::new("kill").args([sig, &child.id().to_string()]).status().unwrap().success();
    assert!(ok, "kill {sig} {}", child.id());
}

/// Signal `go` (its job number) to each of `ids` once it waits for it, as
/// the store's wait index says, until every one was signalled (bounded by
/// `limit`). Returns how many were. The signalling runtime claims each
/// parked execution it signals and carries it on until it parks again (at
/// its timer) and hands it back.
pub async fn signal_when_waiting(url: String, ids: Vec<ExecutionId>, limit: Duration) -> usize {
    use sqlx::Connection;
    let job_of: BTreeMap<String, (usize, ExecutionId)> =
        ids.iter().enumerate().map(|(job, id)| (hex(&id.to_bytes()), (job, *id))).collect();
    let signaller = open(&url).await;
    let mut conn = sqlx::PgConnection::connect(&url).await.expect("connect to the store");
    let mut signalled = BTreeSet::new();
    let began = Instant::now();
    while signalled.len() < ids.len() && began.elapsed() < limit {
        let waiting: Vec<String> =
            sqlx::query_scalar("SELECT encode(execution, 'hex') FROM waits WHERE event_key = 'go'")
                .fetch_all(&mut conn)
                .await
                .expect("read the wait index");
        for hex in waiting {
            let Some(&(job, id)) = job_of.get(&hex) else { continue };
            if signalled.contains(&job) {
                continue;
            }
            // Refused (it stopped waiting meanwhile, its owner changed): tried again next look.
            if signaller.signal(id, "go", json!(job)).await.is_ok() {
                signalled.insert(job);
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = conn.close().await;
    signaller.shutdown().await;
    signalled.len()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
