//! The `jamjet` binary as a black box: run, validate, inspect, executions,
//! resume, and bad input (malformed YAML, schema-invalid input, unknown
//! execution id, a corrupt journal record, a data dir in use) — each a
//! clear error, a non-zero exit, and nothing changed.

mod support;

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

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
    assert!(err.contains("corrupt journal record") && err.contains("record 1 does not decode"), "{err}");
    // The index is intact and nothing else changed.
    assert_eq!(executions(dir.path()).len(), 1);
}

#[test]
fn a_data_dir_in_use_by_another_process_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let wait = dir.path().join("slow.yaml");
    // A function node whose function is not registered in the CLI fails at
    // once; an http call to a port that accepts and never answers holds the run.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::fs::write(
        &wait,
        format!("id: slow\nstate_schema: {{ out: str }}\nnodes:\n  hang:\n    type: http\n    url: http://127.0.0.1:{port}/\n    timeout_ms: 20000\n"),
    )
    .unwrap();
    let data = dir.path().join("data");
    let mut holder = jamjet()
        .arg("--data-dir")
        .arg(&data)
        .args(["run", wait.to_str().unwrap()])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the holder has accepted its connection: it holds the store now.
    listener.set_nonblocking(true).unwrap();
    let start = Instant::now();
    let _conn = loop {
        if let Ok((c, _)) = listener.accept() {
            break c;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "the holder never called out");
        std::thread::sleep(Duration::from_millis(5));
    };
    let out = jamjet_out(&data, &["executions"]);
    holder.kill().unwrap();
    holder.wait().unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("in use by another jamjet process"), "{}", stderr(&out));
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
