//! Parallel fan-out, waits and signals, approvals, durable timers, retries
//! and timeouts, cancellation, hibernation and sub-workflows, through the
//! embedding API on the sled journal.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use jamjet::clock::{Clock, ManualClock};
use jamjet::id::ExecutionId;
use jamjet::journal::{BranchOutcome, Event, Status};
use jamjet::nodes::{FunctionCall, FunctionError};
use jamjet::{Decision, Error, Outcome, Runtime, WaitKind, ir};
use serde_json::{Value, json};
use tokio::sync::Semaphore;

fn compile(src: &str) -> ir::Workflow {
    ir::compile_str(src, "test.yaml").unwrap_or_else(|d| panic!("{d}"))
}

const LIMIT: Duration = Duration::from_secs(20);

/// Bounded in time: a hang fails the test instead of stalling CI.
async fn within<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(LIMIT, f).await.unwrap_or_else(|_| panic!("{what} did not happen within {LIMIT:?}"))
}

async fn open(dir: &std::path::Path) -> Runtime {
    Runtime::open(dir).await.unwrap()
}

/// A manual clock at the wall clock's time: deadlines pass when the test
/// advances it (the timer wheel hears of it), never by sleeping.
fn manual_clock() -> Arc<ManualClock> {
    ManualClock::new(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64)
}

async fn open_with(dir: &std::path::Path, clock: &Arc<ManualClock>) -> Runtime {
    Runtime::builder().data_dir(dir).clock(clock.clone()).open().await.unwrap()
}

/// When the first record matching `f` was journaled (the runtime's clock).
fn journaled_at(rt: &Runtime, id: ExecutionId, f: impl Fn(&Event) -> bool) -> u64 {
    rt.events(id).unwrap().iter().find(|r| f(&r.event)).map(|r| r.at_ms).expect("the record is journaled")
}

/// The end of a child execution. Its index row is written by its own
/// actor, with no notice to await, so this first looks (bounded) until
/// the row is there, then awaits the end itself.
async fn child_end(rt: &Runtime, id: ExecutionId) -> Outcome {
    within(&format!("{id} ending"), async {
        for _ in 0..2000 {
            if rt.status(id).is_ok() {
                return rt.wait(id).await.unwrap();
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("child {id} never appeared");
    })
    .await
}

fn events(rt: &Runtime, id: ExecutionId) -> Vec<Event> {
    rt.events(id).unwrap().into_iter().map(|r| r.event).collect()
}

fn count(evs: &[Event], f: impl Fn(&Event) -> bool) -> usize {
    evs.iter().filter(|e| f(e)).count()
}

// ---------------------------------------------------------------- parallel

const FAN: &str = r#"
id: fan
state_schema: { urls: list, pages: list, a: int, b: int, total: int }
nodes:
  fetch_all:
    type: parallel
    for_each: "{{ state.urls }}"
    branches: [fetch]
    join: sum
    merge: collect
    output_key: pages
    max_concurrency: 2
  fetch:
    type: function
    function: fetch
    input: { url: "{{ item }}", index: "{{ index }}" }
    output_key: a
    next: sum
  sum: { type: set, values: { total: "{{ state.pages | length }}" } }
"#;

#[tokio::test]
async fn for_each_runs_a_branch_per_item_in_order_bounded_by_max_concurrency() {
    let dir = tempfile::tempdir().unwrap();
    let running = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let (r, p) = (running.clone(), peak.clone());
    let rt = Runtime::builder()
        .data_dir(dir.path())
        .function("fetch", move |call: FunctionCall| {
            let (r, p) = (r.clone(), p.clone());
            async move {
                let now = r.fetch_add(1, Ordering::SeqCst) + 1;
                p.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(20)).await;
                r.fetch_sub(1, Ordering::SeqCst);
                let n = call.input["url"].as_str().unwrap().len() as i64 * 10 + call.input["index"].as_i64().unwrap();
                Ok(json!(n))
            }
        })
        .open()
        .await
        .unwrap();
    let wf = compile(FAN);
    let out = within("the fan-out", rt.run(&wf, json!({ "urls": ["a", "bb", "ccc", "dddd", "e"] }))).await.unwrap();
    assert_eq!(out.status, Status::Completed, "{out:?}");
    assert_eq!(out.state["pages"], json!([{"a": 10}, {"a": 21}, {"a": 32}, {"a": 43}, {"a": 14}]));
    assert_eq!(out.state["total"], 5);
    assert!(peak.load(Ordering::SeqCst) <= 2, "max_concurrency 2, saw {}", peak.load(Ordering::SeqCst));
    // Each branch is an execution of its own, journaled independently.
    let evs = events(&rt, out.id);
    assert_eq!(count(&evs, |e| matches!(e, Event::FanOut { branches: 5, .. })), 1);
    assert_eq!(count(&evs, |e| matches!(e, Event::BranchFinished { .. })), 5);
    let child = ExecutionId::child(out.id, "fetch_all", 1, 1, 3);
    let child_evs = events(&rt, child);
    // A branch names the parent's state at its fan-out instead of copying it,
    // and ends with only the keys it wrote.
    let fan_out_seq = rt.events(out.id).unwrap().iter().find(|r| matches!(r.event, Event::FanOut { .. })).unwrap().seq;
    assert!(
        matches!(&child_evs[0], Event::BranchStarted { start, state_at, .. } if start == "fetch" && *state_at == fan_out_seq),
        "{:?}",
        child_evs[0]
    );
    match child_evs.last() {
        Some(Event::ExecutionCompleted { state }) => assert_eq!(state.value().unwrap(), json!({"a": 43})),
        other => panic!("{other:?}"),
    }
    assert_eq!(rt.outcome(child).unwrap().state["urls"], json!(["a", "bb", "ccc", "dddd", "e"]), "the parent's state");
}

const KEYS: &str = r#"
id: keys
state_schema: { a: int, b: int, c: int, done: bool }
nodes:
  split:
    type: parallel
    branches: [left, right]
    join: joined
    merge: keys
  left: { type: set, values: { a: 1 }, next: left2 }
  left2: { type: set, values: { c: "{{ state.a + 1 }}" }, next: joined }
  right: { type: set, values: { b: 2 }, next: joined }
  joined: { type: set, values: { done: true } }
"#;

#[tokio::test]
async fn merge_keys_merges_each_branchs_own_keys_and_goes_on_at_the_join() {
    let dir = tempfile::tempdir().unwrap();
    let rt = open(dir.path()).await;
    let out = within("the join", rt.run(&compile(KEYS), json!({}))).await.unwrap();
    assert_eq!(out.status, Status::Completed, "{out:?}");
    assert_eq!(out.state, json!({ "a": 1, "b": 2, "c": 2, "done": true }));
    // The join node ran once, in the parent, not in the branches.
    let evs = events(&rt, out.id);
    assert_eq!(count(&evs, |e| matches!(e, Event::NodeCompleted { node, .. } if node == "joined")), 1);
    for b in 0..2 {
        let child = events(&rt, ExecutionId::child(out.id, "split", 1, 1, b));
        assert_eq!(count(&child, |e| matches!(e, Event::NodeStarted { node, .. } if node == "joined")), 0);
    }
}

const RACE: &str = r#"
id: race
state_schema: { winner: str }
nodes:
  race:
    type: parallel
    branches: [fast, slow]
    join: end
    merge: first
  fast: { type: function, function: fast, output_key: winner, next: end }
  slow: { type: function, function: slow, output_key: winner, next: end }
  end: { type: end }
"#;

#[tokio::test]
async fn merge_first_takes_the_first_branch_and_cancels_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let rt = Runtime::builder()
        .data_dir(dir.path())
        .function("fast", |_| async { Ok(json!("fast")) })
        .function("slow", |_| async {
            tokio::time::sleep(Duration::from_secs(30)).await;
            Ok(json!("slow"))
        })
        .open()
        .await
        .unwrap();
    let out = within("the race", rt.run(&compile(RACE), json!({}))).await.unwrap();
    assert_eq!(out.state["winner"], "fast");
    let slow = ExecutionId::child(out.id, "race", 1, 1, 1);
    assert_eq!(child_end(&rt, slow).await.status, Status::Cancelled);
    assert!(matches!(events(&rt, slow).last(), Some(Event::ExecutionCancelled { .. })));
}

const FAILING: &str = r#"
id: failing
state_schema: { results: list, ok: int }
nodes:
  both:
    type: parallel
    branches: [good, bad]
    join: after
    merge: collect
    output_key: results
    on_error: ON_ERROR
  good: { type: set, values: { ok: 1 }, next: after }
  bad: { type: function, function: boom, next: after }
  after: { type: end }
"#;

#[tokio::test]
async fn on_error_fail_fast_fails_the_node_and_collect_keeps_the_error_in_the_list() {
    let dir = tempfile::tempdir().unwrap();
    let rt = Runtime::builder()
        .data_dir(dir.path())
        .function("boom", |_| async { Err(FunctionError::new("no such page")) })
        .open()
        .await
        .unwrap();
    let out = within("fail_fast", rt.run(&compile(&FAILING.replace("ON_ERROR", "fail_fast")), json!({}))).await;
    let out = out.unwrap();
    assert_eq!(out.status, Status::Failed);
    let err = out.error.unwrap();
    assert!(err.contains("both") && err.contains("branch 1 failed") && err.contains("no such page"), "{err}");
    let out = within("collect", rt.run(&compile(&FAILING.replace("ON_ERROR", "collect")), json!({}))).await.unwrap();
    assert_eq!(out.status, Status::Completed, "{out:?}");
    assert_eq!(out.state["results"][0], json!({ "ok": 1 }));
    assert!(out.state["results"][1]["error"].as_str().unwrap().contains("no such page"), "{}", out.state);
}

// ---------------------------------------------------------------- waits

const PAY: &str = r#"
id: pay
state_schema: { order_id: str, payment: any, late: bool }
nodes:
  wait_payment:
    type: wait
    event: "payment:{{ state.order_id }}"
    output_key: payment
    timeout_ms: TIMEOUT
    on_timeout: too_late
    next: done
  too_late: { type: set, values: { late: true } }
  done: { type: end }
"#;

fn pay(timeout_ms: u64) -> ir::Workflow {
    compile(&PAY.replace("TIMEOUT", &timeout_ms.to_string()))
}

#[tokio::test]
async fn a_wait_parks_hibernated_and_a_signal_resumes_it_with_the_payload() {
    let dir = tempfile::tempdir().unwrap();
    let rt = open(dir.path()).await;
    let id = rt.submit(&pay(600_000), json!({ "order_id": "42" })).await.unwrap();
    let parked = within("parking", rt.settle(id)).await.unwrap();
    assert_eq!(parked.status, Status::Waiting);
    // Hibernated: no actor in memory (the supervisor's notice).
    within("hibernation", rt.unloaded(id)).await.unwrap();
    assert!(!rt.live().await.unwrap().contains(&id));
    let waiting = rt.waiting().unwrap();
    assert_eq!(waiting.len(), 1);
    assert_eq!((waiting[0].kind, waiting[0].event.as_deref()), (WaitKind::Event, Some("payment:42")));
    // A signal for another key is kept, not consumed.
    rt.signal(id, "payment:41", json!({ "amount": 1 })).await.unwrap();
    assert_eq!(rt.status(id).unwrap().status, Status::Waiting);
    rt.signal(id, "payment:42", json!({ "amount": 10 })).await.unwrap();
    let out = within("the end", rt.wait(id)).await.unwrap();
    assert_eq!(out.status, Status::Completed);
    assert_eq!(out.state["payment"], json!({ "amount": 10 }));
    // Signalling a finished execution is a clear error, and journals nothing.
    let before = events(&rt, id).len();
    let err = rt.signal(id, "payment:42", json!(1)).await.unwrap_err();
    assert!(matches!(err, Error::Finished { status: Status::Completed, .. }), "{err}");
    assert_eq!(events(&rt, id).len(), before);
    let unknown = ExecutionId::new(1);
    assert!(matches!(rt.signal(unknown, "x", json!(1)).await.unwrap_err(), Error::UnknownExecution(_)));
}

const EARLY: &str = r#"
id: early
state_schema: { order_id: str, payment: any, step: int }
nodes:
  work: { type: function, function: hold, output_key: step, next: wait_payment }
  wait_payment: { type: wait, event: "payment:{{ state.order_id }}", output_key: payment }
"#;

#[tokio::test]
async fn an_event_that_arrives_before_the_wait_is_kept_and_consumed_there() {
    let dir = tempfile::tempdir().unwrap();
    let gate = Arc::new(Semaphore::new(0));
    let g = gate.clone();
    let rt = Runtime::builder()
        .data_dir(dir.path())
        .function("hold", move |_| {
            let g = g.clone();
            async move {
                g.acquire().await.unwrap().forget();
                Ok(json!(1))
            }
        })
        .open()
        .await
        .unwrap();
    let id = rt.submit(&compile(EARLY), json!({ "order_id": "7" })).await.unwrap();
    rt.signal(id, "payment:7", json!("paid")).await.unwrap();
    assert!(events(&rt, id).iter().any(|e| matches!(e, Event::SignalReceived { .. })));
    gate.add_permits(1);
    let out = within("the end", rt.wait(id)).await.unwrap();
    assert_eq!(out.status, Status::Completed, "{out:?}");
    assert_eq!(out.state["payment"], "paid");
}

#[tokio::test]
async fn a_wait_times_out_to_on_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let rt = open(dir.path()).await;
    let out = within("the timeout", rt.run(&pay(50), json!({ "order_id": "1" }))).await.unwrap();
    assert_eq!(out.status, Status::Completed);
    assert_eq!(out.state["late"], true);
    let evs = events(&rt, out.id);
    assert_eq!(count(&evs, |e| matches!(e, Event::WaitTimedOut { .. })), 1);
}

#[tokio::test]
async fn a_signal_and_a_timeout_arriving_together_resolve_one_way_journaled_once() {
    let dir = tempfile::tempdir().unwrap();
    let clock = manual_clock();
    let rt = open_with(dir.path(), &clock).await;
    for round in 0..10u64 {
        let id = rt.submit(&pay(20 + round % 3), json!({ "order_id": "9" })).await.unwrap();
        // The deadline comes (the timer wheel is woken) as the signal goes.
        clock.advance(20 + round % 3);
        // Either the signal wins (payment set) or the timeout does (late set); never both.
        let _ = rt.signal(id, "payment:9", json!("paid")).await;
        let out = within("the end", rt.wait(id)).await.unwrap();
        let evs = events(&rt, id);
        let completed = count(&evs, |e| matches!(e, Event::NodeCompleted { node, .. } if node == "wait_payment"));
        assert_eq!(completed, 1, "round {round}: {evs:?}");
        let paid = out.state.get("payment").is_some();
        let late = out.state.get("late").is_some();
        assert!(paid != late, "round {round}: {}", out.state);
    }
}

// ---------------------------------------------------------------- timers

#[tokio::test]
async fn a_timer_fires_at_its_deadline_and_after_a_restart_at_once_if_it_passed() {
    let dir = tempfile::tempdir().unwrap();
    let wf = compile(
        "id: nap\nstate_schema: { n: int }\nnodes:\n  nap: { type: wait, duration_ms: 300, next: after }\n  after: { type: set, values: { n: 1 } }\n",
    );
    let clock = manual_clock();
    let rt = open_with(dir.path(), &clock).await;
    let began = clock.now_ms();
    let id = rt.submit(&wf, json!({})).await.unwrap();
    clock.advance(299);
    assert_eq!(rt.status(id).unwrap().status, Status::Waiting);
    clock.advance(1);
    let out = within("the timer", rt.wait(id)).await.unwrap();
    assert_eq!(out.state["n"], 1);
    // Stamped by the runtime's clock: had it fired before the clock reached
    // the deadline, it would say so.
    let fired = journaled_at(&rt, id, |e| matches!(e, Event::TimerFired { .. }));
    assert!(fired >= began + 300, "fired early: {} ms after the start", fired - began);

    // Park one, shut down, let its deadline pass while down, reopen: it fires at once.
    let id = rt.submit(&wf, json!({})).await.unwrap();
    // The timer's `Waiting` is durable in the submission's own batch.
    assert_eq!(rt.status(id).unwrap().status, Status::Waiting);
    rt.shutdown().await;
    clock.advance(400);
    let rt = open_with(dir.path(), &clock).await;
    let out = within("the timer after a restart", rt.wait(id)).await.unwrap();
    assert_eq!(out.status, Status::Completed);
    let evs = events(&rt, id);
    assert_eq!(count(&evs, |e| matches!(e, Event::TimerFired { .. })), 1);
    assert_eq!(count(&evs, |e| matches!(e, Event::WaitTimedOut { .. })), 0, "a timer's end is not a timeout");
}

#[tokio::test]
async fn until_waits_for_an_rfc3339_time_from_state() {
    let dir = tempfile::tempdir().unwrap();
    let clock = manual_clock();
    let rt = open_with(dir.path(), &clock).await;
    let wf = compile(
        "id: until\nstate_schema: { deadline: str, n: int }\nnodes:\n  sleep: { type: wait, until: \"{{ state.deadline }}\", next: after }\n  after: { type: set, values: { n: 1 } }\n",
    );
    let at_ms = clock.now_ms() + 200;
    let at = jiff::Timestamp::from_millisecond(at_ms as i64).unwrap();
    let id = rt.submit(&wf, json!({ "deadline": at.to_string() })).await.unwrap();
    assert_eq!(rt.status(id).unwrap().status, Status::Waiting);
    clock.advance(200);
    let out = within("until", rt.wait(id)).await.unwrap();
    assert_eq!(out.status, Status::Completed);
    assert!(clock.now_ms() >= at_ms);
    assert!(journaled_at(&rt, id, |e| matches!(e, Event::TimerFired { .. })) >= at_ms);
    let bad = within("bad until", rt.run(&wf, json!({ "deadline": "next tuesday" }))).await.unwrap();
    assert_eq!(bad.status, Status::Failed);
    assert!(bad.error.unwrap().contains("next tuesday"));
}

// ---------------------------------------------------------------- approval

const REVIEW: &str = r#"
id: review
state_schema: { amount: int, decision: any, status: str }
nodes:
  review:
    type: approval
    prompt: "Refund {{ state.amount }} USD?"
    output_key: decision
    on_reject: refused
    next: refund
  refund: { type: set, values: { status: refunded } }
  refused: { type: set, values: { status: refused } }
"#;

fn decision(approved: bool, by: &str) -> Decision {
    Decision { node: None, call: None, approved, by: by.into(), comment: Some(format!("{by} says so")) }
}

#[tokio::test]
async fn approval_pauses_with_its_prompt_and_resumes_on_the_decision() {
    let dir = tempfile::tempdir().unwrap();
    let rt = open(dir.path()).await;
    let wf = compile(REVIEW);
    let id = rt.submit(&wf, json!({ "amount": 30 })).await.unwrap();
    let parked = within("parking", rt.settle(id)).await.unwrap();
    assert_eq!(parked.status, Status::Waiting);
    let w = rt.waiting().unwrap();
    assert_eq!((w[0].kind, w[0].prompt.as_deref()), (WaitKind::Approval, Some("Refund 30 USD?")));
    assert_eq!(rt.approve(id, decision(true, "ada")).await.unwrap(), "review");
    let out = within("the end", rt.wait(id)).await.unwrap();
    assert_eq!(out.state["status"], "refunded");
    assert_eq!(out.state["decision"]["by"], "ada");
    assert_eq!(out.state["decision"]["decision"], "approved");
    let decided = events(&rt, id).into_iter().find(|e| matches!(e, Event::ApprovalDecided { .. })).unwrap();
    assert!(matches!(decided, Event::ApprovalDecided { approved: true, ref by, .. } if by == "ada"));

    let id = rt.submit(&wf, json!({ "amount": 9000 })).await.unwrap();
    within("parking", rt.settle(id)).await.unwrap();
    rt.approve(id, decision(false, "bob")).await.unwrap();
    let out = within("the end", rt.wait(id)).await.unwrap();
    assert_eq!(out.state["status"], "refused");
}

#[tokio::test]
async fn two_approvals_at_once_one_wins_and_the_other_is_told_who_won() {
    let dir = tempfile::tempdir().unwrap();
    let rt = open(dir.path()).await;
    let id = rt.submit(&compile(REVIEW), json!({ "amount": 5 })).await.unwrap();
    within("parking", rt.settle(id)).await.unwrap();
    let (a, b) = tokio::join!(rt.approve(id, decision(true, "ada")), rt.approve(id, decision(false, "bob")));
    let (won, lost) = match (a, b) {
        (Ok(_), Err(e)) => ("ada", e),
        (Err(e), Ok(_)) => ("bob", e),
        other => panic!("exactly one decision must win: {other:?}"),
    };
    let text = lost.to_string();
    assert!(text.contains("already decided") && text.contains(won), "{text}");
    within("the end", rt.wait(id)).await.unwrap();
    let evs = events(&rt, id);
    assert_eq!(count(&evs, |e| matches!(e, Event::ApprovalDecided { .. })), 1);
}

// ---------------------------------------------------------------- retries and timeouts

const POLICIES: &str = r#"
id: policies
retry_policies:
  patient: { max_attempts: 3, backoff: constant, delay_ms: 30, retry_on: [function] }
state_schema: { out: int }
nodes:
  flaky: { type: function, function: flaky, output_key: out, retry: patient }
"#;

#[tokio::test]
async fn named_retry_policies_retry_the_classes_they_list_after_durable_delays() {
    let dir = tempfile::tempdir().unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let clock = manual_clock();
    let rt = Runtime::builder()
        .data_dir(dir.path())
        .clock(clock.clone())
        .function("flaky", move |call: FunctionCall| {
            let c = c.clone();
            async move {
                c.fetch_add(1, Ordering::SeqCst);
                if call.attempt < 3 { Err(FunctionError::new("not yet")) } else { Ok(json!(call.attempt)) }
            }
        })
        .open()
        .await
        .unwrap();
    let id = rt.submit(&compile(POLICIES), json!({})).await.unwrap();
    let failed = |n: usize| count(&events(&rt, id), |e| matches!(e, Event::NodeFailed { .. })) >= n;
    for n in 1..=2 {
        // Attempt n failed and its retry is durable; the next attempt waits
        // for the delay, which passes only when the clock is advanced.
        within("a failed attempt", async {
            for _ in 0..1000 {
                let mut feed = rt.subscribe(id);
                if failed(n) {
                    return;
                }
                feed.changed().await.unwrap();
            }
            panic!("attempt {n} never failed");
        })
        .await;
        assert_eq!(calls.load(Ordering::SeqCst), n, "attempt {} started before its delay passed", n + 1);
        clock.advance(30);
    }
    let out = within("the retries", rt.wait(id)).await.unwrap();
    assert_eq!(out.status, Status::Completed, "{out:?}");
    assert_eq!(out.state["out"], 3);
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    let recs = rt.events(out.id).unwrap();
    let failed: Vec<_> = recs.iter().filter(|r| matches!(r.event, Event::NodeFailed { .. })).collect();
    let started: Vec<_> = recs.iter().filter(|r| matches!(r.event, Event::NodeStarted { .. })).collect();
    assert_eq!((failed.len(), started.len()), (2, 3));
    // The delay is honoured: attempt n+1 starts at least delay_ms after attempt n failed.
    assert!(started[1].at_ms >= failed[0].at_ms + 30 && started[2].at_ms >= failed[1].at_ms + 30);
}

#[tokio::test]
async fn a_workflow_timeout_fails_the_execution_and_stops_its_running_node() {
    let dir = tempfile::tempdir().unwrap();
    let rt = Runtime::builder()
        .data_dir(dir.path())
        .function("forever", |_| async {
            tokio::time::sleep(Duration::from_secs(60)).await;
            Ok(json!(1))
        })
        .open()
        .await
        .unwrap();
    let wf = compile(
        "workflow: { id: slow, timeout_ms: 150, state_schema: { out: int } }\nnodes:\n  work: { type: function, function: forever, output_key: out }\n",
    );
    let began = std::time::Instant::now();
    let out = within("the timeout", rt.run(&wf, json!({}))).await.unwrap();
    assert_eq!(out.status, Status::Failed);
    assert!(out.error.unwrap().contains("timeout_ms 150"));
    assert!(began.elapsed() < Duration::from_secs(10));
    // Its actor goes, with the node still running inside it.
    within("the actor's end", rt.unloaded(out.id)).await.unwrap();
    assert!(!rt.live().await.unwrap().contains(&out.id));
    // Never loaded here: answered at once.
    within("an unknown id", rt.unloaded(ExecutionId::new(1))).await.unwrap();
}

#[tokio::test]
async fn rate_limited_calls_wait_for_retry_after_and_retry_on_limits_what_is_retried() {
    let server = support::Server::start().await;
    let dir = tempfile::tempdir().unwrap();
    let rt = open(dir.path()).await;
    let yaml = |retry_on: &str| {
        format!(
            "id: limited\nstate_schema: {{ base: str, out: dict }}\nnodes:\n  call:\n    type: http\n    method: POST\n    url: \"{{{{ state.base }}}}/limited/1\"\n    body: {{ x: 1 }}\n    output_key: out\n    retry: {{ max_attempts: 3, backoff: constant, delay_ms: 10, retry_on: [{retry_on}] }}\n"
        )
    };
    let out =
        within("the retry", rt.run(&compile(&yaml("rate_limited")), json!({ "base": server.url }))).await.unwrap();
    assert_eq!(out.status, Status::Completed, "{out:?}");
    let recs = rt.events(out.id).unwrap();
    let failed = recs.iter().find(|r| matches!(r.event, Event::NodeFailed { .. })).unwrap();
    let retried = recs.iter().filter(|r| matches!(r.event, Event::NodeStarted { .. })).nth(1).unwrap();
    assert!(retried.at_ms >= failed.at_ms + 1000, "Retry-After: 1 not honoured: {} ms", retried.at_ms - failed.at_ms);
    // Not in retry_on: the first 429 fails the execution.
    let out = within("no retry", rt.run(&compile(&yaml("server_error")), json!({ "base": server.url }))).await.unwrap();
    assert_eq!(out.status, Status::Failed);
    assert!(out.error.unwrap().contains("rate_limited"));
}

#[tokio::test]
async fn a_parallel_node_timeout_fails_it_and_cancels_its_children() {
    let dir = tempfile::tempdir().unwrap();
    let rt = open(dir.path()).await;
    let wf = compile(
        "id: slowfan\nstate_schema: { p: any }\nnodes:\n  fan: { type: parallel, branches: [w], join: done, merge: keys, timeout_ms: 100 }\n  w: { type: wait, event: never, output_key: p, next: done }\n  done: { type: end }\n",
    );
    let out = within("the timeout", rt.run(&wf, json!({}))).await.unwrap();
    assert_eq!(out.status, Status::Failed);
    assert!(out.error.unwrap().contains("timeout_ms 100"));
    assert_eq!(child_end(&rt, ExecutionId::child(out.id, "fan", 1, 1, 0)).await.status, Status::Cancelled);
}

// ---------------------------------------------------------------- cancellation

#[tokio::test]
async fn cancel_stops_a_running_or_waiting_execution_for_good() {
    let dir = tempfile::tempdir().unwrap();
    let started = Arc::new(Semaphore::new(0));
    let s = started.clone();
    let builder = |dir: &std::path::Path, s: Arc<Semaphore>| {
        Runtime::builder().data_dir(dir).function("forever", move |_| {
            let s = s.clone();
            async move {
                s.add_permits(1);
                tokio::time::sleep(Duration::from_secs(60)).await;
                Ok(json!(1))
            }
        })
    };
    let rt = builder(dir.path(), s.clone()).open().await.unwrap();
    let running = compile(
        "id: busy\nstate_schema: { out: int }\nnodes:\n  work: { type: function, function: forever, output_key: out }\n",
    );
    let id = rt.submit(&running, json!({})).await.unwrap();
    within("the node starting", started.acquire()).await.unwrap().forget();
    rt.cancel(id, "changed my mind").await.unwrap();
    let out = within("the end", rt.wait(id)).await.unwrap();
    assert_eq!(out.status, Status::Cancelled);
    assert!(out.error.unwrap().contains("changed my mind"));

    let parked = rt.submit(&pay(600_000), json!({ "order_id": "3" })).await.unwrap();
    within("parking", rt.settle(parked)).await.unwrap();
    rt.cancel(parked, "no longer needed").await.unwrap();
    assert_eq!(rt.status(parked).unwrap().status, Status::Cancelled);
    let err = rt.cancel(parked, "again").await.unwrap_err();
    assert!(matches!(err, Error::Finished { status: Status::Cancelled, .. }), "{err}");

    // A cancelled execution never resumes after a restart.
    rt.shutdown().await;
    let rt = builder(dir.path(), s).open().await.unwrap();
    assert!(rt.resume_all().await.unwrap().is_empty());
    assert_eq!(rt.status(id).unwrap().status, Status::Cancelled);
    assert_eq!(count(&events(&rt, id), |e| matches!(e, Event::ExecutionCancelled { .. })), 1);
}

// ---------------------------------------------------------------- sub-workflows

#[tokio::test]
async fn a_sub_workflow_runs_as_a_child_and_cancelling_the_parent_cancels_it() {
    let dir = tempfile::tempdir().unwrap();
    let child = "id: child\nstate_schema: { x: int, y: int, order_id: str, payment: any }\nnodes:\n  double: { type: set, values: { y: \"{{ state.x * 2 }}\" }, next: maybe_wait }\n  maybe_wait:\n    type: branch\n    conditions: [{ when: \"state.x > 100\", next: wait }]\n    default: done\n  wait: { type: wait, event: pay, output_key: payment, next: done }\n  done: { type: end }\n";
    std::fs::write(dir.path().join("child.yaml"), child).unwrap();
    let parent = "id: parent\nstate_schema: { n: int, result: dict }\nnodes:\n  call: { type: workflow, file: child.yaml, input: { x: \"{{ state.n }}\" }, output_key: result }\n";
    std::fs::write(dir.path().join("parent.yaml"), parent).unwrap();
    let wf = ir::compile_file(&dir.path().join("parent.yaml")).unwrap_or_else(|d| panic!("{d}"));
    let data = dir.path().join("data");
    let rt = open(&data).await;
    let out = within("the parent", rt.run(&wf, json!({ "n": 21 }))).await.unwrap();
    assert_eq!(out.status, Status::Completed, "{out:?}");
    assert_eq!(out.state["result"], json!({ "x": 21, "y": 42 }));

    let id = rt.submit(&wf, json!({ "n": 500 })).await.unwrap();
    let child_id = ExecutionId::child(id, "call", 1, 1, 0);
    // Settled as a family: the child parked, the parent waits on it.
    within("parking", rt.settle(id)).await.unwrap();
    assert_eq!(rt.status(child_id).unwrap().status, Status::Waiting);
    rt.cancel(id, "parent cancelled").await.unwrap();
    assert_eq!(within("the child's end", rt.wait(child_id)).await.unwrap().status, Status::Cancelled);
    let parent_out: Outcome = rt.wait(id).await.unwrap();
    assert_eq!(parent_out.status, Status::Cancelled);
    let evs = events(&rt, id);
    assert!(!evs.iter().any(|e| matches!(e, Event::BranchFinished { outcome: BranchOutcome::Completed { .. }, .. })));
}

#[tokio::test]
async fn a_parallel_branch_can_wait_and_the_parent_joins_when_it_is_signalled() {
    let dir = tempfile::tempdir().unwrap();
    let rt = open(dir.path()).await;
    let wf = compile(support::GATHER);
    let id = rt.submit(&wf, json!({})).await.unwrap();
    within("parking", rt.settle(id)).await.unwrap();
    for b in 0..3u32 {
        assert_eq!(rt.status(ExecutionId::child(id, "ask", 1, 1, b)).unwrap().status, Status::Waiting);
    }
    let waiting: Vec<Value> = rt.waiting().unwrap().into_iter().map(|w| json!(w.event)).collect();
    assert_eq!(waiting.len(), 3, "{waiting:?}");
    for b in [2u32, 0, 1] {
        let child = ExecutionId::child(id, "ask", 1, 1, b);
        rt.signal(child, &format!("answer:{}", b + 1), json!(b * 10)).await.unwrap();
    }
    let out = within("the join", rt.wait(id)).await.unwrap();
    assert_eq!(out.status, Status::Completed, "{out:?}");
    assert_eq!(out.state["answers"], json!([{ "answer": 0 }, { "answer": 10 }, { "answer": 20 }]));
}
