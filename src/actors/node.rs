//! NodeActor: runs attempts of nodes, one at a time, and reports each to
//! its execution.
//!
//! The first attempt runs in `post_start`, later ones as messages: an
//! execution keeps a NodeActor that finished its attempt and hands it the
//! next one, so a chain of steps does not pay for an actor's spawn, link
//! and exit at every step. A panic inside a node still reaches the
//! ExecutionActor (its supervisor) as `ActorFailed`, and cancelling a
//! running node is still killing its actor; an execution that ends or
//! hibernates takes its idle NodeActors with it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef};
use serde_json::{Map, Value};

use super::Shared;
use super::handles::ExecutionHandle;
use crate::id::ExecutionId;
use crate::ir::Workflow;
use futures::future::BoxFuture;

use crate::eval::ToolUse;
use crate::journal::{self, ErrorClass, Record, Usage};
use crate::nodes::{CallJournal, CallRecord, Handles, NodeCtx, NodeError, executor_for, idempotency_key};

pub(crate) struct NodeActor;

pub(crate) struct NodeArgs {
    pub execution_id: ExecutionId,
    pub workflow: Arc<Workflow>,
    pub node: String,
    pub visit: u32,
    pub attempt: u32,
    pub state: Arc<Map<String, Value>>,
    pub vars: Arc<Map<String, Value>>,
    pub services: Arc<Shared>,
    pub parent: ExecutionHandle,
    pub usage: Usage,
    pub started_ms: u64,
    /// An agent node's remote task and pending answer.
    pub agent: Option<crate::nodes::AgentRound>,
    /// The calls the visit journaled before this attempt.
    pub calls: Option<Vec<CallRecord>>,
    /// The visit's tool calls that needed a decision, with the decisions.
    pub approvals: Vec<crate::nodes::CallApproval>,
    /// The execution's tool calls so far, for an eval node that scores
    /// them (empty for any other node).
    pub tool_calls: Vec<ToolUse>,
    /// The session's conversation so far (empty outside a session).
    pub history: Arc<Vec<crate::nodes::PastTurn>>,
    /// The visit's span, when traces are exported: its outbound calls carry it.
    pub trace: Option<crate::nodes::trace::TraceContext>,
    /// The attempt was running when its execution was last stopped.
    pub resumed: bool,
    /// In a branch or sub-workflow: its root and where it is.
    pub inside: Option<(crate::id::ExecutionId, crate::nodes::stream::Inside)>,
}

/// How an attempt journals its calls: through its execution.
#[derive(Clone)]
struct Recorder {
    parent: ExecutionHandle,
    node: String,
    visit: u32,
    attempt: u32,
}

impl CallJournal for Recorder {
    fn record(&self, call: CallRecord) -> BoxFuture<'_, Result<(), NodeError>> {
        Box::pin(async move {
            let n = call.n;
            self.parent.call_done(&self.node, self.visit, self.attempt, to_journal(call)).await.map_err(|why| {
                NodeError::new(
                    ErrorClass::Internal,
                    format!("call {n} of node `{}` was not journaled: {why}", self.node),
                )
            })
        })
    }

    fn owned(&self) -> Arc<dyn CallJournal> {
        Arc::new(self.clone())
    }
}

impl Actor for NodeActor {
    /// The next attempt to run.
    type Msg = NodeArgs;
    type State = Option<NodeArgs>;
    type Arguments = NodeArgs;

    async fn pre_start(&self, _myself: ActorRef<NodeArgs>, args: NodeArgs) -> Result<Self::State, ActorProcessingErr> {
        Ok(Some(args))
    }

    async fn post_start(&self, myself: ActorRef<NodeArgs>, state: &mut Self::State) -> Result<(), ActorProcessingErr> {
        match state.take() {
            Some(a) => run(myself.get_id(), a).await,
            None => Ok(()),
        }
    }

    async fn handle(
        &self,
        myself: ActorRef<NodeArgs>,
        next: NodeArgs,
        _state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        run(myself.get_id(), next).await
    }
}

/// A journaled call as a node reads it back.
pub(crate) fn to_node(c: &journal::CallRecord) -> CallRecord {
    CallRecord {
        n: c.n,
        kind: c.kind.clone(),
        name: c.name.clone(),
        request: c.request.clone(),
        response: c.response.clone(),
        usage: c.usage,
    }
}

/// The tool calls of an execution's history, in journal order.
pub(crate) fn tool_calls(history: &[Record]) -> Vec<ToolUse> {
    history
        .iter()
        .filter_map(|r| r.event.tool_call())
        .map(|(name, arguments)| ToolUse { name: name.to_string(), arguments })
        .collect()
}

/// A node's completed call as the journal stores it.
fn to_journal(c: CallRecord) -> journal::CallRecord {
    let CallRecord { n, kind, name, request, response, usage } = c;
    journal::CallRecord { n, kind, name, request, response, usage }
}

/// Run one attempt and report it to the execution, as actor `me`.
async fn run(me: ActorId, a: NodeArgs) -> Result<(), ActorProcessingErr> {
    let node = a.workflow.node(&a.node).ok_or_else(|| format!("node `{}` is not in the workflow", a.node))?;
    let recorder = Recorder { parent: a.parent.clone(), node: a.node.clone(), visit: a.visit, attempt: a.attempt };
    let ctx = NodeCtx {
        execution_id: a.execution_id,
        node,
        visit: a.visit,
        attempt: a.attempt,
        idempotency_key: idempotency_key(a.execution_id, &a.node, a.visit),
        state: &a.state,
        vars: &a.vars,
        services: &a.services.env,
        usage: a.usage,
        started_ms: a.started_ms,
        workflow: &a.workflow,
        agent: a.agent.as_ref(),
        calls: a.calls.as_deref().unwrap_or_default(),
        call_journal: Some(&recorder),
        approvals: &a.approvals,
        tool_calls: &a.tool_calls,
        handles: Some(Handles {
            env: &a.services.env,
            workflow: &a.workflow,
            state: &a.state,
            vars: &a.vars,
            history: &a.history,
        }),
        history: &a.history,
        resumed: a.resumed,
        inside: a.inside.clone(),
    };
    let began = Instant::now();
    let fut = executor_for(&node.kind).run(ctx);
    let fut: futures::future::BoxFuture<'_, _> = match a.trace {
        Some(trace) => Box::pin(crate::nodes::trace::CURRENT.scope(trace, fut)),
        None => fut,
    };
    let result = match node.timeout_ms {
        Some(ms) => match tokio::time::timeout(Duration::from_millis(ms), fut).await {
            Ok(r) => r,
            Err(_) => Err(NodeError::new(ErrorClass::Timeout, format!("no result within timeout_ms {ms}"))),
        },
        None => fut.await,
    };
    let duration_us = began.elapsed().as_micros() as u64;
    // Let go of the state before reporting: the execution patches it
    // next, in place when no one else holds it.
    drop(a.state);
    a.parent.node_done(me, a.node, a.visit, a.attempt, result, duration_us);
    Ok(())
}
