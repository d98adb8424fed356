//! Durable pieces inside a host function's step (`call.steps.run`), and
//! model calls (`call.steps.model`): a retried step reads back the pieces that completed and runs only the
//! rest; a step that runs its pieces in another order fails as
//! `nondeterminism`, naming the step and the pieces.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use jamjet::journal::{ErrorClass, Event, Status};
use jamjet::nodes::{FunctionCall, FunctionError};
use jamjet::{Runtime, compile_str};
use serde_json::{Value, json};

const LIMIT: Duration = Duration::from_secs(30);

const FLOW: &str = "id: pay\nstate_schema: { order: str, receipt: any }\nnodes:\n  pay:\n    type: function\n    function: pay\n    output_key: receipt\n    retry: { max_attempts: 3, backoff: constant, delay_ms: 1, retry_on: [function] }\n";

/// How often each piece really ran.
#[derive(Default)]
struct Ran {
    reserve: AtomicU32,
    charge: AtomicU32,
    attempts: AtomicU32,
}

#[tokio::test]
async fn a_retried_step_reads_back_its_completed_pieces_and_runs_only_the_rest() {
    let ran = Arc::new(Ran::default());
    let r = ran.clone();
    let pay = move |call: FunctionCall| {
        let ran = r.clone();
        async move {
            let attempt = ran.attempts.fetch_add(1, Ordering::SeqCst) + 1;
            let hold = call
                .steps
                .run("reserve", async {
                    ran.reserve.fetch_add(1, Ordering::SeqCst);
                    Ok::<_, String>(json!({"hold": "h-1"}))
                })
                .await?;
            let charge: String = call
                .steps
                .run("charge", async {
                    ran.charge.fetch_add(1, Ordering::SeqCst);
                    Ok::<_, String>(format!("ch-{attempt}"))
                })
                .await?;
            // The first attempt fails after both pieces completed.
            if attempt == 1 {
                return Err(FunctionError::new("the receipt printer jammed"));
            }
            Ok::<Value, FunctionError>(json!({"hold": hold["hold"], "charge": charge, "attempt": attempt}))
        }
    };
    let rt = Runtime::builder().in_memory().function("pay", pay).open().await.unwrap();
    let wf = compile_str(FLOW, "pay.yaml").unwrap();
    let out = tokio::time::timeout(LIMIT, rt.run(&wf, json!({"order": "o-1"}))).await.unwrap().unwrap();
    assert_eq!(out.status, Status::Completed, "{:?}", out.error);
    // The charge made by attempt 1 is the one attempt 2 reports: it was read back.
    assert_eq!(out.state["receipt"], json!({"hold": "h-1", "charge": "ch-1", "attempt": 2}));
    assert_eq!((ran.reserve.load(Ordering::SeqCst), ran.charge.load(Ordering::SeqCst)), (1, 1));
    let pieces: Vec<(u32, String, String)> = rt
        .events(out.id)
        .unwrap()
        .into_iter()
        .filter_map(|r| match r.event {
            Event::Call { call, attempt, .. } => Some((attempt, call.kind, call.name)),
            _ => None,
        })
        .collect();
    assert_eq!(pieces, [(1, "run".into(), "reserve".into()), (1, "run".into(), "charge".into())]);
    rt.shutdown().await;
}

#[tokio::test]
async fn a_step_that_runs_its_pieces_in_another_order_fails_as_nondeterminism() {
    let attempts = Arc::new(AtomicU32::new(0));
    let a = attempts.clone();
    let pay = move |call: FunctionCall| {
        let attempt = a.fetch_add(1, Ordering::SeqCst) + 1;
        async move {
            let first = if attempt == 1 { "reserve" } else { "charge" };
            call.steps.run(first, async { Ok::<_, String>(1) }).await?;
            Err::<Value, _>(FunctionError::new("try again"))
        }
    };
    let rt = Runtime::builder().in_memory().function("pay", pay).open().await.unwrap();
    let wf = compile_str(FLOW, "pay.yaml").unwrap();
    let out = tokio::time::timeout(LIMIT, rt.run(&wf, json!({"order": "o-2"}))).await.unwrap().unwrap();
    assert_eq!(out.status, Status::Failed);
    let failures: Vec<(ErrorClass, String)> = rt
        .events(out.id)
        .unwrap()
        .into_iter()
        .filter_map(|r| match r.event {
            Event::NodeFailed { class, message, .. } => Some((class, message)),
            _ => None,
        })
        .collect();
    assert_eq!(failures.len(), 2, "nondeterminism is not retried: {failures:?}");
    assert_eq!(failures[1].0, ErrorClass::Nondeterminism);
    assert!(
        failures[1].1.contains("step `pay` (visit 1) ran piece 1 as `charge`, but the journal recorded `reserve`"),
        "{}",
        failures[1].1
    );
    rt.shutdown().await;
}

/// A step asking a model (`call.steps.model`) after a piece: the call is
/// journaled with its usage (the execution's usage counts it), keyed by
/// its number in the step, and a retried step reads it back instead of
/// sending it again.
#[tokio::test]
async fn a_model_call_in_a_step_is_journaled_and_read_back_on_a_retry() {
    use jamjet::model::{ChatMessage, ChatRequest, ModelConfig};
    let server = support::model_server::ModelServer::start().await;
    let mut config = ModelConfig::from_model_id("gpt-4o-mini").unwrap();
    config.base_url = server.openai_base();
    config.api_key_env = None;
    let attempts = Arc::new(AtomicU32::new(0));
    let a = attempts.clone();
    let summarize = move |call: FunctionCall| {
        let (attempts, config) = (a.clone(), config.clone());
        async move {
            let attempt = attempts.fetch_add(1, Ordering::SeqCst) + 1;
            let topic: String = call.steps.run("topic", async { Ok::<_, String>("agents".to_string()) }).await?;
            let request = ChatRequest {
                system: Some("Be brief.".into()),
                messages: vec![ChatMessage::user(format!("Summarize {topic}"))],
                ..Default::default()
            };
            let reply = call.steps.model("fast", &config, request).await?;
            if attempt == 1 {
                return Err(FunctionError::new("the printer jammed"));
            }
            Ok::<Value, FunctionError>(json!({"text": reply.text, "tokens": reply.usage.output_tokens}))
        }
    };
    let rt = Runtime::builder().in_memory().function("pay", summarize).open().await.unwrap();
    let wf = compile_str(FLOW, "pay.yaml").unwrap();
    let out = tokio::time::timeout(LIMIT, rt.run(&wf, json!({"order": "o-3"}))).await.unwrap().unwrap();
    assert_eq!(out.status, Status::Completed, "{:?}", out.error);
    assert_eq!(out.state["receipt"], json!({"text": "echo: Summarize agents", "tokens": 3}));
    assert_eq!(attempts.load(Ordering::SeqCst), 2);
    let requests = server.requests();
    assert_eq!(requests.len(), 1, "the retry read the reply back");
    // Call 2 of visit 1 (the piece was call 1).
    assert_eq!(requests[0].idempotency_key(), Some(format!("{}/pay/1/call/2", out.id).as_str()));
    assert_eq!(requests[0].body["messages"][0]["content"], "Be brief.");
    assert_eq!(out.usage.output_tokens, 3, "the call's usage counts in the execution's");
    let calls: Vec<(String, String)> = rt
        .events(out.id)
        .unwrap()
        .into_iter()
        .filter_map(|r| match r.event {
            Event::Call { call, .. } => Some((call.kind, call.name)),
            _ => None,
        })
        .collect();
    assert_eq!(calls, [("run".into(), "topic".into()), ("model".into(), "fast".into())]);
    rt.shutdown().await;
}

/// Outside a journaled step (a direct call) a model call is refused, clearly.
#[tokio::test]
async fn a_model_call_outside_a_step_is_refused() {
    use jamjet::model::{ChatRequest, ModelConfig};
    let config = ModelConfig::from_model_id("gpt-4o-mini").unwrap();
    let steps = jamjet::nodes::Steps::detached();
    let err = steps.model("gpt-4o-mini", &config, ChatRequest::default()).await.unwrap_err();
    assert_eq!(err.class, ErrorClass::ClientError);
    assert!(err.message.contains("inside a step"), "{}", err.message);
}
