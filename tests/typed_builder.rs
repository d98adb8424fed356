//! The typed Rust workflow builder (`jamjet::typed`): the IR it builds is
//! the one the equivalent YAML compiles to; `run_typed` end to end with
//! an agent inside a step (`ctx.agent`) against a loopback model server;
//! a retried step reads every piece and agent call back; a step that asks
//! for another call on replay fails as `nondeterminism`; a Rust tool's
//! derived schema reaches the model and its arguments are parsed; a state
//! type that does not fit is a clear error.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use jamjet::journal::{Event, Status};
use jamjet::nodes::FunctionError;
use jamjet::typed::{Agent, Branch, BuildError, Model, RunError, StepCtx, Strategy, Tool, Workflow};
use jamjet::{Runtime, compile_str};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;
use support::model_server::{ModelServer, Reply, Rule};

const LIMIT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
struct Research {
    topic: String,
    research: Option<String>,
    summary: Option<String>,
    words: u32,
}

/// Where to fetch a page from.
#[derive(Deserialize, JsonSchema)]
struct FetchArgs {
    /// The page's address.
    url: String,
}

/// `fetch_page`, counting its runs.
fn fetch_page(runs: Arc<AtomicU32>) -> Tool {
    Tool::new("fetch_page", move |args: FetchArgs| {
        let runs = runs.clone();
        async move {
            runs.fetch_add(1, Ordering::SeqCst);
            Ok::<_, String>(format!("the page at {} says: journals make programs durable", args.url))
        }
    })
}

fn researcher(tool: Tool) -> Agent {
    Agent::new("researcher")
        .model("fast")
        .instructions("You are a researcher. Find accurate information on {{ state.topic }}.")
        .tool(tool)
        .strategy(Strategy::React)
        .max_iterations(5)
}

/// An agent `researcher` without tools.
fn plain_researcher() -> Agent {
    Agent::new("researcher").model("fast").instructions("You are a researcher.")
}

/// The `research-writer` workflow so far: its state, the `fast` model on
/// `server`, and `agent`; the steps come after.
fn research_with(server: &ModelServer, agent: Agent) -> jamjet::typed::Builder<Research> {
    Workflow::builder("research-writer").state::<Research>().model("fast", fast(server)).agent(agent)
}

fn fast(server: &ModelServer) -> Model {
    Model::new("openai", "test-gpt").base_url(server.openai_base())
}

async fn open() -> Runtime {
    Runtime::builder().in_memory().open().await.unwrap()
}

#[tokio::test]
async fn the_builder_builds_the_ir_the_equivalent_yaml_compiles_to() {
    let server = ModelServer::start().await;
    let wf = Workflow::builder("research-writer")
        .version("0.2.0")
        .state::<Research>()
        .model("fast", fast(&server))
        .agent(researcher(fetch_page(Arc::default())))
        .step("research", |s: Research, _ctx: StepCtx| async move { Ok(s) })
        .branch("route", Branch::new().when("state.words > 100", "shorten").otherwise("write"))
        .step("shorten", |s: Research, _ctx: StepCtx| async move { Ok(s) })
        .next("write")
        .step("write", |s: Research, _ctx: StepCtx| async move { Ok(s) })
        .build()
        .unwrap();
    let yaml = format!(
        r#"
workflow:
  id: research-writer
  version: 0.2.0
  state_schema: {{ topic: str, research: "optional[str]", summary: "optional[str]", words: int }}
  start: research
models:
  fast: {{ provider: openai, model: test-gpt, base_url: "{}" }}
agents:
  researcher:
    model: fast
    instructions: "You are a researcher. Find accurate information on {{{{ state.topic }}}}."
    tools: [fetch_page]
    strategy: react
    max_iterations: 5
nodes:
  research: {{ type: function, function: research-writer/research, next: route }}
  route:
    type: branch
    conditions:
      - {{ when: "state.words > 100", next: shorten }}
    default: write
  shorten: {{ type: function, function: research-writer/shorten, next: write }}
  write: {{ type: function, function: research-writer/write }}
"#,
        server.openai_base()
    );
    let compiled = compile_str(&yaml, "research-writer.yaml").unwrap_or_else(|d| panic!("{d}"));
    assert_eq!(wf.ir().content_hash(), compiled.content_hash(), "built:\n{}", wf.source());
    assert_eq!(wf.ir().nodes.keys().collect::<Vec<_>>(), ["research", "route", "shorten", "write"]);
    assert_eq!(wf.function_name("write"), "research-writer/write");
}

#[tokio::test]
async fn run_typed_runs_an_agent_inside_a_step_and_gives_the_typed_state() {
    let server = ModelServer::start().await;
    let wf = research_with(&server, plain_researcher())
        .step("research", |s: Research, ctx: StepCtx| async move {
            let r = ctx.agent("researcher").run(format!("Research: {}", s.topic)).await?;
            Ok(Research { words: r.output.split_whitespace().count() as u32, research: Some(r.output), ..s })
        })
        .step("write", |s: Research, _ctx: StepCtx| async move {
            let summary = format!("Summary of {}", s.research.as_deref().unwrap_or("-"));
            Ok(Research { summary: Some(summary), ..s })
        })
        .build()
        .unwrap();
    let rt = open().await;
    let start = Research { topic: "durable execution".into(), ..Default::default() };
    let result = tokio::time::timeout(LIMIT, rt.run_typed(&wf, start)).await.unwrap().unwrap();
    // The loopback model echoes the last user message.
    assert_eq!(result.state.research.as_deref(), Some("echo: Research: durable execution"));
    assert_eq!(result.state.summary.as_deref(), Some("Summary of echo: Research: durable execution"));
    assert_eq!(result.state.words, 4);
    assert_eq!(result.steps_executed, 2);
    assert!(result.usage.input_tokens > 0, "{:?}", result.usage);
    let calls: Vec<(String, String, String)> = rt
        .events(result.execution_id)
        .unwrap()
        .into_iter()
        .filter_map(|r| match r.event {
            Event::Call { node, call, .. } => Some((node, call.kind, call.name)),
            _ => None,
        })
        .collect();
    assert_eq!(calls, [("research".to_string(), "model".to_string(), "researcher".to_string())]);
    assert_eq!(server.requests().len(), 1);
    rt.shutdown().await;
}

#[tokio::test]
async fn a_retried_step_reads_back_its_pieces_and_its_agents_calls() {
    let server = ModelServer::start().await;
    server.script(Rule::contains("Research:", Reply::tool_call("fetch_page", json!({"url": "https://a.example"}))));
    let tool_runs = Arc::new(AtomicU32::new(0));
    let pieces = Arc::new(AtomicU32::new(0));
    let attempts = Arc::new(AtomicU32::new(0));
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (p, a, c) = (pieces.clone(), attempts.clone(), seen.clone());
    let wf = research_with(&server, researcher(fetch_page(tool_runs.clone())))
        .step("research", move |s: Research, ctx: StepCtx| {
            let (pieces, attempts, seen) = (p.clone(), a.clone(), c.clone());
            async move {
                let attempt = attempts.fetch_add(1, Ordering::SeqCst) + 1;
                let words: u32 = ctx
                    .run("count", async {
                        pieces.fetch_add(1, Ordering::SeqCst);
                        Ok::<_, String>(7)
                    })
                    .await?;
                let r = ctx.agent("researcher").run(format!("Research: {}", s.topic)).await?;
                let calls: Vec<(u32, String, String)> =
                    r.calls.iter().map(|c| (c.n, c.kind.clone(), c.name.clone())).collect();
                seen.lock().unwrap().push(calls);
                if attempt == 1 {
                    return Err(FunctionError::new("the disk was full"));
                }
                Ok(Research { research: Some(r.output), words, ..s })
            }
        })
        .retry(2, 1)
        .build()
        .unwrap();
    let rt = open().await;
    let start = Research { topic: "journals".into(), ..Default::default() };
    let result = tokio::time::timeout(LIMIT, rt.run_typed(&wf, start)).await.unwrap().unwrap();
    assert_eq!(attempts.load(Ordering::SeqCst), 2);
    assert_eq!(result.state.words, 7);
    let research = result.state.research.unwrap_or_default();
    assert!(research.starts_with("tool said: the page at https://a.example"), "{research}");
    // Nothing ran twice: the piece, the tool and each model call once.
    assert_eq!((pieces.load(Ordering::SeqCst), tool_runs.load(Ordering::SeqCst)), (1, 1));
    let requests = server.requests();
    assert_eq!(requests.len(), 2, "two model calls, each made once");
    let keys: Vec<String> = requests.iter().map(|r| r.idempotency_key().unwrap_or_default().to_string()).collect();
    let visit = format!("{}/research/1", result.execution_id);
    assert_eq!(keys, [format!("{visit}/call/2"), format!("{visit}/call/4")]);
    // One numbered order: the piece, then the agent's model, tool and model calls.
    let calls: Vec<(u32, u32, String, String)> = rt
        .events(result.execution_id)
        .unwrap()
        .into_iter()
        .filter_map(|r| match r.event {
            Event::Call { attempt, call, .. } => Some((attempt, call.n, call.kind, call.name)),
            _ => None,
        })
        .collect();
    let expected = [
        (1, 1, "run", "count"),
        (1, 2, "model", "researcher"),
        (1, 3, "tool", "fetch_page"),
        (1, 4, "model", "researcher"),
    ];
    let expected: Vec<(u32, u32, String, String)> =
        expected.iter().map(|(a, n, k, c)| (*a, *n, k.to_string(), c.to_string())).collect();
    assert_eq!(calls, expected);
    // Each attempt's run hands back its own calls: made (attempt 1), read back (attempt 2).
    let own: Vec<(u32, String, String)> = expected[1..].iter().map(|(_, n, k, c)| (*n, k.clone(), c.clone())).collect();
    assert_eq!(*seen.lock().unwrap(), [own.clone(), own]);
    rt.shutdown().await;
}

#[tokio::test]
async fn a_step_that_asks_for_an_agent_where_a_piece_ran_fails_as_nondeterminism() {
    let server = ModelServer::start().await;
    let attempts = Arc::new(AtomicU32::new(0));
    let a = attempts.clone();
    let wf = research_with(&server, plain_researcher())
        .step("research", move |s: Research, ctx: StepCtx| {
            let attempts = a.clone();
            async move {
                let attempt = attempts.fetch_add(1, Ordering::SeqCst) + 1;
                // Attempt 1 runs a piece first; attempt 2 asks the agent first.
                if attempt == 1 {
                    ctx.run("lookup", async { Ok::<_, String>(1) }).await?;
                    return Err(FunctionError::new("the lookup was not enough"));
                }
                let r = ctx.agent("researcher").run("Research").await?;
                Ok(Research { research: Some(r.output), ..s })
            }
        })
        .retry(3, 1)
        .build()
        .unwrap();
    let rt = open().await;
    let err = tokio::time::timeout(LIMIT, rt.run_typed(&wf, Research::default())).await.unwrap().unwrap_err();
    let RunError::Failed { id, status, node, message } = &err else { panic!("{err}") };
    assert_eq!((*status, node.as_str()), (Status::Failed, "research"));
    assert!(message.contains("call 1 is a model call of `researcher`"), "{message}");
    assert!(message.contains("recorded a run call of `lookup`"), "{message}");
    assert!(err.to_string().contains(&id.to_string()), "{err}");
    assert_eq!(attempts.load(Ordering::SeqCst), 2, "nondeterminism is not retried");
    assert!(server.requests().is_empty(), "the diverging agent made no call");
    rt.shutdown().await;
}

#[tokio::test]
async fn a_rust_tools_schema_reaches_the_model_and_bad_arguments_are_told_to_it() {
    let server = ModelServer::start().await;
    server.script(Rule::contains("Research:", Reply::tool_call("fetch_page", json!({"link": 5}))).times(1));
    let runs = Arc::new(AtomicU32::new(0));
    let wf = research_with(&server, researcher(fetch_page(runs.clone())))
        .step("research", |s: Research, ctx: StepCtx| async move {
            let r = ctx.agent("researcher").run("Research: journals").await?;
            Ok(Research { research: Some(r.output), ..s })
        })
        .build()
        .unwrap();
    let rt = open().await;
    let result = tokio::time::timeout(LIMIT, rt.run_typed(&wf, Research::default())).await.unwrap().unwrap();
    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    let tool = &requests[0].body["tools"][0]["function"];
    assert_eq!(tool["name"], "fetch_page");
    assert_eq!(tool["description"], "Where to fetch a page from.");
    assert_eq!(tool["parameters"]["properties"]["url"]["type"], "string");
    assert_eq!(tool["parameters"]["required"], json!(["url"]));
    // The bad call did not run the tool: the model was told why.
    assert_eq!(runs.load(Ordering::SeqCst), 0);
    let told = &requests[1].last_user;
    assert!(told.contains("the arguments of `fetch_page` do not fit its parameters"), "{told}");
    assert!(result.state.research.unwrap_or_default().contains("missing field `url`"));
    rt.shutdown().await;
}

#[derive(Debug, Default, Serialize, Deserialize, JsonSchema)]
struct Counted {
    /// Declared an integer, written as text.
    #[serde(serialize_with = "as_text")]
    count: u32,
}

fn as_text<S: serde::Serializer>(n: &u32, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&n.to_string())
}

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
enum Shape {
    Circle { r: f64 },
    Square(f64),
}

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
struct Shaped {
    shape: Shape,
}

#[tokio::test]
async fn a_state_type_that_does_not_fit_is_a_clear_error() {
    // No state type for an enum with data: the build says which field.
    let err = Workflow::builder("shapes")
        .state::<Shaped>()
        .step("one", |s: Shaped, _ctx: StepCtx| async move { Ok(s) })
        .build()
        .err()
        .expect("an enum with data has no state type");
    let text = err.to_string();
    assert!(matches!(err, BuildError::State { .. }) && text.contains("field `shape`"), "{text}");

    // A type whose values do not fit its own schema: the run is refused
    // before it starts, naming the key.
    let wf = Workflow::builder("counted")
        .state::<Counted>()
        .step("one", |s: Counted, _ctx: StepCtx| async move { Ok(s) })
        .build()
        .unwrap();
    let rt = open().await;
    let err = rt.run_typed(&wf, Counted { count: 3 }).await.unwrap_err();
    assert!(err.to_string().contains("state key `count` must be int"), "{err}");
    assert!(rt.list(None).unwrap().is_empty(), "no execution started");
    rt.shutdown().await;
}

#[tokio::test]
async fn build_errors_name_the_step_or_the_agent() {
    let err = Workflow::builder("broken")
        .state::<Research>()
        .agent(Agent::new("researcher").model("nowhere").instructions("Find."))
        .step("research", |s: Research, _ctx: StepCtx| async move { Ok(s) })
        .next("missing")
        .build()
        .err()
        .expect("a workflow with findings does not build");
    let BuildError::Invalid { workflow, findings } = &err else { panic!("{err}") };
    assert_eq!(workflow, "broken");
    assert!(findings.iter().any(|f| f.starts_with("step `research`") && f.contains("missing")), "{findings:?}");
    assert!(findings.iter().any(|f| f.starts_with("agent `researcher`") && f.contains("nowhere")), "{findings:?}");
}

/// `cargo run --example research_agent` runs offline: the researcher calls
/// its Rust tool, the writer's first draft is critiqued and revised, each
/// inside a typed step.
#[test]
fn the_research_agent_example_runs_offline_with_one_command() {
    let bin = support::mcp::example_binary("research_agent");
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = std::process::Command::new(bin);
    cmd.current_dir(env!("CARGO_MANIFEST_DIR")).env("JAMJET_DATA_DIR", dir.path()).env_remove("RUST_LOG");
    let done = support::run_bounded(cmd, support::COMMAND_LIMIT, "the research_agent example");
    let out = String::from_utf8_lossy(&done.output.stdout);
    assert!(done.output.status.success(), "{out}\n{}", String::from_utf8_lossy(&done.output.stderr));
    assert!(out.contains(" completed in 2 steps\n") && out.contains("Sources: Temporal docs"), "{out}");
    for call in
        ["research call 2  tool     search_notes", "write    call 2  critique writer", "call 4  critique writer"]
    {
        assert!(out.contains(call), "{call} missing:\n{out}");
    }
}

/// The research step of `research_writer` that hangs after its agent
/// answered while `hang` is set.
fn hanging_flow(server: &ModelServer, hang: Arc<std::sync::atomic::AtomicBool>) -> Workflow<Research> {
    research_with(server, plain_researcher())
        .step("research", move |s: Research, ctx: StepCtx| {
            let hang = hang.clone();
            async move {
                let r = ctx.agent("researcher").run(format!("Research: {}", s.topic)).await?;
                if hang.load(Ordering::SeqCst) {
                    std::future::pending::<()>().await;
                }
                Ok(Research { research: Some(r.output), ..s })
            }
        })
        .build()
        .unwrap()
}

#[tokio::test]
async fn a_step_resumed_after_a_restart_reads_its_agents_calls_back() {
    let server = ModelServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let hang = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let wf = hanging_flow(&server, hang.clone());
    let rt = Runtime::builder().data_dir(dir.path()).workflow(&wf).open().await.unwrap();
    let start = Research { topic: "journals".into(), ..Default::default() };
    let id = rt.submit(wf.ir(), serde_json::to_value(&start).unwrap()).await.unwrap();
    // Bounded: until the agent's call is in the journal.
    let deadline = tokio::time::Instant::now() + LIMIT;
    while !rt.events(id).unwrap().iter().any(|r| matches!(r.event, Event::Call { .. })) {
        assert!(tokio::time::Instant::now() < deadline, "the agent's call was not journaled");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    rt.shutdown().await;

    hang.store(false, Ordering::SeqCst);
    let rt = Runtime::builder().data_dir(dir.path()).workflow(&wf).open().await.unwrap();
    let out = tokio::time::timeout(LIMIT, rt.wait(id)).await.unwrap().unwrap();
    assert_eq!(out.status, Status::Completed, "{:?}", out.error);
    assert_eq!(out.state["research"], "echo: Research: journals");
    assert_eq!(server.requests().len(), 1, "the model was not called again");
    rt.shutdown().await;
}

#[tokio::test]
async fn an_agents_failure_inside_a_step_fails_the_step_naming_the_agent() {
    let server = ModelServer::start().await;
    server.script(Rule::always(Reply::status(400)));
    let wf = hanging_flow(&server, Arc::default());
    let rt = open().await;
    let err = tokio::time::timeout(LIMIT, rt.run_typed(&wf, Research::default())).await.unwrap().unwrap_err();
    let RunError::Failed { node, message, .. } = &err else { panic!("{err}") };
    assert_eq!(node, "research");
    assert!(message.contains("step `research`: agent `researcher`"), "{message}");
    assert!(rt.events(rt.list(None).unwrap()[0].id).unwrap().iter().all(|r| !matches!(r.event, Event::Call { .. })));
    rt.shutdown().await;
}

/// Outside a step (a function called directly) an agent does not run.
#[tokio::test]
async fn an_agent_asked_for_outside_a_step_is_a_clear_error() {
    let steps = jamjet::nodes::Steps::detached();
    let err = steps.agent("researcher").run("hello").await.unwrap_err();
    assert_eq!(err.class, jamjet::journal::ErrorClass::ClientError);
    assert!(err.message.contains("runs inside a step of an execution"), "{}", err.message);
}

#[tokio::test]
async fn a_step_that_runs_a_piece_where_an_agent_called_its_model_fails_as_nondeterminism() {
    let server = ModelServer::start().await;
    let attempts = Arc::new(AtomicU32::new(0));
    let a = attempts.clone();
    let wf = research_with(&server, plain_researcher())
        .step("research", move |s: Research, ctx: StepCtx| {
            let attempts = a.clone();
            async move {
                // Attempt 1 asks the agent and fails; attempt 2 runs a piece first.
                if attempts.fetch_add(1, Ordering::SeqCst) == 0 {
                    ctx.agent("researcher").run("Research").await?;
                    return Err(FunctionError::new("the answer was lost"));
                }
                let n: u32 = ctx.run("lookup", async { Ok::<_, String>(1) }).await?;
                Ok(Research { words: n, ..s })
            }
        })
        .retry(3, 1)
        .build()
        .unwrap();
    let rt = open().await;
    let err = tokio::time::timeout(LIMIT, rt.run_typed(&wf, Research::default())).await.unwrap().unwrap_err();
    let RunError::Failed { node, message, .. } = &err else { panic!("{err}") };
    assert_eq!(node, "research");
    assert!(message.contains("ran piece 1 as `lookup`"), "{message}");
    assert!(message.contains("the journal recorded `researcher` (model) there"), "{message}");
    assert_eq!((attempts.load(Ordering::SeqCst), server.requests().len()), (2, 1));
    rt.shutdown().await;
}

/// A step cannot park: an agent inside it whose tool call needs a
/// person's decision fails the step clearly, and the tool never runs.
#[tokio::test]
async fn an_agent_in_a_step_whose_tool_call_needs_approval_fails_the_step_clearly() {
    let server = ModelServer::start().await;
    server.script(Rule::contains("Research:", Reply::tool_call("fetch_page", json!({"url": "http://x"}))).times(1));
    let runs = Arc::new(AtomicU32::new(0));
    let wf = research_with(&server, researcher(fetch_page(runs.clone())).field("approval", json!(["fetch_page"])))
        .step("research", |s: Research, ctx: StepCtx| async move {
            let r = ctx.agent("researcher").run("Research: journals").await?;
            Ok(Research { research: Some(r.output), ..s })
        })
        .build()
        .unwrap();
    let rt = open().await;
    let err = tokio::time::timeout(LIMIT, rt.run_typed(&wf, Research::default())).await.unwrap().unwrap_err();
    let RunError::Failed { node, message, .. } = &err else { panic!("{err}") };
    assert_eq!(node, "research");
    assert!(message.contains("need a person's decision (research.1)"), "{message}");
    assert!(message.contains("a step cannot wait for one"), "{message}");
    assert_eq!(runs.load(Ordering::SeqCst), 0, "the tool never ran");
    rt.shutdown().await;
}

/// In a session, an agent a step runs is given the conversation so far
/// (each earlier task's input and final state) ahead of its message, as an
/// agent node is.
#[tokio::test]
async fn an_agent_inside_a_step_of_a_session_is_given_the_conversation_so_far() {
    let server = ModelServer::start().await;
    let wf = research_with(&server, plain_researcher())
        .step("research", |s: Research, ctx: StepCtx| async move {
            let r = ctx.agent("researcher").run(format!("Research: {}", s.topic)).await?;
            Ok(Research { research: Some(r.output), ..s })
        })
        .build()
        .unwrap();
    let rt = open().await;
    rt.register_typed(&wf);
    for topic in ["journals", "sessions"] {
        let input = serde_json::to_value(Research { topic: topic.into(), ..Default::default() }).unwrap();
        let out = tokio::time::timeout(LIMIT, rt.run_in_session(wf.ir(), input, "chat-1")).await.unwrap().unwrap();
        assert_eq!(out.status, Status::Completed, "{:?}", out.error);
    }
    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    assert!(!requests[0].body["messages"].to_string().contains("sessions"), "the first task has no history");
    let messages = requests[1].body["messages"].as_array().unwrap();
    let earlier = serde_json::to_string(&messages[..messages.len() - 1]).unwrap();
    assert!(earlier.contains("journals") && earlier.contains("echo: Research: journals"), "{earlier}");
    assert_eq!(messages.last().unwrap()["content"], "Research: sessions");
    rt.shutdown().await;
}

/// A patch step returns some of the state's keys: those replace the
/// state's, the others stay; a key the state does not have fails the step
/// as the state's schema says.
#[tokio::test]
async fn a_patch_step_replaces_only_the_keys_it_returns() {
    let wf = Workflow::builder("patched")
        .state::<Research>()
        .patch_step("count", |s: Research, _ctx: StepCtx| async move {
            Ok(json!({"words": s.topic.split_whitespace().count()}))
        })
        .build()
        .unwrap();
    let rt = open().await;
    let start = Research { topic: "durable agent runs".into(), research: Some("kept".into()), ..Default::default() };
    let result = tokio::time::timeout(LIMIT, rt.run_typed(&wf, start)).await.unwrap().unwrap();
    assert_eq!(result.state.words, 3);
    assert_eq!(result.state.topic, "durable agent runs");
    assert_eq!(result.state.research.as_deref(), Some("kept"));

    let bad = Workflow::builder("patched-badly")
        .state::<Research>()
        .patch_step("count", |_s: Research, _ctx: StepCtx| async move { Ok(json!({"wordz": 3})) })
        .build()
        .unwrap();
    let err = tokio::time::timeout(LIMIT, rt.run_typed(&bad, Research::default())).await.unwrap().unwrap_err();
    let RunError::Failed { node, message, .. } = &err else { panic!("{err}") };
    assert_eq!(node, "count");
    assert!(message.contains("wordz"), "{message}");
    rt.shutdown().await;
}
