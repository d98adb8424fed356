//! `type: eval` and `jamjet eval run`: the compiler's findings, each scorer
//! passing and failing in a real execution on sled, `on_fail` (continue,
//! fail, retry_from with feedback), the rubric judge against the loopback
//! model server, and `jamjet eval run` through the real binary.

mod support;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use jamjet::journal::{ErrorClass, Event, Status};
use jamjet::nodes::FunctionCall;
use jamjet::{ExecutionId, Outcome, Runtime, ir};
use serde_json::{Value, json};
use support::model_server::{ModelServer, Reply, Rule};
use support::{jamjet_json, jamjet_out};

fn compile(src: &str) -> ir::Workflow {
    ir::compile_str(src, "test.yaml").unwrap_or_else(|d| panic!("{d}"))
}

fn findings(src: &str) -> String {
    match ir::compile_str(src, "test.yaml") {
        Ok(_) => panic!("expected findings for:\n{src}"),
        Err(d) => d.to_string(),
    }
}

const LIMIT: Duration = Duration::from_secs(20);

async fn within<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(LIMIT, f).await.unwrap_or_else(|_| panic!("{what} did not happen within {LIMIT:?}"))
}

async fn run(rt: &Runtime, wf: &ir::Workflow, input: Value) -> Outcome {
    within("the execution", rt.run(wf, input)).await.unwrap()
}

fn events(rt: &Runtime, id: ExecutionId) -> Vec<Event> {
    rt.events(id).unwrap().into_iter().map(|r| r.event).collect()
}

/// Every `Scored` event: (node, visit, passed, scores).
fn scored(rt: &Runtime, id: ExecutionId) -> Vec<(String, u32, bool, Value)> {
    events(rt, id)
        .into_iter()
        .filter_map(|e| match e {
            Event::Scored { node, visit, passed, scores, .. } => Some((node, visit, passed, scores.value().unwrap())),
            _ => None,
        })
        .collect()
}

/// A scorer's entry in a list of scores, by name.
fn entry<'a>(scores: &'a Value, name: &str) -> &'a Value {
    scores.as_array().unwrap().iter().find(|s| s["scorer"] == name).unwrap_or_else(|| panic!("no {name} in {scores}"))
}

// ---------------------------------------------------------------- compiler

const HEAD: &str = "id: t\nstate_schema: { answer: str, n: int, verdict: dict }\nnodes:\n  draft: { type: set, values: { answer: hi }, next: check }\n";

#[test]
fn compiler_findings_name_line_column_and_node() {
    // Each case: the node's line, the text its finding must point at, and the message.
    let cases: &[(&str, &str, &str)] = &[
        (
            "  check: { type: eval, scorers: [{ type: asertion, expr: 'true' }] }",
            "asertion",
            "unknown scorer type `asertion` (did you mean `assertion`?)",
        ),
        (
            "  check: { type: eval, scorers: [{ type: regex, pattern: 'a(' }] }",
            "'a('",
            "`pattern` is not a valid regex: unclosed group",
        ),
        (
            "  check: { type: eval, scorers: [{ type: json_schema, schema: { type: 12 } }] }",
            "{ type: 12",
            "`schema` is not a valid JSON Schema",
        ),
        (
            "  check: { type: eval, scorers: [{ type: contains, value: x }], on_fail: { retry_from: drat }, output_key: verdict }",
            "drat",
            "`retry_from` names node `drat`, which does not exist (did you mean `draft`?)",
        ),
        (
            "  check: { type: eval, scorers: [{ type: rubric, model: nosuch, rubric: ok }] }",
            "nosuch",
            "rubric judge: unknown model `nosuch`",
        ),
        (
            "  check: { type: eval, scorers: [{ type: assertion, expr: 'answer == 1' }] }",
            "'answer",
            "`expr` reads `answer`, which is not defined",
        ),
        (
            "  check: { type: eval, scorers: [{ type: assertion, expr: 'state.anser == 1' }] }",
            "'state.anser",
            "`state.anser`, which is not in `state_schema` (did you mean `answer`?)",
        ),
        (
            "  check: { type: eval, scorers: [{ type: contains, value: x }], on_fail: { retry_from: draft } }",
            "on_fail",
            "needs an `output_key`",
        ),
        ("  check: { type: eval, scorers: [{ type: latency, max_ms: 0 }] }", "0 }", "`max_ms` must be at least 1"),
        ("  check: { type: eval, scorers: [{ type: cost, max_usd: 1, extra: 2 }] }", "extra", "unknown field `extra`"),
        ("  check: { type: eval, scorers: [] }", "[]", "at least one scorer"),
        (
            "  check: { type: eval, scorers: [{ type: regex, pattern: x }], on_fail: retry }",
            "retry }",
            "unknown on_fail `retry`",
        ),
        (
            "  check: { type: eval, scorers: [{ type: regex, pattern: x }], target: nope }",
            "nope",
            "`target` `nope` is not in `state_schema`",
        ),
        (
            "  check: { type: eval, scorers: [{ type: trajectory, expected: [{ tool: add, args: { a: { regex: '(' } } }] }] }",
            "{ regex",
            "`args.a`: `regex` is not a valid regex: unclosed group",
        ),
        (
            "  check: { type: eval, scorers: [{ type: trajectory, expected: [{ tool: add, args: { a: { any: false } } }] }] }",
            "{ any",
            "`args.a`: `any` must be true",
        ),
        (
            "  check: { type: eval, scorers: [{ type: trajectory, expected: [{ tool: add, args: { a: { contains: x, regex: y } } }] }] }",
            "{ contains",
            "`args.a`: a matcher has exactly one key (contains, regex, any or equals)",
        ),
        (
            "  check: { type: eval, scorers: [{ type: trajectory, expected: [{ tol: add }] }] }",
            "tol",
            "unknown field `tol` in an expected call",
        ),
        (
            "  check: { type: eval, scorers: [{ type: trajectory, expected: [{ args: {} }] }] }",
            "{ args",
            "an expected call is missing the required field `tool`",
        ),
        (
            "  check: { type: eval, scorers: [{ type: trajectory, expected: [{ tool: add }], match: ordered }] }",
            "ordered",
            "unknown match `ordered`",
        ),
        (
            "  check: { type: eval, scorers: [{ type: trajectory, expected: add }] }",
            "add }",
            "`expected` must be a list of calls",
        ),
        (
            "  check: { type: eval, scorers: [{ type: trajectory, match: set }] }",
            "{ type: trajectory",
            "a `trajectory` scorer needs `expected:`",
        ),
    ];
    for (node, marker, message) in cases {
        let text = findings(&format!("{HEAD}{node}\n"));
        let at = format!("test.yaml:5:{}:", node.find(marker).unwrap() + 1);
        let line = text.lines().find(|l| l.contains(message)).unwrap_or_else(|| panic!("no `{message}` in:\n{text}"));
        assert!(line.starts_with(&at), "`{message}` should be at {at} (`{marker}`): {line}");
        assert!(line.ends_with("(node `check`)"), "the finding names the node: {line}");
    }
}

#[test]
fn retry_from_is_an_edge_of_the_graph() {
    let wf = compile(&format!(
        "{HEAD}  check:\n    type: eval\n    scorers: [{{ type: contains, value: x }}]\n    on_fail: {{ retry_from: draft, max_retries: 2 }}\n    output_key: verdict\n"
    ));
    assert!(wf.edges.iter().any(|e| e.from == "check" && e.to == "draft" && e.kind == ir::EdgeKind::RetryFrom));
    let ir::NodeKind::Eval(eval) = &wf.node("check").unwrap().kind else { panic!("an eval node") };
    assert_eq!(eval.on_fail, ir::EvalOnFail::RetryFrom { node: "draft".into(), max_retries: 2 });
    // Reached only through `retry_from`, a node is still reachable.
    let wf = compile(
        "id: t\nstate_schema: { a: str, v: dict }\nstart: check\nnodes:\n  check: { type: eval, scorers: [{ type: regex, pattern: x, key: a }], on_fail: { retry_from: fix }, output_key: v }\n  fix: { type: set, values: { a: x }, next: check }\n",
    );
    assert_eq!(wf.start, "check");
    // Scorer names: by type, numbered when a type repeats.
    let wf = compile(&format!(
        "{HEAD}  check: {{ type: eval, scorers: [{{ type: regex, pattern: a }}, {{ type: regex, pattern: b }}, {{ type: cost, max_usd: 1, name: budget }}] }}\n"
    ));
    let ir::NodeKind::Eval(eval) = &wf.node("check").unwrap().kind else { panic!("an eval node") };
    let names: Vec<&str> = eval.scorers.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["regex#1", "regex#2", "budget"]);
}

// ---------------------------------------------------------------- scorers in executions

const SCORED: &str = r#"
id: scored
state_schema: { answer: str, doc: dict, nap_ms: int, verdict: dict }
nodes:
  nap: { type: function, function: nap, next: check }
  check:
    type: eval
    target: answer
    scorers:
      - { type: assertion, expr: "output | length > 3 and state.doc.n >= 1" }
      - { type: json_schema, key: doc, schema: { type: object, required: [n], properties: { n: { type: integer } } } }
      - { type: latency, max_ms: 5 }
      - { type: cost, max_usd: 0 }
      - { type: contains, value: "Paris" }
      - { type: regex, pattern: "^[A-Z][a-z]+ is" }
    on_fail: continue
    output_key: verdict
"#;

async fn napping_runtime(dir: &Path) -> Runtime {
    let rt = Runtime::open(dir).await.unwrap();
    rt.register_function("nap", |call: FunctionCall| async move {
        let ms = call.input["nap_ms"].as_u64().unwrap_or(0);
        tokio::time::sleep(Duration::from_millis(ms)).await;
        Ok(Value::Null)
    });
    rt
}

#[tokio::test]
async fn each_scorer_passes_and_fails_and_continue_goes_on_with_the_scores() {
    let dir = tempfile::tempdir().unwrap();
    let rt = napping_runtime(dir.path()).await;
    let wf = compile(SCORED);

    let good = run(&rt, &wf, json!({"answer": "Paris is the capital", "doc": {"n": 2}, "nap_ms": 0})).await;
    assert_eq!(good.status, Status::Completed, "{:?}", good.error);
    let verdict = &good.state["verdict"];
    let scores = &verdict["scores"];
    let latency = entry(scores, "latency");
    // The latency budget is the only thing a fast machine could miss; check it on its own.
    if latency["score"].as_f64().unwrap() <= 5.0 {
        assert_eq!(verdict["passed"], true, "{verdict}");
    }
    for name in ["assertion", "json_schema", "cost", "contains", "regex"] {
        assert_eq!(entry(scores, name)["passed"], true, "{name}: {scores}");
    }
    let journaled = scored(&rt, good.id);
    assert_eq!(journaled.len(), 1);
    assert_eq!((journaled[0].0.as_str(), journaled[0].1), ("check", 1));
    assert_eq!(&journaled[0].3, scores, "the Scored event holds what the verdict holds");

    let bad = run(&rt, &wf, json!({"answer": "rom", "doc": {"n": "one"}, "nap_ms": 30})).await;
    assert_eq!(bad.status, Status::Completed, "on_fail: continue goes on");
    let scores = &bad.state["verdict"]["scores"];
    assert_eq!(bad.state["verdict"]["passed"], false);
    for name in ["assertion", "json_schema", "latency", "contains", "regex"] {
        assert_eq!(entry(scores, name)["passed"], false, "{name}: {scores}");
    }
    assert!(entry(scores, "json_schema")["reason"].as_str().unwrap().contains("/n"), "{scores}");
    assert!(entry(scores, "latency")["score"].as_f64().unwrap() >= 30.0, "{scores}");
    let feedback = bad.state["verdict"]["feedback"].as_str().unwrap();
    assert!(feedback.contains("contains: does not contain \"Paris\""), "{feedback}");
    let journaled = scored(&rt, bad.id);
    assert_eq!((journaled.len(), journaled[0].2), (1, false));
    rt.shutdown().await;
}

const STRICT: &str = r#"
id: strict
state_schema: { answer: str }
nodes:
  check:
    type: eval
    scorers: [{ type: regex, key: answer, pattern: "^yes$" }]
    retry: { max_attempts: 3, delay_ms: 1 }
    next: after
  after: { type: set, values: { answer: "went on" } }
"#;

#[tokio::test]
async fn on_fail_fail_fails_the_execution_with_the_scores_journaled_and_is_not_retried() {
    let dir = tempfile::tempdir().unwrap();
    let rt = Runtime::open(dir.path()).await.unwrap();
    let wf = compile(STRICT);
    let out = run(&rt, &wf, json!({"answer": "no"})).await;
    assert_eq!(out.status, Status::Failed);
    let error = out.error.unwrap();
    assert!(error.contains("eval node `check` failed") && error.contains("does not match /^yes$/"), "{error}");
    assert_eq!(out.state["answer"], "no", "nothing after the eval ran");
    let evs = events(&rt, out.id);
    let attempts = evs.iter().filter(|e| matches!(e, Event::NodeStarted { node, .. } if node == "check")).count();
    assert_eq!(attempts, 1, "invalid_output is not in the default retry_on");
    assert!(evs.iter().any(|e| matches!(e, Event::NodeFailed { class: ErrorClass::InvalidOutput, .. })));
    let journaled = scored(&rt, out.id);
    assert_eq!(journaled.len(), 1);
    assert!(!journaled[0].2);
    assert_eq!(journaled[0].3[0]["scorer"], "regex");

    let ok = run(&rt, &wf, json!({"answer": "yes"})).await;
    assert_eq!((ok.status, ok.state["answer"].as_str()), (Status::Completed, Some("went on")));
    rt.shutdown().await;
}

const REDRAFT: &str = r#"
id: redraft
state_schema: { question: str, answer: str, verdict: dict }
nodes:
  draft: { type: function, function: draft, output_key: answer, next: check }
  check:
    type: eval
    target: answer
    scorers:
      - { type: contains, value: "because" }
      - { type: assertion, name: long-enough, expr: "output | length >= 20" }
    on_fail: { retry_from: draft, max_retries: MAX }
    output_key: verdict
"#;

/// A drafting function that does better once it has feedback (when `learns`).
fn drafting(rt: &Runtime, learns: bool) -> Arc<AtomicUsize> {
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = calls.clone();
    rt.register_function("draft", move |call: FunctionCall| {
        let n = seen.fetch_add(1, Ordering::SeqCst);
        async move {
            match call.input.get("verdict") {
                Some(v) if learns => {
                    let feedback = v["feedback"].as_str().unwrap_or_default();
                    assert!(feedback.contains("contains: does not contain \"because\""), "feedback: {feedback}");
                    assert!(feedback.contains("long-enough"), "feedback: {feedback}");
                    Ok(json!(format!("yes, because I read the feedback ({n})")))
                }
                _ => Ok(json!("yes")),
            }
        }
    });
    calls
}

#[tokio::test]
async fn retry_from_loops_back_with_feedback_and_passes_on_the_second_try() {
    let dir = tempfile::tempdir().unwrap();
    let rt = Runtime::open(dir.path()).await.unwrap();
    let calls = drafting(&rt, true);
    let wf = compile(&REDRAFT.replace("MAX", "2"));
    let out = run(&rt, &wf, json!({"question": "why?"})).await;
    assert_eq!(out.status, Status::Completed, "{:?}", out.error);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert!(out.state["answer"].as_str().unwrap().starts_with("yes, because"));
    assert_eq!(out.state["verdict"]["passed"], true);
    assert_eq!(out.state["verdict"]["visit"], 2);
    let journaled = scored(&rt, out.id);
    let verdicts: Vec<(u32, bool)> = journaled.iter().map(|s| (s.1, s.2)).collect();
    assert_eq!(verdicts, [(1, false), (2, true)]);
    let loops_back = events(&rt, out.id).into_iter().any(
        |e| matches!(e, Event::NodeCompleted { node, next: Some(next), .. } if node == "check" && next == "draft"),
    );
    assert!(loops_back, "the first verdict sends the execution back to draft");
    rt.shutdown().await;
}

#[tokio::test]
async fn retry_from_gives_up_after_max_retries() {
    let dir = tempfile::tempdir().unwrap();
    let rt = Runtime::open(dir.path()).await.unwrap();
    let calls = drafting(&rt, false);
    let wf = compile(&REDRAFT.replace("MAX", "1"));
    let out = run(&rt, &wf, json!({"question": "why?"})).await;
    assert_eq!(out.status, Status::Failed);
    let error = out.error.unwrap();
    assert!(error.contains("failed after 1 retry"), "{error}");
    assert_eq!(calls.load(Ordering::SeqCst), 2, "one try and one retry");
    assert_eq!(scored(&rt, out.id).len(), 2);
    rt.shutdown().await;
}

// ---------------------------------------------------------------- rubric

fn judged_workflow(server: &ModelServer) -> String {
    format!(
        r#"
id: judged
state_schema: {{ q: str, answer: str, verdict: dict }}
models:
  local: {{ provider: openai, model: answerer, base_url: "{base}", price: {{ input_per_mtok: 100000, output_per_mtok: 100000 }} }}
  judge: {{ provider: openai, model: judge-1, base_url: "{base}", price: {{ input_per_mtok: 10, output_per_mtok: 10 }} }}
nodes:
  ask: {{ type: model, model: local, prompt: "{{{{ state.q }}}}", output_key: answer, next: check }}
  check:
    type: eval
    target: answer
    scorers:
      - {{ type: rubric, model: judge, rubric: "Names the capital asked about in: {{{{ state.q }}}}", min_score: 4 }}
      - {{ type: cost, max_usd: 0.01 }}
    on_fail: continue
    output_key: verdict
"#,
        base = server.openai_base()
    )
}

fn script_capitals(server: &ModelServer) {
    // The node's judge sees the answer; the command line's sees the final state as JSON.
    let paris = Reply::text(r#"{"score": 5, "reasons": "Paris is right"}"#);
    let milan = Reply::text("```json\n{\"score\": 2, \"reasons\": \"Rome is\"}\n```");
    server.script(Rule::contains("OUTPUT:\nParis", paris.clone()));
    server.script(Rule::contains("\"answer\":\"Paris\"", paris));
    server.script(Rule::contains("OUTPUT:\nMilan", milan.clone()));
    server.script(Rule::contains("\"answer\":\"Milan\"", milan));
    server.script(Rule::contains("capital of France", Reply::text("Paris")));
    server.script(Rule::contains("capital of Italy", Reply::text("Milan")));
}

#[tokio::test]
async fn rubric_judges_through_the_model_server_and_its_call_is_the_eval_exchange() {
    let server = ModelServer::start().await;
    script_capitals(&server);
    let dir = tempfile::tempdir().unwrap();
    let rt = Runtime::open(dir.path()).await.unwrap();
    let wf = compile(&judged_workflow(&server));

    let good = run(&rt, &wf, json!({"q": "the capital of France?"})).await;
    assert_eq!(good.status, Status::Completed, "{:?}", good.error);
    let rubric = entry(&good.state["verdict"]["scores"], "rubric").clone();
    assert_eq!((rubric["passed"].as_bool(), rubric["score"].as_f64()), (Some(true), Some(5.0)), "{rubric}");
    assert!(rubric["reason"].as_str().unwrap().contains("Paris is right"));
    let exchange = events(&rt, good.id).into_iter().find_map(|e| match e {
        Event::Exchange { node, request, usage, .. } if node == "check" => Some((request.value().unwrap(), usage)),
        _ => None,
    });
    let (request, usage) = exchange.expect("the judge's call is the eval node's exchange");
    assert_eq!(request["model"], "judge-1");
    assert!(usage.input_tokens > 0 && usage.cost_usd > 0.0, "{usage:?}");
    let key = format!("{}/check/1/judge/rubric", good.id);
    assert_eq!(server.requests_with_key(&key).len(), 1, "the judge is sent {key}");
    // The answer's cost (priced high) is over the eval's budget.
    assert_eq!(entry(&good.state["verdict"]["scores"], "cost")["passed"], false);

    let bad = run(&rt, &wf, json!({"q": "the capital of Italy?"})).await;
    let rubric = entry(&bad.state["verdict"]["scores"], "rubric").clone();
    assert_eq!((rubric["passed"].as_bool(), rubric["score"].as_f64()), (Some(false), Some(2.0)), "{rubric}");
    rt.shutdown().await;
}

#[tokio::test]
async fn a_judge_that_does_not_answer_with_a_score_is_an_invalid_output_error_with_its_exchange() {
    let server = ModelServer::start().await;
    server.script(Rule::contains("capital of France", Reply::text("Paris")));
    let dir = tempfile::tempdir().unwrap();
    let rt = Runtime::open(dir.path()).await.unwrap();
    let wf = compile(&judged_workflow(&server));
    let out = run(&rt, &wf, json!({"q": "the capital of France?"})).await;
    assert_eq!(out.status, Status::Failed);
    let error = out.error.unwrap();
    assert!(error.contains("rubric scorer `rubric`") && error.contains("did not answer with a score"), "{error}");
    let evs = events(&rt, out.id);
    assert!(evs.iter().any(|e| matches!(e, Event::Exchange { node, .. } if node == "check")));
    assert!(evs.iter().any(|e| matches!(e, Event::NodeFailed { class: ErrorClass::InvalidOutput, .. })));
    rt.shutdown().await;
}

// ---------------------------------------------------------------- jamjet eval run

const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/eval.yaml");
const EXAMPLE_DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/eval-dataset.jsonl");

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn eval_run_prints_a_summary_and_rows_and_every_row_is_an_execution_inspect_reads() {
    let dir = tempfile::tempdir().unwrap();
    let out = jamjet_out(dir.path(), &["eval", "run", EXAMPLE_DATA, "--workflow", EXAMPLE, "--fail-under", "0.7"]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}\n{stdout}", text(&out.stderr));
    for needle in
        ["3/4 rows passed (75.0%)", "check.correct", "check.one-word", "check.latency", "p50", "p95", "cost $"]
    {
        assert!(stdout.contains(needle), "no {needle} in:\n{stdout}");
    }
    let de = stdout.lines().find(|l| l.starts_with("de ")).unwrap_or_else(|| panic!("no row de:\n{stdout}"));
    assert!(
        de.contains("FAIL") && de.contains("exec_") && de.contains("check.correct: `output == state.expected`"),
        "{de}"
    );
    assert!(!text(&out.stderr).contains('['), "no progress bar when stderr is not a terminal");

    let report = jamjet_json(
        dir.path(),
        &["eval", "run", EXAMPLE_DATA, "--workflow", EXAMPLE, "--json", "--assert", "state.answer | length > 0"],
    );
    let summary = &report["summary"];
    assert_eq!((summary["rows"].as_u64(), summary["passed"].as_u64()), (Some(4), Some(3)));
    assert_eq!(summary["pass_rate"], 0.75);
    let names: Vec<&str> =
        summary["scorers"].as_array().unwrap().iter().map(|s| s["scorer"].as_str().unwrap()).collect();
    assert_eq!(names, ["check.correct", "check.one-word", "check.latency", "cli.assert"]);
    assert_eq!(summary["scorers"][3]["pass_rate"], 1.0);
    for key in ["latency_p50_ms", "latency_p95_ms", "total_tokens", "cost_usd", "wall_ms"] {
        assert!(summary[key].is_number(), "summary.{key}: {summary}");
    }
    let rows = report["rows"].as_array().unwrap();
    let ids: Vec<&str> = rows.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["fr", "it", "es", "de"]);
    assert_eq!(rows[3]["passed"], false);
    assert_eq!(rows[3]["status"], "completed");
    let failing: Vec<&str> = rows[3]["scores"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["passed"] == false)
        .map(|s| s["scorer"].as_str().unwrap())
        .collect();
    assert_eq!(failing, ["check.correct", "check.one-word"]);

    // Each row is a durable execution, keyed by run, dataset and row id.
    let id = rows[0]["execution_id"].as_str().unwrap();
    let inspect = jamjet_json(dir.path(), &["inspect", id, "--json"]);
    assert!(inspect["events"].as_array().unwrap().iter().any(|e| e["type"] == "Scored"), "{inspect}");
    let human = jamjet_out(dir.path(), &["inspect", id]);
    assert!(human.status.success() && text(&human.stdout).contains("check"), "{}", text(&human.stderr));
    let all = jamjet_json(dir.path(), &["executions", "--json"]);
    let all = all.as_array().unwrap();
    assert_eq!(all.len(), 8, "two runs of four rows");
    let key = format!("eval/{}/eval-dataset.jsonl/fr", report["run"].as_str().unwrap());
    assert!(all.iter().any(|e| e["key"] == key.as_str()), "no execution keyed {key}: {all:?}");
}

#[test]
fn fail_under_and_its_alias_fail_below_exit_1_below_the_threshold() {
    let dir = tempfile::tempdir().unwrap();
    let args = |flag: &str, min: &str| {
        let out = jamjet_out(dir.path(), &["eval", "run", EXAMPLE_DATA, "--workflow", EXAMPLE, flag, min, "--json"]);
        (out.status.code(), text(&out.stderr))
    };
    let (code, stderr) = args("--fail-under", "0.9");
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("pass rate 75.0% is below --fail-under 90.0%"), "{stderr}");
    assert_eq!(args("--fail-below", "0.9").0, Some(1));
    assert_eq!(args("--fail-below", "0.75").0, Some(0));
    let (code, stderr) = args("--fail-under", "90");
    assert_eq!(code, Some(2), "a usage error: {stderr}");
    assert!(stderr.contains("between 0 and 1"), "{stderr}");
}

#[test]
fn bad_rows_are_refused_with_file_and_line_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let bad = dir.path().join("bad.jsonl");
    std::fs::write(
        &bad,
        "{\"id\": \"a\", \"input\": {\"country\": \"France\"}}\n{\"id\": \"b\", \"input\": [1]}\n{oops\n",
    )
    .unwrap();
    let out = jamjet_out(&data, &["eval", "run", bad.to_str().unwrap(), "--workflow", EXAMPLE]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("bad.jsonl:2: `input` must be a JSON object"), "{stderr}");
    assert!(stderr.contains("bad.jsonl:3:2: not valid JSON"), "{stderr}");
    assert!(!data.exists(), "nothing ran: the data dir was not even opened");

    std::fs::write(&bad, "{\"id\": \"a\", \"input\": {\"country\": 3}}\n").unwrap();
    let out = jamjet_out(&data, &["eval", "run", bad.to_str().unwrap(), "--workflow", EXAMPLE]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("bad.jsonl:1: row `a`: input refused") && stderr.contains("country"), "{stderr}");

    let out = jamjet_out(&data, &["eval", "run", EXAMPLE_DATA, "--workflow", EXAMPLE, "--assert", "state.nope"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("--assert `state.nope`: reads `state.nope`"), "{}", text(&out.stderr));
    assert!(!data.exists(), "nothing ran");
}

#[test]
fn eval_run_with_a_rubric_judge_against_the_loopback_model_server() {
    let server = ModelServer::start_blocking();
    script_capitals(&server);
    let dir = tempfile::tempdir().unwrap();
    let wf = dir.path().join("judged.yaml");
    std::fs::write(&wf, judged_workflow(&server)).unwrap();
    let ds = dir.path().join("capitals.jsonl");
    std::fs::write(
        &ds,
        "{\"id\": \"fr\", \"input\": {\"q\": \"the capital of France?\"}, \"expected\": \"Paris\"}\n{\"id\": \"it\", \"input\": {\"q\": \"the capital of Italy?\"}, \"expected\": \"Rome\"}\n",
    )
    .unwrap();
    let data = dir.path().join("data");
    let args = [
        "eval",
        "run",
        ds.to_str().unwrap(),
        "--workflow",
        wf.to_str().unwrap(),
        "--json",
        "--rubric",
        "The answer names the right capital.",
        "--rubric-model",
        "judge",
        "--assert",
        "output.answer == expected",
        "--latency-ms",
        "60000",
        "--cost-usd",
        "1",
    ];
    let report = jamjet_json(&data, &args);
    let summary = &report["summary"];
    assert_eq!(summary["passed"], 0, "the answer's cost fails the node's budget in both rows: {summary}");
    let find =
        |name: &str| summary["scorers"].as_array().unwrap().iter().find(|s| s["scorer"] == name).cloned().unwrap();
    assert_eq!(find("cli.rubric")["pass_rate"], 0.5);
    assert_eq!(find("cli.rubric")["mean_score"], 3.5);
    assert_eq!(find("check.rubric")["pass_rate"], 0.5);
    assert_eq!(find("cli.assert")["pass_rate"], 0.5);
    assert_eq!(find("cli.latency")["pass_rate"], 1.0);
    assert_eq!(find("cli.cost")["pass_rate"], 1.0);
    assert!(summary["total_tokens"].as_u64().unwrap() > 0 && summary["cost_usd"].as_f64().unwrap() > 0.0, "{summary}");
    let judged =
        server.requests().iter().filter(|r| r.idempotency_key().is_some_and(|k| k.ends_with("/judge"))).count();
    assert_eq!(judged, 2, "one command-line judge call per row");
}

#[test]
fn a_row_whose_eval_fails_its_execution_is_reported_with_the_scores_of_the_failed_attempt() {
    let dir = tempfile::tempdir().unwrap();
    let wf = dir.path().join("strict.yaml");
    std::fs::write(&wf, STRICT).unwrap();
    let ds = dir.path().join("answers.jsonl");
    std::fs::write(
        &ds,
        "{\"id\": \"y\", \"input\": {\"answer\": \"yes\"}}\n{\"id\": \"n\", \"input\": {\"answer\": \"no\"}}\n",
    )
    .unwrap();
    let data = dir.path().join("data");
    let (ds, wf) = (ds.to_str().unwrap(), wf.to_str().unwrap());
    let report = jamjet_json(&data, &["eval", "run", ds, "--workflow", wf, "--json", "--concurrency", "1"]);
    let rows = report["rows"].as_array().unwrap();
    assert_eq!((rows[0]["passed"].as_bool(), rows[0]["status"].as_str()), (Some(true), Some("completed")));
    assert_eq!((rows[1]["passed"].as_bool(), rows[1]["status"].as_str()), (Some(false), Some("failed")));
    assert!(rows[1]["error"].as_str().unwrap().contains("eval node `check` failed"), "{}", rows[1]);
    assert_eq!(rows[1]["scores"][0]["scorer"], "check.regex");
    assert_eq!(rows[1]["scores"][0]["passed"], false);
    assert_eq!(report["summary"]["scorers"][0]["pass_rate"], 0.5);

    let out = jamjet_out(&data, &["eval", "run", ds, "--workflow", wf, "--concurrency", "0"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let out = jamjet_out(&data, &["eval", "run", ds, "--workflow", wf, "--rubric", "be right"]);
    assert_eq!(out.status.code(), Some(2), "--rubric needs --rubric-model: {}", text(&out.stderr));
    let out = jamjet_out(&data, &["eval", "run", ds, "--workflow", wf, "--rubric", "x", "--rubric-model", "nosuch"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("--rubric-model: unknown model `nosuch`"), "{}", text(&out.stderr));
}

/// `kill -9` while the judge's call is in flight (the server holds the
/// first one): `jamjet resume` asks again with the same key, and the
/// execution completes with one verdict.
#[tokio::test]
async fn kill_9_during_a_judge_call_repeats_it_with_the_same_key() {
    let server = ModelServer::start().await;
    server.script(Rule::contains("RUBRIC:", Reply::Hold).times(1));
    server.script(Rule::contains("RUBRIC:", Reply::text(r#"{"score": 5, "reasons": "right"}"#)));
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let file = dir.path().join("judged.yaml");
    let yaml = format!(
        "id: judged-crash\nstate_schema: {{ answer: str, verdict: dict }}\nmodels:\n  judge: {{ provider: openai, model: judge-1, base_url: \"{}\" }}\nnodes:\n  check: {{ type: eval, target: answer, scorers: [{{ type: rubric, model: judge, rubric: Is it right? }}], output_key: verdict }}\n",
        server.openai_base()
    );
    std::fs::write(&file, yaml).unwrap();
    let mut child = support::run_to_kill(&data, &file, r#"{"answer": "Paris"}"#).spawn().unwrap();
    let arrived = server.wait_for_requests(1, LIMIT).await;
    let _ = child.kill(); // SIGKILL, mid-call
    let _ = child.wait();
    assert!(arrived, "the judge's call never reached the server");

    let d = data.clone();
    let out = tokio::task::spawn_blocking(move || jamjet_out(&d, &["resume", "--json"])).await.unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let resumed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(resumed[0]["status"], "completed", "{resumed}");

    let seen = server.requests();
    assert_eq!(seen.len(), 2, "the judge was asked again after the crash");
    assert_eq!(seen[0].idempotency_key(), seen[1].idempotency_key());
    let rt = Runtime::builder().data_dir(&data).resume_on_open(false).timers(false).open().await.unwrap();
    let all = rt.list(None).unwrap();
    assert_eq!(all.len(), 1);
    let id = all[0].id;
    assert_eq!(seen[0].idempotency_key(), Some(format!("{id}/check/1/judge/rubric").as_str()));
    let evs = events(&rt, id);
    let completions = evs.iter().filter(|e| matches!(e, Event::NodeCompleted { node, .. } if node == "check")).count();
    assert_eq!(completions, 1);
    let verdicts = scored(&rt, id);
    assert_eq!(verdicts.len(), 1);
    assert!(verdicts[0].2, "{:?}", verdicts[0].3);
    assert_eq!(rt.outcome(id).unwrap().state["verdict"]["passed"], true);
    rt.shutdown().await;
}
