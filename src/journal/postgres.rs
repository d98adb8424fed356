//! The distributed journal, on PostgreSQL (sqlx): any number of processes
//! can share one store.
//!
//! Data model (tables in `migrations/`, applied at open by [`schema`]):
//! `executions` (the index row, with its idempotency key, unique),
//! `events` (append-only, one row per append: the frame of its records as
//! [`encode_frame`] makes it, keyed by execution and first sequence
//! number), `workflows` by hash, `registrations`, `timers`, `waits`,
//! `kept_events` (the mailbox) and `sessions`. Every stored value keeps the
//! sled backend's encoding (version byte first) in a `bytea` column, so
//! decoding and damage reporting are the same code; the fields SQL needs
//! (status, workflow id, key, times, deadlines) are columns of their own.
//!
//! Writes go through one flusher task: group commit, one transaction per
//! round for every request that queued while the previous round committed
//! (see [`commit`]). An append resolves once its round's COMMIT returned.
//! A second append at a position already stored is refused by the primary
//! key, never written over.
//!
//! The trait's reads are synchronous and are called from inside tokio
//! tasks, on multi-thread and current-thread runtimes alike, where neither
//! `block_in_place` (it panics on a current-thread runtime) nor
//! `Handle::block_on` (it panics inside a runtime) may be used. So the
//! journal owns a small runtime of its own (two worker threads, built at
//! open) that runs the connection pool and the flusher: a read spawns its
//! query there and waits for the answer on a std channel, blocking the
//! calling thread as a sled read blocks it on the disk. Dropping the
//! journal closes the queue, lets the flusher finish its last round and
//! close the pool, then shuts that runtime down in the background (never a
//! blocking runtime drop, which panics inside an async context).
//!
//! Opening (`connect.rs`) connects once to report a server that is down
//! or refuses us in plain words (host and port, database, user, never the
//! password), then migrates the schema (`schema.rs`) and builds the pool.
//!
//! Times and deadlines are stored as `bigint`: a value past `i64::MAX`
//! milliseconds (292 million years) is stored as `i64::MAX`.
//!
//! Many processes share the store, one execution runs in one process at a
//! time: the journal is a worker of the store and implements [`Leases`]
//! (`lease.rs`). Its appends are fenced: an append of an execution it does
//! not hold is refused ([`Error::Fenced`]) and writes nothing. Opening
//! inserts its worker row; closing (dropping the journal) hands back every
//! lease it holds and deletes the row, after the flusher's last round.

mod commit;
mod connect;
mod inbox;
mod lease;
mod notices;
mod prune;
mod schema;

use std::future::Future;
use std::str::FromStr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use sqlx::PgPool;
use sqlx::postgres::PgConnectOptions;
use tokio::runtime::{Handle, Runtime};
use tokio::sync::{mpsc, oneshot};

use self::commit::{Counters, EventRow, Fence, Held, KeptRow, MetaRow, RegistrationRow, Request, SessionRow, Writes};
pub use self::connect::redact_url;
use self::connect::{connect, place};
use self::lease::Lessee;
pub use self::lease::{LeaseCounters, PgOptions};
pub use self::schema::SCHEMA_VERSION;
use super::inbox::{Answer, InboxNotice, Letter, Message, Refusal};
use super::mailbox::{self, WaitChange};
use super::session;
use super::{
    Append, Damage, Error, ExecutionMeta, Freed, IndexPage, Journal, KeptEvent, KeptRef, Leases, Listing, Part, Record,
    Registration, RowFilter, SessionRecord, Stats, Timer, TimerChange, Tombstone, WorkerInfo, decode_meta_of,
    decode_registration, decode_workflow, encode_frame, encode_meta, encode_registration, encode_workflow,
};
use crate::id::ExecutionId;
use crate::ir::Workflow;
use crate::plural::count;

/// Connections in the pool: the flusher holds one per round; reads take the rest.
const POOL_SIZE: u32 = 8;
/// How long opening waits for the server to answer.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a read or a commit waits for a free connection.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long dropping the journal waits for the flusher's last round.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(10);
/// How many times a read, or a round that did not reach its COMMIT, is
/// run again on another connection when its connection was lost: enough
/// to get past every pooled connection a server restart left dead (the
/// pool drops each as it fails).
const RECONNECTS: u32 = POOL_SIZE + 1;

/// Whether `e` says the connection is gone (the server restarted or ended
/// this backend), rather than that the server refused the statement.
fn connection_lost(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_) | sqlx::Error::Tls(_) => true,
        // Class 08: connection exception; 57P01..03: the server is shutting down or restarting.
        sqlx::Error::Database(db) => db.code().is_some_and(|c| c.starts_with("08") || c.starts_with("57P")),
        _ => false,
    }
}

/// A PostgreSQL error while doing `what`.
fn storage(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Storage(format!("PostgreSQL journal: {what}: {e}"))
}

/// The journal's own runtime, shut down in the background when dropped
/// (a blocking shutdown panics when dropped inside an async context).
struct OwnRuntime(Option<Runtime>);

impl Drop for OwnRuntime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

/// A store's schema as [`PgJournal::schema_state`] reads it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SchemaState {
    /// Host and port, database and user (never the password).
    pub place: String,
    /// The PostgreSQL schema the tables live in.
    pub schema: String,
    /// The version recorded there (0: no jamjet tables yet).
    pub version: u32,
    /// The newest version this build knows.
    pub known: u32,
}

/// The PostgreSQL-backed journal.
pub struct PgJournal {
    /// The flusher's queue; `None` once closed (at drop).
    queue: Option<mpsc::UnboundedSender<Request>>,
    pool: PgPool,
    handle: Handle,
    counters: Arc<Counters>,
    /// This process as a worker of the store: its id, and the executions it holds.
    lessee: Arc<Lessee>,
    /// What the store's processes appended, and sent to inboxes (see `notices.rs`).
    hearers: notices::Hearers,
    /// Told when the flusher has committed its last round and closed the pool.
    flushed: Mutex<std::sync::mpsc::Receiver<()>>,
    /// Where the store is (no password), for messages.
    place: String,
    /// Last: shut down after the flusher stopped.
    _runtime: OwnRuntime,
}

impl PgJournal {
    /// The newest schema version this build knows.
    pub const SCHEMA_VERSION: u32 = SCHEMA_VERSION;

    /// Open the journal at `url` (`postgres://user:password@host:port/database`;
    /// the tables live in the connection's current schema, which
    /// `?options=-c%20search_path%3Dname` chooses): connect, and bring the
    /// schema up to date (creating it in a fresh schema). Refused, and
    /// nothing changed, when the store's schema is newer than this build's.
    /// The journal is a worker named `jamjet` with leases of 5 s
    /// ([`PgOptions::default`]; see [`open_with`](Self::open_with)).
    pub async fn open(url: &str) -> Result<PgJournal, Error> {
        PgJournal::open_with(url, PgOptions::default()).await
    }

    /// [`open`](Self::open), as a worker running `options.command` whose
    /// leases last `options.lease_time` unrenewed.
    pub async fn open_with(url: &str, worker: PgOptions) -> Result<PgJournal, Error> {
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| Error::Storage(format!("the PostgreSQL URL {} is not valid: {e}", redact_url(url))))?;
        let place = place(&options);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("jamjet-postgres")
            .enable_all()
            .build()
            .map_err(|e| Error::Storage(format!("cannot start the PostgreSQL journal's threads: {e}")))?;
        let runtime = OwnRuntime(Some(runtime));
        let handle = runtime.0.as_ref().expect("just built").handle().clone();
        let (tx, rx) = oneshot::channel();
        handle.spawn({
            let place = place.clone();
            async move {
                let _ = tx.send(connect(options, place).await);
            }
        });
        let stopped = || Error::Storage("PostgreSQL journal: its runtime stopped while opening".to_string());
        let pool = rx.await.map_err(|_| stopped())??;
        let lessee = Arc::new(Lessee::new(&worker));
        let (tx, rx) = oneshot::channel();
        handle.spawn({
            let (pool, lessee) = (pool.clone(), lessee.clone());
            async move {
                let _ = tx.send(lease::register(&pool, &lessee).await);
            }
        });
        if let Err(e) = rx.await.map_err(|_| stopped())? {
            pool.close().await;
            return Err(e);
        }
        let hearers = notices::Hearers {
            appends: tokio::sync::broadcast::channel(notices::BACKLOG).0,
            inbox: tokio::sync::broadcast::channel(notices::BACKLOG).0,
        };
        let (tx, rx) = oneshot::channel();
        handle.spawn({
            let pool = pool.clone();
            async move {
                let channel =
                    sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(format!("SELECT {}", notices::CHANNEL_SQL)))
                        .fetch_one(&pool)
                        .await;
                let _ = tx.send(channel);
            }
        });
        let channel = rx.await.map_err(|_| stopped())?.map_err(|e| storage("naming the notice channel", e))?;
        handle.spawn(notices::listen(pool.clone(), channel, hearers.clone()));
        let counters = Arc::new(Counters::default());
        let (queue, requests) = mpsc::unbounded_channel();
        let (flushed_tx, flushed) = std::sync::mpsc::channel();
        handle.spawn({
            let (pool, counters, lessee) = (pool.clone(), counters.clone(), lessee.clone());
            async move {
                commit::flusher(&pool, requests, counters, lessee.clone()).await;
                // After the last round: hand everything back at once.
                if let Err(e) = lease::close(&pool, &lessee).await {
                    tracing::warn!(error = %e, "the PostgreSQL journal could not hand back its leases at close");
                }
                pool.close().await;
                let _ = flushed_tx.send(());
            }
        });
        tracing::debug!(store = %place, worker = %lessee.worker, "PostgreSQL journal open");
        Ok(PgJournal {
            queue: Some(queue),
            pool,
            handle,
            counters,
            lessee,
            hearers,
            flushed: Mutex::new(flushed),
            place,
            _runtime: runtime,
        })
    }

    /// The store's schema as it stands, changing nothing (`jamjet store
    /// check`): where it is, and the version recorded there (0: none yet).
    pub async fn schema_state(url: &str) -> Result<SchemaState, Error> {
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| Error::Storage(format!("the PostgreSQL URL {} is not valid: {e}", redact_url(url))))?;
        let place = place(&options);
        let pool = connect::connect_only(options, place.clone()).await?;
        let state = schema::state(&pool).await;
        pool.close().await;
        let (schema, version) = state?;
        Ok(SchemaState { place, schema, version, known: SCHEMA_VERSION })
    }

    /// Bring the store's schema up to this build's (`jamjet store
    /// migrate`; opening does it too): the version it was at. Refused, and
    /// nothing changed, when it is newer than this build's.
    pub async fn migrate(url: &str) -> Result<u32, Error> {
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| Error::Storage(format!("the PostgreSQL URL {} is not valid: {e}", redact_url(url))))?;
        let pool = connect::connect_only(options.clone(), place(&options)).await?;
        let from = schema::migrate(&pool).await;
        pool.close().await;
        from
    }

    /// Where the store is: host and port (or socket), database and user;
    /// never the password.
    pub fn place(&self) -> &str {
        &self.place
    }

    /// What this process's leases did since it opened (claims, executions
    /// claimed, renewals, refused appends).
    pub fn lease_counters(&self) -> LeaseCounters {
        self.lessee.counters()
    }

    /// Run `work` on the journal's runtime (where the pool lives) and await it here.
    fn spawn<T, F>(&self, what: &'static str, work: F) -> BoxFuture<'static, Result<T, Error>>
    where
        T: Send + 'static,
        F: Future<Output = Result<T, Error>> + Send + 'static,
    {
        let task = self.handle.spawn(work);
        Box::pin(async move { task.await.unwrap_or_else(|e| Err(storage(what, format!("the task stopped: {e}")))) })
    }

    /// Queue `writes` for the flusher; resolves after their COMMIT.
    fn submit(&self, writes: Writes) -> BoxFuture<'static, Result<(), Error>> {
        let (done, answer) = oneshot::channel();
        let what = writes.what.clone();
        let queued = self.queue.as_ref().is_some_and(|q| q.send(Request { writes, done }).is_ok());
        Box::pin(async move {
            if !queued {
                return Err(storage(&what, "the journal is closed"));
            }
            answer.await.unwrap_or_else(|_| Err(storage(&what, "the journal's flusher stopped before answering")))
        })
    }

    /// Run `query(pool, args)` on the journal's runtime and wait for it on
    /// this thread. A connection found lost (the server restarted, a
    /// backend was terminated) is dropped by the pool and the query is
    /// run again on another, up to [`RECONNECTS`] times: reads repeat safely.
    fn wait<A, T, F>(&self, what: String, args: A, query: impl Fn(PgPool, A) -> F + Send + 'static) -> Result<T, Error>
    where
        A: Clone + Send + 'static,
        T: Send + 'static,
        F: Future<Output = Result<T, sqlx::Error>> + Send + 'static,
    {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let pool = self.pool.clone();
        self.handle.spawn(async move {
            let mut tries = 0;
            let outcome = loop {
                match query(pool.clone(), args.clone()).await {
                    Err(e) if connection_lost(&e) && tries < RECONNECTS => {
                        tries += 1;
                        tracing::debug!(error = %e, what = %what, "PostgreSQL connection lost; reading again");
                    }
                    outcome => break outcome.map_err(|e| storage(&what, e)),
                }
            };
            let _ = tx.send(outcome);
        });
        rx.recv().unwrap_or_else(|_| Err(storage("reading", "the journal's runtime stopped before answering")))
    }

    /// The frames of `execution` whose last record is past `after`, in order.
    fn frames(&self, execution: ExecutionId, after: u64, limit: i64) -> Result<Vec<(i64, Vec<u8>)>, Error> {
        let id = execution.to_bytes().to_vec();
        self.wait(
            format!("reading the history of {execution}"),
            (id, ms(after), limit),
            |pool, (id, after, n)| async move {
                sqlx::query_as(
                    "SELECT first_seq, frame FROM events WHERE execution = $1 AND last_seq > $2 \
                 ORDER BY first_seq LIMIT $3",
                )
                .bind(id)
                .bind(after)
                .bind(n)
                .fetch_all(&pool)
                .await
            },
        )
    }
}

impl Drop for PgJournal {
    fn drop(&mut self) {
        // Closing the queue ends the flusher after the requests queued so far.
        self.queue = None;
        let flushed = self.flushed.lock().unwrap_or_else(|e| e.into_inner());
        if flushed.recv_timeout(CLOSE_TIMEOUT).is_err() {
            tracing::warn!(store = %self.place, "the PostgreSQL journal's flusher did not stop in time");
        }
    }
}

/// A time or deadline as stored (see the module doc).
fn ms(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// A row count limit as bound.
fn limit(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// A stored number that cannot be negative.
fn unsigned(v: i64, what: &str) -> Result<u64, Error> {
    u64::try_from(v).map_err(|_| Error::Corrupt(format!("{what} is negative ({v})")))
}

/// An execution id as stored.
fn id_from(bytes: &[u8], what: &str) -> Result<ExecutionId, Error> {
    let bytes: [u8; 16] = bytes
        .try_into()
        .map_err(|_| Error::Corrupt(format!("{what} holds an execution id of {} bytes", bytes.len())))?;
    Ok(ExecutionId::from_bytes(bytes))
}

fn kept_id(bytes: &[u8]) -> Result<[u8; 16], Error> {
    bytes.try_into().map_err(|_| Error::Corrupt(format!("a kept event id of {} bytes", bytes.len())))
}

/// The rows one append writes.
fn append_writes(append: &Append<'_>) -> Result<Writes, Error> {
    let exec = append.execution;
    let id = exec.to_bytes().to_vec();
    let n = append.events.len() as u64;
    let mut w = Writes {
        what: match n {
            0 => format!("updating the indexes of execution {exec}"),
            _ => format!(
                "appending {} from sequence {} to execution {exec}",
                count(n, "record", "records"),
                append.first_seq
            ),
        },
        appends: 1,
        events: n,
        ..Writes::default()
    };
    if n > 0 {
        let last = append.first_seq.checked_add(n - 1).filter(|&last| append.first_seq >= 1 && ms(last) == last as i64);
        let Some(last) = last else {
            return Err(storage(&w.what, "the sequence numbers are out of range (1 to 2^63 - 1)"));
        };
        w.event_rows.push(EventRow {
            execution: id.clone(),
            first_seq: append.first_seq as i64,
            last_seq: last as i64,
            at_ms: ms(append.at_ms),
            frame: encode_frame(append.at_ms, append.events),
        });
    }
    if let Some(meta) = append.meta {
        w.metas.push((meta.id.to_bytes().to_vec(), meta_row(meta)));
    }
    if let Some((hash, wf)) = append.workflow {
        w.workflows.push((hash.to_string(), encode_workflow(wf)));
    }
    for change in append.timers {
        w.timers.push(match *change {
            TimerChange::Set(at) => ((ms(at), id.clone()), true),
            TimerChange::Clear(at) => ((ms(at), id.clone()), false),
            TimerChange::SetFor(other, at) => ((ms(at), other.to_bytes().to_vec()), true),
        });
    }
    for change in append.waits {
        match change {
            WaitChange::Wait(key) => w.waits.push(((key.clone(), id.clone()), true)),
            WaitChange::Unwait(key) => w.waits.push(((key.clone(), id.clone()), false)),
            WaitChange::Take(at) => w.kept.push(((at.key.clone(), at.id.to_vec()), None)),
            WaitChange::Answered(row, answer) => {
                let Ok(row) = i64::try_from(*row) else {
                    return Err(storage(&w.what, format!("inbox row {row} is out of range")));
                };
                w.answers.push((row, id.clone(), super::inbox::encode(answer)));
            }
        }
    }
    if let Some(s) = append.session {
        w.sessions.push((s.id.clone(), Some(session_row(s))));
    }
    Ok(w)
}

fn meta_row(meta: &ExecutionMeta) -> MetaRow {
    MetaRow {
        workflow_id: meta.workflow_id.clone(),
        workflow_version: meta.workflow_version.clone(),
        workflow_hash: meta.workflow_hash.clone(),
        status: meta.status.as_str(),
        created_ms: ms(meta.created_ms),
        updated_ms: ms(meta.updated_ms),
        key: meta.key.clone(),
        record: encode_meta(meta),
    }
}

fn session_row(s: &SessionRecord) -> SessionRow {
    SessionRow {
        workflow_id: s.workflow_id.clone(),
        created_ms: ms(s.created_ms),
        last_active_ms: ms(s.last_active_ms),
        record: session::encode_session(s),
    }
}

/// The records of `frames` (first sequence number, frame) of `execution`,
/// from the first record: a gap is damage, named by the first record missing.
fn history(execution: ExecutionId, frames: Vec<(i64, Vec<u8>)>) -> Result<Vec<Record>, Error> {
    let mut records = Vec::new();
    for (first, frame) in frames {
        let next = records.len() as u64 + 1;
        let first = unsigned(first, "a frame's first sequence number")?;
        if first != next {
            let detail = format!("it is missing (the next stored record is {first})");
            return Err(Error::Damaged(Damage::new(execution, Part::Record { seq: next }, detail)));
        }
        records.extend(super::frame(execution, first, &frame)?);
    }
    Ok(records)
}

impl Journal for PgJournal {
    fn append<'a>(&'a self, append: Append<'a>) -> BoxFuture<'a, Result<(), Error>> {
        let exec = append.execution;
        // Fencing: an execution this process holds, or one it starts.
        let held = match self.lessee.owned().get(&exec) {
            Some(&epoch) => Held::Epoch(epoch),
            None if append.first_seq == 1 => Held::Starts,
            None => {
                let error = self.lessee.fenced(exec, None, "this process has not claimed it".to_string());
                return Box::pin(std::future::ready(Err(error)));
            }
        };
        match append_writes(&append) {
            Ok(mut writes) => {
                let ends = append.meta.is_some_and(|m| m.status.is_terminal());
                let child = append.first_seq == 1 && append.events.first().is_some_and(|e| e.parent_link().is_some());
                writes.fence = Some(Fence { execution: exec, id: exec.to_bytes().to_vec(), held, ends, child });
                self.submit(writes)
            }
            Err(e) => Box::pin(std::future::ready(Err(e))),
        }
    }

    fn read(&self, execution: ExecutionId) -> Result<Vec<Record>, Error> {
        history(execution, self.frames(execution, 0, i64::MAX)?)
    }

    fn read_after(&self, execution: ExecutionId, after: u64) -> Result<Vec<Record>, Error> {
        let mut records = Vec::new();
        for (first, frame) in self.frames(execution, after, i64::MAX)? {
            let first = unsigned(first, "a frame's first sequence number")?;
            records.extend(super::frame(execution, first, &frame)?.into_iter().filter(|r| r.seq > after));
        }
        Ok(records)
    }

    fn first(&self, execution: ExecutionId) -> Result<Option<Record>, Error> {
        Ok(history(execution, self.frames(execution, 0, 1)?)?.into_iter().next())
    }

    fn meta(&self, execution: ExecutionId) -> Result<Option<ExecutionMeta>, Error> {
        let id = execution.to_bytes().to_vec();
        let row: Option<Vec<u8>> =
            self.wait(format!("reading the index row of {execution}"), id, |pool, id| async move {
                sqlx::query_scalar("SELECT record FROM executions WHERE id = $1").bind(id).fetch_optional(&pool).await
            })?;
        row.map(|v| decode_meta_of(execution, &v).map_err(Error::Damaged)).transpose()
    }

    fn listing(&self) -> Result<Listing, Error> {
        let rows: Vec<(Vec<u8>, Vec<u8>)> =
            self.wait("listing the executions".to_string(), (), |pool, _| async move {
                sqlx::query_as("SELECT id, record FROM executions ORDER BY id").fetch_all(&pool).await
            })?;
        let mut out = Listing::default();
        for (id, record) in rows {
            let Ok(id) = id_from(&id, "the execution index") else {
                tracing::warn!(id = ?id, "an execution index row with an id of the wrong length; skipped");
                continue;
            };
            match decode_meta_of(id, &record) {
                Ok(meta) => out.rows.push(meta),
                Err(damage) => out.damaged.push(damage),
            }
        }
        Ok(out)
    }

    /// One page in SQL: only the predicates `filter` and the cursor need
    /// (each its own parameter), in id order either way, `limit + 1` rows
    /// to say whether more follow.
    fn page(
        &self,
        after: Option<ExecutionId>,
        newest_first: bool,
        limit: usize,
        filter: &RowFilter,
    ) -> Result<IndexPage, Error> {
        if filter.workflow.as_deref().is_some_and(|w| w.contains('\0')) {
            // PostgreSQL text holds no NUL, so no workflow id has one.
            return Ok(IndexPage::default());
        }
        let mut sql = String::from("SELECT id, record FROM executions WHERE true");
        let mut n = 0;
        let mut param = |sql: &mut String, clause: &str| {
            n += 1;
            sql.push_str(&clause.replace('?', &format!("${n}")));
        };
        if filter.status.is_some() {
            param(&mut sql, " AND status = ?");
        }
        if filter.workflow.is_some() {
            param(&mut sql, " AND workflow_id = ?");
        }
        if after.is_some() {
            param(&mut sql, if newest_first { " AND id < ?" } else { " AND id > ?" });
        }
        sql.push_str(if newest_first { " ORDER BY id DESC" } else { " ORDER BY id" });
        param(&mut sql, " LIMIT ?");
        let args = (
            sql,
            filter.status.map(|s| s.as_str().to_string()),
            filter.workflow.clone(),
            after.map(|a| a.to_bytes().to_vec()),
            i64::try_from(limit.saturating_add(1)).unwrap_or(i64::MAX),
        );
        let rows: Vec<(Vec<u8>, Vec<u8>)> = self.wait(
            "listing a page of the executions".to_string(),
            args,
            |pool, (sql, status, workflow, after, limit)| async move {
                let mut q = sqlx::query_as(sqlx::AssertSqlSafe(sql));
                if let Some(status) = status {
                    q = q.bind(status);
                }
                if let Some(workflow) = workflow {
                    q = q.bind(workflow);
                }
                if let Some(after) = after {
                    q = q.bind(after);
                }
                q.bind(limit).fetch_all(&pool).await
            },
        )?;
        let mut out = IndexPage::default();
        for (id, record) in rows {
            let Ok(id) = id_from(&id, "the execution index") else { continue };
            match decode_meta_of(id, &record) {
                Ok(_) if out.rows.len() == limit => {
                    out.more = true;
                    break;
                }
                Ok(meta) => out.rows.push(meta),
                Err(damage) => out.damaged.push(damage),
            }
        }
        Ok(out)
    }

    fn workflow(&self, hash: &str) -> Result<Option<Workflow>, Error> {
        let hash = hash.to_string();
        let ir: Option<Vec<u8>> = self.wait(format!("reading the workflow {hash}"), hash, |pool, hash| async move {
            sqlx::query_scalar("SELECT ir FROM workflows WHERE hash = $1").bind(hash).fetch_optional(&pool).await
        })?;
        ir.map(|v| decode_workflow(&v)).transpose()
    }

    fn register<'a>(&'a self, registration: &'a Registration, wf: &'a Workflow) -> BoxFuture<'a, Result<(), Error>> {
        let r = registration;
        self.submit(Writes {
            what: format!("registering the workflow {} version {}", r.workflow_id, r.version),
            workflows: vec![(r.hash.clone(), encode_workflow(wf))],
            registrations: vec![(
                (r.workflow_id.clone(), r.version.clone()),
                RegistrationRow {
                    hash: r.hash.clone(),
                    registered_ms: ms(r.registered_ms),
                    record: encode_registration(r),
                },
            )],
            ..Writes::default()
        })
    }

    fn registrations(&self) -> Result<Vec<Registration>, Error> {
        let rows: Vec<Vec<u8>> = self.wait("reading the registrations".to_string(), (), |pool, _| async move {
            sqlx::query_scalar("SELECT record FROM registrations ORDER BY workflow_id, version").fetch_all(&pool).await
        })?;
        rows.iter().map(|v| decode_registration(v)).collect()
    }

    fn find_key(&self, key: &str) -> Result<Option<ExecutionId>, Error> {
        let key = key.to_string();
        let id: Option<Vec<u8>> =
            self.wait(format!("looking up the idempotency key `{key}`"), key, |pool, key| async move {
                sqlx::query_scalar("SELECT id FROM executions WHERE key = $1").bind(key).fetch_optional(&pool).await
            })?;
        id.map(|id| id_from(&id, "the idempotency key's row")).transpose()
    }

    fn due_timers(&self, up_to_ms: u64, n: usize) -> Result<Vec<Timer>, Error> {
        let rows: Vec<(i64, Vec<u8>)> =
            self.wait("reading the due timers".to_string(), (ms(up_to_ms), limit(n)), |pool, (up_to, n)| async move {
                sqlx::query_as(
                    "SELECT at_ms, execution FROM timers WHERE at_ms <= $1 ORDER BY at_ms, execution LIMIT $2",
                )
                .bind(up_to)
                .bind(n)
                .fetch_all(&pool)
                .await
            })?;
        rows.into_iter().map(|(at, id)| timer(at, &id)).collect()
    }

    fn next_timer_after(&self, after_ms: u64) -> Result<Option<Timer>, Error> {
        let row: Option<(i64, Vec<u8>)> =
            self.wait("reading the next timer".to_string(), ms(after_ms), |pool, after| async move {
                sqlx::query_as("SELECT at_ms, execution FROM timers WHERE at_ms > $1 ORDER BY at_ms, execution LIMIT 1")
                    .bind(after)
                    .fetch_optional(&pool)
                    .await
            })?;
        row.map(|(at, id)| timer(at, &id)).transpose()
    }

    fn waiting_for(&self, key: &str) -> Result<Vec<ExecutionId>, Error> {
        let key = key.to_string();
        let rows: Vec<Vec<u8>> = self.wait(format!("reading who waits for `{key}`"), key, |pool, key| async move {
            sqlx::query_scalar("SELECT execution FROM waits WHERE event_key = $1 ORDER BY execution")
                .bind(key)
                .fetch_all(&pool)
                .await
        })?;
        rows.iter().map(|id| id_from(id, "the wait index")).collect()
    }

    fn wait_index(&self) -> Result<Vec<(String, ExecutionId)>, Error> {
        let rows: Vec<(String, Vec<u8>)> =
            self.wait("reading the wait index".to_string(), (), |pool, _| async move {
                sqlx::query_as("SELECT event_key, execution FROM waits ORDER BY event_key, execution")
                    .fetch_all(&pool)
                    .await
            })?;
        rows.into_iter().map(|(key, id)| Ok((key, id_from(&id, "the wait index")?))).collect()
    }

    fn keep<'a>(&'a self, event: &'a KeptEvent) -> BoxFuture<'a, Result<(), Error>> {
        let row = KeptRow {
            until_ms: ms(event.at.until_ms),
            published_ms: ms(event.published_ms),
            record: mailbox::encode_kept(event),
        };
        self.submit(Writes {
            what: format!("keeping an event for `{}`", event.at.key),
            kept: vec![((event.at.key.clone(), event.at.id.to_vec()), Some(row))],
            ..Writes::default()
        })
    }

    fn kept(&self, key: &str, now_ms: u64, n: usize) -> Result<Vec<KeptEvent>, Error> {
        let key = key.to_string();
        let rows: Vec<(String, Vec<u8>, Vec<u8>)> = self.wait(
            format!("reading the kept events of `{key}`"),
            (key, ms(now_ms), limit(n)),
            |pool, (key, now, n)| async move {
                sqlx::query_as(
                    "SELECT event_key, id, record FROM kept_events WHERE event_key = $1 AND until_ms > $2 \
                 ORDER BY id LIMIT $3",
                )
                .bind(key)
                .bind(now)
                .bind(n)
                .fetch_all(&pool)
                .await
            },
        )?;
        rows.into_iter().map(|(key, id, record)| mailbox::decode_kept_parts(&key, kept_id(&id)?, &record)).collect()
    }

    fn expiring(&self, up_to_ms: u64, n: usize) -> Result<Vec<KeptRef>, Error> {
        let rows: Vec<(String, Vec<u8>, i64)> = self.wait(
            "reading the expiring kept events".to_string(),
            (ms(up_to_ms), limit(n)),
            |pool, (up_to, n)| async move {
                sqlx::query_as(
                    "SELECT event_key, id, until_ms FROM kept_events WHERE until_ms <= $1 \
                 ORDER BY until_ms, id, event_key LIMIT $2",
                )
                .bind(up_to)
                .bind(n)
                .fetch_all(&pool)
                .await
            },
        )?;
        rows.into_iter()
            .map(|(key, id, until)| {
                Ok(KeptRef { key, id: kept_id(&id)?, until_ms: unsigned(until, "a kept event's expiry")? })
            })
            .collect()
    }

    fn forget<'a>(&'a self, kept: &'a [KeptRef]) -> BoxFuture<'a, Result<(), Error>> {
        if kept.is_empty() {
            return Box::pin(std::future::ready(Ok(())));
        }
        self.submit(Writes {
            what: format!("dropping {}", count(kept.len(), "kept event", "kept events")),
            kept: kept.iter().map(|at| ((at.key.clone(), at.id.to_vec()), None)).collect(),
            ..Writes::default()
        })
    }

    fn session(&self, id: &str) -> Result<Option<SessionRecord>, Error> {
        let id = id.to_string();
        let row: Option<Vec<u8>> = self.wait(format!("reading the session {id}"), id, |pool, id| async move {
            sqlx::query_scalar("SELECT record FROM sessions WHERE id = $1").bind(id).fetch_optional(&pool).await
        })?;
        row.map(|v| session::decode_session(&v)).transpose()
    }

    fn sessions(&self) -> Result<Vec<SessionRecord>, Error> {
        let rows: Vec<(String, Vec<u8>)> = self.wait("reading the sessions".to_string(), (), |pool, _| async move {
            sqlx::query_as("SELECT id, record FROM sessions ORDER BY id").fetch_all(&pool).await
        })?;
        let mut out = Vec::with_capacity(rows.len());
        for (id, record) in rows {
            // One record that does not decode never hides the others.
            match session::decode_session(&record) {
                Ok(record) => out.push(record),
                Err(e) => tracing::warn!(session = %id, error = %e, "a session record is unreadable; left out"),
            }
        }
        Ok(out)
    }

    fn prune<'a>(&'a self, executions: &'a [ExecutionId], at_ms: u64) -> BoxFuture<'a, Result<Freed, Error>> {
        if executions.is_empty() {
            return Box::pin(std::future::ready(Ok(Freed::default())));
        }
        let ids: Vec<Vec<u8>> = executions.iter().map(|id| id.to_bytes().to_vec()).collect();
        let pool = self.pool.clone();
        self.spawn("pruning executions", async move { prune::prune(&pool, ids, at_ms).await })
    }

    fn tombstone(&self, execution: ExecutionId) -> Result<Option<Tombstone>, Error> {
        let id = execution.to_bytes().to_vec();
        let row: Option<Vec<u8>> =
            self.wait(format!("reading what is left of {execution}"), id, |pool, id| async move {
                sqlx::query_scalar("SELECT record FROM pruned WHERE id = $1").bind(id).fetch_optional(&pool).await
            })?;
        row.map(|v| prune::decode(execution, &v)).transpose()
    }

    fn forget_sessions<'a>(&'a self, ids: &'a [String]) -> BoxFuture<'a, Result<(), Error>> {
        if ids.is_empty() {
            return Box::pin(std::future::ready(Ok(())));
        }
        self.submit(Writes {
            what: format!("removing {}", count(ids.len(), "session", "sessions")),
            sessions: ids.iter().map(|id| (id.clone(), None)).collect(),
            ..Writes::default()
        })
    }

    fn stats(&self) -> Stats {
        let c = &self.counters;
        Stats {
            appends: c.appends.load(Ordering::Relaxed),
            events: c.events.load(Ordering::Relaxed),
            syncs: c.commits.load(Ordering::Relaxed),
            sync_us: c.commit_us.load(Ordering::Relaxed),
        }
    }

    fn leases(&self) -> Option<&dyn Leases> {
        Some(self)
    }
}

impl Leases for PgJournal {
    fn worker_id(&self) -> &str {
        &self.lessee.worker
    }

    fn lease_time(&self) -> Duration {
        self.lessee.lease_time
    }

    fn owns(&self, execution: ExecutionId) -> bool {
        self.lessee.owned().contains_key(&execution)
    }

    fn claim<'a>(
        &'a self,
        hashes: &'a [String],
        due_by_ms: u64,
        n: usize,
    ) -> BoxFuture<'a, Result<Vec<ExecutionMeta>, Error>> {
        let (pool, lessee, hashes) = (self.pool.clone(), self.lessee.clone(), hashes.to_vec());
        self.spawn(
            "claiming executions",
            async move { lease::claim(&pool, &lessee, hashes, ms(due_by_ms), limit(n)).await },
        )
    }

    fn claim_one(&self, execution: ExecutionId) -> BoxFuture<'_, Result<bool, Error>> {
        let (pool, lessee) = (self.pool.clone(), self.lessee.clone());
        self.spawn("claiming an execution", async move { lease::claim_one(&pool, &lessee, execution).await })
    }

    fn renew(&self) -> BoxFuture<'_, Result<Vec<ExecutionId>, Error>> {
        let (pool, lessee) = (self.pool.clone(), self.lessee.clone());
        self.spawn("renewing the leases", async move { lease::renew(&pool, &lessee).await })
    }

    /// Through the flusher's queue, so after every append queued before;
    /// the executions leave what this process holds at once, so an append
    /// queued after is refused without a round trip.
    fn release<'a>(&'a self, executions: &'a [ExecutionId]) -> BoxFuture<'a, Result<(), Error>> {
        if executions.is_empty() {
            return Box::pin(std::future::ready(Ok(())));
        }
        {
            let mut owned = self.lessee.owned();
            for id in executions {
                owned.remove(id);
            }
        }
        self.submit(Writes {
            what: format!("handing back {}", count(executions.len(), "execution", "executions")),
            releases: executions.iter().map(|id| id.to_bytes().to_vec()).collect(),
            ..Writes::default()
        })
    }

    fn set_draining(&self, draining: bool) -> BoxFuture<'_, Result<(), Error>> {
        let (pool, lessee) = (self.pool.clone(), self.lessee.clone());
        self.spawn("marking the worker as draining", async move { lease::set_draining(&pool, &lessee, draining).await })
    }

    fn workers(&self) -> Result<Vec<WorkerInfo>, Error> {
        let rows = self.wait("listing the workers".to_string(), (), |pool, _| lease::workers(pool))?;
        rows.into_iter()
            .map(|(id, command, started, heartbeat, owns, draining)| {
                Ok(WorkerInfo {
                    id,
                    command,
                    started_ms: unsigned(started, "a worker's start time")?,
                    heartbeat_ms: unsigned(heartbeat, "a worker's heartbeat")?,
                    owns: unsigned(owns, "a worker's lease count")?,
                    draining,
                })
            })
            .collect()
    }

    fn owner(&self, execution: ExecutionId) -> Result<Option<String>, Error> {
        let id = execution.to_bytes().to_vec();
        self.wait(format!("reading who owns {execution}"), id, lease::owner)
    }

    fn unclaimed(&self, due_by_ms: u64, n: usize) -> Result<Vec<ExecutionMeta>, Error> {
        let rows = self.wait(
            "listing the executions no process runs".to_string(),
            (ms(due_by_ms), limit(n)),
            lease::unclaimed,
        )?;
        let mut out = Vec::new();
        for (id, record) in rows {
            let exec = id_from(&id, "the execution index")?;
            out.push(decode_meta_of(exec, &record).map_err(Error::Damaged)?);
        }
        Ok(out)
    }

    fn counters(&self) -> LeaseCounters {
        self.lessee.counters()
    }

    fn notices(&self) -> tokio::sync::broadcast::Receiver<(ExecutionId, u64)> {
        self.hearers.appends.subscribe()
    }

    fn send<'a>(&'a self, execution: ExecutionId, message: &'a Message) -> BoxFuture<'a, Result<u64, Error>> {
        let (pool, lessee, message) = (self.pool.clone(), self.lessee.clone(), message.clone());
        self.spawn("sending to an inbox", async move { inbox::send(&pool, &lessee, execution, &message).await })
    }

    fn letters(&self, n: usize) -> BoxFuture<'_, Result<Vec<Letter>, Error>> {
        let (pool, lessee) = (self.pool.clone(), self.lessee.clone());
        self.spawn("reading inboxes", async move { inbox::letters(&pool, &lessee, limit(n)).await })
    }

    fn refuse<'a>(&'a self, row: u64, refusal: &'a Refusal) -> BoxFuture<'a, Result<bool, Error>> {
        let (pool, lessee, refusal) = (self.pool.clone(), self.lessee.clone(), refusal.clone());
        self.spawn("answering an inbox message", async move { inbox::refuse(&pool, &lessee, row, &refusal).await })
    }

    fn collect(&self, row: u64) -> BoxFuture<'_, Result<Option<Answer>, Error>> {
        let pool = self.pool.clone();
        self.spawn("reading an inbox answer", async move { inbox::collect(&pool, row).await })
    }

    fn withdraw(&self, row: u64) -> BoxFuture<'_, Result<bool, Error>> {
        let pool = self.pool.clone();
        self.spawn("withdrawing an inbox message", async move { inbox::withdraw(&pool, row).await })
    }

    fn inbox_notices(&self) -> tokio::sync::broadcast::Receiver<InboxNotice> {
        self.hearers.inbox.subscribe()
    }

    fn workflow_hashes(&self) -> Result<Vec<String>, Error> {
        self.wait("listing the stored workflows".to_string(), (), |pool, _| async move {
            sqlx::query_scalar("SELECT hash FROM workflows ORDER BY hash").fetch_all(&pool).await
        })
    }
}

fn timer(at: i64, id: &[u8]) -> Result<Timer, Error> {
    Ok(Timer { at_ms: unsigned(at, "a timer's deadline")?, execution: id_from(id, "the timer index")? })
}
