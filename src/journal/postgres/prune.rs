//! Pruning on PostgreSQL ([`Journal::prune`](super::super::Journal::prune)):
//! one transaction per call deletes the index rows of the named executions
//! that have ended (the row lock orders it against a claim or an append's
//! round), then their events, lease and timers, and writes a
//! tombstone for each (table `pruned`, schema version 4).

use sqlx::PgPool;

use super::super::{Error, Freed, Tombstone, decode_meta_of, decode_tombstone, encode_tombstone};
use super::{id_from, ms, storage};
use crate::id::ExecutionId;

pub(super) async fn prune(pool: &PgPool, executions: Vec<Vec<u8>>, at_ms: u64) -> Result<Freed, Error> {
    let what = format!("pruning {}", crate::plural::count(executions.len(), "execution", "executions"));
    let failed = |e| storage(&what, e);
    let mut tx = pool.begin().await.map_err(failed)?;
    let rows: Vec<(Vec<u8>, Vec<u8>, i64)> = sqlx::query_as(
        "DELETE FROM executions WHERE id = ANY($1) AND status IN ('completed', 'failed', 'cancelled') \
         RETURNING id, record, (octet_length(record) + coalesce(octet_length(key), 0))::bigint",
    )
    .bind(&executions)
    .fetch_all(&mut *tx)
    .await
    .map_err(failed)?;
    if rows.is_empty() {
        tx.rollback().await.map_err(failed)?;
        return Ok(Freed::default());
    }
    let ids: Vec<Vec<u8>> = rows.iter().map(|(id, _, _)| id.clone()).collect();
    let events: Vec<(Vec<u8>, i64, i64)> = sqlx::query_as(
        "WITH gone AS (DELETE FROM events WHERE execution = ANY($1) RETURNING execution, last_seq, octet_length(frame) AS bytes) \
         SELECT execution, max(last_seq)::bigint, sum(bytes)::bigint FROM gone GROUP BY execution",
    )
    .bind(&ids)
    .fetch_all(&mut *tx)
    .await
    .map_err(failed)?;
    // An ended execution holds no waits (its end removed them); its lease
    // row and timers (a child's wake-up set by its parent) may be left.
    for table in ["DELETE FROM leases WHERE execution = ANY($1)", "DELETE FROM timers WHERE execution = ANY($1)"] {
        sqlx::query(table).bind(&ids).execute(&mut *tx).await.map_err(failed)?;
    }
    let mut freed = Freed::default();
    let (mut tomb_ids, mut tomb_at, mut tomb_records) = (Vec::new(), Vec::new(), Vec::new());
    for (id, record, row_bytes) in rows {
        let execution = id_from(&id, "a pruned index row")?;
        let meta = decode_meta_of(execution, &record).map_err(Error::Damaged)?;
        let (count, bytes) =
            events.iter().find(|(e, _, _)| *e == id).map_or((0, 0), |(_, last, bytes)| (*last as u64, *bytes as u64));
        freed.add(Freed { executions: 1, events: count, bytes: bytes + row_bytes as u64 });
        tomb_records.push(encode_tombstone(&Tombstone { meta, pruned_ms: at_ms, events: count }));
        tomb_ids.push(id);
        tomb_at.push(ms(at_ms));
    }
    sqlx::query(
        "INSERT INTO pruned (id, pruned_ms, record) SELECT * FROM UNNEST($1::bytea[], $2::bigint[], $3::bytea[]) \
         ON CONFLICT (id) DO NOTHING",
    )
    .bind(&tomb_ids)
    .bind(&tomb_at)
    .bind(&tomb_records)
    .execute(&mut *tx)
    .await
    .map_err(failed)?;
    tx.commit().await.map_err(failed)?;
    Ok(freed)
}

pub(super) fn decode(execution: ExecutionId, record: &[u8]) -> Result<Tombstone, Error> {
    let t = decode_tombstone(record)?;
    if t.meta.id != execution {
        return Err(Error::Corrupt(format!("the tombstone stored under {execution} names {}", t.meta.id)));
    }
    Ok(t)
}
