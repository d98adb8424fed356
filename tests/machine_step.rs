//! The pure core, input by input: a transition test for every [`Input`]
//! of [`step`], and canned journal histories (`tests/data/histories/`,
//! written by earlier versions of the runtime running the examples)
//! replayed through the core whole and record by record, and re-enacted
//! through `step`: fed the inputs their records imply, the core makes the
//! same events in the same order.

use std::collections::HashMap;
use std::sync::Arc;

use jamjet::actors::RestartBudget;
use jamjet::actors::machine::{
    Command, Effect, ExecutionState, Input, NodeResult, Phase, Settled, Step, WaitKind, apply, pending_approval,
    resume, settled, step, waits,
};
use jamjet::journal::{BranchOutcome, ErrorClass, Event, Json, Record, RetryDecision};
use jamjet::nodes::{Exchange, NodeError, NodeOutput, Scores};
use jamjet::{ExecutionId, Status, Workflow, compile_str};
use serde_json::{Value, json};

const T0: u64 = 1_000_000;

/// A parent's state at a fan-out, which its branches start from.
type Base = Arc<serde_json::Map<String, Value>>;

fn wf(yaml: &str) -> Workflow {
    compile_str(yaml, "t.yaml").unwrap()
}

fn started(input: Value) -> Event {
    Event::ExecutionStarted {
        workflow_id: "t".into(),
        workflow_version: "0.1.0".into(),
        workflow_hash: "h".into(),
        input: Json::from_value(&input),
        key: None,
    }
}

fn run(node: &str, visit: u32, attempt: u32) -> Effect {
    Effect::Run { node: node.into(), visit, attempt }
}

fn ok(patch: Value) -> NodeResult {
    NodeResult::Ran(Ok(NodeOutput { patch: patch.as_object().unwrap().clone(), ..Default::default() }))
}

fn done(node: &str, attempt: u32, result: NodeResult) -> Input {
    Input::Node { node: node.into(), visit: 1, attempt, result, duration_us: 7 }
}

/// Events compared as the journal stores them (JSON values compare by value).
fn same(a: &Event, b: &Event) -> bool {
    serde_json::to_value(a).unwrap() == serde_json::to_value(b).unwrap()
}

fn kinds(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .map(|e| serde_json::to_value(e).unwrap().as_object().unwrap().keys().next().unwrap().clone())
        .collect()
}

const CHAIN: &str = "id: t\nstate_schema: { n: int, s: str }\nnodes:\n  a:\n    type: function\n    function: f\n    retry: { max_attempts: 2, backoff: constant, delay_ms: 100 }\n    next: b\n  b: { type: function, function: g }\n";

fn begun(w: &Workflow) -> (ExecutionState, Step) {
    let mut st = ExecutionState::new(ExecutionId::new(7));
    let s = step(w, &mut st, Input::Start(started(json!({}))), T0);
    (st, s)
}

#[test]
fn start_schedules_and_starts_the_first_node_and_asks_to_run_it() {
    let w = wf(CHAIN);
    let (st, s) = begun(&w);
    assert_eq!(kinds(&s.events), ["ExecutionStarted", "NodeScheduled", "NodeStarted"]);
    assert_eq!(s.effects, vec![run("a", 1, 1)]);
    assert_eq!((st.phase, st.last_seq, st.started_ms), (Phase::Running, 3, T0));
    // Folding the events the step made gives the same state.
    let recs: Vec<Record> =
        s.events.iter().enumerate().map(|(i, e)| Record { seq: i as u64 + 1, at_ms: T0, event: e.clone() }).collect();
    assert_eq!(ExecutionState::replay(st.id, &w, &recs), st);
}

#[test]
fn resume_starts_an_interrupted_attempt_again_as_the_next_one() {
    let w = wf(CHAIN);
    let (st, _) = begun(&w);
    let mut again = st.clone();
    let s = step(&w, &mut again, Input::Resume, T0 + 5);
    assert!(same(&s.events[0], &Event::NodeStarted { node: "a".into(), visit: 1, attempt: 2 }), "{s:?}");
    assert_eq!(s.effects, vec![run("a", 1, 2)]);
    assert_eq!(resume(&st), vec![Command::Start { node: "a".into(), visit: 1, attempt: 2 }]);
}

#[test]
fn a_result_completes_the_node_and_starts_the_next_one() {
    let w = wf(CHAIN);
    let (mut st, _) = begun(&w);
    let s = step(&w, &mut st, done("a", 1, ok(json!({"n": 1}))), T0 + 1);
    assert_eq!(kinds(&s.events), ["NodeCompleted", "NodeScheduled", "NodeStarted"]);
    let Event::NodeCompleted { next, duration_us, .. } = &s.events[0] else { unreachable!() };
    assert_eq!((next.as_deref(), *duration_us), (Some("b"), 7));
    assert_eq!(s.effects, vec![run("b", 1, 1)]);
    assert_eq!(st.state["n"], 1);
    // The last node's result completes the execution, with its final state.
    let s = step(
        &w,
        &mut st,
        Input::Node { node: "b".into(), visit: 1, attempt: 1, result: ok(json!({})), duration_us: 1 },
        T0 + 2,
    );
    assert_eq!(kinds(&s.events), ["NodeCompleted", "ExecutionCompleted"]);
    assert!(same(&s.events[1], &Event::ExecutionCompleted { state: Json::from_value(&json!({"n": 1})) }));
    assert_eq!(s.effects, vec![Effect::Finished]);
    assert_eq!(st.phase, Phase::Completed);
}

#[test]
fn a_stale_result_changes_nothing() {
    let w = wf(CHAIN);
    let (mut st, _) = begun(&w);
    let before = st.clone();
    assert_eq!(step(&w, &mut st, done("a", 2, ok(json!({"n": 1}))), T0 + 1), Step::default());
    assert_eq!(step(&w, &mut st, done("b", 1, ok(json!({"n": 1}))), T0 + 1), Step::default());
    assert_eq!(st, before);
}

#[test]
fn a_failure_is_retried_by_the_policy_after_its_delay_then_given_up() {
    let w = wf(CHAIN);
    let (mut st, _) = begun(&w);
    let fail = || NodeResult::Ran(Err(NodeError::new(ErrorClass::ServerError, "503")));
    let s = step(&w, &mut st, done("a", 1, fail()), T0 + 1);
    let retry = RetryDecision::Retry { attempt: 2, at_ms: T0 + 101 };
    let Event::NodeFailed { retry: decided, class, .. } = &s.events[0] else { panic!("{s:?}") };
    assert_eq!((decided, *class), (&retry, ErrorClass::ServerError));
    assert_eq!(s.effects, vec![Effect::RetryAt { node: "a".into(), visit: 1, attempt: 2, at_ms: T0 + 101 }]);
    assert_eq!(st.deadlines(&w).into_iter().collect::<Vec<_>>(), vec![T0 + 101]);
    // Before the deadline a tick does nothing; at it, the retry starts.
    assert_eq!(step(&w, &mut st, Input::Tick, T0 + 100), Step::default());
    let s = step(&w, &mut st, Input::Tick, T0 + 101);
    assert!(same(&s.events[0], &Event::NodeStarted { node: "a".into(), visit: 1, attempt: 2 }));
    assert_eq!(s.effects, vec![run("a", 1, 2)]);
    // The policy allows two attempts: the second failure gives up.
    let s = step(&w, &mut st, done("a", 2, fail()), T0 + 200);
    assert_eq!(kinds(&s.events), ["NodeFailed", "ExecutionFailed"]);
    assert!(matches!(&s.events[0], Event::NodeFailed { retry: RetryDecision::GiveUp, .. }));
    assert_eq!(s.effects, vec![Effect::Finished]);
    assert_eq!(st.phase, Phase::Failed);
}

#[test]
fn jitter_is_drawn_from_the_attempt_so_the_same_failure_decides_alike() {
    let w = wf(&CHAIN.replace("delay_ms: 100 }", "delay_ms: 1000, jitter: true }"));
    let ids: Vec<ExecutionId> = (0..40).map(ExecutionId::new).collect();
    let decide = |id: ExecutionId| {
        let mut st = ExecutionState::new(id);
        step(&w, &mut st, Input::Start(started(json!({}))), T0);
        let s = step(&w, &mut st, done("a", 1, NodeResult::Ran(Err(NodeError::new(ErrorClass::Timeout, "slow")))), T0);
        match &s.events[0] {
            Event::NodeFailed { retry: RetryDecision::Retry { at_ms, .. }, .. } => *at_ms,
            other => panic!("{other:?}"),
        }
    };
    let at = decide(ids[1]);
    assert_eq!(decide(ids[1]), at, "same execution, same attempt: same deadline");
    assert!((T0 + 500..=T0 + 1000).contains(&at), "jitter keeps half the delay at least: {at}");
    assert!(ids[2..].iter().map(|&id| decide(id)).any(|other| other != at), "other executions draw other delays");
}

#[test]
fn an_output_that_does_not_fit_the_schema_or_the_state_limit_fails_the_attempt() {
    let w = wf(CHAIN);
    let (mut st, _) = begun(&w);
    let s = step(&w, &mut st, done("a", 1, ok(json!({"n": "one"}))), T0 + 1);
    let Event::NodeFailed { class, message, .. } = &s.events[0] else { panic!("{s:?}") };
    assert_eq!(*class, ErrorClass::InvalidOutput);
    assert!(message.contains("does not fit the state schema"), "{message}");
    assert!(st.state.get("n").is_none(), "nothing of a refused output is kept");

    let (mut st, _) = begun(&w);
    st.max_state_bytes = 20;
    let s = step(&w, &mut st, done("a", 1, ok(json!({"s": "far too long for twenty bytes"}))), T0 + 1);
    assert_eq!(kinds(&s.events), ["NodeFailed", "ExecutionFailed"], "a crossed limit is never retried");
    let Event::NodeFailed { class, message, .. } = &s.events[0] else { unreachable!() };
    assert_eq!(*class, ErrorClass::LimitExceeded);
    assert!(message.contains("max_state_bytes"), "{message}");
}

#[test]
fn panics_are_retried_at_once_within_the_restart_budget() {
    let w = wf(CHAIN);
    let (mut st, _) = begun(&w);
    st.restart_budget = RestartBudget { max_restarts: 1, window_ms: 1000 };
    let panic = || NodeResult::Ran(Err(NodeError::new(ErrorClass::Panic, "boom")));
    let s = step(&w, &mut st, done("a", 1, panic()), T0 + 10);
    assert!(
        matches!(&s.events[0], Event::NodeFailed { retry: RetryDecision::Retry { attempt: 2, at_ms }, .. } if *at_ms == T0 + 10)
    );
    assert_eq!(st.active["a"].panics, vec![T0 + 10]);
    step(&w, &mut st, Input::Tick, T0 + 10);
    let s = step(&w, &mut st, done("a", 2, panic()), T0 + 20);
    let Event::NodeFailed { retry, message, .. } = &s.events[0] else { panic!("{s:?}") };
    assert_eq!(*retry, RetryDecision::GiveUp);
    assert!(message.contains("restart budget of 1 in 1 s exhausted"), "{message}");
    assert_eq!(st.phase, Phase::Failed);
}

const WAIT: &str = "id: t\nstate_schema: { k: str, got: any }\nnodes:\n  w: { type: wait, event: k, output_key: got, timeout_ms: 500, next: z }\n  z: { type: end }\n";

fn parked(w: &Workflow) -> ExecutionState {
    let (mut st, s) = begun(w);
    assert_eq!(s.effects, vec![run("w", 1, 1)]);
    let parks = NodeResult::Parks { event: Some("k".into()), deadline_ms: Some(T0 + 500), prompt: None };
    let s = step(w, &mut st, done("w", 1, parks), T0);
    assert_eq!(kinds(&s.events), ["Waiting"]);
    assert!(s.effects.is_empty());
    st
}

/// A timer wait (`nap`, 50 ms) parked at T0, its deadline at T0 + 50.
fn napping() -> (Workflow, ExecutionState) {
    let timer = wf("id: t\nstate_schema: { k: str }\nnodes:\n  nap: { type: wait, duration_ms: 50 }\n");
    let (mut st, _) = begun(&timer);
    let parks = NodeResult::Parks { event: None, deadline_ms: Some(T0 + 50), prompt: None };
    step(&timer, &mut st, done("nap", 1, parks), T0);
    (timer, st)
}

#[test]
fn a_signal_ends_the_wait_with_its_payload_and_one_that_comes_early_is_kept() {
    let w = wf(WAIT);
    let mut st = parked(&w);
    assert!(st.parked());
    let s =
        step(&w, &mut st, Input::Signal { key: "k".into(), payload: Json::from_value(&json!({"paid": 3})) }, T0 + 1);
    assert_eq!(kinds(&s.events)[..3], ["SignalReceived", "NodeCompleted", "NodeScheduled"]);
    assert_eq!(st.state["got"], json!({"paid": 3}));
    // An early signal is kept, and the wait takes it when it parks.
    let (mut st, _) = begun(&w);
    let s = step(&w, &mut st, Input::Signal { key: "k".into(), payload: Json::from_value(&json!(1)) }, T0);
    assert_eq!(kinds(&s.events), ["SignalReceived"]);
    assert_eq!(st.inbox.len(), 1);
    let parks = NodeResult::Parks { event: Some("k".into()), deadline_ms: None, prompt: None };
    let s = step(&w, &mut st, done("w", 1, parks), T0 + 1);
    assert_eq!(kinds(&s.events)[..2], ["Waiting", "NodeCompleted"]);
    assert!(st.inbox.is_empty());
}

#[test]
fn a_tick_at_a_waits_deadline_times_it_out_and_at_a_timers_fires_it() {
    let w = wf(WAIT);
    let mut st = parked(&w);
    assert_eq!(step(&w, &mut st, Input::Tick, T0 + 499), Step::default());
    let s = step(&w, &mut st, Input::Tick, T0 + 500);
    assert_eq!(kinds(&s.events), ["WaitTimedOut", "NodeFailed", "ExecutionFailed"]);
    let (timer, mut st) = napping();
    let s = step(&timer, &mut st, Input::Tick, T0 + 60);
    assert_eq!(kinds(&s.events), ["TimerFired", "NodeCompleted", "ExecutionCompleted"]);
    // The workflow's own timeout fails the execution.
    let slow = wf(&format!("timeout_ms: 300\n{CHAIN}"));
    let (mut st, _) = begun(&slow);
    let s = step(&slow, &mut st, Input::Tick, T0 + 300);
    assert_eq!(kinds(&s.events), ["ExecutionFailed"]);
    assert!(matches!(&s.events[0], Event::ExecutionFailed { error, .. } if error.contains("timed out")));
}

#[test]
fn a_decision_goes_to_the_approval_that_waits_and_a_second_one_names_the_first() {
    let w = wf(
        "id: t\nstate_schema: { d: dict }\nnodes:\n  ok: { type: approval, prompt: sure?, output_key: d, next: z }\n  z: { type: end }\n",
    );
    let (mut st, _) = begun(&w);
    assert_eq!(pending_approval(&st, None), Err("is not waiting for an approval".to_string()));
    step(
        &w,
        &mut st,
        done("ok", 1, NodeResult::Parks { event: None, deadline_ms: None, prompt: Some("sure?".into()) }),
        T0,
    );
    assert_eq!(pending_approval(&st, Some("other")), Err("is not waiting for an approval at node `other`".into()));
    let (node, visit) = pending_approval(&st, None).unwrap();
    let decision = Input::Decision { node, visit, approved: true, by: "ada".into(), comment: None };
    let s = step(&w, &mut st, decision, T0 + 9);
    assert_eq!(kinds(&s.events)[..2], ["ApprovalDecided", "NodeCompleted"]);
    assert_eq!(st.state["d"]["by"], "ada");
    let late = pending_approval(&st, None).unwrap_err();
    assert!(late.starts_with("approval `ok` was already decided: approved by ada at"), "{late}");
}

#[test]
fn a_cancel_ends_the_execution_and_then_nothing_moves_it() {
    let w = wf(CHAIN);
    let (mut st, _) = begun(&w);
    let s = step(&w, &mut st, Input::Cancel { reason: "enough".into() }, T0 + 1);
    assert_eq!(kinds(&s.events), ["ExecutionCancelled"]);
    assert_eq!(s.effects, vec![Effect::Finished]);
    assert_eq!(st.phase, Phase::Cancelled);
    let ended = st.clone();
    for input in [Input::Tick, Input::Resume, done("a", 1, ok(json!({}))), Input::Cancel { reason: "again".into() }] {
        assert_eq!(step(&w, &mut st, input, T0 + 2), Step::default());
    }
    assert_eq!(st, ended);
}

#[test]
fn fail_fails_the_execution_with_the_node_and_error_given() {
    let w = wf(CHAIN);
    let (mut st, _) = begun(&w);
    let s = step(&w, &mut st, Input::Fail { node: Some("a".into()), error: "budget spent".into() }, T0 + 1);
    assert!(same(&s.events[0], &Event::ExecutionFailed { node: Some("a".into()), error: "budget spent".into() }));
    assert_eq!(s.effects, vec![Effect::Finished]);
}

const FAN: &str = "id: t\nstate_schema: { a: int, b: int }\nnodes:\n  p: { type: parallel, branches: [x, y], join: z, merge: keys }\n  x: { type: set, values: { a: 1 }, next: z }\n  y: { type: set, values: { b: 2 }, next: z }\n  z: { type: end }\n";

#[test]
fn children_ends_are_recorded_once_and_the_fan_out_joins_when_all_are_in() {
    let w = wf(FAN);
    let (mut st, _) = begun(&w);
    let s = step(&w, &mut st, done("p", 1, NodeResult::FansOut { branches: 2 }), T0);
    assert_eq!(kinds(&s.events), ["FanOut"]);
    assert_eq!(s.effects, vec![Effect::Children { node: "p".into(), visit: 1, attempt: 1 }]);
    let end = |b: u32, patch: Value| (b, BranchOutcome::Completed { patch: Json::from_value(&patch) });
    let first = Input::BranchesDone { node: "p".into(), visit: 1, attempt: 1, ends: vec![end(0, json!({"a": 1}))] };
    assert_eq!(kinds(&step(&w, &mut st, first, T0 + 1).events), ["BranchFinished"]);
    // The same end again (a restarted ParallelActor reports it twice) and the last one.
    let rest = Input::BranchesDone {
        node: "p".into(),
        visit: 1,
        attempt: 1,
        ends: vec![end(0, json!({"a": 1})), end(1, json!({"b": 2}))],
    };
    let s = step(&w, &mut st, rest, T0 + 2);
    assert_eq!(kinds(&s.events)[..2], ["BranchFinished", "NodeCompleted"]);
    assert_eq!((st.state["a"].clone(), st.state["b"].clone()), (json!(1), json!(2)));
    // An end for a fan-out already decided makes nothing.
    let late = Input::BranchesDone { node: "p".into(), visit: 1, attempt: 1, ends: vec![end(1, json!({}))] };
    assert_eq!(step(&w, &mut st, late, T0 + 3).events, Vec::<Event>::new());
}

#[test]
fn settled_means_only_the_outside_can_move_it() {
    let none = HashMap::new();
    let w = wf(WAIT);
    let (st, _) = begun(&w);
    assert_eq!(settled(&w, &st, T0, false, &none), Settled::No, "a node is about to run");
    let st = parked(&w);
    assert_eq!(settled(&w, &st, T0 + 1, false, &none), Settled::Parked);
    assert_eq!(settled(&w, &st, T0 + 1, true, &none), Settled::No, "a due timer entry moves it");
    assert_eq!(settled(&w, &st, T0 + 500, false, &none), Settled::No, "its deadline passed");
    assert_eq!(waits(&st).iter().map(|(n, k, _)| (*n, *k)).collect::<Vec<_>>(), vec![("w", WaitKind::Event)]);
    let (timer, st) = napping();
    assert_eq!(settled(&timer, &st, T0, false, &none), Settled::No, "a timer is waited out");
    assert_eq!(waits(&st)[0].1, WaitKind::Timer);
    let mut ended = st.clone();
    step(&timer, &mut ended, Input::Cancel { reason: "x".into() }, T0);
    assert_eq!(settled(&timer, &ended, T0, true, &none), Settled::Ended);

    let f = wf(FAN);
    let (mut st, _) = begun(&f);
    step(&f, &mut st, done("p", 1, NodeResult::FansOut { branches: 2 }), T0);
    let kids = st.unfinished_children();
    assert_eq!(settled(&f, &st, T0, false, &none), Settled::No, "its children have not started");
    let mut children: HashMap<ExecutionId, Status> = kids.iter().map(|c| (*c, Status::Waiting)).collect();
    assert_eq!(settled(&f, &st, T0, false, &children), Settled::OnChildren);
    children.insert(kids[1], Status::Completed);
    assert_eq!(settled(&f, &st, T0, false, &children), Settled::No, "an end not recorded yet moves it");
}

// ---- canned histories ----

#[derive(serde::Deserialize)]
struct Fixture {
    about: String,
    workflow: String,
    id: String,
    records: Vec<Record>,
    /// The parallel branches of `id`, each its own history.
    #[serde(default)]
    branches: Vec<BranchFixture>,
}

#[derive(serde::Deserialize)]
struct BranchFixture {
    id: String,
    records: Vec<Record>,
}

fn fixture(name: &str) -> (Fixture, Workflow, ExecutionId) {
    let path = format!("{}/tests/data/histories/{name}.json", env!("CARGO_MANIFEST_DIR"));
    let fx: Fixture = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let w = compile_str(&fx.workflow, &format!("{name}.yaml")).unwrap();
    let id = fx.id.parse().unwrap();
    (fx, w, id)
}

/// Fold the history whole and record by record: the same state, each
/// record numbered after the last.
fn replayed(w: &Workflow, id: ExecutionId, records: &[Record]) -> ExecutionState {
    replayed_on(w, id, records, None)
}

/// [`replayed`] for a branch, which starts from `base` (its parent's state
/// at the fan-out).
fn replayed_on(w: &Workflow, id: ExecutionId, records: &[Record], base: Option<Base>) -> ExecutionState {
    let whole = ExecutionState::replay_on(id, w, records, base.clone());
    let mut one_by_one = ExecutionState::new(id);
    one_by_one.base = base.clone();
    for (i, r) in records.iter().enumerate() {
        apply(w, &mut one_by_one, r);
        assert_eq!(one_by_one.last_seq, r.seq);
        let so_far = ExecutionState::replay_on(id, w, &records[..=i], base.clone());
        assert_eq!(one_by_one, so_far, "after record {}", r.seq);
    }
    assert_eq!(whole, one_by_one);
    whole
}

/// The input a recorded event came from (with the records it spans),
/// given the attempts running.
fn input_of(st: &ExecutionState, records: &[Record], running: &[(String, u32, u32)]) -> (Input, usize) {
    let of_attempt = |e: &Event| match e {
        Event::Exchange { node, visit, attempt, .. }
        | Event::Scored { node, visit, attempt, .. }
        | Event::NodeCompleted { node, visit, attempt, .. }
        | Event::NodeFailed { node, visit, attempt, .. }
        | Event::FanOut { node, visit, attempt, .. } => Some((node.clone(), *visit, *attempt)),
        Event::Waiting { node, visit, .. } => st.active.get(node).map(|a| (node.clone(), *visit, a.attempt)),
        _ => None,
    };
    if let Some((node, visit, attempt)) = of_attempt(&records[0].event).filter(|k| running.contains(k)) {
        let (mut exchange, mut scores) = (None, None);
        for (i, r) in records.iter().enumerate() {
            let result = match &r.event {
                Event::Exchange { request, response, usage, .. } => {
                    let (request, response) = (request.value().unwrap(), response.value().unwrap());
                    exchange = Some(Box::new(Exchange { request, response, usage: *usage }));
                    continue;
                }
                Event::Scored { scores: s, passed, .. } => {
                    scores = Some(Box::new(Scores { scores: s.value().unwrap(), passed: *passed }));
                    continue;
                }
                Event::NodeCompleted { patch, next, .. } => NodeResult::Ran(Ok(NodeOutput {
                    patch: patch.object().unwrap(),
                    next: next.clone(),
                    exchange,
                    scores,
                    park: None,
                    pending: Vec::new(),
                })),
                Event::NodeFailed { class, message, .. } => NodeResult::Ran(Err(NodeError {
                    class: *class,
                    message: message.clone(),
                    retry_after_ms: None,
                    exchange,
                    scores,
                })),
                Event::Waiting { event, deadline_ms, prompt, .. } => {
                    NodeResult::Parks { event: event.clone(), deadline_ms: *deadline_ms, prompt: prompt.clone() }
                }
                Event::FanOut { branches, .. } => NodeResult::FansOut { branches: *branches },
                other => panic!("record {}: {other:?} in the middle of an attempt's result", r.seq),
            };
            let duration_us = match &r.event {
                Event::NodeCompleted { duration_us, .. } => *duration_us,
                _ => 0,
            };
            return (Input::Node { node, visit, attempt, result, duration_us }, i + 1);
        }
        panic!("an attempt's result never ends");
    }
    let input = match &records[0].event {
        Event::SignalReceived { key, payload } => Input::Signal { key: key.clone(), payload: payload.clone() },
        Event::ApprovalDecided { node, visit, approved, by, comment } => Input::Decision {
            node: node.clone(),
            visit: *visit,
            approved: *approved,
            by: by.clone(),
            comment: comment.clone(),
        },
        Event::ExecutionCancelled { reason } => Input::Cancel { reason: reason.clone() },
        Event::BranchFinished { node, visit, .. } => {
            let attempt = st.active[node].fan_out.as_ref().unwrap().attempt;
            let ends: Vec<(u32, BranchOutcome)> = records
                .iter()
                .map_while(|r| match &r.event {
                    Event::BranchFinished { node: n, branch, outcome, .. } if n == node => {
                        Some((*branch, outcome.clone()))
                    }
                    _ => None,
                })
                .collect();
            Input::BranchesDone { node: node.clone(), visit: *visit, attempt, ends }
        }
        Event::TimerFired { .. } | Event::WaitTimedOut { .. } | Event::NodeStarted { .. } => Input::Tick,
        other => panic!("record {}: {other:?} follows from no input", records[0].seq),
    };
    (input, 1)
}

/// Feed the core the inputs the history's records imply, each at its
/// record's time: it must make exactly the recorded events, in order.
fn reenacted(w: &Workflow, id: ExecutionId, records: &[Record]) -> ExecutionState {
    reenacted_on(w, id, records, None)
}

/// [`reenacted`] for a branch, which starts from `base`.
fn reenacted_on(w: &Workflow, id: ExecutionId, records: &[Record], base: Option<Base>) -> ExecutionState {
    let mut st = ExecutionState::new(id);
    st.base = base;
    let mut running: Vec<(String, u32, u32)> = Vec::new();
    let mut at = 0;
    let mut input = Input::Start(records[0].event.clone());
    loop {
        let mut now = records[at].at_ms;
        if let Input::Tick = input {
            // The tick comes at the retry's deadline (which the old shell
            // drew from a clock reading a moment before its batch's).
            now = st.active.values().filter_map(|a| a.retry_at.map(|r| r.1)).fold(now, u64::max);
        }
        let made = step(w, &mut st, input, now);
        assert!(!made.events.is_empty(), "record {}: its input made nothing", records[at].seq);
        for e in &made.events {
            let r = records.get(at).unwrap_or_else(|| panic!("made {e:?} past the end of the history"));
            let alike = match (e, &r.event) {
                // The old shell read the clock for a retry's delay a moment
                // before it stamped the batch.
                (
                    Event::NodeFailed { retry: RetryDecision::Retry { attempt: a, at_ms: made_at }, .. },
                    Event::NodeFailed { retry: RetryDecision::Retry { attempt: b, at_ms: was_at }, .. },
                ) => a == b && (0..=2).contains(&made_at.saturating_sub(*was_at)) && made_at >= was_at,
                _ => same(e, &r.event),
            };
            assert!(alike, "record {}: made {e:?}, the journal has {:?}", r.seq, r.event);
            at += 1;
        }
        for effect in made.effects {
            if let Effect::Run { node, visit, attempt } = effect {
                running.push((node, visit, attempt));
            }
        }
        if at == records.len() {
            return st;
        }
        let (next, _) = input_of(&st, &records[at..], &running);
        if let Input::Node { node, visit, attempt, .. } = &next {
            running.retain(|k| k != &(node.clone(), *visit, *attempt));
        }
        input = next;
    }
}

/// Replay and re-enact a history; the state comes out as `state` (when
/// given) and as its `ExecutionCompleted` recorded it (when it has one).
fn check(name: &str, phase: Phase, state: Option<Value>) -> ExecutionState {
    let (fx, w, id) = fixture(name);
    assert!(!fx.about.is_empty());
    let st = replayed(&w, id, &fx.records);
    assert_eq!(st.phase, phase, "{name}");
    let folded = Value::Object((*st.state).clone());
    if let Some(state) = state {
        assert_eq!(folded, state, "{name}");
    }
    if let Some(Event::ExecutionCompleted { state }) = fx.records.last().map(|r| &r.event) {
        assert_eq!(folded, state.value().unwrap(), "{name}: the state its end recorded");
    }
    let live = reenacted(&w, id, &fx.records);
    assert_eq!(live.phase, st.phase);
    assert_eq!(live.state, st.state);
    assert_eq!(live.active, st.active);
    if phase.is_terminal() {
        assert!(resume(&st).is_empty(), "{name}: an ended execution has nothing to resume");
    }
    st
}

#[test]
fn history_hello_completes_along_the_short_branch() {
    let st = check(
        "hello",
        Phase::Completed,
        Some(json!({"name": "Ada", "greeting": "Hello, Ada!", "length": 3, "verdict": "a short name"})),
    );
    assert_eq!(st.steps, 3);
}

#[test]
fn history_retry_refused_retries_twice_then_fails() {
    let (fx, w, id) = fixture("retry-refused");
    let st = check("retry-refused", Phase::Failed, Some(json!({})));
    assert!(st.error.as_deref().unwrap().contains("Connection refused"));
    // Cut after the first failure: a restart waits for the recorded retry deadline.
    let cut = &fx.records[..5];
    let Event::NodeFailed { retry: RetryDecision::Retry { attempt: 2, at_ms }, .. } = cut[4].event else {
        panic!("{:?}", cut[4].event)
    };
    let st = replayed(&w, id, cut);
    assert_eq!(
        resume(&st),
        vec![Command::Effect(Effect::RetryAt { node: "call".into(), visit: 1, attempt: 2, at_ms })]
    );
    // Cut while the second attempt ran: it runs again as attempt 3.
    let st = replayed(&w, id, &fx.records[..6]);
    assert_eq!(resume(&st), vec![Command::Start { node: "call".into(), visit: 1, attempt: 3 }]);
}

#[test]
fn history_approval_rejected_goes_on_at_on_reject() {
    let (fx, w, id) = fixture("approval-rejected");
    let st = check("approval-rejected", Phase::Completed, None);
    assert_eq!(st.state["status"], "refused: too much");
    let decided = &st.state["decision"];
    assert_eq!(
        (&decided["decision"], &decided["by"], &decided["comment"]),
        (&json!("rejected"), &json!("ops"), &json!("too much"))
    );
    assert!(!st.decisions["ask"].approved);
    // Cut while parked: nothing to resume, settled, waiting on the approval.
    let at = fx.records.iter().position(|r| matches!(r.event, Event::Waiting { .. })).unwrap();
    let parked = replayed(&w, id, &fx.records[..=at]);
    assert!(resume(&parked).is_empty());
    assert_eq!(settled(&w, &parked, fx.records[at].at_ms, false, &HashMap::new()), Settled::Parked);
    assert_eq!(waits(&parked)[0].1, WaitKind::Approval);
}

#[test]
fn history_wait_signalled_takes_the_payment_then_naps() {
    let (fx, w, id) = fixture("wait-signalled");
    let st = check(
        "wait-signalled",
        Phase::Completed,
        Some(json!({"order_id": "42", "payment": {"amount": 12.5}, "status": "paid 12.5"})),
    );
    assert!(st.inbox.is_empty());
    // Cut on the nap: parked on a timer, which is not settled.
    let at = fx.records.iter().rposition(|r| matches!(r.event, Event::Waiting { .. })).unwrap();
    let napping = replayed(&w, id, &fx.records[..=at]);
    assert_eq!(waits(&napping)[0].1, WaitKind::Timer);
    assert_eq!(settled(&w, &napping, fx.records[at].at_ms, false, &HashMap::new()), Settled::No);
}

#[test]
fn history_fanout_merges_its_branches() {
    let st = check("fanout", Phase::Completed, None);
    assert_eq!(st.state["shout"], "ADA, GRACE, EDSGER");
    assert_eq!(st.state["greetings"].as_array().map(Vec::len), Some(3));
    assert!(st.orphans.is_empty());
}

#[test]
fn history_fanout_branches_start_from_the_parent_state_and_end_as_the_parent_recorded() {
    let (fx, w, parent_id) = fixture("fanout-branches");
    assert!(!fx.about.is_empty());
    let parent = check("fanout-branches", Phase::Completed, None);
    assert_eq!(fx.branches.len(), 5);
    let mut seen = Vec::new();
    for b in &fx.branches {
        let id: ExecutionId = b.id.parse().unwrap();
        let Event::BranchStarted { parent: of, parent_node, branch, state_at, .. } = &b.records[0].event else {
            panic!("{}: starts with {:?}", b.id, b.records[0].event)
        };
        assert_eq!(of, &parent_id.to_string());
        seen.push((parent_node.clone(), *branch));
        // Its base is the parent's state as of the parent's `FanOut`.
        let at = fx.records.iter().position(|r| r.seq == *state_at).unwrap();
        assert!(matches!(&fx.records[at].event, Event::FanOut { node, .. } if node == parent_node));
        let base = ExecutionState::replay(parent_id, &w, &fx.records[..=at]).state;
        let st = replayed_on(&w, id, &b.records, Some(base.clone()));
        assert_eq!(st.phase, Phase::Completed, "{}", b.id);
        // The state it folds to is the base and what it wrote; its end
        // records only what it wrote, which is the patch the parent took.
        let written = Value::Object(st.written.clone().unwrap());
        let Some(Event::ExecutionCompleted { state }) = b.records.last().map(|r| &r.event) else { panic!() };
        assert_eq!(written, state.value().unwrap(), "{}", b.id);
        let taken = fx
            .records
            .iter()
            .find_map(|r| match &r.event {
                Event::BranchFinished { node, branch: n, outcome: BranchOutcome::Completed { patch }, .. }
                    if node == parent_node && n == branch =>
                {
                    Some(patch.value().unwrap())
                }
                _ => None,
            })
            .unwrap();
        assert_eq!(written, taken, "{}: the patch its parent took", b.id);
        for (k, v) in base.iter() {
            if !st.written.as_ref().unwrap().contains_key(k) {
                assert_eq!(st.state.get(k), Some(v), "{}: `{k}` comes from the base", b.id);
            }
        }
        let live = reenacted_on(&w, id, &b.records, Some(base));
        assert_eq!((live.phase, &live.state, &live.written), (st.phase, &st.state, &st.written));
        // Without its parent's state a branch is an inconsistency, never a
        // run from an empty state.
        let mut orphan = ExecutionState::new(id);
        let made = step(&w, &mut orphan, Input::Start(b.records[0].event.clone()), b.records[0].at_ms);
        assert!(
            made.events.iter().any(|e| matches!(e, Event::ExecutionFailed { error, .. }
                if error.contains("started without its parent's state"))),
            "{}: {:?}",
            b.id,
            made.events
        );
    }
    seen.sort();
    let expected = [("greet_all", 0), ("greet_all", 1), ("greet_all", 2), ("styles", 0), ("styles", 1)];
    assert_eq!(seen, expected.map(|(n, b)| (n.to_string(), b)));
    assert_eq!(parent.state["greetings"].as_array().map(Vec::len), Some(3));
}
