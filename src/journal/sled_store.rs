//! The embedded default journal, on sled 0.34.
//!
//! Everything lives in sled's default tree so that one batch (the events,
//! the index row, the workflow, the idempotency key of one append) is
//! atomic. Durability comes from the write-ahead log in front of it
//! ([`Wal`]): one `fdatasync` of the log covers every append since the
//! last one, and an append returns when that sync does; sled applies the
//! batch behind it. So every read here goes through [`Reads`]
//! (`SledJournal::reads`), the log's overlay of acknowledged, unapplied
//! batches merged over sled by key; nothing reads `db` directly (only
//! the corruption probe of `first_readable_row_after`, which asks about
//! sled's own pages). A key prefix added later is covered by using
//! `reads()` for it. sled's own background flush runs every 500 ms so
//! that the flush at a checkpoint (which lets the log be truncated)
//! stays small.

use std::ops::Bound;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use futures::future::BoxFuture;

use super::mailbox::{self, EXPIRY, KEPT, WAIT};
use super::row_index;
use super::session::{self, SESSION};
use super::wal::overlay::Reads;
use super::wal::{Batch, Wal, WalTuning};
use super::{
    Append, Damage, Error, ExecutionMeta, Freed, IndexPage, Journal, KeptEvent, KeptRef, Listing, Part, Record,
    Registration, RowFilter, SessionRecord, Stats, Timer, TimerChange, Tombstone, decode_meta_of, decode_registration,
    decode_tombstone, decode_workflow, encode_frame, encode_meta, encode_registration, encode_tombstone,
    encode_workflow, row_kept,
};
use crate::id::ExecutionId;
use crate::ir::Workflow;

/// sled's own background flush. Durability does not depend on it (the log
/// does that); it keeps the data a checkpoint must flush small, so a
/// checkpoint does not stall the writers.
const SLED_FLUSH_MS: u64 = 500;

/// Entries per batch when the index of rows by status is built at open.
const INDEX_BATCH: usize = 10_000;

pub(super) const EVENT: u8 = b'e';
pub(super) const META: u8 = b'x';
pub(super) const WORKFLOW: u8 = b'w';
pub(super) const KEY: u8 = b'k';
pub(super) const TIMER: u8 = b't';
pub(super) const REGISTERED: u8 = b'r';
/// A pruned execution's [`Tombstone`](super::Tombstone), by id.
pub(super) const PRUNED: u8 = b'p';

fn registration_key(workflow_id: &str, version: &str) -> Vec<u8> {
    let mut k = prefixed(REGISTERED, workflow_id.as_bytes());
    k.push(0);
    k.extend_from_slice(version.as_bytes());
    k
}

pub(super) fn timer_key(at_ms: u64, id: ExecutionId) -> [u8; 25] {
    let mut k = [0u8; 25];
    k[0] = TIMER;
    k[1..9].copy_from_slice(&at_ms.to_be_bytes());
    k[9..].copy_from_slice(&id.to_bytes());
    k
}

pub(super) fn decode_timer(key: &[u8]) -> Result<Timer, Error> {
    let bad = || Error::Corrupt(format!("timer index key of {} bytes", key.len()));
    let at: [u8; 8] = key.get(1..9).ok_or_else(bad)?.try_into().map_err(|_| bad())?;
    let id: [u8; 16] = key.get(9..25).ok_or_else(bad)?.try_into().map_err(|_| bad())?;
    Ok(Timer { at_ms: u64::from_be_bytes(at), execution: ExecutionId::from_bytes(id) })
}

pub(super) fn event_key(id: ExecutionId, seq: u64) -> [u8; 25] {
    let mut k = [0u8; 25];
    k[0] = EVENT;
    k[1..17].copy_from_slice(&id.to_bytes());
    k[17..].copy_from_slice(&seq.to_be_bytes());
    k
}

pub(super) fn meta_key(id: ExecutionId) -> [u8; 17] {
    let mut k = [0u8; 17];
    k[0] = META;
    k[1..].copy_from_slice(&id.to_bytes());
    k
}

pub(super) fn prefixed(prefix: u8, rest: &[u8]) -> Vec<u8> {
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

/// A store error while reading `part` of `execution`: corruption makes that
/// execution damaged; anything else (IO) is the store's.
fn damaged_by(execution: ExecutionId, part: Part, e: sled::Error) -> Error {
    match e {
        sled::Error::Corruption { .. } => {
            Error::Damaged(Damage::new(execution, part, format!("the store's page holding it is corrupt ({e})")))
        }
        other => Error::Storage(other.to_string()),
    }
}

/// The execution id in an event or index key.
pub(super) fn id_in(key: &[u8]) -> Option<ExecutionId> {
    Some(ExecutionId::from_bytes(key.get(1..17)?.try_into().ok()?))
}

/// The sequence number in an event key.
pub(super) fn seq_in(key: &[u8]) -> Option<u64> {
    (key.len() == 25).then(|| u64::from_be_bytes(key[17..25].try_into().expect("8 bytes")))
}

/// Open sled at `path` with the journal's settings.
pub(super) fn open_sled(dir: &Path, path: &Path) -> Result<sled::Db, Error> {
    sled::Config::new().path(path).cache_capacity(64 * 1024 * 1024).flush_every_ms(Some(SLED_FLUSH_MS)).open().map_err(
        |e| match e {
            sled::Error::Io(io) if io.kind() == std::io::ErrorKind::WouldBlock || io.to_string().contains("lock") => {
                Error::Locked { path: dir.display().to_string() }
            }
            e @ sled::Error::Corruption { .. } => damaged_store(path, &e),
            other => storage(other),
        },
    )
}

/// sled's settings file and its newest snapshot, each with whether it
/// fails its own checksum (sled's formats: `conf` is text + crc32 LE,
/// a snapshot is body + length (8 bytes) + crc32 LE of the body).
pub(super) fn checked_files(path: &Path) -> Vec<(std::path::PathBuf, bool)> {
    let crc_holds = |bytes: &[u8], body_end: usize| {
        bytes.len() >= body_end + 4 && crc32fast::hash(&bytes[..body_end]).to_le_bytes() == bytes[bytes.len() - 4..]
    };
    let mut out = Vec::new();
    let conf = path.join("conf");
    if let Ok(bytes) = std::fs::read(&conf) {
        out.push((conf, bytes.len() < 8 || !crc_holds(&bytes, bytes.len() - 4)));
    }
    let mut snapshots: Vec<_> = std::fs::read_dir(path)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("snap.")))
        .collect();
    snapshots.sort();
    if let Some(snap) = snapshots.pop()
        && let Ok(bytes) = std::fs::read(&snap)
    {
        out.push((snap, bytes.len() <= 12 || !crc_holds(&bytes, bytes.len() - 12)));
    }
    out
}

/// sled refused to open its files: say which one fails its checksum.
fn damaged_store(path: &Path, e: &sled::Error) -> Error {
    let name = |p: &Path| format!("journal/{}", p.file_name().and_then(|n| n.to_str()).unwrap_or_default());
    let failing = checked_files(path).into_iter().find(|(_, bad)| *bad).map(|(p, _)| p);
    let file = match failing {
        Some(p) if p.ends_with("conf") => format!("{}, sled's settings, fails its checksum", name(&p)),
        Some(p) => format!("{}, sled's page table snapshot, fails its checksum", name(&p)),
        None => "journal/db, sled's log of pages, holds a message that fails its checksum".to_string(),
    };
    Error::StoreDamaged {
        path: path.parent().unwrap_or(path).display().to_string(),
        file,
        reason: format!("sled: {e}"),
    }
}

/// The sled-backed journal.
pub struct SledJournal {
    // Field order matters: the flusher (which holds a clone of `db`) stops
    // and checkpoints before the database is dropped.
    wal: Wal,
    pub(super) db: sled::Db,
    /// What the log's recovery dropped at open, one sentence each.
    recovered: Vec<String>,
    appends: AtomicU64,
    events: AtomicU64,
    /// The index of rows by status is whole (see `row_index`): filtered
    /// pages read it; until then (it could not be built) they scan.
    pub(super) rows_indexed: AtomicBool,
}

impl SledJournal {
    /// Open (or create) the journal in `dir`.
    pub fn open(dir: &Path) -> Result<Self, Error> {
        Self::open_with(dir, WalTuning::default())
    }

    /// Open (or create) the journal in `dir` with the log's sizes given
    /// (tests use small ones).
    pub fn open_with(dir: &Path, tuning: WalTuning) -> Result<Self, Error> {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::Storage(format!("cannot create data dir {}: {e}", dir.display())))?;
        let path = dir.join("journal");
        remove_unfinished_snapshots(&path)?;
        let db = open_sled(dir, &path)?;
        let (wal, recovered) = Wal::open(dir, &dir.join("journal.log"), db.clone(), tuning)?;
        let journal = SledJournal {
            wal,
            db,
            recovered,
            appends: AtomicU64::new(0),
            events: AtomicU64::new(0),
            rows_indexed: AtomicBool::new(false),
        };
        // A store that cannot be indexed still opens (`jamjet repair` opens
        // damaged ones): its filtered pages scan the rows.
        match journal.index_rows() {
            Ok(()) => journal.rows_indexed.store(true, Ordering::Relaxed),
            Err(e) => {
                tracing::warn!(error = %e, "the index of execution rows by status could not be built; filtered lists scan the rows")
            }
        }
        Ok(journal)
    }

    /// Build the index of rows by status from the rows, unless the
    /// marker says it is whole (see `row_index`): what was
    /// there is removed first, the marker written last, in batches
    /// through the log. A process that dies partway leaves no marker, and
    /// the next open starts again.
    fn index_rows(&self) -> Result<(), Error> {
        if self.reads().contains_key(row_index::marker()).map_err(storage)? {
            return Ok(());
        }
        let mut writes = self.row_index_removed()?;
        // Unreadable rows have nothing to index: `jamjet repair` deals with them.
        for row in self.listing()?.rows {
            writes.extend(row_index::writes(None, Some(&row)));
        }
        writes.push((row_index::marker(), vec![1]));
        let rows = writes.len();
        for chunk in writes.chunks(INDEX_BATCH) {
            futures::executor::block_on(self.wal.commit(chunk.to_vec()))?;
        }
        // In sled before the store is handed out: nothing of it is left in the log's backlog.
        self.wal.settle();
        tracing::debug!(entries = rows, "built the index of execution rows by status");
        Ok(())
    }

    /// Forget the index of rows by status, as a store written before it:
    /// the next open builds it again. For tests.
    #[doc(hidden)]
    pub async fn forget_row_index(&self) -> Result<(), Error> {
        self.rows_indexed.store(false, Ordering::Relaxed);
        let mut writes: Batch = vec![(row_index::marker(), Vec::new())];
        writes.extend(self.row_index_removed()?);
        self.wal.commit(writes).await
    }

    /// The removal of every entry of the index of rows by status.
    fn row_index_removed(&self) -> Result<Batch, Error> {
        self.reads()
            .scan_prefix([row_index::BY_STATUS])
            .map(|kv| Ok((kv.map_err(storage)?.0.to_vec(), Vec::new())))
            .collect()
    }

    /// A page of the rows with `status`, read through the index of rows
    /// by status: each entry's row is read and checked against `filter`.
    fn page_by_index(
        &self,
        prefix: Vec<u8>,
        after: Option<ExecutionId>,
        newest_first: bool,
        limit: usize,
        filter: &RowFilter,
    ) -> Result<IndexPage, Error> {
        let first = Bound::Included(row_index::entry(&prefix, ExecutionId::from_bytes([0; 16])));
        let last = Bound::Included(row_index::entry(&prefix, ExecutionId::from_bytes([0xff; 16])));
        let cursor = |id| Bound::Excluded(row_index::entry(&prefix, id));
        let entries = match (newest_first, after) {
            (true, after) => self.reads().range_rev((first, after.map_or(last, cursor))),
            (false, after) => self.reads().range((after.map_or(first, cursor), last)),
        };
        let mut out = IndexPage::default();
        for kv in entries {
            let k = match kv {
                Ok((k, _)) => k,
                // A page of the index cannot be read: the rows themselves can.
                Err(sled::Error::Corruption { .. }) => {
                    return Ok(IndexPage::of(self.listing()?, after, newest_first, limit, filter));
                }
                Err(other) => return Err(storage(other)),
            };
            let Some(id) = row_index::id_of(&k) else { continue };
            match self.meta(id) {
                Ok(Some(meta)) if filter.keeps(&meta) => {
                    if out.rows.len() == limit {
                        out.more = true;
                        break;
                    }
                    out.rows.push(meta);
                }
                Ok(_) => {}
                Err(Error::Damaged(damage)) => out.damaged.push(damage),
                Err(other) => return Err(other),
            }
        }
        Ok(out)
    }

    /// What recovering the log at open dropped (damaged or torn frames),
    /// one sentence each, naming the offset and the bytes.
    pub fn recovered(&self) -> &[String] {
        &self.recovered
    }

    /// The key of the first index row after `after` (the index's start
    /// when `None`) from which a scan reads again, past a page sled cannot
    /// read. The rows in that page lie in one range of ids, and a scan that
    /// starts in it fails: a binary search over the ids finds its end.
    fn first_readable_row_after(&self, after: Option<ExecutionId>) -> Option<Vec<u8>> {
        let fails = |id: u128| {
            let key = meta_key(ExecutionId::from_bytes(id.to_be_bytes()));
            matches!(self.db.range(key.to_vec()..vec![META + 1]).next(), Some(Err(_)))
        };
        let mut lo = after.map_or(0, |id| u128::from_be_bytes(id.to_bytes()).saturating_add(1));
        let mut hi = u128::MAX;
        if fails(hi) {
            return None;
        }
        // fails(lo) holds (the scan failed there), fails(hi) does not.
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if fails(mid) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        Some(meta_key(ExecutionId::from_bytes(lo.to_be_bytes())).to_vec())
    }

    /// Reads of the store: every acknowledged batch, applied to sled or
    /// not yet (the log's overlay merged over sled). Every read goes
    /// through here, never to `db` directly.
    pub(super) fn reads(&self) -> Reads<'_> {
        self.wal.reads(&self.db)
    }

    /// Hold (`true`) or let go the thread that applies acknowledged batches
    /// to sled. Appends are still acknowledged (up to the backlog bound) and
    /// read back; they reach sled once let go, or at close. For tests.
    #[doc(hidden)]
    pub fn pause_apply(&self, paused: bool) {
        self.wal.pause_apply(paused);
    }

    /// How many acknowledged batches sled does not have yet.
    pub fn unapplied(&self) -> usize {
        self.wal.unapplied()
    }

    /// Wait (blocking the calling thread) until sled has every
    /// acknowledged batch, unless the apply is paused or has failed.
    #[doc(hidden)]
    pub fn settle(&self) {
        self.wal.settle();
    }

    /// Make `batch` durable through the log (what repair writes).
    pub(super) async fn commit(&self, batch: Batch) -> Result<(), Error> {
        self.wal.commit(batch).await
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
                // The row before: none for a first batch (a damaged one
                // counts as none too: an old entry lists nothing wrong, see
                // `row_index`).
                let old = if append.first_seq == 1 { None } else { self.meta(meta.id).ok().flatten() };
                batch.extend(row_index::writes(old.as_ref(), Some(meta)));
                batch.push((meta_key(meta.id).to_vec(), encode_meta(meta)));
                if let Some(key) = &meta.key {
                    batch.push((prefixed(KEY, key.as_bytes()), meta.id.to_bytes().to_vec()));
                }
            }
            if let Some((hash, wf)) = append.workflow {
                let k = prefixed(WORKFLOW, hash.as_bytes());
                if !self.reads().contains_key(&k).map_err(storage)? {
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
            batch.extend(mailbox::writes(append.execution, append.waits));
            if let Some(session) = append.session {
                batch.push((session::session_key(&session.id), session::encode_session(session)));
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
        for kv in self.reads().range(event_key(execution, 0)..=event_key(execution, u64::MAX)) {
            let next = records.len() as u64 + 1;
            let (k, v) = kv.map_err(|e| damaged_by(execution, Part::Record { seq: next }, e))?;
            let first = seq_in(&k).ok_or_else(|| Error::Corrupt(format!("event key of {} bytes", k.len())))?;
            if first != next {
                let detail = format!("it is missing (the next stored record is {first})");
                return Err(Error::Damaged(Damage::new(execution, Part::Record { seq: next }, detail)));
            }
            records.extend(super::frame(execution, first, &v)?);
        }
        Ok(records)
    }

    fn first(&self, execution: ExecutionId) -> Result<Option<Record>, Error> {
        let Some(kv) = self.reads().range(event_key(execution, 0)..=event_key(execution, u64::MAX)).next() else {
            return Ok(None);
        };
        let (k, v) = kv.map_err(|e| damaged_by(execution, Part::Record { seq: 1 }, e))?;
        let first = seq_in(&k).ok_or_else(|| Error::Corrupt(format!("event key of {} bytes", k.len())))?;
        if first != 1 {
            let detail = format!("it is missing (the next stored record is {first})");
            return Err(Error::Damaged(Damage::new(execution, Part::Record { seq: 1 }, detail)));
        }
        Ok(super::frame(execution, first, &v)?.into_iter().next())
    }

    fn read_after(&self, execution: ExecutionId, after: u64) -> Result<Vec<Record>, Error> {
        // Frames are keyed by their first sequence number: start at the
        // frame that holds `after + 1`, the last one starting at or before it.
        let want = after.saturating_add(1);
        let damaged = |e| damaged_by(execution, Part::Record { seq: want }, e);
        let from = match self.reads().last_in(event_key(execution, 0)..=event_key(execution, want)) {
            Some(kv) => kv.map_err(damaged)?.0,
            None => return Ok(Vec::new()),
        };
        let mut records = Vec::new();
        for kv in self.reads().range(from.to_vec()..=event_key(execution, u64::MAX).to_vec()) {
            let (k, v) = kv.map_err(damaged)?;
            let first = seq_in(&k).ok_or_else(|| Error::Corrupt(format!("event key of {} bytes", k.len())))?;
            records.extend(super::frame(execution, first, &v)?.into_iter().filter(|r| r.seq > after));
        }
        Ok(records)
    }

    fn meta(&self, execution: ExecutionId) -> Result<Option<ExecutionMeta>, Error> {
        let stored = self.reads().get(meta_key(execution)).map_err(|e| damaged_by(execution, Part::IndexRow, e))?;
        stored.map(|v| decode_meta_of(execution, &v).map_err(Error::Damaged)).transpose()
    }

    fn listing(&self) -> Result<Listing, Error> {
        let mut out = Listing::default();
        let mut cuts = Vec::new();
        let mut from = vec![META];
        'scan: loop {
            for kv in self.reads().range(from.clone()..vec![META + 1]) {
                let (k, v) = match kv {
                    Ok(kv) => kv,
                    Err(e @ sled::Error::Corruption { .. }) => {
                        // A page of the index cannot be read: go on past it.
                        let last = out.rows.last().map(|m| m.id).max(out.damaged.last().map(|d| d.execution));
                        let next = self.first_readable_row_after(last);
                        let after = last.map_or("its start".to_string(), |id| format!("the row of {id}"));
                        let resumes_at = next.as_ref().and_then(|k| {
                            let found = self.reads().range(k.clone()..vec![META + 1]).next()?.ok()?;
                            id_in(&found.0)
                        });
                        let until = match resumes_at {
                            Some(id) => format!("up to the row of {id}"),
                            None => "to its end".to_string(),
                        };
                        cuts.push(format!("the execution index cannot be read from after {after} {until}: {e}"));
                        match next {
                            // Only ever forward, so the scan ends.
                            Some(k) if k > from => {
                                from = k;
                                continue 'scan;
                            }
                            _ => break 'scan,
                        }
                    }
                    Err(other) => return Err(storage(other)),
                };
                let Some(id) = id_in(&k).filter(|_| k.len() == 17) else {
                    tracing::warn!(key = ?k, "an execution index key of the wrong length; skipped");
                    continue;
                };
                match decode_meta_of(id, &v) {
                    Ok(meta) => out.rows.push(meta),
                    Err(damage) => out.damaged.push(damage),
                }
            }
            break;
        }
        out.cut_short = (!cuts.is_empty()).then(|| cuts.join("; "));
        Ok(out)
    }

    /// Newest first, the scan walks the index backwards from `after` and
    /// stops one row past the page (reporting the damaged rows it passed);
    /// oldest first, and when a page of the index cannot be read, it is
    /// [`listing`](Journal::listing)'s page.
    fn page(
        &self,
        after: Option<ExecutionId>,
        newest_first: bool,
        limit: usize,
        filter: &RowFilter,
    ) -> Result<IndexPage, Error> {
        if let Some(prefix) =
            filter.status.and_then(row_index::status_prefix).filter(|_| self.rows_indexed.load(Ordering::Relaxed))
        {
            return self.page_by_index(prefix, after, newest_first, limit, filter);
        }
        if !newest_first {
            return Ok(IndexPage::of(self.listing()?, after, false, limit, filter));
        }
        let end = match after {
            Some(c) => Bound::Excluded(meta_key(c).to_vec()),
            None => Bound::Excluded(vec![META + 1]),
        };
        let mut out = IndexPage::default();
        for kv in self.reads().range_rev::<Vec<u8>, _>((Bound::Included(vec![META]), end)) {
            let (k, v) = match kv {
                Ok(kv) => kv,
                Err(sled::Error::Corruption { .. }) => {
                    return Ok(IndexPage::of(self.listing()?, after, true, limit, filter));
                }
                Err(other) => return Err(storage(other)),
            };
            let Some(id) = id_in(&k).filter(|_| k.len() == 17) else { continue };
            // Most rows a filter passes over are read no further than their head.
            if row_kept(&v, filter) == Some(false) {
                continue;
            }
            match decode_meta_of(id, &v) {
                Ok(meta) if filter.keeps(&meta) => {
                    if out.rows.len() == limit {
                        out.more = true;
                        break;
                    }
                    out.rows.push(meta);
                }
                Ok(_) => {}
                Err(damage) => out.damaged.push(damage),
            }
        }
        Ok(out)
    }

    fn workflow(&self, hash: &str) -> Result<Option<Workflow>, Error> {
        self.reads().get(prefixed(WORKFLOW, hash.as_bytes())).map_err(storage)?.map(|v| decode_workflow(&v)).transpose()
    }

    fn due_timers(&self, up_to_ms: u64, limit: usize) -> Result<Vec<Timer>, Error> {
        let end = timer_key(up_to_ms, ExecutionId::from_bytes([0xff; 16]));
        self.reads()
            .range([TIMER].as_slice()..=end.as_slice())
            .take(limit)
            .map(|kv| decode_timer(&kv.map_err(storage)?.0))
            .collect()
    }

    fn next_timer_after(&self, after_ms: u64) -> Result<Option<Timer>, Error> {
        let from = timer_key(after_ms.saturating_add(1), ExecutionId::from_bytes([0; 16]));
        let end = [TIMER + 1];
        self.reads()
            .range(from.as_slice()..end.as_slice())
            .next()
            .map(|kv| decode_timer(&kv.map_err(storage)?.0))
            .transpose()
    }

    fn waiting_for(&self, key: &str) -> Result<Vec<ExecutionId>, Error> {
        self.reads()
            .scan_prefix(mailbox::key_prefix(WAIT, key))
            .map(|kv| Ok(mailbox::decode_wait_key(&kv.map_err(storage)?.0)?.1))
            .collect()
    }

    fn wait_index(&self) -> Result<Vec<(String, ExecutionId)>, Error> {
        self.reads().scan_prefix([WAIT]).map(|kv| mailbox::decode_wait_key(&kv.map_err(storage)?.0)).collect()
    }

    fn keep<'a>(&'a self, event: &'a KeptEvent) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move { self.wal.commit(mailbox::keep_writes(event)).await })
    }

    fn kept(&self, key: &str, now_ms: u64, limit: usize) -> Result<Vec<KeptEvent>, Error> {
        let mut out = Vec::new();
        for kv in self.reads().scan_prefix(mailbox::key_prefix(KEPT, key)) {
            let (k, v) = kv.map_err(storage)?;
            let event = mailbox::decode_kept(&k, &v)?;
            if event.at.until_ms > now_ms {
                out.push(event);
                if out.len() >= limit {
                    break;
                }
            }
        }
        Ok(out)
    }

    fn expiring(&self, up_to_ms: u64, limit: usize) -> Result<Vec<KeptRef>, Error> {
        let mut out = Vec::new();
        for kv in self.reads().range([EXPIRY].as_slice()..[EXPIRY + 1].as_slice()) {
            let at = mailbox::decode_expiry_key(&kv.map_err(storage)?.0)?;
            if at.until_ms > up_to_ms || out.len() >= limit {
                break;
            }
            out.push(at);
        }
        Ok(out)
    }

    fn forget<'a>(&'a self, kept: &'a [KeptRef]) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            if kept.is_empty() {
                return Ok(());
            }
            self.wal.commit(mailbox::forget_writes(kept)).await
        })
    }

    fn register<'a>(&'a self, registration: &'a Registration, wf: &'a Workflow) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let mut batch: Batch = Vec::with_capacity(2);
            let k = prefixed(WORKFLOW, registration.hash.as_bytes());
            if !self.reads().contains_key(&k).map_err(storage)? {
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
        self.reads().scan_prefix([REGISTERED]).map(|kv| decode_registration(&kv.map_err(storage)?.1)).collect()
    }

    fn find_key(&self, key: &str) -> Result<Option<ExecutionId>, Error> {
        match self.reads().get(prefixed(KEY, key.as_bytes())).map_err(storage)? {
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

    fn session(&self, id: &str) -> Result<Option<SessionRecord>, Error> {
        self.reads().get(session::session_key(id)).map_err(storage)?.map(|v| session::decode_session(&v)).transpose()
    }

    fn sessions(&self) -> Result<Vec<SessionRecord>, Error> {
        let mut out = Vec::new();
        for kv in self.reads().scan_prefix([SESSION]) {
            let (k, v) = kv.map_err(storage)?;
            // One record that does not decode never hides the others (`jamjet repair` reports it).
            match session::decode_session(&v) {
                Ok(record) => out.push(record),
                Err(e) => {
                    tracing::warn!(key = %String::from_utf8_lossy(&k[1..]), error = %e, "a session record is unreadable; left out")
                }
            }
        }
        Ok(out)
    }

    fn prune<'a>(&'a self, executions: &'a [ExecutionId], at_ms: u64) -> BoxFuture<'a, Result<Freed, Error>> {
        Box::pin(async move {
            let reads = self.reads();
            let (mut batch, mut freed): (Batch, Freed) = (Vec::new(), Freed::default());
            for &id in executions {
                let Some(meta) = self.meta(id)?.filter(|m| m.status.is_terminal()) else { continue };
                let mut bytes = 0;
                let mut last = None;
                for kv in reads.range(event_key(id, 0)..=event_key(id, u64::MAX)) {
                    let (k, v) = kv.map_err(|e| damaged_by(id, Part::Record { seq: 0 }, e))?;
                    bytes += (k.len() + v.len()) as u64;
                    batch.push((k.to_vec(), Vec::new()));
                    last = Some((k, v));
                }
                // Sequence numbers run 1..=n: the last frame says how many.
                let events = match &last {
                    Some((k, v)) => {
                        let first =
                            seq_in(k).ok_or_else(|| Error::Corrupt(format!("event key of {} bytes", k.len())))?;
                        super::frame(id, first, v)?.last().map_or(first - 1, |r| r.seq)
                    }
                    None => 0,
                };
                let row = meta_key(id).to_vec();
                bytes += (row.len() + encode_meta(&meta).len()) as u64;
                batch.push((row, Vec::new()));
                batch.extend(row_index::writes(Some(&meta), None));
                if let Some(key) = &meta.key {
                    let k = prefixed(KEY, key.as_bytes());
                    if reads.get(&k).map_err(storage)?.is_some_and(|v| v.as_ref() == id.to_bytes()) {
                        bytes += (k.len() + 16) as u64;
                        batch.push((k, Vec::new()));
                    }
                }
                let tomb = Tombstone { meta, pruned_ms: at_ms, events };
                batch.push((prefixed(PRUNED, &id.to_bytes()), encode_tombstone(&tomb)));
                freed.add(Freed { executions: 1, events, bytes });
            }
            if !batch.is_empty() {
                self.wal.commit(batch).await?;
            }
            Ok(freed)
        })
    }

    fn compact(&self) -> BoxFuture<'_, Result<Option<super::Compacted>, Error>> {
        Box::pin(self.wal.compact_archive())
    }

    fn tombstone(&self, execution: ExecutionId) -> Result<Option<Tombstone>, Error> {
        let stored = self.reads().get(prefixed(PRUNED, &execution.to_bytes())).map_err(storage)?;
        stored.map(|v| decode_tombstone(&v)).transpose()
    }

    fn forget_sessions<'a>(&'a self, ids: &'a [String]) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            if ids.is_empty() {
                return Ok(());
            }
            self.wal.commit(ids.iter().map(|id| (session::session_key(id), Vec::new())).collect()).await
        })
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::{Event, Json, Status};

    async fn started(j: &SledJournal, id: ExecutionId) {
        let meta = ExecutionMeta {
            id,
            workflow_id: "w".into(),
            workflow_version: "1".into(),
            workflow_hash: "h".into(),
            status: Status::Running,
            created_ms: 1,
            updated_ms: 1,
            key: None,
        };
        let first = Event::ExecutionStarted {
            workflow_id: "w".into(),
            workflow_version: "1".into(),
            workflow_hash: "h".into(),
            input: Json("{}".into()),
            key: None,
        };
        let events = [first, Event::NodeScheduled { node: "a".into(), visit: 1 }];
        let append = |first_seq, events, meta| Append {
            execution: id,
            first_seq,
            at_ms: 1,
            events,
            meta,
            workflow: None,
            timers: &[],
            waits: &[],
            session: None,
        };
        j.append(append(1, &events, Some(&meta))).await.unwrap();
        let more = [Event::NodeStarted { node: "a".into(), visit: 1, attempt: 1 }];
        j.append(append(3, &more, None)).await.unwrap();
    }

    #[tokio::test]
    async fn a_row_that_does_not_decode_is_listed_as_damaged_beside_the_others() {
        let dir = tempfile::tempdir().unwrap();
        let j = SledJournal::open(dir.path()).unwrap();
        let ids = [ExecutionId::new(1_000), ExecutionId::new(2_000), ExecutionId::new(3_000)];
        for id in ids {
            started(&j, id).await;
        }
        j.settle(); // sled has every batch: damage it there
        j.db.insert(meta_key(ids[1]), &[1, 0xff, 0xff][..]).unwrap();
        let listing = j.listing().unwrap();
        assert_eq!(listing.rows.iter().map(|m| m.id).collect::<Vec<_>>(), vec![ids[0], ids[2]]);
        assert_eq!(listing.damaged.len(), 1);
        assert_eq!((listing.damaged[0].execution, &listing.damaged[0].part), (ids[1], &Part::IndexRow));
        assert_eq!(j.list().unwrap().len(), 2, "one bad row never hides the others");
        let err = j.meta(ids[1]).unwrap_err().to_string();
        assert!(err.contains(&ids[1].to_string()) && err.contains("index row"), "{err}");
    }

    #[tokio::test]
    async fn a_record_that_does_not_decode_names_its_execution_and_sequence_number() {
        let dir = tempfile::tempdir().unwrap();
        let j = SledJournal::open(dir.path()).unwrap();
        let (bad, good) = (ExecutionId::new(1_000), ExecutionId::new(2_000));
        started(&j, bad).await;
        started(&j, good).await;
        j.settle(); // sled has every batch: damage it there
        // Record 3 (the second frame), garbled: a record of 5 bytes that is no event.
        j.db.insert(event_key(bad, 3), &[5, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff][..]).unwrap();
        match j.read(bad) {
            Err(Error::Damaged(d)) => assert_eq!((d.execution, d.part), (bad, Part::Record { seq: 3 })),
            other => panic!("expected a damaged record, got {other:?}"),
        }
        assert!(matches!(j.read_after(bad, 2), Err(Error::Damaged(_))));
        let err = j.read_after(bad, 0).unwrap_err().to_string();
        assert!(err.contains("record 3") && err.contains(&bad.to_string()), "{err}");
        assert_eq!(j.read(good).unwrap().len(), 3, "the other execution reads whole");
        // A missing frame is damage too, named by the first record missing.
        j.db.remove(event_key(bad, 1)).unwrap();
        match j.read(bad) {
            Err(Error::Damaged(d)) => assert_eq!(d.part, Part::Record { seq: 1 }),
            other => panic!("expected a missing record, got {other:?}"),
        }
    }
}
