//! Human approval of tool calls: an agent's `approval:` (and the
//! workflow's `policy.require_approval_for`) park the execution before the
//! calls, each call is decided on its own by its id (the embedding API,
//! `jamjet approve --call`, the REST API, an A2A follow-up), a rejected call
//! is never made and the model is told so, and nothing runs twice across a
//! `kill -9` while decisions are pending, or a hibernation. Real loopback model and MCP
//! servers, host functions counting their calls, the real binary.

mod support;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jamjet::journal::{Event, Status};
use jamjet::model::KeySource;
use jamjet::{Decision, ExecutionId, Runtime, ir};
use serde_json::{Value, json};
use support::mcp_http::McpHttpServer;
use support::model_server::{ModelServer, Reply, Rule};

const LIMIT: Duration = Duration::from_secs(30);
const KEY_VAR: &str = "JJ_TEST_APPROVAL_KEY";
const SECRET: &str = "sk-test-approval-key";

/// A clerk agent whose two tools (host functions) both need approval.
fn clerk(server: &ModelServer) -> String {
    format!(
        r#"
id: clerk
state_schema: {{ request: str, reply: str }}
models:
  fast: {{ provider: openai, model: test-gpt, base_url: "{base}", api_key_env: {KEY_VAR} }}
agents:
  clerk:
    model: fast
    instructions: "Handle the customer's request."
    tools: [send_email, refund]
    approval: [send_email, refund]
nodes:
  handle:
    type: agent
    agent: clerk
    message: "Request: {{{{ state.request }}}}"
    output_key: reply
"#,
        base = server.openai_base()
    )
}

/// The model asks for both tools in one turn, then answers from their results.
fn script(server: &ModelServer) {
    let both = Reply::ToolCalls(vec![
        ("send_email".into(), json!({"to": "ada@example.com", "text": "Your refund"})),
        ("refund".into(), json!({"amount": 10})),
    ]);
    server.script(Rule::contains("Request: refund order 7", both).times(1));
    server.script(Rule::contains("refused", Reply::text("emailed; the refund was refused")).times(1));
}

/// Calls of each host function, by idempotency key.
type Counts = Arc<Mutex<HashMap<String, Vec<String>>>>;

async fn open(dir: &Path, counts: &Counts) -> Runtime {
    let source = KeySource::from_fn(|var| (var == KEY_VAR).then(|| SECRET.to_string()));
    let mut b = Runtime::builder().data_dir(dir).model_keys(source);
    for name in ["send_email", "refund"] {
        let counts = counts.clone();
        b = b.function(name, move |call| {
            let counts = counts.clone();
            async move {
                counts.lock().unwrap().entry(name.to_string()).or_default().push(call.idempotency_key.clone());
                Ok(json!(format!("{name} done")))
            }
        });
    }
    b.open().await.unwrap()
}

fn compile(src: &str) -> ir::Workflow {
    ir::compile_str(src, "clerk.yaml").unwrap_or_else(|d| panic!("{d}"))
}

fn decision(call: &str, approved: bool, comment: Option<&str>) -> Decision {
    Decision { node: None, call: Some(call.into()), approved, by: "ada".into(), comment: comment.map(str::to_string) }
}

async fn settle(rt: &Runtime, id: ExecutionId) -> jamjet::Outcome {
    tokio::time::timeout(LIMIT, rt.settle(id)).await.expect("the execution did not settle in time").unwrap()
}

/// Two tool calls needing approval in one turn, decided in `order`:
/// `handle.1` (send_email) approved, `handle.2` (refund) rejected.
async fn two_calls_decided_in(order: [&str; 2]) {
    let server = ModelServer::start().await;
    script(&server);
    let dir = tempfile::tempdir().unwrap();
    let counts = Counts::default();
    let rt = open(dir.path(), &counts).await;
    let id = rt.submit(&compile(&clerk(&server)), json!({"request": "refund order 7"})).await.unwrap();
    let out = settle(&rt, id).await;
    assert_eq!(out.status, Status::Waiting, "{:?}", out.error);

    // Each call waits on its own, with its id and a prompt showing the tool and its arguments.
    let waits = rt.waiting_on(id).unwrap();
    let listed: Vec<(Option<&str>, &str)> =
        waits.iter().map(|w| (w.call.as_deref(), w.prompt.as_deref().unwrap_or_default())).collect();
    assert_eq!(listed.len(), 2, "{waits:?}");
    assert_eq!(listed[0].0, Some("handle.1"));
    assert_eq!(
        listed[0].1,
        r#"allow `clerk` (node `handle`) to call `send_email` with {"text":"Your refund","to":"ada@example.com"}?"#
    );
    assert_eq!(listed[1], (Some("handle.2"), r#"allow `clerk` (node `handle`) to call `refund` with {"amount":10}?"#));
    assert_eq!(server.requests().len(), 1, "the model was asked once");
    assert!(counts.lock().unwrap().is_empty(), "nothing ran before a decision");
    // Parked, it hibernates like any parked execution: the decisions wake it from its journal.
    tokio::time::timeout(LIMIT, rt.unloaded(id)).await.expect("it hibernates").unwrap();

    for (i, call) in order.into_iter().enumerate() {
        let approved = call == "handle.1";
        let comment = (!approved).then_some("refunds go through billing");
        let node = rt.approve(id, decision(call, approved, comment)).await.unwrap();
        assert_eq!(node, "handle");
        let out = settle(&rt, id).await;
        if i == 0 {
            // Still parked on the other call; nothing ran, the model was not asked again.
            assert_eq!(out.status, Status::Waiting);
            let left: Vec<Option<String>> = rt.waiting_on(id).unwrap().into_iter().map(|w| w.call).collect();
            assert_eq!(left, [Some(order[1].to_string())]);
            assert!(counts.lock().unwrap().is_empty());
            assert_eq!(server.requests().len(), 1);
        } else {
            assert_eq!(out.status, Status::Completed, "{:?}", out.error);
            assert_eq!(out.state["reply"], "emailed; the refund was refused");
        }
    }

    // The approved call ran once, with its call's key; the rejected never.
    let counts = counts.lock().unwrap().clone();
    assert_eq!(counts.get("send_email").map(Vec::len), Some(1), "{counts:?}");
    assert_eq!(counts["send_email"][0], format!("{id}/handle/1/call/2"));
    assert!(!counts.contains_key("refund"), "{counts:?}");
    // The model's next request holds the approved result and the refusal with its comment.
    let seen = server.requests();
    assert_eq!(seen.len(), 2);
    let messages = seen[1].body["messages"].as_array().unwrap();
    let results: Vec<&str> =
        messages.iter().filter(|m| m["role"] == "tool").map(|m| m["content"].as_str().unwrap()).collect();
    assert_eq!(
        results,
        ["send_email done", "error: a human refused this call of `refund`; they said: refunds go through billing"]
    );
    assert_eq!(seen[1].idempotency_key().unwrap(), format!("{id}/handle/1/call/3"));

    // The journal: the model call, the decisions, one tool call; the
    // continuation is attempt 2, not a failure.
    let events = rt.events(id).unwrap();
    let names: Vec<&str> = events.iter().map(|r| r.event.name()).collect();
    assert!(!names.contains(&"NodeFailed"), "{names:?}");
    let decided: Vec<(String, bool)> = events
        .iter()
        .filter_map(|r| match &r.event {
            Event::CallDecided { call, approved, .. } => Some((call.clone(), *approved)),
            _ => None,
        })
        .collect();
    assert_eq!(decided, order.map(|c| (c.to_string(), c == "handle.1")));
    let calls: Vec<(String, String)> = events
        .iter()
        .filter_map(|r| match &r.event {
            Event::Call { call, .. } => Some((call.kind.clone(), call.name.clone())),
            _ => None,
        })
        .collect();
    let want = [("model", "clerk"), ("tool", "send_email")].map(|(k, n)| (k.to_string(), n.to_string()));
    assert_eq!(calls, want);
    let started: Vec<u32> = events
        .iter()
        .filter_map(|r| match r.event {
            Event::NodeStarted { attempt, .. } => Some(attempt),
            _ => None,
        })
        .collect();
    assert_eq!(started, [1, 2]);
    rt.shutdown().await;
}

#[tokio::test]
async fn two_parallel_tool_calls_decided_in_order_one_approved_one_rejected() {
    two_calls_decided_in(["handle.1", "handle.2"]).await;
}

#[tokio::test]
async fn two_parallel_tool_calls_decided_in_reverse_order_one_approved_one_rejected() {
    two_calls_decided_in(["handle.2", "handle.1"]).await;
}

/// Deciding a call that is not pending (unknown, already decided, of
/// another execution), or an approval node where only tool calls wait, is
/// an error naming the execution and the call, and journals nothing.
#[tokio::test]
async fn bad_decisions_are_clear_errors_and_change_nothing() {
    let server = ModelServer::start().await;
    script(&server);
    let dir = tempfile::tempdir().unwrap();
    let counts = Counts::default();
    let rt = open(dir.path(), &counts).await;
    let wf = compile(&clerk(&server));
    let id = rt.submit(&wf, json!({"request": "refund order 7"})).await.unwrap();
    settle(&rt, id).await;
    let other = rt.submit(&wf, json!({"request": "nothing to do"})).await.unwrap();
    assert_eq!(settle(&rt, other).await.status, Status::Completed);
    rt.approve(id, decision("handle.1", true, None)).await.unwrap();
    let before = rt.events(id).unwrap().len();

    let refused = |e: jamjet::runtime::Error| e.to_string();
    let e = refused(rt.approve(id, decision("handle.9", true, None)).await.unwrap_err());
    assert_eq!(e, format!("execution {id} has no tool call `handle.9` waiting for a decision (waiting: handle.2)"));
    let e = refused(rt.approve(id, decision("handle.1", false, None)).await.unwrap_err());
    assert!(
        e.starts_with(&format!("execution {id} tool call `handle.1` was already decided: approved by ada at ")),
        "{e}"
    );
    let e = refused(rt.approve(other, decision("handle.2", true, None)).await.unwrap_err());
    assert!(e.contains(&other.to_string()) && e.contains("handle.2"), "{e}");
    let node_decision = Decision { node: None, call: None, approved: true, by: "ada".into(), comment: None };
    let e = refused(rt.approve(id, node_decision).await.unwrap_err());
    assert!(e.contains("waits for decisions on tool calls") && e.contains("handle.2"), "{e}");
    assert_eq!(rt.events(id).unwrap().len(), before, "nothing was journaled");
    assert!(counts.lock().unwrap().is_empty());

    // The execution is as it was: the pending call still decides it.
    rt.approve(id, decision("handle.2", false, None)).await.unwrap();
    assert_eq!(settle(&rt, id).await.status, Status::Completed);
    rt.shutdown().await;
}

// ------------------------------------------------------------ the binary

/// Sums by a loopback MCP server's `add`, which the workflow's policy
/// requires approval for.
fn sums(server: &ModelServer, mcp: &McpHttpServer) -> String {
    format!(
        r#"
id: sums
state_schema: {{ request: str, reply: str }}
models:
  fast: {{ provider: openai, model: test-gpt, base_url: "{base}", api_key_env: {KEY_VAR} }}
mcp:
  servers:
    calc: {{ url: "{mcp}" }}
policy:
  require_approval_for: [calc.add]
agents:
  adder:
    model: fast
    instructions: "Add numbers with the calculator."
    tools: [calc.add]
nodes:
  handle:
    type: agent
    agent: adder
    message: "Request: {{{{ state.request }}}}"
    output_key: reply
"#,
        base = server.openai_base(),
        mcp = mcp.url
    )
}

/// Two sums asked in one turn; the answer comes once the results are in.
/// `hold`: the first request after the tools is never answered.
fn sums_script(server: &ModelServer, hold: bool) {
    let both = Reply::ToolCalls(vec![("add".into(), json!({"a": 1, "b": 2})), ("add".into(), json!({"a": 3, "b": 4}))]);
    server.script(Rule::contains("Request: two sums", both).times(1));
    if hold {
        server.script(Rule::contains("refused", Reply::Hold).times(1));
    }
    server.script(Rule::contains("refused", Reply::text("1 + 2 = 3; the second sum was refused")).times(1));
}

const INPUT: &str = r#"{"request": "two sums"}"#;
const ENV: [(&str, &str); 1] = [(KEY_VAR, SECRET)];

/// `jamjet --data-dir DATA ARGS` (the key set), parsed from its JSON.
async fn cli(data: &Path, args: &[&str]) -> Value {
    let (d, args) = (data.to_path_buf(), args.iter().map(|a| a.to_string()).collect::<Vec<_>>());
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        support::jamjet_json_with(&d, &ENV, &args)
    })
    .await
    .unwrap()
}

/// `jamjet approve ID --call CALL ... --json`.
async fn approve(data: &Path, id: &str, call: &str, extra: &[&str]) -> Value {
    let mut args = vec!["approve", id, "--call", call, "--by", "ada", "--json"];
    args.extend_from_slice(extra);
    cli(data, &args).await
}

/// `kill -9` of `jamjet run` while both calls wait for decisions, then
/// `jamjet approve --call` for each (the second killed while the model's
/// next call is in flight) and `jamjet resume`: the model call that asked
/// for the tools is not sent again, the approved sum is added once, the
/// rejected never, the interrupted model call repeats with its key, and
/// the answer is an uninterrupted run's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_while_tool_calls_wait_for_decisions_repeats_no_completed_call() {
    let dir = tempfile::tempdir().unwrap();
    // Uninterrupted, for comparison.
    let (server, mcp) = (ModelServer::start().await, McpHttpServer::start().await);
    sums_script(&server, false);
    let file = dir.path().join("plain.yaml");
    std::fs::write(&file, sums(&server, &mcp)).unwrap();
    let data = dir.path().join("plain");
    let ran = cli(&data, &["run", file.to_str().unwrap(), "--input", INPUT, "--json"]).await;
    assert_eq!(ran["status"], "waiting", "{ran}");
    let id = ran["id"].as_str().unwrap().to_string();
    approve(&data, &id, "handle.2", &["--reject"]).await;
    let done = approve(&data, &id, "handle.1", &["--approve"]).await;
    assert_eq!(done["status"], "completed", "{done}");
    let uninterrupted = done["state"].clone();
    assert_eq!(uninterrupted["reply"], "1 + 2 = 3; the second sum was refused");

    let (server, mcp) = (ModelServer::start().await, McpHttpServer::start().await);
    sums_script(&server, true);
    let file = dir.path().join("sums.yaml");
    std::fs::write(&file, sums(&server, &mcp)).unwrap();
    let data = dir.path().join("data");
    let mut cmd = support::run_to_kill(&data, &file, INPUT);
    cmd.env(KEY_VAR, SECRET);
    tokio::task::spawn_blocking(move || support::kill_when_paused(cmd, "CallsPending", LIMIT, "jamjet run"))
        .await
        .unwrap();
    assert_eq!((server.requests().len(), mcp.calls().len()), (1, 0), "killed while both calls wait");

    // The calls wait on their own, listed with their ids and prompts.
    let waits = cli(&data, &["executions", "--waiting", "--json"]).await;
    let rows = waits.as_array().unwrap();
    let calls: Vec<&str> = rows.iter().map(|w| w["call"].as_str().unwrap_or_default()).collect();
    assert_eq!(calls, ["handle.1", "handle.2"], "{waits}");
    assert!(rows[1]["prompt"].as_str().unwrap().contains(r#"`add` with {"a":3,"b":4}"#), "{waits}");
    let id = rows[0]["id"].as_str().unwrap().to_string();

    let waiting = approve(&data, &id, "handle.2", &["--reject", "--comment", "one sum is enough"]).await;
    assert_eq!(waiting["status"], "waiting", "still waits for handle.1: {waiting}");
    assert_eq!(mcp.calls().len(), 0);
    // `inspect` shows each call under its node, with its decision or what decides it.
    let (d, i) = (data.clone(), id.clone());
    let shown = tokio::task::spawn_blocking(move || support::jamjet_out(&d, &["inspect", &i])).await.unwrap();
    let shown = String::from_utf8_lossy(&shown.stdout).into_owned();
    for line in [
        r#"tool call handle.1 asked at"#,
        r#"(attempt 1): allow `adder` (node `handle`) to call `add` with {"a":1,"b":2}?"#,
        "waits for a decision (jamjet approve <exec> --call handle.1)",
        "rejected by ada at",
        ": one sum is enough",
    ] {
        assert!(shown.contains(line), "{line} missing:\n{shown}");
    }

    // Approved: the sum is added, and the model's next call hangs; kill -9 then.
    let mut approving = support::jamjet();
    approving.env(KEY_VAR, SECRET).arg("--data-dir").arg(&data).args([
        "approve",
        &id,
        "--call",
        "handle.1",
        "--approve",
    ]);
    approving.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null());
    let mut child = approving.spawn().unwrap();
    let asked = server.wait_for_requests(2, LIMIT).await;
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(asked, "the model's call after the tools was sent");
    assert_eq!(mcp.calls().len(), 1);

    let resumed = cli(&data, &["resume", "--json"]).await;
    assert_eq!(resumed[0]["status"], "completed", "{resumed}");
    assert_eq!(resumed[0]["state"], uninterrupted);
    let seen = server.requests();
    let keys: Vec<&str> = seen.iter().map(|r| r.idempotency_key().unwrap()).collect();
    let key = format!("{id}/handle/1");
    assert_eq!(
        keys,
        [key.clone(), format!("{key}/call/3"), format!("{key}/call/3")],
        "only the interrupted call again"
    );
    let added: Vec<(Value, String)> = mcp
        .calls()
        .into_iter()
        .map(|c| (c.arguments, c.meta["jamjet/idempotency_key"].as_str().unwrap().into()))
        .collect();
    assert_eq!(
        added,
        [(json!({"a": 1, "b": 2}), format!("{key}/call/2"))],
        "the approved sum once, the rejected never"
    );
    assert!(seen[2].body.to_string().contains("one sum is enough"), "the model was told the refusal and why");
}

// ------------------------------------------------------------ over the wire

/// A local agent served by `jamjet dev`: an A2A task that waits for two
/// tool call decisions is input-required and lists them; an A2A follow-up
/// naming a call decides it, the REST approve endpoint with `call` the
/// other; a call that does not wait is a 409 naming it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_a2a_follow_up_and_the_rest_api_each_decide_one_tool_call() {
    let (server, mcp) = (ModelServer::start().await, McpHttpServer::start().await);
    sums_script(&server, false);
    let flows = tempfile::tempdir().unwrap();
    std::fs::write(flows.path().join("sums.yaml"), sums(&server, &mcp)).unwrap();
    let data = tempfile::tempdir().unwrap();
    let extra = ["--allow-env", KEY_VAR, "--workflows", flows.path().to_str().unwrap()];
    let dev = support::dev::DevServer::start_env(data.path(), &extra, &ENV);
    let api = dev.api();
    const AGENT: &str = "/a2a/sums.adder";

    let send = json!({"jsonrpc": "2.0", "id": 1, "method": "SendMessage", "params": {"message": {
        "messageId": "m-1", "role": "ROLE_USER", "parts": [{"text": "Request: two sums"}]}}});
    let (status, r) = api.post(AGENT, &send).await;
    assert_eq!(status, 200, "{r}");
    let task = &r["result"]["task"];
    assert_eq!(task["status"]["state"], "TASK_STATE_INPUT_REQUIRED", "{r}");
    let waiting = &task["status"]["message"]["parts"][1]["data"]["waiting"];
    let calls: Vec<(&str, &str)> = waiting
        .as_array()
        .unwrap()
        .iter()
        .map(|w| (w["kind"].as_str().unwrap(), w["call"].as_str().unwrap()))
        .collect();
    assert_eq!(calls, [("tool_call", "adder.1"), ("tool_call", "adder.2")], "{r}");
    let id = task["id"].as_str().unwrap().to_string();

    // A follow-up without a call id is refused: which call is not said.
    let follow = |n: u32, data: Value| {
        json!({"jsonrpc": "2.0", "id": 2, "method": "SendMessage", "params": {"message": {
            "messageId": format!("m-{n}"), "taskId": id, "role": "ROLE_USER", "parts": [{"data": data}]}}})
    };
    let (_, r) = api.post(AGENT, &follow(2, json!({"approved": true}))).await;
    let message = r["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("adder.1, adder.2"), "{r}");
    let (status, r) = api.post(AGENT, &follow(3, json!({"call": "adder.1", "approved": true}))).await;
    assert_eq!(status, 200, "{r}");
    assert!(r.get("error").is_none(), "{r}");

    // REST: an unknown call is a 409 naming the execution and the call; then the other call.
    let path = format!("/executions/{id}/approve");
    let (status, body) = api.post(&path, &json!({"approved": true, "call": "adder.9"})).await;
    assert_eq!(status, 409, "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains(&id) && message.contains("adder.9") && message.contains("waiting: adder.2"), "{body}");
    let (status, body) =
        api.post(&path, &json!({"approved": false, "call": "adder.2", "comment": "one is enough", "by": "ada"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!((body["node"].as_str(), body["call"].as_str()), (Some("adder"), Some("adder.2")), "{body}");

    let done = api.poll_until(&id, LIMIT, |x| x["status"] == "completed").await;
    assert_eq!(done["state"]["answer"], "1 + 2 = 3; the second sum was refused", "{done}");
    assert_eq!(mcp.calls().len(), 1, "the approved sum only");
    let (status, body) = api.post(&path, &json!({"approved": true, "call": "adder.2"})).await;
    assert_eq!(status, 409, "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("tool call `adder.2` was already decided: rejected by ada"), "{body}");
}

/// The workflow's policy is the workflow's: a model node offering a tool
/// it names waits for a decision on each call too.
#[tokio::test]
async fn a_model_nodes_tool_named_by_the_policy_waits_for_a_decision_too() {
    let (server, mcp) = (ModelServer::start().await, McpHttpServer::start().await);
    server.script(Rule::contains("What is 2 + 2?", Reply::tool_call("add", json!({"a": 2, "b": 2}))).times(1));
    server.script(Rule::contains("4", Reply::text("four")).times(1));
    let yaml = format!(
        r#"
id: ask
state_schema: {{ answer: str }}
models:
  fast: {{ provider: openai, model: test-gpt, base_url: "{base}", api_key_env: {KEY_VAR} }}
mcp:
  servers:
    calc: {{ url: "{mcp}" }}
policy:
  require_approval_for: [add]
nodes:
  sum: {{ type: model, model: fast, prompt: "What is 2 + 2?", tools: [calc], output_key: answer }}
"#,
        base = server.openai_base(),
        mcp = mcp.url
    );
    let dir = tempfile::tempdir().unwrap();
    let rt = open(dir.path(), &Counts::default()).await;
    let id = rt.submit(&compile(&yaml), json!({})).await.unwrap();
    assert_eq!(settle(&rt, id).await.status, Status::Waiting);
    let waits = rt.waiting_on(id).unwrap();
    assert_eq!(waits.len(), 1, "{waits:?}");
    assert_eq!(waits[0].call.as_deref(), Some("sum.1"));
    assert_eq!(waits[0].prompt.as_deref(), Some(r#"allow `fast` (node `sum`) to call `add` with {"a":2,"b":2}?"#));
    assert!(mcp.calls().is_empty());
    rt.approve(id, decision("sum.1", true, None)).await.unwrap();
    let out = settle(&rt, id).await;
    assert_eq!(out.status, Status::Completed, "{:?}", out.error);
    assert_eq!(out.state["answer"], "four");
    assert_eq!(mcp.calls().len(), 1);
    assert_eq!(server.requests().len(), 2, "the model call that asked was not sent again");
    rt.shutdown().await;
}
