//! From journal records to trace spans: the pure half of the OpenTelemetry
//! export (no IO, no clock; [`super`] is the shell that feeds it and posts
//! what it returns).
//!
//! A [`Tracker`] is fed each execution's records in order, as they become
//! durable. It keeps what is open (executions, node visits) and returns a
//! [`Span`] when something ends:
//!
//! - an execution: from its first record to `ExecutionCompleted`, `Failed`
//!   or `Cancelled`; a branch or sub-workflow is a child of the node visit
//!   that started it, in its root's trace;
//! - a node visit: from its first `NodeStarted` (or `Waiting`) to its
//!   `NodeCompleted` or its last failure; a retried attempt is a `retry`
//!   event on it, a wait a `waiting` event;
//! - a call the visit journaled (a model or tool call) and a model node's
//!   exchange: children of the visit, with the OpenTelemetry GenAI
//!   attributes (`gen_ai.operation.name`, `gen_ai.request.model`,
//!   `gen_ai.usage.input_tokens`, ...). A call starts when the visit's
//!   previous record was made and ends at its own.
//!
//! The ids come from [`crate::nodes::trace`]: the same records give the same
//! spans in any process. A process that takes an execution over (after a
//! crash) feeds the records before the new ones *quietly* (rebuilding what
//! is open, returning nothing), so what the previous process exported is
//! not exported again.

use std::collections::HashMap;
use std::sync::Arc;

use opentelemetry::{KeyValue, StringValue};
use serde::Deserialize;

use crate::id::ExecutionId;
use crate::journal::{BranchOutcome, Event, Json, RetryDecision, Usage};
use crate::nodes::trace;

/// Above this many open executions, the tracker forgets them all: each is
/// rebuilt from its journal when its next record comes (memory stays
/// bounded whatever number of executions wait).
pub const MAX_OPEN: usize = 100_000;

/// One finished span, ready to export.
#[derive(Debug, Clone, PartialEq)]
pub struct Span {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    /// `None` for a root execution's span.
    pub parent: Option<[u8; 8]>,
    pub name: String,
    /// A call to another service (a model, a tool), not work done here.
    pub client: bool,
    /// Unix milliseconds.
    pub start_ms: u64,
    pub end_ms: u64,
    pub attributes: Vec<KeyValue>,
    pub events: Vec<SpanEvent>,
    /// `Some(message)`: it ended in error.
    pub error: Option<String>,
}

/// Something that happened during a span (a retry, a wait, a decision).
#[derive(Debug, Clone, PartialEq)]
pub struct SpanEvent {
    pub name: &'static str,
    pub at_ms: u64,
    pub attributes: Vec<KeyValue>,
}

/// The open executions and node visits.
#[derive(Default)]
pub struct Tracker {
    open: HashMap<ExecutionId, Open>,
}

struct Open {
    /// The execution id as text, shared by its spans' attributes.
    id_text: Arc<str>,
    trace_id: [u8; 16],
    parent: Option<[u8; 8]>,
    start_ms: u64,
    attributes: Vec<KeyValue>,
    events: Vec<SpanEvent>,
    visits: HashMap<(String, u32), Visit>,
    usage: Usage,
}

struct Visit {
    start_ms: u64,
    /// When the visit's last record was made: where its next call starts.
    last_ms: u64,
    attempts: u32,
    events: Vec<SpanEvent>,
}

/// The parts of a model request or reply a span names (the rest is not read).
#[derive(Deserialize, Default)]
struct ModelHead {
    model: Option<String>,
    id: Option<String>,
}

impl Tracker {
    /// Whether `id` is open here (its earlier records were fed).
    pub fn knows(&self, id: ExecutionId) -> bool {
        self.open.contains_key(&id)
    }

    /// How many executions are open.
    pub fn open(&self) -> usize {
        self.open.len()
    }

    /// The trace an open execution belongs to.
    pub fn trace_of(&self, id: ExecutionId) -> Option<[u8; 16]> {
        self.open.get(&id).map(|o| o.trace_id)
    }

    /// Feed `id`'s records `(at_ms, event)` in order; push the spans they
    /// end onto `out` when `emit` (else only rebuild what is open).
    /// `root_of` names the root of a branch whose parent is not open here.
    pub fn feed<'a>(
        &mut self,
        id: ExecutionId,
        records: impl IntoIterator<Item = (u64, &'a Event)>,
        emit: bool,
        root_of: &dyn Fn(ExecutionId) -> ExecutionId,
        out: &mut Vec<Span>,
    ) {
        let mut sink = Vec::new();
        for (at_ms, event) in records {
            self.one(id, at_ms, event, root_of, if emit { &mut *out } else { &mut sink });
            sink.clear();
        }
        if self.open.len() > MAX_OPEN {
            self.open.clear();
        }
    }

    fn one(
        &mut self,
        id: ExecutionId,
        at_ms: u64,
        event: &Event,
        root_of: &dyn Fn(ExecutionId) -> ExecutionId,
        out: &mut Vec<Span>,
    ) {
        match event {
            Event::ExecutionStarted { workflow_id, workflow_version, .. } => {
                let attributes = vec![
                    KeyValue::new("jamjet.workflow.id", workflow_id.clone()),
                    KeyValue::new("jamjet.workflow.version", workflow_version.clone()),
                ];
                self.start(id, trace::trace_id(id), None, at_ms, attributes);
            }
            Event::ChildStarted { workflow_id, parent, parent_node, parent_visit, branch, .. }
            | Event::BranchStarted { workflow_id, parent, parent_node, parent_visit, branch, .. } => {
                let Ok(parent_id) = parent.parse::<ExecutionId>() else { return };
                let trace_id = self.trace_of(parent_id).unwrap_or_else(|| trace::trace_id(root_of(parent_id)));
                let attributes = vec![
                    KeyValue::new("jamjet.workflow.id", workflow_id.clone()),
                    KeyValue::new("jamjet.parent.execution.id", parent.clone()),
                    KeyValue::new("jamjet.parent.node.id", parent_node.clone()),
                    KeyValue::new("jamjet.branch", i64::from(*branch)),
                ];
                let parent_span = trace::visit_span(parent_id, parent_node, *parent_visit);
                self.start(id, trace_id, Some(parent_span), at_ms, attributes);
            }
            Event::Forked { from, at_seq, node, visit, .. } => {
                // The records before were copied from `from`: its spans, not ours.
                let Some(o) = self.open.get_mut(&id) else { return };
                o.start_ms = at_ms;
                o.visits.clear();
                o.usage = Usage::default();
                o.attributes.push(KeyValue::new("jamjet.forked.from", from.clone()));
                o.attributes.push(KeyValue::new("jamjet.forked.at_seq", *at_seq as i64));
                o.attributes.push(KeyValue::new("jamjet.forked.node", format!("{node}#{visit}")));
            }
            Event::NodeStarted { node, visit, attempt } => {
                let Some(o) = self.open.get_mut(&id) else { return };
                let v = o.visit(node, *visit, at_ms);
                v.attempts = v.attempts.max(*attempt);
                v.last_ms = at_ms;
            }
            Event::Waiting { node, visit, event, deadline_ms, prompt } => {
                let Some(o) = self.open.get_mut(&id) else { return };
                let v = o.visit(node, *visit, at_ms);
                let mut attributes = Vec::new();
                if let Some(key) = event {
                    attributes.push(KeyValue::new("jamjet.wait.event", key.clone()));
                }
                if let Some(d) = deadline_ms {
                    attributes.push(KeyValue::new("jamjet.wait.deadline_ms", *d as i64));
                }
                if let Some(p) = prompt {
                    attributes.push(KeyValue::new("jamjet.approval.prompt", p.clone()));
                }
                v.events.push(SpanEvent { name: "waiting", at_ms, attributes });
                v.last_ms = at_ms;
            }
            Event::ApprovalDecided { node, visit, approved, by, .. } => {
                let Some(o) = self.open.get_mut(&id) else { return };
                let v = o.visit(node, *visit, at_ms);
                let attributes = vec![
                    KeyValue::new("jamjet.approval.approved", *approved),
                    KeyValue::new("jamjet.approval.by", by.clone()),
                ];
                v.events.push(SpanEvent { name: "approval", at_ms, attributes });
                v.last_ms = at_ms;
            }
            Event::CallDecided { node, visit, call, approved, by, .. } => {
                let Some(o) = self.open.get_mut(&id) else { return };
                let v = o.visit(node, *visit, at_ms);
                let attributes = vec![
                    KeyValue::new("jamjet.call.id", call.clone()),
                    KeyValue::new("jamjet.approval.approved", *approved),
                    KeyValue::new("jamjet.approval.by", by.clone()),
                ];
                v.events.push(SpanEvent { name: "tool approval", at_ms, attributes });
                v.last_ms = at_ms;
            }
            Event::SignalReceived { key, .. } => {
                let Some(o) = self.open.get_mut(&id) else { return };
                o.events.push(SpanEvent {
                    name: "signal",
                    at_ms,
                    attributes: vec![KeyValue::new("jamjet.signal.key", key.clone())],
                });
            }
            Event::Call { node, visit, call, .. } => {
                let Some(o) = self.open.get_mut(&id) else { return };
                let trace_id = o.trace_id;
                let v = o.visit(node, *visit, at_ms);
                let start_ms = v.last_ms;
                v.last_ms = at_ms;
                o.usage.add(&call.usage);
                let mut attributes = base(&o.id_text, node, *visit);
                attributes.push(KeyValue::new("jamjet.call.n", i64::from(call.n)));
                let (name, client) = match call.kind.as_str() {
                    "tool" => {
                        attributes.push(KeyValue::new("gen_ai.operation.name", "execute_tool"));
                        attributes.push(KeyValue::new("gen_ai.tool.name", call.name.clone()));
                        (format!("execute_tool {}", call.name), true)
                    }
                    "model" => {
                        model_attributes(&mut attributes, &call.name, &call.response, &call.usage);
                        (format!("chat {}", call.name), true)
                    }
                    kind => {
                        attributes.push(KeyValue::new("jamjet.call.kind", kind.to_string()));
                        attributes.push(KeyValue::new("jamjet.call.name", call.name.clone()));
                        usage_attributes(&mut attributes, &call.usage);
                        (format!("{kind} {}", call.name), false)
                    }
                };
                out.push(Span {
                    trace_id,
                    span_id: trace::call_span(id, node, *visit, call.n),
                    parent: Some(trace::visit_span(id, node, *visit)),
                    name,
                    client,
                    start_ms,
                    end_ms: at_ms,
                    attributes,
                    events: Vec::new(),
                    error: None,
                });
            }
            Event::Exchange { node, visit, attempt, request, response, usage } => {
                let Some(o) = self.open.get_mut(&id) else { return };
                let trace_id = o.trace_id;
                o.usage.add(usage);
                let v = o.visit(node, *visit, at_ms);
                let start_ms = v.last_ms;
                // A model node's exchange names its model; another's (an
                // HTTP call's) is the visit's own work, already its span.
                let Some(model) = head(request).model else { return };
                let mut attributes = base(&o.id_text, node, *visit);
                attributes.push(KeyValue::new("jamjet.node.attempt", i64::from(*attempt)));
                model_attributes(&mut attributes, &model, response, usage);
                out.push(Span {
                    trace_id,
                    span_id: trace::exchange_span(id, node, *visit, *attempt),
                    parent: Some(trace::visit_span(id, node, *visit)),
                    name: format!("chat {model}"),
                    client: true,
                    start_ms,
                    end_ms: at_ms,
                    attributes,
                    events: Vec::new(),
                    error: None,
                });
            }
            Event::NodeFailed { node, visit, attempt, class, message, retry } => {
                let Some(o) = self.open.get_mut(&id) else { return };
                let class = format!("{class:?}");
                match retry {
                    RetryDecision::Retry { attempt: next, at_ms: due } => {
                        let v = o.visit(node, *visit, at_ms);
                        v.attempts = v.attempts.max(*attempt);
                        v.last_ms = at_ms;
                        v.events.push(SpanEvent {
                            name: "retry",
                            at_ms,
                            attributes: vec![
                                KeyValue::new("jamjet.node.attempt", i64::from(*attempt)),
                                KeyValue::new("error.type", class),
                                KeyValue::new("exception.message", message.clone()),
                                KeyValue::new("jamjet.retry.attempt", i64::from(*next)),
                                KeyValue::new("jamjet.retry.at_ms", *due as i64),
                            ],
                        });
                    }
                    RetryDecision::GiveUp => {
                        let mut attributes = vec![KeyValue::new("error.type", class)];
                        o.end_visit(id, node, *visit, at_ms, *attempt, &mut attributes, Some(message.clone()), out);
                    }
                }
            }
            Event::NodeCompleted { node, visit, attempt, next, .. } => {
                let Some(o) = self.open.get_mut(&id) else { return };
                let mut attributes = Vec::new();
                if let Some(next) = next {
                    attributes.push(KeyValue::new("jamjet.node.next", next.clone()));
                }
                o.end_visit(id, node, *visit, at_ms, *attempt, &mut attributes, None, out);
            }
            Event::TimerFired { node, visit } | Event::WaitTimedOut { node, visit } => {
                let Some(o) = self.open.get_mut(&id) else { return };
                let name = if matches!(event, Event::TimerFired { .. }) { "timer fired" } else { "timed out" };
                o.visit(node, *visit, at_ms).events.push(SpanEvent { name, at_ms, attributes: Vec::new() });
            }
            Event::BranchFinished { node, visit, branch, outcome } => {
                let Some(o) = self.open.get_mut(&id) else { return };
                let outcome = match outcome {
                    BranchOutcome::Completed { .. } => "completed",
                    BranchOutcome::Failed { .. } => "failed",
                    BranchOutcome::Cancelled => "cancelled",
                };
                let attributes = vec![
                    KeyValue::new("jamjet.branch", i64::from(*branch)),
                    KeyValue::new("jamjet.branch.outcome", outcome),
                ];
                o.visit(node, *visit, at_ms).events.push(SpanEvent { name: "branch finished", at_ms, attributes });
            }
            Event::ExecutionCompleted { .. } => self.end(id, at_ms, "completed", None, out),
            Event::ExecutionFailed { error, .. } => self.end(id, at_ms, "failed", Some(error.clone()), out),
            Event::ExecutionCancelled { reason } => self.end(id, at_ms, "cancelled", Some(reason.clone()), out),
            _ => {}
        }
    }

    fn start(
        &mut self,
        id: ExecutionId,
        trace_id: [u8; 16],
        parent: Option<[u8; 8]>,
        at_ms: u64,
        mut attributes: Vec<KeyValue>,
    ) {
        let id_text: Arc<str> = Arc::from(id.to_string());
        attributes.insert(0, KeyValue::new("jamjet.execution.id", StringValue::from(id_text.clone())));
        let open = Open {
            id_text,
            trace_id,
            parent,
            start_ms: at_ms,
            attributes,
            events: Vec::new(),
            visits: HashMap::new(),
            usage: Usage::default(),
        };
        self.open.insert(id, open);
    }

    /// `id` ended: its span, and those of visits it left open.
    fn end(&mut self, id: ExecutionId, at_ms: u64, status: &'static str, error: Option<String>, out: &mut Vec<Span>) {
        let Some(mut o) = self.open.remove(&id) else { return };
        let left: Vec<(String, u32)> = o.visits.keys().cloned().collect();
        for (node, visit) in left {
            let mut attributes = vec![KeyValue::new("jamjet.node.left_open", true)];
            let why = format!("the execution was {status} while it ran");
            let attempts = o.visits.get(&(node.clone(), visit)).map_or(0, |v| v.attempts);
            let why = (status != "completed").then_some(why);
            o.end_visit(id, &node, visit, at_ms, attempts, &mut attributes, why, out);
        }
        let mut attributes = o.attributes;
        attributes.push(KeyValue::new("jamjet.execution.status", status));
        usage_attributes(&mut attributes, &o.usage);
        let name = attributes
            .iter()
            .find(|kv| kv.key.as_str() == "jamjet.workflow.id")
            .map_or_else(|| "execution".to_string(), |kv| format!("run {}", kv.value.as_str()));
        out.push(Span {
            trace_id: o.trace_id,
            span_id: trace::execution_span(id),
            parent: o.parent,
            name,
            client: false,
            start_ms: o.start_ms,
            end_ms: at_ms,
            attributes,
            events: o.events,
            // A cancelled execution did what it was asked: not an error.
            error: if status == "failed" { error } else { None },
        });
    }
}

impl Open {
    fn visit(&mut self, node: &str, visit: u32, at_ms: u64) -> &mut Visit {
        self.visits.entry((node.to_string(), visit)).or_insert(Visit {
            start_ms: at_ms,
            last_ms: at_ms,
            attempts: 0,
            events: Vec::new(),
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn end_visit(
        &mut self,
        id: ExecutionId,
        node: &str,
        visit: u32,
        at_ms: u64,
        attempt: u32,
        attributes: &mut Vec<KeyValue>,
        error: Option<String>,
        out: &mut Vec<Span>,
    ) {
        let v = self.visits.remove(&(node.to_string(), visit)).unwrap_or(Visit {
            start_ms: at_ms,
            last_ms: at_ms,
            attempts: attempt,
            events: Vec::new(),
        });
        let mut all = base(&self.id_text, node, visit);
        all.push(KeyValue::new("jamjet.node.attempts", i64::from(v.attempts.max(attempt))));
        all.append(attributes);
        out.push(Span {
            trace_id: self.trace_id,
            span_id: trace::visit_span(id, node, visit),
            parent: Some(trace::execution_span(id)),
            name: format!("node {node}"),
            client: false,
            start_ms: v.start_ms,
            end_ms: at_ms,
            attributes: all,
            events: v.events,
            error,
        });
    }
}

/// What names a node visit.
fn base(id: &Arc<str>, node: &str, visit: u32) -> Vec<KeyValue> {
    vec![
        KeyValue::new("jamjet.execution.id", StringValue::from(id.clone())),
        KeyValue::new("jamjet.node.id", node.to_string()),
        KeyValue::new("jamjet.node.visit", i64::from(visit)),
    ]
}

/// The GenAI attributes of a model call (chat completion).
fn model_attributes(attributes: &mut Vec<KeyValue>, model: &str, response: &Json, usage: &Usage) {
    attributes.push(KeyValue::new("gen_ai.operation.name", "chat"));
    attributes.push(KeyValue::new("gen_ai.request.model", model.to_string()));
    let reply = head(response);
    if let Some(m) = reply.model {
        attributes.push(KeyValue::new("gen_ai.response.model", m));
    }
    if let Some(id) = reply.id {
        attributes.push(KeyValue::new("gen_ai.response.id", id));
    }
    usage_attributes(attributes, usage);
}

fn usage_attributes(attributes: &mut Vec<KeyValue>, usage: &Usage) {
    if usage.input_tokens > 0 || usage.output_tokens > 0 {
        attributes.push(KeyValue::new("gen_ai.usage.input_tokens", usage.input_tokens as i64));
        attributes.push(KeyValue::new("gen_ai.usage.output_tokens", usage.output_tokens as i64));
    }
    if usage.cost_usd > 0.0 {
        attributes.push(KeyValue::new("jamjet.cost_usd", usage.cost_usd));
    }
}

fn head(json: &Json) -> ModelHead {
    serde_json::from_str(&json.0).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::{CallRecord, ErrorClass};

    fn j(s: &str) -> Json {
        Json(s.to_string())
    }

    fn started() -> Event {
        Event::ExecutionStarted {
            workflow_id: "wf".into(),
            workflow_version: "1".into(),
            workflow_hash: "h".into(),
            input: j("{}"),
            key: None,
        }
    }

    fn no_root(id: ExecutionId) -> ExecutionId {
        id
    }

    fn attr<'a>(s: &'a Span, key: &str) -> Option<&'a opentelemetry::Value> {
        s.attributes.iter().find(|kv| kv.key.as_str() == key).map(|kv| &kv.value)
    }

    #[test]
    fn an_execution_its_visits_and_a_model_call_become_nested_spans() {
        let id = ExecutionId::new(1_000);
        let usage = Usage { input_tokens: 12, output_tokens: 5, cost_usd: 0.0 };
        let call = CallRecord {
            n: 1,
            kind: "model".into(),
            name: "gpt-x".into(),
            request: j("{}"),
            response: j(r#"{"id":"r1","model":"gpt-x-2"}"#),
            usage,
        };
        let events = [
            (10, started()),
            (11, Event::NodeStarted { node: "a".into(), visit: 1, attempt: 1 }),
            (
                15,
                Event::NodeFailed {
                    node: "a".into(),
                    visit: 1,
                    attempt: 1,
                    class: ErrorClass::Timeout,
                    message: "slow".into(),
                    retry: RetryDecision::Retry { attempt: 2, at_ms: 20 },
                },
            ),
            (20, Event::NodeStarted { node: "a".into(), visit: 1, attempt: 2 }),
            (25, Event::Call { node: "a".into(), visit: 1, attempt: 2, call }),
            (
                30,
                Event::NodeCompleted {
                    node: "a".into(),
                    visit: 1,
                    attempt: 2,
                    patch: j("{}"),
                    next: None,
                    duration_us: 1,
                    usage: Usage::default(),
                },
            ),
            (31, Event::ExecutionCompleted { state: j("{}") }),
        ];
        let mut t = Tracker::default();
        let mut out = Vec::new();
        t.feed(id, events.iter().map(|(at, e)| (*at, e)), true, &no_root, &mut out);
        assert_eq!(out.len(), 3, "{out:#?}");
        let (call, visit, exec) = (&out[0], &out[1], &out[2]);
        assert_eq!((call.name.as_str(), call.start_ms, call.end_ms), ("chat gpt-x", 20, 25));
        assert_eq!(call.parent, Some(visit.span_id));
        assert_eq!(attr(call, "gen_ai.usage.input_tokens"), Some(&opentelemetry::Value::I64(12)));
        assert_eq!(attr(call, "gen_ai.response.model").map(|v| v.as_str().into_owned()), Some("gpt-x-2".into()));
        assert_eq!((visit.name.as_str(), visit.start_ms, visit.end_ms), ("node a", 11, 30));
        assert_eq!(visit.events.len(), 1);
        assert_eq!(visit.events[0].name, "retry");
        assert_eq!(attr(visit, "jamjet.node.attempts"), Some(&opentelemetry::Value::I64(2)));
        assert_eq!(visit.parent, Some(exec.span_id));
        assert_eq!((exec.parent, exec.start_ms, exec.end_ms, exec.error.clone()), (None, 10, 31, None));
        assert_eq!(exec.trace_id, id.to_bytes());
        assert!(!t.knows(id), "an ended execution is forgotten");
    }

    #[test]
    fn a_taken_over_execution_exports_only_what_comes_after_and_a_branch_joins_its_roots_trace() {
        let root = ExecutionId::new(1_000);
        let child = ExecutionId::child(root, "fan", 1, 1, 0);
        let first = [(10, started()), (11, Event::NodeStarted { node: "fan".into(), visit: 1, attempt: 1 })];
        let branch = Event::BranchStarted {
            workflow_id: "wf".into(),
            workflow_version: "1".into(),
            workflow_hash: "h".into(),
            vars: j("{}"),
            parent: root.to_string(),
            parent_node: "fan".into(),
            parent_visit: 1,
            branch: 0,
            start: "b".into(),
            until: None,
            state_at: 2,
        };
        // A new process: nothing open; the root is looked up for the branch.
        let mut t = Tracker::default();
        let mut out = Vec::new();
        let lookup = move |_: ExecutionId| root;
        t.feed(child, [(12, &branch)], true, &lookup, &mut out);
        t.feed(child, [(13, &Event::ExecutionCompleted { state: j("{}") })], true, &lookup, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].trace_id, root.to_bytes());
        assert_eq!(out[0].parent, Some(trace::visit_span(root, "fan", 1)));
        // The root's records before the crash are fed quietly, then the end.
        out.clear();
        t.feed(root, first.iter().map(|(at, e)| (*at, e)), false, &no_root, &mut out);
        assert!(out.is_empty());
        let done = Event::NodeCompleted {
            node: "fan".into(),
            visit: 1,
            attempt: 1,
            patch: j("{}"),
            next: None,
            duration_us: 1,
            usage: Usage::default(),
        };
        t.feed(root, [(20, &done), (21, &Event::ExecutionCompleted { state: j("{}") })], true, &no_root, &mut out);
        assert_eq!(
            out.iter().map(|s| (s.name.as_str(), s.start_ms)).collect::<Vec<_>>(),
            [("node fan", 11), ("run wf", 10)]
        );
    }
}
