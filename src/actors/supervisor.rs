//! Supervisor: spawns one ExecutionActor per live execution and restarts a
//! crashed one by rehydrating it from the journal.
//!
//! Past the restart budget, the execution is rehydrated one last time in
//! `FailWith` mode, which journals `ExecutionFailed` with the panic text.
//! ractor's default supervision would stop the supervisor when any child
//! exits; `handle_supervisor_evt` is overridden so it never does.
//!
//! A delivery for an actor that is stopping is held until the actor's end
//! is known (its supervision event), then handed to its successor or
//! refused: whoever delivers waits on that notice, not on a timer.

use std::collections::HashMap;
use std::sync::Arc;

use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use tracing::{error, warn};

use super::execution::{ExecutionActor, ExecutionArgs};
use super::handles::{ExecutionHandle, SupervisorHandle};
use super::messages::{Delivery, Start, SupervisorMsg};
use super::{Error, Shared};
use crate::id::ExecutionId;
use crate::ir::Workflow;

pub(crate) struct Supervisor;

/// Why an execution's actor was not started.
enum NotStarted {
    /// Another live process holds its lease (a shared store): it is owner's.
    Elsewhere(String),
    Failed(String),
}

impl std::fmt::Display for NotStarted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotStarted::Elsewhere(owner) => write!(f, "another process runs it ({owner})"),
            NotStarted::Failed(why) => f.write_str(why),
        }
    }
}

pub(crate) struct Child {
    id: ExecutionId,
    workflow: Arc<Workflow>,
    hash: String,
    actor: ExecutionHandle,
    /// Deliveries forwarded to this actor.
    forwarded: u64,
}

pub(crate) struct SupervisorState {
    services: Arc<Shared>,
    children: HashMap<ActorId, Child>,
    by_execution: HashMap<ExecutionId, ActorId>,
    /// When each execution's actor was restarted (for the budget).
    restarts: HashMap<ExecutionId, Vec<u64>>,
    /// Deliveries for an execution whose actor is stopping, held until
    /// its end is known (then handed to its successor, or refused).
    held: HashMap<ExecutionId, Vec<Delivery>>,
    /// Who waits for an execution's actor to go (hibernated or ended).
    unloaded: HashMap<ExecutionId, Vec<RpcReplyPort<()>>>,
}

impl Supervisor {
    async fn spawn_child(
        myself: &ActorRef<SupervisorMsg>,
        st: &mut SupervisorState,
        id: ExecutionId,
        workflow: Arc<Workflow>,
        hash: String,
        start: Start,
    ) -> Result<(), NotStarted> {
        // An execution whose host functions (a Python or Rust program's)
        // this process lacks is not carried here: it would fail at its next
        // `function` node. It stays as it is for the host that has them.
        if matches!(start, Start::Rehydrate) {
            let missing = st.services.env.functions.missing(&workflow);
            if !missing.is_empty() {
                // In a shared store, the process that has them may run it now.
                if let Some(leases) = st.services.journal.leases()
                    && let Ok(Some(owner)) = leases.owner(id)
                    && owner != leases.worker_id()
                {
                    return Err(NotStarted::Elsewhere(owner));
                }
                return Err(NotStarted::Failed(format!(
                    "its workflow `{}` calls host functions this process has not registered ({}); it goes on in \
                     the program that registers them (the Python or Rust host that started it), and nothing was \
                     changed here",
                    workflow.id,
                    missing.join(", ")
                )));
            }
        }
        // In a store many processes share, an execution is run by the
        // process that holds its lease: claim it before reading its history.
        // (A new execution is this process's from its first append.)
        if !matches!(start, Start::New { .. })
            && let Some(leases) = st.services.journal.leases()
            && !leases.owns(id)
        {
            match leases.claim_one(id).await {
                Ok(true) => {}
                Ok(false) => {
                    let owner = leases.owner(id).ok().flatten().unwrap_or_else(|| "another process".into());
                    return Err(NotStarted::Elsewhere(owner));
                }
                Err(e) => return Err(NotStarted::Failed(format!("it cannot be claimed: {e}"))),
            }
        }
        let args = ExecutionArgs {
            id,
            workflow: workflow.clone(),
            hash: hash.clone(),
            services: st.services.clone(),
            start,
            supervisor: SupervisorHandle::from_ref(myself.clone()),
        };
        match Actor::spawn_linked(None, ExecutionActor, args, myself.get_cell()).await {
            Ok((actor, _)) => {
                let actor = ExecutionHandle::new(actor);
                st.by_execution.insert(id, actor.id());
                st.children.insert(actor.id(), Child { id, workflow, hash, actor, forwarded: 0 });
                Ok(())
            }
            Err(e) => {
                // ractor words every startup error as a panic: say what failed.
                let why = match &e {
                    ractor::SpawnErr::StartupFailed(inner) => inner.to_string(),
                    other => other.to_string(),
                };
                error!(execution_id = %id, error = %why, "execution actor did not start");
                st.services.notify_finished(id, None);
                Err(NotStarted::Failed(why))
            }
        }
    }

    async fn deliver(
        myself: &ActorRef<SupervisorMsg>,
        st: &mut SupervisorState,
        id: ExecutionId,
        delivery: Delivery,
    ) -> Result<(), ActorProcessingErr> {
        if !st.by_execution.contains_key(&id) {
            let meta = match st.services.journal.meta(id) {
                Ok(Some(meta)) => meta,
                Ok(None) => {
                    delivery.refuse(|| Error::UnknownExecution(id));
                    return Ok(());
                }
                Err(e) => {
                    delivery.refuse(|| Error::Journal(e));
                    return Ok(());
                }
            };
            if meta.status.is_terminal() {
                if let Delivery::Tick { at_ms } = delivery {
                    // A finished execution's leftover entry: remove it.
                    let services = st.services.clone();
                    tokio::spawn(async move {
                        let _ = super::execution::clear_timer(&services, id, at_ms).await;
                    });
                }
                delivery.refuse(|| Error::Finished { id, status: meta.status });
                return Ok(());
            }
            let workflow = match st.services.workflow(id, &meta.workflow_hash) {
                Ok(wf) => wf,
                Err(e) => {
                    delivery.refuse(|| e);
                    return Ok(());
                }
            };
            match Self::spawn_child(myself, st, id, workflow, meta.workflow_hash, Start::Rehydrate).await {
                Ok(()) => {}
                // Another live process runs it: the caller sends it to its inbox.
                Err(NotStarted::Elsewhere(owner)) => {
                    delivery.refuse(|| Error::Elsewhere { id, owner });
                    return Ok(());
                }
                Err(e) => {
                    delivery.refuse(|| Error::Actor(format!("execution {id} could not be rehydrated: {e}")));
                    return Ok(());
                }
            }
        }
        let Some(child) = st.by_execution.get(&id).and_then(|a| st.children.get_mut(a)) else {
            // It ended as it was rehydrated (its history had ended): nothing is live to take it.
            delivery.refuse(|| Error::Actor(format!("execution {id} could not be rehydrated")));
            return Ok(());
        };
        // An actor that is stopping (it crashed, or ended) takes nothing
        // more: hold the delivery until its end is known. A delivery that
        // was in its mailbox when it stopped is dropped with its reply;
        // the caller sees that and delivers again, which lands here.
        let held = match child.actor.is_running() {
            true => child.actor.deliver(delivery).err().map(|d| *d),
            false => Some(delivery),
        };
        match held {
            Some(delivery) => st.held.entry(id).or_default().push(delivery),
            None => child.forwarded += 1,
        }
        Ok(())
    }

    /// `id` has no actor in memory any more: tell whoever waits for that.
    /// Called after [`release`](Self::release) too: a held delivery may have
    /// rehydrated `id` there, and then it has an actor again and those who
    /// wait for it to be unloaded go on waiting.
    fn gone(st: &mut SupervisorState, id: ExecutionId) {
        if st.by_execution.contains_key(&id) {
            return;
        }
        st.services.room.notify_one();
        for reply in st.unloaded.remove(&id).unwrap_or_default() {
            let _ = reply.send(());
        }
    }

    /// Whether `id` is no longer this process's to run (a shared store
    /// fenced it off, or a renewal found it taken over).
    fn fenced(st: &SupervisorState, id: ExecutionId) -> bool {
        st.services.journal.leases().is_some_and(|l| !l.owns(id))
    }

    /// Stop `id`'s actor for good in this process: another process runs it
    /// now. Nothing is journaled (this process may not write it); what was
    /// held for it, and whoever waits for it here, are told why.
    fn drop_lost(st: &mut SupervisorState, id: ExecutionId, why: &str) {
        let Some(actor) = st.by_execution.remove(&id) else { return };
        if let Some(child) = st.children.remove(&actor) {
            child.actor.stop("lease lost");
        }
        st.restarts.remove(&id);
        warn!(execution_id = %id, "{why}; dropped here, its owner carries it on");
        st.services.notify_finished(id, None);
        for delivery in st.held.remove(&id).unwrap_or_default() {
            delivery.refuse(|| Error::Actor(format!("execution {id}: {why}; nothing was delivered here")));
        }
        Self::gone(st, id);
    }

    /// The actor of `id` has ended: hand it what was held for it.
    async fn release(
        myself: &ActorRef<SupervisorMsg>,
        st: &mut SupervisorState,
        id: ExecutionId,
    ) -> Result<(), ActorProcessingErr> {
        for delivery in st.held.remove(&id).unwrap_or_default() {
            Self::deliver(myself, st, id, delivery).await?;
        }
        Ok(())
    }
}

impl Actor for Supervisor {
    type Msg = SupervisorMsg;
    type State = SupervisorState;
    type Arguments = Arc<Shared>;

    async fn pre_start(
        &self,
        _: ActorRef<SupervisorMsg>,
        services: Arc<Shared>,
    ) -> Result<SupervisorState, ActorProcessingErr> {
        Ok(SupervisorState {
            services,
            children: HashMap::new(),
            by_execution: HashMap::new(),
            restarts: HashMap::new(),
            held: HashMap::new(),
            unloaded: HashMap::new(),
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<SupervisorMsg>,
        msg: SupervisorMsg,
        st: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            SupervisorMsg::Spawn { id, workflow, hash, start } => {
                if st.by_execution.contains_key(&id) {
                    if let Start::New { started, .. } = start {
                        let _ = started.send(Err(format!("execution {id} is already running")));
                    }
                    return Ok(());
                }
                let _ = Self::spawn_child(&myself, st, id, workflow, hash, start).await;
            }
            SupervisorMsg::Rehydrate { id, workflow, hash, started } => {
                let result = match st.by_execution.contains_key(&id) {
                    true => Ok(()),
                    false => Self::spawn_child(&myself, st, id, workflow, hash, Start::Rehydrate)
                        .await
                        .map_err(|e| e.to_string()),
                };
                let _ = started.send(result);
            }
            SupervisorMsg::Deliver { id, delivery } => Self::deliver(&myself, st, id, delivery).await?,
            SupervisorMsg::Hibernate { id, actor, delivered, child: is_child } => {
                let granted = st.children.get(&actor).is_some_and(|c| c.id == id && c.forwarded == delivered);
                if granted && let Some(child) = st.children.remove(&actor) {
                    st.by_execution.remove(&id);
                    st.restarts.remove(&id);
                    tracing::debug!(execution_id = %id, "hibernated");
                    child.actor.stop("hibernated");
                    // Parked: hand its lease back, so whichever process next has
                    // something for it claims it. Awaited here, so a delivery this
                    // supervisor takes next claims it after the release, never before.
                    // A child keeps it: its parent's process (this one) fires its
                    // timers and takes its end; after a crash, whoever claims the
                    // parent claims its children with it.
                    if !is_child
                        && let Some(leases) = st.services.journal.leases()
                        && leases.owns(id)
                        && let Err(e) = leases.release(&[id]).await
                    {
                        warn!(execution_id = %id, error = %e, "cannot hand the lease back; it ends when this process stops renewing it");
                    }
                    Self::gone(st, id);
                }
            }
            SupervisorMsg::Lost(ids) => {
                for id in ids {
                    Self::drop_lost(st, id, "its lease was taken over by another process");
                }
            }
            SupervisorMsg::Live(reply) => {
                let _ = reply.send(st.by_execution.keys().copied().collect());
            }
            SupervisorMsg::IsLive(id, reply) => {
                let _ = reply.send(st.by_execution.contains_key(&id));
            }
            SupervisorMsg::Unloaded(id, reply) => {
                let waiting = st.unloaded.entry(id).or_default();
                waiting.retain(|r| !r.is_closed());
                waiting.push(reply);
                Self::gone(st, id);
            }
            #[cfg(test)]
            SupervisorMsg::Actor(id, reply) => {
                let actor = st.by_execution.get(&id).and_then(|a| st.children.get(a)).map(|c| c.actor.clone());
                let _ = reply.send(actor);
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<SupervisorMsg>,
        evt: SupervisionEvent,
        st: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        match evt {
            SupervisionEvent::ActorTerminated(cell, _, _) => {
                if let Some(child) = st.children.remove(&cell.get_id()) {
                    st.by_execution.remove(&child.id);
                    st.restarts.remove(&child.id);
                    Self::release(&myself, st, child.id).await?;
                    Self::gone(st, child.id);
                }
            }
            SupervisionEvent::ActorFailed(cell, err)
                if st.children.get(&cell.get_id()).is_some_and(|c| Self::fenced(st, c.id)) =>
            {
                // Its append was refused by the fence: another process owns it now.
                let id = st.children.get(&cell.get_id()).map(|c| c.id).expect("checked above");
                Self::drop_lost(st, id, &format!("another process took it over ({err})"));
            }
            SupervisionEvent::ActorFailed(cell, err) => {
                let Some(child) = st.children.remove(&cell.get_id()) else { return Ok(()) };
                st.by_execution.remove(&child.id);
                drop(child.actor);
                let now = st.services.clock.now_ms();
                let earlier = st.restarts.entry(child.id).or_default();
                let allowed = st.services.restart_budget.allows(earlier, now);
                earlier.push(now);
                let attempts = earlier.len();
                let start = if allowed {
                    warn!(execution_id = %child.id, error = %err, restart = attempts, "execution actor failed; rehydrating");
                    Start::Rehydrate
                } else if attempts > st.services.restart_budget.max_restarts as usize + 1 {
                    // Even failing it did not work (the journal refuses writes): give up here.
                    error!(execution_id = %child.id, error = %err, "execution actor keeps failing; leaving it for the next start");
                    st.services.notify_finished(child.id, None);
                    let why = || Error::Actor(format!("execution {} keeps failing: {err}", child.id));
                    for delivery in st.held.remove(&child.id).unwrap_or_default() {
                        delivery.refuse(why);
                    }
                    Self::gone(st, child.id);
                    return Ok(());
                } else {
                    let b = st.services.restart_budget;
                    Start::FailWith(format!(
                        "execution actor failed {} times within {} s (restart budget {}): {err}",
                        attempts,
                        b.window_ms / 1000,
                        b.max_restarts
                    ))
                };
                let _ = Self::spawn_child(&myself, st, child.id, child.workflow, child.hash, start).await;
                Self::release(&myself, st, child.id).await?;
                Self::gone(st, child.id);
            }
            _ => {}
        }
        Ok(())
    }
}
