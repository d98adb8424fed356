//! The `jamjet` CLI against a real `jamjet dev` on 127.0.0.1:0, with
//! `--server URL` and with `JAMJET_SERVER`: run to completion, to a wait
//! and on with a signal, to an approval and on with a decision, cancel;
//! `inspect` and `executions` print what the local commands print once
//! the server stopped; `run --follow` prints the steps in order (text and
//! JSON Lines), locally and over the server's event stream; unknown
//! executions and unreachable servers are clear errors.
//!
//! The CLI is always given the server's own data dir: were it to open the
//! store instead of going through the API, the server's lock would fail it.

mod support;

use std::path::Path;
use std::process::Output;

use serde_json::Value;
use support::dev::DevServer;
use support::{OutputBounded, TWO_STEPS, jamjet};

/// `jamjet --data-dir DIR ARGS... --server URL`.
fn cli(dir: &Path, url: &str, args: &[&str]) -> Output {
    jamjet().env_remove("JAMJET_SERVER").arg("--data-dir").arg(dir).args(args).args(["--server", url]).output_bounded()
}

/// `jamjet --data-dir DIR ARGS...` with `JAMJET_SERVER=URL`.
fn cli_env(dir: &Path, url: &str, args: &[&str]) -> Output {
    jamjet().env("JAMJET_SERVER", url).arg("--data-dir").arg(dir).args(args).output_bounded()
}

/// `jamjet --data-dir DIR ARGS...` on the data dir itself.
fn local(dir: &Path, args: &[&str]) -> Output {
    jamjet().env_remove("JAMJET_SERVER").arg("--data-dir").arg(dir).args(args).output_bounded()
}

fn ok(out: Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "failed: {}\nstdout:\n{stdout}\nstderr:\n{}", out.status, stderr(&out));
    stdout
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).to_string()
}

fn json(out: Output) -> Value {
    let text = ok(out);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("no JSON ({e}):\n{text}"))
}

#[test]
fn run_completes_through_the_server_and_inspect_prints_what_the_local_one_prints() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let wf = support::workflow_file(dir.path(), "two.yaml", TWO_STEPS);
    let mut server = DevServer::start(&data, &[]);
    let out = json(cli(&data, &server.url, &["run", &wf, "--json"]));
    assert_eq!(out["status"], "completed", "{out}");
    assert_eq!((out["state"]["a"].as_i64(), out["state"]["b"].as_i64()), (Some(1), Some(2)), "{out}");
    let id = out["id"].as_str().unwrap().to_string();
    // The same key twice is the same execution.
    let keyed = json(cli(&data, &server.url, &["run", &wf, "--key", "k1", "--json"]));
    let again = json(cli(&data, &server.url, &["run", &wf, "--key", "k1", "--json"]));
    assert_eq!(keyed["id"], again["id"]);
    assert_ne!(keyed["id"], out["id"]);
    let text = ok(cli(&data, &server.url, &["inspect", &id]));
    let verbose = ok(cli(&data, &server.url, &["inspect", &id, "-v"]));
    let remote_json = json(cli(&data, &server.url, &["inspect", &id, "--json"]));
    assert!(text.contains("first") && text.contains("second") && text.contains("completed"), "{text}");
    server.stop();
    assert_eq!(text, ok(local(&data, &["inspect", &id])));
    assert_eq!(verbose, ok(local(&data, &["inspect", &id, "-v"])));
    assert_eq!(remote_json, json(local(&data, &["inspect", &id, "--json"])));
}

#[test]
fn a_wait_and_a_signal_through_jamjet_server() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let wf = support::workflow_file(dir.path(), "pay.yaml", support::PAY);
    let server = DevServer::start(&data, &[]);
    let url = server.url.as_str();
    let text = ok(cli_env(&data, url, &["run", &wf, "--input", r#"{"order_id": "42"}"#]));
    assert!(text.contains("waits at node `wait_payment`") && text.contains("for event `payment:42`"), "{text}");
    // JAMJET_SERVER says where already: the next command needs no --server.
    let next = text.lines().find(|l| l.contains("to go on:")).unwrap_or_else(|| panic!("no next step:\n{text}"));
    assert!(next.contains("jamjet signal exec_") && !next.contains("--server"), "{next}");
    let out = json(cli_env(&data, url, &["run", &wf, "--input", r#"{"order_id": "43"}"#, "--json"]));
    assert_eq!(out["status"], "waiting", "{out}");
    assert_eq!(out["waiting"][0]["event"], "payment:43", "{out}");
    let id = out["id"].as_str().unwrap();
    let listed = json(cli_env(&data, url, &["executions", "--waiting", "--json"]));
    assert_eq!(listed.as_array().map(Vec::len), Some(2), "{listed}");
    let done = json(cli_env(&data, url, &["signal", id, "payment:43", "--payload", r#"{"paid": 10}"#, "--json"]));
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["state"]["payment"]["paid"].as_f64(), Some(10.0), "{done}");
}

#[test]
fn an_approval_a_decision_and_a_cancel_through_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let wf = support::workflow_file(dir.path(), "review.yaml", support::REVIEW);
    let server = DevServer::start(&data, &[]);
    let url = server.url.as_str();
    let text = ok(cli(&data, url, &["run", &wf, "--input", r#"{"order_id": "7"}"#]));
    assert!(text.contains("for an approval") && text.contains("prompt: Ship order 7?"), "{text}");
    let next = text.lines().find(|l| l.contains("to go on:")).unwrap_or_else(|| panic!("no next step:\n{text}"));
    assert!(next.contains("--decision approved") && next.contains(&format!("--server {url}")), "{next}");
    let id = text.split_whitespace().nth(1).unwrap().to_string();
    assert!(id.starts_with("exec_"), "{text}");
    let approved = json(cli(&data, url, &["approve", &id, "--decision", "approved", "--by", "ann", "--json"]));
    assert_eq!(approved["status"], "waiting", "{approved}");
    assert_eq!(approved["waiting"][0]["event"], "shipped:7", "{approved}");
    assert_eq!(approved["state"]["decision"]["decision"], "approved", "{approved}");
    assert_eq!(approved["state"]["decision"]["by"], "ann", "{approved}");
    let twice = cli(&data, url, &["approve", &id, "--decision", "rejected"]);
    assert!(!twice.status.success(), "a second decision is refused");
    let cancelled = json(cli(&data, url, &["cancel", &id, "--reason", "out of stock", "--json"]));
    assert_eq!(cancelled["status"], "cancelled", "{cancelled}");
    assert_eq!(cancelled["children"], serde_json::json!([]));
    let late = cli(&data, url, &["signal", &id, "shipped:7"]);
    assert!(!late.status.success());
    assert!(stderr(&late).contains("finished"), "{}", stderr(&late));
}

#[test]
fn executions_through_the_server_list_what_the_local_command_lists() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let two = support::workflow_file(dir.path(), "two.yaml", TWO_STEPS);
    let pay = support::workflow_file(dir.path(), "pay.yaml", support::PAY);
    let mut server = DevServer::start(&data, &[]);
    let url = server.url.clone();
    ok(cli(&data, &url, &["run", &two]));
    ok(cli(&data, &url, &["run", &pay, "--input", r#"{"order_id": "1"}"#]));
    let all = json(cli(&data, &url, &["executions", "--json"]));
    let waiting = json(cli(&data, &url, &["executions", "--waiting", "--json"]));
    let completed = json(cli(&data, &url, &["executions", "--status", "completed", "--json"]));
    let table = ok(cli(&data, &url, &["executions"]));
    assert_eq!(all.as_array().map(Vec::len), Some(2), "{all}");
    assert_eq!(completed.as_array().map(Vec::len), Some(1), "{completed}");
    server.stop();
    assert_eq!(all, json(local(&data, &["executions", "--json"])));
    assert_eq!(waiting, json(local(&data, &["executions", "--waiting", "--json"])));
    assert_eq!(completed, json(local(&data, &["executions", "--status", "completed", "--json"])));
    assert_eq!(table, ok(local(&data, &["executions"])));
}

#[test]
fn children_and_kept_signals_through_the_server_read_as_they_do_locally() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let gather = support::workflow_file(dir.path(), "gather.yaml", support::GATHER);
    let mut server = DevServer::start(&data, &[]);
    let url = server.url.clone();
    let out = json(cli(&data, &url, &["run", &gather, "--json"]));
    let id = out["id"].as_str().unwrap().to_string();
    // A branch's key sent to the parent: kept, and the branch named with the command that reaches it.
    let kept = cli(&data, &url, &["signal", &id, "answer:2"]);
    assert!(kept.status.success(), "{}", stderr(&kept));
    let said = stderr(&kept);
    assert!(said.contains("nothing waits for it yet"), "{said}");
    let line = said.lines().find(|l| l.contains("waits for `answer:2`")).unwrap_or_else(|| panic!("{said}"));
    assert!(
        line.contains("its child execution exec_") && line.ends_with(&format!("answer:2 --server {url}")),
        "{line}"
    );

    let table = ok(cli(&data, &url, &["executions"]));
    let tree = ok(cli(&data, &url, &["executions", "--all"]));
    let rows = json(cli(&data, &url, &["executions", "--json"]));
    let all = json(cli(&data, &url, &["executions", "--all", "--json"]));
    assert!(table.contains("(+3 child executions not listed"), "{table}");
    assert_eq!(tree.lines().filter(|l| l.starts_with("  exec_")).count(), 3, "{tree}");
    assert_eq!(rows.as_array().map(Vec::len), Some(1), "{rows}");
    assert_eq!(all.as_array().unwrap().iter().filter(|r| r["parent"] == id.as_str()).count(), 3, "{all}");
    server.stop();
    assert_eq!(table, ok(local(&data, &["executions"])));
    assert_eq!(tree, ok(local(&data, &["executions", "--all"])));
    assert_eq!(rows, json(local(&data, &["executions", "--json"])));
    assert_eq!(all, json(local(&data, &["executions", "--all", "--json"])));
}

/// The JSON Lines of `--follow --json`, then the outcome (pretty JSON).
fn split_follow(stdout: &str) -> (Vec<Value>, Value) {
    let lines: Vec<&str> = stdout.lines().collect();
    let records = lines.iter().take_while(|l| l.starts_with("{\"seq\"")).count();
    let parsed = lines[..records].iter().map(|l| serde_json::from_str(l).unwrap()).collect();
    let outcome = serde_json::from_str(&lines[records..].join("\n")).unwrap_or_else(|e| panic!("{e}:\n{stdout}"));
    (parsed, outcome)
}

fn check_followed(text: &str, json_out: &str) {
    let order =
        ["execution started", "first  started", "first  completed in", "second  started", "second  completed in"];
    let mut at = 0;
    for step in order {
        let found = text[at..].find(step).unwrap_or_else(|| panic!("`{step}` missing or out of order:\n{text}"));
        at += found + step.len();
    }
    assert!(text[at..].contains("execution completed"), "{text}");
    assert!(text.contains("\nexecution exec_") && text.contains(" completed at "), "the outcome follows:\n{text}");
    let (records, outcome) = split_follow(json_out);
    let seqs: Vec<u64> = records.iter().map(|r| r["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>(), "every record once, in order");
    for r in &records {
        let _: jamjet::journal::Record = serde_json::from_value(r.clone()).unwrap();
    }
    assert!(records.first().is_some_and(|r| r["event"]["ExecutionStarted"].is_object()), "{json_out}");
    assert!(records.last().is_some_and(|r| r["event"]["ExecutionCompleted"].is_object()), "{json_out}");
    assert_eq!(outcome["status"], "completed", "{outcome}");
}

#[test]
fn run_follow_prints_each_step_in_order_locally_and_through_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let wf = support::workflow_file(dir.path(), "two.yaml", TWO_STEPS);
    check_followed(
        &ok(local(&data, &["run", &wf, "--follow"])),
        &ok(local(&data, &["run", &wf, "--follow", "--json"])),
    );
    let server = DevServer::start(&data, &[]);
    let url = server.url.as_str();
    check_followed(
        &ok(cli(&data, url, &["run", &wf, "--follow"])),
        &ok(cli_env(&data, url, &["run", &wf, "--follow", "--json"])),
    );
    // A follow that parks: the wait is the last step shown, then what moves it on.
    let pay = support::workflow_file(dir.path(), "pay.yaml", support::PAY);
    let text = ok(cli(&data, url, &["run", &pay, "--input", r#"{"order_id": "9"}"#, "--follow"]));
    let wait = text.find("wait_payment  waiting for event `payment:9`").unwrap_or_else(|| panic!("{text}"));
    assert!(text[wait..].contains("to go on: jamjet signal"), "{text}");
}

#[test]
fn unknown_executions_conflicts_and_unreachable_servers_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let wf = support::workflow_file(dir.path(), "two.yaml", TWO_STEPS);
    let server = DevServer::start(&data, &[]);
    let url = server.url.as_str();
    let unknown = "exec_01JM4X8NKWP2ABCDEFGHJKMNPQ";
    for args in [vec!["inspect", unknown], vec!["signal", unknown, "k"], vec!["cancel", unknown]] {
        let out = cli(&data, url, &args);
        assert!(!out.status.success(), "{args:?}");
        let err = stderr(&out);
        assert!(err.contains(unknown) && err.contains("unknown_execution") && err.contains(url), "{args:?}: {err}");
    }
    // Other content under the same id and version: refused, with the way out; --replace takes it.
    ok(cli(&data, url, &["run", &wf]));
    let changed = support::workflow_file(dir.path(), "two_changed.yaml", &TWO_STEPS.replace("a: 1", "a: 5"));
    let out = cli(&data, url, &["run", &changed]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("bump `version:`") && err.contains("--replace"), "{err}");
    let out = json(cli(&data, url, &["run", &changed, "--replace", "--json"]));
    assert_eq!(out["state"]["a"].as_i64(), Some(5), "{out}");
    // Nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let gone = format!("http://127.0.0.1:{port}");
    for args in [vec!["run", wf.as_str()], vec!["executions"], vec!["inspect", unknown]] {
        let out = cli(&data, &gone, &args);
        assert!(!out.status.success(), "{args:?}");
        let err = stderr(&out);
        assert!(err.contains(&format!("cannot reach jamjet server at {gone}")), "{args:?}: {err}");
    }
}

// ---- workflow identity and required inputs ----

/// A workflow that reads `question` before anything writes it, and `tries`,
/// which has a default.
const ASKS: &str = r#"# reads a key the input must give
id: asks
version: "1"
state_schema:
  question: str
  tries: { type: int, default: 2 }
  answer: str
nodes:
  search:
    type: set
    values: { answer: "{{ state.question }} x{{ state.tries }}" }
"#;

#[tokio::test]
async fn the_same_file_from_workflows_posted_as_yaml_or_ir_and_run_with_server_is_one_workflow() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let wf_dir = dir.path().join("workflows");
    std::fs::create_dir(&wf_dir).unwrap();
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    for name in ["wait.yaml", "hello.yaml"] {
        std::fs::copy(examples.join(name), wf_dir.join(name)).unwrap();
    }
    let mut server = DevServer::start(&data, &["--workflows", wf_dir.to_str().unwrap()]);
    let api = server.api();
    let (_, list) = api.get("/workflows").await;
    let hash = |list: &Value, id: &str| {
        list["workflows"].as_array().unwrap().iter().find(|r| r["workflow_id"] == id).unwrap()["hash"].clone()
    };
    let wait_hash = hash(&list, "await-payment");
    // The README's sequence: the same bytes posted from elsewhere are the registered workflow.
    let (status, body) = api.register_yaml(&std::fs::read_to_string(examples.join("wait.yaml")).unwrap()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["hash"], wait_hash, "{body}");
    // Its IR read back and posted as JSON: the same again.
    let (_, one) = api.get("/workflows/await-payment").await;
    let (status, body) = api.post("/workflows", &one["workflow"]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["hash"], wait_hash, "{body}");
    // `run --server` with the file from another folder: no conflict, nothing registered anew.
    let out = cli(
        &data,
        &server.url,
        &["run", examples.join("hello.yaml").to_str().unwrap(), "--input", r#"{"name": "Ada"}"#, "--json"],
    );
    let err = stderr(&out);
    let run = json(out);
    assert_eq!(run["status"], "completed", "{run}");
    assert!(!err.contains("registered"), "{err}");
    let (_, after) = api.get("/workflows").await;
    assert_eq!(after["workflows"].as_array().unwrap().len(), 2, "{after}");
    server.stop();
}

#[test]
fn two_files_with_one_id_and_version_but_other_content_stop_the_start_naming_both() {
    let dir = tempfile::tempdir().unwrap();
    let wf_dir = dir.path().join("workflows");
    std::fs::create_dir(&wf_dir).unwrap();
    support::workflow_file(&wf_dir, "a.yaml", TWO_STEPS);
    support::workflow_file(&wf_dir, "b.yaml", &TWO_STEPS.replace("a: 1", "a: 5"));
    // The same content twice is one workflow, not a clash.
    support::workflow_file(&wf_dir, "c.yaml", &format!("# a copy\n{TWO_STEPS}"));
    let mut cmd = jamjet();
    cmd.env_remove("JAMJET_SERVER").arg("--data-dir").arg(dir.path().join("data"));
    cmd.args(["dev", "--bind", "127.0.0.1:0", "--workflows"]).arg(&wf_dir);
    let done = support::run_bounded(cmd, std::time::Duration::from_secs(60), "jamjet dev");
    let err = stderr(&done.output);
    assert!(!done.output.status.success(), "{err}");
    let (a, b) = (wf_dir.join("a.yaml"), wf_dir.join("b.yaml"));
    assert!(
        err.contains(&format!(
            "{} and {} both declare workflow `two` version `1`, with different content",
            a.display(),
            b.display()
        )),
        "{err}"
    );
    assert!(!err.contains("c.yaml and"), "a copy is no clash: {err}");
    assert!(String::from_utf8_lossy(&done.output.stdout).is_empty(), "it never listened");
}

#[tokio::test]
async fn a_missing_required_key_is_refused_before_anything_starts_from_the_cli_and_over_http() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let wf = support::workflow_file(dir.path(), "asks.yaml", ASKS);
    let out = local(&data, &["run", &wf, "--input", "{}"]);
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains(&format!("input is missing required key `question` (read by node `search` at {wf}:9:3; give it in the input, or a default in state_schema)")),
        "{err}"
    );
    // Nothing was journaled.
    let listed = local(&data, &["executions", "--json"]);
    assert!(!String::from_utf8_lossy(&listed.stdout).contains("asks"), "{}", String::from_utf8_lossy(&listed.stdout));
    // Given, it runs, with the default applied.
    let done = json(local(&data, &["run", &wf, "--input", r#"{"question": "why"}"#, "--json"]));
    assert_eq!(done["state"]["answer"], "why x2", "{done}");
    assert_eq!(done["state"]["tries"], 2, "{done}");

    let server_data = dir.path().join("server");
    let mut server = DevServer::start(&server_data, &[]);
    let api = server.api();
    let (status, body) = api.register_yaml(ASKS).await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = api.post("/executions", &serde_json::json!({ "workflow_id": "asks", "input": {} })).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "invalid_input", "{body}");
    assert_eq!(body["error"]["details"]["missing"], serde_json::json!(["question"]), "{body}");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("required key `question` (read by node `search`"),
        "{body}"
    );
    let (_, list) = api.get("/executions").await;
    assert_eq!(list["executions"], serde_json::json!([]), "{list}");
    let (status, body) = api
        .post("/executions", &serde_json::json!({ "workflow_id": "asks", "input": { "question": "q", "tries": 5 } }))
        .await;
    assert_eq!(status, 201, "{body}");
    server.stop();
}
