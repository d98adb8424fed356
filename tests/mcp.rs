//! `type: tool` over MCP against real servers: the example server
//! (`examples/mcp_server.rs`) over stdio and over streamable HTTP, and the
//! npm reference server `@modelcontextprotocol/server-everything` over
//! stdio through `npx`. Server processes are really killed (`crash`, `kill
//! -9`), and so is the `jamjet` binary in the middle of a tool call.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use jamjet::journal::{ErrorClass, Event, Status};
use jamjet::{Runtime, ir};
use serde_json::{Value, json};
use support::mcp::{EVERYTHING_PACKAGE, HttpServer, everything_dir, example_server, gone_within, recorded};
use support::{OutputBounded, jamjet, jamjet_json};

const LIMIT: Duration = Duration::from_secs(60);

/// Bounded in time: a hang fails the test instead of stalling CI.
async fn within<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(LIMIT, f).await.unwrap_or_else(|_| panic!("{what} did not happen within {LIMIT:?}"))
}

fn compile(src: &str) -> ir::Workflow {
    ir::compile_str(src, "test.yaml").unwrap_or_else(|d| panic!("{d}\n{src}"))
}

/// A YAML (JSON) string literal.
fn q(s: impl AsRef<str>) -> String {
    serde_json::to_string(s.as_ref()).unwrap()
}

/// The example server over stdio, recording into `count_file`.
fn stdio_server(count_file: &Path) -> String {
    format!(
        "{{ command: {}, args: [\"--count-file\", {}] }}",
        q(example_server().display().to_string()),
        q(count_file.display().to_string())
    )
}

/// A workflow with one MCP server `ex` and the given nodes.
fn workflow(server: &str, schema: &str, nodes: &str) -> ir::Workflow {
    compile(&format!("id: mcp-test\nstate_schema: {schema}\nmcp:\n  servers:\n    ex: {server}\nnodes:\n{nodes}"))
}

async fn runtime() -> Runtime {
    Runtime::builder().in_memory().open().await.unwrap()
}

fn events(rt: &Runtime, id: jamjet::ExecutionId) -> Vec<Event> {
    rt.events(id).unwrap().into_iter().map(|r| r.event).collect()
}

fn exchanges(evs: &[Event]) -> Vec<(String, Value, Value)> {
    evs.iter()
        .filter_map(|e| match e {
            Event::Exchange { node, request, response, .. } => {
                Some((node.clone(), request.value().unwrap(), response.value().unwrap()))
            }
            _ => None,
        })
        .collect()
}

fn failures(evs: &[Event]) -> Vec<(String, u32, ErrorClass, String)> {
    evs.iter()
        .filter_map(|e| match e {
            Event::NodeFailed { node, attempt, class, message, .. } => {
                Some((node.clone(), *attempt, *class, message.clone()))
            }
            _ => None,
        })
        .collect()
}

const THREE_TOOLS: &str = r#"  add:
    type: tool
    server: ex
    tool: add
    arguments: { a: "{{ state.a }}", b: "{{ state.b }}" }
    output_key: total
    next: echo
  echo:
    type: tool
    server: ex
    tool: echo
    arguments: { text: "sum={{ state.total.sum }}" }
    output_key: said
    next: count
  count: { type: tool, server: ex, tool: count, output_key: counted }
"#;
const THREE_SCHEMA: &str = "{ a: int, b: int, total: any, said: any, counted: any }";

/// Structured content, text content and the idempotency key in `_meta`,
/// with what each call sent and got journaled as an Exchange.
async fn three_tools(server: &str, count_file: &Path) {
    let wf = workflow(server, THREE_SCHEMA, THREE_TOOLS);
    let rt = runtime().await;
    let out = within("the workflow", rt.run(&wf, json!({"a": 2, "b": 3}))).await.unwrap();
    assert_eq!(out.status, Status::Completed, "{:?}", out.error);
    let key = format!("{}/count/1", out.id);
    assert_eq!(out.state["total"], json!({"sum": 5.0}));
    assert_eq!(out.state["said"], json!("sum=5.0"));
    assert_eq!(out.state["counted"], json!({"key": key, "seen": 1}));
    let seen: Vec<String> = recorded(count_file).into_iter().map(|(k, _)| k).collect();
    assert_eq!(seen, vec![key]);
    let ex = exchanges(&events(&rt, out.id));
    assert_eq!(ex.len(), 3, "{ex:?}");
    assert_eq!(ex[0].0, "add");
    assert_eq!(ex[0].1, json!({"server": "ex", "tool": "add", "arguments": {"a": 2, "b": 3}}));
    assert_eq!(ex[0].2["structuredContent"], json!({"sum": 5.0}));
    assert_eq!(ex[1].2["content"][0]["text"], json!("sum=5.0"));
    rt.shutdown().await;
}

#[tokio::test]
async fn stdio_tool_results_go_into_state_and_the_key_travels_in_meta() {
    let dir = tempfile::tempdir().unwrap();
    let count_file = dir.path().join("count");
    three_tools(&stdio_server(&count_file), &count_file).await;
}

#[tokio::test]
async fn streamable_http_tool_results_go_into_state_and_the_key_travels_in_meta() {
    let dir = tempfile::tempdir().unwrap();
    let count_file = dir.path().join("count");
    let server = HttpServer::start(&count_file);
    // A header value read from the environment when the client connects.
    let config = format!("{{ url: {}, headers: {{ X-Caller-Path: \"${{PATH}}\" }} }}", q(&server.url));
    three_tools(&config, &count_file).await;
}

#[tokio::test]
async fn an_error_result_fails_the_node_with_the_servers_message_and_is_not_retried() {
    let dir = tempfile::tempdir().unwrap();
    let nodes = r#"  boom:
    type: tool
    server: ex
    tool: fail
    arguments: { message: "the disk is full" }
    retry: { max_attempts: 3, backoff: constant, delay_ms: 10 }
"#;
    let wf = workflow(&stdio_server(&dir.path().join("count")), "{}", nodes);
    let rt = runtime().await;
    let out = within("the workflow", rt.run(&wf, json!({}))).await.unwrap();
    assert_eq!(out.status, Status::Failed);
    let error = out.error.unwrap();
    assert!(error.contains("the disk is full") && error.contains("node `boom`"), "{error}");
    let evs = events(&rt, out.id);
    let failed = failures(&evs);
    assert_eq!(failed.len(), 1, "an error result is not retried by default: {failed:?}");
    assert_eq!(failed[0].2, ErrorClass::ClientError);
    let ex = exchanges(&evs);
    assert_eq!(ex.len(), 1);
    assert_eq!(ex[0].2["isError"], json!(true));
    rt.shutdown().await;
}

#[tokio::test]
async fn an_unknown_tool_fails_naming_the_node_and_the_server_and_listing_its_tools() {
    let dir = tempfile::tempdir().unwrap();
    let nodes = "  sum: { type: tool, server: ex, tool: ad, output_key: total }\n";
    let wf = workflow(&stdio_server(&dir.path().join("count")), "{ total: any }", nodes);
    let rt = runtime().await;
    let out = within("the workflow", rt.run(&wf, json!({}))).await.unwrap();
    assert_eq!(out.status, Status::Failed);
    let error = out.error.unwrap();
    assert!(error.contains("node `sum`") && error.contains("MCP server `ex` has no tool `ad`"), "{error}");
    for tool in ["add", "echo", "slow", "fail", "count", "pid", "crash"] {
        assert!(error.contains(tool), "`{tool}` is not listed: {error}");
    }
    rt.shutdown().await;
}

const PID_CRASH_PID: &str = r#"  before: { type: tool, server: ex, tool: pid, output_key: pid1, next: boom }
  boom:
    type: tool
    server: ex
    tool: crash
    output_key: crashed
    timeout_ms: 20000
    retry: { max_attempts: 3, backoff: constant, delay_ms: 50 }
    next: after
  after: { type: tool, server: ex, tool: pid, output_key: pid2 }
"#;

#[tokio::test]
async fn a_server_that_dies_mid_call_is_started_again_by_the_nodes_retry() {
    let dir = tempfile::tempdir().unwrap();
    let count_file = dir.path().join("count");
    let wf = workflow(&stdio_server(&count_file), "{ pid1: any, pid2: any, crashed: any }", PID_CRASH_PID);
    let rt = runtime().await;
    let out = within("the workflow", rt.run(&wf, json!({}))).await.unwrap();
    assert_eq!(out.status, Status::Completed, "{:?}", out.error);
    let key = format!("{}/boom/1", out.id);
    assert_eq!(out.state["crashed"], json!(format!("survived {key}")));
    let (pid1, pid2) = (out.state["pid1"].as_u64().unwrap() as u32, out.state["pid2"].as_u64().unwrap() as u32);
    assert_ne!(pid1, pid2, "the server was not started again");
    // The crashed call and its retry carried the same key, to two processes.
    assert_eq!(recorded(&count_file), vec![(key.clone(), pid1), (key, pid2)]);
    let failed = failures(&events(&rt, out.id));
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!((failed[0].0.as_str(), failed[0].1, failed[0].2), ("boom", 1, ErrorClass::Connection));
    assert!(gone_within(pid1, Duration::from_secs(10)), "the crashed server {pid1} is still there");
    rt.shutdown().await;
    assert!(gone_within(pid2, Duration::from_secs(10)), "server {pid2} outlived the runtime's shutdown");
}

#[tokio::test]
async fn a_server_killed_between_calls_is_started_again() {
    let dir = tempfile::tempdir().unwrap();
    let nodes = r#"  who:
    type: tool
    server: ex
    tool: pid
    output_key: pid
    retry: { max_attempts: 3, backoff: constant, delay_ms: 50 }
"#;
    let wf = workflow(&stdio_server(&dir.path().join("count")), "{ pid: any }", nodes);
    let rt = runtime().await;
    let first = within("the first run", rt.run(&wf, json!({}))).await.unwrap();
    let pid1 = first.state["pid"].as_u64().unwrap() as u32;
    let killed = Command::new("kill").args(["-9", &pid1.to_string()]).status().unwrap();
    assert!(killed.success());
    assert!(gone_within(pid1, Duration::from_secs(10)), "kill -9 {pid1} did not end it");
    let second = within("the second run", rt.run(&wf, json!({}))).await.unwrap();
    assert_eq!(second.status, Status::Completed, "{:?}", second.error);
    let pid2 = second.state["pid"].as_u64().unwrap() as u32;
    assert_ne!(pid1, pid2);
    rt.shutdown().await;
    assert!(gone_within(pid2, Duration::from_secs(10)), "server {pid2} outlived the runtime's shutdown");
}

#[tokio::test]
async fn concurrent_first_uses_share_one_server() {
    let dir = tempfile::tempdir().unwrap();
    let nodes = "  who: { type: tool, server: ex, tool: pid, output_key: pid }\n";
    let wf = workflow(&stdio_server(&dir.path().join("count")), "{ pid: any }", nodes);
    let rt = runtime().await;
    let mut ids = Vec::new();
    for _ in 0..8 {
        ids.push(rt.submit(&wf, json!({})).await.unwrap());
    }
    let mut pids = std::collections::BTreeSet::new();
    for id in ids {
        let out = within("an execution", rt.wait(id)).await.unwrap();
        assert_eq!(out.status, Status::Completed, "{:?}", out.error);
        pids.insert(out.state["pid"].as_u64().unwrap());
    }
    assert_eq!(pids.len(), 1, "one server for every execution: {pids:?}");
    rt.shutdown().await;
}

#[tokio::test]
async fn the_reference_server_everything_runs_over_npx() {
    let Some(dir) = everything_dir() else { return };
    let server = format!(
        "{{ command: npx, args: [\"--no-install\", \"mcp-server-everything\", \"stdio\"], cwd: {} }}",
        q(dir.display().to_string())
    );
    let nodes = r#"  sum:
    type: tool
    server: ex
    tool: get-sum
    arguments: { a: "{{ state.a }}", b: 40 }
    output_key: total
    next: echo
  echo: { type: tool, server: ex, tool: echo, arguments: { message: "hi {{ state.total }}" }, output_key: said }
"#;
    let wf = workflow(&server, "{ a: int, total: any, said: any }", nodes);
    let rt = runtime().await;
    let out =
        within(&format!("the workflow against {EVERYTHING_PACKAGE}"), rt.run(&wf, json!({"a": 2}))).await.unwrap();
    assert_eq!(out.status, Status::Completed, "{:?}", out.error);
    assert_eq!(out.state["total"], json!("The sum of 2 and 40 is 42."));
    assert_eq!(out.state["said"], json!("Echo: hi The sum of 2 and 40 is 42."));
    let bad =
        workflow(&server, "{ total: any }", "  sum: { type: tool, server: ex, tool: get-summ, output_key: total }\n");
    let out = within("the unknown tool", rt.run(&bad, json!({}))).await.unwrap();
    let error = out.error.unwrap();
    assert!(error.contains("has no tool `get-summ`") && error.contains("get-sum"), "{error}");
    rt.shutdown().await;
}

#[test]
fn an_undeclared_server_is_a_compile_error_with_line_and_column() {
    let src = "id: t\nstate_schema: {}\nmcp:\n  servers:\n    search: { url: \"http://127.0.0.1:1/mcp\" }\n    files: { command: files-mcp }\nnodes:\n  look:\n    type: tool\n    server: serch\n    tool: find\n";
    let found = ir::compile_str(src, "t.yaml").unwrap_err();
    assert_eq!(found.0.len(), 1, "{found}");
    let d = &found.0[0];
    assert_eq!((d.line, d.column, d.node.as_deref()), (10, 13, Some("look")), "{found}");
    assert!(d.message.contains("node `look`") && d.message.contains("`serch`"), "{}", d.message);
    assert!(
        d.message.contains("did you mean `search`") && d.message.contains("declared: files, search"),
        "{}",
        d.message
    );
    let none = "id: t\nstate_schema: {}\nnodes:\n  look: { type: tool, server: s, tool: find }\n";
    let found = ir::compile_str(none, "t.yaml").unwrap_err();
    assert!(found.0[0].message.contains("none are declared"), "{found}");
}

#[test]
fn the_mcp_section_is_checked_with_line_and_column() {
    let src = r#"id: t
state_schema: {}
mcp:
  servers:
    both: { command: a, url: "http://x" }
    neither: { args: [a] }
    typed: { command: [a], env: { K: { a: 1 } } }
    badref: { url: "http://h/${UNCLOSED" }
    mixed: { command: a, headers: { A: b } }
nodes:
  n: { type: set, values: {} }
"#;
    let found = ir::compile_str(src, "t.yaml").unwrap_err();
    let at: Vec<(u32, u32)> = found.0.iter().map(|d| (d.line, d.column)).collect();
    let text = found.to_string();
    assert!(text.contains("has both `command` and `url`"), "{text}");
    assert!(text.contains("MCP server `neither` needs exactly one of `command`"), "{text}");
    assert!(text.contains("`command` must be a string, found a list"), "{text}");
    assert!(text.contains("is not closed"), "{text}");
    assert!(text.contains("`headers` does not apply to MCP server `mixed`"), "{text}");
    assert!(text.contains("environment variable `K` must be a string, found a mapping"), "{text}");
    assert_eq!(at, vec![(5, 25), (6, 5), (7, 23), (7, 38), (8, 20), (9, 26)], "{text}");
}

/// `kill -9` of the `jamjet` binary while a tool call is in flight: after
/// `jamjet resume` the call is made again with the same idempotency key
/// and the visit completes once.
#[tokio::test]
async fn kill_9_during_a_tool_call_repeats_it_with_the_same_key_after_resume() {
    let dir = tempfile::tempdir().unwrap();
    let (data, count_file, file) = (dir.path().join("data"), dir.path().join("count"), dir.path().join("wf.yaml"));
    let src = format!(
        "id: crashy\nstate_schema: {{ counted: any }}\nmcp:\n  servers:\n    ex: {}\nnodes:\n  hold:\n    type: tool\n    server: ex\n    tool: count\n    arguments: {{ hold_first_ms: 60000 }}\n    output_key: counted\n",
        stdio_server(&count_file)
    );
    std::fs::write(&file, src).unwrap();
    let mut run = support::run_to_kill(&data, &file, "{}").spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while recorded(&count_file).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let first = recorded(&count_file);
    assert_eq!(first.len(), 1, "the tool call did not start within 30 s");
    run.kill().unwrap(); // SIGKILL
    run.wait().unwrap();
    // Its stdin closed, the orphaned server ends without waiting out its hold.
    assert!(gone_within(first[0].1, Duration::from_secs(10)), "the server of the killed run is still there");

    let resumed = jamjet_json(&data, &["resume", "--json"]);
    assert_eq!(resumed[0]["status"], "completed", "{resumed}");
    let id = resumed[0]["id"].as_str().unwrap().to_string();
    let key = format!("{id}/hold/1");
    let again = recorded(&count_file);
    assert_eq!(again.len(), 2, "{again:?}");
    assert!(again.iter().all(|(k, _)| *k == key), "the repeat carried another key: {again:?}");
    assert_ne!(again[0].1, again[1].1, "the repeat went to a new server process");

    let rt = Runtime::builder().data_dir(&data).resume_on_open(false).open().await.unwrap();
    let id: jamjet::ExecutionId = id.parse().unwrap();
    let out = rt.outcome(id).unwrap();
    assert_eq!(out.state["counted"], json!({"key": key, "seen": 2}));
    let done = events(&rt, id)
        .iter()
        .filter(|e| matches!(e, Event::NodeCompleted { node, visit: 1, .. } if node == "hold"))
        .count();
    assert_eq!(done, 1);
    rt.shutdown().await;
}

/// `examples/tool.yaml` as written, run from another directory: its
/// `command: ../target/debug/examples/mcp_server` is a path from the
/// file's directory. The file is copied unchanged into a tree of the same
/// shape (`examples/` beside `target/debug/examples/`), whose server is
/// this test run's build, and run from a sibling directory by a relative
/// path, so neither the current directory nor the path given to `run` is
/// the file's directory.
#[test]
fn the_tool_example_runs_from_any_directory() {
    let dir = tempfile::tempdir().unwrap();
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/tool.yaml");
    let text = std::fs::read_to_string(&example).unwrap();
    assert!(text.contains("command: ../target/debug/examples/mcp_server"), "{text}");
    std::fs::create_dir_all(dir.path().join("examples")).unwrap();
    std::fs::write(dir.path().join("examples/tool.yaml"), &text).unwrap();
    let bin_dir = dir.path().join("target/debug/examples");
    std::fs::create_dir_all(&bin_dir).unwrap();
    std::os::unix::fs::symlink(example_server(), bin_dir.join("mcp_server")).unwrap();
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let run = jamjet()
        .current_dir(&elsewhere)
        .env("JAMJET_LOG", "info")
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(["run", "../examples/tool.yaml", "--input", r#"{"a": 2, "b": 40}"#, "--json"])
        .output_bounded();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    // The server's own log lines come out in our log (stderr), tagged;
    // stdout holds only the outcome.
    assert!(stderr.contains("jamjet::mcp::stderr") && stderr.contains("client initialized"), "{stderr}");
    let out: Value = serde_json::from_slice(&run.stdout).expect("stdout is only the outcome's JSON");
    assert_eq!(out["status"], "completed", "{out}");
    assert_eq!(out["state"]["total"], json!({"sum": 42.0}));
    assert_eq!(out["state"]["said"], json!("the sum is 42.0"));
}

/// A relative `command` that does not exist fails naming the command as
/// written and the directory it was looked up from; a bare name is looked
/// up on `PATH`, not in the file's directory.
#[test]
fn relative_commands_resolve_from_the_file_and_bare_names_from_path() {
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("flows");
    std::fs::create_dir_all(&sub).unwrap();
    // A file named like the bare command beside the workflow must not be run.
    std::fs::write(sub.join("jj-no-such-tool"), "#!/bin/sh\nexit 3\n").unwrap();
    let wf = |command: &str| {
        format!(
            "id: rel\nstate_schema: {{ x: any }}\nmcp:\n  servers:\n    s: {{ command: {command} }}\nnodes:\n  call: {{ type: tool, server: s, tool: t, output_key: x }}\n"
        )
    };
    for (name, command, expect) in [
        (
            "missing.yaml",
            "./bin/missing-server",
            format!(
                "cannot start `./bin/missing-server` (relative paths from {})",
                std::fs::canonicalize(&sub).unwrap().display()
            ),
        ),
        ("bare.yaml", "jj-no-such-tool", "cannot start `jj-no-such-tool`: ".to_string()),
    ] {
        std::fs::write(sub.join(name), wf(command)).unwrap();
        let run = jamjet()
            .current_dir(dir.path())
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args(["run", &format!("flows/{name}"), "--input", "{}", "--json"])
            .output_bounded();
        let out: Value = serde_json::from_slice(&run.stdout).unwrap_or_else(|_| panic!("{run:?}"));
        assert_eq!(out["status"], "failed", "{out}");
        let error = out["error"].as_str().unwrap_or_default().to_string() + &out.to_string();
        assert!(error.contains(&expect), "{expect}\n{out}");
    }
}

#[tokio::test]
async fn a_remote_server_that_went_away_is_reconnected_by_the_nodes_retry() {
    let dir = tempfile::tempdir().unwrap();
    let count_file = dir.path().join("count");
    let first = HttpServer::start(&count_file);
    let addr = first.url.trim_start_matches("http://").trim_end_matches("/mcp").to_string();
    let nodes = r#"  who:
    type: tool
    server: ex
    tool: pid
    output_key: pid
    timeout_ms: 10000
    retry: { max_attempts: 5, backoff: constant, delay_ms: 100 }
"#;
    let wf = workflow(&format!("{{ url: {} }}", q(&first.url)), "{ pid: any }", nodes);
    let rt = runtime().await;
    let one = within("the first run", rt.run(&wf, json!({}))).await.unwrap();
    assert_eq!(one.status, Status::Completed, "{:?}", one.error);
    drop(first); // killed
    let second = HttpServer::start_at(&addr, &count_file);
    let two = within("the second run", rt.run(&wf, json!({}))).await.unwrap();
    assert_eq!(two.status, Status::Completed, "{:?}", two.error);
    assert_ne!(one.state["pid"], two.state["pid"], "the answer came from the new server");
    // Either the client saw the connection close first and reconnected at
    // once, or the first attempt hit the dead connection (`connection`)
    // and its retry reconnected: which one is a race with the old session's
    // stream noticing the end.
    let failed = failures(&events(&rt, two.id));
    assert!(failed.len() <= 1 && failed.iter().all(|f| f.2 == ErrorClass::Connection), "{failed:?}");
    drop(second);
    rt.shutdown().await;
}

#[tokio::test]
async fn env_references_reach_the_server_but_not_the_stored_workflow() {
    let dir = tempfile::tempdir().unwrap();
    let path = std::env::var("PATH").expect("PATH is set");
    let server =
        format!("{{ command: {}, env: {{ JJ_SECRET: \"${{PATH}}\" }} }}", q(example_server().display().to_string()));
    let nodes = "  look: { type: tool, server: ex, tool: env, arguments: { name: JJ_SECRET }, output_key: seen }\n";
    let wf = workflow(&server, "{ seen: any }", nodes);
    let rt = Runtime::builder().data_dir(dir.path()).open().await.unwrap();
    let out = within("the workflow", rt.run(&wf, json!({}))).await.unwrap();
    assert_eq!(out.state["seen"], json!(path), "the child got the resolved value");
    let stored = serde_json::to_string(&*rt.workflow_of(out.id).unwrap()).unwrap();
    assert!(stored.contains("${PATH}") && !stored.contains(&path), "{stored}");
    rt.shutdown().await;
}

/// What the model slice uses: the pool on its own, without a node.
#[tokio::test]
async fn the_pool_lists_tools_and_calls_them_with_the_key_in_meta() {
    let dir = tempfile::tempdir().unwrap();
    let count_file = dir.path().join("count");
    let wf = workflow(&stdio_server(&count_file), "{}", "  n: { type: end }\n");
    let pool = jamjet::mcp::McpPool::default();
    let tools = within("tools/list", pool.tools(&wf, "ex")).await.unwrap();
    let add = tools.iter().find(|t| t.name == "add").expect("add is listed");
    assert!(add.description.as_deref().unwrap_or("").contains("Add two numbers"), "{add:?}");
    assert_eq!(add.input_schema["type"], json!("object"));
    assert!(add.input_schema["properties"]["a"].is_object(), "{}", add.input_schema);
    let timeout = Duration::from_secs(10);
    let result = within("a call", pool.call(&wf, "ex", "count", json!({}), "k-1", timeout)).await.unwrap();
    assert_eq!(result["structuredContent"], json!({"key": "k-1", "seen": 1}));
    let failed = within("an error result", pool.call(&wf, "ex", "fail", json!({"message": "no"}), "k-2", timeout));
    let failed = failed.await.unwrap();
    assert_eq!((failed["isError"].clone(), failed["content"][0]["text"].clone()), (json!(true), json!("no")));
    let err = pool.call(&wf, "ex", "add", json!([1, 2]), "k-3", timeout).await.unwrap_err();
    assert!(err.message.contains("must be an object"), "{err}");
    let err = pool.tools(&wf, "nope").await.unwrap_err();
    assert!(err.message.contains("declares no MCP server `nope` (declared: ex)"), "{err}");
    let pid = pool.pid(&wf, "ex").await.expect("a stdio server has a pid");
    pool.shutdown().await;
    assert!(gone_within(pid, Duration::from_secs(10)), "server {pid} outlived the pool's shutdown");
}

#[tokio::test]
async fn a_slow_tool_times_out_per_timeout_ms_and_the_server_stays_usable() {
    let dir = tempfile::tempdir().unwrap();
    let nodes = r#"  wait:
    type: tool
    server: ex
    tool: slow
    arguments: { ms: 5000 }
    timeout_ms: 200
    next: after
  after: { type: tool, server: ex, tool: echo, arguments: { text: "still here" }, output_key: said }
"#;
    let wf = workflow(&stdio_server(&dir.path().join("count")), "{ said: any }", nodes);
    let rt = runtime().await;
    let out = within("the workflow", rt.run(&wf, json!({}))).await.unwrap();
    assert_eq!(out.status, Status::Failed);
    let failed = failures(&events(&rt, out.id));
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0].2, ErrorClass::Timeout, "{failed:?}");
    // The same server answers the next call at once.
    let echo = workflow(
        &stdio_server(&dir.path().join("count")),
        "{ said: any }",
        "  after: { type: tool, server: ex, tool: echo, arguments: { text: \"still here\" }, output_key: said }\n",
    );
    let began = Instant::now();
    let out = within("the next call", rt.run(&echo, json!({}))).await.unwrap();
    assert_eq!(out.state["said"], json!("still here"), "{:?}", out.error);
    assert!(began.elapsed() < Duration::from_secs(4), "the next call waited for the slow one");
    rt.shutdown().await;
}
