//! `jamjet fork` and `POST /executions/{id}/fork` through the real binary,
//! with real loopback HTTP calls: a fork copies the original's history up
//! to the node visit, goes on from there with the state patched (and
//! checked against the schema), re-sends only the calls after the fork
//! (under its own idempotency keys), and leaves the original untouched.

mod support;

use serde_json::{Value, json};
use support::dev::DevServer;
use support::{GATHER, Server, jamjet_json, jamjet_out, workflow_file};

/// Two calls to the loopback server: `/step/1` doubles `v` and adds 1,
/// `/step/2` doubles the first answer's `v` and adds 2.
fn calls(url: &str, version: &str, second: u32) -> String {
    format!(
        r#"id: calls
version: "{version}"
state_schema: {{ v: int, first: any, second: any }}
nodes:
  a:
    type: http
    method: POST
    url: {url}/step/1
    body: {{ v: "{{{{ state.v }}}}" }}
    output_key: first
    next: b
  b:
    type: http
    method: POST
    url: {url}/step/{second}
    body: {{ v: "{{{{ state.first.v }}}}" }}
    output_key: second
"#
    )
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The events of an execution, as `inspect --json` lists them.
fn events(data: &std::path::Path, id: &str) -> Vec<Value> {
    jamjet_json(data, &["inspect", id, "--json"])["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fork_from_a_middle_node_with_a_patch_reruns_only_what_follows() {
    let server = Server::start().await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let wf = workflow_file(dir.path(), "calls.yaml", &calls(&server.url, "1", 2));
    let original = jamjet_json(&data, &["run", &wf, "--json", "--input", r#"{"v": 1}"#, "--key", "k-1"]);
    assert_eq!(original["state"]["second"]["v"], 8, "{original}");
    let id = original["id"].as_str().unwrap().to_string();
    let before = events(&data, &id);

    // Bad forks are refused, naming what is wrong; nothing is created.
    for (args, says) in [
        (vec!["--from", "nope"], "node `nope` never ran in it (nodes that ran: a, b)"),
        (vec!["--from", "b", "--visit", "3"], "node `b` has no visit 3 (its visits: 1)"),
        (vec!["--from", "b", "--set", r#"{"v": "seven"}"#], "v"),
        (vec!["--from", "b", "--set", "[1]"], "--set must be a JSON object"),
    ] {
        let out = jamjet_out(&data, &[&["fork", id.as_str()][..], &args[..]].concat());
        assert!(!out.status.success(), "{args:?} forked");
        assert!(stderr(&out).contains(says), "{args:?}: {}", stderr(&out));
    }
    assert_eq!(jamjet_json(&data, &["executions", "--json"]).as_array().unwrap().len(), 1, "nothing was created");

    // From `b`, with `first` changed: only `b` runs again.
    let forked =
        jamjet_json(&data, &["fork", &id, "--from", "b", "--set", r#"{"first": {"n": 1, "v": 10}}"#, "--json"]);
    assert_eq!(forked["status"], "completed", "{forked}");
    assert_eq!(forked["state"]["second"]["v"], 22, "{forked}");
    let fork = forked["id"].as_str().unwrap().to_string();
    assert_ne!(fork, id);
    let seen = server.seen.lock().unwrap();
    assert_eq!(seen.by_key.get(&format!("{fork}/b/1")).map(Vec::len), Some(1), "b ran once in the fork");
    assert!(!seen.by_key.contains_key(&format!("{fork}/a/1")), "a did not run again");
    assert_eq!(seen.by_key[&format!("{fork}/b/1")][0]["v"], 10, "b saw the patched state");
    drop(seen);

    // Its history: the original's up to `b`'s scheduling, then where it came from.
    let after = events(&data, &fork);
    let cut = before.iter().position(|e| e["NodeScheduled"]["node"] == "b").unwrap();
    assert_eq!(after[0]["ExecutionStarted"]["key"], Value::Null, "the idempotency key stays with the original");
    assert_eq!(after[1..cut], before[1..cut]);
    assert_eq!(after[cut]["Forked"]["from"], json!(id));
    assert_eq!(after[cut]["Forked"]["at_seq"], json!(cut));
    assert_eq!(after[cut + 1], before[cut], "then `b` is scheduled again, as visit 1");
    let shown = jamjet_json(&data, &["inspect", &fork, "--json"]);
    assert_eq!(shown["fork"]["from"], json!(id), "{shown}");
    let text = String::from_utf8_lossy(&jamjet_out(&data, &["inspect", &fork]).stdout).into_owned();
    assert!(text.contains(&format!("forked     from {id} at node `b` visit 1")), "{text}");

    // The original is untouched.
    assert_eq!(events(&data, &id), before);
    let again = jamjet_json(&data, &["run", &wf, "--json", "--input", r#"{"v": 1}"#, "--key", "k-1"]);
    assert_eq!(again["id"], json!(id), "its key still names it");

    // Both histories fold again through this build's state machine without a divergence.
    let replayed = jamjet_json(&data, &["replay", "--all", "--json"]);
    let replayed = replayed.as_array().unwrap();
    assert_eq!(replayed.len(), 2, "{replayed:?}");
    assert!(replayed.iter().all(|r| r["divergences"] == json!([]) && r["folded"] == "completed"), "{replayed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fork_after_a_fan_out_keeps_its_branches_results_and_inside_one_is_explained() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let wf = workflow_file(dir.path(), "gather.yaml", GATHER);
    let started = jamjet_json(&data, &["run", &wf, "--json"]);
    let id = started["id"].as_str().unwrap().to_string();
    for n in 1..=3 {
        jamjet_json(&data, &["signal", "--event", &format!("answer:{n}"), "--payload", &n.to_string(), "--json"]);
    }
    let done = jamjet_json(&data, &["inspect", &id, "--json"]);
    assert_eq!(done["execution"]["status"], "completed", "{done}");

    // From `done`, after the join: the branches' answers come with the history.
    let forked = jamjet_json(&data, &["fork", &id, "--from", "done", "--json"]);
    assert_eq!(forked["status"], "completed", "{forked}");
    assert_eq!(forked["state"]["answers"], done["state"]["answers"], "{forked}");

    // A node that runs inside the branches: the fork goes on at the fan-out.
    let out = jamjet_out(&data, &["fork", &id, "--from", "wait_answer"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("runs inside the branches of `ask`: fork from `ask`"), "{}", stderr(&out));
    let again = jamjet_json(&data, &["fork", &id, "--from", "ask", "--json"]);
    let waits = again["waiting"].as_array().unwrap();
    assert_eq!(waits.len(), 3, "its branches wait again: {again}");
    assert!(waits.iter().all(|w| w["node"] == "wait_answer" && w["parent"] == again["id"]), "{again}");
    for n in 1..=3 {
        jamjet_json(
            &data,
            &["signal", "--event", &format!("answer:{n}"), "--payload", &(n * 10).to_string(), "--json"],
        );
    }
    let ended = jamjet_json(&data, &["inspect", again["id"].as_str().unwrap(), "--json"]);
    assert_eq!(ended["execution"]["status"], "completed", "{ended}");
    assert_ne!(ended["state"]["answers"], done["state"]["answers"], "the new answers: {ended}");
    // Parents, forks and every branch (from its parent's state) replay as they ran.
    let out = jamjet_out(&data, &["replay", "--all"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("executions replayed: no divergence"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fork_onto_the_latest_version_through_the_api_and_the_cli() {
    let server = Server::start().await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let dev = DevServer::start(&data, &[]);
    let api = dev.api();
    assert_eq!(api.register_yaml(&calls(&server.url, "1", 2)).await.0, 201);
    let (status, body) = api.post("/executions", &json!({ "workflow_id": "calls", "input": { "v": 1 } })).await;
    assert_eq!(status, 201, "{body}");
    let id = body["id"].as_str().unwrap().to_string();
    let done = api.poll_until(&id, std::time::Duration::from_secs(30), |b| b["status"] == "completed").await;
    assert_eq!(done["state"]["second"]["v"], 8, "{done}");
    // Version 2 calls `/step/5` at `b`.
    assert_eq!(api.register_yaml(&calls(&server.url, "2", 5)).await.0, 201);

    let (status, body) = api.post(&format!("/executions/{id}/fork"), &json!({ "from": "b", "latest": true })).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["version"], "2", "{body}");
    let fork = body["id"].as_str().unwrap().to_string();
    let ended = api.poll_until(&fork, std::time::Duration::from_secs(30), |b| b["status"] == "completed").await;
    assert_eq!(ended["state"]["second"]["v"], 3 * 2 + 5, "{ended}");
    // On its own version by default, through the CLI and the data dir's socket.
    let same = jamjet_json(&data, &["fork", &id, "--from", "b", "--json"]);
    assert_eq!(same["state"]["second"]["v"], 8, "{same}");
    // A patch that fails the schema: 422, nothing created.
    let (status, body) =
        api.post(&format!("/executions/{id}/fork"), &json!({ "from": "b", "set": { "v": "seven" } })).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "invalid_input", "{body}");
    let (_, list) = api.get("/executions").await;
    assert_eq!(list["executions"].as_array().map(Vec::len), Some(3), "{list}");
}
