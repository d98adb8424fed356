//! The timer wheel: fires the deadlines in the journal's timer index.
//!
//! Every deadline an execution has (a retry delay, a wait's timeout, a
//! timer, the workflow's `timeout_ms`) is an entry `t{deadline}{exec}` in
//! the journal, written in the same batch as the event that set it, so it
//! survives a crash and a hibernated execution needs no task to keep it.
//! One task per runtime sleeps until the earliest entry, reads what is due
//! (one range scan), and delivers a `Tick` to each of those executions
//! through the supervisor, which rehydrates them when they are not live.
//! A deadline that passed while the process was down is due at once. A
//! clock that jumps (`ManualClock`, in tests) wakes the wheel when it moves.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tracing::warn;

use super::Shared;
use super::handles::SupervisorHandle;
use crate::id::ExecutionId;
use crate::journal::Timer;

/// How many due timers one scan fires.
const BATCH: usize = 4096;
/// The longest the wheel sleeps without looking again.
const IDLE: Duration = Duration::from_secs(1);
/// A fired timer still in the index after this long is fired again (its
/// Tick was lost with a crashed actor).
const REFIRE: Duration = Duration::from_secs(5);

/// The wheel's handle, shared through [`Shared`]: appends that set a
/// deadline earlier than the one it sleeps for wake it.
#[derive(Default)]
pub struct TimerWheel {
    notify: Notify,
    /// The deadline the wheel sleeps until (unix ms).
    sleeping_until: AtomicU64,
    /// Timers set since the last scan: one equal to a timer fired before
    /// (same execution, same millisecond) is a new one, to fire again.
    set: Mutex<Vec<Timer>>,
    /// The wheel's task was started.
    pub(crate) started: std::sync::atomic::AtomicBool,
}

impl TimerWheel {
    /// A deadline was set: wake the wheel if it sleeps past it.
    pub(crate) fn schedule(&self, at_ms: u64, execution: ExecutionId) {
        self.set.lock().expect("timer wheel lock").push(Timer { at_ms, execution });
        if at_ms < self.sleeping_until.load(Ordering::Acquire) {
            self.notify.notify_one();
        }
    }

    /// Run until the runtime's services are gone.
    pub(crate) async fn run(self: Arc<Self>, services: Weak<Shared>, supervisor: SupervisorHandle) {
        let mut fired: HashMap<Timer, Instant> = HashMap::new();
        loop {
            let Some(sv) = services.upgrade() else { return };
            // A clock that jumps (tests) wakes the wheel when it moves; listen before reading it.
            let mut moved = sv.clock.moved();
            let now = sv.clock.now_ms();
            // While scanning, any new deadline leaves a wake-up permit, so a
            // deadline set after the scan read the index is not slept past.
            self.sleeping_until.store(u64::MAX, Ordering::Release);
            let due = match sv.journal.due_timers(now, BATCH) {
                Ok(due) => due,
                Err(e) => {
                    warn!(error = %e, "cannot read the timer index");
                    Vec::new()
                }
            };
            for t in std::mem::take(&mut *self.set.lock().expect("timer wheel lock")) {
                fired.remove(&t);
            }
            let due_set: HashSet<&Timer> = due.iter().collect();
            fired.retain(|t, _| due_set.contains(t));
            let leases = sv.journal.leases();
            let mut mine = 0;
            for t in &due {
                // In a shared store, the deadlines of executions other
                // processes own are theirs to fire; a free execution with a
                // due deadline is claimed by the claim loop, then fired here.
                if leases.is_some_and(|l| !l.owns(t.execution)) {
                    continue;
                }
                mine += 1;
                let again = fired.get(t).is_some_and(|at| at.elapsed() >= REFIRE);
                if again || !fired.contains_key(t) {
                    fired.insert(*t, Instant::now());
                    if !supervisor.tick(t.execution, t.at_ms) {
                        return;
                    }
                }
            }
            // A full batch of others' deadlines is no reason to look again at once.
            let next = if due.len() == BATCH {
                (mine > 0).then_some(now)
            } else {
                match sv.journal.next_timer_after(now) {
                    Ok(t) => t.map(|t| t.at_ms),
                    Err(e) => {
                        warn!(error = %e, "cannot read the timer index");
                        None
                    }
                }
            };
            let wait = next.map_or(IDLE, |at| Duration::from_millis(at.saturating_sub(now)).min(IDLE));
            self.sleeping_until.store(now.saturating_add(wait.as_millis() as u64), Ordering::Release);
            drop(sv);
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = self.notify.notified() => {}
                _ = async {
                    match moved.as_mut() {
                        Some(rx) => { let _ = rx.changed().await; }
                        None => std::future::pending().await,
                    }
                } => {}
            }
        }
    }
}
