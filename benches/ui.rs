//! `cargo bench --bench ui`: the web UI's two reads, through the real
//! HTTP server (`jamjet::server::serve` on 127.0.0.1, reqwest), on a sled
//! store:
//!
//! - `list_newest_50_of_100000`: `GET /executions?order=desc&limit=50&usage=true`
//!   (the UI's executions page) with 100,000 executions in the store;
//! - `list_next_page_of_100000`: the same from a cursor in the middle of the index;
//! - `list_filter_matching_none_of_100000`: `&status=failed` when none failed
//!   (read through the index of rows by status: nothing);
//! - `list_workflow_matching_none_of_100000`: `&workflow=nope`, the worst
//!   case of a filter (a scan that reads every row);
//! - `timeline_10000_events`: `GET /executions/{id}/timeline` of one
//!   execution with 10,000 events (3,333 node visits).
//!
//! The store is filled once, untimed: one real execution of a 2-node
//! workflow, whose records are then appended again under 100,000 new ids
//! (the index rows a real run writes). Under `CI=true` the sizes shrink
//! (10,000 executions, 1,000 events). Figures: README.md (The web UI).

use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use jamjet::journal::{Append, ExecutionMeta, Journal, Json, Record, SledJournal, Status, Usage};
use jamjet::server::{AppState, Config};
use jamjet::{Event, ExecutionId, Runtime, compile_str};
use serde_json::json;
use tokio::runtime::Runtime as Tokio;

const WF: &str = r#"
id: ui-bench
version: 1.0.0
state_schema: { name: str, greeting: str, shout: str }
nodes:
  greet: { type: set, values: { greeting: "hello {{ state.name }}" }, next: shout }
  shout: { type: set, values: { shout: "HELLO {{ state.name }}" } }
"#;

fn ci() -> bool {
    std::env::var_os("CI").is_some()
}

fn tokio() -> Tokio {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("a tokio runtime")
}

/// Append `records` as execution `id`'s history, in pieces of 1,000, the last with its index row.
async fn append(journal: &SledJournal, id: ExecutionId, records: &[Record], meta: &ExecutionMeta) {
    let chunks: Vec<&[Record]> = records.chunks(1000).collect();
    for (n, chunk) in chunks.iter().enumerate() {
        let events: Vec<Event> = chunk.iter().map(|r| r.event.clone()).collect();
        let last = n + 1 == chunks.len();
        journal
            .append(Append {
                execution: id,
                first_seq: chunk[0].seq,
                at_ms: chunk[0].at_ms,
                events: &events,
                meta: if n == 0 || last { Some(meta) } else { None },
                workflow: None,
                timers: &[],
                waits: &[],
                session: None,
            })
            .await
            .expect("appended");
    }
}

fn ui(c: &mut Criterion) {
    let (executions, visits) = if ci() { (10_000u64, 333u32) } else { (100_000, 3_333) };
    let tokio = tokio();
    let dir = tempfile::tempdir().expect("a temp dir");
    let journal = Arc::new(SledJournal::open(dir.path()).expect("the journal opens"));
    let (_rt, url, big, base) = tokio.block_on(async {
        let rt = Runtime::builder().journal(journal.clone()).open().await.expect("the runtime opens");
        let wf = compile_str(WF, "ui-bench.yaml").expect("the workflow compiles");
        rt.register(&wf, true).await.expect("registered");
        let real = rt.submit_keyed(&wf, json!({ "name": "ada" }), None).await.expect("started");
        let out = rt.wait(real).await.expect("it ends");
        assert_eq!(out.status, Status::Completed);
        let records = rt.events(real).expect("its records");
        let model = rt.status(real).expect("its row");

        // 100,000 executions like it, 512 appends at a time (group commit).
        let base = model.created_ms - executions;
        let mut n = 0;
        while n < executions {
            let batch: Vec<u64> = (n..(n + 512).min(executions)).collect();
            n += batch.len() as u64;
            let appends = batch.into_iter().map(|i| {
                let id = ExecutionId::new(base + i);
                let meta = ExecutionMeta { id, created_ms: base + i, updated_ms: base + i + 3, ..model.clone() };
                let (journal, records) = (journal.clone(), records.clone());
                async move { append(&journal, id, &records, &meta).await }
            });
            futures::future::join_all(appends).await;
        }

        // One execution of 10,000 events.
        let big = ExecutionId::new(model.created_ms + 1);
        let mut events = vec![records[0].event.clone()];
        for visit in 1..=visits {
            let node = "greet".to_string();
            events.push(Event::NodeScheduled { node: node.clone(), visit });
            events.push(Event::NodeStarted { node: node.clone(), visit, attempt: 1 });
            events.push(Event::NodeCompleted {
                node,
                visit,
                attempt: 1,
                patch: Json::from_value(&json!({ "greeting": format!("hello {visit}") })),
                next: None,
                duration_us: 120,
                usage: Usage::default(),
            });
        }
        let t0 = model.created_ms + 1;
        let records: Vec<Record> = events
            .into_iter()
            .enumerate()
            .map(|(i, event)| Record { seq: i as u64 + 1, at_ms: t0 + i as u64, event })
            .collect();
        let meta = ExecutionMeta { id: big, created_ms: t0, updated_ms: t0 + records.len() as u64, ..model.clone() };
        append(&journal, big, &records, &meta).await;

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a port");
        let addr = listener.local_addr().expect("its address");
        let state = AppState { rt: rt.clone(), config: Arc::new(Config::new(addr)) };
        tokio::spawn(jamjet::server::serve(state, listener, std::future::pending()));
        (rt, format!("http://{addr}"), big, base)
    });
    let http = reqwest::Client::new();
    let get = |path: String| {
        let (http, url) = (http.clone(), url.clone());
        async move {
            let res = http.get(format!("{url}{path}")).send().await.expect("an answer");
            assert_eq!(res.status(), 200);
            res.bytes().await.expect("a body").len()
        }
    };
    // Check what is measured once.
    let first: serde_json::Value = tokio.block_on(async {
        let body = http.get(format!("{url}/executions?order=desc&limit=50&usage=true")).send().await.unwrap();
        body.json().await.unwrap()
    });
    assert_eq!(first["executions"].as_array().map(Vec::len), Some(50));
    assert!(first["executions"][0]["usage"].is_object(), "{}", first["executions"][0]);
    let middle = ExecutionId::new(base + executions / 2).to_string();

    let mut g = c.benchmark_group("ui");
    g.sample_size(20).measurement_time(Duration::from_secs(if ci() { 1 } else { 5 }));
    g.bench_function(format!("list_newest_50_of_{executions}"), |b| {
        b.to_async(&tokio).iter(|| get("/executions?order=desc&limit=50&usage=true".to_string()))
    });
    g.bench_function(format!("list_next_page_of_{executions}"), |b| {
        b.to_async(&tokio).iter(|| get(format!("/executions?order=desc&limit=50&usage=true&cursor={middle}")))
    });
    // A status filter that matches nothing: the index of rows by status has no entry for it.
    g.bench_function(format!("list_filter_matching_none_of_{executions}"), |b| {
        b.to_async(&tokio).iter(|| get("/executions?order=desc&limit=50&usage=true&status=failed".to_string()))
    });
    // A workflow filter that matches nothing: the worst case of a scan, every row read.
    g.bench_function(format!("list_workflow_matching_none_of_{executions}"), |b| {
        b.to_async(&tokio).iter(|| get("/executions?order=desc&limit=50&usage=true&workflow=nope".to_string()))
    });
    g.bench_function(format!("timeline_{}_events", 1 + 3 * visits), |b| {
        b.to_async(&tokio).iter(|| get(format!("/executions/{big}/timeline")))
    });
    g.finish();
}

criterion_group!(benches, ui);
criterion_main!(benches);
