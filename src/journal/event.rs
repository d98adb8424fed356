//! The events of an execution, and their stored encoding.
//!
//! What is stored is forever: variants and fields are only ever appended
//! at the end (postcard encodes the variant index and field order), every
//! record starts with a format version byte, and JSON values are kept as
//! JSON text inside the record (postcard cannot round-trip
//! `serde_json::Value`). `tests/journal_format.rs` decodes a checked-in
//! file written by format version 1.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Error;

/// The format version written in front of every record.
pub const FORMAT_VERSION: u8 = 1;

/// A JSON value stored as its text.
///
/// In the journal (postcard, not human-readable) it is that text; in a
/// human-readable form (the API's JSON) it is the value itself, so a
/// record reads `"input": {"q": 1}` and not `"input": "{\"q\":1}"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Json(pub String);

impl Serialize for Json {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            let value: Value =
                serde_json::from_str(&self.0).map_err(|e| serde::ser::Error::custom(format!("stored JSON: {e}")))?;
            value.serialize(s)
        } else {
            // As the newtype it always was: the stored encoding is forever.
            s.serialize_newtype_struct("Json", &self.0)
        }
    }
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Json, D::Error> {
        if d.is_human_readable() {
            Ok(Json(Value::deserialize(d)?.to_string()))
        } else {
            struct Text;
            impl<'de> serde::de::Visitor<'de> for Text {
                type Value = Json;
                fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                    f.write_str("JSON text")
                }
                fn visit_newtype_struct<D: serde::Deserializer<'de>>(self, d: D) -> Result<Json, D::Error> {
                    Ok(Json(String::deserialize(d)?))
                }
            }
            d.deserialize_newtype_struct("Json", Text)
        }
    }
}

impl Json {
    pub fn from_value(v: &Value) -> Json {
        Json(v.to_string())
    }
    pub fn from_map(m: &serde_json::Map<String, Value>) -> Json {
        Json(serde_json::to_string(m).expect("a JSON map always serializes"))
    }
    /// Parse the stored text; a record that does not parse is corrupt.
    pub fn value(&self) -> Result<Value, Error> {
        serde_json::from_str(&self.0).map_err(|e| Error::Corrupt(format!("stored JSON does not parse: {e}")))
    }
    pub fn object(&self) -> Result<serde_json::Map<String, Value>, Error> {
        match self.value()? {
            Value::Object(m) => Ok(m),
            other => Err(Error::Corrupt(format!("stored JSON is not an object: {other}"))),
        }
    }
}

/// Tokens and cost a node used (filled in by model nodes).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cost_usd: f64,
}

impl Usage {
    pub fn add(&mut self, other: &Usage) {
        self.input_tokens += other.input_tokens;
        self.output_tokens += other.output_tokens;
        self.cost_usd += other.cost_usd;
    }
}

/// Why a node failed, for the retry policy. Stored: append only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ErrorClass {
    Timeout,
    RateLimited,
    ServerError,
    Connection,
    ClientError,
    InvalidOutput,
    Template,
    Function,
    Panic,
    Internal,
    /// A child execution (a parallel branch, a sub-workflow) failed.
    ChildFailed,
    /// A child workflow's input did not fit its state schema.
    InvalidInput,
    /// The node or the execution crossed one of the runtime's limits
    /// (`ir::Limits`): never retried.
    LimitExceeded,
    /// An agent, or its workflow, spent its `max_cost_usd` or `max_tokens`:
    /// never retried (what was spent stays spent).
    BudgetExceeded,
    /// A retried or resumed node made its calls in another order than the
    /// journal recorded: never retried.
    Nondeterminism,
}

impl ErrorClass {
    pub const ALL: [ErrorClass; 15] = [
        ErrorClass::Timeout,
        ErrorClass::RateLimited,
        ErrorClass::ServerError,
        ErrorClass::Connection,
        ErrorClass::ClientError,
        ErrorClass::InvalidOutput,
        ErrorClass::Template,
        ErrorClass::Function,
        ErrorClass::Panic,
        ErrorClass::Internal,
        ErrorClass::ChildFailed,
        ErrorClass::InvalidInput,
        ErrorClass::LimitExceeded,
        ErrorClass::BudgetExceeded,
        ErrorClass::Nondeterminism,
    ];

    /// The name used in YAML (`retry_on: [timeout]`) and in `inspect`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Timeout => "timeout",
            ErrorClass::RateLimited => "rate_limited",
            ErrorClass::ServerError => "server_error",
            ErrorClass::Connection => "connection",
            ErrorClass::ClientError => "client_error",
            ErrorClass::InvalidOutput => "invalid_output",
            ErrorClass::Template => "template",
            ErrorClass::Function => "function",
            ErrorClass::Panic => "panic",
            ErrorClass::Internal => "internal",
            ErrorClass::ChildFailed => "child_failed",
            ErrorClass::InvalidInput => "invalid_input",
            ErrorClass::LimitExceeded => "limit_exceeded",
            ErrorClass::BudgetExceeded => "budget_exceeded",
            ErrorClass::Nondeterminism => "nondeterminism",
        }
    }

    pub fn parse(name: &str) -> Option<ErrorClass> {
        ErrorClass::ALL.into_iter().find(|c| c.as_str() == name)
    }

    /// Retried by default when a policy has no `retry_on`.
    pub fn retryable_by_default(self) -> bool {
        matches!(self, ErrorClass::Timeout | ErrorClass::RateLimited | ErrorClass::ServerError | ErrorClass::Connection)
    }
}

impl std::fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the runtime decided after a node failed. Stored: append only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RetryDecision {
    /// Attempt `attempt` runs at `at_ms` (unix milliseconds): a durable deadline.
    Retry { attempt: u32, at_ms: u64 },
    /// No more attempts: the execution fails.
    GiveUp,
}

/// One event of an execution's history. Stored: variants only appended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Event {
    ExecutionStarted {
        workflow_id: String,
        workflow_version: String,
        /// Content hash of the workflow IR; the journal stores the IR under it.
        workflow_hash: String,
        input: Json,
        /// The caller's idempotency key for the submission, if any.
        key: Option<String>,
    },
    NodeScheduled {
        node: String,
        visit: u32,
    },
    NodeStarted {
        node: String,
        visit: u32,
        attempt: u32,
    },
    NodeCompleted {
        node: String,
        visit: u32,
        attempt: u32,
        /// The keys the node set, as a JSON object.
        patch: Json,
        /// The successor the node chose (a branch) or its `next`.
        next: Option<String>,
        duration_us: u64,
        usage: Usage,
    },
    NodeFailed {
        node: String,
        visit: u32,
        attempt: u32,
        class: ErrorClass,
        message: String,
        retry: RetryDecision,
    },
    ExecutionCompleted {
        /// The final state.
        state: Json,
    },
    ExecutionFailed {
        node: Option<String>,
        error: String,
    },
    ExecutionCancelled {
        reason: String,
    },
    /// The first event of a child execution: a parallel branch or a
    /// sub-workflow. The child runs `workflow_hash` from `start` until it
    /// reaches `until` (a branch's join) or ends.
    ChildStarted {
        workflow_id: String,
        workflow_version: String,
        workflow_hash: String,
        input: Json,
        /// Template variables of a `for_each` branch (`item`, `index`), an object.
        vars: Json,
        parent: String,
        parent_node: String,
        parent_visit: u32,
        branch: u32,
        start: String,
        until: Option<String>,
    },
    /// A wait or approval node parked the execution.
    Waiting {
        node: String,
        visit: u32,
        /// The correlation key of the event it waits for.
        event: Option<String>,
        /// When it times out (or, for a timer, fires): unix ms.
        deadline_ms: Option<u64>,
        /// An approval's prompt, rendered from the state.
        prompt: Option<String>,
    },
    /// An external event arrived. It is consumed by the wait for its key,
    /// now or when the execution gets there.
    SignalReceived {
        key: String,
        payload: Json,
    },
    /// A wait's deadline passed before its event, or an approval's before
    /// its decision. (Journals written before `TimerFired` existed also
    /// end a timer with it; it folds the same.)
    WaitTimedOut {
        node: String,
        visit: u32,
    },
    /// A person decided an approval.
    ApprovalDecided {
        node: String,
        visit: u32,
        approved: bool,
        by: String,
        comment: Option<String>,
    },
    /// A parallel (or sub-workflow) node started this many children.
    FanOut {
        node: String,
        visit: u32,
        attempt: u32,
        branches: u32,
    },
    /// One child of a parallel (or sub-workflow) node finished.
    BranchFinished {
        node: String,
        visit: u32,
        branch: u32,
        outcome: BranchOutcome,
    },
    /// What one attempt of a node sent and what it got back (a model
    /// call's request and reply, a tool call's arguments and result),
    /// journaled with the attempt's `NodeCompleted` or `NodeFailed`, so
    /// `inspect -v` shows exactly what a step received. Secrets (API keys,
    /// auth headers) are never part of it.
    Exchange {
        node: String,
        visit: u32,
        attempt: u32,
        request: Json,
        response: Json,
        /// Tokens and cost of this attempt, failed attempts included: an
        /// execution's total is the sum over its exchanges.
        usage: Usage,
    },
    /// An eval node's scores for one attempt: a JSON array of
    /// `{scorer, passed, score, reason}`.
    Scored {
        node: String,
        visit: u32,
        attempt: u32,
        scores: Json,
        passed: bool,
    },
    /// The first event of a parallel branch: like `ChildStarted`, but the
    /// branch's state is not copied into its journal. It starts from its
    /// parent's state as of the parent's record `state_at` (the parent's
    /// `FanOut`), which the parent's journal already holds: a fan-out of
    /// 10,000 items costs 10,000 items, not 10,000 copies of the state.
    /// A branch that starts this way ends with `ExecutionCompleted` holding
    /// only the keys it wrote.
    BranchStarted {
        workflow_id: String,
        workflow_version: String,
        workflow_hash: String,
        /// Template variables of a `for_each` branch (`item`, `index`), an object.
        vars: Json,
        parent: String,
        parent_node: String,
        parent_visit: u32,
        branch: u32,
        start: String,
        until: Option<String>,
        /// The parent's sequence number whose state the branch starts from.
        state_at: u64,
    },
    /// A timer (a `wait` with `duration_ms` or `until`) reached its time:
    /// its normal end, not a failure.
    TimerFired {
        node: String,
        visit: u32,
    },
    /// One call a running node made and completed (a model call whose
    /// reply asks for tools, a tool call, an agent's planning or critique
    /// call), journaled before the node goes on. A retried or resumed
    /// visit reads its calls back instead of making them again, and makes
    /// only the calls after them. Its usage counts in the execution's
    /// total here, not again in the attempt's `Exchange`.
    Call {
        node: String,
        visit: u32,
        attempt: u32,
        call: CallRecord,
    },
    /// Tool calls a running node visit asked for that wait for a person's
    /// decision (an agent's `approval:`, the workflow's
    /// `policy.require_approval_for`): the attempt ends here, neither
    /// completed nor failed, and the execution parks until every one of
    /// them is decided (`CallDecided`). The model call that asked for them
    /// is journaled before, as a `Call`, so it is never sent again.
    CallsPending {
        node: String,
        visit: u32,
        attempt: u32,
        calls: Vec<PendingCall>,
    },
    /// A person decided one pending tool call (see `CallsPending`). When
    /// the last pending call of the visit is decided, the node runs again
    /// as a continuation of the same visit.
    CallDecided {
        node: String,
        visit: u32,
        /// The call's id (`PendingCall::id`).
        call: String,
        approved: bool,
        by: String,
        comment: Option<String>,
    },
    /// The execution is a task of a session (an A2A `contextId`, `jamjet
    /// run --session`): written right after `ExecutionStarted`, in its
    /// batch. What the task saw of the session is here, so a replay and
    /// `inspect` see it too: the conversation so far (`history`, a JSON
    /// array of `{"user", "answer"}`, oldest first, at most the runtime's
    /// history cap of the latest turns) and the `session_state` fields
    /// carried from the last completed task (`carried`, an object; already
    /// part of the input).
    SessionJoined {
        session: String,
        /// Its number in the session, from 1.
        turn: u32,
        /// The execution whose end state and answer it carries on from.
        after: Option<String>,
        /// This task's own message, as the next task's history will show it.
        message: String,
        history: Json,
        carried: Json,
    },
    /// This execution is a fork of `from` (`jamjet fork`): the records
    /// before this one are `from`'s first `at_seq` records (its submission
    /// without the idempotency key, naming the workflow this one runs) and,
    /// for a fork inside a branch (`at_seq` is then the `FanOut`), the
    /// `BranchFinished` of the branches it keeps; it goes on at `node`
    /// (visit `visit`) with `patch` merged into the state. `version`: the version `from` ran, when this one moved to
    /// another (`--latest`).
    Forked {
        from: String,
        at_seq: u64,
        node: String,
        visit: u32,
        /// The keys set at the fork (an object; `{}` for none).
        patch: Json,
        version: Option<String>,
    },
}

/// One tool call that waits for a person's decision (see
/// [`Event::CallsPending`]). Stored: fields only appended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingCall {
    /// `{node}.{k}`: the k-th tool call of the node's visit that needed a
    /// decision. Stable across restarts, and what `jamjet approve --call`
    /// names.
    pub id: String,
    /// The tool, as the model named it.
    pub tool: String,
    /// The arguments the model gave, as a JSON object.
    pub arguments: Json,
    /// What the person is asked: the tool and its arguments.
    pub prompt: String,
}

/// One completed call of a node visit (see [`Event::Call`]). Stored:
/// fields only appended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallRecord {
    /// Its number in the visit, from 1.
    pub n: u32,
    /// What was called: `model`, `tool`, or a strategy's step (`plan`,
    /// `critique`, ...).
    pub kind: String,
    /// The model, tool or agent called.
    pub name: String,
    /// What was sent: a tool's arguments; for a model call, the messages
    /// added since the visit's previous model call (the whole body for
    /// the first), so a long loop's journal grows with its turns, not
    /// with their square.
    pub request: Json,
    /// What came back: the model's reply as the provider sent it, the
    /// tool's result.
    pub response: Json,
    pub usage: Usage,
}

/// How one branch (child execution) ended. Stored: append only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum BranchOutcome {
    /// The keys the branch wrote (a sub-workflow: its final state).
    Completed {
        patch: Json,
    },
    Failed {
        error: String,
    },
    Cancelled,
}

impl Event {
    /// The event's name as shown by `inspect`.
    pub fn name(&self) -> &'static str {
        match self {
            Event::ExecutionStarted { .. } => "ExecutionStarted",
            Event::NodeScheduled { .. } => "NodeScheduled",
            Event::NodeStarted { .. } => "NodeStarted",
            Event::NodeCompleted { .. } => "NodeCompleted",
            Event::NodeFailed { .. } => "NodeFailed",
            Event::ExecutionCompleted { .. } => "ExecutionCompleted",
            Event::ExecutionFailed { .. } => "ExecutionFailed",
            Event::ExecutionCancelled { .. } => "ExecutionCancelled",
            Event::ChildStarted { .. } => "ChildStarted",
            Event::Waiting { .. } => "Waiting",
            Event::SignalReceived { .. } => "SignalReceived",
            Event::WaitTimedOut { .. } => "WaitTimedOut",
            Event::ApprovalDecided { .. } => "ApprovalDecided",
            Event::FanOut { .. } => "FanOut",
            Event::BranchFinished { .. } => "BranchFinished",
            Event::Exchange { .. } => "Exchange",
            Event::Scored { .. } => "Scored",
            Event::BranchStarted { .. } => "BranchStarted",
            Event::TimerFired { .. } => "TimerFired",
            Event::Call { .. } => "Call",
            Event::CallsPending { .. } => "CallsPending",
            Event::CallDecided { .. } => "CallDecided",
            Event::SessionJoined { .. } => "SessionJoined",
            Event::Forked { .. } => "Forked",
        }
    }

    /// The node an event is about, if any.
    pub fn node(&self) -> Option<&str> {
        match self {
            Event::NodeScheduled { node, .. }
            | Event::NodeStarted { node, .. }
            | Event::NodeCompleted { node, .. }
            | Event::NodeFailed { node, .. }
            | Event::Waiting { node, .. }
            | Event::WaitTimedOut { node, .. }
            | Event::ApprovalDecided { node, .. }
            | Event::FanOut { node, .. }
            | Event::BranchFinished { node, .. }
            | Event::Exchange { node, .. }
            | Event::Scored { node, .. }
            | Event::TimerFired { node, .. }
            | Event::Call { node, .. }
            | Event::CallsPending { node, .. }
            | Event::CallDecided { node, .. } => Some(node),
            Event::ExecutionFailed { node, .. } => node.as_deref(),
            _ => None,
        }
    }

    /// A tool call's name and arguments, when this is the `Call` of a tool
    /// (kind `tool`, whose request is `{"id", "arguments"}`); arguments
    /// that do not read back are null.
    pub fn tool_call(&self) -> Option<(&str, Value)> {
        let Event::Call { call, .. } = self else { return None };
        if call.kind != "tool" {
            return None;
        }
        let arguments = call.request.value().ok().and_then(|mut r| r.get_mut("arguments").map(Value::take));
        let arguments = arguments.unwrap_or(Value::Null);
        Some((&call.name, arguments))
    }

    /// Where a child execution (a parallel branch, a sub-workflow) came
    /// from, when this is its first event: (parent, node, visit, branch).
    pub fn parent_link(&self) -> Option<(&str, &str, u32, u32)> {
        match self {
            Event::ChildStarted { parent, parent_node, parent_visit, branch, .. }
            | Event::BranchStarted { parent, parent_node, parent_visit, branch, .. } => {
                Some((parent, parent_node, *parent_visit, *branch))
            }
            _ => None,
        }
    }

    /// Whether this is the first event of an execution.
    pub fn is_start(&self) -> bool {
        matches!(self, Event::ExecutionStarted { .. } | Event::ChildStarted { .. } | Event::BranchStarted { .. })
    }

    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            Event::ExecutionCompleted { .. } | Event::ExecutionFailed { .. } | Event::ExecutionCancelled { .. }
        )
    }
}

/// An event with its position and time, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// 1-based position in the execution's history.
    pub seq: u64,
    /// Wall-clock time it was appended, unix milliseconds.
    pub at_ms: u64,
    pub event: Event,
}

/// Encode a record's body (version byte, then postcard of `(at_ms, event)`).
pub fn encode(at_ms: u64, event: &Event) -> Vec<u8> {
    let mut out = vec![FORMAT_VERSION];
    let body = postcard::to_stdvec(&(at_ms, event)).expect("events always encode");
    out.extend_from_slice(&body);
    out
}

/// Decode a record body written by [`encode`] (by any format version so far).
pub fn decode(seq: u64, bytes: &[u8]) -> Result<Record, Error> {
    decode_body(seq, bytes).map_err(|detail| Error::Corrupt(format!("record {seq} {detail}")))
}

/// [`decode`], with what is wrong said without the record's number.
fn decode_body(seq: u64, bytes: &[u8]) -> Result<Record, String> {
    let (&version, body) = bytes.split_first().ok_or_else(|| "is empty".to_string())?;
    match version {
        1 => {
            let (at_ms, event): (u64, Event) =
                postcard::from_bytes(body).map_err(|e| format!("does not decode: {e}"))?;
            Ok(Record { seq, at_ms, event })
        }
        v => Err(format!("has format version {v}; this build reads up to {FORMAT_VERSION}")),
    }
}

/// Encode the events of one append as one stored frame: each record
/// (version byte + postcard) preceded by its length as u32 little-endian.
/// A frame is stored under the sequence number of its first event, so an
/// append costs one key, however many events it holds.
pub fn encode_frame(at_ms: u64, events: &[Event]) -> Vec<u8> {
    let mut out = Vec::with_capacity(events.len() * 64);
    for event in events {
        let record = encode(at_ms, event);
        out.extend_from_slice(&(record.len() as u32).to_le_bytes());
        out.extend_from_slice(&record);
    }
    out
}

/// Decode a frame written by [`encode_frame`] whose first event is `first_seq`.
pub fn decode_frame(first_seq: u64, bytes: &[u8]) -> Result<Vec<Record>, Error> {
    decode_frame_at(first_seq, bytes).map_err(|bad| Error::Corrupt(bad.to_string()))
}

/// The record of a stored frame that does not decode, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRecord {
    /// Its sequence number (the records before it in the frame decoded).
    pub seq: u64,
    pub detail: String,
}

impl std::fmt::Display for BadRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "record {} {}", self.seq, self.detail)
    }
}

/// [`decode_frame`], telling which record failed: what a damaged
/// execution is reported with.
pub fn decode_frame_at(first_seq: u64, mut bytes: &[u8]) -> Result<Vec<Record>, BadRecord> {
    let mut records = Vec::new();
    while !bytes.is_empty() {
        let Some(seq) = first_seq.checked_add(records.len() as u64) else {
            let detail = format!("follows record {first_seq} past the largest sequence number");
            return Err(BadRecord { seq: u64::MAX, detail });
        };
        let torn = || BadRecord { seq, detail: "is cut short".into() };
        let len = u32::from_le_bytes(bytes.get(..4).ok_or_else(torn)?.try_into().map_err(|_| torn())?) as usize;
        let body = bytes.get(4..).and_then(|b| b.get(..len)).ok_or_else(torn)?;
        records.push(decode_body(seq, body).map_err(|detail| BadRecord { seq, detail })?);
        bytes = &bytes[4 + len..];
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(300))]

        /// A stored frame of any bytes decodes or names the record that
        /// does not: it never panics.
        #[test]
        fn any_frame_bytes_decode_or_name_the_bad_record(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
            if let Err(bad) = decode_frame_at(7, &bytes) {
                proptest::prop_assert!(bad.seq >= 7);
            }
        }
    }

    #[test]
    fn a_garbled_record_is_named_by_its_sequence_number() {
        let mut frame = encode_frame(5, &[Event::NodeScheduled { node: "a".into(), visit: 1 }]);
        frame.extend_from_slice(&[5, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff]);
        let bad = decode_frame_at(10, &frame).unwrap_err();
        assert_eq!(bad.seq, 11);
        assert!(bad.to_string().starts_with("record 11 does not decode"), "{bad}");
        let cut = decode_frame_at(10, &frame[..frame.len() - 2]).unwrap_err();
        assert_eq!((cut.seq, cut.detail.as_str()), (11, "is cut short"));
    }

    #[test]
    fn json_is_a_value_in_json_and_text_in_the_journal() {
        let record = Record {
            seq: 3,
            at_ms: 7,
            event: Event::SignalReceived { key: "go".into(), payload: Json::from_value(&json!({"n": 1})) },
        };
        let api = serde_json::to_value(&record).unwrap();
        assert_eq!(api["event"]["SignalReceived"]["payload"], json!({"n": 1}));
        let back: Record = serde_json::from_value(api).unwrap();
        assert_eq!(back, record);
        // The stored encoding is the text, as format version 1 wrote it.
        let stored = postcard::to_stdvec(&Json("{\"n\":1}".into())).unwrap();
        assert_eq!(stored, postcard::to_stdvec(&"{\"n\":1}").unwrap());
        assert_eq!(postcard::from_bytes::<Json>(&stored).unwrap(), Json("{\"n\":1}".into()));
    }
}
