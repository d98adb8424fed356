//! Opening a connection to PostgreSQL: where a URL points (never its
//! password), why a server could not be used (in words that say what to
//! do), and the pool, once the schema is up to date.

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgPool};

use super::super::Error;
use super::{ACQUIRE_TIMEOUT, CONNECT_TIMEOUT, POOL_SIZE, schema};

/// Where a URL points, without its password: for every message.
pub(super) fn place(options: &PgConnectOptions) -> String {
    let at = match options.get_socket() {
        Some(socket) => format!("the socket {}", socket.display()),
        None => format!("{}:{}", options.get_host(), options.get_port()),
    };
    let database = options.get_database().unwrap_or("(the user's default)");
    format!("{at} (database {database}, user {})", options.get_username())
}

/// `url` with its password (in the user info or a `password=` parameter)
/// replaced by `***`: what an error may show of a URL.
pub fn redact_url(url: &str) -> String {
    let (scheme, rest) = match url.find("://") {
        Some(i) => url.split_at(i + 3),
        None => ("", url),
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let authority = match authority.rfind('@') {
        Some(at) => {
            let (info, host) = authority.split_at(at);
            match info.split_once(':') {
                Some((user, _)) => format!("{user}:***{host}"),
                None => authority.to_string(),
            }
        }
        None => authority.to_string(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let params: Vec<String> = query
                .split('&')
                .map(|p| match p.split_once('=') {
                    Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                    _ => p.to_string(),
                })
                .collect();
            format!("{path}?{}", params.join("&"))
        }
        None => tail.to_string(),
    };
    format!("{scheme}{authority}{tail}")
}

/// Why the server at `place` could not be used.
fn unreachable(place: &str, e: sqlx::Error) -> Error {
    match e {
        sqlx::Error::Database(db) => {
            let hint = match db.code().as_deref() {
                Some("3D000") => ": create the database (createdb NAME) or name another in the URL",
                Some("28P01" | "28000") => ": check the user and password in the URL (or ~/.pgpass)",
                _ => "",
            };
            Error::Storage(format!("PostgreSQL at {place} refused the connection: {}{hint}", db.message()))
        }
        // TLS (sslmode=require, verify-ca, verify-full): the server answered, its certificate did not do.
        other if matches!(other, sqlx::Error::Tls(_)) || other.to_string().contains("certificate") => {
            Error::Storage(format!(
                "PostgreSQL at {place}: the TLS handshake failed: {other}. Check sslmode and sslrootcert in the \
                 URL (the CA that signed the server's certificate) and that the host in the URL is a name the \
                 certificate holds"
            ))
        }
        other => Error::Storage(format!(
            "cannot reach PostgreSQL at {place}: {other}. Is it running? Start it (on Debian: \
             pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start; elsewhere: \
             pg_ctl start or systemctl start postgresql), or correct the URL"
        )),
    }
}

/// Connect, migrate the schema, and build the pool.
pub(super) async fn connect(options: PgConnectOptions, place: String) -> Result<PgPool, Error> {
    let pool = connect_only(options, place).await?;
    if let Err(e) = schema::migrate(&pool).await {
        pool.close().await;
        return Err(e);
    }
    Ok(pool)
}

/// A pool on the server, reached once (a clear error when it is not), the
/// schema left as it is.
pub(super) async fn connect_only(options: PgConnectOptions, place: String) -> Result<PgPool, Error> {
    // One connection first: a server that is down or refuses us fails
    // here at once with its own reason, not after the pool's retries.
    let probe = tokio::time::timeout(CONNECT_TIMEOUT, options.connect()).await.map_err(|_| {
        Error::Storage(format!(
            "cannot reach PostgreSQL at {place}: no answer in {} s; check the host and port in the URL",
            CONNECT_TIMEOUT.as_secs()
        ))
    })?;
    probe.map_err(|e| unreachable(&place, e))?.close().await.map_err(|e| unreachable(&place, e))?;
    let pool = PgPoolOptions::new()
        .max_connections(POOL_SIZE)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .test_before_acquire(false)
        .connect_lazy_with(options);
    Ok(pool)
}

#[cfg(test)]
mod tests {
    use super::super::PgJournal;
    use super::*;

    #[test]
    fn a_url_never_shows_its_password() {
        assert_eq!(redact_url("postgres://u:s3cret@h:5432/db"), "postgres://u:***@h:5432/db");
        assert_eq!(redact_url("postgres://u:p@ss:w@rd@h/db?x=1"), "postgres://u:***@h/db?x=1");
        assert_eq!(redact_url("postgres://u@h/db?password=s3cret&a=b"), "postgres://u@h/db?password=***&a=b");
        assert_eq!(redact_url("postgres://h/db"), "postgres://h/db");
        assert_eq!(redact_url("not a url :pw@x"), "not a url :***@x");
        for url in ["postgres://u:s3cret@h:5432/db", "postgresql://a:s3cret@[::1]/x?PASSWORD=s3cret"] {
            assert!(!redact_url(url).contains("s3cret"), "{url}");
        }
    }

    #[test]
    fn an_invalid_url_is_refused_without_its_password() {
        let err = futures::executor::block_on(PgJournal::open("postgres://u:s3cret@h:notaport/db"))
            .err()
            .expect("refused")
            .to_string();
        assert!(err.contains("not valid") && err.contains("u:***@h") && !err.contains("s3cret"), "{err}");
    }
}
