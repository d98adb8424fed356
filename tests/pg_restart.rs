//! PostgreSQL restarted under two `jamjet worker` processes mid-run (the
//! whole server: `pg_ctlcluster ... restart`, as DBOS's chaos tests do):
//! the workers reconnect and finish every execution; nothing acknowledged
//! is lost and no node visit completes twice. In a test binary of its own,
//! so no other test's connections are cut. It restarts the server only
//! when it can (the cluster is local and `pg_ctlcluster` is there);
//! otherwise it says SKIPPED with why, and under `CI=true` fails.

mod support;

use std::time::{Duration, Instant};

use support::Server;
use support::pg::PgSchema;
use support::workers::{all_complete, completed, expected, once_each, open, signal, submit, worker_with};

/// `pg_ctlcluster VERSION main restart`, and wait until it answers again.
fn restart_postgres() -> Result<Duration, String> {
    let versions = std::fs::read_dir("/etc/postgresql").map_err(|e| format!("no /etc/postgresql ({e})"))?;
    let version = versions
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .next()
        .ok_or("no cluster under /etc/postgresql")?;
    let began = Instant::now();
    let done = std::process::Command::new("pg_ctlcluster")
        .args(["--skip-systemctl-redirect", &version, "main", "restart"])
        .output()
        .map_err(|e| format!("cannot run pg_ctlcluster: {e}"))?;
    if !done.status.success() {
        return Err(format!("pg_ctlcluster restart failed: {}", String::from_utf8_lossy(&done.stderr)));
    }
    while !std::process::Command::new("pg_isready").args(["-h", "127.0.0.1", "-q"]).status().is_ok_and(|s| s.success())
    {
        if began.elapsed() > Duration::from_secs(60) {
            return Err("PostgreSQL did not come back within 60 s".into());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(began.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_reconnect_after_postgres_restarts_and_finish_everything() {
    let Some(schema) = PgSchema::fresh().await else { return };
    let url = schema.url();
    let server = Server::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let logs: Vec<_> = (0..2).map(|k| tmp.path().join(format!("worker-{k}.log"))).collect();
    let mut workers: Vec<_> = logs.iter().map(|l| worker_with(&url, l, "3s")).collect();
    const N: usize = 100;
    // Each http call takes 1.5 s: every execution is mid-run when the server goes.
    let ids = submit(&url, &server.url, N, 1500).await;
    let reader = open(&url).await;
    let began = Instant::now();
    while server.seen.lock().unwrap().by_key.len() < N + N / 2 {
        assert!(began.elapsed() < Duration::from_secs(60), "stuck before the restart");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let before = completed(&reader, &ids).await;
    assert!(before < N, "all {N} completed before the restart: nothing to test");
    let took = match restart_postgres() {
        Ok(took) => took,
        Err(why) if std::env::var("CI").is_ok_and(|v| v == "true") => panic!("cannot restart PostgreSQL: {why}"),
        Err(why) => {
            eprintln!(
                "SKIPPED: cannot restart PostgreSQL here ({why}); run as a user allowed to: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main restart"
            );
            return;
        }
    };
    println!("PostgreSQL restarted in {took:?}; {before} of {N} executions had completed before it");
    all_complete(&reader, &ids, Duration::from_secs(120), &logs).await;
    for (job, id) in ids.iter().enumerate() {
        once_each(&reader, *id);
        let out = reader.wait(*id).await.unwrap();
        assert_eq!(out.state["total"], expected(job)["total"], "{id}");
    }
    for (k, bodies) in &server.seen.lock().unwrap().by_key {
        assert!(bodies.windows(2).all(|w| w[0] == w[1]), "key {k} was sent with different bodies: {bodies:?}");
    }
    for w in &mut workers {
        signal(w, "-TERM");
        assert!(w.wait().unwrap().success(), "a worker failed after the restart");
    }
    reader.shutdown().await;
}
