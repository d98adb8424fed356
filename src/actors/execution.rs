//! ExecutionActor: the IO shell of one execution.
//!
//! It turns what happens (a submission, a node's result, a retry deadline)
//! into events, folds them through [`machine::apply`], appends them to the
//! journal in one durable batch, and only then carries out the effects
//! (run a node, arm a retry timer, report the end). One batch per step:
//! a node's `NodeCompleted`, the next node's `NodeScheduled` and
//! `NodeStarted` share one sync.

use std::collections::{HashMap, VecDeque};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::FutureExt;

use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef, SupervisionEvent};
use serde_json::{Map, Value};
use tokio::sync::oneshot;
use tracing::{debug, warn};

use super::machine::{self, Command, ExecutionState, Phase};
use super::node::{NodeActor, NodeArgs};
use super::retry;
use crate::id::ExecutionId;
use crate::ir::Workflow;
use crate::journal::{Append, ErrorClass, Event, ExecutionMeta, Json, Record, RetryDecision, Status};
use crate::nodes::{NodeCtx, NodeError, NodeOutput, executor_for, idempotency_key};
use crate::runtime::Services;

/// How an ExecutionActor begins.
pub(crate) enum Start {
    /// A new execution: append `ExecutionStarted`, then tell the submitter.
    New { input: Map<String, Value>, key: Option<String>, started: oneshot::Sender<Result<(), String>> },
    /// Fold the journal and go on from the first incomplete node.
    Rehydrate,
    /// Fold the journal and fail the execution (restart budget exhausted).
    FailWith(String),
}

pub(crate) struct ExecutionArgs {
    pub id: ExecutionId,
    pub workflow: Arc<Workflow>,
    pub hash: String,
    pub services: Arc<Services>,
    pub start: Start,
}

pub(crate) enum ExecutionMsg {
    NodeDone {
        node: String,
        visit: u32,
        attempt: u32,
        result: Result<NodeOutput, NodeError>,
        duration_us: u64,
    },
    RetryDue {
        node: String,
        visit: u32,
        attempt: u32,
    },
    /// Run a pure node that did not fit in the previous step\'s batch.
    RunPure {
        node: String,
        visit: u32,
        attempt: u32,
    },
    #[cfg(test)]
    Panic(String),
}

pub(crate) struct ExecutionActor;

pub(crate) struct State {
    id: ExecutionId,
    wf: Arc<Workflow>,
    hash: String,
    services: Arc<Services>,
    machine: ExecutionState,
    /// Running node actors: which attempt each one is.
    nodes: HashMap<ActorId, (String, u32, u32)>,
    start: Option<Start>,
    /// The state as nodes see it; rebuilt only after a patch.
    snapshot: Arc<Map<String, Value>>,
}

impl Actor for ExecutionActor {
    type Msg = ExecutionMsg;
    type State = State;
    type Arguments = ExecutionArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<ExecutionMsg>,
        args: ExecutionArgs,
    ) -> Result<State, ActorProcessingErr> {
        let machine = match args.start {
            Start::New { .. } => ExecutionState::new(args.id),
            Start::Rehydrate | Start::FailWith(_) => {
                let records = args.services.journal.read(args.id)?;
                ExecutionState::replay(args.id, &args.workflow, &records)
            }
        };
        Ok(State {
            id: args.id,
            wf: args.workflow,
            hash: args.hash,
            services: args.services,
            snapshot: Arc::new(machine.state.clone()),
            machine,
            nodes: HashMap::new(),
            start: Some(args.start),
        })
    }

    async fn post_start(&self, myself: ActorRef<ExecutionMsg>, st: &mut State) -> Result<(), ActorProcessingErr> {
        match st.start.take() {
            Some(Start::New { input, key, started }) => {
                let event = Event::ExecutionStarted {
                    workflow_id: st.wf.id.clone(),
                    workflow_version: st.wf.version.clone(),
                    workflow_hash: st.hash.clone(),
                    input: Json::from_map(&input),
                    key,
                };
                // The submission is acknowledged once ExecutionStarted is
                // durable; what fails after that is the supervisor's to handle.
                match persist(st, vec![event], Vec::new()).await {
                    Ok(effects) => {
                        let _ = started.send(Ok(()));
                        carry_out(&myself, st, effects).await?;
                    }
                    Err(e) => {
                        let _ = started.send(Err(e.to_string()));
                        myself.stop(Some("start failed".into()));
                    }
                }
            }
            Some(Start::Rehydrate) => {
                debug!(execution_id = %st.id, "rehydrated");
                let cmds = machine::resume(&st.machine);
                if st.machine.phase.is_terminal() {
                    finish(&myself, st);
                } else {
                    drive(&myself, st, Vec::new(), cmds).await?;
                }
            }
            Some(Start::FailWith(error)) => {
                if st.machine.phase.is_terminal() {
                    finish(&myself, st);
                } else {
                    drive(&myself, st, Vec::new(), vec![Command::Fail { node: None, error }]).await?;
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
                if !is_current(st, &node, visit, attempt) {
                    return Ok(());
                }
                let event = node_result_event(st, node, visit, attempt, result, duration_us);
                drive(&myself, st, vec![event], Vec::new()).await?;
            }
            ExecutionMsg::RetryDue { node, visit, attempt } => {
                let due = st
                    .machine
                    .active
                    .get(&node)
                    .is_some_and(|a| a.visit == visit && a.retry_at.map(|r| r.0) == Some(attempt));
                if due {
                    drive(&myself, st, vec![Event::NodeStarted { node, visit, attempt }], Vec::new()).await?;
                }
            }
            ExecutionMsg::RunPure { node, visit, attempt } => {
                if is_current(st, &node, visit, attempt) {
                    drive(&myself, st, Vec::new(), vec![Command::Run { node, visit, attempt }]).await?;
                }
            }
            #[cfg(test)]
            ExecutionMsg::Panic(text) => panic!("{text}"),
        }
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
            }
            SupervisionEvent::ActorFailed(cell, err) => {
                let Some((node, visit, attempt)) = st.nodes.remove(&cell.get_id()) else { return Ok(()) };
                if !is_current(st, &node, visit, attempt) {
                    return Ok(());
                }
                warn!(execution_id = %st.id, node = %node, attempt, error = %err, "node panicked");
                let err = NodeError::new(ErrorClass::Panic, err.to_string());
                let event = node_result_event(st, node, visit, attempt, Err(err), 0);
                drive(&myself, st, vec![event], Vec::new()).await?;
            }
            _ => {}
        }
        Ok(())
    }
}

fn is_current(st: &State, node: &str, visit: u32, attempt: u32) -> bool {
    st.machine.active.get(node).is_some_and(|a| a.visit == visit && a.attempt == attempt && a.retry_at.is_none())
}

/// The event that records a node attempt's result: `NodeCompleted`, or
/// `NodeFailed` with the retry decision (panics under the restart budget).
fn node_result_event(
    st: &State,
    node: String,
    visit: u32,
    attempt: u32,
    result: Result<NodeOutput, NodeError>,
    duration_us: u64,
) -> Event {
    let spec = st.wf.node(&node).expect("active nodes are in the workflow");
    let result = result.and_then(|out| {
        let errors = st.wf.state_schema.check_map(&out.patch);
        if errors.is_empty() {
            Ok(out)
        } else {
            let text = errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ");
            Err(NodeError::new(
                ErrorClass::InvalidOutput,
                format!("the node's output does not fit the state schema: {text}"),
            ))
        }
    });
    match result {
        Ok(out) => Event::NodeCompleted {
            next: out.next.or_else(|| spec.next.clone()),
            patch: Json::from_map(&out.patch),
            node,
            visit,
            attempt,
            duration_us,
            usage: out.usage,
        },
        Err(e) => {
            let now = st.services.clock.now_ms();
            let retry = if e.class == ErrorClass::Panic {
                let panics = st.machine.active.get(&node).map(|a| a.panics.as_slice()).unwrap_or_default();
                if st.services.restart_budget.allows(panics, now) {
                    RetryDecision::Retry { attempt: attempt + 1, at_ms: now }
                } else {
                    RetryDecision::GiveUp
                }
            } else {
                let seed = fxhash(&format!("{}/{node}/{visit}/{attempt}", st.id));
                retry::decide(&spec.retry, e.class, attempt, now, e.retry_after_ms, seed)
            };
            let mut message = e.message;
            if e.class == ErrorClass::Panic && retry == RetryDecision::GiveUp {
                let b = st.services.restart_budget;
                message =
                    format!("{message} (restart budget of {} in {} s exhausted)", b.max_restarts, b.window_ms / 1000);
            }
            Event::NodeFailed { node, visit, attempt, class: e.class, message, retry }
        }
    }
}

fn fxhash(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x0100_0000_01b3))
}

/// Fold `events` (and the events that `commands` turn into) through the
/// machine, append them all durably in one batch, then carry out the
/// effects.
async fn drive(
    myself: &ActorRef<ExecutionMsg>,
    st: &mut State,
    events: Vec<Event>,
    commands: Vec<Command>,
) -> Result<(), ActorProcessingErr> {
    let effects = persist(st, events, commands).await?;
    carry_out(myself, st, effects).await
}

/// Fold the events (and the events the machine asks for, running pure
/// nodes inline) and append them in one durable batch. Returns the effects
/// to carry out now that they are durable.
async fn persist(
    st: &mut State,
    events: Vec<Event>,
    commands: Vec<Command>,
) -> Result<Vec<Command>, ActorProcessingErr> {
    let now = st.services.clock.now_ms();
    let first_seq = st.machine.last_seq + 1;
    let phase_before = st.machine.phase;
    let mut queue: VecDeque<Event> = events.into();
    let mut effects = Vec::new();
    let mut written = Vec::new();
    let mut patched = false;
    let push_command =
        |c: Command, queue: &mut VecDeque<Event>, effects: &mut Vec<Command>, state: &Map<String, Value>| match c {
            Command::Schedule { node, visit } => queue.push_back(Event::NodeScheduled { node, visit }),
            Command::Start { node, visit, attempt } => queue.push_back(Event::NodeStarted { node, visit, attempt }),
            Command::Complete => queue.push_back(Event::ExecutionCompleted { state: Json::from_map(state) }),
            Command::Fail { node, error } => queue.push_back(Event::ExecutionFailed { node, error }),
            effect => effects.push(effect),
        };
    for c in commands {
        push_command(c, &mut queue, &mut effects, &st.machine.state);
    }
    let mut inline_left = INLINE_STEPS_PER_BATCH;
    loop {
        while let Some(event) = queue.pop_front() {
            patched |= matches!(event, Event::NodeCompleted { .. } | Event::ExecutionStarted { .. });
            let rec = Record { seq: st.machine.last_seq + 1, at_ms: now, event };
            for c in machine::apply(&st.wf, &mut st.machine, &rec) {
                push_command(c, &mut queue, &mut effects, &st.machine.state);
            }
            written.push(rec.event);
        }
        // Pure nodes (no IO: set, branch, end) run right here, inside this
        // step; their events join this batch, so a chain of them costs one
        // sync. Anything with side effects waits for the batch to be durable.
        let Some(i) = effects.iter().position(|e| inline_left > 0 && is_pure_run(st, e)) else { break };
        let Command::Run { node, visit, attempt } = effects.remove(i) else {
            unreachable!("is_pure_run matched a Run")
        };
        inline_left -= 1;
        let (result, duration_us) = run_pure(st, &node, visit, attempt);
        queue.push_back(node_result_event(st, node, visit, attempt, result, duration_us));
    }
    let status = status_of(st.machine.phase);
    let meta = (phase_before != st.machine.phase).then(|| ExecutionMeta {
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
    st.services
        .journal
        .append(Append {
            execution: st.id,
            first_seq,
            at_ms: now,
            events: &written,
            meta: meta.as_ref(),
            workflow,
            timers: &[],
        })
        .await?;
    if patched {
        st.snapshot = Arc::new(st.machine.state.clone());
    }
    Ok(effects)
}

async fn carry_out(
    myself: &ActorRef<ExecutionMsg>,
    st: &mut State,
    effects: Vec<Command>,
) -> Result<(), ActorProcessingErr> {
    for effect in effects {
        match effect {
            // Past the inline budget: go on in a fresh message, so a long
            // chain of pure nodes never holds the mailbox for long.
            Command::Run { node, visit, attempt } if is_pure(st, &node) => {
                let _ = myself.cast(ExecutionMsg::RunPure { node, visit, attempt });
            }
            Command::Run { node, visit, attempt } => {
                let args = NodeArgs {
                    execution_id: st.id,
                    workflow: st.wf.clone(),
                    node: node.clone(),
                    visit,
                    attempt,
                    state: st.snapshot.clone(),
                    services: st.services.clone(),
                    parent: myself.clone(),
                };
                let (actor, _) = Actor::spawn_linked(None, NodeActor, args, myself.get_cell()).await?;
                st.nodes.insert(actor.get_id(), (node, visit, attempt));
            }
            Command::RetryAt { node, visit, attempt, at_ms } => {
                let delay = Duration::from_millis(at_ms.saturating_sub(st.services.clock.now_ms()));
                debug!(execution_id = %st.id, node = %node, attempt, ?delay, "retry armed");
                myself.send_after(delay, move || ExecutionMsg::RetryDue { node, visit, attempt });
            }
            Command::Finished => finish(myself, st),
            _ => unreachable!("only effects are collected"),
        }
    }
    Ok(())
}

/// How many pure nodes one step may run inline before it appends and
/// goes on in a new message.
const INLINE_STEPS_PER_BATCH: u32 = 64;

fn is_pure(st: &State, node: &str) -> bool {
    st.wf.node(node).is_some_and(|n| executor_for(&n.kind).is_pure())
}

fn is_pure_run(st: &State, effect: &Command) -> bool {
    matches!(effect, Command::Run { node, .. } if is_pure(st, node))
}

/// Run a pure node inside the step. A panic is caught and reported like a
/// NodeActor's panic, so both paths share the restart budget.
fn run_pure(st: &State, node: &str, visit: u32, attempt: u32) -> (Result<NodeOutput, NodeError>, u64) {
    let spec = st.wf.node(node).expect("active nodes are in the workflow");
    let ctx = NodeCtx {
        execution_id: st.id,
        node: spec,
        visit,
        attempt,
        idempotency_key: idempotency_key(st.id, node, visit),
        state: &st.machine.state,
        services: &st.services,
    };
    let began = Instant::now();
    let polled = std::panic::catch_unwind(AssertUnwindSafe(|| executor_for(&spec.kind).run(ctx).now_or_never()));
    let result = match polled {
        Ok(Some(r)) => r,
        Ok(None) => Err(NodeError::new(
            ErrorClass::Internal,
            format!("node kind `{}` claims to be pure but waited", spec.kind.type_name()),
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
    st.services.notify_finished(st.id);
    myself.stop(None);
}

pub(crate) fn status_of(phase: Phase) -> Status {
    match phase {
        Phase::NotStarted | Phase::Running => Status::Running,
        Phase::Completed => Status::Completed,
        Phase::Failed => Status::Failed,
        Phase::Cancelled => Status::Cancelled,
    }
}
