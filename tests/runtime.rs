//! The embedding API, end to end on real journals: functions, branches,
//! http against a loopback server, supervision of panicking nodes, replay,
//! rehydration after a restart, and bad input.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use jamjet::actors::machine::ExecutionState;
use jamjet::journal::{ErrorClass, Event, RetryDecision, Status};
use jamjet::nodes::{FunctionCall, FunctionError};
use jamjet::{Error, Runtime, ir};
use serde_json::{Value, json};

fn compile(src: &str) -> ir::Workflow {
    ir::compile_str(src, "test.yaml").unwrap_or_else(|d| panic!("{d}"))
}

const ENRICH: &str = r#"
id: enrich
state_schema: { user: str, profile: dict, tier: str, n: int }
nodes:
  lookup:
    type: function
    function: profile
    input: { user: "{{ state.user }}" }
    output_key: profile
    next: classify
  classify:
    type: branch
    conditions:
      - when: "state.profile.orders >= 10"
        next: gold
    default: standard
  gold: { type: set, values: { tier: gold, n: "{{ state.profile.orders + 1 }}" } }
  standard: { type: set, values: { tier: standard, n: 0 } }
"#;

async fn profile(call: FunctionCall) -> Result<Value, FunctionError> {
    let user = call.input["user"].as_str().unwrap_or_default();
    Ok(json!({ "orders": user.len() * 2 }))
}

#[tokio::test]
async fn functions_branches_and_sets_run_to_completion_and_replay_exactly() {
    let rt = Runtime::builder().in_memory().function("profile", profile).open().await.unwrap();
    let wf = compile(ENRICH);
    let gold = rt.run(&wf, json!({"user": "margaret"})).await.unwrap();
    assert_eq!(gold.status, Status::Completed);
    assert_eq!(gold.state["tier"], "gold");
    assert_eq!(gold.state["n"], 17);
    let std = rt.run(&wf, json!({"user": "al"})).await.unwrap();
    assert_eq!(std.state["tier"], "standard");

    // Replaying the journal reproduces the live run's final state exactly.
    for o in [&gold, &std] {
        let events = rt.events(o.id).unwrap();
        let replayed = ExecutionState::replay(o.id, &wf, &events);
        assert_eq!(Value::Object((*replayed.state).clone()), o.state);
        let Some(Event::ExecutionCompleted { state }) = events.last().map(|r| &r.event) else { panic!("no end") };
        assert_eq!(state.value().unwrap(), o.state);
    }
    assert_eq!(rt.list(Some(Status::Completed)).unwrap().len(), 2);
}

async fn increment(call: FunctionCall) -> Result<Value, FunctionError> {
    Ok(json!(call.input["n"].as_i64().unwrap_or(0) + 1))
}

/// A host function that counts its calls in `calls`, panics with `message`
/// at call number `at` (from 0), and otherwise runs `f`.
fn panics_at<Fut>(
    calls: &Arc<AtomicUsize>,
    at: usize,
    message: &'static str,
    f: fn(FunctionCall) -> Fut,
) -> impl Fn(FunctionCall) -> futures::future::BoxFuture<'static, Result<Value, FunctionError>> + Send + Sync + 'static
where
    Fut: std::future::Future<Output = Result<Value, FunctionError>> + Send + 'static,
{
    let calls = calls.clone();
    move |call: FunctionCall| {
        let n = calls.fetch_add(1, Ordering::SeqCst);
        Box::pin(async move {
            if n == at {
                panic!("{message}");
            }
            f(call).await
        })
    }
}

#[tokio::test]
async fn a_function_that_panics_once_is_retried_and_the_execution_completes() {
    let calls = Arc::new(AtomicUsize::new(0));
    let rt = Runtime::builder()
        .in_memory()
        .function("profile", panics_at(&calls, 0, "first call explodes", profile))
        .open()
        .await
        .unwrap();
    let out = rt.run(&compile(ENRICH), json!({"user": "margaret"})).await.unwrap();
    assert_eq!(out.status, Status::Completed, "{out:?}");
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    let events = rt.events(out.id).unwrap();
    let failed: Vec<_> = events
        .iter()
        .filter_map(|r| match &r.event {
            Event::NodeFailed { class, message, retry, attempt, .. } => {
                Some((*class, message.clone(), retry.clone(), *attempt))
            }
            _ => None,
        })
        .collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].0, ErrorClass::Panic);
    assert!(failed[0].1.contains("first call explodes"), "{failed:?}");
    assert!(matches!(failed[0].2, RetryDecision::Retry { attempt: 2, .. }));
}

/// Three function nodes in a line: the second and third run on the
/// NodeActor the first one used (an execution hands a finished NodeActor
/// the next attempt). A panic there is still caught, retried and journaled.
#[tokio::test]
async fn a_panic_in_a_node_actor_that_ran_an_earlier_node_is_retried_too() {
    let calls = Arc::new(AtomicUsize::new(0));
    // The first node's call is 0; the second node's first call (1) panics.
    let rt = Runtime::builder()
        .in_memory()
        .function("count", panics_at(&calls, 1, "the second node explodes once", increment))
        .open()
        .await
        .unwrap();
    let wf = compile(
        r#"
id: three
state_schema: { n: int }
nodes:
  a: { type: function, function: count, input: { n: "{{ state.n }}" }, output_key: n, next: b }
  b: { type: function, function: count, input: { n: "{{ state.n }}" }, output_key: n, next: c }
  c: { type: function, function: count, input: { n: "{{ state.n }}" }, output_key: n }
"#,
    );
    // Bounded: a panic that went unheard would leave the run waiting.
    let out = tokio::time::timeout(Duration::from_secs(60), rt.run(&wf, json!({"n": 0}))).await.unwrap().unwrap();
    assert_eq!(out.status, Status::Completed, "{out:?}");
    assert_eq!(out.state["n"], 3, "{out:?}");
    assert_eq!(calls.load(Ordering::SeqCst), 4, "a, b (panics), b again, c");
    let failed: Vec<_> = rt
        .events(out.id)
        .unwrap()
        .into_iter()
        .filter_map(|r| match r.event {
            Event::NodeFailed { node, class, message, .. } => Some((node, class, message)),
            _ => None,
        })
        .collect();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!((failed[0].0.as_str(), failed[0].1), ("b", ErrorClass::Panic));
    assert!(failed[0].2.contains("the second node explodes once"), "{failed:?}");
    // The runtime goes on serving runs on fresh and reused NodeActors.
    for n in 0..3 {
        assert_eq!(rt.run(&wf, json!({"n": n})).await.unwrap().state["n"], n + 3);
    }
}

#[tokio::test]
async fn a_function_that_always_panics_fails_after_the_budget_and_others_keep_running() {
    let rt = Runtime::builder()
        .in_memory()
        .function("profile", |_call: FunctionCall| async move {
            if true {
                panic!("poison pill");
            }
            Ok(Value::Null)
        })
        .function("ok", |_call: FunctionCall| async move { Ok(json!({"orders": 1})) })
        .open()
        .await
        .unwrap();
    let bad = rt.submit(&compile(ENRICH), json!({"user": "x"})).await.unwrap();
    let good_wf = compile(&ENRICH.replace("function: profile", "function: ok").replace("id: enrich", "id: enrich-ok"));
    let good = rt.run(&good_wf, json!({"user": "y"})).await.unwrap();
    assert_eq!(good.status, Status::Completed);
    let out = rt.wait(bad).await.unwrap();
    assert_eq!(out.status, Status::Failed);
    let err = out.error.unwrap();
    assert!(err.contains("poison pill") && err.contains("restart budget"), "{err}");
    let panics = rt
        .events(bad)
        .unwrap()
        .iter()
        .filter(|r| matches!(r.event, Event::NodeFailed { class: ErrorClass::Panic, .. }))
        .count();
    assert_eq!(panics, 6, "5 restarts, then the 6th panic gives up");
    // The runtime still serves new work.
    assert_eq!(rt.run(&good_wf, json!({"user": "z"})).await.unwrap().status, Status::Completed);
}

#[tokio::test]
async fn a_node_interrupted_by_a_restart_runs_again_with_the_same_key_and_the_next_attempt() {
    let dir = tempfile::tempdir().unwrap();
    let wf = compile(ENRICH);
    let keys = Arc::new(std::sync::Mutex::new(Vec::new()));
    let id = {
        let k = keys.clone();
        let called = Arc::new(tokio::sync::Notify::new());
        let c = called.clone();
        let rt = Runtime::builder()
            .data_dir(dir.path())
            .function("profile", move |call: FunctionCall| {
                k.lock().unwrap().push((call.idempotency_key.clone(), call.attempt));
                c.notify_one();
                std::future::pending::<Result<Value, FunctionError>>()
            })
            .open()
            .await
            .unwrap();
        let id = rt.submit(&wf, json!({"user": "margaret"})).await.unwrap();
        tokio::time::timeout(Duration::from_secs(10), called.notified()).await.expect("the node ran");
        rt.shutdown().await;
        id
    };
    let k = keys.clone();
    let rt = Runtime::builder()
        .data_dir(dir.path())
        .function("profile", move |call: FunctionCall| {
            k.lock().unwrap().push((call.idempotency_key.clone(), call.attempt));
            profile(call)
        })
        .open()
        .await
        .unwrap();
    let out = rt.wait(id).await.unwrap();
    assert_eq!(out.status, Status::Completed);
    let keys = keys.lock().unwrap().clone();
    assert_eq!(keys, vec![(format!("{id}/lookup/1"), 1), (format!("{id}/lookup/1"), 2)]);
}

#[tokio::test]
async fn http_nodes_retry_server_errors_and_fail_fast_on_client_errors() {
    let server = support::Server::start().await;
    let rt = Runtime::builder().in_memory().open().await.unwrap();
    let wf = compile(
        r#"
id: web
state_schema: { base: str, out: dict, page: str }
nodes:
  call:
    type: http
    method: POST
    url: "{{ state.base }}/flaky/2"
    body: { hello: world }
    output_key: out
    retry: { max_attempts: 3, backoff: constant, delay_ms: 10 }
"#,
    );
    let out = rt.run(&wf, json!({"base": server.url})).await.unwrap();
    assert_eq!(out.status, Status::Completed, "{out:?}");
    assert_eq!(out.state["out"]["calls"], 3);
    let key = format!("{}/call/1", out.id);
    assert_eq!(server.seen.lock().unwrap().by_key[&key].len(), 3, "three attempts, one key");

    let wf404 = compile(
        r#"
id: web404
state_schema: { base: str, page: str }
nodes:
  call:
    type: http
    url: "{{ state.base }}/status/404"
    output_key: page
    retry: { max_attempts: 3, delay_ms: 10 }
"#,
    );
    let out = rt.run(&wf404, json!({"base": server.url})).await.unwrap();
    assert_eq!(out.status, Status::Failed);
    let err = out.error.unwrap();
    assert!(err.contains("client_error") && err.contains("404") && err.contains("`call`"), "{err}");
}

#[tokio::test]
async fn a_template_error_at_run_time_names_the_node_and_the_template() {
    let rt = Runtime::builder().in_memory().open().await.unwrap();
    let wf = compile(
        r#"
id: tpl
state_schema: { profile: dict, out: str }
nodes:
  render:
    type: set
    values: { out: "{{ state.profile.missing.deeper }}" }
"#,
    );
    let out = rt.run(&wf, json!({"profile": {}})).await.unwrap();
    assert_eq!(out.status, Status::Failed);
    let err = out.error.unwrap();
    assert!(err.contains("`render`") && err.contains("{{ state.profile.missing.deeper }}"), "{err}");
}

#[tokio::test]
async fn bad_input_is_refused_and_changes_nothing() {
    let rt = Runtime::builder().in_memory().function("profile", profile).open().await.unwrap();
    let wf = compile(ENRICH);
    let err = rt.submit(&wf, json!({"user": 42, "nope": 1})).await.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::InvalidInput(ref e) if e.len() == 2), "{text}");
    assert!(text.contains("`user`") && text.contains("`nope`"), "{text}");
    assert!(rt.submit(&wf, json!([1, 2])).await.is_err());
    assert!(rt.list(None).unwrap().is_empty());
    let unknown: jamjet::ExecutionId = "exec_01JM4X8NKWP2ZZ3Q6T1B2C3D4E".parse().unwrap();
    assert!(matches!(rt.wait(unknown).await, Err(Error::UnknownExecution(_))));
    assert!(matches!(rt.events(unknown), Err(Error::UnknownExecution(_))));
}

#[tokio::test]
async fn the_same_idempotency_key_twice_is_one_execution() {
    let rt = Runtime::builder().in_memory().function("profile", profile).open().await.unwrap();
    let wf = compile(ENRICH);
    let a = rt.submit_keyed(&wf, json!({"user": "a"}), Some("order-7")).await.unwrap();
    let b = rt.submit_keyed(&wf, json!({"user": "a"}), Some("order-7")).await.unwrap();
    assert_eq!(a, b);
    rt.wait(a).await.unwrap();
    assert_eq!(rt.list(None).unwrap().len(), 1);
}
