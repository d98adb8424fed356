//! The embedded default journal, on sled 0.34.
//!
//! Everything lives in sled's default tree so that one batch (the events,
//! the index row, the workflow, the idempotency key of one append) is
//! atomic. Durability comes from the write-ahead log in front of it
//! ([`Wal`]): one `fdatasync` of the log covers every append since the
//! last one. sled's own background flush runs every 500 ms so that the
//! flush at a checkpoint (which lets the log be truncated) stays small.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use futures::future::BoxFuture;

use super::wal::{Batch, Wal};
use super::{
    Append, Error, ExecutionMeta, Journal, Record, Registration, Stats, Timer, TimerChange, decode_frame, decode_meta,
    decode_registration, decode_workflow, encode_frame, encode_meta, encode_registration, encode_workflow,
};
use crate::id::ExecutionId;
use crate::ir::Workflow;

/// sled's own background flush. Durability does not depend on it (the log
/// does that); it keeps the data a checkpoint must flush small, so a
/// checkpoint does not stall the writers.
const SLED_FLUSH_MS: u64 = 500;

const EVENT: u8 = b'e';
const META: u8 = b'x';
const WORKFLOW: u8 = b'w';
const KEY: u8 = b'k';
const TIMER: u8 = b't';
const REGISTERED: u8 = b'r';

fn registration_key(workflow_id: &str, version: &str) -> Vec<u8> {
    let mut k = prefixed(REGISTERED, workflow_id.as_bytes());
    k.push(0);
    k.extend_from_slice(version.as_bytes());
    k
}

fn timer_key(at_ms: u64, id: ExecutionId) -> [u8; 25] {
    let mut k = [0u8; 25];
    k[0] = TIMER;
    k[1..9].copy_from_slice(&at_ms.to_be_bytes());
    k[9..].copy_from_slice(&id.to_bytes());
    k
}

fn decode_timer(key: &[u8]) -> Result<Timer, Error> {
    let bad = || Error::Corrupt(format!("timer index key of {} bytes", key.len()));
    let at: [u8; 8] = key.get(1..9).ok_or_else(bad)?.try_into().map_err(|_| bad())?;
    let id: [u8; 16] = key.get(9..25).ok_or_else(bad)?.try_into().map_err(|_| bad())?;
    Ok(Timer { at_ms: u64::from_be_bytes(at), execution: ExecutionId::from_bytes(id) })
}

fn event_key(id: ExecutionId, seq: u64) -> [u8; 25] {
    let mut k = [0u8; 25];
    k[0] = EVENT;
    k[1..17].copy_from_slice(&id.to_bytes());
    k[17..].copy_from_slice(&seq.to_be_bytes());
    k
}

fn meta_key(id: ExecutionId) -> [u8; 17] {
    let mut k = [0u8; 17];
    k[0] = META;
    k[1..].copy_from_slice(&id.to_bytes());
    k
}

fn prefixed(prefix: u8, rest: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(rest.len() + 1);
    k.push(prefix);
    k.extend_from_slice(rest);
    k
}

fn storage(e: sled::Error) -> Error {
    match e {
        sled::Error::Corruption { .. } => Error::Corrupt(e.to_string()),
        other => Error::Storage(other.to_string()),
    }
}

/// The sled-backed journal.
pub struct SledJournal {
    // Field order matters: the flusher (which holds a clone of `db`) stops
    // and checkpoints before the database is dropped.
    wal: Wal,
    db: sled::Db,
    appends: AtomicU64,
    events: AtomicU64,
}

impl SledJournal {
    /// Open (or create) the journal in `dir`.
    pub fn open(dir: &Path) -> Result<Self, Error> {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::Storage(format!("cannot create data dir {}: {e}", dir.display())))?;
        let path = dir.join("journal");
        remove_unfinished_snapshots(&path)?;
        let db = sled::Config::new()
            .path(&path)
            .cache_capacity(64 * 1024 * 1024)
            .flush_every_ms(Some(SLED_FLUSH_MS))
            .open()
            .map_err(|e| match e {
                sled::Error::Io(io)
                    if io.kind() == std::io::ErrorKind::WouldBlock || io.to_string().contains("lock") =>
                {
                    Error::Locked { path: dir.display().to_string() }
                }
                other => storage(other),
            })?;
        let wal = Wal::open(&dir.join("journal.log"), db.clone())?;
        Ok(SledJournal { wal, db, appends: AtomicU64::new(0), events: AtomicU64::new(0) })
    }
}

/// A crash-test hook: with `JAMJET_PAUSE_AFTER=<Event>[:<n>]` (say
/// `BranchFinished:2`), the append that makes the n-th such event durable
/// (the first, without `:n`) prints `jamjet: paused after <Event> #<n>` to
/// stderr and never returns, so a test can `kill -9` the process at exactly
/// that point. Unset (always, outside tests), it costs one relaxed load.
async fn pause_point(events: &[crate::journal::Event]) {
    use std::sync::OnceLock;
    static TARGET: OnceLock<Option<(String, u64)>> = OnceLock::new();
    static SEEN: AtomicU64 = AtomicU64::new(0);
    let target = TARGET.get_or_init(|| {
        let spec = std::env::var("JAMJET_PAUSE_AFTER").ok()?;
        let (name, n) = spec.split_once(':').unwrap_or((&spec, "1"));
        Some((name.to_string(), n.parse().unwrap_or(1)))
    });
    let Some((name, n)) = target else { return };
    for _ in events.iter().filter(|e| e.name() == name) {
        if SEEN.fetch_add(1, Ordering::SeqCst) + 1 == *n {
            eprintln!("jamjet: paused after {name} #{n}");
            std::future::pending::<()>().await;
        }
    }
}

/// sled 0.34.7 writes a snapshot to `snap.<lsn>.generating`, syncs it,
/// then renames it to `snap.<lsn>`. A kill before the rename leaves the
/// `.generating` file behind, and sled's next open picks it (it filters
/// only `.in___motion` files), finds it empty or torn, and refuses to open
/// with "Read corrupted data". Our kill -9 test found this. An unrenamed
/// snapshot was never committed: removing it makes sled recover from the
/// previous snapshot and replay the log, as it would had the kill come a
/// moment earlier.
fn remove_unfinished_snapshots(path: &Path) -> Result<(), Error> {
    let entries = match std::fs::read_dir(path) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::Storage(format!("cannot read {}: {e}", path.display()))),
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("snap.") && name.ends_with(".generating") {
            tracing::warn!(file = %entry.path().display(), "removing a snapshot an interrupted process left unfinished");
            std::fs::remove_file(entry.path())
                .map_err(|e| Error::Storage(format!("cannot remove {}: {e}", entry.path().display())))?;
        }
    }
    Ok(())
}

impl Journal for SledJournal {
    fn append<'a>(&'a self, append: Append<'a>) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let mut batch: Batch = Vec::with_capacity(4);
            if !append.events.is_empty() {
                let key = event_key(append.execution, append.first_seq).to_vec();
                batch.push((key, encode_frame(append.at_ms, append.events)));
            }
            if let Some(meta) = append.meta {
                batch.push((meta_key(meta.id).to_vec(), encode_meta(meta)));
                if let Some(key) = &meta.key {
                    batch.push((prefixed(KEY, key.as_bytes()), meta.id.to_bytes().to_vec()));
                }
            }
            if let Some((hash, wf)) = append.workflow {
                let k = prefixed(WORKFLOW, hash.as_bytes());
                if !self.db.contains_key(&k).map_err(storage)? {
                    batch.push((k, encode_workflow(wf)));
                }
            }
            for change in append.timers {
                match *change {
                    TimerChange::Set(at) => batch.push((timer_key(at, append.execution).to_vec(), vec![1])),
                    TimerChange::Clear(at) => batch.push((timer_key(at, append.execution).to_vec(), Vec::new())),
                    TimerChange::SetFor(id, at) => batch.push((timer_key(at, id).to_vec(), vec![1])),
                }
            }
            let events = append.events.len() as u64;
            self.wal.commit(batch).await?;
            self.appends.fetch_add(1, Ordering::Relaxed);
            self.events.fetch_add(events, Ordering::Relaxed);
            pause_point(append.events).await;
            Ok(())
        })
    }

    fn read(&self, execution: ExecutionId) -> Result<Vec<Record>, Error> {
        let mut records = Vec::new();
        for kv in self.db.range(event_key(execution, 0)..=event_key(execution, u64::MAX)) {
            let (k, v) = kv.map_err(storage)?;
            let first = u64::from_be_bytes(k[17..25].try_into().map_err(|_| Error::Corrupt("short event key".into()))?);
            if first != records.len() as u64 + 1 {
                return Err(Error::Corrupt(format!(
                    "execution {execution}: record {} follows record {}",
                    first,
                    records.len()
                )));
            }
            records.extend(decode_frame(first, &v)?);
        }
        Ok(records)
    }

    fn read_after(&self, execution: ExecutionId, after: u64) -> Result<Vec<Record>, Error> {
        // Frames are keyed by their first sequence number: start at the
        // frame that holds `after + 1`, the last one starting at or before it.
        let want = after.saturating_add(1);
        let from = match self.db.range(event_key(execution, 0)..=event_key(execution, want)).next_back() {
            Some(kv) => kv.map_err(storage)?.0,
            None => return Ok(Vec::new()),
        };
        let mut records = Vec::new();
        for kv in self.db.range(from.to_vec()..=event_key(execution, u64::MAX).to_vec()) {
            let (k, v) = kv.map_err(storage)?;
            let first = u64::from_be_bytes(k[17..25].try_into().map_err(|_| Error::Corrupt("short event key".into()))?);
            records.extend(decode_frame(first, &v)?.into_iter().filter(|r| r.seq > after));
        }
        Ok(records)
    }

    fn meta(&self, execution: ExecutionId) -> Result<Option<ExecutionMeta>, Error> {
        self.db.get(meta_key(execution)).map_err(storage)?.map(|v| decode_meta(&v)).transpose()
    }

    fn list(&self) -> Result<Vec<ExecutionMeta>, Error> {
        self.db.scan_prefix([META]).map(|kv| decode_meta(&kv.map_err(storage)?.1)).collect()
    }

    fn workflow(&self, hash: &str) -> Result<Option<Workflow>, Error> {
        self.db.get(prefixed(WORKFLOW, hash.as_bytes())).map_err(storage)?.map(|v| decode_workflow(&v)).transpose()
    }

    fn due_timers(&self, up_to_ms: u64, limit: usize) -> Result<Vec<Timer>, Error> {
        let end = timer_key(up_to_ms, ExecutionId::from_bytes([0xff; 16]));
        self.db
            .range([TIMER].as_slice()..=end.as_slice())
            .take(limit)
            .map(|kv| decode_timer(&kv.map_err(storage)?.0))
            .collect()
    }

    fn next_timer_after(&self, after_ms: u64) -> Result<Option<Timer>, Error> {
        let from = timer_key(after_ms.saturating_add(1), ExecutionId::from_bytes([0; 16]));
        let end = [TIMER + 1];
        self.db
            .range(from.as_slice()..end.as_slice())
            .next()
            .map(|kv| decode_timer(&kv.map_err(storage)?.0))
            .transpose()
    }

    fn register<'a>(&'a self, registration: &'a Registration, wf: &'a Workflow) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let mut batch: Batch = Vec::with_capacity(2);
            let k = prefixed(WORKFLOW, registration.hash.as_bytes());
            if !self.db.contains_key(&k).map_err(storage)? {
                batch.push((k, encode_workflow(wf)));
            }
            batch.push((
                registration_key(&registration.workflow_id, &registration.version),
                encode_registration(registration),
            ));
            self.wal.commit(batch).await
        })
    }

    fn registrations(&self) -> Result<Vec<Registration>, Error> {
        self.db.scan_prefix([REGISTERED]).map(|kv| decode_registration(&kv.map_err(storage)?.1)).collect()
    }

    fn find_key(&self, key: &str) -> Result<Option<ExecutionId>, Error> {
        match self.db.get(prefixed(KEY, key.as_bytes())).map_err(storage)? {
            None => Ok(None),
            Some(v) => {
                let bytes: [u8; 16] = v
                    .as_ref()
                    .try_into()
                    .map_err(|_| Error::Corrupt(format!("idempotency key `{key}` maps to a bad id")))?;
                Ok(Some(ExecutionId::from_bytes(bytes)))
            }
        }
    }

    fn stats(&self) -> Stats {
        Stats {
            appends: self.appends.load(Ordering::Relaxed),
            events: self.events.load(Ordering::Relaxed),
            syncs: self.wal.syncs() + self.wal.checkpoints(),
            sync_us: self.wal.sync_us(),
        }
    }
}
