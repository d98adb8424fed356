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
//! This file holds the actor and its dispatch; the work is beside it:
//! `persist.rs` (a step, appended in one batch), `inline.rs` (nodes run
//! inside the step), `effects.rs` (what a durable step asks for: nodes,
//! retries, children, the end) and `deliver.rs` (what comes from outside,
//! timer index entries, hibernation).
//!
//! [`machine::step`]: super::machine::step
//! [`TimerWheel`]: super::timers::TimerWheel

mod deliver;
mod effects;
mod inline;
mod persist;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef, SupervisionEvent};
use serde_json::{Map, Value};
use tracing::{debug, warn};

use super::Shared;
use super::handles::SupervisorHandle;
use super::machine::{Effect, ExecutionState, Input, NodeResult};
use super::messages::{ExecutionMsg, ParallelMsg, Start};
use super::node::NodeArgs;
use crate::id::ExecutionId;
use crate::ir::Workflow;
use crate::journal::{ErrorClass, Status, WaitChange};
use crate::nodes::NodeError;
use crate::nodes::control::ChildSpec;
use deliver::{deliver, maybe_hibernate, orphaned};
use effects::{carry_out, finish};
use persist::{agree_with_history, drive, persist};

pub(crate) use deliver::clear_timer;
pub(crate) use persist::index_row;

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
    nodes: HashMap<ActorId, Running>,
    /// NodeActors that finished their attempt, kept for the next one.
    idle: Vec<ActorRef<NodeArgs>>,
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
    /// The session record naming this new execution, written by its first append.
    session: Option<crate::journal::SessionRecord>,
    /// The root of this execution's tree (its trace), once looked up.
    root: Option<ExecutionId>,
    /// The attempts that were running when the execution was last stopped
    /// (node, visit, attempt): run again, they are marked resumed.
    resumed: std::collections::HashSet<(String, u32, u32)>,
}

/// A NodeActor running an attempt.
struct Running {
    actor: ActorRef<NodeArgs>,
    node: String,
    visit: u32,
    attempt: u32,
}

/// How many idle NodeActors an execution keeps: one serves a chain of
/// steps; more serve nodes that ran side by side.
const MAX_IDLE_NODES: usize = 4;

/// Keep a NodeActor that finished its attempt for the next one, or stop it.
fn keep_idle(st: &mut State, actor: ActorRef<NodeArgs>) {
    if st.idle.len() < MAX_IDLE_NODES {
        st.idle.push(actor);
    } else {
        actor.stop(None);
    }
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
        let resumed = match args.start {
            Start::Rehydrate => machine
                .active
                .iter()
                .filter(|(_, a)| a.attempt > 0)
                .map(|(node, a)| (node.clone(), a.visit, a.attempt))
                .collect(),
            _ => Default::default(),
        };
        Ok(State {
            resumed,
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
            idle: Vec::new(),
            start: Some(args.start),
            session: None,
            root: None,
        })
    }

    async fn post_start(&self, myself: ActorRef<ExecutionMsg>, st: &mut State) -> Result<(), ActorProcessingErr> {
        match st.start.take() {
            Some(Start::New { first, started, session, .. }) => {
                // The submission is acknowledged once its first event is
                // durable; what fails after that is the supervisor's to handle.
                let input = match session {
                    Some(session) => {
                        let (joined, record) = *session;
                        st.session = Some(record);
                        Input::StartInSession { first: *first, joined: Box::new(joined) }
                    }
                    None => Input::Start(*first),
                };
                match persist(st, Some(input), Vec::new()).await {
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
            ExecutionMsg::NodeDone { from, node, visit, attempt, result, duration_us } => {
                if let Some(done) = st.nodes.remove(&from) {
                    keep_idle(st, done.actor);
                }
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
            ExecutionMsg::Call { node, visit, attempt, call, reply } => {
                if let Err(why) = super::machine::accepts_call(&st.machine, &node, visit, attempt, call.n) {
                    let _ = reply.send(Err(why));
                    return Ok(());
                }
                // Durable before the attempt goes on; a journal that fails
                // fails the actor (the supervisor restarts it from the journal).
                drive(&myself, st, Some(Input::Call { node, visit, attempt, call }), Vec::new()).await?;
                let _ = reply.send(Ok(()));
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
                st.idle.retain(|a| a.get_id() != cell.get_id());
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
                st.idle.retain(|a| a.get_id() != cell.get_id());
                let Some(Running { node, visit, attempt, .. }) = st.nodes.remove(&cell.get_id()) else {
                    return Ok(());
                };
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
