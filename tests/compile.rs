//! The YAML compiler as users meet it: workflow text in, a `Workflow` or
//! every finding (with line and column) out.

use jamjet::ir;

use ir::{
    ApprovalNode, Backoff, Diagnostic, EdgeKind, Merge, NodeKind, OnError, ParallelNode, RetryPolicy, Span,
    SubWorkflowNode, Type, WaitNode,
};
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use serde_json::json;

/// The findings of YAML that must not compile.
fn findings(yaml: &str) -> Vec<Diagnostic> {
    match ir::compile_str(yaml, "wf.yaml") {
        Ok(w) => panic!("expected findings, compiled to {w:?}"),
        Err(d) => d.0,
    }
}

/// The one finding whose message contains `fragment`, checked to be at
/// `line:column`.
#[track_caller]
fn finding_at(yaml: &str, line: u32, column: u32, fragment: &str) -> Diagnostic {
    let all = findings(yaml);
    let matching: Vec<_> = all.iter().filter(|d| d.message.contains(fragment)).collect();
    assert_eq!(matching.len(), 1, "one finding with `{fragment}` expected in {all:#?}");
    let d = matching[0].clone();
    assert_eq!((d.line, d.column), (line, column), "position of {d}");
    assert_eq!(d.file, "wf.yaml");
    d
}

const NESTED: &str = r#"workflow:
  id: research
  version: 1.10
  state_schema: { question: str, n: int, score: float, answer: str, tags: "list[str]", raw: any }
  start: fetch
retry_policies:
  patient: { max_attempts: 5, backoff: linear, delay_ms: 250, jitter: true, retry_on: [timeout, server_error] }
nodes:
  fetch:
    type: http
    url: "https://api.example.com/search?q={{ state.question | urlencode }}"
    headers: { Authorization: "Bearer {{ state.answer }}" }
    output_key: raw
    retry: patient
    timeout_ms: 5000
    next: decide
  decide:
    type: branch
    conditions:
      - when: state.score >= 0.8
        next: done
      - { when: "state.n > 3", next: post }
    default: bump
  bump:
    type: set
    values: { n: "{{ state.n + 1 }}", score: 3, tags: [a, b], answer: "n is {{ state.n }}" }
    next: post
  post:
    type: http
    method: post
    url: https://api.example.com/answers
    body: { question: "{{ state.question }}", meta: [1, 2.5, true, null] }
    retry: { max_attempts: 2, backoff: constant }
    next: call
  call:
    type: function
    function: summarize
    input: { text: "{{ state.raw }}" }
    output_key: answer
  done:
    type: end
"#;

/// The same workflow in the flat form; the comment keeps every node on the
/// same line as in `NESTED`, so spans agree too.
fn flat() -> String {
    let header = "# flat form\nid: research\nversion: 1.10\nstate_schema: { question: str, n: int, score: float, answer: str, tags: \"list[str]\", raw: any }\nstart: fetch\n";
    let rest = &NESTED[NESTED.find("retry_policies:").expect("nested has retry_policies")..];
    format!("{header}{rest}")
}

#[test]
fn both_forms_compile_to_the_same_ir() {
    let nested = ir::compile_str(NESTED, "nested.yaml").expect("nested form compiles");
    let mut flat = ir::compile_str(&flat(), "flat.yaml").expect("flat form compiles");
    assert_eq!(flat.source_file.as_deref(), Some("flat.yaml"));
    flat.source_file = nested.source_file.clone();
    assert_eq!(nested, flat);
    assert_eq!(nested.source_file.as_deref(), Some("nested.yaml"));
}

#[test]
fn compiles_every_field() {
    let w = ir::compile_str(NESTED, "wf.yaml").expect("compiles");
    assert_eq!((w.id.as_str(), w.version.as_str(), w.start.as_str()), ("research", "1.10", "fetch"));
    assert_eq!(w.state_schema.get("tags"), Some(&Type::List(Box::new(Type::Str))));
    let patient = RetryPolicy {
        max_attempts: 5,
        backoff: Backoff::Linear,
        delay_ms: 250,
        jitter: true,
        retry_on: Some(vec!["timeout".into(), "server_error".into()]),
        ..RetryPolicy::default()
    };
    assert_eq!(w.retry_policies["patient"], patient);

    let fetch = &w.nodes["fetch"];
    assert_eq!(fetch.span, Span { line: 9, column: 3 });
    assert_eq!((fetch.retry.clone(), fetch.timeout_ms, fetch.next.as_deref()), (patient, Some(5000), Some("decide")));
    let NodeKind::Http(http) = &fetch.kind else { panic!("fetch is http") };
    assert_eq!((http.method.as_str(), http.output_key.as_deref()), ("GET", Some("raw")));
    assert_eq!(http.headers["Authorization"], "Bearer {{ state.answer }}");

    let NodeKind::Branch(branch) = &w.nodes["decide"].kind else { panic!("decide is a branch") };
    assert_eq!(branch.default.as_deref(), Some("bump"));
    assert_eq!(branch.conditions[0].when, "state.score >= 0.8");
    assert_eq!(branch.conditions[0].span, Span { line: 20, column: 9 });
    assert_eq!((branch.conditions[1].next.as_str(), branch.conditions[1].span), ("post", Span { line: 22, column: 9 }));

    let NodeKind::Set(set) = &w.nodes["bump"].kind else { panic!("bump is a set") };
    assert_eq!(set.values["n"], json!("{{ state.n + 1 }}"));
    assert_eq!(set.values["tags"], json!(["a", "b"]));

    let post = &w.nodes["post"];
    let NodeKind::Http(http) = &post.kind else { panic!("post is http") };
    assert_eq!(http.method, "POST");
    assert_eq!(http.body, Some(json!({"question": "{{ state.question }}", "meta": [1, 2.5, true, null]})));
    assert_eq!((post.retry.max_attempts, post.retry.backoff, post.retry.delay_ms), (2, Backoff::Constant, 1000));

    let NodeKind::Function(call) = &w.nodes["call"].kind else { panic!("call is a function") };
    assert_eq!((call.function.as_str(), call.output_key.as_deref()), ("summarize", Some("answer")));
    assert_eq!(call.input, Some(json!({"text": "{{ state.raw }}"})));
    assert_eq!((w.nodes["call"].next.clone(), w.nodes["call"].retry.clone()), (None, RetryPolicy::default()));
    assert!(matches!(w.nodes["done"].kind, NodeKind::End));

    let edges: Vec<_> = w.edges.iter().map(|e| (e.from.as_str(), e.to.as_str(), e.kind)).collect();
    assert_eq!(
        edges,
        [
            ("fetch", "decide", EdgeKind::Next),
            ("decide", "done", EdgeKind::Condition(0)),
            ("decide", "post", EdgeKind::Condition(1)),
            ("decide", "bump", EdgeKind::Default),
            ("bump", "post", EdgeKind::Next),
            ("post", "call", EdgeKind::Next),
        ]
    );
}

#[test]
fn defaults_version_and_start() {
    let w = ir::compile_str("id: tiny\nstate_schema: {}\nnodes:\n  first: {type: end}\n", "t.yaml").expect("compiles");
    assert_eq!((w.version.as_str(), w.start.as_str()), ("0.1.0", "first"));
    let w =
        ir::compile_str("id: v\nversion: 2\nstate_schema: {}\nnodes: {a: {type: end}}\n", "t.yaml").expect("compiles");
    assert_eq!(w.version, "2");
}

#[test]
fn compile_file_reads_files_and_reports_unreadable_ones() {
    let path = std::env::temp_dir().join(format!("jamjet-compile-{}.yaml", std::process::id()));
    std::fs::write(&path, NESTED).expect("temp file is writable");
    let w = ir::compile_file(&path);
    let _ = std::fs::remove_file(&path);
    assert_eq!(w.expect("compiles").source_file, Some(path.display().to_string()));

    let missing = std::path::Path::new("/definitely/not/here.yaml");
    let d = ir::compile_file(missing).expect_err("unreadable").0;
    assert_eq!(d.len(), 1);
    assert_eq!((d[0].line, d[0].column, d[0].file.as_str()), (1, 1, "/definitely/not/here.yaml"));
    assert!(d[0].message.contains("No such file"), "{}", d[0]);
}

#[test]
fn malformed_yaml_is_one_finding_at_the_parser_position() {
    let d = findings("id: x\nstate_schema: {}\nnodes:\n  a: {type: end\n  b: [1, 2\n");
    assert_eq!(d.len(), 1, "{d:?}");
    assert!(d[0].message.starts_with("invalid YAML"), "{}", d[0]);
    assert_eq!(d[0].line, 5);
    let d = findings("id: x\nnodes:\n  a:\n    type: end\n   bad: 1\n");
    assert_eq!((d.len(), d[0].line), (1, 5), "{d:?}");
}

#[test]
fn unknown_fields_are_reported_at_the_key() {
    let d = finding_at("id: x\nstate_schema: {}\nnodez: {}\nnodes: {a: {type: end}}\n", 3, 1, "unknown field `nodez`");
    assert!(d.message.contains("did you mean `nodes`?") && d.message.contains("expected one of: id, version"));
    let block = "workflow:\n  id: x\n  state_schema: {}\n  strat: a\nnodes: {a: {type: end}}\n";
    finding_at(block, 4, 3, "unknown field `strat` in the `workflow` block");
    let node = "id: x\nstate_schema: {}\nnodes:\n  a:\n    type: end\n    urll: x\n";
    let d = finding_at(node, 6, 5, "unknown field `urll` in node `a`");
    assert_eq!(d.node.as_deref(), Some("a"));
    let retry = "id: x\nstate_schema: {}\nnodes:\n  a:\n    type: end\n    retry: {max_attempt: 3}\n";
    finding_at(retry, 6, 13, "unknown field `max_attempt` in `retry`");
    let cond = "id: x\nstate_schema: {}\nnodes:\n  a:\n    type: branch\n    conditions:\n      - {when: 'true', next: b, then: c}\n  b: {type: end}\n";
    finding_at(cond, 7, 33, "unknown field `then` in a condition");
}

#[test]
fn wrong_value_kinds_are_reported_at_the_value() {
    let yaml = "id: x\nstate_schema: {}\nnodes:\n  a:\n    type: end\n    timeout_ms: \"abc\"\n";
    let d = finding_at(yaml, 6, 17, "`timeout_ms` must be an integer, found a string");
    assert_eq!(d.node.as_deref(), Some("a"));
    let yaml = "id: x\nstate_schema: {}\nnodes:\n  a:\n    type: branch\n    conditions: {when: x}\n";
    finding_at(yaml, 6, 17, "`conditions` must be a list");
    finding_at("id: x\nstate_schema: {}\nnodes: {a: {type: end, timeout_ms: 0}}\n", 3, 36, "at least 1");
    finding_at("id: 7\nstate_schema: {}\nnodes: {a: {type: end}}\n", 1, 5, "`id` must be a string, found an int");
    finding_at("id: x\nstate_schema: {n: strin}\nnodes: {a: {type: end}}\n", 2, 19, "unknown type `strin`");
    finding_at("id: x\nstate_schema: {}\nnodes: {a: {type: end, retry: 3}}\n", 3, 31, "`retry` must be a mapping or");
    let yaml =
        "id: x\nstate_schema: {}\nnodes: {a: {type: end, retry: {backoff: wild, jitter: 1, retry_on: [timout]}}}\n";
    let d = findings(yaml);
    let spots: Vec<_> = d.iter().map(|d| (d.line, d.column)).collect();
    assert_eq!(spots, [(3, 41), (3, 55), (3, 69)], "{d:#?}");
    assert!(d[2].message.contains("did you mean `timeout`?"));
    finding_at(
        "id: x\nstate_schema: {}\nnodes: {a: {type: http, method: FETCH, url: u}}\n",
        3,
        33,
        "unknown HTTP method",
    );
}

#[test]
fn missing_required_fields_and_bad_ids() {
    finding_at("state_schema: {}\nnodes: {a: {type: end}}\n", 1, 1, "missing the required field `id`");
    finding_at("workflow:\n  id: x\nnodes: {a: {type: end}}\n", 1, 1, "missing the required field `state_schema`");
    finding_at("id: x\nstate_schema: {}\n", 1, 1, "missing the required field `nodes`");
    finding_at(
        "id: x\nstate_schema: {}\nnodes:\n  a: {next: b}\n  b: {type: end}\n",
        4,
        3,
        "missing the required field `type`",
    );
    finding_at("id: x\nstate_schema: {}\nnodes:\n  a: {type: http}\n", 4, 3, "missing the required field `url`");
    finding_at("id: x\nstate_schema: {}\nnodes:\n  a b: {type: end}\n", 4, 3, "invalid node id `a b`");
    finding_at("id: x\nstate_schema: {}\nnodes: {}\n", 3, 8, "at least one node");
}

#[test]
fn node_kind_rules() {
    let d = finding_at("id: x\nstate_schema: {}\nnodes:\n  a:\n    type: modle\n", 5, 11, "unknown node type `modle`");
    assert!(d.message.contains("did you mean `model`?"), "{}", d.message);
    assert!(d.message.contains("expected one of: http, branch, set, end, function"));
    let branch =
        "id: x\nstate_schema: {}\nnodes:\n  a:\n    type: branch\n    default: b\n    next: b\n  b: {type: end}\n";
    finding_at(branch, 7, 5, "a branch node must not have `next`");
    finding_at("id: x\nstate_schema: {}\nnodes:\n  a: {type: branch}\n", 4, 3, "at least one condition or a `default`");
    let end = "id: x\nstate_schema: {}\nnodes:\n  a:\n    type: end\n    next: a\n";
    finding_at(end, 6, 5, "an end node must not have `next`");
    let retry = "id: x\nstate_schema: {}\nretry_policies: {patient: {}}\nnodes:\n  a: {type: end, retry: patiens}\n";
    finding_at(retry, 5, 25, "unknown retry policy `patiens` (did you mean `patient`?)");
}

#[test]
fn duplicate_keys_are_reported_at_the_second_occurrence() {
    let yaml = "id: x\nstate_schema: {}\nnodes:\n  a:\n    type: end\n  a:\n    type: end\n";
    let d = finding_at(yaml, 6, 3, "duplicate node id `a` (first defined at line 4)");
    assert_eq!(d.node.as_deref(), Some("a"));
    let yaml = "id: x\nstate_schema: {}\nnodes:\n  a:\n    type: end\n    type: set\n";
    let d = finding_at(yaml, 6, 5, "duplicate key `type` (first defined at line 5)");
    assert_eq!(d.node.as_deref(), Some("a"));
    finding_at("id: x\nid: y\nstate_schema: {}\nnodes: {a: {type: end}}\n", 2, 1, "duplicate key `id`");
}

#[test]
fn missing_targets_are_reported_with_a_suggestion() {
    let yaml = "workflow:
  id: x
  state_schema: {}
  start: serch
nodes:
  search:
    type: branch
    conditions:
      - when: 'true'
        next: sumarize
    default: nowhere
  summarize:
    type: function
    function: f
    next: summarise
";
    finding_at(yaml, 4, 10, "`start` names node `serch`, which does not exist (did you mean `search`?)");
    let d = finding_at(yaml, 10, 15, "condition 1's `next` names node `sumarize`");
    assert!(d.message.ends_with("(did you mean `summarize`?)"), "{d}");
    assert_eq!(d.node.as_deref(), Some("search"));
    let d = finding_at(yaml, 11, 14, "`default` names node `nowhere`, which does not exist");
    assert!(!d.message.contains("did you mean"));
    finding_at(yaml, 15, 11, "`next` names node `summarise`");
}

#[test]
fn unreachable_nodes_are_reported_at_their_id() {
    let yaml = "id: x\nstate_schema: {}\nnodes:\n  a: {type: end}\n  b: {type: end}\n";
    let d = finding_at(yaml, 5, 3, "node `b` is not reachable from the start node `a`");
    assert_eq!(d.node.as_deref(), Some("b"));
}

#[test]
fn cycles_without_a_way_out_are_reported_once_at_their_first_node() {
    let yaml = "id: loops
state_schema: {n: int}
nodes:
  a: {type: set, values: {n: 1}, next: b}
  b: {type: branch, conditions: [{when: state.n > 1, next: c}], default: d}
  c: {type: set, values: {n: 2}, next: b}
  d: {type: function, function: f, next: e}
  e: {type: function, function: g, next: d}
";
    // b <-> c may leave (to d), d <-> e cannot.
    let d = findings(yaml);
    assert_eq!(d.len(), 1, "{d:#?}");
    assert_eq!((d[0].line, d[0].column, d[0].node.as_deref()), (7, 3, Some("d")));
    assert!(d[0].message.contains("nodes `d`, `e` form a cycle with no way out"), "{}", d[0]);
    let own = "id: x\nstate_schema: {}\nnodes:\n  a: {type: function, function: f, next: a}\n";
    finding_at(own, 4, 3, "node `a` loops to itself");
    // A cycle with an exit is fine.
    let exit = "id: x\nstate_schema: {n: int}\nnodes:\n  a: {type: branch, conditions: [{when: state.n > 1, next: b}], default: c}\n  b: {type: set, values: {n: 1}, next: a}\n  c: {type: end}\n";
    assert!(ir::compile_str(exit, "wf.yaml").is_ok());
}

#[test]
fn templates_and_conditions_must_compile() {
    let yaml = "id: x\nstate_schema: {q: str}\nnodes:\n  a:\n    type: http\n    url: \"https://x/{{ state.q \"\n";
    let d = finding_at(yaml, 6, 10, "template does not compile");
    assert!(d.message.contains("syntax error"), "{d}");
    let yaml = "id: x\nstate_schema: {q: str}\nnodes:\n  a:\n    type: branch\n    conditions:\n      - when: state.q ==\n        next: b\n  b: {type: end}\n";
    finding_at(yaml, 7, 15, "condition does not compile");
    let yaml = "id: x\nstate_schema: {q: str}\nnodes:\n  a:\n    type: function\n    function: f\n    input: {deep: [\"{% if %}\"]}\n";
    finding_at(yaml, 7, 20, "template does not compile");
}

#[test]
fn templates_may_read_only_declared_state_keys() {
    let yaml = "id: x\nstate_schema: {question: str}\nnodes:\n  a:\n    type: http\n    url: https://x\n    headers: {X-Q: \"{{ state.qestion }}\"}\n";
    let d = finding_at(yaml, 7, 20, "template reads `state.qestion`, which is not in `state_schema`");
    assert!(d.message.contains("did you mean `question`?"), "{d}");
    let yaml = "id: x\nstate_schema: {n: int}\nnodes:\n  a:\n    type: branch\n    conditions: [{when: state.m > 1, next: b}]\n  b: {type: end}\n";
    finding_at(yaml, 6, 25, "condition reads `state.m`");
    let yaml = "id: x\nstate_schema: {n: int}\nnodes:\n  a:\n    type: set\n    values: {n: \"{{ foo }}\"}\n";
    let d = finding_at(yaml, 6, 17, "template reads `foo`, which is not defined: only `state` is");
    assert_eq!(d.node.as_deref(), Some("a"));
    let ok = "id: x\nstate_schema: {n: int}\nnodes:\n  a:\n    type: set\n    values: {n: \"{% for i in range(3) %}{{ i }}{% endfor %}\"}\n";
    // A loop variable and a global are fine; the mismatch (a template renders to str) is not.
    let d = findings(ok);
    assert_eq!(d.len(), 1, "{d:#?}");
    assert!(d[0].message.contains("renders to str"));
}

#[test]
fn output_keys_and_set_keys_must_be_declared() {
    let yaml = "id: x\nstate_schema: {answer: str}\nnodes:\n  a:\n    type: function\n    function: f\n    output_key: answr\n";
    finding_at(yaml, 7, 17, "`output_key` `answr` is not in `state_schema` (did you mean `answer`?)");
    let yaml = "id: x\nstate_schema: {answer: str}\nnodes:\n  a:\n    type: set\n    values:\n      answer: hi\n      other: 1\n";
    finding_at(yaml, 8, 7, "`set` key `other` is not in `state_schema`");
}

#[test]
fn set_type_mismatches_are_reported_at_the_value() {
    let yaml = "id: x
state_schema: {n: int, f: float, s: str, maybe: int?, tags: \"list[str]\"}
nodes:
  a:
    type: set
    values:
      n: \"three\"
      f: 3
      s: \"{{ state.n }}\"
      maybe: null
      tags: [a]
  b:
    type: set
    values: {n: 3.5, s: \"{{ state.s }}\", f: \"{{ state.n }}\", maybe: \"{{ state.n }}\"}
";
    let d = findings(yaml);
    let found: Vec<_> = d.iter().map(|d| (d.line, d.column, d.message.as_str())).collect();
    assert_eq!(
        found,
        [
            (7, 10, "type mismatch: `n` is int but is set to a value of type str"),
            (9, 10, "type mismatch: `s` is str but is set to `state.n` of type int"),
            (12, 3, "node `b` is not reachable from the start node `a`"),
            (14, 17, "type mismatch: `n` is int but is set to a value of type float"),
        ]
    );
    finding_at("id: x\nstate_schema: {n: int}\nnodes: {a: {type: set, values: {n: ~}}}\n", 3, 36, "is set to null");
}

#[test]
fn aliases_and_second_documents_are_refused() {
    let yaml = "id: x\nstate_schema: &s {}\nnodes: {a: {type: set, values: *s}}\n";
    finding_at(yaml, 3, 32, "aliases");
    finding_at("id: x\nstate_schema: {}\nnodes: {a: {type: end}}\n---\nid: y\n", 4, 1, "one YAML document");
}

#[test]
fn every_finding_is_reported_at_once_in_position_order() {
    let yaml = "workflow:
  id: research
  state_schema: { question: str, n: int }
  colour: blue
nodes:
  fetch:
    type: http
    url: \"https://x/{{ state.qestion }}\"
    timeout_ms: soon
    next: decde
  decide:
    type: branch
    conditions: [{when: state.n >, next: fetch}]
  fetch:
    type: end
";
    let d = findings(yaml);
    let spots: Vec<_> = d.iter().map(|d| (d.line, d.column)).collect();
    // `decde` is taken to mean `decide` for the graph's shape: then fetch
    // and decide loop (the second `fetch`, an end, is a duplicate).
    assert_eq!(spots, [(4, 3), (6, 3), (8, 10), (9, 17), (10, 11), (13, 25), (14, 3)], "{d:#?}");
    let text = ir::Diagnostics(d).to_string();
    assert!(text.starts_with("wf.yaml:4:3: error: unknown field `colour`"), "{text}");
    assert!(text.contains("(node `fetch`)"));
}

// ---- workflow timeout, parallel, wait, approval, sub-workflows ----

#[test]
fn workflow_timeout_ms_in_both_forms() {
    let nested = "workflow:\n  id: x\n  state_schema: {}\n  timeout_ms: 60000\nnodes: {a: {type: end}}\n";
    assert_eq!(ir::compile_str(nested, "wf.yaml").expect("compiles").timeout_ms, Some(60_000));
    let flat = "id: x\ntimeout_ms: 5\nstate_schema: {}\nnodes: {a: {type: end}}\n";
    assert_eq!(ir::compile_str(flat, "wf.yaml").expect("compiles").timeout_ms, Some(5));
    let none = "id: x\nstate_schema: {}\nnodes: {a: {type: end}}\n";
    assert_eq!(ir::compile_str(none, "wf.yaml").expect("compiles").timeout_ms, None);
    finding_at(
        "id: x\ntimeout_ms: 0\nstate_schema: {}\nnodes: {a: {type: end}}\n",
        2,
        13,
        "`timeout_ms` must be at least 1",
    );
    let block = "workflow:\n  id: x\n  state_schema: {}\n  timeout_ms: soon\nnodes: {a: {type: end}}\n";
    finding_at(block, 4, 15, "`timeout_ms` must be an integer, found a string");
}

#[test]
fn unknown_node_types_list_every_kind() {
    let d =
        finding_at("id: x\nstate_schema: {}\nnodes:\n  a:\n    type: paralel\n", 5, 11, "unknown node type `paralel`");
    assert!(d.message.contains("did you mean `parallel`?"), "{d}");
    assert!(
        d.message.contains("expected one of: http, branch, set, end, function, parallel, wait, approval, workflow")
    );
}

const FANOUT: &str = "id: fan
state_schema: { names: \"list[str]\", greeting: str, results: list, a: str, b: int }
nodes:
  each:
    type: parallel
    for_each: \"{{ state.names }}\"
    branches: [greet]
    join: both
    on_error: collect
    max_concurrency: 2
    output_key: results
  greet:
    type: set
    values: { greeting: \"{{ index }}: {{ item | upper }}\" }
    next: both
  both:
    type: parallel
    branches: [left, right]
    join: done
    merge: keys
    timeout_ms: 1000
  left:
    type: set
    values: { a: x }
    next: left_more
  left_more:
    type: function
    function: f
    next: done
  right:
    type: branch
    conditions: [{when: \"state.b > 1\", next: done}]
    default: right_set
  right_set:
    type: set
    values: { b: 2 }
    next: done
  done:
    type: end
";

#[test]
fn compiles_parallel_nodes() {
    let w = ir::compile_str(FANOUT, "wf.yaml").expect("compiles");
    let NodeKind::Parallel(each) = &w.nodes["each"].kind else { panic!("each is parallel") };
    let expected = ParallelNode {
        branches: vec!["greet".into()],
        for_each: Some("{{ state.names }}".into()),
        join: "both".into(),
        merge: Merge::Collect,
        on_error: OnError::Collect,
        max_concurrency: Some(2),
        output_key: Some("results".into()),
    };
    assert_eq!(each, &expected);
    assert_eq!(w.nodes["each"].next, None);
    let both = &w.nodes["both"];
    let NodeKind::Parallel(p) = &both.kind else { panic!("both is parallel") };
    assert_eq!((p.branches.clone(), p.join.as_str()), (vec!["left".to_string(), "right".to_string()], "done"));
    assert_eq!(
        (p.merge, p.on_error, p.max_concurrency, p.output_key.clone()),
        (Merge::Keys, OnError::FailFast, None, None)
    );
    assert_eq!(both.timeout_ms, Some(1000));
    let edges: Vec<_> = w
        .edges
        .iter()
        .filter(|e| e.from == "each" || e.from == "both")
        .map(|e| (e.from.as_str(), e.to.as_str(), e.kind))
        .collect();
    assert_eq!(
        edges,
        [
            ("each", "greet", EdgeKind::Branch(0)),
            ("each", "both", EdgeKind::Join),
            ("both", "left", EdgeKind::Branch(0)),
            ("both", "right", EdgeKind::Branch(1)),
            ("both", "done", EdgeKind::Join),
        ]
    );
    // The new edge kinds are stored snake_case, like the others.
    assert_eq!(serde_json::to_value(EdgeKind::Branch(1)).unwrap(), json!({"branch": 1}));
    assert_eq!(serde_json::to_value(EdgeKind::Join).unwrap(), json!("join"));
}

#[test]
fn a_parallel_node_has_no_next() {
    let yaml = FANOUT.replace("    output_key: results\n", "    output_key: results\n    next: both\n");
    let d = finding_at(&yaml, 12, 5, "a parallel node must not have `next`: the execution goes on at its `join`");
    assert_eq!(d.node.as_deref(), Some("each"));
}

#[test]
fn parallel_field_rules() {
    let two = FANOUT.replace("branches: [greet]", "branches: [greet, done]");
    finding_at(&two, 7, 15, "with `for_each`, `branches` names exactly one node");
    let keys = FANOUT.replace("    on_error: collect\n", "    merge: keys\n");
    finding_at(&keys, 9, 12, "`merge: keys` cannot be used with `for_each`: every item runs the same chain");
    finding_at(
        &keys,
        11,
        5,
        "`output_key` is only for `merge: collect`: with `merge: keys` the branches' own state keys",
    );
    let collect = FANOUT.replace("    output_key: results\n", "");
    finding_at(&collect, 4, 3, "`merge: collect` is missing the required field `output_key`");
    let word = FANOUT.replace("merge: keys", "merge: key");
    finding_at(&word, 20, 12, "unknown merge `key` (did you mean `keys`? expected one of: collect, keys, first)");
    let word = FANOUT.replace("on_error: collect", "on_error: fail-fast");
    finding_at(&word, 9, 15, "unknown on_error `fail-fast` (did you mean `fail_fast`?");
    finding_at(
        &FANOUT.replace("max_concurrency: 2", "max_concurrency: 0"),
        10,
        22,
        "`max_concurrency` must be at least 1",
    );
    finding_at(
        &FANOUT.replace("branches: [left, right]", "branches: []"),
        18,
        15,
        "`branches` must name at least one node",
    );
    finding_at(
        &FANOUT.replace("branches: [left, right]", "branches: left"),
        18,
        15,
        "`branches` must be a list of node ids",
    );
    finding_at(&FANOUT.replace("[left, right]", "[left, left]"), 18, 22, "branch `left` is listed twice");
    let no_join = FANOUT.replace("    join: done\n", "");
    finding_at(&no_join, 16, 3, "a parallel node is missing the required field `join`");
    let d = finding_at(&FANOUT.replace("[left, right]", "[left, rihgt]"), 18, 22, "`branches` names node `rihgt`");
    assert!(d.message.ends_with("(did you mean `right`?)"), "{d}");
    finding_at(
        &FANOUT.replace("join: done", "join: dnoe"),
        19,
        11,
        "`join` names node `dnoe`, which does not exist (did you mean `done`?)",
    );
    finding_at(&FANOUT.replace("join: done", "join: left"), 19, 11, "`join` `left` is also a branch");
    finding_at(
        &FANOUT.replace("max_concurrency", "max_concurency"),
        10,
        5,
        "unknown field `max_concurency` in node `each` (did you mean `max_concurrency`?",
    );
}

#[test]
fn for_each_is_a_template_over_a_list() {
    finding_at(
        &FANOUT.replace("\"{{ state.names }}\"", "names"),
        6,
        15,
        "`for_each` must be a template that evaluates to a list",
    );
    finding_at(
        &FANOUT.replace("\"{{ state.names }}\"", "\"{{ state.greeting }}\""),
        6,
        15,
        "`for_each` reads `state.greeting`, which is str, not a list",
    );
    finding_at(
        &FANOUT.replace("\"{{ state.names }}\"", "\"{{ state.nmes }}\""),
        6,
        15,
        "template reads `state.nmes`, which is not in `state_schema` (did you mean `names`?)",
    );
}

#[test]
fn collect_needs_an_output_key_that_holds_a_list_of_objects() {
    let yaml = FANOUT.replace("results: list", "results: \"list[str]\"");
    finding_at(&yaml, 11, 17, "type mismatch: `output_key` `results` is list[str], but it receives a list of objects");
    finding_at(
        &FANOUT.replace("output_key: results", "output_key: result"),
        11,
        17,
        "`output_key` `result` is not in `state_schema` (did you mean `results`?)",
    );
}

#[test]
fn every_branch_must_reach_join() {
    // `right_set` ends the branch instead of going on to `done`; `right`'s
    // condition still reaches it, so only a chain with no way there fails.
    let yaml = FANOUT.replace("    values: { b: 2 }\n    next: done\n", "    values: { b: 2 }\n");
    assert!(ir::compile_str(&yaml, "wf.yaml").is_ok());
    let yaml = FANOUT.replace("    function: f\n    next: done\n", "    function: f\n");
    let d = finding_at(
        &yaml,
        18,
        16,
        "branch `left` never reaches `join` `done`: give the last node of its chain `next: done`",
    );
    assert_eq!(d.node.as_deref(), Some("both"));
    let yaml = FANOUT.replace(
        "    values: { greeting: \"{{ index }}: {{ item | upper }}\" }\n    next: both\n",
        "    values: { greeting: \"{{ index }}: {{ item | upper }}\" }\n",
    );
    finding_at(&yaml, 7, 16, "branch `greet` never reaches `join` `both`");
}

#[test]
fn merge_keys_branches_must_write_different_keys() {
    // `left` writes `a` (the function without `output_key` counts for
    // nothing); `right_set` writes `a` too, and `b`.
    let yaml = FANOUT.replace("values: { b: 2 }", "values: { b: 2, a: y }");
    let d = finding_at(
        &yaml,
        18,
        22,
        "branches `left` and `right` both write state key `a`: with `merge: keys` each key must be written by one branch",
    );
    assert_eq!(d.node.as_deref(), Some("both"));
    let yaml = FANOUT
        .replace("values: { b: 2 }", "values: { b: 2, a: y }")
        .replace("values: { a: x }", "values: { a: x, b: 1 }");
    finding_at(&yaml, 18, 22, "both write state keys `a`, `b`");
    let yaml = FANOUT.replace("    function: f\n", "    function: f\n    output_key: b\n");
    finding_at(&yaml, 18, 22, "branches `left` and `right` both write state key `b`");
    // Under `merge: first` only the winner's keys are written: no finding.
    let yaml =
        FANOUT.replace("values: { b: 2 }", "values: { b: 2, a: y }").replace("    merge: keys\n", "    merge: first\n");
    assert!(ir::compile_str(&yaml, "wf.yaml").is_ok());
}

#[test]
fn item_and_index_exist_only_in_for_each_chains() {
    let yaml = FANOUT.replace("values: { a: x }", "values: { a: \"{{ item }}\" }");
    let d = finding_at(
        &yaml,
        24,
        18,
        "template reads `item`, which is not defined here: `item` and `index` exist only in the branch of a parallel node with `for_each`",
    );
    assert_eq!(d.node.as_deref(), Some("left"));
    let yaml = FANOUT.replace("when: \"state.b > 1\"", "when: \"index > 1\"");
    assert_ne!(yaml, FANOUT);
    finding_at(&yaml, 32, 25, "condition reads `index`, which is not defined here");
    // Without `for_each`, `greet` runs once, outside any loop.
    let yaml = FANOUT.replace("    for_each:", "    # no for_each:");
    let d = findings(&yaml);
    let reads: Vec<_> =
        d.iter().filter(|d| d.message.contains("which is not defined here")).map(|d| (d.line, d.column)).collect();
    assert_eq!(reads, [(14, 25), (14, 25)], "{d:#?}");
    // Other names are reported as soon as the node is read, as before.
    let yaml = FANOUT.replace("{{ item | upper }}", "{{ items }}");
    finding_at(&yaml, 14, 25, "template reads `items`, which is not defined: only `state` is");
}

#[test]
fn branches_count_as_successors_for_the_graph_checks() {
    // `lonely` is reached by nobody; the branches and join are.
    let yaml = format!("{FANOUT}  lonely: {{type: end}}\n");
    let d = findings(&yaml);
    assert_eq!(d.len(), 1, "{d:#?}");
    assert!(d[0].message.contains("node `lonely` is not reachable"), "{}", d[0]);
    // A branch chain that loops forever is a trap like any other.
    let yaml = FANOUT.replace("    function: f\n    next: done\n", "    function: f\n    next: left\n");
    let d = findings(&yaml);
    assert!(d.iter().any(|d| d.message.contains("nodes `left`, `left_more` form a cycle with no way out")), "{d:#?}");
}

const WAITS: &str = "id: waits
state_schema: { order: str, payment: dict, status: str, decision: dict, when: str }
nodes:
  pay:
    type: wait
    event: \"payment:{{ state.order }}\"
    timeout_ms: 60000
    on_timeout: expired
    output_key: payment
    next: pause
  pause:
    type: wait
    duration_ms: 500
    next: until
  until:
    type: wait
    until: 2026-01-31T09:00:00Z
    next: later
  later:
    type: wait
    until: \"{{ state.when }}\"
    next: ask
  ask:
    type: approval
    prompt: \"Ship order {{ state.order }}?\"
    on_reject: refused
    on_timeout: expired
    timeout_ms: 3600000
    output_key: decision
    next: shipped
  shipped: {type: set, values: {status: shipped}}
  refused: {type: set, values: {status: refused}}
  expired: {type: set, values: {status: expired}}
";

#[test]
fn compiles_wait_and_approval_nodes() {
    let w = ir::compile_str(WAITS, "wf.yaml").expect("compiles");
    let wait = |id: &str| match &w.nodes[id].kind {
        NodeKind::Wait(wait) => wait.clone(),
        other => panic!("{id} is {other:?}"),
    };
    assert_eq!(
        wait("pay"),
        WaitNode {
            event: Some("payment:{{ state.order }}".into()),
            duration_ms: None,
            until: None,
            on_timeout: Some("expired".into()),
            output_key: Some("payment".into()),
        }
    );
    assert_eq!(w.nodes["pay"].timeout_ms, Some(60_000));
    assert_eq!((wait("pause").duration_ms, wait("pause").event), (Some(500), None));
    assert_eq!(wait("until").until.as_deref(), Some("2026-01-31T09:00:00Z"));
    assert_eq!(wait("later").until.as_deref(), Some("{{ state.when }}"));
    let NodeKind::Approval(ask) = &w.nodes["ask"].kind else { panic!("ask is an approval") };
    let expected = ApprovalNode {
        prompt: "Ship order {{ state.order }}?".into(),
        on_reject: Some("refused".into()),
        on_timeout: Some("expired".into()),
        output_key: Some("decision".into()),
    };
    assert_eq!(ask, &expected);
    assert_eq!((w.nodes["ask"].timeout_ms, w.nodes["ask"].next.as_deref()), (Some(3_600_000), Some("shipped")));
    let edges: Vec<_> = w
        .edges
        .iter()
        .filter(|e| e.from == "pay" || e.from == "ask")
        .map(|e| (e.from.as_str(), e.to.as_str(), e.kind))
        .collect();
    assert_eq!(
        edges,
        [
            ("pay", "expired", EdgeKind::OnTimeout),
            ("pay", "pause", EdgeKind::Next),
            ("ask", "refused", EdgeKind::OnReject),
            ("ask", "expired", EdgeKind::OnTimeout),
            ("ask", "shipped", EdgeKind::Next),
        ]
    );
}

#[test]
fn a_wait_waits_for_exactly_one_thing() {
    finding_at(
        &WAITS.replace("    duration_ms: 500\n", ""),
        11,
        3,
        "a wait node needs one of `event`, `duration_ms` or `until`",
    );
    let both = WAITS.replace("    duration_ms: 500\n", "    duration_ms: 500\n    event: e\n");
    finding_at(&both, 14, 5, "`event` cannot be combined with `duration_ms`: a wait node waits for one thing");
    finding_at(&WAITS.replace("duration_ms: 500", "duration_ms: 0"), 13, 18, "`duration_ms` must be at least 1");
}

#[test]
fn until_must_be_an_rfc3339_timestamp_or_a_template() {
    let d = finding_at(
        &WAITS.replace("2026-01-31T09:00:00Z", "2026-01-31 9am"),
        17,
        12,
        "`until` must be an RFC 3339 timestamp",
    );
    assert_eq!(d.node.as_deref(), Some("until"));
    finding_at(
        &WAITS.replace("{{ state.when }}", "{{ state.wen }}"),
        21,
        12,
        "template reads `state.wen`, which is not in `state_schema` (did you mean `when`?)",
    );
}

#[test]
fn wait_timeouts_and_output_keys() {
    let no_timeout = WAITS.replace("    timeout_ms: 60000\n", "");
    finding_at(&no_timeout, 7, 5, "`on_timeout` needs `timeout_ms`: without a timeout the node never times out");
    // A timeout without `on_timeout` is fine: the wait fails when it passes.
    assert!(
        ir::compile_str(&WAITS.replace("    on_timeout: expired\n    output_key", "    output_key"), "wf.yaml").is_ok()
    );
    let timer = WAITS.replace(
        "    duration_ms: 500\n",
        "    duration_ms: 500\n    timeout_ms: 9\n    on_timeout: expired\n    output_key: payment\n",
    );
    let d = findings(&timer);
    let found: Vec<_> = d.iter().map(|d| (d.line, d.column, d.message.split(':').next().unwrap_or_default())).collect();
    assert_eq!(
        found,
        [
            (14, 5, "`timeout_ms` is for a wait on an `event`"),
            (15, 5, "`on_timeout` is for a wait on an `event` (with `timeout_ms`)"),
            (16, 5, "`output_key` is for a wait on an `event` (its payload goes there)"),
        ],
        "{d:#?}"
    );
    finding_at(
        &WAITS.replace("output_key: payment", "output_key: paymnt"),
        9,
        17,
        "`output_key` `paymnt` is not in `state_schema` (did you mean `payment`?)",
    );
    let d = finding_at(
        &WAITS.replace("on_timeout: expired\n    output_key: payment", "on_timeout: expird\n    output_key: payment"),
        8,
        17,
        "`on_timeout` names node `expird`",
    );
    assert!(d.message.ends_with("(did you mean `expired`?)"), "{d}");
}

#[test]
fn approval_rules() {
    finding_at(
        &WAITS.replace("    prompt: \"Ship order {{ state.order }}?\"\n", ""),
        23,
        3,
        "an approval node is missing the required field `prompt`",
    );
    finding_at(&WAITS.replace("    timeout_ms: 3600000\n", ""), 27, 5, "`on_timeout` needs `timeout_ms`");
    let typed = WAITS.replace("decision: dict", "decision: str");
    finding_at(
        &typed,
        29,
        17,
        "type mismatch: `output_key` `decision` is str, but it receives the decision `{decision, by, comment, at}`, an object",
    );
    assert!(ir::compile_str(&WAITS.replace("decision: dict", "decision: any"), "wf.yaml").is_ok());
    assert!(ir::compile_str(&WAITS.replace("decision: dict", "decision: dict?"), "wf.yaml").is_ok());
    let d = finding_at(
        &WAITS.replace("on_reject: refused", "on_reject: refsued"),
        26,
        16,
        "`on_reject` names node `refsued`",
    );
    assert!(d.message.ends_with("(did you mean `refused`?)"), "{d}");
    finding_at(
        &WAITS.replace("\"Ship order {{ state.order }}?\"", "\"Ship {{ state.order \""),
        25,
        13,
        "template does not compile",
    );
    finding_at(
        &WAITS.replace("on_reject: refused", "on_rejected: refused"),
        26,
        5,
        "unknown field `on_rejected` in node `ask` (did you mean `on_reject`?",
    );
}

/// A directory of workflow files, removed when dropped.
fn files(list: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("a temp dir");
    for (name, text) in list {
        std::fs::write(dir.path().join(name), text).expect("temp files are writable");
    }
    dir
}

const CHILD: &str = "id: child\nversion: 1.2.0\nstate_schema: { name: str, greeting: str }\nnodes:\n  greet: {type: set, values: {greeting: \"hi {{ state.name }}\"}}\n";

fn parent(child_field: &str) -> String {
    format!(
        "id: parent
state_schema: {{ user: str, result: dict }}
nodes:
  call:
    type: workflow
    {child_field}
    input: {{ name: \"{{{{ state.user }}}}\" }}
    output_key: result
    timeout_ms: 5000
"
    )
}

#[test]
fn sub_workflows_by_file_are_compiled_and_embedded() {
    let dir = files(&[("parent.yaml", &parent("file: sub/child.yaml"))]);
    std::fs::create_dir(dir.path().join("sub")).expect("writable");
    std::fs::write(dir.path().join("sub/child.yaml"), CHILD).expect("writable");
    let w = ir::compile_file(&dir.path().join("parent.yaml")).expect("compiles");
    let NodeKind::Workflow(call) = &w.nodes["call"].kind else { panic!("call is a sub-workflow") };
    let child = ir::compile_file(&dir.path().join("sub/child.yaml")).expect("the child compiles");
    assert_eq!(
        call,
        &SubWorkflowNode {
            workflow: Box::new(child),
            input: Some(json!({"name": "{{ state.user }}"})),
            output_key: Some("result".into())
        }
    );
    assert_eq!(w.nodes["call"].timeout_ms, Some(5000));
}

#[test]
fn sub_workflows_by_id_are_found_beside_the_parent() {
    let v2 = CHILD.replace("1.2.0", "2.0.0").replace("hi ", "hello ");
    let dir = files(&[
        ("parent.yaml", &parent("workflow: child\n    version: 2.0.0")),
        ("a.yml", CHILD),
        ("b.yaml", &v2),
        ("notes.yaml", "just: text\n"),
        ("broken.yaml", "{"),
    ]);
    let w = ir::compile_file(&dir.path().join("parent.yaml")).expect("compiles");
    let NodeKind::Workflow(call) = &w.nodes["call"].kind else { panic!("call is a sub-workflow") };
    assert_eq!((call.workflow.id.as_str(), call.workflow.version.as_str()), ("child", "2.0.0"));

    std::fs::write(dir.path().join("parent.yaml"), parent("workflow: child")).expect("writable");
    let d = ir::compile_file(&dir.path().join("parent.yaml")).expect_err("ambiguous").0;
    assert_eq!((d.len(), d[0].line, d[0].column), (1, 6, 15), "{d:#?}");
    assert!(
        d[0].message.contains("several files declare workflow `child`")
            && d[0].message.contains("add `version` to pick one"),
        "{}",
        d[0]
    );
    std::fs::write(dir.path().join("parent.yaml"), parent("workflow: child\n    version: 3")).expect("writable");
    let d = ir::compile_file(&dir.path().join("parent.yaml")).expect_err("no such version").0;
    assert!(
        d[0].message.contains("no version `3` of workflow `child`") && d[0].message.contains("found: 1.2.0, 2.0.0"),
        "{}",
        d[0]
    );
    std::fs::write(dir.path().join("parent.yaml"), parent("workflow: chlid")).expect("writable");
    let d = ir::compile_file(&dir.path().join("parent.yaml")).expect_err("no such id").0;
    assert!(
        d[0].message.contains("no workflow `chlid` among the `.yaml`/`.yml` files")
            && d[0].message.ends_with("(did you mean `child`?)"),
        "{}",
        d[0]
    );
}

#[test]
fn sub_workflow_field_rules() {
    let d = findings(&parent("workflow: child"));
    assert_eq!(d.len(), 1, "{d:#?}");
    assert_eq!((d[0].line, d[0].column), (6, 15));
    assert!(d[0].message.contains("this workflow was not compiled from a file: name the child by `file`"), "{}", d[0]);
    finding_at(&parent("file: a.yaml\n    workflow: child"), 7, 5, "by `file` or by `workflow` (an id), not both");
    finding_at(
        &parent("description: none"),
        4,
        3,
        "a workflow node needs `file` (a path from this file's directory) or `workflow` (an id)",
    );
    let d = finding_at(
        &parent("file: /definitely/not/here.yaml"),
        6,
        11,
        "cannot read sub-workflow `/definitely/not/here.yaml`",
    );
    assert_eq!(d.node.as_deref(), Some("call"));
    let dir = files(&[("child.yaml", CHILD)]);
    let yaml = parent("file: child.yaml\n    version: 1.2.0")
        .replace("name: ", "nme: ")
        .replace("result: dict", "result: str");
    std::fs::write(dir.path().join("parent.yaml"), &yaml).expect("writable");
    let d = ir::compile_file(&dir.path().join("parent.yaml")).expect_err("findings").0;
    let found: Vec<_> = d.iter().map(|d| (d.line, d.column, d.message.as_str())).collect();
    assert_eq!(
        found,
        [
            (7, 5, "`version` goes with `workflow: <id>`: a `file` names one workflow"),
            (8, 14, "`input` key `nme` is not in the `state_schema` of sub-workflow `child` (did you mean `name`?)"),
            (9, 17, "type mismatch: `output_key` `result` is str, but it receives the child's final state, an object"),
        ]
    );
}

#[test]
fn a_child_that_does_not_compile_is_reported_at_the_parent() {
    let broken = CHILD.replace("}}\n", "}, next: nowhere, colour: blue}\n");
    let dir = files(&[("parent.yaml", &parent("file: child.yaml")), ("child.yaml", &broken)]);
    let d = ir::compile_file(&dir.path().join("parent.yaml")).expect_err("the child has findings").0;
    assert_eq!(d.len(), 1, "{d:#?}");
    let child = dir.path().join("child.yaml").display().to_string();
    assert_eq!((d[0].line, d[0].column, d[0].node.as_deref()), (6, 11, Some("call")));
    let expected = format!("sub-workflow `{child}` does not compile: {child}:5:71: error: `next` names node `nowhere`");
    assert!(d[0].message.starts_with(&expected), "{}", d[0]);
    assert!(d[0].message.ends_with("(and 1 more)"), "{}", d[0]);
}

#[test]
fn sub_workflows_that_include_themselves_are_reported() {
    let dir = files(&[("a.yaml", &parent("file: a.yaml"))]);
    let a = dir.path().join("a.yaml");
    let d = ir::compile_file(&a).expect_err("includes itself").0;
    let shown = a.display().to_string();
    assert_eq!((d.len(), d[0].line, d[0].column), (1, 6, 11), "{d:#?}");
    assert_eq!(d[0].message, format!("sub-workflow `{shown}` includes itself: {shown} → {shown}"));

    // a -> b -> c -> b, found by id: reported where c names b, and at each
    // parent on the way up.
    let dir = files(&[
        ("a.yaml", &parent("file: b.yaml")),
        ("b.yaml", &parent("workflow: c").replace("id: parent", "id: b").replace("name:", "user:")),
        ("c.yaml", &parent("workflow: b").replace("id: parent", "id: c").replace("name:", "user:")),
    ]);
    let d = ir::compile_file(&dir.path().join("a.yaml")).expect_err("a cycle").0;
    assert_eq!(d.len(), 1, "{d:#?}");
    let [b, c] = ["b.yaml", "c.yaml"].map(|f| dir.path().join(f).display().to_string());
    assert!(d[0].message.starts_with(&format!("sub-workflow `{b}` does not compile: {b}:6:15: error: sub-workflow `{c}` does not compile: {c}:6:15: error: sub-workflow `{b}` includes itself: {b} → {c} → {b}")), "{}", d[0]);
}

#[test]
fn sub_workflow_files_resolve_from_the_current_directory_for_strings() {
    // `cargo test` runs in the package's directory.
    let yaml = "id: p\nstate_schema: { name: str, out: dict }\nnodes:\n  run: {type: workflow, file: examples/child.yaml, output_key: out}\n";
    let w = ir::compile_str(yaml, "inline.yaml").expect("compiles");
    let NodeKind::Workflow(run) = &w.nodes["run"].kind else { panic!("run is a sub-workflow") };
    assert_eq!((run.workflow.id.as_str(), run.input.clone()), ("child-greeter", None));
}

#[test]
fn the_examples_compile() {
    let examples = concat!(env!("CARGO_MANIFEST_DIR"), "/examples");
    for name in ["hello", "triage", "fanout", "wait", "approval", "parent", "child"] {
        let path = std::path::Path::new(examples).join(format!("{name}.yaml"));
        if let Err(d) = ir::compile_file(&path) {
            panic!("{name}.yaml does not compile:\n{d}");
        }
    }
    let fanout = ir::compile_file(&std::path::Path::new(examples).join("fanout.yaml")).expect("compiles");
    let kinds: Vec<_> = fanout.nodes.values().map(|n| n.kind.type_name()).collect();
    assert_eq!(kinds.iter().filter(|k| **k == "parallel").count(), 2);
    let parent = ir::compile_file(&std::path::Path::new(examples).join("parent.yaml")).expect("compiles");
    let NodeKind::Workflow(child) = &parent.nodes["greet_user"].kind else { panic!("greet_user is a sub-workflow") };
    assert_eq!(child.workflow.id, "child-greeter");
}

// ---- property tests ----

#[derive(Debug, Clone, Copy, PartialEq)]
enum Ty {
    Str,
    Int,
    Float,
    Bool,
}

#[derive(Debug, Clone)]
enum Kind {
    /// Set key `.0`; from the first key of the same type when `.1`.
    Set(usize, bool, i32),
    Function(Option<usize>),
    Http(usize, Option<usize>),
    /// Condition targets, as offsets ahead of this node.
    Branch(Vec<usize>),
    End,
}

#[derive(Debug, Clone)]
struct Spec {
    types: Vec<Ty>,
    kinds: Vec<Kind>,
}

fn ty() -> impl Strategy<Value = Ty> {
    prop_oneof![Just(Ty::Str), Just(Ty::Int), Just(Ty::Float), Just(Ty::Bool)]
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        (0..8usize, any::<bool>(), any::<i32>()).prop_map(|(k, r, v)| Kind::Set(k, r, v)),
        proptest::option::of(0..8usize).prop_map(Kind::Function),
        (0..14usize, proptest::option::of(0..8usize)).prop_map(|(m, o)| Kind::Http(m, o)),
        proptest::collection::vec(0..8usize, 0..3).prop_map(Kind::Branch),
        Just(Kind::End),
    ]
}

fn spec() -> impl Strategy<Value = Spec> {
    (proptest::collection::vec(ty(), 1..5), proptest::collection::vec(kind(), 1..8))
        .prop_map(|(types, kinds)| Spec { types, kinds })
}

impl Spec {
    fn header(&self) -> [String; 3] {
        let keys: Vec<_> = self.types.iter().enumerate().map(|(i, t)| format!("k{i}: {}", name(*t))).collect();
        ["id: generated".into(), "version: 0.3.0".into(), format!("state_schema: {{ {} }}", keys.join(", "))]
    }

    fn nested(&self) -> String {
        let [id, version, schema] = self.header();
        format!("workflow:\n  {id}\n  {version}\n  {schema}\n{}", self.nodes())
    }

    /// Flat; the comment keeps every node on the same line as in `nested`.
    fn flat(&self) -> String {
        let [id, version, schema] = self.header();
        format!("# generated\n{id}\n{version}\n{schema}\n{}", self.nodes())
    }

    fn key(&self, k: usize) -> usize {
        k % self.types.len()
    }

    fn nodes(&self) -> String {
        let n = self.kinds.len();
        let mut out = String::from("nodes:\n");
        for (i, kind) in self.kinds.iter().enumerate() {
            let last = i + 1 == n;
            out.push_str(&format!("  n{i}:\n"));
            let mut next = (!last).then(|| format!("n{}", i + 1));
            match kind {
                // An end or a branch as the last node would leave nodes
                // unreachable or the branch without targets: use a set.
                Kind::End if last => {
                    out.push_str("    type: end\n");
                    next = None;
                }
                Kind::Branch(ahead) if !last => {
                    let list = if ahead.is_empty() { " []" } else { "" };
                    out.push_str(&format!("    type: branch\n    conditions:{list}\n"));
                    for (c, a) in ahead.iter().enumerate() {
                        let to = i + 1 + a % (n - i - 1);
                        let k = self.key(*a + c);
                        out.push_str(&format!("      - when: state.k{k} == state.k{k}\n        next: n{to}\n"));
                    }
                    out.push_str(&format!("    default: {}\n", next.take().unwrap_or_default()));
                }
                Kind::Function(output) => {
                    out.push_str(&format!("    type: function\n    function: fn_{i}\n"));
                    out.push_str(&format!("    input: {{ all: \"{{{{ state.k{} }}}}\", n: {i} }}\n", self.key(i)));
                    if let Some(k) = output {
                        out.push_str(&format!("    output_key: k{}\n", self.key(*k)));
                    }
                }
                Kind::Http(method, output) => {
                    let method = ["get", "POST", "Put", "patch", "DELETE", "head", "OPTIONS"][method % 7];
                    out.push_str(&format!("    type: http\n    method: {method}\n"));
                    out.push_str(&format!("    url: \"https://example.com/{{{{ state.k{} }}}}\"\n", self.key(i)));
                    out.push_str("    headers: { Accept: application/json }\n    retry: { max_attempts: 3 }\n");
                    if let Some(k) = output {
                        out.push_str(&format!("    output_key: k{}\n", self.key(*k)));
                    }
                }
                Kind::Set(k, from_state, v) => {
                    let k = self.key(*k);
                    let t = self.types[k];
                    let value = if *from_state {
                        let same = self.types.iter().position(|u| *u == t).unwrap_or(k);
                        format!("\"{{{{ state.k{same} }}}}\"")
                    } else {
                        match t {
                            Ty::Str => format!("\"text {v}\""),
                            Ty::Int => v.to_string(),
                            Ty::Float => format!("{v}.5"),
                            Ty::Bool => (v % 2 == 0).to_string(),
                        }
                    };
                    out.push_str(&format!("    type: set\n    values:\n      k{k}: {value}\n"));
                }
                Kind::End | Kind::Branch(_) => {
                    out.push_str(&format!("    type: set\n    values: {{ k0: {} }}\n", literal(self.types[0])));
                }
            }
            if let Some(next) = next {
                out.push_str(&format!("    next: {next}\n"));
            }
        }
        out
    }
}

fn name(t: Ty) -> &'static str {
    match t {
        Ty::Str => "str",
        Ty::Int => "int",
        Ty::Float => "float",
        Ty::Bool => "bool",
    }
}

fn literal(t: Ty) -> &'static str {
    match t {
        Ty::Str => "'s'",
        Ty::Int => "1",
        Ty::Float => "1.5",
        Ty::Bool => "true",
    }
}

#[test]
fn max_steps_is_read_from_both_forms() {
    let nested = "workflow:\n  id: s\n  max_steps: 25\n  state_schema: {}\nnodes:\n  a: {type: end}\n";
    assert_eq!(ir::compile_str(nested, "wf.yaml").unwrap().max_steps, Some(25));
    let flat = "id: s\nmax_steps: 7\nstate_schema: {}\nnodes:\n  a: {type: end}\n";
    assert_eq!(ir::compile_str(flat, "wf.yaml").unwrap().max_steps, Some(7));
    let none = "id: s\nstate_schema: {}\nnodes:\n  a: {type: end}\n";
    assert_eq!(ir::compile_str(none, "wf.yaml").unwrap().max_steps, None);
    finding_at(
        "id: s\nmax_steps: 0\nstate_schema: {}\nnodes:\n  a: {type: end}\n",
        2,
        12,
        "`max_steps` must be at least 1",
    );
    finding_at(
        "id: s\nmax_steps: many\nstate_schema: {}\nnodes:\n  a: {type: end}\n",
        2,
        12,
        "`max_steps` must be an integer",
    );
}

#[test]
fn compile_time_limits_follow_the_options() {
    let limits = ir::Limits { max_duration_ms: 1000, max_nodes: 2, max_expression_terms: 3, ..ir::Limits::default() };
    let options = ir::Options { limits, ..ir::Options::default() };
    let yaml = "id: l\nstate_schema: {n: int}\nnodes:\n  a: {type: wait, duration_ms: 1001, next: b}\n  b: {type: set, values: {n: '{{ state.n + 1 + 1 + 1 }}'}}\n";
    let found = ir::compile_str_with(yaml, "wf.yaml", &options).unwrap_err();
    let messages: Vec<String> = found.iter().map(|d| format!("{}:{} {}", d.line, d.column, d.message)).collect();
    assert_eq!(messages.len(), 2, "{messages:#?}");
    assert!(
        messages[0].starts_with("4:32 `duration_ms` of 1001 ms: over the limit max_duration_ms = 1,000 ms"),
        "{messages:#?}"
    );
    assert!(messages[1].starts_with("5:30 template: the expression has 4 operators"), "{messages:#?}");
    let three = "id: l\nstate_schema: {}\nnodes:\n  a: {type: end}\n  b: {type: end}\n  c: {type: end}\n";
    let found = ir::compile_str_with(three, "wf.yaml", &options).unwrap_err();
    assert!(found.0[0].message.contains("`nodes` holds 3 nodes: over the limit max_nodes = 2"), "{found}");
    assert_eq!((found.0[0].line, found.0[0].column), (4, 3));
}

#[test]
fn a_40000_node_cycle_is_one_finding_naming_ten_members() {
    let n = 40_000;
    let mut yaml =
        String::from("id: cycle\nstate_schema: {x: int}\nnodes:\n  start: {type: set, values: {x: 0}, next: n0}\n");
    for i in 0..n {
        yaml.push_str(&format!("  n{i}: {{type: set, values: {{x: 1}}, next: n{}}}\n", (i + 1) % n));
    }
    let limits = ir::Limits { max_nodes: 50_000, ..ir::Limits::default() };
    let options = ir::Options { limits, ..ir::Options::default() };
    let found = ir::compile_str_with(&yaml, "wf.yaml", &options).unwrap_err();
    assert_eq!(found.len(), 1, "{found}");
    let d = &found.0[0];
    assert_eq!((d.line, d.column, d.node.as_deref()), (5, 3, Some("n0")));
    assert!(
        d.message
            .ends_with("`n9` and 39990 more form a cycle with no way out: none leads to a node that ends the workflow"),
        "{d}"
    );
}

#[test]
fn thousands_of_misspelt_targets_each_get_a_finding() {
    // Every `next` is misspelt: suggestions stop when their budget is spent,
    // the findings do not.
    let n = 5_000;
    let mut yaml = String::from("id: typo\nstate_schema: {x: int}\nnodes:\n");
    for i in 0..n {
        yaml.push_str(&format!("  node_{i}: {{type: set, values: {{x: 1}}, next: nod_{}}}\n", i + 1));
    }
    let found = ir::compile_str(&yaml, "wf.yaml").unwrap_err();
    let missing = found.iter().filter(|d| d.message.contains("which does not exist")).count();
    assert_eq!(missing, n);
    assert!(found.0[0].message.contains("(did you mean `node_1`?)"), "{}", found.0[0]);
}

/// A modest number of cases; failures are kept beside this file.
fn config(cases: u32) -> ProptestConfig {
    let persistence = FileFailurePersistence::WithSource("proptest-regressions");
    ProptestConfig { cases, failure_persistence: Some(Box::new(persistence)), ..ProptestConfig::default() }
}

#[derive(Debug, Clone)]
enum Mutation {
    DeleteLine(usize),
    SwapChars(usize),
    InsertJunk(usize, String),
    RenameTarget(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        any::<usize>().prop_map(Mutation::DeleteLine),
        any::<usize>().prop_map(Mutation::SwapChars),
        (any::<usize>(), "[-:\\[\\]{}&*!|>'\"%@#?,\n\t a-z0-9é]{1,6}").prop_map(|(p, j)| Mutation::InsertJunk(p, j)),
        any::<usize>().prop_map(Mutation::RenameTarget),
    ]
}

/// Apply a mutation; for a renamed target, also the line it is on.
fn mutate(text: &str, m: &Mutation) -> (String, Option<usize>) {
    let mut chars: Vec<char> = text.chars().collect();
    match m {
        Mutation::DeleteLine(i) => {
            let mut lines: Vec<&str> = text.lines().collect();
            lines.remove(i % lines.len());
            (lines.join("\n"), None)
        }
        Mutation::SwapChars(i) => {
            let i = i % (chars.len() - 1);
            chars.swap(i, i + 1);
            (chars.into_iter().collect(), None)
        }
        Mutation::InsertJunk(i, junk) => {
            chars.splice(i % chars.len()..i % chars.len(), junk.chars());
            (chars.into_iter().collect(), None)
        }
        Mutation::RenameTarget(i) => {
            let targets: Vec<usize> = text
                .lines()
                .enumerate()
                .filter(|(_, l)| ["next: n", "default: n"].iter().any(|t| l.trim_start().starts_with(t)))
                .map(|(n, _)| n)
                .collect();
            if targets.is_empty() {
                return (text.to_string(), None);
            }
            let line = targets[i % targets.len()];
            let lines: Vec<String> = text
                .lines()
                .enumerate()
                .map(|(n, l)| if n == line { format!("{l}zz") } else { l.to_string() })
                .collect();
            (lines.join("\n"), Some(line + 1))
        }
    }
}

proptest! {
    #![proptest_config(config(128))]

    #[test]
    fn valid_workflows_compile_in_both_forms(spec in spec()) {
        let nested = ir::compile_str(&spec.nested(), "wf.yaml");
        let nested = nested.map_err(|d| TestCaseError::fail(format!("{d}\n{}", spec.nested())))?;
        let flat = ir::compile_str(&spec.flat(), "wf.yaml");
        let flat = flat.map_err(|d| TestCaseError::fail(format!("{d}\n{}", spec.flat())))?;
        prop_assert_eq!(&nested, &flat);
        prop_assert_eq!(nested.nodes.len(), spec.kinds.len());
        prop_assert_eq!(nested.start.as_str(), "n0");
    }
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn mutated_workflows_never_panic(spec in spec(), m in mutation()) {
        let (text, renamed) = mutate(&spec.nested(), &m);
        let lines = u32::try_from(text.lines().count()).unwrap_or(u32::MAX);
        match ir::compile_str(&text, "wf.yaml") {
            Ok(_) => prop_assert!(renamed.is_none(), "a renamed target compiled:\n{}", text),
            Err(d) => {
                prop_assert!(!d.is_empty());
                for f in d.iter() {
                    prop_assert!(f.line >= 1 && f.column >= 1 && f.line <= lines.max(1), "{} in\n{}", f, text);
                }
                if let Some(line) = renamed {
                    let hit = d.iter().any(|f| f.line as usize == line && f.message.contains("does not exist"));
                    prop_assert!(hit, "no finding for the renamed target on line {}: {}", line, d);
                }
            }
        }
    }
}

// ---- state_schema long form, nested paths, filters and tests ----

const SHAPED: &str = r#"id: shaped
state_schema:
  extra: { type: dict, fields: { question: str, tags: "list[str]", note: str? } }
  hits: { type: list, items: { type: dict, fields: { title: str } } }
  tries: { type: int, default: 0 }
  out: str
nodes:
  a:
    type: set
    values: { out: "{{ state.extra.question }} {{ state.hits[0].title }} {{ state.tries }}" }
"#;

#[test]
fn the_long_form_declares_fields_items_and_defaults() {
    let w = ir::compile_str(SHAPED, "wf.yaml").unwrap_or_else(|d| panic!("{d}"));
    assert_eq!(w.state_schema.defaults.get("tries"), Some(&serde_json::json!(0)));
    let Some(Type::Record(fields)) = w.state_schema.get("extra") else { panic!("extra has fields") };
    assert_eq!(fields.get("note"), Some(&Type::Optional(Box::new(Type::Str))));
    assert!(w.state_schema.check_object(&serde_json::json!({ "extra": { "question": "q", "tags": [] } })).is_ok());
    assert!(w.state_schema.check_object(&serde_json::json!({ "extra": { "qestion": "q", "tags": [] } })).is_err());
    assert!(w.state_schema.check_object(&serde_json::json!({ "hits": [{ "title": 1 }] })).is_err());
    let required: Vec<String> = ir::required_inputs(&w).into_iter().map(|r| r.key).collect();
    assert_eq!(required, ["extra", "hits"]);
}

#[test]
fn nested_paths_unknown_filters_and_tests_are_findings_with_did_you_mean() {
    let yaml = SHAPED.replace(
        "{{ state.extra.question }} {{ state.hits[0].title }} {{ state.tries }}",
        "{{ state.extra.qestion }} {{ state.hits[0].titel }} {{ state.extra.question | uper }}{% if state.tries is oddd %}x{% endif %}{{ state.tries is odd }}",
    );
    let d = ir::compile_str(&yaml, "wf.yaml").expect_err("findings").0;
    let messages: Vec<String> =
        d.iter().map(|f| format!("{}:{}:{}: {}", f.file, f.line, f.column, f.message)).collect();
    let expected = [
        "wf.yaml:10:20: template reads `state.extra.qestion`, but `state.extra` has no field `qestion` in `state_schema` (did you mean `question`?)",
        "wf.yaml:10:20: template reads `state.hits[…].titel`, but `state.hits[…]` has no field `titel` in `state_schema` (did you mean `title`?)",
        "wf.yaml:10:20: template applies filter `uper`, which does not exist (did you mean `upper`?)",
        "wf.yaml:10:20: template applies test `oddd`, which does not exist (did you mean `odd`?)",
    ];
    for e in expected {
        assert!(messages.iter().any(|m| m == e), "missing {e}\nin {messages:#?}");
    }
    assert_eq!(messages.len(), 4, "{messages:#?}");
}

#[test]
fn a_default_that_does_not_fit_and_misplaced_fields_are_findings() {
    let yaml = "id: t\nstate_schema:\n  n: { type: int, default: \"zero\" }\n  s: { type: str, fields: { a: str } }\n  d: { type: dict, fields: { x: { type: int, default: 1 } } }\nnodes:\n  a: { type: end }\n";
    let d = ir::compile_str(yaml, "wf.yaml").expect_err("findings").0;
    let messages: Vec<&str> = d.iter().map(|f| f.message.as_str()).collect();
    assert_eq!(
        messages,
        [
            "state key `n`: the default \"zero\" is not of its type int",
            "state key `s`: `fields` is for a dict, and the type is `str`",
            "field `x` of state key `d`: `default` is for a top-level state key only",
        ]
    );
}

// ---- local agents, budget and policy ----

const AGENTS: &str = r#"id: research
state_schema: { topic: str, research: str, draft: any }
models:
  fast: { provider: openai, model: gpt-4o-mini }
mcp:
  servers:
    search: { url: "https://mcp.example.com/search" }
budget: { max_cost_usd: 2.5, max_tokens: 100000 }
policy:
  blocked_tools: [delete_everything]
  require_approval_for: [search.web_search]
  model_allowlist: [fast, claude-haiku-4-5]
agents:
  researcher:
    model: fast
    instructions: "Find accurate information on {{ state.topic }}."
    tools: [search.web_search, fetch_page, writer, "http://127.0.0.1:7701/"]
    max_iterations: 5
    max_cost_usd: 0.5
    max_tokens: 40000
    approval: [fetch_page]
    output_schema: { type: object, properties: { summary: { type: string } } }
  writer:
    model: claude-haiku-4-5
    instructions: Write clearly.
    strategy: critic
  panel:
    model: fast
    instructions: Decide.
    strategy: debate
    debaters: [researcher, writer]
nodes:
  research:
    type: agent
    agent: researcher
    message: "Research: {{ state.topic }}"
    output_key: research
    next: peer
  peer: { type: agent, agent: "http://127.0.0.1:7701/", message: "{{ state.topic }}", output_key: draft }
"#;

/// `AGENTS` with `from` replaced by `to` (which must be there).
#[track_caller]
fn agents_with(from: &str, to: &str) -> String {
    assert!(AGENTS.contains(from), "`{from}` is not in AGENTS");
    AGENTS.replacen(from, to, 1)
}

/// Each `(line, column, fragment)` is a finding of `yaml` at that position.
#[track_caller]
fn findings_at(yaml: &str, expected: &[(u32, u32, &str)]) {
    let all = findings(yaml);
    for (line, column, fragment) in expected {
        let found = all.iter().any(|d| (d.line, d.column) == (*line, *column) && d.message.contains(fragment));
        assert!(found, "no finding `{fragment}` at {line}:{column} in {all:#?}");
    }
}

#[test]
fn a_full_agents_example_compiles_with_tools_classified_and_defaults_applied() {
    let w = ir::compile_str(AGENTS, "wf.yaml").unwrap_or_else(|d| panic!("{d}"));
    let fast = ir::resolve_model("fast", &w.models, &w.prices).unwrap();
    assert_eq!(fast.model, "gpt-4o-mini");
    let researcher = &w.agents["researcher"];
    assert_eq!((researcher.model.as_str(), &researcher.config), ("fast", &fast));
    assert_eq!(researcher.instructions, "Find accurate information on {{ state.topic }}.");
    assert_eq!(
        researcher.tools,
        [
            ir::AgentTool::Mcp { server: "search".into(), tool: "web_search".into() },
            ir::AgentTool::Function { name: "fetch_page".into() },
            ir::AgentTool::Agent { name: "writer".into() },
            ir::AgentTool::Remote { url: "http://127.0.0.1:7701/".into() },
        ]
    );
    let names: Vec<String> = researcher.tools.iter().map(ir::AgentTool::name).collect();
    assert_eq!(names, ["web_search", "fetch_page", "writer", "127_0_0_1_7701"]);
    assert_eq!(researcher.strategy, ir::Strategy::React);
    assert_eq!(
        (researcher.max_iterations, researcher.max_cost_usd, researcher.max_tokens),
        (5, Some(0.5), Some(40000))
    );
    // Its own approvals, then the policy's.
    assert_eq!(researcher.approval, ir::ToolApproval::Tools(vec!["fetch_page".into(), "search.web_search".into()]));
    assert_eq!(
        researcher.output_schema,
        Some(json!({"type": "object", "properties": {"summary": {"type": "string"}}}))
    );
    assert_eq!(researcher.span, Span { line: 14, column: 3 });
    let none = (None, None, Vec::<String>::new(), None, None);
    let params = |a: &ir::AgentDef| (a.min_score, a.samples, a.debaters.clone(), a.rounds, a.judge.clone());
    assert_eq!(params(researcher), none);

    let writer = &w.agents["writer"];
    assert_eq!((writer.strategy, writer.min_score, writer.max_iterations), (ir::Strategy::Critic, Some(4), 10));
    assert_eq!(
        (writer.config.model.as_str(), &writer.tools, &writer.approval),
        ("claude-haiku-4-5", &vec![], &ir::ToolApproval::None)
    );
    let panel = &w.agents["panel"];
    assert_eq!(panel.strategy, ir::Strategy::Debate);
    assert_eq!(
        params(panel),
        (None, None, vec!["researcher".into(), "writer".into()], Some(2), Some(("fast".into(), fast)))
    );

    assert_eq!(w.budget, Some(ir::Budget { max_cost_usd: Some(2.5), max_tokens: Some(100_000) }));
    let policy = w.policy.as_ref().unwrap();
    assert_eq!(policy.blocked_tools, ["delete_everything"]);
    assert_eq!(policy.require_approval_for, ["search.web_search"]);
    assert_eq!(policy.model_allowlist, ["fast", "claude-haiku-4-5"]);
    let NodeKind::Agent(research) = &w.nodes["research"].kind else { panic!("research is an agent node") };
    assert_eq!((research.agent.as_str(), research.local), ("researcher", true));
    assert_eq!(research.headers, Default::default());
    let NodeKind::Agent(peer) = &w.nodes["peer"].kind else { panic!("peer is an agent node") };
    assert!(!peer.local);
    assert!(serde_json::to_value(peer).unwrap().get("local").is_none(), "a remote node's JSON has no `local`");
    // Posted as IR JSON, read back: the same workflow.
    let back: ir::Workflow = serde_json::from_slice(&serde_json::to_vec(&w).unwrap()).unwrap();
    assert_eq!((back.content_hash(), &back), (w.content_hash(), &w));
    assert_eq!(ir::check(&w, &Default::default()), []);
}

#[test]
fn consensus_takes_samples_models_and_a_judge_with_defaults() {
    let yaml = agents_with("    strategy: debate\n    debaters: [researcher, writer]\n", "    strategy: consensus\n");
    let w = ir::compile_str(&yaml, "wf.yaml").unwrap_or_else(|d| panic!("{d}"));
    let panel = &w.agents["panel"];
    assert_eq!((panel.samples, panel.models.len()), (Some(3), 0));
    assert_eq!(panel.judge.as_ref().map(|(name, _)| name.as_str()), Some("fast"));
    let yaml = agents_with(
        "    strategy: debate\n    debaters: [researcher, writer]\n",
        "    strategy: consensus\n    samples: 4\n    models: [fast, claude-haiku-4-5]\n    judge: claude-haiku-4-5\n",
    );
    let w = ir::compile_str(&yaml, "wf.yaml").unwrap_or_else(|d| panic!("{d}"));
    let panel = &w.agents["panel"];
    let models: Vec<(&str, &str)> = panel.models.iter().map(|(n, c)| (n.as_str(), c.model.as_str())).collect();
    assert_eq!(
        (panel.samples, models),
        (Some(4), vec![("fast", "gpt-4o-mini"), ("claude-haiku-4-5", "claude-haiku-4-5")])
    );
    assert_eq!(panel.judge.as_ref().map(|(_, c)| c.model.as_str()), Some("claude-haiku-4-5"));
}

#[test]
fn unknown_fields_of_agents_budget_and_policy_are_reported_with_did_you_mean() {
    let d = finding_at(
        &agents_with("    max_iterations: 5", "    max_iteration: 5"),
        18,
        5,
        "unknown field `max_iteration` in agent `researcher` (did you mean `max_iterations`?",
    );
    assert!(d.message.contains("expected one of: model, instructions, tools, strategy"), "{d}");
    finding_at(
        &agents_with("{ max_cost_usd: 2.5", "{ max_cost_ud: 2.5"),
        8,
        11,
        "unknown field `max_cost_ud` in `budget` (did you mean `max_cost_usd`? expected one of: max_cost_usd, max_tokens)",
    );
    finding_at(
        &agents_with("  blocked_tools:", "  blocked_tool:"),
        10,
        3,
        "unknown field `blocked_tool` in `policy` (did you mean `blocked_tools`?",
    );
}

#[test]
fn an_agent_needs_a_model_and_instructions() {
    let no_instructions = agents_with("    instructions: Write clearly.\n", "");
    finding_at(&no_instructions, 23, 3, "agent `writer` is missing the required field `instructions`");
    let no_model = agents_with("    model: claude-haiku-4-5\n", "");
    finding_at(&no_model, 23, 3, "agent `writer` is missing the required field `model`");
    let unknown = agents_with("    model: claude-haiku-4-5\n", "    model: fats\n");
    finding_at(&unknown, 24, 12, "unknown model `fats`: it is not in `models:` (configured: `fast`)");
}

#[test]
fn unknown_strategies_list_the_known_ones() {
    finding_at(
        &agents_with("strategy: critic", "strategy: critc"),
        26,
        15,
        "unknown strategy `critc` (did you mean `critic`? expected one of: react, plan-and-execute, critic, reflection, \
         consensus, debate)",
    );
}

#[test]
fn an_agents_mcp_tool_must_name_a_declared_server() {
    finding_at(
        &agents_with("[search.web_search,", "[serch.web_search,"),
        17,
        13,
        "tool `serch.web_search` names MCP server `serch`, which is not declared (did you mean `search`?) (declared: \
         search)",
    );
}

#[test]
fn an_agent_cannot_use_itself_as_a_tool() {
    let yaml = agents_with(
        "    instructions: Write clearly.\n",
        "    instructions: Write clearly.\n    tools: [fetch_page, writer]\n",
    );
    finding_at(&yaml, 26, 25, "agent `writer` names itself as a tool: an agent cannot call itself");
    let debater = agents_with("debaters: [researcher, writer]", "debaters: [researcher, panel]");
    finding_at(&debater, 31, 28, "agent `panel` names itself as a debater");
}

#[test]
fn agents_that_call_each_other_in_a_cycle_are_named() {
    let yaml = agents_with(
        "    instructions: Write clearly.\n",
        "    instructions: Write clearly.\n    tools: [researcher]\n",
    );
    finding_at(
        &yaml,
        17,
        44,
        "agents call each other in a cycle through `tools` and `debaters`: `researcher` -> `writer` -> `researcher` (an \
         agent must not reach itself)",
    );
    // Through a debate: researcher -> writer -> panel -> researcher, and writer -> panel -> writer.
    let yaml =
        agents_with("    instructions: Write clearly.\n", "    instructions: Write clearly.\n    tools: [panel]\n");
    findings_at(
        &yaml,
        &[
            (17, 44, "in a cycle through `tools` and `debaters`: `researcher` -> `writer` -> `panel` -> `researcher`"),
            (26, 13, "in a cycle through `tools` and `debaters`: `writer` -> `panel` -> `writer`"),
        ],
    );
}

#[test]
fn tools_tool_nodes_and_model_nodes_named_by_the_policy_are_blocked_where_named() {
    // An agent's tool, by its bare name and as written.
    finding_at(
        &agents_with("[delete_everything]", "[web_search]"),
        17,
        13,
        "tool `search.web_search` is blocked by `policy.blocked_tools` entry `web_search` (line 10)",
    );
    finding_at(
        &agents_with("[delete_everything]", "[delete_everything, fetch_page]"),
        17,
        32,
        "tool `fetch_page` is blocked by `policy.blocked_tools` entry `fetch_page` (line 10)",
    );
    let nodes = |blocked: &str| {
        format!(
            r#"id: p
state_schema: {{ q: str, a: str, r: any }}
mcp:
  servers:
    search: {{ url: "https://mcp.example.com/search" }}
policy:
  blocked_tools: [{blocked}]
nodes:
  ask:
    type: model
    model: gpt-4o-mini
    prompt: "{{{{ state.q }}}}"
    tools: [search, {{ server: search, tools: [web_search, fetch] }}]
    output_key: a
    next: look
  look: {{ type: tool, server: search, tool: fetch, output_key: r }}
"#
        )
    };
    assert!(ir::compile_str(&nodes("other"), "wf.yaml").is_ok());
    // A whole server, a listed tool by its bare name, a tool node's tool.
    finding_at(
        &nodes("search"),
        13,
        13,
        "MCP server `search` is blocked by `policy.blocked_tools` entry `search` (line 7)",
    );
    finding_at(
        &nodes("web_search"),
        13,
        47,
        "tool `search.web_search` is blocked by `policy.blocked_tools` entry `web_search`",
    );
    findings_at(
        &nodes("search.fetch"),
        &[
            (13, 59, "tool `search.fetch` is blocked by `policy.blocked_tools` entry `search.fetch` (line 7)"),
            (16, 45, "tool `search.fetch` is blocked by `policy.blocked_tools` entry `search.fetch` (line 7)"),
            (13, 13, "MCP server `search` offers every tool it has, and `search.fetch` is blocked"),
        ],
    );
}

#[test]
fn models_outside_the_allowlist_are_findings_at_the_model() {
    // By the name as written or the model id it resolves to.
    assert!(
        ir::compile_str(&agents_with("[fast, claude-haiku-4-5]", "[gpt-4o-mini, claude-haiku-4-5]"), "wf.yaml").is_ok()
    );
    let allowed = "(allowed: `claude-haiku-4-5`)";
    findings_at(
        &agents_with("[fast, claude-haiku-4-5]", "[claude-haiku-4-5]"),
        &[
            (15, 12, &format!("model `fast` (`gpt-4o-mini`) is not in `policy.model_allowlist` {allowed}")),
            (28, 12, &format!("model `fast` (`gpt-4o-mini`) is not in `policy.model_allowlist` {allowed}")),
        ],
    );
    // Consensus models and judges too.
    let consensus = agents_with(
        "    strategy: debate\n    debaters: [researcher, writer]\n",
        "    strategy: consensus\n    models: [gpt-4o]\n    judge: o3\n",
    );
    findings_at(
        &consensus,
        &[
            (31, 14, "model `gpt-4o` is not in `policy.model_allowlist` (allowed: `fast`, `claude-haiku-4-5`)"),
            (32, 12, "model `o3` is not in `policy.model_allowlist`"),
        ],
    );
    // A model node.
    let node = "id: m\nstate_schema: { q: str }\npolicy: { model_allowlist: [gpt-4o-mini] }\nnodes:\n  ask: { type: model, model: gpt-4o, prompt: hi, output_key: q }\n";
    finding_at(node, 5, 30, "model `gpt-4o` is not in `policy.model_allowlist` (allowed: `gpt-4o-mini`)");
    let empty = agents_with("[fast, claude-haiku-4-5]", "[]");
    finding_at(&empty, 12, 20, "`policy.model_allowlist` must name at least one model (leave it out to allow any)");
}

#[test]
fn approval_names_only_the_agents_own_tools() {
    finding_at(
        &agents_with("approval: [fetch_page]", "approval: [fetch_pages]"),
        21,
        16,
        "`approval` names `fetch_pages`, which is not a tool of agent `researcher` (did you mean `fetch_page`?) (its \
         tools: search.web_search, fetch_page, writer, http://127.0.0.1:7701/)",
    );
    finding_at(
        &agents_with("approval: [fetch_page]", "approval: every"),
        21,
        15,
        "`approval` must be `all` or a list of the agent's tools, found `every`",
    );
    let all = ir::compile_str(&agents_with("approval: [fetch_page]", "approval: all"), "wf.yaml").unwrap();
    assert_eq!(all.agents["researcher"].approval, ir::ToolApproval::All);
}

#[test]
fn strategy_parameters_belong_to_their_strategy_and_are_checked() {
    finding_at(
        &agents_with("    max_iterations: 5\n", "    max_iterations: 5\n    rounds: 3\n"),
        19,
        5,
        "`rounds` applies only to `strategy: debate` (agent `researcher` has `strategy: react`)",
    );
    finding_at(
        &agents_with("    strategy: critic\n", "    strategy: critic\n    judge: fast\n"),
        27,
        5,
        "`judge` applies only to `strategy: consensus` or `strategy: debate` (agent `writer` has `strategy: critic`)",
    );
    finding_at(
        &agents_with("strategy: critic\n", "strategy: critic\n    min_score: 6\n"),
        27,
        16,
        "`min_score` must be between 1 and 5, found 6",
    );
    finding_at(
        &agents_with("debaters: [researcher, writer]", "debaters: [researcher, writter]"),
        31,
        28,
        "debater `writter` is not an agent of `agents:` (did you mean `writer`?)",
    );
    finding_at(
        &agents_with("debaters: [researcher, writer]", "debaters: [researcher]"),
        31,
        15,
        "`debaters` must name at least two agents, found 1",
    );
    finding_at(
        &agents_with("    debaters: [researcher, writer]\n", ""),
        30,
        15,
        "agent `panel` has `strategy: debate` but no `debaters`",
    );
    finding_at(
        &agents_with("debaters: [researcher, writer]", "debaters: [researcher, writer]\n    rounds: 11"),
        32,
        13,
        "`rounds` must be between 1 and 10, found 11",
    );
    let consensus = agents_with(
        "    strategy: debate\n    debaters: [researcher, writer]\n",
        "    strategy: consensus\n    samples: 2\n    models: [fast, claude-haiku-4-5, gpt-4o-mini]\n",
    );
    finding_at(&consensus, 32, 13, "`models` lists 3 models but `samples` is 2: each model needs at least one sample");
}

#[test]
fn agent_limits_and_budgets_must_be_positive() {
    finding_at(
        &agents_with("max_iterations: 5", "max_iterations: 0"),
        18,
        21,
        "`max_iterations` must be at least 1, found 0",
    );
    finding_at(
        &agents_with("max_cost_usd: 0.5", "max_cost_usd: 0"),
        19,
        19,
        "`max_cost_usd` must be an amount of USD more than 0, found 0",
    );
    finding_at(&agents_with("max_tokens: 100000", "max_tokens: 0"), 8, 42, "`max_tokens` must be at least 1, found 0");
}

#[test]
fn instructions_are_templates_over_state() {
    finding_at(
        &agents_with("on {{ state.topic }}.", "on {{ state.topik }}."),
        16,
        19,
        "template reads `state.topik`, which is not in `state_schema` (did you mean `topic`?)",
    );
    finding_at(
        &agents_with("on {{ state.topic }}.", "on {{ item }}."),
        16,
        19,
        "template reads `item`, which is not defined: an agent's instructions see only `state`",
    );
}

#[test]
fn tools_an_agent_offers_need_different_names() {
    finding_at(
        &agents_with("fetch_page, writer,", "web_search, writer,"),
        17,
        32,
        "tools `search.web_search` and `web_search` of agent `researcher` both reach the model as `web_search`",
    );
}

#[test]
fn agent_nodes_name_a_local_agent_or_a_remote_url() {
    finding_at(
        &agents_with("agent: researcher", "agent: reseacher"),
        35,
        12,
        "`agent` names `reseacher`, which is not an agent of `agents:` (did you mean `researcher`?), nor an http:// or \
         https:// URL",
    );
    let local = agents_with(
        "    output_key: research\n",
        "    output_key: research\n    headers: { X: y }\n    input_event: e\n",
    );
    findings_at(
        &local,
        &[
            (38, 5, "`headers` is for remote agents: `researcher` is a local agent of `agents:`"),
            (39, 5, "`input_event` is for remote agents: `researcher` is a local agent of `agents:`"),
        ],
    );
}

#[test]
fn workflows_without_agents_budget_or_policy_keep_their_content_hash() {
    // Computed at b3ba388, before agents, budgets and policies existed.
    let examples = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/examples"));
    for (name, hash) in [
        ("agent", "118c060d9aaa12e703bafbf8553763b979bed6766a5a39b49235ee436442d5a0"),
        ("model", "a1ee81b7e8fa9bcf6e7fd67bcc4c169a5bed4a69028e7eb0496833c367975c24"),
        ("eval", "09cf13079435de2e77e10f5229c45cbf5af231b44e5a6c185d587d66c9b191d3"),
    ] {
        let w = ir::compile_file(&examples.join(format!("{name}.yaml"))).unwrap_or_else(|d| panic!("{d}"));
        assert_eq!(w.content_hash(), hash, "{name}.yaml");
    }
}

#[test]
fn sub_workflows_may_have_their_own_agents_budget_and_policy() {
    let child = AGENTS.replace("id: research", "id: child");
    let parent = "id: parent\nstate_schema: { topic: str, out: dict }\npolicy: { blocked_tools: [fetch_page], model_allowlist: [o3] }\nnodes:\n  call: { type: workflow, file: child.yaml, output_key: out }\n";
    let dir = files(&[("parent.yaml", parent), ("child.yaml", &child)]);
    let w = ir::compile_file(&dir.path().join("parent.yaml")).unwrap_or_else(|d| panic!("{d}"));
    let NodeKind::Workflow(call) = &w.nodes["call"].kind else { panic!("call is a sub-workflow") };
    assert_eq!(call.workflow.agents.len(), 3);
    assert!(call.workflow.budget.is_some() && w.budget.is_none());
}
