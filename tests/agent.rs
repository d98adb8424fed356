//! `type: agent` (the A2A client node) against real agents: the A2A
//! project's Python `a2a-sdk` server (`tests/a2a_agent/agent.py`), a peer
//! that is not there, and compile errors at line:column.

mod support;

use std::time::Duration;

use jamjet::journal::{ErrorClass, Event, RetryDecision, Status};
use jamjet::runtime::WaitKind;
use jamjet::{Runtime, ir};
use serde_json::{Value, json};
use support::a2a_agent::PyAgent;

fn compile(src: &str) -> ir::Workflow {
    ir::compile_str(src, "agent.yaml").unwrap_or_else(|d| panic!("{d}"))
}

fn workflow(url: &str, extra: &str) -> ir::Workflow {
    compile(&format!(
        r#"
id: caller
state_schema: {{ q: str, result: any }}
nodes:
  call:
    type: agent
    agent: "{url}"
    message: "{{{{ state.q }}}}"
    output_key: result
    timeout_ms: 20000
{extra}
"#
    ))
}

/// Bounded: the whole test fails rather than hangs.
async fn within<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(60), f).await.unwrap_or_else(|_| panic!("{what}: no result in 60 s"))
}

fn events(rt: &Runtime, id: jamjet::ExecutionId) -> Vec<Event> {
    rt.events(id).unwrap().into_iter().map(|r| r.event).collect()
}

#[tokio::test]
async fn the_remote_output_lands_in_state_and_no_header_is_journaled() {
    let Some(py) = PyAgent::start() else { return };
    // SAFETY: set before any thread of this test reads the environment.
    unsafe { std::env::set_var("JAMJET_TEST_PEER_KEY", "s3cret-peer-key") };
    let wf = workflow(&py.url(), "    headers: { Authorization: \"Bearer ${JAMJET_TEST_PEER_KEY}\" }");
    let rt = Runtime::builder().in_memory().open().await.unwrap();
    let id = rt.submit(&wf, json!({"q": "echo hi"})).await.unwrap();
    let out = within("echo", rt.wait(id)).await.unwrap();
    assert_eq!(out.status, Status::Completed, "{:?}", out.error);
    assert_eq!(out.state["result"]["echo"], "echo hi");
    // Whole floats from the Python SDK's data parts come back as integers.
    assert_eq!(out.state["result"]["calls"], json!(1));
    let evs = events(&rt, id);
    let exchange = evs.iter().find_map(|e| match e {
        Event::Exchange { request, response, .. } => Some((request.value().unwrap(), response.value().unwrap())),
        _ => None,
    });
    let (request, response) = exchange.expect("an Exchange event");
    assert_eq!(request["message"]["messageId"], format!("{id}/call/1"));
    assert_eq!(response["task"]["state"], "completed");
    let all = serde_json::to_string(&rt.events(id).unwrap()).unwrap();
    assert!(!all.contains("s3cret-peer-key"), "a header value reached the journal");
    let got = py.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["messageId"], format!("{id}/call/1"));
    rt.shutdown().await;
}

#[tokio::test]
async fn a_remote_failure_fails_the_node_and_a_retry_policy_retries_it() {
    let Some(py) = PyAgent::start() else { return };
    let rt = Runtime::builder().in_memory().open().await.unwrap();

    let no_retry = workflow(&py.url(), "");
    let id = rt.submit(&no_retry, json!({"q": "fail now"})).await.unwrap();
    let out = within("fail", rt.wait(id)).await.unwrap();
    assert_eq!(out.status, Status::Failed);
    assert!(out.error.as_deref().unwrap_or_default().contains("remote says no"), "{:?}", out.error);
    let failed: Vec<_> = events(&rt, id)
        .into_iter()
        .filter_map(|e| match e {
            Event::NodeFailed { class, retry, .. } => Some((class, retry)),
            _ => None,
        })
        .collect();
    assert_eq!(failed, vec![(ErrorClass::ServerError, RetryDecision::GiveUp)]);

    let retried = workflow(&py.url(), "    retry: { max_attempts: 2, backoff: constant, delay_ms: 10 }");
    let id = rt.submit(&retried, json!({"q": "flaky"})).await.unwrap();
    let out = within("flaky", rt.wait(id)).await.unwrap();
    assert_eq!(out.status, Status::Completed, "{:?}", out.error);
    assert_eq!(out.state["result"]["echo"], "flaky");
    let evs = events(&rt, id);
    assert!(evs.iter().any(|e| matches!(e, Event::NodeFailed { class: ErrorClass::ServerError, .. })));
    // The retry is a fresh remote task: its message id differs from the failed one's.
    let ids: Vec<Value> = py
        .received()
        .into_iter()
        .filter(|m| m["parts"][0]["text"] == "flaky")
        .map(|m| m["messageId"].clone())
        .collect();
    assert_eq!(ids, vec![json!(format!("{id}/call/1")), json!(format!("{id}/call/1/1"))]);
    rt.shutdown().await;
}

#[tokio::test]
async fn input_required_parks_survives_a_restart_and_a_signal_answers_on_the_same_task() {
    let Some(py) = PyAgent::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    let wf = workflow(&py.url(), "    input_event: name");
    let rt = Runtime::builder().data_dir(dir.path()).open().await.unwrap();
    let id = rt.submit(&wf, json!({"q": "ask me"})).await.unwrap();
    let parked = within("ask", rt.settle(id)).await.unwrap();
    assert_eq!(parked.status, Status::Waiting, "{:?}", parked.error);
    let waiting = rt.waiting().unwrap();
    let w = waiting.iter().find(|w| w.id == id).expect("listed as waiting");
    assert_eq!((w.node.as_str(), w.kind, w.event.as_deref()), ("call", WaitKind::Event, Some("name")));
    assert_eq!(w.prompt.as_deref(), Some("what is your name?"));
    rt.shutdown().await;

    // The remote task id is in the journal: a restarted runtime answers on it.
    let rt = Runtime::builder().data_dir(dir.path()).open().await.unwrap();
    assert_eq!(rt.status(id).unwrap().status, Status::Waiting);
    rt.signal(id, "name", json!("Ada")).await.unwrap();
    let out = within("answer", rt.wait(id)).await.unwrap();
    assert_eq!(out.status, Status::Completed, "{:?}", out.error);
    assert_eq!(out.state["result"]["greeting"], "hello, Ada");
    let got = py.received();
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[1]["parts"][0]["text"], "Ada");
    assert_eq!(got[1]["taskId"], got[0]["taskId"]);
    assert_eq!(got[1]["taskId"], out.state["result"]["task"]);
    assert_eq!(got[1]["messageId"], format!("{id}/call/1/reply/1"));
    // One visit, two attempts: the answer's round is not a retry.
    let evs = events(&rt, id);
    assert!(
        evs.iter().any(|e| matches!(e, Event::Waiting { node, event: Some(k), .. } if node == "call" && k == "name"))
    );
    assert!(evs.iter().any(|e| matches!(e, Event::NodeCompleted { node, visit: 1, attempt: 2, .. } if node == "call")));
    assert!(!evs.iter().any(|e| matches!(e, Event::NodeFailed { .. })));
    rt.shutdown().await;
}

#[tokio::test]
async fn a_peer_that_is_not_there_is_a_connection_error_and_is_retried() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let wf = workflow(
        &format!("http://127.0.0.1:{port}/"),
        "    retry: { max_attempts: 2, backoff: constant, delay_ms: 10 }",
    );
    let rt = Runtime::builder().in_memory().open().await.unwrap();
    let id = rt.submit(&wf, json!({"q": "hello"})).await.unwrap();
    let out = within("refused", rt.wait(id)).await.unwrap();
    assert_eq!(out.status, Status::Failed);
    let failed: Vec<_> = events(&rt, id)
        .into_iter()
        .filter_map(|e| match e {
            Event::NodeFailed { class, retry, .. } => Some((class, matches!(retry, RetryDecision::Retry { .. }))),
            _ => None,
        })
        .collect();
    assert_eq!(failed, vec![(ErrorClass::Connection, true), (ErrorClass::Connection, false)]);
    // Nothing reached a peer, so nothing was exchanged.
    assert!(!events(&rt, id).iter().any(|e| matches!(e, Event::Exchange { .. })));
    rt.shutdown().await;
}

#[test]
fn agent_nodes_compile_with_defaults_and_bad_fields_point_at_line_and_column() {
    let wf = compile(
        "id: a\nstate_schema: { r: any }\nnodes:\n  call: { type: agent, agent: \"http://h/\", message: { x: 1 }, output_key: r }\n",
    );
    let ir::NodeKind::Agent(a) = &wf.node("call").unwrap().kind else { panic!("not an agent node") };
    assert_eq!((a.timeout_ms, a.input_event.as_str()), (ir::DEFAULT_AGENT_TIMEOUT_MS, "call"));
    assert_eq!(a.message, json!({"x": 1}));
    assert_eq!(wf.node("call").unwrap().timeout_ms, None);

    let bad = "id: a\nstate_schema: { r: any }\nnodes:\n  call:\n    type: agent\n    agent: ftp://h\n    message: 3\n    \
               headers: { X: \"${1BAD}\" }\n    output_key: nope\n";
    let err = ir::compile_str(bad, "bad.yaml").unwrap_err().to_string();
    for want in [
        "bad.yaml:6:12",
        "`agent` must be an http:// or https:// URL",
        "bad.yaml:7:14",
        "`message` must be a text template or a mapping",
        "bad.yaml:8:19",
        "is not a variable reference",
        "bad.yaml:9:17",
        "`output_key` `nope` is not in `state_schema`",
    ] {
        assert!(err.contains(want), "missing `{want}` in:\n{err}");
    }
    let missing = "id: a\nnodes:\n  call: { type: agent }\n";
    let err = ir::compile_str(missing, "m.yaml").unwrap_err().to_string();
    assert!(
        err.contains("missing the required field `agent`") && err.contains("missing the required field `message`"),
        "{err}"
    );
}
