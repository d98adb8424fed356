//! `jamjet replay`: fold an execution's journal again through this
//! build's state machine and say where the two disagree (a check before
//! and after an upgrade). [`check`] decides, without effects: every
//! `NodeScheduled` must be one the machine asked for at that point, no
//! record may be one the machine calls inconsistent, a completed
//! execution's recorded final state must be the state the machine folded,
//! and the index row's status must be where the fold ends.

use std::collections::BTreeSet;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{Error, Runtime};
use crate::actors::machine::{Command, ExecutionState, Phase, apply};
use crate::id::ExecutionId;
use crate::ir::Workflow;
use crate::journal::{Event, Record, Status};

/// Where a history and the state machine disagree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Divergence {
    /// The record's sequence number (0: the history as a whole).
    pub seq: u64,
    pub message: String,
}

/// What a replay of one execution found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplayReport {
    pub id: ExecutionId,
    pub workflow_id: String,
    pub workflow_version: String,
    pub records: u64,
    /// The status the fold ends in, and the one the index row says.
    pub folded: String,
    pub status: Status,
    pub divergences: Vec<Divergence>,
}

fn phase_name(p: Phase) -> &'static str {
    match p {
        Phase::NotStarted => "not started",
        Phase::Running => "running",
        Phase::Completed => "completed",
        Phase::Failed => "failed",
        Phase::Cancelled => "cancelled",
    }
}

/// Fold `records` on `workflow` (from `base` for a branch) and list where
/// they disagree with what the machine decides; the fold's final state.
pub fn check(
    id: ExecutionId,
    workflow: &Workflow,
    records: &[Record],
    base: Option<Arc<Map<String, Value>>>,
) -> (ExecutionState, Vec<Divergence>) {
    let mut st = ExecutionState::new(id);
    st.base = base;
    let mut asked: BTreeSet<(String, u32)> = BTreeSet::new();
    let mut out = Vec::new();
    for rec in records {
        let diverged = |message: String| Divergence { seq: rec.seq, message };
        match &rec.event {
            Event::NodeScheduled { node, visit } if !asked.remove(&(node.clone(), *visit)) => {
                let wanted: Vec<String> = asked.iter().map(|(n, v)| format!("`{n}` visit {v}")).collect();
                let wanted = if wanted.is_empty() { "nothing".to_string() } else { wanted.join(", ") };
                out.push(diverged(format!(
                    "node `{node}` visit {visit} is scheduled, but the state machine asked for {wanted} here"
                )));
            }
            Event::Forked { node, visit, .. } => {
                asked.insert((node.clone(), *visit));
            }
            Event::ExecutionCompleted { state } => {
                let recorded = state.object().unwrap_or_default();
                if &recorded != st.final_state() {
                    let mut keys: Vec<&String> = recorded
                        .keys()
                        .chain(st.final_state().keys())
                        .filter(|k| recorded.get(*k) != st.final_state().get(*k))
                        .collect();
                    keys.sort();
                    keys.dedup();
                    let keys: Vec<String> = keys.iter().map(|k| format!("`{k}`")).collect();
                    out.push(diverged(format!(
                        "the recorded final state differs from the folded one in {}",
                        keys.join(", ")
                    )));
                }
            }
            _ => {}
        }
        for c in apply(workflow, &mut st, rec) {
            match c {
                Command::Schedule { node, visit } => {
                    asked.insert((node, visit));
                }
                Command::Fail { error, .. } if error.starts_with("journal inconsistency") => {
                    out.push(diverged(error));
                }
                _ => {}
            }
        }
    }
    (st, out)
}

impl Runtime {
    /// Fold `id`'s journal again through this build's state machine and
    /// report where they disagree (see the module).
    pub fn replay(&self, id: ExecutionId) -> Result<ReplayReport, Error> {
        let meta = self.status(id)?;
        let workflow = self.workflow_of(id)?;
        let records = self.events(id)?;
        let base = crate::actors::start_base(self.services(), id, &records)?;
        let (st, mut divergences) = check(id, &workflow, &records, base);
        let folded = phase_name(st.phase);
        let agrees = match meta.status {
            Status::Running | Status::Waiting => !st.phase.is_terminal(),
            s => folded == s.as_str(),
        };
        if !agrees {
            divergences.push(Divergence {
                seq: 0,
                message: format!("the index row says {}, the fold ends {folded}", meta.status),
            });
        }
        Ok(ReplayReport {
            id,
            workflow_id: meta.workflow_id,
            workflow_version: meta.workflow_version,
            records: records.len() as u64,
            folded: folded.to_string(),
            status: meta.status,
            divergences,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::Json;

    fn rec(seq: u64, event: Event) -> Record {
        Record { seq, at_ms: seq, event }
    }

    fn history(second: &str, final_b: i64) -> Vec<Record> {
        vec![
            rec(
                1,
                Event::ExecutionStarted {
                    workflow_id: "t".into(),
                    workflow_version: "1".into(),
                    workflow_hash: "h".into(),
                    input: Json("{}".into()),
                    key: None,
                },
            ),
            rec(2, Event::NodeScheduled { node: "a".into(), visit: 1 }),
            rec(3, Event::NodeStarted { node: "a".into(), visit: 1, attempt: 1 }),
            rec(
                4,
                Event::NodeCompleted {
                    node: "a".into(),
                    visit: 1,
                    attempt: 1,
                    patch: Json("{\"b\": 1}".into()),
                    next: Some("c".into()),
                    duration_us: 1,
                    usage: Default::default(),
                },
            ),
            rec(5, Event::NodeScheduled { node: second.into(), visit: 1 }),
            rec(6, Event::ExecutionCompleted { state: Json(format!("{{\"b\": {final_b}}}")) }),
        ]
    }

    #[test]
    fn a_history_the_machine_would_write_agrees_and_another_is_named_where_it_differs() {
        let wf = crate::ir::compile_str(
            "id: t\nstate_schema: { b: int }\nnodes:\n  a: { type: set, values: { b: 1 }, next: c }\n  c: { type: end }\n",
            "t.yaml",
        )
        .unwrap();
        let id = ExecutionId::new(1);
        let (_, none) = check(id, &wf, &history("c", 1), None);
        assert_eq!(none, vec![]);
        let (_, found) = check(id, &wf, &history("a", 2), None);
        let messages: Vec<(u64, &str)> = found.iter().map(|d| (d.seq, d.message.as_str())).collect();
        assert_eq!(messages[0], (5, "node `a` visit 1 is scheduled, but the state machine asked for `c` visit 1 here"));
        assert!(
            messages.iter().any(|(seq, m)| *seq == 6 && m.contains("final state differs") && m.contains("`b`")),
            "{messages:?}"
        );
    }
}
