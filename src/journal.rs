//! The journal: every execution's events, durable, in order.
//!
//! Actors see only the [`Journal`] trait. [`SledJournal`] is the embedded
//! default (group commit through a write-ahead log: one disk sync serves
//! every append that arrived while the previous one ran); [`PgJournal`]
//! keeps the same records in PostgreSQL, which many processes share (group
//! commit: one transaction per round, `postgres.rs`); [`MemoryJournal`] serves tests and
//! benchmarks. An append counts only once it is durable: `append` returns
//! after the sync that covers it (sled applies it behind; reads see it at
//! once, see `wal/overlay.rs`).
//!
//! Stored layout (one sled tree, so one batch is atomic):
//! `e{exec:16}{seq:u64 BE}` → the frame of records one append wrote, keyed by
//! its first event's sequence number, `x{exec:16}` → [`ExecutionMeta`],
//! `w{hash}` → workflow IR, `r{id}\0{version}` → [`Registration`], `k{key}` → exec id, `t{deadline:u64 BE}{exec:16}`
//! → the timer index; `v{event key}\0{exec:16}` → the wait index, `m{event key}\0{id}` and `n{until}{id}{event key}`
//! → kept events (see `mailbox.rs`); `s{session id}` → [`SessionRecord`]
//! (see `session.rs`).
//!
//! Damage is contained: a stored value that does not decode makes the one
//! execution it belongs to unavailable ([`Error::Damaged`], naming the
//! execution and the part: its index row, a record of its history, its
//! workflow IR), never the whole journal; [`Journal::listing`] returns the
//! index rows it can read and the damaged ones beside them.

mod event;
pub mod inbox;
pub mod latency;
mod mailbox;
mod memory;
mod postgres;
pub mod repair;
mod row_index;
mod session;
mod sled_store;
mod wal;

use std::sync::Arc;

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

use crate::id::ExecutionId;
use crate::ir::Workflow;

pub use event::{
    BadRecord, BranchOutcome, CallRecord, ErrorClass, Event, FORMAT_VERSION, Json, PendingCall, Record, RetryDecision,
    Usage, decode, decode_frame, decode_frame_at, encode, encode_frame,
};
pub use mailbox::{KeptEvent, KeptRef, MAX_KEY_BYTES, WaitChange, check_key as check_event_key};
pub use memory::MemoryJournal;
pub use postgres::{LeaseCounters, PgJournal, PgOptions, SchemaState, redact_url};
pub use session::{MAX_SESSION_ID_BYTES, SessionRecord, check_session_id};
pub use sled_store::SledJournal;
pub use wal::{Compacted, WalTuning};

/// What can go wrong reading or writing the journal.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    #[error("journal storage error: {0}")]
    Storage(String),
    #[error("corrupt journal record: {0}")]
    Corrupt(String),
    #[error(
        "the data dir {path} is in use by another jamjet process (sled holds a lock on it); stop that process or use another --data-dir"
    )]
    Locked { path: String },
    /// One execution's stored data cannot be read: that execution is
    /// unavailable, the rest of the journal is not.
    #[error("{0} (`jamjet repair`, run with the data dir not in use, quarantines what cannot be read)")]
    Damaged(Damage),
    /// The store's own files cannot be opened (sled reports corrupted data).
    #[error(
        "the store in {path} cannot be opened: {file} ({reason}). Run `jamjet repair` with no jamjet process using the data dir: it rebuilds the store from the journal archive, and keeps sled's files in its quarantine folder"
    )]
    StoreDamaged { path: String, file: String, reason: String },
    /// The PostgreSQL store was migrated by a newer jamjet: this one must
    /// not write to tables it does not know. Nothing was changed.
    #[error("the store's schema is version {store}; this jamjet knows up to {known}: upgrade jamjet")]
    SchemaTooNew { store: u32, known: u32 },
    /// A shared store refused a write: this process no longer owns the
    /// execution (its lease expired and another process took it over, or
    /// it was handed back). Nothing of the write was stored; the process
    /// drops the execution, and its owner carries it on.
    #[error("execution {execution} is no longer this process's to write: {why}; nothing was written")]
    Fenced { execution: ExecutionId, why: String },
}

/// The part of an execution's stored data that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "part", rename_all = "snake_case")]
pub enum Part {
    /// Its row in the execution index.
    IndexRow,
    /// Record `seq` of its history (and so what follows it).
    Record { seq: u64 },
    /// The workflow IR it runs, stored under `hash`.
    Workflow { hash: String },
}

impl std::fmt::Display for Part {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Part::IndexRow => f.write_str("its index row"),
            Part::Record { seq } => write!(f, "record {seq} of its history"),
            Part::Workflow { hash } => write!(f, "its workflow IR {hash}"),
        }
    }
}

/// One execution that cannot be read in full, and what failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Damage {
    pub execution: ExecutionId,
    #[serde(flatten)]
    pub part: Part,
    /// What the store or the decoder said.
    pub detail: String,
}

impl Damage {
    pub fn new(execution: ExecutionId, part: Part, detail: impl Into<String>) -> Damage {
        Damage { execution, part, detail: detail.into() }
    }
}

impl std::fmt::Display for Damage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "execution {} is damaged: {} cannot be read: {}", self.execution, self.part, self.detail)
    }
}

/// The execution index as far as it can be read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Listing {
    /// Every row that decodes, oldest first.
    pub rows: Vec<ExecutionMeta>,
    /// Every row that does not (its id is in its key), oldest first.
    pub damaged: Vec<Damage>,
    /// Set when the store itself cannot read part of the index (a page
    /// sled reports corrupt): names the ranges of ids whose rows are
    /// missing from both lists. The scan goes on past each.
    pub cut_short: Option<String>,
}

/// One page of the execution index ([`Journal::page`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IndexPage {
    /// The rows, in the order asked for.
    pub rows: Vec<ExecutionMeta>,
    /// Whether rows the filter keeps follow the last one.
    pub more: bool,
    /// Index rows that do not decode, met on the way.
    pub damaged: Vec<Damage>,
}

/// Which index rows a page lists: those with `status`, of `workflow`
/// (each only when given).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RowFilter {
    pub status: Option<Status>,
    pub workflow: Option<String>,
}

impl RowFilter {
    pub fn keeps(&self, m: &ExecutionMeta) -> bool {
        self.keeps_one(m.status, &m.workflow_id)
    }

    /// It keeps a row with `status`, of `workflow`.
    fn keeps_one(&self, status: Status, workflow: &str) -> bool {
        self.status.is_none_or(|s| status == s) && self.workflow.as_deref().is_none_or(|w| workflow == w)
    }

    /// It keeps every row.
    pub fn is_empty(&self) -> bool {
        self.status.is_none() && self.workflow.is_none()
    }
}

impl IndexPage {
    /// The page of a whole `listing` (oldest first): every damaged row goes with it.
    pub fn of(
        listing: Listing,
        after: Option<ExecutionId>,
        newest_first: bool,
        limit: usize,
        filter: &RowFilter,
    ) -> IndexPage {
        let Listing { rows, damaged, .. } = listing;
        let past = |m: &ExecutionMeta| after.is_none_or(|c| if newest_first { m.id < c } else { m.id > c });
        let matching = |m: &&ExecutionMeta| past(m) && filter.keeps(m);
        let mut page: Vec<ExecutionMeta> = if newest_first {
            rows.iter().rev().filter(matching).take(limit + 1).cloned().collect()
        } else {
            rows.iter().filter(matching).take(limit + 1).cloned().collect()
        };
        let more = page.len() > limit;
        page.truncate(limit);
        IndexPage { rows: page, more, damaged }
    }
}

/// Where an execution stands, as kept in the execution index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Running,
    Completed,
    Failed,
    Cancelled,
    /// Parked on a wait, an approval or a timer; not live in memory.
    Waiting,
}

impl Status {
    pub fn is_terminal(self) -> bool {
        !matches!(self, Status::Running | Status::Waiting)
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Running => "running",
            Status::Completed => "completed",
            Status::Failed => "failed",
            Status::Cancelled => "cancelled",
            Status::Waiting => "waiting",
        }
    }
    pub fn parse(s: &str) -> Option<Status> {
        [Status::Running, Status::Completed, Status::Failed, Status::Cancelled, Status::Waiting]
            .into_iter()
            .find(|st| st.as_str() == s)
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One row of the execution index. Stored: fields only appended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExecutionMeta {
    pub id: ExecutionId,
    pub workflow_id: String,
    pub workflow_version: String,
    pub workflow_hash: String,
    pub status: Status,
    pub created_ms: u64,
    pub updated_ms: u64,
    pub key: Option<String>,
}

/// A workflow registered under its id and version (what a server offers:
/// `POST /workflows`, `jamjet dev --workflows`). Stored: fields only appended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registration {
    pub workflow_id: String,
    pub version: String,
    /// Content hash of the IR (the key it is stored under).
    pub hash: String,
    pub registered_ms: u64,
}

/// One atomic, durable append to an execution's history.
pub struct Append<'a> {
    pub execution: ExecutionId,
    /// Sequence number of the first event; the rest follow one by one.
    pub first_seq: u64,
    pub at_ms: u64,
    pub events: &'a [Event],
    /// A new row for the execution index, when the status changed.
    pub meta: Option<&'a ExecutionMeta>,
    /// The workflow to store under its hash (on `ExecutionStarted`).
    pub workflow: Option<(&'a str, &'a Workflow)>,
    /// Entries of this execution to add to or remove from the timer index,
    /// in the same atomic batch as the events.
    pub timers: &'a [TimerChange],
    /// Changes of this execution to the wait index (the event keys it
    /// waits for) and kept events it takes, in the same atomic batch.
    pub waits: &'a [WaitChange],
    /// The session record to store (replacing the one under its id), in
    /// the same atomic batch: an execution's first append when it starts
    /// a task of a session, so the session names it exactly when it exists.
    pub session: Option<&'a SessionRecord>,
}

/// A change to the timer index (deadlines of waits, retries, workflow
/// timeouts), keyed by deadline so "which timers are due" is one range scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimerChange {
    Set(u64),
    Clear(u64),
    /// An entry for another execution (an execution waking its children:
    /// a cancelled parent's children are cancelled even after a crash).
    SetFor(ExecutionId, u64),
}

/// One entry of the timer index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timer {
    pub at_ms: u64,
    pub execution: ExecutionId,
}

/// What removing executions freed ([`Journal::prune`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Freed {
    /// Executions removed.
    pub executions: u64,
    /// Their events.
    pub events: u64,
    /// The stored bytes removed: events, index rows, idempotency keys (as
    /// the store holds them, before its own compaction).
    pub bytes: u64,
}

impl Freed {
    pub fn add(&mut self, other: Freed) {
        self.executions += other.executions;
        self.events += other.events;
        self.bytes += other.bytes;
    }
}

/// What is left of a pruned execution: its last index row, when it was
/// pruned, and how many events it had. Stored: fields only appended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tombstone {
    pub meta: ExecutionMeta,
    pub pruned_ms: u64,
    pub events: u64,
}

fn encode_tombstone(t: &Tombstone) -> Vec<u8> {
    versioned(postcard::to_stdvec(t).expect("tombstone always encodes"))
}

fn decode_tombstone(bytes: &[u8]) -> Result<Tombstone, Error> {
    postcard::from_bytes(unversioned(bytes, "pruned execution's record")?)
        .map_err(|e| Error::Corrupt(format!("pruned execution's record does not decode: {e}")))
}

/// Counters for benchmarks and `inspect`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// Calls to `append`.
    pub appends: u64,
    /// Events written.
    pub events: u64,
    /// Disk syncs performed (log syncs and checkpoints).
    pub syncs: u64,
    /// Time spent in those syncs, microseconds.
    pub sync_us: u64,
}

/// The store of every execution's events. Implementations: sled (embedded
/// default), PostgreSQL ([`PgJournal`], shared by many processes) and memory (tests).
pub trait Journal: Send + Sync + 'static {
    /// Append events; resolves once they are durable.
    fn append<'a>(&'a self, append: Append<'a>) -> BoxFuture<'a, Result<(), Error>>;
    /// Every record of one execution, in order.
    fn read(&self, execution: ExecutionId) -> Result<Vec<Record>, Error>;
    /// The records of one execution with a sequence number above `after`,
    /// in order (what a live follower has not seen yet). Backends override
    /// it to skip what came before instead of reading everything.
    fn read_after(&self, execution: ExecutionId, after: u64) -> Result<Vec<Record>, Error> {
        let mut records = self.read(execution)?;
        records.retain(|r| r.seq > after);
        Ok(records)
    }
    /// The first record of one execution (which says, for a child, where
    /// it came from). Backends override it to read only the first frame.
    fn first(&self, execution: ExecutionId) -> Result<Option<Record>, Error> {
        Ok(self.read(execution)?.into_iter().next())
    }
    /// The index row of one execution.
    fn meta(&self, execution: ExecutionId) -> Result<Option<ExecutionMeta>, Error>;
    /// Every index row that can be read, and the ones that cannot.
    fn listing(&self) -> Result<Listing, Error>;
    /// Every index row that can be read, oldest first (see [`listing`](Self::listing)).
    fn list(&self) -> Result<Vec<ExecutionMeta>, Error> {
        Ok(self.listing()?.rows)
    }
    /// One page of the index in id order (oldest first, or newest first):
    /// the rows past `after` that `filter` keeps, at most `limit`. This
    /// default reads the whole [`listing`](Self::listing) and reports all
    /// its damaged rows; a backend may scan only as far as the page goes
    /// (and report the damaged rows it passed), or read an index of the
    /// rows `filter` keeps.
    fn page(
        &self,
        after: Option<ExecutionId>,
        newest_first: bool,
        limit: usize,
        filter: &RowFilter,
    ) -> Result<IndexPage, Error> {
        Ok(IndexPage::of(self.listing()?, after, newest_first, limit, filter))
    }
    /// A stored workflow by content hash.
    fn workflow(&self, hash: &str) -> Result<Option<Workflow>, Error>;
    /// Register a workflow under its id and version, durably; the IR is
    /// stored under `registration.hash`. A second registration of one id
    /// and version replaces the first (the caller decides whether that is
    /// allowed).
    fn register<'a>(&'a self, registration: &'a Registration, wf: &'a Workflow) -> BoxFuture<'a, Result<(), Error>>;
    /// Every registration, by workflow id then version.
    fn registrations(&self) -> Result<Vec<Registration>, Error>;
    /// The execution submitted under an idempotency key.
    fn find_key(&self, key: &str) -> Result<Option<ExecutionId>, Error>;
    /// Timers due at or before `up_to_ms`, earliest first, at most `limit`.
    fn due_timers(&self, up_to_ms: u64, limit: usize) -> Result<Vec<Timer>, Error>;
    /// The earliest timer in the index due after `after_ms`.
    fn next_timer_after(&self, after_ms: u64) -> Result<Option<Timer>, Error>;
    /// The executions the wait index says wait for events with `key`.
    fn waiting_for(&self, key: &str) -> Result<Vec<ExecutionId>, Error>;
    /// The whole wait index: (event key, execution), by key.
    fn wait_index(&self) -> Result<Vec<(String, ExecutionId)>, Error>;
    /// Keep an event no execution waits for yet, durably.
    fn keep<'a>(&'a self, event: &'a KeptEvent) -> BoxFuture<'a, Result<(), Error>>;
    /// The kept events of `key` not expired at `now_ms`, oldest first, at most `limit`.
    fn kept(&self, key: &str, now_ms: u64, limit: usize) -> Result<Vec<KeptEvent>, Error>;
    /// Kept events expiring at or before `up_to_ms`, earliest first, at most `limit`.
    fn expiring(&self, up_to_ms: u64, limit: usize) -> Result<Vec<KeptRef>, Error>;
    /// Drop kept events, durably.
    fn forget<'a>(&'a self, kept: &'a [KeptRef]) -> BoxFuture<'a, Result<(), Error>>;
    /// The session stored under `id` (written by an [`Append`]'s `session`).
    fn session(&self, id: &str) -> Result<Option<SessionRecord>, Error>;
    /// Every session, by id.
    fn sessions(&self) -> Result<Vec<SessionRecord>, Error>;
    /// Remove sessions, durably (expired ones); their executions stay.
    fn forget_sessions<'a>(&'a self, ids: &'a [String]) -> BoxFuture<'a, Result<(), Error>>;
    /// Remove ended executions: their histories, index rows and
    /// idempotency keys, durably, leaving of each a [`Tombstone`]. Only an
    /// execution the store holds as ended (completed, failed, cancelled) at
    /// the moment of the removal is removed; any other id (running,
    /// waiting, unknown, pruned already) is left as it is. What the
    /// runtime runs it never names (see `Runtime::prune`).
    fn prune<'a>(&'a self, executions: &'a [ExecutionId], at_ms: u64) -> BoxFuture<'a, Result<Freed, Error>>;
    /// What is left of a pruned execution.
    fn tombstone(&self, execution: ExecutionId) -> Result<Option<Tombstone>, Error>;
    /// Give back the space of what was removed, where the store keeps it
    /// beside its tables: the sled store rewrites its archive (the copy of
    /// every batch kept for `jamjet repair`) as a seed of what it holds now.
    /// `None` where there is nothing to do (PostgreSQL's own vacuum does it).
    fn compact(&self) -> BoxFuture<'_, Result<Option<Compacted>, Error>> {
        Box::pin(std::future::ready(Ok(None)))
    }
    fn stats(&self) -> Stats;
    /// The leases of a store that many processes share (PostgreSQL): who
    /// runs which execution. `None` for a store one process holds (sled,
    /// memory), where this process runs everything in it.
    fn leases(&self) -> Option<&dyn Leases> {
        None
    }
}

/// A live process of a shared store, as `jamjet workers` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerInfo {
    /// `host:pid:suffix`, unique for the life of the process.
    pub id: String,
    /// What runs there: `worker`, `dev`, `run`, an embedding program's name.
    pub command: String,
    pub started_ms: u64,
    /// Its last lease renewal.
    pub heartbeat_ms: u64,
    /// Executions it owns now.
    pub owns: u64,
    /// It stopped claiming and hands back what it holds (SIGTERM).
    pub draining: bool,
}

/// How a shared store hands each execution to one process at a time.
///
/// An execution is owned through a lease: the owner's worker row (renewed
/// in one statement per round for everything it owns) and a fencing epoch
/// that grows by one at every claim. Every append of the journal checks,
/// in its own transaction, that this process still holds the epoch it
/// claimed with; a process that lost its lease (paused, partitioned, slow)
/// has its append refused with [`Error::Fenced`] and writes nothing.
/// An execution this process starts is its own from its first append.
///
/// Ownership is for running: an execution is handed back when it parks
/// (hibernates) or ends, so whichever process next has something for it (a
/// signal, an approval, a due timer) claims it, reads its history, and
/// carries it on.
pub trait Leases: Send + Sync {
    /// This process's worker id.
    fn worker_id(&self) -> &str;
    /// How long a lease lasts unrenewed: a dead owner's executions are
    /// claimable this long after its last renewal.
    fn lease_time(&self) -> std::time::Duration;
    /// Whether this process owns `execution` now (as far as it knows: a
    /// takeover it has not heard of yet shows at its next append or renewal).
    fn owns(&self, execution: ExecutionId) -> bool;
    /// Claim up to `limit` executions that need a process and that no live
    /// process owns: running ones, and waiting ones with a timer due by
    /// `due_by_ms`; only those whose workflow hash is one of `hashes`.
    /// One transaction (`FOR UPDATE SKIP LOCKED`); each comes back with a
    /// new epoch that this journal's appends carry from now on.
    fn claim<'a>(
        &'a self,
        hashes: &'a [String],
        due_by_ms: u64,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<ExecutionMeta>, Error>>;
    /// Claim one execution (to deliver to it, to fire its timer): `Ok(true)`
    /// when this process owns it now (it did already, or it was free or its
    /// owner's lease expired), `Ok(false)` when a live process owns it.
    fn claim_one(&self, execution: ExecutionId) -> BoxFuture<'_, Result<bool, Error>>;
    /// Renew every lease of this process in one statement. Returns the
    /// executions it believed it owned that it no longer does (taken over
    /// while it was paused).
    fn renew(&self) -> BoxFuture<'_, Result<Vec<ExecutionId>, Error>>;
    /// Hand these executions back: their leases end now, in order after
    /// every append of this process queued before.
    fn release<'a>(&'a self, executions: &'a [ExecutionId]) -> BoxFuture<'a, Result<(), Error>>;
    /// Stop or start claiming (a draining process claims nothing; shown in
    /// `jamjet workers`).
    fn set_draining(&self, draining: bool) -> BoxFuture<'_, Result<(), Error>>;
    /// The live processes of the store (renewed within the lease time).
    fn workers(&self) -> Result<Vec<WorkerInfo>, Error>;
    /// Who owns `execution` now, if a live process does.
    fn owner(&self, execution: ExecutionId) -> Result<Option<String>, Error>;
    /// The hashes of every workflow stored (what [`claim`](Self::claim)
    /// may be asked for: the ones whose host functions this process has).
    fn workflow_hashes(&self) -> Result<Vec<String>, Error>;
    /// Hear of appends any process of the store made durable from now on:
    /// (execution, its new last sequence number). A speed-up only: a
    /// notice may be lost (a dropped connection), so who follows an
    /// execution also looks by itself now and then.
    fn notices(&self) -> tokio::sync::broadcast::Receiver<(ExecutionId, u64)>;
    /// Up to `limit` executions that need a process and that no live process
    /// owns (what a claim would take, whatever their workflows), oldest
    /// first: `jamjet executions --unclaimed`. Reads only.
    fn unclaimed(&self, due_by_ms: u64, limit: usize) -> Result<Vec<ExecutionMeta>, Error>;
    /// What this process's leases did since the store was opened (`/metrics`).
    fn counters(&self) -> LeaseCounters;
    /// Send `message` to `execution`'s inbox (another live process runs
    /// it): durable, and announced to the store's processes, when this
    /// returns. Returns its row, to [`collect`](Self::collect) the answer.
    fn send<'a>(&'a self, execution: ExecutionId, message: &'a inbox::Message) -> BoxFuture<'a, Result<u64, Error>>;
    /// Up to `limit` open messages of the executions this process owns,
    /// oldest first: deliver each, in order, with its answer journaled by
    /// the append that records it ([`WaitChange::Answered`]), or
    /// [`refuse`](Self::refuse) it.
    fn letters(&self, limit: usize) -> BoxFuture<'_, Result<Vec<inbox::Letter>, Error>>;
    /// Answer an open message with a refusal (nothing journaled), when its
    /// execution is this process's or has ended: whether it was answered.
    fn refuse<'a>(&'a self, row: u64, refusal: &'a inbox::Refusal) -> BoxFuture<'a, Result<bool, Error>>;
    /// The answer to the message at `row` once there is one (the row is
    /// removed as it is read).
    fn collect(&self, row: u64) -> BoxFuture<'_, Result<Option<inbox::Answer>, Error>>;
    /// Take back the message at `row` if nobody answered it yet: whether it
    /// was taken back (if not, it was answered: [`collect`](Self::collect) it).
    fn withdraw(&self, row: u64) -> BoxFuture<'_, Result<bool, Error>>;
    /// Hear of messages sent to inboxes, and refusals written, by any
    /// process of the store (a speed-up only, as [`notices`](Self::notices)).
    fn inbox_notices(&self) -> tokio::sync::broadcast::Receiver<inbox::InboxNotice>;
}

pub type SharedJournal = Arc<dyn Journal>;

/// A stored value: the format version byte, then the body.
fn versioned(body: Vec<u8>) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 1);
    out.push(FORMAT_VERSION);
    out.extend(body);
    out
}

/// The body of a stored value written by format version 1.
fn unversioned<'a>(bytes: &'a [u8], what: &str) -> Result<&'a [u8], Error> {
    match bytes.split_first() {
        Some((1, body)) => Ok(body),
        Some((v, _)) => Err(Error::Corrupt(format!("{what} has unknown format version {v}"))),
        None => Err(Error::Corrupt(format!("empty {what}"))),
    }
}

fn encode_meta(meta: &ExecutionMeta) -> Vec<u8> {
    versioned(postcard::to_stdvec(meta).expect("meta always encodes"))
}

fn decode_meta(bytes: &[u8]) -> Result<ExecutionMeta, Error> {
    postcard::from_bytes(unversioned(bytes, "execution index row")?)
        .map_err(|e| Error::Corrupt(format!("execution index row does not decode: {e}")))
}

/// Whether the stored row `bytes` is one `filter` keeps, read without
/// decoding the whole row (its text borrowed, nothing allocated); `None`
/// when its head does not decode (the whole decode says why).
fn row_kept(bytes: &[u8], filter: &RowFilter) -> Option<bool> {
    #[derive(Deserialize)]
    struct Head<'a> {
        _id: ExecutionId,
        #[serde(borrow)]
        workflow_id: &'a str,
        #[serde(borrow)]
        _version: &'a str,
        #[serde(borrow)]
        _hash: &'a str,
        status: Status,
    }
    let head: Head<'_> = postcard::from_bytes(unversioned(bytes, "execution index row").ok()?).ok()?;
    Some(filter.keeps_one(head.status, head.workflow_id))
}

/// The index row of `id`, or what makes it damaged.
fn decode_meta_of(id: ExecutionId, bytes: &[u8]) -> Result<ExecutionMeta, Damage> {
    match decode_meta(bytes) {
        Ok(meta) if meta.id == id => Ok(meta),
        Ok(meta) => Err(Damage::new(id, Part::IndexRow, format!("the row stored under it names {}", meta.id))),
        Err(e) => Err(Damage::new(id, Part::IndexRow, corrupt_detail(e))),
    }
}

/// What a decoding error says, without the "corrupt journal record" prefix.
/// The records of one stored frame of `execution`, or the damage that
/// names the record (what every backend's `read` reports).
fn frame(execution: ExecutionId, first: u64, bytes: &[u8]) -> Result<Vec<Record>, Error> {
    decode_frame_at(first, bytes)
        .map_err(|bad| Error::Damaged(Damage::new(execution, Part::Record { seq: bad.seq }, bad.detail)))
}

fn corrupt_detail(e: Error) -> String {
    match e {
        Error::Corrupt(detail) => detail,
        other => other.to_string(),
    }
}

fn encode_registration(r: &Registration) -> Vec<u8> {
    versioned(postcard::to_stdvec(r).expect("registration always encodes"))
}

fn decode_registration(bytes: &[u8]) -> Result<Registration, Error> {
    postcard::from_bytes(unversioned(bytes, "workflow registration")?)
        .map_err(|e| Error::Corrupt(format!("workflow registration does not decode: {e}")))
}

fn encode_workflow(wf: &Workflow) -> Vec<u8> {
    versioned(serde_json::to_vec(wf).expect("workflow always encodes"))
}

fn decode_workflow(bytes: &[u8]) -> Result<Workflow, Error> {
    serde_json::from_slice(unversioned(bytes, "stored workflow")?)
        .map_err(|e| Error::Corrupt(format!("stored workflow does not decode: {e}")))
}
