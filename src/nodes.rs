//! Node kinds: what each `type:` does when it runs.
//!
//! Every kind implements [`NodeExecutor`] in a file of its own; the actors
//! only ever see the trait, so a new kind (model, tool, parallel, wait,
//! eval, agent) is a new file plus one arm in [`executor_for`], and the
//! actors do not change. A node never touches the journal: it gets a
//! read-only view of the state and returns a patch, or a classified error.

pub(crate) mod agent;
pub mod approvals;
mod branch;
pub mod calls;
mod compiled;
pub(crate) mod control;
mod converse;
mod end;
mod env;
mod eval;
mod function;
mod http;
mod http_exchange;
mod model;
mod set;
mod steps;
pub mod stream;
mod tool;
pub mod trace;
mod transport;

use futures::future::BoxFuture;
use serde_json::{Map, Value};

use crate::id::ExecutionId;
use crate::ir::{Node, NodeKind, TemplateError, Workflow};
use crate::journal::{ErrorClass, Usage};

pub use agent::round::AgentRound;
pub use approvals::{CallApproval, CallDecision};
pub use calls::{CallJournal, CallRecord, Calls};
pub use compiled::Compiled;
pub use env::Env;
pub use function::{FunctionCall, FunctionError, FunctionRegistry, ToolSchema};
pub use steps::{AgentRun, StepAgent, Steps};
pub(crate) use transport::{BodyError, classify_send, read_body, retry_after, status_class};

/// The idempotency key of one node visit: `{execution_id}/{node_id}/{visit}`,
/// the same for every attempt and after a crash.
pub fn idempotency_key(execution_id: ExecutionId, node: &str, visit: u32) -> String {
    use std::fmt::Write;
    // Sized once (an id is 31 characters, a visit at most 10): no regrowth.
    let mut key = String::with_capacity(44 + node.len());
    let _ = write!(key, "{execution_id}/{node}/{visit}");
    key
}

/// What a node sees while it runs.
pub struct NodeCtx<'a> {
    pub execution_id: ExecutionId,
    pub node: &'a Node,
    pub visit: u32,
    pub attempt: u32,
    /// `{execution_id}/{node_id}/{visit}`: stable across retries and crashes.
    pub idempotency_key: String,
    pub state: &'a Map<String, Value>,
    /// Template variables beside `state` (`item` and `index` in a for_each branch).
    pub vars: &'a Map<String, Value>,
    /// What the runtime lends every node: templates, HTTP, functions, ...
    pub services: &'a Env,
    /// Tokens and cost the execution has used so far (before this attempt).
    pub usage: Usage,
    /// When the execution started (unix ms), for latency budgets.
    pub started_ms: u64,
    /// The workflow the node belongs to (its `mcp:` servers, say).
    pub workflow: &'a Workflow,
    /// An agent node's remote task and pending answer, from the journal.
    pub agent: Option<&'a AgentRound>,
    /// The calls this visit journaled before this attempt, in order
    /// (see [`calls`]).
    pub calls: &'a [CallRecord],
    /// Where the attempt journals the calls it completes; `None` where
    /// nothing is journaled (a node run inside the execution's step).
    pub call_journal: Option<&'a dyn CallJournal>,
    /// The tool calls of this visit that needed a person's decision, with
    /// the decisions made (see [`approvals`]).
    pub approvals: &'a [CallApproval],
    /// The tool calls the execution made before this node, in journal
    /// order: read for an eval node with a `trajectory` scorer, empty
    /// for every other node.
    pub tool_calls: &'a [crate::eval::ToolUse],
    /// The shared handles of what the attempt borrows, for work that
    /// outlives the borrow (a host function's `steps.agent(..)`, which runs
    /// in a `'static` future); `None` inside the execution's step.
    pub handles: Option<Handles<'a>>,
    /// The conversation so far of the session the execution is a task of
    /// (oldest first; empty outside a session): local agents and model
    /// nodes send it ahead of their message.
    pub history: &'a [PastTurn],
    /// This attempt ran before, in a process that stopped before its end
    /// was journaled: what it streamed then is to be started over.
    pub resumed: bool,
    /// In a branch or sub-workflow: its root execution and where it is
    /// (streamed tokens go to the root's followers too).
    pub inside: Option<(ExecutionId, crate::nodes::stream::Inside)>,
}

/// What a node attempt borrows, as the shared handles it is held in.
#[derive(Clone, Copy)]
pub struct Handles<'a> {
    pub env: &'a std::sync::Arc<Env>,
    pub workflow: &'a std::sync::Arc<Workflow>,
    pub state: &'a std::sync::Arc<Map<String, Value>>,
    pub vars: &'a std::sync::Arc<Map<String, Value>>,
    pub history: &'a std::sync::Arc<Vec<PastTurn>>,
}

/// One earlier task of a session: what was asked and what it answered.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PastTurn {
    pub user: String,
    pub answer: String,
}

/// A session's earlier turns as chat messages (user, assistant, ...).
pub(crate) fn history_messages(history: &[PastTurn]) -> Vec<crate::model::ChatMessage> {
    let mut out = Vec::with_capacity(history.len() * 2);
    for t in history {
        out.push(crate::model::ChatMessage::user(t.user.clone()));
        out.push(crate::model::ChatMessage { role: "assistant".into(), content: t.answer.clone() });
    }
    out
}

impl NodeCtx<'_> {
    /// The template context: `state`, plus the branch's variables.
    pub fn template_context(&self) -> minijinja::Value {
        template_context(self.state, self.vars)
    }

    /// Where the node is written: `file:line:column`, or `line L, column C`
    /// for a workflow that was not read from a file.
    pub fn location(&self) -> String {
        let crate::ir::Span { line, column } = self.node.span;
        match &self.workflow.source_file {
            Some(file) => format!("{file}:{line}:{column}"),
            None => format!("line {line}, column {column}"),
        }
    }

    /// `text` with its `${VAR}` references read from the process
    /// environment ([`crate::ir::expand_env`]). An unset variable is a
    /// `client_error` (not retried by default) naming the variable, the
    /// `field` and the node with its location.
    pub fn env(&self, text: &str, field: &str) -> Result<String, NodeError> {
        crate::ir::expand_process_env(text).map_err(|e| self.env_error(field, e))
    }

    /// [`NodeCtx::env`] for a template's text, before it renders: a value
    /// holding `{` is inserted as raw text, so the template engine never
    /// reads the environment's values as template syntax.
    pub fn env_template(&self, text: &str, field: &str) -> Result<String, NodeError> {
        crate::ir::expand_env(text, |name| {
            let value = std::env::var(name).ok()?;
            Some(if value.contains('{') { format!("{{% raw %}}{value}{{% endraw %}}") } else { value })
        })
        .map_err(|e| self.env_error(field, e))
    }

    fn env_error(&self, field: &str, e: crate::ir::EnvRefError) -> NodeError {
        let message = format!("{field} of node `{}` ({}): {e}", self.node.id, self.location());
        NodeError::new(ErrorClass::ClientError, message)
    }
}

/// The template context of a state and its execution's variables.
pub fn template_context(state: &Map<String, Value>, vars: &Map<String, Value>) -> minijinja::Value {
    let state = minijinja::Value::from(minijinja::value::Serde(state));
    if vars.is_empty() {
        minijinja::context! { state => state }
    } else {
        minijinja::context! { state => state, ..minijinja::Value::from(minijinja::value::Serde(vars)) }
    }
}

/// What a node produced.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NodeOutput {
    /// State keys to set.
    pub patch: Map<String, Value>,
    /// The successor the node chose; `None` follows the node's `next`.
    pub next: Option<String>,
    /// What the node sent and received, journaled as an `Exchange` event.
    pub exchange: Option<Box<Exchange>>,
    /// An eval node's scores, journaled as a `Scored` event.
    pub scores: Option<Box<Scores>>,
    /// The node parks the execution instead of completing (an agent whose
    /// remote task asks for input): journaled as `Waiting`.
    pub park: Option<Park>,
    /// Tool calls that wait for a person's decision: the attempt ends
    /// before any call of their turn runs, and the execution parks until
    /// each is decided (journaled as `CallsPending`; see [`approvals`]).
    pub pending: Vec<approvals::PendingCall>,
}

/// What a node that parks its execution waits for: a signal with key `event`.
#[derive(Debug, Clone, PartialEq)]
pub struct Park {
    pub event: String,
    /// What the execution is asked (the remote's question).
    pub prompt: Option<String>,
}

/// What one attempt sent and got back: a model call's request and reply,
/// a tool call's arguments and result. Never holds a secret.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Exchange {
    pub request: Value,
    pub response: Value,
    /// Tokens and cost of this attempt.
    pub usage: Usage,
}

/// An eval node's verdict: `scores` is a JSON array of
/// `{scorer, passed, score, reason}`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scores {
    pub scores: Value,
    pub passed: bool,
}

/// Why a node failed, classified for the retry policy.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{class}: {message}")]
pub struct NodeError {
    pub class: ErrorClass,
    pub message: String,
    /// A server's `Retry-After`, honoured by the retry delay.
    pub retry_after_ms: Option<u64>,
    /// What the failed attempt sent and received, if it got that far (a
    /// model's reply that did not fit its `output_schema`, say).
    pub exchange: Option<Box<Exchange>>,
    /// An eval node's scores when they failed it.
    pub scores: Option<Box<Scores>>,
}

impl NodeError {
    pub fn new(class: ErrorClass, message: impl Into<String>) -> Self {
        NodeError { class, message: message.into(), retry_after_ms: None, exchange: None, scores: None }
    }

    /// Attach what the attempt sent and received.
    pub fn with_exchange(mut self, exchange: Exchange) -> Self {
        self.exchange = Some(Box::new(exchange));
        self
    }
}

impl From<TemplateError> for NodeError {
    /// A template that crossed a limit (its length, terms, fuel or output)
    /// fails its node as `limit_exceeded`; any other as `template`.
    fn from(e: TemplateError) -> Self {
        let class = if e.limit.is_some() { ErrorClass::LimitExceeded } else { ErrorClass::Template };
        NodeError::new(class, e.to_string())
    }
}

/// The behaviour of one node kind.
pub trait NodeExecutor: Send + Sync + 'static {
    fn run<'a>(&'a self, ctx: NodeCtx<'a>) -> BoxFuture<'a, Result<NodeOutput, NodeError>>;

    /// A pure kind does no IO and never waits: its future is ready at the
    /// first poll, its result depends only on the state. The execution runs
    /// it inside its own step (no NodeActor), and its events join the
    /// step's batch: a chain of pure nodes costs one journal sync. Kinds
    /// with side effects must leave this `false`, so that their
    /// `NodeStarted` is durable before they run.
    fn is_pure(&self) -> bool {
        false
    }
}

/// The executor for a node's kind.
pub fn executor_for(kind: &NodeKind) -> &'static dyn NodeExecutor {
    match kind {
        NodeKind::Http(_) => &http::Http,
        NodeKind::Branch(_) => &branch::Branch,
        NodeKind::Set(_) => &set::Set,
        NodeKind::End => &end::End,
        NodeKind::Function(_) => &function::Function,
        NodeKind::Model(_) => &model::Model,
        NodeKind::Tool(_) => &tool::Tool,
        NodeKind::Eval(_) => &eval::Eval,
        NodeKind::Agent(_) => &agent::Agent,
        NodeKind::Parallel(_) | NodeKind::Wait(_) | NodeKind::Approval(_) | NodeKind::Workflow(_) => &Control,
    }
}

/// Parallel, wait, approval and sub-workflow nodes are carried out by the
/// execution itself (they start children or park it), not run as a step.
struct Control;

impl NodeExecutor for Control {
    fn run<'a>(&'a self, ctx: NodeCtx<'a>) -> BoxFuture<'a, Result<NodeOutput, NodeError>> {
        let kind = ctx.node.kind.type_name();
        Box::pin(std::future::ready(Err(NodeError::new(
            ErrorClass::Internal,
            format!("a {kind} node is carried out by its execution, not run as a step"),
        ))))
    }
}

/// Put a node's result into a patch: under `output_key`, or merged key by
/// key when the result is an object and there is no key.
pub(crate) fn output_patch(output_key: Option<&str>, value: Value) -> Result<Map<String, Value>, NodeError> {
    match (output_key, value) {
        (Some(k), v) => Ok(Map::from_iter([(k.to_string(), v)])),
        (None, Value::Object(m)) => Ok(m),
        (None, Value::Null) => Ok(Map::new()),
        (None, other) => Err(NodeError::new(
            ErrorClass::InvalidOutput,
            format!("the result is {} but the node has no output_key to put it under", crate::ir::json_kind(&other)),
        )),
    }
}
