//! `jamjet bench takeover --store postgres://...`: how long the executions
//! of a worker that died stay without a process.
//!
//! In a schema of its own (created in the store's database and dropped at
//! the end, whatever happens), it starts `--workers` real `jamjet worker`
//! processes with `--lease-time`, submits `--executions` executions whose
//! step runs for `--step` (a short timer first, so this process hands them
//! back and the workers claim them), waits until the workers own them all
//! mid-step, and `kill -9`s the worker that owns the most. Then, per
//! execution the victim owned, it reads from the store when another worker
//! claimed it (its lease row, the database's clock) and when the next
//! event of its history was written (by another worker: the victim is
//! dead), both counted from the kill, and compares them with the lease
//! time + 1 s. The workers are started with their stdin as a lifeline:
//! they drain and stop when this process ends, however it ends.

use std::process::{ExitCode, Stdio};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::json;
use sqlx::{AssertSqlSafe, Connection, Executor, PgConnection};
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use super::http::parse_duration;
use super::processes::unix_us;
use crate::cli::{CliResult, Failure, print_json};
use crate::id::ExecutionId;
use crate::journal::redact_url;

#[derive(clap::Args, Debug)]
pub struct TakeoverArgs {
    /// The workers' lease time (`jamjet worker --lease-time`).
    #[arg(long, default_value = "1s", value_name = "DURATION", value_parser = crate::cli::dev::parse_span)]
    pub lease_time: Duration,
    /// How many workers to start (one of them is killed).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(2..=16))]
    pub workers: u32,
    /// How many executions are in flight at the kill.
    #[arg(long, short = 'n', default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub executions: u32,
    /// How long each execution's step runs (it must outlast the takeover).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub step: Duration,
    /// Print the figures as JSON.
    #[arg(long)]
    pub json: bool,
}

/// The workflow: a short timer (the submitter hands it back while it
/// waits), then a step that runs long enough to be killed in.
const WORKFLOW: &str = r#"
id: bench-takeover
version: "1"
state_schema: { ms: int }
nodes:
  start: { type: wait, duration_ms: 500, next: slow }
  slow: { type: function, function: bench.sleep, next: after }
  after: { type: function, function: bench.step }
"#;

/// How long the workers may take to start, and to claim the executions.
const START_LIMIT: Duration = Duration::from_secs(60);
/// How long after the lease time the takeover of every execution may take before the run fails.
const TAKEOVER_LIMIT: Duration = Duration::from_secs(30);

/// What `bench takeover` measured (milliseconds from the kill).
#[derive(Debug, Serialize)]
pub struct TakeoverReport {
    pub workers: u32,
    pub lease_time_ms: u64,
    pub executions: u32,
    /// The executions the killed worker owned at the kill (all taken over, or the run fails).
    pub killed_owned: usize,
    pub taken_over: usize,
    /// Kill to another worker's claim (its lease row).
    pub claimed_ms: Spread,
    /// Kill to the next event of the execution's history (written by another worker).
    pub resumed_ms: Spread,
    /// The lease time + 1 s, what `resumed_ms.max_ms` is held against.
    pub bound_ms: u64,
    pub within_bound: bool,
    /// The schema it ran in (dropped).
    pub schema: String,
}

#[derive(Debug, Serialize, Default, Clone, Copy)]
pub struct Spread {
    pub min_ms: u64,
    pub p50_ms: u64,
    pub max_ms: u64,
}

impl Spread {
    fn of(mut v: Vec<u64>) -> Spread {
        v.sort_unstable();
        match (v.first(), v.last()) {
            (Some(&min_ms), Some(&max_ms)) => Spread { min_ms, p50_ms: v[(v.len() - 1) / 2], max_ms },
            _ => Spread::default(),
        }
    }
}

pub(crate) async fn run(a: TakeoverArgs) -> CliResult {
    let a = &a;
    let report = in_own_schema("takeover", |url, schema| async move { measure(a, &url, &schema).await }).await?;
    if a.json {
        print_json(&report);
    } else {
        let s = |x: Spread| format!("p50 {} ms, min {} ms, max {} ms", x.p50_ms, x.min_ms, x.max_ms);
        println!(
            "killed      one of {} workers (lease {} ms) owning {} of {} executions mid-step",
            report.workers, report.lease_time_ms, report.killed_owned, report.executions
        );
        println!("claimed     by another worker after {} (from the kill)", s(report.claimed_ms));
        println!("resumed     next event journaled after {}", s(report.resumed_ms));
        println!(
            "bound       lease time + 1 s = {} ms: {}",
            report.bound_ms,
            if report.within_bound { "every one within" } else { "NOT all within" }
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Run `measure` (given the store's URL in a schema of its own, and that
/// schema's name) in a schema `jamjet_{what}_…` created in the store's
/// database for it and dropped after, whatever happens.
pub(super) async fn in_own_schema<T, F>(what: &str, measure: impl FnOnce(String, String) -> F) -> Result<T, Failure>
where
    F: std::future::Future<Output = Result<T, String>>,
{
    let url = crate::cli::shared_store_for(&format!("`jamjet bench {what}` starts workers on a shared store"))?;
    let schema = format!("jamjet_{what}_{}_{}", std::process::id(), unix_us());
    sql(url, &format!("CREATE SCHEMA {schema}")).await.map_err(Failure::new)?;
    let result = measure(in_schema(url, &schema), schema.clone()).await;
    let dropped = sql(url, &format!("DROP SCHEMA IF EXISTS {schema} CASCADE")).await;
    let report = result.map_err(Failure::new)?;
    dropped.map_err(|e| Failure::new(format!("measured, but could not drop the schema {schema}: {e}")))?;
    Ok(report)
}

/// `url` with `schema` as its connections' search path (an `options`
/// parameter in it is replaced).
pub(super) fn in_schema(url: &str, schema: &str) -> String {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let mut params: Vec<&str> = query.split('&').filter(|p| !p.is_empty() && !p.starts_with("options=")).collect();
    let options = format!("options=-c%20search_path%3D{schema}");
    params.push(&options);
    format!("{base}?{}", params.join("&"))
}

pub(super) async fn connect(url: &str) -> Result<PgConnection, String> {
    let place = redact_url(url);
    tokio::time::timeout(Duration::from_secs(10), PgConnection::connect(url))
        .await
        .map_err(|_| format!("{place}: no answer in 10 s"))?
        .map_err(|e| format!("{place}: {e}"))
}

pub(super) async fn sql(url: &str, statement: &str) -> Result<(), String> {
    let mut conn = connect(url).await?;
    conn.execute(AssertSqlSafe(statement.to_string())).await.map_err(|e| format!("{statement}: {e}"))?;
    let _ = conn.close().await;
    Ok(())
}

/// A worker this process started: stopped (stdin closed, then killed if it lingers) when dropped.
pub(super) struct Worker {
    pub(super) child: Child,
    pub(super) pid: u32,
    _lifeline: ChildStdin,
    _stdout: Lines<BufReader<ChildStdout>>,
}

pub(super) async fn start_worker(url: &str, lease: Duration, capacity: u32) -> Result<Worker, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this executable: {e}"))?;
    let mut child = Command::new(&exe)
        .arg("--store")
        .arg(url)
        .arg("worker")
        .arg("--lease-time")
        .arg(format!("{}ms", lease.as_millis()))
        .args(["--drain-timeout", "1s", "--capacity", &capacity.to_string(), "--json", "--stop-with-stdin"])
        .env("JAMJET_LOG", "error")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start {} worker: {e}", exe.display()))?;
    let pid = child.id().unwrap_or(0);
    let lifeline = child.stdin.take().expect("piped stdin");
    let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
    match tokio::time::timeout(START_LIMIT, stdout.next_line()).await {
        Ok(Ok(Some(line))) if line.contains("\"started\"") => {}
        Ok(Ok(other)) => return Err(format!("worker {pid} did not start: it said {other:?}")),
        Ok(Err(e)) => return Err(format!("worker {pid}: {e}")),
        Err(_) => return Err(format!("worker {pid} did not start within {START_LIMIT:?}")),
    }
    Ok(Worker { child, pid, _lifeline: lifeline, _stdout: stdout })
}

/// Stop the workers that are left: close their lifelines, wait (bounded), kill the rest.
pub(super) async fn stop(workers: Vec<Worker>) {
    let mut left = Vec::new();
    for w in workers {
        let Worker { child, pid, _lifeline, _stdout } = w;
        drop(_lifeline);
        // Its stdout stays open until it ends: it says it drains and stops.
        left.push((child, pid, _stdout));
    }
    for (mut child, pid, _stdout) in left {
        if tokio::time::timeout(Duration::from_secs(5), child.wait()).await.is_err() {
            eprintln!("worker {pid} did not stop within 5 s of its lifeline closing; killing it");
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
    }
}

async fn measure(a: &TakeoverArgs, url: &str, schema: &str) -> Result<TakeoverReport, String> {
    let mut workers = Vec::new();
    let result = async {
        for _ in 0..a.workers {
            workers.push(start_worker(url, a.lease_time, a.executions).await?);
        }
        let ids = submit(a, url).await?;
        let mut conn = connect(url).await?;
        let raw: Vec<Vec<u8>> = ids.iter().map(|id| id.to_bytes().to_vec()).collect();

        // Every one owned by a worker, mid-step.
        let by = Instant::now() + START_LIMIT;
        loop {
            let owned: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM leases l JOIN workers w ON w.id = l.worker WHERE l.execution = ANY($1)",
            )
            .bind(&raw)
            .fetch_one(&mut conn)
            .await
            .map_err(|e| format!("reading the leases: {e}"))?;
            if owned as usize == ids.len() {
                break;
            }
            if Instant::now() > by {
                return Err(format!("the workers claimed {owned} of {} executions in {START_LIMIT:?}", ids.len()));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // Let the last claimed start their step.
        tokio::time::sleep(Duration::from_millis(300)).await;

        // The victim: the worker that owns the most.
        let (victim_id, victim_pid): (String, i64) = sqlx::query_as(
            "SELECT w.id, w.pid FROM leases l JOIN workers w ON w.id = l.worker WHERE l.execution = ANY($1) \
             GROUP BY w.id, w.pid ORDER BY count(*) DESC LIMIT 1",
        )
        .bind(&raw)
        .fetch_one(&mut conn)
        .await
        .map_err(|e| format!("reading the leases: {e}"))?;
        let k = workers
            .iter()
            .position(|w| i64::from(w.pid) == victim_pid)
            .ok_or_else(|| format!("worker {victim_id} is none of those this bench started"))?;
        let kill_us = unix_us();
        workers[k].child.start_kill().map_err(|e| format!("cannot kill worker {victim_pid}: {e}"))?;
        let _ = workers[k].child.wait().await;
        let victim = workers.remove(k);
        drop(victim);
        let kill_ms = kill_us / 1000;

        // What it owned, and how far each history had come.
        let owned: Vec<(Vec<u8>, i64)> = sqlx::query_as(
            "SELECT l.execution, (SELECT coalesce(max(e.last_seq), 0) FROM events e WHERE e.execution = l.execution) \
             FROM leases l WHERE l.worker = $1",
        )
        .bind(&victim_id)
        .fetch_all(&mut conn)
        .await
        .map_err(|e| format!("reading the leases: {e}"))?;
        if owned.is_empty() {
            return Err(format!("worker {victim_id} owned nothing at the kill"));
        }
        let (owned_ids, seqs): (Vec<Vec<u8>>, Vec<i64>) = owned.into_iter().unzip();

        let by = Instant::now() + a.lease_time + TAKEOVER_LIMIT;
        let (claimed, resumed) = loop {
            let claims: Vec<(i64,)> = sqlx::query_as(
                "SELECT (extract(epoch FROM since) * 1000)::bigint FROM leases \
                 WHERE execution = ANY($1) AND worker IS NOT NULL AND worker <> $2",
            )
            .bind(&owned_ids)
            .bind(&victim_id)
            .fetch_all(&mut conn)
            .await
            .map_err(|e| format!("reading the leases: {e}"))?;
            let events: Vec<(i64,)> = sqlx::query_as(
                "SELECT min(e.at_ms) FROM events e JOIN UNNEST($1::bytea[], $2::bigint[]) AS k(id, seq) \
                 ON e.execution = k.id AND e.first_seq > k.seq GROUP BY e.execution",
            )
            .bind(&owned_ids)
            .bind(&seqs)
            .fetch_all(&mut conn)
            .await
            .map_err(|e| format!("reading the events: {e}"))?;
            if claims.len() == owned_ids.len() && events.len() == owned_ids.len() {
                break (claims, events);
            }
            if Instant::now() > by {
                return Err(format!(
                    "of {} executions the killed worker owned, {} were claimed and {} resumed within {:?} \
                     (lease time + {TAKEOVER_LIMIT:?})",
                    owned_ids.len(),
                    claims.len(),
                    events.len(),
                    a.lease_time + TAKEOVER_LIMIT
                ));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        let _ = conn.close().await;
        let after = |v: Vec<(i64,)>| v.into_iter().map(|(t,)| (t.max(0) as u64).saturating_sub(kill_ms)).collect();
        let claimed_ms = Spread::of(after(claimed));
        let resumed_ms = Spread::of(after(resumed));
        let bound_ms = a.lease_time.as_millis() as u64 + 1000;
        Ok(TakeoverReport {
            workers: a.workers,
            lease_time_ms: a.lease_time.as_millis() as u64,
            executions: a.executions,
            killed_owned: owned_ids.len(),
            taken_over: owned_ids.len(),
            claimed_ms,
            resumed_ms,
            bound_ms,
            within_bound: resumed_ms.max_ms <= bound_ms,
            schema: schema.to_string(),
        })
    }
    .await;
    stop(workers).await;
    result
}

/// Submit the executions and hand them back: they wait on their timer, which a worker fires.
async fn submit(a: &TakeoverArgs, url: &str) -> Result<Vec<ExecutionId>, String> {
    let wf = crate::ir::compile_str(WORKFLOW, "<bench takeover>").map_err(|d| d.to_string())?;
    let journal = crate::cli::open_shared(url, "bench").await.map_err(|f| f.message)?;
    let rt = super::functions::registered(crate::Runtime::builder())
        .journal(journal)
        .resume_on_open(false)
        .open()
        .await
        .map_err(|e| e.to_string())?;
    let mut ids = Vec::new();
    let mut failed = None;
    for _ in 0..a.executions {
        match rt.submit(&wf, json!({ "ms": a.step.as_millis() as u64 })).await {
            Ok(id) => ids.push(id),
            Err(e) => {
                failed = Some(e.to_string());
                break;
            }
        }
    }
    rt.shutdown().await;
    match failed {
        Some(e) => Err(format!("cannot submit: {e}")),
        None => Ok(ids),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_schema_replaces_the_urls_search_path() {
        assert_eq!(in_schema("postgres://u@h/db", "s1"), "postgres://u@h/db?options=-c%20search_path%3Ds1");
        assert_eq!(
            in_schema("postgres://u@h/db?sslmode=disable&options=-c%20search_path%3Dold", "s1"),
            "postgres://u@h/db?sslmode=disable&options=-c%20search_path%3Ds1"
        );
    }
}
