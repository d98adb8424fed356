//! `jamjet bench workers --store postgres://...`: how fast real `jamjet
//! worker` processes claim and run executions handed to them.
//!
//! In a schema of its own (created in the store's database and dropped at
//! the end, whatever happens), it starts `--workers` workers with
//! `--capacity` each, submits `-n` executions of a line of ten
//! `bench.step` nodes that first wait until one instant a few seconds
//! ahead (so this process hands them all back, parked, before any is due),
//! and times from that instant to the last one's end, read from the store.
//! The workers are started with their stdin as a lifeline: they drain and
//! stop when this process ends, however it ends.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::json;

use super::processes::unix_us;
use super::takeover::{Worker, connect, in_own_schema, start_worker, stop};
use crate::cli::{CliResult, print_json};

#[derive(clap::Args, Debug)]
pub struct WorkersArgs {
    /// How many workers to start.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=16))]
    pub workers: u32,
    /// How many executions each worker carries at most (`jamjet worker --capacity`).
    #[arg(long, default_value_t = 21, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub capacity: u32,
    /// How many executions to hand them.
    #[arg(long, short = 'n', default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub executions: u32,
    /// Print the figures as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Ten steps after a wait until `at` (RFC 3339).
const WORKFLOW: &str = r#"
id: bench-workers
version: "1"
state_schema: { at: str, i: int }
nodes:
  hold: { type: wait, until: "{{ state.at }}", next: s0 }
  s0: { type: function, function: bench.step, next: s1 }
  s1: { type: function, function: bench.step, next: s2 }
  s2: { type: function, function: bench.step, next: s3 }
  s3: { type: function, function: bench.step, next: s4 }
  s4: { type: function, function: bench.step, next: s5 }
  s5: { type: function, function: bench.step, next: s6 }
  s6: { type: function, function: bench.step, next: s7 }
  s7: { type: function, function: bench.step, next: s8 }
  s8: { type: function, function: bench.step, next: s9 }
  s9: { type: function, function: bench.step }
"#;

/// The steps of each execution (the wait is not counted).
const STEPS: u64 = 10;
/// How long the whole run may take once the executions are due.
const RUN_LIMIT: Duration = Duration::from_secs(300);
/// The instant they are due is this far ahead of the first submission,
/// plus [`PER_SUBMIT`] per execution (a submission takes about a
/// millisecond; a run whose last one came too late fails, saying so).
const MARGIN: Duration = Duration::from_secs(2);
const PER_SUBMIT: Duration = Duration::from_millis(4);

/// What `bench workers` measured.
#[derive(Debug, Serialize)]
pub struct WorkersReport {
    pub workers: u32,
    pub capacity: u32,
    pub executions: u32,
    pub node_completions: u64,
    /// From the instant they were all due to the last one's end (the store's record of it).
    pub seconds: f64,
    pub nodes_per_second: f64,
    pub executions_per_second: f64,
    /// The 1-minute load average before the run (the machine may be shared).
    pub loadavg_before: Option<f64>,
    /// The schema it ran in (dropped).
    pub schema: String,
}

pub(crate) async fn run(a: WorkersArgs) -> CliResult {
    let a = &a;
    let report = in_own_schema("workers", |url, schema| async move { measure(a, &url, &schema).await }).await?;
    if a.json {
        print_json(&report);
    } else {
        println!(
            "workers     {} (capacity {} each), handed {} executions of ten `bench.step` nodes",
            report.workers, report.capacity, report.executions
        );
        println!(
            "ran         {} nodes in {:.2} s from the instant they were due = {:.0} nodes/s ({:.0} executions/s)",
            report.node_completions, report.seconds, report.nodes_per_second, report.executions_per_second
        );
        if let Some(l) = report.loadavg_before {
            println!("machine     load average {l:.2} before the run");
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn measure(a: &WorkersArgs, url: &str, schema: &str) -> Result<WorkersReport, String> {
    let loadavg_before = super::http::loadavg();
    let mut workers: Vec<Worker> = Vec::new();
    let result = async {
        for _ in 0..a.workers {
            workers.push(start_worker(url, Duration::from_secs(5), a.capacity).await?);
        }
        let due_ms = submit(a, url).await?;
        let mut conn = connect(url).await?;
        let by = Instant::now() + RUN_LIMIT + MARGIN * 4;
        let (done, last_ms) = loop {
            let (done, failed, last): (i64, i64, Option<i64>) = sqlx::query_as(
                "SELECT count(*) FILTER (WHERE status = 'completed'), \
                 count(*) FILTER (WHERE status IN ('failed', 'cancelled')), max(updated_ms) FROM executions",
            )
            .fetch_one(&mut conn)
            .await
            .map_err(|e| format!("reading the executions: {e}"))?;
            if failed > 0 {
                return Err(format!("{failed} executions failed or were cancelled: a bench workload should not"));
            }
            if done as u32 == a.executions {
                break (done as u64, last.unwrap_or(0));
            }
            if Instant::now() > by {
                return Err(format!("the workers completed {done} of {} executions in time", a.executions));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let _ = sqlx::Connection::close(conn).await;
        let seconds = (last_ms - due_ms as i64).max(1) as f64 / 1000.0;
        let nodes = done * STEPS;
        Ok(WorkersReport {
            workers: a.workers,
            capacity: a.capacity,
            executions: a.executions,
            node_completions: nodes,
            seconds,
            nodes_per_second: nodes as f64 / seconds,
            executions_per_second: done as f64 / seconds,
            loadavg_before,
            schema: schema.to_string(),
        })
    }
    .await;
    stop(workers).await;
    result
}

/// Submit the executions, each waiting until one instant, and hand them
/// back; answers that instant (unix ms).
async fn submit(a: &WorkersArgs, url: &str) -> Result<u64, String> {
    let wf = crate::ir::compile_str(WORKFLOW, "<bench workers>").map_err(|d| d.to_string())?;
    let journal = crate::cli::open_shared(url, "bench").await.map_err(|f| f.message)?;
    let rt = super::functions::registered(crate::Runtime::builder())
        .journal(journal)
        .resume_on_open(false)
        .open()
        .await
        .map_err(|e| e.to_string())?;
    // Ahead by more than submitting them takes (checked below), and a margin.
    let due_ms = unix_us() / 1000 + (MARGIN + PER_SUBMIT * a.executions).as_millis() as u64;
    let at = crate::clock::format_ms(due_ms);
    let mut failed = None;
    for _ in 0..a.executions {
        if let Err(e) = rt.submit(&wf, json!({ "at": at, "i": 0 })).await {
            failed = Some(e.to_string());
            break;
        }
    }
    rt.shutdown().await;
    if let Some(e) = failed {
        return Err(format!("cannot submit: {e}"));
    }
    if unix_us() / 1000 + 200 > due_ms {
        return Err("submitting took longer than foreseen: the first executions were due before the last was handed \
                    back; run again"
            .to_string());
    }
    Ok(due_ms)
}
