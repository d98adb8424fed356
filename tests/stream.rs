//! Token streaming (`stream: true` on a model node), black box: the real
//! `jamjet` binary against the loopback model server, which streams its
//! replies word by word in both providers' formats.
//!
//! - SSE: `event: token`s arrive in order, before the node's record, and
//!   make the reply the journal holds once;
//! - `jamjet run --follow` prints them as they come (text and JSON lines);
//! - a `kill -9` mid-stream: `jamjet resume` sends the call again with the
//!   same Idempotency-Key, the new stream is marked `restarted`, and the
//!   journal holds the reply once.

mod support;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};
use support::dev::{DevServer, read_sse};
use support::model_server::{ModelServer, Reply, Rule};
use support::{jamjet, run_bounded, workflow_file};

const LIMIT: Duration = Duration::from_secs(60);
const KEY_VAR: &str = "JJ_STREAM_TEST_KEY";

fn workflow(server: &ModelServer, provider: &str, gate: bool) -> String {
    let base = if provider == "openai" { server.openai_base() } else { server.anthropic_base() };
    let (first, gate_node) = if gate {
        ("go", "  go: { type: wait, event: \"go:{{ state.q }}\", output_key: gate, next: ask }\n")
    } else {
        ("ask", "")
    };
    format!(
        r#"id: streamed-{provider}
start: {first}
state_schema: {{ q: str, answer: str, gate: any }}
models:
  m: {{ provider: {provider}, model: test-model, base_url: "{base}", api_key_env: {KEY_VAR} }}
nodes:
{gate_node}  ask: {{ type: model, model: m, prompt: "{{{{ state.q }}}}", output_key: answer, stream: true }}
"#
    )
}

/// The model exchanges the journal holds for `node`, from `GET .../events`.
fn exchanges(events: &Value, node: &str) -> Vec<Value> {
    events["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["event"].get("Exchange"))
        .filter(|x| x["node"] == node)
        .cloned()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_arrive_over_sse_in_order_before_the_record_and_the_journal_holds_the_reply_once() {
    for provider in ["openai", "anthropic"] {
        let model = ModelServer::start().await;
        model.script(Rule::always(Reply::stream("the sky is blue because of Rayleigh scattering", 5, None)));
        let dir = tempfile::tempdir().unwrap();
        let server = DevServer::start_env(dir.path(), &["--allow-env", KEY_VAR], &[(KEY_VAR, "k")]);
        let api = server.api();
        let (s, b) = api.register_yaml(&workflow(&model, provider, true)).await;
        assert_eq!(s, 201, "{b}");
        let (s, b) = api
            .post("/executions", &json!({"workflow_id": format!("streamed-{provider}"), "input": {"q": "why"}}))
            .await;
        assert_eq!(s, 201, "{b}");
        let id = b["id"].as_str().unwrap().to_string();
        api.poll_until(&id, LIMIT, |b| b["waiting"].as_array().is_some_and(|w| !w.is_empty())).await;

        // Follow it, then let the model node run.
        let res = api.request(Method::GET, &format!("/executions/{id}/events/stream")).send().await.unwrap();
        assert_eq!(res.status(), 200);
        let reader = tokio::spawn(read_sse(res, 200));
        let (s, b) = api.post(&format!("/executions/{id}/signal"), &json!({"key": "go:why"})).await;
        assert!(s == 200 || s == 202, "{s} {b}");
        let events = tokio::time::timeout(LIMIT, reader).await.unwrap().unwrap();

        let tokens: Vec<Value> =
            events.iter().filter(|e| e.event == "token").map(|e| serde_json::from_str(&e.data).unwrap()).collect();
        assert_eq!(tokens.len(), 8, "{provider}: one token per word: {events:?}");
        for (i, t) in tokens.iter().enumerate() {
            assert_eq!((t["n"].as_u64(), &t["node"], &t["restarted"]), (Some(i as u64), &json!("ask"), &json!(false)));
        }
        let text: String = tokens.iter().map(|t| t["text"].as_str().unwrap()).collect();
        assert_eq!(text, "the sky is blue because of Rayleigh scattering");
        let last_token = events.iter().rposition(|e| e.event == "token").unwrap();
        let completed =
            events.iter().position(|e| e.event == "NodeCompleted" && e.data.contains("\"node\":\"ask\"")).unwrap();
        assert!(last_token < completed, "{provider}: every token before the node's record: {events:?}");
        assert_eq!(events.last().unwrap().event, "end");
        assert!(events.iter().filter(|e| e.event == "token").all(|e| e.id.is_none()), "tokens are not journaled");

        let (_, x) = api.get(&format!("/executions/{id}")).await;
        assert_eq!(x["state"]["answer"], text, "{x}");
        let (_, all) = api.get(&format!("/executions/{id}/events")).await;
        let ex = exchanges(&all, "ask");
        assert_eq!(ex.len(), 1, "{provider}: the reply journaled once: {all}");
        assert_eq!(ex[0]["request"]["stream"], true);
        assert_eq!(model.requests().len(), 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_follow_prints_the_tokens_as_they_come() {
    let model = ModelServer::start().await;
    model.script(Rule::always(Reply::stream("one two three", 20, None)));
    let dir = tempfile::tempdir().unwrap();
    let file = workflow_file(dir.path(), "s.yaml", &workflow(&model, "openai", false));
    let data = dir.path().join("data");
    let run = move |json: bool| {
        let mut c = jamjet();
        c.arg("--data-dir")
            .arg(&data)
            .args(["run", &file, "--follow", "--input", r#"{"q": "count"}"#])
            .env(KEY_VAR, "k");
        if json {
            c.arg("--json");
        }
        c
    };
    let text = tokio::task::spawn_blocking(move || {
        let people = run_bounded(run(false), LIMIT, "run --follow");
        let machines = run_bounded(run(true), LIMIT, "run --follow --json");
        (people, machines)
    })
    .await
    .unwrap();
    let (people, machines) = text;
    assert!(people.output.status.success(), "{}", String::from_utf8_lossy(&people.output.stderr));
    let out = String::from_utf8_lossy(&people.output.stdout);
    assert!(out.lines().any(|l| l == "ask  > one two three"), "{out}");

    let out = String::from_utf8_lossy(&machines.output.stdout);
    let lines: Vec<Value> = out.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    let tokens: Vec<&Value> = lines.iter().filter_map(|l| l.get("token")).collect();
    assert_eq!(tokens.iter().map(|t| t["text"].as_str().unwrap()).collect::<Vec<_>>(), ["one ", "two ", "three"]);
    let first_token = lines.iter().position(|l| l.get("token").is_some()).unwrap();
    let completed = lines.iter().position(|l| l["event"].get("NodeCompleted").is_some()).unwrap();
    assert!(first_token < completed, "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_mid_stream_sends_the_call_again_marked_restarted_and_journals_the_reply_once() {
    let model = ModelServer::start().await;
    // The first call streams two words and stops there; the second streams it all.
    model.script(Rule::always(Reply::stream("alpha beta gamma delta", 0, Some(2))).times(1));
    model.script(Rule::always(Reply::stream("alpha beta gamma delta", 0, None)));
    let dir = tempfile::tempdir().unwrap();
    let file = workflow_file(dir.path(), "s.yaml", &workflow(&model, "anthropic", false));
    let data = dir.path().join("data");
    let mut child = jamjet()
        .arg("--data-dir")
        .arg(&data)
        .args(["run", &file, "--follow", "--json", "--input", r#"{"q": "letters"}"#])
        .env(KEY_VAR, "k")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Read its lines on a thread until two tokens were printed, then kill -9.
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + LIMIT;
    let mut seen = Vec::new();
    while seen.iter().filter(|l: &&String| l.contains("\"token\"")).count() < 2 {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "no two tokens within {LIMIT:?}: {seen:?}");
        match rx.recv_timeout(left) {
            Ok(line) => seen.push(line),
            Err(e) => panic!("the run's output ended ({e}): {seen:?}"),
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let first: Vec<Value> =
        seen.iter().filter_map(|l| serde_json::from_str::<Value>(l).ok()?.get("token").cloned()).collect();
    assert_eq!(first[0]["restarted"], false);

    let mut resume = jamjet();
    resume.arg("--data-dir").arg(&data).args(["resume", "--follow", "--json"]).env(KEY_VAR, "k");
    let done = tokio::task::spawn_blocking(move || run_bounded(resume, LIMIT, "resume --follow")).await.unwrap();
    assert!(done.output.status.success(), "{}", String::from_utf8_lossy(&done.output.stderr));
    let out = String::from_utf8_lossy(&done.output.stdout);
    let tokens: Vec<Value> =
        out.lines().filter_map(|l| serde_json::from_str::<Value>(l).ok()?.get("token").cloned()).collect();
    assert_eq!(tokens.len(), 4, "the stream starts over: {out}");
    assert!(tokens.iter().all(|t| t["restarted"] == true), "marked as a restart: {out}");
    assert_eq!(tokens.iter().map(|t| t["text"].as_str().unwrap()).collect::<String>(), "alpha beta gamma delta");

    let requests = model.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].idempotency_key(), requests[1].idempotency_key(), "the same call, sent again");
    let id: jamjet::ExecutionId = requests[0].idempotency_key().unwrap().split('/').next().unwrap().parse().unwrap();
    let rt = jamjet::Runtime::builder().data_dir(&data).resume_on_open(false).timers(false).open().await.unwrap();
    let records = rt.events(id).unwrap();
    let exchanges =
        records.iter().filter(|r| matches!(&r.event, jamjet::journal::Event::Exchange { node, .. } if node == "ask"));
    assert_eq!(exchanges.count(), 1, "the reply journaled once: {records:#?}");
    let state = rt.status(id).unwrap();
    assert_eq!(state.status, jamjet::journal::Status::Completed);
    rt.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_a2a_streaming_client_gets_the_reply_as_artifact_updates_while_it_is_written() {
    let model = ModelServer::start().await;
    model.script(Rule::always(Reply::stream("streamed over A2A", 5, None)));
    let dir = tempfile::tempdir().unwrap();
    let workflows = dir.path().join("workflows");
    std::fs::create_dir_all(&workflows).unwrap();
    let yaml = format!(
        r#"id: teller
version: 0.1.0
state_schema: {{ q: str, answer: str }}
a2a: {{ skill: tell, description: Answers as it writes, input_key: q }}
models:
  m: {{ provider: openai, model: test-model, base_url: "${{JJ_STREAM_BASE}}", api_key_env: {KEY_VAR} }}
nodes:
  ask: {{ type: model, model: m, prompt: "{{{{ state.q }}}}", output_key: answer, stream: true }}
"#
    );
    std::fs::write(workflows.join("teller.yaml"), yaml).unwrap();
    let server = DevServer::start_env(
        &dir.path().join("data"),
        &["--workflows", workflows.to_str().unwrap()],
        &[(KEY_VAR, "k"), ("JJ_STREAM_BASE", &model.openai_base())],
    );
    let body = json!({"jsonrpc": "2.0", "id": "s", "method": "message/stream",
        "params": {"message": {"kind": "message", "messageId": "m-1", "role": "user", "parts": [{"kind": "text", "text": "tell"}]}}});
    let res = reqwest::Client::new()
        .post(format!("{}/a2a/teller", server.url))
        .json(&body)
        .timeout(LIMIT)
        .send()
        .await
        .unwrap();
    assert!(res.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    let text = res.text().await.unwrap();
    let frames: Vec<Value> =
        text.lines().filter_map(|l| l.strip_prefix("data: ")).map(|d| serde_json::from_str(d).unwrap()).collect();
    let pieces: Vec<&Value> = frames
        .iter()
        .map(|f| &f["result"])
        .filter(|r| r["kind"] == "artifact-update" && r["artifact"]["name"] == "stream")
        .collect();
    assert_eq!(pieces.len(), 3, "one update per word: {text}");
    let said: String = pieces.iter().map(|p| p["artifact"]["parts"][0]["text"].as_str().unwrap()).collect();
    assert_eq!(said, "streamed over A2A");
    assert_eq!(pieces.iter().map(|p| p["append"].as_bool().unwrap()).collect::<Vec<_>>(), [false, true, true]);
    assert!(pieces.iter().all(|p| p["artifact"]["artifactId"] == pieces[0]["artifact"]["artifactId"]), "{text}");
    assert_eq!(pieces[2]["metadata"]["jamjet.token"]["n"], 2);
    let last = &frames.last().unwrap()["result"];
    assert_eq!((last["status"]["state"].as_str(), last["final"].as_bool()), (Some("completed"), Some(true)), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_with_stream_true_streams_its_replies() {
    let model = ModelServer::start().await;
    model.script(Rule::always(Reply::stream("an agent writes this", 0, None)));
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        r#"id: streamed-agent
state_schema: {{ q: str, answer: str }}
models:
  m: {{ provider: openai, model: test-model, base_url: "{base}", api_key_env: {KEY_VAR} }}
agents:
  writer: {{ model: m, instructions: "Write.", stream: true }}
nodes:
  write: {{ type: agent, agent: writer, message: "{{{{ state.q }}}}", output_key: answer }}
"#,
        base = model.openai_base()
    );
    let file = workflow_file(dir.path(), "a.yaml", &yaml);
    let mut c = jamjet();
    c.arg("--data-dir").arg(dir.path().join("data")).args([
        "run",
        &file,
        "--follow",
        "--json",
        "--input",
        r#"{"q": "go"}"#,
    ]);
    c.env(KEY_VAR, "k");
    let done = tokio::task::spawn_blocking(move || run_bounded(c, LIMIT, "run --follow of an agent")).await.unwrap();
    assert!(done.output.status.success(), "{}", String::from_utf8_lossy(&done.output.stderr));
    let out = String::from_utf8_lossy(&done.output.stdout);
    let tokens: Vec<Value> =
        out.lines().filter_map(|l| serde_json::from_str::<Value>(l).ok()?.get("token").cloned()).collect();
    assert_eq!(tokens.iter().map(|t| t["text"].as_str().unwrap()).collect::<String>(), "an agent writes this", "{out}");
    assert!(tokens.iter().all(|t| t["node"] == "write"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fan_out_of_streaming_nodes_streams_every_branch_to_the_root_s_followers() {
    let model = ModelServer::start().await;
    model.script(Rule::contains("left", Reply::stream("left one two", 15, None)));
    model.script(Rule::contains("right", Reply::stream("right three four", 15, None)));
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        r#"id: fan-stream
state_schema: {{ l: str, r: str }}
models:
  m: {{ provider: openai, model: test-model, base_url: "{}", api_key_env: {KEY_VAR} }}
nodes:
  split: {{ type: parallel, branches: [left, right], merge: keys, join: done }}
  left: {{ type: model, model: m, prompt: "say left", output_key: l, stream: true, next: done }}
  right: {{ type: model, model: m, prompt: "say right", output_key: r, stream: true, next: done }}
  done: {{ type: end }}
"#,
        model.openai_base()
    );
    let file = workflow_file(dir.path(), "fan.yaml", &yaml);
    let data = dir.path().join("data");
    let run = move |json: bool| {
        let mut c = jamjet();
        c.arg("--data-dir").arg(&data).args(["run", &file, "--follow"]).env(KEY_VAR, "k");
        if json {
            c.arg("--json");
        }
        c
    };
    let (people, machines) = tokio::task::spawn_blocking(move || {
        (run_bounded(run(false), LIMIT, "run --follow"), run_bounded(run(true), LIMIT, "run --follow --json"))
    })
    .await
    .unwrap();
    assert!(people.output.status.success(), "{}", String::from_utf8_lossy(&people.output.stderr));
    // Each branch's text on lines of its own, named by the branch, whatever the interleaving.
    let out = String::from_utf8_lossy(&people.output.stdout);
    for (branch, node, text) in [(0, "left", "left one two"), (1, "right", "right three four")] {
        let prefix = format!("split branch {branch} / {node}  > ");
        let said: String = out.lines().filter_map(|l| l.strip_prefix(&prefix)).collect();
        assert_eq!(said, text, "{out}");
    }
    let out = String::from_utf8_lossy(&machines.output.stdout);
    let tokens: Vec<Value> = out
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|l| l.get("token").cloned())
        .collect();
    for (branch, node, text) in [(0, "left", "left one two"), (1, "right", "right three four")] {
        let mine: Vec<&Value> = tokens.iter().filter(|t| t["node"] == node).collect();
        assert!(mine.iter().all(|t| t["inside"]["branch"] == branch && t["inside"]["parent_node"] == "split"), "{out}");
        assert!(
            mine.iter().all(|t| t["inside"]["execution"].as_str().is_some_and(|e| e.starts_with("exec_"))),
            "{out}"
        );
        let said: String = mine.iter().map(|t| t["text"].as_str().unwrap()).collect();
        assert_eq!(said, text, "in order: {out}");
    }
}
