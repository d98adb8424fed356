//! Sessions, black-box: the real `jamjet dev` and `jamjet run` binaries,
//! a scripted loopback model server whose replies depend on the
//! conversation the request carries (`Rule::earlier`: an earlier message
//! holds an earlier answer), and real `kill -9`s.
//!
//! - three messages in one A2A `contextId` to a served local agent, each
//!   answer depending on the ones before, across a `kill -9` of the server
//!   between the second and the third;
//! - two messages racing on one context: both answered, one after the
//!   other, the second seeing the first's turn;
//! - `jamjet run --session` carrying `session_state` from task to task,
//!   `jamjet sessions [show] --json`;
//! - expiry after a tiny `--session-idle`, `GET /sessions/{id}`;
//! - hostile and unknown session ids, a session busy with a parked task,
//!   a session of another workflow: clear errors, nothing started.

mod support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::dev::{Api, DevServer};
use support::model_server::{ModelServer, Reply, Rule};
use support::{jamjet, jamjet_json, workflow_file};

const KEY_VAR: &str = "JJ_TEST_SESSIONS_KEY";
const SECRET: &str = "sk-test-sessions";
/// The served agent's path.
const AGENT: &str = "/a2a/notes.scribe";

/// A workflow whose agent `scribe` (react, no tools) is served over A2A.
fn notes(models: &ModelServer) -> String {
    format!(
        r#"
id: notes
version: 1.0.0
state_schema: {{ question: str, reply: str }}
models:
  fast: {{ provider: openai, model: test-gpt, base_url: "{base}", api_key_env: {KEY_VAR} }}
agents:
  scribe:
    model: fast
    instructions: "You keep notes of the conversation."
    max_iterations: 2
nodes:
  ask: {{ type: agent, agent: scribe, message: "{{{{ state.question }}}}", output_key: reply }}
"#,
        base = models.openai_base()
    )
}

/// Replies that depend on the conversation so far: the third needs the
/// second answer earlier in the request, the second needs the first.
fn script(models: &ModelServer) {
    models.script(Rule::earlier("[A2]", Reply::text("You are Ada and you like tea [A3]")));
    models.script(Rule::earlier("[A1]", Reply::text("Noted that Ada likes tea [A2]")));
    models.script(Rule::always(Reply::text("Hello Ada [A1]")));
}

struct Setup {
    models: ModelServer,
    flows: tempfile::TempDir,
    data: tempfile::TempDir,
}

impl Setup {
    async fn new() -> Setup {
        let models = ModelServer::start().await;
        script(&models);
        let flows = tempfile::tempdir().unwrap();
        std::fs::write(flows.path().join("notes.yaml"), notes(&models)).unwrap();
        Setup { models, flows, data: tempfile::tempdir().unwrap() }
    }

    fn dev(&self, extra: &[&str]) -> DevServer {
        let flows = self.flows.path().to_str().unwrap();
        let mut args = vec!["--allow-env", KEY_VAR, "--workflows", flows];
        args.extend(extra);
        DevServer::start_env(self.data.path(), &args, &[(KEY_VAR, SECRET)])
    }
}

/// A blocking call off the runtime's workers, so the loopback servers on
/// them go on answering.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

/// `SendMessage` with a text part in `context` to `url`; the JSON-RPC answer.
async fn send(api: &Api, context: &str, message_id: &str, text: &str) -> Value {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "SendMessage", "params": {"message": {
        "messageId": message_id, "contextId": context, "role": "ROLE_USER", "parts": [{"text": text}]}}});
    let r = api
        .request(reqwest::Method::POST, AGENT)
        .header("content-type", "application/json")
        .header("A2A-Version", "1.0")
        .body(serde_json::to_vec(&body).unwrap());
    let (status, answer) = api.send(r).await;
    assert_eq!(status, 200, "{answer}");
    answer
}

/// The answer text of a completed task.
fn answer_of(r: &Value) -> String {
    let task = &r["result"]["task"];
    assert_eq!(task["status"]["state"], "TASK_STATE_COMPLETED", "{r}");
    task["artifacts"][0]["parts"][0]["text"].as_str().unwrap_or_else(|| panic!("no text answer: {r}")).to_string()
}

/// The chat messages (the system prompt left out) of the model request
/// whose last user message is `asked`.
fn request_asking(models: &ModelServer, asked: &str) -> Vec<(String, String)> {
    let all = models.requests();
    let r = all.iter().rev().find(|r| r.last_user == asked).unwrap_or_else(|| panic!("no request asked {asked:?}"));
    r.body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] != "system")
        .map(|m| (m["role"].as_str().unwrap().to_string(), m["content"].as_str().unwrap_or_default().to_string()))
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter().map(|(r, c)| (r.to_string(), c.to_string())).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_messages_in_one_context_carry_the_conversation_across_a_kill_9() {
    let s = Setup::new().await;
    let mut dev = s.dev(&[]);
    let api = dev.api();
    let first = answer_of(&send(&api, "ctx-ada", "m1", "I am Ada.").await);
    assert_eq!(first, "Hello Ada [A1]");
    let second = answer_of(&send(&api, "ctx-ada", "m2", "I like tea.").await);
    assert_eq!(second, "Noted that Ada likes tea [A2]", "the second answer saw the first");
    // The second task's model request carried the first turn ahead of its message.
    let expected = pairs(&[("user", "I am Ada."), ("assistant", "Hello Ada [A1]"), ("user", "I like tea.")]);
    assert_eq!(request_asking(&s.models, "I like tea."), expected);
    dev.kill9();

    // The session is durable: the next message in the context goes on from it.
    let dev = s.dev(&[]);
    let api = dev.api();
    let third = answer_of(&send(&api, "ctx-ada", "m3", "Who am I?").await);
    assert_eq!(third, "You are Ada and you like tea [A3]");
    let expected = pairs(&[
        ("user", "I am Ada."),
        ("assistant", "Hello Ada [A1]"),
        ("user", "I like tea."),
        ("assistant", "Noted that Ada likes tea [A2]"),
        ("user", "Who am I?"),
    ]);
    assert_eq!(request_asking(&s.models, "Who am I?"), expected);

    // Listed and inspected over REST.
    let (status, one) = api.get("/sessions/ctx-ada").await;
    assert_eq!(status, 200, "{one}");
    assert_eq!(one["workflow_id"], "notes.scribe");
    assert_eq!(one["running"], Value::Null);
    let tasks = one["tasks"].as_array().unwrap();
    let turns: Vec<(&str, &str)> =
        tasks.iter().map(|t| (t["message"].as_str().unwrap(), t["answer"].as_str().unwrap())).collect();
    assert_eq!(
        turns,
        [
            ("I am Ada.", "Hello Ada [A1]"),
            ("I like tea.", "Noted that Ada likes tea [A2]"),
            ("Who am I?", "You are Ada and you like tea [A3]")
        ]
    );
    let (status, list) = api.get("/sessions").await;
    assert_eq!(status, 200, "{list}");
    let ids: Vec<&str> = list["sessions"].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["ctx-ada"]);
    // A retried message (same id) is the same task: nothing runs again.
    let calls = s.models.requests().len();
    let again = answer_of(&send(&api, "ctx-ada", "m3", "Who am I?").await);
    assert_eq!(again, third);
    assert_eq!(s.models.requests().len(), calls, "a retry calls no model");
    // What the third task saw is in its own journal.
    let id = tasks[2]["execution"].as_str().unwrap().to_string();
    let (_, events) = api.get(&format!("/executions/{id}/events")).await;
    let joined = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|r| r["event"].get("SessionJoined"))
        .unwrap_or_else(|| panic!("no SessionJoined: {events}"))
        .clone();
    assert_eq!(joined["session"], "ctx-ada");
    assert_eq!(joined["turn"], 3);
    assert_eq!(joined["history"].as_array().unwrap().len(), 2, "{joined}");
}

/// The same conversation through the official Python a2a-sdk client (a
/// process per message), across a `kill -9` between the second and third.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_sdk_holds_a_conversation_in_one_context_across_a_kill_9() {
    let s = Setup::new().await;
    let mut dev = s.dev(&[]);
    let say = |dev: &DevServer, text: &str| {
        let (base, arg) = (format!("{}{AGENT}", dev.url), format!("ctx-sdk|{text}"));
        blocking(move || support::a2a_py::sdk_client(&base, "say", &arg))
    };
    let answer = |lines: &[Value]| {
        let task = &support::a2a_py::step(lines, "said")["task"];
        assert_eq!(task["status"]["state"], "TASK_STATE_COMPLETED", "{task}");
        assert_eq!(task["contextId"], "ctx-sdk");
        task["artifacts"][0]["parts"][0]["text"].as_str().unwrap().to_string()
    };
    let Some(first) = say(&dev, "I am Ada.").await else { return };
    assert_eq!(answer(&first), "Hello Ada [A1]");
    let second = say(&dev, "I like tea.").await.unwrap();
    assert_eq!(answer(&second), "Noted that Ada likes tea [A2]");
    dev.kill9();
    let dev = s.dev(&[]);
    let third = say(&dev, "Who am I?").await.unwrap();
    assert_eq!(answer(&third), "You are Ada and you like tea [A3]");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_messages_racing_on_one_context_are_both_answered_one_after_the_other() {
    let s = Setup::new().await;
    // The first model call is slow, so the second message comes while the first task runs.
    let models = ModelServer::start().await;
    models.script(Rule::earlier("[A1]", Reply::text("second, after the first [A2]")));
    models.script(Rule::always(Reply::delay(400, Reply::text("first [A1]"))));
    std::fs::write(s.flows.path().join("notes.yaml"), notes(&models)).unwrap();
    let dev = s.dev(&[]);
    let api = dev.api();
    let (a, b) = tokio::join!(send(&api, "ctx-race", "r1", "one"), send(&api, "ctx-race", "r2", "two"));
    let mut answers = [answer_of(&a), answer_of(&b)];
    answers.sort();
    assert_eq!(answers, ["first [A1]", "second, after the first [A2]"], "both answered, the second saw the first");
    let (status, one) = api.get("/sessions/ctx-race").await;
    assert_eq!(status, 200, "{one}");
    let tasks = one["tasks"].as_array().unwrap();
    assert_eq!(tasks.len(), 2, "{one}");
    assert_eq!(tasks[0]["answer"], "first [A1]");
    assert_eq!(tasks[1]["answer"], "second, after the first [A2]");
    // The second task started once the first had ended.
    let times = |id: &Value| {
        let api = api.clone();
        let id = id.as_str().unwrap().to_string();
        async move {
            let (_, x) = api.get(&format!("/executions/{id}")).await;
            (x["created_ms"].as_u64().unwrap(), x["updated_ms"].as_u64().unwrap())
        }
    };
    let (_, first_end) = times(&tasks[0]["execution"]).await;
    let (second_start, _) = times(&tasks[1]["execution"]).await;
    assert!(second_start >= first_end, "serialised: {second_start} >= {first_end}");
    assert_eq!(models.requests().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_waits_a_bounded_time_for_a_task_still_running_then_is_refused_naming_it() {
    let s = Setup::new().await;
    // The first task's model call never answers: the task runs on.
    let models = ModelServer::start().await;
    models.script(Rule::always(Reply::Hold));
    std::fs::write(s.flows.path().join("notes.yaml"), notes(&models)).unwrap();
    let dev = s.dev(&["--session-wait", "300ms"]);
    let api = dev.api();
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "SendMessage", "params": {
        "message": {"messageId": "h1", "contextId": "ctx-hold", "role": "ROLE_USER", "parts": [{"text": "hold on"}]},
        "configuration": {"returnImmediately": true}}});
    let r = api
        .request(reqwest::Method::POST, AGENT)
        .header("content-type", "application/json")
        .header("A2A-Version", "1.0")
        .body(serde_json::to_vec(&body).unwrap());
    let (_, first) = api.send(r).await;
    let running = first["result"]["task"]["id"].as_str().unwrap_or_else(|| panic!("{first}")).to_string();
    assert!(models.wait_for_requests(1, Duration::from_secs(30)).await, "the first task calls its model");
    let second = send(&api, "ctx-hold", "h2", "are you there?").await;
    assert_eq!(second["error"]["code"], -32004, "{second}");
    let message = second["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("session `ctx-hold`")
            && message.contains(&running)
            && message.contains("still running after 300 ms"),
        "{message}"
    );
    let (_, one) = api.get("/sessions/ctx-hold").await;
    assert_eq!(one["executions"], json!([running]), "nothing more started: {one}");
    assert_eq!(one["running"], running.as_str());
    assert_eq!(one["expires_ms"], Value::Null, "a session whose task runs does not expire");
}

const COUNTER: &str = r#"
id: counter
state_schema: { add: int, total: { type: int, default: 0 }, note: { type: str, default: "" } }
session_state: [total]
nodes:
  sum: { type: set, values: { total: "{{ state.total + state.add }}", note: "added {{ state.add }}" } }
"#;

#[test]
fn run_with_a_session_carries_its_session_state_from_task_to_task() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let file = workflow_file(dir.path(), "counter.yaml", COUNTER);
    let run = |input: &str, session: &str| {
        jamjet_json(&data, &["run", &file, "--input", input, "--session", session, "--json"])
    };
    assert_eq!(run(r#"{"add": 2}"#, "tally")["state"]["total"], 2);
    let second = run(r#"{"add": 3}"#, "tally");
    assert_eq!(second["state"]["total"], 5, "total carried on: {second}");
    assert_eq!(second["state"]["note"], "added 3", "only `session_state` is carried");
    // Another session starts from its own input.
    assert_eq!(run(r#"{"add": 7}"#, "other")["state"]["total"], 7);
    // The input wins over the carried value for a key it sets.
    assert_eq!(run(r#"{"add": 1, "total": 100}"#, "tally")["state"]["total"], 101);
    assert_eq!(run(r#"{"add": 1}"#, "tally")["state"]["total"], 102);

    let list = jamjet_json(&data, &["sessions", "--json"]);
    let rows: Vec<(&str, usize)> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["id"].as_str().unwrap(), s["executions"].as_array().unwrap().len()))
        .collect();
    assert_eq!(rows, [("other", 1), ("tally", 4)]);
    let shown = jamjet_json(&data, &["sessions", "show", "tally", "--json"]);
    assert_eq!(shown["workflow_id"], "counter");
    assert_eq!(shown["state"], json!({"total": 102}), "{shown}");
    assert_eq!(shown["tasks"].as_array().unwrap().len(), 4);
    assert_eq!(shown["tasks"][1]["message"], r#"{"add":3}"#);
    // inspect shows what the task carried.
    let last = shown["executions"][3].as_str().unwrap();
    let inspected = jamjet_json(&data, &["inspect", last, "--json"]);
    assert_eq!(inspected["session"]["session"], "tally", "{inspected}");
    assert_eq!(inspected["session"]["turn"], 4);
    assert_eq!(inspected["session"]["carried"], json!({"total": 101}));
    let text = jamjet().arg("--data-dir").arg(&data).args(["inspect", last]).output().unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("session    tally (task 4"), "{text}");

    // Hostile ids: refused before anything is opened or started.
    for bad in ["", "a\u{1}b"] {
        let out = jamjet().arg("--data-dir").arg(&data).args(["run", &file, "--session", bad]).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("bad session id"), "{out:?}");
        let out = jamjet().arg("--data-dir").arg(&data).args(["sessions", "show", bad]).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{out:?}");
    }
    let out = jamjet().arg("--data-dir").arg(&data).args(["sessions", "show", "nobody"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no session `nobody`"), "{out:?}");
    // A session of another workflow.
    let other = workflow_file(dir.path(), "other.yaml", &COUNTER.replace("id: counter", "id: other_counter"));
    let out = jamjet()
        .arg("--data-dir")
        .arg(&data)
        .args(["run", &other, "--input", r#"{"add": 1}"#, "--session", "tally"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("session `tally` runs workflow `counter`, not `other_counter`"), "{err}");
    assert_eq!(jamjet_json(&data, &["sessions", "show", "tally", "--json"])["tasks"].as_array().unwrap().len(), 4);
}

/// `GET /sessions/{id}` until `done(status)` holds, at most `limit`.
async fn poll_session(api: &Api, id: &str, limit: Duration, done: impl Fn(u16) -> bool) -> Value {
    let began = Instant::now();
    loop {
        let (status, body) = api.get(&format!("/sessions/{id}")).await;
        if done(status) {
            return body;
        }
        assert!(began.elapsed() < limit, "session {id} did not get there within {limit:?}: {status} {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_session_expires_and_its_id_starts_a_new_one() {
    let data = tempfile::tempdir().unwrap();
    // Idle long enough that reading the session right after a task is never
    // late on a loaded machine, short enough to wait out.
    let dev = DevServer::start(data.path(), &["--session-idle", "5s"]);
    let api = dev.api();
    let (status, body) = api.register_yaml(COUNTER).await;
    assert_eq!(status, 201, "{body}");
    let submit = |add: i64| {
        let api = api.clone();
        async move {
            let (status, body) = api
                .post("/executions", &json!({"workflow_id": "counter", "input": {"add": add}, "session": "brief"}))
                .await;
            assert_eq!(status, 201, "{body}");
            let id = body["id"].as_str().unwrap().to_string();
            api.poll_until(&id, Duration::from_secs(30), |x| x["status"] == "completed").await
        }
    };
    assert_eq!(submit(4).await["state"]["total"], 4);
    let alive = poll_session(&api, "brief", Duration::from_secs(10), |s| s == 200).await;
    assert_eq!(alive["executions"].as_array().unwrap().len(), 1);
    assert!(alive["expires_ms"].as_u64().is_some(), "{alive}");
    // Idle past 5 s: swept away.
    let gone = poll_session(&api, "brief", Duration::from_secs(30), |s| s == 404).await;
    assert_eq!(gone["error"]["code"], "unknown_session", "{gone}");
    let (_, list) = api.get("/sessions").await;
    assert_eq!(list["sessions"], json!([]));
    // The same id now starts a new session: nothing is carried.
    assert_eq!(submit(5).await["state"]["total"], 5);
    let fresh = poll_session(&api, "brief", Duration::from_secs(10), |s| s == 200).await;
    assert_eq!(fresh["executions"].as_array().unwrap().len(), 1, "{fresh}");
}

const PARKED: &str = r#"
id: parked
state_schema: { q: str, got: any }
a2a: { skill: parked, description: "waits for a go", input_key: q }
nodes:
  hold: { type: wait, event: "go:{{ state.q }}", output_key: got }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_unknown_and_busy_sessions_get_clear_errors_and_start_nothing() {
    let data = tempfile::tempdir().unwrap();
    let mut dev = DevServer::start(data.path(), &["--session-wait", "2s"]);
    let api = dev.api();
    assert_eq!(api.register_yaml(COUNTER).await.0, 201);
    assert_eq!(api.register_yaml(PARKED).await.0, 201);
    let count = || async {
        let (_, list) = api.get("/executions").await;
        list["executions"].as_array().unwrap().len()
    };
    // Unknown, malformed and oversized ids.
    let (status, body) = api.get("/sessions/nobody").await;
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("unknown_session")), "{body}");
    let (status, body) = api.get("/sessions/a%01b").await;
    assert_eq!(status, 400, "{body}");
    let long = "x".repeat(600);
    let (status, body) = api.get(&format!("/sessions/{long}")).await;
    assert_eq!(status, 400, "{body}");
    for bad in [json!(""), json!(" "), json!("a\u{0}b"), json!(long)] {
        let (status, body) =
            api.post("/executions", &json!({"workflow_id": "counter", "input": {"add": 1}, "session": bad})).await;
        assert_eq!((status, body["error"]["code"].as_str()), (400, Some("invalid_session")), "{body}");
    }
    let (status, body) =
        api.post("/executions", &json!({"workflow_id": "counter", "input": {"add": 1}, "session": 5})).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(count().await, 0, "nothing started");

    // A task parked on an event blocks its session: the next message is refused, naming it.
    let (status, body) =
        api.post("/executions", &json!({"workflow_id": "parked", "input": {"q": "a"}, "session": "held"})).await;
    assert_eq!(status, 201, "{body}");
    let parked = body["id"].as_str().unwrap().to_string();
    api.poll_until(&parked, Duration::from_secs(30), |x| x["status"] == "waiting").await;
    let (status, body) =
        api.post("/executions", &json!({"workflow_id": "parked", "input": {"q": "b"}, "session": "held"})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("session_busy")), "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("session `held`") && message.contains(&parked) && message.contains("waits for input"));
    assert_eq!(body["error"]["details"]["running"], parked.as_str());
    // The same over A2A, for the context.
    let rpc = json!({"jsonrpc": "2.0", "id": 2, "method": "message/send", "params": {"message": {
        "kind": "message", "messageId": "p2", "contextId": "held", "role": "user", "parts": [{"kind": "text", "text": "b"}]}}});
    let (_, answer) = api.post("/a2a/parked", &rpc).await;
    assert_eq!(answer["error"]["code"], -32004, "{answer}");
    assert!(answer["error"]["message"].as_str().unwrap().contains(&parked), "{answer}");
    // Another workflow in the session: refused.
    let (status, body) =
        api.post("/executions", &json!({"workflow_id": "counter", "input": {"add": 1}, "session": "held"})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("session_workflow")), "{body}");
    assert_eq!(count().await, 1, "nothing more started");
    let (_, one) = api.get("/sessions/held").await;
    assert_eq!(one["running"], parked.as_str(), "{one}");

    // `jamjet sessions` on the data dir goes through the server holding it.
    let dir = data.path().to_path_buf();
    let list = blocking(move || jamjet_json(&dir, &["sessions", "--json"])).await;
    assert_eq!(list[0]["id"], "held", "{list}");
    assert_eq!(list[0]["running"], parked.as_str());

    // Durable: after a kill -9 the parked task still blocks its session.
    dev.kill9();
    let mut dev = DevServer::start(data.path(), &["--session-wait", "2s"]);
    let api = dev.api();
    let (status, body) =
        api.post("/executions", &json!({"workflow_id": "parked", "input": {"q": "b"}, "session": "held"})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("session_busy")), "{body}");
    // Once it is answered and ends, the next message goes on from it.
    let (status, body) = api.post(&format!("/executions/{parked}/signal"), &json!({"key": "go:a", "payload": 1})).await;
    assert_eq!(status, 202, "{body}");
    api.poll_until(&parked, Duration::from_secs(30), |x| x["status"] == "completed").await;
    let (status, body) =
        api.post("/executions", &json!({"workflow_id": "parked", "input": {"q": "b"}, "session": "held"})).await;
    assert_eq!(status, 201, "{body}");
    let (_, one) = api.get("/sessions/held").await;
    assert_eq!(one["executions"].as_array().unwrap().len(), 2, "{one}");
    assert_eq!(one["tasks"][0]["answer"], r#"{"got":1,"q":"a"}"#, "{one}");

    // `jamjet run --session` through the holder's socket, and through `--server`.
    let flows = tempfile::tempdir().unwrap();
    let file = workflow_file(flows.path(), "counter.yaml", COUNTER);
    let (dir, url) = (data.path().to_path_buf(), dev.url.clone());
    let (held, served) = blocking(move || {
        let run = |extra: &[&str]| {
            let mut args = vec!["run", file.as_str(), "--input", r#"{"add": 2}"#, "--session", "cli", "--json"];
            args.extend(extra);
            jamjet_json(&dir, &args)
        };
        (run(&[]), run(&["--server", &url]))
    })
    .await;
    assert_eq!(held["state"]["total"], 2, "{held}");
    assert_eq!(served["state"]["total"], 4, "carried on through the server: {served}");
    dev.stop();
}

/// The embedding API on an in-memory journal and a clock the test moves:
/// `submit_in_session` / `run_in_session`, `sessions`, `session`, expiry by
/// `expire_sessions`, and a failed task that carries nothing on.
#[tokio::test]
async fn the_embedding_api_runs_tasks_of_a_session_and_expires_it_by_the_clock() {
    use jamjet::Runtime;
    use jamjet::clock::ManualClock;
    use jamjet::runtime::Error;

    let clock = ManualClock::new(1_800_000_000_000);
    let rt = Runtime::builder()
        .in_memory()
        .clock(clock.clone())
        .timers(false)
        .session_idle(Duration::from_secs(60))
        .function("maybe_fail", |call: jamjet::nodes::FunctionCall| async move {
            if call.input.get("add") == Some(&json!(13)) {
                Err(jamjet::nodes::FunctionError::new("unlucky"))
            } else {
                Ok(json!({}))
            }
        })
        .open()
        .await
        .unwrap();
    let yaml = COUNTER.replace("nodes:\n", "nodes:\n  check: { type: function, function: maybe_fail, next: sum }\n");
    let wf = jamjet::compile_str(&yaml, "counter.yaml").unwrap();
    assert_eq!(wf.session_state, ["total"]);
    let out = rt.run_in_session(&wf, json!({"add": 2}), "s").await.unwrap();
    assert_eq!(out.state["total"], 2);
    let failed = rt.run_in_session(&wf, json!({"add": 13}), "s").await.unwrap();
    assert_eq!(failed.status, jamjet::Status::Failed);
    // The failed task carries nothing on: the one before it does.
    let out = rt.run_in_session(&wf, json!({"add": 3}), "s").await.unwrap();
    assert_eq!(out.state["total"], 5);
    let (id, started) = rt.submit_in_session(&wf, json!({"add": 1}), "s", Some("k")).await.unwrap();
    assert!(started);
    assert_eq!(rt.submit_in_session(&wf, json!({"add": 1}), "s", Some("k")).await.unwrap(), (id, false));
    assert_eq!(rt.wait(id).await.unwrap().state["total"], 6);

    let listed = rt.sessions().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].executions.len(), 4);
    let detail = rt.session("s").unwrap();
    assert_eq!(detail.state, json!({"total": 6}).as_object().unwrap().clone());
    assert_eq!(detail.tasks[1].status, jamjet::Status::Failed);
    assert_eq!(detail.tasks[1].answer, None);

    // Idle for less than the idle time: kept; past it: gone, and the id starts anew.
    clock.advance(59_000);
    assert_eq!(rt.expire_sessions().await.unwrap(), 0);
    clock.advance(2_000);
    assert!(matches!(rt.session("s"), Err(Error::UnknownSession(_))));
    assert_eq!(rt.expire_sessions().await.unwrap(), 1);
    assert_eq!(rt.sessions().unwrap(), []);
    let out = rt.run_in_session(&wf, json!({"add": 4}), "s").await.unwrap();
    assert_eq!(out.state["total"], 4, "a new session carries nothing");
    assert!(matches!(rt.run_in_session(&wf, json!({"add": 4}), "").await, Err(Error::InvalidSession(_))));
}

/// A model node in a session: its system prompt, then the conversation so
/// far (for a workflow without `a2a:`: each task's input and final state as
/// JSON), then its own prompt.
#[test]
fn a_model_node_in_a_session_is_given_the_earlier_turns_after_its_system_prompt() {
    let models = ModelServer::start_blocking();
    models.script(Rule::earlier("[M1]", Reply::text("again [M2]")));
    models.script(Rule::always(Reply::text("once [M1]")));
    let yaml = format!(
        r#"
id: asker
state_schema: {{ q: str, a: str }}
models:
  fast: {{ provider: openai, model: test-gpt, base_url: "{base}", api_key_env: {KEY_VAR} }}
nodes:
  ask: {{ type: model, model: fast, system: "Be brief.", prompt: "{{{{ state.q }}}}", output_key: a }}
"#,
        base = models.openai_base()
    );
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let file = workflow_file(dir.path(), "asker.yaml", &yaml);
    let run = |q: &str| {
        let input = json!({ "q": q }).to_string();
        support::jamjet_json_with(
            &data,
            &[(KEY_VAR, SECRET)],
            &["run", &file, "--input", &input, "--session", "m", "--json"],
        )
    };
    assert_eq!(run("one")["state"]["a"], "once [M1]");
    assert_eq!(run("two")["state"]["a"], "again [M2]", "the second call saw the first turn");
    let second = models.requests().pop().unwrap();
    let messages: Vec<(String, String)> = second.body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["role"].as_str().unwrap().to_string(), m["content"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(
        messages,
        pairs(&[
            ("system", "Be brief."),
            ("user", r#"{"q":"one"}"#),
            ("assistant", r#"{"a":"once [M1]","q":"one"}"#),
            ("user", "two")
        ])
    );
    // Without a session, no history.
    let out = support::jamjet_json_with(
        &data,
        &[(KEY_VAR, SECRET)],
        &["run", &file, "--input", r#"{"q": "three"}"#, "--json"],
    );
    assert_eq!(out["state"]["a"], "once [M1]");
}
