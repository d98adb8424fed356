//! ExecutionActor: the IO shell of one execution.
//!
//! It turns what happens (a submission, a node's result, a signal, a due
//! deadline) into an [`Input`] of [`machine::step`], which decides and
//! makes the events; it appends them to the journal in one durable batch,
//! and only then carries out the effects (run a node, start children,
//! report the end). One batch per step: a node's `NodeCompleted`, the next
//! node's `NodeScheduled` and `NodeStarted` share one sync, and pure and
//! control nodes run inside the batch.
//!
//! Deadlines (retry delays, wait timeouts, timers, the workflow's
//! `timeout_ms`) are kept in the journal's timer index, written in the same
//! batch as the events that set or clear them; the [`TimerWheel`] delivers
//! a `Tick` when one is due. A parked execution (every active node waits)
//! asks the supervisor to hibernate it: its actor stops, and the next
//! delivery (a signal, a decision, a tick, a cancel) rehydrates it.
//!
//! [`TimerWheel`]: super::timers::TimerWheel

use std::collections::{BTreeSet, HashMap};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::FutureExt;

use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef, SupervisionEvent};
use serde_json::{Map, Value};
use tracing::{debug, warn};

use super::handles::{ExecutionHandle, SupervisorHandle};
use super::machine::{self, Effect, ExecutionState, Input, NodeResult, Phase, Step};
use super::messages::{Delivery, ExecutionMsg, ParallelMsg, Start};
use super::node::{NodeActor, NodeArgs};
use super::parallel::{ParallelActor, ParallelArgs};
use super::{Error, Shared};
use crate::id::ExecutionId;
use crate::ir::{NodeKind, Workflow};
use crate::journal::{Append, ErrorClass, ExecutionMeta, Json, Record, Status, TimerChange, WaitChange};
use crate::nodes::control::{self, ChildSpec};
use crate::nodes::{NodeCtx, NodeError, NodeOutput, executor_for, idempotency_key};

pub(crate) struct ExecutionArgs {
    pub id: ExecutionId,
    pub workflow: Arc<Workflow>,
    pub hash: String,
    pub services: Arc<Shared>,
    pub start: Start,
    pub supervisor: SupervisorHandle,
}

pub(crate) struct ExecutionActor;

pub(crate) struct State {
    id: ExecutionId,
    wf: Arc<Workflow>,
    hash: String,
    services: Arc<Shared>,
    machine: ExecutionState,
    /// Running node actors: which attempt each one is.
    nodes: HashMap<ActorId, (String, u32, u32)>,
    start: Option<Start>,
    /// The template variables nodes see (`item`, `index`); set once, by the first event.
    vars: Arc<Map<String, Value>>,
    supervisor: SupervisorHandle,
    /// The status last written to the execution index (`None`: not yet).
    status: Option<Status>,
    /// The deadlines the timer index holds for this execution.
    deadlines: BTreeSet<u64>,
    /// The event keys the wait index holds for this execution.
    waits: BTreeSet<String>,
    /// Kept events taken by the next append (see `Delivery::Event`).
    taking: Vec<WaitChange>,
    /// Deliveries handled (the supervisor compares it with what it forwarded).
    delivered: u64,
    /// A hibernation request is with the supervisor.
    hibernating: bool,
    /// The fan-out in progress, if any.
    parallel: Option<ActorRef<ParallelMsg>>,
    /// Children computed when a fan-out was journaled, for its ParallelActor.
    plans: HashMap<(String, u32, u32), Vec<ChildSpec>>,
}

impl Actor for ExecutionActor {
    type Msg = ExecutionMsg;
    type State = State;
    type Arguments = ExecutionArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<ExecutionMsg>,
        mut args: ExecutionArgs,
    ) -> Result<State, ActorProcessingErr> {
        let (mut machine, status) = match &mut args.start {
            Start::New { base, .. } => {
                let mut machine = ExecutionState::new(args.id);
                machine.base = base.take();
                (machine, None)
            }
            Start::Rehydrate | Start::FailWith(_) => {
                let records = args.services.journal.read(args.id)?;
                let machine = super::fold::replay(&args.services, args.id, &args.workflow, &records)?;
                let status = agree_with_history(&args, &machine, &records).await?;
                (machine, status)
            }
        };
        machine.max_steps = args.services.limits.max_steps.min(args.workflow.max_steps.unwrap_or(u64::MAX));
        machine.max_state_bytes = args.services.limits.max_state_bytes;
        machine.restart_budget = args.services.restart_budget;
        // A workflow journaled before this version checked it (or under
        // other limits) fails its execution, journaled, instead of running.
        if matches!(args.start, Start::Rehydrate)
            && let Some(problems) = args.services.problems(&args.hash, &args.workflow)
        {
            args.start = Start::FailWith(format!("its workflow does not pass the checks of this runtime: {problems}"));
        }
        Ok(State {
            deadlines: machine.deadlines(&args.workflow),
            waits: super::wait::keys(&machine),
            taking: Vec::new(),
            supervisor: args.supervisor,
            status,
            delivered: 0,
            hibernating: false,
            parallel: None,
            plans: HashMap::new(),
            id: args.id,
            wf: args.workflow,
            hash: args.hash,
            services: args.services,
            vars: Arc::new(machine.vars.clone()),
            machine,
            nodes: HashMap::new(),
            start: Some(args.start),
        })
    }

    async fn post_start(&self, myself: ActorRef<ExecutionMsg>, st: &mut State) -> Result<(), ActorProcessingErr> {
        match st.start.take() {
            Some(Start::New { first, started, .. }) => {
                // The submission is acknowledged once its first event is
                // durable; what fails after that is the supervisor's to handle.
                match persist(st, Some(Input::Start(*first)), Vec::new()).await {
                    Ok(effects) => {
                        let _ = started.send(Ok(()));
                        carry_out(&myself, st, effects).await?;
                        maybe_hibernate(&myself, st);
                    }
                    Err(e) => {
                        let _ = started.send(Err(e.to_string()));
                        myself.stop(Some("start failed".into()));
                    }
                }
            }
            Some(Start::Rehydrate) => {
                debug!(execution_id = %st.id, "rehydrated");
                if st.machine.phase.is_terminal() {
                    finish(&myself, st);
                } else if let Some(reason) = orphaned(st)? {
                    // Its parent ended (or no longer needs it) while it was down.
                    drive(&myself, st, Some(Input::Cancel { reason }), Vec::new()).await?;
                } else {
                    drive(&myself, st, Some(Input::Resume), Vec::new()).await?;
                }
            }
            Some(Start::FailWith(error)) => {
                if st.machine.phase.is_terminal() {
                    finish(&myself, st);
                } else {
                    drive(&myself, st, Some(Input::Fail { node: None, error }), Vec::new()).await?;
                }
            }
            None => {}
        }
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<ExecutionMsg>,
        msg: ExecutionMsg,
        st: &mut State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            ExecutionMsg::NodeDone { node, visit, attempt, result, duration_us } => {
                // A stale attempt's result changes nothing (the step would drop it).
                if !st.machine.is_current(&node, visit, attempt) {
                    return Ok(());
                }
                let input = Input::Node { node, visit, attempt, result: NodeResult::Ran(result), duration_us };
                drive(&myself, st, Some(input), Vec::new()).await?;
            }
            ExecutionMsg::Deliver(delivery) => {
                st.delivered += 1;
                st.hibernating = false;
                deliver(&myself, st, delivery).await?;
            }
            // A hibernating actor acts only on deliveries (which the supervisor counts).
            ExecutionMsg::Due if st.hibernating => {}
            ExecutionMsg::Due => drive(&myself, st, Some(Input::Tick), Vec::new()).await?,
            ExecutionMsg::BranchesDone { node, visit, attempt, ends } => {
                drive(&myself, st, Some(Input::BranchesDone { node, visit, attempt, ends }), Vec::new()).await?;
                if let Some(p) = &st.parallel {
                    let _ = p.cast(ParallelMsg::Taken);
                }
            }
            ExecutionMsg::RunPure { node, visit, attempt } => {
                if st.machine.is_current(&node, visit, attempt) {
                    drive(&myself, st, None, vec![Effect::Run { node, visit, attempt }]).await?;
                }
            }
            #[cfg(test)]
            ExecutionMsg::Panic(text) => panic!("{text}"),
        }
        maybe_hibernate(&myself, st);
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<ExecutionMsg>,
        evt: SupervisionEvent,
        st: &mut State,
    ) -> Result<(), ActorProcessingErr> {
        match evt {
            SupervisionEvent::ActorTerminated(cell, _, _) => {
                st.nodes.remove(&cell.get_id());
                if st.parallel.as_ref().is_some_and(|p| p.get_id() == cell.get_id()) {
                    st.parallel = None;
                }
            }
            SupervisionEvent::ActorFailed(cell, err)
                if st.parallel.as_ref().is_some_and(|p| p.get_id() == cell.get_id()) =>
            {
                // Its children live on in the journal: find them again.
                warn!(execution_id = %st.id, error = %err, "parallel actor failed; restarting it");
                st.parallel = None;
                let fan_outs: Vec<Effect> = st
                    .machine
                    .active
                    .iter()
                    .filter_map(|(n, a)| {
                        a.fan_out.as_ref().map(|f| Effect::Children {
                            node: n.clone(),
                            visit: a.visit,
                            attempt: f.attempt,
                        })
                    })
                    .collect();
                carry_out(&myself, st, fan_outs).await?;
            }
            SupervisionEvent::ActorFailed(cell, err) => {
                let Some((node, visit, attempt)) = st.nodes.remove(&cell.get_id()) else { return Ok(()) };
                if !st.machine.is_current(&node, visit, attempt) {
                    return Ok(());
                }
                warn!(execution_id = %st.id, node = %node, attempt, error = %err, "node panicked");
                let err = NodeError::new(ErrorClass::Panic, err.to_string());
                let input = Input::Node { node, visit, attempt, result: NodeResult::Ran(Err(err)), duration_us: 0 };
                drive(&myself, st, Some(input), Vec::new()).await?;
            }
            _ => {}
        }
        Ok(())
    }
}

/// Step `input` (if any) through the machine, append what it made durably
/// in one batch, then carry out the effects.
async fn drive(
    myself: &ActorRef<ExecutionMsg>,
    st: &mut State,
    input: Option<Input>,
    effects: Vec<Effect>,
) -> Result<(), ActorProcessingErr> {
    let effects = persist(st, input, effects).await?;
    carry_out(myself, st, effects).await
}

/// Step `input` through the machine, run the pure and control nodes it
/// asks for inline (stepping their results into the same batch), and
/// append the events in one durable batch, with the index row and timer
/// index changes they imply. `pending`: effects already asked for (a pure
/// node that did not fit in the previous batch). Returns the effects to
/// carry out now that the events are durable.
async fn persist(
    st: &mut State,
    input: Option<Input>,
    pending: Vec<Effect>,
) -> Result<Vec<Effect>, ActorProcessingErr> {
    let now = st.services.clock.now_ms();
    let first_seq = st.machine.last_seq + 1;
    let phase_before = st.machine.phase;
    let mut step = Step { events: Vec::new(), effects: pending };
    if let Some(input) = input {
        step.extend(machine::step(&st.wf, &mut st.machine, input, now));
    }
    // Pure nodes (no IO: set, branch, end) run right here, inside this
    // step, and control nodes (wait, approval, parallel, workflow)
    // journal what they wait for or start; their events join this
    // batch, so a chain of them costs one sync. Anything with side
    // effects waits for the batch to be durable.
    let mut inline_left = INLINE_STEPS_PER_BATCH;
    while inline_left > 0
        && let Some((node, visit, attempt)) = take_inline(st, &mut step.effects)
    {
        inline_left -= 1;
        let (result, duration_us) = run_inline(st, &node, visit, attempt, now);
        let input = Input::Node { node, visit, attempt, result, duration_us };
        step.extend(machine::step(&st.wf, &mut st.machine, input, now));
    }
    let Step { events: written, effects } = step;
    let status = status_of(&st.machine);
    let meta = (st.status != Some(status)).then(|| ExecutionMeta {
        id: st.id,
        workflow_id: st.wf.id.clone(),
        workflow_version: st.wf.version.clone(),
        workflow_hash: st.hash.clone(),
        status,
        created_ms: st.machine.started_ms,
        updated_ms: now,
        key: st.machine.key.clone(),
    });
    let workflow = (phase_before == Phase::NotStarted).then_some((st.hash.as_str(), &*st.wf));
    let deadlines = st.machine.deadlines(&st.wf);
    let mut timers: Vec<TimerChange> = st
        .deadlines
        .difference(&deadlines)
        .map(|&at| TimerChange::Clear(at))
        .chain(deadlines.difference(&st.deadlines).map(|&at| TimerChange::Set(at)))
        .collect();
    // Children to cancel get a due entry in the same batch: should the
    // process die before they are told, the timer wheel wakes them at the
    // next start, and a child whose parent has ended cancels itself.
    for effect in &effects {
        if let Effect::CancelChildren(ids) = effect {
            timers.extend(ids.iter().map(|&child| TimerChange::SetFor(child, now)));
        }
    }
    // The event keys it waits for, in the wait index, in the same batch.
    let waits = super::wait::keys(&st.machine);
    let mut wait_changes = super::wait::changes(&st.waits, &waits);
    wait_changes.append(&mut st.taking);
    // Nothing to write (a rehydrated execution that only goes on waiting):
    // no append, so no sync to wait for.
    if written.is_empty() && meta.is_none() && timers.is_empty() && wait_changes.is_empty() {
        return Ok(effects);
    }
    st.services
        .journal
        .append(Append {
            execution: st.id,
            first_seq,
            at_ms: now,
            events: &written,
            meta: meta.as_ref(),
            workflow,
            timers: &timers,
            waits: &wait_changes,
        })
        .await?;
    st.services.latency.completed(&st.wf, &written);
    st.status = Some(status);
    st.services.mailbox.waiting(st.id, waits.difference(&st.waits).cloned().collect());
    st.waits = waits;
    for &at in deadlines.difference(&st.deadlines) {
        st.services.timers.schedule(at, st.id);
    }
    st.deadlines = deadlines;
    if phase_before == Phase::NotStarted {
        st.vars = Arc::new(st.machine.vars.clone());
    }
    Ok(effects)
}

/// Take the first `Run` of a node that runs inline out of `effects`.
fn take_inline(st: &State, effects: &mut Vec<Effect>) -> Option<(String, u32, u32)> {
    let i = effects.iter().position(|e| runs_inline(st, e))?;
    match effects.remove(i) {
        Effect::Run { node, visit, attempt } => Some((node, visit, attempt)),
        other => {
            effects.insert(i, other);
            None
        }
    }
}

/// Carry out an attempt of a node inside the step: a wait or approval
/// renders what it waits for, a parallel or sub-workflow node computes its
/// children (kept for its ParallelActor), a pure node runs.
fn run_inline(st: &mut State, node: &str, visit: u32, attempt: u32, now: u64) -> (NodeResult, u64) {
    match st.wf.node(node).map(|n| &n.kind) {
        Some(NodeKind::Wait(_) | NodeKind::Approval(_)) => match control::park(&ctx(st, node, visit, attempt), now) {
            Ok(p) => (NodeResult::Parks { event: p.event, deadline_ms: p.deadline_ms, prompt: p.prompt }, 0),
            Err(e) => (NodeResult::Ran(Err(e)), 0),
        },
        Some(NodeKind::Parallel(_) | NodeKind::Workflow(_)) => {
            match control::children(&ctx(st, node, visit, attempt), &st.wf, &st.machine.state) {
                Ok(plan) => {
                    let branches = plan.len() as u32;
                    st.plans.insert((node.to_string(), visit, attempt), plan);
                    (NodeResult::FansOut { branches }, 0)
                }
                Err(e) => (NodeResult::Ran(Err(e)), 0),
            }
        }
        _ => {
            let (result, duration_us) = run_pure(st, node, visit, attempt);
            (NodeResult::Ran(result), duration_us)
        }
    }
}

/// A node's context for work done inside the execution's step.
fn ctx<'a>(st: &'a State, node: &str, visit: u32, attempt: u32) -> NodeCtx<'a> {
    let spec = st.wf.node(node).expect("active nodes are in the workflow");
    NodeCtx {
        execution_id: st.id,
        node: spec,
        visit,
        attempt,
        idempotency_key: idempotency_key(st.id, node, visit),
        state: &st.machine.state,
        vars: &st.machine.vars,
        services: &st.services.env,
        usage: st.machine.usage,
        started_ms: st.machine.started_ms,
        workflow: &st.wf,
        agent: st.machine.agents.get(node).filter(|r| r.visit == visit),
    }
}

async fn carry_out(
    myself: &ActorRef<ExecutionMsg>,
    st: &mut State,
    effects: Vec<Effect>,
) -> Result<(), ActorProcessingErr> {
    for effect in effects {
        match effect {
            // Past the inline budget: go on in a fresh message, so a long
            // chain of pure nodes never holds the mailbox for long.
            Effect::Run { node, visit, attempt } if is_inline(st, &node) => {
                let _ = myself.cast(ExecutionMsg::RunPure { node, visit, attempt });
            }
            Effect::Run { node, visit, attempt } => {
                let args = NodeArgs {
                    execution_id: st.id,
                    workflow: st.wf.clone(),
                    node: node.clone(),
                    visit,
                    attempt,
                    state: st.machine.state.clone(),
                    vars: st.vars.clone(),
                    services: st.services.clone(),
                    parent: ExecutionHandle::new(myself.clone()),
                    usage: st.machine.usage,
                    started_ms: st.machine.started_ms,
                    agent: st.machine.agents.get(&node).filter(|r| r.visit == visit).cloned(),
                };
                let (actor, _) = Actor::spawn_linked(None, NodeActor, args, myself.get_cell()).await?;
                st.nodes.insert(actor.get_id(), (node, visit, attempt));
            }
            // The deadline is in the timer index too (for a restart); while
            // live, the actor keeps its own timer.
            Effect::RetryAt { node, attempt, at_ms, .. } => {
                let delay = Duration::from_millis(at_ms.saturating_sub(st.services.clock.now_ms()));
                debug!(execution_id = %st.id, node = %node, attempt, ?delay, "retry armed");
                myself.send_after(delay, || ExecutionMsg::Due);
            }
            Effect::Children { node, visit, attempt } => start_children(myself, st, node, visit, attempt).await?,
            Effect::CancelChildren(ids) => {
                if let Some(p) = st.parallel.take() {
                    p.stop(None);
                }
                for child in ids {
                    st.supervisor.cancel_quietly(child, format!("parent execution {} no longer needs it", st.id));
                }
            }
            Effect::Finished => finish(myself, st),
        }
    }
    Ok(())
}

/// Start the ParallelActor of a fan-out: it starts the children that have
/// not finished (or finds them again after a restart) and reports each end.
async fn start_children(
    myself: &ActorRef<ExecutionMsg>,
    st: &mut State,
    node: String,
    visit: u32,
    attempt: u32,
) -> Result<(), ActorProcessingErr> {
    let Some(fan_out) = st.machine.active.get(&node).and_then(|a| a.fan_out.clone()) else { return Ok(()) };
    let plan = match st.plans.remove(&(node.clone(), visit, attempt)) {
        Some(plan) => plan,
        None => match control::children(&ctx(st, &node, visit, attempt), &st.wf, &st.machine.state) {
            Ok(plan) if plan.len() as u32 == fan_out.branches => plan,
            Ok(plan) => {
                let error = format!(
                    "node `{node}` fanned out to {}, and now computes {}: the journal and the workflow disagree",
                    crate::plural::count(fan_out.branches, "child", "children"),
                    plan.len()
                );
                let fail = Input::Fail { node: Some(node), error };
                return Box::pin(drive(myself, st, Some(fail), Vec::new())).await;
            }
            Err(e) => {
                let failed = Input::Node { node, visit, attempt, result: NodeResult::Ran(Err(e)), duration_us: 0 };
                return Box::pin(drive(myself, st, Some(failed), Vec::new())).await;
            }
        },
    };
    let spec = st.wf.node(&node).expect("active nodes are in the workflow");
    let max_concurrency = match &spec.kind {
        NodeKind::Parallel(p) => p.max_concurrency.map_or(usize::MAX, |n| n as usize),
        _ => 1,
    };
    let children = plan
        .into_iter()
        .enumerate()
        .map(|(b, spec)| (b as u32, spec))
        .filter(|(b, _)| !fan_out.finished.contains_key(b))
        .collect();
    let hash = match &spec.kind {
        NodeKind::Workflow(w) => w.workflow.content_hash(),
        _ => st.hash.clone(),
    };
    // Branches start from this state as of the fan-out: share it, so that
    // none of them reads it back from the journal.
    super::fold::share_base(&st.services, st.id, fan_out.seq, &st.machine.state);
    let args = ParallelArgs {
        state_at: fan_out.seq,
        hash,
        parent: ExecutionHandle::new(myself.clone()),
        parent_id: st.id,
        node,
        visit,
        attempt,
        children,
        max_concurrency,
        services: st.services.clone(),
        supervisor: st.supervisor.clone(),
    };
    if let Some(old) = st.parallel.take() {
        old.stop(None);
    }
    let (actor, _) = Actor::spawn_linked(None, ParallelActor, args, myself.get_cell()).await?;
    st.parallel = Some(actor);
    Ok(())
}

/// Handle what came from outside. Replies go out once the events are durable.
async fn deliver(
    myself: &ActorRef<ExecutionMsg>,
    st: &mut State,
    delivery: Delivery,
) -> Result<(), ActorProcessingErr> {
    let id = st.id;
    // A due entry that is none of this execution's deadlines (a parent's
    // wake-up, or left by a crash) has done its job: remove it.
    if let Delivery::Tick { at_ms } = delivery
        && !st.deadlines.contains(&at_ms)
    {
        clear_timer(&st.services, id, at_ms).await?;
    }
    if st.machine.phase.is_terminal() {
        let status = status_of(&st.machine);
        delivery.refuse(|| Error::Finished { id, status });
        return Ok(());
    }
    match delivery {
        Delivery::Tick { .. } => drive(myself, st, Some(Input::Tick), Vec::new()).await?,
        Delivery::Signal { key, payload, reply } => {
            let input = Input::Signal { key, payload: Json::from_value(&payload) };
            let effects = persist(st, Some(input), Vec::new()).await?;
            let _ = reply.send(Ok(()));
            carry_out(myself, st, effects).await?;
        }
        Delivery::Event { key, payload, take, reply } => {
            if !super::wait::waits_for(&st.machine, &key) {
                let _ = reply.send(Ok(false));
                return Ok(());
            }
            st.taking.extend(take.map(WaitChange::Take));
            let effects = persist(st, Some(Input::Signal { key, payload }), Vec::new()).await?;
            let _ = reply.send(Ok(true));
            carry_out(myself, st, effects).await?;
        }
        Delivery::Approve { node, approved, by, comment, reply } => {
            let (found, visit) = match machine::pending_approval(&st.machine, node.as_deref()) {
                Ok(found) => found,
                Err(message) => {
                    let _ = reply.send(Err(Error::NotWaiting { id, message }));
                    return Ok(());
                }
            };
            let input = Input::Decision { node: found.clone(), visit, approved, by, comment };
            let effects = persist(st, Some(input), Vec::new()).await?;
            let _ = reply.send(Ok(found));
            carry_out(myself, st, effects).await?;
        }
        Delivery::Cancel { reason, reply } => {
            let effects = persist(st, Some(Input::Cancel { reason }), Vec::new()).await?;
            if let Some(reply) = reply {
                let _ = reply.send(Ok(()));
            }
            carry_out(myself, st, effects).await?;
        }
    }
    Ok(())
}

/// Remove one entry of the timer index for `id` (nothing else changes).
pub(crate) async fn clear_timer(services: &Shared, id: ExecutionId, at_ms: u64) -> Result<(), crate::journal::Error> {
    let append = Append {
        execution: id,
        first_seq: 0,
        at_ms,
        events: &[],
        meta: None,
        workflow: None,
        timers: &[TimerChange::Clear(at_ms)],
        waits: &[],
    };
    services.journal.append(append).await
}

/// Why a rehydrated child should not go on: its parent has ended.
fn orphaned(st: &State) -> Result<Option<String>, ActorProcessingErr> {
    let Some(parent) = &st.machine.parent else { return Ok(None) };
    Ok(match st.services.journal.meta(parent.id)? {
        None => Some(format!("its parent execution {} is not in the journal", parent.id)),
        Some(m) if m.status.is_terminal() => Some(format!("its parent execution {} is {}", parent.id, m.status)),
        Some(_) => None,
    })
}

/// Ask the supervisor to hibernate a parked execution with nothing running.
fn maybe_hibernate(myself: &ActorRef<ExecutionMsg>, st: &mut State) {
    if st.hibernating || !st.machine.parked() || !st.nodes.is_empty() || st.parallel.is_some() {
        return;
    }
    st.hibernating = true;
    // The request goes first: whoever the park wakes and then asks the
    // supervisor anything is answered after the eviction.
    st.supervisor.hibernate(st.id, myself.get_id(), st.delivered);
}

/// How many pure nodes one step may run inline before it appends and
/// goes on in a new message.
const INLINE_STEPS_PER_BATCH: u32 = 64;

/// Whether a node runs inside the execution's step: pure kinds, and the
/// control kinds the execution carries out itself.
fn is_inline(st: &State, node: &str) -> bool {
    st.wf.node(node).is_some_and(|n| {
        executor_for(&n.kind).is_pure()
            || matches!(
                n.kind,
                NodeKind::Wait(_) | NodeKind::Approval(_) | NodeKind::Parallel(_) | NodeKind::Workflow(_)
            )
    })
}

fn runs_inline(st: &State, effect: &Effect) -> bool {
    matches!(effect, Effect::Run { node, .. } if is_inline(st, node))
}

/// Run a pure node inside the step. A panic is caught and reported like a
/// NodeActor's panic, so both paths share the restart budget.
fn run_pure(st: &State, node: &str, visit: u32, attempt: u32) -> (Result<NodeOutput, NodeError>, u64) {
    let ctx = ctx(st, node, visit, attempt);
    let kind = &ctx.node.kind;
    let began = Instant::now();
    let polled = std::panic::catch_unwind(AssertUnwindSafe(|| executor_for(kind).run(ctx).now_or_never()));
    let result = match polled {
        Ok(Some(r)) => r,
        Ok(None) => Err(NodeError::new(
            ErrorClass::Internal,
            format!("node kind `{}` claims to be pure but waited", kind.type_name()),
        )),
        Err(payload) => Err(NodeError::new(ErrorClass::Panic, panic_text(&*payload))),
    };
    (result, began.elapsed().as_micros() as u64)
}

fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic with a non-text payload".into())
}

fn finish(myself: &ActorRef<ExecutionMsg>, st: &State) {
    debug!(execution_id = %st.id, phase = ?st.machine.phase, "execution finished");
    // Whoever awaits the end gets the final state from here, not by replaying the history.
    let ended = super::Ended {
        status: status_of(&st.machine),
        state: st.machine.state.clone(),
        error: st.machine.error.clone(),
        usage: st.machine.usage,
    };
    st.services.notify_finished(st.id, Some(ended));
    myself.stop(None);
}

/// The index row of a rehydrated execution, made to agree with its
/// history: an execution whose history ended is never resumed, whatever its
/// row says. When they disagree on an ended one, the row is rewritten now
/// (one append with the row only), so the next start does not pick it
/// again; a live one's row is rewritten by its next append. Returns the
/// status the index holds.
async fn agree_with_history(
    args: &ExecutionArgs,
    machine: &ExecutionState,
    records: &[Record],
) -> Result<Option<Status>, Error> {
    let stored = args.services.journal.meta(args.id)?.map(|m| m.status);
    let status = status_of(machine);
    if !machine.phase.is_terminal() || stored == Some(status) {
        return Ok(stored);
    }
    let updated_ms = records.last().map_or(machine.started_ms, |r| r.at_ms);
    let row = index_row(args.id, &args.workflow, &args.hash, machine, updated_ms);
    warn!(
        execution_id = %args.id,
        row = stored.map_or("missing", Status::as_str),
        history = %status,
        "the index row disagrees with the history, which has ended; rewriting the row"
    );
    let append = Append {
        execution: args.id,
        first_seq: machine.last_seq + 1,
        at_ms: updated_ms,
        events: &[],
        meta: Some(&row),
        workflow: None,
        timers: &[],
        waits: &[],
    };
    args.services.journal.append(append).await?;
    Ok(Some(status))
}

/// The index row an execution's machine implies, last changed at `updated_ms`.
pub(crate) fn index_row(
    id: ExecutionId,
    wf: &Workflow,
    hash: &str,
    machine: &ExecutionState,
    updated_ms: u64,
) -> ExecutionMeta {
    ExecutionMeta {
        id,
        workflow_id: wf.id.clone(),
        workflow_version: wf.version.clone(),
        workflow_hash: hash.to_string(),
        status: status_of(machine),
        created_ms: machine.started_ms,
        updated_ms,
        key: machine.key.clone(),
    }
}

/// The index status of an execution's machine.
pub(crate) fn status_of(m: &ExecutionState) -> Status {
    match m.phase {
        Phase::Completed => Status::Completed,
        Phase::Failed => Status::Failed,
        Phase::Cancelled => Status::Cancelled,
        _ if m.parked() => Status::Waiting,
        Phase::NotStarted | Phase::Running => Status::Running,
    }
}
