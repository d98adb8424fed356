//! Forking an execution from a node visit ([`Runtime::fork`]): a new
//! execution whose first records are the original's up to the moment that
//! visit was scheduled (the same state, the same step count and usage),
//! then `Forked` (where it came from, and the keys set at the fork) and the
//! visit scheduled again. It runs on the workflow the original ran, or on
//! the newest registered version of that workflow (`latest`); the original
//! is only read. [`cut`] and [`plan`] decide, without effects; the runtime
//! appends the plan as the fork's first batch and carries it on.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{Error, Runtime};
use crate::actors::machine::{Command, ExecutionState, apply};
use crate::id::ExecutionId;
use crate::ir::Workflow;
use crate::journal::{Append, Event, ExecutionMeta, Json, Record, Status};

/// Where a fork goes on, and what it changes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForkSpec {
    /// The node it goes on at.
    pub from: String,
    /// Which visit of it (the last one when absent).
    #[serde(default)]
    pub visit: Option<u32>,
    /// Keys merged over the state at the fork, checked against the schema.
    #[serde(default)]
    pub set: Map<String, Value>,
    /// Run on the newest registered version of the workflow.
    #[serde(default)]
    pub latest: bool,
}

/// The record index of `NodeScheduled { from, visit }` in `records` (the
/// last visit of `from` when `visit` is absent), and the visit; or why
/// there is none, naming the node's visits and the nodes that ran.
pub fn cut(records: &[Record], from: &str, visit: Option<u32>) -> Result<(usize, u32), String> {
    let scheduled: Vec<(usize, &str, u32)> = records
        .iter()
        .enumerate()
        .filter_map(|(i, r)| match &r.event {
            Event::NodeScheduled { node, visit } => Some((i, node.as_str(), *visit)),
            _ => None,
        })
        .collect();
    let visits: Vec<(usize, u32)> = scheduled.iter().filter(|(_, n, _)| *n == from).map(|(i, _, v)| (*i, *v)).collect();
    match (visit, visits.last()) {
        (None, Some(&last)) => Ok(last),
        (Some(want), _) => visits.iter().find(|(_, v)| *v == want).copied().ok_or_else(|| {
            let had: Vec<String> = visits.iter().map(|(_, v)| v.to_string()).collect();
            match had.is_empty() {
                true => never(from, &scheduled),
                false => format!("node `{from}` has no visit {want} (its visits: {})", had.join(", ")),
            }
        }),
        (None, None) => Err(never(from, &scheduled)),
    }
}

fn never(from: &str, scheduled: &[(usize, &str, u32)]) -> String {
    let mut ran: Vec<&str> = Vec::new();
    for (_, n, _) in scheduled {
        if !ran.contains(n) {
            ran.push(n);
        }
    }
    format!("node `{from}` never ran in it (nodes that ran: {})", ran.join(", "))
}

/// The parallel node whose branches start at `node`, if one does.
fn branch_of<'w>(workflow: &'w Workflow, node: &str) -> Option<&'w str> {
    workflow.nodes.iter().find_map(|(id, n)| match &n.kind {
        crate::ir::NodeKind::Parallel(p) if p.branches.iter().any(|b| b == node) => Some(id.as_str()),
        _ => None,
    })
}

/// The fork's first batch: the original's records before the cut (its
/// submission naming `workflow`, without the idempotency key), `Forked`,
/// and the visit scheduled. Refused when the records do not fold on
/// `workflow` (another version that lacks what they name), or the state
/// with `set` would outgrow the limit.
pub fn plan(
    original: ExecutionId,
    records: &[Record],
    (at, visit): (usize, u32),
    spec: &ForkSpec,
    (workflow, hash): (&Workflow, &str),
    moved_from: Option<String>,
) -> Result<Vec<Event>, String> {
    let mut events: Vec<Event> = records[..at].iter().map(|r| r.event.clone()).collect();
    match events.first_mut() {
        Some(Event::ExecutionStarted { workflow_id, workflow_version, workflow_hash, key, .. }) => {
            *workflow_id = workflow.id.clone();
            *workflow_version = workflow.version.clone();
            *workflow_hash = hash.to_string();
            *key = None;
        }
        _ => return Err("it is not an execution started on its own (a branch or sub-workflow: fork its parent)".into()),
    }
    if events.iter().any(|e| matches!(e, Event::SessionJoined { .. })) {
        return Err("it is a task of a session (start the session's next task instead)".into());
    }
    events.push(Event::Forked {
        from: original.to_string(),
        at_seq: records[at - 1].seq,
        node: spec.from.clone(),
        visit,
        patch: Json::from_map(&spec.set),
        version: moved_from,
    });
    events.push(Event::NodeScheduled { node: spec.from.clone(), visit });
    // The fork's own fold must accept every record on its workflow.
    let mut st = ExecutionState::new(original);
    for (n, event) in events.iter().enumerate() {
        let rec = Record { seq: n as u64 + 1, at_ms: 0, event: event.clone() };
        for c in apply(workflow, &mut st, &rec) {
            if let Command::Fail { error, .. } = c {
                return Err(format!(
                    "its history up to the fork does not fit workflow `{}` version {}: {error}",
                    workflow.id, workflow.version
                ));
            }
        }
    }
    if st.state_bytes > st.max_state_bytes {
        return Err(format!(
            "the state with the keys set would be {}, over max_state_bytes ({})",
            crate::ir::show_bytes(st.state_bytes),
            crate::ir::show_bytes(st.max_state_bytes)
        ));
    }
    if st.phase.is_terminal() {
        return Err("its history ends before the fork".into());
    }
    Ok(events)
}

impl Runtime {
    /// Start a fork of `id` as `spec` says (see the module); returns the
    /// fork's id once its first batch is durable and it runs. Bad input (a
    /// node that never ran, a visit it did not have, keys that do not fit
    /// the schema, no newer version) is refused and nothing is created.
    pub async fn fork(&self, id: ExecutionId, spec: &ForkSpec) -> Result<ExecutionId, Error> {
        let meta = self.status(id)?;
        let records = self.events(id)?;
        let refused = |message: String| Error::ForkRefused { id, message };
        let at = match cut(&records, &spec.from, spec.visit) {
            Ok(at) => at,
            Err(why) => {
                let ran = self.workflow_of(id)?;
                return Err(refused(match branch_of(&ran, &spec.from) {
                    Some(parallel) => format!(
                        "node `{}` runs inside the branches of `{parallel}`: fork from `{parallel}` (its branches run again)",
                        spec.from
                    ),
                    None => why,
                }));
            }
        };
        let (workflow, hash, moved_from) = if spec.latest {
            let newest = self
                .workflows()?
                .into_iter()
                .filter(|r| r.workflow_id == meta.workflow_id)
                .max_by_key(|r| r.registered_ms)
                .ok_or_else(|| refused(format!("no version of workflow `{}` is registered", meta.workflow_id)))?;
            let wf = self.load_workflow(id, &newest.hash)?;
            let moved = (newest.hash != meta.workflow_hash).then(|| meta.workflow_version.clone());
            (wf, newest.hash, moved)
        } else {
            (self.workflow_of(id)?, meta.workflow_hash.clone(), None)
        };
        if workflow.node(&spec.from).is_none() {
            return Err(refused(format!(
                "workflow `{}` version {} has no node `{}`",
                workflow.id, workflow.version, spec.from
            )));
        }
        let errors = workflow.state_schema.check_map(&spec.set);
        if !errors.is_empty() {
            return Err(Error::InvalidInput(errors));
        }
        let events = plan(id, &records, at, spec, (&workflow, &hash), moved_from).map_err(refused)?;
        let now = self.services().clock.now_ms();
        let fork = ExecutionId::new(now);
        let row = ExecutionMeta {
            id: fork,
            workflow_id: workflow.id.clone(),
            workflow_version: workflow.version.clone(),
            workflow_hash: hash.clone(),
            status: Status::Running,
            created_ms: now,
            updated_ms: now,
            key: None,
        };
        self.services()
            .journal
            .append(Append {
                execution: fork,
                first_seq: 1,
                at_ms: now,
                events: &events,
                meta: Some(&row),
                workflow: Some((&hash, &workflow)),
                timers: &[],
                waits: &[],
                session: None,
            })
            .await?;
        self.ensure_live(fork).await?;
        Ok(fork)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(seq: u64, event: Event) -> Record {
        Record { seq, at_ms: seq, event }
    }

    fn scheduled(node: &str, visit: u32) -> Event {
        Event::NodeScheduled { node: node.into(), visit }
    }

    #[test]
    fn the_cut_is_the_visit_asked_for_or_the_last_and_a_miss_names_what_ran() {
        let records = [
            rec(1, Event::NodeStarted { node: "a".into(), visit: 1, attempt: 1 }),
            rec(2, scheduled("a", 1)),
            rec(3, scheduled("b", 1)),
            rec(4, scheduled("a", 2)),
        ];
        assert_eq!(cut(&records, "a", None), Ok((3, 2)));
        assert_eq!(cut(&records, "a", Some(1)), Ok((1, 1)));
        assert_eq!(cut(&records, "a", Some(3)), Err("node `a` has no visit 3 (its visits: 1, 2)".into()));
        assert_eq!(cut(&records, "z", None), Err("node `z` never ran in it (nodes that ran: a, b)".into()));
    }
}
