//! Retention through the real binary: `jamjet prune` on a data dir, and
//! through a running `jamjet dev` (its socket and `--server`) with its own
//! `--retention` pruning every 100 ms while executions run, wait and end.
//! A running or waiting execution is never touched; a pruned one is
//! reported as pruned (`inspect`, 410 `pruned`), with its tombstone.

mod support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::dev::DevServer;
use support::{PAY, Server, TWO_STEPS, jamjet_json, jamjet_out, workflow_file};

/// Fails at once: nothing listens on port 1 of loopback.
const FAILS: &str = r#"id: fails
state_schema: { out: any }
nodes:
  call: { type: http, url: "http://127.0.0.1:1/", output_key: out, retry: { max_attempts: 1 } }
"#;

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn prune_removes_ended_executions_and_leaves_waiting_ones_and_inspect_says_what_was_pruned() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let two = workflow_file(dir.path(), "two.yaml", TWO_STEPS);
    let fails = workflow_file(dir.path(), "fails.yaml", FAILS);
    let pay = workflow_file(dir.path(), "pay.yaml", PAY);
    let id = |v: &Value| v["id"].as_str().unwrap().to_string();
    let older = id(&jamjet_json(&data, &["run", &two, "--json", "--key", "order-1"]));
    let newer = id(&jamjet_json(&data, &["run", &two, "--json"]));
    let failed = jamjet_out(&data, &["run", &fails, "--json"]);
    let failed = id(&serde_json::from_slice(&failed.stdout).unwrap());
    let waiting = jamjet_json(&data, &["run", &pay, "--json", "--input", r#"{"order_id": "7"}"#]);
    assert_eq!(waiting["status"], "waiting", "{waiting}");
    let waiting = id(&waiting);
    std::thread::sleep(Duration::from_millis(5));

    // Bad policies are refused, naming what is wrong; nothing changes.
    for (args, says) in [
        (&["prune", "--older-than", "30"][..], "--older-than: `30` needs a unit"),
        (&["prune", "--older-than", "1ms", "--status", "waiting"], "`waiting` executions are never pruned"),
        (&["prune", "--older-than", "1ms", "--status", "done"], "`done` is not a status"),
    ] {
        let out = jamjet_out(&data, args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(says), "{args:?}: {}", stderr(&out));
    }
    // A dry run names them and removes nothing.
    let dry = jamjet_json(&data, &["prune", "--older-than", "1ms", "--dry-run", "--json"]);
    assert_eq!((dry["dry_run"].as_bool(), dry["selected"].as_u64()), (Some(true), Some(3)), "{dry}");
    assert_eq!(dry["ids"], json!([older, newer, failed]), "oldest ended first");
    assert_eq!(dry["freed"]["executions"], 0);
    let listed = jamjet_json(&data, &["executions", "--json"]);
    assert_eq!(listed.as_array().unwrap().len(), 4, "{listed}");

    // Keep the newest of each workflow: only the older `two` goes.
    let kept = jamjet_json(&data, &["prune", "--older-than", "1ms", "--keep-last", "1", "--json"]);
    assert_eq!((kept["selected"].as_u64(), kept["freed"]["executions"].as_u64()), (Some(1), Some(1)), "{kept}");
    assert_eq!(kept["freed"]["events"].as_u64(), Some(8), "{kept}");
    assert!(kept["freed"]["bytes"].as_u64().unwrap() > 0, "{kept}");
    // The archive (every batch, kept for `jamjet repair`) is rewritten to what the store holds.
    let (before, after) = (kept["archive"]["before"].as_u64().unwrap(), kept["archive"]["after"].as_u64().unwrap());
    assert!(after < before, "{kept}");
    let out = jamjet_out(&data, &["inspect", &older]);
    assert!(!out.status.success());
    let e = stderr(&out);
    assert!(e.contains(&format!("execution {older} was pruned at")), "{e}");
    assert!(e.contains("(completed, workflow `two`, 8 events)"), "{e}");
    // Its idempotency key is free again: a new submission starts anew.
    let again = jamjet_json(&data, &["run", &two, "--json", "--key", "order-1"]);
    assert_ne!(id(&again), older);

    // The rest, in words; the waiting one is left and carries on.
    let out = jamjet_out(&data, &["prune", "--older-than", "1ms", "--status", "completed,failed"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("pruned 3 executions ("), "{text}");
    assert!(text.contains("journal archive rewritten: "), "{text}");
    for gone in [&newer, &failed] {
        assert!(stderr(&jamjet_out(&data, &["inspect", gone])).contains("was pruned at"));
    }
    let inspected = jamjet_json(&data, &["inspect", &waiting, "--json"]);
    assert_eq!(inspected["execution"]["status"], "waiting", "{inspected}");
    let signalled = jamjet_json(&data, &["signal", &waiting, "payment:7", "--payload", "{\"paid\": true}", "--json"]);
    assert_eq!(signalled["status"], "completed", "{signalled}");
    let last = jamjet_json(&data, &["prune", "--older-than", "1ms", "--json"]);
    assert_eq!(last["freed"]["executions"], 1, "{last}");
    assert_eq!(jamjet_json(&data, &["executions", "--json"]), json!([]));
}

/// GET /executions/{id}: (status, body).
async fn execution(api: &support::dev::Api, id: &str) -> (u16, Value) {
    api.get(&format!("/executions/{id}")).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_serving_dev_prunes_by_its_retention_and_never_touches_running_or_waiting_executions() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let slow = Server::start().await;
    let server = DevServer::start(&data, &["--retention", "1ms", "--retention-every", "100ms"]);
    let api = server.api();
    let calls = format!(
        "id: calls\nstate_schema: {{ out: any }}\nnodes:\n  call:\n    type: http\n    method: POST\n    url: {}/step/1\n    body: {{ v: 1, delay_ms: 1500 }}\n    output_key: out\n",
        slow.url
    );
    for yaml in [PAY, TWO_STEPS, calls.as_str()] {
        assert_eq!(api.register_yaml(yaml).await.0, 201);
    }
    let submit = |workflow: &'static str, input: Value| {
        let api = api.clone();
        async move {
            let (status, body) = api.post("/executions", &json!({ "workflow_id": workflow, "input": input })).await;
            assert!(status == 201 || status == 200, "{status} {body}");
            body["id"].as_str().unwrap().to_string()
        }
    };
    let mut waiting = Vec::new();
    for n in 0..5 {
        waiting.push(submit("pay", json!({ "order_id": format!("w{n}") })).await);
    }
    let mut running = Vec::new();
    for _ in 0..3 {
        running.push(submit("calls", json!({})).await);
    }
    let mut ended = Vec::new();
    for _ in 0..20 {
        ended.push(submit("two", json!({})).await);
    }
    // The prune of `jamjet prune` through the data dir's socket, at the same time.
    let by_hand = jamjet_json(&data, &["prune", "--older-than", "1ms", "--json"]);
    assert!(by_hand["skipped_live"].as_u64().is_some(), "{by_hand}");

    // Every ended one is pruned within a few rounds: 410, with its tombstone.
    let began = Instant::now();
    for id in &ended {
        loop {
            let (status, body) = execution(&api, id).await;
            if status == 410 {
                assert_eq!(body["error"]["code"], "pruned", "{body}");
                assert_eq!(body["error"]["details"]["status"], "completed", "{body}");
                assert_eq!(body["error"]["details"]["workflow_id"], "two", "{body}");
                break;
            }
            assert_eq!(status, 200, "{body}");
            assert!(began.elapsed() < Duration::from_secs(30), "{id} was not pruned: {body}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    // Meanwhile (well past several rounds) the waiting and running ones are whole.
    for id in waiting.iter().chain(&running) {
        let (status, body) = execution(&api, id).await;
        assert_eq!(status, 200, "{id}: {body}");
        assert!(matches!(body["status"].as_str(), Some("waiting" | "running")), "{body}");
        let (status, events) = api.get(&format!("/executions/{id}/events")).await;
        assert_eq!(status, 200, "{events}");
        assert!(events["events"][0]["event"]["ExecutionStarted"].is_object(), "{events}");
    }
    // The running ones end, then go too, with all their events.
    let began = Instant::now();
    for id in &running {
        loop {
            let (status, body) = execution(&api, id).await;
            if status == 410 {
                assert_eq!(body["error"]["details"]["status"], "completed", "{body}");
                // started, scheduled, call, completed node, completed execution: what a whole run journals.
                assert!(body["error"]["details"]["events"].as_u64().unwrap() >= 4, "{body}");
                break;
            }
            assert!(began.elapsed() < Duration::from_secs(30), "{id} did not end and go: {body}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    // The waiting ones were left all along; paid, they end and go as well.
    for (n, id) in waiting.iter().enumerate() {
        let (status, body) = execution(&api, id).await;
        assert_eq!((status, body["status"].as_str()), (200, Some("waiting")), "{body}");
        let (status, body) = api
            .post(&format!("/executions/{id}/signal"), &json!({ "key": format!("payment:w{n}"), "payload": 1 }))
            .await;
        assert_eq!(status, 202, "{body}");
    }
    let began = Instant::now();
    for id in &waiting {
        while execution(&api, id).await.0 != 410 {
            assert!(began.elapsed() < Duration::from_secs(30), "{id} did not end and go");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    // Through --server too; nothing left to prune.
    let out = jamjet_json(&data, &["prune", "--older-than", "1ms", "--json", "--server", &server.url]);
    assert_eq!(out["freed"]["executions"], 0, "{out}");
    let (status, body) = api.post("/prune", &json!({ "older_than": "1d", "status": ["running"] })).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("never pruned"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prune_on_a_shared_postgresql_store_removes_ended_executions_only() {
    let Some(schema) = support::pg::PgSchema::fresh().await else { return };
    let url = schema.url();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let two = workflow_file(dir.path(), "two.yaml", TWO_STEPS);
    let pay = workflow_file(dir.path(), "pay.yaml", PAY);
    let id = |v: &Value| v["id"].as_str().unwrap().to_string();
    let ended = id(&jamjet_json(&data, &["--store", &url, "run", &two, "--json", "--key", "pg-1"]));
    let waiting = jamjet_json(&data, &["--store", &url, "run", &pay, "--json", "--input", r#"{"order_id": "9"}"#]);
    assert_eq!(waiting["status"], "waiting", "{waiting}");
    let waiting = id(&waiting);
    tokio::time::sleep(Duration::from_millis(5)).await;

    let report = jamjet_json(&data, &["--store", &url, "prune", "--older-than", "1ms", "--json"]);
    assert_eq!((report["selected"].as_u64(), report["freed"]["executions"].as_u64()), (Some(1), Some(1)), "{report}");
    assert_eq!(report["freed"]["events"].as_u64(), Some(8), "{report}");
    assert!(report["archive"].is_null(), "PostgreSQL keeps no archive: {report}");
    let out = jamjet_out(&data, &["--store", &url, "inspect", &ended]);
    assert!(stderr(&out).contains(&format!("execution {ended} was pruned at")), "{}", stderr(&out));
    let inspected = jamjet_json(&data, &["--store", &url, "inspect", &waiting, "--json"]);
    assert_eq!(inspected["execution"]["status"], "waiting", "{inspected}");
    assert_eq!(
        schema.text("SELECT count(DISTINCT execution)::text FROM events").await,
        "1",
        "only the waiting one's history is left"
    );
    assert_eq!(schema.text("SELECT count(*)::text FROM pruned").await, "1");
}
