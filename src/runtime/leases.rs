//! Sharing a store with other processes (PostgreSQL): renewing this
//! process's leases, dropping what it lost, and claiming executions that
//! need a process.
//!
//! One task per runtime, started at open when the journal has
//! [`Leases`](crate::journal::Leases). Every round it renews every lease
//! of this process in one statement (a third of the lease time apart) and
//! tells the supervisor to drop the executions another process took over.
//! A runtime that claims (a worker, `jamjet dev`, an embedding host: one
//! opened with `resume_on_open`) then claims, up to its capacity, the
//! executions no live process owns whose workflows it can run (their host
//! functions are registered here), and carries each on: rehydrated from
//! its history, and ticked when a deadline of it is due. A process
//! draining ([`Runtime::drain`]) claims nothing more.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use super::{Inner, Runtime};
use crate::ir::Workflow;
use crate::journal::Status;

/// The longest between two claim rounds (a lost notification is caught by this).
const POLL: Duration = Duration::from_millis(250);

/// At most this many executions per claim round, so that workers polling
/// at once share what is free rather than the first taking it all. A
/// round that takes a full batch looks again at once.
const CLAIM_BATCH: usize = 32;

/// After a round that left work behind for want of room, an execution
/// leaving this process wakes the claimer, which waits this long for
/// others to leave too, so one round claims for several.
const ROOM_GATHER: Duration = Duration::from_millis(5);

/// An execution of a shared store that no live process runs (see [`Runtime::unclaimed`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Unclaimed {
    pub id: crate::id::ExecutionId,
    pub workflow_id: String,
    pub status: Status,
    /// The host functions its workflow calls (a process must register them all to claim it).
    pub functions: Vec<String>,
    /// Why it waits, in words.
    pub reason: String,
}

/// What the embedding API steers: claiming on or off, and a wake-up.
#[derive(Default)]
pub(super) struct Claiming {
    /// Claim executions (set at open for a runtime that resumes).
    pub(super) on: AtomicBool,
    /// Stopped claiming for good ([`Runtime::drain`]).
    pub(super) draining: AtomicBool,
    pub(super) wake: Notify,
    /// How many executions this process carries at most before it stops claiming.
    pub(super) capacity: std::sync::atomic::AtomicUsize,
}

/// Start the lease task of `rt` (a no-op for a store one process holds).
pub(super) fn start(rt: &Runtime, claim: bool) {
    if rt.services().journal.leases().is_none() {
        return;
    }
    rt.inner.claiming.on.store(claim, Ordering::SeqCst);
    let task = tokio::spawn(run(Arc::downgrade(&rt.inner), rt.inner.claiming.clone()));
    let taker = tokio::spawn(super::inbox::take(Arc::downgrade(&rt.inner), rt.inner.taking.clone()));
    rt.inner.lease_tasks.lock().expect("lease task lock").extend([task, taker]);
    if let Some(leases) = rt.services().journal.leases() {
        tokio::spawn(follow_notices(leases.notices(), rt.inner.feed.clone()));
    }
}

/// How often followers look at the journal by themselves (a lost notice
/// of another process's append delays them this long at most).
const LOOK_EVERY: Duration = Duration::from_secs(1);

/// Pass the store's notices of appends (by any process) to this runtime's
/// followers, and wake every follower now and then; ends with the journal.
async fn follow_notices(
    mut notices: tokio::sync::broadcast::Receiver<(crate::id::ExecutionId, u64)>,
    feed: Arc<super::Feed>,
) {
    use tokio::sync::broadcast::error::RecvError;
    let mut look = tokio::time::interval(LOOK_EVERY);
    loop {
        tokio::select! {
            notice = notices.recv() => match notice {
                Ok((id, last_seq)) => feed.appended(id, last_seq),
                Err(RecvError::Lagged(_)) => feed.touch_all(),
                Err(RecvError::Closed) => return,
            },
            _ = look.tick() => {
                // Nobody follows anything: nothing to do but keep the feed small.
                if Arc::strong_count(&feed) == 1 {
                    return;
                }
                feed.touch_all();
            }
        }
    }
}

/// Stop the lease task and the inbox taker of `rt` (at shutdown, before the journal closes and
/// hands everything back): it holds the runtime only between its awaits.
pub(super) async fn stop(rt: &Runtime) {
    let tasks = std::mem::take(&mut *rt.inner.lease_tasks.lock().expect("lease task lock"));
    for task in tasks {
        task.abort();
        let _ = task.await;
    }
}

async fn run(inner: Weak<Inner>, claiming: Arc<Claiming>) {
    let mut workflows: HashMap<String, Arc<Workflow>> = HashMap::new();
    let mut renewed = Instant::now();
    let Some(room) = inner.upgrade().map(|i| i.services.room.clone()) else { return };
    loop {
        let Some(strong) = inner.upgrade() else { return };
        let rt = Runtime { inner: strong };
        if !rt.inner.supervisor.is_running() {
            return;
        }
        let Some(leases) = rt.services().journal.leases() else { return };
        let lease = leases.lease_time();
        if renewed.elapsed() >= lease / 3 {
            renewed = Instant::now();
            match leases.renew().await {
                Ok(lost) if !lost.is_empty() => rt.inner.supervisor.lost(lost),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "cannot renew this process's leases; retrying"),
            }
        }
        // Whether this round left claimable work for want of room.
        let mut full = false;
        if claiming.on.load(Ordering::SeqCst) && !claiming.draining.load(Ordering::SeqCst) {
            match claim_round(&rt, &mut workflows).await {
                Ok(limited) => full = limited,
                Err(e) => tracing::warn!(error = %e, "cannot claim executions; retrying"),
            }
        }
        let wait = POLL.min(lease / 3);
        drop(rt);
        let wake = claiming.wake.notified();
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = wake => {}
            _ = room.notified(), if full => tokio::time::sleep(ROOM_GATHER).await,
        }
    }
}

/// Claim what this process can carry and start each. Answers whether
/// its room limited it (it is full, or took all it had room for), so that
/// work may be left to claim once an execution leaves.
async fn claim_round(rt: &Runtime, workflows: &mut HashMap<String, Arc<Workflow>>) -> Result<bool, super::Error> {
    let Some(leases) = rt.services().journal.leases() else { return Ok(false) };
    let capacity = rt.inner.claiming.capacity.load(Ordering::SeqCst);
    let live = rt.inner.supervisor.live().await?.len();
    if live >= capacity {
        return Ok(true);
    }
    // The workflows whose host functions are all registered here (checked
    // every round: a host registers functions as it goes).
    for hash in leases.workflow_hashes()? {
        if !workflows.contains_key(&hash)
            && let Some(wf) = rt.services().journal.workflow(&hash)?
        {
            workflows.insert(hash, Arc::new(wf));
        }
    }
    let functions = rt.functions();
    let hashes: Vec<String> =
        workflows.iter().filter(|(_, wf)| functions.missing(wf).is_empty()).map(|(h, _)| h.clone()).collect();
    if hashes.is_empty() {
        return Ok(false);
    }
    let now = rt.services().clock.now_ms();
    let room = (capacity - live).min(CLAIM_BATCH);
    let claimed = leases.claim(&hashes, now, room).await?;
    let limited = claimed.len() == room;
    if claimed.len() == CLAIM_BATCH {
        rt.inner.claiming.wake.notify_one();
    }
    for meta in claimed {
        let Some(wf) = workflows.get(&meta.workflow_hash).cloned() else { continue };
        tracing::debug!(execution_id = %meta.id, status = %meta.status, "claimed");
        if let Err(e) = rt.inner.supervisor.rehydrate(meta.id, wf, meta.workflow_hash.clone()) {
            tracing::warn!(execution_id = %meta.id, error = %e, "claimed but not started; handing it back");
            let _ = leases.release(&[meta.id]).await;
            continue;
        }
        if meta.status == Status::Waiting {
            // Claimed for a due deadline: fire it now (the timer wheel would at its next look).
            rt.inner.supervisor.tick(meta.id, now);
        }
    }
    // What was sent to them meanwhile is theirs to take now.
    rt.inner.taking.wake.notify_one();
    Ok(limited)
}

impl Runtime {
    /// Stop claiming executions from a shared store, for good (a worker
    /// told to stop): what this process carries goes on; [`shutdown`]
    /// hands back what is left. A no-op for a store one process holds.
    ///
    /// [`shutdown`]: Runtime::shutdown
    pub async fn drain(&self) -> Result<(), super::Error> {
        self.inner.claiming.draining.store(true, Ordering::SeqCst);
        if let Some(leases) = self.services().journal.leases() {
            leases.set_draining(true).await?;
        }
        Ok(())
    }

    /// Claim from a shared store from now on (unless draining).
    pub(super) fn claim_from_now_on(&self) {
        self.inner.claiming.on.store(true, Ordering::SeqCst);
        self.inner.claiming.wake.notify_one();
    }

    /// Whether this runtime shares its store with other processes.
    pub fn shares_store(&self) -> bool {
        self.services().journal.leases().is_some()
    }

    /// This process's id in a shared store (`None` for one it holds alone).
    pub fn worker_id(&self) -> Option<String> {
        self.services().journal.leases().map(|l| l.worker_id().to_string())
    }

    /// In a shared store, up to `limit` executions that need a process and
    /// that no live process runs, each with why: the host functions its
    /// workflow calls that this process lacks (only a program that
    /// registers them claims it; for the CLI, what no `jamjet worker` has),
    /// or none (a worker like this process would). Empty for a store one
    /// process holds.
    pub fn unclaimed(&self, limit: usize) -> Result<Vec<Unclaimed>, super::Error> {
        let Some(leases) = self.services().journal.leases() else { return Ok(Vec::new()) };
        let now = self.services().clock.now_ms();
        let mut out = Vec::new();
        for meta in leases.unclaimed(now, limit)? {
            out.push(self.unclaimed_row(meta)?);
        }
        Ok(out)
    }

    /// Why the execution of `meta` waits for a process, in a shared store
    /// where no live process owns it (see [`owner`](Self::owner)): it runs
    /// (or its timer is due), or it waits and only a program with host
    /// functions this process lacks could carry it on. `None` when it
    /// ended, or nothing is missing for a parked one (it waits for its
    /// event, decision or timer).
    pub fn needs_a_process(&self, meta: crate::journal::ExecutionMeta) -> Result<Option<Unclaimed>, super::Error> {
        if meta.status.is_terminal() || !self.shares_store() {
            return Ok(None);
        }
        let row = self.unclaimed_row(meta)?;
        Ok((row.status == Status::Running || !row.functions.is_empty()).then_some(row))
    }

    /// The live process that owns `id` in a shared store (its worker id), if any.
    pub fn owner(&self, id: crate::id::ExecutionId) -> Result<Option<String>, super::Error> {
        match self.services().journal.leases() {
            Some(leases) => Ok(leases.owner(id)?),
            None => Ok(None),
        }
    }

    /// `meta`'s row of [`unclaimed`](Self::unclaimed), with why.
    fn unclaimed_row(&self, meta: crate::journal::ExecutionMeta) -> Result<Unclaimed, super::Error> {
        let wf = self.load_workflow(meta.id, &meta.workflow_hash)?;
        let functions = self.functions().missing(&wf);
        let reason = match functions.is_empty() {
            true => "no live worker has claimed it yet: start one (jamjet worker --store URL)".to_string(),
            false => format!(
                "its workflow calls host functions ({}): only a process that registers them claims it \
                 (the Python or Rust program that runs this workflow)",
                functions.join(", ")
            ),
        };
        Ok(Unclaimed { id: meta.id, workflow_id: meta.workflow_id, status: meta.status, functions, reason })
    }

    /// What this process's leases did, in a shared store (`None` for one it holds alone).
    pub fn lease_counters(&self) -> Option<crate::journal::LeaseCounters> {
        self.services().journal.leases().map(|l| l.counters())
    }

    /// The live processes of a shared store (empty for one it holds alone).
    pub fn workers(&self) -> Result<Vec<crate::journal::WorkerInfo>, super::Error> {
        match self.services().journal.leases() {
            Some(l) => Ok(l.workers()?),
            None => Ok(Vec::new()),
        }
    }
}
