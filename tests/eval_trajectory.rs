//! Evals for agents: the `trajectory` scorer in a `type: eval` node after a
//! local agent that calls an MCP tool (the in-process MCP server over
//! streamable HTTP) against the scripted loopback model server, and
//! `jamjet eval run --trajectory ... --baseline` through the real binary,
//! run twice with the model's script changed so one row's trajectory
//! changes: that row is reported regressed and the run exits 1.

mod support;

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use jamjet::journal::Status;
use jamjet::{Runtime, ir};
use serde_json::{Value, json};
use support::jamjet_out;
use support::mcp_http::McpHttpServer;
use support::model_server::{ModelServer, Reply, Rule};

const LIMIT: Duration = Duration::from_secs(30);

/// A calculator agent with the MCP server's `add`, then an eval node;
/// `schema` and `scorers` fill in the rest.
fn workflow(server: &ModelServer, mcp: &McpHttpServer, schema: &str, scorers: &str) -> String {
    format!(
        r#"
id: calc-agent
state_schema: {{ task: str, answer: str, verdict: dict{schema} }}
mcp:
  servers:
    calc: {{ url: "{mcp}" }}
models:
  fast: {{ provider: openai, model: test-gpt, base_url: "{base}" }}
agents:
  calculator:
    model: fast
    instructions: "Add numbers with the add tool."
    tools: [calc.add]
nodes:
  solve: {{ type: agent, agent: calculator, message: "{{{{ state.task }}}}", output_key: answer, next: check }}
  check:
    type: eval
    scorers:
{scorers}
    on_fail: continue
    output_key: verdict
"#,
        mcp = mcp.url,
        base = server.openai_base()
    )
}

/// The score of the scorer named `name` in a list of scores.
fn scored<'a>(scores: &'a Value, name: &str) -> &'a Value {
    scores.as_array().unwrap().iter().find(|s| s["scorer"] == name).unwrap_or_else(|| panic!("no {name} in {scores}"))
}

#[test]
fn a_trajectory_scorer_compiles_with_its_defaults_and_without_expected_needs_the_rows_list() {
    let src = "id: t\nstate_schema: { a: str, expected_trajectory: list }\nnodes:\n  check:\n    type: eval\n    scorers:\n      - { type: trajectory, expected: [{ tool: search, args: { q: { contains: x }, n: 3, k: { any: true } } }] }\n      - { type: trajectory, name: rows, match: subsequence }\n";
    let wf = ir::compile_str(src, "t.yaml").unwrap_or_else(|d| panic!("{d}"));
    let ir::NodeKind::Eval(eval) = &wf.node("check").unwrap().kind else { panic!("an eval node") };
    let ir::ScorerKind::Trajectory { expected: Some(calls), mode } = &eval.scorers[0].kind else {
        panic!("trajectory")
    };
    assert_eq!(*mode, ir::TrajectoryMatch::InOrder, "in_order by default");
    assert_eq!(calls[0].tool, "search");
    assert_eq!(
        calls[0].args,
        [
            ("q".to_string(), ir::ArgMatcher::Contains("x".into())),
            ("n".to_string(), ir::ArgMatcher::Equals(json!(3))),
            ("k".to_string(), ir::ArgMatcher::Any),
        ]
    );
    assert_eq!(eval.scorers[1].name, "rows");
    assert_eq!(eval.scorers[1].kind, ir::ScorerKind::Trajectory { expected: None, mode: ir::TrajectoryMatch::InOrder });
    // Without `expected:` the scorer reads the row's list: the input must hold it.
    let required: Vec<String> = ir::required_inputs(&wf).into_iter().map(|r| r.key).collect();
    assert_eq!(required, ["expected_trajectory"]);
}

/// The model adds 2 and 3, then 5 and 10, then answers; the tools' results
/// go back as `tool said: ...`.
fn script_two_adds(server: &ModelServer) {
    server.script(Rule::contains("Add 2 and 3", Reply::tool_call("add", json!({"a": 2, "b": 3}))).times(1));
    server.script(Rule::contains("5", Reply::tool_call("add", json!({"a": 5, "b": 10}))).times(1));
}

#[tokio::test]
async fn an_eval_node_scores_the_tool_calls_the_agent_made_before_it() {
    let server = ModelServer::start().await;
    script_two_adds(&server);
    let mcp = McpHttpServer::start().await;
    let scorers = r#"      - { type: trajectory, name: in-order, expected: [{ tool: add, args: { a: 2 } }, { tool: add, args: { b: { regex: "^1[0-9]$" } } }] }
      - { type: trajectory, name: exact, match: exact, expected: [{ tool: add, args: { a: { any: true } } }] }
      - { type: trajectory, name: set, match: set, expected: [{ tool: add, args: { a: 5 } }, { tool: add, args: { b: { contains: "3" } } }] }
      - { type: trajectory, name: wrong, expected: [{ tool: add, args: { a: 2 } }, { tool: add, args: { a: 7 } }] }"#;
    let wf = ir::compile_str(&workflow(&server, &mcp, "", scorers), "calc.yaml").unwrap_or_else(|d| panic!("{d}"));
    let dir = tempfile::tempdir().unwrap();
    let rt = Runtime::open(dir.path()).await.unwrap();
    let out = tokio::time::timeout(LIMIT, rt.run(&wf, json!({"task": "Add 2 and 3, then 10"}))).await.unwrap().unwrap();
    assert_eq!(out.status, Status::Completed, "{:?}", out.error);
    assert_eq!(mcp.calls().len(), 2, "the agent called add twice");
    let scores = &out.state["verdict"]["scores"];
    let in_order = scored(scores, "in-order");
    assert_eq!((in_order["passed"].as_bool(), in_order["score"].as_f64()), (Some(true), Some(1.0)), "{in_order}");
    assert_eq!(in_order["reason"], "made the 2 expected tool calls in order (2 calls made)");
    let exact = scored(scores, "exact");
    assert_eq!((exact["passed"].as_bool(), exact["score"].as_f64()), (Some(false), Some(1.0)), "{exact}");
    assert_eq!(
        exact["reason"],
        "call 2 of 2, `add` {\"a\":5,\"b\":10}, was not expected (`exact` allows only the 1 expected call)"
    );
    assert_eq!(scored(scores, "set")["passed"], true, "{scores}");
    let wrong = scored(scores, "wrong");
    assert_eq!((wrong["passed"].as_bool(), wrong["score"].as_f64()), (Some(false), Some(0.5)), "{wrong}");
    assert_eq!(
        wrong["reason"],
        "expected call 2 of 2, `add`(a = 7), was not made in order: call 2 of `add` differs: `a` is 5, not 7; 1 of 2 \
         matched"
    );
    rt.shutdown().await;
}

// ------------------------------------------------------------ jamjet eval run --baseline

/// Two rows: `sum` (one add) and `twice` (two adds, the second on the
/// first's result).
const DATASET: &str = r#"{"id": "sum", "input": {"task": "Add 20 and 22"}, "expected_trajectory": [{"tool": "add", "args": {"a": 20, "b": {"any": true}}}]}
{"id": "twice", "input": {"task": "Add 100 and 200, then 700"}, "expected_trajectory": [{"tool": "add", "args": {"a": 100}}, {"tool": "add", "args": {"a": {"regex": "^300$"}, "b": 700}}]}
"#;

/// The first adds of both rows, for `runs` runs.
fn script_first_adds(server: &ModelServer, runs: usize) {
    server.script(Rule::contains("Add 20 and 22", Reply::tool_call("add", json!({"a": 20, "b": 22}))).times(runs));
    server.script(Rule::contains("Add 100 and 200", Reply::tool_call("add", json!({"a": 100, "b": 200}))).times(runs));
}

/// `jamjet eval run` in a blocking task (the servers run on this runtime).
async fn eval_run(data: &Path, args: Vec<String>) -> Output {
    let data = data.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        jamjet_out(&data, &args)
    })
    .await
    .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eval_run_with_a_baseline_reports_the_row_whose_trajectory_changed_as_regressed_and_exits_1() {
    let server = ModelServer::start().await;
    let mcp = McpHttpServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (data, wf, ds, first) = (
        dir.path().join("data"),
        dir.path().join("calc.yaml"),
        dir.path().join("calc.jsonl"),
        dir.path().join("r1.json"),
    );
    // The node's scorer reads each row's list from the state; the command line's is `exact`.
    let scorers = "      - { type: trajectory, name: calls }";
    std::fs::write(&wf, workflow(&server, &mcp, ", expected_trajectory: list", scorers)).unwrap();
    std::fs::write(&ds, DATASET).unwrap();
    let run = |extra: &[&str]| {
        let mut args: Vec<String> =
            ["eval", "run", ds.to_str().unwrap(), "--workflow", wf.to_str().unwrap(), "--trajectory", "exact"]
                .map(String::from)
                .to_vec();
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    };

    // Run 1: `twice` adds 100 and 200, then 300 and 700.
    script_first_adds(&server, 1);
    server.script(Rule::contains("300", Reply::tool_call("add", json!({"a": 300, "b": 700}))).times(1));
    let out = eval_run(&data, run(&["--json"])).await;
    assert!(out.status.success(), "{}\n{}", text(&out.stderr), text(&out.stdout));
    std::fs::write(&first, &out.stdout).unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["summary"]["passed"], 2, "{report}");
    let names: Vec<&str> =
        report["rows"][1]["scores"].as_array().unwrap().iter().map(|s| s["scorer"].as_str().unwrap()).collect();
    assert_eq!(names, ["check.calls", "cli.trajectory"]);
    assert_eq!(mcp.calls().len(), 3);

    // Run 2: `twice` stops after the first add (the model answers instead).
    script_first_adds(&server, 2);
    let baseline = ["--baseline", first.to_str().unwrap()];
    let out = eval_run(&data, run(&[&["--json"][..], &baseline].concat())).await;
    assert_eq!(out.status.code(), Some(1), "a regression exits 1: {}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains(&format!("error: 1 row regressed against the baseline {}: twice", first.display())),
        "{}",
        text(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let b = &report["baseline"];
    assert_eq!(b["file"], first.to_str().unwrap());
    let regressed: Vec<&str> = b["regressed"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(regressed, ["twice"], "{b}");
    assert_eq!((&b["improved"], &b["unchanged"]), (&json!([]), &json!(["sum"])));
    assert_eq!((&b["new"], &b["missing"]), (&json!([]), &json!([])));
    let changes: Vec<&str> =
        b["regressed"][0]["changes"].as_array().unwrap().iter().map(|c| c.as_str().unwrap()).collect();
    assert_eq!(changes[0], "passed before, fails now");
    assert!(changes[1].starts_with("check.calls: passed before, fails now: expected call 2 of 2"), "{changes:?}");
    assert!(changes[2].starts_with("cli.trajectory: passed before, fails now: expected call 2 of 2"), "{changes:?}");
    let twice = &report["rows"][1];
    let calls = scored(&twice["scores"], "check.calls");
    assert_eq!((calls["passed"].as_bool(), calls["score"].as_f64()), (Some(false), Some(0.5)));
    assert!(
        calls["reason"].as_str().unwrap().starts_with(
            "expected call 2 of 2, `add`(a matches /^300$/, b = 700), was not made in order: call 1 of `add` differs"
        ),
        "{calls}"
    );

    // The same, as tables.
    let out = eval_run(&data, run(&baseline)).await;
    assert_eq!(out.status.code(), Some(1));
    let stdout = text(&out.stdout);
    let line = format!(
        "baseline {} (run {}): 1 regressed, 0 improved, 1 unchanged, 0 new, 0 missing",
        first.display(),
        b["run"].as_str().unwrap()
    );
    assert!(stdout.contains(&line), "no `{line}` in:\n{stdout}");
    assert!(stdout.contains("  regressed twice: passed before, fails now; check.calls: passed before"), "{stdout}");
}

#[test]
fn bad_baselines_and_rows_without_a_trajectory_to_score_are_refused_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/eval.yaml");
    let rows = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/eval-dataset.jsonl");
    let bad = dir.path().join("bad.json");
    let refused = |args: &[&str], needle: &str| {
        let out = jamjet_out(&data, args);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(needle), "no `{needle}` in: {stderr}");
    };
    let with_baseline = ["eval", "run", rows, "--workflow", example, "--baseline", bad.to_str().unwrap()];
    refused(&with_baseline, &format!("--baseline {}: cannot read it", bad.display()));
    std::fs::write(&bad, "{\"rows\": []}").unwrap();
    refused(
        &with_baseline,
        &format!("--baseline {} is not a report of `jamjet eval run --json`: missing field `run`", bad.display()),
    );
    std::fs::write(&bad, "[1,").unwrap();
    refused(&with_baseline, &format!("--baseline {} is not JSON", bad.display()));

    refused(
        &["eval", "run", rows, "--workflow", example, "--trajectory", "exact"],
        "eval-dataset.jsonl:1: row `fr` has no `expected_trajectory` for --trajectory to score",
    );
    refused(
        &["eval", "run", rows, "--workflow", example, "--trajectory", "ordered"],
        "expected one of: exact, in_order, subsequence, set",
    );
    let ds = dir.path().join("t.jsonl");
    std::fs::write(&ds, "{\"input\": {\"country\": \"France\"}, \"expected_trajectory\": [{\"tool\": \"add\"}]}\n")
        .unwrap();
    refused(
        &["eval", "run", ds.to_str().unwrap(), "--workflow", example],
        "t.jsonl:1: row `line-1` has an `expected_trajectory`, but nothing scores it",
    );
    std::fs::write(&ds, "{\"input\": {\"country\": \"France\"}, \"expected_trajectory\": [{\"tool\": \"add\", \"args\": {\"a\": {\"any\": 1}}}]}\n").unwrap();
    refused(
        &["eval", "run", ds.to_str().unwrap(), "--workflow", example, "--trajectory", "set"],
        "t.jsonl:1: `expected_trajectory`: call 1: `args.a`: `any` must be true",
    );
    assert!(!data.exists(), "nothing ran: the data dir was not even opened");
}
