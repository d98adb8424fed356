//! The execution state machine: [`step`] decides, [`apply`] folds.
//!
//! Pure: no IO, no clock reading, no await. Whatever reaches an execution
//! (its start, a node's result, a signal, a decision, a cancel, a due
//! deadline, children's ends) is an [`Input`]; `step(workflow, state,
//! input, now)` makes the events it implies (retry decisions, the output
//! check, due deadlines included), folds each through [`apply`], and
//! returns them with the [`Effect`]s the shell carries out once they are
//! durable. Recovery folds the journal through the same `apply` and then
//! steps [`Input::Resume`], so a live run and a replay cannot drift apart.
//! Whether an execution is settled, and what it waits for, are answered
//! here too ([`settled`], [`waits`]). `apply` hands each event kind to
//! its own function, grouped by concern: `started`, `node`, `wait`,
//! `fan_out`, `ended`.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;

use serde_json::{Map, Value, json};

use super::retry::RestartBudget;
use crate::id::ExecutionId;
use crate::ir::{Limit, Merge, NodeKind, OnError, Workflow};
use crate::journal::{BranchOutcome, CallRecord, ErrorClass, Event, Json, Record, RetryDecision, Usage};
use crate::nodes::{AgentRound, CallApproval, PastTurn};

mod ended;
mod fan_out;
mod node;
mod settled;
mod started;
mod step;
mod wait;

pub use settled::{Settled, WaitKind, Waits, settled, waits};
pub use step::{Input, NodeResult, Step, accepts_call, pending_approval, pending_call, step};

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
    /// The node waits for decisions on tool calls of its visit (they are
    /// in [`ExecutionState::approvals`]), not as an `approval` node.
    pub calls: bool,
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
    /// The largest state allowed (the `max_state_bytes` limit in force);
    /// the shell sets it on a live execution, like [`Self::max_steps`].
    pub max_state_bytes: u64,
    /// Panics of one node visit tolerated within a window (the runtime's
    /// restart budget); the shell sets it on a live execution.
    pub restart_budget: RestartBudget,
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
    /// The calls each active node's visit has journaled (`Event::Call`),
    /// which a retried or resumed attempt reads back instead of making.
    pub calls: HashMap<String, VisitCalls>,
    /// The tool calls of each active node's visit that needed a person's
    /// decision (`CallsPending`), with the decisions (`CallDecided`),
    /// which every later attempt of the visit reads.
    pub approvals: HashMap<String, VisitApprovals>,
    /// The conversation so far of the session this execution is a task
    /// of (`SessionJoined`), which agent and model nodes are given.
    pub history: Arc<Vec<PastTurn>>,
}

/// The tool calls of one node visit that needed a decision, in the order
/// asked, and how often the visit ran again once all were decided.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VisitApprovals {
    pub visit: u32,
    pub calls: Vec<CallApproval>,
    /// Continuations after decisions: attempts that are not retries.
    pub rounds: u32,
}

impl VisitApprovals {
    /// The calls that still wait for a decision.
    pub fn undecided(&self) -> impl Iterator<Item = &CallApproval> {
        self.calls.iter().filter(|c| c.decision.is_none())
    }
}

/// The journaled calls of one node visit, in order (numbered from 1).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VisitCalls {
    pub visit: u32,
    pub records: Vec<CallRecord>,
}

impl VisitCalls {
    /// Tokens and cost of the calls.
    pub fn usage(&self) -> Usage {
        let mut u = Usage::default();
        for r in &self.records {
            u.add(&r.usage);
        }
        u
    }
}

/// What applying one event asks for next: an event the core makes and
/// folds in the same step (`Schedule`, `Start`, `Resolve`, `FailNode`,
/// `Complete`, `Fail`; [`step`] turns them into events, deciding a retry),
/// or an [`Effect`] for the shell.
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
    /// Such a node failed; its retry policy decides what follows.
    FailNode {
        node: String,
        visit: u32,
        attempt: u32,
        class: ErrorClass,
        message: String,
    },
    Complete,
    Fail {
        node: Option<String>,
        error: String,
    },
    Effect(Effect),
}

/// What the shell carries out once a step's events are durable. Nothing
/// here is journaled: each follows from events already written.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Run this attempt of a node (inline for a pure or control node, in a
    /// NodeActor otherwise); its result comes back as [`Input::Node`].
    Run { node: String, visit: u32, attempt: u32 },
    /// A retry waits until `at_ms` (the timer index holds it too); then
    /// [`Input::Tick`] starts it.
    RetryAt { node: String, visit: u32, attempt: u32, at_ms: u64 },
    /// Start (or, after a restart, find again) the children of a fan-out.
    Children { node: String, visit: u32, attempt: u32 },
    /// Cancel these child executions (they may have finished already).
    CancelChildren(Vec<ExecutionId>),
    /// The execution ended: stop its actor.
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
            max_state_bytes: u64::MAX,
            restart_budget: RestartBudget::default(),
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
            calls: HashMap::new(),
            approvals: HashMap::new(),
            history: Arc::new(Vec::new()),
        }
    }

    /// Parked: every active node waits (for an event, an approval, a timer).
    pub fn parked(&self) -> bool {
        self.phase == Phase::Running && !self.active.is_empty() && self.active.values().all(|a| a.wait.is_some())
    }

    /// Whether `attempt` of `node`'s `visit` is the one running now (a
    /// result of any other is stale, and ignored).
    pub fn is_current(&self, node: &str, visit: u32, attempt: u32) -> bool {
        self.active.get(node).is_some_and(|a| a.visit == visit && a.attempt == attempt && a.retry_at.is_none())
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
        Event::ExecutionStarted { .. } => started::execution_started(workflow, st, rec),
        Event::ChildStarted { .. } => started::child_started(workflow, st, rec),
        Event::BranchStarted { .. } => started::branch_started(workflow, st, rec),
        Event::NodeScheduled { .. } => node::node_scheduled(workflow, st, rec),
        Event::NodeStarted { .. } => node::node_started(workflow, st, rec),
        Event::NodeCompleted { .. } => node::node_completed(workflow, st, rec),
        Event::NodeFailed { .. } => node::node_failed(workflow, st, rec),
        Event::ExecutionCompleted { .. } => ended::execution_completed(workflow, st, rec),
        Event::ExecutionFailed { .. } => ended::execution_failed(workflow, st, rec),
        Event::ExecutionCancelled { .. } => ended::execution_cancelled(workflow, st, rec),
        Event::Waiting { .. } => wait::waiting(workflow, st, rec),
        Event::SignalReceived { .. } => wait::signal_received(workflow, st, rec),
        Event::WaitTimedOut { .. } => wait::wait_timed_out(workflow, st, rec),
        Event::ApprovalDecided { .. } => wait::approval_decided(workflow, st, rec),
        Event::FanOut { .. } => fan_out::fan_out(workflow, st, rec),
        Event::BranchFinished { .. } => fan_out::branch_finished(workflow, st, rec),
        Event::Exchange { .. } => node::exchange(workflow, st, rec),
        Event::Call { .. } => node::call(workflow, st, rec),
        Event::Scored { .. } => Vec::new(),
        Event::TimerFired { .. } => wait::timer_fired(workflow, st, rec),
        Event::CallsPending { .. } => wait::calls_pending(workflow, st, rec),
        Event::CallDecided { .. } => wait::call_decided(workflow, st, rec),
        Event::SessionJoined { .. } => started::session_joined(workflow, st, rec),
        Event::Forked { .. } => started::forked(workflow, st, rec),
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
    if ids.is_empty() { Vec::new() } else { vec![Command::Effect(Effect::CancelChildren(ids))] }
}

/// The children of `a`'s fan-out that have not finished; the fan-out is over.
fn take_unfinished(parent: ExecutionId, node: &str, a: &mut ActiveNode) -> Vec<ExecutionId> {
    let Some(f) = a.fan_out.take() else { return Vec::new() };
    (0..f.branches)
        .filter(|b| !f.finished.contains_key(b))
        .map(|b| ExecutionId::child(parent, node, a.visit, f.attempt, b))
        .collect()
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
            (Some((attempt, at_ms)), _, _) => {
                Command::Effect(Effect::RetryAt { node, visit, attempt: *attempt, at_ms: *at_ms })
            }
            // Parked: its deadline is in the timer index, its event will be delivered.
            (None, Some(_), _) => continue,
            (None, None, Some(f)) => Command::Effect(Effect::Children { node, visit, attempt: f.attempt }),
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
            vec![Command::Effect(Effect::Run { node: "a".into(), visit: 1, attempt: 1 })]
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
    fn calls_are_taken_in_order_from_the_running_attempt_kept_across_retries_and_dropped_at_completion() {
        let wf = wf();
        let mut st = ExecutionState::new(ExecutionId::new(0));
        apply(&wf, &mut st, &rec(1, started()));
        apply(&wf, &mut st, &rec(2, Event::NodeScheduled { node: "a".into(), visit: 1 }));
        apply(&wf, &mut st, &rec(3, Event::NodeStarted { node: "a".into(), visit: 1, attempt: 1 }));
        let call = |n| CallRecord {
            n,
            kind: "model".into(),
            name: "m".into(),
            request: Json("{}".into()),
            response: Json("{}".into()),
            usage: Usage { input_tokens: 10, output_tokens: 1, cost_usd: 0.5 },
        };
        assert_eq!(accepts_call(&st, "a", 1, 1, 1), Ok(()));
        assert!(accepts_call(&st, "a", 1, 1, 2).unwrap_err().contains("journals call 1 next"));
        assert!(accepts_call(&st, "a", 1, 2, 1).unwrap_err().contains("no longer running"));
        let ev = |n, attempt| Event::Call { node: "a".into(), visit: 1, attempt, call: call(n) };
        assert_eq!(apply(&wf, &mut st, &rec(4, ev(1, 1))), Vec::new());
        // A retry keeps the visit's calls: its attempt reads them back.
        let failed = Event::NodeFailed {
            node: "a".into(),
            visit: 1,
            attempt: 1,
            class: ErrorClass::Timeout,
            message: "slow".into(),
            retry: RetryDecision::Retry { attempt: 2, at_ms: 0 },
        };
        apply(&wf, &mut st, &rec(5, failed));
        apply(&wf, &mut st, &rec(6, Event::NodeStarted { node: "a".into(), visit: 1, attempt: 2 }));
        assert_eq!(accepts_call(&st, "a", 1, 2, 2), Ok(()));
        assert_eq!(apply(&wf, &mut st, &rec(7, ev(2, 2))), Vec::new());
        assert_eq!(st.calls["a"].records.len(), 2);
        assert_eq!(st.usage, Usage { input_tokens: 20, output_tokens: 2, cost_usd: 1.0 });
        // A number out of order is a journal inconsistency, not a panic.
        let bad = apply(&wf, &mut st, &rec(8, ev(5, 2)));
        assert!(matches!(&bad[..], [Command::Fail { error, .. }] if error.contains("call 5 where call 3 was next")));
        let done = Event::NodeCompleted {
            node: "a".into(),
            visit: 1,
            attempt: 2,
            patch: Json("{}".into()),
            next: None,
            duration_us: 1,
            usage: Usage::default(),
        };
        apply(&wf, &mut st, &rec(9, done));
        assert!(!st.calls.contains_key("a"));
    }

    #[test]
    fn pending_tool_calls_park_the_node_each_decision_folds_on_its_own_and_the_last_starts_a_continuation() {
        let wf = wf();
        let mut st = ExecutionState::new(ExecutionId::new(0));
        let mut history = vec![
            rec(1, started()),
            rec(2, Event::NodeScheduled { node: "a".into(), visit: 1 }),
            rec(3, Event::NodeStarted { node: "a".into(), visit: 1, attempt: 1 }),
        ];
        for r in &history {
            apply(&wf, &mut st, r);
        }
        let call = |id: &str, tool: &str| crate::journal::PendingCall {
            id: id.into(),
            tool: tool.into(),
            arguments: Json("{}".into()),
            prompt: format!("call {tool}?"),
        };
        let pending = Event::CallsPending {
            node: "a".into(),
            visit: 1,
            attempt: 1,
            calls: vec![call("a.1", "mail"), call("a.2", "pay")],
        };
        history.push(rec(4, pending));
        assert_eq!(apply(&wf, &mut st, &history[3]), Vec::new());
        assert!(st.parked(), "the node waits for the decisions");
        assert_eq!(waits(&st)[0].1, WaitKind::Approval);
        assert_eq!(resume(&st), Vec::new(), "a restart leaves it parked");
        assert_eq!(pending_call(&st, "a.1"), Ok(("a".into(), 1)));
        let e = pending_approval(&st, None).unwrap_err();
        assert!(e.contains("waits for decisions on tool calls") && e.contains("a.1, a.2"), "{e}");
        assert!(
            pending_call(&st, "a.3")
                .unwrap_err()
                .contains("no tool call `a.3` waiting for a decision (waiting: a.1, a.2)")
        );

        // Decided in reverse order: the first decision only folds.
        let decided = |call: &str, approved| Event::CallDecided {
            node: "a".into(),
            visit: 1,
            call: call.into(),
            approved,
            by: "ada".into(),
            comment: None,
        };
        history.push(rec(5, decided("a.2", false)));
        assert_eq!(apply(&wf, &mut st, &history[4]), Vec::new());
        assert!(st.parked());
        assert_eq!(
            st.active["a"].wait.as_ref().unwrap().prompt.as_deref(),
            Some("tool calls wait for a decision: a.1: call mail?")
        );
        assert!(
            pending_call(&st, "a.2").unwrap_err().starts_with("tool call `a.2` was already decided: rejected by ada")
        );
        // The last one starts the continuation, same visit, next attempt.
        history.push(rec(6, decided("a.1", true)));
        assert_eq!(apply(&wf, &mut st, &history[5]), vec![Command::Start { node: "a".into(), visit: 1, attempt: 2 }]);
        assert!(!st.parked());
        let v = &st.approvals["a"];
        assert_eq!((v.visit, v.rounds, v.undecided().count()), (1, 1, 0));
        let decisions: Vec<Option<bool>> = v.calls.iter().map(|c| c.decision.as_ref().map(|d| d.approved)).collect();
        assert_eq!(decisions, [Some(true), Some(false)]);
        // A replay of the history folds to the same state.
        assert_eq!(ExecutionState::replay(st.id, &wf, &history), st);
        // A decision for a call that does not wait is a journal inconsistency.
        let late = apply(&wf, &mut st, &rec(7, decided("a.1", true)));
        assert!(matches!(&late[..], [Command::Fail { error, .. }] if error.contains("inconsistency")), "{late:?}");
    }

    #[test]
    fn the_continuation_after_decisions_is_not_counted_as_a_retry() {
        let wf = crate::ir::compile_str(
            "id: t\nstate_schema: { n: int }\nnodes:\n  a: { type: set, values: { n: 1 }, retry: { max_attempts: 2, backoff: constant, delay_ms: 5, retry_on: [timeout] } }\n",
            "t.yaml",
        )
        .unwrap();
        let mut st = ExecutionState::new(ExecutionId::new(0));
        let pending = Event::CallsPending {
            node: "a".into(),
            visit: 1,
            attempt: 1,
            calls: vec![crate::journal::PendingCall {
                id: "a.1".into(),
                tool: "t".into(),
                arguments: Json("{}".into()),
                prompt: "?".into(),
            }],
        };
        let decided = Event::CallDecided {
            node: "a".into(),
            visit: 1,
            call: "a.1".into(),
            approved: true,
            by: "b".into(),
            comment: None,
        };
        for (i, e) in [
            started(),
            Event::NodeScheduled { node: "a".into(), visit: 1 },
            Event::NodeStarted { node: "a".into(), visit: 1, attempt: 1 },
            pending,
            decided,
            Event::NodeStarted { node: "a".into(), visit: 1, attempt: 2 },
        ]
        .into_iter()
        .enumerate()
        {
            apply(&wf, &mut st, &rec(i as u64 + 1, e));
        }
        // Attempt 2 is the continuation: its timeout is the visit's first failure, retried once.
        let failed = crate::nodes::NodeError::new(ErrorClass::Timeout, "slow");
        let input = Input::Node {
            node: "a".into(),
            visit: 1,
            attempt: 2,
            result: NodeResult::Ran(Err(failed)),
            duration_us: 1,
        };
        let out = step(&wf, &mut st, input, 2_000);
        assert!(
            matches!(&out.events[..], [Event::NodeFailed { retry: RetryDecision::Retry { attempt: 3, .. }, .. }]),
            "{:?}",
            out.events
        );
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
            vec![Command::Effect(Effect::Finished)]
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
            vec![Command::Effect(Effect::RetryAt { node: "a".into(), visit: 1, attempt: 2, at_ms: 9_999 })]
        );
        assert_eq!(
            resume(&st),
            vec![Command::Effect(Effect::RetryAt { node: "a".into(), visit: 1, attempt: 2, at_ms: 9_999 })]
        );
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
        let event_wait =
            Wait { event: Some("k".into()), deadline_ms: Some(1), prompt: None, since_ms: 0, calls: false };
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
