//! Live notice of what the journal made durable: the server's event
//! streams (`GET /executions/{id}/events/stream`, A2A streaming) follow an
//! execution through [`Feed::subscribe`] instead of polling the journal.
//!
//! [`Observed`] wraps the runtime's journal: after an append is durable,
//! it tells the feed the execution's new last sequence number. A
//! subscriber then reads the records after the last one it sent, so a
//! notice that comes while it is busy is never lost, only merged.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use tokio::sync::watch;

use crate::id::ExecutionId;
use crate::ir::Workflow;
use crate::journal::{Append, Error, ExecutionMeta, Journal, Listing, Record, Registration, Stats, Timer};

/// Above this many entries, `subscribe` drops those nobody watches.
const SWEEP_AT: usize = 1024;

/// One watch channel per execution someone follows: its last durable
/// sequence number.
#[derive(Default)]
pub struct Feed {
    channels: Mutex<HashMap<ExecutionId, watch::Sender<u64>>>,
    /// Node latency by type, from the durable `NodeCompleted` events.
    pub latency: super::NodeLatency,
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
}

impl Observed {
    pub fn new(inner: Arc<dyn Journal>, feed: Arc<Feed>) -> Self {
        Observed { inner, feed }
    }
}

impl Journal for Observed {
    fn append<'a>(&'a self, append: Append<'a>) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let (id, n, first) = (append.execution, append.events.len() as u64, append.first_seq);
            let (events, wf) = (append.events, append.workflow.map(|(_, wf)| wf));
            self.inner.append(append).await?;
            if n > 0 {
                self.feed.appended(id, first + n - 1);
                self.feed.latency.appended(&*self.inner, id, events, wf);
            }
            Ok(())
        })
    }
    fn read(&self, execution: ExecutionId) -> Result<Vec<Record>, Error> {
        self.inner.read(execution)
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
}
