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
//! [`CHECKPOINT_BYTES`], and at open), after which the log is truncated.
//! A batch reaches sled only after its frame is durable, so sled never
//! holds anything the log lacks; recovery replays the log's valid frames
//! into sled in order (puts are idempotent) and drops a torn tail, which
//! was never acknowledged. `sled::Db::flush` costs milliseconds under
//! load (it seals and writes its IO buffers from a thread pool); a log
//! append costs one `write` and one `fdatasync`.
//!
//! Each writer is woken exactly once, by its own acknowledgement.
//!
//! Frame: `len: u32 LE | crc32(payload): u32 LE | payload`, payload =
//! version byte + postcard of the batch. A failed write or sync poisons
//! the journal: nothing later is acknowledged, because we can no longer
//! say what reached the disk.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::Error;

/// The puts of one append: applied to sled atomically.
/// Keys and values to write atomically; an empty value removes its key.
pub(crate) type Batch = Vec<(Vec<u8>, Vec<u8>)>;

const WAL_VERSION: u8 = 1;
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

fn encode_frame(batch: &Batch, out: &mut Vec<u8>) {
    let mut payload = vec![WAL_VERSION];
    payload.extend(postcard::to_stdvec(batch).expect("a batch always encodes"));
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    out.extend_from_slice(&payload);
}

/// The batches of the log's valid prefix, and the length of that prefix.
fn decode_frames(bytes: &[u8]) -> (Vec<Batch>, usize) {
    let mut batches = Vec::new();
    let mut off = 0;
    while let Some(header) = bytes.get(off..off + 8) {
        let len = u32::from_le_bytes(header[..4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(header[4..].try_into().expect("4 bytes"));
        let Some(payload) = bytes.get(off + 8..off + 8 + len) else { break };
        if crc32fast::hash(payload) != crc || payload.first() != Some(&WAL_VERSION) {
            break;
        }
        let Ok(batch) = postcard::from_bytes::<Batch>(&payload[1..]) else { break };
        batches.push(batch);
        off += 8 + len;
    }
    (batches, off)
}

fn apply(db: &sled::Db, batch: &Batch) -> Result<(), String> {
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
    /// Replay the log at `path` into `db` (recovery), checkpoint, and start
    /// the flusher.
    pub(crate) fn open(path: &Path, db: sled::Db) -> Result<Wal, Error> {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| io("cannot open the journal log", path, e))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(|e| io("cannot read the journal log", path, e))?;
        let (batches, valid) = decode_frames(&bytes);
        for batch in &batches {
            apply(&db, batch).map_err(|e| Error::Storage(format!("replaying the journal log into sled: {e}")))?;
        }
        if valid < bytes.len() {
            tracing::warn!(
                bytes = bytes.len() - valid,
                "dropping the torn tail of the journal log (an append a crash interrupted; it was never acknowledged)"
            );
        }
        if !batches.is_empty() {
            tracing::info!(batches = batches.len(), "replayed the journal log");
        }
        checkpoint(&db, &mut file).map_err(Error::Storage)?;
        Self::start(file, db)
    }

    /// Start the flusher on a log that recovery has already emptied.
    fn start(log: impl Log, db: sled::Db) -> Result<Wal, Error> {
        let shared = Arc::new(Shared {
            pending: Mutex::new(Pending::default()),
            wake: Condvar::new(),
            counters: Counters::default(),
        });
        let flusher = shared.clone();
        let thread = std::thread::Builder::new()
            .name("jamjet-journal-sync".into())
            .spawn(move || flush_loop(&flusher, log, db))
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
}

/// Flush sled, then empty the log: everything in it is in sled now.
fn checkpoint(db: &sled::Db, log: &mut impl Log) -> Result<(), String> {
    db.flush().map_err(|e| format!("sled flush: {e}"))?;
    log.reset().map_err(|e| format!("emptying the journal log: {e}"))
}

fn flush_loop(shared: &Shared, mut file: impl Log, db: sled::Db) {
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
            encode_frame(b, &mut buf);
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
        if result.is_ok() && written >= CHECKPOINT_BYTES {
            let began = Instant::now();
            result = checkpoint(&db, &mut file);
            tracing::debug!(took_ms = began.elapsed().as_millis() as u64, "journal checkpoint");
            shared.counters.checkpoints.fetch_add(1, Ordering::Relaxed);
            written = 0;
        }
        if let Err(msg) = &result {
            tracing::error!(error = %msg, "journal write failed; the journal is poisoned");
            shared.pending.lock().expect("wal lock").poisoned = Some(msg.clone());
        }
        for (_, ack) in round {
            let _ = ack.send(result.clone());
        }
        if result.is_err() {
            // Fail whoever queued meanwhile, then stop.
            for (_, ack) in std::mem::take(&mut shared.pending.lock().expect("wal lock").batches) {
                let _ = ack.send(result.clone());
            }
            return;
        }
    }
    if let Err(msg) = checkpoint(&db, &mut file) {
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

    #[test]
    fn frames_round_trip_and_a_torn_tail_is_cut_off() {
        let mut buf = Vec::new();
        encode_frame(&put("a", "1"), &mut buf);
        let first = buf.len();
        encode_frame(&put("b", "2"), &mut buf);
        let whole = buf.len();
        let (batches, valid) = decode_frames(&buf);
        assert_eq!((batches.len(), valid), (2, whole));
        for cut in 1..(whole - first) {
            let (batches, valid) = decode_frames(&buf[..whole - cut]);
            assert_eq!((batches, valid), (vec![put("a", "1")], first), "cut {cut}");
        }
        buf[whole - 1] ^= 0xff; // a flipped bit in the last payload
        assert_eq!(decode_frames(&buf).0.len(), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn many_writers_share_few_syncs_and_everything_lands_in_sled() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::Config::new().path(dir.path().join("db")).flush_every_ms(None).open().unwrap();
        let wal = Arc::new(Wal::open(&dir.path().join("log"), db.clone()).unwrap());
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
    }

    #[tokio::test]
    async fn a_failed_sync_fails_its_writer_and_every_later_one_and_reaches_no_reader() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::Config::new().path(dir.path().join("db")).open().unwrap();
        let wal = Wal::start(FailingLog { ok: 1 }, db.clone()).unwrap();
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
        let mut frames = Vec::new();
        encode_frame(&put("x", "1"), &mut frames);
        encode_frame(&put("x", "2"), &mut frames);
        encode_frame(&put("y", "3"), &mut frames);
        frames.extend_from_slice(&[9, 0, 0]); // the torn start of a fourth
        std::fs::write(&log, &frames).unwrap();
        let db = sled::Config::new().path(dir.path().join("db")).open().unwrap();
        let wal = Wal::open(&log, db.clone()).unwrap();
        assert_eq!(db.get("x").unwrap().as_deref(), Some(&b"2"[..]), "replayed in order");
        assert_eq!(db.get("y").unwrap().as_deref(), Some(&b"3"[..]));
        assert_eq!(std::fs::metadata(&log).unwrap().len(), 0, "checkpointed at open");
        drop(wal);
    }
}
