//! A fresh PostgreSQL schema of its own for each test, dropped at the end,
//! so tests run in parallel on one server and leave nothing behind.
//!
//! The server is `JAMJET_TEST_PG` (default [`DEFAULT_URL`]). When none
//! answers there, a test prints `SKIPPED` with the command that starts one
//! and returns; under `CI=true` (where `.ci/run` starts it) it fails.

use std::time::Duration;

use sqlx::{AssertSqlSafe, Connection, Executor, PgConnection};

/// Where the tests find PostgreSQL unless `JAMJET_TEST_PG` says otherwise
/// (trust auth for `postgres` on loopback, database `test`).
pub const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

const START: &str = "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start";

/// A schema `jj_<random>` in the test database, dropped (with everything
/// in it) when this is dropped.
pub struct PgSchema {
    base: String,
    pub name: String,
}

fn base_url() -> String {
    std::env::var("JAMJET_TEST_PG").unwrap_or_else(|_| DEFAULT_URL.to_string())
}

async fn connect(url: &str) -> Result<PgConnection, String> {
    match tokio::time::timeout(Duration::from_secs(10), PgConnection::connect(url)).await {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("no answer in 10 s".to_string()),
    }
}

impl PgSchema {
    /// A new empty schema; `None` (after printing SKIPPED) when no server
    /// answers and this is not CI.
    pub async fn fresh() -> Option<PgSchema> {
        let base = base_url();
        let mut conn = match connect(&base).await {
            Ok(conn) => conn,
            Err(e) if std::env::var("CI").is_ok_and(|v| v == "true") => {
                panic!("no PostgreSQL at {base} ({e}); start it with: {START}")
            }
            Err(e) => {
                eprintln!("SKIPPED: no PostgreSQL at {base} ({e}); start it with: {START}");
                return None;
            }
        };
        let name = format!("jj_{:016x}", rand::random::<u64>());
        conn.execute(AssertSqlSafe(format!("CREATE SCHEMA {name}"))).await.expect("create the test schema");
        let _ = conn.close().await;
        Some(PgSchema { base, name })
    }

    /// The URL of the server with this schema as the connection's search path.
    pub fn url(&self) -> String {
        let sep = if self.base.contains('?') { '&' } else { '?' };
        format!("{}{sep}options=-c%20search_path%3D{}", self.base, self.name)
    }

    /// A connection to the server in this schema, for a test that holds
    /// a transaction open.
    pub async fn connection(&self) -> PgConnection {
        connect(&self.url()).await.expect("connect to the test schema")
    }

    /// Run one SQL statement on the server (in this schema).
    pub async fn execute(&self, sql: &str) {
        let mut conn = connect(&self.url()).await.expect("connect to the test schema");
        conn.execute(AssertSqlSafe(sql.to_string())).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
        let _ = conn.close().await;
    }

    /// One value (as text) of a query in this schema.
    pub async fn text(&self, sql: &str) -> String {
        let mut conn = connect(&self.url()).await.expect("connect to the test schema");
        let value: String = sqlx::query_scalar(AssertSqlSafe(sql.to_string()))
            .fetch_one(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        let _ = conn.close().await;
        value
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        // Drop may run inside a test's runtime: do the work on a thread with its own.
        let (base, name) = (self.base.clone(), self.name.clone());
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
            rt.block_on(async {
                let mut conn = connect(&base).await?;
                conn.execute(AssertSqlSafe(format!("DROP SCHEMA IF EXISTS {name} CASCADE")))
                    .await
                    .map_err(|e| e.to_string())?;
                let _ = conn.close().await;
                Ok::<(), String>(())
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop the test schema {}: {dropped:?}", self.name);
        }
    }
}
