//! The `jamjet` binary as a black box: run, validate, inspect, executions,
//! resume; waits and approvals across processes (run parks and exits,
//! signal / approve / cancel carry the execution on, executions --waiting
//! says what waits for whom); and bad input (malformed YAML, schema-invalid
//! input, a payload that is not JSON, unknown execution id, a finished
//! execution, a second decision, a corrupt journal record, a data dir in
//! use) — each a clear error, a non-zero exit, and nothing changed.

mod support;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use support::{jamjet, jamjet_json, jamjet_out};

const HELLO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/hello.yaml");

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn executions(dir: &Path) -> Vec<Value> {
    jamjet_json(dir, &["executions", "--json"]).as_array().unwrap().clone()
}

#[test]
fn run_prints_the_final_state_and_inspect_shows_the_timeline() {
    let dir = tempfile::tempdir().unwrap();
    let out = jamjet_json(dir.path(), &["run", HELLO, "--input", r#"{"name": "Grace Hopper"}"#, "--json"]);
    assert_eq!(out["status"], "completed");
    assert_eq!(out["state"]["greeting"], "Hello, Grace Hopper!");
    assert_eq!(out["state"]["verdict"], "a long name");
    let id = out["id"].as_str().unwrap().to_string();

    let human = jamjet_out(dir.path(), &["run", HELLO, "--input", r#"{"name": "Al"}"#]);
    assert!(human.status.success(), "{}", stderr(&human));
    let text = String::from_utf8_lossy(&human.stdout);
    assert!(text.contains("completed") && text.contains("a short name"), "{text}");
    assert!(stderr(&human).contains("exec_"), "the execution id is printed");

    let inspect = jamjet_out(dir.path(), &["inspect", &id, "-v"]);
    assert!(inspect.status.success(), "{}", stderr(&inspect));
    let text = String::from_utf8_lossy(&inspect.stdout);
    for needle in ["greet", "judge", "long", "completed", "ATTEMPTS", "patch", "Hello, Grace Hopper!"] {
        assert!(text.contains(needle), "inspect output lacks {needle}:\n{text}");
    }
    let json = jamjet_json(dir.path(), &["inspect", &id, "--json"]);
    let nodes: Vec<&str> = json["nodes"].as_array().unwrap().iter().map(|n| n["node"].as_str().unwrap()).collect();
    assert_eq!(nodes, ["greet", "judge", "long"]);
    assert_eq!(json["events"][0]["type"], "ExecutionStarted");

    let all = executions(dir.path());
    assert_eq!(all.len(), 2);
    let done = jamjet_json(dir.path(), &["executions", "--status", "completed", "--json"]);
    assert_eq!(done.as_array().unwrap().len(), 2);
    let failed = jamjet_json(dir.path(), &["executions", "--status", "failed", "--json"]);
    assert!(failed.as_array().unwrap().is_empty());
    let bad = jamjet_out(dir.path(), &["executions", "--status", "sleeping"]);
    assert!(!bad.status.success() && stderr(&bad).contains("sleeping"));
}

#[test]
fn validate_prints_findings_like_a_compiler() {
    let dir = tempfile::tempdir().unwrap();
    let ok = jamjet_out(dir.path(), &["validate", HELLO]);
    assert!(ok.status.success(), "{}", stderr(&ok));
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "id: x\nstate_schema: { a: str }\nnodes:\n  one:\n    type: set\n    values: { a: hi }\n    next: tow\n",
    )
    .unwrap();
    let out = jamjet_out(dir.path(), &["validate", bad.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("bad.yaml:7:11") && err.contains("tow"), "{err}");
}

#[test]
fn malformed_yaml_and_bad_input_are_refused_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // Seed the store with one execution so "nothing changed" is observable.
    jamjet_json(&data, &["run", HELLO, "--input", r#"{"name": "Ada"}"#, "--json"]);

    let broken = dir.path().join("broken.yaml");
    std::fs::write(&broken, "id: x\nnodes:\n  a: { type: set\n").unwrap();
    let out = jamjet_out(&data, &["run", broken.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("broken.yaml:"), "{}", stderr(&out));

    let out = jamjet_out(&data, &["run", HELLO, "--input", r#"{"name": 7}"#]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("`name` must be str"), "{}", stderr(&out));

    let out = jamjet_out(&data, &["run", HELLO, "--input", r#"{"name": "x""#]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("not valid JSON"), "{}", stderr(&out));

    assert_eq!(executions(&data).len(), 1, "nothing was started");

    let out = jamjet_out(&data, &["inspect", "exec_01JM4X8NKWP2ZZ3Q6T1B2C3D4E"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("no execution exec_01JM4X8NKWP2ZZ3Q6T1B2C3D4E"), "{}", stderr(&out));
    let out = jamjet_out(&data, &["inspect", "exec_nope"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("not an execution id"), "{}", stderr(&out));
}

#[test]
fn a_corrupt_journal_record_is_a_clear_error_naming_the_record() {
    let dir = tempfile::tempdir().unwrap();
    let out = jamjet_json(dir.path(), &["run", HELLO, "--input", r#"{"name": "Ada"}"#, "--json"]);
    let id: jamjet::ExecutionId = out["id"].as_str().unwrap().parse().unwrap();
    {
        // Overwrite the execution's first stored frame (records 1..) with
        // a record that does not decode, as a torn write would leave it.
        let db = sled::open(dir.path().join("journal")).unwrap();
        let mut key = vec![b'e'];
        key.extend_from_slice(&id.to_bytes());
        key.extend_from_slice(&1u64.to_be_bytes());
        let garbage = [3u32.to_le_bytes().as_slice(), &[1u8, 0xff, 0xff]].concat();
        assert!(db.insert(key, garbage).unwrap().is_some());
        db.flush().unwrap();
    }
    let out = jamjet_out(dir.path(), &["inspect", &id.to_string()]);
    assert!(!out.status.success());
    let err = stderr(&out);
    let named = format!("execution {id} is damaged: record 1 of its history cannot be read: does not decode");
    assert!(err.contains(&named) && err.contains("jamjet repair"), "{err}");
    // The index is intact and nothing else changed.
    assert_eq!(executions(dir.path()).len(), 1);
}

/// A data dir held by a process that serves no socket (here: this test,
/// holding the store through the library) fails a command after a few
/// seconds, naming the process and what to do. (While a `jamjet` command
/// holds it, commands go through its socket: tests/socket.rs.)
#[test]
fn a_data_dir_held_by_a_process_that_serves_no_socket_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let store = jamjet::journal::SledJournal::open(&data).unwrap();
    let out = jamjet_out(&data, &["executions"]);
    drop(store);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("is in use by another process") && err.contains("nothing answers on"), "{err}");
    assert!(err.contains("jamjet.sock") && err.contains("--server URL"), "{err}");
    if Path::new("/proc/locks").exists() {
        assert!(err.contains(&format!("pid {}", std::process::id())), "the holder named: {err}");
    }
}

#[test]
fn resume_finishes_what_a_killed_run_left() {
    let dir = tempfile::tempdir().unwrap();
    let wf = dir.path().join("hang.yaml");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::fs::write(
        &wf,
        format!(
            "id: hang\nstate_schema: {{ out: str, port: int }}\nnodes:\n  first:\n    type: set\n    values: {{ port: {port} }}\n    next: call\n  call:\n    type: http\n    url: \"http://127.0.0.1:{{{{ state.port }}}}/\"\n    output_key: out\n"
        ),
    )
    .unwrap();
    let mut run = jamjet()
        .arg("--data-dir")
        .arg(dir.path())
        .args(["run", wf.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Accept the call (so the node is mid-flight), then kill -9 the process.
    let (conn, _) = listener.accept().unwrap();
    run.kill().unwrap();
    run.wait().unwrap();
    drop(conn.set_read_timeout(Some(Duration::from_millis(1))));
    // Answer the retried call this time.
    let server = std::thread::spawn(move || {
        use std::io::{Read, Write};
        let (mut c, _) = listener.accept().unwrap();
        let mut buf = [0u8; 4096];
        let n = c.read(&mut buf).unwrap();
        let req = String::from_utf8_lossy(&buf[..n]).to_lowercase();
        c.write_all(b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
            .unwrap();
        req
    });
    let out = jamjet_json(dir.path(), &["resume", "--json"]);
    assert_eq!(out[0]["status"], "completed", "{out}");
    let req = server.join().unwrap();
    assert!(req.contains("idempotency-key: exec_") && req.contains("/call/1"), "{req}");
    let id = out[0]["id"].as_str().unwrap();
    let json = jamjet_json(dir.path(), &["inspect", id, "--json"]);
    let call = &json["nodes"][1];
    assert_eq!((call["node"].as_str(), call["attempts"].as_u64()), (Some("call"), Some(2)), "{call}");
    let again = jamjet_json(dir.path(), &["resume", "--json"]);
    assert_eq!(again, serde_json::json!([]));
}

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn event_count(data: &Path, id: &str) -> usize {
    jamjet_json(data, &["inspect", id, "--json"])["events"].as_array().unwrap().len()
}

#[test]
fn run_parks_on_an_event_and_signal_carries_it_on() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let pay = support::workflow_file(dir.path(), "pay.yaml", support::PAY);

    let human = jamjet_out(&data, &["run", &pay, "--input", r#"{"order_id": "42"}"#]);
    assert!(human.status.success(), "waiting is not a failure: {}", stderr(&human));
    let text = stdout(&human);
    assert!(text.contains("waiting") && text.contains("wait_payment") && text.contains("event `payment:42`"), "{text}");
    let next = format!("jamjet --data-dir {} signal exec_", data.display());
    assert!(text.contains(&next) && text.contains(" payment:42 --payload '<json>'"), "the next command: {text}");
    assert!(text.contains("the payload goes into `payment`"), "{text}");

    let out = jamjet_json(&data, &["run", &pay, "--input", r#"{"order_id": "7"}"#, "--json"]);
    assert_eq!(out["status"], "waiting");
    let id = out["id"].as_str().unwrap().to_string();
    let w = &out["waiting"][0];
    assert_eq!(
        (w["node"].as_str(), w["kind"].as_str(), w["event"].as_str()),
        (Some("wait_payment"), Some("event"), Some("payment:7"))
    );
    assert!(w["next"].as_str().unwrap().contains(&format!("signal {id} payment:7")), "{w}");

    // What waits for whom.
    let waiting = jamjet_json(&data, &["executions", "--status", "waiting", "--json"]);
    assert_eq!(waiting.as_array().unwrap().len(), 2);
    let waits = jamjet_json(&data, &["executions", "--waiting", "--json"]);
    let mine: Vec<&Value> = waits.as_array().unwrap().iter().filter(|w| w["id"] == id.as_str()).collect();
    assert_eq!(mine.len(), 1, "{waits}");
    assert_eq!((mine[0]["workflow_id"].as_str(), mine[0]["event"].as_str()), (Some("pay"), Some("payment:7")));
    assert!(mine[0]["since_ms"].as_u64().is_some() && mine[0]["deadline_ms"].is_null());
    let table = jamjet_out(&data, &["executions", "--waiting"]);
    let text = stdout(&table);
    for needle in ["NODE", "KIND", "WAITS FOR", "DEADLINE", &id, "wait_payment", "event", "payment:7"] {
        assert!(text.contains(needle), "executions --waiting lacks {needle}:\n{text}");
    }
    let listed = stdout(&jamjet_out(&data, &["executions"]));
    assert!(listed.contains("waiting"), "{listed}");

    // A payload that is not JSON is refused, naming the flag and the execution; nothing is delivered.
    let before = event_count(&data, &id);
    let bad = jamjet_out(&data, &["signal", &id, "payment:7", "--payload", r#"{"amount": 5"#]);
    assert!(!bad.status.success());
    assert!(stderr(&bad).contains("--payload is not valid JSON") && stderr(&bad).contains(&id), "{}", stderr(&bad));
    assert_eq!(event_count(&data, &id), before, "nothing was journaled");

    let done = jamjet_json(&data, &["signal", &id, "payment:7", "--payload", r#"{"amount": 5}"#, "--json"]);
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["state"]["payment"], serde_json::json!({"amount": 5}));

    let inspect = jamjet_out(&data, &["inspect", &id]);
    let text = stdout(&inspect);
    assert!(text.contains("waited   for event `payment:7`") && text.contains(r#"payload {"amount":5}"#), "{text}");
    let json = jamjet_json(&data, &["inspect", &id, "--json"]);
    let wait = &json["nodes"][0]["waits"][0];
    assert_eq!((wait["kind"].as_str(), wait["ended"]["how"].as_str()), (Some("event"), Some("signal")), "{wait}");

    // A finished execution takes no more events; an unknown one is named.
    let again = jamjet_out(&data, &["signal", &id, "payment:7"]);
    assert!(!again.status.success());
    assert!(stderr(&again).contains(&format!("execution {id} has already finished (completed)")), "{}", stderr(&again));
    let unknown = jamjet_out(&data, &["signal", "exec_01JM4X8NKWP2ZZ3Q6T1B2C3D4E", "payment:7"]);
    assert!(!unknown.status.success());
    assert!(stderr(&unknown).contains("no execution exec_01JM4X8NKWP2ZZ3Q6T1B2C3D4E"), "{}", stderr(&unknown));
}

#[test]
fn an_event_nothing_waits_for_yet_is_kept_and_said_so() {
    let dir = tempfile::tempdir().unwrap();
    let pay = support::workflow_file(dir.path(), "pay.yaml", support::PAY);
    let out = jamjet_json(dir.path(), &["run", &pay, "--input", r#"{"order_id": "42"}"#, "--json"]);
    let id = out["id"].as_str().unwrap();
    let early = jamjet_out(dir.path(), &["signal", id, "payment:43", "--payload", "1"]);
    assert!(early.status.success(), "{}", stderr(&early));
    assert!(stderr(&early).contains("nothing waits for it yet (it waits for `payment:42`)"), "{}", stderr(&early));
    assert!(stdout(&early).contains("waiting"), "{}", stdout(&early));
    let json = jamjet_json(dir.path(), &["inspect", id, "--json"]);
    assert_eq!(json["kept_signals"][0]["key"], "payment:43", "{json}");
}

#[test]
fn approve_decides_and_a_second_decision_is_refused_naming_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let review = support::workflow_file(dir.path(), "review.yaml", support::REVIEW);
    let run = jamjet_out(&data, &["run", &review, "--input", r#"{"order_id": "42"}"#]);
    assert!(run.status.success(), "{}", stderr(&run));
    let text = stdout(&run);
    assert!(text.contains("for an approval") && text.contains("prompt: Ship order 42?"), "{text}");
    assert!(text.contains(" --decision approved") && text.contains("--decision rejected"), "{text}");
    let id = jamjet_json(&data, &["executions", "--json"])[0]["id"].as_str().unwrap().to_string();
    let waits = jamjet_json(&data, &["executions", "--waiting", "--json"]);
    assert_eq!((waits[0]["kind"].as_str(), waits[0]["prompt"].as_str()), (Some("approval"), Some("Ship order 42?")));

    // --by defaults to $USER.
    let out = jamjet()
        .env("USER", "grace")
        .arg("--data-dir")
        .arg(&data)
        .args(["approve", &id, "--decision", "approved", "--comment", "paid in full", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let moved: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(moved["status"], "waiting", "it goes on to wait for the shipment: {moved}");
    assert_eq!(moved["state"]["decision"]["by"], "grace");
    assert_eq!(moved["state"]["decision"]["decision"], "approved");
    assert_eq!(moved["waiting"][0]["event"], "shipped:42");

    // A second decision, while the execution lives on: refused, naming the first.
    let second = jamjet_out(&data, &["approve", &id, "--decision", "rejected", "--by", "mallory"]);
    assert!(!second.status.success());
    let err = stderr(&second);
    assert!(err.contains(&id) && err.contains("approval `review` was already decided: approved by grace"), "{err}");

    jamjet_json(&data, &["signal", &id, "shipped:42", "--json"]);
    // And once it has finished.
    let third = jamjet_out(&data, &["approve", &id, "--decision", "rejected"]);
    assert!(!third.status.success());
    assert!(stderr(&third).contains("already decided: approved by grace"), "{}", stderr(&third));

    let inspect = stdout(&jamjet_out(&data, &["inspect", &id]));
    assert!(inspect.contains("decided  approved by grace at") && inspect.contains("paid in full"), "{inspect}");

    let unknown = jamjet_out(&data, &["approve", "exec_01JM4X8NKWP2ZZ3Q6T1B2C3D4E", "--decision", "approved"]);
    assert!(!unknown.status.success());
    assert!(stderr(&unknown).contains("no execution exec_01JM4X8NKWP2ZZ3Q6T1B2C3D4E"), "{}", stderr(&unknown));
    let bad = jamjet_out(&data, &["approve", &id, "--decision", "maybe"]);
    assert!(!bad.status.success() && stderr(&bad).contains("maybe"), "{}", stderr(&bad));
}

#[test]
fn a_rejection_without_on_reject_fails_the_execution() {
    let dir = tempfile::tempdir().unwrap();
    let review = support::workflow_file(dir.path(), "review.yaml", support::REVIEW);
    let out = jamjet_json(dir.path(), &["run", &review, "--input", r#"{"order_id": "9"}"#, "--json"]);
    let id = out["id"].as_str().unwrap();
    let no = jamjet_out(
        dir.path(),
        &["approve", id, "--node", "review", "--decision", "rejected", "--by", "ada", "--comment", "fraud"],
    );
    assert!(!no.status.success(), "the execution failed");
    let text = stdout(&no);
    assert!(text.contains("failed") && text.contains("approval `review` rejected by ada: fraud"), "{text}");
}

#[test]
fn cancel_ends_a_waiting_execution_and_refuses_a_finished_one() {
    let dir = tempfile::tempdir().unwrap();
    let pay = support::workflow_file(dir.path(), "pay.yaml", support::PAY);
    let out = jamjet_json(dir.path(), &["run", &pay, "--input", r#"{"order_id": "1"}"#, "--json"]);
    let id = out["id"].as_str().unwrap();
    let cancel = jamjet_out(dir.path(), &["cancel", id, "--reason", "customer left"]);
    assert!(cancel.status.success(), "{}", stderr(&cancel));
    assert!(stdout(&cancel).contains("cancelled") && stdout(&cancel).contains("customer left"), "{}", stdout(&cancel));
    let cancelled = jamjet_json(dir.path(), &["executions", "--status", "cancelled", "--json"]);
    assert_eq!(cancelled[0]["id"], id);
    assert_eq!(jamjet_json(dir.path(), &["executions", "--waiting", "--json"]), serde_json::json!([]));
    let inspect = stdout(&jamjet_out(dir.path(), &["inspect", id]));
    assert!(inspect.contains("ended    with the execution (cancelled)"), "{inspect}");

    let again = jamjet_out(dir.path(), &["cancel", id]);
    assert!(!again.status.success());
    assert!(stderr(&again).contains(&format!("execution {id} has already finished (cancelled)")), "{}", stderr(&again));
    let unknown = jamjet_out(dir.path(), &["cancel", "exec_01JM4X8NKWP2ZZ3Q6T1B2C3D4E"]);
    assert!(!unknown.status.success());
    assert!(stderr(&unknown).contains("no execution exec_01JM4X8NKWP2ZZ3Q6T1B2C3D4E"), "{}", stderr(&unknown));

    let other = jamjet_json(dir.path(), &["run", &pay, "--input", r#"{"order_id": "2"}"#, "--json"]);
    let json = jamjet_json(dir.path(), &["cancel", other["id"].as_str().unwrap(), "--json"]);
    assert_eq!(json["status"], "cancelled");
    assert_eq!(json["error"], "cancelled: cancelled from the command line", "the default reason");
}

#[test]
fn run_waits_out_a_timer() {
    let dir = tempfile::tempdir().unwrap();
    let wf = support::workflow_file(
        dir.path(),
        "nap.yaml",
        "id: nap\nstate_schema: { done: bool }\nnodes:\n  nap: { type: wait, duration_ms: 200, next: up }\n  up: { type: set, values: { done: true } }\n",
    );
    let out = jamjet_json(dir.path(), &["run", &wf, "--json"]);
    assert_eq!((out["status"].as_str(), &out["state"]["done"]), (Some("completed"), &Value::Bool(true)), "{out}");
    let json = jamjet_json(dir.path(), &["inspect", out["id"].as_str().unwrap(), "--json"]);
    let wait = &json["nodes"][0]["waits"][0];
    assert_eq!((wait["kind"].as_str(), wait["ended"]["how"].as_str()), (Some("timer"), Some("timeout")), "{wait}");
    let text = stdout(&jamjet_out(dir.path(), &["inspect", out["id"].as_str().unwrap()]));
    assert!(text.contains("waited   for a timer") && text.contains("fired    at"), "{text}");
}

#[test]
fn inspect_shows_branches_with_their_children_and_failed_attempts() {
    let dir = tempfile::tempdir().unwrap();
    let fan = support::workflow_file(
        dir.path(),
        "fan.yaml",
        "id: fan\nstate_schema: { a: int, b: int }\nnodes:\n  fan: { type: parallel, branches: [one, two], join: done, merge: keys }\n  one: { type: set, values: { a: 1 }, next: done }\n  two: { type: set, values: { b: 2 }, next: done }\n  done: { type: end }\n",
    );
    let out = jamjet_json(dir.path(), &["run", &fan, "--json"]);
    assert_eq!(out["status"], "completed", "{out}");
    let id = out["id"].as_str().unwrap();
    let json = jamjet_json(dir.path(), &["inspect", id, "--json"]);
    let branches = json["nodes"][0]["branches"].as_array().unwrap();
    assert_eq!(branches.len(), 2);
    assert!(branches.iter().all(|b| b["status"] == "completed" && b["outcome"] == "completed"), "{branches:?}");
    let child = branches[1]["child"].as_str().unwrap();
    let text = stdout(&jamjet_out(dir.path(), &["inspect", id, "-v"]));
    assert!(text.contains(&format!("branch 1  {child}  completed")) && text.contains(r#"wrote {"b":2}"#), "{text}");
    assert!(text.contains("FanOut") && text.contains("BranchFinished"), "-v shows every event: {text}");
    let child_view = stdout(&jamjet_out(dir.path(), &["inspect", child]));
    assert!(child_view.contains(&format!("parent     {id} (node `fan`, branch 1")), "{child_view}");

    // A call to a closed port fails twice: each attempt and the retry decided after it.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let call = support::workflow_file(
        dir.path(),
        "call.yaml",
        &format!(
            "id: call\nstate_schema: {{ out: any }}\nnodes:\n  call:\n    type: http\n    url: http://127.0.0.1:{port}/\n    output_key: out\n    retry: {{ max_attempts: 2, backoff: constant, delay_ms: 10 }}\n"
        ),
    );
    let failed = jamjet_out(dir.path(), &["run", &call]);
    assert!(!failed.status.success());
    let id =
        jamjet_json(dir.path(), &["executions", "--status", "failed", "--json"])[0]["id"].as_str().unwrap().to_string();
    let text = stdout(&jamjet_out(dir.path(), &["inspect", &id]));
    assert!(text.contains("attempt 1  failed at") && text.contains("; attempt 2 at"), "{text}");
    assert!(text.contains("attempt 2  failed at") && text.contains("; gave up"), "{text}");
}

#[test]
fn resume_carries_a_killed_run_on_to_its_next_wait_and_does_not_hang_on_it() {
    let dir = tempfile::tempdir().unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let wf = support::workflow_file(
        dir.path(),
        "call_then_wait.yaml",
        &format!(
            "id: cw\nstate_schema: {{ out: str, paid: any }}\nnodes:\n  call:\n    type: http\n    url: http://127.0.0.1:{port}/\n    output_key: out\n    next: pay\n  pay: {{ type: wait, event: paid, output_key: paid }}\n"
        ),
    );
    let mut run = jamjet()
        .arg("--data-dir")
        .arg(dir.path())
        .args(["run", &wf])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (conn, _) = listener.accept().unwrap();
    run.kill().unwrap();
    run.wait().unwrap();
    drop(conn);
    let server = std::thread::spawn(move || {
        use std::io::{Read, Write};
        let (mut c, _) = listener.accept().unwrap();
        let mut buf = [0u8; 4096];
        let _ = c.read(&mut buf).unwrap();
        c.write_all(b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
            .unwrap();
    });
    let out = jamjet_json(dir.path(), &["resume", "--json"]);
    server.join().unwrap();
    assert_eq!(out[0]["status"], "waiting", "{out}");
    assert_eq!(out[0]["waiting"][0]["event"], "paid", "{out}");
    let id = out[0]["id"].as_str().unwrap();
    let done = jamjet_json(dir.path(), &["signal", id, "paid", "--payload", "true", "--json"]);
    assert_eq!((done["status"].as_str(), &done["state"]["out"]), (Some("completed"), &Value::from("ok")), "{done}");
}

#[test]
fn run_parks_on_waiting_branches_and_signals_carry_the_family_on() {
    let dir = tempfile::tempdir().unwrap();
    let par = support::workflow_file(
        dir.path(),
        "par.yaml",
        "id: par\nstate_schema: { a: any, b: any }\nnodes:\n  fan: { type: parallel, branches: [wa, wb], join: done, merge: keys }\n  wa: { type: wait, event: a, output_key: a, next: done }\n  wb: { type: wait, event: b, output_key: b, next: done }\n  done: { type: end }\n",
    );
    let out = jamjet_json(dir.path(), &["run", &par, "--json"]);
    let root = out["id"].as_str().unwrap().to_string();
    let waits = out["waiting"].as_array().unwrap().clone();
    assert_eq!(waits.len(), 2, "{out}");
    assert!(waits.iter().all(|w| w["parent"] == root.as_str()), "{out}");
    let child = |key: &str| waits.iter().find(|w| w["event"] == key).unwrap()["id"].as_str().unwrap().to_string();
    let first = jamjet_json(dir.path(), &["signal", &child("a"), "a", "--payload", "1", "--json"]);
    assert_eq!(
        (first["status"].as_str(), first["family"]["id"].as_str()),
        (Some("completed"), Some(root.as_str())),
        "{first}"
    );
    let last = jamjet_json(dir.path(), &["signal", &child("b"), "b", "--payload", "2", "--json"]);
    assert_eq!((last["id"].as_str(), last["status"].as_str()), (Some(root.as_str()), Some("completed")), "{last}");
    assert_eq!(last["state"], serde_json::json!({"a": 1, "b": 2}));
}

#[test]
fn the_examples_run_a_fan_out_and_a_sub_workflow_to_completion() {
    let dir = tempfile::tempdir().unwrap();
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let fan = examples.join("fanout.yaml");
    let out =
        jamjet_json(dir.path(), &["run", fan.to_str().unwrap(), "--input", r#"{"names": ["Ada", "Grace"]}"#, "--json"]);
    assert_eq!(out["status"], "completed", "{out}");
    assert_eq!(out["state"]["greetings"].as_array().map(Vec::len), Some(2), "{out}");
    assert_eq!(out["state"]["shout"], "ADA, GRACE", "{out}");
    let parent = examples.join("parent.yaml");
    let out = jamjet_json(dir.path(), &["run", parent.to_str().unwrap(), "--input", r#"{"user": "Ada"}"#, "--json"]);
    assert_eq!(out["status"], "completed", "{out}");
    assert_eq!(out["state"]["welcome"]["name"], "Ada", "{out}");
    // The child is an execution of its own, listed beside its parent.
    let list = jamjet_json(dir.path(), &["executions", "--json"]);
    let ids: Vec<&str> = list.as_array().unwrap().iter().filter_map(|m| m["workflow_id"].as_str()).collect();
    assert!(
        ids.contains(&"welcome") && ids.iter().filter(|w| **w != "welcome" && **w != "fanout").count() >= 1,
        "{list}"
    );
}
