//! What `jamjet repair` needs from the sled store: read every stored value
//! and say which do not decode ([`SledJournal::audit`]), read the readable
//! prefix of a damaged history, move values into a quarantine folder
//! ([`SledJournal::quarantine`]), rewrite the index ([`SledJournal::write_index`])
//! and rebuild sled from the journal archive ([`rebuild_store`]).
//!
//! The decisions (what each execution's row should say, which timers it
//! has) are the caller's: they need the state machine, which sits above
//! the journal. Every write here goes through the log, so it is durable
//! and archived like any append.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::mailbox::{self, EXPIRY, KEPT, WAIT};
use super::sled_store::{
    EVENT, KEY, META, REGISTERED, TIMER, WORKFLOW, checked_files, decode_timer, event_key, id_in, meta_key, open_sled,
    prefixed, seq_in, timer_key,
};
use super::wal::Batch;
use super::wal::archive::{self, Replayed};
use super::{
    Error, ExecutionMeta, Record, SledJournal, Timer, decode_frame_at, decode_meta_of, decode_registration,
    decode_workflow, encode_meta,
};
use crate::id::ExecutionId;

/// What kind of stored value a key holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Record,
    IndexRow,
    Workflow,
    IdempotencyKey,
    Timer,
    Registration,
    /// An entry of the wait index (`v{event key}\0{exec}`).
    WaitEntry,
    /// A kept event, or its expiry entry.
    KeptEvent,
    /// A session record (`s{session id}`).
    Session,
}

/// A stored value that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Bad {
    #[serde(serialize_with = "as_text")]
    pub key: Vec<u8>,
    pub kind: Kind,
    pub execution: Option<ExecutionId>,
    pub detail: String,
}

/// A stored key as an operator reads it: `e/<exec>/<seq>`, `x/<exec>`,
/// `t/<unix ms>/<exec>`, `w/<hash>`, `k/<key>`, `r/<workflow> <version>`;
/// bytes of anything else as `\xNN` where not printable.
pub fn key_text(key: &[u8]) -> String {
    let raw = |bytes: &[u8]| -> String {
        bytes
            .iter()
            .map(|&b| if b.is_ascii_graphic() { (b as char).to_string() } else { format!("\\x{b:02x}") })
            .collect()
    };
    match (key.first().copied(), key.len()) {
        (Some(EVENT), 25) => format!("e/{}/{}", id_in(key).expect("25 bytes"), seq_in(key).expect("25 bytes")),
        (Some(META), 17) => format!("x/{}", id_in(key).expect("17 bytes")),
        (Some(TIMER), 25) => match decode_timer(key) {
            Ok(t) => format!("t/{}/{}", t.at_ms, t.execution),
            Err(_) => raw(key),
        },
        (Some(p @ (WORKFLOW | KEY)), _) => format!("{}/{}", p as char, raw(&key[1..])),
        (Some(REGISTERED), _) => format!("r/{}", raw(&key[1..]).replace("\\x00", " ")),
        _ => raw(key),
    }
}

fn as_text<S: serde::Serializer>(key: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&key_text(key))
}

fn as_hex<S: serde::Serializer>(key: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&key.iter().map(|b| format!("{b:02x}")).collect::<String>())
}

/// One execution's history as stored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct History {
    /// Records in the readable prefix.
    pub readable: u64,
    /// The first record that cannot be read, and why.
    pub damage: Option<(u64, String)>,
    /// The keys of the frame that holds it and of every frame after it.
    pub unreadable_keys: Vec<Vec<u8>>,
}

/// Everything in the store, read once.
#[derive(Debug, Default)]
pub struct Audit {
    /// Index rows that decode.
    pub rows: BTreeMap<ExecutionId, ExecutionMeta>,
    /// Idempotency keys (the key's bytes) and the execution each names.
    pub keys: BTreeMap<Vec<u8>, ExecutionId>,
    pub timers: BTreeSet<Timer>,
    /// The wait index: (event key, execution).
    pub waits: BTreeSet<(String, ExecutionId)>,
    /// Hashes whose workflow IR decodes.
    pub workflows: BTreeSet<String>,
    /// Every execution that has events.
    pub histories: BTreeMap<ExecutionId, History>,
    /// Values (other than records) that cannot be read.
    pub bad: Vec<Bad>,
    /// Keys this build does not know (left alone).
    pub unknown: usize,
    /// Set when sled itself failed partway: the audit is incomplete.
    pub unreadable: Option<String>,
}

/// The index as it should be, to replace what is stored.
#[derive(Debug, Default)]
pub struct IndexChanges {
    pub put_rows: Vec<ExecutionMeta>,
    pub remove_rows: Vec<ExecutionId>,
    pub put_keys: Vec<(Vec<u8>, ExecutionId)>,
    pub remove_keys: Vec<Vec<u8>>,
    pub set_timers: Vec<Timer>,
    pub clear_timers: Vec<Timer>,
    /// Wait index entries: (event key, execution).
    pub set_waits: Vec<(String, ExecutionId)>,
    pub clear_waits: Vec<(String, ExecutionId)>,
}

impl IndexChanges {
    pub fn is_empty(&self) -> bool {
        self.put_rows.is_empty()
            && self.remove_rows.is_empty()
            && self.put_keys.is_empty()
            && self.remove_keys.is_empty()
            && self.set_timers.is_empty()
            && self.clear_timers.is_empty()
            && self.set_waits.is_empty()
            && self.clear_waits.is_empty()
    }
}

/// A value to move into quarantine, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Quarantine {
    #[serde(serialize_with = "as_text")]
    pub key: Vec<u8>,
    pub execution: Option<ExecutionId>,
    pub reason: String,
}

/// How many keys one repair write carries.
const KEYS_PER_BATCH: usize = 512;

impl SledJournal {
    /// Read every stored value once and say what cannot be read.
    pub fn audit(&self) -> Audit {
        let mut out = Audit::default();
        let mut current: Option<(ExecutionId, History)> = None;
        for kv in self.reads().iter() {
            let (k, v) = match kv {
                Ok(kv) => kv,
                Err(e) => {
                    out.unreadable = Some(format!("sled cannot read the store in full: {e}"));
                    break;
                }
            };
            let bad = |kind, execution, detail: String| Bad { key: k.to_vec(), kind, execution, detail };
            match k.first().copied() {
                Some(EVENT) => {
                    let (Some(id), Some(first)) = (id_in(&k), seq_in(&k)) else {
                        out.bad.push(bad(Kind::Record, None, format!("an event key of {} bytes", k.len())));
                        continue;
                    };
                    if current.as_ref().is_none_or(|(c, _)| *c != id) {
                        if let Some((c, h)) = current.take() {
                            out.histories.insert(c, h);
                        }
                        current = Some((id, History::default()));
                    }
                    let (_, h) = current.as_mut().expect("set above");
                    if h.damage.is_none() {
                        let next = h.readable + 1;
                        if first != next {
                            h.damage = Some((next, format!("it is missing (the next stored record is {first})")));
                        } else {
                            match decode_frame_at(first, &v) {
                                Ok(records) => h.readable += records.len() as u64,
                                Err(b) => h.damage = Some((b.seq, b.detail)),
                            }
                        }
                    }
                    if h.damage.is_some() {
                        h.unreadable_keys.push(k.to_vec());
                    }
                }
                Some(META) => match id_in(&k).filter(|_| k.len() == 17) {
                    Some(id) => match decode_meta_of(id, &v) {
                        Ok(meta) => {
                            out.rows.insert(id, meta);
                        }
                        Err(d) => out.bad.push(bad(Kind::IndexRow, Some(id), d.detail)),
                    },
                    None => out.bad.push(bad(Kind::IndexRow, None, format!("an index key of {} bytes", k.len()))),
                },
                Some(WORKFLOW) => match (std::str::from_utf8(&k[1..]), decode_workflow(&v)) {
                    (Ok(hash), Ok(_)) => {
                        out.workflows.insert(hash.to_string());
                    }
                    (_, Err(e)) => out.bad.push(bad(Kind::Workflow, None, super::corrupt_detail(e))),
                    (Err(_), Ok(_)) => out.bad.push(bad(Kind::Workflow, None, "its hash is not text".into())),
                },
                Some(KEY) => match <[u8; 16]>::try_from(v.as_ref()) {
                    Ok(id) => {
                        out.keys.insert(k[1..].to_vec(), ExecutionId::from_bytes(id));
                    }
                    Err(_) => {
                        out.bad.push(bad(Kind::IdempotencyKey, None, format!("names an id of {} bytes", v.len())))
                    }
                },
                Some(TIMER) => match decode_timer(&k).ok().filter(|_| k.len() == 25) {
                    Some(t) => {
                        out.timers.insert(t);
                    }
                    None => out.bad.push(bad(Kind::Timer, None, format!("a timer key of {} bytes", k.len()))),
                },
                Some(REGISTERED) => {
                    if let Err(e) = decode_registration(&v) {
                        out.bad.push(bad(Kind::Registration, None, super::corrupt_detail(e)));
                    }
                }
                Some(WAIT) => match mailbox::decode_wait_key(&k) {
                    Ok(entry) => {
                        out.waits.insert(entry);
                    }
                    Err(e) => out.bad.push(bad(Kind::WaitEntry, None, super::corrupt_detail(e))),
                },
                Some(KEPT) => {
                    if let Err(e) = mailbox::decode_kept(&k, &v) {
                        out.bad.push(bad(Kind::KeptEvent, None, super::corrupt_detail(e)));
                    }
                }
                Some(EXPIRY) => {
                    if let Err(e) = mailbox::decode_expiry_key(&k) {
                        out.bad.push(bad(Kind::KeptEvent, None, super::corrupt_detail(e)));
                    }
                }
                Some(super::sled_store::PRUNED) => {
                    if let Err(e) = super::decode_tombstone(&v) {
                        out.bad.push(bad(Kind::IndexRow, id_in(&k), super::corrupt_detail(e)));
                    }
                }
                // Derived from the rows; built again at open when the marker is gone.
                Some(super::row_index::BY_STATUS | super::row_index::INDEXED) => {}
                Some(super::session::SESSION) => {
                    if let Err(e) = super::session::decode_session(&v) {
                        out.bad.push(bad(Kind::Session, None, super::corrupt_detail(e)));
                    }
                }
                _ => out.unknown += 1,
            }
        }
        if let Some((c, h)) = current.take() {
            out.histories.insert(c, h);
        }
        out
    }

    /// The keys of every stored frame of an execution's history.
    pub fn event_keys(&self, execution: ExecutionId) -> Vec<Vec<u8>> {
        self.reads()
            .range(event_key(execution, 0)..=event_key(execution, u64::MAX))
            .map_while(Result::ok)
            .map(|(k, _)| k.to_vec())
            .collect()
    }

    /// The last record of an execution's history, if its frame reads (what
    /// a history cut by damage had come to).
    pub fn last_record(&self, execution: ExecutionId) -> Option<Record> {
        let (k, v) = self.reads().last_in(event_key(execution, 0)..=event_key(execution, u64::MAX))?.ok()?;
        decode_frame_at(seq_in(&k)?, &v).ok()?.pop()
    }

    /// The readable prefix of an execution's history: every record before
    /// the first one that cannot be read.
    pub fn read_prefix(&self, execution: ExecutionId) -> Result<Vec<Record>, Error> {
        let mut records = Vec::new();
        for kv in self.reads().range(event_key(execution, 0)..=event_key(execution, u64::MAX)) {
            let Ok((k, v)) = kv else { break };
            if seq_in(&k) != Some(records.len() as u64 + 1) {
                break;
            }
            match decode_frame_at(records.len() as u64 + 1, &v) {
                Ok(frame) => records.extend(frame),
                Err(_) => break,
            }
        }
        Ok(records)
    }

    /// Move these values into `folder` (one file each, and a
    /// `manifest.json` saying what each was and why it was moved), synced,
    /// then remove their keys durably. Nothing is deleted that is not in
    /// the folder first; a value sled cannot read is listed without a file.
    pub async fn quarantine(&self, folder: &Path, items: &[Quarantine]) -> Result<(), Error> {
        if items.is_empty() {
            return Ok(());
        }
        let fail = |what: &str, e: std::io::Error| Error::Storage(format!("{what} in {}: {e}", folder.display()));
        std::fs::create_dir_all(folder).map_err(|e| fail("cannot create the quarantine folder", e))?;
        #[derive(Serialize)]
        struct Entry<'a> {
            #[serde(flatten)]
            item: &'a Quarantine,
            /// The key's bytes, to put the value back by hand.
            #[serde(serialize_with = "as_hex")]
            key_hex: &'a [u8],
            /// The file holding the value, in the folder.
            file: Option<String>,
        }
        let mut manifest = Vec::with_capacity(items.len());
        for (n, item) in items.iter().enumerate() {
            let file = match self.reads().get(&item.key) {
                Ok(Some(value)) => {
                    let name = format!("{n:06}.bin");
                    let mut f = std::fs::File::create(folder.join(&name)).map_err(|e| fail("cannot create", e))?;
                    f.write_all(&value).and_then(|()| f.sync_all()).map_err(|e| fail("cannot write", e))?;
                    Some(name)
                }
                Ok(None) | Err(_) => None,
            };
            manifest.push(Entry { item, key_hex: &item.key, file });
        }
        let text = serde_json::to_vec_pretty(&manifest).expect("the manifest serializes");
        let path = folder.join("manifest.json");
        let mut f = std::fs::File::create(&path).map_err(|e| fail("cannot create", e))?;
        f.write_all(&text).and_then(|()| f.sync_all()).map_err(|e| fail("cannot write", e))?;
        std::fs::File::open(folder).and_then(|d| d.sync_all()).map_err(|e| fail("cannot sync", e))?;
        for chunk in items.chunks(KEYS_PER_BATCH) {
            self.commit(chunk.iter().map(|q| (q.key.clone(), Vec::new())).collect()).await?;
        }
        Ok(())
    }

    /// Write index changes durably (rows, idempotency keys, timers, waits).
    pub async fn write_index(&self, changes: &IndexChanges) -> Result<(), Error> {
        // The rows change under their index by status: the marker goes
        // first, so the next open builds it again whole.
        self.rows_indexed.store(false, std::sync::atomic::Ordering::Relaxed);
        let mut writes: Batch = vec![(super::row_index::marker(), Vec::new())];
        writes.extend(changes.remove_rows.iter().map(|id| (meta_key(*id).to_vec(), Vec::new())));
        writes.extend(changes.put_rows.iter().map(|m| (meta_key(m.id).to_vec(), encode_meta(m))));
        writes.extend(changes.remove_keys.iter().map(|k| (prefixed(KEY, k), Vec::new())));
        writes.extend(changes.put_keys.iter().map(|(k, id)| (prefixed(KEY, k), id.to_bytes().to_vec())));
        writes.extend(changes.clear_timers.iter().map(|t| (timer_key(t.at_ms, t.execution).to_vec(), Vec::new())));
        writes.extend(changes.set_timers.iter().map(|t| (timer_key(t.at_ms, t.execution).to_vec(), vec![1])));
        writes.extend(changes.clear_waits.iter().map(|(k, id)| (mailbox::wait_key(k, *id), Vec::new())));
        writes.extend(changes.set_waits.iter().map(|(k, id)| (mailbox::wait_key(k, *id), vec![1])));
        let mut rest = writes.as_slice();
        while !rest.is_empty() {
            let (now, later) = rest.split_at(rest.len().min(KEYS_PER_BATCH));
            self.commit(now.to_vec()).await?;
            rest = later;
        }
        Ok(())
    }
}

/// The key of an execution's index row.
pub fn row_key(execution: ExecutionId) -> Vec<u8> {
    meta_key(execution).to_vec()
}

/// Whether `data_dir` has a journal archive to rebuild from.
pub fn has_archive(data_dir: &Path) -> bool {
    data_dir.join(archive::DIR).is_dir()
}

/// What in the journal archive of `data_dir` is damaged, one sentence per
/// stretch of bytes (empty when it is whole).
pub fn verify_archive(data_dir: &Path) -> Result<Vec<String>, Error> {
    archive::verify(data_dir).map_err(Error::Storage)
}

/// Move the journal archive of `data_dir` into `quarantine`: the next open
/// seeds a new one from the store (with the data dir not in use).
pub fn set_archive_aside(data_dir: &Path, quarantine: &Path) -> Result<(), Error> {
    let from = data_dir.join(archive::DIR);
    let to = quarantine.join(archive::DIR);
    std::fs::create_dir_all(quarantine)
        .and_then(|()| std::fs::rename(&from, &to))
        .map_err(|e| Error::Storage(format!("cannot move {} to {}: {e}", from.display(), to.display())))
}

/// sled's files that fail their own checksum and that sled can do
/// without: its settings (`conf`, written anew at open) and its newest
/// snapshot (sled then recovers from its log). For a data dir with no
/// archive to rebuild from.
pub fn settings_failing_checksum(data_dir: &Path) -> Vec<PathBuf> {
    checked_files(&data_dir.join("journal")).into_iter().filter(|(_, bad)| *bad).map(|(p, _)| p).collect()
}

/// Move these files of sled's into `quarantine/journal/`.
pub fn set_files_aside(files: &[PathBuf], quarantine: &Path) -> Result<(), Error> {
    let to = quarantine.join("journal");
    std::fs::create_dir_all(&to).map_err(|e| Error::Storage(format!("cannot create {}: {e}", to.display())))?;
    for file in files {
        let target = to.join(file.file_name().unwrap_or_default());
        std::fs::rename(file, &target)
            .map_err(|e| Error::Storage(format!("cannot move {} to {}: {e}", file.display(), target.display())))?;
    }
    Ok(())
}

/// Rebuild sled from the journal archive: move `journal/` (sled's files)
/// into `quarantine` as it is, create a fresh store, and replay every
/// archived batch into it. The log (`journal.log`) is replayed on top at
/// the next open, as always. Nothing is deleted.
pub fn rebuild_store(data_dir: &Path, quarantine: &Path) -> Result<Replayed, Error> {
    if !has_archive(data_dir) {
        return Err(Error::Storage(format!(
            "{} has no journal archive ({}/), so sled's files cannot be rebuilt from it",
            data_dir.display(),
            archive::DIR
        )));
    }
    let store = data_dir.join("journal");
    std::fs::create_dir_all(quarantine)
        .map_err(|e| Error::Storage(format!("cannot create {}: {e}", quarantine.display())))?;
    let aside: PathBuf = quarantine.join("journal");
    if store.exists() {
        std::fs::rename(&store, &aside)
            .map_err(|e| Error::Storage(format!("cannot move {} to {}: {e}", store.display(), aside.display())))?;
    }
    let db = open_sled(data_dir, &store)?;
    let replayed = archive::replay(data_dir, &db).map_err(Error::Storage)?;
    // The rows come back as the archive had them: the next open indexes them again.
    db.remove(super::row_index::marker()).map_err(|e| Error::Storage(format!("sled: {e}")))?;
    db.flush().map_err(|e| Error::Storage(format!("sled flush: {e}")))?;
    Ok(replayed)
}
