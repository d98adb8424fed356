//! Group commit through a write-ahead log in front of sled; a writer is
//! acknowledged when the log's sync returns, and sled applies behind it.
//!
//! Writers hand their batch (the key/value puts of one append) to one
//! flusher thread and await it. The flusher takes every batch that arrived
//! since its last round, writes them to the log file as checksummed
//! frames and makes that durable with one `fdatasync`; then it puts the
//! round's writes in the in-memory [`overlay`], acknowledges the writers,
//! and hands the batches to the applier thread, which applies them to
//! sled in log order (all it has queued in one sled batch) and then drops
//! them from the overlay. One sync serves every writer that queued while
//! the previous one ran, and no writer waits for sled. Every read of the
//! store merges the overlay over sled ([`overlay::Reads`]), so a read after
//! an acknowledgement sees the batch before and after sled has it.
//!
//! A bounded backlog: a batch holds its share of two budgets (bytes and
//! batches, [`WalTuning`]) from the moment it is queued until sled has
//! it. When the apply falls behind and a budget is spent, new appends wait
//! (asynchronously, on a `tokio` semaphore, no worker thread blocked)
//! until the applier gives some back; memory stays bounded.
//!
//! sled itself is flushed only at checkpoints (when the log passes
//! [`WalTuning::checkpoint_bytes`], at open and at close): the flusher
//! waits until the applier has applied everything in the log, flushes
//! sled, archives the log and truncates it. So the log is never truncated
//! past a batch sled has not made durable. A batch reaches sled only after
//! its frame is durable, so sled never holds anything the log lacks;
//! recovery replays the log's valid frames into sled in order (puts are
//! idempotent) and drops what is no valid frame, saying what that was.
//! `sled::Db::flush` costs milliseconds under load (it seals and writes
//! its IO buffers from a thread pool); a log append costs one `write` and
//! one `fdatasync`.
//!
//! Each writer is woken exactly once, by its own acknowledgement.
//!
//! Frames ([`frames`]): `len: u32 LE | crc32(payload): u32 LE | payload`,
//! payload = version byte + postcard of the batch. At open, a torn tail is
//! told apart from damage, valid frames after damage are replayed, and the
//! warning says what was dropped and whether it had been acknowledged. A
//! failed write, sync or apply poisons the journal: nothing later is
//! acknowledged, because we can no longer say what reached the disk (after
//! a failed apply the overlay keeps serving what sled lacks, and the log,
//! never truncated again, is replayed at the next open).
//!
//! A checkpoint (at open, past the checkpoint size, at close) flushes
//! sled, appends the log's frames to the [`archive`] and syncs it, then
//! empties the log: every acknowledged batch stays in our own files, so a
//! store whose sled files are damaged can be rebuilt.
//!
//! Test hook: `JAMJET_APPLY_PAUSED=1` in the environment holds the applier
//! from the start (acknowledged batches then live only in the log and the
//! overlay), so a crash test can `kill -9` a process whose sled lags.

pub(crate) mod archive;
pub(crate) mod frames;
pub(crate) mod overlay;

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::{Semaphore, oneshot};

use self::archive::Archive;
pub(crate) use self::frames::Batch;
use self::overlay::{Overlay, Reads};
use super::Error;

/// A round (write + sync) or an apply slower than this is logged.
const SLOW_ROUND: Duration = Duration::from_millis(200);
/// How long the flusher lets writers gather once batching is under way.
const COMMIT_DELAY: Duration = Duration::from_micros(200);
/// At most this many batches go to sled in one apply.
const APPLY_CHUNK: usize = 4096;

/// The log's sizes: how far sled may lag, and when the log is truncated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalTuning {
    /// Bytes of batches acknowledged (or queued) and not yet applied to
    /// sled, past which appends wait. A batch counts its keys and values
    /// plus 32 bytes a write and 64 a batch; one larger than the bound
    /// waits until nothing else is unapplied.
    pub backlog_bytes: u32,
    /// Batches queued or unapplied, past which appends wait.
    pub backlog_batches: u32,
    /// Past this size of log the flusher checkpoints: waits for the
    /// applier, flushes sled, archives and truncates the log.
    pub checkpoint_bytes: u64,
}

impl Default for WalTuning {
    fn default() -> Self {
        WalTuning { backlog_bytes: 32 * 1024 * 1024, backlog_batches: 65_536, checkpoint_bytes: 64 * 1024 * 1024 }
    }
}

/// Tells one writer its batch is durable (or why not).
type Ack = oneshot::Sender<Result<(), String>>;

/// A batch on its way, with what it holds of the backlog budgets.
struct Queued {
    batch: Arc<Batch>,
    cost: u32,
}

#[derive(Default)]
struct Pending {
    batches: Vec<(Queued, Ack)>,
    /// Set once a write, sync or apply failed: nothing more is accepted.
    poisoned: Option<String>,
    shutdown: bool,
    /// A compacted archive to put in place, at the flusher's next turn.
    swap: Option<Swap>,
    /// A checkpoint asked for now (before a compaction notes where the
    /// archive ends): answered with that end.
    checkpoint: Option<oneshot::Sender<Result<ArchiveEnd, String>>>,
}

/// Where the archive ends after a checkpoint (see [`Archive::end`]); `None` without one.
type ArchiveEnd = Option<(u32, u64)>;

/// An archive seed written aside, and where the old archive ended when it began.
struct Swap {
    aside: PathBuf,
    from: (u32, u64),
    done: oneshot::Sender<Result<Compacted, String>>,
}

/// What a compaction of the archive did: its size before and after, bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Compacted {
    pub before: u64,
    pub after: u64,
}

/// What the applier has to do, and how far it got.
#[derive(Default)]
struct Applying {
    /// Durable, acknowledged, not yet in sled: log position, batch, cost.
    queue: VecDeque<(u64, Queued)>,
    /// Every batch at or before this log position is in sled.
    applied: u64,
    /// The test hook: hold the applier.
    paused: bool,
    /// Set when an apply failed; the applier has stopped.
    failed: Option<String>,
    stop: bool,
}

#[derive(Default)]
struct Counters {
    syncs: AtomicU64,
    sync_us: AtomicU64,
    checkpoints: AtomicU64,
}

struct Shared {
    pending: Mutex<Pending>,
    wake: Condvar,
    applying: Mutex<Applying>,
    /// Wakes the applier (work, unpause, stop) and whoever waits for it.
    apply_wake: Condvar,
    overlay: Overlay,
    backlog_bytes: Semaphore,
    backlog_batches: Semaphore,
    tuning: WalTuning,
    counters: Counters,
    /// Where the archive ends (see [`Archive::end`]); `None` without one.
    archive_end: Mutex<Option<(u32, u64)>>,
    /// One compaction at a time.
    compacting: tokio::sync::Mutex<()>,
}

impl Shared {
    fn poison(&self, msg: &str) {
        self.pending.lock().expect("wal lock").poisoned.get_or_insert_with(|| msg.to_string());
        // Whoever waits for backlog room is failed rather than left waiting.
        self.backlog_bytes.close();
        self.backlog_batches.close();
    }

    fn give_back(&self, cost: u32) {
        self.backlog_bytes.add_permits(cost as usize);
        self.backlog_batches.add_permits(1);
    }

    /// Wait until sled has every batch up to `seq` (or the apply failed).
    fn wait_applied(&self, seq: u64) -> Result<(), String> {
        let mut a = self.applying.lock().expect("wal lock");
        while a.applied < seq && a.failed.is_none() {
            a = self.apply_wake.wait(a).expect("wal lock");
        }
        a.failed.clone().map_or(Ok(()), Err)
    }
}

/// The log, its flusher thread and its applier thread. Dropping it lets
/// the applier catch up and stops the flusher after a last round and a
/// checkpoint.
pub(crate) struct Wal {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    /// For compaction: where the archive lives, and the store it seeds from.
    data_dir: PathBuf,
    db: sled::Db,
}

fn io(what: &str, path: &Path, e: std::io::Error) -> Error {
    Error::Storage(format!("{what} {}: {e}", path.display()))
}

fn to_sled(batch: &Batch, b: &mut sled::Batch) {
    for (k, v) in batch {
        // No stored value is empty: an empty value is a removal.
        if v.is_empty() {
            b.remove(k.as_slice());
        } else {
            b.insert(k.as_slice(), v.as_slice());
        }
    }
}

pub(crate) fn apply(db: &sled::Db, batch: &Batch) -> Result<(), String> {
    let mut b = sled::Batch::default();
    to_sled(batch, &mut b);
    db.apply_batch(b).map_err(|e| e.to_string())
}

/// What a batch holds of the byte budget.
fn cost(batch: &Batch, bound: u32) -> u32 {
    let bytes: usize = batch.iter().map(|(k, v)| k.len() + v.len() + 32).sum::<usize>() + 64;
    bytes.min(bound as usize) as u32
}

impl Wal {
    /// Replay the log at `path` into `db` (recovery), checkpoint into the
    /// archive of `data_dir` (created if absent), and start the flusher.
    /// Returns what recovery dropped, one sentence per damaged stretch.
    pub(crate) fn open(
        data_dir: &Path,
        path: &Path,
        db: sled::Db,
        tuning: WalTuning,
    ) -> Result<(Wal, Vec<String>), Error> {
        if tuning.backlog_bytes == 0 || tuning.backlog_batches == 0 {
            return Err(Error::Storage("the journal's backlog bounds must be at least 1".into()));
        }
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| io("cannot open the journal log", path, e))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(|e| io("cannot read the journal log", path, e))?;
        // The archive first: seeded from sled as it was before this replay.
        let mut archive = match Archive::open_or_seed(data_dir, &db, !bytes.is_empty()) {
            Ok(a) => Some(a),
            Err(e) => {
                tracing::warn!(
                    error = %e,
                    "no journal archive: running without one (a store whose sled files are damaged cannot be rebuilt until one is written)"
                );
                None
            }
        };
        let scan = frames::scan(&bytes);
        for batch in &scan.batches {
            apply(&db, batch).map_err(|e| Error::Storage(format!("replaying the journal log into sled: {e}")))?;
        }
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("journal.log");
        let dropped: Vec<String> = scan.dropped.iter().map(|d| d.describe(name)).collect();
        for what in &dropped {
            tracing::warn!("{what}");
        }
        if !scan.batches.is_empty() {
            tracing::info!(batches = scan.batches.len(), "replayed the journal log");
        }
        // Only the valid frames go on to the archive: the log as it is when
        // nothing was dropped, else its valid frames written again.
        let valid = if scan.dropped.is_empty() {
            std::borrow::Cow::Borrowed(bytes.as_slice())
        } else {
            let mut valid = Vec::with_capacity(scan.valid_bytes(bytes.len()));
            for batch in &scan.batches {
                frames::encode(batch, &mut valid);
            }
            std::borrow::Cow::Owned(valid)
        };
        checkpoint(&db, &mut file, archive.as_mut(), Some(&valid)).map_err(Error::Storage)?;
        Ok((Self::start(file, db, archive, tuning, data_dir)?, dropped))
    }

    /// Start the flusher on a log that recovery has already emptied.
    fn start(
        log: impl Log,
        db: sled::Db,
        archive: Option<Archive>,
        tuning: WalTuning,
        data_dir: &Path,
    ) -> Result<Wal, Error> {
        let paused = std::env::var_os("JAMJET_APPLY_PAUSED").is_some_and(|v| v == "1");
        if paused {
            tracing::warn!("JAMJET_APPLY_PAUSED=1: sled is not applied to until the journal closes (a test hook)");
        }
        let shared = Arc::new(Shared {
            pending: Mutex::new(Pending::default()),
            wake: Condvar::new(),
            applying: Mutex::new(Applying { paused, ..Applying::default() }),
            apply_wake: Condvar::new(),
            overlay: Overlay::default(),
            backlog_bytes: Semaphore::new(tuning.backlog_bytes as usize),
            backlog_batches: Semaphore::new(tuning.backlog_batches as usize),
            tuning,
            counters: Counters::default(),
            archive_end: Mutex::new(archive.as_ref().map(Archive::end)),
            compacting: tokio::sync::Mutex::new(()),
        });
        let (flusher, applier) = (shared.clone(), shared.clone());
        let apply_thread = std::thread::Builder::new()
            .name("jamjet-journal-apply".into())
            .spawn({
                let db = db.clone();
                move || apply_loop(&applier, &db)
            })
            .map_err(|e| Error::Storage(format!("cannot start the journal apply thread: {e}")))?;
        let thread = std::thread::Builder::new()
            .name("jamjet-journal-sync".into())
            .spawn({
                let (db, data_dir) = (db.clone(), data_dir.to_path_buf());
                move || flush_loop(&flusher, log, db, archive, apply_thread, &data_dir)
            })
            .map_err(|e| Error::Storage(format!("cannot start the journal sync thread: {e}")))?;
        Ok(Wal { shared, thread: Some(thread), data_dir: data_dir.to_path_buf(), db })
    }

    /// Make `batch` durable; it is readable through [`Wal::reads`] from the
    /// moment this returns, and reaches sled behind. Waits first while the
    /// unapplied backlog is full.
    pub(crate) async fn commit(&self, batch: Batch) -> Result<(), Error> {
        let poisoned =
            |msg: &str| Error::Storage(format!("a journal sync failed, nothing more is acknowledged: {msg}"));
        let current = || self.shared.pending.lock().expect("wal lock").poisoned.clone().unwrap_or_default();
        let cost = cost(&batch, self.shared.tuning.backlog_bytes);
        let Ok(one) = self.shared.backlog_batches.acquire().await else {
            return Err(poisoned(&current()));
        };
        let Ok(bytes) = self.shared.backlog_bytes.acquire_many(cost).await else {
            return Err(poisoned(&current()));
        };
        let (ack, acked) = oneshot::channel();
        {
            let mut p = self.shared.pending.lock().expect("wal lock");
            if let Some(msg) = &p.poisoned {
                return Err(poisoned(msg));
            }
            p.batches.push((Queued { batch: Arc::new(batch), cost }, ack));
            // Given back by the applier once sled has the batch (or by the
            // flusher if it never becomes durable).
            one.forget();
            bytes.forget();
        }
        self.shared.wake.notify_one();
        match acked.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(msg)) => Err(poisoned(&msg)),
            Err(_) => Err(Error::Storage("the journal was closed".into())),
        }
    }

    /// Reads of the store: the unapplied batches merged over `db`.
    pub(crate) fn reads<'a>(&'a self, db: &'a sled::Db) -> Reads<'a> {
        Reads { db, overlay: &self.shared.overlay }
    }

    /// Hold (or let go) the applier: acknowledged batches then stay in the
    /// log and the overlay only. For tests.
    pub(crate) fn pause_apply(&self, paused: bool) {
        self.shared.applying.lock().expect("wal lock").paused = paused;
        self.shared.apply_wake.notify_all();
    }

    /// Batches acknowledged and not yet in sled.
    pub(crate) fn unapplied(&self) -> usize {
        self.shared.applying.lock().expect("wal lock").queue.len()
    }

    /// Wait (blocking) until sled has every acknowledged batch, unless the
    /// applier is paused or has failed.
    pub(crate) fn settle(&self) {
        let mut a = self.shared.applying.lock().expect("wal lock");
        while !a.queue.is_empty() && !a.paused && a.failed.is_none() {
            a = self.shared.apply_wake.wait(a).expect("wal lock");
        }
    }

    pub(crate) fn syncs(&self) -> u64 {
        self.shared.counters.syncs.load(Ordering::Relaxed)
    }
    pub(crate) fn sync_us(&self) -> u64 {
        self.shared.counters.sync_us.load(Ordering::Relaxed)
    }
    pub(crate) fn checkpoints(&self) -> u64 {
        self.shared.counters.checkpoints.load(Ordering::Relaxed)
    }

    /// Rewrite the archive as a seed of what the store holds now, so what
    /// was removed (pruned executions) leaves the disk: the seed is written
    /// on a thread of its own while appends go on, then the flusher appends
    /// to it what the old archive took in meanwhile and swaps it in.
    /// `None` when the store runs without an archive.
    pub(crate) async fn compact_archive(&self) -> Result<Option<Compacted>, Error> {
        let _one = self.shared.compacting.lock().await;
        // A checkpoint first: what is in the log now (the removals that
        // called for this) goes to the old archive, before the seed's start.
        let (asked, answer) = oneshot::channel();
        {
            let mut p = self.shared.pending.lock().expect("wal lock");
            if let Some(msg) = &p.poisoned {
                return Err(Error::Storage(format!("a journal sync failed, nothing more is acknowledged: {msg}")));
            }
            p.checkpoint = Some(asked);
        }
        self.shared.wake.notify_one();
        let ended = answer
            .await
            .map_err(|_| Error::Storage("compacting the journal archive: the journal closed first".into()))?
            .map_err(|e| Error::Storage(format!("compacting the journal archive: {e}")))?;
        let Some(from) = ended else { return Ok(None) };
        let (data_dir, db) = (self.data_dir.clone(), self.db.clone());
        let aside = tokio::task::spawn_blocking(move || archive::write_aside(&data_dir, &db))
            .await
            .map_err(|e| Error::Storage(format!("compacting the journal archive: {e}")))?
            .map_err(|e| Error::Storage(format!("compacting the journal archive: {e}")))?;
        let (done, answer) = oneshot::channel();
        {
            let mut p = self.shared.pending.lock().expect("wal lock");
            if let Some(msg) = &p.poisoned {
                let _ = std::fs::remove_dir_all(&aside);
                return Err(Error::Storage(format!("a journal sync failed, nothing more is acknowledged: {msg}")));
            }
            p.swap = Some(Swap { aside, from, done });
        }
        self.shared.wake.notify_one();
        match answer.await {
            Ok(Ok(c)) => Ok(Some(c)),
            Ok(Err(msg)) => Err(Error::Storage(format!("compacting the journal archive: {msg}"))),
            Err(_) => Err(Error::Storage("compacting the journal archive: the journal closed first".into())),
        }
    }
}

/// Put a compacted archive in place (on the flusher's thread, between two
/// rounds: no checkpoint runs meanwhile).
fn swap_archive(shared: &Shared, archive: &mut Option<Archive>, swap: Swap, data_dir: &Path) {
    let Swap { aside, from, done } = swap;
    let Some(old) = archive.take() else {
        let _ = std::fs::remove_dir_all(&aside);
        let _ = done.send(Err("the journal has no archive".into()));
        return;
    };
    let before = old.bytes();
    let outcome = match old.replace(data_dir, &aside, from) {
        Ok(new) => {
            let after = new.bytes();
            *archive = Some(new);
            Ok(Compacted { before, after })
        }
        Err((old, why)) => {
            match &old {
                Some(_) => {
                    tracing::warn!(error = %why, "the journal archive could not be compacted; the old one stays")
                }
                None => tracing::error!(
                    error = %why,
                    "the journal archive could not be compacted and is gone: running without one until the next open seeds one"
                ),
            }
            *archive = old;
            Err(why)
        }
    };
    *shared.archive_end.lock().expect("wal lock") = archive.as_ref().map(Archive::end);
    let _ = done.send(outcome);
}

/// Where the flusher writes frames: the log file (tests put in one that fails).
trait Log: Send + 'static {
    /// Append bytes and make them durable.
    fn append_durably(&mut self, bytes: &[u8]) -> std::io::Result<()>;
    /// Empty the log, durably.
    fn reset(&mut self) -> std::io::Result<()>;
    /// Append the log's whole content to the archive (not synced).
    fn copy_to(&mut self, archive: &mut Archive) -> std::io::Result<()>;
}

impl Log for File {
    fn append_durably(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.write_all(bytes)?;
        self.sync_data()
    }

    fn reset(&mut self) -> std::io::Result<()> {
        self.set_len(0)?;
        self.seek(SeekFrom::Start(0))?;
        self.sync_all()
    }

    fn copy_to(&mut self, archive: &mut Archive) -> std::io::Result<()> {
        let len = self.metadata()?.len();
        let mut chunk = vec![0; (len as usize).min(1 << 20)];
        let mut at = 0;
        while at < len {
            let n = chunk.len().min((len - at) as usize);
            self.read_exact_at(&mut chunk[..n], at)?;
            archive.append(&chunk[..n])?;
            at += n as u64;
        }
        Ok(())
    }
}

/// Flush sled, keep the log's frames in the archive (the `valid` frames
/// given, or the log's content), then empty the log: everything in it is
/// in sled and in the archive now. The caller makes sure sled has applied
/// every batch in the log first.
fn checkpoint(
    db: &sled::Db,
    log: &mut impl Log,
    archive: Option<&mut Archive>,
    valid: Option<&[u8]>,
) -> Result<(), String> {
    db.flush().map_err(|e| format!("sled flush: {e}"))?;
    if let Some(archive) = archive {
        let archived = archive.roll_if_full().and_then(|()| match valid {
            Some(bytes) => archive.append(bytes),
            None => log.copy_to(archive),
        });
        archived.and_then(|()| archive.sync()).map_err(|e| format!("writing the journal archive: {e}"))?;
    }
    log.reset().map_err(|e| format!("emptying the journal log: {e}"))
}

/// Apply what the flusher queued, in log order, until told to stop with
/// nothing left (or an apply fails).
fn apply_loop(shared: &Shared, db: &sled::Db) {
    let mut chunk: Vec<(u64, Arc<Batch>)> = Vec::new();
    let mut costs: Vec<u32> = Vec::new();
    loop {
        {
            let mut a = shared.applying.lock().expect("wal lock");
            // Paused holds the applier, except at close.
            while (a.queue.is_empty() || a.paused) && !a.stop {
                a = shared.apply_wake.wait(a).expect("wal lock");
            }
            if a.queue.is_empty() {
                return; // stopped with nothing left
            }
            // Left in the queue until applied, so `unapplied` counts them.
            for (seq, q) in a.queue.iter().take(APPLY_CHUNK) {
                chunk.push((*seq, q.batch.clone()));
                costs.push(q.cost);
            }
        }
        let began = Instant::now();
        let mut b = sled::Batch::default();
        for (_, batch) in &chunk {
            to_sled(batch, &mut b);
        }
        let result = db.apply_batch(b);
        let took = began.elapsed();
        if took > SLOW_ROUND {
            tracing::warn!(apply_ms = took.as_millis() as u64, batches = chunk.len(), "slow journal apply");
        }
        if let Err(e) = result {
            let msg = format!("applying the journal log to sled: {e}");
            tracing::error!(error = %msg, "journal apply failed; the journal is poisoned");
            shared.poison(&msg);
            shared.applying.lock().expect("wal lock").failed = Some(msg);
            shared.apply_wake.notify_all();
            return;
        }
        // sled has them: now (not before) the overlay may forget them.
        shared.overlay.applied(&chunk);
        {
            let mut a = shared.applying.lock().expect("wal lock");
            a.queue.drain(..chunk.len());
            a.applied = chunk.last().expect("a chunk is never empty").0;
        }
        shared.apply_wake.notify_all();
        for cost in costs.drain(..) {
            shared.give_back(cost);
        }
        chunk.clear();
    }
}

fn flush_loop(
    shared: &Shared,
    mut file: impl Log,
    db: sled::Db,
    mut archive: Option<Archive>,
    applier: JoinHandle<()>,
    data_dir: &Path,
) {
    let mut last_round = 0;
    let mut written: u64 = 0;
    // The log position of the last batch made durable.
    let mut seq: u64 = 0;
    let mut buf = Vec::new();
    let mut failed = false;
    loop {
        {
            let mut p = shared.pending.lock().expect("wal lock");
            while p.batches.is_empty() && !p.shutdown && p.swap.is_none() && p.checkpoint.is_none() {
                p = shared.wake.wait(p).expect("wal lock");
            }
            if let Some(swap) = p.swap.take() {
                drop(p);
                swap_archive(shared, &mut archive, swap, data_dir);
                continue;
            }
            if let Some(done) = p.checkpoint.take() {
                drop(p);
                let result = shared.wait_applied(seq).and_then(|()| checkpoint(&db, &mut file, archive.as_mut(), None));
                shared.counters.checkpoints.fetch_add(1, Ordering::Relaxed);
                written = 0;
                let end = archive.as_ref().map(Archive::end);
                *shared.archive_end.lock().expect("wal lock") = end;
                if let Err(msg) = &result {
                    tracing::error!(error = %msg, "journal checkpoint failed; the journal is poisoned");
                    shared.poison(msg);
                }
                let failed_now = result.is_err();
                let _ = done.send(result.map(|()| end));
                if failed_now {
                    failed = true;
                    break;
                }
                continue;
            }
            if p.batches.is_empty() {
                break; // shut down with nothing pending
            }
        }
        // When the last round served several writers, others are probably
        // on their way: give them a moment to join this one. A lone writer
        // is served at once.
        if last_round > 1 {
            std::thread::sleep(COMMIT_DELAY);
        }
        let round = std::mem::take(&mut shared.pending.lock().expect("wal lock").batches);
        last_round = round.len();
        buf.clear();
        for (q, _) in &round {
            frames::encode(&q.batch, &mut buf);
        }
        let began = Instant::now();
        let mut result = file.append_durably(&buf).map_err(|e| format!("writing the journal log: {e}"));
        let synced = began.elapsed();
        written += buf.len() as u64;
        match &result {
            Ok(()) => {
                shared.counters.syncs.fetch_add(1, Ordering::Relaxed);
                shared.counters.sync_us.fetch_add(synced.as_micros() as u64, Ordering::Relaxed);
                super::latency::JOURNAL_SYNC.record(synced);
                if synced > SLOW_ROUND {
                    tracing::warn!(sync_ms = synced.as_millis() as u64, batches = round.len(), "slow journal round");
                }
                // Readable first, then acknowledged, then applied behind.
                let batches: Vec<Arc<Batch>> = round.iter().map(|(q, _)| q.batch.clone()).collect();
                shared.overlay.put(seq + 1, &batches);
                let mut acks = Vec::with_capacity(round.len());
                {
                    let mut a = shared.applying.lock().expect("wal lock");
                    for (q, ack) in round {
                        seq += 1;
                        a.queue.push_back((seq, q));
                        acks.push(ack);
                    }
                }
                shared.apply_wake.notify_all();
                for ack in acks {
                    let _ = ack.send(Ok(()));
                }
            }
            Err(msg) => {
                tracing::error!(error = %msg, "journal write failed; the journal is poisoned");
                shared.poison(msg);
                for (q, ack) in round {
                    shared.give_back(q.cost);
                    let _ = ack.send(result.clone());
                }
            }
        }
        if result.is_ok() && written >= shared.tuning.checkpoint_bytes {
            // Never truncate past a batch sled has not applied and flushed.
            let began = Instant::now();
            result = shared.wait_applied(seq).and_then(|()| checkpoint(&db, &mut file, archive.as_mut(), None));
            tracing::debug!(took_ms = began.elapsed().as_millis() as u64, "journal checkpoint");
            shared.counters.checkpoints.fetch_add(1, Ordering::Relaxed);
            *shared.archive_end.lock().expect("wal lock") = archive.as_ref().map(Archive::end);
            written = 0;
            if let Err(msg) = &result {
                tracing::error!(error = %msg, "journal checkpoint failed; the journal is poisoned");
                shared.poison(msg);
            }
        }
        if result.is_err() {
            // Fail whoever queued meanwhile, then stop.
            for (q, ack) in std::mem::take(&mut shared.pending.lock().expect("wal lock").batches) {
                shared.give_back(q.cost);
                let _ = ack.send(result.clone());
            }
            failed = true;
            break;
        }
    }
    // Let the applier finish what is durable (paused or not), then stop it.
    {
        let mut a = shared.applying.lock().expect("wal lock");
        a.stop = true;
        a.paused = false;
    }
    shared.apply_wake.notify_all();
    let _ = applier.join();
    let apply_failed = shared.applying.lock().expect("wal lock").failed.clone();
    if failed || apply_failed.is_some() {
        return; // the log stays, to be replayed at the next open
    }
    if let Err(msg) = checkpoint(&db, &mut file, archive.as_mut(), None) {
        tracing::error!(error = %msg, "final journal checkpoint failed; the log will be replayed at the next open");
    }
}

impl Drop for Wal {
    fn drop(&mut self) {
        self.shared.pending.lock().expect("wal lock").shutdown = true;
        self.shared.wake.notify_one();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(k: &str, v: &str) -> Batch {
        vec![(k.as_bytes().to_vec(), v.as_bytes().to_vec())]
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn many_writers_share_few_syncs_and_everything_lands_in_sled() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::Config::new().path(dir.path().join("db")).flush_every_ms(None).open().unwrap();
        let wal = Arc::new(Wal::open(dir.path(), &dir.path().join("log"), db.clone(), WalTuning::default()).unwrap().0);
        let tasks: Vec<_> = (0..300)
            .map(|i| {
                let wal = wal.clone();
                tokio::spawn(async move { wal.commit(put(&format!("k{i:03}"), "v")).await })
            })
            .collect();
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        let reads = wal.reads(&db);
        assert_eq!(reads.iter().count(), 300, "every acknowledged batch is readable at once");
        wal.settle();
        assert_eq!(db.len(), 300, "every acknowledged batch is visible in sled");
        let syncs = wal.syncs();
        assert!((1..300).contains(&syncs), "300 writers took {syncs} syncs");
    }

    /// A log whose writes succeed `ok` times, then fail like a dying disk.
    struct FailingLog {
        ok: usize,
    }

    impl Log for FailingLog {
        fn append_durably(&mut self, _bytes: &[u8]) -> std::io::Result<()> {
            if self.ok == 0 {
                return Err(std::io::Error::other("EIO from the test disk"));
            }
            self.ok -= 1;
            Ok(())
        }
        fn reset(&mut self) -> std::io::Result<()> {
            Ok(())
        }
        fn copy_to(&mut self, _archive: &mut Archive) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn a_failed_sync_fails_its_writer_and_every_later_one_and_reaches_no_reader() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::Config::new().path(dir.path().join("db")).open().unwrap();
        let wal = Wal::start(FailingLog { ok: 1 }, db.clone(), None, WalTuning::default(), dir.path()).unwrap();
        wal.commit(put("a", "1")).await.unwrap();
        let err = wal.commit(put("b", "2")).await.unwrap_err().to_string();
        assert!(err.contains("EIO from the test disk"), "{err}");
        let err = wal.commit(put("c", "3")).await.unwrap_err().to_string();
        assert!(err.contains("nothing more is acknowledged"), "{err}");
        wal.settle();
        assert_eq!(db.get("a").unwrap().as_deref(), Some(&b"1"[..]));
        assert!(db.get("b").unwrap().is_none() && db.get("c").unwrap().is_none(), "unsynced batches never reach sled");
        assert_eq!(wal.syncs(), 1);
    }

    /// Every key and value of `db`, in order.
    fn contents(db: &sled::Db) -> Vec<(Vec<u8>, Vec<u8>)> {
        db.iter().map(|kv| kv.map(|(k, v)| (k.to_vec(), v.to_vec()))).collect::<Result<_, _>>().unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_compacted_archive_is_smaller_and_replays_to_the_store_while_writers_go_on() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::Config::new().path(dir.path().join("db")).open().unwrap();
        // Checkpoints every few KiB: most batches are archived before and during the compaction.
        let tuning = WalTuning { checkpoint_bytes: 4096, ..WalTuning::default() };
        let wal = Arc::new(Wal::open(dir.path(), &dir.path().join("log"), db.clone(), tuning).unwrap().0);
        let value = "v".repeat(200);
        for n in 0..400 {
            wal.commit(put(&format!("a{n:04}"), &value)).await.unwrap();
        }
        // Most of it removed again (what a prune does).
        for n in 0..380 {
            wal.commit(vec![(format!("a{n:04}").into_bytes(), Vec::new())]).await.unwrap();
        }
        let writer = tokio::spawn({
            let wal = wal.clone();
            async move {
                for n in 0..300 {
                    wal.commit(put(&format!("b{n:04}"), &format!("{n}"))).await.unwrap();
                }
            }
        });
        let compacted = wal.compact_archive().await.unwrap().expect("the store has an archive");
        writer.await.unwrap();
        assert!(compacted.after * 4 < compacted.before, "{compacted:?}");
        // A second compaction at once is fine too, and writes after it land in the new archive.
        wal.compact_archive().await.unwrap().unwrap();
        wal.commit(put("c", "after")).await.unwrap();
        drop(Arc::into_inner(wal).expect("the only holder"));
        // The removals that called for it went to the old archive (a checkpoint first), not the new one.
        let on_disk: u64 = archive::segments(&dir.path().join(archive::DIR))
            .unwrap()
            .iter()
            .map(|(_, p)| std::fs::metadata(p).unwrap().len())
            .sum();
        assert!(on_disk * 2 < compacted.before, "{on_disk} bytes after, {compacted:?}");
        let kept = contents(&db);
        assert_eq!(kept.len(), 20 + 300 + 1);
        // The archive alone rebuilds exactly what the store holds.
        let rebuilt = sled::Config::new().path(dir.path().join("rebuilt")).open().unwrap();
        let replayed = archive::replay(dir.path(), &rebuilt).unwrap();
        assert!(replayed.dropped.is_empty(), "{:?}", replayed.dropped);
        assert_eq!(contents(&rebuilt), kept);
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.starts_with("journal.archive."))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    #[test]
    fn a_log_left_by_a_crash_is_replayed_into_sled_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        let mut bytes = Vec::new();
        frames::encode(&put("x", "1"), &mut bytes);
        frames::encode(&put("x", "2"), &mut bytes);
        frames::encode(&put("y", "3"), &mut bytes);
        let torn_at = bytes.len();
        bytes.extend_from_slice(&[9, 0, 0]); // the torn start of a fourth
        std::fs::write(&log, &bytes).unwrap();
        let db = sled::Config::new().path(dir.path().join("db")).open().unwrap();
        let (wal, dropped) = Wal::open(dir.path(), &log, db.clone(), WalTuning::default()).unwrap();
        assert_eq!(db.get("x").unwrap().as_deref(), Some(&b"2"[..]), "replayed in order");
        assert_eq!(db.get("y").unwrap().as_deref(), Some(&b"3"[..]));
        assert_eq!(std::fs::metadata(&log).unwrap().len(), 0, "checkpointed at open");
        assert_eq!(dropped.len(), 1);
        assert!(
            dropped[0].contains(&format!("3 bytes at offset {torn_at}")) && dropped[0].contains("never acknowledged"),
            "{}",
            dropped[0]
        );
        drop(wal);
    }

    #[test]
    fn damage_in_the_middle_of_the_log_is_named_and_what_follows_is_replayed() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        let mut bytes = Vec::new();
        frames::encode(&put("a", "1"), &mut bytes);
        let second = bytes.len();
        frames::encode(&put("b", "2"), &mut bytes);
        let third = bytes.len();
        frames::encode(&put("c", "3"), &mut bytes);
        bytes[third - 1] ^= 0x40; // inside the second frame's payload
        std::fs::write(&log, &bytes).unwrap();
        let db = sled::Config::new().path(dir.path().join("db")).open().unwrap();
        let (wal, dropped) = Wal::open(dir.path(), &log, db.clone(), WalTuning::default()).unwrap();
        assert!(db.get("a").unwrap().is_some() && db.get("c").unwrap().is_some(), "frames after the damage replayed");
        assert!(db.get("b").unwrap().is_none());
        let want = format!("{} bytes at offset {second}", third - second);
        assert!(dropped.len() == 1 && dropped[0].contains(&want) && dropped[0].contains("acknowledged"), "{dropped:?}");
        drop(wal);
    }

    #[tokio::test]
    async fn every_acknowledged_batch_is_in_the_archive_and_rebuilds_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        {
            let db = sled::Config::new().path(dir.path().join("db")).open().unwrap();
            // Something sled held before the archive existed is seeded into it.
            db.insert("old", "0").unwrap();
            let (wal, _) = Wal::open(dir.path(), &log, db.clone(), WalTuning::default()).unwrap();
            wal.commit(put("a", "1")).await.unwrap();
            wal.commit(vec![(b"old".to_vec(), Vec::new()), (b"b".to_vec(), b"2".to_vec())]).await.unwrap();
            drop(wal); // the closing checkpoint archives the log
        }
        let fresh = sled::Config::new().path(dir.path().join("fresh")).open().unwrap();
        let replayed = archive::replay(dir.path(), &fresh).unwrap();
        assert!(replayed.dropped.is_empty(), "{replayed:?}");
        let got: Vec<(Vec<u8>, Vec<u8>)> =
            fresh.iter().map(|kv| kv.map(|(k, v)| (k.to_vec(), v.to_vec())).unwrap()).collect();
        assert_eq!(got, vec![(b"a".to_vec(), b"1".to_vec()), (b"b".to_vec(), b"2".to_vec())]);
    }

    fn small(checkpoint_bytes: u64, backlog_bytes: u32, backlog_batches: u32) -> WalTuning {
        WalTuning { backlog_bytes, backlog_batches, checkpoint_bytes }
    }

    #[tokio::test]
    async fn the_log_is_never_truncated_past_a_batch_sled_has_not_applied() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        let db = sled::Config::new().path(dir.path().join("db")).open().unwrap();
        // A checkpoint is due after every round.
        let (wal, _) = Wal::open(dir.path(), &log, db.clone(), small(1, 1 << 20, 1024)).unwrap();
        let wal = Arc::new(wal);
        wal.pause_apply(true);
        wal.commit(put("a", "1")).await.unwrap();
        // The flusher now waits for the applier before it may truncate.
        let waiting = {
            let wal = wal.clone();
            tokio::spawn(async move { wal.commit(put("b", "2")).await })
        };
        for _ in 0..20 {
            tokio::time::sleep(Duration::from_millis(10)).await;
            assert!(std::fs::metadata(&log).unwrap().len() > 0, "the log still holds the unapplied batch");
        }
        assert!(db.get("a").unwrap().is_none(), "sled lacks it");
        assert_eq!(wal.reads(&db).get("a").unwrap().as_deref(), Some(&b"1"[..]), "readers have it");
        assert!(!waiting.is_finished(), "the flusher waits for sled before its next round");
        wal.pause_apply(false);
        tokio::time::timeout(Duration::from_secs(20), waiting).await.unwrap().unwrap().unwrap();
        wal.settle();
        assert_eq!(db.get("b").unwrap().as_deref(), Some(&b"2"[..]));
        assert!(wal.checkpoints() >= 1);
        drop(wal);
        assert_eq!(std::fs::metadata(&log).unwrap().len(), 0, "checkpointed at close");
        let fresh = sled::Config::new().path(dir.path().join("fresh")).open().unwrap();
        archive::replay(dir.path(), &fresh).unwrap();
        assert_eq!(fresh.len(), 2, "both acknowledged batches are in the archive");
    }

    /// Start `n` commits of `value`-sized batches, each its own task.
    fn spawn_commits(wal: &Arc<Wal>, n: usize, value: usize) -> Vec<tokio::task::JoinHandle<Result<(), Error>>> {
        (0..n)
            .map(|i| {
                let wal = wal.clone();
                tokio::spawn(async move { wal.commit(vec![(format!("k{i:02}").into_bytes(), vec![7; value])]).await })
            })
            .collect()
    }

    /// Wait (bounded) until `unapplied` stops growing; then it is the backlog held.
    async fn held(wal: &Wal, want: usize) -> usize {
        for _ in 0..200 {
            if wal.unapplied() >= want {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // Past the bound nothing more gets in, however long we wait.
        tokio::time::sleep(Duration::from_millis(100)).await;
        wal.unapplied()
    }

    // One worker thread: the waiting appends must not block it, or this
    // test could not go on to let the applier go.
    #[tokio::test(flavor = "current_thread")]
    async fn appends_wait_for_room_while_the_apply_is_behind_then_proceed() {
        for (name, tuning, bound) in [
            ("batches", small(64 << 20, 1 << 20, 4), 4),
            // Each batch costs 3 + 1000 + 32 + 64 = 1099 bytes: five fit.
            ("bytes", small(64 << 20, 5 * 1099 + 100, 1024), 5),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let db = sled::Config::new().path(dir.path().join("db")).open().unwrap();
            let wal = Arc::new(Wal::open(dir.path(), &dir.path().join("log"), db.clone(), tuning).unwrap().0);
            wal.pause_apply(true);
            let tasks = spawn_commits(&wal, 12, 1000);
            assert_eq!(held(&wal, bound).await, bound, "{name}: the backlog stops at its bound");
            let done = tasks.iter().filter(|t| t.is_finished()).count();
            assert_eq!(done, bound, "{name}: only the appends that fit were acknowledged");
            assert_eq!(wal.shared.overlay.len(), bound, "{name}: memory holds only the bound");
            wal.pause_apply(false);
            for t in tasks {
                tokio::time::timeout(Duration::from_secs(20), t).await.unwrap().unwrap().unwrap();
            }
            wal.settle();
            assert_eq!(db.len(), 12, "{name}: every append went through once there was room");
            assert_eq!(wal.shared.overlay.len(), 0);
        }
    }
}
