//! The REST API's wire types: every JSON body the server's handlers read
//! or write (`api/`, `error.rs`) is one of these, and [`crate::client`]
//! writes and reads the same types, so the two cannot drift apart.
//! `docs/api.md` and [`super::openapi`] describe them.
//!
//! - Requests (the server reads them, the client writes them):
//!   [`SubmitRequest`], [`SignalRequest`], [`ApproveRequest`],
//!   [`CancelRequest`], [`EventRequest`].
//! - Replies (the server writes them, the client reads them): [`Submitted`],
//!   [`Execution`] with its [`Wait`]s, a [`Page`] of [`Summary`] rows,
//!   [`Events`], [`ExecutionWorkflow`], [`Approved`], [`Moved`], [`Published`],
//!   [`ResumeReply`], [`Workflows`], [`RegisteredWorkflow`] (a bare
//!   [`Registration`] answers `POST /workflows`), [`Health`], and every
//!   error's [`ErrorBody`].
//!
//! Replies go out through `serde_json::Value` (`api::reply`), whose maps
//! are sorted: the keys are in alphabetical order whatever the order of the
//! fields here. A reply field the server always sends but an older one may
//! not is read with its default. Requests keep their field order: serde's
//! "unknown field, expected one of ..." message lists them in it.
//!
//! Here too is how the runtime's answers become wire types
//! ([`Wait::from`] a [`Waiting`], [`Summary::of`] an index row).

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use crate::id::ExecutionId;
use crate::ir::Workflow;
use crate::journal::{Damage, ExecutionMeta, Record, Registration, Status, Usage};
use crate::runtime::{WaitKind, Waiting};

/// `POST /executions`: a registered workflow (`workflow_id`, `version`
/// optional) or a workflow's IR inline (run as it is, not registered).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubmitRequest {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workflow_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The workflow's IR itself, run as it is without registering it
    /// (what `jamjet run FILE` sends over the data dir's socket).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workflow: Option<Value>,
    /// The input state: a JSON object (anything else is refused as it is read).
    #[serde(default, deserialize_with = "object", skip_serializing_if = "Option::is_none")]
    pub input: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// Run as a task of this session (see `Runtime::submit_in_session`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
}

/// An optional JSON object, read as a map is (so a non-object is refused
/// with serde's own "expected a map").
fn object<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Ok(Option::<Map<String, Value>>::deserialize(d)?.map(Value::Object))
}

/// `POST /executions`'s answer (201 started, 200 the execution of this
/// idempotency key).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Submitted {
    pub id: ExecutionId,
    pub workflow_id: String,
    pub version: String,
    pub status: Status,
}

/// `GET /executions/{id}`: where an execution stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Execution {
    pub id: ExecutionId,
    pub workflow_id: String,
    pub version: String,
    pub status: Status,
    #[serde(default)]
    pub state: Value,
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub usage: Usage,
    pub created_ms: u64,
    pub updated_ms: u64,
    /// What it and its children wait for (empty once it ended).
    #[serde(default)]
    pub waiting: Vec<Wait>,
    /// The content hash of the IR it runs (absent from older servers).
    #[serde(default)]
    pub workflow_hash: Option<String>,
    /// Its idempotency key.
    #[serde(default)]
    pub key: Option<String>,
    /// Whether only the outside can move it (and its unfinished children)
    /// on: ended, or parked on events or approvals (absent from older
    /// servers).
    #[serde(default)]
    pub settled: Option<bool>,
}

/// One thing an execution waits for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Wait {
    /// The execution that waits, when the server names it (a child's wait
    /// listed under its parent); else the execution asked about.
    #[serde(default)]
    pub id: Option<ExecutionId>,
    /// The waiting execution's workflow, when the server names it.
    #[serde(default)]
    pub workflow_id: Option<String>,
    pub node: String,
    /// `event`, `approval` or `timer` ([`kind_name`]); a text, so a kind
    /// a newer server adds still reads.
    pub kind: String,
    #[serde(default)]
    pub event: Option<String>,
    #[serde(default)]
    pub prompt: Option<String>,
    /// A tool call that waits for a decision: its id, what
    /// `POST /executions/{id}/approve` names as `call`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call: Option<String>,
    pub since_ms: u64,
    #[serde(default)]
    pub deadline_ms: Option<u64>,
    /// The waiting execution's parent (a branch's, a sub-workflow's).
    #[serde(default)]
    pub parent: Option<ExecutionId>,
}

impl From<&Waiting> for Wait {
    fn from(w: &Waiting) -> Wait {
        Wait {
            id: Some(w.id),
            workflow_id: Some(w.workflow_id.clone()),
            node: w.node.clone(),
            kind: kind_name(w.kind).to_string(),
            event: w.event.clone(),
            prompt: w.prompt.clone(),
            call: w.call.clone(),
            since_ms: w.since_ms,
            deadline_ms: w.deadline_ms,
            parent: w.parent,
        }
    }
}

/// A wait kind's name on the wire (its serde name).
pub fn kind_name(kind: WaitKind) -> &'static str {
    match kind {
        WaitKind::Event => "event",
        WaitKind::Approval => "approval",
        WaitKind::Timer => "timer",
    }
}

/// One row of `GET /executions`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub id: ExecutionId,
    pub workflow_id: String,
    pub version: String,
    pub status: Status,
    pub created_ms: u64,
    pub updated_ms: u64,
    /// Not in the contract's list rows; read when a server adds it.
    #[serde(default)]
    pub workflow_hash: Option<String>,
    #[serde(default)]
    pub key: Option<String>,
    /// The execution that started it (a parallel branch, a sub-workflow);
    /// `None` for one started on its own, or from a server that does not say.
    #[serde(default)]
    pub parent: Option<ExecutionId>,
    /// Tokens and cost so far, when asked for (`?usage=true`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
}

impl Summary {
    /// The row of the index row `m`, started by `parent`.
    pub fn of(m: &ExecutionMeta, parent: Option<ExecutionId>) -> Summary {
        Summary {
            id: m.id,
            workflow_id: m.workflow_id.clone(),
            version: m.workflow_version.clone(),
            status: m.status,
            created_ms: m.created_ms,
            updated_ms: m.updated_ms,
            workflow_hash: Some(m.workflow_hash.clone()),
            key: m.key.clone(),
            parent,
            usage: None,
        }
    }
}

/// One page of `GET /executions`, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Page {
    pub executions: Vec<Summary>,
    /// Where the next page starts; `None` on the last.
    #[serde(default)]
    pub next_cursor: Option<String>,
    /// Executions whose index row, records or workflow cannot be read
    /// (unfiltered lists only).
    #[serde(default)]
    pub damaged: Vec<Damage>,
}

/// `GET /executions/{id}/events`: the records after `?after=`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Events {
    pub events: Vec<Record>,
}

/// `GET /executions/{id}/workflow`: the IR an execution runs and its hash.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExecutionWorkflow {
    pub hash: String,
    pub workflow: Workflow,
}

/// `POST /executions/{id}/signal`: deliver the event `key`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignalRequest {
    pub key: String,
    #[serde(default)]
    pub payload: Value,
}

/// `POST /executions/{id}/approve`: decide an approval (the one `node`
/// waits on, or the only one), or with `call` one pending tool call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApproveRequest {
    pub approved: bool,
    pub by: Option<String>,
    pub comment: Option<String>,
    pub node: Option<String>,
    /// A pending tool call's id (`research.2`), decided on its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call: Option<String>,
}

/// `POST /executions/{id}/approve`'s answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Approved {
    pub id: ExecutionId,
    pub node: String,
    /// The tool call decided, when one was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call: Option<String>,
    pub status: Status,
}

/// `POST /executions/{id}/cancel` (an empty body reads as `{}`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CancelRequest {
    pub reason: Option<String>,
}

/// `POST /prune`: remove ended executions that ended at least
/// `older_than` ago (`30d`, `12h`, `90m`; a unit is required), of
/// `status` (completed, failed, cancelled; all three when absent), keeping
/// the newest `keep_last` of each workflow. `dry_run`: only say which.
/// Answered with a [`PruneReport`](crate::runtime::PruneReport).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PruneRequest {
    pub older_than: String,
    #[serde(default)]
    pub status: Vec<String>,
    #[serde(default)]
    pub keep_last: Option<usize>,
    #[serde(default)]
    pub dry_run: bool,
}

impl PruneRequest {
    /// The policy it asks for, or what is wrong with it (naming the field).
    pub fn retention(&self) -> Result<crate::runtime::Retention, String> {
        let age = crate::clock::parse_span(&self.older_than, None).map_err(|e| format!("older_than: {e}"))?;
        let statuses = crate::runtime::Retention::statuses(&self.status).map_err(|e| format!("status: {e}"))?;
        let ms = u64::try_from(age.as_millis()).unwrap_or(u64::MAX);
        crate::runtime::Retention::new(ms, statuses, self.keep_last).map_err(|e| format!("status: {e}"))
    }
}

/// What `POST /executions/{id}/signal` and `/cancel` answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Moved {
    pub id: ExecutionId,
    pub status: Status,
    /// A signal: nothing in the execution waited for its key, so it is
    /// kept (`None` from a cancel, or a server that does not say).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kept: Option<bool>,
    /// A signal: the events the execution and its children waited for
    /// when it came (`None` from a cancel, or a server that does not say).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub awaited: Option<Vec<Wait>>,
}

/// `POST /events`: publish the event `key`; kept for `keep` (`90s`, `30m`,
/// `24h`, `7d`) when nothing waits for it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventRequest {
    pub key: String,
    #[serde(default)]
    pub payload: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep: Option<String>,
}

/// What `POST /events` answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Published {
    pub key: String,
    /// The executions that received it.
    pub delivered: Vec<ExecutionId>,
    /// None waited for it: it is kept until `kept_until_ms`.
    pub kept: bool,
    pub kept_until_ms: Option<u64>,
}

/// `POST /resume`'s answer: the executions rehydrated, and those skipped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResumeReply {
    pub resumed: Vec<ExecutionId>,
    pub skipped: Vec<Skipped>,
}

/// An execution `POST /resume` did not resume, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Skipped {
    pub id: ExecutionId,
    pub reason: String,
}

/// `GET /workflows`: every registration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Workflows {
    pub workflows: Vec<Registration>,
}

/// `GET /workflows/{id}`: one registration and its IR.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegisteredWorkflow {
    pub registration: Registration,
    pub workflow: Workflow,
}

/// `GET /health`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Health {
    /// Always `ok`.
    pub status: String,
    /// The server's version (`CARGO_PKG_VERSION`).
    pub version: String,
}

/// Every error answer: `{"error": {"code", "message", "details"}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// A stable, machine-readable name: `not_found`, `invalid_input`, ...
    /// (read as empty when missing: the client then names the status).
    #[serde(default)]
    pub code: String,
    #[serde(default)]
    pub message: String,
    /// What the code needs said: the problems, the existing execution, ...
    #[serde(default)]
    pub details: Value,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// The bytes of a reply, as `api::reply` sends it.
    fn sent<T: Serialize>(body: &T) -> String {
        serde_json::to_value(body).unwrap().to_string()
    }

    fn id(n: u8) -> ExecutionId {
        format!("exec_01JABCDEFGHJKMNPQRSTVWXY{n:02}").parse().unwrap()
    }

    fn waiting() -> Waiting {
        Waiting {
            id: id(2),
            workflow_id: "child".into(),
            node: "ask".into(),
            kind: WaitKind::Approval,
            event: None,
            prompt: Some("ok?".into()),
            call: None,
            since_ms: 5,
            deadline_ms: Some(9),
            parent: Some(id(1)),
        }
    }

    // Each reply is compared with the `json!` the handlers wrote before
    // these types existed: the same bytes on the wire.

    #[test]
    fn a_wait_is_the_row_the_handlers_wrote() {
        let w = waiting();
        let before = json!({ "id": w.id, "workflow_id": w.workflow_id, "node": w.node, "kind": w.kind, "event": w.event,
            "prompt": w.prompt, "since_ms": w.since_ms, "deadline_ms": w.deadline_ms, "parent": w.parent });
        assert_eq!(sent(&Wait::from(&w)), before.to_string());
        for kind in [WaitKind::Event, WaitKind::Approval, WaitKind::Timer] {
            assert_eq!(json!(kind), json!(kind_name(kind)), "the wire name of {kind:?} is its serde name");
        }
    }

    #[test]
    fn the_execution_view_and_list_rows_are_what_the_handlers_wrote() {
        let m = ExecutionMeta {
            id: id(1),
            workflow_id: "wf".into(),
            workflow_version: "2".into(),
            workflow_hash: "abc".into(),
            status: Status::Waiting,
            created_ms: 10,
            updated_ms: 20,
            key: Some("k".into()),
        };
        let row = json!({
            "id": m.id, "workflow_id": m.workflow_id, "version": m.workflow_version, "status": m.status,
            "created_ms": m.created_ms, "updated_ms": m.updated_ms, "parent": Some(id(3)),
            "workflow_hash": m.workflow_hash, "key": m.key,
        });
        assert_eq!(sent(&Summary::of(&m, Some(id(3)))), row.to_string());
        let damage = Damage::new(id(4), crate::journal::Part::Record { seq: 3 }, "bad frame");
        let page = Page { executions: vec![Summary::of(&m, None)], next_cursor: None, damaged: vec![damage.clone()] };
        let before = json!({ "executions": [json!(Summary::of(&m, None))], "next_cursor": null, "damaged": [damage] });
        assert_eq!(sent(&page), before.to_string());

        let usage = Usage { input_tokens: 1, output_tokens: 2, cost_usd: 0.5 };
        let waits = [waiting()];
        let view = Execution {
            id: m.id,
            workflow_id: m.workflow_id.clone(),
            version: m.workflow_version.clone(),
            status: Status::Waiting,
            state: json!({"a": 1}),
            error: None,
            usage,
            created_ms: m.created_ms,
            updated_ms: m.updated_ms,
            waiting: waits.iter().map(Wait::from).collect(),
            workflow_hash: Some(m.workflow_hash.clone()),
            key: m.key.clone(),
            settled: Some(true),
        };
        let rows: Vec<Value> = waits.iter().map(|w| json!(Wait::from(w))).collect();
        let before = json!({
            "id": m.id, "workflow_id": m.workflow_id, "version": m.workflow_version, "status": Status::Waiting,
            "state": {"a": 1}, "error": None::<String>, "usage": usage,
            "created_ms": m.created_ms, "updated_ms": m.updated_ms, "waiting": rows,
            "workflow_hash": m.workflow_hash, "key": m.key, "settled": true,
        });
        assert_eq!(sent(&view), before.to_string());
        let back: Execution = serde_json::from_str(&sent(&view)).unwrap();
        assert_eq!(back, view, "the client reads what the server writes");
    }

    #[test]
    fn replies_to_submit_signal_approve_cancel_and_resume_are_what_the_handlers_wrote() {
        let s = Submitted { id: id(1), workflow_id: "wf".into(), version: "1".into(), status: Status::Running };
        let before = json!({ "id": id(1), "workflow_id": "wf", "version": "1", "status": Status::Running });
        assert_eq!(sent(&s), before.to_string());

        let awaited = vec![Wait::from(&waiting())];
        let signalled = Moved { id: id(1), status: Status::Waiting, kept: Some(true), awaited: Some(awaited.clone()) };
        let before = json!({ "id": id(1), "status": Status::Waiting, "kept": true, "awaited": awaited });
        assert_eq!(sent(&signalled), before.to_string());
        let cancelled = Moved { id: id(1), status: Status::Cancelled, kept: None, awaited: None };
        assert_eq!(sent(&cancelled), json!({ "id": id(1), "status": Status::Cancelled }).to_string());

        let p = Published { key: "k".into(), delivered: vec![id(1)], kept: false, kept_until_ms: None };
        let before = json!({ "key": "k", "delivered": [id(1)], "kept": false, "kept_until_ms": None::<u64> });
        assert_eq!(sent(&p), before.to_string());
        let back: Published = serde_json::from_str(&sent(&p)).unwrap();
        assert_eq!(back, p, "the client reads what the server writes");

        let a = Approved { id: id(1), node: "ask".into(), call: None, status: Status::Running };
        assert_eq!(sent(&a), json!({ "id": id(1), "node": "ask", "status": Status::Running }).to_string());

        let r = ResumeReply { resumed: vec![id(1)], skipped: vec![Skipped { id: id(2), reason: "gone".into() }] };
        let before = json!({ "resumed": [id(1)], "skipped": [json!({ "id": id(2), "reason": "gone" })] });
        assert_eq!(sent(&r), before.to_string());

        let e = ErrorBody {
            error: ErrorDetail {
                code: "finished".into(),
                message: "done".into(),
                details: json!({"status": "failed"}),
            },
        };
        let before = json!({ "error": { "code": "finished", "message": "done", "details": {"status": "failed"} } });
        assert_eq!(sent(&e), before.to_string());

        let h = Health { status: "ok".into(), version: "0.1.0".into() };
        assert_eq!(sent(&h), json!({ "status": "ok", "version": "0.1.0" }).to_string());
    }

    #[test]
    fn requests_read_as_before_and_the_client_writes_only_what_it_gives() {
        let sub = SubmitRequest {
            workflow_id: Some("wf".into()),
            input: Some(json!({"n": 1})),
            idempotency_key: Some("k".into()),
            ..SubmitRequest::default()
        };
        let written = sent(&sub);
        assert_eq!(written, json!({ "workflow_id": "wf", "input": {"n": 1}, "idempotency_key": "k" }).to_string());
        assert_eq!(serde_json::from_str::<SubmitRequest>(&written).unwrap(), sub);
        // An input that is not an object, and an unknown field, are refused as they were.
        let e = serde_json::from_str::<SubmitRequest>(r#"{"workflow_id": "wf", "input": [1]}"#).unwrap_err();
        assert!(e.to_string().starts_with("invalid type: sequence, expected a map"), "{e}");
        let e = serde_json::from_str::<SubmitRequest>(r#"{"workflow_idd": "wf"}"#).unwrap_err();
        assert!(
            e.to_string().starts_with(
                "unknown field `workflow_idd`, expected one of `workflow_id`, `version`, `workflow`, `input`, `idempotency_key`"
            ),
            "{e}"
        );
        let approve = ApproveRequest { approved: true, by: None, comment: Some("fine".into()), node: None, call: None };
        let before = json!({ "approved": true, "node": None::<String>, "by": None::<String>, "comment": "fine" });
        assert_eq!(sent(&approve), before.to_string());
        let signal = SignalRequest { key: "go".into(), payload: json!({"x": 1}) };
        assert_eq!(sent(&signal), json!({ "key": "go", "payload": {"x": 1} }).to_string());
        let signal: SignalRequest = serde_json::from_str(r#"{"key": "go"}"#).unwrap();
        assert_eq!(signal.payload, Value::Null);
        let cancel = CancelRequest { reason: Some("enough".into()) };
        assert_eq!(sent(&cancel), json!({ "reason": "enough" }).to_string());
    }
}

/// `GET /sessions`: every session that has not expired, by id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionList {
    pub sessions: Vec<crate::runtime::SessionInfo>,
}

/// `GET /sessions/{id}`: one session, its tasks and the state it carries.
pub use crate::runtime::SessionDetail;
