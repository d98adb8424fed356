//! Live notice of what the journal made durable: the server's event
//! streams (`GET /executions/{id}/events/stream`, A2A streaming) follow an
//! execution through [`Feed::subscribe`] instead of polling the journal.
//!
//! [`Observed`] wraps the runtime's journal: after an append is durable,
//! it tells the feed the execution's new last sequence number. A
//! subscriber then reads the records after the last one it sent, so a
//! notice that comes while it is busy is never lost, only merged.
//!
//! It also tells [`Feed::delays`] listeners when an execution starts
//! waiting on the clock (a timer, a retry delay), once that is durable:
//! what a command line that waits it out says to its user.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use tokio::sync::watch;

use crate::id::ExecutionId;
use crate::ir::Workflow;
use crate::journal::{
    Append, Error, Event, ExecutionMeta, Journal, Listing, Record, Registration, RetryDecision, Stats, Timer,
};

/// Above this many entries, `subscribe` drops those nobody watches.
const SWEEP_AT: usize = 1024;

/// How many delay notices a slow listener may fall behind before it
/// misses some (it is told how many; see [`Feed::delays`]).
const DELAY_BACKLOG: usize = 256;

/// One watch channel per execution someone follows: its last durable
/// sequence number.
pub struct Feed {
    channels: Mutex<HashMap<ExecutionId, watch::Sender<u64>>>,
    delays: tokio::sync::broadcast::Sender<Delay>,
}

impl Default for Feed {
    fn default() -> Self {
        Feed { channels: Mutex::default(), delays: tokio::sync::broadcast::channel(DELAY_BACKLOG).0 }
    }
}

/// An execution waits on the clock at a node until `until_ms` (durable:
/// a `Waiting` for a timer, or a `NodeFailed` with a retry decided).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delay {
    pub execution: ExecutionId,
    pub node: String,
    pub kind: DelayKind,
    /// Unix milliseconds.
    pub until_ms: u64,
}

/// What a [`Delay`] waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DelayKind {
    /// A `wait` node with a `duration_ms` / `until` and nothing else.
    Timer,
    /// The next attempt of a failed node, under its retry policy.
    Retry { attempt: u32 },
}

impl Delay {
    /// The delay an event starts, if it starts one.
    fn of(execution: ExecutionId, event: &Event) -> Option<Delay> {
        match event {
            Event::Waiting { node, event: None, prompt: None, deadline_ms: Some(until_ms), .. } => {
                Some(Delay { execution, node: node.clone(), kind: DelayKind::Timer, until_ms: *until_ms })
            }
            Event::NodeFailed { node, retry: RetryDecision::Retry { attempt, at_ms }, .. } => Some(Delay {
                execution,
                node: node.clone(),
                kind: DelayKind::Retry { attempt: *attempt },
                until_ms: *at_ms,
            }),
            _ => None,
        }
    }
}

impl Feed {
    /// Follow `id`: the receiver sees the last durable sequence number
    /// change. Read the journal after subscribing, not before, to miss
    /// nothing.
    pub fn subscribe(&self, id: ExecutionId) -> watch::Receiver<u64> {
        let mut channels = self.channels.lock().expect("feed lock");
        if channels.len() >= SWEEP_AT {
            channels.retain(|_, tx| tx.receiver_count() > 0);
        }
        channels.entry(id).or_insert_with(|| watch::channel(0).0).subscribe()
    }

    /// Hear of every delay (a timer wait, a retry delay) any execution of
    /// this runtime enters from now on, once it is durable. A listener
    /// that falls [`DELAY_BACKLOG`] notices behind loses the oldest.
    pub fn delays(&self) -> tokio::sync::broadcast::Receiver<Delay> {
        self.delays.subscribe()
    }

    /// Tell the delay listeners of what `events` of `id` started.
    fn delayed(&self, id: ExecutionId, events: &[Event]) {
        if self.delays.receiver_count() == 0 {
            return;
        }
        for d in events.iter().filter_map(|e| Delay::of(id, e)) {
            let _ = self.delays.send(d);
        }
    }

    /// An append for `id` changed its timer index entries only: wake its
    /// listeners (the value stays), since what it waits for may have changed.
    pub(crate) fn touched(&self, id: ExecutionId) {
        if let Some(tx) = self.channels.lock().expect("feed lock").get(&id) {
            tx.send_modify(|_| {});
        }
    }

    /// Wake every follower (each reads the journal after what it sent): in
    /// a shared store, a notice of another process's append may be lost.
    pub(crate) fn touch_all(&self) {
        let mut channels = self.channels.lock().expect("feed lock");
        channels.retain(|_, tx| tx.receiver_count() > 0);
        for tx in channels.values() {
            tx.send_modify(|_| {});
        }
    }

    /// `id`'s history now ends at `last_seq` (durable).
    pub(crate) fn appended(&self, id: ExecutionId, last_seq: u64) {
        let mut channels = self.channels.lock().expect("feed lock");
        if let Some(tx) = channels.get(&id) {
            if tx.receiver_count() == 0 {
                channels.remove(&id);
            } else {
                tx.send_if_modified(|seq| {
                    let newer = last_seq > *seq;
                    *seq = (*seq).max(last_seq);
                    newer
                });
            }
        }
    }
}

/// A journal that tells a [`Feed`] about every durable append.
pub struct Observed {
    inner: Arc<dyn Journal>,
    feed: Arc<Feed>,
    /// Told every durable append too, when traces are exported.
    otel: Option<Arc<super::otel::Exporter>>,
}

impl Observed {
    pub fn new(inner: Arc<dyn Journal>, feed: Arc<Feed>) -> Self {
        Observed { inner, feed, otel: None }
    }

    /// Also hand every durable append to `exporter`.
    pub fn exporting(mut self, exporter: Arc<super::otel::Exporter>) -> Self {
        self.otel = Some(exporter);
        self
    }
}

impl Journal for Observed {
    fn append<'a>(&'a self, append: Append<'a>) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let (id, n, first, at_ms) = (append.execution, append.events.len() as u64, append.first_seq, append.at_ms);
            let events = append.events;
            let timers_only = n == 0 && !append.timers.is_empty();
            self.inner.append(append).await?;
            if n > 0 {
                self.feed.appended(id, first + n - 1);
                self.feed.delayed(id, events);
                if let Some(otel) = &self.otel {
                    otel.notice(id, first, at_ms, events);
                }
            } else if timers_only {
                self.feed.touched(id);
            }
            Ok(())
        })
    }
    fn read(&self, execution: ExecutionId) -> Result<Vec<Record>, Error> {
        self.inner.read(execution)
    }
    fn waiting_for(&self, key: &str) -> Result<Vec<ExecutionId>, Error> {
        self.inner.waiting_for(key)
    }
    fn wait_index(&self) -> Result<Vec<(String, ExecutionId)>, Error> {
        self.inner.wait_index()
    }
    fn keep<'a>(&'a self, event: &'a crate::journal::KeptEvent) -> BoxFuture<'a, Result<(), Error>> {
        self.inner.keep(event)
    }
    fn kept(&self, key: &str, now_ms: u64, limit: usize) -> Result<Vec<crate::journal::KeptEvent>, Error> {
        self.inner.kept(key, now_ms, limit)
    }
    fn expiring(&self, up_to_ms: u64, limit: usize) -> Result<Vec<crate::journal::KeptRef>, Error> {
        self.inner.expiring(up_to_ms, limit)
    }
    fn forget<'a>(&'a self, kept: &'a [crate::journal::KeptRef]) -> BoxFuture<'a, Result<(), Error>> {
        self.inner.forget(kept)
    }
    fn session(&self, id: &str) -> Result<Option<crate::journal::SessionRecord>, Error> {
        self.inner.session(id)
    }
    fn sessions(&self) -> Result<Vec<crate::journal::SessionRecord>, Error> {
        self.inner.sessions()
    }
    fn forget_sessions<'a>(&'a self, ids: &'a [String]) -> BoxFuture<'a, Result<(), Error>> {
        self.inner.forget_sessions(ids)
    }
    fn prune<'a>(
        &'a self,
        executions: &'a [ExecutionId],
        at_ms: u64,
    ) -> BoxFuture<'a, Result<crate::journal::Freed, Error>> {
        self.inner.prune(executions, at_ms)
    }
    fn tombstone(&self, execution: ExecutionId) -> Result<Option<crate::journal::Tombstone>, Error> {
        self.inner.tombstone(execution)
    }
    fn compact(&self) -> BoxFuture<'_, Result<Option<crate::journal::Compacted>, Error>> {
        self.inner.compact()
    }
    fn read_after(&self, execution: ExecutionId, after: u64) -> Result<Vec<Record>, Error> {
        self.inner.read_after(execution, after)
    }
    fn first(&self, execution: ExecutionId) -> Result<Option<Record>, Error> {
        self.inner.first(execution)
    }
    fn meta(&self, execution: ExecutionId) -> Result<Option<ExecutionMeta>, Error> {
        self.inner.meta(execution)
    }
    fn listing(&self) -> Result<Listing, Error> {
        self.inner.listing()
    }
    fn page(
        &self,
        after: Option<ExecutionId>,
        newest_first: bool,
        limit: usize,
        filter: &crate::journal::RowFilter,
    ) -> Result<crate::journal::IndexPage, Error> {
        self.inner.page(after, newest_first, limit, filter)
    }
    fn workflow(&self, hash: &str) -> Result<Option<Workflow>, Error> {
        self.inner.workflow(hash)
    }
    fn register<'a>(&'a self, registration: &'a Registration, wf: &'a Workflow) -> BoxFuture<'a, Result<(), Error>> {
        self.inner.register(registration, wf)
    }
    fn registrations(&self) -> Result<Vec<Registration>, Error> {
        self.inner.registrations()
    }
    fn find_key(&self, key: &str) -> Result<Option<ExecutionId>, Error> {
        self.inner.find_key(key)
    }
    fn due_timers(&self, up_to_ms: u64, limit: usize) -> Result<Vec<Timer>, Error> {
        self.inner.due_timers(up_to_ms, limit)
    }
    fn next_timer_after(&self, after_ms: u64) -> Result<Option<Timer>, Error> {
        self.inner.next_timer_after(after_ms)
    }
    fn stats(&self) -> Stats {
        self.inner.stats()
    }
    fn leases(&self) -> Option<&dyn crate::journal::Leases> {
        self.inner.leases()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::ErrorClass;

    #[test]
    fn a_timer_and_a_retry_delay_are_delays_and_a_parked_wait_is_not() {
        let id = ExecutionId::new(1);
        let timer = Event::Waiting { node: "nap".into(), visit: 1, event: None, deadline_ms: Some(9), prompt: None };
        assert_eq!(
            Delay::of(id, &timer),
            Some(Delay { execution: id, node: "nap".into(), kind: DelayKind::Timer, until_ms: 9 })
        );
        let retry = Event::NodeFailed {
            node: "call".into(),
            visit: 1,
            attempt: 1,
            class: ErrorClass::Connection,
            message: "refused".into(),
            retry: RetryDecision::Retry { attempt: 2, at_ms: 7 },
        };
        assert_eq!(Delay::of(id, &retry).map(|d| (d.kind, d.until_ms)), Some((DelayKind::Retry { attempt: 2 }, 7)));
        let parked = Event::Waiting {
            node: "pay".into(),
            visit: 1,
            event: Some("paid".into()),
            deadline_ms: Some(9),
            prompt: None,
        };
        assert_eq!(Delay::of(id, &parked), None, "an event wait with a deadline parks: the command does not wait");
    }
}
