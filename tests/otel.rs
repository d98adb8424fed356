//! OpenTelemetry traces (`--otlp-endpoint`): the real `jamjet` binary
//! exports to a loopback OTLP/HTTP receiver this test runs, which decodes
//! the protobuf requests with the OpenTelemetry project's own types.
//!
//! - one run: the execution is the root span, each node visit its child, a
//!   model call a `chat` span with the GenAI attributes, a fan-out's
//!   branches child executions in the same trace; the `traceparent` each
//!   outbound call carried names the span of the visit that made it;
//! - a `kill -9` mid-run and `jamjet resume`: one trace, every span once.

mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use prost::Message;
use serde_json::{Value, json};
use support::mcp_http::McpHttpServer;
use support::model_server::ModelServer;
use support::{jamjet, run_bounded, workflow_file};

/// A span as received, flattened.
#[derive(Debug, Clone)]
struct Got {
    trace_id: String,
    span_id: String,
    parent: String,
    name: String,
    kind: i32,
    status_code: i32,
    attributes: HashMap<String, Value>,
    events: Vec<String>,
    start_ns: u64,
    end_ns: u64,
}

#[derive(Default)]
struct Seen {
    spans: Vec<Got>,
    /// `traceparent` of each outbound call to `/call` and `/hold`, by path.
    traceparents: Vec<(String, Option<String>)>,
    /// Service names of the resources posted.
    services: Vec<String>,
}

#[derive(Clone)]
struct Shared {
    seen: Arc<Mutex<Seen>>,
    /// `/hold` answers once this is set.
    release: Arc<tokio::sync::watch::Sender<bool>>,
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn any(v: &Option<opentelemetry_proto::tonic::common::v1::AnyValue>) -> Value {
    match v.as_ref().and_then(|v| v.value.as_ref()) {
        Some(AnyValue::StringValue(s)) => json!(s),
        Some(AnyValue::IntValue(i)) => json!(i),
        Some(AnyValue::DoubleValue(d)) => json!(d),
        Some(AnyValue::BoolValue(b)) => json!(b),
        other => json!(format!("{other:?}")),
    }
}

async fn traces(State(s): State<Shared>, body: Bytes) -> Vec<u8> {
    let req = ExportTraceServiceRequest::decode(body).expect("the exporter posts OTLP protobuf");
    let mut seen = s.seen.lock().unwrap();
    for rs in req.resource_spans {
        if let Some(r) = &rs.resource {
            for kv in &r.attributes {
                if kv.key == "service.name" {
                    seen.services.push(any(&kv.value).as_str().unwrap_or_default().to_string());
                }
            }
        }
        for ss in rs.scope_spans {
            for sp in ss.spans {
                seen.spans.push(Got {
                    trace_id: hex(&sp.trace_id),
                    span_id: hex(&sp.span_id),
                    parent: hex(&sp.parent_span_id),
                    name: sp.name.clone(),
                    kind: sp.kind,
                    status_code: sp.status.as_ref().map_or(0, |s| s.code),
                    attributes: sp.attributes.iter().map(|kv| (kv.key.clone(), any(&kv.value))).collect(),
                    events: sp.events.iter().map(|e| e.name.clone()).collect(),
                    start_ns: sp.start_time_unix_nano,
                    end_ns: sp.end_time_unix_nano,
                });
            }
        }
    }
    ExportTraceServiceResponse::default().encode_to_vec()
}

async fn call(State(s): State<Shared>, headers: HeaderMap) -> axum::Json<Value> {
    let tp = headers.get("traceparent").and_then(|v| v.to_str().ok()).map(str::to_string);
    s.seen.lock().unwrap().traceparents.push(("call".into(), tp));
    axum::Json(json!({"ok": true}))
}

async fn hold(State(s): State<Shared>, headers: HeaderMap) -> axum::Json<Value> {
    let tp = headers.get("traceparent").and_then(|v| v.to_str().ok()).map(str::to_string);
    s.seen.lock().unwrap().traceparents.push(("hold".into(), tp));
    let mut rx = s.release.subscribe();
    let _ = tokio::time::timeout(Duration::from_secs(60), rx.wait_for(|r| *r)).await;
    axum::Json(json!({"held": true}))
}

/// The receiver (`/v1/traces`) and the workflow's target (`/call`, `/hold`).
async fn start() -> (String, Shared) {
    let shared = Shared { seen: Arc::default(), release: Arc::new(tokio::sync::watch::channel(false).0) };
    let app = Router::new()
        .route("/v1/traces", post(traces))
        .route("/call", post(call))
        .route("/hold", post(hold))
        .route("/fail", post(|| async { (axum::http::StatusCode::INTERNAL_SERVER_ERROR, "down") }))
        .with_state(shared.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, shared)
}

/// Wait (bounded) until `done` holds of what was seen.
async fn until(shared: &Shared, limit: Duration, what: &str, done: impl Fn(&Seen) -> bool) {
    let deadline = Instant::now() + limit;
    loop {
        if done(&shared.seen.lock().unwrap()) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "not within {limit:?}: {what}; spans: {:#?}",
            shared.seen.lock().unwrap().spans
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn by_name<'a>(spans: &'a [Got], name: &str) -> Vec<&'a Got> {
    spans.iter().filter(|s| s.name == name).collect()
}

const KEY_VAR: &str = "JJ_OTEL_TEST_KEY";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_nest_carry_genai_attributes_and_name_the_traceparent_each_call_sent() {
    let (url, shared) = start().await;
    let model = ModelServer::start().await;
    let mcp = McpHttpServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        r#"id: traced
state_schema: {{ question: str, answer: str, base: str, items: list, out: any, a: any, pages: list, n: int, sum: any }}
mcp:
  servers:
    calc: {{ url: "{mcp}" }}
models:
  local: {{ provider: openai, model: test-gpt, base_url: "{base}", api_key_env: {KEY_VAR} }}
nodes:
  ask: {{ type: model, model: local, prompt: "Q: {{{{ state.question }}}}", output_key: answer, next: add }}
  add: {{ type: tool, server: calc, tool: add, arguments: {{ a: 1, b: 2 }}, output_key: sum, next: call }}
  call: {{ type: http, method: POST, url: "{{{{ state.base }}}}/call", body: {{ x: 1 }}, output_key: out, next: fan }}
  fan: {{ type: parallel, for_each: "{{{{ state.items }}}}", branches: [fetch], join: done, output_key: pages }}
  fetch: {{ type: http, method: POST, url: "{{{{ state.base }}}}/call", body: {{ i: "{{{{ index }}}}" }}, output_key: a, next: done }}
  done: {{ type: set, values: {{ n: "{{{{ state.pages | length }}}}" }} }}
"#,
        base = model.openai_base(),
        mcp = mcp.url
    );
    let file = workflow_file(dir.path(), "traced.yaml", &yaml);
    let input = json!({"question": "why", "base": url, "items": [1, 2]}).to_string();
    let mut cmd = jamjet();
    cmd.arg("--data-dir").arg(dir.path()).args(["run", &file, "--json", "--input", &input]);
    cmd.env("OTEL_EXPORTER_OTLP_ENDPOINT", &url).env("OTEL_SERVICE_NAME", "otel-test").env(KEY_VAR, "k");
    let done =
        tokio::task::spawn_blocking(move || run_bounded(cmd, Duration::from_secs(60), "the traced run")).await.unwrap();
    assert!(done.output.status.success(), "{}", String::from_utf8_lossy(&done.output.stderr));
    let out: Value = serde_json::from_slice(&done.output.stdout).unwrap();
    let id = out["id"].as_str().unwrap().to_string();
    // `run` flushes on its way out: everything is there when it returns.
    until(&shared, Duration::from_secs(10), "the execution's span", |s| {
        by_name(&s.spans, "run traced").iter().any(|r| r.parent.is_empty())
    })
    .await;

    let seen = shared.seen.lock().unwrap();
    let spans = &seen.spans;
    assert!(seen.services.iter().all(|s| s == "otel-test"), "{:?}", seen.services);
    // The run and its two branches run workflow `traced`; the run is the root.
    assert_eq!(by_name(spans, "run traced").len(), 3, "{spans:#?}");
    let root: Vec<&Got> = by_name(spans, "run traced").into_iter().filter(|r| r.parent.is_empty()).collect();
    assert_eq!(root.len(), 1, "one root span: {spans:#?}");
    let root = root[0];
    assert_eq!(root.attributes["jamjet.execution.id"], json!(id));
    assert_eq!(root.attributes["jamjet.execution.status"], json!("completed"));
    assert!(spans.iter().all(|s| s.trace_id == root.trace_id), "one trace for the whole tree: {spans:#?}");
    let mut ids: Vec<&str> = spans.iter().map(|s| s.span_id.as_str()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), spans.len(), "every span once: {spans:#?}");

    // Node visits are children of the execution.
    for node in ["ask", "add", "call", "fan", "done"] {
        let v = by_name(spans, &format!("node {node}"));
        assert_eq!(v.len(), 1, "node {node}: {spans:#?}");
        assert_eq!(v[0].parent, root.span_id, "node {node}'s parent");
        assert_eq!(v[0].attributes["jamjet.node.id"], json!(node));
        assert!(v[0].start_ns >= root.start_ns && v[0].end_ns <= root.end_ns, "node {node} inside the run");
    }
    // The model call: a client span under `ask`, with the GenAI attributes.
    let ask = by_name(spans, "node ask")[0];
    let chat = by_name(spans, "chat test-gpt");
    assert_eq!(chat.len(), 1, "{spans:#?}");
    let chat = chat[0];
    assert_eq!(chat.parent, ask.span_id);
    assert_eq!(chat.kind, 3, "SPAN_KIND_CLIENT");
    assert_eq!(chat.attributes["gen_ai.operation.name"], json!("chat"));
    assert_eq!(chat.attributes["gen_ai.request.model"], json!("test-gpt"));
    assert_eq!(chat.attributes["gen_ai.usage.input_tokens"], json!(2), "{:?}", chat.attributes);
    assert_eq!(chat.attributes["gen_ai.usage.output_tokens"], json!(3), "{:?}", chat.attributes);
    // The model server saw the `ask` visit's span as the parent of its call.
    let tp = format!("00-{}-{}-01", root.trace_id, ask.span_id);
    assert_eq!(model.requests()[0].header("traceparent"), Some(tp.as_str()));
    // The MCP tool call carried the `add` visit's span in its `_meta`.
    let add = by_name(spans, "node add")[0];
    assert_eq!(add.parent, root.span_id);
    let calls = mcp.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].meta["traceparent"], json!(format!("00-{}-{}-01", root.trace_id, add.span_id)));

    // The fan-out's branches: executions under the `fan` visit, each with
    // its `fetch` visit, whose HTTP call carried that visit's span.
    let fan = by_name(spans, "node fan")[0];
    let branches: Vec<&Got> = spans.iter().filter(|s| s.parent == fan.span_id).collect();
    assert_eq!(branches.len(), 2, "{spans:#?}");
    for b in &branches {
        assert_eq!(b.attributes["jamjet.parent.execution.id"], json!(id));
        let fetch: Vec<&Got> = spans.iter().filter(|s| s.parent == b.span_id).collect();
        assert_eq!(fetch.len(), 1, "{spans:#?}");
        assert_eq!(fetch[0].name, "node fetch");
    }
    let call = by_name(spans, "node call")[0];
    let sent: Vec<String> = seen.traceparents.iter().map(|(_, tp)| tp.clone().expect("every call traced")).collect();
    assert_eq!(sent.len(), 3);
    let mut expected: Vec<String> =
        by_name(spans, "node fetch").iter().map(|f| format!("00-{}-{}-01", root.trace_id, f.span_id)).collect();
    expected.push(format!("00-{}-{}-01", root.trace_id, call.span_id));
    let (mut sent, mut expected) = (sent, expected);
    sent.sort();
    expected.sort();
    assert_eq!(sent, expected, "each call's traceparent names the visit that made it");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_killed_mid_step_and_resumed_is_one_trace_with_every_span_once() {
    let (url, shared) = start().await;
    let dir = tempfile::tempdir().unwrap();
    let yaml = r#"id: killed
state_schema: { base: str, a: any, b: any, c: any }
nodes:
  first: { type: http, method: POST, url: "{{ state.base }}/call", body: { x: 1 }, output_key: a, next: slow }
  slow: { type: http, method: POST, url: "{{ state.base }}/hold", body: { x: 2 }, output_key: b, next: last, timeout_ms: 120000 }
  last: { type: http, method: POST, url: "{{ state.base }}/call", body: { x: 3 }, output_key: c }
"#;
    let file = workflow_file(dir.path(), "killed.yaml", yaml);
    let input = json!({"base": url}).to_string();
    let mut cmd = jamjet();
    cmd.arg("--data-dir").arg(dir.path()).args(["--otlp-endpoint", &url, "run", &file, "--input", &input]);
    cmd.env("OTEL_BSP_SCHEDULE_DELAY", "20");
    cmd.stdin(std::process::Stdio::null()).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null());
    let mut child = cmd.spawn().unwrap();
    // `slow` is in flight and `first`'s span was posted: kill -9.
    until(&shared, Duration::from_secs(30), "the held call and first's span", |s| {
        s.traceparents.iter().any(|(p, _)| p == "hold") && !by_name(&s.spans, "node first").is_empty()
    })
    .await;
    child.kill().unwrap();
    child.wait().unwrap();
    let before = shared.seen.lock().unwrap().spans.len();

    shared.release.send_replace(true);
    let mut resume = jamjet();
    resume.arg("--data-dir").arg(dir.path()).args(["--otlp-endpoint", &url, "resume", "--json"]);
    let done =
        tokio::task::spawn_blocking(move || run_bounded(resume, Duration::from_secs(60), "the resume")).await.unwrap();
    assert!(done.output.status.success(), "{}", String::from_utf8_lossy(&done.output.stderr));
    until(&shared, Duration::from_secs(10), "the execution's span", |s| !by_name(&s.spans, "run killed").is_empty())
        .await;

    let seen = shared.seen.lock().unwrap();
    let spans = &seen.spans;
    assert!(before >= 1);
    let root = by_name(spans, "run killed");
    assert_eq!(root.len(), 1, "{spans:#?}");
    let root = root[0];
    assert_eq!(root.attributes["jamjet.execution.status"], json!("completed"));
    assert!(spans.iter().all(|s| s.trace_id == root.trace_id), "one trace across the kill: {spans:#?}");
    for node in ["first", "slow", "last"] {
        let v = by_name(spans, &format!("node {node}"));
        assert_eq!(v.len(), 1, "node {node} once: {spans:#?}");
        assert_eq!(v[0].parent, root.span_id);
    }
    // The run started before the kill: the resumed process's execution
    // span starts where the first did.
    let first = by_name(spans, "node first")[0];
    assert!(root.start_ns <= first.start_ns, "{root:#?} {first:#?}");
    // `slow` was sent twice (before and after the kill), both times as the same visit.
    let holds: Vec<&Option<String>> = seen.traceparents.iter().filter(|(p, _)| p == "hold").map(|(_, t)| t).collect();
    assert_eq!(holds.len(), 2, "{:?}", seen.traceparents);
    assert_eq!(holds[0], holds[1], "a resumed visit keeps its span");
    let slow = by_name(spans, "node slow")[0];
    assert_eq!(holds[0].as_deref(), Some(format!("00-{}-{}-01", root.trace_id, slow.span_id).as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_then_failed_step_shows_its_retries_and_the_error() {
    let (url, shared) = start().await;
    let dir = tempfile::tempdir().unwrap();
    let yaml = r#"id: failing
state_schema: { base: str, a: any }
nodes:
  call:
    type: http
    method: POST
    url: "{{ state.base }}/fail"
    output_key: a
    retry: { max_attempts: 3, backoff: constant, delay_ms: 10 }
"#;
    let file = workflow_file(dir.path(), "failing.yaml", yaml);
    let input = json!({"base": url}).to_string();
    let mut cmd = jamjet();
    cmd.arg("--data-dir").arg(dir.path()).args(["--otlp-endpoint", &url, "run", &file, "--input", &input]);
    let done = tokio::task::spawn_blocking(move || run_bounded(cmd, Duration::from_secs(60), "the failing run"))
        .await
        .unwrap();
    assert!(!done.output.status.success());
    until(&shared, Duration::from_secs(10), "the execution's span", |s| !by_name(&s.spans, "run failing").is_empty())
        .await;
    let seen = shared.seen.lock().unwrap();
    let root = by_name(&seen.spans, "run failing")[0];
    assert_eq!(root.status_code, 2, "STATUS_CODE_ERROR: {root:#?}");
    assert_eq!(root.attributes["jamjet.execution.status"], json!("failed"));
    let call = by_name(&seen.spans, "node call")[0];
    assert_eq!(call.status_code, 2, "{call:#?}");
    assert_eq!(call.events, ["retry", "retry"], "two retries before the last failure");
    assert_eq!(call.attributes["jamjet.node.attempts"], json!(3));
    assert_eq!(call.attributes["error.type"], json!("ServerError"));
}

#[test]
fn a_bad_endpoint_is_refused_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let file = workflow_file(dir.path(), "w.yaml", "id: w\nnodes:\n  a: { type: set, values: { x: 1 } }\n");
    let out = jamjet()
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(["--otlp-endpoint", "127.0.0.1:4318", "run", &file])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "a usage error");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--otlp-endpoint") && err.contains("http://127.0.0.1:4318"), "{err}");
    assert!(!dir.path().join("data").exists(), "nothing was created");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dev_server_exports_its_executions_and_counts_the_spans_in_metrics() {
    let (url, shared) = start().await;
    let dir = tempfile::tempdir().unwrap();
    let server = support::dev::DevServer::start_env(
        dir.path(),
        &[],
        &[("OTEL_EXPORTER_OTLP_ENDPOINT", url.as_str()), ("OTEL_BSP_SCHEDULE_DELAY", "20")],
    );
    let api = server.api();
    let yaml = "id: served\nstate_schema: { x: int }\nnodes:\n  a: { type: set, values: { x: 1 }, next: b }\n  b: { type: set, values: { x: 2 } }\n";
    assert_eq!(api.register_yaml(yaml).await.0, 201);
    let (s, b) = api.post("/executions", &json!({"workflow_id": "served", "input": {}})).await;
    assert_eq!(s, 201, "{b}");
    let id = b["id"].as_str().unwrap().to_string();
    until(&shared, Duration::from_secs(30), "the served execution's spans", |s| {
        by_name(&s.spans, "run served").iter().any(|r| r.attributes["jamjet.execution.id"] == json!(id))
    })
    .await;
    // The count is made after the collector answered: poll /metrics for it.
    let deadline = Instant::now() + Duration::from_secs(30);
    let exported = loop {
        let text = api.client.get(format!("{}/metrics", api.url)).send().await.unwrap().text().await.unwrap();
        let n = text
            .lines()
            .find_map(|l| l.strip_prefix("jamjet_otlp_spans_exported_total "))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0);
        if n >= 3 || Instant::now() > deadline {
            assert!(text.contains("jamjet_otlp_appends_dropped_total 0"), "{text}");
            break n;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(exported >= 3, "the run and its two visits: {exported}");
}
