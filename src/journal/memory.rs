//! An in-memory journal for tests and benchmarks: the same contract as the
//! sled journal, with nothing to sync. Events are kept as values, not
//! encoded: the codec is the sled journal's (and its tests'), and a step
//! in memory should not pay for it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use futures::future::BoxFuture;

use super::{
    Append, Error, Event, ExecutionMeta, Freed, Journal, KeptEvent, KeptRef, Listing, Record, Registration,
    SessionRecord, Stats, Timer, TimerChange, Tombstone, WaitChange,
};
use crate::id::ExecutionId;
use crate::ir::Workflow;

#[derive(Default)]
struct Inner {
    /// Each append's events with its time, by first sequence number.
    events: BTreeMap<(ExecutionId, u64), (u64, Vec<Event>)>,
    metas: BTreeMap<ExecutionId, ExecutionMeta>,
    workflows: HashMap<String, Workflow>,
    keys: HashMap<String, ExecutionId>,
    timers: BTreeSet<Timer>,
    registrations: BTreeMap<(String, String), Registration>,
    /// The wait index: (event key, execution).
    waits: BTreeSet<(String, ExecutionId)>,
    /// Kept events by (event key, id).
    kept: BTreeMap<(String, [u8; 16]), KeptEvent>,
    /// Kept events by expiry.
    expiry: BTreeSet<(u64, [u8; 16], String)>,
    sessions: BTreeMap<String, SessionRecord>,
    tombstones: HashMap<ExecutionId, Tombstone>,
}

/// Events kept in process memory; lost when the process ends.
#[derive(Default)]
pub struct MemoryJournal {
    inner: Mutex<Inner>,
    appends: AtomicU64,
    events: AtomicU64,
}

impl MemoryJournal {
    pub fn new() -> Self {
        Self::default()
    }
}

impl Inner {
    /// Drop a kept event; whether it was there.
    fn forget(&mut self, at: &KeptRef) -> bool {
        self.expiry.remove(&(at.until_ms, at.id, at.key.clone()));
        self.kept.remove(&(at.key.clone(), at.id)).is_some()
    }
}

impl Journal for MemoryJournal {
    fn append<'a>(&'a self, append: Append<'a>) -> BoxFuture<'a, Result<(), Error>> {
        let mut inner = self.inner.lock().expect("memory journal lock");
        if !append.events.is_empty() {
            inner.events.insert((append.execution, append.first_seq), (append.at_ms, append.events.to_vec()));
        }
        if let Some(meta) = append.meta {
            if let Some(key) = &meta.key {
                inner.keys.entry(key.clone()).or_insert(meta.id);
            }
            inner.metas.insert(meta.id, meta.clone());
        }
        if let Some((hash, wf)) = append.workflow {
            inner.workflows.entry(hash.to_string()).or_insert_with(|| wf.clone());
        }
        for change in append.timers {
            match *change {
                TimerChange::Set(at_ms) => inner.timers.insert(Timer { at_ms, execution: append.execution }),
                TimerChange::Clear(at_ms) => inner.timers.remove(&Timer { at_ms, execution: append.execution }),
                TimerChange::SetFor(execution, at_ms) => inner.timers.insert(Timer { at_ms, execution }),
            };
        }
        for change in append.waits {
            match change {
                WaitChange::Wait(key) => inner.waits.insert((key.clone(), append.execution)),
                WaitChange::Unwait(key) => inner.waits.remove(&(key.clone(), append.execution)),
                WaitChange::Take(at) => inner.forget(at),
                WaitChange::Answered(..) => false,
            };
        }
        if let Some(session) = append.session {
            inner.sessions.insert(session.id.clone(), session.clone());
        }
        self.appends.fetch_add(1, Ordering::Relaxed);
        self.events.fetch_add(append.events.len() as u64, Ordering::Relaxed);
        Box::pin(std::future::ready(Ok(())))
    }

    fn read(&self, execution: ExecutionId) -> Result<Vec<Record>, Error> {
        let inner = self.inner.lock().expect("memory journal lock");
        let mut records = Vec::new();
        for ((_, first), (at_ms, events)) in inner.events.range((execution, 0)..=(execution, u64::MAX)) {
            records.extend(events.iter().zip(*first..).map(|(event, seq)| Record {
                seq,
                at_ms: *at_ms,
                event: event.clone(),
            }));
        }
        Ok(records)
    }

    fn meta(&self, execution: ExecutionId) -> Result<Option<ExecutionMeta>, Error> {
        Ok(self.inner.lock().expect("memory journal lock").metas.get(&execution).cloned())
    }

    fn listing(&self) -> Result<Listing, Error> {
        let rows = self.inner.lock().expect("memory journal lock").metas.values().cloned().collect();
        Ok(Listing { rows, ..Listing::default() })
    }

    fn workflow(&self, hash: &str) -> Result<Option<Workflow>, Error> {
        Ok(self.inner.lock().expect("memory journal lock").workflows.get(hash).cloned())
    }

    fn due_timers(&self, up_to_ms: u64, limit: usize) -> Result<Vec<Timer>, Error> {
        let inner = self.inner.lock().expect("memory journal lock");
        Ok(inner.timers.iter().take_while(|t| t.at_ms <= up_to_ms).take(limit).copied().collect())
    }

    fn next_timer_after(&self, after_ms: u64) -> Result<Option<Timer>, Error> {
        let inner = self.inner.lock().expect("memory journal lock");
        Ok(inner.timers.iter().find(|t| t.at_ms > after_ms).copied())
    }

    fn waiting_for(&self, key: &str) -> Result<Vec<ExecutionId>, Error> {
        let inner = self.inner.lock().expect("memory journal lock");
        let from = (key.to_string(), ExecutionId::from_bytes([0; 16]));
        Ok(inner.waits.range(from..).take_while(|(k, _)| k == key).map(|(_, id)| *id).collect())
    }

    fn wait_index(&self) -> Result<Vec<(String, ExecutionId)>, Error> {
        Ok(self.inner.lock().expect("memory journal lock").waits.iter().cloned().collect())
    }

    fn keep<'a>(&'a self, event: &'a KeptEvent) -> BoxFuture<'a, Result<(), Error>> {
        let mut inner = self.inner.lock().expect("memory journal lock");
        inner.expiry.insert((event.at.until_ms, event.at.id, event.at.key.clone()));
        inner.kept.insert((event.at.key.clone(), event.at.id), event.clone());
        Box::pin(std::future::ready(Ok(())))
    }

    fn kept(&self, key: &str, now_ms: u64, limit: usize) -> Result<Vec<KeptEvent>, Error> {
        let inner = self.inner.lock().expect("memory journal lock");
        let from = (key.to_string(), [0u8; 16]);
        Ok(inner
            .kept
            .range(from..)
            .take_while(|((k, _), _)| k == key)
            .map(|(_, e)| e)
            .filter(|e| e.at.until_ms > now_ms)
            .take(limit)
            .cloned()
            .collect())
    }

    fn expiring(&self, up_to_ms: u64, limit: usize) -> Result<Vec<KeptRef>, Error> {
        let inner = self.inner.lock().expect("memory journal lock");
        Ok(inner
            .expiry
            .iter()
            .take_while(|(until, _, _)| *until <= up_to_ms)
            .take(limit)
            .map(|(until_ms, id, key)| KeptRef { key: key.clone(), id: *id, until_ms: *until_ms })
            .collect())
    }

    fn forget<'a>(&'a self, kept: &'a [KeptRef]) -> BoxFuture<'a, Result<(), Error>> {
        let mut inner = self.inner.lock().expect("memory journal lock");
        for at in kept {
            inner.forget(at);
        }
        Box::pin(std::future::ready(Ok(())))
    }

    fn register<'a>(&'a self, registration: &'a Registration, wf: &'a Workflow) -> BoxFuture<'a, Result<(), Error>> {
        let mut inner = self.inner.lock().expect("memory journal lock");
        inner.workflows.entry(registration.hash.clone()).or_insert_with(|| wf.clone());
        let key = (registration.workflow_id.clone(), registration.version.clone());
        inner.registrations.insert(key, registration.clone());
        Box::pin(std::future::ready(Ok(())))
    }

    fn registrations(&self) -> Result<Vec<Registration>, Error> {
        Ok(self.inner.lock().expect("memory journal lock").registrations.values().cloned().collect())
    }

    fn find_key(&self, key: &str) -> Result<Option<ExecutionId>, Error> {
        Ok(self.inner.lock().expect("memory journal lock").keys.get(key).copied())
    }

    fn session(&self, id: &str) -> Result<Option<SessionRecord>, Error> {
        Ok(self.inner.lock().expect("memory journal lock").sessions.get(id).cloned())
    }

    fn sessions(&self) -> Result<Vec<SessionRecord>, Error> {
        Ok(self.inner.lock().expect("memory journal lock").sessions.values().cloned().collect())
    }

    fn prune<'a>(&'a self, executions: &'a [ExecutionId], at_ms: u64) -> BoxFuture<'a, Result<Freed, Error>> {
        let mut inner = self.inner.lock().expect("memory journal lock");
        let mut freed = Freed::default();
        for &id in executions {
            let Some(meta) = inner.metas.get(&id).filter(|m| m.status.is_terminal()).cloned() else { continue };
            let appends: Vec<(ExecutionId, u64)> =
                inner.events.range((id, 0)..=(id, u64::MAX)).map(|(k, _)| *k).collect();
            let mut events = 0;
            for k in appends {
                events += inner.events.remove(&k).map_or(0, |(_, e)| e.len() as u64);
            }
            if let Some(key) = &meta.key
                && inner.keys.get(key) == Some(&id)
            {
                inner.keys.remove(key);
            }
            inner.metas.remove(&id);
            freed.add(Freed { executions: 1, events, bytes: 0 });
            inner.tombstones.insert(id, Tombstone { meta, pruned_ms: at_ms, events });
        }
        Box::pin(std::future::ready(Ok(freed)))
    }

    fn tombstone(&self, execution: ExecutionId) -> Result<Option<Tombstone>, Error> {
        Ok(self.inner.lock().expect("memory journal lock").tombstones.get(&execution).cloned())
    }

    fn forget_sessions<'a>(&'a self, ids: &'a [String]) -> BoxFuture<'a, Result<(), Error>> {
        let mut inner = self.inner.lock().expect("memory journal lock");
        for id in ids {
            inner.sessions.remove(id);
        }
        Box::pin(std::future::ready(Ok(())))
    }

    fn stats(&self) -> Stats {
        Stats {
            appends: self.appends.load(Ordering::Relaxed),
            events: self.events.load(Ordering::Relaxed),
            syncs: 0,
            sync_us: 0,
        }
    }
}
