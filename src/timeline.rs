//! An execution's history as one row per node visit: what `jamjet inspect`
//! shows and what later API endpoints serve.
//!
//! Pure: a fold over the records, with no journal or runtime behind it.
//! Besides what each node did, a row says what a `wait` or `approval`
//! waited for and how that ended (a signal, a timeout, a decision), which
//! child executions a `parallel` or `workflow` node started and how each
//! ended, and every failed attempt with the retry decided after it.

use serde::Serialize;
use serde_json::Value;

use crate::id::ExecutionId;
use crate::journal::{BranchOutcome, ErrorClass, Event, Record, RetryDecision, Usage};
use crate::runtime::WaitKind;

/// An execution's history, folded.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Timeline {
    /// One row per node visit, in the order they were scheduled.
    pub nodes: Vec<NodeVisit>,
    /// Signals received that no wait has consumed (yet), oldest first.
    pub kept_signals: Vec<KeptSignal>,
    /// The session the execution is a task of, and what it saw of it.
    pub session: Option<SessionSeen>,
    /// The execution this one is a fork of, and where it forked.
    pub fork: Option<ForkSeen>,
}

/// Where a fork came from (`Forked`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ForkSeen {
    pub from: String,
    /// The original's records copied (1 to this one).
    pub at_seq: u64,
    pub node: String,
    pub visit: u32,
    /// The keys set at the fork.
    pub patch: Value,
    /// The version the original ran, when the fork runs another.
    pub version: Option<String>,
}

/// What a task of a session saw of it (`SessionJoined`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SessionSeen {
    pub session: String,
    pub turn: u32,
    /// The earlier task it carries on from.
    pub after: Option<String>,
    pub message: String,
    /// The conversation so far: `[{user, answer}]`, oldest first.
    pub history: Value,
    /// The `session_state` keys carried into its input.
    pub carried: Value,
}

/// One visit of one node.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeVisit {
    pub node: String,
    pub visit: u32,
    /// scheduled, running, waiting, retrying, completed, failed, cancelled,
    /// stopped (the execution failed around it).
    pub status: &'static str,
    pub scheduled_ms: u64,
    pub started_ms: Option<u64>,
    /// When it completed.
    pub finished_ms: Option<u64>,
    /// Of the attempt that completed; for a node that waited or fanned
    /// out, from its first start to its completion.
    pub duration_us: Option<u64>,
    pub attempts: u32,
    pub patch: Option<Value>,
    pub next: Option<String>,
    /// Every failure, in order: `class: message`.
    pub errors: Vec<String>,
    /// Tokens and cost over every attempt (failed ones too).
    pub usage: Usage,
    /// What each attempt sent and received (model and tool calls).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub exchanges: Vec<ExchangeRow>,
    /// The calls the visit journaled one by one as they completed (a
    /// model node's or an agent's model and tool calls), in order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub calls: Vec<CallRow>,
    /// An eval node's scores, per attempt.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub scores: Vec<ScoreRow>,
    /// Every failed attempt, with what was decided after it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub failures: Vec<AttemptFailure>,
    /// What a wait or approval node waited for (once per attempt that parked).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub waits: Vec<WaitSpan>,
    /// The child executions a parallel or sub-workflow node started.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub branches: Vec<Branch>,
    /// The tool calls of the visit that waited for a person's decision,
    /// in the order asked, each with its decision once made.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tool_approvals: Vec<ToolApproval>,
}

/// A tool call that waited for a person's decision (`CallsPending`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ToolApproval {
    /// Its id (`research.2`), what `jamjet approve --call` names.
    pub call: String,
    pub tool: String,
    pub arguments: Value,
    pub prompt: String,
    /// The attempt that asked for it.
    pub attempt: u32,
    pub since_ms: u64,
    /// `WaitEnd::Decision`; `None` while it waits.
    pub decision: Option<WaitEnd>,
}

/// What one attempt sent and got back.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExchangeRow {
    pub attempt: u32,
    pub at_ms: u64,
    pub request: Value,
    pub response: Value,
    pub usage: Usage,
}

/// One call a visit journaled (`Event::Call`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CallRow {
    /// Its number in the visit, from 1.
    pub n: u32,
    /// The attempt that made it.
    pub attempt: u32,
    pub at_ms: u64,
    /// `model`, `tool`, or a strategy's step.
    pub kind: String,
    pub name: String,
    pub request: Value,
    pub response: Value,
    pub usage: Usage,
}

/// An eval node's scores for one attempt.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScoreRow {
    pub attempt: u32,
    pub passed: bool,
    /// `[{scorer, passed, score, reason}]`.
    pub scores: Value,
}

/// One failed attempt of a node.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AttemptFailure {
    pub attempt: u32,
    pub at_ms: u64,
    pub class: ErrorClass,
    pub message: String,
    /// When the next attempt was due; `None`: the runtime gave up.
    pub retry_at_ms: Option<u64>,
}

/// One park of a wait or approval node, and how it ended.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WaitSpan {
    pub kind: WaitKind,
    pub event: Option<String>,
    pub prompt: Option<String>,
    pub since_ms: u64,
    pub deadline_ms: Option<u64>,
    /// `None` while it waits (or when the execution ended around it).
    pub ended: Option<WaitEnd>,
}

/// How a wait ended.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "how", rename_all = "snake_case")]
pub enum WaitEnd {
    /// The event arrived (`at_ms` is when it was received, which may be
    /// before the wait began: it was kept until then).
    Signal {
        at_ms: u64,
        payload: Value,
    },
    /// The deadline passed first.
    Timeout {
        at_ms: u64,
    },
    /// A timer reached its time (its normal end).
    Fired {
        at_ms: u64,
    },
    Decision {
        at_ms: u64,
        approved: bool,
        by: String,
        comment: Option<String>,
    },
}

/// One child execution of a fan-out.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Branch {
    pub branch: u32,
    /// The node attempt that started it.
    pub attempt: u32,
    pub child: ExecutionId,
    /// completed, failed, cancelled; `None` while the parent has not
    /// recorded its end.
    pub outcome: Option<&'static str>,
    pub error: Option<String>,
    /// The keys it wrote (a sub-workflow: its final state).
    pub patch: Option<Value>,
}

/// A signal no wait has consumed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KeptSignal {
    pub key: String,
    pub at_ms: u64,
    pub payload: Value,
}

/// Fold records into node visits, in the order they were scheduled.
pub fn node_visits(id: ExecutionId, records: &[Record]) -> Vec<NodeVisit> {
    timeline(id, records).nodes
}

/// Fold the records of execution `id`.
pub fn timeline(id: ExecutionId, records: &[Record]) -> Timeline {
    let mut rows: Vec<NodeVisit> = Vec::new();
    let mut kept: Vec<KeptSignal> = Vec::new();
    let mut session = None;
    let mut fork = None;
    let find = |rows: &[NodeVisit], node: &str, visit: u32| -> Option<usize> {
        rows.iter().rposition(|r| r.node == node && r.visit == visit)
    };
    // A fork's copied records name fan-outs whose children ran in the
    // original: those children are the original's. But for the fan-out a
    // fork inside a branch goes on at (its `at_seq`): its branches run in
    // the fork, unless their ends were kept (copied between that record
    // and `Forked`).
    let copied_from: Option<(ExecutionId, u64)> = records.iter().find_map(|r| match &r.event {
        Event::Forked { from, at_seq, .. } => from.parse().ok().map(|f| (f, *at_seq)),
        _ => None,
    });
    let mut forked = false;
    for r in records {
        let kept_end = copied_from.filter(|(_, at_seq)| !forked && r.seq > *at_seq);
        forked |= matches!(r.event, Event::Forked { .. });
        match &r.event {
            Event::NodeScheduled { node, visit } => rows.push(NodeVisit {
                node: node.clone(),
                visit: *visit,
                status: "scheduled",
                scheduled_ms: r.at_ms,
                started_ms: None,
                finished_ms: None,
                duration_us: None,
                attempts: 0,
                patch: None,
                next: None,
                errors: Vec::new(),
                usage: Usage::default(),
                exchanges: Vec::new(),
                calls: Vec::new(),
                scores: Vec::new(),
                failures: Vec::new(),
                waits: Vec::new(),
                branches: Vec::new(),
                tool_approvals: Vec::new(),
            }),
            Event::NodeStarted { node, visit, attempt } => {
                if let Some(i) = find(&rows, node, *visit) {
                    let row = &mut rows[i];
                    row.status = "running";
                    row.started_ms.get_or_insert(r.at_ms);
                    row.attempts = *attempt;
                }
            }
            Event::NodeCompleted { node, visit, patch, next, duration_us, .. } => {
                if let Some(i) = find(&rows, node, *visit) {
                    let row = &mut rows[i];
                    row.status = "completed";
                    row.finished_ms = Some(r.at_ms);
                    // A node the execution carries out itself journals no
                    // duration of its own: it lasted until it completed.
                    let waited = !row.waits.is_empty() || !row.branches.is_empty();
                    row.duration_us = match (waited, row.started_ms) {
                        (true, Some(s)) => Some(r.at_ms.saturating_sub(s).saturating_mul(1000)),
                        _ => Some(*duration_us),
                    };
                    row.patch = patch.value().ok();
                    row.next = next.clone();
                }
            }
            Event::NodeFailed { node, visit, attempt, class, message, retry } => {
                if let Some(i) = find(&rows, node, *visit) {
                    let row = &mut rows[i];
                    row.errors.push(format!("{class}: {message}"));
                    let retry_at_ms = match retry {
                        RetryDecision::Retry { at_ms, .. } => Some(*at_ms),
                        RetryDecision::GiveUp => None,
                    };
                    row.failures.push(AttemptFailure {
                        attempt: *attempt,
                        at_ms: r.at_ms,
                        class: *class,
                        message: message.clone(),
                        retry_at_ms,
                    });
                    row.status = if retry_at_ms.is_some() { "retrying" } else { "failed" };
                }
            }
            Event::Waiting { node, visit, event, deadline_ms, prompt } => {
                if let Some(i) = find(&rows, node, *visit) {
                    let kind = match (event, prompt) {
                        (Some(_), _) => WaitKind::Event,
                        (None, Some(_)) => WaitKind::Approval,
                        (None, None) => WaitKind::Timer,
                    };
                    // An event that arrived before the wait began is consumed now.
                    let early = event.as_ref().and_then(|k| kept.iter().position(|s| &s.key == k));
                    let ended =
                        early.map(|p| kept.remove(p)).map(|s| WaitEnd::Signal { at_ms: s.at_ms, payload: s.payload });
                    let row = &mut rows[i];
                    if ended.is_none() {
                        row.status = "waiting";
                    }
                    row.waits.push(WaitSpan {
                        kind,
                        event: event.clone(),
                        prompt: prompt.clone(),
                        since_ms: r.at_ms,
                        deadline_ms: *deadline_ms,
                        ended,
                    });
                }
            }
            Event::SignalReceived { key, payload } => {
                let payload = payload.value().unwrap_or(Value::Null);
                // The machine hands it to the first waiting node, by node id.
                let open = rows
                    .iter_mut()
                    .filter(|row| {
                        row.waits.last().is_some_and(|w| {
                            w.ended.is_none() && w.event.as_ref() == Some(key) && row.status == "waiting"
                        })
                    })
                    .min_by(|a, b| a.node.cmp(&b.node));
                match open {
                    Some(row) => {
                        row.status = "running";
                        let w = row.waits.last_mut().expect("filtered on it");
                        w.ended = Some(WaitEnd::Signal { at_ms: r.at_ms, payload });
                    }
                    None => kept.push(KeptSignal { key: key.clone(), at_ms: r.at_ms, payload }),
                }
            }
            Event::WaitTimedOut { node, visit } | Event::TimerFired { node, visit } => {
                if let Some(i) = find(&rows, node, *visit)
                    && let Some(w) = rows[i].waits.last_mut().filter(|w| w.ended.is_none())
                {
                    // A timer fired, whichever event says so (journals
                    // before `TimerFired` end a timer with `WaitTimedOut`).
                    w.ended = Some(match w.kind {
                        WaitKind::Timer => WaitEnd::Fired { at_ms: r.at_ms },
                        _ => WaitEnd::Timeout { at_ms: r.at_ms },
                    });
                    rows[i].status = "running";
                }
            }
            Event::ApprovalDecided { node, visit, approved, by, comment } => {
                if let Some(i) = find(&rows, node, *visit)
                    && let Some(w) = rows[i].waits.last_mut().filter(|w| w.ended.is_none())
                {
                    w.ended = Some(WaitEnd::Decision {
                        at_ms: r.at_ms,
                        approved: *approved,
                        by: by.clone(),
                        comment: comment.clone(),
                    });
                    rows[i].status = "running";
                }
            }
            Event::FanOut { node, visit, attempt, branches } => {
                let ran_in = match copied_from {
                    Some((from, at_seq)) if r.seq < at_seq => from,
                    _ => id,
                };
                if let Some(i) = find(&rows, node, *visit) {
                    rows[i].branches.extend((0..*branches).map(|b| Branch {
                        branch: b,
                        attempt: *attempt,
                        child: ExecutionId::child(ran_in, node, *visit, *attempt, b),
                        outcome: None,
                        error: None,
                        patch: None,
                    }));
                }
            }
            Event::Exchange { node, visit, attempt, request, response, usage } => {
                if let Some(i) = find(&rows, node, *visit) {
                    let row = &mut rows[i];
                    row.usage.add(usage);
                    row.exchanges.push(ExchangeRow {
                        attempt: *attempt,
                        at_ms: r.at_ms,
                        request: request.value().unwrap_or(Value::Null),
                        response: response.value().unwrap_or(Value::Null),
                        usage: *usage,
                    });
                }
            }
            Event::Call { node, visit, attempt, call } => {
                if let Some(i) = find(&rows, node, *visit) {
                    let row = &mut rows[i];
                    row.usage.add(&call.usage);
                    row.calls.push(CallRow {
                        n: call.n,
                        attempt: *attempt,
                        at_ms: r.at_ms,
                        kind: call.kind.clone(),
                        name: call.name.clone(),
                        request: call.request.value().unwrap_or(Value::Null),
                        response: call.response.value().unwrap_or(Value::Null),
                        usage: call.usage,
                    });
                }
            }
            Event::SessionJoined { session: id, turn, after, message, history, carried } => {
                session = Some(SessionSeen {
                    session: id.clone(),
                    turn: *turn,
                    after: after.clone(),
                    message: message.clone(),
                    history: history.value().unwrap_or(Value::Null),
                    carried: carried.value().unwrap_or(Value::Null),
                });
            }
            Event::Forked { from, at_seq, node, visit, patch, version } => {
                fork = Some(ForkSeen {
                    from: from.clone(),
                    at_seq: *at_seq,
                    node: node.clone(),
                    visit: *visit,
                    patch: patch.value().unwrap_or(Value::Null),
                    version: version.clone(),
                });
            }
            Event::Scored { node, visit, attempt, scores, passed } => {
                if let Some(i) = find(&rows, node, *visit) {
                    let scores = scores.value().unwrap_or(Value::Null);
                    rows[i].scores.push(ScoreRow { attempt: *attempt, passed: *passed, scores });
                }
            }
            Event::BranchFinished { node, visit, branch, outcome } => {
                if let Some(i) = find(&rows, node, *visit)
                    && let Some(b) = rows[i].branches.iter_mut().rev().find(|b| b.branch == *branch)
                {
                    if let Some((from, _)) = kept_end {
                        b.child = ExecutionId::child(from, node, *visit, b.attempt, *branch);
                    }
                    match outcome {
                        BranchOutcome::Completed { patch } => {
                            b.outcome = Some("completed");
                            b.patch = patch.value().ok();
                        }
                        BranchOutcome::Failed { error } => {
                            b.outcome = Some("failed");
                            b.error = Some(error.clone());
                        }
                        BranchOutcome::Cancelled => b.outcome = Some("cancelled"),
                    }
                }
            }
            Event::ExecutionCancelled { .. } | Event::ExecutionFailed { .. } => {
                let ended = if matches!(r.event, Event::ExecutionCancelled { .. }) { "cancelled" } else { "stopped" };
                for row in &mut rows {
                    if matches!(row.status, "scheduled" | "running" | "waiting" | "retrying") {
                        row.status = ended;
                    }
                }
            }
            Event::CallsPending { node, visit, attempt, calls } => {
                if let Some(i) = find(&rows, node, *visit) {
                    let row = &mut rows[i];
                    row.status = "waiting";
                    row.tool_approvals.extend(calls.iter().map(|c| ToolApproval {
                        call: c.id.clone(),
                        tool: c.tool.clone(),
                        arguments: c.arguments.value().unwrap_or(Value::Null),
                        prompt: c.prompt.clone(),
                        attempt: *attempt,
                        since_ms: r.at_ms,
                        decision: None,
                    }));
                }
            }
            Event::CallDecided { node, visit, call, approved, by, comment } => {
                if let Some(i) = find(&rows, node, *visit)
                    && let Some(a) = rows[i].tool_approvals.iter_mut().find(|a| a.call == *call && a.decision.is_none())
                {
                    a.decision = Some(WaitEnd::Decision {
                        at_ms: r.at_ms,
                        approved: *approved,
                        by: by.clone(),
                        comment: comment.clone(),
                    });
                }
            }
            Event::ExecutionStarted { .. }
            | Event::ChildStarted { .. }
            | Event::BranchStarted { .. }
            | Event::ExecutionCompleted { .. } => {}
        }
    }
    Timeline { nodes: rows, kept_signals: kept, session, fork }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::Json;

    fn rec(seq: u64, event: Event) -> Record {
        Record { seq, at_ms: 1000 * seq, event }
    }

    fn started(node: &str, seq: u64) -> [Record; 2] {
        [
            rec(seq, Event::NodeScheduled { node: node.into(), visit: 1 }),
            rec(seq + 1, Event::NodeStarted { node: node.into(), visit: 1, attempt: 1 }),
        ]
    }

    #[test]
    fn a_node_costs_every_attempt_and_keeps_each_exchange_and_its_scores() {
        let id = ExecutionId::new(0);
        let usage = |i, o, c| Usage { input_tokens: i, output_tokens: o, cost_usd: c };
        let exchange = |seq, attempt, u| {
            rec(
                seq,
                Event::Exchange {
                    node: "ask".into(),
                    visit: 1,
                    attempt,
                    request: Json(r#"{"prompt":"hi"}"#.into()),
                    response: Json(format!(r#"{{"text":"reply {attempt}"}}"#)),
                    usage: u,
                },
            )
        };
        let mut records = started("ask", 1).to_vec();
        records.push(exchange(3, 1, usage(10, 2, 0.5)));
        records.push(rec(
            4,
            Event::NodeFailed {
                node: "ask".into(),
                visit: 1,
                attempt: 1,
                class: ErrorClass::InvalidOutput,
                message: "not JSON".into(),
                retry: RetryDecision::Retry { attempt: 2, at_ms: 5000 },
            },
        ));
        records.push(rec(5, Event::NodeStarted { node: "ask".into(), visit: 1, attempt: 2 }));
        records.push(exchange(6, 2, usage(12, 3, 0.25)));
        records.push(rec(
            7,
            Event::Scored {
                node: "ask".into(),
                visit: 1,
                attempt: 2,
                scores: Json(r#"[{"scorer":"contains","passed":true,"score":1.0,"reason":null}]"#.into()),
                passed: true,
            },
        ));
        let row = &timeline(id, &records).nodes[0];
        assert_eq!(row.usage, usage(22, 5, 0.75));
        assert_eq!(row.exchanges.len(), 2);
        assert_eq!(row.exchanges[1].response["text"], "reply 2");
        assert_eq!((row.exchanges[0].attempt, row.exchanges[0].at_ms), (1, 3000));
        assert_eq!(row.scores.len(), 1);
        assert!(row.scores[0].passed);
        assert_eq!(row.scores[0].scores[0]["scorer"], "contains");
    }

    #[test]
    fn a_signal_ends_the_wait_for_its_key_and_one_nothing_waits_for_is_kept() {
        let id = ExecutionId::new(0);
        let mut records = started("pay", 1).to_vec();
        records.push(rec(
            3,
            Event::Waiting {
                node: "pay".into(),
                visit: 1,
                event: Some("p:1".into()),
                deadline_ms: Some(9000),
                prompt: None,
            },
        ));
        records.push(rec(4, Event::SignalReceived { key: "other".into(), payload: Json("1".into()) }));
        let t = timeline(id, &records);
        assert_eq!(t.nodes[0].status, "waiting");
        assert_eq!(t.kept_signals.len(), 1);
        records.push(rec(5, Event::SignalReceived { key: "p:1".into(), payload: Json(r#"{"ok":true}"#.into()) }));
        records.push(rec(
            6,
            Event::NodeCompleted {
                node: "pay".into(),
                visit: 1,
                attempt: 1,
                patch: Json("{}".into()),
                next: None,
                duration_us: 0,
                usage: Usage::default(),
            },
        ));
        let t = timeline(id, &records);
        let row = &t.nodes[0];
        assert_eq!(row.status, "completed");
        assert_eq!(row.duration_us, Some(4_000_000), "from its start to its completion");
        let w = &row.waits[0];
        assert_eq!((w.kind, w.deadline_ms), (WaitKind::Event, Some(9000)));
        assert_eq!(w.ended, Some(WaitEnd::Signal { at_ms: 5000, payload: serde_json::json!({"ok": true}) }));
    }

    #[test]
    fn an_event_that_came_first_is_consumed_when_the_wait_begins() {
        let id = ExecutionId::new(0);
        let mut records = vec![rec(1, Event::SignalReceived { key: "k".into(), payload: Json("7".into()) })];
        records.extend(started("w", 2));
        records.push(rec(
            4,
            Event::Waiting { node: "w".into(), visit: 1, event: Some("k".into()), deadline_ms: None, prompt: None },
        ));
        let t = timeline(id, &records);
        assert!(t.kept_signals.is_empty());
        assert_eq!(t.nodes[0].waits[0].ended, Some(WaitEnd::Signal { at_ms: 1000, payload: serde_json::json!(7) }));
        assert_ne!(t.nodes[0].status, "waiting");
    }

    #[test]
    fn decisions_timeouts_branches_and_retries_are_on_their_rows() {
        let id = ExecutionId::new(0);
        let mut records = started("ok", 1).to_vec();
        records.push(rec(
            3,
            Event::Waiting {
                node: "ok".into(),
                visit: 1,
                event: None,
                deadline_ms: None,
                prompt: Some("Ship?".into()),
            },
        ));
        records.push(rec(
            4,
            Event::ApprovalDecided {
                node: "ok".into(),
                visit: 1,
                approved: false,
                by: "ada".into(),
                comment: Some("no".into()),
            },
        ));
        records.extend(started("fan", 5));
        records.push(rec(7, Event::FanOut { node: "fan".into(), visit: 1, attempt: 1, branches: 2 }));
        records.push(rec(
            8,
            Event::BranchFinished {
                node: "fan".into(),
                visit: 1,
                branch: 1,
                outcome: BranchOutcome::Failed { error: "boom".into() },
            },
        ));
        records.push(rec(
            9,
            Event::NodeFailed {
                node: "fan".into(),
                visit: 1,
                attempt: 1,
                class: ErrorClass::ChildFailed,
                message: "branch 1 failed: boom".into(),
                retry: RetryDecision::Retry { attempt: 2, at_ms: 12_000 },
            },
        ));
        records.extend(started("t", 10));
        records.push(rec(
            12,
            Event::Waiting { node: "t".into(), visit: 1, event: None, deadline_ms: Some(13_000), prompt: None },
        ));
        records.push(rec(13, Event::WaitTimedOut { node: "t".into(), visit: 1 }));
        records.push(rec(14, Event::ExecutionCancelled { reason: "enough".into() }));
        let t = timeline(id, &records);
        let [ok, fan, timer] = &t.nodes[..] else { panic!("three rows: {:?}", t.nodes) };
        assert_eq!(ok.waits[0].kind, WaitKind::Approval);
        assert!(matches!(&ok.waits[0].ended, Some(WaitEnd::Decision { approved: false, by, .. }) if by == "ada"));
        assert_eq!(fan.branches.len(), 2);
        assert_eq!(fan.branches[1].child, ExecutionId::child(id, "fan", 1, 1, 1));
        assert_eq!((fan.branches[0].outcome, fan.branches[1].outcome), (None, Some("failed")));
        assert_eq!(fan.failures[0].retry_at_ms, Some(12_000));
        assert_eq!(fan.status, "cancelled");
        assert_eq!(timer.waits[0].ended, Some(WaitEnd::Fired { at_ms: 13_000 }), "an old journal's timer");
    }

    #[test]
    fn a_timer_fires_and_a_wait_times_out() {
        let id = ExecutionId::new(0);
        let mut records = started("nap", 1).to_vec();
        records.push(rec(
            3,
            Event::Waiting { node: "nap".into(), visit: 1, event: None, deadline_ms: Some(4000), prompt: None },
        ));
        records.push(rec(4, Event::TimerFired { node: "nap".into(), visit: 1 }));
        records.extend(started("pay", 5));
        records.push(rec(
            7,
            Event::Waiting {
                node: "pay".into(),
                visit: 1,
                event: Some("p".into()),
                deadline_ms: Some(8000),
                prompt: None,
            },
        ));
        records.push(rec(8, Event::WaitTimedOut { node: "pay".into(), visit: 1 }));
        let t = timeline(id, &records);
        assert_eq!(t.nodes[0].waits[0].ended, Some(WaitEnd::Fired { at_ms: 4000 }));
        assert_eq!(t.nodes[1].waits[0].ended, Some(WaitEnd::Timeout { at_ms: 8000 }));
        let how = serde_json::to_value(&t.nodes[0].waits[0].ended).unwrap();
        assert_eq!(how, serde_json::json!({"how": "fired", "at_ms": 4000}));
    }
}
