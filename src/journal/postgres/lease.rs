//! Leases on PostgreSQL: which process (worker) runs which execution.
//!
//! Tables (`migrations/0002_leases.sql`): `workers`, one row per open
//! journal, and `leases`, one row per execution some worker has held, with
//! its fencing epoch. Every time is the server's clock (`clock_timestamp()`):
//! the machines sharing a store may disagree on the time.
//!
//! This process's side is a [`Lessee`]: its worker id and lease time, and
//! `owned`, the epoch it holds each execution with. The journal's appends
//! are fenced with it (`commit.rs`): an append of an execution in `owned`
//! carries its epoch, checked against `leases` in the round's transaction;
//! an append at sequence 1 of one not in `owned` starts it (inserts its
//! lease, epoch 1, refused when a lease row exists); any other append is
//! refused at once, nothing sent. The claims, the renewal and the close run
//! here, each one transaction.
//!
//! The race between a claim and the old owner's append (the owner paused
//! past its lease time, then woke up and appended), under READ COMMITTED:
//! the append's round first locks the `executions` rows of the executions
//! it fences (`FOR NO KEY UPDATE`), then reads their `leases` rows `FOR
//! SHARE`, all in one statement; a claim locks the `executions` rows of its
//! candidates (`FOR UPDATE SKIP LOCKED`), then writes their `leases` rows.
//! Both lock `executions` before `leases`, so they never deadlock, and:
//! - the round locked first: the claim skips the execution (SKIP LOCKED),
//!   the round commits under the old epoch, and a later claim takes the
//!   execution with everything the round wrote in its history;
//! - the claim locked first: the round waits on the `executions` row until
//!   the claim commits; its `FOR SHARE` read of the lease row then finds
//!   the row updated since the statement's snapshot, waits for nothing
//!   more, and is handed the newest version (PostgreSQL re-reads a locked
//!   row that changed, `EvalPlanQual`): the new worker and epoch, so the
//!   round is refused and writes nothing.
//!
//! Two claimers never take one execution: the second skips the rows the
//! first locked, and its lease upsert only replaces a lease with no live
//! owner, judged on the newest row version (`ON CONFLICT … DO UPDATE …
//! WHERE`), so a candidate the first claimer took after the second's
//! snapshot is left alone.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use sqlx::{PgPool, Postgres, Transaction};

use super::super::{Error, ExecutionMeta, decode_meta_of};
use super::{id_from, storage};
use crate::id::ExecutionId;
use crate::plural::count;

/// A worker row whose heartbeat is older than this many of its lease
/// times is deleted by the next claim: its process died without closing.
const FORGET_AFTER_LEASES: i64 = 10;

/// How the journal opens as a worker of a shared store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgOptions {
    /// What runs (shown by `jamjet workers`): `worker`, `dev`, `run`, an
    /// embedding program's name.
    pub command: String,
    /// How long this process's leases last unrenewed: its executions are
    /// claimable this long after its last renewal (or claim).
    pub lease_time: Duration,
}

impl Default for PgOptions {
    fn default() -> PgOptions {
        PgOptions { command: "jamjet".to_string(), lease_time: Duration::from_secs(5) }
    }
}

/// Counts of lease work since the journal opened (for `/metrics`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LeaseCounters {
    /// Calls to `claim` and `claim_one` that reached the store.
    pub claims: u64,
    /// Executions those calls took (or found already this process's).
    pub claimed: u64,
    /// Renewals (`renew`) that reached the store.
    pub renewals: u64,
    /// Appends refused because this process does not hold the execution.
    pub fenced: u64,
    /// Executions this process holds now.
    pub owned: u64,
}

/// This process as a worker of the store.
pub(super) struct Lessee {
    pub worker: String,
    command: String,
    host: String,
    pid: i64,
    pub lease_time: Duration,
    /// The executions this process holds, with the epoch it holds each with.
    pub owned: Mutex<HashMap<ExecutionId, i64>>,
    draining: AtomicBool,
    /// Held by the flusher over each round that ends an execution (its
    /// COMMIT and the update of `owned` after it) and by a renewal over its
    /// statement and its comparison with `owned`: a terminal append deletes
    /// its lease row at COMMIT and leaves `owned` a moment later, which a
    /// renewal between the two would take for a lost lease. Other rounds
    /// do not wait for a renewal (one stalled on the store holds up no
    /// append: each append checks its own fence).
    pub gate: tokio::sync::Mutex<()>,
    claims: AtomicU64,
    claimed: AtomicU64,
    renewals: AtomicU64,
    fenced: AtomicU64,
}

/// The host name (`/etc/hostname`, else `HOSTNAME`, else `localhost`).
fn host_name() -> String {
    let from_file = std::fs::read_to_string("/etc/hostname").ok().map(|s| s.trim().to_string());
    from_file
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok().map(|h| h.trim().to_string()).filter(|h| !h.is_empty()))
        .unwrap_or_else(|| "localhost".to_string())
}

/// Four hex digits, different for two journals one process opens.
fn suffix() -> String {
    let mut bytes = [0u8; 2];
    if getrandom::fill(&mut bytes).is_err() {
        // No OS randomness: the clock's nanoseconds serve as well here.
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        bytes = (nanos.subsec_nanos() as u16).to_be_bytes();
    }
    format!("{:02x}{:02x}", bytes[0], bytes[1])
}

/// The lease time in whole milliseconds, at least 1.
fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX).max(1)
}

/// The SQL that inserts this worker's row, or renews its heartbeat when it
/// is there (binds: id, command, host, pid, lease_ms, draining); returns
/// `draining` as stored. (Macros, so statements can `concat!` them.)
macro_rules! upsert_worker {
    () => {
        "INSERT INTO workers (id, command, host, pid, lease_ms, draining) VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (id) DO UPDATE SET heartbeat_at = clock_timestamp() RETURNING draining"
    };
}

/// Whether worker `w`'s leases are live (its heartbeat within its lease time).
macro_rules! live {
    () => {
        "w.heartbeat_at >= clock_timestamp() - w.lease_ms * interval '1 millisecond'"
    };
}

/// The executions that need a process and that no live process owns
/// (binds: $1 the workflow hashes a claimer can run, NULL for any; $2 the
/// time by which a timer is due, unix ms; $3 how many): running ones, and
/// waiting ones with a timer due or a message in their inbox; a child is
/// claimed with its parent. Oldest id first.
macro_rules! needing_a_process {
    () => {
        concat!(
            "SELECT e.id, e.record FROM executions e \
             LEFT JOIN leases l ON l.execution = e.id \
             LEFT JOIN workers w ON w.id = l.worker \
             WHERE ($1::text[] IS NULL OR e.workflow_hash = ANY($1::text[])) \
             AND (e.status = 'running' OR (e.status = 'waiting' \
                  AND (EXISTS (SELECT 1 FROM timers t WHERE t.execution = e.id AND t.at_ms <= $2) \
                       OR EXISTS (SELECT 1 FROM inbox i WHERE i.execution = e.id AND i.answered_at IS NULL)))) \
             AND (l.execution IS NULL OR NOT l.child) \
             AND (l.worker IS NULL OR w.id IS NULL OR NOT (",
            live!(),
            ")) ORDER BY e.id LIMIT $3"
        )
    };
}

impl Lessee {
    pub fn new(options: &PgOptions) -> Lessee {
        let host = host_name();
        let pid = std::process::id();
        Lessee {
            worker: format!("{host}:{pid}:{}", suffix()),
            command: options.command.clone(),
            host,
            pid: i64::from(pid),
            lease_time: options.lease_time,
            owned: Mutex::new(HashMap::new()),
            draining: AtomicBool::new(false),
            gate: tokio::sync::Mutex::new(()),
            claims: AtomicU64::new(0),
            claimed: AtomicU64::new(0),
            renewals: AtomicU64::new(0),
            fenced: AtomicU64::new(0),
        }
    }

    pub fn owned(&self) -> std::sync::MutexGuard<'_, HashMap<ExecutionId, i64>> {
        self.owned.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn counters(&self) -> LeaseCounters {
        LeaseCounters {
            claims: self.claims.load(Ordering::Relaxed),
            claimed: self.claimed.load(Ordering::Relaxed),
            renewals: self.renewals.load(Ordering::Relaxed),
            fenced: self.fenced.load(Ordering::Relaxed),
            owned: self.owned().len() as u64,
        }
    }

    /// An append of `execution` refused: the error, counted; the execution
    /// is no longer held with `epoch` (when the refusal says so).
    pub fn fenced(&self, execution: ExecutionId, epoch: Option<i64>, why: String) -> Error {
        self.fenced.fetch_add(1, Ordering::Relaxed);
        if let Some(epoch) = epoch {
            let mut owned = self.owned();
            if owned.get(&execution) == Some(&epoch) {
                owned.remove(&execution);
            }
        }
        Error::Fenced { execution, why }
    }

    /// Insert or renew this worker's row inside `tx`; returns whether it is draining.
    async fn upsert_worker(&self, tx: &mut Transaction<'static, Postgres>) -> Result<bool, sqlx::Error> {
        sqlx::query_scalar(upsert_worker!())
            .bind(&self.worker)
            .bind(&self.command)
            .bind(&self.host)
            .bind(self.pid)
            .bind(millis(self.lease_time))
            .bind(self.draining.load(Ordering::Relaxed))
            .fetch_one(&mut **tx)
            .await
    }
}

/// Insert this process's worker row (at open).
pub(super) async fn register(pool: &PgPool, me: &Lessee) -> Result<(), Error> {
    let failed = |e| storage(&format!("registering this process as the worker {}", me.worker), e);
    let mut tx = pool.begin().await.map_err(failed)?;
    me.upsert_worker(&mut tx).await.map_err(failed)?;
    tx.commit().await.map_err(failed)
}

/// Hand back every lease of this process and delete its worker row (at
/// close), so other processes take its executions over at once.
pub(super) async fn close(pool: &PgPool, me: &Lessee) -> Result<(), Error> {
    sqlx::query(
        "WITH released AS (UPDATE leases SET worker = NULL, since = clock_timestamp() WHERE worker = $1 \
         RETURNING 1) DELETE FROM workers WHERE id = $1",
    )
    .bind(&me.worker)
    .execute(pool)
    .await
    .map_err(|e| storage(&format!("handing back the leases of the worker {}", me.worker), e))?;
    me.owned().clear();
    Ok(())
}

/// Claim up to `limit` executions (see [`Leases::claim`](super::super::Leases::claim)).
pub(super) async fn claim(
    pool: &PgPool,
    me: &Lessee,
    hashes: Vec<String>,
    due_by_ms: i64,
    limit: i64,
) -> Result<Vec<ExecutionMeta>, Error> {
    let what = format!("claiming executions for the worker {}", me.worker);
    let failed = |e| storage(&what, e);
    if hashes.is_empty() || limit <= 0 {
        return Ok(Vec::new());
    }
    let mut tx = pool.begin().await.map_err(failed)?;
    // Housekeeping: the rows of processes that died without closing.
    sqlx::query(
        "DELETE FROM workers WHERE id <> $1 \
         AND heartbeat_at < clock_timestamp() - $2 * lease_ms * interval '1 millisecond'",
    )
    .bind(&me.worker)
    .bind(FORGET_AFTER_LEASES)
    .execute(&mut *tx)
    .await
    .map_err(failed)?;
    // A claim is a sign of life: it renews this worker's heartbeat (and
    // puts its row back if a claimer took it for dead).
    if me.upsert_worker(&mut tx).await.map_err(failed)? {
        tx.commit().await.map_err(failed)?;
        return Ok(Vec::new());
    }
    me.claims.fetch_add(1, Ordering::Relaxed);
    sqlx::query(super::inbox::FORGET_ANSWERS_SQL).execute(&mut *tx).await.map_err(failed)?;
    let candidates: Vec<(Vec<u8>, Vec<u8>)> =
        sqlx::query_as(concat!(needing_a_process!(), " FOR UPDATE OF e SKIP LOCKED"))
            .bind(Some(&hashes))
            .bind(due_by_ms)
            .bind(limit)
            .fetch_all(&mut *tx)
            .await
            .map_err(failed)?;
    let mut metas = HashMap::new();
    for (id, record) in candidates {
        let Ok(exec) = id_from(&id, "the execution index") else { continue };
        match decode_meta_of(exec, &record) {
            Ok(meta) => {
                metas.insert(id, meta);
            }
            // A process could not run it either: left to `jamjet repair`.
            Err(damage) => {
                tracing::warn!(execution_id = %exec, %damage, "a claimable execution is damaged; not claimed")
            }
        }
    }
    if metas.is_empty() {
        tx.commit().await.map_err(failed)?;
        return Ok(Vec::new());
    }
    let mut ids: Vec<&[u8]> = metas.keys().map(Vec::as_slice).collect();
    ids.sort_unstable();
    let taken: Vec<(Vec<u8>, i64)> = sqlx::query_as(concat!(
        "INSERT INTO leases (execution, worker, epoch, since) \
         SELECT c.id, $2, 1, clock_timestamp() FROM UNNEST($1::bytea[]) AS c(id) ORDER BY c.id \
         ON CONFLICT (execution) DO UPDATE SET worker = EXCLUDED.worker, epoch = leases.epoch + 1, \
         since = EXCLUDED.since \
         WHERE leases.worker IS NULL \
         OR NOT EXISTS (SELECT 1 FROM workers w WHERE w.id = leases.worker AND ",
        live!(),
        ") \
         RETURNING execution, epoch"
    ))
    .bind(&ids)
    .bind(&me.worker)
    .fetch_all(&mut *tx)
    .await
    .map_err(failed)?;
    tx.commit().await.map_err(failed)?;
    let mut out = Vec::with_capacity(taken.len());
    {
        let mut owned = me.owned();
        for (id, epoch) in taken {
            if let Some(meta) = metas.remove(&id) {
                owned.insert(meta.id, epoch);
                out.push(meta);
            }
        }
    }
    out.sort_by_key(|m| m.id);
    me.claimed.fetch_add(out.len() as u64, Ordering::Relaxed);
    tracing::debug!(worker = %me.worker, claimed = out.len(), "claimed executions");
    Ok(out)
}

/// Claim one execution (see [`Leases::claim_one`](super::super::Leases::claim_one)).
/// An execution that has ended, or that is not in the store, needs no
/// lease: nothing will be written to it, so it is `Ok(true)` (whoever asks
/// reads its end, or finds it missing) and no lease row is made.
/// The index records of up to `limit` executions a claim would take,
/// whatever their workflows (nothing locked, nothing changed).
pub(super) async fn unclaimed(
    pool: PgPool,
    (due_by_ms, limit): (i64, i64),
) -> Result<Vec<(Vec<u8>, Vec<u8>)>, sqlx::Error> {
    sqlx::query_as(needing_a_process!()).bind(None::<Vec<String>>).bind(due_by_ms).bind(limit).fetch_all(&pool).await
}

pub(super) async fn claim_one(pool: &PgPool, me: &Lessee, execution: ExecutionId) -> Result<bool, Error> {
    let what = format!("claiming the execution {execution} for the worker {}", me.worker);
    let failed = |e| storage(&what, e);
    let id = execution.to_bytes().to_vec();
    let mut tx = pool.begin().await.map_err(failed)?;
    me.upsert_worker(&mut tx).await.map_err(failed)?;
    me.claims.fetch_add(1, Ordering::Relaxed);
    // Lock the index row first, as a claim and an append's round do.
    let status: Option<String> = sqlx::query_scalar("SELECT status FROM executions WHERE id = $1 FOR UPDATE")
        .bind(&id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(failed)?;
    let ended = status.as_deref().and_then(super::super::Status::parse).is_none_or(|s| s.is_terminal());
    if ended {
        tx.commit().await.map_err(failed)?;
        return Ok(true);
    }
    let lease: Option<(Option<String>, i64, bool)> = sqlx::query_as(concat!(
        "SELECT l.worker, l.epoch, coalesce(w.id IS NOT NULL AND ",
        live!(),
        ", false) FROM leases l \
         LEFT JOIN workers w ON w.id = l.worker WHERE l.execution = $1 FOR UPDATE OF l"
    ))
    .bind(&id)
    .fetch_optional(&mut *tx)
    .await
    .map_err(failed)?;
    let epoch = match lease {
        Some((Some(worker), epoch, _)) if worker == me.worker => epoch,
        Some((Some(_), _, true)) => {
            tx.commit().await.map_err(failed)?;
            return Ok(false);
        }
        _ => sqlx::query_scalar(
            "INSERT INTO leases (execution, worker, epoch, since) VALUES ($1, $2, 1, clock_timestamp()) \
             ON CONFLICT (execution) DO UPDATE SET worker = EXCLUDED.worker, epoch = leases.epoch + 1, \
             since = EXCLUDED.since RETURNING epoch",
        )
        .bind(&id)
        .bind(&me.worker)
        .fetch_one(&mut *tx)
        .await
        .map_err(failed)?,
    };
    tx.commit().await.map_err(failed)?;
    me.owned().insert(execution, epoch);
    me.claimed.fetch_add(1, Ordering::Relaxed);
    Ok(true)
}

/// Renew every lease of this process in one statement; returns the
/// executions it held that it holds no more (see
/// [`Leases::renew`](super::super::Leases::renew)).
pub(super) async fn renew(pool: &PgPool, me: &Lessee) -> Result<Vec<ExecutionId>, Error> {
    let _round = me.gate.lock().await;
    // What this process held before asking: every entry was committed
    // before it was recorded, so the statement below sees its lease.
    let before: HashMap<ExecutionId, i64> = me.owned().clone();
    let held: Vec<(Vec<u8>, i64)> = sqlx::query_as(concat!(
        "WITH me AS (",
        upsert_worker!(),
        ") SELECT l.execution, l.epoch FROM leases l WHERE l.worker = $1"
    ))
    .bind(&me.worker)
    .bind(&me.command)
    .bind(&me.host)
    .bind(me.pid)
    .bind(millis(me.lease_time))
    .bind(me.draining.load(Ordering::Relaxed))
    .fetch_all(pool)
    .await
    .map_err(|e| storage(&format!("renewing the leases of the worker {}", me.worker), e))?;
    me.renewals.fetch_add(1, Ordering::Relaxed);
    let mut held_now = HashMap::with_capacity(held.len());
    for (id, epoch) in held {
        held_now.insert(id_from(&id, "the leases table")?, epoch);
    }
    let mut lost = Vec::new();
    let mut owned = me.owned();
    for (execution, epoch) in before {
        // Still believed held with that epoch (not handed back, not claimed
        // again meanwhile), and the store says otherwise.
        if owned.get(&execution) == Some(&epoch) && held_now.get(&execution) != Some(&epoch) {
            owned.remove(&execution);
            lost.push(execution);
        }
    }
    drop(owned);
    lost.sort_unstable();
    if !lost.is_empty() {
        tracing::warn!(worker = %me.worker, lost = %count(lost.len(), "execution", "executions"), "leases taken over");
    }
    Ok(lost)
}

/// Set this worker's draining flag.
pub(super) async fn set_draining(pool: &PgPool, me: &Lessee, draining: bool) -> Result<(), Error> {
    me.draining.store(draining, Ordering::Relaxed);
    sqlx::query("UPDATE workers SET draining = $2 WHERE id = $1")
        .bind(&me.worker)
        .bind(draining)
        .execute(pool)
        .await
        .map_err(|e| storage(&format!("marking the worker {} as draining", me.worker), e))?;
    Ok(())
}

/// The live workers: id, command, started and heartbeat (unix ms), leases held, draining.
pub(super) async fn workers(pool: PgPool) -> Result<Vec<(String, String, i64, i64, i64, bool)>, sqlx::Error> {
    sqlx::query_as(concat!(
        "SELECT w.id, w.command, (extract(epoch FROM w.started_at) * 1000)::bigint, \
         (extract(epoch FROM w.heartbeat_at) * 1000)::bigint, \
         (SELECT count(*) FROM leases l WHERE l.worker = w.id), w.draining \
         FROM workers w WHERE ",
        live!(),
        " ORDER BY w.id"
    ))
    .fetch_all(&pool)
    .await
}

/// The live worker holding the lease of `id`.
pub(super) async fn owner(pool: PgPool, id: Vec<u8>) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar(concat!(
        "SELECT w.id FROM leases l JOIN workers w ON w.id = l.worker WHERE l.execution = $1 AND ",
        live!(),
        ""
    ))
    .bind(id)
    .fetch_optional(&pool)
    .await
}
