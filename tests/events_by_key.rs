//! Events by key (`Runtime::publish`, `jamjet signal --event`): delivered
//! to every execution waiting for the key, hibernated ones woken; kept
//! when none waits, and taken by the first wait for it; the wait index and
//! kept events survive a restart and a `kill -9`; bad input is refused
//! with nothing delivered or kept. Real sled on temp dirs, the real binary.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use jamjet::clock::ManualClock;
use jamjet::id::ExecutionId;
use jamjet::journal::{Event, Status};
use jamjet::{Error, Runtime, ir};
use serde_json::{Value, json};
use support::{jamjet, jamjet_json, jamjet_out, run_until_paused, workflow_file};

const LIMIT: Duration = Duration::from_secs(20);

/// Bounded in time: a hang fails the test instead of stalling CI.
async fn within<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(LIMIT, f).await.unwrap_or_else(|_| panic!("{what} did not happen within {LIMIT:?}"))
}

/// Waits for `payment:{order_id}`, then ends.
const PAY: &str = r#"
id: pay
state_schema: { order_id: str, payment: any }
nodes:
  wait_payment: { type: wait, event: "payment:{{ state.order_id }}", output_key: payment, next: done }
  done: { type: end }
"#;

fn pay() -> ir::Workflow {
    ir::compile_str(PAY, "pay.yaml").unwrap_or_else(|d| panic!("{d}"))
}

fn signals(rt: &Runtime, id: ExecutionId) -> Vec<(String, String)> {
    rt.events(id)
        .unwrap()
        .into_iter()
        .filter_map(|r| match r.event {
            Event::SignalReceived { key, payload } => Some((key, payload.0)),
            _ => None,
        })
        .collect()
}

/// Park `id` and wait (bounded) until it is hibernated: no actor in memory.
async fn parked_and_hibernated(rt: &Runtime, id: ExecutionId) {
    let parked = within("parking", rt.settle(id)).await.unwrap();
    assert_eq!(parked.status, Status::Waiting);
    within("hibernation", rt.unloaded(id)).await.unwrap();
    assert!(!rt.live().await.unwrap().contains(&id));
}

#[tokio::test]
async fn an_event_by_key_reaches_every_execution_waiting_for_it_hibernated_ones_woken() {
    let dir = tempfile::tempdir().unwrap();
    let rt = Runtime::open(dir.path()).await.unwrap();
    let wf = pay();
    let mut waiting = Vec::new();
    for _ in 0..3 {
        waiting.push(rt.submit(&wf, json!({ "order_id": "42" })).await.unwrap());
    }
    let other = rt.submit(&wf, json!({ "order_id": "7" })).await.unwrap();
    for &id in waiting.iter().chain([&other]) {
        parked_and_hibernated(&rt, id).await;
    }
    let published = within("publishing", rt.publish("payment:42", json!({ "amount": 10 }), None)).await.unwrap();
    let delivered: BTreeSet<ExecutionId> = published.delivered.iter().copied().collect();
    assert_eq!(delivered, waiting.iter().copied().collect::<BTreeSet<_>>(), "{published:?}");
    assert_eq!(published.kept_until_ms, None, "delivered, so not kept");
    for &id in &waiting {
        let out = within("the end", rt.wait(id)).await.unwrap();
        assert_eq!(out.status, Status::Completed);
        assert_eq!(out.state["payment"], json!({ "amount": 10 }));
        assert_eq!(signals(&rt, id), vec![("payment:42".to_string(), r#"{"amount":10}"#.to_string())]);
    }
    // The execution waiting for another key got nothing.
    assert_eq!(rt.status(other).unwrap().status, Status::Waiting);
    assert!(signals(&rt, other).is_empty());
    // The executions it ended wait no more: a second publication finds none, and is kept.
    let again = rt.publish("payment:42", json!(2), Some(Duration::from_secs(60))).await.unwrap();
    assert!(again.delivered.is_empty(), "{again:?}");
    assert!(again.kept_until_ms.is_some(), "{again:?}");
    // Signals by execution id work as before.
    rt.signal(other, "payment:7", json!("by id")).await.unwrap();
    assert_eq!(within("the end", rt.wait(other)).await.unwrap().state["payment"], json!("by id"));
}

#[tokio::test]
async fn an_event_nobody_waits_for_is_kept_and_taken_once_by_the_first_wait_even_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let rt = Runtime::open(dir.path()).await.unwrap();
    let published = rt.publish("payment:9", json!({ "amount": 3 }), Some(Duration::from_secs(3600))).await.unwrap();
    assert!(published.delivered.is_empty());
    let until = published.kept_until_ms.expect("kept");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    assert!(until > now + 3_500_000 && until <= now + 3_600_000, "kept for an hour: {until} vs {now}");
    rt.shutdown().await;

    // Across a restart: the first execution to reach the wait takes it.
    let rt = Runtime::open(dir.path()).await.unwrap();
    let wf = pay();
    let first = rt.submit(&wf, json!({ "order_id": "9" })).await.unwrap();
    let out = within("the kept event taken", rt.wait(first)).await.unwrap();
    assert_eq!(out.status, Status::Completed);
    assert_eq!(out.state["payment"], json!({ "amount": 3 }));
    // Taken once: the next execution waits.
    let second = rt.submit(&wf, json!({ "order_id": "9" })).await.unwrap();
    parked_and_hibernated(&rt, second).await;
    assert!(signals(&rt, second).is_empty(), "a kept event is handed to one execution only");
    let later = rt.publish("payment:9", json!({ "amount": 4 }), None).await.unwrap();
    assert_eq!(later.delivered, vec![second]);
    assert_eq!(within("the end", rt.wait(second)).await.unwrap().state["payment"], json!({ "amount": 4 }));
}

#[tokio::test]
async fn a_waiting_execution_is_found_by_key_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let rt = Runtime::open(dir.path()).await.unwrap();
    let id = rt.submit(&pay(), json!({ "order_id": "5" })).await.unwrap();
    parked_and_hibernated(&rt, id).await;
    rt.shutdown().await;
    let rt = Runtime::open(dir.path()).await.unwrap();
    let published = within("publishing", rt.publish("payment:5", json!("paid"), None)).await.unwrap();
    assert_eq!(published.delivered, vec![id]);
    assert_eq!(within("the end", rt.wait(id)).await.unwrap().state["payment"], json!("paid"));
}

#[tokio::test]
async fn an_expired_kept_event_is_not_handed_out() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(1_700_000_000_000);
    let rt = Runtime::builder().data_dir(dir.path()).clock(clock.clone()).open().await.unwrap();
    let kept = rt.publish("payment:1", json!("late"), Some(Duration::from_secs(10))).await.unwrap();
    assert_eq!(kept.kept_until_ms, Some(1_700_000_010_000));
    clock.advance(10_001);
    let id = rt.submit(&pay(), json!({ "order_id": "1" })).await.unwrap();
    parked_and_hibernated(&rt, id).await;
    assert!(signals(&rt, id).is_empty(), "an expired event was handed out");
    // `keep` 0 keeps nothing.
    let dropped = rt.publish("payment:2", json!(1), Some(Duration::ZERO)).await.unwrap();
    assert_eq!((dropped.delivered.len(), dropped.kept_until_ms), (0, None));
    let id2 = rt.submit(&pay(), json!({ "order_id": "2" })).await.unwrap();
    parked_and_hibernated(&rt, id2).await;
    assert!(signals(&rt, id2).is_empty());
}

#[tokio::test]
async fn a_bad_key_or_keep_is_refused_and_nothing_is_delivered_or_kept() {
    let dir = tempfile::tempdir().unwrap();
    let rt = Runtime::open(dir.path()).await.unwrap();
    let id = rt.submit(&pay(), json!({ "order_id": "" })).await.unwrap();
    parked_and_hibernated(&rt, id).await;
    let long = "k".repeat(513);
    let cases: [(&str, Option<Duration>, &str); 4] = [
        ("", None, "the event key is empty"),
        (&long, None, "513 bytes long; the limit is 512"),
        ("payment:\0", None, "NUL"),
        ("payment:", Some(Duration::from_secs(31 * 86_400)), "longer than an event may be kept"),
    ];
    for (key, keep, says) in cases {
        let err = rt.publish(key, json!(1), keep).await.unwrap_err();
        assert!(matches!(err, Error::InvalidEvent(_)), "{err:?}");
        let text = err.to_string();
        assert!(text.contains(says) && text.contains("nothing was delivered or kept"), "{text}");
    }
    assert!(signals(&rt, id).is_empty(), "a refused event reached the execution waiting for `payment:`");
    assert_eq!(rt.status(id).unwrap().status, Status::Waiting);
}

// ------------------------------------------------------------ the CLI

#[test]
fn jamjet_signal_event_delivers_by_key_and_keeps_what_nobody_waits_for() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let wf = workflow_file(dir.path(), "pay.yaml", PAY);
    let mut ids = Vec::new();
    for _ in 0..2 {
        let out = jamjet_json(&data, &["run", &wf, "--input", r#"{"order_id": "42"}"#, "--json"]);
        assert_eq!(out["status"], "waiting", "{out}");
        ids.push(out["id"].as_str().unwrap().to_string());
    }
    let out = jamjet_json(&data, &["signal", "--event", "payment:42", "--payload", r#"{"amount": 5}"#, "--json"]);
    let delivered: BTreeSet<&str> = out["delivered"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert_eq!(delivered, ids.iter().map(String::as_str).collect::<BTreeSet<_>>(), "{out}");
    assert_eq!(out["kept"], false, "{out}");
    for id in &ids {
        let shown = jamjet_json(&data, &["inspect", id, "--json"]);
        assert_eq!(shown["execution"]["status"], "completed", "{shown}");
    }
    // Nobody waits now: kept, for --keep; the next run takes it at once.
    let out = jamjet_json(&data, &["signal", "--event", "payment:42", "--payload", "7", "--keep", "2h", "--json"]);
    assert_eq!((&out["kept"], out["delivered"].as_array().unwrap().len()), (&json!(true), 0), "{out}");
    let out = jamjet_out(&data, &["signal", "--event", "payment:43", "--payload", "8"]);
    assert!(out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("no execution waits for event `payment:43`: it is kept until"), "{said}");
    let out = jamjet_json(&data, &["run", &wf, "--input", r#"{"order_id": "42"}"#, "--json"]);
    assert_eq!(out["status"], "completed", "the kept event was taken: {out}");
    assert_eq!(out["state"]["payment"], json!(7), "{out}");
}

#[test]
fn jamjet_signal_event_refuses_bad_input_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let wf = workflow_file(dir.path(), "pay.yaml", PAY);
    jamjet_json(&data, &["run", &wf, "--input", r#"{"order_id": "1"}"#, "--json"]);
    let long = "k".repeat(600);
    let cases: [(&[&str], &str); 6] = [
        (&["signal", "--event", ""], "--event: the event key is empty; nothing was delivered or kept"),
        (&["signal", "--event", &long], "--event: the event key is 600 bytes long; the limit is 512"),
        (&["signal", "--event", "payment:1", "--keep", "soon"], "--keep: `soon` is not a duration"),
        (&["signal", "--event", "payment:1", "--keep", "31d"], "--keep: `31d` is longer than an event may be kept"),
        (&["signal", "--event", "payment:1", "--payload", "{"], "--payload is not valid JSON"),
        (&["signal"], "needs an execution id and an event key"),
    ];
    for (args, says) in cases {
        let out = jamjet_out(&data, args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(err.contains(says), "{args:?}: {err}");
    }
    // --keep belongs to --event; an id with --event is refused by the parser.
    let out = jamjet_out(&data, &["signal", "--keep", "1h", "exec_01JM4X8NKWP2ZZ3Q6T1B2C3D4E", "k"]);
    assert!(!out.status.success());
    // Nothing was delivered: the execution still waits.
    let listed = jamjet_json(&data, &["executions", "--json"]);
    let rows = listed.as_array().or_else(|| listed["executions"].as_array()).unwrap().clone();
    assert_eq!(rows.len(), 1, "{listed}");
    assert_eq!(rows[0]["status"], "waiting", "{listed}");
}

// ------------------------------------------------------------ kill -9

/// A holder (`jamjet run`, held right after its execution's `Waiting` is
/// durable) takes `jamjet signal --event` through the data dir's socket and
/// keeps the event; then it is `kill -9`ed. The wait index entry and the
/// kept event are both found again by the next process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wait_index_and_a_kept_event_survive_a_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let wf = workflow_file(dir.path(), "pay.yaml", PAY);
    let mut run = jamjet();
    run.arg("--data-dir").arg(&data).args(["run", &wf, "--input", r#"{"order_id": "42"}"#]);
    let holder = run_until_paused(run, "Waiting", LIMIT, "jamjet run");
    // Through the holder's socket: nobody waits for `order:5`, so it is kept.
    let data2 = data.clone();
    let kept = tokio::task::spawn_blocking(move || {
        jamjet_json(&data2, &["signal", "--event", "order:5", "--payload", r#""kept""#, "--keep", "1h", "--json"])
    })
    .await
    .unwrap();
    assert_eq!(kept["kept"], true, "{kept}");
    holder.kill();

    let rt = Runtime::open(&data).await.unwrap();
    let rows = rt.list(None).unwrap();
    assert_eq!(rows.len(), 1);
    let id = rows[0].id;
    let published = within("publishing", rt.publish("payment:42", json!("after the kill"), None)).await.unwrap();
    assert_eq!(published.delivered, vec![id], "the wait index entry survived the kill");
    assert_eq!(within("the end", rt.wait(id)).await.unwrap().state["payment"], json!("after the kill"));
    let order = ir::compile_str(
        "id: order\nstate_schema: { got: any }\nnodes:\n  w: { type: wait, event: \"order:5\", output_key: got }\n",
        "order.yaml",
    )
    .unwrap();
    let taker = rt.submit(&order, json!({})).await.unwrap();
    let out = within("the kept event taken", rt.wait(taker)).await.unwrap();
    assert_eq!(out.state["got"], Value::from("kept"), "the kept event survived the kill");
}
