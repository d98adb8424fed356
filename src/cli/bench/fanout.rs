//! The fan-out half of `jamjet bench http`: many live subscribers on one
//! execution, each of which must get its whole history, in order, then
//! the end.
//!
//! The execution parks on an event first, so every subscriber connects
//! (and has received at least its first record) before anything moves;
//! then one signal lets it run a few `set` nodes and short timers (about a
//! second of appends). Over HTTP a subscriber is
//! `GET /executions/{id}/events/stream` (Server-Sent Events, parsed here);
//! with `--direct`, it is `Runtime::subscribe` + `Runtime::events_after`,
//! what the stream handler sits on. Each subscriber's records are compared
//! with the history read back afterwards (`GET /executions/{id}/events`):
//! same records, same order, nothing missing, nothing twice.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::Notify;

use super::http::{Api, Target};
use crate::id::ExecutionId;
use crate::ir::compile_str;
use crate::journal::Status;

/// Parks on `go`, then about a second of appends (3 timers of 300 ms).
pub const FANOUT_WORKFLOW: &str = r#"
id: bench-sse
version: "1"
state_schema: { go: any, a: int, b: int, c: int, d: int }
nodes:
  gate: { type: wait, event: go, output_key: go, next: s1 }
  s1: { type: set, values: { a: 1 }, next: nap1 }
  nap1: { type: wait, duration_ms: 300, next: s2 }
  s2: { type: set, values: { b: 2 }, next: nap2 }
  nap2: { type: wait, duration_ms: 300, next: s3 }
  s3: { type: set, values: { c: 3 }, next: nap3 }
  nap3: { type: wait, duration_ms: 300, next: s4 }
  s4: { type: set, values: { d: 4 } }
"#;

/// How long a subscriber may take, connect to end.
const SUBSCRIBER_TIMEOUT: Duration = Duration::from_secs(120);
/// How long all subscribers may take to connect.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, Serialize)]
pub struct FanoutReport {
    /// `SSE` (over HTTP) or `feed` (`--direct`: Runtime::subscribe).
    pub via: &'static str,
    pub execution: String,
    pub subscribers: usize,
    /// Subscribers that had their first record before the signal.
    pub connected: usize,
    pub connect_seconds: f64,
    /// Records in the execution's history (the last seq).
    pub events: u64,
    /// Subscribers that got every record, in order, and the end.
    pub complete: usize,
    /// Why some did not (at most 5).
    pub failures: Vec<String>,
    /// From the signal until a subscriber saw the end: median and last.
    pub end_p50_s: f64,
    pub end_max_s: f64,
    pub ok: bool,
}

/// What one subscriber saw.
struct Seen {
    records: Vec<Value>,
    ended: bool,
    ended_after: Option<Duration>,
    error: Option<String>,
}

pub(crate) async fn run(target: &Target, n: usize, quiet: bool) -> Result<FanoutReport, String> {
    let id = start(target).await?;
    let connected = Arc::new(AtomicUsize::new(0));
    let notify = Arc::new(Notify::new());
    let signalled = Arc::new(tokio::sync::OnceCell::<Instant>::new());
    let bar = if quiet { indicatif::ProgressBar::hidden() } else { super::progress(n, "connecting") };
    let began = Instant::now();
    let mut tasks = Vec::with_capacity(n);
    for _ in 0..n {
        let (target, connected, notify, signalled) =
            (target.clone(), connected.clone(), notify.clone(), signalled.clone());
        tasks.push(tokio::spawn(async move {
            let on_first = move || {
                connected.fetch_add(1, Ordering::SeqCst);
                notify.notify_one();
            };
            let seen = tokio::time::timeout(SUBSCRIBER_TIMEOUT, subscribe(&target, id, on_first)).await;
            let mut seen = seen.unwrap_or_else(|_| Seen {
                records: Vec::new(),
                ended: false,
                ended_after: None,
                error: Some(format!("no end within {SUBSCRIBER_TIMEOUT:?}")),
            });
            seen.ended_after = signalled.get().map(Instant::elapsed).filter(|_| seen.ended);
            seen
        }));
    }
    // Everyone connected (or given up), bounded.
    let deadline = Instant::now() + CONNECT_TIMEOUT;
    loop {
        let c = connected.load(Ordering::SeqCst);
        bar.set_position(c as u64);
        if c >= n || tasks.iter().all(|t| t.is_finished()) || Instant::now() >= deadline {
            break;
        }
        let _ = tokio::time::timeout(Duration::from_millis(100), notify.notified()).await;
    }
    bar.finish_and_clear();
    let connect_seconds = began.elapsed().as_secs_f64();
    let connected_n = connected.load(Ordering::SeqCst);
    let _ = signalled.set(Instant::now());
    signal(target, id).await?;
    let mut seen = Vec::with_capacity(n);
    for t in tasks {
        seen.push(t.await.map_err(|e| format!("a subscriber task failed: {e}"))?);
    }
    let history = history(target, id).await?;
    let mut report = judge(id, n, connected_n, connect_seconds, &history, seen);
    report.via = if matches!(target, Target::Http(_)) { "SSE" } else { "feed" };
    Ok(report)
}

/// Register the workflow, start one execution, wait until it is parked.
async fn start(target: &Target) -> Result<ExecutionId, String> {
    let wf = compile_str(FANOUT_WORKFLOW, "bench-sse.yaml").map_err(|d| d.to_string())?;
    let id: ExecutionId = match target {
        Target::Http(api) => {
            api.register(FANOUT_WORKFLOW).await?;
            let id = api.submit(json!({ "workflow_id": wf.id, "input": {} })).await?;
            id.parse().map_err(|e| format!("POST /executions gave a bad id `{id}`: {e}"))?
        }
        Target::Direct(rt) => {
            rt.register(&wf, true).await.map_err(|e| e.to_string())?;
            rt.submit(&wf, json!({})).await.map_err(|e| e.to_string())?
        }
    };
    // Parked on `go` (bounded: 10 s).
    for _ in 0..200 {
        let status = match target {
            Target::Http(api) => {
                let v = api.json(api.request(reqwest::Method::GET, &format!("/executions/{id}")), &[200]).await?;
                Status::parse(v["status"].as_str().unwrap_or_default())
            }
            Target::Direct(rt) => Some(rt.status(id).map_err(|e| e.to_string())?.status),
        };
        match status {
            Some(Status::Waiting) => return Ok(id),
            Some(s) if s.is_terminal() => return Err(format!("fan-out execution {id} ended ({s}) before its signal")),
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    Err(format!("fan-out execution {id} did not park on its event within 10 s"))
}

async fn signal(target: &Target, id: ExecutionId) -> Result<(), String> {
    match target {
        Target::Http(api) => {
            let rb = api
                .request(reqwest::Method::POST, &format!("/executions/{id}/signal"))
                .json(&json!({ "key": "go", "payload": { "n": 1 } }));
            api.json(rb, &[200, 202]).await.map(|_| ())
        }
        Target::Direct(rt) => rt.signal(id, "go", json!({ "n": 1 })).await.map_err(|e| e.to_string()),
    }
}

/// The execution's whole history, each record as JSON.
async fn history(target: &Target, id: ExecutionId) -> Result<Vec<Value>, String> {
    match target {
        Target::Http(api) => {
            let v = api.json(api.request(reqwest::Method::GET, &format!("/executions/{id}/events")), &[200]).await?;
            v["events"].as_array().cloned().ok_or_else(|| format!("GET /executions/{id}/events: no `events`: {v}"))
        }
        Target::Direct(rt) => rt
            .events(id)
            .map_err(|e| e.to_string())?
            .iter()
            .map(|r| serde_json::to_value(r).map_err(|e| e.to_string()))
            .collect(),
    }
}

async fn subscribe(target: &Target, id: ExecutionId, on_first: impl FnOnce()) -> Seen {
    let mut seen = Seen { records: Vec::new(), ended: false, ended_after: None, error: None };
    let result = match target {
        Target::Http(api) => sse(api, id, &mut seen, on_first).await,
        Target::Direct(rt) => feed(rt, id, &mut seen, on_first).await,
    };
    if let Err(e) = result {
        seen.error = Some(e);
    }
    seen
}

/// Follow the live feed in-process, as the stream handler does.
async fn feed(rt: &crate::Runtime, id: ExecutionId, seen: &mut Seen, on_first: impl FnOnce()) -> Result<(), String> {
    let mut on_first = Some(on_first);
    let mut rx = rt.subscribe(id);
    let mut last = 0;
    // Bounded: the history of this workflow is a few dozen records.
    for _ in 0..10_000 {
        for r in rt.events_after(id, last).map_err(|e| e.to_string())? {
            last = r.seq;
            seen.records.push(serde_json::to_value(&r).map_err(|e| e.to_string())?);
            if r.event.is_terminal() {
                seen.ended = true;
            }
        }
        if !seen.records.is_empty()
            && let Some(f) = on_first.take()
        {
            f();
        }
        if seen.ended {
            return Ok(());
        }
        rx.changed().await.map_err(|_| "the feed closed".to_string())?;
    }
    Err("more than 10,000 rounds".into())
}

/// One SSE event.
#[derive(Debug, Default, PartialEq)]
pub struct SseEvent {
    pub id: Option<String>,
    pub event: Option<String>,
    pub data: String,
}

/// Splits a byte stream into SSE events (the WHATWG rules we need: `id`,
/// `event`, multi-line `data`, comments, CRLF or LF).
#[derive(Default)]
pub struct SseParser {
    buf: Vec<u8>,
    current: SseEvent,
    has_data: bool,
}

impl SseParser {
    /// Feed bytes; returns the events they complete.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<SseEvent> {
        self.buf.extend_from_slice(bytes);
        let mut out = Vec::new();
        while let Some(nl) = self.buf.iter().position(|&b| b == b'\n') {
            let mut line: Vec<u8> = self.buf.drain(..=nl).collect();
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            let line = String::from_utf8_lossy(&line);
            if line.is_empty() {
                if self.has_data || self.current.event.is_some() {
                    out.push(std::mem::take(&mut self.current));
                }
                self.current = SseEvent::default();
                self.has_data = false;
                continue;
            }
            if line.starts_with(':') {
                continue;
            }
            let (field, value) = line.split_once(':').unwrap_or((&line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "id" => self.current.id = Some(value.to_string()),
                "event" => self.current.event = Some(value.to_string()),
                "data" => {
                    if self.has_data {
                        self.current.data.push('\n');
                    }
                    self.current.data.push_str(value);
                    self.has_data = true;
                }
                _ => {}
            }
        }
        out
    }
}

/// Follow `GET /executions/{id}/events/stream` to its `end`.
async fn sse(api: &Api, id: ExecutionId, seen: &mut Seen, on_first: impl FnOnce()) -> Result<(), String> {
    let mut on_first = Some(on_first);
    let mut resp = api
        .request(reqwest::Method::GET, &format!("/executions/{id}/events/stream"))
        .header(reqwest::header::ACCEPT, "text/event-stream")
        .send()
        .await
        .map_err(|e| format!("connect: {e}"))?;
    if resp.status() != reqwest::StatusCode::OK {
        return Err(format!("the stream answered HTTP {}", resp.status()));
    }
    let mut parser = SseParser::default();
    // Bounded by SUBSCRIBER_TIMEOUT around it, and by a count of chunks.
    for _ in 0..1_000_000 {
        let Some(chunk) = resp.chunk().await.map_err(|e| format!("reading the stream: {e}"))? else {
            let records = crate::plural::count(seen.records.len(), "record", "records");
            return Err(format!("the stream closed after {records} without `end`"));
        };
        for ev in parser.push(&chunk) {
            if ev.event.as_deref() == Some("end") {
                seen.ended = true;
                return Ok(());
            }
            let record: Value = serde_json::from_str(&ev.data).map_err(|e| format!("an event's data: {e}"))?;
            let seq = record["seq"].as_u64();
            if ev.id.as_deref().and_then(|s| s.parse().ok()) != seq {
                return Err(format!("event id {:?} but record seq {seq:?}", ev.id));
            }
            seen.records.push(record);
            if let Some(f) = on_first.take() {
                f();
            }
        }
    }
    Err("more than 1,000,000 chunks".into())
}

/// Compare what each subscriber saw with the history.
fn judge(
    id: ExecutionId,
    n: usize,
    connected: usize,
    connect_seconds: f64,
    history: &[Value],
    seen: Vec<Seen>,
) -> FanoutReport {
    let mut failures = Vec::new();
    let mut complete = 0;
    let mut ends = Vec::new();
    let last = history.last().and_then(|r| r["seq"].as_u64()).unwrap_or(0);
    for (i, s) in seen.into_iter().enumerate() {
        let problem =
            if let Some(e) = s.error {
                Some(e)
            } else if !s.ended {
                Some("no end".to_string())
            } else if s.records.len() != history.len() {
                let seqs: Vec<u64> = s.records.iter().filter_map(|r| r["seq"].as_u64()).collect();
                let got = crate::plural::count(s.records.len(), "record", "records");
                Some(format!("got {got} (seqs {seqs:?}), the history has {}", history.len()))
            } else {
                s.records.iter().zip(history).position(|(a, b)| a != b).map(|at| {
                    format!("record {} differs: got {}, the history has {}", at + 1, s.records[at], history[at])
                })
            };
        match problem {
            None => {
                complete += 1;
                ends.extend(s.ended_after);
            }
            Some(p) if failures.len() < 5 => failures.push(format!("subscriber {i}: {p}")),
            Some(_) => {}
        }
    }
    ends.sort_unstable();
    let at = |q: f64| ends.get(((ends.len() as f64 - 1.0) * q).round() as usize).map_or(0.0, Duration::as_secs_f64);
    let ended = history.last().is_some_and(|r| {
        let e = &r["event"];
        ["ExecutionCompleted", "ExecutionFailed", "ExecutionCancelled"].iter().any(|k| e.get(k).is_some())
    });
    if !ended {
        failures.insert(0, format!("execution {id}: its history has no terminal record"));
    }
    FanoutReport {
        via: "SSE",
        execution: id.to_string(),
        subscribers: n,
        connected,
        connect_seconds,
        events: last,
        complete,
        failures,
        end_p50_s: at(0.5),
        end_max_s: ends.last().map_or(0.0, Duration::as_secs_f64),
        ok: ended && complete == n && n > 0,
    }
}

pub(crate) fn print_summary(f: &FanoutReport) {
    println!(
        "fan-out     {} {} subscribers on {} ({} connected in {:.2} s): {}/{} got all {} records in order and the end; \
         end seen p50 {:.2} s, last {:.2} s after the signal{}",
        f.subscribers,
        f.via,
        f.execution,
        f.connected,
        f.connect_seconds,
        f.complete,
        f.subscribers,
        f.events,
        f.end_p50_s,
        f.end_max_s,
        if f.ok { String::new() } else { format!(": FAILED: {}", f.failures.join("; ")) }
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_events_split_across_chunks_with_comments_and_crlf() {
        let mut p = SseParser::default();
        assert!(p.push(b": keep-alive\n\nid: 1\nevent: Exec").is_empty());
        let got = p.push(b"utionStarted\r\ndata: {\"seq\":1}\r\n\r\nevent: end\ndata: {\"status\":\n");
        assert_eq!(
            got,
            vec![SseEvent { id: Some("1".into()), event: Some("ExecutionStarted".into()), data: "{\"seq\":1}".into() }]
        );
        let got = p.push(b"data: \"completed\"}\n\n");
        assert_eq!(
            got,
            vec![SseEvent { id: None, event: Some("end".into()), data: "{\"status\":\n\"completed\"}".into() }]
        );
    }

    #[test]
    fn the_fanout_workflow_compiles() {
        let wf = compile_str(FANOUT_WORKFLOW, "bench-sse.yaml").unwrap();
        assert_eq!(wf.nodes.len(), 8);
    }

    #[test]
    fn a_subscriber_missing_a_record_fails_the_run() {
        let history = vec![
            json!({"seq": 1, "event": "A"}),
            json!({"seq": 2, "event": "B"}),
            json!({"seq": 3, "event": {"ExecutionCompleted": {}}}),
        ];
        let full = Seen { records: history.clone(), ended: true, ended_after: None, error: None };
        let gap =
            Seen { records: vec![history[0].clone(), history[2].clone()], ended: true, ended_after: None, error: None };
        let id = ExecutionId::new(1);
        let r = judge(id, 2, 2, 0.0, &history, vec![full, gap]);
        assert_eq!(r.complete, 1);
        assert!(!r.ok);
        assert!(r.failures[0].contains("seqs [1, 3]"), "{:?}", r.failures);
        let full = Seen { records: history.clone(), ended: true, ended_after: None, error: None };
        assert!(judge(id, 1, 1, 0.0, &history, vec![full]).ok);
    }
}
