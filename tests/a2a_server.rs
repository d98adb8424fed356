//! The A2A server, black-box: the real `jamjet dev` binary on 127.0.0.1:0
//! with the agents of `tests/a2a/workflows`, driven by the official Python
//! a2a-sdk client (`tests/a2a/sdk_client.py`, v1.0 wire) and by raw JSON-RPC
//! (the v0.3 aliases, the error codes), and restarted after a `kill -9`
//! with a task parked in input-required.

mod support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::{Value, json};
use support::a2a_py::{sdk_client as sdk, step};

const STARTUP: Duration = Duration::from_secs(60);

fn workflows() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/a2a/workflows")
}

/// A running `jamjet dev`, killed (`kill -9`) when dropped.
struct Dev {
    child: Child,
    url: String,
}

impl Dev {
    fn start(data: &Path, extra: &[&str]) -> Dev {
        let mut c = support::jamjet();
        c.arg("--data-dir").arg(data).args(["dev", "--bind", "127.0.0.1:0", "--workflows"]).arg(workflows());
        c.args(extra).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::inherit());
        let mut child = c.spawn().expect("starting jamjet dev");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(first)) = lines.next() {
                let _ = tx.send(first);
            }
            for _ in lines {}
        });
        let first = match rx.recv_timeout(STARTUP) {
            Ok(line) => line,
            Err(_) => {
                let _ = child.kill();
                panic!("jamjet dev printed no first line within {STARTUP:?}");
            }
        };
        let url = first
            .strip_prefix("jamjet dev listening on ")
            .unwrap_or_else(|| panic!("unexpected first line: {first}"))
            .trim()
            .to_string();
        Dev { child, url }
    }

    fn kill9(mut self) {
        self.child.kill().expect("kill -9");
        self.child.wait().expect("reaping jamjet dev");
    }
}

impl Drop for Dev {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn http() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap()
}

async fn get_json(url: &str) -> (u16, Value) {
    let r = http().get(url).send().await.expect("GET");
    let status = r.status().as_u16();
    let body = r.bytes().await.unwrap();
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

/// POST a raw body to a JSON-RPC endpoint; the parsed response.
async fn post_raw(url: &str, body: Vec<u8>) -> Value {
    let r = http().post(url).header("content-type", "application/json").body(body).send().await.expect("POST");
    assert_eq!(r.status().as_u16(), 200, "JSON-RPC answers with HTTP 200");
    serde_json::from_slice(&r.bytes().await.unwrap()).expect("a JSON-RPC response")
}

async fn rpc(url: &str, method: &str, params: Value) -> Value {
    let body = json!({"jsonrpc": "2.0", "id": 7, "method": method, "params": params});
    let response = post_raw(url, serde_json::to_vec(&body).unwrap()).await;
    assert_eq!(response["id"], 7, "{response}");
    response
}

fn v03_text(text: &str) -> Value {
    json!({"message": {"kind": "message", "messageId": format!("m-{text}-{}", rand::random::<u64>()), "role": "user",
        "parts": [{"kind": "text", "text": text}]}})
}

#[tokio::test]
async fn cards_list_the_agents_and_need_no_key() {
    let data = tempfile::tempdir().unwrap();
    let dev = Dev::start(data.path(), &[]);
    let (status, card) = get_json(&format!("{}/.well-known/agent-card.json", dev.url)).await;
    assert_eq!(status, 200);
    let mut skills: Vec<&str> = card["skills"].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap()).collect();
    skills.sort();
    assert_eq!(skills, ["await-payment", "greet", "refund"], "`plain` has no a2a: section");
    assert_eq!(card["supportedInterfaces"][0]["url"], format!("{}/a2a", dev.url));
    assert_eq!(card["supportedInterfaces"][0]["protocolVersion"], "1.0");
    assert_eq!(card["supportedInterfaces"][0]["protocolBinding"], "JSONRPC");
    assert_eq!(card["capabilities"]["streaming"], true);
    assert!(card.get("securitySchemes").is_none(), "no keys, no scheme: {card}");

    let (status, one) = get_json(&format!("{}/a2a/greeter/.well-known/agent-card.json", dev.url)).await;
    assert_eq!(status, 200);
    assert_eq!(one["supportedInterfaces"][0]["url"], format!("{}/a2a/greeter", dev.url));
    assert_eq!(one["skills"][0]["id"], "greet");
    assert_eq!(one["skills"][0]["examples"], json!(["Ada"]));
    assert_eq!(one["version"], "0.1.0");

    let (status, err) = get_json(&format!("{}/a2a/plain/.well-known/agent-card.json", dev.url)).await;
    assert_eq!(status, 404);
    assert_eq!(err["error"]["code"], "unknown_agent");
    let r = http()
        .post(format!("{}/a2a/plain", dev.url))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404, "no JSON-RPC endpoint for a workflow that is not an agent");
}

#[tokio::test]
async fn a2a_flag_serves_every_workflow() {
    let data = tempfile::tempdir().unwrap();
    let dev = Dev::start(data.path(), &["--a2a"]);
    let (status, card) = get_json(&format!("{}/a2a/plain/.well-known/agent-card.json", dev.url)).await;
    assert_eq!(status, 200);
    assert_eq!(card["skills"][0]["id"], "plain");
    let body = json!({"message": {"messageId": "p1", "role": "ROLE_USER", "parts": [{"data": {}}]}});
    let r = rpc(&format!("{}/a2a/plain", dev.url), "SendMessage", body).await;
    assert_eq!(r["result"]["task"]["status"]["state"], "TASK_STATE_COMPLETED", "{r}");
    assert_eq!(r["result"]["task"]["artifacts"][0]["parts"][0]["data"], json!({"x": 1}));
}

#[tokio::test]
async fn python_sdk_sends_a_message_and_gets_the_task() {
    let data = tempfile::tempdir().unwrap();
    let dev = Dev::start(data.path(), &[]);
    let Some(lines) = sdk(&format!("{}/a2a/greeter", dev.url), "send", "Ada") else { return };
    let card = &step(&lines, "card")["card"];
    assert_eq!(card["skills"][0]["id"], "greet");
    let sent = &step(&lines, "sent")["task"];
    assert_eq!(sent["status"]["state"], "TASK_STATE_COMPLETED", "{sent}");
    let state = &sent["artifacts"][0]["parts"][0]["data"];
    assert_eq!(state["greeting"], "Hello, Ada!");
    assert_eq!(state["times"], 3.0, "the length of Ada");
    assert!(sent["id"].as_str().unwrap().starts_with("exec_"), "the task is an execution: {sent}");
    let got = &step(&lines, "got")["task"];
    assert_eq!(got["id"], sent["id"]);
    assert_eq!(got["contextId"], sent["contextId"]);
    assert_eq!(got["status"]["state"], "TASK_STATE_COMPLETED");
    assert_eq!(got["artifacts"], sent["artifacts"]);
}

#[tokio::test]
async fn python_sdk_streams_a_send_up_to_completed() {
    let data = tempfile::tempdir().unwrap();
    let dev = Dev::start(data.path(), &[]);
    let Some(lines) = sdk(&format!("{}/a2a/greeter", dev.url), "stream", "Grace") else { return };
    let events = step(&lines, "streamed")["events"].as_array().unwrap().clone();
    assert_eq!(events[0]["task"]["status"]["state"], "TASK_STATE_WORKING", "{events:?}");
    let statuses: Vec<&Value> = events.iter().filter_map(|e| e.get("statusUpdate")).collect();
    let nodes: Vec<&str> = statuses
        .iter()
        .filter(|s| s["status"]["state"] == "TASK_STATE_WORKING")
        .map(|s| s["status"]["message"]["parts"][0]["text"].as_str().unwrap())
        .collect();
    assert_eq!(nodes, ["node `greet` completed", "node `count` completed"], "{events:?}");
    let artifact = events.iter().find_map(|e| e.get("artifactUpdate")).expect("an artifact update");
    assert_eq!(artifact["artifact"]["parts"][0]["data"]["greeting"], "Hello, Grace!");
    let last = events.last().unwrap();
    assert_eq!(last["statusUpdate"]["status"]["state"], "TASK_STATE_COMPLETED", "{events:?}");
}

#[tokio::test]
async fn python_sdk_cancels_a_task_parked_on_a_wait() {
    let data = tempfile::tempdir().unwrap();
    let dev = Dev::start(data.path(), &[]);
    let Some(lines) = sdk(&format!("{}/a2a/payment", dev.url), "cancel", "o-1") else { return };
    let parked = &step(&lines, "parked")["task"];
    assert_eq!(parked["status"]["state"], "TASK_STATE_INPUT_REQUIRED", "{parked}");
    let text = parked["status"]["message"]["parts"][0]["text"].as_str().unwrap();
    assert!(text.contains("event `payment:o-1`"), "the status says what it waits for: {text}");
    assert_eq!(parked["status"]["message"]["parts"][1]["data"]["waiting"][0]["event"], "payment:o-1");
    let canceled = &step(&lines, "canceled")["task"];
    assert_eq!(canceled["status"]["state"], "TASK_STATE_CANCELED", "{canceled}");
    // The journal agrees, and a second cancel is refused with -32002.
    let r = rpc(&format!("{}/a2a/payment", dev.url), "CancelTask", json!({"id": parked["id"]})).await;
    assert_eq!(r["error"]["code"], -32002, "{r}");
}

#[tokio::test]
async fn python_sdk_answers_an_approval_with_a_follow_up() {
    let data = tempfile::tempdir().unwrap();
    let dev = Dev::start(data.path(), &[]);
    let Some(lines) = sdk(&format!("{}/a2a/refund", dev.url), "follow-up", "") else { return };
    let parked = &step(&lines, "parked")["task"];
    assert_eq!(parked["status"]["state"], "TASK_STATE_INPUT_REQUIRED", "{parked}");
    let text = parked["status"]["message"]["parts"][0]["text"].as_str().unwrap();
    assert!(text.contains("Refund 30.0 to Ada?") || text.contains("Refund 30 to Ada?"), "the prompt: {text}");
    let answered = &step(&lines, "answered")["task"];
    assert_eq!(answered["id"], parked["id"], "the same task");
    assert_eq!(answered["status"]["state"], "TASK_STATE_COMPLETED", "{answered}");
    let reply = answered["artifacts"][0]["parts"][0]["text"].as_str().unwrap();
    assert!(reply.starts_with("refunded 30") && reply.ends_with("(approved by a2a)"), "output_key as text: {reply}");
}

#[tokio::test]
async fn python_sdk_streams_a_follow_up_that_delivers_a_signal() {
    let data = tempfile::tempdir().unwrap();
    let dev = Dev::start(data.path(), &[]);
    let Some(lines) = sdk(&format!("{}/a2a/payment", dev.url), "stream-follow-up", "o-2") else { return };
    let parked = step(&lines, "parked")["events"].as_array().unwrap().clone();
    let last = parked.last().unwrap();
    assert_eq!(last["statusUpdate"]["status"]["state"], "TASK_STATE_INPUT_REQUIRED", "{parked:?}");
    let answered = step(&lines, "answered")["events"].as_array().unwrap().clone();
    let last = answered.last().unwrap();
    assert_eq!(last["statusUpdate"]["status"]["state"], "TASK_STATE_COMPLETED", "{answered:?}");
    let artifact = answered.iter().find_map(|e| e.get("artifactUpdate")).expect("an artifact update");
    assert_eq!(artifact["artifact"]["parts"][0]["text"], "paid 12", "the data part was the signal's payload");
}

#[tokio::test]
async fn v03_aliases_speak_v03_back() {
    let data = tempfile::tempdir().unwrap();
    let dev = Dev::start(data.path(), &[]);
    let url = format!("{}/a2a/greeter", dev.url);
    let r = rpc(&url, "message/send", v03_text("Lin")).await;
    let task = &r["result"];
    assert_eq!(task["kind"], "task", "{r}");
    assert_eq!(task["status"]["state"], "completed");
    assert_eq!(task["artifacts"][0]["parts"][0]["kind"], "data");
    assert_eq!(task["artifacts"][0]["parts"][0]["data"]["greeting"], "Hello, Lin!");
    let id = task["id"].as_str().unwrap();

    let got = rpc(&url, "tasks/get", json!({"id": id})).await;
    assert_eq!(got["result"]["status"]["state"], "completed", "{got}");
    let canceled = rpc(&url, "tasks/cancel", json!({"id": id})).await;
    assert_eq!(canceled["error"]["code"], -32002, "a completed task is not cancelable: {canceled}");

    // message/stream: SSE frames, each a JSON-RPC response in v0.3 form, the last `final`.
    let body = json!({"jsonrpc": "2.0", "id": "s", "method": "message/stream", "params": v03_text("Kai")});
    let sse = http()
        .post(&url)
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&body).unwrap())
        .send()
        .await
        .unwrap();
    assert!(sse.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    let text = sse.text().await.unwrap();
    let frames: Vec<Value> =
        text.lines().filter_map(|l| l.strip_prefix("data: ")).map(|d| serde_json::from_str(d).unwrap()).collect();
    assert_eq!(frames[0]["result"]["kind"], "task");
    let last = &frames.last().unwrap()["result"];
    assert_eq!((last["kind"].as_str(), last["final"].as_bool()), (Some("status-update"), Some(true)), "{text}");
    assert_eq!(last["status"]["state"], "completed");
    assert!(frames.iter().any(|f| f["result"]["kind"] == "artifact-update"), "{text}");

    // ListTasks (v1.0 name) sees both, newest last.
    let list = rpc(&url, "ListTasks", json!({"pageSize": 1})).await;
    assert_eq!(list["result"]["totalSize"], 2, "{list}");
    assert_eq!(list["result"]["tasks"][0]["id"], id);
    let next = list["result"]["nextPageToken"].as_str().unwrap();
    let page2 = rpc(&url, "ListTasks", json!({"pageSize": 1, "pageToken": next})).await;
    assert_eq!(page2["result"]["tasks"].as_array().unwrap().len(), 1);
    assert_eq!(page2["result"]["nextPageToken"], "");
    let ctx = task["contextId"].as_str().unwrap();
    let by_ctx = rpc(&url, "ListTasks", json!({"contextId": ctx})).await;
    assert_eq!(by_ctx["result"]["tasks"].as_array().unwrap().len(), 1, "{by_ctx}");
}

#[tokio::test]
async fn json_rpc_errors_carry_the_spec_codes_and_change_nothing() {
    let data = tempfile::tempdir().unwrap();
    let dev = Dev::start(data.path(), &[]);
    let url = format!("{}/a2a/greeter", dev.url);
    let parse = post_raw(&url, b"{not json".to_vec()).await;
    assert_eq!(parse["error"]["code"], -32700, "{parse}");
    let invalid = post_raw(&url, br#"{"jsonrpc":"1.0","id":1,"method":"GetTask"}"#.to_vec()).await;
    assert_eq!(invalid["error"]["code"], -32600, "{invalid}");
    let unknown = rpc(&url, "tasks/frobnicate", json!({})).await;
    assert_eq!(unknown["error"]["code"], -32601, "{unknown}");
    assert!(unknown["error"]["message"].as_str().unwrap().contains("tasks/frobnicate"));
    let no_task = rpc(&url, "GetTask", json!({"id": "exec_01JM4X8NKWP2QWERTYZXCVBNMA"})).await;
    assert_eq!(no_task["error"]["code"], -32001, "{no_task}");
    let garbage_id = rpc(&url, "tasks/get", json!({"id": "nope"})).await;
    assert_eq!(garbage_id["error"]["code"], -32001, "{garbage_id}");
    let bad = rpc(&url, "SendMessage", json!({"msg": {}})).await;
    assert_eq!(bad["error"]["code"], -32602, "{bad}");
    assert!(bad["error"]["message"].as_str().unwrap().contains("message"), "{bad}");
    // Input that does not fit the state schema: -32602 naming the key, nothing journaled.
    let wrong = json!({"message": {"messageId": "w1", "role": "ROLE_USER", "parts": [{"data": {"times": "many"}}]}});
    let refused = rpc(&url, "SendMessage", wrong).await;
    assert_eq!(refused["error"]["code"], -32602, "{refused}");
    assert!(refused["error"]["message"].as_str().unwrap().contains("times"), "{refused}");
    // A text for a workflow with no single str key: -32602 naming the workflow.
    let payment = format!("{}/a2a/payment", dev.url);
    let nostr = rpc(
        &payment,
        "SendMessage",
        json!({"message": {"messageId": "t1", "role": "ROLE_USER", "parts": [{"text": "hi"}]}}),
    )
    .await;
    assert_eq!(nostr["error"]["code"], -32602, "{nostr}");
    assert!(nostr["error"]["message"].as_str().unwrap().contains("`payment`"), "{nostr}");
    for agent in [&url, &payment] {
        let list = rpc(agent, "ListTasks", json!({})).await;
        assert_eq!(list["result"]["totalSize"], 0, "refused requests started nothing: {list}");
    }
    // A task of another agent is not found here.
    let ok = rpc(&payment, "SendMessage", json!({"message": {"messageId": "p1", "role": "ROLE_USER", "parts": [{"data": {"order_id": "x"}}]}, "configuration": {"returnImmediately": true}})).await;
    let other = ok["result"]["task"]["id"].as_str().unwrap();
    let cross = rpc(&url, "GetTask", json!({"id": other})).await;
    assert_eq!(cross["error"]["code"], -32001, "{cross}");
    // A follow-up on a task that is not waiting for that node is refused.
    let follow = json!({"message": {"messageId": "f1", "taskId": other, "role": "ROLE_USER", "parts": [{"text": "x"}], "metadata": {"node": "nowhere"}}});
    let refused = rpc(&payment, "SendMessage", follow).await;
    assert_eq!(refused["error"]["code"], -32004, "{refused}");
}

#[tokio::test]
async fn the_server_endpoint_picks_the_agent_by_skill_and_a_retried_send_starts_one_task() {
    let data = tempfile::tempdir().unwrap();
    let dev = Dev::start(data.path(), &[]);
    let url = format!("{}/a2a", dev.url);
    let message = |id: &str| json!({"message": {"messageId": id, "role": "ROLE_USER", "parts": [{"text": "Bo"}], "metadata": {"skill": "greet"}}});
    let first = rpc(&url, "SendMessage", message("same")).await;
    let again = rpc(&url, "SendMessage", message("same")).await;
    assert_eq!(first["result"]["task"]["status"]["state"], "TASK_STATE_COMPLETED", "{first}");
    assert_eq!(first["result"]["task"]["id"], again["result"]["task"]["id"], "one execution per messageId");
    let list = rpc(&format!("{}/a2a/greeter", dev.url), "ListTasks", json!({})).await;
    assert_eq!(list["result"]["totalSize"], 1, "{list}");
    let unnamed =
        rpc(&url, "SendMessage", json!({"message": {"messageId": "u", "role": "ROLE_USER", "parts": [{"text": "x"}]}}))
            .await;
    assert_eq!(unnamed["error"]["code"], -32602, "several agents: the skill must be named: {unnamed}");
    let unknown = rpc(&url, "SendMessage", json!({"message": {"messageId": "u2", "role": "ROLE_USER", "parts": [{"text": "x"}], "metadata": {"skill": "nope"}}})).await;
    assert_eq!(unknown["error"]["code"], -32602, "{unknown}");
}

#[tokio::test]
async fn a_parked_task_survives_kill_9_and_completes_after_restart() {
    let data = tempfile::tempdir().unwrap();
    let dev = Dev::start(data.path(), &[]);
    let url = format!("{}/a2a/payment", dev.url);
    let start = json!({"message": {"messageId": "k1", "contextId": "ctx-kill", "role": "ROLE_USER", "parts": [{"data": {"order_id": "k"}}]}});
    let r = rpc(&url, "SendMessage", start).await;
    let task = &r["result"]["task"];
    assert_eq!(task["status"]["state"], "TASK_STATE_INPUT_REQUIRED", "{r}");
    let id = task["id"].as_str().unwrap().to_string();
    dev.kill9();

    let dev = Dev::start(data.path(), &[]);
    let url = format!("{}/a2a/payment", dev.url);
    let got = rpc(&url, "GetTask", json!({"id": id})).await;
    assert_eq!(got["result"]["status"]["state"], "TASK_STATE_INPUT_REQUIRED", "{got}");
    assert_eq!(got["result"]["contextId"], "ctx-kill", "the context is durable");
    let follow =
        json!({"message": {"messageId": "k2", "taskId": id, "role": "ROLE_USER", "parts": [{"data": {"amount": 5}}]}});
    let done = rpc(&url, "SendMessage", follow).await;
    assert_eq!(done["result"]["task"]["status"]["state"], "TASK_STATE_COMPLETED", "{done}");
    assert_eq!(done["result"]["task"]["artifacts"][0]["parts"][0]["text"], "paid 5");
}

/// The SSE frames of a streaming JSON-RPC call, read to the end of the stream.
async fn sse_frames(url: &str, method: &str, params: Value) -> Vec<Value> {
    let body = json!({"jsonrpc": "2.0", "id": "sub", "method": method, "params": params});
    let r = http()
        .post(url)
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&body).unwrap())
        .send()
        .await
        .unwrap();
    let text = r.text().await.unwrap();
    text.lines().filter_map(|l| l.strip_prefix("data: ")).map(|d| serde_json::from_str(d).unwrap()).collect()
}

#[tokio::test]
async fn subscribe_to_a_parked_task_and_refuse_a_finished_one() {
    let data = tempfile::tempdir().unwrap();
    let dev = Dev::start(data.path(), &[]);
    let url = format!("{}/a2a/payment", dev.url);
    let start = json!({"message": {"messageId": "s1", "role": "ROLE_USER", "parts": [{"data": {"order_id": "s"}}]}});
    let r = rpc(&url, "SendMessage", start).await;
    let id = r["result"]["task"]["id"].as_str().unwrap().to_string();

    let v1 = sse_frames(&url, "SubscribeToTask", json!({"id": id})).await;
    assert_eq!(v1[0]["result"]["task"]["status"]["state"], "TASK_STATE_INPUT_REQUIRED", "{v1:?}");
    let last = &v1.last().unwrap()["result"]["statusUpdate"];
    assert_eq!(last["status"]["state"], "TASK_STATE_INPUT_REQUIRED", "the stream ends at input-required: {v1:?}");
    let v03 = sse_frames(&url, "tasks/resubscribe", json!({"id": id})).await;
    let last = &v03.last().unwrap()["result"];
    assert_eq!((last["status"]["state"].as_str(), last["final"].as_bool()), (Some("input-required"), Some(true)));

    let follow =
        json!({"message": {"messageId": "s2", "taskId": id, "role": "ROLE_USER", "parts": [{"data": {"amount": 1}}]}});
    let done = rpc(&url, "SendMessage", follow).await;
    assert_eq!(done["result"]["task"]["status"]["state"], "TASK_STATE_COMPLETED", "{done}");
    let again = json!({"message": {"messageId": "s3", "taskId": id, "role": "ROLE_USER", "parts": [{"text": "more"}]}});
    let refused = rpc(&url, "SendMessage", again).await;
    assert_eq!(refused["error"]["code"], -32004, "a finished task takes no more messages: {refused}");
    let finished = rpc(&url, "SubscribeToTask", json!({"id": id})).await;
    assert_eq!(finished["error"]["code"], -32004, "{finished}");
}
