//! Group commit: one flusher thread turns every append that arrived since
//! the last sync into a single sync.
//!
//! A writer puts its records into the store (memory-speed), then takes a
//! ticket and awaits the first sync that started after it took the ticket.
//! While one sync runs, every new writer queues behind the next one, so a
//! slow disk sync serves hundreds of executions, not one. A failed sync
//! poisons the journal: no later append is acknowledged, because we can no
//! longer say what reached the disk.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use tokio::sync::watch;

use super::Error;

/// How long the flusher lets writers gather once batching is under way.
const COMMIT_DELAY: std::time::Duration = std::time::Duration::from_micros(1000);

#[derive(Debug, Clone, Default)]
struct Synced {
    /// Every ticket up to this one is durable.
    through: u64,
    /// Set once a sync failed; every waiter then fails.
    poisoned: Option<String>,
}

struct Shared {
    requested: Mutex<Requests>,
    wake: Condvar,
    synced: watch::Sender<Synced>,
    syncs: AtomicU64,
    sync_us: AtomicU64,
}

struct Requests {
    last_ticket: u64,
    shutdown: bool,
}

/// The group-commit coordinator. Dropping it stops the flusher after a
/// final sync of whatever was requested.
pub(crate) struct GroupCommit {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl GroupCommit {
    /// Start the flusher thread; `sync` makes everything written so far durable.
    pub(crate) fn start(sync: impl Fn() -> Result<(), String> + Send + 'static) -> Self {
        let shared = Arc::new(Shared {
            requested: Mutex::new(Requests { last_ticket: 0, shutdown: false }),
            wake: Condvar::new(),
            synced: watch::Sender::new(Synced::default()),
            syncs: AtomicU64::new(0),
            sync_us: AtomicU64::new(0),
        });
        let flusher = shared.clone();
        let thread = std::thread::Builder::new()
            .name("jamjet-journal-sync".into())
            .spawn(move || flush_loop(&flusher, sync))
            .expect("spawning the journal sync thread");
        GroupCommit { shared, thread: Some(thread) }
    }

    /// Wait until everything written before this call is durable.
    pub(crate) async fn durable(&self) -> Result<(), Error> {
        let mut rx = self.shared.synced.subscribe();
        let ticket = {
            let mut req = self.shared.requested.lock().expect("group commit lock");
            req.last_ticket += 1;
            req.last_ticket
        };
        self.shared.wake.notify_one();
        loop {
            {
                let synced = rx.borrow_and_update();
                if let Some(msg) = &synced.poisoned {
                    return Err(Error::Storage(format!("a journal sync failed, nothing more is acknowledged: {msg}")));
                }
                if synced.through >= ticket {
                    return Ok(());
                }
            }
            if rx.changed().await.is_err() {
                return Err(Error::Storage("the journal was closed".into()));
            }
        }
    }

    pub(crate) fn syncs(&self) -> u64 {
        self.shared.syncs.load(Ordering::Relaxed)
    }

    /// Total time spent inside syncs, in microseconds.
    pub(crate) fn sync_us(&self) -> u64 {
        self.shared.sync_us.load(Ordering::Relaxed)
    }
}

fn flush_loop(shared: &Shared, sync: impl Fn() -> Result<(), String>) {
    let mut through = 0;
    let mut last_batch = 0;
    loop {
        {
            let mut req = shared.requested.lock().expect("group commit lock");
            while req.last_ticket == through && !req.shutdown {
                req = shared.wake.wait(req).expect("group commit lock");
            }
            if req.last_ticket == through {
                return; // shut down with nothing pending
            }
        }
        // When the last sync served several writers, others are probably
        // on their way: give them a moment to join this batch. A lone
        // writer (last batch of one) is synced at once.
        if last_batch > 1 {
            std::thread::sleep(COMMIT_DELAY);
        }
        let target = shared.requested.lock().expect("group commit lock").last_ticket;
        last_batch = target - through;
        let began = std::time::Instant::now();
        match sync() {
            Ok(()) => {
                through = target;
                shared.sync_us.fetch_add(began.elapsed().as_micros() as u64, Ordering::Relaxed);
                shared.syncs.fetch_add(1, Ordering::Relaxed);
                shared.synced.send_modify(|s| s.through = through);
            }
            Err(msg) => {
                tracing::error!(error = %msg, "journal sync failed; the journal is poisoned");
                shared.synced.send_modify(|s| s.poisoned = Some(msg));
                return;
            }
        }
    }
}

impl Drop for GroupCommit {
    fn drop(&mut self) {
        self.shared.requested.lock().expect("group commit lock").shutdown = true;
        self.shared.wake.notify_one();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn many_writers_share_few_syncs() {
        let calls = Arc::new(AtomicUsize::new(0));
        let c = calls.clone();
        let gc = Arc::new(GroupCommit::start(move || {
            c.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(5));
            Ok(())
        }));
        let tasks: Vec<_> = (0..200)
            .map(|_| {
                let gc = gc.clone();
                tokio::spawn(async move { gc.durable().await })
            })
            .collect();
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        let n = calls.load(Ordering::SeqCst);
        assert!((1..200).contains(&n), "200 writers took {n} syncs");
        assert_eq!(gc.syncs() as usize, n);
    }

    #[tokio::test]
    async fn a_failed_sync_fails_its_writers_and_all_later_ones() {
        let gc = GroupCommit::start(|| Err("disk on fire".into()));
        let err = gc.durable().await.unwrap_err().to_string();
        assert!(err.contains("disk on fire"), "{err}");
        assert!(gc.durable().await.is_err());
    }
}
