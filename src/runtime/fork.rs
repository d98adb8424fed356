//! Forking an execution from a node visit ([`Runtime::fork`]): a new
//! execution whose first records are the original's up to the moment that
//! visit was scheduled (the same state, the same step count and usage),
//! then `Forked` (where it came from, and the keys set at the fork) and the
//! visit scheduled again. It runs on the workflow the original ran, or on
//! the newest registered version of that workflow (`latest`); the original
//! is only read.
//!
//! A node inside a parallel node's branches is forked inside its branch.
//! The fork copies the original's records up to that fan-out (its
//! `FanOut` included) and the ends of the branches that had completed
//! (none under `merge: first`, where one would decide the join before the
//! forked branch ran), then `Forked`. The branch the node ran in is forked
//! like an execution of its own: its records up to the visit, `Forked` with
//! the keys set, the visit scheduled again. Its first batch is appended
//! before the fork's, under the id the fork's fan-out derives for it, so
//! the fork goes on at the fan-out as after a restart: the forked branch
//! at the node, the branches that had not completed from their start.
//!
//! [`cut`], [`fan_outs`], [`choose`], [`plan`] and [`plan_in_branch`]
//! decide, without effects; the runtime appends the plan and carries it on.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{Error, Runtime};
use crate::actors::machine::{Command, ExecutionState, apply};
use crate::id::ExecutionId;
use crate::ir::{Merge, NodeKind, Workflow};
use crate::journal::{Append, BranchOutcome, Event, ExecutionMeta, Json, Record, Status, TimerChange, WaitChange};

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
    /// For a node inside a parallel node's branches: the branch it ran in
    /// (needed when it ran in more than one).
    #[serde(default)]
    pub branch: Option<u32>,
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

/// One `FanOut` record: where it is, and whose children it started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FanOutAt {
    /// Its index in the records.
    pub at: usize,
    pub node: String,
    pub visit: u32,
    pub attempt: u32,
    pub branches: u32,
}

/// Every fan-out of a `parallel` node of `workflow` in `records`, in order.
pub fn fan_outs(workflow: &Workflow, records: &[Record]) -> Vec<FanOutAt> {
    records
        .iter()
        .enumerate()
        .filter_map(|(at, r)| match &r.event {
            Event::FanOut { node, visit, attempt, branches }
                if matches!(workflow.node(node).map(|n| &n.kind), Some(NodeKind::Parallel(_))) =>
            {
                Some(FanOutAt { at, node: node.clone(), visit: *visit, attempt: *attempt, branches: *branches })
            }
            _ => None,
        })
        .collect()
}

/// A branch a fork goes on in: the fan-out that started it, its number,
/// its execution and records, and the cut in them (see [`cut`]).
#[derive(Debug, Clone)]
pub struct InBranch {
    pub fan_out: FanOutAt,
    pub branch: u32,
    pub child: ExecutionId,
    pub records: Vec<Record>,
    pub cut: (usize, u32),
}

/// The branch to fork in, of those the node ran in (`found`, in the order
/// of their fan-outs): the last, when they are all the same branch; or
/// why it is not clear, naming the branches.
pub fn choose(from: &str, mut found: Vec<InBranch>) -> Result<InBranch, String> {
    let numbers: BTreeSet<u32> = found.iter().map(|b| b.branch).collect();
    if numbers.len() > 1 {
        let parallels: BTreeSet<&str> = found.iter().map(|b| b.fan_out.node.as_str()).collect();
        let parallels: Vec<String> = parallels.iter().map(|p| format!("`{p}`")).collect();
        let numbers: Vec<String> = numbers.iter().map(u32::to_string).collect();
        return Err(format!(
            "node `{from}` ran in branches {} of {}: say which with --branch N (`branch` through the API), or fork \
             the branch's own execution",
            numbers.join(", "),
            parallels.join(", ")
        ));
    }
    found.pop().ok_or_else(|| format!("node `{from}` never ran in a branch of it"))
}

/// What a fork appends for one execution: its first batch, and the state
/// that batch folds to (what the timer and wait indexes start from).
#[derive(Debug)]
pub struct Planned {
    pub events: Vec<Event>,
    pub folded: ExecutionState,
}

impl Planned {
    /// The timer index entries its state has pending.
    pub fn timers(&self, workflow: &Workflow) -> Vec<TimerChange> {
        self.folded.deadlines(workflow).into_iter().map(TimerChange::Set).collect()
    }

    /// The wait index entries its state has.
    pub fn waits(&self) -> Vec<WaitChange> {
        crate::actors::wait_changes(&BTreeSet::new(), &crate::actors::wait_keys(&self.folded))
    }
}

/// The original's first `upto` records as the fork's, its submission
/// naming `workflow` and without the idempotency key.
fn submission(records: &[Record], upto: usize, (workflow, hash): (&Workflow, &str)) -> Result<Vec<Event>, String> {
    let mut events: Vec<Event> = records[..upto].iter().map(|r| r.event.clone()).collect();
    match events.first_mut() {
        Some(Event::ExecutionStarted { workflow_id, workflow_version, workflow_hash, key, .. }) => {
            *workflow_id = workflow.id.clone();
            *workflow_version = workflow.version.clone();
            *workflow_hash = hash.to_string();
            *key = None;
        }
        _ => return Err("it is not an execution started on its own (a sub-workflow: fork its parent)".into()),
    }
    if events.iter().any(|e| matches!(e, Event::SessionJoined { .. })) {
        return Err("it is a task of a session (start the session's next task instead)".into());
    }
    Ok(events)
}

/// Fold `events` as the first batch of `id` on `workflow` (a branch from
/// `base`, its parent's state at the fan-out), appended at `now`; refused
/// when a record does not fit, the state would outgrow the limit, or the
/// history ends.
fn fold(
    id: ExecutionId,
    events: &[Event],
    workflow: &Workflow,
    base: Option<std::sync::Arc<Map<String, Value>>>,
    now: u64,
) -> Result<ExecutionState, String> {
    let mut st = ExecutionState::new(id);
    st.base = base;
    for (n, event) in events.iter().enumerate() {
        let rec = Record { seq: n as u64 + 1, at_ms: now, event: event.clone() };
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
    Ok(st)
}

/// The fork's first batch (see the module): the original's records before
/// the cut, `Forked`, and the visit scheduled; folded on `workflow` at
/// `now` as `fork`. Refused when the records do not fold on `workflow`
/// (another version that lacks what they name), or the state with `set`
/// would outgrow the limit.
pub fn plan(
    (original, fork): (ExecutionId, ExecutionId),
    records: &[Record],
    (at, visit): (usize, u32),
    spec: &ForkSpec,
    (workflow, hash): (&Workflow, &str),
    moved_from: Option<String>,
    now: u64,
) -> Result<Planned, String> {
    let mut events = submission(records, at, (workflow, hash))?;
    events.push(Event::Forked {
        from: original.to_string(),
        at_seq: records[at - 1].seq,
        node: spec.from.clone(),
        visit,
        patch: Json::from_map(&spec.set),
        version: moved_from,
    });
    events.push(Event::NodeScheduled { node: spec.from.clone(), visit });
    let folded = fold(fork, &events, workflow, None, now)?;
    Ok(Planned { events, folded })
}

/// A fork inside a branch (see the module): the fork's first batch, and
/// its branch's (with the id the fork's fan-out derives for it).
pub fn plan_in_branch(
    (original, fork): (ExecutionId, ExecutionId),
    records: &[Record],
    inside: &InBranch,
    spec: &ForkSpec,
    (workflow, hash): (&Workflow, &str),
    moved_from: Option<String>,
    now: u64,
) -> Result<(Planned, (ExecutionId, Planned)), String> {
    let f = &inside.fan_out;
    let merge = match workflow.node(&f.node).map(|n| &n.kind) {
        Some(NodeKind::Parallel(p)) => p.merge,
        _ => {
            return Err(format!(
                "workflow `{}` version {} has no parallel node `{}`",
                workflow.id, workflow.version, f.node
            ));
        }
    };
    let mut events = submission(records, f.at + 1, (workflow, hash))?;
    // The branches that completed in this attempt keep their results:
    // their ends, copied, come before `Forked` (all it follows is copied).
    let attempt_over = |e: &Event| match e {
        Event::NodeStarted { node, visit, .. }
        | Event::FanOut { node, visit, .. }
        | Event::NodeCompleted { node, visit, .. }
        | Event::NodeFailed { node, visit, .. } => *node == f.node && *visit == f.visit,
        _ => false,
    };
    if merge != Merge::First {
        events.extend(
            records[f.at + 1..]
                .iter()
                .map(|r| &r.event)
                .take_while(|e| !attempt_over(e))
                .filter(|e| {
                    matches!(e, Event::BranchFinished { node, visit, branch, outcome: BranchOutcome::Completed { .. } }
                if *node == f.node && *visit == f.visit && *branch != inside.branch)
                })
                .cloned(),
        );
    }
    events.push(Event::Forked {
        from: original.to_string(),
        at_seq: records[f.at].seq,
        node: f.node.clone(),
        visit: f.visit,
        patch: Json::from_map(&Map::new()),
        version: moved_from.clone(),
    });
    let folded = fold(fork, &events, workflow, None, now)?;

    let child = ExecutionId::child(fork, &f.node, f.visit, f.attempt, inside.branch);
    let (at, visit) = inside.cut;
    let mut branch: Vec<Event> = inside.records[..at].iter().map(|r| r.event.clone()).collect();
    match branch.first_mut() {
        Some(
            Event::BranchStarted { workflow_id, workflow_version, workflow_hash, parent, .. }
            | Event::ChildStarted { workflow_id, workflow_version, workflow_hash, parent, .. },
        ) => {
            *workflow_id = workflow.id.clone();
            *workflow_version = workflow.version.clone();
            *workflow_hash = hash.to_string();
            *parent = fork.to_string();
        }
        _ => return Err(format!("branch execution {} does not start as a branch", inside.child)),
    }
    branch.push(Event::Forked {
        from: inside.child.to_string(),
        at_seq: inside.records[at - 1].seq,
        node: spec.from.clone(),
        visit,
        patch: Json::from_map(&spec.set),
        version: moved_from,
    });
    branch.push(Event::NodeScheduled { node: spec.from.clone(), visit });
    let base = Some(folded.state.clone());
    let branch_folded = fold(child, &branch, workflow, base, now).map_err(|e| format!("in its branch: {e}"))?;
    Ok((Planned { events, folded }, (child, Planned { events: branch, folded: branch_folded })))
}

impl Runtime {
    /// Start a fork of `id` as `spec` says (see the module); returns the
    /// fork's id once its first batch is durable and it runs. `id` may be
    /// a branch's own execution: its root is forked, inside that branch.
    /// Bad input (a node that never ran, a visit it did not have, keys
    /// that do not fit the schema, no newer version, a node that ran in
    /// several branches and no `branch`) is refused and nothing is created.
    pub async fn fork(&self, id: ExecutionId, spec: &ForkSpec) -> Result<ExecutionId, Error> {
        let records = self.events(id)?;
        let refused = |message: String| Error::ForkRefused { id, message };
        match &records[0].event {
            Event::BranchStarted { parent, parent_node, parent_visit, branch, .. }
            | Event::ChildStarted { parent, parent_node, parent_visit, branch, until: Some(_), .. } => {
                if let Some(asked) = spec.branch.filter(|b| b != branch) {
                    return Err(refused(format!("it is branch {branch} of its parent, not branch {asked}")));
                }
                let root: ExecutionId =
                    parent.parse().map_err(|_| refused(format!("its parent id `{parent}` does not parse")))?;
                let root_records = self.events(root)?;
                if !matches!(root_records[0].event, Event::ExecutionStarted { .. }) {
                    return Err(refused(format!(
                        "its parent {root} is itself a branch or a sub-workflow: fork from inside the outermost \
                         execution's branches"
                    )));
                }
                let ran = self.workflow_of(root)?;
                let fan_out = fan_outs(&ran, &root_records)
                    .into_iter()
                    .rev()
                    .find(|f| {
                        f.node == *parent_node
                            && f.visit == *parent_visit
                            && ExecutionId::child(root, &f.node, f.visit, f.attempt, *branch) == id
                    })
                    .ok_or_else(|| refused(format!("its parent {root} has no fan-out that started it")))?;
                let cut = cut(&records, &spec.from, spec.visit).map_err(refused)?;
                let inside = InBranch { fan_out, branch: *branch, child: id, records, cut };
                self.start_fork(root, &root_records, Where::Branch(inside), spec).await
            }
            Event::ChildStarted { .. } => Err(refused("it is a sub-workflow's execution: fork its parent".into())),
            _ => match (spec.branch, cut(&records, &spec.from, spec.visit)) {
                (None, Ok(at)) => self.start_fork(id, &records, Where::Root(at), spec).await,
                (_, missed) => {
                    // Said in order: why it is not clear which branch, then the
                    // branch asked for, then why it is not in the root.
                    let inside = self.find_branch(id, &records, spec).map_err(|why| {
                        refused(match (why, spec.branch, missed) {
                            (Some(why), _, _) => why,
                            (None, Some(b), _) => {
                                format!("node `{}` never ran in branch {b} of a fan-out of it", spec.from)
                            }
                            (None, None, Err(in_root)) => in_root,
                            (None, None, Ok(_)) => format!("node `{}` never ran in a branch of it", spec.from),
                        })
                    })?;
                    self.start_fork(id, &records, Where::Branch(inside), spec).await
                }
            },
        }
    }

    /// The branch of `root` that `spec.from` ran in (only `spec.branch`
    /// when it names one); `Err(None)` when none did, `Err(Some(why))`
    /// when it is not clear which, or the visit asked for is not there.
    fn find_branch(&self, root: ExecutionId, records: &[Record], spec: &ForkSpec) -> Result<InBranch, Option<String>> {
        let ran = self.workflow_of(root).map_err(|e| Some(e.to_string()))?;
        let mut found = Vec::new();
        let mut no_visit = None;
        // Fan-outs inside the branches: a node in a branch of a branch is not forked from (yet).
        let mut nested = BTreeSet::new();
        for f in fan_outs(&ran, records) {
            for branch in (0..f.branches).filter(|b| spec.branch.is_none_or(|want| want == *b)) {
                let child = ExecutionId::child(root, &f.node, f.visit, f.attempt, branch);
                let branch_records = self.services().journal.read(child).map_err(|e| Some(e.to_string()))?;
                nested.extend(fan_outs(&ran, &branch_records).into_iter().map(|inner| inner.node));
                match cut(&branch_records, &spec.from, spec.visit) {
                    Ok(cut) => found.push(InBranch { fan_out: f.clone(), branch, child, records: branch_records, cut }),
                    Err(why) if why.contains("has no visit") => {
                        no_visit = Some(format!("{why}, in branch {branch} of `{}`", f.node));
                    }
                    Err(_) => {}
                }
            }
        }
        match (found.is_empty(), no_visit, nested.is_empty()) {
            (true, None, false) => {
                let inner: Vec<String> = nested.iter().map(|p| format!("`{p}`")).collect();
                Err(Some(format!(
                    "node `{}` did not run in it nor in its branches; a node in a branch of a branch cannot be \
                     forked from: fork from the parallel node inside the branch ({}), whose branches run again",
                    spec.from,
                    inner.join(", ")
                )))
            }
            (true, no_visit, _) => Err(no_visit),
            (false, _, _) => choose(&spec.from, found).map_err(Some),
        }
    }

    /// Plan, check and append a fork of `original` (its `records`) going
    /// on at `at`, then carry it on.
    async fn start_fork(
        &self,
        original: ExecutionId,
        records: &[Record],
        at: Where,
        spec: &ForkSpec,
    ) -> Result<ExecutionId, Error> {
        let meta = self.status(original)?;
        let refused = |message: String| Error::ForkRefused { id: original, message };
        let (workflow, hash, moved_from) = if spec.latest {
            let newest = self
                .workflows()?
                .into_iter()
                .filter(|r| r.workflow_id == meta.workflow_id)
                .max_by_key(|r| r.registered_ms)
                .ok_or_else(|| refused(format!("no version of workflow `{}` is registered", meta.workflow_id)))?;
            let wf = self.load_workflow(original, &newest.hash)?;
            let moved = (newest.hash != meta.workflow_hash).then(|| meta.workflow_version.clone());
            (wf, newest.hash, moved)
        } else {
            (self.workflow_of(original)?, meta.workflow_hash.clone(), None)
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
        let now = self.services().clock.now_ms();
        let fork = ExecutionId::new(now);
        let ids = (original, fork);
        let target = (&*workflow, hash.as_str());
        let (planned, branch) = match &at {
            Where::Root(cut) => (plan(ids, records, *cut, spec, target, moved_from, now).map_err(refused)?, None),
            Where::Branch(inside) => {
                let (planned, branch) =
                    plan_in_branch(ids, records, inside, spec, target, moved_from, now).map_err(refused)?;
                (planned, Some(branch))
            }
        };
        let row = |id: ExecutionId| ExecutionMeta {
            id,
            workflow_id: workflow.id.clone(),
            workflow_version: workflow.version.clone(),
            workflow_hash: hash.clone(),
            status: Status::Running,
            created_ms: now,
            updated_ms: now,
            key: None,
        };
        // The branch first: the fork's fan-out finds it when it goes on.
        // (Should the process die between the two, the branch is left with
        // no parent, and fails when it is resumed.)
        let mut batches: Vec<(ExecutionId, &Planned)> = branch.iter().map(|(id, p)| (*id, p)).collect();
        batches.push((fork, &planned));
        for (id, p) in batches {
            let (timers, waits) = (p.timers(&workflow), p.waits());
            self.services()
                .journal
                .append(Append {
                    execution: id,
                    first_seq: 1,
                    at_ms: now,
                    events: &p.events,
                    meta: Some(&row(id)),
                    workflow: Some((&hash, &workflow)),
                    timers: &timers,
                    waits: &waits,
                    session: None,
                })
                .await?;
            for at in p.folded.deadlines(&workflow) {
                self.services().timers.schedule(at, id);
            }
            self.services().mailbox.waiting(id, crate::actors::wait_keys(&p.folded).into_iter().collect());
        }
        self.ensure_live(fork).await?;
        Ok(fork)
    }
}

/// Where in the original a fork goes on: the record index of the visit's
/// `NodeScheduled` and the visit, or inside a branch.
enum Where {
    Root((usize, u32)),
    Branch(InBranch),
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

    const FAN: &str = r#"id: fan
state_schema: { a: any, b: any, c: any }
nodes:
  split: { type: parallel, branches: [a, b, c], merge: MERGE, join: done }
  a: { type: set, values: { a: 1 }, next: done }
  b: { type: set, values: { b: 1 }, next: done }
  c: { type: set, values: { c: 1 }, next: done }
  done: { type: end }
"#;

    /// A run of `fan` whose branch 1 failed after branch 0 completed and
    /// branch 2 was cancelled; branch 1's records up to its `b`.
    fn fan_run(root: ExecutionId) -> (Vec<Record>, InBranch) {
        let ended = |branch: u32, outcome: BranchOutcome| Event::BranchFinished {
            node: "split".into(),
            visit: 1,
            branch,
            outcome,
        };
        let events = vec![
            Event::ExecutionStarted {
                workflow_id: "fan".into(),
                workflow_version: "1".into(),
                workflow_hash: "h".into(),
                input: Json::from_map(&Map::new()),
                key: Some("k".into()),
            },
            scheduled("split", 1),
            Event::NodeStarted { node: "split".into(), visit: 1, attempt: 1 },
            Event::FanOut { node: "split".into(), visit: 1, attempt: 1, branches: 3 },
            ended(
                0,
                BranchOutcome::Completed {
                    patch: Json::from_map(&serde_json::json!({"a": 1}).as_object().cloned().unwrap()),
                },
            ),
            ended(1, BranchOutcome::Failed { error: "boom".into() }),
            ended(2, BranchOutcome::Cancelled),
        ];
        let records: Vec<Record> = events.into_iter().enumerate().map(|(n, e)| rec(n as u64 + 1, e)).collect();
        let child = ExecutionId::child(root, "split", 1, 1, 1);
        let branch = vec![
            rec(
                1,
                Event::BranchStarted {
                    workflow_id: "fan".into(),
                    workflow_version: "1".into(),
                    workflow_hash: "h".into(),
                    vars: Json::from_map(&Map::new()),
                    parent: root.to_string(),
                    parent_node: "split".into(),
                    parent_visit: 1,
                    branch: 1,
                    start: "b".into(),
                    until: Some("done".into()),
                    state_at: 4,
                },
            ),
            rec(2, scheduled("b", 1)),
        ];
        let fan_out = FanOutAt { at: 3, node: "split".into(), visit: 1, attempt: 1, branches: 3 };
        (records, InBranch { fan_out, branch: 1, child, records: branch, cut: (1, 1) })
    }

    #[test]
    fn a_fork_in_a_branch_keeps_the_completed_branches_but_under_merge_first() {
        let (root, fork) = (ExecutionId::new(1), ExecutionId::new(2));
        let (records, inside) = fan_run(root);
        let spec = ForkSpec { from: "b".into(), branch: Some(1), ..Default::default() };
        for (merge, kept) in [("keys", vec![0]), ("collect, output_key: c", vec![0]), ("first", vec![])] {
            let wf = crate::ir::compile_str(&FAN.replace("MERGE", merge), "fan.yaml").unwrap();
            let (planned, (child, branch)) =
                plan_in_branch((root, fork), &records, &inside, &spec, (&wf, "h2"), None, 10).unwrap();
            let ends: Vec<u32> = planned
                .events
                .iter()
                .filter_map(|e| match e {
                    Event::BranchFinished { branch, .. } => Some(*branch),
                    _ => None,
                })
                .collect();
            assert_eq!(ends, kept, "merge: {merge}");
            assert!(
                matches!(&planned.events[0], Event::ExecutionStarted { key: None, workflow_hash, .. } if workflow_hash == "h2")
            );
            assert!(matches!(planned.events.last(), Some(Event::Forked { node, at_seq: 4, .. }) if node == "split"));
            assert_eq!(child, ExecutionId::child(fork, "split", 1, 1, 1));
            assert!(matches!(&branch.events[0], Event::BranchStarted { parent, .. } if *parent == fork.to_string()));
            assert_eq!(branch.events[2], scheduled("b", 1), "the visit is scheduled again");
            assert!(!planned.folded.phase.is_terminal() && !branch.folded.phase.is_terminal());
        }
    }

    #[test]
    fn a_node_that_ran_in_several_branches_needs_one_named() {
        let (_, inside) = fan_run(ExecutionId::new(1));
        let mut other = inside.clone();
        other.branch = 2;
        let why = choose("b", vec![inside.clone(), other]).unwrap_err();
        assert!(why.contains("node `b` ran in branches 1, 2 of `split`: say which with --branch N"), "{why}");
        let mut again = inside.clone();
        again.fan_out.visit = 2;
        assert_eq!(choose("b", vec![inside, again]).unwrap().fan_out.visit, 2, "the last fan-out of the same branch");
    }
}
