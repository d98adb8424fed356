//! `jamjet bench [WORKFLOW.yaml | --workload W]`: drive a workflow with N
//! executions (or for `--duration`) at concurrency C, on the embedded store
//! (sled in a fresh temp dir, or `--memory`) or a server (`--server URL`),
//! and report what it cost.
//!
//! 1. **Warm-up** (`--warmup`, a count of executions or a duration): the
//!    same load, not in the figures; every warm-up execution has finished
//!    before the measured window opens, so the counters read around the
//!    window hold only the window's work.
//! 2. **Measured window**: C workers each start an execution, drive it to
//!    its end (answering any event it parks on with `--payload`, and any
//!    approval with "approved"), check its final state, and go again. The
//!    time from submit to the end goes into an HDR histogram. The window
//!    closes when the last execution of it finishes.
//! 3. **Counters**, read before and after the window: node completions
//!    (every durable `NodeCompleted`, children of fan-outs included), disk
//!    syncs of the journal, CPU time and peak resident memory: of this
//!    process when embedded, of the server (its `/metrics`) with `--server`.
//! 4. **Per-node latency**: the journaled `duration_us` of every
//!    `NodeCompleted` of the window's executions (up to `--node-sample`
//!    executions, evenly spaced, children included), per node id.
//!
//! Any execution that fails, or ends in a state its workload does not make,
//! fails the run (exit 1) naming the execution.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::http::{loadavg, parse_duration};
use super::workloads::{LoopbackModel, Workload, default_payload};
use super::{TempDir, histogram, progress, tempdir};
use crate::cli::{CliResult, Failure, print_json};
use crate::client::{Client, Item};
use crate::clock::{Clock, SystemClock};
use crate::id::ExecutionId;
use crate::ir::{NodeKind, Workflow, compile_str};
use crate::journal::{Event, Status};
use crate::runtime::{Decision, Runtime, WaitKind};

#[derive(clap::Args, Debug)]
pub struct DriveArgs {
    /// A YAML workflow to drive (instead of a built-in --workload).
    pub workflow: Option<PathBuf>,
    /// A built-in workload (the default: linear10).
    #[arg(long, short = 'w', value_enum, conflicts_with = "workflow")]
    pub workload: Option<Workload>,
    /// How many executions to measure.
    #[arg(long, short = 'n', default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub executions: u64,
    /// Measure for this long instead of a count (e.g. 10s, 1500ms).
    #[arg(long, value_parser = parse_duration, conflicts_with = "executions")]
    pub duration: Option<Duration>,
    /// Executions in flight at once.
    #[arg(long, short = 'c', default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub concurrency: u32,
    /// Load before the measured window: a count of executions (`200`) or a duration (`2s`).
    #[arg(long, default_value = "1s", value_parser = parse_warmup)]
    pub warmup: Amount,
    /// Each execution's input, as JSON (a file's workflow: default `{}`).
    #[arg(long)]
    pub input: Option<String>,
    /// The payload sent to an execution parked on an event, as JSON.
    #[arg(long)]
    pub payload: Option<String>,
    /// Keep the journal in memory instead of sled (nothing reaches the disk).
    #[arg(long, conflicts_with_all = ["server", "dir"])]
    pub memory: bool,
    /// Run on sled in this directory (kept) instead of a fresh temp dir.
    #[arg(long, conflicts_with = "server")]
    pub dir: Option<PathBuf>,
    /// Drive this server (e.g. http://127.0.0.1:7700) through its REST API.
    #[arg(long, env = "JAMJET_SERVER")]
    pub server: Option<String>,
    /// Bearer key for a server that asks for one: from `JAMJET_API_KEY` only
    /// (a flag would show the key in `ps`).
    #[arg(skip = std::env::var("JAMJET_API_KEY").ok())]
    pub api_key: Option<String>,
    /// Read per-node latencies from at most this many of the window's executions.
    #[arg(long, default_value_t = 10_000)]
    pub node_sample: usize,
    /// Run the load across this many processes sharing the `--store`
    /// (this executable again, each with its share of `-n` and `-c`),
    /// measured together from the first one's start to the last one's end.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=64), conflicts_with_all = ["server", "memory", "dir"])]
    pub processes: Option<u32>,
    /// One of the processes of `--processes` (what its parent starts):
    /// JSON lines on stdout, a start signal on stdin, and it stops when
    /// stdin closes.
    #[arg(long, hide = true)]
    pub child: bool,
    /// Print the figures as JSON.
    #[arg(long)]
    pub json: bool,
}

/// How much load: a count of executions, or a time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Amount {
    Executions(u64),
    Time(Duration),
}

/// `200` (executions) or `2s`, `1500ms`, `1m` (time).
pub fn parse_warmup(s: &str) -> Result<Amount, String> {
    match s.trim().parse::<u64>() {
        Ok(n) => Ok(Amount::Executions(n)),
        Err(_) => parse_duration(s).map(Amount::Time),
    }
}

/// No window runs more executions than this (a bound besides time).
const MAX_EXECUTIONS: u64 = 10_000_000;
/// How many times one execution may park before the harness gives up on it.
const MAX_PARKS: usize = 64;

/// Latency percentiles, microseconds.
#[derive(Debug, Serialize, Deserialize, Clone, Copy, Default, PartialEq)]
pub struct Percentiles {
    pub count: u64,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
    pub mean_us: f64,
}

impl Percentiles {
    pub(super) fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Percentiles::default();
        }
        Percentiles {
            count: h.len(),
            p50_us: h.value_at_quantile(0.50),
            p90_us: h.value_at_quantile(0.90),
            p99_us: h.value_at_quantile(0.99),
            max_us: h.max(),
            mean_us: h.mean(),
        }
    }
}

/// One node's latency.
#[derive(Debug, Serialize, Deserialize)]
pub struct NodeRow {
    pub node: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(flatten)]
    pub latency: Percentiles,
}

/// What `jamjet bench` measured.
#[derive(Debug, Serialize, Deserialize)]
pub struct BenchReport {
    /// The built-in workload, or the workflow file.
    pub workload: String,
    pub workflow_id: String,
    /// `sled`, `memory`, `postgres` (`--store`) or the server's URL.
    pub store: String,
    pub concurrency: u32,
    pub warmup_executions: u64,
    /// The measured window.
    pub executions: u64,
    pub seconds: f64,
    pub executions_per_second: f64,
    /// Durable `NodeCompleted` records in the window (fan-out children included).
    pub node_completions: u64,
    pub nodes_per_second: f64,
    /// Submit to end, per execution.
    pub execution_latency: Percentiles,
    /// Each node's own run time as journaled (`NodeCompleted.duration_us`), all nodes.
    pub node_latency: Percentiles,
    /// The same per node id.
    pub nodes: Vec<NodeRow>,
    /// Executions (children included) whose nodes were read for the latencies.
    pub node_sample_executions: usize,
    /// Disk syncs of the journal in the window (0 in memory; on PostgreSQL, its COMMITs).
    pub journal_syncs: u64,
    pub syncs_per_node: f64,
    /// Journal appends in the window (embedded only).
    pub journal_appends: Option<u64>,
    /// CPU time (user + system) in the window, of this process or the server's.
    pub cpu_seconds: f64,
    /// `cpu_seconds / seconds`: how many cores the window kept busy.
    pub cpu_cores_busy: f64,
    pub peak_rss_bytes: u64,
    pub cores: usize,
    /// The 1-minute load average before the run (the machine may be shared).
    pub loadavg_before: Option<f64>,
    /// With `--processes`: how many processes shared the load (the CPU
    /// time is their sum, the peak resident memory their largest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processes: Option<u32>,
    /// With `--processes`: each process's own window.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub per_process: Vec<super::processes::ProcessRow>,
    /// On PostgreSQL: COMMITs of the whole database in the window, from
    /// `pg_stat_database` (every transaction, reads included, and other
    /// clients of that database too).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database_commits: Option<u64>,
    /// On PostgreSQL: the server's WAL syncs to disk in the window, from
    /// `pg_stat_wal` (every database's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database_wal_syncs: Option<u64>,
    /// A process of `--processes` only: its window, for its parent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<super::processes::Window>,
}

/// Where the load goes.
enum Target {
    Embedded { rt: Runtime, store: &'static str, _dir: Option<TempDir> },
    Server(Client),
}

/// What the harness drives.
struct Plan {
    label: String,
    workflow: Arc<Workflow>,
    yaml: String,
    input: Value,
    payload: Value,
    workload: Option<Workload>,
    /// Whether an execution may park on an event or approval (else the
    /// harness waits for the end without looking for waits).
    parks: bool,
}

/// The counters read around the window.
#[derive(Debug, Clone, Copy, Default)]
struct Counters {
    nodes: u64,
    syncs: u64,
    appends: Option<u64>,
    cpu_seconds: f64,
    peak_rss_bytes: u64,
}

pub(crate) async fn run(a: DriveArgs) -> CliResult {
    if a.processes.is_some() && !a.child {
        return super::processes::run(a).await;
    }
    if a.child {
        super::processes::watch_parent();
    }
    let loadavg_before = loadavg();
    let model = match a.workload {
        Some(Workload::ModelLoopback) => Some(LoopbackModel::start().await.map_err(Failure::new)?),
        _ => None,
    };
    let plan = plan(&a, model.as_ref().map(|m| m.base.as_str()))?;
    let target = target(&a).await?;
    let result = measure(&a, &plan, &target, loadavg_before).await;
    if let Target::Embedded { rt, .. } = target {
        rt.shutdown().await;
    }
    drop(model);
    let report = result.map_err(Failure::new)?;
    if a.child {
        super::processes::say(&super::processes::Said::Report(Box::new(report)));
    } else if a.json {
        print_json(&report);
    } else {
        print_report(&report);
    }
    Ok(ExitCode::SUCCESS)
}

fn plan(a: &DriveArgs, model_base: Option<&str>) -> Result<Plan, Failure> {
    let json_arg = |flag: &str, text: &Option<String>| -> Result<Option<Value>, Failure> {
        text.as_deref()
            .map(|t| serde_json::from_str(t).map_err(|e| Failure::usage(format!("--{flag} is not JSON: {e}"))))
            .transpose()
    };
    let input = json_arg("input", &a.input)?;
    let payload = json_arg("payload", &a.payload)?.unwrap_or_else(default_payload);
    let (label, yaml, file, workload) = match (&a.workflow, a.workload) {
        (Some(path), _) => {
            let yaml = std::fs::read_to_string(path)
                .map_err(|e| Failure::usage(format!("cannot read {}: {e}", path.display())))?;
            (path.display().to_string(), yaml, path.display().to_string(), None)
        }
        (None, w) => {
            let w = w.unwrap_or(Workload::Linear10);
            (w.name().to_string(), w.yaml(model_base), format!("<workload {}>", w.name()), Some(w))
        }
    };
    let workflow = compile_str(&yaml, &file).map_err(|d| Failure::usage(d.to_string()))?;
    let parks = workflow.nodes.values().any(|n| match &n.kind {
        NodeKind::Wait(w) => w.event.is_some(),
        NodeKind::Approval(_) => true,
        _ => false,
    });
    let input = input.or_else(|| workload.map(Workload::input)).unwrap_or_else(|| Value::Object(Default::default()));
    Ok(Plan { label, workflow: Arc::new(workflow), yaml, input, payload, workload, parks })
}

async fn target(a: &DriveArgs) -> Result<Target, Failure> {
    if let Some(url) = &a.server {
        let client = Client::new(url).map_err(Failure::from)?.with_key(a.api_key.clone());
        return Ok(Target::Server(client));
    }
    let builder = crate::cli::traced(super::functions::registered(Runtime::builder())).limits(crate::cli::limits());
    if let Some(url) = crate::cli::shared_store() {
        // Measures this process alone on the shared store (it claims nothing left by others).
        let journal = crate::cli::open_shared(url, "bench").await?;
        let rt = builder.journal(journal).resume_on_open(false).open().await?;
        return Ok(Target::Embedded { rt, store: "postgres", _dir: None });
    }
    if a.memory {
        let rt = builder.in_memory().open().await?;
        return Ok(Target::Embedded { rt, store: "memory", _dir: None });
    }
    let (dir, tmp) = match &a.dir {
        Some(d) => (d.clone(), None),
        None => {
            let t = tempdir()?;
            (t.0.clone(), Some(t))
        }
    };
    let rt = builder.data_dir(&dir).open().await?;
    Ok(Target::Embedded { rt, store: "sled", _dir: tmp })
}

async fn measure(
    a: &DriveArgs,
    plan: &Plan,
    target: &Target,
    loadavg_before: Option<f64>,
) -> Result<BenchReport, String> {
    if let Target::Server(c) = target {
        c.register_yaml(&plan.yaml, false).await.map_err(|e| match e.code() {
            Some("workflow_conflict") => {
                format!("{e} (the server holds other content under this workflow id and version: bump `version:`)")
            }
            _ => e.to_string(),
        })?;
    }
    let quiet = a.json;
    let unused = AtomicU64::new(0);
    let warmup_executions = match a.warmup {
        Amount::Executions(0) => 0,
        w => load(plan, target, a.concurrency, w, "warm-up", quiet, &unused).await?.done(),
    };
    // The window's executions are told apart by their creation time (ms):
    // open it a millisecond after the last warm-up one was created.
    tokio::time::sleep(Duration::from_millis(1)).await;
    if a.child {
        // Every process of the run opens its window at its parent's word.
        super::processes::ready(warmup_executions).await?;
    }
    // One process on a shared store: the database's own counts too (a
    // `--processes` parent reads them around all its children).
    let store_url = match target {
        Target::Embedded { store: "postgres", .. } if !a.child => crate::cli::shared_store(),
        _ => None,
    };
    let database_before = match &store_url {
        Some(url) => Some(super::processes::DatabaseCounts::read(url).await?),
        None => None,
    };
    let before = counters(target).await?;
    let window_start_ms = SystemClock.now_ms();
    let window_start_us = super::processes::unix_us();
    let amount = a.duration.map_or(Amount::Executions(a.executions), Amount::Time);
    let done = Arc::new(AtomicU64::new(0));
    let ticker = a.child.then(|| super::processes::tick_progress(done.clone()));
    let run = load(plan, target, a.concurrency, amount, "measured", quiet, &done).await;
    let window_end_us = super::processes::unix_us();
    if let Some(t) = ticker {
        t.abort();
    }
    let run = run?;
    let after = counters(target).await?;
    let window_end_ms = SystemClock.now_ms();
    let database_after = match &store_url {
        Some(url) => Some(super::processes::DatabaseCounts::read(url).await?),
        None => None,
    };

    let (node_hist, rows, sampled) =
        node_latencies(target, &plan.workflow, window_start_ms, window_end_ms, a.node_sample).await?;
    let nodes = after.nodes.saturating_sub(before.nodes);
    let syncs = after.syncs.saturating_sub(before.syncs);
    let cpu = (after.cpu_seconds - before.cpu_seconds).max(0.0);
    let secs = run.seconds.max(1e-9);
    let mut report = BenchReport {
        workload: plan.label.clone(),
        workflow_id: plan.workflow.id.clone(),
        store: match target {
            Target::Embedded { store, .. } => store.to_string(),
            Target::Server(c) => c.base().to_string(),
        },
        concurrency: a.concurrency,
        warmup_executions,
        executions: run.done(),
        seconds: run.seconds,
        executions_per_second: run.done() as f64 / secs,
        node_completions: nodes,
        nodes_per_second: nodes as f64 / secs,
        execution_latency: Percentiles::of(&run.latency),
        node_latency: Percentiles::of(&node_hist),
        nodes: rows,
        node_sample_executions: sampled,
        journal_syncs: syncs,
        syncs_per_node: if nodes == 0 { 0.0 } else { syncs as f64 / nodes as f64 },
        journal_appends: match (before.appends, after.appends) {
            (Some(b), Some(a)) => Some(a.saturating_sub(b)),
            _ => None,
        },
        cpu_seconds: cpu,
        cpu_cores_busy: cpu / secs,
        peak_rss_bytes: after.peak_rss_bytes,
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        loadavg_before,
        processes: None,
        per_process: Vec::new(),
        database_commits: None,
        database_wal_syncs: None,
        window: a.child.then(|| super::processes::Window {
            start_us: window_start_us,
            end_us: window_end_us,
            latency_us: run.latency.iter_recorded().map(|v| [v.value_iterated_to(), v.count_at_value()]).collect(),
        }),
    };
    if let (Some(before), Some(after)) = (database_before, database_after) {
        before.into_report(after, &mut report);
    }
    Ok(report)
}

/// The per-node latencies of a `--processes` run, read from the store
/// (its executions created in the window, as one process's run reads them).
pub(super) async fn node_figures(a: &DriveArgs, report: &mut BenchReport, url: &str) -> Result<(), String> {
    let Some(w) = report.window.take() else { return Ok(()) };
    let plan = plan(a, None).map_err(|f| f.message)?;
    let journal = crate::cli::open_shared(url, "bench").await.map_err(|f| f.message)?;
    let rt = Runtime::builder().journal(journal).resume_on_open(false).open().await.map_err(|e| e.to_string())?;
    let target = Target::Embedded { rt, store: "postgres", _dir: None };
    let read = node_latencies(&target, &plan.workflow, w.start_us / 1000, w.end_us / 1000 + 1, a.node_sample).await;
    if let Target::Embedded { rt, .. } = target {
        rt.shutdown().await;
    }
    let (all, rows, sampled) = read?;
    report.node_latency = Percentiles::of(&all);
    report.nodes = rows;
    report.node_sample_executions = sampled;
    Ok(())
}

/// One phase's load: how long it took, and each finished execution's latency.
struct Run {
    seconds: f64,
    latency: Histogram<u64>,
}

impl Run {
    fn done(&self) -> u64 {
        self.latency.len()
    }
}

/// `concurrency` workers drive executions until `amount` have started (or
/// its time has passed); the phase ends when the last one finishes. The
/// first failure stops every worker and fails the phase.
async fn load(
    plan: &Plan,
    target: &Target,
    concurrency: u32,
    amount: Amount,
    phase: &str,
    quiet: bool,
    done: &AtomicU64,
) -> Result<Run, String> {
    let (n, deadline) = match amount {
        Amount::Executions(n) => (n, None),
        Amount::Time(t) => (MAX_EXECUTIONS, Some(t)),
    };
    let bar = match (deadline, quiet) {
        (_, true) => indicatif::ProgressBar::hidden(),
        (Some(_), false) => {
            let bar = indicatif::ProgressBar::new_spinner();
            bar.set_style(
                indicatif::ProgressStyle::with_template("{msg:>10} {spinner} {pos} executions, {per_sec} [{elapsed}]")
                    .expect("a valid template"),
            );
            bar.set_message(phase.to_string());
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        }
        (None, false) => progress(n as usize, phase),
    };
    let claimed = AtomicU64::new(0);
    let stop = AtomicBool::new(false);
    let began = Instant::now();
    let worker = || async {
        let mut hist = histogram();
        loop {
            if stop.load(Ordering::Relaxed) || deadline.is_some_and(|d| began.elapsed() >= d) {
                return Ok(hist);
            }
            if claimed.fetch_add(1, Ordering::Relaxed) >= n {
                return Ok(hist);
            }
            let started = Instant::now();
            if let Err(e) = drive_one(plan, target).await {
                stop.store(true, Ordering::Relaxed);
                return Err(e);
            }
            hist.saturating_record((started.elapsed().as_micros() as u64).max(1));
            bar.inc(1);
            done.fetch_add(1, Ordering::Relaxed);
        }
    };
    let results: Vec<Result<Histogram<u64>, String>> =
        futures::future::join_all((0..concurrency).map(|_| worker())).await;
    let seconds = began.elapsed().as_secs_f64();
    bar.finish_and_clear();
    let mut latency = histogram();
    for r in results {
        latency.add(r?).expect("histograms with the same bounds");
    }
    Ok(Run { seconds, latency })
}

/// Start one execution and drive it to its end; check how it ended.
async fn drive_one(plan: &Plan, target: &Target) -> Result<(), String> {
    let (id, status, state) = match target {
        Target::Embedded { rt, .. } => drive_embedded(plan, rt).await?,
        Target::Server(c) => drive_server(plan, c).await?,
    };
    if status != Status::Completed {
        return Err(format!("execution {id} ended {status}, not completed (inspect it: jamjet inspect {id})"));
    }
    if let Some(w) = plan.workload {
        w.check(&state).map_err(|e| format!("execution {id}: {e}"))?;
    }
    Ok(())
}

async fn drive_embedded(plan: &Plan, rt: &Runtime) -> Result<(ExecutionId, Status, Value), String> {
    let id = rt.submit(&plan.workflow, plan.input.clone()).await.map_err(|e| e.to_string())?;
    if !plan.parks {
        let out = rt.wait(id).await.map_err(|e| format!("execution {id}: {e}"))?;
        return Ok((id, out.status, out.state));
    }
    for _ in 0..MAX_PARKS {
        let out = rt.settle(id).await.map_err(|e| format!("execution {id}: {e}"))?;
        // Settled and not waiting itself: ended, or its branches wait.
        if out.status.is_terminal() {
            return Ok((id, out.status, out.state));
        }
        for w in rt.waiting_in_family(id).map_err(|e| format!("execution {id}: {e}"))? {
            match (w.kind, &w.event) {
                (WaitKind::Event, Some(event)) => rt.signal(w.id, event, plan.payload.clone()).await,
                (WaitKind::Approval, _) => rt
                    .approve(
                        w.id,
                        Decision {
                            node: Some(w.node.clone()),
                            call: w.call.clone(),
                            approved: true,
                            by: "jamjet bench".into(),
                            comment: None,
                        },
                    )
                    .await
                    .map(|_| ()),
                _ => Ok(()),
            }
            .map_err(|e| format!("execution {}: answering its wait at `{}`: {e}", w.id, w.node))?;
        }
    }
    Err(format!("execution {id} parked more than {MAX_PARKS} times"))
}

async fn drive_server(plan: &Plan, c: &Client) -> Result<(ExecutionId, Status, Value), String> {
    let wf = &plan.workflow;
    let sub = c.submit(&wf.id, Some(&wf.version), &plan.input, None, None).await.map_err(|e| e.to_string())?;
    let id = sub.id;
    let mut follow = c.follow(id, 0);
    let mut answered = 0;
    let mut state = Value::Null;
    // Bounded: the stream ends with the execution; waits are answered at most MAX_PARKS times.
    loop {
        let next = if plan.parks {
            // A branch's wait shows in its own history, not its parent's:
            // when the stream goes quiet, ask what the execution waits for.
            match tokio::time::timeout(QUIET, follow.next()).await {
                Ok(next) => next,
                Err(_) => {
                    answered += answer_waits(plan, c, id).await?;
                    if answered > MAX_PARKS {
                        return Err(format!("execution {id} parked more than {MAX_PARKS} times"));
                    }
                    continue;
                }
            }
        } else {
            follow.next().await
        };
        match next.map_err(|e| format!("execution {id}: {e}"))? {
            Some(Item::Record(r)) => match r.event {
                Event::ExecutionCompleted { state: s } => {
                    state = s.value().map_err(|e| format!("execution {id}: {e}"))?
                }
                Event::Waiting { event, prompt, .. } if event.is_some() || prompt.is_some() => {
                    answered += answer_waits(plan, c, id).await?;
                    if answered > MAX_PARKS {
                        return Err(format!("execution {id} parked more than {MAX_PARKS} times"));
                    }
                }
                _ => {}
            },
            Some(Item::End(status)) => return Ok((id, status, state)),
            Some(Item::Token(_)) => {}
            None => return Err(format!("execution {id}: its event stream ended without an end")),
        }
    }
}

/// How long a parked execution's stream may stay quiet before the harness
/// asks the server what it waits for.
const QUIET: Duration = Duration::from_millis(250);

/// Answer what a server says `id` waits for: events with the payload,
/// approvals with "approved". A wait that moved on meanwhile (answered
/// already, or timed out) is skipped. How many were answered.
async fn answer_waits(plan: &Plan, c: &Client, id: ExecutionId) -> Result<usize, String> {
    let ex = c.execution(id).await.map_err(|e| format!("execution {id}: {e}"))?;
    let mut answered = 0;
    for w in ex.waiting {
        let target = w.id.unwrap_or(id);
        let r = match (w.kind.as_str(), &w.event) {
            ("event", Some(event)) => c.signal(target, event, &plan.payload).await.map(|_| ()),
            ("approval", _) => c.approve(target, true, Some(&w.node), Some("jamjet bench"), None).await.map(|_| ()),
            _ => continue,
        };
        match r {
            Ok(()) => answered += 1,
            Err(e) if matches!(e.code(), Some("not_waiting" | "finished")) => {}
            Err(e) => return Err(format!("execution {target}: answering its wait at `{}`: {e}", w.node)),
        }
    }
    Ok(answered)
}

async fn counters(target: &Target) -> Result<Counters, String> {
    match target {
        Target::Embedded { rt, .. } => {
            let stats = rt.journal_stats();
            let usage = crate::procstat::usage();
            Ok(Counters {
                nodes: rt.node_latency().iter().map(|(_, s)| s.count).sum(),
                syncs: stats.syncs,
                appends: Some(stats.appends),
                cpu_seconds: usage.cpu_seconds,
                peak_rss_bytes: usage.peak_rss_bytes,
            })
        }
        Target::Server(c) => {
            let text = c.metrics().await.map_err(|e| e.to_string())?;
            Ok(Counters {
                nodes: metric_sum(&text, "jamjet_node_duration_seconds_count") as u64,
                syncs: metric_sum(&text, "jamjet_journal_sync_seconds_count") as u64,
                appends: None,
                cpu_seconds: metric_sum(&text, "jamjet_process_cpu_seconds_total"),
                peak_rss_bytes: metric_sum(&text, "jamjet_process_peak_resident_memory_bytes") as u64,
            })
        }
    }
}

/// The sum of every sample of `name` (any labels) in a Prometheus text exposition.
fn metric_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let rest = l.strip_prefix(name)?;
            let value = match rest.chars().next()? {
                '{' => rest.split_once("} ")?.1,
                ' ' => rest.trim_start(),
                _ => return None,
            };
            value.split_whitespace().next()?.parse::<f64>().ok()
        })
        .sum()
}

/// Every `NodeCompleted.duration_us` of the executions created in the
/// window (children included), at most `cap` of them evenly spaced.
async fn node_latencies(
    target: &Target,
    wf: &Workflow,
    from_ms: u64,
    to_ms: u64,
    cap: usize,
) -> Result<(Histogram<u64>, Vec<NodeRow>, usize), String> {
    let in_window = |created: u64| created >= from_ms && created <= to_ms;
    let ids: Vec<ExecutionId> = match target {
        Target::Embedded { rt, .. } => rt
            .list(None)
            .map_err(|e| e.to_string())?
            .into_iter()
            .filter(|m| in_window(m.created_ms))
            .map(|m| m.id)
            .collect(),
        Target::Server(c) => c
            .list_all(None)
            .await
            .map_err(|e| e.to_string())?
            .into_iter()
            .filter(|m| in_window(m.created_ms))
            .map(|m| m.id)
            .collect(),
    };
    let step = ids.len().div_ceil(cap.max(1)).max(1);
    let sample: Vec<ExecutionId> = ids.into_iter().step_by(step).take(cap).collect();
    let histories = futures::stream::iter(sample.iter().copied())
        .map(|id| async move {
            match target {
                Target::Embedded { rt, .. } => rt.events(id).map_err(|e| e.to_string()),
                Target::Server(c) => c.events(id, 0).await.map_err(|e| e.to_string()),
            }
        })
        .buffer_unordered(16);
    let mut all = histogram();
    let mut by_node: BTreeMap<String, Histogram<u64>> = BTreeMap::new();
    let mut histories = std::pin::pin!(histories);
    while let Some(records) = histories.next().await {
        for r in records? {
            if let Event::NodeCompleted { node, duration_us, .. } = r.event {
                let us = duration_us.max(1);
                all.saturating_record(us);
                by_node.entry(node).or_insert_with(histogram).saturating_record(us);
            }
        }
    }
    let rows = by_node
        .into_iter()
        .map(|(node, h)| NodeRow {
            kind: wf.nodes.get(&node).map_or("?", |n| n.kind.type_name()).to_string(),
            node,
            latency: Percentiles::of(&h),
        })
        .collect();
    Ok((all, rows, sample.len()))
}

pub(super) fn print_report(r: &BenchReport) {
    let ms = |us: u64| us as f64 / 1000.0;
    println!("workload    {} ({}), store {}", r.workload, r.workflow_id, r.store);
    if let Some(la) = r.loadavg_before {
        println!("machine     {} cores, load average {la:.2} before the run", r.cores);
    }
    println!(
        "executions  {} in {:.2} s at concurrency {} = {:.0}/s ({} warm-up executions before)",
        r.executions, r.seconds, r.concurrency, r.executions_per_second, r.warmup_executions
    );
    println!("nodes       {} completed = {:.0}/s", r.node_completions, r.nodes_per_second);
    if let Some(p) = r.processes {
        println!("processes   {p}, sharing the store, from the first start to the last end:");
        for row in &r.per_process {
            println!(
                "  pid {:<8} {} executions in {:.2} s, {:.0} nodes/s, {} COMMITs, {:.2} s CPU",
                row.pid, row.executions, row.seconds, row.nodes_per_second, row.journal_syncs, row.cpu_seconds
            );
        }
    }
    let l = &r.execution_latency;
    println!(
        "execution   p50 {:.3} ms  p90 {:.3} ms  p99 {:.3} ms  max {:.3} ms  (submit to end)",
        ms(l.p50_us),
        ms(l.p90_us),
        ms(l.p99_us),
        ms(l.max_us)
    );
    let l = &r.node_latency;
    println!(
        "node        p50 {} µs  p90 {} µs  p99 {} µs  max {} µs  (each node's own run time, {} nodes of {} executions)",
        l.p50_us, l.p90_us, l.p99_us, l.max_us, l.count, r.node_sample_executions
    );
    const ROWS: usize = 12;
    for n in r.nodes.iter().take(ROWS) {
        println!(
            "  {:<14} {:<9} p50 {:>7} µs  p99 {:>7} µs  max {:>7} µs  ({})",
            n.node, n.kind, n.latency.p50_us, n.latency.p99_us, n.latency.max_us, n.latency.count
        );
    }
    if r.nodes.len() > ROWS {
        println!("  … {} more in --json", crate::plural::count(r.nodes.len() - ROWS, "node", "nodes"));
    }
    let appends = r.journal_appends.map(|a| format!(", {a} appends")).unwrap_or_default();
    println!("journal     {} syncs{appends} = {:.2} syncs per node", r.journal_syncs, r.syncs_per_node);
    if let Some(c) = r.database_commits {
        let per_node = if r.node_completions == 0 { 0.0 } else { c as f64 / r.node_completions as f64 };
        println!(
            "postgres    {c} COMMITs in the database meanwhile = {per_node:.2} per node (pg_stat_database: every \
             client's, reads included)"
        );
    }
    if let Some(w) = r.database_wal_syncs {
        let per_node = if r.node_completions == 0 { 0.0 } else { w as f64 / r.node_completions as f64 };
        println!("            {w} WAL syncs to disk = {per_node:.2} per node (pg_stat_wal: the whole server's)");
    }
    println!(
        "cpu         {:.2} s = {:.2} cores busy; peak resident {:.1} MiB{}",
        r.cpu_seconds,
        r.cpu_cores_busy,
        r.peak_rss_bytes as f64 / (1024.0 * 1024.0),
        match (r.processes, r.store.starts_with("http")) {
            (Some(_), _) => " (the largest process's; CPU summed)",
            (None, true) => " (the server's)",
            (None, false) => " (this process)",
        }
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_is_a_count_or_a_duration() {
        assert_eq!(parse_warmup("200"), Ok(Amount::Executions(200)));
        assert_eq!(parse_warmup("2s"), Ok(Amount::Time(Duration::from_secs(2))));
        assert_eq!(parse_warmup("150ms"), Ok(Amount::Time(Duration::from_millis(150))));
        assert!(parse_warmup("soon").is_err());
    }

    #[test]
    fn metric_sums_add_every_labelled_sample() {
        let text = "# HELP x\njamjet_node_duration_seconds_count{type=\"function\"} 10\n\
                    jamjet_node_duration_seconds_count{type=\"set\"} 5\n\
                    jamjet_node_duration_seconds_sum{type=\"set\"} 0.5\n\
                    jamjet_process_cpu_seconds_total 1.25\n";
        assert_eq!(metric_sum(text, "jamjet_node_duration_seconds_count"), 15.0);
        assert_eq!(metric_sum(text, "jamjet_process_cpu_seconds_total"), 1.25);
        assert_eq!(metric_sum(text, "jamjet_missing"), 0.0);
    }
}
