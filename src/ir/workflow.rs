//! The workflow IR: what both YAML forms compile to and what the actors run.
//!
//! The IR is plain data (serde), so it can be stored in the journal beside
//! the executions that run it and hashed to a content id. It owns no
//! compiled templates: [`crate::ir::Templates`] compiles those once per
//! loaded workflow. It must not depend on the actors or the journal.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::agents::{AgentDef, Budget, Policy};
use super::mcp::{McpServer, ToolNode};
use super::schema::StateSchema;
use super::served::ServedAgent;

/// A compiled, validated workflow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Workflow {
    pub id: String,
    pub version: String,
    /// Typed state keys; input and every state patch are checked against it.
    pub state_schema: StateSchema,
    /// The node an execution starts at.
    pub start: String,
    /// Nodes by id, in declaration order of their ids' sort (BTreeMap).
    pub nodes: BTreeMap<String, Node>,
    /// Every edge of the graph, derived from the nodes by the compiler.
    pub edges: Vec<Edge>,
    /// Named retry policies declared at the top of the file.
    #[serde(default)]
    pub retry_policies: BTreeMap<String, RetryPolicy>,
    /// The file the workflow was compiled from, when there was one. Not
    /// part of its identity ([`Workflow::content_hash`]).
    #[serde(default, skip_serializing_if = "hashing")]
    pub source_file: Option<String>,
    /// A deadline for the whole execution, from its start: past it the
    /// execution fails (running nodes are stopped, children cancelled).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// The top-level `models:` section, by name (prices not resolved).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub models: BTreeMap<String, crate::ir::ModelConfig>,
    /// The top-level `prices:` section: USD per million tokens by model id.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub prices: BTreeMap<String, crate::ir::Price>,
    /// The MCP servers of the `mcp: servers:` section, by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub mcp_servers: BTreeMap<String, McpServer>,
    /// The top-level `a2a:` section: this workflow is served as an A2A agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub a2a: Option<A2aAgent>,
    /// `max_steps:`: node visits one execution may make; the smaller of
    /// this and the runtime's `max_steps` limit is in force.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_steps: Option<u64>,
    /// The top-level `agents:` block: local agents by name, which
    /// `type: agent` nodes run and agents call as tools.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub agents: BTreeMap<String, AgentDef>,
    /// The top-level `budget:`: what one execution may spend.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<Budget>,
    /// The top-level `policy:`: the tools and models the workflow may use,
    /// checked when it compiles.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<Policy>,
    /// The top-level `session_state:`: the state keys a task of a session
    /// carries on from the last completed task of that session.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub session_state: Vec<String>,
}

impl Workflow {
    /// The content hash of the workflow, its identity: sha256 over its JSON
    /// with what says where it was read from left out, so the same
    /// workflow loaded from a file, posted as YAML or as IR JSON is one
    /// workflow. Left out: [`source_file`](Self::source_file) (also of the
    /// sub-workflows embedded in it) and every [`Span`], so a workflow moved
    /// to another folder, or edited only in its comments and blank lines,
    /// keeps its identity; everything that runs (templates, whitespace
    /// inside them included) is covered. Executions record it in
    /// `ExecutionStarted`; the journal stores the workflow under it.
    ///
    /// Executions journaled before spans and `source_file` were left out
    /// name the hash over the whole JSON; their IR is stored under that
    /// hash, which is how it is looked up, so they resume unchanged.
    pub fn content_hash(&self) -> String {
        let json = {
            let _identity = Identity::enter();
            serde_json::to_vec(self).expect("a workflow always serializes")
        };
        let digest = Sha256::digest(&json);
        let mut out = String::with_capacity(64);
        for b in digest {
            use std::fmt::Write;
            let _ = write!(out, "{b:02x}");
        }
        out
    }

    pub fn node(&self, id: &str) -> Option<&Node> {
        self.nodes.get(id)
    }
}

thread_local! {
    /// Set while [`Workflow::content_hash`] serializes on this thread: what
    /// says where a workflow was read from is left out.
    static HASHING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// [`HASHING`] for the life of the guard (reset on unwind too).
struct Identity(bool);

impl Identity {
    fn enter() -> Identity {
        Identity(HASHING.replace(true))
    }
}

impl Drop for Identity {
    fn drop(&mut self) {
        HASHING.set(self.0);
    }
}

/// Whether the serialization running is [`Workflow::content_hash`]'s.
fn hashing<T>(_: &T) -> bool {
    HASHING.get()
}

/// Where something was written: 1-based line and column. Serialized as
/// `null` for [`Workflow::content_hash`]: where a node is written is not
/// what it does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
pub struct Span {
    pub line: u32,
    pub column: u32,
}

impl Serialize for Span {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        if HASHING.get() {
            return serializer.serialize_unit();
        }
        let mut s = serializer.serialize_struct("Span", 2)?;
        s.serialize_field("line", &self.line)?;
        s.serialize_field("column", &self.column)?;
        s.end()
    }
}

/// One node of the graph.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Node {
    pub id: String,
    pub kind: NodeKind,
    /// The node that follows when this one completes; `None` ends the
    /// workflow (a branch chooses its own successor).
    pub next: Option<String>,
    /// The retry policy in force for this node (named policies resolved).
    pub retry: RetryPolicy,
    /// Per-attempt timeout.
    pub timeout_ms: Option<u64>,
    pub span: Span,
}

/// The kind-specific configuration of a node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum NodeKind {
    Http(HttpNode),
    Branch(BranchNode),
    Set(SetNode),
    End,
    Function(FunctionNode),
    Parallel(ParallelNode),
    Wait(WaitNode),
    Approval(ApprovalNode),
    Workflow(SubWorkflowNode),
    Model(Box<crate::ir::ModelNode>),
    Tool(ToolNode),
    Eval(super::eval::EvalNode),
    Agent(super::agent::AgentNode),
}

impl NodeKind {
    pub fn type_name(&self) -> &'static str {
        match self {
            NodeKind::Http(_) => "http",
            NodeKind::Branch(_) => "branch",
            NodeKind::Set(_) => "set",
            NodeKind::End => "end",
            NodeKind::Function(_) => "function",
            NodeKind::Parallel(_) => "parallel",
            NodeKind::Wait(_) => "wait",
            NodeKind::Approval(_) => "approval",
            NodeKind::Workflow(_) => "workflow",
            NodeKind::Model(_) => "model",
            NodeKind::Tool(_) => "tool",
            NodeKind::Eval(_) => "eval",
            NodeKind::Agent(_) => "agent",
        }
    }
}

/// `type: parallel`: fan out branches as child executions and join them.
///
/// Each branch is a chain of nodes starting at one of `branches` and
/// running until it reaches `join` (or a node with no `next`). With
/// `for_each`, `branches` holds exactly one start node and one branch runs
/// per item of the list, with `item` and `index` in template scope. When
/// every branch has finished (or the first, for `merge: first`), the merged
/// result is patched into the state and the execution goes on at `join`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParallelNode {
    pub branches: Vec<String>,
    /// A template that evaluates to a list: one branch per item.
    pub for_each: Option<String>,
    /// Where the branches meet and the execution goes on.
    pub join: String,
    pub merge: Merge,
    pub on_error: OnError,
    /// How many branches run at once; all of them when absent.
    pub max_concurrency: Option<u32>,
    /// Where `merge: collect` puts its list (required for collect).
    pub output_key: Option<String>,
}

/// How a parallel node combines its branches' results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Merge {
    /// A list, in branch order, of the keys each branch wrote (an object
    /// per branch; `{"error": ...}` for a failed one under `on_error: collect`).
    Collect,
    /// Each branch writes its own keys; they are merged into the state.
    Keys,
    /// The first branch to complete wins; the others are cancelled.
    First,
}

/// What a failed branch does to its parallel node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnError {
    /// The first failure fails the node and cancels the other branches.
    FailFast,
    /// Failures are kept in the result; the node completes.
    Collect,
}

/// `type: wait`: park until an event arrives or a timer fires.
///
/// With `event`, the execution waits for a signal with that correlation key
/// (a template); its payload goes into `output_key`. With `duration_ms` or
/// `until` (an RFC 3339 template), it waits for that time and then goes on
/// at `next`. `event` may be combined with the node's `timeout_ms`, after
/// which it goes on at `on_timeout` (or fails, without one).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WaitNode {
    pub event: Option<String>,
    pub duration_ms: Option<u64>,
    pub until: Option<String>,
    pub on_timeout: Option<String>,
    pub output_key: Option<String>,
}

/// `type: approval`: park until a person approves or rejects.
///
/// The decision (`{decision, by, comment, at}`) goes into `output_key`;
/// approved goes on at `next`, rejected at `on_reject` (or fails the
/// execution, without one). The node's `timeout_ms` leads to `on_timeout`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApprovalNode {
    /// Template, rendered from the state when the node is reached.
    pub prompt: String,
    pub on_reject: Option<String>,
    pub on_timeout: Option<String>,
    pub output_key: Option<String>,
}

/// `type: workflow`: run another workflow as a child execution.
///
/// The child workflow is resolved and compiled with the parent (by `file`,
/// or by `workflow` id and `version` among the files beside the parent),
/// and embedded here, so the parent's content hash covers it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubWorkflowNode {
    pub workflow: Box<Workflow>,
    /// A JSON value whose strings are templates: the child's input. The
    /// whole parent state (keys the child declares) when absent.
    pub input: Option<serde_json::Value>,
    /// Where the child's final state goes.
    pub output_key: Option<String>,
}

/// `type: http`: one HTTP request; a JSON response goes into `output_key`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HttpNode {
    /// Upper-case HTTP method, `GET` by default.
    pub method: String,
    /// Template.
    pub url: String,
    /// Header values are templates.
    pub headers: BTreeMap<String, String>,
    /// A JSON value whose strings are templates (a string body is sent as
    /// is, after rendering; anything else as JSON).
    pub body: Option<serde_json::Value>,
    pub output_key: Option<String>,
}

/// `type: branch`: the first condition that holds picks the next node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BranchNode {
    pub conditions: Vec<Condition>,
    pub default: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Condition {
    /// A minijinja expression, e.g. `state.score >= 0.8`.
    pub when: String,
    pub next: String,
    pub span: Span,
}

/// `type: set`: assign state keys. String values are templates; a string
/// that is a single `{{ expr }}` keeps the expression's type (a number
/// stays a number), anything else renders to a string.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SetNode {
    pub values: BTreeMap<String, serde_json::Value>,
}

/// `type: function`: a Rust async function registered by the host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionNode {
    pub function: String,
    /// A JSON value whose strings are templates; the whole state when absent.
    pub input: Option<serde_json::Value>,
    /// Where the result goes; when absent an object result is merged into
    /// the state key by key.
    pub output_key: Option<String>,
}

/// A directed edge of the graph.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Edge {
    pub from: String,
    pub to: String,
    pub kind: EdgeKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EdgeKind {
    Next,
    /// The n-th condition of a branch.
    Condition(usize),
    Default,
    /// The start of a parallel node's n-th branch.
    Branch(usize),
    /// Where a parallel node's branches meet and its execution goes on.
    Join,
    /// Where a wait or an approval goes when its `timeout_ms` passes.
    OnTimeout,
    /// Where an approval goes when it is rejected.
    OnReject,
    /// Where an eval node loops back to when it fails (`on_fail: {retry_from}`).
    RetryFrom,
}

/// How a failed node is retried. The delay before attempt `n + 1` is a
/// durable deadline in the journal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub backoff: Backoff,
    pub delay_ms: u64,
    pub max_delay_ms: u64,
    pub jitter: bool,
    /// Error classes that are retried; `None` means the retryable defaults
    /// (timeout, rate_limited, server_error, connection).
    pub retry_on: Option<Vec<String>>,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 1,
            backoff: Backoff::Exponential,
            delay_ms: 1000,
            max_delay_ms: 60_000,
            jitter: false,
            retry_on: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Backoff {
    Constant,
    Linear,
    Exponential,
}

/// The top-level `a2a:` section: how a workflow is served as an A2A agent
/// (its skill on the agent card, how a message becomes the input, how the
/// final state becomes the reply). See `crate::server::a2a`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct A2aAgent {
    /// The skill id on the agent card.
    pub skill: String,
    /// What the agent does, for the card.
    pub description: String,
    /// The card's display name; default: the workflow id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub examples: Vec<String>,
    /// The `str` state key a message's text goes to; default: the only
    /// `str` key of the state schema.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_key: Option<String>,
    /// The state key whose value is the reply, as text; default: the whole
    /// final state, as a data part.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_key: Option<String>,
    /// Set only on a workflow made to serve a local agent
    /// ([`crate::ir::served_agent`]; YAML cannot write it): which agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serves: Option<ServedAgent>,
}

#[cfg(test)]
mod tests {
    const WF: &str =
        "id: t\nstate_schema: { n: int }\nnodes:\n  a: { type: set, values: { n: 1 }, next: b }\n  b: { type: end }\n";

    #[test]
    fn the_identity_is_what_runs_not_where_it_was_read() {
        let here = crate::ir::compile_str(WF, "here/wf.yaml").unwrap();
        let moved = crate::ir::compile_str(&format!("# a comment\n\n{WF}"), "/elsewhere/wf.yaml").unwrap();
        assert_ne!(here.nodes["a"].span, moved.nodes["a"].span);
        assert_eq!(here.content_hash(), moved.content_hash());
        // Posted as IR JSON, read back: the same workflow.
        let json: super::Workflow = serde_json::from_slice(&serde_json::to_vec(&here).unwrap()).unwrap();
        assert_eq!(json.content_hash(), here.content_hash());
        // What it stores still says where it came from.
        let stored = serde_json::to_value(&moved).unwrap();
        assert_eq!(stored["source_file"], "/elsewhere/wf.yaml");
        assert_eq!(stored["nodes"]["a"]["span"]["line"], 6);
        let other = crate::ir::compile_str(&WF.replace("n: 1", "n: 2"), "here/wf.yaml").unwrap();
        assert_ne!(other.content_hash(), here.content_hash());
    }
}
