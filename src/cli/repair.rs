//! `jamjet repair [--dry-run] [--json]`: for an operator, with the data dir
//! not in use. It reads everything, quarantines what cannot be read and
//! rebuilds the index from the histories.
//!
//! 1. sled's own files: if sled refuses to open (or cannot read its pages
//!    in full), its files are moved into the quarantine folder as they are
//!    and the store is rebuilt from the journal archive.
//! 2. Values that do not decode (index rows, records, workflow IRs,
//!    idempotency keys, timer entries, registrations) are moved into
//!    `quarantine/<time>/` in the data dir (a file per value and a
//!    `manifest.json` saying what each was and why), never deleted. A
//!    history keeps its readable prefix: the damaged record and every one
//!    after it go to quarantine, and an execution that had not ended is
//!    failed with a journaled `ExecutionFailed` naming the damage. An
//!    execution whose first record, or whose workflow IR, cannot be read
//!    is quarantined whole (it cannot be replayed).
//! 3. The index is recomputed from the replayed histories: every row
//!    (status, workflow, times, key), the idempotency keys, and the timer
//!    index (each machine's deadlines, and a due wake-up for each
//!    unfinished child whose parent has ended or cancelled it).
//!
//! It prints what it found and did; the exit code is 0 when the data dir is
//! healthy afterwards (with `--dry-run`, when it is healthy now).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde::Serialize;

use super::{CliResult, Failure, print_json};
use crate::actors::index_row;
use crate::actors::machine::ExecutionState;
use crate::clock::{Clock, SystemClock, format_ms};
use crate::id::ExecutionId;
use crate::journal::repair::{
    Audit, IndexChanges, Kind, Quarantine, has_archive, key_text, rebuild_store, row_key, set_archive_aside,
    set_files_aside, settings_failing_checksum, verify_archive,
};
use crate::journal::{self, Append, Event, ExecutionMeta, Journal, SledJournal, Timer};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Say what would be done, and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print what was found and done as JSON.
    #[arg(long)]
    pub json: bool,
}

/// What repair found and did.
#[derive(Debug, Default, Serialize)]
struct Report {
    data_dir: String,
    dry_run: bool,
    /// What the log's recovery dropped at open.
    log: Vec<String>,
    /// Set when sled's files were (or would be) rebuilt from the archive, and why.
    rebuilt: Option<Rebuilt>,
    /// sled's settings or snapshot set aside (no archive): sled wrote new
    /// settings, or recovered from its log.
    set_aside: Vec<String>,
    /// Where the quarantined values went.
    quarantine: Option<String>,
    quarantined: Vec<Quarantine>,
    /// Executions failed because their history was cut at a damaged record.
    failed: Vec<Failed>,
    /// Executions quarantined whole.
    removed: Vec<Removed>,
    /// Index rows written (new or changed) from the histories.
    rows: Vec<RowChange>,
    keys_set: usize,
    keys_removed: usize,
    timers_set: usize,
    timers_cleared: usize,
    waits_set: usize,
    waits_cleared: usize,
    /// Keys of a kind this build does not know, left alone.
    unknown_keys: usize,
    /// Damage found in the journal archive (then set aside and seeded anew).
    archive: Vec<String>,
    healthy: bool,
    /// What is still wrong, if anything.
    problems: Vec<String>,
}

impl Report {
    fn changed_anything(&self) -> bool {
        !(self.quarantined.is_empty()
            && self.rows.is_empty()
            && self.rebuilt.is_none()
            && self.archive.is_empty()
            && self.set_aside.is_empty()
            && self.failed.is_empty()
            && self.removed.is_empty()
            && self.keys_set + self.keys_removed + self.timers_set + self.timers_cleared == 0
            && self.waits_set + self.waits_cleared == 0)
    }
}

#[derive(Debug, Serialize)]
struct Rebuilt {
    why: String,
    batches: usize,
    bytes: u64,
    dropped: Vec<String>,
}

#[derive(Debug, Serialize)]
struct Failed {
    id: ExecutionId,
    error: String,
}

#[derive(Debug, Serialize)]
struct Removed {
    id: ExecutionId,
    why: String,
}

#[derive(Debug, Serialize)]
struct RowChange {
    id: ExecutionId,
    /// The row before: a status, `missing` or `damaged`.
    was: String,
    now: String,
}

pub(crate) async fn run(data_dir: &Path, a: Args) -> CliResult {
    if super::shared_store().is_some() {
        return Err(Failure::usage(
            "`jamjet repair` rebuilds the data dir's embedded store; a PostgreSQL store has its own tools \
             (pg_dump, point-in-time recovery). Run it without --store / JAMJET_STORE",
        ));
    }
    let now = SystemClock.now_ms();
    let folder = fresh_folder(&data_dir.join("quarantine"), now);
    let mut report = Report { data_dir: data_dir.display().to_string(), dry_run: a.dry_run, ..Report::default() };
    let journal = match open(data_dir, &folder, a.dry_run, &mut report)? {
        Some(j) => j,
        None => return finish(report, a.json),
    };
    report.log = journal.recovered().to_vec();
    let mut audit = journal.audit();
    if let Some(why) = audit.unreadable.clone() {
        // Below our records: sled cannot read some of its pages.
        drop(journal);
        let Some(j) = rebuild(data_dir, &folder, a.dry_run, why, &mut report)? else { return finish(report, a.json) };
        audit = j.audit();
        if let Some(why) = &audit.unreadable {
            report.problems.push(format!("after the rebuild, {why}"));
            return finish(report, a.json);
        }
        return repair(data_dir, j, audit, &folder, now, a, report).await;
    }
    repair(data_dir, journal, audit, &folder, now, a, report).await
}

/// Open the journal; when sled refuses its files, rebuild it from the archive.
fn open(data_dir: &Path, folder: &Path, dry_run: bool, report: &mut Report) -> Result<Option<SledJournal>, Failure> {
    if !data_dir.join("journal").exists() && !has_archive(data_dir) {
        return Err(Failure::new(format!("{} holds no journal: nothing to repair", data_dir.display())));
    }
    match SledJournal::open(data_dir) {
        Ok(j) => Ok(Some(j)),
        Err(journal::Error::StoreDamaged { file, reason, .. }) => {
            rebuild(data_dir, folder, dry_run, format!("{file} ({reason})"), report)
        }
        Err(e) => Err(Failure::new(e.to_string())),
    }
}

/// Move sled's files into the quarantine folder and rebuild the store from
/// the archive (or, with `dry_run`, say that it would).
fn rebuild(
    data_dir: &Path,
    folder: &Path,
    dry_run: bool,
    why: String,
    report: &mut Report,
) -> Result<Option<SledJournal>, Failure> {
    if !has_archive(data_dir) {
        return salvage(data_dir, folder, dry_run, why, report);
    }
    if dry_run {
        report.rebuilt = Some(Rebuilt { why, batches: 0, bytes: 0, dropped: Vec::new() });
        report.problems.push("sled's files are damaged: repair would rebuild them from the archive".into());
        return Ok(None);
    }
    let replayed = rebuild_store(data_dir, folder).map_err(|e| Failure::new(e.to_string()))?;
    report.quarantine = Some(folder.display().to_string());
    report.rebuilt = Some(Rebuilt { why, batches: replayed.batches, bytes: replayed.bytes, dropped: replayed.dropped });
    let j = reopen(data_dir).map_err(|e| Failure::new(format!("after the rebuild: {e}")))?;
    report.log.extend(j.recovered().iter().cloned());
    Ok(Some(j))
}

/// With no archive: set aside the settings or snapshot that fail their
/// checksum, which sled can do without (it writes new settings, and
/// recovers from its log without a snapshot), and open again. Damage in
/// sled's log itself cannot be undone this way.
fn salvage(
    data_dir: &Path,
    folder: &Path,
    dry_run: bool,
    why: String,
    report: &mut Report,
) -> Result<Option<SledJournal>, Failure> {
    let files = settings_failing_checksum(data_dir);
    let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    if files.is_empty() {
        report.problems.push(format!(
            "sled's files are damaged ({why}), and this data dir has no journal archive to rebuild them from; \
             repair moved and rewrote nothing"
        ));
        return Ok(None);
    }
    if dry_run {
        report.set_aside = names;
        report.problems.push(format!("sled's files are damaged ({why}): repair would set the files above aside"));
        return Ok(None);
    }
    set_files_aside(&files, folder).map_err(|e| Failure::new(e.to_string()))?;
    report.set_aside = names;
    report.quarantine = Some(folder.display().to_string());
    match reopen(data_dir) {
        Ok(j) => {
            report.log.extend(j.recovered().iter().cloned());
            Ok(Some(j))
        }
        Err(e) => {
            report.problems.push(format!("with those set aside, the store still cannot be opened: {e}"));
            Ok(None)
        }
    }
}

/// How long repair waits for sled to let go of a store it closed.
const RELEASE_LIMIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Open the journal again after repair closed it: sled's background
/// threads (a snapshot it was writing) may hold its lock a moment longer.
fn reopen(data_dir: &Path) -> Result<SledJournal, journal::Error> {
    let began = std::time::Instant::now();
    loop {
        match SledJournal::open(data_dir) {
            Err(journal::Error::Locked { .. }) if began.elapsed() < RELEASE_LIMIT => {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            other => return other,
        }
    }
}

/// What the index needs of an execution repair keeps (not its state).
struct Kept {
    row: ExecutionMeta,
    deadlines: Vec<u64>,
    /// The event keys it waits for (its wait index entries).
    waits: Vec<String>,
    ended: bool,
    parent: Option<ExecutionId>,
    /// Children it no longer needs (cancelled, perhaps not told yet).
    orphans: Vec<ExecutionId>,
}

async fn repair(
    data_dir: &Path,
    journal: SledJournal,
    audit: Audit,
    folder: &Path,
    now: u64,
    a: Args,
    mut report: Report,
) -> CliResult {
    report.unknown_keys = audit.unknown;
    let mut quarantine: Vec<Quarantine> = audit
        .bad
        .iter()
        .map(|b| Quarantine {
            key: b.key.clone(),
            execution: b.execution,
            reason: format!("{}: {}", kind(b.kind), b.detail),
        })
        .collect();
    let bad_rows: BTreeSet<ExecutionId> =
        audit.bad.iter().filter(|b| b.kind == Kind::IndexRow).filter_map(|b| b.execution).collect();
    let mut whole: BTreeMap<ExecutionId, Kept> = BTreeMap::new();
    let mut appends: Vec<(ExecutionId, u64, Event, ExecutionMeta)> = Vec::new();
    // Each workflow IR is read once, however many executions run it.
    let mut workflows: HashMap<String, Option<std::sync::Arc<crate::ir::Workflow>>> = HashMap::new();
    for (&id, history) in &audit.histories {
        let records = journal.read_prefix(id).map_err(|e| Failure::new(e.to_string()))?;
        let cut = &history.damage;
        if let Some((seq, detail)) = cut {
            let reason = format!("record {seq} cannot be read ({detail}); this frame holds it or follows it");
            quarantine.extend(history.unreadable_keys.iter().map(|k| Quarantine {
                key: k.clone(),
                execution: Some(id),
                reason: reason.clone(),
            }));
        }
        let hash = match records.first().map(|r| &r.event) {
            Some(
                Event::ExecutionStarted { workflow_hash, .. }
                | Event::ChildStarted { workflow_hash, .. }
                | Event::BranchStarted { workflow_hash, .. },
            ) => workflow_hash.clone(),
            _ => {
                let why = match cut {
                    Some((1, detail)) => format!("its first record cannot be read: {detail}"),
                    _ => "its history does not begin with ExecutionStarted, ChildStarted or BranchStarted".into(),
                };
                remove_whole(&journal, id, &why, &audit, &mut quarantine);
                report.removed.push(Removed { id, why });
                continue;
            }
        };
        let workflow = workflows.entry(hash.clone()).or_insert_with(|| {
            audit.workflows.contains(&hash).then(|| journal.workflow(&hash).ok().flatten().map(std::sync::Arc::new))?
        });
        let workflow = match workflow.clone() {
            Some(wf) => wf,
            None => {
                let why =
                    format!("its workflow IR {hash} is missing or cannot be read, so its history cannot be replayed");
                remove_whole(&journal, id, &why, &audit, &mut quarantine);
                report.removed.push(Removed { id, why });
                continue;
            }
        };
        // What the index needs (status, deadlines, key) does not depend on
        // the state, so a branch replays on an empty one instead of its
        // parent's (which may be what is damaged).
        let base = matches!(records.first().map(|r| &r.event), Some(Event::BranchStarted { .. }))
            .then(|| std::sync::Arc::new(serde_json::Map::new()));
        let mut machine = ExecutionState::replay_on(id, &workflow, &records, base);
        let mut updated_ms = records.last().map_or(now, |r| r.at_ms);
        if let Some((seq, detail)) = cut
            && !machine.phase.is_terminal()
        {
            // What the rest of the history had come to, if its last record reads.
            let ended = match journal.last_record(id) {
                Some(r) if r.event.is_terminal() && r.seq > *seq => {
                    format!(" (it had ended: {} at record {})", r.event.name(), r.seq)
                }
                _ => String::new(),
            };
            let error = format!(
                "its history was damaged at record {seq} ({detail}); `jamjet repair` moved that record and the ones \
                 after it to {}{ended}",
                folder.display()
            );
            let event = Event::ExecutionFailed { node: None, error: error.clone() };
            let rec = journal::Record { seq: machine.last_seq + 1, at_ms: now, event: event.clone() };
            crate::actors::machine::apply(&workflow, &mut machine, &rec);
            updated_ms = now;
            let row = index_row(id, &workflow, &hash, &machine, updated_ms);
            appends.push((id, rec.seq, event, row));
            report.failed.push(Failed { id, error });
        }
        whole.insert(
            id,
            Kept {
                row: index_row(id, &workflow, &hash, &machine, updated_ms),
                deadlines: machine.deadlines(&workflow).into_iter().collect(),
                waits: crate::actors::wait_keys(&machine).into_iter().collect(),
                ended: machine.phase.is_terminal(),
                parent: machine.parent.as_ref().map(|p| p.id),
                orphans: machine.orphans.iter().copied().collect(),
            },
        );
    }
    // A row with no history names nothing that can be read.
    for id in audit.rows.keys().filter(|id| !audit.histories.contains_key(id)) {
        let why = "the index names it, and the journal holds no record of it".to_string();
        quarantine.push(Quarantine { key: row_key(*id), execution: Some(*id), reason: why.clone() });
        report.removed.push(Removed { id: *id, why });
    }
    let changes = index_changes(&audit, &whole, &bad_rows, now, &mut report);
    quarantine.sort_by(|a, b| a.key.cmp(&b.key));
    quarantine.dedup_by(|a, b| a.key == b.key);
    report.quarantined = quarantine.clone();
    let nothing_to_do = quarantine.is_empty() && appends.is_empty() && changes.is_empty();
    if a.dry_run || nothing_to_do {
        drop(journal);
        if !nothing_to_do {
            report.problems.push("damage found; run without --dry-run to repair it".into());
        }
        check_archive(data_dir, folder, a.dry_run, &mut report)?;
        report.healthy = nothing_to_do && report.problems.is_empty();
        return finish(report, a.json);
    }
    report.quarantine = Some(folder.display().to_string());
    let failure = |e: journal::Error| Failure::new(format!("repair stopped partway (run it again): {e}"));
    journal.quarantine(folder, &quarantine).await.map_err(failure)?;
    for (id, seq, event, row) in &appends {
        let append = Append {
            execution: *id,
            first_seq: *seq,
            at_ms: now,
            events: std::slice::from_ref(event),
            meta: Some(row),
            workflow: None,
            timers: &[],
            waits: &[],
            session: None,
        };
        journal.append(append).await.map_err(failure)?;
    }
    journal.write_index(&changes).await.map_err(failure)?;
    // Read it all again: healthy means nothing is left to do.
    let after = journal.audit();
    report.problems.extend(after.unreadable.iter().cloned());
    report.problems.extend(after.bad.iter().map(|b| format!("{} {}: {}", kind(b.kind), key_text(&b.key), b.detail)));
    for (id, h) in &after.histories {
        if let Some((seq, detail)) = &h.damage {
            report.problems.push(format!("execution {id}: record {seq} still cannot be read: {detail}"));
        }
        if !after.rows.contains_key(id) {
            report.problems.push(format!("execution {id} still has no index row"));
        }
    }
    drop(journal);
    if report.problems.is_empty() {
        check_archive(data_dir, folder, a.dry_run, &mut report)?;
    }
    report.healthy = report.problems.is_empty();
    finish(report, a.json)
}

/// Read the journal archive; when some of it is damaged (and the store is
/// whole), set it aside and seed a new one from the store.
fn check_archive(data_dir: &Path, folder: &Path, dry_run: bool, report: &mut Report) -> Result<(), Failure> {
    let damaged = verify_archive(data_dir).map_err(|e| Failure::new(e.to_string()))?;
    if damaged.is_empty() {
        return Ok(());
    }
    report.archive = damaged;
    if dry_run {
        report.problems.push("the journal archive is damaged: repair would seed a new one from the store".into());
        return Ok(());
    }
    set_archive_aside(data_dir, folder).map_err(|e| Failure::new(e.to_string()))?;
    report.quarantine = Some(folder.display().to_string());
    // Opening seeds a new archive from the store.
    let j = reopen(data_dir).map_err(|e| Failure::new(format!("seeding a new journal archive: {e}")))?;
    drop(j);
    if !has_archive(data_dir) {
        report.problems.push("no new journal archive could be seeded from the store".into());
    }
    Ok(())
}

/// Quarantine everything of an execution that cannot be replayed: every
/// frame of its history and its index row.
fn remove_whole(journal: &SledJournal, id: ExecutionId, why: &str, audit: &Audit, quarantine: &mut Vec<Quarantine>) {
    let q = |key: Vec<u8>| Quarantine { key, execution: Some(id), reason: why.to_string() };
    quarantine.extend(journal.event_keys(id).into_iter().map(q));
    if audit.rows.contains_key(&id) {
        quarantine.push(q(row_key(id)));
    }
}

/// The index the histories imply, as changes to the stored one.
fn index_changes(
    audit: &Audit,
    whole: &BTreeMap<ExecutionId, Kept>,
    bad_rows: &BTreeSet<ExecutionId>,
    now: u64,
    report: &mut Report,
) -> IndexChanges {
    let mut changes = IndexChanges::default();
    for (id, Kept { row, .. }) in whole {
        let was = match audit.rows.get(id) {
            Some(stored) if stored == row => continue,
            Some(stored) => stored.status.to_string(),
            None if bad_rows.contains(id) => "damaged".into(),
            None => "missing".into(),
        };
        report.rows.push(RowChange { id: *id, was, now: row.status.to_string() });
        changes.put_rows.push(row.clone());
    }
    // Idempotency keys: each names the oldest execution submitted with it.
    let mut keys: BTreeMap<Vec<u8>, ExecutionId> = BTreeMap::new();
    for (id, Kept { row, .. }) in whole {
        if let Some(k) = &row.key {
            keys.entry(k.as_bytes().to_vec()).or_insert(*id);
        }
    }
    for (k, id) in &keys {
        if audit.keys.get(k) != Some(id) {
            changes.put_keys.push((k.clone(), *id));
        }
    }
    changes.remove_keys = audit.keys.keys().filter(|k| !keys.contains_key(*k)).cloned().collect();
    // Timers: every machine's deadlines, and a due wake-up for each
    // unfinished child its parent has ended or cancelled.
    let ended = |id: &ExecutionId| whole.get(id).is_none_or(|k| k.ended);
    let mut timers: BTreeSet<Timer> = BTreeSet::new();
    for (id, kept) in whole {
        timers.extend(kept.deadlines.iter().map(|&at_ms| Timer { at_ms, execution: *id }));
        if !kept.ended && kept.parent.as_ref().is_some_and(ended) {
            timers.insert(Timer { at_ms: now, execution: *id });
        }
        for child in kept.orphans.iter().filter(|c| !ended(c)) {
            timers.insert(Timer { at_ms: now, execution: *child });
        }
    }
    // A wake-up already due for an unfinished execution is harmless: keep it.
    let keep = |t: &Timer| timers.contains(t) || (t.at_ms <= now && !ended(&t.execution));
    changes.clear_timers = audit.timers.iter().filter(|t| !keep(t)).copied().collect();
    changes.set_timers = timers.iter().filter(|t| !audit.timers.contains(t)).copied().collect();
    // The wait index: the event keys each unfinished machine waits for.
    let waits: BTreeSet<(String, ExecutionId)> =
        whole.iter().flat_map(|(id, kept)| kept.waits.iter().map(|k| (k.clone(), *id))).collect();
    changes.clear_waits = audit.waits.difference(&waits).cloned().collect();
    changes.set_waits = waits.difference(&audit.waits).cloned().collect();
    report.waits_set = changes.set_waits.len();
    report.waits_cleared = changes.clear_waits.len();
    report.keys_set = changes.put_keys.len();
    report.keys_removed = changes.remove_keys.len();
    report.timers_set = changes.set_timers.len();
    report.timers_cleared = changes.clear_timers.len();
    changes
}

fn kind(k: Kind) -> &'static str {
    match k {
        Kind::Record => "record",
        Kind::IndexRow => "index row",
        Kind::Workflow => "workflow IR",
        Kind::IdempotencyKey => "idempotency key",
        Kind::Timer => "timer entry",
        Kind::Registration => "registration",
        Kind::WaitEntry => "wait index entry",
        Kind::KeptEvent => "kept event",
        Kind::Session => "session record",
    }
}

/// `20261202T042259.123Z`: a quarantine folder's name.
fn stamp(now_ms: u64) -> String {
    format_ms(now_ms).chars().filter(|c| *c != '-' && *c != ':').collect()
}

/// A quarantine folder no earlier repair used (one stopped partway and run
/// again at once must not overwrite what the first one set aside).
fn fresh_folder(quarantine: &Path, now_ms: u64) -> PathBuf {
    let base = stamp(now_ms);
    let mut folder = quarantine.join(&base);
    let mut n = 2;
    while folder.exists() {
        folder = quarantine.join(format!("{base}-{n}"));
        n += 1;
    }
    folder
}

fn finish(report: Report, json: bool) -> CliResult {
    if json {
        print_json(&report);
    } else {
        print_text(&report);
    }
    Ok(if report.healthy { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn print_text(r: &Report) {
    let verb = |done: &str, would: &str| if r.dry_run { would.to_string() } else { done.to_string() };
    for line in &r.log {
        println!("log: {line}");
    }
    if let Some(b) = &r.rebuilt {
        println!("store: {}", b.why);
        if !r.dry_run {
            let batches = crate::plural::count(b.batches, "batch", "batches");
            println!(
                "store: rebuilt from the journal archive ({batches}, {})",
                crate::plural::count(b.bytes, "byte", "bytes")
            );
            for d in &b.dropped {
                println!("store: {d}");
            }
        }
    }
    for f in &r.set_aside {
        println!("{} {f}: it fails its checksum, and sled can do without it", verb("set aside", "would set aside"));
    }
    for q in &r.quarantined {
        let whose = q.execution.map(|id| format!(" ({id})")).unwrap_or_default();
        println!("{} {}{whose}: {}", verb("quarantined", "would quarantine"), key_text(&q.key), q.reason);
    }
    for f in &r.failed {
        println!("{} {}: {}", verb("failed", "would fail"), f.id, f.error);
    }
    for x in &r.removed {
        println!("{} {} whole: {}", verb("quarantined", "would quarantine"), x.id, x.why);
    }
    for c in &r.rows {
        println!("{} the index row of {}: {} -> {}", verb("rewrote", "would rewrite"), c.id, c.was, c.now);
    }
    if r.keys_set + r.keys_removed + r.timers_set + r.timers_cleared > 0 {
        println!(
            "{} {} idempotency keys, {} {}; {} {} timer entries, {} {}",
            verb("set", "would set"),
            r.keys_set,
            verb("removed", "would remove"),
            r.keys_removed,
            verb("set", "would set"),
            r.timers_set,
            verb("cleared", "would clear"),
            r.timers_cleared
        );
    }
    if r.waits_set + r.waits_cleared > 0 {
        println!(
            "{} {} wait index entries, {} {}",
            verb("set", "would set"),
            r.waits_set,
            verb("cleared", "would clear"),
            r.waits_cleared
        );
    }
    if r.unknown_keys > 0 {
        println!(
            "left alone: {} of a kind this build does not know",
            crate::plural::count(r.unknown_keys, "key", "keys")
        );
    }
    for d in &r.archive {
        println!("archive: {d}");
    }
    if !r.archive.is_empty() && !r.dry_run {
        println!("archive: set aside, and a new one seeded from the store");
    }
    if let Some(q) = &r.quarantine {
        println!("quarantine: {}", PathBuf::from(q).display());
    }
    for p in &r.problems {
        println!("problem: {p}");
    }
    println!(
        "{}",
        match (r.healthy, r.dry_run) {
            (true, _) if !r.changed_anything() => "the data dir is healthy: nothing to repair",
            (true, _) => "the data dir is healthy",
            (false, true) => "the data dir needs repair",
            (false, false) => "the data dir is not healthy yet",
        }
    );
}
