//! `jamjet bench http`: the server under load, over its REST API.
//!
//! 1. **Accept**: `--clients` tasks each `POST /executions` of a 3-node
//!    workflow back to back for `--warmup` then `--duration`; the accept
//!    latency of every request of the measured window goes into an HDR
//!    histogram (p50/p90/p99/max), and accepted/s is the measured count
//!    over the window.
//! 2. **Completion**: every accepted id (warm-up included) must reach
//!    `completed`; read back through `GET /executions` (paged), bounded by
//!    `--completion-timeout`. Nothing lost, or the run fails.
//! 3. **Fan-out** ([`super::fanout`]): `--subscribers` SSE streams on one
//!    execution; each must get every record, in order, then `end`.
//!
//! Without `--server` it serves the API in this process on 127.0.0.1:0
//! over a fresh sled data dir (the embedded default), as `jamjet dev`
//! would. `--direct` skips HTTP and calls the runtime the handler calls
//! (`Runtime::registered` + `Runtime::submit_keyed`): the difference
//! between the two figures is what HTTP costs.
//!
//! This module owns the orchestration, the accept load and the completion
//! check; it must not hold any figure in a timed test.

use std::collections::HashSet;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;
use serde_json::{Value, json};

use super::fanout::{self, FanoutReport};
use super::{Failure, TempDir, histogram, tempdir};
use crate::cli::{CliResult, print_json};
use crate::ir::compile_str;
use crate::journal::Status;
use crate::runtime::Runtime;
use crate::server::{self, AppState, Config};

#[derive(clap::Args, Debug)]
pub struct HttpArgs {
    /// Drive this server (e.g. http://127.0.0.1:7700) instead of one started in-process.
    #[arg(long)]
    pub server: Option<String>,
    /// Bearer key for a server that asks for one: from `JAMJET_API_KEY` only
    /// (a flag would show the key in `ps`).
    #[arg(skip = std::env::var("JAMJET_API_KEY").ok())]
    pub api_key: Option<String>,
    /// Concurrent clients posting executions.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub clients: u32,
    /// How long the measured window lasts (e.g. 10s, 1500ms).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Load before the measured window (not in the figures; its executions are checked too).
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub warmup: Duration,
    /// SSE subscribers on one execution (0 skips the fan-out run).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(0..=20_000))]
    pub subscribers: u32,
    /// How long every accepted execution may take to complete after the load.
    #[arg(long, default_value = "120s", value_parser = parse_duration)]
    pub completion_timeout: Duration,
    /// Call the runtime directly (no HTTP): what the handler's runtime calls cost.
    #[arg(long, conflicts_with = "server")]
    pub direct: bool,
    /// Print the figures as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Parse `10s`, `1500ms`, `2m` or a plain number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    crate::clock::parse_span(s, Some("s"))
}

/// The 3-node workflow the accept load submits.
pub const LOAD_WORKFLOW: &str = include_str!("load.yaml");

/// No client sends more than this many requests (a bound besides time).
const MAX_PER_CLIENT: u64 = 10_000_000;

/// Accept latency percentiles, milliseconds.
#[derive(Debug, Serialize, Clone, Copy, Default)]
pub struct Latency {
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
}

impl Latency {
    fn of(h: &Histogram<u64>) -> Self {
        let ms = |us: u64| us as f64 / 1000.0;
        Latency {
            p50_ms: ms(h.value_at_quantile(0.50)),
            p90_ms: ms(h.value_at_quantile(0.90)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            p999_ms: ms(h.value_at_quantile(0.999)),
            max_ms: ms(h.max()),
            mean_ms: h.mean() / 1000.0,
        }
    }
}

/// What `bench http` measured.
#[derive(Debug, Serialize)]
pub struct HttpReport {
    /// `in-process`, `direct` or the server's URL.
    pub target: String,
    pub clients: u32,
    pub warmup_s: f64,
    pub duration_s: f64,
    /// 1-minute load average before the run (the machine may be shared).
    pub loadavg_before: Option<f64>,
    /// Accepted in the measured window.
    pub accepted: u64,
    pub accepted_per_second: f64,
    pub latency: Latency,
    /// Accepted during the warm-up.
    pub accepted_warmup: u64,
    /// Answers other than 201, and transport errors, over the whole load.
    pub refused: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    pub completion: Completion,
    pub fanout: Option<FanoutReport>,
    /// Journal counters of the in-process runtime (appends, syncs).
    pub journal: Option<crate::journal::Stats>,
}

/// The completion check: every accepted id, read back.
#[derive(Debug, Serialize, Default)]
pub struct Completion {
    pub checked: usize,
    pub completed: usize,
    /// Ended otherwise (failed, cancelled): listed by id, at most 10.
    pub not_completed: Vec<String>,
    /// Still not ended at the timeout.
    pub unfinished: usize,
    /// Not found at all.
    pub lost: usize,
    /// From the end of the load until every one had ended.
    pub seconds_after_load: f64,
    pub ok: bool,
}

/// How the load reaches the runtime: the REST API, or its Rust calls.
#[derive(Clone)]
pub enum Target {
    Http(Api),
    Direct(Runtime),
}

/// A thin client of the REST API.
#[derive(Clone)]
pub struct Api {
    pub http: reqwest::Client,
    pub base: String,
    pub key: Option<String>,
}

impl Api {
    pub fn new(base: &str, key: Option<String>) -> Result<Api, String> {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(usize::MAX)
            .tcp_nodelay(true)
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(Api { http, base: base.trim_end_matches('/').to_string(), key })
    }

    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let rb = self.http.request(method, format!("{}{path}", self.base));
        match &self.key {
            Some(k) => rb.bearer_auth(k),
            None => rb,
        }
    }

    /// Send, and read a JSON answer with one of `ok` statuses.
    pub async fn json(&self, rb: reqwest::RequestBuilder, ok: &[u16]) -> Result<Value, String> {
        let resp = rb.timeout(Duration::from_secs(60)).send().await.map_err(|e| format!("request failed: {e}"))?;
        let (status, url) = (resp.status().as_u16(), resp.url().clone());
        let body = resp.bytes().await.map_err(|e| format!("{url}: reading the body failed: {e}"))?;
        if !ok.contains(&status) {
            return Err(format!("{url}: HTTP {status}: {}", String::from_utf8_lossy(&body)));
        }
        serde_json::from_slice(&body).map_err(|e| format!("{url}: the answer is not JSON: {e}"))
    }

    /// `POST /workflows` (YAML); the same content again is fine.
    pub async fn register(&self, yaml: &str) -> Result<(), String> {
        let rb = self
            .request(reqwest::Method::POST, "/workflows")
            .header(reqwest::header::CONTENT_TYPE, "application/yaml")
            .body(yaml.to_string());
        self.json(rb, &[200, 201]).await.map(|_| ())
    }

    /// `POST /executions`: the new execution's id.
    pub async fn submit(&self, body: Value) -> Result<String, String> {
        let v = self.json(self.request(reqwest::Method::POST, "/executions").json(&body), &[201]).await?;
        v["id"].as_str().map(str::to_string).ok_or_else(|| format!("POST /executions answered without an id: {v}"))
    }

    /// The status of every execution of `workflow`, paging through `GET /executions`.
    async fn statuses(&self, workflow: &str) -> Result<Vec<(String, String)>, String> {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        // Bounded: 100,000 pages of 1,000.
        for _ in 0..100_000 {
            let mut path = format!("/executions?workflow={workflow}&limit=1000");
            if let Some(c) = &cursor {
                path.push_str(&format!("&cursor={c}"));
            }
            let page = self.json(self.request(reqwest::Method::GET, &path), &[200]).await?;
            let rows = page["executions"].as_array().ok_or_else(|| format!("GET {path}: no `executions`: {page}"))?;
            for r in rows {
                let id = r["id"].as_str().unwrap_or_default().to_string();
                out.push((id, r["status"].as_str().unwrap_or_default().to_string()));
            }
            match page["next_cursor"].as_str() {
                Some(c) if !rows.is_empty() => cursor = Some(c.to_string()),
                _ => return Ok(out),
            }
        }
        Err("GET /executions: more than 100,000 pages".into())
    }
}

impl Target {
    async fn submit(&self, n: u64, wf_id: &str) -> Result<String, String> {
        match self {
            Target::Http(api) => api.submit(json!({ "workflow_id": wf_id, "input": { "n": n } })).await,
            Target::Direct(rt) => {
                // What the POST /executions handler does.
                let (_, wf) = rt.registered(wf_id, None).map_err(|e| e.to_string())?;
                let id = rt.submit_keyed(&wf, json!({ "n": n }), None).await.map_err(|e| e.to_string())?;
                Ok(id.to_string())
            }
        }
    }

    async fn statuses(&self, wf_id: &str) -> Result<Vec<(String, String)>, String> {
        match self {
            Target::Http(api) => api.statuses(wf_id).await,
            Target::Direct(rt) => Ok(rt
                .list(None)
                .map_err(|e| e.to_string())?
                .into_iter()
                .filter(|m| m.workflow_id == wf_id)
                .map(|m| (m.id.to_string(), m.status.as_str().to_string()))
                .collect()),
        }
    }
}

/// One client's share of the load.
struct ClientLoad {
    ids: Vec<String>,
    hist: Histogram<u64>,
    measured: u64,
    warm: u64,
    refused: u64,
    errors: u64,
    first_error: Option<String>,
}

pub(crate) async fn run(a: HttpArgs) -> CliResult {
    let loadavg_before = loadavg();
    let tmp: Option<TempDir>;
    let mut served = None;
    let (target, label, rt) = match (&a.server, a.direct) {
        (Some(url), _) => (Target::Http(Api::new(url, a.api_key.clone()).map_err(Failure::new)?), url.clone(), None),
        (None, direct) => {
            tmp = Some(tempdir()?);
            let dir = &tmp.as_ref().expect("just set").0;
            let rt = Runtime::builder().data_dir(dir).limits(crate::cli::limits()).open().await?;
            if direct {
                (Target::Direct(rt.clone()), "direct (runtime calls, no HTTP; sled temp dir)".to_string(), Some(rt))
            } else {
                let (url, stop) = serve_in_process(&rt).await?;
                served = Some(stop);
                let api = Api::new(&url, None).map_err(Failure::new)?;
                (Target::Http(api), format!("in-process server {url} (sled temp dir)"), Some(rt))
            }
        }
    };
    let result = measure(&a, &target, label, loadavg_before, rt.as_ref()).await;
    if let Some((stop, handle)) = served {
        let _ = stop.send(());
        // Bounded: SSE streams end with the server; give them a moment.
        let _ = tokio::time::timeout(Duration::from_secs(10), handle).await;
    }
    drop(target);
    if let Some(rt) = rt {
        rt.shutdown().await;
    }
    let report = result.map_err(Failure::new)?;
    if a.json {
        print_json(&report);
    } else {
        print_summary(&report);
    }
    let fanout_ok = report.fanout.as_ref().is_none_or(|f| f.ok);
    if report.completion.ok && fanout_ok && report.accepted > 0 {
        Ok(ExitCode::SUCCESS)
    } else {
        Err(Failure::new("bench http: a check failed (see above)"))
    }
}

type Served = (tokio::sync::oneshot::Sender<()>, tokio::task::JoinHandle<std::io::Result<()>>);

/// Serve the API over `rt` on 127.0.0.1:0, as `jamjet dev` does.
async fn serve_in_process(rt: &Runtime) -> Result<(String, Served), Failure> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| Failure::new(format!("cannot listen on 127.0.0.1:0: {e}")))?;
    let addr = listener.local_addr().map_err(|e| Failure::new(format!("cannot read the bound address: {e}")))?;
    let state = AppState { rt: rt.clone(), config: Arc::new(Config::new(addr)) };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn(server::serve(state, listener, async move {
        let _ = stopped.await;
    }));
    Ok((format!("http://{addr}"), (stop, handle)))
}

async fn measure(
    a: &HttpArgs,
    target: &Target,
    label: String,
    loadavg_before: Option<f64>,
    rt: Option<&Runtime>,
) -> Result<HttpReport, String> {
    let wf = compile_str(LOAD_WORKFLOW, "bench-http.yaml").map_err(|d| d.to_string())?;
    match target {
        Target::Http(api) => api.register(LOAD_WORKFLOW).await?,
        Target::Direct(rt) => {
            rt.register(&wf, true).await.map_err(|e| e.to_string())?;
        }
    }
    let quiet = a.json;

    // 1. Accept load.
    let began = Instant::now();
    let warm_end = began + a.warmup;
    let end = warm_end + a.duration;
    let accepted_so_far = Arc::new(AtomicU64::new(0));
    let counter = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::with_capacity(a.clients as usize);
    for _ in 0..a.clients {
        let (target, wf_id) = (target.clone(), wf.id.clone());
        let (accepted_so_far, counter) = (accepted_so_far.clone(), counter.clone());
        tasks.push(tokio::spawn(async move {
            let mut load = ClientLoad {
                ids: Vec::new(),
                hist: histogram(),
                measured: 0,
                warm: 0,
                refused: 0,
                errors: 0,
                first_error: None,
            };
            for _ in 0..MAX_PER_CLIENT {
                let sent = Instant::now();
                if sent >= end {
                    break;
                }
                let n = counter.fetch_add(1, Ordering::Relaxed);
                match target.submit(n, &wf_id).await {
                    Ok(id) => {
                        let us = sent.elapsed().as_micros() as u64;
                        load.ids.push(id);
                        accepted_so_far.fetch_add(1, Ordering::Relaxed);
                        if sent >= warm_end {
                            load.hist.saturating_record(us.max(1));
                            load.measured += 1;
                        } else {
                            load.warm += 1;
                        }
                    }
                    Err(e) => {
                        if e.contains("HTTP ") {
                            load.refused += 1;
                        } else {
                            load.errors += 1;
                        }
                        load.first_error.get_or_insert(e);
                        // Do not spin on a dead server.
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            }
            load
        }));
    }
    let bar = time_bar(a.warmup + a.duration, quiet);
    let ticker = {
        let (bar, accepted_so_far) = (bar.clone(), accepted_so_far.clone());
        tokio::spawn(async move {
            let total = end.saturating_duration_since(began);
            for _ in 0..(total.as_millis() / 100 + 1) {
                let t = began.elapsed().min(total);
                bar.set_position(t.as_millis() as u64);
                let phase = if Instant::now() < warm_end { "warm-up" } else { "load" };
                bar.set_message(format!("{phase} {} accepted", accepted_so_far.load(Ordering::Relaxed)));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    let mut hist = histogram();
    let (mut accepted, mut accepted_warmup, mut refused, mut errors) = (0, 0, 0, 0);
    let mut first_error = None;
    let mut ids = Vec::new();
    for t in tasks {
        let load = t.await.map_err(|e| format!("a client task failed: {e}"))?;
        hist.add(&load.hist).map_err(|e| format!("merging histograms: {e}"))?;
        accepted += load.measured;
        accepted_warmup += load.warm;
        refused += load.refused;
        errors += load.errors;
        if first_error.is_none() {
            first_error = load.first_error;
        }
        ids.extend(load.ids);
    }
    let load_end = Instant::now();
    ticker.abort();
    bar.finish_and_clear();
    // The window is measured from its start to the last answer of a request sent in it.
    let window = load_end.saturating_duration_since(warm_end).max(a.duration);

    // 2. Completion.
    let completion = completion(target, &wf.id, &ids, a.completion_timeout, load_end, quiet).await?;

    // 3. Fan-out.
    let fanout = match a.subscribers {
        0 => None,
        n => Some(fanout::run(target, n as usize, quiet).await?),
    };

    Ok(HttpReport {
        target: label,
        clients: a.clients,
        warmup_s: a.warmup.as_secs_f64(),
        duration_s: window.as_secs_f64(),
        loadavg_before,
        accepted,
        accepted_per_second: accepted as f64 / window.as_secs_f64(),
        latency: if hist.is_empty() { Latency::default() } else { Latency::of(&hist) },
        accepted_warmup,
        refused,
        errors,
        first_error,
        completion,
        fanout,
        journal: rt.map(Runtime::journal_stats),
    })
}

/// Wait until every accepted id has ended (bounded), then count.
async fn completion(
    target: &Target,
    wf_id: &str,
    ids: &[String],
    timeout: Duration,
    load_end: Instant,
    quiet: bool,
) -> Result<Completion, String> {
    let ours: HashSet<&str> = ids.iter().map(String::as_str).collect();
    let bar = if quiet { indicatif::ProgressBar::hidden() } else { super::progress(ours.len(), "completing") };
    let deadline = Instant::now() + timeout;
    let mut c = Completion { checked: ours.len(), ..Default::default() };
    loop {
        let statuses = target.statuses(wf_id).await?;
        let (mut done, mut found, mut completed) = (0, 0, 0);
        let mut not_completed = Vec::new();
        for (id, status) in &statuses {
            if !ours.contains(id.as_str()) {
                continue;
            }
            found += 1;
            let status = Status::parse(status);
            if status.is_some_and(Status::is_terminal) {
                done += 1;
                if status == Some(Status::Completed) {
                    completed += 1;
                } else if not_completed.len() < 10 {
                    not_completed.push(format!("{id} ({})", status.map_or("?", Status::as_str)));
                }
            }
        }
        bar.set_position(done as u64);
        if done == ours.len() || Instant::now() >= deadline {
            c.completed = completed;
            c.not_completed = not_completed;
            c.unfinished = found - done;
            c.lost = ours.len() - found;
            c.seconds_after_load = load_end.elapsed().as_secs_f64();
            c.ok = completed == ours.len();
            bar.finish_and_clear();
            return Ok(c);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A bar over wall-clock time, in milliseconds.
fn time_bar(total: Duration, hidden: bool) -> indicatif::ProgressBar {
    if hidden {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(total.as_millis() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("[{bar:40}] {elapsed} {msg}")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    bar
}

/// The 1-minute load average (Linux), to note beside a figure.
pub fn loadavg() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg").ok()?.split_whitespace().next()?.parse().ok()
}

fn print_summary(r: &HttpReport) {
    let l = &r.latency;
    println!("target      {}", r.target);
    if let Some(la) = r.loadavg_before {
        println!("load avg    {la:.2} (1 min, before the run)");
    }
    println!(
        "accept      {} clients, {:.1} s: {} accepted = {:.0}/s ({} in a {:.1} s warm-up; {} refused, {})",
        r.clients,
        r.duration_s,
        r.accepted,
        r.accepted_per_second,
        r.accepted_warmup,
        r.warmup_s,
        r.refused,
        crate::plural::count(r.errors, "error", "errors")
    );
    println!(
        "latency     p50 {:.2} ms  p90 {:.2} ms  p99 {:.2} ms  p99.9 {:.2} ms  max {:.2} ms  (mean {:.2} ms)",
        l.p50_ms, l.p90_ms, l.p99_ms, l.p999_ms, l.max_ms, l.mean_ms
    );
    if let Some(e) = &r.first_error {
        println!("first error {e}");
    }
    let c = &r.completion;
    println!(
        "completion  {}/{} completed, {:.2} s after the load ended{}",
        c.completed,
        c.checked,
        c.seconds_after_load,
        if c.ok {
            String::new()
        } else {
            format!(
                ": FAILED ({} unfinished, {} lost, ended otherwise: {})",
                c.unfinished,
                c.lost,
                c.not_completed.join(", ")
            )
        }
    );
    if let Some(f) = &r.fanout {
        fanout::print_summary(f);
    }
    if let Some(j) = &r.journal {
        println!(
            "journal     {} appends, {} events, {} syncs ({:.0} appends per sync, {:.0} µs per sync)",
            j.appends,
            j.events,
            j.syncs,
            j.appends as f64 / j.syncs.max(1) as f64,
            j.sync_us as f64 / j.syncs.max(1) as f64
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units_and_refuse_nonsense() {
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("1500ms").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("3").unwrap(), Duration::from_secs(3));
        assert!(parse_duration("ten").unwrap_err().contains("not a duration"));
        assert!(parse_duration("5y").unwrap_err().contains("unknown unit `y`"));
    }

    #[test]
    fn the_load_workflow_compiles_with_three_nodes() {
        let wf = compile_str(LOAD_WORKFLOW, "bench-http.yaml").unwrap();
        assert_eq!(wf.nodes.len(), 3);
    }
}
