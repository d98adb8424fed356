//! The journal archive: every batch the log ever made durable, kept after
//! the log is truncated, so the store can be rebuilt from our own frames
//! when sled's files are damaged (`jamjet repair`).
//!
//! Layout: `journal.archive/` in the data dir, numbered segment files
//! (`00000001.log`, ...) of whole frames in the log's format. At each
//! checkpoint the log's frames are appended to the last segment (a new one
//! is begun once it passes [`SEGMENT_BYTES`]) and synced before the log is
//! emptied, so every acknowledged batch is in the log or in the archive.
//! The archive is created whole: when it does not exist yet (a new data
//! dir, or one from before the archive), its first segment is seeded with
//! everything sled holds, written aside and renamed into place. A crash
//! between the archive's sync and the log's truncation archives the same
//! frames twice: replaying a repeated suffix leaves every key as it was.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use super::frames::{self, Batch, Scan};

/// Past this size a segment is closed and the next checkpoint begins another.
const SEGMENT_BYTES: u64 = 64 * 1024 * 1024;
/// How much sled data one seed frame carries.
const SEED_FRAME_BYTES: usize = 1024 * 1024;
pub(crate) const DIR: &str = "journal.archive";

pub(crate) struct Archive {
    dir: PathBuf,
    current: File,
    current_len: u64,
    index: u32,
}

fn segment_name(index: u32) -> String {
    format!("{index:08}.log")
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// The segment files of an archive, in order.
pub(crate) fn segments(dir: &Path) -> std::io::Result<Vec<(u32, PathBuf)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let index = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".log"))
            .and_then(|n| n.parse::<u32>().ok());
        if let Some(index) = index {
            out.push((index, path));
        }
    }
    out.sort();
    Ok(out)
}

impl Archive {
    /// Open the archive in `data_dir`, creating it (seeded with all of
    /// `db`) when there is none. One that exists but cannot be opened is
    /// moved aside (`journal.archive.unopened-<ms>`, for the operator) and
    /// seeded anew, so the archive never skips what the log held meanwhile.
    /// `crashed`: the log was not empty, so the last process died, perhaps
    /// in the middle of a checkpoint's append to the archive (see
    /// [`Archive::cut_torn_tail`]). Fails, changing nothing, if sled cannot
    /// be read in full for a seed.
    pub(crate) fn open_or_seed(data_dir: &Path, db: &sled::Db, crashed: bool) -> Result<Archive, String> {
        let dir = data_dir.join(DIR);
        // Left by a compaction a crash interrupted (see `Archive::replace`).
        for left in [format!("{DIR}.old"), format!("{DIR}.compacting")] {
            let _ = std::fs::remove_dir_all(data_dir.join(left));
        }
        if !dir.exists() {
            seed(data_dir, &dir, db)?;
        }
        match Self::open(&dir, crashed) {
            Ok(archive) => Ok(archive),
            Err(why) => {
                let stamp =
                    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis());
                let aside = data_dir.join(format!("{DIR}.unopened-{stamp}"));
                tracing::error!(error = %why, aside = %aside.display(), "the journal archive cannot be opened: moving it aside and seeding a new one");
                std::fs::rename(&dir, &aside).map_err(|e| format!("{why}; moving it aside failed: {e}"))?;
                seed(data_dir, &dir, db)?;
                Self::open(&dir, false)
            }
        }
    }

    fn open(dir: &Path, crashed: bool) -> Result<Archive, String> {
        let segments = segments(dir).map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
        let index = segments.last().map_or(1, |(i, _)| *i);
        let path = dir.join(segment_name(index));
        if crashed {
            cut_torn_tail(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        }
        let current = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        let current_len = current.metadata().map_err(|e| format!("cannot read {}: {e}", path.display()))?.len();
        Ok(Archive { dir: dir.to_path_buf(), current, current_len, index })
    }

    /// Begin a checkpoint's appends: a new segment once the last is full,
    /// so a segment always holds whole frames.
    pub(crate) fn roll_if_full(&mut self) -> std::io::Result<()> {
        if self.current_len < SEGMENT_BYTES {
            return Ok(());
        }
        let next = self.index + 1;
        let file = OpenOptions::new().create(true).append(true).open(self.dir.join(segment_name(next)))?;
        sync_dir(&self.dir)?;
        self.current = file;
        self.current_len = 0;
        self.index = next;
        Ok(())
    }

    pub(crate) fn append(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.current.write_all(bytes)?;
        self.current_len += bytes.len() as u64;
        Ok(())
    }

    pub(crate) fn sync(&mut self) -> std::io::Result<()> {
        self.current.sync_data()
    }

    /// Where the archive ends now: its last segment and that segment's length.
    pub(crate) fn end(&self) -> (u32, u64) {
        (self.index, self.current_len)
    }

    /// Replace this archive by the seed written at `aside` (see
    /// [`write_aside`]), after appending to the seed everything this archive
    /// took in since `from` (its [`end`](Self::end) when the seed began), so
    /// the new archive replays to what the old one does. The swap is two
    /// renames with the old archive set aside between them (a crash there
    /// leaves no archive, and the next open seeds one from sled, as for a
    /// new data dir). On failure the old archive stays in use, unchanged,
    /// unless it is gone (then the store runs without one until its next open).
    pub(crate) fn replace(
        self,
        data_dir: &Path,
        aside: &Path,
        from: (u32, u64),
    ) -> Result<Archive, (Option<Archive>, String)> {
        let tail = || -> Result<(), String> {
            let mut seeded = Archive::open(aside, false)?;
            seeded.roll_if_full().map_err(|e| format!("writing {}: {e}", aside.display()))?;
            let listed = segments(&self.dir).map_err(|e| format!("cannot list {}: {e}", self.dir.display()))?;
            for (index, path) in listed.into_iter().filter(|(i, _)| *i >= from.0) {
                let bytes = std::fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                let skip = if index == from.0 { (from.1 as usize).min(bytes.len()) } else { 0 };
                seeded.append(&bytes[skip..]).map_err(|e| format!("writing {}: {e}", aside.display()))?;
            }
            seeded.sync().map_err(|e| format!("syncing {}: {e}", aside.display()))
        };
        if let Err(why) = tail() {
            let _ = std::fs::remove_dir_all(aside);
            return Err((Some(self), why));
        }
        let old = data_dir.join(format!("{DIR}.old"));
        let _ = std::fs::remove_dir_all(&old);
        if let Err(e) = std::fs::rename(&self.dir, &old) {
            let _ = std::fs::remove_dir_all(aside);
            let why = format!("cannot set {} aside: {e}", self.dir.display());
            return Err((Some(self), why));
        }
        if let Err(e) = std::fs::rename(aside, &self.dir) {
            let back = std::fs::rename(&old, &self.dir);
            let _ = std::fs::remove_dir_all(aside);
            return match back {
                Ok(()) => Err((Some(self), format!("cannot move {} into place: {e}", aside.display()))),
                Err(b) => Err((
                    None,
                    format!("cannot move {} into place ({e}) nor the old archive back ({b})", aside.display()),
                )),
            };
        }
        let _ = sync_dir(data_dir);
        if let Err(e) = std::fs::remove_dir_all(&old) {
            tracing::warn!(error = %e, dir = %old.display(), "cannot remove the replaced journal archive");
        }
        Archive::open(&self.dir, false).map_err(|why| (None, why))
    }

    /// The archive's size on disk, bytes.
    pub(crate) fn bytes(&self) -> u64 {
        segments(&self.dir)
            .unwrap_or_default()
            .iter()
            .filter_map(|(_, p)| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .sum()
    }
}

/// Write a seed of everything in `db` aside, as the segments of an archive
/// that [`Archive::replace`] puts in place: the archive shrinks to what the
/// store holds (what was removed, replaced or pruned is gone from it).
/// Runs beside the journal's writers: what they change meanwhile comes
/// after the seed, from the old archive's tail or the log.
pub(crate) fn write_aside(data_dir: &Path, db: &sled::Db) -> Result<PathBuf, String> {
    let aside = data_dir.join(format!("{DIR}.compacting"));
    let _ = std::fs::remove_dir_all(&aside);
    write_seed(&aside, db).inspect_err(|_| {
        let _ = std::fs::remove_dir_all(&aside);
    })?;
    Ok(aside)
}

/// A checkpoint appends the log's frames to the archive and syncs it
/// before it empties the log: a crash in between leaves an incomplete last
/// frame in the archive while the log still holds all of it. Cut that
/// frame off (the log's frames are appended again after it), so the archive
/// does not show a damaged stretch in its middle where nothing was lost.
/// Only a torn tail is cut: a complete frame that fails its checksum is
/// damage, left for `jamjet repair` to report.
fn cut_torn_tail(path: &Path) -> std::io::Result<()> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    let torn = frames::scan(&bytes)
        .dropped
        .into_iter()
        .find(|d| d.kind == frames::DropKind::TornTail && d.offset + d.len == bytes.len());
    if let Some(d) = torn {
        tracing::info!(file = %path.display(), bytes = d.len, "cutting the incomplete frame an interrupted checkpoint left in the journal archive");
        let file = OpenOptions::new().write(true).open(path)?;
        file.set_len(d.offset as u64)?;
        file.sync_all()?;
    }
    Ok(())
}

/// Write everything in `db` as the archive's first segments, aside, then
/// rename them into place.
fn seed(data_dir: &Path, dir: &Path, db: &sled::Db) -> Result<(), String> {
    let aside = data_dir.join(format!("{DIR}.new"));
    let _ = std::fs::remove_dir_all(&aside);
    let written = write_seed(&aside, db).and_then(|()| {
        std::fs::rename(&aside, dir).map_err(|e| format!("cannot rename {}: {e}", aside.display()))?;
        sync_dir(data_dir).map_err(|e| format!("syncing {}: {e}", data_dir.display()))
    });
    if written.is_err() {
        let _ = std::fs::remove_dir_all(&aside);
    }
    written
}

fn write_seed(aside: &Path, db: &sled::Db) -> Result<(), String> {
    std::fs::create_dir_all(aside).map_err(|e| format!("cannot create {}: {e}", aside.display()))?;
    let mut index = 1;
    let create = |index: u32| {
        let path = aside.join(segment_name(index));
        File::create(&path).map_err(|e| format!("cannot create {}: {e}", path.display()))
    };
    let mut file = create(index)?;
    let (mut file_len, mut batch, mut size, mut buf) = (0u64, Batch::new(), 0, Vec::new());
    let mut iter = db.iter();
    loop {
        let next = iter.next().transpose().map_err(|e| format!("sled cannot be read in full: {e}"))?;
        if let Some((k, v)) = &next {
            size += k.len() + v.len();
            batch.push((k.to_vec(), v.to_vec()));
        }
        if (next.is_none() && !batch.is_empty()) || size >= SEED_FRAME_BYTES {
            if file_len >= SEGMENT_BYTES {
                file.sync_all().map_err(|e| format!("syncing the archive seed: {e}"))?;
                index += 1;
                file = create(index)?;
                file_len = 0;
            }
            buf.clear();
            frames::encode(&batch, &mut buf);
            file.write_all(&buf).map_err(|e| format!("writing the archive seed: {e}"))?;
            file_len += buf.len() as u64;
            batch.clear();
            size = 0;
        }
        if next.is_none() {
            break;
        }
    }
    file.sync_all().map_err(|e| format!("syncing the archive seed: {e}"))?;
    sync_dir(aside).map_err(|e| format!("syncing {}: {e}", aside.display()))
}

/// Replay every segment of the archive in `data_dir` into `db`, in order.
/// Returns, per segment with damage, what was dropped.
pub(crate) fn replay(data_dir: &Path, db: &sled::Db) -> Result<Replayed, String> {
    let dir = data_dir.join(DIR);
    let segments = segments(&dir).map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
    let mut out = Replayed::default();
    for (_, path) in segments {
        let bytes = std::fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let Scan { batches, dropped } = frames::scan(&bytes);
        for batch in &batches {
            super::apply(db, batch).map_err(|e| format!("applying {} to sled: {e}", path.display()))?;
        }
        out.batches += batches.len();
        out.bytes += bytes.len() as u64;
        let name = format!("{DIR}/{}", path.file_name().and_then(|n| n.to_str()).unwrap_or_default());
        out.dropped.extend(dropped.iter().map(|d| d.describe(&name)));
    }
    Ok(out)
}

/// Read every segment of the archive in `data_dir` and say what in it is
/// damaged (nothing is applied or changed).
pub(crate) fn verify(data_dir: &Path) -> Result<Vec<String>, String> {
    let dir = data_dir.join(DIR);
    let mut out = Vec::new();
    for (_, path) in segments(&dir).map_err(|e| format!("cannot list {}: {e}", dir.display()))? {
        let bytes = std::fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let name = format!("{DIR}/{}", path.file_name().and_then(|n| n.to_str()).unwrap_or_default());
        out.extend(frames::scan(&bytes).dropped.iter().map(|d| d.describe(&name)));
    }
    Ok(out)
}

/// What [`replay`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Replayed {
    pub batches: usize,
    pub bytes: u64,
    /// One sentence per stretch of damaged bytes that was skipped.
    pub dropped: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames_of(keys: &[&str]) -> Vec<u8> {
        let mut out = Vec::new();
        for k in keys {
            frames::encode(&vec![(k.as_bytes().to_vec(), b"v".to_vec())], &mut out);
        }
        out
    }

    fn empty_db(dir: &Path) -> sled::Db {
        sled::Config::new().path(dir.join("db")).open().unwrap()
    }

    #[test]
    fn a_checkpoint_a_crash_interrupted_leaves_no_damage_in_the_archive() {
        let dir = tempfile::tempdir().unwrap();
        let db = empty_db(dir.path());
        drop(Archive::open_or_seed(dir.path(), &db, false).unwrap());
        let segment = dir.path().join(DIR).join(segment_name(1));
        let whole = frames_of(&["a", "b"]);
        let mut torn = whole.clone();
        torn.extend_from_slice(&frames_of(&["c"])[..7]);
        std::fs::write(&segment, &torn).unwrap();

        // A clean start leaves the archive as it is.
        drop(Archive::open_or_seed(dir.path(), &db, false).unwrap());
        assert_eq!(std::fs::read(&segment).unwrap(), torn);
        // After a crash the torn frame is cut, and what follows lands after whole frames.
        let mut archive = Archive::open_or_seed(dir.path(), &db, true).unwrap();
        assert_eq!(std::fs::read(&segment).unwrap(), whole);
        archive.append(&frames_of(&["c"])).unwrap();
        archive.sync().unwrap();
        let scan = frames::scan(&std::fs::read(&segment).unwrap());
        assert!(scan.dropped.is_empty(), "{:?}", scan.dropped);
        assert_eq!(scan.batches.len(), 3);

        // A complete frame that fails its checksum is damage: never cut.
        let mut damaged = whole.clone();
        let last = damaged.len() - 1;
        damaged[last] ^= 0xff;
        std::fs::write(&segment, &damaged).unwrap();
        drop(Archive::open_or_seed(dir.path(), &db, true).unwrap());
        assert_eq!(std::fs::read(&segment).unwrap(), damaged);
    }

    #[test]
    fn an_archive_that_cannot_be_opened_is_set_aside_and_seeded_anew() {
        let dir = tempfile::tempdir().unwrap();
        let db = empty_db(dir.path());
        db.insert("k", "v").unwrap();
        // Not a directory: it cannot be listed.
        std::fs::write(dir.path().join(DIR), b"not an archive").unwrap();
        drop(Archive::open_or_seed(dir.path(), &db, false).unwrap());
        let aside: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.starts_with(&format!("{DIR}.unopened-")))
            .collect();
        assert_eq!(aside.len(), 1, "the old one is kept for the operator");
        let seeded = frames::scan(&std::fs::read(dir.path().join(DIR).join(segment_name(1))).unwrap());
        assert_eq!(seeded.batches, vec![vec![(b"k".to_vec(), b"v".to_vec())]], "seeded from sled");
    }
}
