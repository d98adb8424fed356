//! A remote A2A agent as a local agent's tool: the callee is a real
//! `jamjet dev` serving workflows over A2A on 127.0.0.1:0, the caller's
//! model the scripted loopback server. The model calls the remote agent,
//! the remote runs its own workflow, the answer reaches the model's next
//! request and the call is journaled as a `tool` call; a remote task that
//! fails is told to the model; a call waits for approval like any tool
//! call; an unreachable remote fails the node; a `${VAR}` URL; and `kill -9` of the
//! caller after the call is durable, and during it: after `jamjet resume`
//! the remote holds one task, never two.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use jamjet::journal::{CallRecord, Event, Status};
use jamjet::model::KeySource;
use jamjet::{Decision, Outcome, Runtime, ir};
use serde_json::{Value, json};
use support::dev::DevServer;
use support::model_server::{ModelServer, Reply, Rule};

const LIMIT: Duration = Duration::from_secs(60);
const KEY_VAR: &str = "JJ_TEST_REMOTE_TOOL_KEY";
const SECRET: &str = "sk-test-remote-tool-key";

/// The callee's agents: one that summarizes, one whose task fails (and
/// [`HELD`], below).
const SUMMARIZER: &str = r#"
id: summarizer
version: 0.1.0
state_schema: { text: str, summary: str }
a2a:
  skill: summarize
  description: Summarizes a text in one line
  input_key: text
  output_key: summary
nodes:
  sum: { type: set, values: { summary: "summary of {{ state.text }}" } }
"#;

/// A callee that works for 5 s (a durable timer: its task stays
/// `working`; a wait for an event would ask for input): long enough that
/// a caller is killed while it works even on a loaded machine (the test
/// sees the task within a poll of 25 ms).
const HELD: &str = r#"
id: held
version: 0.1.0
state_schema: { text: str, summary: str }
a2a:
  skill: summarize_slowly
  description: Summarizes a text, slowly
  input_key: text
  output_key: summary
nodes:
  pause: { type: wait, duration_ms: 5000, next: sum }
  sum: { type: set, values: { summary: "summary of {{ state.text }}" } }
"#;

const BROKEN: &str = r#"
id: broken
version: 0.1.0
state_schema: { text: str, out: any }
a2a:
  skill: break
  description: Always fails
  input_key: text
nodes:
  call:
    type: http
    url: http://127.0.0.1:1/
    output_key: out
    retry: { max_attempts: 1 }
"#;

/// `jamjet dev` serving the callee's agents, on its own data dir.
struct Callee {
    dev: DevServer,
    _data: tempfile::TempDir,
    _flows: tempfile::TempDir,
}

impl Callee {
    fn start() -> Callee {
        let data = tempfile::tempdir().unwrap();
        let flows = tempfile::tempdir().unwrap();
        std::fs::write(flows.path().join("summarizer.yaml"), SUMMARIZER).unwrap();
        std::fs::write(flows.path().join("broken.yaml"), BROKEN).unwrap();
        std::fs::write(flows.path().join("held.yaml"), HELD).unwrap();
        let workflows = flows.path().to_str().unwrap().to_string();
        let dev = DevServer::start(data.path(), &["--workflows", &workflows]);
        Callee { dev, _data: data, _flows: flows }
    }

    fn agent(&self, id: &str) -> String {
        format!("{}/a2a/{id}", self.dev.url)
    }

    /// The tool name the caller's model sees the callee by (from its host and port).
    fn tool_name(&self) -> String {
        self.dev.url.trim_start_matches("http://").replace(['.', ':'], "_")
    }

    /// The executions the callee ran (one per A2A task).
    async fn executions(&self) -> Vec<Value> {
        let (status, list) = self.dev.api().get("/executions").await;
        assert_eq!(status, 200, "{list}");
        list["executions"].as_array().cloned().unwrap_or_default()
    }
}

/// The caller: agent `asker` (react) with the remote agent `tool` as its tool.
fn flow(server: &ModelServer, tool: &str) -> String {
    flow_with(server, tool, "")
}

/// [`flow`] with `extra` among the agent's fields.
fn flow_with(server: &ModelServer, tool: &str, extra: &str) -> String {
    format!(
        r#"
id: remote-caller
state_schema: {{ text: str, answer: str }}
models:
  fast: {{ provider: openai, model: test-gpt, base_url: "{base}", api_key_env: {KEY_VAR} }}
agents:
  asker:
    model: fast
    instructions: "Answer with the help of the summarizer."
    tools: ["{tool}"]
    max_iterations: 4
{extra}nodes:
  ask:
    type: agent
    agent: asker
    message: "Summarize: {{{{ state.text }}}}"
    output_key: answer
    timeout_ms: 30000
"#,
        base = server.openai_base()
    )
}

async fn open(dir: &Path) -> Runtime {
    let source = KeySource::from_fn(|var| (var == KEY_VAR).then(|| SECRET.to_string()));
    Runtime::builder().data_dir(dir).model_keys(source).open().await.unwrap()
}

async fn run(rt: &Runtime, wf: &ir::Workflow, input: Value) -> Outcome {
    tokio::time::timeout(LIMIT, rt.run(wf, input)).await.expect("the execution did not end in time").unwrap()
}

fn calls(rt: &Runtime, id: jamjet::ExecutionId) -> Vec<CallRecord> {
    rt.events(id)
        .unwrap()
        .into_iter()
        .filter_map(|r| match r.event {
            Event::Call { call, .. } => Some(call),
            _ => None,
        })
        .collect()
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

/// The script: ask the remote about `text`, then answer with what it said.
fn script(server: &ModelServer, tool: &str, text: &str) {
    server.script(
        Rule::contains(&format!("Summarize: {text}"), Reply::tool_call(tool, json!({"message": text}))).times(1),
    );
    server.script(
        Rule::contains(&format!("summary of {text}"), Reply::text(&format!("done: summary of {text}"))).times(1),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_model_calls_a_remote_agent_whose_answer_reaches_its_next_request_and_is_journaled() {
    let callee = blocking(Callee::start).await;
    let server = ModelServer::start().await;
    let tool = callee.tool_name();
    script(&server, &tool, "the long text");
    let dir = tempfile::tempdir().unwrap();
    let rt = open(dir.path()).await;
    let wf = ir::compile_str(&flow(&server, &callee.agent("summarizer")), "remote.yaml").unwrap();
    let out = run(&rt, &wf, json!({"text": "the long text"})).await;
    assert_eq!(out.status, Status::Completed, "{:?}", out.error);
    assert_eq!(out.state["answer"], "done: summary of the long text");

    // Offered with a `message` argument and the description its card gives.
    let seen = server.requests();
    assert_eq!(seen.len(), 2);
    let offered = &seen[0].body["tools"][0]["function"];
    assert_eq!(offered["name"], tool.as_str(), "{offered}");
    let description = offered["description"].as_str().unwrap();
    assert!(description.contains("Summarizes a text in one line"), "{description}");
    assert_eq!(offered["parameters"]["required"], json!(["message"]), "{offered}");
    // The remote's answer is the tool result of the model's next request.
    let messages = seen[1].body["messages"].as_array().unwrap();
    let last = messages.last().unwrap();
    assert_eq!((last["role"].as_str(), last["content"].as_str()), (Some("tool"), Some("summary of the long text")));

    // Journaled: the model call that asked, then the tool call, by the tool's name.
    let journaled = calls(&rt, out.id);
    let kinds: Vec<(&str, &str)> = journaled.iter().map(|c| (c.kind.as_str(), c.name.as_str())).collect();
    assert_eq!(kinds, [("model", "asker"), ("tool", tool.as_str())]);
    let request = journaled[1].request.value().unwrap();
    assert_eq!(request["arguments"], json!({"message": "the long text"}), "{request}");
    assert_eq!(journaled[1].response.value().unwrap(), json!("summary of the long text"));

    // The remote ran its own workflow once, on the message.
    let runs = callee.executions().await;
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0]["workflow_id"], "summarizer", "{runs:?}");
    rt.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_task_that_fails_is_told_to_the_model() {
    let callee = blocking(Callee::start).await;
    let server = ModelServer::start().await;
    let tool = callee.tool_name();
    server.script(Rule::contains("Summarize: x", Reply::tool_call(&tool, json!({"message": "x"}))).times(1));
    server.script(Rule::contains("error: the remote agent's task", Reply::text("it could not")).times(1));
    let dir = tempfile::tempdir().unwrap();
    let rt = open(dir.path()).await;
    let wf = ir::compile_str(&flow(&server, &callee.agent("broken")), "remote.yaml").unwrap();
    let out = run(&rt, &wf, json!({"text": "x"})).await;
    assert_eq!(out.status, Status::Completed, "{:?}", out.error);
    assert_eq!(out.state["answer"], "it could not");
    let journaled = calls(&rt, out.id);
    let result = journaled[1].response.value().unwrap();
    let result = result.as_str().unwrap();
    assert!(result.starts_with("error: the remote agent's task ") && result.contains(" failed: "), "{result}");
    assert_eq!(callee.executions().await.len(), 1);
    rt.shutdown().await;
}

/// `approval: all`: the call of the remote agent waits for a person's
/// decision, and the remote gets nothing before it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_of_a_remote_agent_waits_for_approval_like_any_tool_call() {
    let callee = blocking(Callee::start).await;
    let server = ModelServer::start().await;
    let tool = callee.tool_name();
    script(&server, &tool, "the long text");
    let dir = tempfile::tempdir().unwrap();
    let rt = open(dir.path()).await;
    let src = flow_with(&server, &callee.agent("summarizer"), "    approval: all\n");
    let wf = ir::compile_str(&src, "remote.yaml").unwrap();
    let id = rt.submit(&wf, json!({"text": "the long text"})).await.unwrap();
    let out = tokio::time::timeout(LIMIT, rt.settle(id)).await.unwrap().unwrap();
    assert_eq!(out.status, Status::Waiting, "{:?}", out.error);
    let waits = rt.waiting_on(id).unwrap();
    assert_eq!(waits.len(), 1, "{waits:?}");
    assert_eq!(waits[0].call.as_deref(), Some("ask.1"));
    assert!(callee.executions().await.is_empty(), "the remote got nothing before the decision");

    let decision = Decision { node: None, call: Some("ask.1".into()), approved: true, by: "ada".into(), comment: None };
    rt.approve(id, decision).await.unwrap();
    let out = tokio::time::timeout(LIMIT, rt.settle(id)).await.unwrap().unwrap();
    assert_eq!(out.status, Status::Completed, "{:?}", out.error);
    assert_eq!(out.state["answer"], "done: summary of the long text");
    assert_eq!(callee.executions().await.len(), 1);
    rt.shutdown().await;
}

/// A remote that cannot be reached: offered with a plain description (no
/// card to read), and its call fails the node with an error naming the
/// tool as written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_remote_agent_gets_a_plain_description_and_its_call_fails_the_node() {
    let server = ModelServer::start().await;
    let url = "http://127.0.0.1:1/a2a/nobody";
    server.script(Rule::contains("Summarize: x", Reply::tool_call("127_0_0_1_1", json!({"message": "x"}))));
    let dir = tempfile::tempdir().unwrap();
    let rt = open(dir.path()).await;
    let wf = ir::compile_str(&flow(&server, url), "remote.yaml").unwrap();
    let out = run(&rt, &wf, json!({"text": "x"})).await;
    assert_eq!(out.status, Status::Failed, "{:?}", out.state);
    let error = out.error.unwrap_or_default();
    assert!(error.contains(&format!("agent tool {url}: ")), "{error}");
    let offered = &server.requests()[0].body["tools"][0]["function"];
    assert_eq!(offered["description"], format!("Ask the remote A2A agent at {url}."), "{offered}");
    // The model call that asked was journaled once, and read back by each retry.
    let journaled = calls(&rt, out.id);
    assert_eq!(journaled.iter().map(|c| c.kind.as_str()).collect::<Vec<_>>(), ["model"]);
    assert_eq!(server.requests().len(), 1);
    rt.shutdown().await;
}

/// The caller's file, its data dir, and `${JJ_REMOTE_AGENT}` holding the callee's URL.
struct Caller {
    dir: tempfile::TempDir,
    env: Vec<(String, String)>,
}

impl Caller {
    fn new(server: &ModelServer, callee: &Callee) -> Caller {
        Caller::of(server, callee, "summarizer")
    }

    /// The caller of the callee's agent `agent`.
    fn of(server: &ModelServer, callee: &Callee, agent: &str) -> Caller {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("caller.yaml"), flow(server, "${JJ_REMOTE_AGENT}")).unwrap();
        let env = vec![(KEY_VAR.to_string(), SECRET.to_string()), ("JJ_REMOTE_AGENT".into(), callee.agent(agent))];
        Caller { dir, env }
    }

    fn data(&self) -> std::path::PathBuf {
        self.dir.path().join("data")
    }

    fn run(&self) -> std::process::Command {
        let file = self.dir.path().join("caller.yaml");
        let mut cmd = support::run_to_kill(&self.data(), &file, r#"{"text": "the long text"}"#);
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd
    }

    async fn resume(&self) -> Value {
        let (data, env) = (self.data(), self.env.clone());
        blocking(move || {
            let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            support::jamjet_json_with(&data, &env, &["resume", "--json"])
        })
        .await
    }
}

/// A `${VAR}` URL; `kill -9` once the tool call is durable: `jamjet
/// resume` reads it back and does not send the message again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_var_url_and_a_kill_9_after_the_call_is_journaled_send_the_message_once() {
    let callee = blocking(Callee::start).await;
    let server = ModelServer::start().await;
    // `${JJ_REMOTE_AGENT}` is offered as `jj_remote_agent`.
    script(&server, "jj_remote_agent", "the long text");
    let caller = Caller::new(&server, &callee);
    let cmd = caller.run();
    blocking(move || support::kill_when_paused(cmd, "Call:2", LIMIT, "jamjet run")).await;
    assert_eq!(server.requests().len(), 1, "killed after the tool call, before the model's next");
    assert_eq!(callee.executions().await.len(), 1);

    let resumed = caller.resume().await;
    assert_eq!(resumed[0]["status"], "completed", "{resumed}");
    assert_eq!(resumed[0]["state"]["answer"], "done: summary of the long text", "{resumed}");
    assert_eq!(server.requests().len(), 2, "the first model call was not sent again");
    let runs = callee.executions().await;
    assert_eq!(runs.len(), 1, "the message was not sent again: {runs:?}");
}

/// `kill -9` of the caller while the remote works on its message: the
/// resumed call sends the same message id, and the remote hands back the
/// task it started rather than start a second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_9_during_the_remote_call_resends_the_same_message_and_the_remote_starts_no_second_task() {
    let callee = blocking(Callee::start).await;
    let server = ModelServer::start().await;
    script(&server, "jj_remote_agent", "the long text");
    let caller = Caller::of(&server, &callee, "held");
    let mut child = caller.run().spawn().unwrap();
    // Wait (bounded) for the remote to have the task, then kill the caller
    // mid-call, while the remote's task waits out its timer.
    let start = Instant::now();
    let mut runs = Vec::new();
    for _ in 0..400 {
        runs = callee.executions().await;
        if !runs.is_empty() || start.elapsed() > LIMIT {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(runs.len(), 1, "the remote got the message before the kill: {runs:?}");
    assert_ne!(runs[0]["status"], "completed", "killed while the remote still worked: {runs:?}");
    assert_eq!(server.requests().len(), 1, "killed before the model's next request");

    let resumed = caller.resume().await;
    assert_eq!(resumed[0]["status"], "completed", "{resumed}");
    assert_eq!(resumed[0]["state"]["answer"], "done: summary of the long text", "{resumed}");
    let runs = callee.executions().await;
    assert_eq!(runs.len(), 1, "one remote task, not two: {runs:?}");
    assert_eq!(runs[0]["status"], "completed", "{runs:?}");
    // Its message id is the caller's tool call key: the visit's second call.
    let key = runs[0]["key"].as_str().unwrap();
    assert!(key.ends_with(r#"/ask/1/call/2"]"#), "{key}");
}
