//! Crash recovery, for real: the `jamjet` binary runs a workflow of several
//! http nodes (one loop makes some nodes run twice) against a loopback
//! server that records every call by idempotency key, and is `kill -9`ed at
//! random moments (seeded; the seed is printed, set JAMJET_CRASH_SEED to
//! replay one). After every kill it is started again (`run --key`, which
//! attaches to the execution, or `resume`). Checks: every execution
//! completes; every node visit has exactly one NodeCompleted; final states
//! equal an uninterrupted run's; every repeated outbound call carried the
//! same idempotency key and body. A journal that fails to open after a kill
//! fails the test (a non-zero exit we did not cause).

mod support;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use support::{Server, jamjet, jamjet_json};

const WORKFLOW: &str = r#"
id: crashy
version: 1.0.0
state_schema:
  base: str
  seed: int
  delay: int
  round: int
  a: dict
  b: dict
  c: dict
  d: dict
  path: str
  total: int
nodes:
  a:
    type: http
    method: POST
    url: "{{ state.base }}/step/1"
    body: { v: "{{ state.seed }}", delay_ms: "{{ state.delay }}" }
    output_key: a
    next: b
  b:
    type: http
    method: POST
    url: "{{ state.base }}/step/2"
    body: { v: "{{ state.a.v }}", delay_ms: "{{ state.delay }}" }
    output_key: b
    next: route
  route:
    type: branch
    conditions:
      - when: "state.b.v % 2 == 0"
        next: even
    default: odd
  even: { type: set, values: { path: even }, next: c }
  odd: { type: set, values: { path: odd }, next: c }
  c:
    type: http
    method: POST
    url: "{{ state.base }}/step/3"
    body: { v: "{{ state.b.v + state.round }}", delay_ms: "{{ state.delay }}" }
    output_key: c
    next: d
  d:
    type: http
    method: POST
    url: "{{ state.base }}/step/4"
    body: { v: "{{ state.c.v }}", delay_ms: "{{ state.delay }}" }
    output_key: d
    next: again
  again:
    type: set
    values: { round: "{{ state.round + 1 }}" }
    next: loop
  loop:
    type: branch
    conditions:
      - when: "state.round < 2"
        next: c
    default: total
  total:
    type: set
    values: { total: "{{ state.a.v + state.b.v + state.c.v + state.d.v }}" }
"#;

/// Jobs in a run; `JAMJET_CRASH_JOBS` raises it for a soak.
fn jobs() -> usize {
    std::env::var("JAMJET_CRASH_JOBS").ok().and_then(|s| s.parse().ok()).unwrap_or(8)
}
const MIN_KILLS_PER_JOB: usize = 3;

fn input(server: &Server, job: usize) -> String {
    json!({ "base": server.url, "seed": job as i64 * 7 + 1, "delay": 8 + (job % 4) * 4, "round": 0 }).to_string()
}

/// Run every job to completion with no interference: final states by job,
/// and the shortest wall time of a whole `jamjet run` (kills are drawn
/// below it, so they land mid-run).
fn uninterrupted(dir: &Path, wf: &Path, server: &Server) -> (Vec<Value>, Duration) {
    let mut shortest = Duration::MAX;
    let states = (0..jobs())
        .map(|job| {
            let key = format!("job-{job}");
            let began = Instant::now();
            let out = jamjet_json(
                dir,
                &["run", wf.to_str().unwrap(), "--input", &input(server, job), "--key", &key, "--json"],
            );
            shortest = shortest.min(began.elapsed());
            assert_eq!(out["status"], "completed", "{out}");
            out["state"].clone()
        })
        .collect();
    (states, shortest)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_minus_nine_at_random_moments_loses_and_repeats_nothing() {
    let seed: u64 = std::env::var("JAMJET_CRASH_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
    });
    println!("crash test seed: {seed} (replay with JAMJET_CRASH_SEED={seed})");
    let mut rng = StdRng::seed_from_u64(seed);

    let server = Server::start().await;
    // Kept on failure (the path is printed) so a broken journal can be examined.
    let tmp = tempfile::Builder::new().prefix("jamjet-crash-").tempdir().unwrap();
    println!("data dirs under {}", tmp.path().display());
    let wf = tmp.path().join("crashy.yaml");
    std::fs::write(&wf, WORKFLOW).unwrap();
    let crash_dir = tmp.path().join("crashed");
    let clean_dir = tmp.path().join("clean");

    let (expected, run_time) = uninterrupted(&clean_dir, &wf, &server);
    let kill_window = (run_time.as_millis() as u64 * 9 / 10).max(3);
    println!("an uninterrupted run takes {run_time:?}; kills land within {kill_window} ms of a start");

    let deadline = Instant::now() + Duration::from_secs(30 * jobs() as u64 + 120);
    let mut kills = 0usize;
    let mut finals: Vec<Value> = Vec::new();
    for job in 0..jobs() {
        let key = format!("job-{job}");
        let mut job_kills = 0usize;
        let mut launches = 0usize;
        let outcome = loop {
            launches += 1;
            assert!(launches < 80 && Instant::now() < deadline, "job {job} did not finish (seed {seed})");
            let resume = launches > 1 && rng.random_bool(0.3);
            let mut cmd = jamjet();
            cmd.arg("--data-dir").arg(&crash_dir);
            if resume {
                cmd.args(["resume", "--json"]);
            } else {
                cmd.args(["run", wf.to_str().unwrap(), "--input", &input(&server, job), "--key", &key, "--json"]);
            }
            let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
            let kill_at = (job_kills < MIN_KILLS_PER_JOB || rng.random_bool(0.3))
                .then(|| Duration::from_millis(rng.random_range(1..kill_window)));
            let started = Instant::now();
            let status = loop {
                if let Some(s) = child.try_wait().unwrap() {
                    break Some(s);
                }
                if kill_at.is_some_and(|k| started.elapsed() >= k) {
                    child.kill().unwrap(); // SIGKILL
                    child.wait().unwrap();
                    break None;
                }
                assert!(started.elapsed() < Duration::from_secs(60), "jamjet hung (seed {seed})");
                std::thread::sleep(Duration::from_millis(1));
            };
            let out = child.wait_with_output().unwrap();
            match status {
                None => {
                    kills += 1;
                    job_kills += 1;
                }
                Some(s) if s.success() => {
                    if !resume {
                        break serde_json::from_slice::<Value>(&out.stdout).unwrap();
                    }
                }
                Some(s) => panic!(
                    "{}",
                    format!(
                        "jamjet exited {s} on its own after a kill (seed {seed}, job {job}, resume {resume}; data kept in {}):\n{}",
                        tmp.keep().display(),
                        String::from_utf8_lossy(&out.stderr)
                    )
                ),
            }
        };
        assert_eq!(outcome["status"], "completed", "{outcome}");
        finals.push(outcome["state"].clone());
    }
    println!("{kills} kills across {} jobs", jobs());
    assert!(kills >= 20, "only {kills} kills");

    // Every execution completed; final states equal the uninterrupted run's.
    assert_eq!(finals, expected, "final states differ from an uninterrupted run (seed {seed})");
    let list = jamjet_json(&crash_dir, &["executions", "--json"]);
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), jobs(), "one execution per job key: {list:?}");
    assert!(list.iter().all(|m| m["status"] == "completed"), "{list:?}");

    // Exactly one NodeCompleted per node visit; every scheduled visit completed.
    let mut expected_keys = BTreeSet::new();
    for m in list {
        let id = m["id"].as_str().unwrap();
        let inspect = jamjet_json(&crash_dir, &["inspect", id, "--json"]);
        let mut completed: BTreeMap<(String, u64), usize> = BTreeMap::new();
        let mut scheduled: BTreeSet<(String, u64)> = BTreeSet::new();
        for e in inspect["events"].as_array().unwrap() {
            let body = &e["event"][e["type"].as_str().unwrap()];
            let visit = || (body["node"].as_str().unwrap().to_string(), body["visit"].as_u64().unwrap());
            match e["type"].as_str().unwrap() {
                "NodeCompleted" => *completed.entry(visit()).or_default() += 1,
                "NodeScheduled" => {
                    scheduled.insert(visit());
                }
                _ => {}
            }
        }
        assert!(completed.values().all(|&n| n == 1), "{id}: a visit completed twice: {completed:?}");
        assert_eq!(completed.keys().cloned().collect::<BTreeSet<_>>(), scheduled, "{id}");
        for (node, visit) in completed.keys() {
            if ["a", "b", "c", "d"].contains(&node.as_str()) {
                expected_keys.insert(format!("{id}/{node}/{visit}"));
            }
        }
    }

    // Every outbound call of the crashed run carried the key of its node
    // visit, and a repeated call carried the same key and the same body.
    let seen = server.seen.lock().unwrap();
    assert_eq!(seen.without_key, 0);
    let ids: BTreeSet<&str> = list.iter().map(|m| m["id"].as_str().unwrap()).collect();
    let crash_keys: HashMap<&String, &Vec<Value>> =
        seen.by_key.iter().filter(|(k, _)| ids.iter().any(|id| k.starts_with(id))).collect();
    let got: BTreeSet<String> = crash_keys.keys().map(|k| k.to_string()).collect();
    assert_eq!(got, expected_keys, "outbound calls used keys other than one per node visit");
    let repeated = crash_keys.values().filter(|b| b.len() > 1).count();
    for (k, bodies) in &crash_keys {
        assert!(bodies.windows(2).all(|w| w[0] == w[1]), "key {k} was sent with different bodies: {bodies:?}");
    }
    println!("{} node visits called out, {repeated} of them repeated after a kill", crash_keys.len());
}
