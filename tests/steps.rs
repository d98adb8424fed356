//! Durable pieces inside a host function's step (`call.steps.run`): a
//! retried step reads back the pieces that completed and runs only the
//! rest; a step that runs its pieces in another order fails as
//! `nondeterminism`, naming the step and the pieces.

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
