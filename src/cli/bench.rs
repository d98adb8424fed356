//! `jamjet bench`: the benchmark harness.
//!
//! - `jamjet bench [WORKFLOW.yaml | --workload W]` ([`drive`]): N executions
//!   (or `--duration`) at concurrency C on the embedded store or a server:
//!   executions/s, node completions/s, HDR latency percentiles per
//!   execution and per node, journal syncs per node, CPU time, peak memory.
//! - `jamjet bench parked` (here): park many executions on waits, measure
//!   what they cost in memory, then signal them all and measure how fast
//!   they resume, while timers fire under that load.
//!
//! It runs on a fresh sled data dir (a temp dir unless `--data-dir` is
//! given explicitly with `--keep`), in this process, so resident memory is
//! the runtime's own: read from `/proc/self/status` (Linux).
//!
//! `jamjet bench http` (the server under load) lives in [`http`] and
//! [`fanout`]; `jamjet bench --processes P --store postgres://...` (one
//! load across P processes sharing the store) in [`processes`]; `jamjet
//! bench takeover` (a killed worker's executions taken over) in [`takeover`].

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use serde::Serialize;
use serde_json::json;

use super::{CliResult, Failure, print_json};

mod drive;
mod fanout;
pub(super) mod functions;
mod http;
mod processes;
mod takeover;
mod workers;
mod workloads;
use crate::Runtime;
use crate::id::ExecutionId;
use crate::ir::compile_str;
use crate::journal::{Event, Status};

#[derive(clap::Args, Debug)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct Args {
    #[command(subcommand)]
    pub which: Option<Which>,
    #[command(flatten)]
    pub drive: drive::DriveArgs,
}

#[derive(clap::Subcommand, Debug)]
pub enum Which {
    /// Park executions on waits, signal them all, time timers under load.
    Parked(ParkedArgs),
    /// Load the server: 64 clients posting executions, then 1,000 SSE subscribers on one.
    Http(http::HttpArgs),
    /// Kill a worker that owns executions mid-step; time their takeover by the others (--store).
    Takeover(takeover::TakeoverArgs),
    /// Hand executions to real workers; time how fast they claim and run them all (--store).
    Workers(workers::WorkersArgs),
}

#[derive(clap::Args, Debug)]
pub struct ParkedArgs {
    /// How many executions to park.
    #[arg(long, default_value_t = 100_000)]
    pub executions: usize,
    /// How many submissions or signals are in flight at once.
    #[arg(long, default_value_t = 512)]
    pub in_flight: usize,
    /// Timers set to fire while the signals are delivered.
    #[arg(long, default_value_t = 200)]
    pub timers: usize,
    /// Run in this directory (kept) instead of a fresh temp dir.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Print the figures as JSON.
    #[arg(long)]
    pub json: bool,
}

const PARKED: &str = r#"
id: bench-parked
state_schema: { n: int, payload: any, done: bool }
nodes:
  wait: { type: wait, event: "go:{{ state.n }}", output_key: payload, next: finish }
  finish: { type: set, values: { done: true } }
"#;

const TIMER: &str = r#"
id: bench-timer
state_schema: { n: int }
nodes:
  nap: { type: wait, duration_ms: DURATION }
"#;

/// What `bench parked` measured.
#[derive(Debug, Serialize)]
pub struct ParkedReport {
    pub executions: usize,
    pub park_seconds: f64,
    pub parked_per_second: f64,
    /// Resident memory with every execution parked, and before any.
    pub rss_parked_bytes: u64,
    pub rss_before_bytes: u64,
    pub bytes_per_parked_execution: f64,
    pub live_actors_parked: usize,
    pub signal_seconds: f64,
    pub resumed_per_second: f64,
    pub timers: usize,
    /// How late timers fired under the signalling load, milliseconds.
    pub timer_late_ms_p50: u64,
    pub timer_late_ms_p99: u64,
    pub timer_late_ms_max: u64,
    pub peak_rss_bytes: u64,
}

pub(crate) async fn run(a: Args) -> CliResult {
    match a.which {
        None => drive::run(a.drive).await,
        Some(Which::Parked(p)) => parked(p).await,
        Some(Which::Http(h)) => http::run(h).await,
        Some(Which::Takeover(t)) => takeover::run(t).await,
        Some(Which::Workers(w)) => workers::run(w).await,
    }
}

async fn parked(a: ParkedArgs) -> CliResult {
    let tmp;
    let dir: &Path = match &a.dir {
        Some(d) => d,
        None => {
            tmp = tempdir()?;
            &tmp.0
        }
    };
    let report = measure(dir, &a).await.map_err(Failure::new)?;
    if a.json {
        print_json(&report);
    } else {
        let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
        println!(
            "parked      {} executions in {:.2} s ({:.0}/s)",
            report.executions, report.park_seconds, report.parked_per_second
        );
        println!(
            "memory      {:.1} MiB resident parked ({:.1} MiB before): {:.0} bytes per parked execution; {} live",
            mib(report.rss_parked_bytes),
            mib(report.rss_before_bytes),
            report.bytes_per_parked_execution,
            crate::plural::count(report.live_actors_parked, "actor", "actors")
        );
        println!("signalled   all in {:.2} s: {:.0} resumed/s", report.signal_seconds, report.resumed_per_second);
        println!(
            "timers      {} fired under that load, late by p50 {} ms, p99 {} ms, max {} ms",
            report.timers, report.timer_late_ms_p50, report.timer_late_ms_p99, report.timer_late_ms_max
        );
        println!("peak        {:.1} MiB resident", mib(report.peak_rss_bytes));
    }
    Ok(ExitCode::SUCCESS)
}

/// A temp dir removed on drop.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn tempdir() -> Result<TempDir, Failure> {
    let dir = std::env::temp_dir()
        .join(format!("jamjet-bench-{}", ExecutionId::new(crate::clock::Clock::now_ms(&crate::clock::SystemClock))));
    std::fs::create_dir_all(&dir).map_err(|e| Failure::new(format!("cannot create {}: {e}", dir.display())))?;
    Ok(TempDir(dir))
}

/// A latency histogram in microseconds: 1 µs .. 1 hour, 3 significant
/// digits (values beyond are recorded as the maximum).
pub(crate) fn histogram() -> hdrhistogram::Histogram<u64> {
    hdrhistogram::Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds")
}

pub(crate) fn progress(len: usize, what: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(len as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{msg:>10} [{bar:40}] {pos}/{len} {per_sec} eta {eta}")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    bar.set_message(what.to_string());
    bar
}

async fn measure(dir: &Path, a: &ParkedArgs) -> Result<ParkedReport, String> {
    let rt = Runtime::open(dir).await.map_err(|e| e.to_string())?;
    let wf = compile_str(PARKED, "bench-parked.yaml").map_err(|d| d.to_string())?;
    let rss_before = crate::procstat::usage().rss_bytes;

    // Park them all.
    let bar = progress(a.executions, "parking");
    let began = Instant::now();
    let mut ids = Vec::with_capacity(a.executions);
    let mut pending = FuturesUnordered::new();
    for n in 0..a.executions {
        if pending.len() >= a.in_flight {
            ids.push(next(&mut pending).await?);
            bar.inc(1);
        }
        let rt = rt.clone();
        let wf = &wf;
        pending.push(async move {
            let id = rt.submit(wf, json!({ "n": n })).await.map_err(|e| e.to_string())?;
            let out = rt.settle(id).await.map_err(|e| e.to_string())?;
            match out.status {
                Status::Waiting => Ok((n, id)),
                other => Err(format!("execution {id} is {other}, not waiting")),
            }
        });
    }
    while let Some(r) = pending.next().await {
        ids.push(r?);
        bar.inc(1);
    }
    let park_seconds = began.elapsed().as_secs_f64();
    bar.finish_and_clear();
    // Hibernation is asynchronous: give the supervisor a moment to evict.
    let mut live = rt.live().await.map_err(|e| e.to_string())?.len();
    for _ in 0..200 {
        if live == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        live = rt.live().await.map_err(|e| e.to_string())?.len();
    }
    let rss_parked = crate::procstat::usage().rss_bytes;

    // Timers that come due while the signals flow.
    let timer_wf = compile_str(&TIMER.replace("DURATION", "300"), "bench-timer.yaml").map_err(|d| d.to_string())?;
    let mut timers = Vec::with_capacity(a.timers);
    for n in 0..a.timers {
        timers.push(rt.submit(&timer_wf, json!({ "n": n })).await.map_err(|e| e.to_string())?);
    }

    // Signal them all; done when every one has completed.
    let bar = progress(ids.len(), "signalling");
    let began = Instant::now();
    let mut pending = FuturesUnordered::new();
    for (n, id) in ids.iter().copied() {
        if pending.len() >= a.in_flight {
            next(&mut pending).await?;
            bar.inc(1);
        }
        let rt = rt.clone();
        pending.push(async move {
            rt.signal(id, &format!("go:{n}"), json!({ "n": n })).await.map_err(|e| e.to_string())?;
            let out = rt.wait(id).await.map_err(|e| e.to_string())?;
            match out.status {
                Status::Completed => Ok(id),
                other => Err(format!("execution {id} is {other} after its signal")),
            }
        });
    }
    while let Some(r) = pending.next().await {
        r?;
        bar.inc(1);
    }
    let signal_seconds = began.elapsed().as_secs_f64();
    bar.finish_and_clear();

    // How late each timer fired: its TimerFired against its deadline.
    let mut late = Vec::with_capacity(timers.len());
    for id in &timers {
        let out = rt.wait(*id).await.map_err(|e| e.to_string())?;
        if out.status != Status::Completed {
            return Err(format!("timer execution {id} is {}", out.status));
        }
        let records = rt.events(*id).map_err(|e| e.to_string())?;
        let deadline = records.iter().find_map(|r| match &r.event {
            Event::Waiting { deadline_ms, .. } => *deadline_ms,
            _ => None,
        });
        let fired = records.iter().find(|r| matches!(r.event, Event::TimerFired { .. })).map(|r| r.at_ms);
        if let (Some(d), Some(f)) = (deadline, fired) {
            late.push(f.saturating_sub(d));
        }
    }
    late.sort_unstable();
    let pct = |p: f64| late.get(((late.len() as f64 - 1.0) * p).round() as usize).copied().unwrap_or(0);
    let report = ParkedReport {
        executions: ids.len(),
        park_seconds,
        parked_per_second: ids.len() as f64 / park_seconds,
        rss_parked_bytes: rss_parked,
        rss_before_bytes: rss_before,
        bytes_per_parked_execution: rss_parked.saturating_sub(rss_before) as f64 / ids.len().max(1) as f64,
        live_actors_parked: live,
        signal_seconds,
        resumed_per_second: ids.len() as f64 / signal_seconds,
        timers: late.len(),
        timer_late_ms_p50: pct(0.5),
        timer_late_ms_p99: pct(0.99),
        timer_late_ms_max: late.last().copied().unwrap_or(0),
        peak_rss_bytes: crate::procstat::usage().peak_rss_bytes,
    };
    rt.shutdown().await;
    Ok(report)
}

async fn next<T>(
    pending: &mut FuturesUnordered<impl std::future::Future<Output = Result<T, String>>>,
) -> Result<T, String> {
    pending.next().await.expect("a future is pending")
}
