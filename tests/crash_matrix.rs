//! Crash recovery at chosen points: the `jamjet` binary is `kill -9`ed
//! right after the append that makes a given event durable
//! (`JAMJET_PAUSE_AFTER=<Event>[:<n>]` holds that append forever and says
//! so on stderr), then the CLI carries the execution on (`resume`,
//! `signal`, `approve`). Each scenario also runs uninterrupted in a data
//! dir of its own, the reference. Checks, for every scenario: the final
//! status, state and error equal the reference's; every execution (parent
//! and child) ended with exactly one terminal event, its last; no node
//! visit completed twice; no branch finished twice; and where http nodes
//! call the loopback server, a repeated call carried the key of its node
//! visit and the same body. Data dirs are kept on failure, their path
//! printed.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use jamjet::ExecutionId;
use serde_json::{Value, json};
use support::{GATHER, Server, jamjet};

/// How long a process may take to reach its pause point.
const PAUSE_LIMIT: Duration = Duration::from_secs(30);
/// How long any other `jamjet` command may take.
const COMMAND_LIMIT: Duration = Duration::from_secs(30);

/// One scenario's data: the workflow file, the reference data dir and the
/// crashed one. Kept (and its path printed) when the test fails.
struct Case {
    name: &'static str,
    tmp: Option<tempfile::TempDir>,
    wf: PathBuf,
    reference: PathBuf,
    crashed: PathBuf,
}

impl Case {
    fn new(name: &'static str, yaml: &str) -> Case {
        let tmp = tempfile::Builder::new().prefix("jamjet-matrix-").tempdir().unwrap();
        let wf = tmp.path().join("workflow.yaml");
        std::fs::write(&wf, yaml).unwrap();
        let (reference, crashed) = (tmp.path().join("reference"), tmp.path().join("crashed"));
        Case { name, wf, reference, crashed, tmp: Some(tmp) }
    }

    fn wf(&self) -> &str {
        self.wf.to_str().unwrap()
    }
}

impl Drop for Case {
    fn drop(&mut self) {
        if std::thread::panicking()
            && let Some(tmp) = self.tmp.take()
        {
            eprintln!("{}: data dirs kept in {}", self.name, tmp.keep().display());
        }
    }
}

// ---------------------------------------------------------------- driving the binary

/// Run `jamjet args` on `dir` to its end, within COMMAND_LIMIT.
fn jamjet_run(case: &Case, dir: &Path, args: &[&str]) -> Output {
    let mut cmd = jamjet();
    cmd.arg("--data-dir").arg(dir).args(args);
    support::run_bounded(cmd, COMMAND_LIMIT, &format!("{}: jamjet {args:?}", case.name)).output
}

/// `jamjet ... --json` that must succeed: its parsed stdout.
fn cli(case: &Case, dir: &Path, args: &[&str]) -> Value {
    let out = jamjet_run(case, dir, args);
    assert!(
        out.status.success(),
        "{}: jamjet {args:?} failed: {}\n{}",
        case.name,
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("{}: jamjet {args:?} printed no JSON ({e}): {}", case.name, String::from_utf8_lossy(&out.stdout))
    })
}

/// Run `jamjet args` on `dir` and `kill -9` it right after `pause` (see
/// `support::kill_when_paused`), within PAUSE_LIMIT.
fn kill_at(case: &Case, dir: &Path, pause: &str, args: &[&str]) {
    let mut cmd = jamjet();
    cmd.arg("--data-dir").arg(dir).args(args);
    support::kill_when_paused(cmd, pause, PAUSE_LIMIT, &format!("{}: jamjet {args:?}", case.name));
}

// ---------------------------------------------------------------- reading the journals

fn executions(case: &Case, dir: &Path) -> Vec<Value> {
    cli(case, dir, &["executions", "--all", "--json"]).as_array().unwrap().clone()
}

/// The execution submitted under `key` (`run --key`).
fn keyed(case: &Case, dir: &Path, key: &str) -> String {
    let all = executions(case, dir);
    let found = all.iter().find(|m| m["key"] == key);
    found.unwrap_or_else(|| panic!("{}: no execution under key {key}: {all:?}", case.name))["id"]
        .as_str()
        .unwrap()
        .to_string()
}

fn status(case: &Case, dir: &Path, id: &str) -> String {
    let all = executions(case, dir);
    let found = all.iter().find(|m| m["id"] == id);
    found.unwrap_or_else(|| panic!("{}: no execution {id}: {all:?}", case.name))["status"].as_str().unwrap().to_string()
}

fn events(case: &Case, dir: &Path, id: &str) -> Vec<Value> {
    cli(case, dir, &["inspect", id, "--json"])["events"].as_array().unwrap().clone()
}

/// An event's fields.
fn body(e: &Value) -> &Value {
    &e["event"][e["type"].as_str().unwrap()]
}

fn count(evs: &[Value], ty: &str) -> usize {
    evs.iter().filter(|e| e["type"] == ty).count()
}

fn visit(e: &Value) -> (String, u64) {
    (body(e)["node"].as_str().unwrap().to_string(), body(e)["visit"].as_u64().unwrap())
}

/// The id of branch `branch` of the first visit of `node` under `parent`.
fn child(parent: &str, node: &str, branch: u32) -> String {
    ExecutionId::child(parent.parse().unwrap(), node, 1, 1, branch).to_string()
}

/// Status, state and error of an execution, with what differs between
/// any two runs (when an approval was decided) left out.
fn outcome(case: &Case, dir: &Path, id: &str) -> Value {
    fn comparable(v: &Value) -> Value {
        match v {
            Value::Object(m) => {
                let decision = m.contains_key("decision") && m.contains_key("by");
                let m = m.iter().filter(|(k, _)| !(decision && *k == "at")).map(|(k, v)| (k.clone(), comparable(v)));
                Value::Object(m.collect())
            }
            Value::Array(a) => Value::Array(a.iter().map(comparable).collect()),
            other => other.clone(),
        }
    }
    let i = cli(case, dir, &["inspect", id, "--json"]);
    json!({ "status": i["execution"]["status"], "state": comparable(&i["state"]), "error": i["error"] })
}

const TERMINAL: [(&str, &str); 3] =
    [("ExecutionCompleted", "completed"), ("ExecutionFailed", "failed"), ("ExecutionCancelled", "cancelled")];

/// What every journal in `dir` shows once everything has settled:
/// every execution (parents and children) ended, with exactly one
/// terminal event, its last, matching its status; no node visit
/// completed twice; no branch finished twice.
fn check_journals(case: &Case, dir: &Path) {
    let name = case.name;
    for m in executions(case, dir) {
        let id = m["id"].as_str().unwrap();
        let status = m["status"].as_str().unwrap();
        let evs = events(case, dir, id);
        let ends: Vec<(usize, &str)> = evs
            .iter()
            .enumerate()
            .filter_map(|(i, e)| TERMINAL.iter().find(|(t, _)| e["type"] == *t).map(|(_, s)| (i, *s)))
            .collect();
        assert_eq!(ends.len(), 1, "{name}: {id} ({status}) has {} terminal events, not one", ends.len());
        assert_eq!(ends[0], (evs.len() - 1, status), "{name}: {id} ({status}) must end with its terminal event");

        let mut completed: BTreeMap<(String, u64), usize> = BTreeMap::new();
        let mut branches: BTreeMap<(String, u64, u64), usize> = BTreeMap::new();
        for e in &evs {
            match e["type"].as_str().unwrap() {
                "NodeCompleted" => *completed.entry(visit(e)).or_default() += 1,
                "BranchFinished" => {
                    let (node, v) = visit(e);
                    *branches.entry((node, v, body(e)["branch"].as_u64().unwrap())).or_default() += 1;
                }
                _ => {}
            }
        }
        let twice: Vec<_> = completed.iter().filter(|(_, n)| **n > 1).collect();
        assert!(twice.is_empty(), "{name}: {id}: node visits completed more than once: {twice:?}");
        let twice: Vec<_> = branches.iter().filter(|(_, n)| **n > 1).collect();
        assert!(twice.is_empty(), "{name}: {id}: branches finished more than once: {twice:?}");
    }
}

/// The outbound calls of the executions in `dir`: each under the
/// idempotency key of a started visit of an http node
/// (`{execution}/{node}/{visit}`), every completed or failed visit called
/// out, and every call under one key (retries, repeats after a kill) with
/// the same body. Calls per key.
fn check_calls(case: &Case, dir: &Path, server: &Server, http_nodes: &[&str]) -> BTreeMap<String, usize> {
    let name = case.name;
    let mut ids = BTreeSet::new();
    let (mut started, mut ended) = (BTreeSet::new(), BTreeSet::new());
    for m in executions(case, dir) {
        let id = m["id"].as_str().unwrap().to_string();
        for e in events(case, dir, &id) {
            let set = match e["type"].as_str() {
                Some("NodeStarted") => &mut started,
                Some("NodeCompleted" | "NodeFailed") => &mut ended,
                _ => continue,
            };
            let (node, v) = visit(&e);
            if http_nodes.contains(&node.as_str()) {
                set.insert(format!("{id}/{node}/{v}"));
            }
        }
        ids.insert(id);
    }
    let seen = server.seen.lock().unwrap();
    assert_eq!(seen.without_key, 0, "{name}: calls without an Idempotency-Key");
    let mine: BTreeMap<&String, &Vec<Value>> =
        seen.by_key.iter().filter(|(k, _)| k.split('/').next().is_some_and(|id| ids.contains(id))).collect();
    let got: BTreeSet<String> = mine.keys().map(|k| k.to_string()).collect();
    let stray: Vec<_> = got.difference(&started).collect();
    assert!(stray.is_empty(), "{name}: calls under keys of no started http node visit: {stray:?}");
    let silent: Vec<_> = ended.difference(&got).collect();
    assert!(silent.is_empty(), "{name}: http node visits that ended without calling out: {silent:?}");
    for (k, bodies) in &mine {
        assert!(bodies.windows(2).all(|w| w[0] == w[1]), "{name}: key {k} was sent with different bodies: {bodies:?}");
    }
    mine.into_iter().map(|(k, b)| (k.clone(), b.len())).collect()
}

/// The recovered execution ended as the reference did, and both data
/// dirs pass the journal checks.
fn check_like_reference(case: &Case, reference: &str, crashed: &str) {
    let want = outcome(case, &case.reference, reference);
    let got = outcome(case, &case.crashed, crashed);
    assert_eq!(got, want, "{}: the recovered run ended otherwise than the uninterrupted one", case.name);
    check_journals(case, &case.reference);
    check_journals(case, &case.crashed);
}

// ---------------------------------------------------------------- parallel

/// Six branches, two at a time, each an http call then a set; the join
/// node calls out once more.
const FAN: &str = r#"
id: fan
state_schema: { base: str, items: list, pages: list, page: dict, label: str, joined: dict }
nodes:
  fetch_all:
    type: parallel
    for_each: "{{ state.items }}"
    branches: [fetch]
    join: join
    merge: collect
    output_key: pages
    max_concurrency: 2
  fetch:
    type: http
    method: POST
    url: "{{ state.base }}/step/{{ item }}"
    body: { v: "{{ index }}", delay_ms: "{{ 60 + (index % 3) * 20 }}" }
    output_key: page
    next: label
  label: { type: set, values: { label: "item {{ item }}" }, next: join }
  join:
    type: http
    method: POST
    url: "{{ state.base }}/step/0"
    body: { v: "{{ state.pages | length }}" }
    output_key: joined
"#;
const FAN_BRANCHES: u32 = 6;

fn fan_input(server: &Server) -> String {
    json!({ "base": server.url, "items": [1, 2, 3, 4, 5, 6] }).to_string()
}

/// Run FAN uninterrupted in the reference dir; its execution id.
fn fan_reference(case: &Case, server: &Server) -> String {
    let out = cli(case, &case.reference, &["run", case.wf(), "--input", &fan_input(server), "--json"]);
    assert_eq!(out["status"], "completed", "{}: {out}", case.name);
    assert_eq!(out["state"]["pages"].as_array().map(Vec::len), Some(FAN_BRANCHES as usize), "{out}");
    out["id"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_killed_mid_fan_out_reruns_only_the_unfinished_branches() {
    let server = Server::start().await;
    let case = Case::new("parallel, mid fan-out", FAN);
    let reference = fan_reference(&case, &server);

    let input = fan_input(&server);
    kill_at(&case, &case.crashed, "BranchFinished:2", &["run", case.wf(), "--input", &input, "--key", "fan"]);
    let parent = keyed(&case, &case.crashed, "fan");
    let children: Vec<String> = (0..FAN_BRANCHES).map(|b| child(&parent, "fetch_all", b)).collect();
    let all = executions(&case, &case.crashed);
    let done_before: BTreeSet<&String> =
        children.iter().filter(|c| all.iter().any(|m| m["id"] == c.as_str() && m["status"] == "completed")).collect();
    let finished = count(&events(&case, &case.crashed, &parent), "BranchFinished");
    assert!(finished >= 2, "{}: the parent journaled {finished} branch ends before the kill", case.name);
    assert!(done_before.len() < children.len(), "{}: every branch had ended before the kill", case.name);

    let resumed = cli(&case, &case.crashed, &["resume", "--json"]);
    let ids: Vec<&str> = resumed.as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert!(ids.contains(&parent.as_str()), "{}: resume did not carry the parent on: {resumed}", case.name);
    check_like_reference(&case, &reference, &parent);

    let calls = check_calls(&case, &case.crashed, &server, &["fetch", "join"]);
    for c in &children {
        let n = calls.get(&format!("{c}/fetch/1")).copied().unwrap_or(0);
        if done_before.contains(c) {
            assert_eq!(n, 1, "{}: branch {c} had completed before the kill, and called out again", case.name);
        } else {
            assert!((1..=2).contains(&n), "{}: branch {c} called out {n} times", case.name);
        }
    }
    assert_eq!(calls.get(&format!("{parent}/join/1")), Some(&1), "{}: the join called out other than once", case.name);
    let repeated = calls.values().filter(|&&n| n > 1).count();
    println!("{} of {FAN_BRANCHES} branches had ended before the kill; {repeated} calls repeated", done_before.len());
    check_calls(&case, &case.reference, &server, &["fetch", "join"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_killed_after_the_last_branch_ended_joins_once() {
    let server = Server::start().await;
    let case = Case::new("parallel, mid join", FAN);
    let reference = fan_reference(&case, &server);

    // The children end before their parent can: the last child's end is
    // the FAN_BRANCHES-th ExecutionCompleted of the process.
    let input = fan_input(&server);
    let pause = format!("ExecutionCompleted:{FAN_BRANCHES}");
    kill_at(&case, &case.crashed, &pause, &["run", case.wf(), "--input", &input, "--key", "fan"]);
    let parent = keyed(&case, &case.crashed, "fan");
    for b in 0..FAN_BRANCHES {
        let c = child(&parent, "fetch_all", b);
        assert_eq!(status(&case, &case.crashed, &c), "completed", "{}: branch {b} before the resume", case.name);
    }
    assert_eq!(status(&case, &case.crashed, &parent), "running", "{}: the parent before the resume", case.name);
    let evs = events(&case, &case.crashed, &parent);
    assert!(count(&evs, "BranchFinished") < FAN_BRANCHES as usize, "{}: every end reached the parent", case.name);

    cli(&case, &case.crashed, &["resume", "--json"]);
    check_like_reference(&case, &reference, &parent);
    let evs = events(&case, &case.crashed, &parent);
    assert_eq!(count(&evs, "BranchFinished"), FAN_BRANCHES as usize, "{}", case.name);
    let joins = evs.iter().filter(|e| e["type"] == "NodeCompleted" && body(e)["node"] == "join").count();
    assert_eq!(joins, 1, "{}: the join node completed {joins} times", case.name);

    let calls = check_calls(&case, &case.crashed, &server, &["fetch", "join"]);
    assert!(
        calls.values().all(|&n| n == 1),
        "{}: a call was repeated though every branch had ended: {calls:?}",
        case.name
    );
    check_calls(&case, &case.reference, &server, &["fetch", "join"]);
}

// ---------------------------------------------------------------- waits

/// A quote, a wait for the payment, a receipt built from its payload.
const PAY: &str = r#"
id: pay
state_schema: { base: str, order_id: int, quote: dict, payment: any, receipt: dict }
nodes:
  quote:
    type: http
    method: POST
    url: "{{ state.base }}/step/1"
    body: { v: "{{ state.order_id }}" }
    output_key: quote
    next: wait_payment
  wait_payment: { type: wait, event: "payment:{{ state.order_id }}", output_key: payment, next: receipt }
  receipt:
    type: http
    method: POST
    url: "{{ state.base }}/step/2"
    body: { v: "{{ state.payment.amount }}" }
    output_key: receipt
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_killed_before_its_event_is_carried_on_by_signal() {
    let server = Server::start().await;
    let case = Case::new("wait, before the event", PAY);
    let input = json!({ "base": server.url, "order_id": 42 }).to_string();
    let payload = r#"{"amount": 17}"#;

    let out = cli(&case, &case.reference, &["run", case.wf(), "--input", &input, "--json"]);
    assert_eq!(out["status"], "waiting", "{}: {out}", case.name);
    let reference = out["id"].as_str().unwrap().to_string();
    cli(&case, &case.reference, &["signal", &reference, "payment:42", "--payload", payload, "--json"]);

    kill_at(&case, &case.crashed, "Waiting", &["run", case.wf(), "--input", &input, "--key", "pay"]);
    let id = keyed(&case, &case.crashed, "pay");
    assert_eq!(status(&case, &case.crashed, &id), "waiting", "{}: before the signal", case.name);
    let done = cli(&case, &case.crashed, &["signal", &id, "payment:42", "--payload", payload, "--json"]);
    assert_eq!(done["status"], "completed", "{}: {done}", case.name);
    assert_eq!(done["state"]["payment"], json!({ "amount": 17 }), "{}", case.name);
    check_like_reference(&case, &reference, &id);

    let calls = check_calls(&case, &case.crashed, &server, &["quote", "receipt"]);
    assert!(calls.values().all(|&n| n == 1), "{}: {calls:?}", case.name);
    let evs = events(&case, &case.crashed, &id);
    assert_eq!(count(&evs, "SignalReceived"), 1, "{}", case.name);
}

/// Two waits in a row, for events `a` and `b`.
const AB: &str = r#"
id: ab
state_schema: { a: any, b: any }
nodes:
  wait_a: { type: wait, event: a, output_key: a, next: wait_b }
  wait_b: { type: wait, event: b, output_key: b, next: done }
  done: { type: end }
"#;

#[test]
fn an_event_journaled_before_its_wait_is_kept_across_a_kill() {
    let case = Case::new("wait, event journaled before it is consumed", AB);
    let out = cli(&case, &case.reference, &["run", case.wf(), "--json"]);
    let reference = out["id"].as_str().unwrap().to_string();
    cli(&case, &case.reference, &["signal", &reference, "b", "--payload", r#""second""#, "--json"]);
    cli(&case, &case.reference, &["signal", &reference, "a", "--payload", r#""first""#, "--json"]);

    let out = cli(&case, &case.crashed, &["run", case.wf(), "--json"]);
    assert_eq!(out["waiting"][0]["event"], "a", "{}: {out}", case.name);
    let id = out["id"].as_str().unwrap().to_string();
    kill_at(&case, &case.crashed, "SignalReceived", &["signal", &id, "b", "--payload", r#""second""#]);
    let kept = cli(&case, &case.crashed, &["inspect", &id, "--json"]);
    assert_eq!(kept["kept_signals"][0]["key"], "b", "{}: the event b is kept: {kept}", case.name);
    assert_eq!(kept["execution"]["status"], "waiting", "{}", case.name);

    let done = cli(&case, &case.crashed, &["signal", &id, "a", "--payload", r#""first""#, "--json"]);
    assert_eq!(done["status"], "completed", "{}: wait B consumes the kept b: {done}", case.name);
    assert_eq!(done["state"], json!({ "a": "first", "b": "second" }), "{}", case.name);
    check_like_reference(&case, &reference, &id);
    let evs = events(&case, &case.crashed, &id);
    assert_eq!(count(&evs, "SignalReceived"), 2, "{}", case.name);
}

// ---------------------------------------------------------------- approval

/// An approval, then an http call, then a set.
const REVIEW: &str = r#"
id: review
state_schema: { base: str, amount: int, decision: any, refund: dict, status: str }
nodes:
  review:
    type: approval
    prompt: "Refund {{ state.amount }} USD?"
    output_key: decision
    on_reject: refused
    next: refund
  refund:
    type: http
    method: POST
    url: "{{ state.base }}/step/3"
    body: { v: "{{ state.amount }}" }
    output_key: refund
    next: refunded
  refunded: { type: set, values: { status: refunded } }
  refused: { type: set, values: { status: refused } }
"#;

const APPROVE: [&str; 6] = ["--decision", "approved", "--by", "ada", "--comment", "within policy"];

/// Run REVIEW uninterrupted and approve it; its execution id.
fn review_reference(case: &Case, input: &str) -> String {
    let out = cli(case, &case.reference, &["run", case.wf(), "--input", input, "--json"]);
    assert_eq!(out["status"], "waiting", "{}: {out}", case.name);
    let id = out["id"].as_str().unwrap().to_string();
    let done = cli(case, &case.reference, &[&["approve", id.as_str()][..], &APPROVE, &["--json"]].concat());
    assert_eq!(done["status"], "completed", "{}: {done}", case.name);
    id
}

fn check_review(case: &Case, server: &Server, id: &str) {
    assert_eq!(outcome(case, &case.crashed, id)["state"]["decision"]["decision"], "approved", "{}", case.name);
    let evs = events(case, &case.crashed, id);
    assert_eq!(count(&evs, "ApprovalDecided"), 1, "{}", case.name);
    let calls = check_calls(case, &case.crashed, server, &["refund"]);
    assert_eq!(calls.len(), 1, "{}: {calls:?}", case.name);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approval_killed_while_parked_is_decided_by_approve() {
    let server = Server::start().await;
    let case = Case::new("approval, before the decision", REVIEW);
    let input = json!({ "base": server.url, "amount": 30 }).to_string();
    let reference = review_reference(&case, &input);

    kill_at(&case, &case.crashed, "Waiting", &["run", case.wf(), "--input", &input, "--key", "review"]);
    let id = keyed(&case, &case.crashed, "review");
    let done = cli(&case, &case.crashed, &[&["approve", id.as_str()][..], &APPROVE, &["--json"]].concat());
    assert_eq!(done["status"], "completed", "{}: {done}", case.name);
    check_like_reference(&case, &reference, &id);
    check_review(&case, &server, &id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approval_killed_after_the_decision_is_journaled_resumes_once() {
    let server = Server::start().await;
    let case = Case::new("approval, after the decision", REVIEW);
    let input = json!({ "base": server.url, "amount": 30 }).to_string();
    let reference = review_reference(&case, &input);

    let out = cli(&case, &case.crashed, &["run", case.wf(), "--input", &input, "--json"]);
    let id = out["id"].as_str().unwrap().to_string();
    kill_at(&case, &case.crashed, "ApprovalDecided", &[&["approve", id.as_str()][..], &APPROVE].concat());
    assert_eq!(status(&case, &case.crashed, &id), "running", "{}: decided, not yet carried on", case.name);
    assert!(server.seen.lock().unwrap().by_key.keys().all(|k| !k.starts_with(&id)), "{}: refund ran", case.name);

    let resumed = cli(&case, &case.crashed, &["resume", "--json"]);
    assert_eq!(resumed[0]["status"], "completed", "{}: {resumed}", case.name);
    check_like_reference(&case, &reference, &id);
    check_review(&case, &server, &id);
}

// ---------------------------------------------------------------- timer

const NAP_MS: u64 = 1500;

/// A timer, then an http call (work that must not be cut short), then a set.
const NAP: &str = r#"
id: nap
state_schema: { base: str, woke: dict, n: int }
nodes:
  nap: { type: wait, duration_ms: 1500, next: call }
  call:
    type: http
    method: POST
    url: "{{ state.base }}/step/5"
    body: { v: 1, delay_ms: 200 }
    output_key: woke
    next: after
  after: { type: set, values: { n: 1 } }
"#;

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timer_killed_while_parked_fires_at_once_on_resume_after_its_deadline() {
    let server = Server::start().await;
    let case = Case::new("timer", NAP);
    let input = json!({ "base": server.url }).to_string();
    let out = cli(&case, &case.reference, &["run", case.wf(), "--input", &input, "--json"]);
    assert_eq!(out["status"], "completed", "{}: {out}", case.name);
    let reference = out["id"].as_str().unwrap().to_string();

    kill_at(&case, &case.crashed, "Waiting", &["run", case.wf(), "--input", &input, "--key", "nap"]);
    let id = keyed(&case, &case.crashed, "nap");
    let waits = cli(&case, &case.crashed, &["executions", "--waiting", "--json"]);
    let deadline = waits[0]["deadline_ms"].as_u64().unwrap_or_else(|| panic!("{}: {waits}", case.name));
    let left = deadline.saturating_sub(now_ms());
    assert!(left <= NAP_MS, "{}: the deadline is {left} ms away", case.name);
    std::thread::sleep(Duration::from_millis(left + 100));

    let began = Instant::now();
    let resumed = cli(&case, &case.crashed, &["resume", "--json"]);
    let took = began.elapsed();
    let only = resumed.as_array().map(|all| all.len());
    let r = &resumed[0];
    assert_eq!(
        (only, &r["id"], &r["status"], &r["error"]),
        (Some(1), &json!(id), &json!("completed"), &Value::Null),
        "{}: {resumed}",
        case.name
    );
    assert!(took < Duration::from_millis(NAP_MS * 2 / 3), "{}: resume took {took:?}: the timer rearmed", case.name);
    check_like_reference(&case, &reference, &id);
    assert_eq!(count(&events(&case, &case.crashed, &id), "TimerFired"), 1, "{}", case.name);
    let calls = check_calls(&case, &case.crashed, &server, &["call"]);
    assert!(calls.values().all(|&n| n == 1), "{}: {calls:?}", case.name);
}

// ---------------------------------------------------------------- retry delay

const RETRY_DELAY_MS: u64 = 800;

/// Fails twice with 503, then answers.
const FLAKY: &str = r#"
id: flaky
state_schema: { base: str, out: dict }
nodes:
  call:
    type: http
    method: POST
    url: "{{ state.base }}/flaky/2"
    body: { v: 1 }
    output_key: out
    retry: { max_attempts: 4, backoff: constant, delay_ms: 800 }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_killed_during_its_delay_resumes_with_the_same_key() {
    let server = Server::start().await;
    let case = Case::new("retry delay", FLAKY);
    let input = json!({ "base": server.url }).to_string();
    let out = cli(&case, &case.reference, &["run", case.wf(), "--input", &input, "--json"]);
    assert_eq!(out["status"], "completed", "{}: {out}", case.name);
    let reference = out["id"].as_str().unwrap().to_string();

    kill_at(&case, &case.crashed, "NodeFailed:1", &["run", case.wf(), "--input", &input, "--key", "flaky"]);
    let id = keyed(&case, &case.crashed, "flaky");
    let resumed = cli(&case, &case.crashed, &["resume", "--json"]);
    assert_eq!(resumed[0]["status"], "completed", "{}: {resumed}", case.name);
    check_like_reference(&case, &reference, &id);

    let calls = check_calls(&case, &case.crashed, &server, &["call"]);
    assert_eq!(calls, BTreeMap::from([(format!("{id}/call/1"), 3)]), "{}: three attempts, one key", case.name);
    let recs = events(&case, &case.crashed, &id);
    let at = |ty: &str| -> Vec<u64> {
        recs.iter().filter(|e| e["type"] == ty).map(|e| e["at_ms"].as_u64().unwrap()).collect()
    };
    let (started, failed) = (at("NodeStarted"), at("NodeFailed"));
    assert_eq!((started.len(), failed.len()), (3, 2), "{}", case.name);
    for n in 0..2 {
        assert!(started[n + 1] >= failed[n] + RETRY_DELAY_MS, "{}: attempt {} came early", case.name, n + 2);
    }
}

// ---------------------------------------------------------------- cancellation

#[test]
fn cancel_killed_after_the_parent_ended_cancels_every_child_on_resume() {
    let case = Case::new("cancellation", GATHER);
    let parked = |dir: &Path| -> String {
        let out = cli(&case, dir, &["run", case.wf(), "--json"]);
        assert_eq!(out["waiting"].as_array().map(Vec::len), Some(3), "{}: {out}", case.name);
        out["id"].as_str().unwrap().to_string()
    };
    let reference = parked(&case.reference);
    let out = cli(&case, &case.reference, &["cancel", &reference, "--json"]);
    assert_eq!(out["status"], "cancelled", "{}: {out}", case.name);

    let id = parked(&case.crashed);
    kill_at(&case, &case.crashed, "ExecutionCancelled", &["cancel", &id]);
    assert_eq!(status(&case, &case.crashed, &id), "cancelled", "{}: before the resume", case.name);

    cli(&case, &case.crashed, &["resume", "--json"]);
    for b in 0..3 {
        let c = child(&id, "ask", b);
        assert_eq!(status(&case, &case.crashed, &c), "cancelled", "{}: branch {b} ({c}) after resume", case.name);
    }
    check_like_reference(&case, &reference, &id);
    let waits = cli(&case, &case.crashed, &["executions", "--waiting", "--json"]);
    assert_eq!(waits, json!([]), "{}: nothing waits", case.name);
    assert_eq!(cli(&case, &case.crashed, &["resume", "--json"]), json!([]), "{}: nothing resumes", case.name);
}
