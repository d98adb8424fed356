//! Group commit through a write-ahead log in front of sled.
//!
//! Writers hand their batch (the key/value puts of one append) to one
//! flusher thread and await it. The flusher takes every batch that arrived
//! since its last round, writes them to the log file as checksummed
//! frames, makes that durable with one `fdatasync`, applies the batches to
//! sled in log order, and only then acknowledges them. One sync serves
//! every writer that queued while the previous one ran.
//!
//! sled itself is flushed only at checkpoints (when the log passes
//! [`CHECKPOINT_BYTES`], at open and at close), after which the log is
//! truncated. A batch reaches sled only after its frame is durable, so
//! sled never holds anything the log lacks; recovery replays the log's
//! valid frames into sled in order (puts are idempotent) and drops what
//! is no valid frame, saying what that was. `sled::Db::flush` costs milliseconds under
//! load (it seals and writes its IO buffers from a thread pool); a log
//! append costs one `write` and one `fdatasync`.
//!
//! Each writer is woken exactly once, by its own acknowledgement.
//!
//! Frames ([`frames`]): `len: u32 LE | crc32(payload): u32 LE | payload`,
//! payload = version byte + postcard of the batch. At open, a torn tail is
//! told apart from damage, valid frames after damage are replayed, and the
//! warning says what was dropped and whether it had been acknowledged. A
//! failed write or sync poisons the journal: nothing later is
//! acknowledged, because we can no longer say what reached the disk.
//!
//! A checkpoint (at open, past [`CHECKPOINT_BYTES`], at close) flushes
//! sled, appends the log's frames to the [`archive`] and syncs it, then
//! empties the log: every acknowledged batch stays in our own files, so a
//! store whose sled files are damaged can be rebuilt.

pub(crate) mod archive;
pub(crate) mod frames;

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use self::archive::Archive;
pub(crate) use self::frames::Batch;
use super::Error;

/// Past this size the flusher checkpoints: flush sled, truncate the log.
const CHECKPOINT_BYTES: u64 = 64 * 1024 * 1024;
/// A round (sync + apply) slower than this is logged.
const SLOW_ROUND: Duration = Duration::from_millis(200);
/// How long the flusher lets writers gather once batching is under way.
const COMMIT_DELAY: Duration = Duration::from_micros(200);

/// Tells one writer its batch is durable and applied (or why not).
type Ack = oneshot::Sender<Result<(), String>>;

#[derive(Default)]
struct Pending {
    batches: Vec<(Batch, Ack)>,
    /// Set once a write or sync failed: nothing more is accepted.
    poisoned: Option<String>,
    shutdown: bool,
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
    counters: Counters,
}

/// The log and its flusher thread. Dropping it stops the flusher after a
/// last round and a checkpoint.
pub(crate) struct Wal {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

fn io(what: &str, path: &Path, e: std::io::Error) -> Error {
    Error::Storage(format!("{what} {}: {e}", path.display()))
}

pub(crate) fn apply(db: &sled::Db, batch: &Batch) -> Result<(), String> {
    let mut b = sled::Batch::default();
    for (k, v) in batch {
        // No stored value is empty: an empty value is a removal.
        if v.is_empty() {
            b.remove(k.as_slice());
        } else {
            b.insert(k.as_slice(), v.as_slice());
        }
    }
    db.apply_batch(b).map_err(|e| e.to_string())
}

impl Wal {
    /// Replay the log at `path` into `db` (recovery), checkpoint into the
    /// archive of `data_dir` (created if absent), and start the flusher.
    /// Returns what recovery dropped, one sentence per damaged stretch.
    pub(crate) fn open(data_dir: &Path, path: &Path, db: sled::Db) -> Result<(Wal, Vec<String>), Error> {
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
        Ok((Self::start(file, db, archive)?, dropped))
    }

    /// Start the flusher on a log that recovery has already emptied.
    fn start(log: impl Log, db: sled::Db, archive: Option<Archive>) -> Result<Wal, Error> {
        let shared = Arc::new(Shared {
            pending: Mutex::new(Pending::default()),
            wake: Condvar::new(),
            counters: Counters::default(),
        });
        let flusher = shared.clone();
        let thread = std::thread::Builder::new()
            .name("jamjet-journal-sync".into())
            .spawn(move || flush_loop(&flusher, log, db, archive))
            .map_err(|e| Error::Storage(format!("cannot start the journal sync thread: {e}")))?;
        Ok(Wal { shared, thread: Some(thread) })
    }

    /// Make `batch` durable, then visible in sled.
    pub(crate) async fn commit(&self, batch: Batch) -> Result<(), Error> {
        let poisoned =
            |msg: &str| Error::Storage(format!("a journal sync failed, nothing more is acknowledged: {msg}"));
        let (ack, acked) = oneshot::channel();
        {
            let mut p = self.shared.pending.lock().expect("wal lock");
            if let Some(msg) = &p.poisoned {
                return Err(poisoned(msg));
            }
            p.batches.push((batch, ack));
        }
        self.shared.wake.notify_one();
        match acked.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(msg)) => Err(poisoned(&msg)),
            Err(_) => Err(Error::Storage("the journal was closed".into())),
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
/// in sled and in the archive now.
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

fn flush_loop(shared: &Shared, mut file: impl Log, db: sled::Db, mut archive: Option<Archive>) {
    let mut last_round = 0;
    let mut written: u64 = 0;
    let mut buf = Vec::new();
    loop {
        {
            let mut p = shared.pending.lock().expect("wal lock");
            while p.batches.is_empty() && !p.shutdown {
                p = shared.wake.wait(p).expect("wal lock");
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
        for (b, _) in &round {
            frames::encode(b, &mut buf);
        }
        let began = Instant::now();
        let mut result =
            file.append_durably(&buf).map_err(|e| format!("writing the journal log: {e}")).and_then(|()| {
                let synced = began.elapsed();
                shared.counters.syncs.fetch_add(1, Ordering::Relaxed);
                shared.counters.sync_us.fetch_add(synced.as_micros() as u64, Ordering::Relaxed);
                super::latency::JOURNAL_SYNC.record(synced);
                let applying = Instant::now();
                let applied = round.iter().try_for_each(|(b, _)| apply(&db, b));
                let apply_took = applying.elapsed();
                if synced + apply_took > SLOW_ROUND {
                    tracing::warn!(
                        sync_ms = synced.as_millis() as u64,
                        apply_ms = apply_took.as_millis() as u64,
                        batches = round.len(),
                        "slow journal round"
                    );
                }
                applied
            });
        written += buf.len() as u64;
        if let Err(msg) = &result {
            tracing::error!(error = %msg, "journal write failed; the journal is poisoned");
            shared.pending.lock().expect("wal lock").poisoned = Some(msg.clone());
        }
        // This round's batches are durable and applied: say so before a
        // checkpoint makes its writers wait for it (and a failed checkpoint
        // fails only what comes after, never what was already durable).
        for (_, ack) in round {
            let _ = ack.send(result.clone());
        }
        if result.is_ok() && written >= CHECKPOINT_BYTES {
            let began = Instant::now();
            result = checkpoint(&db, &mut file, archive.as_mut(), None);
            tracing::debug!(took_ms = began.elapsed().as_millis() as u64, "journal checkpoint");
            shared.counters.checkpoints.fetch_add(1, Ordering::Relaxed);
            written = 0;
            if let Err(msg) = &result {
                tracing::error!(error = %msg, "journal checkpoint failed; the journal is poisoned");
                shared.pending.lock().expect("wal lock").poisoned = Some(msg.clone());
            }
        }
        if result.is_err() {
            // Fail whoever queued meanwhile, then stop.
            for (_, ack) in std::mem::take(&mut shared.pending.lock().expect("wal lock").batches) {
                let _ = ack.send(result.clone());
            }
            return;
        }
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
        let wal = Arc::new(Wal::open(dir.path(), &dir.path().join("log"), db.clone()).unwrap().0);
        let tasks: Vec<_> = (0..300)
            .map(|i| {
                let wal = wal.clone();
                tokio::spawn(async move { wal.commit(put(&format!("k{i:03}"), "v")).await })
            })
            .collect();
        for t in tasks {
            t.await.unwrap().unwrap();
        }
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
        let wal = Wal::start(FailingLog { ok: 1 }, db.clone(), None).unwrap();
        wal.commit(put("a", "1")).await.unwrap();
        let err = wal.commit(put("b", "2")).await.unwrap_err().to_string();
        assert!(err.contains("EIO from the test disk"), "{err}");
        let err = wal.commit(put("c", "3")).await.unwrap_err().to_string();
        assert!(err.contains("nothing more is acknowledged"), "{err}");
        assert_eq!(db.get("a").unwrap().as_deref(), Some(&b"1"[..]));
        assert!(db.get("b").unwrap().is_none() && db.get("c").unwrap().is_none(), "unsynced batches never reach sled");
        assert_eq!(wal.syncs(), 1);
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
        let (wal, dropped) = Wal::open(dir.path(), &log, db.clone()).unwrap();
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
        let (wal, dropped) = Wal::open(dir.path(), &log, db.clone()).unwrap();
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
            let (wal, _) = Wal::open(dir.path(), &log, db.clone()).unwrap();
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
}
