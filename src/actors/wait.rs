//! WaitActor: the runtime's external-event mailbox.
//!
//! An event published by key (`Runtime::publish`, `POST /events`, `jamjet
//! signal --event`) goes to every execution the journal's wait index says
//! waits for that key; the index (`v{key}\0{exec}`) is written in the batch
//! of the events that make an execution wait or stop waiting, so it holds
//! hibernated executions too and survives a restart. Each is handed the
//! event through the supervisor (which rehydrates a hibernated one); it
//! journals `SignalReceived` only if a node of it still waits for the key.
//!
//! An event no execution waits for is kept, durably, until its expiry
//! (`keep`, at most [`MAX_KEEP`]); the first execution that then reaches a
//! wait for the key takes it: its execution actor tells this actor of the
//! keys it began to wait for once that is durable, and the kept event's
//! removal is in the same batch as the `SignalReceived` it becomes, so it
//! is received once. Expired events are dropped by a sweep that sleeps
//! until the earliest expiry (one range scan, a bounded batch per round).
//!
//! One actor per runtime, so a publication and a hand-over never race:
//! the wait index is read and a kept event chosen by one actor, in order.
//! At start it hands kept events to executions that wait for their key
//! (what a crash between a wait's append and its notice left), so a
//! restarted actor misses nothing.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use futures::future::join_all;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use serde_json::Value;
use tokio::sync::oneshot;
use tracing::warn;

use super::handles::SupervisorHandle;
use super::machine::{ExecutionState, Phase};
use super::{Error, Shared};
use crate::id::ExecutionId;
use crate::journal::{Json, KeptEvent, KeptRef, WaitChange};

/// How long an event no execution waits for is kept when the publisher
/// does not say.
pub const DEFAULT_KEEP: Duration = Duration::from_secs(24 * 3600);
/// The longest an event may be kept.
pub const MAX_KEEP: Duration = Duration::from_secs(30 * 24 * 3600);
/// How many expired events one sweep round drops.
const SWEEP_BATCH: usize = 1024;
/// How many kept events the start-up hand-over looks at.
const RECONCILE_LIMIT: usize = 100_000;

/// Parse how long to keep an event: a number with a unit (`ms`, `s`,
/// `m`, `h`, `d`, `w`; seconds without one), at most [`MAX_KEEP`].
pub fn parse_keep(text: &str) -> Result<Duration, String> {
    let keep = crate::clock::parse_span(text, Some("s"))?;
    if keep > MAX_KEEP {
        return Err(format!("`{text}` is longer than an event may be kept (30d)"));
    }
    Ok(keep)
}

/// What became of a published event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// The executions that received it (journaled `SignalReceived`).
    pub delivered: Vec<ExecutionId>,
    /// Set when none did: it is kept until then (unix ms) for the first
    /// execution that reaches a wait for its key (`None` with `keep` 0).
    pub kept_until_ms: Option<u64>,
}

/// What the wait actor did with a published event, and what it left to
/// the runtime: the waiting executions another live process runs (a
/// shared store's), which the runtime sends it to through their inboxes.
#[derive(Debug)]
pub(crate) struct Publication {
    pub published: Published,
    /// Waiting for the key, run by another process. When there are any
    /// and none here took the event, it was not kept: the runtime keeps
    /// it ([`Mailbox::keep`]) if none of them takes it either.
    pub elsewhere: Vec<ExecutionId>,
}

pub(crate) enum WaitMsg {
    /// Deliver to every execution waiting for `key` here; keep it if none
    /// does (and none runs elsewhere).
    Publish { key: String, payload: Value, keep: Duration, reply: oneshot::Sender<Result<Publication, Error>> },
    /// Keep an event nobody took (after the runtime's inbox deliveries).
    Keep { key: String, payload: Value, keep: Duration, reply: oneshot::Sender<Result<u64, Error>> },
    /// `execution` began to wait for these keys (durable): hand it kept events.
    Waiting { execution: ExecutionId, keys: Vec<String> },
    /// Drop what has expired; sleep until the next expiry.
    Sweep,
}

/// The handle through [`Shared`]: execution actors tell the mailbox of
/// new waits; the runtime publishes (and starts the actor again if it died).
#[derive(Default)]
pub(crate) struct Mailbox {
    actor: Mutex<Option<ActorRef<WaitMsg>>>,
}

impl Mailbox {
    /// `execution` began to wait for `keys` (its index entries are durable).
    pub(crate) fn waiting(&self, execution: ExecutionId, keys: Vec<String>) {
        if keys.is_empty() {
            return;
        }
        if let Some(actor) = self.actor.lock().expect("mailbox lock").as_ref() {
            // A dead actor misses this; the one started next hands over at start.
            let _ = actor.cast(WaitMsg::Waiting { execution, keys });
        }
    }

    /// Deliver to every execution waiting for `key`, or keep it for `keep`.
    pub(crate) async fn publish(
        &self,
        services: &Arc<Shared>,
        supervisor: &SupervisorHandle,
        key: &str,
        payload: Value,
        keep: Duration,
    ) -> Result<Publication, Error> {
        let key = key.to_string();
        self.ask(services, supervisor, |reply| WaitMsg::Publish { key, payload, keep, reply }).await
    }

    /// Keep an event for `keep` (no execution took it); answers until when (unix ms).
    pub(crate) async fn keep(
        &self,
        services: &Arc<Shared>,
        supervisor: &SupervisorHandle,
        key: &str,
        payload: Value,
        keep: Duration,
    ) -> Result<u64, Error> {
        let key = key.to_string();
        self.ask(services, supervisor, |reply| WaitMsg::Keep { key, payload, keep, reply }).await
    }

    /// Send the actor `message` and await its answer.
    async fn ask<T>(
        &self,
        services: &Arc<Shared>,
        supervisor: &SupervisorHandle,
        message: impl FnOnce(oneshot::Sender<Result<T, Error>>) -> WaitMsg,
    ) -> Result<T, Error> {
        let actor = self.actor(services, supervisor).await?;
        let (reply, rx) = oneshot::channel();
        actor.cast(message(reply)).map_err(|e| Error::Actor(format!("the wait actor is gone: {e}")))?;
        rx.await.map_err(|_| Error::Actor("the wait actor stopped before it answered".to_string()))?
    }

    /// The live actor, started (again) when there is none.
    pub(crate) async fn actor(
        &self,
        services: &Arc<Shared>,
        supervisor: &SupervisorHandle,
    ) -> Result<ActorRef<WaitMsg>, Error> {
        if let Some(actor) = self.actor.lock().expect("mailbox lock").as_ref()
            && !matches!(actor.get_status(), ractor::ActorStatus::Stopping | ractor::ActorStatus::Stopped)
        {
            return Ok(actor.clone());
        }
        let args = WaitArgs { services: Arc::downgrade(services), supervisor: supervisor.clone() };
        let (actor, _) = Actor::spawn_linked(None, WaitActor, args, supervisor.cell())
            .await
            .map_err(|e| Error::Actor(format!("cannot start the wait actor: {e}")))?;
        let mut slot = self.actor.lock().expect("mailbox lock");
        match slot.as_ref() {
            // Another caller started one meanwhile: use it.
            Some(other)
                if !matches!(other.get_status(), ractor::ActorStatus::Stopping | ractor::ActorStatus::Stopped) =>
            {
                actor.stop(None);
                Ok(other.clone())
            }
            _ => {
                *slot = Some(actor.clone());
                Ok(actor)
            }
        }
    }
}

/// The event keys `machine` waits for now: what the wait index holds for it.
pub(crate) fn keys(machine: &ExecutionState) -> BTreeSet<String> {
    if machine.phase != Phase::Running {
        return BTreeSet::new();
    }
    machine.active.values().filter_map(|a| a.wait.as_ref()?.event.clone()).collect()
}

/// Whether a node of `machine` waits for events with `key` now.
pub(crate) fn waits_for(machine: &ExecutionState, key: &str) -> bool {
    machine.phase == Phase::Running
        && machine.active.values().any(|a| a.wait.as_ref().and_then(|w| w.event.as_deref()) == Some(key))
}

/// The index changes from the keys `before` to the keys `after`.
pub(crate) fn changes(before: &BTreeSet<String>, after: &BTreeSet<String>) -> Vec<WaitChange> {
    before
        .difference(after)
        .map(|k| WaitChange::Unwait(k.clone()))
        .chain(after.difference(before).map(|k| WaitChange::Wait(k.clone())))
        .collect()
}

pub(crate) struct WaitActor;

pub(crate) struct WaitArgs {
    services: Weak<Shared>,
    supervisor: SupervisorHandle,
}

pub(crate) struct WaitState {
    services: Weak<Shared>,
    supervisor: SupervisorHandle,
    /// The expiry the next sweep is armed for (unix ms).
    sweep_at: Option<u64>,
}

impl Actor for WaitActor {
    type Msg = WaitMsg;
    type State = WaitState;
    type Arguments = WaitArgs;

    async fn pre_start(&self, _: ActorRef<WaitMsg>, args: WaitArgs) -> Result<WaitState, ActorProcessingErr> {
        Ok(WaitState { services: args.services, supervisor: args.supervisor, sweep_at: None })
    }

    async fn post_start(&self, myself: ActorRef<WaitMsg>, st: &mut WaitState) -> Result<(), ActorProcessingErr> {
        if let Some(services) = st.services.upgrade() {
            hand_over_all(&services, &st.supervisor).await;
        }
        let _ = myself.cast(WaitMsg::Sweep);
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<WaitMsg>,
        msg: WaitMsg,
        st: &mut WaitState,
    ) -> Result<(), ActorProcessingErr> {
        let Some(services) = st.services.upgrade() else {
            myself.stop(None);
            return Ok(());
        };
        match msg {
            WaitMsg::Publish { key, payload, keep, reply } => {
                let result = publish(&services, &st.supervisor, key, payload, keep).await;
                if let Ok(Publication { published: Published { kept_until_ms: Some(until), .. }, .. }) = &result {
                    arm_sweep(&myself, st, &services, *until);
                }
                let _ = reply.send(result);
            }
            WaitMsg::Keep { key, payload, keep, reply } => {
                let result = keep_event(&services, key, Json::from_value(&payload), keep).await;
                if let Ok(until) = &result {
                    arm_sweep(&myself, st, &services, *until);
                }
                let _ = reply.send(result);
            }
            WaitMsg::Waiting { execution, keys } => {
                for key in keys {
                    hand_over(&services, &st.supervisor, execution, &key).await;
                }
            }
            WaitMsg::Sweep => {
                st.sweep_at = None;
                sweep(&myself, st, &services).await;
            }
        }
        Ok(())
    }
}

/// Deliver `payload` to every execution waiting for `key` that runs here
/// (or nowhere); keep it if none took it and none runs elsewhere.
async fn publish(
    services: &Arc<Shared>,
    supervisor: &SupervisorHandle,
    key: String,
    payload: Value,
    keep: Duration,
) -> Result<Publication, Error> {
    let waiting = services.journal.waiting_for(&key)?;
    let payload = Json::from_value(&payload);
    let handed = waiting.iter().map(|&id| {
        let (key, payload) = (key.clone(), payload.clone());
        async move {
            let r = supervisor.event(id, &key, &payload, None).await;
            (id, r)
        }
    });
    let (mut delivered, mut elsewhere) = (Vec::new(), Vec::new());
    for (id, result) in join_all(handed).await {
        match result {
            Ok(true) => delivered.push(id),
            // It stopped waiting (resolved, timed out, ended) meanwhile.
            Ok(false) | Err(Error::Finished { .. }) => {}
            Err(Error::Elsewhere { id, .. }) => elsewhere.push(id),
            Err(e) => warn!(execution_id = %id, key = %key, error = %e, "a published event was not delivered"),
        }
    }
    if !delivered.is_empty() || !elsewhere.is_empty() || keep.is_zero() {
        return Ok(Publication { published: Published { delivered, kept_until_ms: None }, elsewhere });
    }
    let until_ms = keep_event(services, key, payload, keep).await?;
    // An execution may have begun to wait between the index read and the
    // keep: its notice is behind this message and finds the kept event.
    Ok(Publication { published: Published { delivered, kept_until_ms: Some(until_ms) }, elsewhere })
}

/// Keep `payload` for the first execution that waits for `key` within
/// `keep`; answers until when (unix ms).
async fn keep_event(services: &Shared, key: String, payload: Json, keep: Duration) -> Result<u64, Error> {
    let now = services.clock.now_ms();
    let until_ms = now.saturating_add(keep.as_millis() as u64);
    let event =
        KeptEvent { at: KeptRef { key, id: ExecutionId::new(now).to_bytes(), until_ms }, published_ms: now, payload };
    services.journal.keep(&event).await?;
    Ok(until_ms)
}

/// Hand `execution` the kept events of `key` while it waits for them.
async fn hand_over(services: &Arc<Shared>, supervisor: &SupervisorHandle, execution: ExecutionId, key: &str) {
    // Bounded: each round takes one kept event or stops.
    for _ in 0..64 {
        let now = services.clock.now_ms();
        let kept = match services.journal.kept(key, now, 1) {
            Ok(kept) => kept,
            Err(e) => {
                warn!(key = %key, error = %e, "the kept events cannot be read");
                return;
            }
        };
        let Some(event) = kept.into_iter().next() else { return };
        let result = supervisor.event(execution, key, &event.payload, Some(&event.at)).await;
        match result {
            Ok(true) => {}
            Ok(false) | Err(Error::Finished { .. }) => return,
            Err(e) => {
                warn!(execution_id = %execution, key = %key, error = %e, "a kept event was not handed over");
                return;
            }
        }
    }
}

/// At start: hand kept events to the executions that wait for their keys.
async fn hand_over_all(services: &Arc<Shared>, supervisor: &SupervisorHandle) {
    let kept = match services.journal.expiring(u64::MAX, RECONCILE_LIMIT) {
        Ok(kept) => kept,
        Err(e) => {
            warn!(error = %e, "the kept events cannot be read");
            return;
        }
    };
    let keys: BTreeSet<String> = kept.into_iter().map(|k| k.key).collect();
    for key in keys {
        match services.journal.waiting_for(&key) {
            Ok(ids) => {
                for id in ids {
                    hand_over(services, supervisor, id, &key).await;
                }
            }
            Err(e) => warn!(key = %key, error = %e, "the wait index cannot be read"),
        }
    }
}

/// Drop expired kept events (a bounded batch), and arm the next sweep.
async fn sweep(myself: &ActorRef<WaitMsg>, st: &mut WaitState, services: &Arc<Shared>) {
    let now = services.clock.now_ms();
    match services.journal.expiring(now, SWEEP_BATCH) {
        Ok(expired) if !expired.is_empty() => {
            let full = expired.len() == SWEEP_BATCH;
            if let Err(e) = services.journal.forget(&expired).await {
                warn!(error = %e, "expired kept events cannot be dropped");
            }
            if full {
                let _ = myself.cast(WaitMsg::Sweep);
                return;
            }
        }
        Ok(_) => {}
        Err(e) => warn!(error = %e, "the kept events cannot be read"),
    }
    match services.journal.expiring(u64::MAX, 1) {
        Ok(next) => {
            if let Some(next) = next.first() {
                arm_sweep(myself, st, services, next.until_ms);
            }
        }
        Err(e) => warn!(error = %e, "the kept events cannot be read"),
    }
}

/// Sweep at `at_ms` unless a sweep is armed for earlier.
fn arm_sweep(myself: &ActorRef<WaitMsg>, st: &mut WaitState, services: &Arc<Shared>, at_ms: u64) {
    if st.sweep_at.is_some_and(|armed| armed <= at_ms) {
        return;
    }
    st.sweep_at = Some(at_ms);
    let wait = Duration::from_millis(at_ms.saturating_sub(services.clock.now_ms()));
    myself.send_after(wait, || WaitMsg::Sweep);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keep_reads_units_and_refuses_what_is_not_a_bounded_duration() {
        assert_eq!(parse_keep("24h"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_keep("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_keep("1500ms"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_keep("30d"), Ok(MAX_KEEP));
        assert_eq!(parse_keep("0"), Ok(Duration::ZERO));
        assert!(parse_keep("31d").unwrap_err().contains("longer than"));
        assert!(parse_keep("99999999999999999999d").unwrap_err().contains("not a duration"));
        assert_eq!(parse_keep("1w"), Ok(Duration::from_secs(7 * 86_400)));
        assert!(parse_keep("1y").unwrap_err().contains("unknown unit `y`"));
        assert!(parse_keep("").unwrap_err().contains("not a duration"));
        assert!(parse_keep("-1h").unwrap_err().contains("not a duration"));
    }
}
