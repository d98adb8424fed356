//! Typed handles: what callers hold instead of raw `ActorRef`s.
//!
//! [`SupervisorHandle`] is how the runtime, the timer wheel, the
//! ExecutionActors and their ParallelActors reach the supervisor;
//! [`ExecutionHandle`] is how an execution's children (its NodeActors and
//! its ParallelActor) and the supervisor reach one execution. Both are
//! cheap to clone. Questions are asked with ractor's `RpcReplyPort`; the
//! message enums themselves (`messages.rs`) stay private to the actors.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use ractor::rpc::CallResult;
use ractor::{Actor, ActorId, ActorRef, MessagingErr, RpcReplyPort};
use serde_json::{Map, Value};

use super::messages::{Delivery, ExecutionMsg, Start, SupervisorMsg};
use super::supervisor::Supervisor;
use super::{Error, Shared};
use crate::id::ExecutionId;
use crate::ir::Workflow;
use crate::journal::{BranchOutcome, CallRecord, Event, Json, KeptRef};
use crate::nodes::{NodeError, NodeOutput};

/// How often a delivery is handed over again when the actor it was
/// forwarded to stopped before handling it (it crashed, or ended with the
/// delivery in its mailbox). The supervisor holds a delivery for an actor
/// that is stopping until it has heard of its end, so each attempt waits
/// on that notice, never on a timer.
const DELIVERY_ATTEMPTS: usize = 20;

/// The notice of an execution's end ([`Shared::on_finished`]): its final
/// state, or `None` when its actor stopped without ending it.
pub(crate) type Finished = tokio::sync::oneshot::Receiver<Option<Ended>>;

/// What an execution's actor hands to those awaiting its end: its final
/// state, so that no one replays its history to learn it.
#[derive(Clone, Debug)]
pub(crate) struct Ended {
    pub status: crate::journal::Status,
    pub state: Arc<Map<String, Value>>,
    pub error: Option<String>,
    pub usage: crate::journal::Usage,
}

/// The runtime's supervisor.
#[derive(Clone)]
pub(crate) struct SupervisorHandle(ActorRef<SupervisorMsg>);

impl SupervisorHandle {
    /// Start the supervisor of a runtime.
    pub(crate) async fn spawn(services: Arc<Shared>) -> Result<SupervisorHandle, Error> {
        let (actor, _) = Actor::spawn(None, Supervisor, services)
            .await
            .map_err(|e| Error::Actor(format!("cannot start the supervisor: {e}")))?;
        Ok(SupervisorHandle(actor))
    }

    pub(crate) fn from_ref(actor: ActorRef<SupervisorMsg>) -> SupervisorHandle {
        SupervisorHandle(actor)
    }

    /// Whether the supervisor takes messages (not shutting down, not stopped).
    pub(crate) fn is_running(&self) -> bool {
        ractor::ACTIVE_STATES.contains(&self.0.get_status())
    }

    /// Start a new execution whose first event is `first` (`base`: a
    /// branch's starting state). The message goes now; the future says,
    /// once the first event is durable, whether it started.
    pub(crate) fn start(
        &self,
        id: ExecutionId,
        workflow: Arc<Workflow>,
        hash: String,
        first: Event,
        base: Option<Arc<Map<String, Value>>>,
    ) -> Result<impl Future<Output = Result<(), String>> + Send + 'static, Error> {
        self.start_in(id, workflow, hash, first, base, None)
    }

    /// [`start`](Self::start) a task of a session: `session` is its
    /// `SessionJoined` and the session record naming it, written in the
    /// execution's first batch.
    pub(crate) fn start_in(
        &self,
        id: ExecutionId,
        workflow: Arc<Workflow>,
        hash: String,
        first: Event,
        base: Option<Arc<Map<String, Value>>>,
        session: Option<(Event, crate::journal::SessionRecord)>,
    ) -> Result<impl Future<Output = Result<(), String>> + Send + 'static, Error> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let session = session.map(Box::new);
        let start = Start::New { first: Box::new(first), started: RpcReplyPort::from(tx), base, session };
        self.0.cast(SupervisorMsg::Spawn { id, workflow, hash, start }).map_err(actor_error)?;
        Ok(async move { rx.await.unwrap_or_else(|_| Err("the execution actor stopped before starting".into())) })
    }

    /// Rehydrate `id` unless it is live (nothing is reported back).
    pub(crate) fn rehydrate(&self, id: ExecutionId, workflow: Arc<Workflow>, hash: String) -> Result<(), Error> {
        self.0.cast(SupervisorMsg::Spawn { id, workflow, hash, start: Start::Rehydrate }).map_err(actor_error)
    }

    /// Rehydrate `id` unless it is live. The message goes now; the future
    /// says whether its actor started (what it failed with, if not).
    pub(crate) fn rehydrate_reporting(
        &self,
        id: ExecutionId,
        workflow: Arc<Workflow>,
        hash: String,
    ) -> impl Future<Output = Result<(), String>> + Send + 'static {
        let (tx, rx) = tokio::sync::oneshot::channel();
        // Should the supervisor be gone, the reply is dropped with the message: the future says so.
        let _ = self.0.cast(SupervisorMsg::Rehydrate { id, workflow, hash, started: RpcReplyPort::from(tx) });
        async move { rx.await.unwrap_or_else(|_| Err("the supervisor stopped".into())) }
    }

    /// Journal an external event for `id`'s `wait` nodes.
    pub(crate) async fn signal(&self, id: ExecutionId, key: &str, payload: &Value) -> Result<(), Error> {
        self.ask(id, |reply| Delivery::Signal { key: key.to_string(), payload: payload.clone(), inbox: None, reply })
            .await
    }

    /// Deliver a message of `letter.execution`'s inbox (this process owns
    /// it): journaled with its answer, or refused. Answers the node an
    /// approval decided.
    ///
    /// Delivered once: should the actor stop without answering (it crashed,
    /// perhaps because its sender withdrew the message and the store refused
    /// the append that answers it), the taker reads the inbox again, and a
    /// message still open there comes back; a withdrawn one does not, so it
    /// is never journaled, nor delivered to the actor's successor again.
    pub(crate) async fn letter(&self, letter: &crate::journal::inbox::Letter) -> Result<Option<String>, Error> {
        use crate::journal::inbox::Message;
        let (id, inbox) = (letter.execution, std::num::NonZeroU64::new(letter.row));
        match &letter.message {
            Message::Signal { key, payload } => self
                .ask_up_to(id, 1, |reply| Delivery::Signal { key: key.clone(), payload: payload.clone(), inbox, reply })
                .await
                .map(|()| None),
            Message::Approve { node, call, approved, by, comment } => self
                .ask_up_to(id, 1, |reply| Delivery::Approve {
                    node: node.clone(),
                    call: call.clone(),
                    approved: *approved,
                    by: by.clone(),
                    comment: comment.clone(),
                    inbox,
                    reply,
                })
                .await
                .map(Some),
            Message::Cancel { reason } => self
                .ask_up_to(id, 1, |reply| Delivery::Cancel { reason: reason.clone(), inbox, reply: Some(reply) })
                .await
                .map(|()| None),
            Message::Event { key, payload } => {
                let taken = self
                    .ask_up_to(id, 1, |reply| Delivery::Event {
                        key: key.clone(),
                        payload: Json::from_value(payload),
                        take: None,
                        inbox,
                        reply,
                    })
                    .await?;
                event_taken(id, key, taken)
            }
        }
    }

    /// Hand `id` an event published by key (`take`: a kept one, removed
    /// in the same batch); answers whether a node of it waited for `key`
    /// (and so it was journaled).
    pub(crate) async fn event(
        &self,
        id: ExecutionId,
        key: &str,
        payload: &Json,
        take: Option<&KeptRef>,
    ) -> Result<bool, Error> {
        self.ask(id, |reply| Delivery::Event {
            key: key.to_string(),
            payload: payload.clone(),
            take: take.cloned(),
            inbox: None,
            reply,
        })
        .await
    }

    /// The supervisor's actor cell, to link a child actor to it.
    pub(crate) fn cell(&self) -> ractor::ActorCell {
        self.0.get_cell()
    }

    /// Decide the approval `id` waits on (`node` picks one), or its
    /// pending tool call `call`; answers the node decided.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn approve(
        &self,
        id: ExecutionId,
        node: Option<&str>,
        call: Option<&str>,
        approved: bool,
        by: &str,
        comment: Option<&str>,
    ) -> Result<String, Error> {
        self.ask(id, |reply| Delivery::Approve {
            node: node.map(str::to_string),
            call: call.map(str::to_string),
            approved,
            by: by.to_string(),
            comment: comment.map(str::to_string),
            inbox: None,
            reply,
        })
        .await
    }

    /// Cancel `id`; answers once `ExecutionCancelled` is durable.
    pub(crate) async fn cancel(&self, id: ExecutionId, reason: &str) -> Result<(), Error> {
        self.ask(id, |reply| Delivery::Cancel { reason: reason.to_string(), inbox: None, reply: Some(reply) }).await
    }

    /// Cancel `id` without waiting for an answer (a parent's children).
    pub(crate) fn cancel_quietly(&self, id: ExecutionId, reason: String) {
        let _ =
            self.0.cast(SupervisorMsg::Deliver { id, delivery: Delivery::Cancel { reason, inbox: None, reply: None } });
    }

    /// A deadline of `id` in the timer index is due. False when the supervisor is gone.
    pub(crate) fn tick(&self, id: ExecutionId, at_ms: u64) -> bool {
        self.0.cast(SupervisorMsg::Deliver { id, delivery: Delivery::Tick { at_ms } }).is_ok()
    }

    /// A parked execution asks to be evicted (see `SupervisorMsg::Hibernate`).
    pub(crate) fn hibernate(&self, id: ExecutionId, actor: ActorId, delivered: u64, child: bool) {
        let _ = self.0.cast(SupervisorMsg::Hibernate { id, actor, delivered, child });
    }

    /// These executions' leases were taken over: drop their actors (see `SupervisorMsg::Lost`).
    pub(crate) fn lost(&self, ids: Vec<ExecutionId>) {
        let _ = self.0.cast(SupervisorMsg::Lost(ids));
    }

    /// The executions that have a live actor.
    pub(crate) async fn live(&self) -> Result<Vec<ExecutionId>, Error> {
        answer(ractor::rpc::call(&self.0, SupervisorMsg::Live, None).await)
    }

    /// Whether `id` has a live actor (one question, not the whole list).
    pub(crate) async fn is_live(&self, id: ExecutionId) -> Result<bool, Error> {
        answer(ractor::rpc::call(&self.0, |reply| SupervisorMsg::IsLive(id, reply), None).await)
    }

    /// Resolves once `id` has no actor in memory (hibernated, ended, or
    /// never loaded here): the supervisor's notice, not a poll.
    pub(crate) async fn unloaded(&self, id: ExecutionId) -> Result<(), Error> {
        answer(ractor::rpc::call(&self.0, |reply| SupervisorMsg::Unloaded(id, reply), None).await)
    }

    /// The live actor of `id`, if any (tests).
    #[cfg(test)]
    pub(crate) async fn actor(&self, id: ExecutionId) -> Result<Option<ExecutionHandle>, Error> {
        answer(ractor::rpc::call(&self.0, |reply| SupervisorMsg::Actor(id, reply), None).await)
    }

    /// Stop every execution actor, then the supervisor (bounded waits).
    pub(crate) async fn shutdown(&self) {
        let _ = self.0.stop_children_and_wait(None, Some(Duration::from_secs(5))).await;
        let _ = self.0.stop_and_wait(None, Some(Duration::from_secs(5))).await;
    }

    /// Stop the supervisor and its children now.
    pub(crate) fn kill(&self) {
        self.0.kill();
    }

    /// Hand a delivery to `id` and await its answer. A delivery whose
    /// actor stopped before handling it comes back with its reply dropped;
    /// it goes again, and the supervisor holds it until the old actor's end
    /// is known (then rehydrates, or refuses for an execution that ended).
    async fn ask<T: Send + 'static>(
        &self,
        id: ExecutionId,
        make: impl Fn(RpcReplyPort<Result<T, Error>>) -> Delivery,
    ) -> Result<T, Error> {
        self.ask_up_to(id, DELIVERY_ATTEMPTS, make).await
    }

    /// [`ask`](Self::ask), delivering at most `attempts` times.
    async fn ask_up_to<T: Send + 'static>(
        &self,
        id: ExecutionId,
        attempts: usize,
        make: impl Fn(RpcReplyPort<Result<T, Error>>) -> Delivery,
    ) -> Result<T, Error> {
        for _ in 0..attempts {
            let call = ractor::rpc::call(&self.0, |reply| SupervisorMsg::Deliver { id, delivery: make(reply) }, None);
            match call.await.map_err(actor_error)? {
                CallResult::Success(result) => return result,
                CallResult::SenderError | CallResult::Timeout => continue,
            }
        }
        let attempts = crate::plural::count(attempts, "attempt", "attempts");
        Err(Error::Actor(format!("execution {id} did not take the delivery after {attempts}")))
    }
}

/// One execution's actor.
#[derive(Clone)]
pub(crate) struct ExecutionHandle(ActorRef<ExecutionMsg>);

impl ExecutionHandle {
    pub(crate) fn new(actor: ActorRef<ExecutionMsg>) -> ExecutionHandle {
        ExecutionHandle(actor)
    }

    pub(crate) fn id(&self) -> ActorId {
        self.0.get_id()
    }

    /// Whether the actor takes messages (not stopping, not stopped).
    pub(crate) fn is_running(&self) -> bool {
        ractor::ACTIVE_STATES.contains(&self.0.get_status())
    }

    /// A node attempt ended.
    pub(crate) fn node_done(
        &self,
        from: ActorId,
        node: String,
        visit: u32,
        attempt: u32,
        result: Result<NodeOutput, NodeError>,
        duration_us: u64,
    ) {
        // The execution may be gone (cancelled, shut down): nothing to report to.
        let _ = self.0.cast(ExecutionMsg::NodeDone { from, node, visit, attempt, result, duration_us });
    }

    /// A running attempt completed a call: journal it; resolves once it
    /// is durable, or with why it was not (the attempt no longer runs).
    pub(crate) async fn call_done(&self, node: &str, visit: u32, attempt: u32, call: CallRecord) -> Result<(), String> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let msg = ExecutionMsg::Call { node: node.to_string(), visit, attempt, call, reply: RpcReplyPort::from(tx) };
        self.0.cast(msg).map_err(|_| "its execution is no longer running".to_string())?;
        rx.await.map_err(|_| "its execution stopped before journaling the call".to_string())?
    }

    /// Children of a fan-out ended; false when the execution is gone.
    pub(crate) fn branches_done(
        &self,
        node: String,
        visit: u32,
        attempt: u32,
        ends: Vec<(u32, BranchOutcome)>,
    ) -> bool {
        self.0.cast(ExecutionMsg::BranchesDone { node, visit, attempt, ends }).is_ok()
    }

    /// Forward a delivery; gives it back (boxed: it is large, and rare)
    /// when the actor no longer takes messages.
    pub(crate) fn deliver(&self, delivery: Delivery) -> Result<(), Box<Delivery>> {
        match self.0.cast(ExecutionMsg::Deliver(delivery)) {
            Ok(()) => Ok(()),
            Err(MessagingErr::SendErr(ExecutionMsg::Deliver(d))) => Err(Box::new(d)),
            // The message is gone with the error: its reply is dropped, and the caller asks again.
            Err(_) => Ok(()),
        }
    }

    pub(crate) fn stop(&self, reason: &str) {
        self.0.stop(Some(reason.into()));
    }

    /// Make the actor panic (tests of supervision).
    #[cfg(test)]
    pub(crate) fn panic(&self, text: &str) {
        self.0.cast(ExecutionMsg::Panic(text.into())).expect("the actor is live");
    }
}

fn actor_error<T>(e: MessagingErr<T>) -> Error {
    Error::Actor(e.to_string())
}

fn answer<T>(r: Result<CallResult<T>, MessagingErr<SupervisorMsg>>) -> Result<T, Error> {
    match r.map_err(actor_error)? {
        CallResult::Success(v) => Ok(v),
        CallResult::Timeout => Err(Error::Actor("the supervisor did not answer in time".into())),
        CallResult::SenderError => Err(Error::Actor("the supervisor stopped before answering".into())),
    }
}

/// A delivered event's answer: `None`, or not waiting when no node of `id`
/// waited for `key` (so nothing was journaled).
pub(crate) fn event_taken(id: ExecutionId, key: &str, taken: bool) -> Result<Option<String>, Error> {
    if taken {
        Ok(None)
    } else {
        Err(Error::NotWaiting { id, message: format!("no node waits for the event `{key}` now") })
    }
}
