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
async fn a_fork_after_at_and_inside_a_fan_out_keeps_the_results_it_does_not_run_again() {
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

    // From the fan-out node itself: every branch waits again.
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

    // From inside the branches: the node ran in three, so which one is asked for.
    let out = jamjet_out(&data, &["fork", &id, "--from", "wait_answer"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("node `wait_answer` ran in branches 0, 1, 2 of `ask`: say which with --branch N"),
        "{}",
        stderr(&out)
    );
    let out = jamjet_out(&data, &["fork", &id, "--from", "wait_answer", "--branch", "7"]);
    assert!(stderr(&out).contains("node `wait_answer` never ran in branch 7 of a fan-out of it"), "{}", stderr(&out));
    // Branch 1 waits again; the other two keep their answers and do not run.
    let one = jamjet_json(&data, &["fork", &id, "--from", "wait_answer", "--branch", "1", "--json"]);
    let waits = one["waiting"].as_array().unwrap();
    assert_eq!(waits.len(), 1, "only branch 1 waits: {one}");
    assert_eq!(waits[0]["event"], "answer:2", "{one}");
    jamjet_json(&data, &["signal", "--event", "answer:2", "--payload", "200", "--json"]);
    let ended = jamjet_json(&data, &["inspect", one["id"].as_str().unwrap(), "--json"]);
    assert_eq!(ended["execution"]["status"], "completed", "{ended}");
    assert_eq!(ended["state"]["answers"], json!([{"answer": 1}, {"answer": 200}, {"answer": 3}]), "{ended}");
    let fan = ended["nodes"].as_array().unwrap().iter().find(|n| n["node"] == "ask").unwrap().clone();
    let children: Vec<&Value> = fan["branches"].as_array().unwrap().iter().map(|b| &b["child"]).collect();
    assert_eq!(children.len(), 3, "{fan}");
    let forked_branch = jamjet_json(&data, &["inspect", children[1].as_str().unwrap(), "--json"]);
    assert_eq!(forked_branch["fork"]["node"], "wait_answer", "the branch says where it was forked: {forked_branch}");
    // The kept branches were not started again: the fork's timeline names the original's.
    let ask = done["nodes"].as_array().unwrap().iter().find(|n| n["node"] == "ask").unwrap().clone();
    let originals: Vec<&Value> = ask["branches"].as_array().unwrap().iter().map(|b| &b["child"]).collect();
    assert_eq!((children[0], children[2]), (originals[0], originals[2]), "{fan}");
    assert_ne!(children[1], originals[1]);
    for kept in [children[0], children[2]] {
        let parent = &jamjet_json(&data, &["inspect", kept.as_str().unwrap(), "--json"])["parent"];
        assert_eq!(parent["id"], json!(id), "{parent}");
    }
    // Parents, forks and every branch (from its parent's state) replay as they ran.
    let out = jamjet_out(&data, &["replay", "--all"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("executions replayed: no divergence"), "{text}");
}

/// A fan-out of two branches of two calls each: `a1` then `a2`, `b1` then `b2`.
fn branches(url: &str) -> String {
    format!(
        r#"id: branches
state_schema: {{ v: int, a1: any, a2: any, b1: any, b2: any }}
nodes:
  split: {{ type: parallel, branches: [a1, b1], merge: keys, join: done }}
  a1: {{ type: http, method: POST, url: "{url}/step/1", body: {{ v: "{{{{ state.v }}}}" }}, output_key: a1, next: a2 }}
  a2: {{ type: http, method: POST, url: "{url}/step/2", body: {{ v: "{{{{ state.a1.v }}}}" }}, output_key: a2, next: done }}
  b1: {{ type: http, method: POST, url: "{url}/step/3", body: {{ v: "{{{{ state.v }}}}" }}, output_key: b1, next: b2 }}
  b2: {{ type: http, method: POST, url: "{url}/step/4", body: {{ v: "{{{{ state.b1.v }}}}" }}, output_key: b2, next: done }}
  done: {{ type: end }}
"#
    )
}

/// The calls the server received for `node`, by every execution.
fn calls_to(server: &Server, node: &str) -> Vec<(String, Value)> {
    let seen = server.seen.lock().unwrap();
    let mut out: Vec<(String, Value)> = seen
        .by_key
        .iter()
        .filter(|(k, _)| k.contains(&format!("/{node}/")))
        .flat_map(|(k, bodies)| bodies.iter().map(move |b| (k.clone(), b.clone())))
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fork_from_inside_a_fan_out_branch_runs_only_that_branch_from_the_node() {
    let server = Server::start().await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let wf = workflow_file(dir.path(), "branches.yaml", &branches(&server.url));
    let original = jamjet_json(&data, &["run", &wf, "--json", "--input", r#"{"v": 1}"#]);
    assert_eq!(original["status"], "completed", "{original}");
    assert_eq!((original["state"]["a2"]["v"].clone(), original["state"]["b2"]["v"].clone()), (json!(8), json!(14)));
    let id = original["id"].as_str().unwrap().to_string();
    let before = events(&data, &id);
    let shown = jamjet_json(&data, &["inspect", &id, "--json"]);
    let split = shown["nodes"].as_array().unwrap().iter().find(|n| n["node"] == "split").unwrap().clone();
    let branch_a = split["branches"][0]["child"].as_str().unwrap().to_string();
    let branch_a_before = events(&data, &branch_a);

    // A patch the schema refuses creates nothing, inside a branch too.
    let out = jamjet_out(&data, &["fork", &id, "--from", "a2", "--set", r#"{"v": "one"}"#]);
    assert!(!out.status.success() && stderr(&out).contains("v"), "{}", stderr(&out));
    assert_eq!(jamjet_json(&data, &["executions", "--json"]).as_array().unwrap().len(), 1, "nothing was created");

    // From `a2`, inside branch 0 (the only one it ran in), with `a1` corrected.
    let forked = jamjet_json(&data, &["fork", &id, "--from", "a2", "--set", r#"{"a1": {"n": 1, "v": 10}}"#, "--json"]);
    assert_eq!(forked["status"], "completed", "{forked}");
    assert_eq!(forked["state"]["a2"]["v"], 22, "a2 ran again on the patched state: {forked}");
    assert_eq!(forked["state"]["a1"]["v"], 10, "the patch is the branch's, and the join takes it: {forked}");
    assert_eq!(forked["state"]["b2"], original["state"]["b2"], "the other branch's result is kept: {forked}");
    let fork = forked["id"].as_str().unwrap().to_string();
    assert_eq!(calls_to(&server, "a1").len(), 1, "a1 did not run again");
    assert_eq!(calls_to(&server, "b1").len(), 1, "the other branch did not run again");
    assert_eq!(calls_to(&server, "b2").len(), 1, "the other branch did not run again");
    let a2 = calls_to(&server, "a2");
    assert_eq!(a2.len(), 2, "a2 ran once more: {a2:?}");
    assert!(a2.iter().any(|(_, body)| body["v"] == 10), "with the patched state: {a2:?}");

    // The fork's history: the original's up to the fan-out, then where it came from.
    let after = events(&data, &fork);
    let fan_out = before.iter().position(|e| e.get("FanOut").is_some()).unwrap();
    assert_eq!(after[1..=fan_out], before[1..=fan_out]);
    let kept = &after[fan_out + 1]["BranchFinished"];
    assert_eq!(kept["branch"], 1, "branch 1's end is kept: {after:?}");
    assert_eq!(after[fan_out + 2]["Forked"]["from"], json!(id), "{after:?}");
    assert_eq!(after[fan_out + 2]["Forked"]["node"], "split", "{after:?}");
    assert_eq!(after[fan_out + 2]["Forked"]["at_seq"], json!(fan_out + 1), "{after:?}");
    // Its branch 0: the original branch's records up to `a2`, then the fork.
    let shown = jamjet_json(&data, &["inspect", &fork, "--json"]);
    let split = shown["nodes"].as_array().unwrap().iter().find(|n| n["node"] == "split").unwrap().clone();
    let fork_a = split["branches"][0]["child"].as_str().unwrap().to_string();
    let ran = jamjet_json(&data, &["inspect", &id, "--json"]);
    let ran = ran["nodes"].as_array().unwrap().iter().find(|n| n["node"] == "split").unwrap().clone();
    assert_eq!(split["branches"][1]["child"], ran["branches"][1]["child"], "the kept branch is the original's");
    assert_eq!(split["branches"][1]["status"], "completed", "{split}");
    let fork_a_events = events(&data, &fork_a);
    let cut = branch_a_before.iter().position(|e| e["NodeScheduled"]["node"] == "a2").unwrap();
    assert_eq!(fork_a_events[0]["BranchStarted"]["parent"], json!(fork));
    assert_eq!(fork_a_events[1..cut], branch_a_before[1..cut]);
    assert_eq!(fork_a_events[cut]["Forked"]["from"], json!(branch_a));
    assert_eq!(fork_a_events[cut]["Forked"]["patch"], json!({"a1": {"n": 1, "v": 10}}));
    assert_eq!(fork_a_events[cut + 1], branch_a_before[cut]);
    let text = String::from_utf8_lossy(&jamjet_out(&data, &["inspect", &fork_a]).stdout).into_owned();
    assert!(text.contains(&format!("forked     from {branch_a} at node `a2` visit 1")), "{text}");

    // The same fork, named by the branch's own execution, through a server's API.
    let dev = DevServer::start(&data, &[]);
    let api = dev.api();
    let (status, made) = api.post(&format!("/executions/{branch_a}/fork"), &json!({"from": "a2"})).await;
    assert_eq!(status, 201, "{made}");
    let second = made["id"].as_str().unwrap().to_string();
    let settled = api.poll_until(&second, std::time::Duration::from_secs(30), |b| b["status"] == "completed").await;
    assert_eq!(settled["state"]["a2"]["v"], 8, "no patch: the same answer as the original: {settled}");
    assert_eq!(settled["state"]["b2"], original["state"]["b2"], "{settled}");
    assert_eq!(calls_to(&server, "a2").len(), 3);
    assert_eq!(calls_to(&server, "b2").len(), 1);
    let (status, refused) =
        api.post(&format!("/executions/{branch_a}/fork"), &json!({"from": "a2", "branch": 1})).await;
    assert_eq!(status, 422, "{refused}");
    let message = refused["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("it is branch 0 of its parent, not branch 1"), "{refused}");
    drop(dev);

    // The original is untouched, and every history folds again without a divergence.
    assert_eq!(events(&data, &id), before);
    assert_eq!(events(&data, &branch_a), branch_a_before);
    let out = jamjet_out(&data, &["replay", "--all"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("executions replayed: no divergence"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_in_a_branch_of_a_branch_is_refused_naming_the_inner_fan_out_which_forks() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let yaml = r#"id: nested
state_schema: { v: int, w: int, z: int }
nodes:
  outer: { type: parallel, branches: [inner, side], merge: keys, join: done }
  inner: { type: parallel, branches: [y], merge: keys, join: after }
  y: { type: set, values: { v: 1 }, next: after }
  after: { type: set, values: { w: "{{ state.v + 1 }}" }, next: done }
  side: { type: set, values: { z: 3 }, next: done }
  done: { type: end }
"#;
    let wf = workflow_file(dir.path(), "nested.yaml", yaml);
    let original = jamjet_json(&data, &["run", &wf, "--json"]);
    assert_eq!(original["state"], json!({"v": 1, "w": 2, "z": 3}), "{original}");
    let id = original["id"].as_str().unwrap().to_string();
    let out = jamjet_out(&data, &["fork", &id, "--from", "y"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("a node in a branch of a branch cannot be forked from: fork from the parallel node inside the branch (`inner`)"), "{}", stderr(&out));
    // As it says: from `inner`, inside branch 0 of `outer`, with `v` set; `side` keeps its result.
    let forked = jamjet_json(&data, &["fork", &id, "--from", "inner", "--set", r#"{"v": 5}"#, "--json"]);
    assert_eq!(forked["status"], "completed", "{forked}");
    assert_eq!(forked["state"], json!({"v": 1, "w": 2, "z": 3}), "y runs again and sets v: {forked}");
    let forked = jamjet_json(&data, &["fork", &id, "--from", "after", "--set", r#"{"v": 5}"#, "--json"]);
    assert_eq!(forked["state"], json!({"v": 5, "w": 6, "z": 3}), "after the inner join: {forked}");
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
