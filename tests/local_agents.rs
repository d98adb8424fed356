//! Local agents (`agents:` and `type: agent` naming one): the `react`
//! loop against a loopback model server with scripted replies, with an MCP
//! tool, a host function and another agent as tools; every call journaled
//! as it completes; budgets; and a `kill -9` between two of an agent's
//! model calls.

mod support;

use std::path::Path;
use std::time::Duration;

use jamjet::journal::{CallRecord, ErrorClass, Event, Status};
use jamjet::model::KeySource;
use jamjet::{ExecutionId, Outcome, Runtime, ir};
use serde_json::{Value, json};
use support::mcp_http::McpHttpServer;
use support::model_server::{ModelServer, Reply, Rule};
use support::{OutputBounded, jamjet};

const LIMIT: Duration = Duration::from_secs(30);
const KEY_VAR: &str = "JJ_TEST_AGENT_KEY";
const SECRET: &str = "sk-test-agent-key";

/// A researcher (react, an MCP tool, a host function and the writer as
/// tools) and a writer; `extra` goes under the workflow.
fn flow(server: &ModelServer, mcp: &str, agents_extra: &str, extra: &str) -> String {
    format!(
        r#"
id: research-writer
state_schema: {{ topic: str, research: str, second: str }}
mcp:
  servers:
    calc: {{ url: "{mcp}" }}
models:
  fast: {{ provider: openai, model: test-gpt, base_url: "{base}", api_key_env: {KEY_VAR}, price: {{ input_per_mtok: 1000.0, output_per_mtok: 1000.0 }} }}
agents:
  researcher:
    model: fast
    instructions: "Find accurate information about {{{{ state.topic }}}}."
    tools: [calc.add, shout, writer]
    max_iterations: 5
{agents_extra}  writer:
    model: fast
    instructions: "Write clearly."
nodes:
  research:
    type: agent
    agent: researcher
    message: "Research: {{{{ state.topic }}}}"
    output_key: research
{extra}"#,
        base = server.openai_base()
    )
}

fn compile(src: &str) -> ir::Workflow {
    ir::compile_str(src, "agents.yaml").unwrap_or_else(|d| panic!("{d}"))
}

async fn open(dir: &Path) -> Runtime {
    let source = KeySource::from_fn(|var| (var == KEY_VAR).then(|| SECRET.to_string()));
    Runtime::builder()
        .data_dir(dir)
        .model_keys(source)
        .function("shout", |call| async move {
            let text = call.input["text"].as_str().unwrap_or_default().to_uppercase();
            Ok(json!(format!("SHOUTED: {text}")))
        })
        .open()
        .await
        .unwrap()
}

async fn run(rt: &Runtime, wf: &ir::Workflow, input: Value) -> Outcome {
    tokio::time::timeout(LIMIT, rt.run(wf, input)).await.expect("the execution did not end in time").unwrap()
}

fn calls(rt: &Runtime, id: ExecutionId) -> Vec<CallRecord> {
    rt.events(id)
        .unwrap()
        .into_iter()
        .filter_map(|r| match r.event {
            Event::Call { call, .. } => Some(call),
            _ => None,
        })
        .collect()
}

/// The researcher's script: an MCP tool, a host function, the writer
/// (one reply), then the answer.
fn script(server: &ModelServer) {
    server.script(Rule::contains("Research: sums", Reply::tool_call("add", json!({"a": 2, "b": 3}))).times(1));
    server.script(Rule::contains("5", Reply::tool_call("shout", json!({"text": "hi"}))).times(1));
    server.script(Rule::contains("SHOUTED", Reply::tool_call("writer", json!({"message": "Write about 5"}))).times(1));
    server.script(Rule::contains("Write about", Reply::text("a draft about five")).times(1));
    server.script(Rule::contains("a draft about five", Reply::text("final: the sum is 5, draft ready")).times(1));
}

#[tokio::test]
async fn react_calls_an_mcp_tool_a_host_function_and_another_agent_journaling_each_call() {
    let server = ModelServer::start().await;
    script(&server);
    let mcp = McpHttpServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let rt = open(dir.path()).await;
    let wf = compile(&flow(&server, &mcp.url, "", ""));
    let out = run(&rt, &wf, json!({"topic": "sums"})).await;
    assert_eq!(out.status, Status::Completed, "{:?}", out.error);
    assert_eq!(out.state["research"], "final: the sum is 5, draft ready");

    // The model calls, in order, with their keys; the writer's system prompt is its own.
    let seen = server.requests();
    let key = seen[0].idempotency_key().unwrap().to_string();
    assert!(key.starts_with(&format!("{}/research/1", out.id)), "{key}");
    let keys: Vec<&str> = seen.iter().map(|r| r.idempotency_key().unwrap()).collect();
    let want: Vec<String> =
        std::iter::once(key.clone()).chain([3, 5, 6, 8].map(|n| format!("{key}/call/{n}"))).collect();
    assert_eq!(keys, want);
    assert_eq!(seen[0].body["messages"][0]["content"], "Find accurate information about sums.");
    let offered: Vec<&str> =
        seen[0].body["tools"].as_array().unwrap().iter().map(|t| t["function"]["name"].as_str().unwrap()).collect();
    assert_eq!(offered, ["add", "shout", "writer"]);
    assert_eq!(seen[3].body["messages"][0]["content"], "Write clearly.");
    assert_eq!(seen[3].body["messages"][1]["content"], "Write about 5");
    assert_eq!(mcp.calls()[0].meta["jamjet/idempotency_key"], format!("{key}/call/2"));

    // Every call the loop went on from is journaled: the writer's answer,
    // then the researcher's call of it with its arguments and that answer.
    let shape: Vec<(u32, String, String)> = calls(&rt, out.id).into_iter().map(|c| (c.n, c.kind, c.name)).collect();
    let want = [
        (1, "model", "researcher"),
        (2, "tool", "add"),
        (3, "model", "researcher"),
        (4, "tool", "shout"),
        (5, "model", "researcher"),
        (6, "model", "writer"),
        // The researcher's call of the writer, as a tool: in trajectories.
        (7, "tool", "writer"),
    ];
    assert_eq!(shape, want.map(|(n, k, m)| (n, k.to_string(), m.to_string())));
    let journaled = calls(&rt, out.id);
    assert_eq!(journaled[3].response.value().unwrap(), json!("SHOUTED: HI"));
    assert_eq!(journaled[6].request.value().unwrap()["arguments"], json!({"message": "Write about 5"}));
    // What the researcher was given as the tool's result is what was journaled.
    let answer = journaled[6].response.value().unwrap();
    let given = seen[4].body["messages"].as_array().unwrap().last().unwrap()["content"].clone();
    assert_eq!(answer, given);
    // The usage is every call's, counted once: the journaled calls' and the final reply's.
    let final_usage: Vec<u64> = rt
        .events(out.id)
        .unwrap()
        .into_iter()
        .filter_map(|r| match r.event {
            Event::Exchange { usage, .. } => Some(usage.input_tokens),
            _ => None,
        })
        .collect();
    let in_calls: u64 = journaled.iter().map(|c| c.usage.input_tokens).sum();
    assert_eq!(final_usage.len(), 1);
    assert!(final_usage[0] > 0 && in_calls > 0);
    assert_eq!(out.usage.input_tokens, in_calls + final_usage[0]);
    rt.shutdown().await;
}

#[tokio::test]
async fn an_agent_that_crosses_its_token_budget_stops_with_budget_exceeded_and_the_figures() {
    let server = ModelServer::start().await;
    server.script(Rule::always(Reply::tool_call("add", json!({"a": 1, "b": 1}))));
    let mcp = McpHttpServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let rt = open(dir.path()).await;
    let wf = compile(&flow(&server, &mcp.url, "    max_tokens: 20\n", ""));
    let out = run(&rt, &wf, json!({"topic": "loops"})).await;
    assert_eq!(out.status, Status::Failed);
    let failed: Vec<(ErrorClass, String)> = rt
        .events(out.id)
        .unwrap()
        .into_iter()
        .filter_map(|r| match r.event {
            Event::NodeFailed { class, message, .. } => Some((class, message)),
            _ => None,
        })
        .collect();
    assert_eq!(failed.len(), 1, "budget_exceeded is not retried: {failed:?}");
    assert_eq!(failed[0].0, ErrorClass::BudgetExceeded);
    assert!(
        failed[0].1.contains("agent `researcher` used") && failed[0].1.contains("of its 20 `max_tokens`"),
        "{}",
        failed[0].1
    );
    // It stopped at the first model call past the budget, before its tools ran.
    let made = server.requests().len();
    assert!((2..5).contains(&made), "{made} model calls");
    assert_eq!(mcp.calls().len(), made - 1);
    rt.shutdown().await;
}

#[tokio::test]
async fn the_workflows_budget_counts_every_node_of_the_execution() {
    let server = ModelServer::start().await;
    let mcp = McpHttpServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let rt = open(dir.path()).await;
    // Each node alone stays under 30 tokens; the two together do not.
    let second = "    next: again\n  again:\n    type: agent\n    agent: writer\n    message: \"Write about {{ state.research }} and more words here to spend tokens\"\n    output_key: second\nbudget: { max_tokens: 30 }\n";
    server.script(Rule::contains("Research: sums", Reply::text("five")).times(1));
    let wf = compile(&flow(&server, &mcp.url, "", second));
    let out = run(&rt, &wf, json!({"topic": "sums"})).await;
    assert_eq!(out.status, Status::Failed, "{:?}", out.state);
    let error = out.error.unwrap_or_default();
    assert!(error.contains("budget_exceeded") && error.contains("the workflow's `budget:` used"), "{error}");
    assert!(error.contains("node `again`"), "{error}");
    rt.shutdown().await;
}

/// `kill -9` right after the agent's tool result is durable: after `jamjet
/// resume` no completed call is made again and the answer is an
/// uninterrupted run's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_between_two_of_an_agents_model_calls_repeats_no_completed_call() {
    let server = ModelServer::start().await;
    server.script(Rule::contains("Research: sums", Reply::tool_call("add", json!({"a": 2, "b": 3}))).times(1));
    server.script(Rule::contains("5", Reply::text("the sum is 5")).times(1));
    let mcp = McpHttpServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let file = dir.path().join("agents.yaml");
    std::fs::write(&file, flow(&server, &mcp.url, "", "")).unwrap();
    let mut cmd = support::run_to_kill(&data, &file, r#"{"topic": "sums"}"#);
    cmd.env(KEY_VAR, SECRET);
    tokio::task::spawn_blocking(move || support::kill_when_paused(cmd, "Call:2", LIMIT, "jamjet run")).await.unwrap();
    assert_eq!(
        (server.requests().len(), mcp.calls().len()),
        (1, 1),
        "killed after the tool call, before the model's next"
    );

    let resumed = resume(&data).await;
    assert_eq!(resumed[0]["status"], "completed", "{resumed}");
    assert_eq!(resumed[0]["state"]["research"], "the sum is 5");
    let seen = server.requests();
    let key = seen[0].idempotency_key().unwrap().to_string();
    let keys: Vec<&str> = seen.iter().map(|r| r.idempotency_key().unwrap()).collect();
    assert_eq!(keys, [key.clone(), format!("{key}/call/3")], "the first model call was not sent again");
    assert_eq!(mcp.calls().len(), 1, "the tool call was not made again");
}

// ------------------------------------------------------------ strategies

/// One node running agent `a` (declared in `agents`, which may declare
/// more), on "Q: capital of France?".
fn strategy_flow(server: &ModelServer, agents: &str) -> String {
    format!(
        r#"
id: strategies
state_schema: {{ answer: str }}
models:
  fast: {{ provider: openai, model: test-gpt, base_url: "{base}", api_key_env: {KEY_VAR} }}
agents:
{agents}
nodes:
  ask:
    type: agent
    agent: a
    message: "Q: capital of France?"
    output_key: answer
"#,
        base = server.openai_base()
    )
}

/// Run `agents` against `script`; the answer, the journaled calls as
/// (kind, agent), and the text of the last message of every model request.
async fn run_strategy(agents: &str, script: &[(&str, Reply)]) -> (Value, Vec<(String, String)>, Vec<String>) {
    let rules = script.iter().map(|(when, reply)| Rule::contains(when, reply.clone()).times(1)).collect();
    run_strategy_with(agents, "", rules).await.0
}

/// [`run_strategy`] with these rules, `node_extra` under the node; also
/// the requests, in the order they arrived.
async fn run_strategy_with(
    agents: &str,
    node_extra: &str,
    rules: Vec<Rule>,
) -> ((Value, Vec<(String, String)>, Vec<String>), Vec<support::model_server::Request>) {
    let server = ModelServer::start().await;
    for rule in rules {
        server.script(rule);
    }
    let dir = tempfile::tempdir().unwrap();
    let rt = open(dir.path()).await;
    let out = run(&rt, &compile(&format!("{}{node_extra}", strategy_flow(&server, agents))), json!({})).await;
    assert_eq!(out.status, Status::Completed, "{:?}", out.error);
    let calls = calls(&rt, out.id).into_iter().map(|c| (c.kind, c.name)).collect();
    rt.shutdown().await;
    let requests = server.requests();
    let asked = requests.iter().map(|r| r.last_user.clone()).collect();
    ((out.state["answer"].clone(), calls, asked), requests)
}

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items.iter().map(|(k, n)| (k.to_string(), n.to_string())).collect()
}

#[tokio::test]
async fn reflection_answers_reflects_then_revises() {
    let agents = "  a: { model: fast, instructions: Answer., strategy: reflection }";
    let (answer, calls, asked) = run_strategy(
        agents,
        &[
            ("Q: capital", Reply::text("Paris, I think")),
            ("Reflect on your answer", Reply::text("It hedges; say it plainly.")),
            ("Here is a reflection", Reply::text("Paris.")),
        ],
    )
    .await;
    assert_eq!(answer, "Paris.");
    assert_eq!(calls, pairs(&[("model", "a"), ("reflect", "a")]));
    assert_eq!(asked.len(), 3);
    assert!(asked[2].contains("It hedges; say it plainly."), "{asked:?}");
}

#[tokio::test]
async fn critic_drafts_scores_repairs_a_bad_critique_revises_and_stops_at_min_score() {
    let agents = "  a: { model: fast, instructions: Answer., strategy: critic, min_score: 4, max_iterations: 3 }";
    let (answer, calls, asked) = run_strategy(
        agents,
        &[
            ("Q: capital", Reply::text("Lyon")),
            ("Score the answer", Reply::text("looks fine to me")),
            ("That reply is not valid", Reply::text(r#"{"score": 2, "reasons": ["wrong city"]}"#)),
            ("A critic scored your answer 2/5", Reply::text("Paris")),
            (
                "Score the answer",
                Reply::text(
                    r#"```json
{"score": 5, "reasons": []}
```"#,
                ),
            ),
        ],
    )
    .await;
    assert_eq!(answer, "Paris");
    let kinds = [("model", "a"), ("critique", "a"), ("critique", "a"), ("model", "a"), ("critique", "a")];
    assert_eq!(calls, pairs(&kinds));
    assert!(asked[3].contains("- wrong city"), "{asked:?}");
    assert!(asked[4].contains("Answer:\nParis"), "{asked:?}");
}

#[tokio::test]
async fn plan_and_execute_plans_runs_each_step_with_the_results_so_far_and_synthesises() {
    let agents = "  a: { model: fast, instructions: Answer., strategy: plan-and-execute, max_iterations: 3 }";
    let (answer, calls, asked) = run_strategy(
        agents,
        &[
            ("Make a plan", Reply::text(r#"["find the city", "say it"]"#)),
            ("Now carry out step 1", Reply::text("Paris is the capital")),
            ("Now carry out step 2", Reply::text("Paris")),
            ("Write the final answer to the task", Reply::text("The capital is Paris.")),
        ],
    )
    .await;
    assert_eq!(answer, "The capital is Paris.");
    assert_eq!(calls, pairs(&[("plan", "a"), ("model", "a"), ("model", "a")]));
    assert!(asked[2].contains("1. Paris is the capital") && asked[2].contains("2. say it"), "{asked:?}");
    assert!(asked[3].contains("1. Paris is the capital\n2. Paris"), "{asked:?}");
}

#[tokio::test]
async fn consensus_takes_its_samples_side_by_side_and_a_judge_picks() {
    let agents = "  a: { model: fast, instructions: Answer., strategy: consensus, samples: 3 }";
    // Each sample is answered only once all three are in: taken one after
    // another, the first would wait alone and get a 503. Each sample's key
    // is its lane's, whatever order they come in.
    let rules = vec![
        Rule::key_suffix("/lane/1/call/1", Reply::together(3, Reply::text("Paris"))),
        Rule::key_suffix("/lane/2/call/1", Reply::together(3, Reply::text("Paris"))),
        Rule::key_suffix("/lane/3/call/1", Reply::together(3, Reply::text("Lyon"))),
        Rule::contains("Independent answers", Reply::text("Paris")),
    ];
    let ((answer, calls, asked), _) = run_strategy_with(agents, "", rules).await;
    assert_eq!(answer, "Paris");
    assert_eq!(calls, pairs(&[("sample", "a"), ("sample", "a"), ("sample", "a")]));
    // The answers in the samples' order, whatever order their replies came in.
    assert!(asked[3].contains("1. Paris\n2. Paris\n3. Lyon"), "{asked:?}");
}

/// Samples with tools run side by side too, each a react loop in its own
/// lane; every call is journaled as it completes. When one sample fails,
/// the retry reads the others' calls back (and its own that completed) and
/// sends only what was not journaled, with the same lane keys.
#[tokio::test]
async fn consensus_samples_with_tools_run_side_by_side_and_a_retry_sends_only_what_failed() {
    let server = ModelServer::start().await;
    let mcp = McpHttpServer::start().await;
    // Every sample first asks for `add`, all three at once; then answers.
    for lane in 1..=3 {
        let args = json!({"a": lane, "b": 1});
        server.script(Rule::key_suffix(
            &format!("/lane/{lane}/call/1"),
            Reply::together(3, Reply::tool_call("add", args)),
        ));
    }
    server.script(Rule::key_suffix("/lane/1/call/3", Reply::text("two")));
    server.script(Rule::key_suffix("/lane/2/call/3", Reply::text("three")));
    // The third sample's answer fails once: the attempt fails, and is retried.
    server.script(Rule::key_suffix("/lane/3/call/3", Reply::status(500)).times(1));
    server.script(Rule::key_suffix("/lane/3/call/3", Reply::text("four")));
    server.script(Rule::contains("Independent answers", Reply::text("three")));
    let agents = "  a: { model: fast, instructions: Answer., tools: [calc.add], strategy: consensus, samples: 3 }";
    let src = strategy_flow(&server, agents)
        .replace("agents:\n", &format!("mcp:\n  servers:\n    calc: {{ url: \"{}\" }}\nagents:\n", mcp.url));
    let retry = "    retry: { max_attempts: 2, backoff: constant, delay_ms: 10, retry_on: [server_error] }\n";
    let dir = tempfile::tempdir().unwrap();
    let rt = open(dir.path()).await;
    let out = run(&rt, &compile(&format!("{src}{retry}")), json!({})).await;
    assert_eq!(out.status, Status::Completed, "{:?}", out.error);
    assert_eq!(out.state["answer"], "three");
    let keys: Vec<String> = server.requests().iter().map(|r| r.idempotency_key().unwrap().to_string()).collect();
    let sent = |suffix: &str| keys.iter().filter(|k| k.ends_with(suffix)).count();
    for lane in 1..=3 {
        assert_eq!(sent(&format!("/lane/{lane}/call/1")), 1, "lane {lane}'s first call once: {keys:?}");
    }
    assert_eq!((sent("/lane/1/call/3"), sent("/lane/2/call/3"), sent("/lane/3/call/3")), (1, 1, 2), "{keys:?}");
    // Each sample's tool call was made once (the MCP server saw three).
    assert_eq!(mcp.calls().len(), 3, "{:?}", mcp.calls());
    // Journaled: three samples' model calls and tool calls, then the judge's reply with the node.
    let journaled = calls(&rt, out.id);
    let samples = journaled.iter().filter(|c| c.kind == "sample").count();
    let tools = journaled.iter().filter(|c| c.kind == "tool").count();
    assert_eq!((samples, tools, journaled.len()), (6, 3, 9), "{journaled:?}");
    let numbers: Vec<u32> = journaled.iter().map(|c| c.n).collect();
    assert_eq!(numbers, (1..=9).collect::<Vec<u32>>());
    rt.shutdown().await;
}

/// A sample that fails is sent again alone, with its lane's key: the
/// others' replies were journaled.
#[tokio::test]
async fn a_failed_consensus_sample_is_sent_again_alone_with_its_key() {
    let agents = "  a: { model: fast, instructions: Answer., strategy: consensus, samples: 3 }";
    let rules = vec![
        Rule::key_suffix("/lane/1/call/1", Reply::together(3, Reply::text("Paris"))),
        Rule::key_suffix("/lane/2/call/1", Reply::together(3, Reply::text("Paris"))),
        Rule::key_suffix("/lane/3/call/1", Reply::together(3, Reply::status(500))).times(1),
        Rule::key_suffix("/lane/3/call/1", Reply::text("Lyon")),
        Rule::contains("Independent answers", Reply::text("Paris")),
    ];
    let retry = "    retry: { max_attempts: 2, backoff: constant, delay_ms: 10, retry_on: [server_error] }\n";
    let ((answer, calls, _), requests) = run_strategy_with(agents, retry, rules).await;
    assert_eq!(answer, "Paris");
    assert_eq!(calls, pairs(&[("sample", "a"), ("sample", "a"), ("sample", "a")]));
    let keys: Vec<&str> = requests.iter().map(|r| r.idempotency_key().unwrap()).collect();
    let sent = |suffix: &str| keys.iter().filter(|k| k.ends_with(suffix)).count();
    assert_eq!(
        (sent("/lane/1/call/1"), sent("/lane/2/call/1"), sent("/lane/3/call/1"), keys.len()),
        (1, 1, 2, 5),
        "{keys:?}"
    );
}

#[tokio::test]
async fn debate_alternates_its_debaters_for_its_rounds_and_a_judge_decides() {
    let agents = "  a: { model: fast, instructions: Judge., strategy: debate, debaters: [pro, con], rounds: 2 }\n  pro: { model: fast, instructions: Argue for. }\n  con: { model: fast, instructions: Argue against. }";
    let (answer, calls, asked) = run_strategy(
        agents,
        &[
            ("argument for round 1", Reply::text("pro one")),
            ("argument for round 1", Reply::text("con one")),
            ("argument for round 2", Reply::text("pro two")),
            ("argument for round 2", Reply::text("con two")),
            ("Decide the question", Reply::text("Pro wins")),
        ],
    )
    .await;
    assert_eq!(answer, "Pro wins");
    assert_eq!(calls, pairs(&[("model", "pro"), ("model", "con"), ("model", "pro"), ("model", "con")]));
    assert!(asked[1].contains("pro (round 1): pro one"), "{asked:?}");
    assert!(asked[4].contains("con (round 2): con two"), "{asked:?}");
}

/// `kill -9` inside a plan step (its model call in flight): after `jamjet
/// resume` the plan and the first step are read back, and only the
/// interrupted step's call is sent again, with its key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_inside_a_plan_step_sends_only_that_steps_call_again_with_its_key() {
    let server = ModelServer::start().await;
    server.script(Rule::contains("Make a plan", Reply::text(r#"["find the city", "find its river"]"#)).times(1));
    server.script(Rule::contains("Now carry out step 1", Reply::text("Paris")).times(1));
    // Held: the process is killed while this call is in flight.
    server.script(Rule::contains("Now carry out step 2", Reply::Hold).times(1));
    server.script(Rule::contains("Now carry out step 2", Reply::text("the Seine")).times(1));
    server.script(Rule::contains("Write the final answer", Reply::text("Paris, on the Seine.")).times(1));
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let file = dir.path().join("plan.yaml");
    let agents = "  a: { model: fast, instructions: Answer., strategy: plan-and-execute }";
    std::fs::write(&file, strategy_flow(&server, agents)).unwrap();
    let mut cmd = support::run_to_kill(&data, &file, "{}");
    cmd.env(KEY_VAR, SECRET);
    let mut child = cmd.spawn().unwrap();
    let in_flight = server.wait_for_requests(3, LIMIT).await;
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(in_flight, "the second step's call was never sent: {:?}", server.requests().len());
    let resumed = resume(&data).await;
    assert_eq!(resumed[0]["state"]["answer"], "Paris, on the Seine.", "{resumed}");
    let requests = server.requests();
    let asked = |text: &str| requests.iter().filter(|r| r.last_user.contains(text)).count();
    assert_eq!((asked("Make a plan"), asked("step 1"), asked("step 2"), requests.len()), (1, 1, 2, 5));
    let step2: Vec<&str> =
        requests.iter().filter(|r| r.last_user.contains("step 2")).map(|r| r.idempotency_key().unwrap()).collect();
    assert_eq!(step2[0], step2[1], "the interrupted call is sent again with its own key");
}

/// `kill -9` right after the plan is durable: after `jamjet resume` the
/// plan is not asked for again and the steps run from it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_after_the_plan_resumes_at_the_first_step_without_planning_again() {
    let server = ModelServer::start().await;
    server.script(Rule::contains("Make a plan", Reply::text(r#"["find the city"]"#)).times(1));
    server.script(Rule::contains("Now carry out step 1", Reply::text("Paris")).times(1));
    server.script(Rule::contains("Write the final answer", Reply::text("Paris.")).times(1));
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let file = dir.path().join("plan.yaml");
    let agents = "  a: { model: fast, instructions: Answer., strategy: plan-and-execute }";
    std::fs::write(&file, strategy_flow(&server, agents)).unwrap();
    let mut cmd = support::run_to_kill(&data, &file, "{}");
    cmd.env(KEY_VAR, SECRET);
    tokio::task::spawn_blocking(move || support::kill_when_paused(cmd, "Call:1", LIMIT, "jamjet run")).await.unwrap();
    let resumed = resume(&data).await;
    assert_eq!(resumed[0]["state"]["answer"], "Paris.", "{resumed}");
    let plans = server.requests().iter().filter(|r| r.last_user.contains("Make a plan")).count();
    assert_eq!(plans, 1, "the plan was asked for once");
    assert_eq!(server.requests().len(), 3);
}

/// `cargo run --example research_writer` runs offline: the researcher
/// searches, the writer's first draft is critiqued and revised.
#[test]
fn the_research_writer_example_runs_offline_with_one_command() {
    let bin = support::mcp::example_binary("research_writer");
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = std::process::Command::new(bin);
    cmd.current_dir(env!("CARGO_MANIFEST_DIR")).env("JAMJET_DATA_DIR", dir.path()).env_remove("RUST_LOG");
    let done = support::run_bounded(cmd, support::COMMAND_LIMIT, "the research_writer example");
    let out = String::from_utf8_lossy(&done.output.stdout);
    assert!(done.output.status.success(), "{out}\n{}", String::from_utf8_lossy(&done.output.stderr));
    assert!(out.contains(" completed\n") && out.contains("Sources: Temporal docs"), "{out}");
    for call in ["call 2  tool     search_notes", "call 2  critique writer", "call 4  critique writer"] {
        assert!(out.contains(call), "{call} missing:\n{out}");
    }
}

/// The failure of the one execution in `rt`: (class, message).
fn failure(rt: &Runtime, id: ExecutionId) -> (ErrorClass, String) {
    rt.events(id)
        .unwrap()
        .into_iter()
        .find_map(|r| match r.event {
            Event::NodeFailed { class, message, .. } => Some((class, message)),
            _ => None,
        })
        .expect("a node failed")
}

#[tokio::test]
async fn a_cost_budget_is_crossed_mid_loop_like_a_token_budget() {
    let server = ModelServer::start().await;
    server.script(Rule::always(Reply::tool_call("add", json!({"a": 1, "b": 1}))));
    let mcp = McpHttpServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let rt = open(dir.path()).await;
    // 1,000 USD per million tokens: a token costs a tenth of a cent.
    let wf = compile(&flow(&server, &mcp.url, "    max_cost_usd: 0.02\n", ""));
    let out = run(&rt, &wf, json!({"topic": "loops"})).await;
    assert_eq!(out.status, Status::Failed);
    let (class, message) = failure(&rt, out.id);
    assert_eq!(class, ErrorClass::BudgetExceeded);
    assert!(
        message.contains("agent `researcher` spent $0.0") && message.contains("of its $0.02 `max_cost_usd`"),
        "{message}"
    );
    assert!(out.usage.cost_usd > 0.02, "{:?}", out.usage);
    rt.shutdown().await;
}

/// A restart does not reset what was spent: killed after its second call
/// and resumed, the agent crosses its budget at the same call, with the
/// same figures, as a run that was never interrupted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_budget_crossed_after_a_restart_counts_what_was_spent_before_it() {
    let budget = "    max_tokens: 20\n";
    // Uninterrupted, for comparison.
    let server = ModelServer::start().await;
    server.script(Rule::always(Reply::tool_call("add", json!({"a": 1, "b": 1}))));
    let mcp = McpHttpServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let rt = open(dir.path()).await;
    let out = run(&rt, &compile(&flow(&server, &mcp.url, budget, "")), json!({"topic": "loops"})).await;
    let (_, uninterrupted) = failure(&rt, out.id);
    let made = server.requests().len();
    rt.shutdown().await;

    let server = ModelServer::start().await;
    server.script(Rule::always(Reply::tool_call("add", json!({"a": 1, "b": 1}))));
    let mcp = McpHttpServer::start().await;
    let data = dir.path().join("cli");
    let file = dir.path().join("budget.yaml");
    std::fs::write(&file, flow(&server, &mcp.url, budget, "")).unwrap();
    let mut cmd = support::run_to_kill(&data, &file, r#"{"topic": "loops"}"#);
    cmd.env(KEY_VAR, SECRET);
    tokio::task::spawn_blocking(move || support::kill_when_paused(cmd, "Call:2", LIMIT, "jamjet run")).await.unwrap();
    let d = data.clone();
    let resumed = tokio::task::spawn_blocking(move || {
        jamjet().env(KEY_VAR, SECRET).arg("--data-dir").arg(&d).args(["resume", "--json"]).output_bounded()
    })
    .await
    .unwrap();
    let resumed: Value = serde_json::from_slice(&resumed.stdout).unwrap();
    assert_eq!(resumed[0]["status"], "failed", "{resumed}");
    let error = resumed[0]["error"].as_str().unwrap_or_default();
    assert!(error.contains(&uninterrupted), "after the restart: {error}\nuninterrupted: {uninterrupted}");
    assert_eq!(server.requests().len(), made, "the same model calls, none repeated");
}

/// `jamjet resume --json` on `data`: every execution's outcome.
async fn resume(data: &Path) -> Value {
    let d = data.to_path_buf();
    tokio::task::spawn_blocking(move || support::jamjet_json_with(&d, &[(KEY_VAR, SECRET)], &["resume", "--json"]))
        .await
        .unwrap()
}
