//! Black-box tests of `jamjet dev`: the real binary on 127.0.0.1:0 with a
//! temp data dir, driven over HTTP (reqwest): workflows, executions, the
//! SSE stream, signal / approve / cancel, error paths that change nothing,
//! API keys, body limits, metrics, the OpenAPI document, and restarts
//! (SIGTERM and kill -9) mid-execution.

mod support;

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use support::OutputBounded;
use support::dev::{Api, DevServer, read_sse};

const LIMIT: Duration = Duration::from_secs(30);

/// Parks on `pay:<order>`, then sets the status from the payment.
const GATE: &str = r#"
id: gate
version: 1.0.0
state_schema: { order: str, payment: dict, status: str }
nodes:
  pay:
    type: wait
    event: "pay:{{ state.order }}"
    output_key: payment
    next: done
  done:
    type: set
    values: { status: "paid {{ state.payment.amount }}" }
"#;

/// Parks on an approval.
const REFUND: &str = r#"
id: refund
version: 1.0.0
state_schema: { amount: int, decision: dict, status: str }
nodes:
  ask:
    type: approval
    prompt: "Refund {{ state.amount }}?"
    on_reject: refuse
    output_key: decision
    next: pay
  pay: { type: set, values: { status: "refunded by {{ state.decision.by }}" } }
  refuse: { type: set, values: { status: refused } }
"#;

fn hello() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/hello.yaml")).unwrap()
}

async fn start_gate(api: &Api, order: &str) -> String {
    let (s, b) = api.post("/executions", &json!({ "workflow_id": "gate", "input": { "order": order } })).await;
    assert_eq!(s, 201, "{b}");
    b["id"].as_str().unwrap().to_string()
}

fn event_names(events: &Value) -> Vec<String> {
    events["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r["event"].as_object().map(|o| o.keys().next().unwrap().clone()).unwrap_or_else(|| r["event"].to_string())
        })
        .collect()
}

#[tokio::test]
async fn workflows_register_as_yaml_or_ir_and_refuse_what_does_not_compile() {
    let dir = tempfile::tempdir().unwrap();
    let server = DevServer::start(dir.path(), &[]);
    let api = server.api();

    let (s, b) = api.register_yaml(&hello()).await;
    assert_eq!(s, 201, "{b}");
    assert_eq!((b["workflow_id"].as_str(), b["version"].as_str()), (Some("hello"), Some("0.1.0")));
    let hash = b["hash"].as_str().unwrap().to_string();
    let (s, again) = api.register_yaml(&hello()).await;
    assert_eq!((s, &again), (200, &b), "the same content again is a no-op");

    // Read it back, and post its IR as JSON under a new version.
    let (s, one) = api.get("/workflows/hello").await;
    assert_eq!(s, 200, "{one}");
    assert_eq!(one["registration"]["hash"], hash.as_str());
    let mut ir = one["workflow"].clone();
    ir["version"] = json!("0.2.0");
    let (s, b) = api.post("/workflows", &ir).await;
    assert_eq!(s, 201, "{b}");
    assert_eq!(b["version"], "0.2.0");
    let (_, list) = api.get("/workflows").await;
    assert_eq!(list["workflows"].as_array().unwrap().len(), 2, "{list}");
    let (s, v1) = api.get("/workflows/hello?version=0.1.0").await;
    assert_eq!((s, v1["registration"]["hash"].as_str()), (200, Some(hash.as_str())));

    // An IR whose graph does not hold together: 422 naming the field.
    let mut broken = one["workflow"].clone();
    broken["version"] = json!("0.3.0");
    broken["nodes"]["greet"]["next"] = json!("nowhere");
    let (s, b) = api.post("/workflows", &broken).await;
    assert_eq!((s, b["error"]["code"].as_str()), (422, Some("invalid_workflow")), "{b}");
    assert!(b["error"]["message"].as_str().unwrap().contains("nodes.greet.next"), "{b}");

    // YAML that does not compile: findings with line and column.
    let bad = hello().replace("next: judge", "next: juge");
    let (s, b) = api.register_yaml(&bad).await;
    assert_eq!((s, b["error"]["code"].as_str()), (422, Some("invalid_workflow")), "{b}");
    let f = &b["error"]["details"]["findings"][0];
    assert!(f["line"].as_u64().unwrap() > 1 && f["column"].as_u64().unwrap() >= 1, "{b}");
    assert!(f["message"].as_str().unwrap().contains("juge"), "{b}");

    // Other content under hello 0.1.0: 409, then ?replace=true takes it.
    let other = hello().replace("Hello, ", "Hi, ");
    let (s, b) = api.register_yaml(&other).await;
    assert_eq!((s, b["error"]["code"].as_str()), (409, Some("workflow_conflict")), "{b}");
    let (_, still) = api.get("/workflows/hello?version=0.1.0").await;
    assert_eq!(still["registration"]["hash"], hash.as_str(), "a refused registration changes nothing");
    let r = api.request(Method::POST, "/workflows?replace=true").header("content-type", "application/yaml").body(other);
    let (s, b) = api.send(r).await;
    assert_eq!(s, 201, "{b}");
    assert_ne!(b["hash"], hash.as_str());

    // Wrong content type, malformed JSON, unknown workflow.
    let r = api.request(Method::POST, "/workflows").header("content-type", "image/png").body("x");
    let (s, b) = api.send(r).await;
    assert_eq!((s, b["error"]["code"].as_str()), (415, Some("unsupported_media_type")), "{b}");
    let r = api.request(Method::POST, "/workflows").header("content-type", "application/json").body("{\n  \"id\": ");
    let (s, b) = api.send(r).await;
    assert_eq!((s, b["error"]["code"].as_str()), (400, Some("bad_request")), "{b}");
    assert_eq!(b["error"]["details"]["line"], 2, "{b}");
    let (s, b) = api.get("/workflows/nope").await;
    assert_eq!((s, b["error"]["code"].as_str()), (404, Some("unknown_workflow")), "{b}");
    let (_, list) = api.get("/workflows").await;
    assert_eq!(list["workflows"].as_array().unwrap().len(), 2, "refusals registered nothing: {list}");
}

#[tokio::test]
async fn executions_submit_idempotently_list_by_pages_and_show_state_and_events() {
    let dir = tempfile::tempdir().unwrap();
    let server = DevServer::start(dir.path(), &[]);
    let api = server.api();
    assert_eq!(api.register_yaml(&hello()).await.0, 201);

    let submit = json!({ "workflow_id": "hello", "input": { "name": "Ada Lovelace" }, "idempotency_key": "k-1" });
    let (s, first) = api.post("/executions", &submit).await;
    assert_eq!(s, 201, "{first}");
    let id = first["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("exec_"), "{first}");
    let (s, again) = api.post("/executions", &submit).await;
    assert_eq!((s, again["id"].as_str()), (200, Some(id.as_str())), "the same key returns the same execution");

    let done = api.poll_until(&id, LIMIT, |b| b["status"] == "completed").await;
    assert_eq!(done["state"]["verdict"], "a long name", "{done}");
    assert_eq!(done["workflow_id"], "hello");
    assert!(done["usage"]["input_tokens"].is_u64() && done["created_ms"].as_u64().unwrap() > 0, "{done}");
    assert_eq!(done["waiting"], json!([]));

    let (s, ev) = api.get(&format!("/executions/{id}/events")).await;
    assert_eq!(s, 200);
    let names = event_names(&ev);
    assert_eq!(names.first().map(String::as_str), Some("ExecutionStarted"), "{names:?}");
    assert_eq!(names.last().map(String::as_str), Some("ExecutionCompleted"), "{names:?}");
    let (_, tail) = api.get(&format!("/executions/{id}/events?after=2")).await;
    assert_eq!(tail["events"].as_array().unwrap().len(), names.len() - 2);
    assert_eq!(tail["events"][0]["seq"], 3);

    // Five more, then pages of two, oldest first, by cursor.
    let mut ids = vec![id.clone()];
    for i in 0..5 {
        let (s, b) =
            api.post("/executions", &json!({ "workflow_id": "hello", "input": { "name": format!("n{i}") } })).await;
        assert_eq!(s, 201, "{b}");
        ids.push(b["id"].as_str().unwrap().to_string());
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..10 {
        let q = cursor.as_ref().map(|c| format!("&cursor={c}")).unwrap_or_default();
        let (s, page) = api.get(&format!("/executions?workflow=hello&limit=2{q}")).await;
        assert_eq!(s, 200, "{page}");
        let rows = page["executions"].as_array().unwrap();
        assert!(rows.len() <= 2);
        seen.extend(rows.iter().map(|r| r["id"].as_str().unwrap().to_string()));
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(seen, sorted, "every execution once, oldest first");
    let (_, other) = api.get("/executions?workflow=other").await;
    assert_eq!(other["executions"], json!([]));
    let (s, b) = api.get("/executions?limit=5000").await;
    assert_eq!((s, b["error"]["code"].as_str()), (400, Some("bad_request")), "{b}");
    let (s, b) = api.get("/executions?status=sleeping").await;
    assert_eq!(s, 400, "{b}");

    // Refused submissions journal nothing.
    let (s, b) = api.post("/executions", &json!({ "workflow_id": "hello", "input": { "name": 42 } })).await;
    assert_eq!((s, b["error"]["code"].as_str()), (422, Some("invalid_input")), "{b}");
    let (s, b) = api.post("/executions", &json!({ "workflow_id": "ghost" })).await;
    assert_eq!((s, b["error"]["code"].as_str()), (404, Some("unknown_workflow")), "{b}");
    let r =
        api.request(Method::POST, "/executions").header("content-type", "application/json").body("{\"workflow_id\": ");
    assert_eq!(api.send(r).await.0, 400);
    let r = api.request(Method::POST, "/executions").header("content-type", "text/plain").body("{}");
    assert_eq!(api.send(r).await.0, 415);
    let (_, all) = api.get("/executions").await;
    assert_eq!(all["executions"].as_array().unwrap().len(), 6, "nothing journaled by refusals: {all}");

    let (s, b) = api.get("/executions/not-an-id").await;
    assert_eq!((s, b["error"]["code"].as_str()), (400, Some("bad_request")), "{b}");
    let (s, b) = api.get("/executions/exec_01JM4X8NKWP2Q3R4S5T6V7W8X9").await;
    assert_eq!((s, b["error"]["code"].as_str()), (404, Some("unknown_execution")), "{b}");
}

#[tokio::test]
async fn the_event_stream_follows_live_to_the_end_and_resumes_after_last_event_id() {
    let dir = tempfile::tempdir().unwrap();
    let server = DevServer::start(dir.path(), &[]);
    let api = server.api();
    assert_eq!(api.register_yaml(GATE).await.0, 201);
    let id = start_gate(&api, "7").await;
    api.poll_until(&id, LIMIT, |b| b["waiting"].as_array().is_some_and(|w| !w.is_empty())).await;

    // Follow it live: the stream is open before the signal.
    let res = api.request(Method::GET, &format!("/executions/{id}/events/stream")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    // The 200 came after the handler subscribed: nothing appended from here on is missed.
    let reader = tokio::spawn(read_sse(res, 100));
    let (s, b) =
        api.post(&format!("/executions/{id}/signal"), &json!({ "key": "pay:7", "payload": { "amount": 12 } })).await;
    assert_eq!(s, 202, "{b}");
    let events = tokio::time::timeout(LIMIT, reader).await.expect("the stream ends").unwrap();
    let end = events.last().unwrap();
    assert_eq!(end.event, "end", "{events:?}");
    assert_eq!(serde_json::from_str::<Value>(&end.data).unwrap(), json!({ "status": "completed" }));
    let records: Vec<_> = events[..events.len() - 1].to_vec();
    let (_, journal) = api.get(&format!("/executions/{id}/events")).await;
    let all = journal["events"].as_array().unwrap();
    assert_eq!(records.len(), all.len(), "one SSE event per record: {events:?}");
    for (sse, rec) in records.iter().zip(all) {
        assert_eq!(sse.id.as_deref(), Some(rec["seq"].to_string().as_str()));
        assert_eq!(serde_json::from_str::<Value>(&sse.data).unwrap(), *rec);
        assert_eq!(&sse.event, rec["event"].as_object().unwrap().keys().next().unwrap());
    }
    assert!(records.iter().any(|e| e.event == "SignalReceived"), "{events:?}");

    // Resume: only what came after Last-Event-ID, then end.
    let res = api
        .request(Method::GET, &format!("/executions/{id}/events/stream"))
        .header("last-event-id", "3")
        .send()
        .await
        .unwrap();
    let rest = read_sse(res, 100).await;
    assert_eq!(rest.len(), all.len() - 3 + 1, "{rest:?}");
    assert_eq!(rest[0].id.as_deref(), Some("4"));
    assert_eq!(rest.last().unwrap().event, "end");
    let res =
        api.request(Method::GET, &format!("/executions/{id}/events/stream?after={}", all.len())).send().await.unwrap();
    let only_end = read_sse(res, 10).await;
    assert_eq!(only_end.iter().map(|e| e.event.as_str()).collect::<Vec<_>>(), ["end"]);
}

#[tokio::test]
async fn post_events_delivers_by_key_to_every_waiting_execution_keeps_the_rest_and_refuses_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let server = DevServer::start(dir.path(), &[]);
    let api = server.api();
    assert_eq!(api.register_yaml(GATE).await.0, 201);
    let ids = [start_gate(&api, "9").await, start_gate(&api, "9").await];
    let other = start_gate(&api, "10").await;
    for id in ids.iter().chain([&other]) {
        api.poll_until(id, LIMIT, |b| b["status"] == "waiting").await;
    }
    // Bad input: a clear 400, nothing delivered or kept.
    let long = "k".repeat(513);
    let bad = [
        (json!({ "key": "" }), "the event key is empty"),
        (json!({ "key": long }), "the limit is 512"),
        (json!({ "key": "pay:9\u{0}" }), "NUL"),
        (json!({ "key": "pay:9", "keep": "1y" }), "unknown unit `y`"),
        (json!({ "key": "pay:9", "keep": "31d" }), "longer than an event may be kept"),
    ];
    for (body, says) in bad {
        let (s, b) = api.post("/events", &body).await;
        assert_eq!((s, b["error"]["code"].as_str()), (400, Some("invalid_event")), "{body}: {b}");
        let message = b["error"]["message"].as_str().unwrap();
        assert!(message.contains(says) && message.contains("nothing was delivered or kept"), "{message}");
    }
    let (s, b) = api.post("/events", &json!({ "payload": 1 })).await;
    assert_eq!((s, b["error"]["code"].as_str()), (400, Some("bad_request")), "{b}");
    for id in &ids {
        assert_eq!(api.get(&format!("/executions/{id}")).await.1["status"], "waiting", "a refusal delivered nothing");
    }

    let (s, b) = api.post("/events", &json!({ "key": "pay:9", "payload": { "amount": 3 } })).await;
    assert_eq!((s, &b["kept"], &b["kept_until_ms"]), (202, &json!(false), &Value::Null), "{b}");
    let mut delivered: Vec<String> =
        b["delivered"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect();
    delivered.sort();
    let mut want = ids.to_vec();
    want.sort();
    assert_eq!(delivered, want, "{b}");
    for id in &ids {
        let done = api.poll_until(id, LIMIT, |b| b["status"] == "completed").await;
        assert_eq!(done["state"]["status"], "paid 3");
    }
    assert_eq!(api.get(&format!("/executions/{other}")).await.1["status"], "waiting");

    // Nobody waits for pay:11: kept, then taken by the execution that reaches that wait.
    let (s, b) = api.post("/events", &json!({ "key": "pay:11", "payload": { "amount": 4 }, "keep": "1h" })).await;
    assert_eq!((s, &b["kept"], b["delivered"].as_array().map(Vec::len)), (202, &json!(true), Some(0)), "{b}");
    assert!(b["kept_until_ms"].as_u64().is_some(), "{b}");
    let late = start_gate(&api, "11").await;
    let done = api.poll_until(&late, LIMIT, |b| b["status"] == "completed").await;
    assert_eq!(done["state"]["status"], "paid 4");
}

#[tokio::test]
async fn signal_approve_and_cancel_move_executions_and_refusals_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = DevServer::start(dir.path(), &[]);
    let api = server.api();
    assert_eq!(api.register_yaml(GATE).await.0, 201);
    assert_eq!(api.register_yaml(REFUND).await.0, 201);

    // A wait: what it waits for shows, then a signal finishes it.
    let id = start_gate(&api, "1").await;
    let parked = api.poll_until(&id, LIMIT, |b| b["waiting"].as_array().is_some_and(|w| !w.is_empty())).await;
    assert_eq!(parked["waiting"][0]["kind"], "event", "{parked}");
    assert_eq!(parked["waiting"][0]["event"], "pay:1", "{parked}");
    // A key nothing waits for is kept, and the answer says what it waits for.
    let (s, b) = api.post(&format!("/executions/{id}/signal"), &json!({ "key": "pay:2" })).await;
    assert_eq!((s, b["kept"].as_bool(), b["status"].as_str()), (202, Some(true), Some("waiting")), "{b}");
    assert_eq!(b["awaited"].as_array().map(Vec::len), Some(1), "{b}");
    assert_eq!((b["awaited"][0]["id"].as_str(), b["awaited"][0]["event"].as_str()), (Some(id.as_str()), Some("pay:1")));
    let (s, b) =
        api.post(&format!("/executions/{id}/signal"), &json!({ "key": "pay:1", "payload": { "amount": 5 } })).await;
    assert_eq!((s, b["id"].as_str(), b["kept"].as_bool()), (202, Some(id.as_str()), Some(false)), "{b}");
    let done = api.poll_until(&id, LIMIT, |b| b["status"] == "completed").await;
    assert_eq!(done["state"]["status"], "paid 5");
    let events_before = api.get(&format!("/executions/{id}/events")).await.1;
    let (s, b) = api.post(&format!("/executions/{id}/signal"), &json!({ "key": "pay:1" })).await;
    assert_eq!((s, b["error"]["code"].as_str()), (409, Some("finished")), "{b}");
    let (s, b) = api.post(&format!("/executions/{id}/cancel"), &json!({})).await;
    assert_eq!((s, b["error"]["code"].as_str()), (409, Some("finished")), "{b}");
    assert_eq!(api.get(&format!("/executions/{id}/events")).await.1, events_before, "refusals journal nothing");

    // An approval.
    let (s, b) = api.post("/executions", &json!({ "workflow_id": "refund", "input": { "amount": 30 } })).await;
    assert_eq!(s, 201, "{b}");
    let rid = b["id"].as_str().unwrap().to_string();
    let parked = api.poll_until(&rid, LIMIT, |b| b["waiting"].as_array().is_some_and(|w| !w.is_empty())).await;
    assert_eq!(parked["waiting"][0]["kind"], "approval", "{parked}");
    assert_eq!(parked["waiting"][0]["prompt"], "Refund 30?", "{parked}");
    let r = api
        .request(Method::POST, &format!("/executions/{rid}/approve"))
        .header("content-type", "application/json")
        .body("{\"approved\": tru}");
    let (s, b) = api.send(r).await;
    assert_eq!((s, b["error"]["details"]["line"].as_u64()), (400, Some(1)), "{b}");
    let (s, b) = api.post(&format!("/executions/{rid}/approve"), &json!({ "approved": true, "by": "ada" })).await;
    assert_eq!((s, b["node"].as_str()), (200, Some("ask")), "{b}");
    let done = api.poll_until(&rid, LIMIT, |b| b["status"] == "completed").await;
    assert_eq!(done["state"]["status"], "refunded by ada");

    // Cancel a parked one (an empty JSON body allowed; no content type is not).
    let cid = start_gate(&api, "2").await;
    api.poll_until(&cid, LIMIT, |b| b["waiting"].as_array().is_some_and(|w| !w.is_empty())).await;
    let (s, b) = api.send(api.request(Method::POST, &format!("/executions/{cid}/cancel"))).await;
    assert_eq!((s, b["error"]["code"].as_str()), (415, Some("unsupported_media_type")), "{b}");
    let cancel =
        api.request(Method::POST, &format!("/executions/{cid}/cancel")).header("content-type", "application/json");
    let (s, b) = api.send(cancel).await;
    assert_eq!(s, 200, "{b}");
    api.poll_until(&cid, LIMIT, |b| b["status"] == "cancelled").await;

    // Unknown and malformed ids.
    let ghost = "exec_01JM4X8NKWP2Q3R4S5T6V7W8X9";
    for op in ["signal", "approve", "cancel"] {
        let body = match op {
            "signal" => json!({ "key": "k" }),
            "approve" => json!({ "approved": true }),
            _ => json!({}),
        };
        let (s, b) = api.post(&format!("/executions/{ghost}/{op}"), &body).await;
        assert_eq!((s, b["error"]["code"].as_str()), (404, Some("unknown_execution")), "{op}: {b}");
        let (s, _) = api.post(&format!("/executions/bogus/{op}"), &body).await;
        assert_eq!(s, 400, "{op}");
    }
    let (_, all) = api.get("/executions").await;
    assert_eq!(all["executions"].as_array().unwrap().len(), 3, "{all}");
    assert!(all["executions"].as_array().unwrap().iter().all(|r| r["parent"].is_null()), "none is a child: {all}");
}

#[tokio::test]
async fn api_keys_guard_every_route_but_health_and_a_wrong_or_missing_key_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = DevServer::start_env(dir.path(), &[], &[("JAMJET_API_KEYS", "k-one,k-two")]);
    let open = server.api();
    let keyed = server.api().with_key("k-two");
    let wrong = server.api().with_key("k-three");

    assert_eq!(open.get("/health").await.0, 200);
    assert_eq!(open.get("/openapi.json").await.0, 200);
    for api in [&open, &wrong] {
        let res = api
            .request(Method::POST, "/workflows")
            .header("content-type", "application/yaml")
            .body(GATE)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 401);
        assert_eq!(res.headers()["www-authenticate"], "Bearer");
        let b: Value = serde_json::from_slice(&res.bytes().await.unwrap()).unwrap();
        assert_eq!(b["error"]["code"], "unauthorized", "{b}");
        let (s, _) = api.get("/executions").await;
        assert_eq!(s, 401);
        let (s, _) = api.get("/metrics").await;
        assert_eq!(s, 401);
    }
    let (s, b) = keyed.get("/workflows").await;
    assert_eq!((s, &b["workflows"]), (200, &json!([])), "the refused registrations registered nothing");
    assert_eq!(keyed.register_yaml(GATE).await.0, 201);
    for api in [&open, &wrong] {
        let (s, _) = api.post("/executions", &json!({ "workflow_id": "gate", "input": { "order": "x" } })).await;
        assert_eq!(s, 401);
    }
    let (s, b) = keyed.get("/executions").await;
    assert_eq!((s, &b["executions"]), (200, &json!([])), "nothing journaled without a key");
    let id = start_gate(&keyed, "x").await;
    let (s, _) = open.post(&format!("/executions/{id}/cancel"), &json!({})).await;
    assert_eq!(s, 401);
    let (s, b) = keyed.get(&format!("/executions/{id}")).await;
    assert_eq!(s, 200);
    assert_ne!(b["status"], "cancelled");
}

#[test]
fn a_non_loopback_bind_without_keys_refuses_to_start_and_new_key_makes_a_usable_key() {
    let dir = tempfile::tempdir().unwrap();
    let out = support::jamjet()
        .env_remove("JAMJET_API_KEYS")
        .arg("--data-dir")
        .arg(dir.path())
        .args(["dev", "--bind", "0.0.0.0:0"])
        .output_bounded();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("refusing to listen on 0.0.0.0:0 without API keys"), "{err}");
    assert!(out.stdout.is_empty(), "it never listened");

    let out = support::jamjet().args(["dev", "--new-key"]).output_bounded();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let key = text.lines().find_map(|l| l.strip_prefix("key:  ")).unwrap().to_string();
    let line = text.lines().find_map(|l| l.strip_prefix("line: ")).unwrap().to_string();
    let keys = dir.path().join("keys.txt");
    std::fs::write(&keys, format!("# test\n{line}\n")).unwrap();
    let server = DevServer::start(dir.path(), &["--api-keys-file", keys.to_str().unwrap()]);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        assert_eq!(server.api().get("/workflows").await.0, 401);
        assert_eq!(server.api().with_key(&key).get("/workflows").await.0, 200);
        assert_eq!(server.api().with_key(&line).get("/workflows").await.0, 401, "the digest is not a key");
    });
}

#[tokio::test]
async fn a_body_over_the_limit_is_413_and_changes_nothing_and_cors_is_off_unless_asked() {
    let dir = tempfile::tempdir().unwrap();
    let server = DevServer::start(dir.path(), &["--body-limit", "2048", "--cors-origin", "https://app.example"]);
    let api = server.api();
    assert_eq!(api.register_yaml(GATE).await.0, 201);
    let big = json!({ "workflow_id": "gate", "input": { "order": "x".repeat(4096) } });
    let (s, b) = api.post("/executions", &big).await;
    assert_eq!((s, b["error"]["code"].as_str()), (413, Some("body_too_large")), "{b}");
    let padded = format!("{GATE}\n#{}", "x".repeat(4096));
    let (s, b) = api.register_yaml(&padded).await;
    assert_eq!((s, b["error"]["code"].as_str()), (413, Some("body_too_large")), "{b}");
    let (_, all) = api.get("/executions").await;
    assert_eq!(all["executions"], json!([]));

    let res = api.request(Method::GET, "/health").header("origin", "https://app.example").send().await.unwrap();
    assert_eq!(res.headers()["access-control-allow-origin"], "https://app.example");
    let res = api.request(Method::GET, "/health").header("origin", "https://evil.example").send().await.unwrap();
    assert!(res.headers().get("access-control-allow-origin").is_none());
    drop(server);
    let server = DevServer::start(dir.path(), &[]);
    let res =
        server.api().request(Method::GET, "/health").header("origin", "https://app.example").send().await.unwrap();
    assert!(res.headers().get("access-control-allow-origin").is_none(), "CORS off by default");
}

#[tokio::test]
async fn metrics_parse_and_have_every_family_and_openapi_lists_every_route_the_server_answers() {
    let dir = tempfile::tempdir().unwrap();
    let server = DevServer::start(dir.path(), &[]);
    let api = server.api();
    assert_eq!(api.register_yaml(&hello()).await.0, 201);
    let (_, b) = api.post("/executions", &json!({ "workflow_id": "hello", "input": { "name": "Bo" } })).await;
    let id = b["id"].as_str().unwrap().to_string();
    api.poll_until(&id, LIMIT, |b| b["status"] == "completed").await;

    let res = api.request(Method::GET, "/metrics").send().await.unwrap();
    assert_eq!(res.status(), 200);
    let text = res.text().await.unwrap();
    for family in [
        "# TYPE jamjet_executions gauge",
        "# TYPE jamjet_queue_depth gauge",
        "# TYPE jamjet_node_duration_seconds histogram",
        "# TYPE jamjet_journal_sync_seconds histogram",
        "# TYPE jamjet_http_requests counter",
    ] {
        assert!(text.contains(family), "{family} missing:\n{text}");
    }
    assert!(text.contains("jamjet_executions{status=\"completed\"} 1"), "{text}");
    assert!(text.contains("jamjet_node_duration_seconds_count{type=\"set\"} 2"), "{text}");
    assert!(text.contains("jamjet_node_duration_seconds_count{type=\"branch\"} 1"), "{text}");
    assert!(text.contains("route=\"/executions/{id}\",status=\"200\""), "{text}");
    assert!(text.trim_end().ends_with("# EOF"), "{text}");
    // Every sample line: name{labels} number.
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
        let value = line.rsplit(' ').next().unwrap();
        assert!(value.parse::<f64>().is_ok(), "not a sample: {line}");
    }
    let sync_count = text.lines().find(|l| l.starts_with("jamjet_journal_sync_seconds_count")).unwrap();
    assert!(sync_count.rsplit(' ').next().unwrap().parse::<u64>().unwrap() > 0, "{sync_count}");

    // Every documented route answers on the real server (not 404/405).
    let (_, doc) = api.get("/openapi.json").await;
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    let mut count = 0;
    for (path, ops) in paths {
        for method in ops.as_object().unwrap().keys() {
            let concrete = path.replace("{id}", if path.starts_with("/workflows") { "hello" } else { &id });
            let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let res =
                api.request(m, &concrete).header("content-type", "application/json").body("{}").send().await.unwrap();
            let s = res.status().as_u16();
            let body: Value = res.json().await.unwrap_or(Value::Null);
            // An unknown session is the handler's own answer, not a missing route.
            let handler_404 = s == 404 && body["error"]["code"] == "unknown_session";
            assert!((s != 404 || handler_404) && s != 405, "{method} {path} answered {s}: {body}");
            count += 1;
        }
    }
    assert_eq!(count, 23, "{paths:?}");
    // And a route that is not there is a 404.
    assert_eq!(api.get("/nope").await.0, 404);
}

/// Restart mid-execution: parked on a wait, the server stops (SIGTERM or
/// kill -9), a new one on the same data dir finishes it through the API,
/// with every step once.
async fn restart_mid_execution(kill9: bool) {
    let dir = tempfile::tempdir().unwrap();
    let mut server = DevServer::start(dir.path(), &[]);
    let api = server.api();
    assert_eq!(api.register_yaml(GATE).await.0, 201);
    let id = start_gate(&api, "r").await;
    api.poll_until(&id, LIMIT, |b| b["waiting"].as_array().is_some_and(|w| !w.is_empty())).await;
    // An open stream must not hold up a graceful stop.
    let res = api.request(Method::GET, &format!("/executions/{id}/events/stream")).send().await.unwrap();
    let stream = tokio::spawn(read_sse(res, 100));
    if kill9 {
        server.kill9();
    } else {
        let status = server.stop();
        assert!(status.success(), "{status}: {}", server.stderr.lock().unwrap());
        let got = tokio::time::timeout(LIMIT, stream).await.expect("the stream closed at shutdown").unwrap();
        assert!(got.iter().all(|e| e.event != "end"), "{got:?}");
    }
    let server = DevServer::start(dir.path(), &[]);
    let api = server.api();
    let parked = api.poll_until(&id, LIMIT, |b| b["waiting"].as_array().is_some_and(|w| !w.is_empty())).await;
    assert_eq!(parked["waiting"][0]["event"], "pay:r");
    let (s, b) =
        api.post(&format!("/executions/{id}/signal"), &json!({ "key": "pay:r", "payload": { "amount": 9 } })).await;
    assert_eq!(s, 202, "{b}");
    let done = api.poll_until(&id, LIMIT, |b| b["status"] == "completed").await;
    assert_eq!(done["state"]["status"], "paid 9");
    let (_, ev) = api.get(&format!("/executions/{id}/events")).await;
    let names = event_names(&ev);
    for once in ["ExecutionStarted", "SignalReceived", "ExecutionCompleted"] {
        assert_eq!(names.iter().filter(|n| *n == once).count(), 1, "{once}: {names:?}");
    }
    assert_eq!(names.iter().filter(|n| *n == "NodeCompleted").count(), 2, "each node completed once: {names:?}");
}

#[tokio::test]
async fn a_sigterm_mid_execution_closes_streams_and_the_next_server_finishes_it() {
    restart_mid_execution(false).await;
}

#[tokio::test]
async fn a_kill9_mid_execution_loses_nothing_and_the_next_server_finishes_it() {
    restart_mid_execution(true).await;
}

#[tokio::test]
async fn the_list_pages_newest_first_finds_by_key_and_the_timeline_says_where_each_visit_sits() {
    let dir = tempfile::tempdir().unwrap();
    let server = DevServer::start(dir.path(), &[]);
    let api = server.api();
    let (s, b) = api.register_yaml(&hello()).await;
    assert_eq!(s, 201, "{b}");
    let mut ids = Vec::new();
    for n in 0..5 {
        let body =
            json!({ "workflow_id": "hello", "input": { "name": format!("n{n}") }, "idempotency_key": format!("k{n}") });
        let (s, b) = api.post("/executions", &body).await;
        assert_eq!(s, 201, "{b}");
        let id = b["id"].as_str().unwrap().to_string();
        api.poll_until(&id, LIMIT, |b| b["status"] == "completed").await;
        ids.push(id);
    }
    let rows = |p: &Value| -> Vec<String> {
        p["executions"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap().to_string()).collect()
    };
    let (s, p) = api.get("/executions?order=desc&limit=2&usage=true").await;
    assert_eq!(s, 200, "{p}");
    assert_eq!(rows(&p), [ids[4].clone(), ids[3].clone()]);
    assert_eq!(p["next_cursor"], ids[3].as_str());
    assert_eq!(p["executions"][0]["usage"]["input_tokens"], 0, "{p}");
    let (_, p) = api.get(&format!("/executions?order=desc&limit=2&cursor={}", ids[3])).await;
    assert_eq!(rows(&p), [ids[2].clone(), ids[1].clone()]);
    assert!(p["executions"][0].get("usage").is_none(), "only when asked: {p}");
    let (_, p) = api.get(&format!("/executions?order=desc&limit=2&cursor={}", ids[1])).await;
    assert_eq!(rows(&p), [ids[0].clone()]);
    assert_eq!(p["next_cursor"], Value::Null);
    let (_, p) = api.get("/executions?order=desc&status=failed").await;
    assert!(rows(&p).is_empty(), "{p}");
    let (_, p) = api.get("/executions?key=k2").await;
    assert_eq!(rows(&p), [ids[2].clone()]);
    let (_, p) = api.get("/executions?key=k2&workflow=other").await;
    assert!(rows(&p).is_empty(), "the key's execution, filtered out: {p}");
    let (_, p) = api.get("/executions?key=nope").await;
    assert!(rows(&p).is_empty(), "{p}");
    let (s, e) = api.get("/executions?order=sideways").await;
    assert_eq!(s, 400, "{e}");

    let (s, t) = api.get(&format!("/executions/{}/timeline", ids[0])).await;
    assert_eq!(s, 200, "{t}");
    assert_eq!(t["input"]["name"], "n0");
    let nodes = t["nodes"].as_array().unwrap();
    let seqs = t["seqs"].as_array().unwrap();
    assert_eq!(nodes[0]["node"], "greet");
    assert_eq!(nodes.len(), seqs.len(), "{t}");
    for (v, s) in nodes.iter().zip(seqs) {
        let (started, completed) = (s["started"].as_u64().unwrap(), s["completed"].as_u64().unwrap());
        assert!(started < completed && completed <= t["last_seq"].as_u64().unwrap(), "{v} {s}");
    }
    let (s, _) = api.get("/executions/exec_01K0000000000000000000000Z/timeline").await;
    assert_eq!(s, 404);
}
