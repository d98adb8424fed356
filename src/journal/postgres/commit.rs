//! Group commit on PostgreSQL: one flusher task, one transaction per round.
//!
//! A writer turns its request (an append, a registration, a kept event, …)
//! into [`Writes`]: owned rows, encoded with the sled backend's encodings,
//! built on the writer's own task. It queues them with a oneshot for the
//! answer and awaits that. The flusher takes the first request waiting,
//! then every other one already queued (up to [`MAX_ROUND`]): that is one
//! round. The round's writes are folded into one [`Round`] (per table, the
//! last change of each row wins, in the order the requests were queued) and
//! written with one statement per table and kind, each binding arrays
//! (`INSERT … SELECT * FROM UNNEST($1, $2, …)`), inside one transaction;
//! each writer is answered after COMMIT returns. While a commit runs, new
//! requests queue, so one commit serves every writer that arrived during
//! the previous one, as the sled backend's log sync does.
//!
//! One bad request must not fail the others it shares a round with: when
//! PostgreSQL refuses a round of several requests (a database error: the
//! transaction did not commit), each is committed again alone, and only the
//! one at fault fails. A connection found lost before the COMMIT was sent
//! (nothing stored: a server restart left it dead in the pool) is replaced
//! and the round written again. When the connection fails at the COMMIT
//! (its outcome unknown), or on every try, every writer of the round gets
//! the error; an execution whose append failed is rehydrated from what the
//! store holds, so an append that did commit is not lost either way.
//!
//! Rows are written in key order (the folded maps are sorted), so two
//! processes committing at once lock rows in one order.
//!
//! Fencing (see `lease.rs`): each append says how this process holds its
//! execution ([`Fence`]). The round's first statement locks the index rows
//! of the executions it fences and reads their lease rows `FOR SHARE`; an
//! epoch or worker that is not this process's refuses the round (nothing
//! written), and the one-by-one path above commits the others and refuses
//! the fenced appends with [`Error::Fenced`]. Executions an append starts
//! get their lease (epoch 1) in the same transaction; an append that ends
//! its execution deletes its lease row; a hand-back (`release`) empties
//! the lease's worker after the round's appends.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sqlx::{PgConnection, PgPool};
use tokio::sync::{mpsc, oneshot};

use super::super::Error;
use super::lease::Lessee;
use crate::id::ExecutionId;

/// At most this many requests share a round.
pub(super) const MAX_ROUND: usize = 1024;
/// A round slower than this is logged.
const SLOW_ROUND: Duration = Duration::from_millis(200);

/// An execution id as stored.
pub(super) type Id = Vec<u8>;

pub(super) struct EventRow {
    pub execution: Id,
    pub first_seq: i64,
    pub last_seq: i64,
    pub at_ms: i64,
    pub frame: Vec<u8>,
}

#[derive(Clone)]
pub(super) struct MetaRow {
    pub workflow_id: String,
    pub workflow_version: String,
    pub workflow_hash: String,
    pub status: &'static str,
    pub created_ms: i64,
    pub updated_ms: i64,
    pub key: Option<String>,
    pub record: Vec<u8>,
}

#[derive(Clone)]
pub(super) struct RegistrationRow {
    pub hash: String,
    pub registered_ms: i64,
    pub record: Vec<u8>,
}

#[derive(Clone)]
pub(super) struct KeptRow {
    pub until_ms: i64,
    pub published_ms: i64,
    pub record: Vec<u8>,
}

#[derive(Clone)]
pub(super) struct SessionRow {
    pub workflow_id: String,
    pub created_ms: i64,
    pub last_active_ms: i64,
    pub record: Vec<u8>,
}

/// What one request writes, in order. `true`/`Some` puts a row, `false`/`None` removes it.
#[derive(Default)]
pub(super) struct Writes {
    /// What the request does, for its error message ("appending records 3..4 of exec_…").
    pub what: String,
    /// Appends and events it counts for [`Stats`](super::super::Stats).
    pub appends: u64,
    pub events: u64,
    pub event_rows: Vec<EventRow>,
    pub metas: Vec<(Id, MetaRow)>,
    pub workflows: Vec<(String, Vec<u8>)>,
    pub registrations: Vec<((String, String), RegistrationRow)>,
    pub timers: Vec<((i64, Id), bool)>,
    pub waits: Vec<((String, Id), bool)>,
    pub kept: Vec<((String, Id), Option<KeptRow>)>,
    pub sessions: Vec<(String, Option<SessionRow>)>,
    /// Inbox rows the append journals: (row, execution, answer as JSON).
    pub answers: Vec<(i64, Id, String)>,
    /// The append's lease check (appends only).
    pub fence: Option<Fence>,
    /// Leases this process hands back (after the round's appends).
    pub releases: Vec<Id>,
}

/// How an append holds its execution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Held {
    /// It is the execution's first append (sequence 1) and this process
    /// holds no lease of it: it takes the lease, epoch 1, refused when the
    /// execution has a lease row already.
    Starts,
    /// This process holds it with this epoch: checked in the round.
    Epoch(i64),
}

/// The lease side of an append.
pub(super) struct Fence {
    pub execution: ExecutionId,
    pub id: Id,
    pub held: Held,
    /// The append ends the execution (a terminal index row): its lease row goes.
    pub ends: bool,
    /// The execution is a branch or sub-workflow (its first event names a
    /// parent): its lease row says so, and claims pass it by (whoever
    /// claims its parent claims it with it).
    pub child: bool,
}

/// A request on its way to the flusher.
pub(super) struct Request {
    pub writes: Writes,
    pub done: oneshot::Sender<Result<(), Error>>,
}

#[derive(Default)]
pub(super) struct Counters {
    pub appends: AtomicU64,
    pub events: AtomicU64,
    pub commits: AtomicU64,
    pub commit_us: AtomicU64,
}

/// The writes of one round, folded: per table, the last change of each row.
#[derive(Default)]
struct Round<'a> {
    events: Vec<&'a EventRow>,
    metas: BTreeMap<&'a [u8], &'a MetaRow>,
    workflows: BTreeMap<&'a str, &'a [u8]>,
    registrations: BTreeMap<(&'a str, &'a str), &'a RegistrationRow>,
    timers: BTreeMap<(i64, &'a [u8]), bool>,
    waits: BTreeMap<(&'a str, &'a [u8]), bool>,
    kept: BTreeMap<(&'a str, &'a [u8]), Option<&'a KeptRow>>,
    sessions: BTreeMap<&'a str, Option<&'a SessionRow>>,
    /// Inbox rows answered: row → (execution, answer).
    answers: BTreeMap<i64, (&'a [u8], &'a str)>,
    /// (execution, epoch) every append of an execution this process holds carries.
    checks: BTreeSet<(&'a [u8], i64)>,
    /// Executions the round starts, and whether each is a child.
    starts: BTreeMap<&'a [u8], bool>,
    ends: BTreeSet<&'a [u8]>,
    releases: BTreeSet<&'a [u8]>,
}

/// Why a round did not commit.
pub(super) enum Failure {
    /// PostgreSQL refused it, or the connection failed.
    Sql(sqlx::Error),
    /// Appends of these executions are not this process's to write:
    /// (execution, epoch it carried or `None` for a start) and why.
    Fenced(BTreeMap<(Id, Option<i64>), String>),
    /// Inbox rows an append would answer were answered or withdrawn
    /// already: (row, its execution).
    Answered(BTreeSet<(i64, Id)>),
}

impl From<sqlx::Error> for Failure {
    fn from(e: sqlx::Error) -> Failure {
        Failure::Sql(e)
    }
}

impl Failure {
    /// The round did not commit because of what one of its requests asked
    /// (so each committed alone finds which).
    fn refusal(&self) -> bool {
        match self {
            Failure::Fenced(_) | Failure::Answered(_) => true,
            Failure::Sql(e @ sqlx::Error::Database(_)) => !super::connection_lost(e),
            Failure::Sql(_) => false,
        }
    }
}

impl<'a> Round<'a> {
    fn of(requests: impl IntoIterator<Item = &'a Writes>) -> Round<'a> {
        let mut round = Round::default();
        for w in requests {
            round.events.extend(&w.event_rows);
            round.metas.extend(w.metas.iter().map(|(id, m)| (id.as_slice(), m)));
            for (hash, ir) in &w.workflows {
                round.workflows.entry(hash).or_insert(ir);
            }
            round.registrations.extend(w.registrations.iter().map(|((id, v), r)| ((id.as_str(), v.as_str()), r)));
            round.timers.extend(w.timers.iter().map(|((at, id), put)| ((*at, id.as_slice()), *put)));
            round.waits.extend(w.waits.iter().map(|((k, id), put)| ((k.as_str(), id.as_slice()), *put)));
            round.kept.extend(w.kept.iter().map(|((k, id), row)| ((k.as_str(), id.as_slice()), row.as_ref())));
            round.sessions.extend(w.sessions.iter().map(|(id, row)| (id.as_str(), row.as_ref())));
            round.answers.extend(w.answers.iter().map(|(row, id, answer)| (*row, (id.as_slice(), answer.as_str()))));
            if let Some(fence) = &w.fence {
                match fence.held {
                    Held::Epoch(epoch) => {
                        round.checks.insert((fence.id.as_slice(), epoch));
                    }
                    // An append that starts and ends its execution at once needs no lease.
                    Held::Starts if !fence.ends => {
                        round.starts.insert(fence.id.as_slice(), fence.child);
                    }
                    Held::Starts => {}
                }
                if fence.ends {
                    round.ends.insert(fence.id.as_slice());
                }
            }
            round.releases.extend(w.releases.iter().map(Vec::as_slice));
        }
        round
    }

    /// Check that this process (`worker`) holds every execution the round
    /// appends to with the epoch its appends carry, and take the leases of
    /// the executions it starts: refused (the transaction is then rolled
    /// back) when any is not this process's.
    async fn fence(&self, conn: &mut PgConnection, worker: &str) -> Result<(), Failure> {
        let mut fenced = BTreeMap::new();
        if !self.checks.is_empty() {
            let mut ids: Vec<&[u8]> = self.checks.iter().map(|(id, _)| *id).collect();
            ids.dedup();
            // One statement: lock the index rows first (as a claim does, so
            // a claim and a round never deadlock), then read the leases FOR
            // SHARE; a lease a claim changed meanwhile is read as it is
            // now (see lease.rs).
            let rows: Vec<(Vec<u8>, Option<String>, i64)> = sqlx::query_as(
                "WITH locked AS MATERIALIZED (SELECT id FROM executions WHERE id = ANY($1::bytea[]) ORDER BY id \
                 FOR NO KEY UPDATE) \
                 SELECT l.execution, l.worker, l.epoch FROM leases l \
                 WHERE l.execution = ANY($1::bytea[]) AND (SELECT count(*) FROM locked) >= 0 \
                 ORDER BY l.execution FOR SHARE OF l",
            )
            .bind(&ids)
            .fetch_all(&mut *conn)
            .await?;
            let leases: HashMap<&[u8], (Option<&str>, i64)> =
                rows.iter().map(|(id, w, e)| (id.as_slice(), (w.as_deref(), *e))).collect();
            for &(id, epoch) in &self.checks {
                let why = match leases.get(id) {
                    Some((Some(w), e)) if *w == worker && *e == epoch => continue,
                    Some((Some(w), e)) if *w == worker => {
                        format!("this process claimed it again since (epoch {e}; this append carried {epoch})")
                    }
                    Some((Some(w), e)) => format!("its lease passed to worker {w} at epoch {e}"),
                    Some((None, e)) => format!("its lease (epoch {e}) was handed back"),
                    None => "its lease was taken over (its lease row is gone: it ended, or was removed)".to_string(),
                };
                fenced.insert((id.to_vec(), Some(epoch)), why);
            }
        }
        if fenced.is_empty() && !self.starts.is_empty() {
            let starts: Vec<&[u8]> = self.starts.keys().copied().collect();
            let children: Vec<bool> = self.starts.values().copied().collect();
            let taken: Vec<Vec<u8>> = sqlx::query_scalar(
                "INSERT INTO leases (execution, worker, epoch, since, child) \
                 SELECT s.id, $2, 1, clock_timestamp(), s.child FROM UNNEST($1::bytea[], $3::bool[]) AS s(id, child) \
                 ON CONFLICT (execution) DO NOTHING RETURNING execution",
            )
            .bind(&starts)
            .bind(worker)
            .bind(&children)
            .fetch_all(&mut *conn)
            .await?;
            if taken.len() < starts.len() {
                let taken: BTreeSet<&[u8]> = taken.iter().map(Vec::as_slice).collect();
                let refused: Vec<&[u8]> = starts.into_iter().filter(|id| !taken.contains(id)).collect();
                let rows: Vec<(Vec<u8>, Option<String>, i64)> =
                    sqlx::query_as("SELECT execution, worker, epoch FROM leases WHERE execution = ANY($1::bytea[])")
                        .bind(&refused)
                        .fetch_all(&mut *conn)
                        .await?;
                for id in refused {
                    let why = match rows.iter().find(|(r, _, _)| r.as_slice() == id) {
                        Some((_, Some(w), e)) => {
                            format!("this process has not claimed it (worker {w} holds it at epoch {e})")
                        }
                        Some((_, None, e)) => {
                            format!("this process has not claimed it (its lease, epoch {e}, is free: claim it)")
                        }
                        None => "this process has not claimed it".to_string(),
                    };
                    fenced.insert((id.to_vec(), None), why);
                }
            }
        }
        if !fenced.is_empty() {
            return Err(Failure::Fenced(fenced));
        }
        self.open_letters(conn).await
    }

    /// Lock the inbox rows the round answers: refused when any was
    /// answered or withdrawn already (so a message is journaled once).
    async fn open_letters(&self, conn: &mut PgConnection) -> Result<(), Failure> {
        if self.answers.is_empty() {
            return Ok(());
        }
        let rows: Vec<i64> = self.answers.keys().copied().collect();
        let open: BTreeSet<i64> = sqlx::query_scalar(
            "SELECT id FROM inbox WHERE id = ANY($1::bigint[]) AND answered_at IS NULL ORDER BY id FOR UPDATE",
        )
        .bind(&rows)
        .fetch_all(&mut *conn)
        .await?
        .into_iter()
        .collect();
        let gone: BTreeSet<(i64, Id)> = self
            .answers
            .iter()
            .filter(|(row, _)| !open.contains(row))
            .map(|(row, (id, _))| (*row, id.to_vec()))
            .collect();
        if gone.is_empty() { Ok(()) } else { Err(Failure::Answered(gone)) }
    }

    /// End the leases of executions that ended, and hand back the released ones.
    async fn end_leases(&self, conn: &mut PgConnection, worker: &str) -> Result<(), sqlx::Error> {
        if !self.ends.is_empty() {
            sqlx::query("DELETE FROM leases WHERE execution = ANY($1::bytea[]) AND worker = $2")
                .bind(self.ends.iter().copied().collect::<Vec<_>>())
                .bind(worker)
                .execute(&mut *conn)
                .await?;
        }
        if !self.releases.is_empty() {
            sqlx::query(
                "UPDATE leases SET worker = NULL, since = clock_timestamp() \
                 WHERE execution = ANY($1::bytea[]) AND worker = $2",
            )
            .bind(self.releases.iter().copied().collect::<Vec<_>>())
            .bind(worker)
            .execute(&mut *conn)
            .await?;
        }
        Ok(())
    }

    /// Write the round on `conn` (inside the caller's transaction).
    async fn write(&self, conn: &mut PgConnection) -> Result<(), sqlx::Error> {
        if !self.answers.is_empty() {
            // The round's notice of the append wakes the sender (see notices.rs).
            sqlx::query(
                "UPDATE inbox SET answered_at = clock_timestamp(), answer = d.answer::jsonb \
                 FROM UNNEST($1::bigint[], $2::text[]) AS d(id, answer) WHERE inbox.id = d.id",
            )
            .bind(self.answers.keys().copied().collect::<Vec<_>>())
            .bind(self.answers.values().map(|(_, a)| *a).collect::<Vec<_>>())
            .execute(&mut *conn)
            .await?;
        }
        if !self.events.is_empty() {
            // Delivered at COMMIT (never for a round rolled back): each
            // execution appended to, with its new last sequence number.
            let mut last: BTreeMap<&[u8], i64> = BTreeMap::new();
            for e in &self.events {
                let seq = last.entry(e.execution.as_slice()).or_insert(e.last_seq);
                *seq = (*seq).max(e.last_seq);
            }
            let payloads = super::notices::payloads(last.into_iter());
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT pg_notify({}, p) FROM UNNEST($1::text[]) AS p",
                super::notices::CHANNEL_SQL
            )))
            .bind(&payloads)
            .execute(&mut *conn)
            .await?;
            let e = &self.events;
            sqlx::query(
                "INSERT INTO events (execution, first_seq, last_seq, at_ms, frame) \
                 SELECT * FROM UNNEST($1::bytea[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bytea[])",
            )
            .bind(e.iter().map(|r| r.execution.as_slice()).collect::<Vec<_>>())
            .bind(e.iter().map(|r| r.first_seq).collect::<Vec<_>>())
            .bind(e.iter().map(|r| r.last_seq).collect::<Vec<_>>())
            .bind(e.iter().map(|r| r.at_ms).collect::<Vec<_>>())
            .bind(e.iter().map(|r| r.frame.as_slice()).collect::<Vec<_>>())
            .execute(&mut *conn)
            .await?;
        }
        if !self.metas.is_empty() {
            let m: Vec<_> = self.metas.values().collect();
            sqlx::query(
                "INSERT INTO executions (id, workflow_id, workflow_version, workflow_hash, status, created_ms, \
                 updated_ms, key, record) \
                 SELECT * FROM UNNEST($1::bytea[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[], \
                 $7::bigint[], $8::text[], $9::bytea[]) \
                 ON CONFLICT (id) DO UPDATE SET workflow_id = EXCLUDED.workflow_id, \
                 workflow_version = EXCLUDED.workflow_version, workflow_hash = EXCLUDED.workflow_hash, \
                 status = EXCLUDED.status, created_ms = EXCLUDED.created_ms, updated_ms = EXCLUDED.updated_ms, \
                 key = EXCLUDED.key, record = EXCLUDED.record",
            )
            .bind(self.metas.keys().copied().collect::<Vec<_>>())
            .bind(m.iter().map(|r| r.workflow_id.as_str()).collect::<Vec<_>>())
            .bind(m.iter().map(|r| r.workflow_version.as_str()).collect::<Vec<_>>())
            .bind(m.iter().map(|r| r.workflow_hash.as_str()).collect::<Vec<_>>())
            .bind(m.iter().map(|r| r.status).collect::<Vec<_>>())
            .bind(m.iter().map(|r| r.created_ms).collect::<Vec<_>>())
            .bind(m.iter().map(|r| r.updated_ms).collect::<Vec<_>>())
            .bind(m.iter().map(|r| r.key.as_deref()).collect::<Vec<_>>())
            .bind(m.iter().map(|r| r.record.as_slice()).collect::<Vec<_>>())
            .execute(&mut *conn)
            .await?;
        }
        if !self.workflows.is_empty() {
            sqlx::query(
                "INSERT INTO workflows (hash, ir) SELECT * FROM UNNEST($1::text[], $2::bytea[]) \
                 ON CONFLICT (hash) DO NOTHING",
            )
            .bind(self.workflows.keys().copied().collect::<Vec<_>>())
            .bind(self.workflows.values().copied().collect::<Vec<_>>())
            .execute(&mut *conn)
            .await?;
        }
        if !self.registrations.is_empty() {
            let r: Vec<_> = self.registrations.values().collect();
            sqlx::query(
                "INSERT INTO registrations (workflow_id, version, hash, registered_ms, record) \
                 SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bytea[]) \
                 ON CONFLICT (workflow_id, version) DO UPDATE SET hash = EXCLUDED.hash, \
                 registered_ms = EXCLUDED.registered_ms, record = EXCLUDED.record",
            )
            .bind(self.registrations.keys().map(|k| k.0).collect::<Vec<_>>())
            .bind(self.registrations.keys().map(|k| k.1).collect::<Vec<_>>())
            .bind(r.iter().map(|r| r.hash.as_str()).collect::<Vec<_>>())
            .bind(r.iter().map(|r| r.registered_ms).collect::<Vec<_>>())
            .bind(r.iter().map(|r| r.record.as_slice()).collect::<Vec<_>>())
            .execute(&mut *conn)
            .await?;
        }
        if !self.timers.is_empty() {
            let (put, gone) = split(&self.timers, |put| *put);
            if !gone.is_empty() {
                sqlx::query(
                    "DELETE FROM timers t USING UNNEST($1::bigint[], $2::bytea[]) AS d(at_ms, execution) \
                     WHERE t.at_ms = d.at_ms AND t.execution = d.execution",
                )
                .bind(gone.iter().map(|k| k.0).collect::<Vec<_>>())
                .bind(gone.iter().map(|k| k.1).collect::<Vec<_>>())
                .execute(&mut *conn)
                .await?;
            }
            if !put.is_empty() {
                sqlx::query(
                    "INSERT INTO timers (at_ms, execution) SELECT * FROM UNNEST($1::bigint[], $2::bytea[]) \
                     ON CONFLICT DO NOTHING",
                )
                .bind(put.iter().map(|k| k.0).collect::<Vec<_>>())
                .bind(put.iter().map(|k| k.1).collect::<Vec<_>>())
                .execute(&mut *conn)
                .await?;
            }
        }
        if !self.waits.is_empty() {
            let (put, gone) = split(&self.waits, |put| *put);
            if !gone.is_empty() {
                sqlx::query(
                    "DELETE FROM waits w USING UNNEST($1::text[], $2::bytea[]) AS d(event_key, execution) \
                     WHERE w.event_key = d.event_key AND w.execution = d.execution",
                )
                .bind(gone.iter().map(|k| k.0).collect::<Vec<_>>())
                .bind(gone.iter().map(|k| k.1).collect::<Vec<_>>())
                .execute(&mut *conn)
                .await?;
            }
            if !put.is_empty() {
                sqlx::query(
                    "INSERT INTO waits (event_key, execution) SELECT * FROM UNNEST($1::text[], $2::bytea[]) \
                     ON CONFLICT DO NOTHING",
                )
                .bind(put.iter().map(|k| k.0).collect::<Vec<_>>())
                .bind(put.iter().map(|k| k.1).collect::<Vec<_>>())
                .execute(&mut *conn)
                .await?;
            }
        }
        if !self.kept.is_empty() {
            let (put, gone) = split(&self.kept, Option::is_some);
            if !gone.is_empty() {
                sqlx::query(
                    "DELETE FROM kept_events k USING UNNEST($1::text[], $2::bytea[]) AS d(event_key, id) \
                     WHERE k.event_key = d.event_key AND k.id = d.id",
                )
                .bind(gone.iter().map(|k| k.0).collect::<Vec<_>>())
                .bind(gone.iter().map(|k| k.1).collect::<Vec<_>>())
                .execute(&mut *conn)
                .await?;
            }
            if !put.is_empty() {
                let rows: Vec<&KeptRow> = put.iter().filter_map(|k| self.kept[k]).collect();
                sqlx::query(
                    "INSERT INTO kept_events (event_key, id, until_ms, published_ms, record) \
                     SELECT * FROM UNNEST($1::text[], $2::bytea[], $3::bigint[], $4::bigint[], $5::bytea[]) \
                     ON CONFLICT (event_key, id) DO UPDATE SET until_ms = EXCLUDED.until_ms, \
                     published_ms = EXCLUDED.published_ms, record = EXCLUDED.record",
                )
                .bind(put.iter().map(|k| k.0).collect::<Vec<_>>())
                .bind(put.iter().map(|k| k.1).collect::<Vec<_>>())
                .bind(rows.iter().map(|r| r.until_ms).collect::<Vec<_>>())
                .bind(rows.iter().map(|r| r.published_ms).collect::<Vec<_>>())
                .bind(rows.iter().map(|r| r.record.as_slice()).collect::<Vec<_>>())
                .execute(&mut *conn)
                .await?;
            }
        }
        if !self.sessions.is_empty() {
            let (put, gone) = split(&self.sessions, Option::is_some);
            if !gone.is_empty() {
                sqlx::query("DELETE FROM sessions WHERE id = ANY($1::text[])").bind(gone).execute(&mut *conn).await?;
            }
            if !put.is_empty() {
                let rows: Vec<&SessionRow> = put.iter().filter_map(|k| self.sessions[k]).collect();
                sqlx::query(
                    "INSERT INTO sessions (id, workflow_id, created_ms, last_active_ms, record) \
                     SELECT * FROM UNNEST($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::bytea[]) \
                     ON CONFLICT (id) DO UPDATE SET workflow_id = EXCLUDED.workflow_id, \
                     created_ms = EXCLUDED.created_ms, last_active_ms = EXCLUDED.last_active_ms, \
                     record = EXCLUDED.record",
                )
                .bind(put.clone())
                .bind(rows.iter().map(|r| r.workflow_id.as_str()).collect::<Vec<_>>())
                .bind(rows.iter().map(|r| r.created_ms).collect::<Vec<_>>())
                .bind(rows.iter().map(|r| r.last_active_ms).collect::<Vec<_>>())
                .bind(rows.iter().map(|r| r.record.as_slice()).collect::<Vec<_>>())
                .execute(&mut *conn)
                .await?;
            }
        }
        Ok(())
    }
}

/// The keys of `map` whose change puts a row, and those whose change removes it.
fn split<K: Copy, V>(map: &BTreeMap<K, V>, puts: impl Fn(&V) -> bool) -> (Vec<K>, Vec<K>) {
    let mut put = Vec::new();
    let mut gone = Vec::new();
    for (k, v) in map {
        if puts(v) { put.push(*k) } else { gone.push(*k) }
    }
    (put, gone)
}

/// Run rounds until every sender is gone and the queue is drained. (The
/// caller then hands back this process's leases and closes the pool.)
pub(super) async fn flusher(
    pool: &PgPool,
    mut queue: mpsc::UnboundedReceiver<Request>,
    counters: Arc<Counters>,
    lessee: Arc<Lessee>,
) {
    let mut round = Vec::new();
    while let Some(first) = queue.recv().await {
        round.push(first);
        while round.len() < MAX_ROUND {
            match queue.try_recv() {
                Ok(next) => round.push(next),
                Err(_) => break,
            }
        }
        // Only a round that ends an execution changes what a renewal
        // compares (see `Lessee::gate`): the others do not wait for one.
        let ends = round.iter().any(|r| r.writes.fence.as_ref().is_some_and(|f| f.ends));
        let _gate = if ends { Some(lessee.gate.lock().await) } else { None };
        commit_round(pool, std::mem::take(&mut round), &counters, &lessee).await;
    }
}

/// Commit one round and answer its writers.
async fn commit_round(pool: &PgPool, round: Vec<Request>, counters: &Counters, lessee: &Lessee) {
    let started = Instant::now();
    let outcome = commit(pool, &lessee.worker, || Round::of(round.iter().map(|r| &r.writes))).await;
    let took = started.elapsed();
    if took > SLOW_ROUND {
        tracing::warn!(requests = round.len(), took_ms = took.as_millis() as u64, "slow PostgreSQL journal commit");
    }
    match outcome {
        Ok(()) => {
            counted(counters, took);
            for request in round {
                committed(lessee, &request.writes);
                answer(counters, request, Ok(()));
            }
        }
        Err(failure) if round.len() == 1 => {
            if let Some(request) = round.into_iter().next() {
                let error = failed(lessee, &request.writes, failure);
                answer(counters, request, Err(error));
            }
        }
        // PostgreSQL refused the round, or an append in it is fenced (it
        // did not commit): find who is at fault.
        Err(failure) if failure.refusal() => {
            for request in round {
                let started = Instant::now();
                let outcome = commit(pool, &lessee.worker, || Round::of([&request.writes])).await;
                let outcome = match outcome {
                    Ok(()) => {
                        counted(counters, started.elapsed());
                        committed(lessee, &request.writes);
                        Ok(())
                    }
                    Err(failure) => Err(failed(lessee, &request.writes, failure)),
                };
                answer(counters, request, outcome);
            }
        }
        // The connection failed, at COMMIT or again and again: whether the
        // round is stored may be unknown.
        Err(failure) => {
            let e = match failure {
                Failure::Sql(e) => e.to_string(),
                Failure::Fenced(_) => "fenced".to_string(),
                Failure::Answered(_) => "an inbox message was answered already".to_string(),
            };
            let others = round.len() - 1;
            for request in round {
                let others = crate::plural::count(others, "other request", "other requests");
                let what = format!("{} (in a commit shared with {others})", request.writes.what);
                answer(counters, request, Err(super::storage(&what, &e)));
            }
        }
    }
}

/// What a committed request changes in what this process holds: an
/// execution it started is its own (epoch 1), one it ended is not.
fn committed(lessee: &Lessee, writes: &Writes) {
    let Some(fence) = &writes.fence else { return };
    let mut owned = lessee.owned();
    if fence.ends {
        owned.remove(&fence.execution);
    } else if fence.held == Held::Starts {
        owned.insert(fence.execution, 1);
    }
}

/// The error the writer of `writes` gets for a round that failed alone.
fn failed(lessee: &Lessee, writes: &Writes, failure: Failure) -> Error {
    match failure {
        Failure::Sql(e) => refused(&writes.what, e),
        Failure::Fenced(mut fenced) => {
            let Some(fence) = &writes.fence else {
                return super::storage(&writes.what, "refused with the appends it was committed with");
            };
            let epoch = match fence.held {
                Held::Epoch(e) => Some(e),
                Held::Starts => None,
            };
            let why = fenced.remove(&(fence.id.clone(), epoch)).unwrap_or_else(|| "its lease was taken over".into());
            lessee.fenced(fence.execution, epoch, why)
        }
        // Journaling it again would deliver it twice: the writer's
        // execution starts again from what the store holds.
        Failure::Answered(gone) => super::storage(
            &writes.what,
            format!(
                "refused: its inbox {} {} answered or withdrawn already; nothing was written",
                match gone.len() {
                    1 => "message",
                    _ => "messages",
                },
                gone.iter().map(|(row, _)| row.to_string()).collect::<Vec<_>>().join(", ")
            ),
        ),
    }
}

fn counted(counters: &Counters, took: Duration) {
    counters.commits.fetch_add(1, Ordering::Relaxed);
    counters.commit_us.fetch_add(took.as_micros() as u64, Ordering::Relaxed);
}

fn answer(counters: &Counters, request: Request, outcome: Result<(), Error>) {
    if outcome.is_ok() {
        counters.appends.fetch_add(request.writes.appends, Ordering::Relaxed);
        counters.events.fetch_add(request.writes.events, Ordering::Relaxed);
    }
    // A writer that stopped waiting (its task was dropped) needs no answer.
    let _ = request.done.send(outcome);
}

/// Write `round()` in one transaction. A connection found lost before
/// the COMMIT was sent (so nothing was stored) is dropped by the pool and
/// the round written again on another, up to `RECONNECTS` times; a
/// failure at the COMMIT itself is returned (its outcome is unknown).
async fn commit<'a>(pool: &PgPool, worker: &str, round: impl Fn() -> Round<'a>) -> Result<(), Failure> {
    let mut tries = 0;
    loop {
        let written = async {
            let mut tx = pool.begin().await?;
            let round = round();
            round.fence(&mut tx, worker).await?;
            round.write(&mut tx).await?;
            round.end_leases(&mut tx, worker).await?;
            Ok::<_, Failure>(tx)
        };
        match written.await {
            Ok(tx) => return Ok(tx.commit().await?),
            Err(Failure::Sql(e)) if super::connection_lost(&e) && tries < super::RECONNECTS => {
                tries += 1;
                tracing::debug!(error = %e, "PostgreSQL connection lost before a commit; writing the round again");
            }
            Err(e) => return Err(e),
        }
    }
}

/// The error a writer gets: what it was doing, and why that failed, in
/// words for the two refusals the schema makes on purpose.
fn refused(what: &str, e: sqlx::Error) -> Error {
    if let Some(db) = e.as_database_error()
        && db.is_unique_violation()
    {
        match db.constraint() {
            Some("events_pkey") => {
                return Error::Storage(format!(
                    "{what}: refused: records at these positions of its history are already stored, and an append \
                     never overwrites the history (PostgreSQL: {})",
                    db.message()
                ));
            }
            Some("executions_key_key") => {
                return Error::Storage(format!(
                    "{what}: refused: its idempotency key is already taken by another execution (PostgreSQL: {})",
                    db.message()
                ));
            }
            _ => {}
        }
    }
    super::storage(what, &e)
}
