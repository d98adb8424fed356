//! Durable pieces of work inside a host function's step:
//! `call.steps.run("charge", charge_card(...))`.
//!
//! A `function` node's host function gets [`Steps`] in its
//! [`FunctionCall`](super::FunctionCall). Each piece it runs through
//! [`Steps::run`] is journaled (a `Call` of kind `run`, its result as
//! JSON) when it completes, before the function goes on; when the step is
//! retried, or resumed after a crash, a completed piece returns its
//! journaled result instead of running again, and the first piece not
//! journaled runs. Pieces are numbered in the order they are started and
//! run one at a time (a piece started while another runs waits for it),
//! so their order is the step's own. A step that asks for another piece
//! where the journal recorded one (another name) fails as
//! `nondeterminism`, naming the step and both pieces. A piece that fails
//! is not journaled: it runs again on the next attempt, and the next piece
//! takes its number (the numbers are those of the journal's calls).
//!
//! [`Steps::agent`] runs a local agent of the workflow inside the step
//! (`call.steps.agent("researcher").run("Research: ...")`): its model and
//! tool calls are journaled as an `agent` node journals them, numbered in
//! the same sequence as the pieces, so pieces and agent calls interleave
//! in one order and a retried or resumed step reads both back. An agent
//! asked for where the journal recorded a piece (or a piece where it
//! recorded an agent's call) is `nondeterminism` too. The agent's model,
//! MCP servers and tool functions are the workflow's and the runtime's,
//! as for an `agent` node; its budgets count what the step's earlier
//! agent calls spent.
//!
//! [`Steps::model`] asks a model inside the step, the call journaled and
//! numbered the same way (what the Python decorator API's `self.model`
//! runs on).
//!
//! Outside a journaled step (a function an agent calls as a tool, a test
//! calling the function directly) the pieces simply run, and an agent
//! does not run (there is no workflow to find it in).

use std::fmt::Display;
use std::future::Future;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

use futures::future::BoxFuture;
use serde_json::{Map, Value};

use super::calls::{CallJournal, CallRecord, Calls};
use super::{Env, FunctionError, NodeCtx, NodeError};
use crate::id::ExecutionId;
use crate::ir::Workflow;
use crate::journal::{ErrorClass, Json, Usage};

/// The durable pieces of one step (see the module docs). Cheap to clone.
#[derive(Clone, Default)]
pub struct Steps {
    inner: Option<Arc<Inner>>,
}

struct Inner {
    node: String,
    visit: u32,
    /// The pieces the visit journaled before this attempt, in order.
    done: Vec<CallRecord>,
    journal: Arc<dyn CallJournal>,
    /// The number of the last piece started; held while a piece runs.
    last: tokio::sync::Mutex<u32>,
    /// What an agent run inside the step needs; `None` where the step's
    /// node has none to lend (it runs inside the execution's step).
    scope: Option<Scope>,
}

/// The node attempt an agent inside the step runs as.
struct Scope {
    env: Arc<Env>,
    workflow: Arc<Workflow>,
    state: Arc<Map<String, Value>>,
    vars: Arc<Map<String, Value>>,
    /// The session's conversation so far (empty outside a session).
    history: Arc<Vec<super::PastTurn>>,
    execution_id: ExecutionId,
    attempt: u32,
    usage: Usage,
    started_ms: u64,
}

impl std::fmt::Debug for Steps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.inner {
            Some(i) => write!(f, "Steps(node `{}` visit {}, {} journaled)", i.node, i.visit, i.done.len()),
            None => f.write_str("Steps(not journaled)"),
        }
    }
}

impl Steps {
    /// Pieces that are not journaled: they simply run.
    pub fn detached() -> Steps {
        Steps { inner: None }
    }

    /// The pieces of the node visit `ctx` runs: journaled through its
    /// execution, those it journaled before read back.
    pub(crate) fn of(ctx: &NodeCtx<'_>) -> Steps {
        let Some(journal) = ctx.call_journal else { return Steps::detached() };
        Steps {
            inner: Some(Arc::new(Inner {
                node: ctx.node.id.clone(),
                visit: ctx.visit,
                done: ctx.calls.to_vec(),
                journal: journal.owned(),
                last: tokio::sync::Mutex::new(0),
                scope: ctx.handles.map(|h| Scope {
                    env: h.env.clone(),
                    workflow: h.workflow.clone(),
                    state: h.state.clone(),
                    vars: h.vars.clone(),
                    history: h.history.clone(),
                    execution_id: ctx.execution_id,
                    attempt: ctx.attempt,
                    usage: ctx.usage,
                    started_ms: ctx.started_ms,
                }),
            })),
        }
    }

    /// Run the piece `name` (or read back its journaled result). Its result
    /// is journaled as JSON once it completes; an error is not journaled.
    pub async fn run<T, E, F>(&self, name: &str, work: F) -> Result<T, FunctionError>
    where
        T: Serialize + DeserializeOwned,
        E: Display,
        F: Future<Output = Result<T, E>>,
    {
        let failed = |e: E| FunctionError::new(format!("piece `{name}`: {e}"));
        let Some(inner) = &self.inner else { return work.await.map_err(failed) };
        let mut last = inner.last.lock().await;
        *last += 1;
        let n = *last;
        if let Some(rec) = inner.done.get(n as usize - 1) {
            return read_back(inner, rec, n, name);
        }
        let done = async {
            let value = work.await.map_err(failed)?;
            let json = serde_json::to_value(&value).map_err(|e| {
                FunctionError::new(format!("piece `{name}`: its result does not serialize to JSON ({e})"))
            })?;
            let record = CallRecord {
                n,
                kind: "run".into(),
                name: name.to_string(),
                request: Json("null".into()),
                response: Json::from_value(&json),
                usage: Usage::default(),
            };
            inner.journal.record(record).await.map_err(|e| FunctionError::with_class(e.class, e.message))?;
            Ok(value)
        };
        let result = done.await;
        if result.is_err() {
            // Not journaled: the next piece takes its number.
            *last = n - 1;
        }
        result
    }
}

/// A local agent to run inside a step: [`Steps::agent`].
pub struct StepAgent<'s> {
    steps: &'s Steps,
    name: String,
}

/// What an agent run inside a step answered, and what it cost.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentRun {
    /// The answer's text (with `output_schema`: the validated JSON, as text).
    pub output: String,
    /// The answer: a string, or with `output_schema` the validated JSON.
    pub value: Value,
    /// Tokens and cost of this run's calls (read back ones included).
    pub usage: Usage,
    /// This run's calls as the journal holds them, in their order (read
    /// back ones included): its model calls, tool calls and strategy
    /// steps, each with what was sent and what came back.
    pub calls: Vec<CallRecord>,
}

impl Steps {
    /// The local agent `name` of the workflow (an entry of `agents:`), to
    /// run inside this step with [`StepAgent::run`].
    pub fn agent(&self, name: impl Into<String>) -> StepAgent<'_> {
        StepAgent { steps: self, name: name.into() }
    }
}

impl StepAgent<'_> {
    /// Run the agent on `message` (its first user message): every model
    /// and tool call is journaled in the step's sequence as it completes,
    /// and read back when the step runs again. An agent's failure is its
    /// class (`budget_exceeded`, `invalid_output`, `nondeterminism`, ...)
    /// with a message naming the agent.
    pub async fn run(self, message: impl Into<String>) -> Result<AgentRun, FunctionError> {
        let name = self.name.as_str();
        let (inner, scope) = match &self.steps.inner {
            Some(inner) => match &inner.scope {
                Some(scope) => (inner, scope),
                None => return Err(not_in_a_step(name)),
            },
            None => return Err(not_in_a_step(name)),
        };
        let node = scope.workflow.node(&inner.node).ok_or_else(|| {
            FunctionError::with_class(ErrorClass::Internal, format!("node `{}` is not in its workflow", inner.node))
        })?;
        let mut last = inner.last.lock().await;
        let kept = Keeping { journal: &*inner.journal, kept: std::sync::Mutex::new(Vec::new()) };
        let ctx = NodeCtx {
            execution_id: scope.execution_id,
            node,
            visit: inner.visit,
            attempt: scope.attempt,
            idempotency_key: super::idempotency_key(scope.execution_id, &inner.node, inner.visit),
            state: &scope.state,
            vars: &scope.vars,
            services: &scope.env,
            usage: scope.usage,
            started_ms: scope.started_ms,
            workflow: &scope.workflow,
            agent: None,
            calls: &inner.done,
            call_journal: Some(&kept),
            tool_calls: &[],
            approvals: &[],
            handles: None,
            // In a session, an agent a step runs is given the
            // conversation so far ahead of its message, as an agent node is.
            history: &scope.history,
            resumed: false,
            inside: None,
        };
        let mut calls = Calls::after(&ctx, *last);
        let first = *last;
        let before = calls.spent();
        let answer = super::agent::local::run_in_step(&ctx, &mut calls, name, message.into()).await;
        // Go on after the last call in the journal: one that failed is
        // not, and the numbers must stay those of the journal's calls.
        *last = calls.settled();
        // A step cannot park: tool calls needing a decision fail it, clearly.
        if calls.parked() {
            let ids: Vec<String> = calls.take_pending().into_iter().map(|p| p.id).collect();
            let message = format!(
                "step `{}`: agent `{name}` asked for tool calls that need a person's decision ({}), and a step \
                 cannot wait for one: run the agent as an `agent` node, or take the tools out of its `approval:`",
                inner.node,
                ids.join(", ")
            );
            return Err(FunctionError::with_class(ErrorClass::ClientError, message));
        }
        let value = answer.map_err(|e| {
            let message = format!("step `{}`: agent `{name}`: {}", inner.node, e.message);
            FunctionError::with_class(e.class, message)
        })?;
        let output = match &value {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let usage = super::converse::minus(calls.spent(), before);
        // Read back ones (numbered after the step's earlier work), then
        // those this attempt journaled.
        let mut records: Vec<CallRecord> = inner.done.iter().filter(|r| r.n > first).cloned().collect();
        records.extend(kept.kept.into_inner().unwrap_or_else(|e| e.into_inner()));
        records.sort_by_key(|r| r.n);
        records.dedup_by_key(|r| r.n);
        records.retain(|r| r.n <= *last);
        Ok(AgentRun { output, value, usage, calls: records })
    }
}

/// The step's journal, keeping a copy of each call journaled through it
/// (an agent run's, for [`AgentRun::calls`]).
struct Keeping<'j> {
    journal: &'j dyn CallJournal,
    kept: std::sync::Mutex<Vec<CallRecord>>,
}

impl CallJournal for Keeping<'_> {
    fn record(&self, call: CallRecord) -> BoxFuture<'_, Result<(), NodeError>> {
        Box::pin(async move {
            let copy = call.clone();
            self.journal.record(call).await?;
            self.kept.lock().unwrap_or_else(|e| e.into_inner()).push(copy);
            Ok(())
        })
    }

    fn owned(&self) -> Arc<dyn CallJournal> {
        self.journal.owned()
    }
}

impl Steps {
    /// Ask a model inside this step: `config` is the model (resolved by
    /// the caller), `name` what the step calls it (recorded in the
    /// journal). The call is journaled (a `Call` of kind `model`: the body
    /// sent, the reply as the provider sent it, its usage, which counts in
    /// the execution's) as soon as it completes, numbered in the step's
    /// sequence with its pieces and agent calls; when the step runs again
    /// (a retry, or after a crash) a journaled call is read back instead
    /// of sent again. A fresh call is sent with the key of its number, as
    /// a node's calls are (`{execution}/{node}/{visit}` for the first,
    /// `.../call/{n}` after). A failure is not journaled: it fails the
    /// step with the call's error class (retried per the node's policy).
    pub async fn model(
        &self,
        name: &str,
        config: &crate::model::ModelConfig,
        request: crate::model::ChatRequest,
    ) -> Result<crate::model::ChatReply, FunctionError> {
        let not_here = || {
            let message = format!(
                "model `{name}` is called durably inside a step of an execution (a `function` node run by the \
                 runtime), where its calls are journaled; this function was called outside one (as a tool, or \
                 directly)"
            );
            FunctionError::with_class(ErrorClass::ClientError, message)
        };
        let Some(inner) = &self.inner else { return Err(not_here()) };
        let Some(scope) = &inner.scope else { return Err(not_here()) };
        let mut last = inner.last.lock().await;
        let n = *last + 1;
        if let Some(rec) = inner.done.get(n as usize - 1) {
            if rec.kind != "model" || rec.name != name {
                let message = format!(
                    "step `{}` (visit {}) made call {n} to model `{name}`, but the journal recorded `{}` ({}) there: \
                     the step must make its calls in the same order on every attempt",
                    inner.node, inner.visit, rec.name, rec.kind
                );
                return Err(FunctionError::with_class(ErrorClass::Nondeterminism, message));
            }
            let unreadable = |what: &str, e: &dyn Display| {
                let message = format!(
                    "step `{}`: the journaled {what} of call {n} (model `{name}`) does not read back ({e})",
                    inner.node
                );
                FunctionError::with_class(ErrorClass::Nondeterminism, message)
            };
            let raw: Value = serde_json::from_str(&rec.response.0).map_err(|e| unreadable("reply", &e))?;
            let sent: Value = serde_json::from_str(&rec.request.0).map_err(|e| unreadable("request", &e))?;
            let reply =
                crate::model::journaled_reply(config, raw, sent, rec.usage).map_err(|e| unreadable("reply", &e))?;
            *last = n;
            return Ok(reply);
        }
        let visit_key = super::idempotency_key(scope.execution_id, &inner.node, inner.visit);
        let key = if n == 1 { visit_key } else { format!("{visit_key}/call/{n}") };
        let reply = crate::model::complete_with(&scope.env, config, &request, &key).await.map_err(|e| {
            FunctionError::with_class(e.class, format!("step `{}`: model `{name}`: {}", inner.node, e.message))
        })?;
        let record = CallRecord {
            n,
            kind: "model".into(),
            name: name.to_string(),
            request: Json::from_value(&reply.request),
            response: Json::from_value(&reply.raw),
            usage: reply.usage,
        };
        inner.journal.record(record).await.map_err(|e| FunctionError::with_class(e.class, e.message))?;
        *last = n;
        Ok(reply)
    }
}

fn not_in_a_step(name: &str) -> FunctionError {
    let message = format!(
        "agent `{name}` runs inside a step of an execution (a `function` node run by the runtime), where its calls \
         are journaled; this function was called outside one (as a tool, or directly)"
    );
    FunctionError::with_class(ErrorClass::ClientError, message)
}

/// A journaled piece's result, if it is the piece asked for.
fn read_back<T: DeserializeOwned>(inner: &Inner, rec: &CallRecord, n: u32, name: &str) -> Result<T, FunctionError> {
    if rec.kind != "run" || rec.name != name {
        let message = format!(
            "step `{}` (visit {}) ran piece {n} as `{name}`, but the journal recorded `{}` ({}) there: the step must \
             run its pieces in the same order on every attempt",
            inner.node, inner.visit, rec.name, rec.kind
        );
        return Err(FunctionError::with_class(ErrorClass::Nondeterminism, message));
    }
    serde_json::from_str(&rec.response.0).map_err(|e| {
        let message = format!("step `{}`: the journaled result of piece `{name}` does not read back ({e})", inner.node);
        FunctionError::with_class(ErrorClass::Nondeterminism, message)
    })
}
