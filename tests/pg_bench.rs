//! `jamjet bench` across processes on a real PostgreSQL store, small:
//!
//! - One process, one execution at a time: one COMMIT per step (and one
//!   per start), with the database's own counts in the report.
//! - `--processes 3`: three real processes share the load; every execution
//!   completes in the store, the report adds up their windows.
//! - `workers`: real workers claim and run every execution handed to them.
//! - `takeover`: real workers, one `kill -9`ed while it owns executions
//!   mid-step; every one it owned is taken over, and its schema is dropped.
//! - No orphans: the processes a `--processes` bench started stop when it
//!   is `kill -9`ed.
//!
//! The figures themselves are for README; these check the shape and the
//! counts only.

mod support;

use std::time::{Duration, Instant};

use serde_json::Value;
use support::pg::PgSchema;
use support::workers::Worker;
use support::{OutputBounded, jamjet};

fn json_of(out: &std::process::Output, what: &str) -> Value {
    assert!(out.status.success(), "{what} failed: {}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{what} printed no JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_processes_share_the_load_and_every_execution_completes() {
    let Some(schema) = PgSchema::fresh().await else { return };
    let url = schema.url();
    let out = jamjet()
        .args(["--store", &url, "bench", "--processes", "3", "-n", "31", "-c", "6", "--warmup", "3", "--json"])
        .output_bounded();
    let r = json_of(&out, "bench --processes 3");
    assert_eq!(r["processes"], 3, "{r}");
    assert_eq!(r["executions"], 31, "{r}");
    assert_eq!(r["warmup_executions"], 3, "{r}");
    assert_eq!(r["node_completions"], 310, "ten nodes each: {r}");
    assert_eq!(r["execution_latency"]["count"], 31, "every latency merged: {r}");
    let rows = r["per_process"].as_array().expect("per_process");
    assert_eq!(rows.len(), 3, "{r}");
    let shares: Vec<u64> = rows.iter().map(|p| p["executions"].as_u64().unwrap()).collect();
    assert_eq!(shares.iter().sum::<u64>(), 31, "{shares:?}");
    assert!(shares.iter().all(|&s| s == 10 || s == 11), "{shares:?}");
    let pids: std::collections::BTreeSet<u64> = rows.iter().map(|p| p["pid"].as_u64().unwrap()).collect();
    assert_eq!(pids.len(), 3, "three processes: {r}");
    // The whole window is at least as long as each process's own.
    let seconds = r["seconds"].as_f64().unwrap();
    assert!(rows.iter().all(|p| p["seconds"].as_f64().unwrap() <= seconds + 0.002), "{r}");
    assert_eq!(r["node_latency"]["count"], 310, "read from the store: {r}");
    // Database-wide, read from statistics that may lag: a count, not a bound.
    assert!(r["database_commits"].is_u64(), "{r}");
    assert!(r.get("window").is_none(), "the children's windows are theirs only: {r}");
    // In the store: all 34 completed, each with i = 10.
    let done = schema.text("SELECT count(*)::text FROM executions WHERE status = 'completed'").await;
    assert_eq!(done, "34");
    let other = schema.text("SELECT count(*)::text FROM executions WHERE status <> 'completed'").await;
    assert_eq!(other, "0");
}

/// One process, one execution at a time: each step is its own COMMIT
/// (plus one per execution for its start), and the database's own counts
/// come with the report.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_process_commits_once_per_step_and_reports_the_databases_counts() {
    let Some(schema) = PgSchema::fresh().await else { return };
    let url = schema.url();
    let out =
        jamjet().args(["--store", &url, "bench", "-n", "5", "-c", "1", "--warmup", "0", "--json"]).output_bounded();
    let r = json_of(&out, "bench on PostgreSQL");
    assert_eq!(r["node_completions"], 50, "{r}");
    assert_eq!(r["journal_syncs"], 55, "ten steps and a start each: {r}");
    assert!(r["database_commits"].is_u64() && r["database_wal_syncs"].is_u64(), "{r}");
}

/// Real workers claim and run every execution handed to them; the bench's
/// own schema is dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_run_every_execution_handed_to_them() {
    let Some(schema) = PgSchema::fresh().await else { return };
    let url = schema.url();
    let out = jamjet()
        .args(["--store", &url, "bench", "workers", "--workers", "2", "--capacity", "4", "-n", "20", "--json"])
        .output_bounded();
    let r = json_of(&out, "bench workers");
    assert_eq!((r["workers"].as_u64(), r["executions"].as_u64()), (Some(2), Some(20)), "{r}");
    assert_eq!(r["node_completions"], 200, "ten steps each: {r}");
    assert!(r["nodes_per_second"].as_f64().unwrap() > 0.0, "{r}");
    let name = r["schema"].as_str().unwrap();
    let left = schema
        .text(&format!("SELECT count(*)::text FROM information_schema.schemata WHERE schema_name = '{name}'"))
        .await;
    assert_eq!(left, "0", "schema {name} was left behind");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn takeover_takes_over_every_execution_of_the_killed_worker() {
    let Some(schema) = PgSchema::fresh().await else { return };
    let url = schema.url();
    let out = jamjet()
        .args(["--store", &url, "bench", "takeover", "--workers", "2", "-n", "6", "--lease-time", "1s"])
        .args(["--step", "5s", "--json"])
        .output_bounded();
    let r = json_of(&out, "bench takeover");
    let owned = r["killed_owned"].as_u64().unwrap();
    assert!(owned >= 1, "the victim owned executions: {r}");
    assert_eq!(r["taken_over"].as_u64().unwrap(), owned, "{r}");
    assert_eq!(r["lease_time_ms"], 1000, "{r}");
    assert_eq!(r["bound_ms"], 2000, "{r}");
    // Nobody claims a dead worker's execution before its last renewal's lease ran out.
    let claimed = &r["claimed_ms"];
    assert!(claimed["min_ms"].as_u64().unwrap() <= claimed["p50_ms"].as_u64().unwrap(), "{r}");
    assert!(r["resumed_ms"]["max_ms"].as_u64().unwrap() >= claimed["min_ms"].as_u64().unwrap(), "{r}");
    assert!(r["within_bound"].is_boolean(), "{r}");
    // Its own schema is gone, and so are its workers.
    let name = r["schema"].as_str().unwrap();
    let left = schema
        .text(&format!("SELECT count(*)::text FROM information_schema.schemata WHERE schema_name = '{name}'"))
        .await;
    assert_eq!(left, "0", "schema {name} was left behind");
}

/// The pids whose parent is `parent` (from /proc).
fn children_of(parent: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        // pid (comm) state ppid ...: comm may hold spaces, so split after its ')'.
        let Some((_, rest)) = stat.rsplit_once(") ") else { continue };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.get(1).and_then(|p| p.parse::<u32>().ok()) == Some(parent) {
            out.push(pid);
        }
    }
    out
}

/// Whether `pid` runs (a zombie waiting for its reaper has stopped).
fn running(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat.rsplit_once(") ").is_some_and(|(_, rest)| !rest.starts_with('Z')),
        Err(_) => false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_processes_stop_when_their_parent_is_killed() {
    let Some(schema) = PgSchema::fresh().await else { return };
    let url = schema.url();
    // Killed (with its children, through their lifelines) if this test fails first.
    let mut parent = Worker(
        jamjet()
            .args(["--store", &url, "bench", "--processes", "2", "--duration", "60s", "-c", "2", "--warmup", "0"])
            .arg("--json")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    // Wait (bounded) until both run and have started executions.
    let began = Instant::now();
    let kids = loop {
        let kids = children_of(parent.id());
        let migrated = schema.text("SELECT (to_regclass('executions') IS NOT NULL)::text").await == "true";
        let started = migrated && schema.text("SELECT count(*)::text FROM executions").await != "0";
        if kids.len() == 2 && started {
            break kids;
        }
        assert!(began.elapsed() < Duration::from_secs(60), "the two processes did not start: {kids:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    parent.kill().unwrap(); // SIGKILL: no chance to clean up
    parent.wait().unwrap();
    let killed = Instant::now();
    while kids.iter().any(|&k| running(k)) {
        assert!(killed.elapsed() < Duration::from_secs(10), "{kids:?} outlived their parent by 10 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
