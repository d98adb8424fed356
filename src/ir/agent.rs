//! The IR of `type: agent`: a call to a remote A2A agent, or a run of a
//! local agent of the workflow's `agents:` block ([`crate::ir::AgentDef`]).
//! What the node does at run time lives in `crate::nodes::agent`; the A2A
//! wire protocol in `crate::nodes::agent::client`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The whole-call timeout when a node gives none: five minutes.
pub const DEFAULT_AGENT_TIMEOUT_MS: u64 = 300_000;

/// `type: agent`: send a message built from the state to an agent, wait
/// for its answer, and put the result in `output_key`. The agent is a local
/// one of `agents:` ([`local`](Self::local)) or a remote A2A agent. When a
/// remote task asks for input, the execution parks on the event
/// `input_event`; the signal's payload is sent as the next message of the
/// same remote task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentNode {
    /// A local agent's name (a key of the workflow's `agents:`), or a
    /// remote agent's card URL or a base URL under which
    /// `/.well-known/agent-card.json` is looked up; `${VAR}` is read from
    /// the environment at call time and never journaled.
    pub agent: String,
    /// Whether `agent` names a local agent of `agents:`; `headers` are
    /// then empty. Left out of the JSON when false, so a remote agent
    /// node keeps the content hash it had before local agents.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub local: bool,
    /// A string template (sent as a text part) or a JSON value whose
    /// strings are templates (sent as a data part).
    pub message: serde_json::Value,
    pub output_key: Option<String>,
    /// The whole call (send and wait for the task), per attempt.
    pub timeout_ms: u64,
    /// Extra HTTP headers; `${VAR}` in a value is read from the
    /// environment at call time and never journaled.
    pub headers: BTreeMap<String, String>,
    /// The event key a signal answers the remote's question with.
    pub input_event: String,
}
