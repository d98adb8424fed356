//! `jamjet bench --processes P --store postgres://...`: one load across P
//! processes that share the store, measured as one.
//!
//! The parent starts this executable P times (`bench ... --child`), each
//! with its share of `-n` (or the whole `--duration`) and of `-c`. Each
//! child opens the store, does its warm-up, says it is ready, and opens its
//! measured window only when the parent says go, once all are ready; so
//! the windows overlap from their first millisecond. Each child submits
//! and runs its own executions: on a shared store the process that starts
//! an execution holds its lease and runs it, as a `jamjet dev` or an
//! embedding host does with what it is given (workers claim what is handed
//! back or left by a process that died: `jamjet bench takeover` times
//! that). The parent adds up what the children counted over the time from
//! the first start to the last end, merges their latency histograms, reads
//! per-node latencies from the store, and reads the database's COMMITs
//! from `pg_stat_database` around it all.
//!
//! The children speak JSON lines on stdout (`ready`, `progress`, `report`)
//! and listen on stdin: `go` opens the window, and the end of stdin (the
//! parent exited or was killed) stops a child at once, so none outlives
//! its parent. The parent kills every child when one fails, and bounds
//! each wait.

use std::process::{ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::{Notify, mpsc};

use super::drive::{Amount, BenchReport, DriveArgs, Percentiles};
use super::histogram;
use crate::cli::{CliResult, Failure, print_json};

/// How long the children may take to open the store and warm up.
const READY_LIMIT: Duration = Duration::from_secs(300);
/// How long a measured window may last beyond `--duration` (or at all, for `-n`).
const RUN_LIMIT: Duration = Duration::from_secs(1800);
/// How long a child may take to close once it has reported.
const EXIT_LIMIT: Duration = Duration::from_secs(30);

/// One process's own window, in the parent's report.
#[derive(Debug, Serialize, Deserialize, Clone)]
pub struct ProcessRow {
    pub pid: u32,
    pub executions: u64,
    pub seconds: f64,
    pub node_completions: u64,
    pub nodes_per_second: f64,
    pub journal_syncs: u64,
    pub cpu_seconds: f64,
}

/// A child's measured window, for its parent: when it opened and closed
/// (unix µs, one machine's clock) and its execution latencies as
/// `[value, count]` pairs of its HDR histogram (merged exactly).
#[derive(Debug, Serialize, Deserialize, Clone)]
pub struct Window {
    pub start_us: u64,
    pub end_us: u64,
    pub latency_us: Vec<[u64; 2]>,
}

/// What a child says, one JSON line each.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Said {
    /// Warmed up (this many warm-up executions); waits for `go`.
    Ready(u64),
    /// Executions finished in the window so far.
    Progress(u64),
    /// The window's figures.
    Report(Box<BenchReport>),
}

/// Print one line of the children's protocol.
pub fn say(said: &Said) {
    println!("{}", serde_json::to_string(said).expect("bench JSON serializes"));
}

pub fn unix_us() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64)
}

/// Told `go` on stdin.
static GO: Notify = Notify::const_new();

/// In a child: read stdin for `go`; at its end (the parent is gone) exit
/// at once. A thread of its own: it blocks on the pipe.
pub fn watch_parent() {
    std::thread::spawn(|| {
        use std::io::BufRead;
        for line in std::io::stdin().lock().lines() {
            match line {
                Ok(line) if line.trim() == "go" => GO.notify_one(),
                Ok(_) => {}
                Err(_) => break,
            }
        }
        eprintln!("jamjet bench --child: the parent bench went away (stdin closed); stopping");
        std::process::exit(3);
    });
}

/// In a child: say ready, and wait for the word to open the window.
pub async fn ready(warmup_executions: u64) -> Result<(), String> {
    say(&Said::Ready(warmup_executions));
    match tokio::time::timeout(READY_LIMIT, GO.notified()).await {
        Ok(()) => Ok(()),
        Err(_) => Err(format!("no word from the parent bench in {READY_LIMIT:?}")),
    }
}

/// In a child: say how many executions finished, every 250 ms.
pub fn tick_progress(done: Arc<AtomicU64>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_millis(250));
        loop {
            every.tick().await;
            say(&Said::Progress(done.load(Ordering::Relaxed)));
        }
    })
}

/// `k` of `parts` shares of `total`, the first ones one larger when it does not divide.
fn share(total: u64, parts: u64, k: u64) -> u64 {
    total / parts + u64::from(k < total % parts)
}

/// A started child: its process, its stdin (the lifeline), its pid.
struct Started {
    child: Child,
    stdin: Option<ChildStdin>,
    pid: u32,
}

pub(crate) async fn run(a: DriveArgs) -> CliResult {
    let processes = a.processes.unwrap_or(1);
    let url = crate::cli::shared_store_for("`jamjet bench --processes` shares one store between processes")?;
    if u64::from(a.concurrency) < u64::from(processes) {
        return Err(Failure::usage(format!(
            "-c {} with --processes {processes}: give each process at least one execution in flight",
            a.concurrency
        )));
    }
    if a.duration.is_none() && a.executions < u64::from(processes) {
        return Err(Failure::usage(format!(
            "-n {} with --processes {processes}: give each process at least one execution",
            a.executions
        )));
    }
    let exe = std::env::current_exe().map_err(|e| Failure::new(format!("cannot find this executable: {e}")))?;
    let loadavg_before = super::http::loadavg();
    let database_before = DatabaseCounts::read(url).await.map_err(Failure::new)?;

    // Start them all; a failure from here on kills every one (kill_on_drop).
    let (said_tx, mut said_rx) = mpsc::unbounded_channel::<(usize, Result<Said, String>)>();
    let mut started = Vec::new();
    for k in 0..processes {
        let mut cmd = Command::new(&exe);
        cmd.arg("--store").arg(url).arg("bench");
        if let Some(w) = &a.workflow {
            cmd.arg(w);
        }
        if let Some(w) = a.workload {
            cmd.arg("--workload").arg(w.name());
        }
        match a.duration {
            Some(d) => cmd.arg("--duration").arg(format!("{}ms", d.as_millis())),
            None => cmd.arg("-n").arg(share(a.executions, processes.into(), k.into()).to_string()),
        };
        cmd.arg("-c").arg(share(a.concurrency.into(), processes.into(), k.into()).to_string());
        cmd.arg("--warmup").arg(match a.warmup {
            Amount::Executions(n) => share(n, processes.into(), k.into()).to_string(),
            Amount::Time(t) => format!("{}ms", t.as_millis()),
        });
        if let Some(i) = &a.input {
            cmd.arg("--input").arg(i);
        }
        if let Some(p) = &a.payload {
            cmd.arg("--payload").arg(p);
        }
        // The parent reads the nodes' latencies once, from the store.
        cmd.args(["--node-sample", "0", "--json", "--child"]);
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::inherit()).kill_on_drop(true);
        let mut child = cmd.spawn().map_err(|e| Failure::new(format!("cannot start {}: {e}", exe.display())))?;
        let pid = child.id().unwrap_or(0);
        let stdout = child.stdout.take().expect("piped stdout");
        let stdin = child.stdin.take();
        let tx = said_tx.clone();
        let k = k as usize;
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let said = serde_json::from_str::<Said>(&line)
                    .map_err(|e| format!("process {pid} said something that is not the bench's JSON ({e}): {line}"));
                if tx.send((k, said)).is_err() {
                    return;
                }
            }
        });
        started.push(Started { child, stdin, pid });
    }
    drop(said_tx);
    let result = drive(&a, processes, &mut started, &mut said_rx).await;
    let reports = match result {
        Ok(r) => r,
        Err(e) => {
            for s in &mut started {
                let _ = s.child.start_kill();
            }
            return Err(Failure::new(e));
        }
    };
    // Every child reported: let each close (it hands nothing back: all ended).
    for s in &mut started {
        match tokio::time::timeout(EXIT_LIMIT, s.child.wait()).await {
            Ok(Ok(status)) if status.success() => {}
            Ok(Ok(status)) => return Err(Failure::new(format!("process {} reported, then ended {status}", s.pid))),
            Ok(Err(e)) => return Err(Failure::new(format!("cannot wait for process {}: {e}", s.pid))),
            Err(_) => return Err(Failure::new(format!("process {} did not end within {EXIT_LIMIT:?}", s.pid))),
        }
        s.stdin.take();
    }
    let database_after = DatabaseCounts::read(url).await.map_err(Failure::new)?;
    let mut report = merge(&a, &started, reports, loadavg_before).map_err(Failure::new)?;
    database_before.into_report(database_after, &mut report);
    super::drive::node_figures(&a, &mut report, url).await.map_err(Failure::new)?;
    if a.json {
        print_json(&report);
    } else {
        super::drive::print_report(&report);
    }
    Ok(ExitCode::SUCCESS)
}

/// Wait for every child to be ready, say go, and gather their reports (each bounded).
async fn drive(
    a: &DriveArgs,
    processes: u32,
    started: &mut [Started],
    said: &mut mpsc::UnboundedReceiver<(usize, Result<Said, String>)>,
) -> Result<Vec<BenchReport>, String> {
    let n = started.len();
    let mut ready = vec![false; n];
    let ready_by = Instant::now() + READY_LIMIT;
    let bar = if a.json { indicatif::ProgressBar::hidden() } else { indicatif::ProgressBar::new_spinner() };
    bar.set_message(format!("starting {processes} processes"));
    bar.enable_steady_tick(Duration::from_millis(200));
    while ready.iter().any(|r| !r) {
        match next(said, ready_by, started).await? {
            (k, Said::Ready(_)) => ready[k] = true,
            (k, other) => return Err(format!("process {} said {other:?} before it was ready", started[k].pid)),
        }
    }
    for s in started.iter_mut() {
        let stdin = s.stdin.as_mut().expect("the lifeline is open");
        stdin.write_all(b"go\n").await.map_err(|e| format!("cannot tell process {} to go: {e}", s.pid))?;
        stdin.flush().await.map_err(|e| format!("cannot tell process {} to go: {e}", s.pid))?;
    }
    bar.finish_and_clear();
    let bar = match (a.json, a.duration) {
        (true, _) => indicatif::ProgressBar::hidden(),
        (false, None) => super::progress(a.executions as usize, "measured"),
        (false, Some(_)) => {
            let bar = indicatif::ProgressBar::new_spinner();
            bar.set_message("measured");
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        }
    };
    let run_by = Instant::now() + a.duration.unwrap_or_default() + RUN_LIMIT;
    let mut progress = vec![0u64; n];
    let mut reports: Vec<Option<BenchReport>> = (0..n).map(|_| None).collect();
    while reports.iter().any(Option::is_none) {
        match next(said, run_by, started).await? {
            (k, Said::Progress(p)) => {
                progress[k] = p;
                bar.set_position(progress.iter().sum());
            }
            (k, Said::Report(r)) => {
                progress[k] = r.executions;
                bar.set_position(progress.iter().sum());
                reports[k] = Some(*r);
            }
            (k, Said::Ready(_)) => return Err(format!("process {} said ready twice", started[k].pid)),
        }
    }
    bar.finish_and_clear();
    Ok(reports.into_iter().map(|r| r.expect("every process reported")).collect())
}

/// The next thing a child says, by `by`; a child that ends first is an error with its exit status.
async fn next(
    said: &mut mpsc::UnboundedReceiver<(usize, Result<Said, String>)>,
    by: Instant,
    started: &mut [Started],
) -> Result<(usize, Said), String> {
    match tokio::time::timeout_at(by.into(), said.recv()).await {
        Ok(Some((k, Ok(s)))) => Ok((k, s)),
        Ok(Some((_, Err(e)))) => Err(e),
        Ok(None) => {
            // Every stdout closed: name who ended and how.
            let mut ended = Vec::new();
            for s in started.iter_mut() {
                if let Ok(Ok(status)) = tokio::time::timeout(Duration::from_secs(5), s.child.wait()).await {
                    ended.push(format!("process {} ended {status}", s.pid));
                }
            }
            Err(format!("the processes stopped before reporting: {}", ended.join("; ")))
        }
        Err(_) => Err("a process did not report in time (killed them all)".to_string()),
    }
}

/// One report of the children's: sums over the time from the first start to the last end.
fn merge(
    a: &DriveArgs,
    started: &[Started],
    reports: Vec<BenchReport>,
    loadavg_before: Option<f64>,
) -> Result<BenchReport, String> {
    let mut latency = histogram();
    let (mut start, mut end) = (u64::MAX, 0u64);
    let mut rows = Vec::new();
    for (r, s) in reports.iter().zip(started) {
        let w = r.window.as_ref().ok_or_else(|| format!("process {} reported no window", s.pid))?;
        start = start.min(w.start_us);
        end = end.max(w.end_us);
        for &[value, count] in &w.latency_us {
            latency.record_n(value, count).map_err(|e| format!("process {}: a latency out of range: {e}", s.pid))?;
        }
        rows.push(ProcessRow {
            pid: s.pid,
            executions: r.executions,
            seconds: r.seconds,
            node_completions: r.node_completions,
            nodes_per_second: r.nodes_per_second,
            journal_syncs: r.journal_syncs,
            cpu_seconds: r.cpu_seconds,
        });
    }
    let seconds = (end.saturating_sub(start) as f64 / 1e6).max(1e-9);
    let sum = |f: fn(&BenchReport) -> u64| reports.iter().map(f).sum::<u64>();
    let executions = sum(|r| r.executions);
    let nodes = sum(|r| r.node_completions);
    let syncs = sum(|r| r.journal_syncs);
    let cpu: f64 = reports.iter().map(|r| r.cpu_seconds).sum();
    let first = &reports[0];
    Ok(BenchReport {
        workload: first.workload.clone(),
        workflow_id: first.workflow_id.clone(),
        store: first.store.clone(),
        concurrency: a.concurrency,
        warmup_executions: sum(|r| r.warmup_executions),
        executions,
        seconds,
        executions_per_second: executions as f64 / seconds,
        node_completions: nodes,
        nodes_per_second: nodes as f64 / seconds,
        execution_latency: Percentiles::of(&latency),
        node_latency: Percentiles::default(),
        nodes: Vec::new(),
        node_sample_executions: 0,
        journal_syncs: syncs,
        syncs_per_node: if nodes == 0 { 0.0 } else { syncs as f64 / nodes as f64 },
        journal_appends: None,
        cpu_seconds: cpu,
        cpu_cores_busy: cpu / seconds,
        peak_rss_bytes: reports.iter().map(|r| r.peak_rss_bytes).max().unwrap_or(0),
        cores: first.cores,
        loadavg_before,
        processes: Some(reports.len() as u32),
        per_process: rows,
        database_commits: None,
        database_wal_syncs: None,
        window: Some(Window { start_us: start, end_us: end, latency_us: Vec::new() }),
    })
}

/// The database server's own counts, read before and after a window.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DatabaseCounts {
    /// `pg_stat_database.xact_commit`: every client's committed
    /// transactions in this database, reads included.
    commits: u64,
    /// `pg_stat_wal.wal_sync`: the server's WAL syncs to disk (every
    /// database's; `None` before PostgreSQL 14).
    wal_syncs: Option<u64>,
}

impl DatabaseCounts {
    /// Read them now (statistics are read afresh: a new connection).
    pub(crate) async fn read(url: &str) -> Result<DatabaseCounts, String> {
        use sqlx::Connection;
        let place = crate::journal::redact_url(url);
        let mut conn = tokio::time::timeout(Duration::from_secs(10), sqlx::PgConnection::connect(url))
            .await
            .map_err(|_| format!("{place}: no answer in 10 s"))?
            .map_err(|e| format!("{place}: {e}"))?;
        let commits: i64 =
            sqlx::query_scalar("SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()")
                .fetch_one(&mut conn)
                .await
                .map_err(|e| format!("{place}: reading pg_stat_database: {e}"))?;
        let wal_syncs: Option<i64> =
            sqlx::query_scalar("SELECT wal_sync FROM pg_stat_wal").fetch_one(&mut conn).await.ok();
        let _ = conn.close().await;
        Ok(DatabaseCounts { commits: commits.max(0) as u64, wal_syncs: wal_syncs.map(|n| n.max(0) as u64) })
    }

    /// What happened between `self` and `after`, into `report`.
    pub(crate) fn into_report(self, after: DatabaseCounts, report: &mut BenchReport) {
        report.database_commits = Some(after.commits.saturating_sub(self.commits));
        report.database_wal_syncs = after.wal_syncs.zip(self.wal_syncs).map(|(a, b)| a.saturating_sub(b));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_add_up_to_the_whole() {
        for (total, parts) in [(1000u64, 3u64), (64, 3), (3, 3), (10, 4)] {
            let shares: Vec<u64> = (0..parts).map(|k| share(total, parts, k)).collect();
            assert_eq!(shares.iter().sum::<u64>(), total, "{shares:?}");
            assert!(shares.iter().max().unwrap() - shares.iter().min().unwrap() <= 1, "{shares:?}");
        }
    }
}
