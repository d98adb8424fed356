//! Executions' inboxes on PostgreSQL (table `inbox`, `migrations/0003_inbox.sql`;
//! the model is in `journal/inbox.rs`). Each function here is one
//! statement, so one transaction; answering a message that an append
//! journals is part of that append's round instead (`commit.rs`).

use sqlx::PgPool;

use super::super::Error;
use super::super::inbox::{Answer, Letter, Message, Refusal, encode};
use super::lease::Lessee;
use super::{id_from, notices, storage, unsigned};
use crate::id::ExecutionId;

/// Answered rows nobody read (their sender died waiting) are deleted by
/// claims this long after their answer.
pub(super) const FORGET_ANSWERS_SQL: &str =
    "DELETE FROM inbox WHERE answered_at < clock_timestamp() - interval '1 hour'";

/// Store `message` for `execution` and announce it (at COMMIT); its row.
pub(super) async fn send(pool: &PgPool, me: &Lessee, execution: ExecutionId, message: &Message) -> Result<u64, Error> {
    let what = format!("sending a {} to the inbox of {execution}", message.describe());
    let row: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "WITH sent AS (INSERT INTO inbox (execution, sender, message) VALUES ($1, $2, $3::jsonb) RETURNING id) \
         SELECT id FROM sent, LATERAL (SELECT pg_notify({}, $4)) AS n",
        notices::CHANNEL_SQL
    )))
    .bind(execution.to_bytes().to_vec())
    .bind(&me.worker)
    .bind(encode(message))
    .bind(notices::sent(execution))
    .fetch_one(pool)
    .await
    .map_err(|e| storage(&what, e))?;
    unsigned(row, "an inbox row")
}

/// Up to `limit` open messages of the executions this process holds, in
/// the order they were sent. One that does not read (a newer jamjet wrote
/// it) is refused here, saying so.
pub(super) async fn letters(pool: &PgPool, me: &Lessee, limit: i64) -> Result<Vec<Letter>, Error> {
    let what = format!("reading the inboxes of the worker {}", me.worker);
    let rows: Vec<(i64, Vec<u8>, String, String)> = sqlx::query_as(
        "SELECT i.id, i.execution, i.sender, i.message::text FROM inbox i \
         JOIN leases l ON l.execution = i.execution \
         WHERE l.worker = $1 AND i.answered_at IS NULL ORDER BY i.id LIMIT $2",
    )
    .bind(&me.worker)
    .bind(limit)
    .fetch_all(pool)
    .await
    .map_err(|e| storage(&what, e))?;
    let mut out = Vec::with_capacity(rows.len());
    for (row, execution, sender, message) in rows {
        let row = unsigned(row, "an inbox row")?;
        let execution = id_from(&execution, "the inbox")?;
        match serde_json::from_str::<Message>(&message) {
            Ok(message) => out.push(Letter { row, execution, message, sender }),
            Err(e) => {
                let why = format!("this jamjet cannot read the message ({e}): send it with the jamjet that runs it");
                refuse(pool, me, row, &Refusal::Other { message: why }).await?;
            }
        }
    }
    Ok(out)
}

/// Answer `row` with a refusal (nothing journaled), if it is still open
/// and its execution is this process's or has ended; announced at COMMIT.
/// Whether it was answered here.
pub(super) async fn refuse(pool: &PgPool, me: &Lessee, row: u64, refusal: &Refusal) -> Result<bool, Error> {
    let what = format!("answering the inbox message {row}");
    let answered: Option<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "WITH a AS (UPDATE inbox i SET answered_at = clock_timestamp(), answer = $2::jsonb \
         WHERE i.id = $1 AND i.answered_at IS NULL \
         AND (EXISTS (SELECT 1 FROM leases l WHERE l.execution = i.execution AND l.worker = $3) \
              OR NOT EXISTS (SELECT 1 FROM executions e WHERE e.id = i.execution \
                             AND e.status IN ('running', 'waiting'))) \
         RETURNING i.id) \
         SELECT pg_notify({}, 'answered:' || id) FROM a",
        notices::CHANNEL_SQL
    )))
    .bind(i64::try_from(row).unwrap_or(i64::MAX))
    .bind(encode(&Answer::Refused(refusal.clone())))
    .bind(&me.worker)
    .fetch_optional(pool)
    .await
    .map_err(|e| storage(&what, e))?;
    Ok(answered.is_some())
}

/// The answer to `row`, removing the row, once it is answered.
pub(super) async fn collect(pool: &PgPool, row: u64) -> Result<Option<Answer>, Error> {
    let what = format!("reading the answer to the inbox message {row}");
    let answer: Option<String> =
        sqlx::query_scalar("DELETE FROM inbox WHERE id = $1 AND answered_at IS NOT NULL RETURNING answer::text")
            .bind(i64::try_from(row).unwrap_or(i64::MAX))
            .fetch_optional(pool)
            .await
            .map_err(|e| storage(&what, e))?;
    answer
        .map(|a| serde_json::from_str(&a).map_err(|e| storage(&what, format!("the answer does not read: {e}"))))
        .transpose()
}

/// Remove `row` if nobody answered it yet: whether it was removed.
pub(super) async fn withdraw(pool: &PgPool, row: u64) -> Result<bool, Error> {
    let what = format!("withdrawing the inbox message {row}");
    let gone: Option<i64> = sqlx::query_scalar("DELETE FROM inbox WHERE id = $1 AND answered_at IS NULL RETURNING id")
        .bind(i64::try_from(row).unwrap_or(i64::MAX))
        .fetch_optional(pool)
        .await
        .map_err(|e| storage(&what, e))?;
    Ok(gone.is_some())
}
