//! Local agents served over A2A by `jamjet dev`, black-box: the real
//! binary on 127.0.0.1:0 with a workflow (no `a2a:` section, no `--a2a`)
//! whose agent `researcher` (react, the `add` tool of a loopback MCP
//! server) talks to a scripted loopback model server. Its card; a task sent
//! by the official Python a2a-sdk client, which survives a restart; a
//! stream; a data part; and a `type: agent` node of another workflow, run
//! by `jamjet run`, calling it by URL. The policy for posted workflows
//! covers their agents.

mod support;

use serde_json::{Value, json};
use support::a2a_py::{sdk_client, step};
use support::dev::DevServer;
use support::mcp_http::McpHttpServer;
use support::model_server::{ModelServer, Reply, Rule};

const KEY_VAR: &str = "JJ_TEST_A2A_AGENT_KEY";
const SECRET: &str = "sk-test-a2a-agent";
const INSTRUCTIONS: &str = "You answer questions about numbers. Use the calculator for sums.";
/// The served agent's path under the server.
const AGENT: &str = "/a2a/numbers.researcher";

/// The workflow: one agent, run by one node; no `a2a:` section.
fn numbers(models: &ModelServer, mcp: &McpHttpServer) -> String {
    format!(
        r#"
id: numbers
version: 0.3.0
state_schema: {{ question: str, reply: str }}
models:
  fast: {{ provider: openai, model: test-gpt, base_url: "{base}", api_key_env: {KEY_VAR} }}
mcp:
  servers:
    calc: {{ url: "{mcp}" }}
agents:
  researcher:
    model: fast
    instructions: "{INSTRUCTIONS}"
    tools: [calc.add]
    max_iterations: 4
nodes:
  ask: {{ type: agent, agent: researcher, message: "{{{{ state.question }}}}", output_key: reply }}
"#,
        base = models.openai_base(),
        mcp = mcp.url
    )
}

/// Servers, a `--workflows` folder holding the workflow, and `jamjet dev`
/// on it (the model key in its environment; posted workflows may send it).
struct Setup {
    models: ModelServer,
    mcp: McpHttpServer,
    flows: tempfile::TempDir,
    data: tempfile::TempDir,
}

impl Setup {
    async fn new() -> Setup {
        let models = ModelServer::start().await;
        let mcp = McpHttpServer::start().await;
        let flows = tempfile::tempdir().unwrap();
        std::fs::write(flows.path().join("numbers.yaml"), numbers(&models, &mcp)).unwrap();
        Setup { models, mcp, flows, data: tempfile::tempdir().unwrap() }
    }

    fn dev(&self, with_workflows: bool) -> DevServer {
        let flows = self.flows.path().to_str().unwrap();
        let mut extra = vec!["--allow-env", KEY_VAR];
        if with_workflows {
            extra.extend(["--workflows", flows]);
        }
        DevServer::start_env(self.data.path(), &extra, &[(KEY_VAR, SECRET)])
    }
}

/// A blocking call (a child process) off the runtime's workers, so the
/// loopback servers on them go on answering.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_local_agent_has_a_card_and_is_a_skill_of_the_server() {
    let s = Setup::new().await;
    let dev = s.dev(true);
    let api = dev.api();
    let (status, card) = api.get(&format!("{AGENT}/.well-known/agent-card.json")).await;
    assert_eq!(status, 200, "{card}");
    assert_eq!(card["name"], "researcher");
    assert_eq!(card["description"], INSTRUCTIONS);
    assert_eq!(card["version"], "0.3.0");
    assert_eq!(card["supportedInterfaces"][0]["url"], format!("{}{AGENT}", dev.url));
    assert_eq!(card["capabilities"]["streaming"], true);
    let skills = card["skills"].as_array().unwrap();
    assert_eq!(skills.len(), 1, "{card}");
    assert_eq!(skills[0]["id"], "researcher");
    assert_eq!(skills[0]["name"], "researcher");
    assert_eq!(skills[0]["description"], "tools: calc.add; strategy: react");

    let (_, server) = api.get("/.well-known/agent-card.json").await;
    let ids: Vec<&str> = server["skills"].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["researcher"], "{server}");
    // The workflow itself is no agent: it has no `a2a:` section.
    let (status, _) = api.get("/a2a/numbers/.well-known/agent-card.json").await;
    assert_eq!(status, 404);
    // The workflow that serves it is registered like any other.
    let (status, registered) = api.get("/workflows/numbers.researcher").await;
    assert_eq!(status, 200, "{registered}");
    assert_eq!(registered["workflow"]["a2a"]["serves"]["workflow"], "numbers");
    assert_eq!(registered["workflow"]["a2a"]["input_key"], "message");

    // A posted workflow's agents are served too; two agents called
    // `researcher` get unique ids on the server's card.
    let posted = numbers(&s.models, &s.mcp).replace("id: numbers", "id: more");
    let (status, body) = api.register_yaml(&posted).await;
    assert_eq!(status, 201, "{body}");
    let (status, _) = api.get("/a2a/more.researcher/.well-known/agent-card.json").await;
    assert_eq!(status, 200);
    let (_, server) = api.get("/.well-known/agent-card.json").await;
    let mut ids: Vec<&str> = server["skills"].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap()).collect();
    ids.sort();
    assert_eq!(ids, ["more.researcher", "numbers.researcher"], "{server}");

    // A later version of `more` without the agent: no longer served.
    let plain = "id: more\nversion: 0.4.0\nstate_schema: { x: int }\nnodes:\n  a: { type: set, values: { x: 1 } }\n";
    let (status, body) = api.register_yaml(plain).await;
    assert_eq!(status, 201, "{body}");
    let (status, _) = api.get("/a2a/more.researcher/.well-known/agent-card.json").await;
    assert_eq!(status, 404, "the agent went with its workflow's version");
    // An agent whose id another workflow holds: refused, nothing registered.
    let (status, body) =
        api.register_yaml(&plain.replace("id: more", "id: taken.researcher").replace("0.4.0", "0.3.0")).await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = api.register_yaml(&posted.replace("id: more", "id: taken")).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "workflow_conflict", "{body}");
    assert_eq!(api.get("/workflows/taken").await.0, 404);

    // The policy holds for what a posted workflow's agents would read:
    // refused, nothing registered, nothing served.
    let secret = posted.replace("id: more", "id: leaky").replace(KEY_VAR, "JJ_TEST_OTHER_SECRET");
    let (status, body) = api.register_yaml(&secret).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "not_allowed", "{body}");
    let (status, _) = api.get("/a2a/leaky.researcher/.well-known/agent-card.json").await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_sdk_asks_a_local_agent_and_its_task_is_a_durable_execution() {
    let s = Setup::new().await;
    s.models.script(Rule::contains("What is 2 plus 3?", Reply::tool_call("add", json!({"a": 2, "b": 3}))).times(1));
    s.models.script(Rule::contains("5", Reply::text("2 plus 3 is 5.")).times(1));
    let mut dev = s.dev(true);
    let base = format!("{}{AGENT}", dev.url);
    let Some(lines) = blocking(move || sdk_client(&base, "send", "What is 2 plus 3?")).await else { return };
    assert_eq!(step(&lines, "card")["card"]["name"], "researcher");
    let sent = &step(&lines, "sent")["task"];
    assert_eq!(sent["status"]["state"], "TASK_STATE_COMPLETED", "{sent}");
    assert_eq!(sent["artifacts"][0]["parts"][0]["text"], "2 plus 3 is 5.", "{sent}");
    let id = sent["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("exec_"), "the task is an execution: {sent}");
    assert_eq!(step(&lines, "got")["task"]["id"], sent["id"]);

    // The agent ran as in its workflow: its instructions, its tool, its key.
    let seen = s.models.requests();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[0].body["messages"][0]["content"], INSTRUCTIONS);
    assert_eq!(seen[0].body["messages"][1]["content"], "What is 2 plus 3?");
    assert_eq!(seen[0].header("authorization"), Some(format!("Bearer {SECRET}").as_str()));
    assert_eq!(s.mcp.calls()[0].arguments, json!({"a": 2, "b": 3}));

    let api = dev.api();
    let (status, x) = api.get(&format!("/executions/{id}")).await;
    assert_eq!(status, 200, "{x}");
    assert_eq!(x["workflow_id"], "numbers.researcher", "{x}");
    assert_eq!(x["state"], json!({"message": "What is 2 plus 3?", "answer": "2 plus 3 is 5."}), "{x}");

    // Restarted without its folder, the server still serves the agent and knows the task.
    dev.stop();
    let dev = s.dev(false);
    let api = dev.api();
    let (status, _) = api.get(&format!("{AGENT}/.well-known/agent-card.json")).await;
    assert_eq!(status, 200);
    let get = json!({"jsonrpc": "2.0", "id": 1, "method": "GetTask", "params": {"id": id}});
    let (status, got) = api.post(AGENT, &get).await;
    assert_eq!(status, 200, "{got}");
    assert_eq!(got["result"]["status"]["state"], "TASK_STATE_COMPLETED", "{got}");
    assert_eq!(got["result"]["artifacts"][0]["parts"][0]["text"], "2 plus 3 is 5.", "{got}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_sdk_streams_a_local_agents_answer() {
    let s = Setup::new().await;
    let dev = s.dev(true);
    let base = format!("{}{AGENT}", dev.url);
    let Some(lines) = blocking(move || sdk_client(&base, "stream", "hum a tune")).await else { return };
    let events = step(&lines, "streamed")["events"].as_array().unwrap().clone();
    assert_eq!(events[0]["task"]["status"]["state"], "TASK_STATE_WORKING", "{events:?}");
    let artifact = events.iter().find_map(|e| e.get("artifactUpdate")).expect("an artifact update");
    assert_eq!(artifact["artifact"]["parts"][0]["text"], "echo: hum a tune", "{events:?}");
    let last = events.last().unwrap();
    assert_eq!(last["statusUpdate"]["status"]["state"], "TASK_STATE_COMPLETED", "{events:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_part_carries_the_message() {
    let s = Setup::new().await;
    let dev = s.dev(true);
    let send = json!({"jsonrpc": "2.0", "id": 1, "method": "SendMessage", "params": {"message": {
        "messageId": "m-data-1", "role": "ROLE_USER", "parts": [{"data": {"message": "count the sheep"}}]}}});
    let (status, r) = dev.api().post(AGENT, &send).await;
    assert_eq!(status, 200, "{r}");
    let task = &r["result"]["task"];
    assert_eq!(task["status"]["state"], "TASK_STATE_COMPLETED", "{r}");
    // The model server echoes the last user message when nothing is scripted.
    assert_eq!(task["artifacts"][0]["parts"][0]["text"], "echo: count the sheep", "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_workflows_agent_node_calls_the_served_agent_by_url() {
    let s = Setup::new().await;
    let dev = s.dev(true);
    let caller = tempfile::tempdir().unwrap();
    let file = support::workflow_file(
        caller.path(),
        "asker.yaml",
        &format!(
            r#"
id: asker
state_schema: {{ q: str, result: any }}
nodes:
  ask:
    type: agent
    agent: "{url}{AGENT}/"
    message: "{{{{ state.q }}}}"
    output_key: result
    timeout_ms: 60000
"#,
            url = dev.url
        ),
    );
    let data = caller.path().join("data");
    let out = blocking(move || {
        let input = r#"{"q": "Say hello to the asker"}"#;
        support::jamjet_json(&data, &["run", &file, "--input", input, "--json"])
    })
    .await;
    assert_eq!(out["status"], "completed", "{out}");
    assert_eq!(out["state"]["result"], "echo: Say hello to the asker", "{out}");

    // On the server: one task, an execution of the served agent's workflow.
    let (_, list) = dev.api().get("/executions").await;
    let rows: Vec<&Value> = list["executions"].as_array().unwrap().iter().collect();
    assert_eq!(rows.len(), 1, "{list}");
    assert_eq!(rows[0]["workflow_id"], "numbers.researcher", "{list}");
}
