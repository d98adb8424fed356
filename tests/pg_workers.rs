//! Many `jamjet worker` processes on one PostgreSQL store, for real.
//!
//! - Three workers carry 300 executions of a workflow with http nodes (to a
//!   loopback server that records every call by idempotency key), a fan-out,
//!   a wait for a signal (sent by the test as each execution reaches it) and
//!   a timer; one worker is `kill -9`ed mid-run, then another, and
//!   replacements start. Every execution completes; every node visit has
//!   exactly one `NodeCompleted`; final states equal an uninterrupted
//!   run's; a repeated outbound call carried the same key and body.
//! - Fencing: a worker stopped with SIGSTOP until its leases are taken
//!   over, then resumed with SIGCONT (its renewal held up on the store, so
//!   that its calls' results are appended before it learns it lost them),
//!   writes nothing more: its late appends are refused (its own log says
//!   so), and each node visit is still completed once.
//!
//! The executions are submitted by this test through the embedding API,
//! which hands them back (its leases end) when it shuts down: the workers
//! claim them from there.

mod support;

use std::time::{Duration, Instant};

use jamjet::journal::{Event, Status};
use serde_json::{Value, json};
use support::pg::PgSchema;
use support::workers::{
    WORKFLOW_FULL, all_complete, expected_full, kill9, once_each, open, signal, signal_when_waiting, submit, submit_of,
    worker,
};
use support::{Server, jamjet};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_workers_with_two_killed_lose_and_repeat_nothing() {
    let Some(schema) = PgSchema::fresh().await else { return };
    let url = schema.url();
    let server = Server::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let log = |k: usize| tmp.path().join(format!("worker-{k}.log"));
    let mut logs = Vec::new();
    let mut workers = Vec::new();
    for k in 0..3 {
        logs.push(log(k));
        workers.push(worker(&url, &log(k)));
    }
    const N: usize = 300;
    // A call, a fan-out of two, a wait for a signal, a timer and a call,
    // 300 ms each call: long enough to be killed in the middle of.
    let ids = submit_of(WORKFLOW_FULL, &url, &server.url, N, 300).await;
    let reader = open(&url).await;
    let signalling = tokio::spawn(signal_when_waiting(url.clone(), ids.clone(), Duration::from_secs(180)));

    // Kill one worker while it owns executions once a tenth have completed,
    // another at a third, starting a replacement after each.
    let began = Instant::now();
    let mut owned_at_kill = Vec::new();
    let done = "SELECT count(*)::text FROM executions WHERE status = 'completed'";
    for (round, share) in [(0usize, N / 10), (1, N / 3)] {
        while schema.text(done).await.parse::<usize>().unwrap() < share {
            assert!(began.elapsed() < Duration::from_secs(120), "stuck before kill {round}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // The first worker not killed yet (a replacement too) that holds executions
        // (between their timers, which they wait out handed back): mid-run for those.
        let (k, owned) = 'found: loop {
            for (k, w) in workers.iter().enumerate().skip(round) {
                let pid = w.id();
                let holds = format!(
                    "SELECT count(*)::text FROM leases l JOIN workers w ON w.id = l.worker WHERE w.pid = {pid}"
                );
                let owned: u64 = schema.text(&holds).await.parse().unwrap();
                if owned > 0 || began.elapsed() > Duration::from_secs(120) {
                    break 'found (k, owned);
                }
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        };
        // Keep the survivors in place: the victim goes to the end of the list.
        workers.swap(k, round);
        let (k, pid) = (round, workers[round].id());
        owned_at_kill.push(owned);
        let killed =
            reader.workers().unwrap().into_iter().find(|w| w.id.contains(&format!(":{pid}:"))).map(|w| (w.id, owned));
        kill9(&mut workers[k]);
        let at = Instant::now();
        logs.push(log(10 + k));
        workers.push(worker(&url, &log(10 + k)));
        // How long its executions stay without a process (a figure, not a check: the machine is shared).
        if let Some((id, owned)) = killed {
            // Those that need a process (one parked on its signal waits for it, held or not).
            let held = format!(
                "SELECT count(*)::text FROM leases l JOIN executions e ON e.id = l.execution \
                 WHERE l.worker = '{id}' AND e.status = 'running'"
            );
            println!("kill {round}: {id} owned {owned} executions");
            while schema.text(&held).await != "0" && at.elapsed() < Duration::from_secs(30) {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            println!(
                "kill {round}: its executions were all taken over {:?} after the kill (lease {})",
                at.elapsed(),
                support::workers::LEASE
            );
        }
    }
    all_complete(&reader, &ids, Duration::from_secs(180), &logs).await;
    assert_eq!(signalling.await.unwrap(), N, "every execution was signalled once");
    assert!(owned_at_kill.iter().all(|&n| n > 0), "a worker was killed holding nothing: {owned_at_kill:?}");

    for (job, id) in ids.iter().enumerate() {
        once_each(&reader, *id);
        let out = reader.wait(*id).await.unwrap();
        let want = expected_full(job);
        for key in ["a", "b", "c", "d"] {
            assert_eq!(out.state[key]["v"], want[key], "{id}: {key}");
        }
        assert_eq!((&out.state["go"], &out.state["total"]), (&want["go"], &want["total"]), "{id}");
        let signals =
            reader.events(*id).unwrap().iter().filter(|r| matches!(r.event, Event::SignalReceived { .. })).count();
        assert_eq!(signals, 1, "{id}: the signal journaled once");
    }

    // Every outbound call carried its node visit's key; a repeated one the same body.
    {
        let seen = server.seen.lock().unwrap();
        assert_eq!(seen.without_key, 0);
        assert_eq!(seen.by_key.len(), 4 * N, "one key per http node visit");
        let repeated = seen.by_key.values().filter(|b| b.len() > 1).count();
        for (k, bodies) in &seen.by_key {
            assert!(bodies.windows(2).all(|w| w[0] == w[1]), "key {k} was sent with different bodies: {bodies:?}");
        }
        println!("{N} executions on 3 workers, 2 killed: {repeated} calls repeated after a kill");
    }
    // The survivors drain on SIGTERM and exit cleanly.
    let live: Vec<&mut support::workers::Worker> =
        workers.iter_mut().filter_map(|w| w.try_wait().unwrap().is_none().then_some(w)).collect();
    assert_eq!(live.len(), 3, "three workers run at the end");
    for w in live {
        signal(w, "-TERM");
        let status = w.wait().unwrap();
        assert!(status.success(), "a worker exited {status} on SIGTERM");
    }
    reader.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_paused_past_its_lease_writes_nothing_after_it() {
    let Some(schema) = PgSchema::fresh().await else { return };
    let url = schema.url();
    let server = Server::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let (log_a, log_b) = (tmp.path().join("a.log"), tmp.path().join("b.log"));
    let mut a = worker(&url, &log_a);
    // Calls that take long enough for a SIGSTOP to land while they are in flight.
    const N: usize = 10;
    let ids = submit(&url, &server.url, N, 1500).await;
    let reader = open(&url).await;
    // Wait until worker A owns every one (this test's runtime handed them
    // back at its shutdown), and its first calls are out.
    let began = Instant::now();
    loop {
        let owns = reader.workers().unwrap().iter().find(|w| w.command == "worker").map_or(0, |w| w.owns);
        if owns == N as u64 {
            break;
        }
        assert!(began.elapsed() < Duration::from_secs(30), "worker A did not claim the executions (it owns {owns})");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    signal(&a, "-STOP");
    let mut b = worker(&url, &tmp.path().join("b.log"));
    all_complete(&reader, &ids, Duration::from_secs(60), std::slice::from_ref(&log_b)).await;
    // A wakes: its calls return, and what it tries to write is refused.
    // Its first renewal would tell it first that it lost its leases (and
    // then it writes nothing at all): this test holds A's row in the
    // workers table, so that renewal stalls on the store as a slow one
    // does, and the fence alone keeps A's late appends out.
    let mut hold = schema.connection().await;
    sqlx::Executor::execute(&mut hold, "BEGIN").await.unwrap();
    let held: Vec<i64> = sqlx::query_scalar("SELECT pid FROM workers WHERE pid = $1 FOR UPDATE")
        .bind(i64::from(a.id()))
        .fetch_all(&mut hold)
        .await
        .unwrap();
    assert_eq!(held.len(), 1, "worker A's row in the workers table");
    signal(&a, "-CONT");
    // Until it says so (bounded), not for a fixed time.
    let refusal = |l: &str| l.contains("is no longer this process's to write");
    let said_it = |what: &dyn Fn(&str) -> bool| std::fs::read_to_string(&log_a).unwrap().lines().any(what);
    let woke = Instant::now();
    while !said_it(&refusal) && woke.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Its renewal goes on (and finds nothing more to drop).
    sqlx::Executor::execute(&mut hold, "ROLLBACK").await.unwrap();
    signal(&a, "-TERM");
    let _ = a.wait();
    signal(&b, "-TERM");
    let _ = b.wait();
    let said = std::fs::read_to_string(&log_a).unwrap();
    println!("worker A after SIGCONT:\n{said}");
    let refused = said.lines().filter(|l| refusal(l)).count();
    assert!(refused > 0, "worker A's late appends were not refused (or it did not say so):\n{said}");
    for id in &ids {
        once_each(&reader, *id);
        assert_eq!(reader.status(*id).unwrap().status, Status::Completed);
    }
    reader.shutdown().await;
}

const GATE: &str = r#"
id: gate
version: 1.0.0
state_schema: { base: str, paid: dict, a: dict, b: dict }
nodes:
  a:
    type: http
    method: POST
    url: "{{ state.base }}/step/1"
    body: { v: 1, delay_ms: 20 }
    output_key: a
    next: gate
  gate:
    type: wait
    event: pay
    output_key: paid
    next: b
  b:
    type: http
    method: POST
    url: "{{ state.base }}/step/2"
    body: { v: "{{ state.a.v }}", delay_ms: 300 }
    output_key: b
"#;

/// A worker runs an execution until it parks; a signal sent through one
/// `jamjet dev` on the store carries it on there; a second `jamjet dev`
/// streams every event of it (what the worker appended before, what the
/// first server appended after), fed by the store's notices.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signal_through_one_server_and_the_stream_through_another_see_a_workers_execution() {
    use support::dev::{DevServer, read_sse};
    let Some(schema) = PgSchema::fresh().await else { return };
    let url = schema.url();
    let server = Server::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("worker.log");
    let mut w = worker(&url, &log);
    let wf = jamjet::ir::compile_str(GATE, "gate.yaml").unwrap();
    let rt = open(&url).await;
    let id = rt.submit(&wf, json!({ "base": server.url })).await.unwrap();
    rt.shutdown().await;
    let reader = open(&url).await;
    let began = Instant::now();
    while reader.status(id).unwrap().status != Status::Waiting {
        assert!(
            began.elapsed() < Duration::from_secs(30),
            "the worker did not park it:\n{}",
            std::fs::read_to_string(&log).unwrap()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (d1, d2) = (
        DevServer::start(&tmp.path().join("d1"), &["--store", &url]),
        DevServer::start(&tmp.path().join("d2"), &["--store", &url]),
    );
    let (api1, api2) = (d1.api(), d2.api());
    let res = api2.request(reqwest::Method::GET, &format!("/executions/{id}/events/stream")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let stream = tokio::spawn(read_sse(res, 100));
    let (s, b) =
        api1.post(&format!("/executions/{id}/signal"), &json!({ "key": "pay", "payload": { "amount": 5 } })).await;
    assert_eq!(s, 202, "{b}");
    let events = tokio::time::timeout(Duration::from_secs(30), stream).await.expect("the stream ends").unwrap();
    let end = events.last().unwrap();
    assert_eq!(end.event, "end", "{events:?}");
    assert_eq!(serde_json::from_str::<Value>(&end.data).unwrap(), json!({ "status": "completed" }));
    let (_, journal) = api2.get(&format!("/executions/{id}/events")).await;
    let all = journal["events"].as_array().unwrap();
    assert_eq!(events.len() - 1, all.len(), "one streamed event per record: {events:?}");
    assert!(events.iter().any(|e| e.event == "SignalReceived"), "{events:?}");
    // The server that carried it on claimed it: its /metrics say so.
    let metrics = api1.request(reqwest::Method::GET, "/metrics").send().await.unwrap().text().await.unwrap();
    let claimed = metrics
        .lines()
        .find_map(|l| l.strip_prefix("jamjet_lease_claimed_executions_total "))
        .and_then(|v| v.trim().parse::<u64>().ok());
    assert!(claimed.is_some_and(|n| n >= 1), "{metrics}");
    assert!(metrics.contains("jamjet_lease_owned_executions"), "{metrics}");
    let out = reader.wait(id).await.unwrap();
    assert_eq!(out.state["b"]["v"], json!(2 * (2 + 1) + 2), "{}", out.state);
    once_each(&reader, id);
    signal(&w, "-TERM");
    assert!(w.wait().unwrap().success());
    reader.shutdown().await;
}

/// Commands sent from another process to an execution a worker is
/// running (its http step is slow) go through the execution's inbox: the
/// worker refuses a decision it does not wait for, and journals a cancel;
/// the command answers as it would for its own execution.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_from_the_command_line_reaches_an_execution_a_worker_is_running() {
    let Some(schema) = PgSchema::fresh().await else { return };
    let url = schema.url();
    let server = Server::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("worker.log");
    let mut w = worker(&url, &log);
    // Every http step takes 4 s: the worker holds the execution meanwhile.
    let id = submit(&url, &server.url, 1, 4_000).await[0];
    let reader = open(&url).await;
    let began = Instant::now();
    let owner = loop {
        let owner = schema.text("SELECT coalesce((SELECT worker FROM leases WHERE worker IS NOT NULL), '')").await;
        if !owner.is_empty() {
            break owner;
        }
        assert!(
            began.elapsed() < Duration::from_secs(30),
            "no worker claimed it:\n{}",
            std::fs::read_to_string(&log).unwrap()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let shown = id.to_string();
    let (code, out, err) = on_store(&url, &["inspect", &shown]);
    assert_eq!(code, 0, "{err}");
    assert!(out.lines().any(|l| l.starts_with("process") && l.contains(&owner)), "names its owner: {out}");
    let (code, _, err) = on_store(&url, &["approve", &shown, "--decision", "approved"]);
    assert_ne!(code, 0, "it waits on no approval");
    assert!(err.contains("no approval") || err.contains("not wait"), "{err}");
    let (code, out, err) = on_store(&url, &["cancel", &shown, "--reason", "changed my mind"]);
    assert_eq!(code, 0, "{out}{err}");
    let status = reader.status(id).unwrap().status;
    assert_eq!(status, Status::Cancelled, "journaled before the command answered");
    let cancelled = reader
        .events(id)
        .unwrap()
        .into_iter()
        .filter(|r| matches!(&r.event, jamjet::journal::Event::ExecutionCancelled { reason } if reason == "changed my mind"))
        .count();
    assert_eq!(cancelled, 1);
    assert_eq!(schema.text("SELECT count(*)::text FROM inbox").await, "0", "both answers were read");
    let live = schema.text(&format!("SELECT count(*)::text FROM workers WHERE id = '{owner}'")).await;
    assert_eq!(live, "1", "the worker that ran it is still alive: it took both, nobody took it over");
    signal(&w, "-TERM");
    assert!(w.wait().unwrap().success());
    reader.shutdown().await;
}

/// `jamjet --store URL ARGS...`, bounded: (exit code, stdout, stderr).
fn on_store(url: &str, args: &[&str]) -> (i32, String, String) {
    let mut cmd = jamjet();
    cmd.args(["--store", url]).args(args);
    let done = support::run_bounded(cmd, Duration::from_secs(60), &format!("jamjet {}", args.join(" ")));
    let o = done.output;
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// `store check` and `store migrate`; a store a newer jamjet migrated, an
/// unreachable server, an unknown user and a URL that is not PostgreSQL's:
/// each a clear error naming what is wrong (never the password), and
/// nothing changed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_commands_and_bad_stores_say_what_is_wrong_and_change_nothing() {
    let Some(schema) = PgSchema::fresh().await else { return };
    let url = schema.url();
    let (code, out, _) = on_store(&url, &["store", "check", "--json"]);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!((code, v["version"].as_u64(), v["up_to_date"].as_bool()), (1, Some(0), Some(false)), "{out}");
    let known = v["known"].as_u64().unwrap();
    let (code, out, err) = on_store(&url, &["store", "migrate"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&format!("from version 0 to {known}")), "{out}");
    let (code, out, _) = on_store(&url, &["store", "check"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("up to date"), "{out}");

    // Migrated by a newer jamjet: refused by every command, the version kept.
    schema.execute("UPDATE jamjet_schema SET version = 99").await;
    for args in [&["executions"][..], &["worker"], &["store", "migrate"]] {
        let (code, _, err) = on_store(&url, args);
        assert_ne!(code, 0, "{args:?}");
        assert!(err.contains("version 99") && err.contains("upgrade jamjet"), "{args:?}: {err}");
    }
    let (code, out, _) = on_store(&url, &["store", "check"]);
    assert!(code == 1 && out.contains("newer than this jamjet"), "{out}");
    assert_eq!(schema.text("SELECT version::text FROM jamjet_schema").await, "99");

    // Nobody listening there, and a user the server does not know: named, the password never shown.
    let (code, _, err) = on_store("postgres://postgres:s3cret@127.0.0.1:1/test", &["executions"]);
    assert_ne!(code, 0);
    assert!(err.contains("127.0.0.1:1") && !err.contains("s3cret"), "{err}");
    let (code, _, err) = on_store(
        &format!("postgres://no_such_user:s3cret@{}", &support::pg::DEFAULT_URL["postgres://postgres@".len()..]),
        &["executions"],
    );
    assert_ne!(code, 0);
    assert!(err.contains("no_such_user") && !err.contains("s3cret"), "{err}");
    // Not a PostgreSQL URL: a usage error.
    let (code, _, err) = on_store("mysql://root:s3cret@127.0.0.1/test", &["executions"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("PostgreSQL URL") && !err.contains("s3cret"), "{err}");
}

/// An execution whose workflow calls a host function no `jamjet worker`
/// has stays unclaimed while workers run, and `executions --unclaimed`
/// says why; one any worker could run is named as waiting for a worker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn executions_nobody_can_run_are_listed_with_why() {
    use std::sync::Arc;
    let Some(schema) = PgSchema::fresh().await else { return };
    let url = schema.url();
    let host = jamjet::ir::compile_str(
        "id: hosted\nstate_schema: { out: any }\nnodes:\n  score: { type: function, function: py.score, output_key: out }\n",
        "hosted.yaml",
    )
    .unwrap();
    let plain = jamjet::ir::compile_str(
        "id: plain\nstate_schema: { n: int }\nnodes:\n  t: { type: wait, duration_ms: 600000 }\n",
        "plain.yaml",
    )
    .unwrap();
    let journal = jamjet::journal::PgJournal::open(&url).await.unwrap();
    // A host that registers py.score and never answers: its execution is running when it hands it back.
    let rt = jamjet::Runtime::builder()
        .journal(Arc::new(journal))
        .resume_on_open(false)
        .function("py.score", |_| std::future::pending())
        .open()
        .await
        .unwrap();
    let hosted = rt.submit(&host, json!({})).await.unwrap();
    rt.shutdown().await;
    // A running execution any worker could carry (its row says running: not yet started here).
    let reader = open(&url).await;
    let (code, out, err) = on_store(&url, &["executions", "--unclaimed", "--json"]);
    assert_eq!(code, 0, "{err}");
    let rows: Value = serde_json::from_str(&out).unwrap();
    let row =
        rows.as_array().unwrap().iter().find(|r| r["id"] == hosted.to_string()).unwrap_or_else(|| panic!("{out}"));
    assert_eq!(row["functions"], json!(["py.score"]), "{out}");
    assert!(row["reason"].as_str().unwrap().contains("py.score"), "{out}");
    // A worker runs: it leaves the hosted one alone.
    let tmp = tempfile::tempdir().unwrap();
    let mut w = worker(&url, &tmp.path().join("w.log"));
    let plain_id = reader.submit(&plain, json!({})).await.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(reader.status(hosted).unwrap().status, Status::Running);
    let (_, out, _) = on_store(&url, &["executions", "--unclaimed"]);
    assert!(out.contains(&hosted.to_string()) && out.contains("py.score"), "{out}");
    assert!(!out.contains(&plain_id.to_string()), "a timer wait of a live process is not unclaimed: {out}");
    // `--waiting` and `inspect` say so too.
    let (code, out, err) = on_store(&url, &["executions", "--waiting"]);
    assert_eq!(code, 0, "{err}");
    let (_, needs) = out.split_once("waiting for a process").unwrap_or_else(|| panic!("{out}"));
    assert!(needs.contains(&hosted.to_string()) && needs.contains("py.score"), "{out}");
    let (code, out, err) = on_store(&url, &["inspect", &hosted.to_string()]);
    assert_eq!(code, 0, "{err}");
    let line = out.lines().find(|l| l.starts_with("process")).unwrap_or_else(|| panic!("{out}"));
    assert!(line.contains("none") && line.contains("py.score"), "{out}");
    let (_, out, _) = on_store(&url, &["inspect", &hosted.to_string(), "--json"]);
    let x: Value = serde_json::from_str(&out).unwrap();
    assert!(x["process"]["needed"].as_str().is_some_and(|w| w.contains("py.score")), "{out}");
    // In a data dir the flag is refused with what to use instead.
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = jamjet();
    cmd.arg("--data-dir").arg(dir.path()).args(["executions", "--unclaimed"]);
    let done = support::run_bounded(cmd, Duration::from_secs(60), "executions --unclaimed on a data dir");
    assert_ne!(done.output.status.code(), Some(0));
    signal(&w, "-TERM");
    let _ = w.wait();
    reader.shutdown().await;
}

/// `sslmode=verify-full`: with the CA of the server's certificate and a
/// host the certificate names, the store opens over TLS; with a host it
/// does not name, a clear error about the certificate (not "is it running").
/// Uses the machine's own PostgreSQL certificate (Debian's snakeoil, for
/// `localhost`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_full_checks_the_servers_certificate() {
    let Some(schema) = PgSchema::fresh().await else { return };
    const CA: &str = "/etc/ssl/certs/ssl-cert-snakeoil.pem";
    let ssl_on = schema.text("SELECT current_setting('ssl')").await == "on";
    if !ssl_on || !std::path::Path::new(CA).exists() {
        let why = format!(
            "the server has ssl = {} and {CA} exists: {}",
            if ssl_on { "on" } else { "off" },
            std::path::Path::new(CA).exists()
        );
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("no TLS on the test PostgreSQL ({why})");
        }
        eprintln!(
            "SKIPPED: no TLS on the test PostgreSQL ({why}); turn it on with ssl = on in postgresql.conf (Debian's default, with its snakeoil certificate)"
        );
        return;
    }
    let url = schema.url();
    let tls = |host: &str| format!("{}&sslmode=verify-full&sslrootcert={CA}", url.replacen("127.0.0.1", host, 1));
    let (code, out, err) = on_store(&tls("localhost"), &["store", "migrate"]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, _, err) = on_store(&tls("localhost"), &["executions", "--unclaimed", "--json"]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = on_store(&tls("127.0.0.1"), &["executions"]);
    assert_ne!(code, 0);
    assert!(
        err.contains("TLS handshake failed") && err.contains("127.0.0.1") && !err.contains("Is it running"),
        "{err}"
    );
}
