//! The execution state machine: `apply(workflow, state, record) -> commands`.
//!
//! Pure: no IO, no clock, no await. The ExecutionActor persists an event,
//! applies it here, and carries out the commands; recovery folds the
//! journal through the same function and then asks [`resume`] what is left
//! to do, so a live run and a replay cannot drift apart.

use std::collections::{BTreeMap, HashMap};

use serde_json::{Map, Value};

use crate::id::ExecutionId;
use crate::ir::Workflow;
use crate::journal::{ErrorClass, Event, Record, RetryDecision, Usage};

/// Where an execution stands in the machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    NotStarted,
    Running,
    Completed,
    Failed,
    Cancelled,
}

impl Phase {
    pub fn is_terminal(self) -> bool {
        matches!(self, Phase::Completed | Phase::Failed | Phase::Cancelled)
    }
}

/// A node that has been scheduled and has not completed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveNode {
    pub visit: u32,
    /// The last attempt started; 0 while only scheduled.
    pub attempt: u32,
    /// A retry waiting for its deadline: (attempt, unix ms).
    pub retry_at: Option<(u32, u64)>,
    /// When each panic of this visit happened (for the restart budget).
    pub panics: Vec<u64>,
}

/// Everything the machine knows about one execution, folded from events.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecutionState {
    pub id: ExecutionId,
    pub phase: Phase,
    pub state: Map<String, Value>,
    /// Times each node has been scheduled.
    pub visits: HashMap<String, u32>,
    pub active: BTreeMap<String, ActiveNode>,
    /// Sequence number of the last event applied.
    pub last_seq: u64,
    pub usage: Usage,
    pub started_ms: u64,
    pub finished_ms: Option<u64>,
    pub error: Option<String>,
    pub key: Option<String>,
}

/// What the shell must do after an event is applied. `Schedule`, `Start`,
/// `Complete` and `Fail` become events (the shell stamps them with the
/// time); `Run`, `RetryAt` and `Finished` are effects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Schedule { node: String, visit: u32 },
    Start { node: String, visit: u32, attempt: u32 },
    Run { node: String, visit: u32, attempt: u32 },
    RetryAt { node: String, visit: u32, attempt: u32, at_ms: u64 },
    Complete,
    Fail { node: Option<String>, error: String },
    Finished,
}

impl ExecutionState {
    pub fn new(id: ExecutionId) -> Self {
        ExecutionState {
            id,
            phase: Phase::NotStarted,
            state: Map::new(),
            visits: HashMap::new(),
            active: BTreeMap::new(),
            last_seq: 0,
            usage: Usage::default(),
            started_ms: 0,
            finished_ms: None,
            error: None,
            key: None,
        }
    }

    /// Fold a whole history (no commands are carried out).
    pub fn replay(id: ExecutionId, workflow: &Workflow, records: &[Record]) -> Self {
        let mut st = ExecutionState::new(id);
        for r in records {
            apply(workflow, &mut st, r);
        }
        st
    }
}

fn inconsistent(what: String) -> Vec<Command> {
    vec![Command::Fail { node: None, error: format!("journal inconsistency: {what}") }]
}

/// Apply one recorded event. Events after a terminal event change nothing.
pub fn apply(workflow: &Workflow, st: &mut ExecutionState, rec: &Record) -> Vec<Command> {
    st.last_seq = rec.seq;
    if st.phase.is_terminal() {
        return Vec::new();
    }
    match &rec.event {
        Event::ExecutionStarted { input, key, .. } => {
            st.phase = Phase::Running;
            st.started_ms = rec.at_ms;
            st.key = key.clone();
            st.state = input.object().unwrap_or_default();
            vec![Command::Schedule { node: workflow.start.clone(), visit: 1 }]
        }
        Event::NodeScheduled { node, visit } => {
            st.visits.insert(node.clone(), *visit);
            st.active
                .insert(node.clone(), ActiveNode { visit: *visit, attempt: 0, retry_at: None, panics: Vec::new() });
            vec![Command::Start { node: node.clone(), visit: *visit, attempt: 1 }]
        }
        Event::NodeStarted { node, visit, attempt } => match st.active.get_mut(node) {
            Some(a) if a.visit == *visit => {
                a.attempt = *attempt;
                a.retry_at = None;
                vec![Command::Run { node: node.clone(), visit: *visit, attempt: *attempt }]
            }
            _ => inconsistent(format!("node `{node}` visit {visit} started without being scheduled")),
        },
        Event::NodeCompleted { node, visit, patch, next, usage, .. } => {
            if st.active.get(node).map(|a| a.visit) != Some(*visit) {
                return inconsistent(format!("node `{node}` visit {visit} completed without running"));
            }
            st.active.remove(node);
            match patch.object() {
                Ok(p) => st.state.extend(p),
                Err(e) => return inconsistent(format!("patch of node `{node}`: {e}")),
            }
            st.usage.add(usage);
            match next {
                Some(n) => {
                    let visit = st.visits.get(n).copied().unwrap_or(0) + 1;
                    vec![Command::Schedule { node: n.clone(), visit }]
                }
                None if st.active.is_empty() => vec![Command::Complete],
                None => Vec::new(),
            }
        }
        Event::NodeFailed { node, visit, class, message, retry, .. } => {
            let Some(a) = st.active.get_mut(node).filter(|a| a.visit == *visit) else {
                return inconsistent(format!("node `{node}` visit {visit} failed without running"));
            };
            if *class == ErrorClass::Panic {
                a.panics.push(rec.at_ms);
            }
            match retry {
                RetryDecision::Retry { attempt, at_ms } => {
                    a.retry_at = Some((*attempt, *at_ms));
                    vec![Command::RetryAt { node: node.clone(), visit: *visit, attempt: *attempt, at_ms: *at_ms }]
                }
                RetryDecision::GiveUp => vec![Command::Fail {
                    node: Some(node.clone()),
                    error: format!("node `{node}` failed ({class}): {message}"),
                }],
            }
        }
        Event::ExecutionCompleted { .. } => {
            st.phase = Phase::Completed;
            st.finished_ms = Some(rec.at_ms);
            st.active.clear();
            vec![Command::Finished]
        }
        Event::ExecutionFailed { error, .. } => {
            st.phase = Phase::Failed;
            st.finished_ms = Some(rec.at_ms);
            st.error = Some(error.clone());
            st.active.clear();
            vec![Command::Finished]
        }
        Event::ExecutionCancelled { reason } => {
            st.phase = Phase::Cancelled;
            st.finished_ms = Some(rec.at_ms);
            st.error = Some(format!("cancelled: {reason}"));
            st.active.clear();
            vec![Command::Finished]
        }
        _ => Vec::new(),
    }
}

/// What a rehydrated execution must do to go on from where its journal
/// stops: a node scheduled but not started starts; a node started but not
/// completed starts again with attempt + 1 (same visit, so the same
/// idempotency key); a pending retry waits for its recorded deadline.
pub fn resume(st: &ExecutionState) -> Vec<Command> {
    match st.phase {
        Phase::NotStarted => {
            return vec![Command::Fail { node: None, error: "the journal has no ExecutionStarted".into() }];
        }
        p if p.is_terminal() => return Vec::new(),
        _ => {}
    }
    if st.active.is_empty() {
        return vec![Command::Complete];
    }
    st.active
        .iter()
        .map(|(node, a)| match a.retry_at {
            Some((attempt, at_ms)) => Command::RetryAt { node: node.clone(), visit: a.visit, attempt, at_ms },
            None => Command::Start { node: node.clone(), visit: a.visit, attempt: a.attempt + 1 },
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::Json;

    fn wf() -> Workflow {
        crate::ir::compile_str(
            "id: t\nstate_schema: { n: int }\nnodes:\n  a: { type: set, values: { n: 1 }, next: b }\n  b: { type: end }\n",
            "t.yaml",
        )
        .unwrap()
    }

    fn rec(seq: u64, event: Event) -> Record {
        Record { seq, at_ms: 1000 + seq, event }
    }

    fn started() -> Event {
        Event::ExecutionStarted {
            workflow_id: "t".into(),
            workflow_version: "0.1.0".into(),
            workflow_hash: "h".into(),
            input: Json("{}".into()),
            key: None,
        }
    }

    #[test]
    fn start_schedules_the_start_node_then_starts_and_runs_it() {
        let wf = wf();
        let mut st = ExecutionState::new(ExecutionId::new(0));
        assert_eq!(apply(&wf, &mut st, &rec(1, started())), vec![Command::Schedule { node: "a".into(), visit: 1 }]);
        assert_eq!(
            apply(&wf, &mut st, &rec(2, Event::NodeScheduled { node: "a".into(), visit: 1 })),
            vec![Command::Start { node: "a".into(), visit: 1, attempt: 1 }]
        );
        assert_eq!(
            apply(&wf, &mut st, &rec(3, Event::NodeStarted { node: "a".into(), visit: 1, attempt: 1 })),
            vec![Command::Run { node: "a".into(), visit: 1, attempt: 1 }]
        );
        assert_eq!(st.phase, Phase::Running);
    }

    #[test]
    fn completion_merges_the_patch_and_schedules_next_or_completes() {
        let wf = wf();
        let mut st = ExecutionState::new(ExecutionId::new(0));
        apply(&wf, &mut st, &rec(1, started()));
        apply(&wf, &mut st, &rec(2, Event::NodeScheduled { node: "a".into(), visit: 1 }));
        apply(&wf, &mut st, &rec(3, Event::NodeStarted { node: "a".into(), visit: 1, attempt: 1 }));
        let done = |node: &str, next: Option<&str>| Event::NodeCompleted {
            node: node.into(),
            visit: 1,
            attempt: 1,
            patch: Json(r#"{"n":1}"#.into()),
            next: next.map(Into::into),
            duration_us: 5,
            usage: Usage::default(),
        };
        assert_eq!(
            apply(&wf, &mut st, &rec(4, done("a", Some("b")))),
            vec![Command::Schedule { node: "b".into(), visit: 1 }]
        );
        assert_eq!(st.state["n"], 1);
        apply(&wf, &mut st, &rec(5, Event::NodeScheduled { node: "b".into(), visit: 1 }));
        apply(&wf, &mut st, &rec(6, Event::NodeStarted { node: "b".into(), visit: 1, attempt: 1 }));
        assert_eq!(apply(&wf, &mut st, &rec(7, done("b", None))), vec![Command::Complete]);
        assert_eq!(
            apply(&wf, &mut st, &rec(8, Event::ExecutionCompleted { state: Json(r#"{"n":1}"#.into()) })),
            vec![Command::Finished]
        );
        assert!(apply(&wf, &mut st, &rec(9, Event::NodeScheduled { node: "a".into(), visit: 2 })).is_empty());
    }

    #[test]
    fn a_started_node_resumes_with_the_next_attempt_and_a_retry_keeps_its_deadline() {
        let wf = wf();
        let mut st = ExecutionState::new(ExecutionId::new(0));
        apply(&wf, &mut st, &rec(1, started()));
        apply(&wf, &mut st, &rec(2, Event::NodeScheduled { node: "a".into(), visit: 1 }));
        assert_eq!(resume(&st), vec![Command::Start { node: "a".into(), visit: 1, attempt: 1 }]);
        apply(&wf, &mut st, &rec(3, Event::NodeStarted { node: "a".into(), visit: 1, attempt: 1 }));
        assert_eq!(resume(&st), vec![Command::Start { node: "a".into(), visit: 1, attempt: 2 }]);
        let failed = Event::NodeFailed {
            node: "a".into(),
            visit: 1,
            attempt: 1,
            class: ErrorClass::Timeout,
            message: "slow".into(),
            retry: RetryDecision::Retry { attempt: 2, at_ms: 9_999 },
        };
        assert_eq!(
            apply(&wf, &mut st, &rec(4, failed)),
            vec![Command::RetryAt { node: "a".into(), visit: 1, attempt: 2, at_ms: 9_999 }]
        );
        assert_eq!(resume(&st), vec![Command::RetryAt { node: "a".into(), visit: 1, attempt: 2, at_ms: 9_999 }]);
    }

    #[test]
    fn giving_up_fails_the_execution_with_the_node_and_message() {
        let wf = wf();
        let mut st = ExecutionState::new(ExecutionId::new(0));
        apply(&wf, &mut st, &rec(1, started()));
        apply(&wf, &mut st, &rec(2, Event::NodeScheduled { node: "a".into(), visit: 1 }));
        apply(&wf, &mut st, &rec(3, Event::NodeStarted { node: "a".into(), visit: 1, attempt: 1 }));
        let cmds = apply(
            &wf,
            &mut st,
            &rec(
                4,
                Event::NodeFailed {
                    node: "a".into(),
                    visit: 1,
                    attempt: 1,
                    class: ErrorClass::Panic,
                    message: "boom".into(),
                    retry: RetryDecision::GiveUp,
                },
            ),
        );
        assert!(matches!(&cmds[..], [Command::Fail { node: Some(n), error }] if n == "a" && error.contains("boom")));
        assert_eq!(st.active["a"].panics, vec![1004]);
    }

    #[test]
    fn out_of_order_history_is_reported_not_panicked_on() {
        let wf = wf();
        let mut st = ExecutionState::new(ExecutionId::new(0));
        apply(&wf, &mut st, &rec(1, started()));
        let cmds = apply(&wf, &mut st, &rec(2, Event::NodeStarted { node: "zz".into(), visit: 1, attempt: 1 }));
        assert!(matches!(&cmds[..], [Command::Fail { error, .. }] if error.contains("inconsistency")));
    }
}
