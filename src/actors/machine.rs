//! The execution state machine: `apply(workflow, state, record) -> commands`.
//!
//! Pure: no IO, no clock, no await. The ExecutionActor persists an event,
//! applies it here, and carries out the commands; recovery folds the
//! journal through the same function and then asks [`resume`] what is left
//! to do, so a live run and a replay cannot drift apart.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;

use serde_json::{Map, Value, json};

use crate::id::ExecutionId;
use crate::ir::{Limit, Merge, NodeKind, OnError, Workflow};
use crate::journal::{BranchOutcome, ErrorClass, Event, Json, Record, RetryDecision, Usage};
use crate::nodes::AgentRound;

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
#[derive(Debug, Clone, PartialEq)]
pub struct ActiveNode {
    pub visit: u32,
    /// The last attempt started; 0 while only scheduled.
    pub attempt: u32,
    /// A retry waiting for its deadline: (attempt, unix ms).
    pub retry_at: Option<(u32, u64)>,
    /// When each panic of this visit happened (for the restart budget).
    pub panics: Vec<u64>,
    /// Set while a wait or approval node has parked the execution.
    pub wait: Option<Wait>,
    /// Set while a parallel or sub-workflow node has children running.
    pub fan_out: Option<FanOut>,
    /// When the last attempt started (unix ms).
    pub started_ms: u64,
}

/// What a parked node waits for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wait {
    /// The correlation key of the event (a `wait` on an event).
    pub event: Option<String>,
    pub deadline_ms: Option<u64>,
    /// The rendered prompt (an approval).
    pub prompt: Option<String>,
    pub since_ms: u64,
}

/// The children of one attempt of a parallel or sub-workflow node.
#[derive(Debug, Clone, PartialEq)]
pub struct FanOut {
    pub attempt: u32,
    pub branches: u32,
    pub finished: BTreeMap<u32, BranchOutcome>,
    /// The sequence number of the `FanOut` record: branches start from the
    /// state as of this record (`BranchStarted::state_at`).
    pub seq: u64,
}

/// Where a child execution (a parallel branch, a sub-workflow) came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParentLink {
    pub id: ExecutionId,
    pub node: String,
    pub visit: u32,
    pub branch: u32,
}

/// An approval decision, kept to tell a late second decision who won.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub visit: u32,
    pub approved: bool,
    pub by: String,
    pub at_ms: u64,
}

/// Everything the machine knows about one execution, folded from events.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecutionState {
    pub id: ExecutionId,
    pub phase: Phase,
    /// Shared with the nodes that read it, copied only when a patch comes
    /// while they still hold it; a parallel branch starts with its
    /// parent's (see [`Self::base`]), so a fan-out copies nothing.
    pub state: Arc<Map<String, Value>>,
    /// A branch started by `BranchStarted`: its parent's state at the
    /// fan-out, which the shell reads from the parent's journal and sets
    /// before applying the first event.
    pub base: Option<Arc<Map<String, Value>>>,
    /// A branch started by `BranchStarted` keeps the keys it wrote: its
    /// `ExecutionCompleted` holds only those.
    pub written: Option<Map<String, Value>>,
    /// Node visits so far (one per `NodeScheduled`).
    pub steps: u64,
    /// The state's size as compact JSON (`ir::json_size`), kept as
    /// patches come (what `max_state_bytes` is checked against).
    pub state_bytes: u64,
    /// Node visits allowed (the `max_steps` limit in force); the shell sets
    /// it on a live execution, a replay for reading leaves it unbounded.
    pub max_steps: u64,
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
    /// Set for a child execution.
    pub parent: Option<ParentLink>,
    /// A parallel branch ends on reaching this node (its join).
    pub until: Option<String>,
    /// Template variables beside `state` (`item`, `index` of a for_each branch).
    pub vars: Map<String, Value>,
    /// Signals received and not consumed yet, oldest first: (key, payload).
    pub inbox: VecDeque<(String, Json)>,
    /// The last decision of each approval node.
    pub decisions: HashMap<String, Decision>,
    /// Children a finished fan-out left running: cancel them (again, after
    /// a restart) until they are.
    pub orphans: BTreeSet<ExecutionId>,
    /// The remote task and pending answer of each active `type: agent` node.
    pub agents: HashMap<String, AgentRound>,
}

/// What the shell must do after an event is applied. `Schedule`, `Start`,
/// `Resolve`, `FailNode`, `Complete` and `Fail` become events (the shell
/// stamps them with the time, and decides a retry); `Run`, `RetryAt`,
/// `Children`, `CancelChildren` and `Finished` are effects.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Schedule {
        node: String,
        visit: u32,
    },
    Start {
        node: String,
        visit: u32,
        attempt: u32,
    },
    Run {
        node: String,
        visit: u32,
        attempt: u32,
    },
    RetryAt {
        node: String,
        visit: u32,
        attempt: u32,
        at_ms: u64,
    },
    /// A node the execution carries out itself (wait, approval, parallel,
    /// sub-workflow) has its result: it completes with `patch`, going on at
    /// `next` (`None`: the node's own `next`).
    Resolve {
        node: String,
        visit: u32,
        attempt: u32,
        patch: Map<String, Value>,
        next: Option<String>,
    },
    /// Such a node failed; the shell applies the node's retry policy.
    FailNode {
        node: String,
        visit: u32,
        attempt: u32,
        class: ErrorClass,
        message: String,
    },
    /// Start (or, after a restart, find again) the children of a fan-out.
    Children {
        node: String,
        visit: u32,
        attempt: u32,
    },
    /// Cancel these child executions (they may have finished already).
    CancelChildren(Vec<ExecutionId>),
    Complete,
    Fail {
        node: Option<String>,
        error: String,
    },
    Finished,
}

impl ExecutionState {
    pub fn new(id: ExecutionId) -> Self {
        ExecutionState {
            id,
            phase: Phase::NotStarted,
            state: Arc::new(Map::new()),
            base: None,
            written: None,
            steps: 0,
            state_bytes: 2,
            max_steps: u64::MAX,
            visits: HashMap::new(),
            active: BTreeMap::new(),
            last_seq: 0,
            usage: Usage::default(),
            started_ms: 0,
            finished_ms: None,
            error: None,
            key: None,
            parent: None,
            until: None,
            vars: Map::new(),
            inbox: VecDeque::new(),
            decisions: HashMap::new(),
            orphans: BTreeSet::new(),
            agents: HashMap::new(),
        }
    }

    /// Parked: every active node waits (for an event, an approval, a timer).
    pub fn parked(&self) -> bool {
        self.phase == Phase::Running && !self.active.is_empty() && self.active.values().all(|a| a.wait.is_some())
    }

    /// The execution's own deadline (`timeout_ms` of its workflow), unix ms.
    /// A parallel branch has none: its parent's covers it.
    pub fn deadline_ms(&self, workflow: &Workflow) -> Option<u64> {
        let t = workflow.timeout_ms.filter(|_| self.until.is_none() && self.phase == Phase::Running)?;
        Some(self.started_ms.saturating_add(t))
    }

    /// Every deadline this execution has pending: the timer index holds
    /// exactly these.
    pub fn deadlines(&self, workflow: &Workflow) -> BTreeSet<u64> {
        if self.phase != Phase::Running {
            return BTreeSet::new();
        }
        let mut out: BTreeSet<u64> = self.deadline_ms(workflow).into_iter().collect();
        for (node, a) in &self.active {
            out.extend(a.retry_at.map(|r| r.1));
            out.extend(a.wait.as_ref().and_then(|w| w.deadline_ms));
            out.extend(fan_out_deadline(workflow, node, a));
        }
        out
    }

    /// The children of an active fan-out that have not finished.
    pub fn unfinished_children(&self) -> Vec<ExecutionId> {
        let mut out = Vec::new();
        for (node, a) in &self.active {
            if let Some(f) = &a.fan_out {
                for b in (0..f.branches).filter(|b| !f.finished.contains_key(b)) {
                    out.push(ExecutionId::child(self.id, node, a.visit, f.attempt, b));
                }
            }
        }
        out
    }

    /// Fold a whole history (no commands are carried out). A branch that
    /// starts with `BranchStarted` needs its parent's state: see
    /// [`Self::replay_on`].
    pub fn replay(id: ExecutionId, workflow: &Workflow, records: &[Record]) -> Self {
        Self::replay_on(id, workflow, records, None)
    }

    /// Fold a whole history whose first event may be `BranchStarted`,
    /// starting from `base` (the parent's state at the fan-out).
    pub fn replay_on(
        id: ExecutionId,
        workflow: &Workflow,
        records: &[Record],
        base: Option<Arc<Map<String, Value>>>,
    ) -> Self {
        let mut st = ExecutionState::new(id);
        st.base = base;
        for r in records {
            apply(workflow, &mut st, r);
        }
        st
    }

    /// The state's size once `patch` is applied (see [`Self::state_bytes`]).
    pub fn state_bytes_after(&self, patch: &Map<String, Value>) -> u64 {
        let mut size = self.state_bytes;
        let mut entries = self.state.len();
        for (k, v) in patch {
            match self.state.get(k) {
                Some(old) => size = size.saturating_sub(crate::ir::json_size(old)) + crate::ir::json_size(v),
                None => {
                    // A comma before every entry but the first.
                    size += crate::ir::entry_size(k, v) + u64::from(entries > 0);
                    entries += 1;
                }
            }
        }
        size
    }

    /// What `ExecutionCompleted` records: the final state, or for a branch
    /// started by `BranchStarted`, the keys it wrote.
    pub fn final_state(&self) -> &Map<String, Value> {
        self.written.as_ref().unwrap_or(&self.state)
    }

    /// The command that schedules `node`, or fails the execution when it
    /// has made every step its `max_steps` limit allows.
    fn schedule(&self, node: &str, visit: u32) -> Command {
        if self.steps >= self.max_steps {
            let what = format!(
                "execution {} has made {} {} (node visits) and would go on at node `{node}`",
                self.id,
                crate::ir::thousands(self.steps),
                crate::plural::noun(self.steps, "step", "steps")
            );
            return Command::Fail {
                node: Some(node.to_string()),
                error: format!("limit_exceeded: {}", crate::ir::limits_message(Limit::MaxSteps, self.max_steps, what)),
            };
        }
        Command::Schedule { node: node.to_string(), visit }
    }
}

/// The size of a whole state object (see [`ExecutionState::state_bytes`]).
fn map_size(map: &Map<String, Value>) -> u64 {
    2 + map.len().saturating_sub(1) as u64 + map.iter().map(|(k, v)| crate::ir::entry_size(k, v)).sum::<u64>()
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
            st.state = Arc::new(input.object().unwrap_or_default());
            st.state_bytes = map_size(&st.state);
            vec![st.schedule(&workflow.start, 1)]
        }
        Event::ChildStarted { input, vars, parent, parent_node, parent_visit, branch, start, until, .. } => {
            st.phase = Phase::Running;
            st.started_ms = rec.at_ms;
            st.state = Arc::new(input.object().unwrap_or_default());
            st.state_bytes = map_size(&st.state);
            st.vars = vars.object().unwrap_or_default();
            st.until = until.clone();
            match parent.parse() {
                Ok(id) => {
                    st.parent =
                        Some(ParentLink { id, node: parent_node.clone(), visit: *parent_visit, branch: *branch })
                }
                Err(_) => return inconsistent(format!("child of an unreadable parent id `{parent}`")),
            }
            vec![st.schedule(start, 1)]
        }
        Event::BranchStarted { vars, parent, parent_node, parent_visit, branch, start, until, state_at, .. } => {
            st.phase = Phase::Running;
            st.started_ms = rec.at_ms;
            st.vars = vars.object().unwrap_or_default();
            st.until = until.clone();
            st.written = Some(Map::new());
            match parent.parse() {
                Ok(id) => {
                    st.parent =
                        Some(ParentLink { id, node: parent_node.clone(), visit: *parent_visit, branch: *branch })
                }
                Err(_) => return inconsistent(format!("child of an unreadable parent id `{parent}`")),
            }
            match &st.base {
                Some(base) => {
                    st.state = base.clone();
                    st.state_bytes = map_size(&st.state);
                }
                None => {
                    return inconsistent(format!(
                        "branch of {parent} started without its parent's state at record {state_at}"
                    ));
                }
            }
            vec![st.schedule(start, 1)]
        }
        Event::NodeScheduled { node, visit } => {
            st.steps += 1;
            st.visits.insert(node.clone(), *visit);
            st.agents.remove(node);
            st.active.insert(
                node.clone(),
                ActiveNode {
                    visit: *visit,
                    attempt: 0,
                    retry_at: None,
                    panics: Vec::new(),
                    wait: None,
                    fan_out: None,
                    started_ms: 0,
                },
            );
            vec![Command::Start { node: node.clone(), visit: *visit, attempt: 1 }]
        }
        Event::NodeStarted { node, visit, attempt } => match st.active.get_mut(node) {
            Some(a) if a.visit == *visit => {
                a.attempt = *attempt;
                a.retry_at = None;
                a.wait = None;
                a.fan_out = None;
                a.started_ms = rec.at_ms;
                vec![Command::Run { node: node.clone(), visit: *visit, attempt: *attempt }]
            }
            _ => inconsistent(format!("node `{node}` visit {visit} started without being scheduled")),
        },
        Event::NodeCompleted { node, visit, patch, next, .. } => {
            if st.active.get(node).map(|a| a.visit) != Some(*visit) {
                return inconsistent(format!("node `{node}` visit {visit} completed without running"));
            }
            st.active.remove(node);
            st.agents.remove(node);
            match patch.object() {
                Ok(p) if p.is_empty() => {}
                Ok(p) => {
                    st.state_bytes = st.state_bytes_after(&p);
                    if let Some(written) = &mut st.written {
                        written.extend(p.iter().map(|(k, v)| (k.clone(), v.clone())));
                    }
                    Arc::make_mut(&mut st.state).extend(p);
                }
                Err(e) => return inconsistent(format!("patch of node `{node}`: {e}")),
            }
            // A parallel branch ends where its chain meets the join.
            let next = next.as_ref().filter(|n| st.until.as_ref() != Some(*n));
            match next {
                Some(n) => {
                    let visit = st.visits.get(n).copied().unwrap_or(0) + 1;
                    vec![st.schedule(n, visit)]
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
            a.wait = None;
            let orphans = take_unfinished(st.id, node, a);
            st.orphans.extend(orphans.iter().copied());
            let a = st.active.get_mut(node).expect("checked above");
            let mut cmds = cancel(orphans);
            match retry {
                RetryDecision::Retry { attempt, at_ms } => {
                    a.retry_at = Some((*attempt, *at_ms));
                    cmds.push(Command::RetryAt { node: node.clone(), visit: *visit, attempt: *attempt, at_ms: *at_ms });
                }
                RetryDecision::GiveUp => cmds.push(Command::Fail {
                    node: Some(node.clone()),
                    error: format!("node `{node}` failed ({class}): {message}"),
                }),
            }
            cmds
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
            end_children(st)
        }
        Event::ExecutionCancelled { reason } => {
            st.phase = Phase::Cancelled;
            st.finished_ms = Some(rec.at_ms);
            st.error = Some(format!("cancelled: {reason}"));
            end_children(st)
        }
        Event::Waiting { node, visit, event, deadline_ms, prompt } => {
            let Some(a) = st.active.get_mut(node).filter(|a| a.visit == *visit && a.attempt > 0) else {
                return inconsistent(format!("node `{node}` visit {visit} waits without running"));
            };
            a.wait = Some(Wait {
                event: event.clone(),
                deadline_ms: *deadline_ms,
                prompt: prompt.clone(),
                since_ms: rec.at_ms,
            });
            let attempt = a.attempt;
            // An event that arrived before the execution got here is kept.
            if let Some(key) = event
                && let Some(i) = st.inbox.iter().position(|(k, _)| k == key)
            {
                let (_, payload) = st.inbox.remove(i).expect("position is in range");
                return vec![answer(workflow, st, node, *visit, attempt, &payload)];
            }
            Vec::new()
        }
        Event::SignalReceived { key, payload } => {
            let waiting = st
                .active
                .iter()
                .find(|(_, a)| a.wait.as_ref().and_then(|w| w.event.as_ref()) == Some(key))
                .map(|(n, a)| (n.clone(), a.visit, a.attempt));
            match waiting {
                Some((node, visit, attempt)) => {
                    st.active.get_mut(&node).expect("found above").wait = None;
                    vec![answer(workflow, st, &node, visit, attempt, payload)]
                }
                None => {
                    st.inbox.push_back((key.clone(), payload.clone()));
                    Vec::new()
                }
            }
        }
        Event::WaitTimedOut { node, visit } => {
            let Some(a) = st.active.get_mut(node).filter(|a| a.visit == *visit && a.wait.is_some()) else {
                return Vec::new();
            };
            let wait = a.wait.take().expect("checked above");
            let attempt = a.attempt;
            let spec = workflow.node(node).map(|n| &n.kind);
            let on_timeout = match spec {
                Some(NodeKind::Wait(_)) if wait.event.is_none() => {
                    // A timer, as journals before `TimerFired` ended it:
                    // firing is its normal end.
                    return vec![Command::Resolve {
                        node: node.clone(),
                        visit: *visit,
                        attempt,
                        patch: Map::new(),
                        next: None,
                    }];
                }
                Some(NodeKind::Wait(w)) => w.on_timeout.clone(),
                Some(NodeKind::Approval(a)) => a.on_timeout.clone(),
                _ => None,
            };
            let what = match &wait.event {
                Some(key) => format!("event `{key}`"),
                None => "an approval".to_string(),
            };
            match on_timeout {
                Some(to) => vec![Command::Resolve {
                    node: node.clone(),
                    visit: *visit,
                    attempt,
                    patch: Map::new(),
                    next: Some(to),
                }],
                None => vec![Command::FailNode {
                    node: node.clone(),
                    visit: *visit,
                    attempt,
                    class: ErrorClass::Timeout,
                    message: format!("no {what} within timeout_ms and no `on_timeout`"),
                }],
            }
        }
        Event::ApprovalDecided { node, visit, approved, by, comment } => {
            let Some(a) = st.active.get_mut(node).filter(|a| a.visit == *visit && a.wait.is_some()) else {
                return inconsistent(format!("a decision for node `{node}` visit {visit}, which is not waiting"));
            };
            a.wait = None;
            let attempt = a.attempt;
            st.decisions.insert(
                node.clone(),
                Decision { visit: *visit, approved: *approved, by: by.clone(), at_ms: rec.at_ms },
            );
            let Some(NodeKind::Approval(spec)) = workflow.node(node).map(|n| &n.kind) else {
                return inconsistent(format!("a decision for node `{node}`, which is not an approval"));
            };
            let decision = json!({
                "decision": if *approved { "approved" } else { "rejected" },
                "by": by,
                "comment": comment,
                "at": crate::clock::format_ms(rec.at_ms),
            });
            let patch = spec.output_key.iter().map(|k| (k.clone(), decision.clone())).collect();
            match (*approved, &spec.on_reject) {
                (true, _) => vec![Command::Resolve { node: node.clone(), visit: *visit, attempt, patch, next: None }],
                (false, Some(to)) => {
                    vec![Command::Resolve { node: node.clone(), visit: *visit, attempt, patch, next: Some(to.clone()) }]
                }
                (false, None) => {
                    let why = comment.as_deref().map(|c| format!(": {c}")).unwrap_or_default();
                    vec![Command::Fail {
                        node: Some(node.clone()),
                        error: format!("approval `{node}` rejected by {by}{why}"),
                    }]
                }
            }
        }
        Event::FanOut { node, visit, attempt, branches } => {
            let Some(a) = st.active.get_mut(node).filter(|a| a.visit == *visit && a.attempt == *attempt) else {
                return inconsistent(format!("node `{node}` visit {visit} fanned out without running"));
            };
            a.fan_out =
                Some(FanOut { attempt: *attempt, branches: *branches, finished: BTreeMap::new(), seq: rec.seq });
            let mut cmds = vec![Command::Children { node: node.clone(), visit: *visit, attempt: *attempt }];
            cmds.extend(join(workflow, st, node));
            cmds
        }
        Event::BranchFinished { node, visit, branch, outcome } => {
            let Some(f) = st.active.get_mut(node).filter(|a| a.visit == *visit).and_then(|a| a.fan_out.as_mut()) else {
                // A branch that ended after its node was decided: nothing to do.
                return Vec::new();
            };
            f.finished.insert(*branch, outcome.clone());
            join(workflow, st, node)
        }
        // Failed attempts cost too: the total is the sum over exchanges.
        Event::Exchange { usage, node, visit, response, .. } => {
            st.usage.add(usage);
            if let Some(NodeKind::Agent(_)) = workflow.node(node).map(|n| &n.kind) {
                st.agents.entry(node.clone()).or_default().exchanged(*visit, response);
            }
            Vec::new()
        }
        Event::Scored { .. } => Vec::new(),
        Event::TimerFired { node, visit } => {
            let Some(a) = st.active.get_mut(node).filter(|a| a.visit == *visit && a.wait.is_some()) else {
                return Vec::new();
            };
            a.wait = None;
            let attempt = a.attempt;
            vec![Command::Resolve { node: node.clone(), visit: *visit, attempt, patch: Map::new(), next: None }]
        }
    }
}

/// Whether `node`'s wait is a timer (a `wait` with `duration_ms` or
/// `until` and no event): its deadline passing is journaled as
/// `TimerFired`, its normal end, and not as `WaitTimedOut`.
pub fn is_timer(workflow: &Workflow, node: &str, wait: &Wait) -> bool {
    wait.event.is_none() && matches!(workflow.node(node).map(|n| &n.kind), Some(NodeKind::Wait(_)))
}

/// A fan-out's `timeout_ms`: its children must all be done by then.
pub fn fan_out_deadline(workflow: &Workflow, node: &str, a: &ActiveNode) -> Option<u64> {
    a.fan_out.as_ref()?;
    let t = workflow.node(node)?.timeout_ms?;
    Some(a.started_ms.saturating_add(t))
}

fn cancel(ids: Vec<ExecutionId>) -> Vec<Command> {
    if ids.is_empty() { Vec::new() } else { vec![Command::CancelChildren(ids)] }
}

/// The children of `a`'s fan-out that have not finished; the fan-out is over.
fn take_unfinished(parent: ExecutionId, node: &str, a: &mut ActiveNode) -> Vec<ExecutionId> {
    let Some(f) = a.fan_out.take() else { return Vec::new() };
    (0..f.branches)
        .filter(|b| !f.finished.contains_key(b))
        .map(|b| ExecutionId::child(parent, node, a.visit, f.attempt, b))
        .collect()
}

/// A terminal event: every running child is cancelled with the execution.
fn end_children(st: &mut ExecutionState) -> Vec<Command> {
    let children = st.unfinished_children();
    st.orphans.clear();
    st.active.clear();
    let mut cmds = cancel(children);
    cmds.push(Command::Finished);
    cmds
}

/// A signal answers what a parked node waits for. A wait resolves with
/// the payload; an agent node (whose remote task asked for input) runs
/// again as its next attempt, which sends the payload on the same remote
/// task and goes on waiting for it.
fn answer(
    workflow: &Workflow,
    st: &mut ExecutionState,
    node: &str,
    visit: u32,
    attempt: u32,
    payload: &Json,
) -> Command {
    if let Some(NodeKind::Agent(_)) = workflow.node(node).map(|n| &n.kind) {
        return match payload.value() {
            Ok(v) => {
                st.agents.entry(node.to_string()).or_default().answered(visit, v);
                Command::Start { node: node.into(), visit, attempt: attempt + 1 }
            }
            Err(e) => Command::FailNode {
                node: node.into(),
                visit,
                attempt,
                class: ErrorClass::InvalidOutput,
                message: format!("the event's payload: {e}"),
            },
        };
    }
    resolve_with_payload(workflow, node, visit, attempt, payload)
}

fn resolve_with_payload(workflow: &Workflow, node: &str, visit: u32, attempt: u32, payload: &Json) -> Command {
    let output_key = match workflow.node(node).map(|n| &n.kind) {
        Some(NodeKind::Wait(w)) => w.output_key.clone(),
        _ => None,
    };
    match (output_key, payload.value()) {
        (None, _) => Command::Resolve { node: node.into(), visit, attempt, patch: Map::new(), next: None },
        (Some(k), Ok(v)) => {
            Command::Resolve { node: node.into(), visit, attempt, patch: Map::from_iter([(k, v)]), next: None }
        }
        (Some(_), Err(e)) => Command::FailNode {
            node: node.into(),
            visit,
            attempt,
            class: ErrorClass::InvalidOutput,
            message: format!("the event's payload: {e}"),
        },
    }
}

/// A fan-out's result: the patch and where to go on, or why it failed.
type Joined = Result<(Map<String, Value>, Option<String>), (ErrorClass, String)>;

/// Decide a fan-out once enough of its children have finished: complete
/// the node with the merged result, or fail it; children still running
/// are then cancelled.
fn join(workflow: &Workflow, st: &mut ExecutionState, node: &str) -> Vec<Command> {
    let id = st.id;
    let Some(a) = st.active.get_mut(node) else { return Vec::new() };
    let Some(f) = &a.fan_out else { return Vec::new() };
    let (visit, attempt) = (a.visit, a.attempt);
    let kind = workflow.node(node).map(|n| &n.kind);
    let done = f.finished.len() as u32 == f.branches;
    let decided: Option<Joined> = match kind {
        Some(NodeKind::Workflow(spec)) => f.finished.get(&0).map(|outcome| match outcome {
            BranchOutcome::Completed { patch } => match patch.value() {
                Ok(v) => Ok((spec.output_key.iter().map(|k| (k.clone(), v.clone())).collect(), None)),
                Err(e) => Err((ErrorClass::Internal, format!("the child's final state: {e}"))),
            },
            BranchOutcome::Failed { error } => {
                Err((ErrorClass::ChildFailed, format!("the child workflow failed: {error}")))
            }
            BranchOutcome::Cancelled => Err((ErrorClass::ChildFailed, "the child workflow was cancelled".into())),
        }),
        Some(NodeKind::Parallel(p)) => {
            let failed = f.finished.iter().find_map(|(b, o)| match o {
                BranchOutcome::Failed { error } => Some(format!("branch {b} failed: {error}")),
                BranchOutcome::Cancelled => Some(format!("branch {b} was cancelled")),
                BranchOutcome::Completed { .. } => None,
            });
            let first_done = f.finished.values().find_map(|o| match o {
                BranchOutcome::Completed { patch } => Some(patch),
                _ => None,
            });
            let next = Some(p.join.clone());
            match (p.merge, p.on_error, failed) {
                (_, OnError::FailFast, Some(why)) => Err((ErrorClass::ChildFailed, why)),
                (Merge::First, _, _) if first_done.is_some() => first_done
                    .expect("checked")
                    .object()
                    .map(|m| (m, next))
                    .map_err(|e| (ErrorClass::Internal, e.to_string())),
                (Merge::First, _, Some(_)) if done => Err((
                    ErrorClass::ChildFailed,
                    format!("all {} failed", crate::plural::count(f.branches, "branch", "branches")),
                )),
                _ if !done => return Vec::new(),
                (Merge::Keys | Merge::First, _, _) => {
                    let mut merged = Map::new();
                    for o in f.finished.values() {
                        if let BranchOutcome::Completed { patch } = o {
                            merged.extend(patch.object().unwrap_or_default());
                        }
                    }
                    Ok((merged, next))
                }
                (Merge::Collect, _, _) => {
                    let list: Vec<Value> = f
                        .finished
                        .values()
                        .map(|o| match o {
                            BranchOutcome::Completed { patch } => patch.value().unwrap_or(Value::Null),
                            BranchOutcome::Failed { error } => json!({ "error": error }),
                            BranchOutcome::Cancelled => json!({ "error": "cancelled" }),
                        })
                        .collect();
                    Ok((p.output_key.iter().map(|k| (k.clone(), Value::Array(list.clone()))).collect(), next))
                }
            }
            .into()
        }
        _ => Some(Err((ErrorClass::Internal, format!("node `{node}` cannot fan out")))),
    };
    let Some(decided) = decided else { return Vec::new() };
    let orphans = take_unfinished(id, node, a);
    st.orphans.extend(orphans.iter().copied());
    let mut cmds = cancel(orphans);
    cmds.push(match decided {
        Ok((patch, next)) => Command::Resolve { node: node.to_string(), visit, attempt, patch, next },
        Err((class, message)) => Command::FailNode { node: node.to_string(), visit, attempt, class, message },
    });
    cmds
}

/// What a rehydrated execution must do to go on from where its journal
/// stops: a node scheduled but not started starts; a node started but not
/// completed starts again with attempt + 1 (same visit, so the same
/// idempotency key); a pending retry waits for its recorded deadline; a
/// fan-out finds its children again (only unfinished ones run); a parked
/// node stays parked; children a finished fan-out left are cancelled.
pub fn resume(st: &ExecutionState) -> Vec<Command> {
    match st.phase {
        Phase::NotStarted => {
            return vec![Command::Fail { node: None, error: "the journal has no ExecutionStarted".into() }];
        }
        p if p.is_terminal() => return Vec::new(),
        _ => {}
    }
    let mut cmds = cancel(st.orphans.iter().copied().collect());
    if st.active.is_empty() {
        cmds.push(Command::Complete);
        return cmds;
    }
    for (node, a) in &st.active {
        let (node, visit) = (node.clone(), a.visit);
        cmds.push(match (&a.retry_at, &a.wait, &a.fan_out) {
            (Some((attempt, at_ms)), _, _) => Command::RetryAt { node, visit, attempt: *attempt, at_ms: *at_ms },
            // Parked: its deadline is in the timer index, its event will be delivered.
            (None, Some(_), _) => continue,
            (None, None, Some(f)) => Command::Children { node, visit, attempt: f.attempt },
            (None, None, None) => Command::Start { node, visit, attempt: a.attempt + 1 },
        });
    }
    cmds
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
    fn usage_is_the_sum_over_exchanges_failed_attempts_included() {
        let wf = wf();
        let mut st = ExecutionState::new(ExecutionId::new(0));
        apply(&wf, &mut st, &rec(1, started()));
        apply(&wf, &mut st, &rec(2, Event::NodeScheduled { node: "a".into(), visit: 1 }));
        apply(&wf, &mut st, &rec(3, Event::NodeStarted { node: "a".into(), visit: 1, attempt: 1 }));
        let exchange = |attempt, tokens| Event::Exchange {
            node: "a".into(),
            visit: 1,
            attempt,
            request: Json("{}".into()),
            response: Json("{}".into()),
            usage: Usage { input_tokens: tokens, output_tokens: 1, cost_usd: 0.125 },
        };
        assert_eq!(apply(&wf, &mut st, &rec(4, exchange(1, 10))), Vec::new());
        assert_eq!(apply(&wf, &mut st, &rec(5, exchange(2, 20))), Vec::new());
        assert_eq!(st.usage, Usage { input_tokens: 30, output_tokens: 2, cost_usd: 0.25 });
        // An exchange changes nothing else: the node is still running.
        assert!(st.active.contains_key("a"));
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

    /// A timer node ends with `TimerFired`; a journal written before it
    /// existed ends one with `WaitTimedOut`, which folds to the same state
    /// and commands. A wait on an event still times out to a failure.
    #[test]
    fn a_timer_fires_and_an_old_journals_timeout_of_a_timer_folds_the_same() {
        let wf = crate::ir::compile_str(
            "id: t\nstate_schema: { k: str }\nnodes:\n  nap: { type: wait, duration_ms: 10, next: pay }\n  pay: { type: wait, event: k, timeout_ms: 10 }\n",
            "t.yaml",
        )
        .unwrap();
        let parked = |end: Event| {
            let mut st = ExecutionState::new(ExecutionId::new(0));
            apply(&wf, &mut st, &rec(1, started()));
            apply(&wf, &mut st, &rec(2, Event::NodeScheduled { node: "nap".into(), visit: 1 }));
            apply(&wf, &mut st, &rec(3, Event::NodeStarted { node: "nap".into(), visit: 1, attempt: 1 }));
            let waiting =
                Event::Waiting { node: "nap".into(), visit: 1, event: None, deadline_ms: Some(1013), prompt: None };
            apply(&wf, &mut st, &rec(4, waiting));
            assert!(is_timer(&wf, "nap", st.active["nap"].wait.as_ref().unwrap()));
            let cmds = apply(&wf, &mut st, &rec(5, end));
            (st, cmds)
        };
        let (fired, cmds) = parked(Event::TimerFired { node: "nap".into(), visit: 1 });
        let resolved =
            vec![Command::Resolve { node: "nap".into(), visit: 1, attempt: 1, patch: Map::new(), next: None }];
        assert_eq!(cmds, resolved);
        let (old, old_cmds) = parked(Event::WaitTimedOut { node: "nap".into(), visit: 1 });
        assert_eq!(old_cmds, resolved);
        assert_eq!(old.active, fired.active);

        let mut st = fired;
        let event_wait = Wait { event: Some("k".into()), deadline_ms: Some(1), prompt: None, since_ms: 0 };
        assert!(!is_timer(&wf, "pay", &event_wait), "a wait on an event is no timer");
        st.active.insert(
            "pay".into(),
            ActiveNode {
                visit: 1,
                attempt: 1,
                retry_at: None,
                panics: Vec::new(),
                wait: Some(event_wait),
                fan_out: None,
                started_ms: 0,
            },
        );
        let cmds = apply(&wf, &mut st, &rec(6, Event::WaitTimedOut { node: "pay".into(), visit: 1 }));
        assert!(matches!(&cmds[..], [Command::FailNode { class: ErrorClass::Timeout, .. }]), "{cmds:?}");
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
