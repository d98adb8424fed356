//! The embedding API: open a runtime on a data dir, register functions,
//! submit workflows, await or poll results, list executions, read timelines.
//!
//! [`Runtime`] is a cheap handle (clone it freely). The [`Builder`] builds
//! and wires what the layers below share: the nodes' [`crate::nodes::Env`]
//! (templates, HTTP client, functions, ...) and the actors'
//! [`crate::actors::Shared`] (the journal, the clock, the timers, and the
//! `Env`). [`Error`] is the actors' own, re-exported.
//!
//! The handle's methods live beside what they do: `builder.rs` (building
//! and opening), `submit.rs` (submitting, registering workflows),
//! `settle.rs` (waiting, settling, families, outcomes, what waits),
//! `deliver.rs` (signals, events, approvals, cancelling), `read.rs`
//! (status, histories, listings), `lifecycle.rs` (resuming, timers,
//! shutdown) and `sessions.rs` (tasks that make one conversation);
//! `feed.rs` tells followers what became durable.

mod builder;
mod deliver;
mod feed;
mod fork;
mod inbox;
mod leases;
mod lifecycle;
pub mod otel;
mod read;
mod replay;
mod retention;
mod sessions;
mod settle;
mod submit;
pub mod typed;

use std::collections::VecDeque;
use std::future::Future;
use std::sync::{Arc, Mutex};

use serde::Serialize;
use serde_json::Value;
use tokio::sync::oneshot;

pub use crate::actors::Error;
use crate::actors::{Shared, SupervisorHandle};
use crate::id::ExecutionId;
use crate::ir::Workflow;
use crate::journal::{Status, Usage};

pub use crate::actors::NodeLatency;
pub use crate::actors::machine::ParentLink;
use crate::nodes::{FunctionCall, FunctionError};
pub use builder::{Builder, DEFAULT_CLAIM_CAPACITY};
pub use feed::{Delay, DelayKind, Feed, Observed};
pub use fork::ForkSpec;
pub use inbox::ANSWER_WITHIN;
pub use leases::Unclaimed;
pub use otel::{OtlpConfig, OtlpCounts};
pub use replay::{Divergence, ReplayReport};
pub use retention::{PRUNE_BATCH, PruneReport, Retention};
pub use sessions::{
    DEFAULT_SESSION_IDLE, DEFAULT_SESSION_WAIT, HISTORY_TURNS, SessionDetail, SessionInfo, SessionTask, TURN_CHARS,
};
pub use settle::terminal_event;
pub use submit::MAX_KEY_BYTES;

/// How an execution ended (or stands).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Outcome {
    pub id: ExecutionId,
    pub status: Status,
    /// The final state (for a failed execution: the state when it failed).
    pub state: Value,
    pub error: Option<String>,
    /// Tokens and cost over every model call so far, failed attempts included.
    pub usage: Usage,
}

impl Outcome {
    /// The outcome an execution's actor handed back at its end.
    pub(crate) fn ended(id: ExecutionId, end: crate::actors::Ended) -> Outcome {
        let state = Value::Object(Arc::unwrap_or_clone(end.state));
        Outcome { id, status: end.status, state, error: end.error, usage: end.usage }
    }
}

/// A decision for [`Runtime::approve`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The approval node; `None` takes the one the execution waits on.
    pub node: Option<String>,
    /// A pending tool call (`research.2`, as `Waiting::call` names it)
    /// instead of an approval node: each is decided on its own.
    pub call: Option<String>,
    pub approved: bool,
    pub by: String,
    pub comment: Option<String>,
}

/// What a parked execution waits for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Waiting {
    pub id: ExecutionId,
    pub workflow_id: String,
    pub node: String,
    pub kind: WaitKind,
    /// The event's correlation key.
    pub event: Option<String>,
    /// The approval's prompt.
    pub prompt: Option<String>,
    /// A tool call that waits for a decision (its id, what
    /// [`Decision::call`] names); one row per such call, its prompt the
    /// call's (the tool and its arguments).
    pub call: Option<String>,
    pub since_ms: u64,
    pub deadline_ms: Option<u64>,
    /// The parent, for a parallel branch or a sub-workflow.
    pub parent: Option<ExecutionId>,
}

pub use crate::actors::machine::WaitKind;

/// What [`Runtime::resume_all_reporting`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resumed {
    /// Rehydrated, or parked with a deadline that passed while down.
    pub resumed: Vec<ExecutionId>,
    /// Not resumed, and why (damaged, its workflow missing, its actor did not start).
    pub skipped: Vec<(ExecutionId, String)>,
}

/// Why an execution that no process carries would go on by itself (see
/// [`Runtime::unattended`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Unattended {
    /// It would go on now: it was running when its process stopped (a
    /// crash, Ctrl-C), or a deadline of it passed while none was up.
    Interrupted,
    /// It waits on the clock (a timer, a retry delay) that has not come yet.
    OnTheClock,
}

/// How many lately hashed workflows `submit` compares a submission with.
const HASHED_KEPT: usize = 16;

struct Inner {
    services: Arc<Shared>,
    /// Who follows which execution's history live.
    feed: Arc<Feed>,
    /// The last workflows `submit` hashed, with their content hashes (at
    /// most [`HASHED_KEPT`]): an equal one submitted again is not hashed again.
    hashed: Mutex<VecDeque<(Arc<Workflow>, String)>>,
    supervisor: SupervisorHandle,
    keyed: tokio::sync::Mutex<()>,
    closed: Mutex<Option<oneshot::Receiver<()>>>,
    /// The sessions' locks and times (shared with the expiry sweep, which
    /// holds no strong reference to the runtime).
    sessions: Arc<sessions::SessionTable>,
    /// Claiming from a shared store (see `leases.rs`).
    claiming: Arc<leases::Claiming>,
    /// The lease task (see `leases.rs`) and the inbox taker (`inbox.rs`),
    /// stopped by `shutdown` before the journal closes.
    lease_tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    /// Taking what is sent to the executions this process runs (see `inbox.rs`).
    taking: Arc<inbox::Taking>,
    /// How long a message sent to another process's execution waits to be taken.
    answer_within: std::time::Duration,
    /// The OpenTelemetry exporter, when traces are exported.
    otel: Option<Arc<otel::Exporter>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.supervisor.kill();
    }
}

/// A running JamJet runtime. Cheap to clone; the last clone dropped stops it.
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<Inner>,
}

impl Runtime {
    /// Register a function for `type: function` nodes.
    pub fn register_function<F, Fut>(&self, name: impl Into<String>, f: F)
    where
        F: Fn(FunctionCall) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Value, FunctionError>> + Send + 'static,
    {
        self.inner.services.env.functions.register(name, f);
    }

    /// The runtime's one function registry: what `type: function` nodes
    /// and agents' host tools call (an embedding host, such as the Python
    /// package, registers its functions here as it learns them).
    pub fn functions(&self) -> &crate::nodes::FunctionRegistry {
        &self.inner.services.env.functions
    }

    pub(crate) fn services(&self) -> &Shared {
        &self.inner.services
    }

    #[cfg(test)]
    pub(crate) fn supervisor(&self) -> &SupervisorHandle {
        &self.inner.supervisor
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use tokio::sync::watch;

    use std::time::Duration;

    use super::*;
    use crate::actors::{ExecutionHandle, RestartBudget};
    use crate::journal::{Event, Registration};

    const WF: &str = "id: p\nstate_schema: { out: int }\nnodes:\n  work:\n    type: function\n    function: work\n    output_key: out\n";

    #[tokio::test]
    async fn a_workflow_registered_under_an_earlier_hash_is_the_same_workflow() {
        let rt = Runtime::builder().in_memory().open().await.unwrap();
        let wf = crate::ir::compile_str(WF, "wf.yaml").unwrap();
        // As an earlier version stored it: the same IR under a hash over all of it.
        let old = Registration {
            workflow_id: wf.id.clone(),
            version: wf.version.clone(),
            hash: "0ld".into(),
            registered_ms: 1,
        };
        rt.services().journal.register(&old, &wf).await.unwrap();
        let again = rt.register(&wf, false).await.expect("no conflict");
        assert_eq!(again.hash, "0ld");
        let mut other = wf.clone();
        other.nodes.get_mut("work").unwrap().timeout_ms = Some(5);
        assert!(matches!(rt.register(&other, false).await, Err(Error::WorkflowConflict { .. })));
    }

    /// The execution's live actor. Called once its node is running: the
    /// supervisor registered the actor in the same message that spawned it,
    /// and answers this question after that message.
    async fn actor_of(rt: &Runtime, id: ExecutionId) -> ExecutionHandle {
        rt.supervisor()
            .actor(id)
            .await
            .expect("the supervisor answers")
            .unwrap_or_else(|| panic!("no live actor for {id}"))
    }

    /// A function that counts its calls and holds each until `release`
    /// says how many may finish.
    fn holding(calls: Arc<watch::Sender<u32>>, release: Arc<tokio::sync::Semaphore>) -> Builder {
        Runtime::builder().in_memory().function("work", move |call: FunctionCall| {
            let (calls, release) = (calls.clone(), release.clone());
            async move {
                calls.send_modify(|n| *n += 1);
                release.acquire().await.expect("semaphore open").forget();
                Ok(json!(call.attempt))
            }
        })
    }

    async fn wait_calls(calls: &watch::Sender<u32>, n: u32) {
        let mut rx = calls.subscribe();
        tokio::time::timeout(Duration::from_secs(10), rx.wait_for(|&c| c >= n))
            .await
            .expect("the function was called in time")
            .expect("the counter is alive");
    }

    #[tokio::test]
    async fn a_panicking_execution_actor_is_rehydrated_and_the_execution_completes() {
        let calls = Arc::new(watch::Sender::new(0u32));
        let release = Arc::new(tokio::sync::Semaphore::new(0));
        let rt = holding(calls.clone(), release.clone()).open().await.unwrap();
        let wf = crate::ir::compile_str(WF, "p.yaml").unwrap();
        let id = rt.submit(&wf, json!({})).await.unwrap();
        wait_calls(&calls, 1).await;
        let first = actor_of(&rt, id).await;
        first.panic("bug in the shell");
        // The rehydrated actor runs the interrupted node again as attempt 2.
        wait_calls(&calls, 2).await;
        let second = actor_of(&rt, id).await;
        assert_ne!(first.id(), second.id());
        release.add_permits(2);
        let out = rt.wait(id).await.unwrap();
        assert_eq!(out.status, Status::Completed);
        assert_eq!(out.state["out"], 2, "attempt 2 completed the node");
        let starts: Vec<u32> = rt
            .events(id)
            .unwrap()
            .iter()
            .filter_map(|r| match r.event {
                Event::NodeStarted { attempt, visit: 1, .. } => Some(attempt),
                _ => None,
            })
            .collect();
        assert_eq!(starts, vec![1, 2]);
    }

    #[tokio::test]
    async fn past_the_restart_budget_the_execution_fails_with_the_panic_text() {
        let calls = Arc::new(watch::Sender::new(0u32));
        let release = Arc::new(tokio::sync::Semaphore::new(0));
        let rt = holding(calls.clone(), release.clone())
            .restart_budget(RestartBudget { max_restarts: 2, window_ms: 60_000 })
            .open()
            .await
            .unwrap();
        let wf = crate::ir::compile_str(WF, "p.yaml").unwrap();
        let id = rt.submit(&wf, json!({})).await.unwrap();
        for n in 1..=3 {
            wait_calls(&calls, n).await;
            actor_of(&rt, id).await.panic(&format!("shell bug #{n}"));
        }
        let out = rt.wait(id).await.unwrap();
        assert_eq!(out.status, Status::Failed);
        let err = out.error.unwrap();
        assert!(err.contains("shell bug #3") && err.contains("restart budget 2"), "{err}");
        // The runtime keeps serving others.
        release.add_permits(1);
        let other = rt.run(&wf, json!({})).await.unwrap();
        assert_eq!(other.status, Status::Completed);
    }
}
