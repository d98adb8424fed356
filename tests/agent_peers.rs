//! Two jamjet peers over A2A: a workflow on one `jamjet dev` process (the
//! caller, A, driven through its REST API) calls an agent workflow served
//! by another `jamjet dev --a2a` process (the callee, B); the callee is killed -9 mid-task and restarted on the same
//! data dir and port, and the caller's execution still completes with the
//! right output, the callee's task having run its steps once.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::json;

const SLOW: &str = r#"
id: slow-greeter
version: 0.1.0
state_schema: { name: str, greeting: str }
a2a:
  skill: greet
  description: Greets, slowly
  input_key: name
nodes:
  pause: { type: wait, duration_ms: 1500, next: greet }
  greet: { type: set, values: { greeting: "Hello, {{ state.name }}!" } }
"#;

/// `jamjet dev` on `data`; waits for its first stdout line (the address)
/// and, with a pause point, for the pause note on stderr.
fn dev(
    data: &std::path::Path,
    workflows: &std::path::Path,
    bind: &str,
    pause: Option<&str>,
) -> (Child, String, mpsc::Receiver<String>) {
    let mut c = support::jamjet();
    c.arg("--data-dir").arg(data).args(["dev", "--bind", bind, "--a2a", "--workflows"]).arg(workflows);
    c.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    if let Some(p) = pause {
        c.env("JAMJET_PAUSE_AFTER", p);
    }
    let mut child = c.spawn().expect("starting jamjet dev");
    let (tx, rx) = mpsc::channel();
    let out = child.stdout.take().unwrap();
    let tx2 = tx.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if let Some(addr) = line.strip_prefix("jamjet dev listening on ") {
                let _ = tx2.send(format!("addr {addr}"));
            }
        }
    });
    let err = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            if line.starts_with("jamjet: paused after") {
                let _ = tx.send("paused".to_string());
            }
        }
    });
    let addr = match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(a) if a.starts_with("addr ") => a["addr ".len()..].to_string(),
        other => {
            let _ = child.kill();
            panic!("jamjet dev did not say where it listens: {other:?}");
        }
    };
    (child, addr, rx)
}

#[tokio::test]
async fn the_callee_is_killed_mid_task_and_restarted_and_the_caller_still_completes() {
    let b_data = tempfile::tempdir().unwrap();
    let b_flows = tempfile::tempdir().unwrap();
    std::fs::write(b_flows.path().join("slow.yaml"), SLOW).unwrap();
    // B holds right after its task's timer wait is durable: a deterministic "mid-task".
    let (mut b, addr, paused) = dev(b_data.path(), b_flows.path(), "127.0.0.1:0", Some("Waiting"));
    let base = addr.trim_start_matches("http://").to_string();

    // A: a second `jamjet dev` whose workflow calls B's agent.
    let a_data = tempfile::tempdir().unwrap();
    let a_flows = tempfile::tempdir().unwrap();
    std::fs::write(
        a_flows.path().join("caller.yaml"),
        format!(
            r#"
id: caller
state_schema: {{ name: str, result: any }}
nodes:
  call:
    type: agent
    agent: "http://{base}/a2a/slow-greeter/"
    message: "{{{{ state.name }}}}"
    output_key: result
    timeout_ms: 60000
    retry: {{ max_attempts: 5, backoff: constant, delay_ms: 300 }}
"#
        ),
    )
    .unwrap();
    let mut a = support::dev::DevServer::start(a_data.path(), &["--workflows", a_flows.path().to_str().unwrap()]);
    let api = a.api();
    let (code, started) = api.post("/executions", &json!({"workflow_id": "caller", "input": {"name": "Ada"}})).await;
    assert_eq!(code, 201, "{started}");
    let id = started["id"].as_str().unwrap_or_else(|| panic!("A refused the execution: {started}")).to_string();

    // B pauses right after its task's timer wait is durable: kill -9 it there.
    let paused = tokio::task::spawn_blocking(move || paused.recv_timeout(Duration::from_secs(60))).await.unwrap();
    assert_eq!(paused.as_deref(), Ok("paused"), "the callee never reached its pause point");
    b.kill().unwrap();
    b.wait().unwrap();

    // Restart B on the same data dir and port; it rehydrates the task.
    let (mut b2, _, _) = dev(b_data.path(), b_flows.path(), &base, None);
    // A's execution finishes on its own: A's API says so (bounded: 90 s).
    let last =
        api.poll_until(&id, Duration::from_secs(90), |b| b["status"] != "running" && b["status"] != "waiting").await;
    assert_eq!(last["status"], "completed", "{last}");
    assert_eq!(last["state"]["result"]["greeting"], "Hello, Ada!", "{last}");
    a.stop();
    let _ = b2.kill();
    let _ = b2.wait();

    // On B: one execution, its `greet` step completed once.
    let list = support::jamjet_json(b_data.path(), &["executions", "--json"]);
    let rows = list.as_array().cloned().or_else(|| list["executions"].as_array().cloned()).unwrap_or_default();
    assert_eq!(rows.len(), 1, "{list}");
    let b_id = rows[0]["id"].as_str().unwrap().to_string();
    let inspect = support::jamjet_json(b_data.path(), &["inspect", &b_id, "--json"]);
    let greets = inspect
        .pointer("/events")
        .and_then(|e| e.as_array())
        .map(|evs| {
            evs.iter()
                .filter(|e| e.pointer("/event/NodeCompleted/node").and_then(|n| n.as_str()) == Some("greet"))
                .count()
        })
        .unwrap_or(usize::MAX);
    assert_eq!(greets, 1, "{inspect}");
}
