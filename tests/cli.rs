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
use support::{OutputBounded, jamjet, jamjet_json, jamjet_out};

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
    let said = stderr(&early);
    assert!(said.contains("nothing waits for it yet") && said.contains("waits for `payment:42`"), "{said}");
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
        .output_bounded();
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
    assert_eq!((wait["kind"].as_str(), wait["ended"]["how"].as_str()), (Some("timer"), Some("fired")), "{wait}");
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
    // The child is an execution of its own, listed under its parent with --all.
    let list = jamjet_json(dir.path(), &["executions", "--all", "--json"]);
    let ids: Vec<&str> = list.as_array().unwrap().iter().filter_map(|m| m["workflow_id"].as_str()).collect();
    assert!(
        ids.contains(&"welcome") && ids.iter().filter(|w| **w != "welcome" && **w != "fanout").count() >= 1,
        "{list}"
    );
    let child = list.as_array().unwrap().iter().find(|m| m["parent"] == out["id"]).unwrap();
    assert_eq!(child["workflow_id"], "child-greeter", "{list}");
}

// ------------------------------------------------------- smaller items

/// Two calls: one that fails once (503) and is retried, sending an API
/// key in the URL and a bearer token; one whose reply is longer than the
/// journal keeps and sets a cookie and a token header.
const CALLS: &str = r#"id: calls
state_schema: { base: str, flaky: any, page: any }
retry_policies:
  quick: { max_attempts: 3, backoff: constant, delay_ms: 10 }
nodes:
  flaky:
    type: http
    method: POST
    url: "{{ state.base }}/flaky/1?api_key=k-s3cr3t&page=2"
    headers: { Authorization: "Bearer sk-s3cr3t", X-Trace: "t-1" }
    body: { v: 1 }
    output_key: flaky
    retry: quick
    next: page
  page:
    type: http
    method: POST
    url: "{{ state.base }}/secret/20000"
    body: "hello"
    output_key: page
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inspect_shows_each_attempt_of_an_http_call_with_its_secrets_redacted() {
    let server = support::Server::start().await;
    let dir = tempfile::tempdir().unwrap();
    let wf = support::workflow_file(dir.path(), "calls.yaml", CALLS);
    let input = serde_json::json!({ "base": server.url }).to_string();
    let out = jamjet_json(dir.path(), &["run", &wf, "--input", &input, "--json"]);
    assert_eq!(out["status"], "completed", "{out}");
    let id = out["id"].as_str().unwrap();

    let json = jamjet_json(dir.path(), &["inspect", id, "--json"]);
    let everything = json.to_string();
    for secret in ["sk-s3cr3t", "k-s3cr3t", "cookie-s3cr3t", "token-s3cr3t"] {
        let at = everything.find(secret).map(|i| &everything[i.saturating_sub(300)..i + secret.len()]);
        assert!(at.is_none(), "`{secret}` reached the journal: …{}", at.unwrap_or_default());
    }
    let [flaky, page] = &json["nodes"].as_array().unwrap()[..] else { panic!("two rows: {json}") };
    let tries = flaky["exchanges"].as_array().unwrap();
    assert_eq!(tries.len(), 2, "each attempt's exchange: {flaky}");
    let (first, second) = (&tries[0], &tries[1]);
    assert_eq!((first["attempt"].as_u64(), second["attempt"].as_u64()), (Some(1), Some(2)));
    assert_eq!(first["request"]["method"], "POST");
    let url = first["request"]["url"].as_str().unwrap();
    assert!(url.ends_with("/flaky/1?api_key=[redacted]&page=2"), "{url}");
    let sent = &first["request"]["headers"];
    assert_eq!((sent["authorization"].as_str(), sent["x-trace"].as_str()), (Some("[redacted]"), Some("t-1")), "{sent}");
    assert_eq!(sent["idempotency-key"], format!("{id}/flaky/1"), "{sent}");
    assert_eq!(first["request"]["body"], serde_json::json!({"v": 1}));
    assert_eq!(
        (first["response"]["status"].as_u64(), first["response"]["body"].as_str()),
        (Some(503), Some("try again"))
    );
    assert_eq!(second["response"]["status"], 200);
    assert_eq!(second["response"]["body"], serde_json::json!({"ok": true, "calls": 2}));

    let reply = &page["exchanges"][0]["response"];
    assert_eq!(reply["headers"]["set-cookie"], "[redacted]", "{reply}");
    assert_eq!(reply["headers"]["x-session-token"], "[redacted]", "{reply}");
    assert_eq!(reply["headers"]["content-type"], "text/plain", "{reply}");
    let body = reply["body"].as_str().unwrap();
    assert!(body.starts_with("xxxx") && body.ends_with("…[3616 more bytes not journaled]"), "{}", &body[16_000..]);
    assert_eq!(page["exchanges"][0]["request"]["body"], "hello");
    // The state has the whole reply: only the journal's copy is cut.
    assert_eq!(out["state"]["page"].as_str().map(str::len), Some(20_000));

    let text = stdout(&jamjet_out(dir.path(), &["inspect", id, "-v"]));
    let short = |t: &str| t.chars().take(3000).collect::<String>();
    for needle in [
        "request (attempt 1)",
        "reply (attempt 1):",
        "\"status\": 503",
        "\"authorization\": \"[redacted]\"",
        "reply (attempt 2):",
        "more bytes not journaled]",
    ] {
        assert!(text.contains(needle), "inspect -v lacks {needle}:\n{}", short(&text));
    }
    // An http call costs no tokens: no usage line, no token columns.
    assert!(!text.contains("TOKENS") && !text.contains("usage "), "{}", short(&text));
    let followed = stdout(&jamjet_out(dir.path(), &["run", &wf, "--input", &input, "--follow"]));
    assert!(followed.contains("flaky  POST http://") && followed.contains("answered 503"), "{followed}");
}

#[test]
fn a_signal_nothing_waits_for_is_kept_and_names_what_waits_instead() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let gather = support::workflow_file(dir.path(), "gather.yaml", support::GATHER);
    let out = jamjet_json(&data, &["run", &gather, "--json"]);
    let id = out["id"].as_str().unwrap();
    // The key a branch waits for, sent to the parent: kept there, and the
    // branch that waits for it is named with the command that reaches it.
    let kept = jamjet_out(&data, &["signal", id, "answer:1", "--payload", "1"]);
    assert!(kept.status.success(), "a kept event is not an error: {}", stderr(&kept));
    let said = stderr(&kept);
    assert!(
        said.contains(&format!("event `answer:1` delivered to execution {id}; nothing waits for it yet")),
        "{said}"
    );
    let branches = jamjet_json(&data, &["executions", "--waiting", "--json"]);
    for b in branches.as_array().unwrap() {
        let (child, key) = (b["id"].as_str().unwrap(), b["event"].as_str().unwrap());
        assert!(
            said.contains(&format!("its child execution {child} waits for `{key}` (node `wait_answer`)")),
            "{said}"
        );
    }
    let one = branches.as_array().unwrap().iter().find(|b| b["event"] == "answer:1").unwrap();
    let command = format!(
        "to deliver it there, jamjet --data-dir {} signal {} answer:1",
        data.display(),
        one["id"].as_str().unwrap()
    );
    assert!(said.contains(&command), "{said}");

    // An execution that waits for no event (an approval here) says so; --json keeps stdout JSON.
    let review = support::workflow_file(dir.path(), "review.yaml", support::REVIEW);
    let out = jamjet_json(&data, &["run", &review, "--input", r#"{"order_id": "1"}"#, "--json"]);
    let id = out["id"].as_str().unwrap();
    let kept = jamjet_out(&data, &["signal", id, "go", "--json"]);
    assert!(kept.status.success(), "{}", stderr(&kept));
    assert!(
        stderr(&kept).contains(&format!("execution {id} waits for no event now (nor do its children)")),
        "{}",
        stderr(&kept)
    );
    let outcome: Value = serde_json::from_slice(&kept.stdout).unwrap();
    assert_eq!(outcome["status"], "waiting", "{outcome}");
    let json = jamjet_json(&data, &["inspect", id, "--json"]);
    assert_eq!(json["kept_signals"][0]["key"], "go", "{json}");
}

#[test]
fn executions_counts_children_under_their_parent_and_lists_them_with_all() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let gather = support::workflow_file(dir.path(), "gather.yaml", support::GATHER);
    let out = jamjet_json(&data, &["run", &gather, "--json"]);
    let id = out["id"].as_str().unwrap();

    let text = stdout(&jamjet_out(&data, &["executions"]));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "a header, one row, a note:\n{text}");
    assert!(lines[0].ends_with("CHILDREN") && lines[1].starts_with(id) && lines[1].ends_with(" 3"), "{text}");
    assert_eq!(lines[2], "(+3 child executions not listed: --all lists them under their parents)");
    let rows = jamjet_json(&data, &["executions", "--json"]);
    assert_eq!(rows.as_array().unwrap().len(), 1, "{rows}");
    assert_eq!((rows[0]["parent"].clone(), rows[0]["children"].as_u64()), (Value::Null, Some(3)), "{rows}");

    let all = stdout(&jamjet_out(&data, &["executions", "--all"]));
    let lines: Vec<&str> = all.lines().collect();
    assert_eq!(lines.len(), 5, "{all}");
    assert!(lines[1].starts_with(id), "the parent first: {all}");
    assert!(
        lines[2..].iter().all(|l| l.starts_with("  exec_") && l.contains("gather@")),
        "its children under it: {all}"
    );
    let rows = jamjet_json(&data, &["executions", "--all", "--json"]);
    let children: Vec<&Value> = rows.as_array().unwrap().iter().filter(|r| r["parent"] == id).collect();
    assert_eq!(children.len(), 3, "{rows}");
    assert!(children.iter().all(|c| c["children"] == 0), "{rows}");

    // Filtered to what waits: only the branches wait; each is counted, none listed without --all.
    let waiting = stdout(&jamjet_out(&data, &["executions", "--status", "waiting"]));
    assert!(waiting.contains("3 child executions"), "{waiting}");
}

#[test]
fn a_timer_ends_by_firing_not_by_timing_out() {
    let dir = tempfile::tempdir().unwrap();
    let nap = support::workflow_file(
        dir.path(),
        "nap.yaml",
        "id: nap\nstate_schema: { n: int }\nnodes:\n  nap: { type: wait, duration_ms: 50, next: after }\n  after: { type: set, values: { n: 1 } }\n",
    );
    let followed = jamjet_out(dir.path(), &["run", &nap, "--follow"]);
    assert!(followed.status.success(), "{}", stderr(&followed));
    let text = stdout(&followed);
    assert!(text.contains("nap  timer fired"), "{text}");
    assert!(!text.contains("deadline") && !text.contains("timed out"), "{text}");
    let id = jamjet_json(dir.path(), &["executions", "--json"])[0]["id"].as_str().unwrap().to_string();
    let json = jamjet_json(dir.path(), &["inspect", &id, "--json"]);
    let types: Vec<&str> = json["events"].as_array().unwrap().iter().filter_map(|e| e["type"].as_str()).collect();
    assert!(types.contains(&"TimerFired") && !types.contains(&"WaitTimedOut"), "{types:?}");
    assert_eq!(json["nodes"][0]["waits"][0]["ended"]["how"], "fired", "{json}");
    let text = stdout(&jamjet_out(dir.path(), &["inspect", &id]));
    assert!(text.contains("fired    at") && !text.contains("timeout"), "{text}");
}

#[test]
fn counts_read_in_the_singular_for_one() {
    let dir = tempfile::tempdir().unwrap();
    let one =
        support::workflow_file(dir.path(), "one.yaml", "id: one\nstate_schema: {}\nnodes:\n  only: { type: end }\n");
    let out = jamjet_out(dir.path(), &["validate", &one]);
    assert!(stdout(&out).contains("with 1 node, starting at `only`"), "{}", stdout(&out));
    let bad = support::workflow_file(
        dir.path(),
        "bad.yaml",
        "id: x\nstate_schema: { a: str }\nnodes:\n  one:\n    type: set\n    values: { a: hi }\n    next: tow\n",
    );
    let out = jamjet_out(dir.path(), &["validate", &bad]);
    assert!(stderr(&out).lines().any(|l| l == "1 finding"), "{}", stderr(&out));
}
