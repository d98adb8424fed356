//! The YAML compiler as users meet it: workflow text in, a `Workflow` or
//! every finding (with line and column) out.

use jamjet::ir;

use ir::{Backoff, Diagnostic, EdgeKind, NodeKind, RetryPolicy, Span, Type};
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
    let d = finding_at("id: x\nstate_schema: {}\nnodes:\n  a:\n    type: model\n", 5, 11, "unknown node type `model`");
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
                    prop_assert!(f.line >= 1 && f.column >= 1 && f.line <= lines + 1, "{} in\n{}", f, text);
                }
                if let Some(line) = renamed {
                    let hit = d.iter().any(|f| f.line as usize == line && f.message.contains("does not exist"));
                    prop_assert!(hit, "no finding for the renamed target on line {}: {}", line, d);
                }
            }
        }
    }
}
