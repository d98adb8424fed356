//! The PostgreSQL journal's schema: migrations embedded in the binary as
//! SQL text, applied at open.
//!
//! The tables live in the connection's current schema (the first existing
//! one on its `search_path`), so several stores can share a database, one
//! schema each. `jamjet_schema` holds one row: the schema version. Opening
//! runs one transaction that takes a transaction-scoped advisory lock
//! keyed by the schema's name, reads the version, applies every migration
//! past it in order and writes the new version; several processes opening
//! at once queue on the lock, and the later ones find the work done. A
//! store whose version is newer than the newest migration here is refused
//! and left unchanged ([`Error::SchemaTooNew`]): an older binary must not
//! write to tables it does not know.
//!
//! Migrations are only ever appended: version `n` is `MIGRATIONS[n - 1]`.

use sqlx::{PgPool, Postgres, Transaction};

use super::super::Error;
use super::storage;

/// Every migration, in order: version n is the n-th.
const MIGRATIONS: &[&str] = &[
    include_str!("migrations/0001_journal.sql"),
    include_str!("migrations/0002_leases.sql"),
    include_str!("migrations/0003_inbox.sql"),
    include_str!("migrations/0004_pruned.sql"),
    include_str!("migrations/0005_list_filters.sql"),
];

/// The newest schema version this binary knows.
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// Bring the current schema up to [`SCHEMA_VERSION`]; returns the version
/// it was at (0: a fresh schema).
pub(super) async fn migrate(pool: &PgPool) -> Result<u32, Error> {
    let failed = |what: &str| {
        let what = what.to_string();
        move |e| storage(&what, e)
    };
    let mut tx = pool.begin().await.map_err(failed("starting the schema migration"))?;
    let schema: Option<String> = sqlx::query_scalar("SELECT current_schema()")
        .fetch_one(&mut *tx)
        .await
        .map_err(failed("reading the current schema"))?;
    let Some(schema) = schema else {
        return Err(Error::Storage(
            "PostgreSQL: no schema on the connection's search_path exists: create it (CREATE SCHEMA name) or name \
             an existing one (options=-c search_path=name in the URL)"
                .to_string(),
        ));
    };
    // Queue behind any other process migrating this schema; released at COMMIT.
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('jamjet journal schema ' || $1, 0))")
        .bind(&schema)
        .execute(&mut *tx)
        .await
        .map_err(failed("taking the schema migration lock"))?;
    let found = stored_version(&mut tx, &schema).await?;
    if found > SCHEMA_VERSION {
        // Nothing was written; dropping `tx` rolls back and frees the lock.
        return Err(Error::SchemaTooNew { store: found, known: SCHEMA_VERSION });
    }
    if found == SCHEMA_VERSION {
        tx.commit().await.map_err(failed("ending the schema check"))?;
        return Ok(found);
    }
    if found == 0 {
        sqlx::raw_sql(
            "CREATE TABLE jamjet_schema (one boolean PRIMARY KEY DEFAULT true CHECK (one), version integer NOT NULL)",
        )
        .execute(&mut *tx)
        .await
        .map_err(failed("creating the schema version table"))?;
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        let version = i as u32 + 1;
        sqlx::raw_sql(*sql)
            .execute(&mut *tx)
            .await
            .map_err(failed(&format!("applying schema migration {version} in schema {schema}")))?;
    }
    sqlx::query(
        "INSERT INTO jamjet_schema (one, version) VALUES (true, $1) ON CONFLICT (one) DO UPDATE SET version = $1",
    )
    .bind(SCHEMA_VERSION as i32)
    .execute(&mut *tx)
    .await
    .map_err(failed("recording the schema version"))?;
    tx.commit().await.map_err(failed("committing the schema migration"))?;
    tracing::info!(schema = %schema, from = found, to = SCHEMA_VERSION, "PostgreSQL journal schema migrated");
    Ok(found)
}

/// The connection's current schema and the version recorded there (0:
/// none yet), read without changing anything.
pub(super) async fn state(pool: &PgPool) -> Result<(String, u32), Error> {
    let mut tx = pool.begin().await.map_err(|e| storage("reading the schema version", e))?;
    let schema: Option<String> = sqlx::query_scalar("SELECT current_schema()")
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| storage("reading the current schema", e))?;
    let Some(schema) = schema else {
        return Err(Error::Storage(
            "PostgreSQL: no schema on the connection's search_path exists: create it (CREATE SCHEMA name) or name \
             an existing one (options=-c search_path=name in the URL)"
                .to_string(),
        ));
    };
    let version = stored_version(&mut tx, &schema).await?;
    let _ = tx.rollback().await;
    Ok((schema, version))
}

/// The version recorded in `schema` (0 when it has no version table).
async fn stored_version(tx: &mut Transaction<'static, Postgres>, schema: &str) -> Result<u32, Error> {
    let exists: bool = sqlx::query_scalar("SELECT to_regclass(format('%I.jamjet_schema', $1::text)) IS NOT NULL")
        .bind(schema)
        .fetch_one(&mut **tx)
        .await
        .map_err(|e| storage("looking for the schema version table", e))?;
    if !exists {
        return Ok(0);
    }
    let version: Option<i32> = sqlx::query_scalar("SELECT version FROM jamjet_schema")
        .fetch_optional(&mut **tx)
        .await
        .map_err(|e| storage("reading the schema version", e))?;
    match version {
        Some(v) if v >= 1 => Ok(v as u32),
        other => Err(Error::Storage(format!(
            "PostgreSQL: the table {schema}.jamjet_schema holds {} instead of one version row: this schema is not \
             a jamjet store, or was damaged",
            other.map_or("no row".to_string(), |v| format!("version {v}"))
        ))),
    }
}
