//! An execution whose workflow calls host functions (a Python or Rust
//! program's `type: function` nodes) goes on only in a process that
//! registers them: another process on the same data dir (the CLI, a
//! server, a host without them) is refused, says which functions, and
//! changes nothing.

use std::time::Duration;

use jamjet::journal::Status;
use jamjet::nodes::{FunctionCall, FunctionError};
use jamjet::{Decision, Runtime, compile_str};
use serde_json::{Value, json};

const LIMIT: Duration = Duration::from_secs(30);

const FLOW: &str = "id: gate\nstate_schema: { order: str, packed: any }\nnodes:\n  ask:\n    type: approval\n    prompt: pack it?\n    next: pack\n  pack:\n    type: function\n    function: gate/pack\n    output_key: packed\n";

async fn pack(call: FunctionCall) -> Result<Value, FunctionError> {
    Ok(json!(format!("packed {}", call.input["order"].as_str().unwrap_or("?"))))
}

fn yes() -> Decision {
    Decision { node: None, call: None, approved: true, by: "ada".into(), comment: None }
}

#[tokio::test]
async fn a_process_without_the_host_functions_refuses_to_carry_the_execution_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let wf = compile_str(FLOW, "gate.yaml").unwrap();

    // The host: runs it until it parks on the approval, then stops.
    let host = Runtime::builder().data_dir(dir.path()).function("gate/pack", pack).open().await.unwrap();
    let id = host.submit(&wf, json!({"order": "o-7"})).await.unwrap();
    let parked = tokio::time::timeout(LIMIT, host.settle(id)).await.unwrap().unwrap();
    assert_eq!(parked.status, Status::Waiting);
    host.shutdown().await;

    // Another process without `gate/pack` (the CLI's `jamjet approve`):
    // refused, naming the workflow and the function; nothing journaled.
    let other = Runtime::builder().data_dir(dir.path()).open().await.unwrap();
    let before = other.events(id).unwrap().len();
    let refused = tokio::time::timeout(LIMIT, other.approve(id, yes())).await.unwrap().unwrap_err().to_string();
    assert!(refused.contains("gate/pack") && refused.contains("`gate`"), "{refused}");
    assert!(refused.contains("has not registered"), "{refused}");
    let signalled = tokio::time::timeout(LIMIT, other.signal(id, "k", json!({}))).await.unwrap().unwrap_err();
    assert!(signalled.to_string().contains("gate/pack"), "{signalled}");
    let resumed = other.resume_all_reporting().await.unwrap();
    assert!(resumed.resumed.is_empty(), "{resumed:?}");
    assert_eq!(other.events(id).unwrap().len(), before);
    assert_eq!(other.status(id).unwrap().status, Status::Waiting);
    other.shutdown().await;

    // The host again: the decision goes through and the run ends.
    let host = Runtime::builder().data_dir(dir.path()).function("gate/pack", pack).open().await.unwrap();
    tokio::time::timeout(LIMIT, host.approve(id, yes())).await.unwrap().unwrap();
    let done = tokio::time::timeout(LIMIT, host.wait(id)).await.unwrap().unwrap();
    assert_eq!(done.status, Status::Completed, "{:?}", done.error);
    assert_eq!(done.state["packed"], json!("packed o-7"));
    host.shutdown().await;
}

#[tokio::test]
async fn an_interrupted_execution_is_left_for_its_host_by_a_process_without_its_functions() {
    let dir = tempfile::tempdir().unwrap();
    let flow = "id: slow\nstate_schema: { order: str, packed: any }\nnodes:\n  pack:\n    type: function\n    function: slow/pack\n    output_key: packed\n";
    let wf = compile_str(flow, "slow.yaml").unwrap();
    let (started_tx, started_rx) = tokio::sync::oneshot::channel::<()>();
    let started = std::sync::Mutex::new(Some(started_tx));
    let stuck = move |_call: FunctionCall| {
        if let Some(tx) = started.lock().unwrap().take() {
            let _ = tx.send(());
        }
        async move {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Ok::<Value, FunctionError>(Value::Null)
        }
    };
    let host = Runtime::builder().data_dir(dir.path()).function("slow/pack", stuck).open().await.unwrap();
    let id = host.submit(&wf, json!({"order": "o-8"})).await.unwrap();
    tokio::time::timeout(LIMIT, started_rx).await.unwrap().unwrap();
    host.shutdown().await; // as a crash would leave it: running, mid-step

    let other = Runtime::builder().data_dir(dir.path()).open().await.unwrap();
    let before = other.events(id).unwrap().len();
    let report = tokio::time::timeout(LIMIT, other.resume_all_reporting()).await.unwrap().unwrap();
    assert!(report.resumed.is_empty(), "{report:?}");
    let (skipped, why) = &report.skipped[0];
    assert_eq!(*skipped, id);
    assert!(why.contains("slow/pack"), "{why}");
    assert_eq!(other.status(id).unwrap().status, Status::Running);
    assert_eq!(other.events(id).unwrap().len(), before);
    other.shutdown().await;

    let host = Runtime::builder().data_dir(dir.path()).function("slow/pack", pack).open().await.unwrap();
    let done = tokio::time::timeout(LIMIT, host.wait(id)).await.unwrap().unwrap();
    assert_eq!(done.status, Status::Completed, "{:?}", done.error);
    host.shutdown().await;
}
