//! `cargo bench --bench core`: the core paths of the durable runtime.
//!
//! - compile a YAML workflow;
//! - apply a 10-node history in the pure state machine;
//! - journal appends on sled, awaited until durable: one alone (one sync
//!   each), and 64 at once from 64 executions (group commit: appends per
//!   sync printed beside it); the same on PostgreSQL when one answers at
//!   `JAMJET_BENCH_PG` (default `postgres://postgres@127.0.0.1:5432/test`;
//!   a commit counts as a sync);
//! - a 10-node workflow of `set` nodes, one execution, on the in-memory
//!   journal (per-node overhead: throughput is reported per node);
//! - the same on sled, one execution alone, with journal syncs per node
//!   and a raw `fsync` and `fdatasync` of the same disk measured beside it
//!   (a durable `function` step alone against one `fdatasync`);
//! - 1,000 concurrent executions × 10 nodes on sled (node completions/s);
//! - rehydrating N non-terminal executions after a restart, until all have
//!   finished;
//! - a parallel node of 1,000 `set` branches (child executions), joined, on sled;
//! - 5,000 executions parked (hibernated) on a wait, all signalled: time
//!   until every one has completed. (`jamjet bench parked` does this at
//!   100,000, with resident memory and timer lateness.)
//!
//! Under `CI=true` the sizes shrink (CI only compiles benches, but a run
//! there stays short). Figures and the machine they came from: README.md.
//!
//! The bench allocates with mimalloc, as the `jamjet` binary does, so it
//! measures the runtime as it ships (docs/performance.md has both
//! allocators side by side).

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

#[path = "support/journal_writer.rs"]
mod journal_writer;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use jamjet::actors::machine::{ExecutionState, apply};
use jamjet::journal::{Journal, PgJournal, SledJournal};
use jamjet::nodes::{FunctionCall, FunctionError};
use jamjet::{Runtime, Workflow, compile_str};
use journal_writer::{Writer, syncs_between};
use serde_json::{Value, json};
use tokio::runtime::Runtime as Tokio;

/// Warnings (a slow journal round, say) go to stderr; `JAMJET_LOG` filters.
fn logs() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let filter = tracing_subscriber::EnvFilter::try_from_env("JAMJET_LOG").unwrap_or_else(|_| "warn".into());
        let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
    });
}

fn ci() -> bool {
    std::env::var_os("CI").is_some()
}

/// A chain of `n` set nodes, each incrementing a counter. `set` is pure:
/// the chain runs inside the execution's steps, its events batched.
fn set_chain(n: usize) -> Workflow {
    chain(n, "type: set\n    values: { i: \"{{ state.i + 1 }}\" }")
}

/// A chain of `n` function nodes (each its own NodeActor and its own
/// durable step), calling [`step`].
fn fn_chain(n: usize) -> Workflow {
    chain(n, "type: function\n    function: step")
}

fn chain(n: usize, body: &str) -> Workflow {
    let mut yaml = String::from("id: chain\nstate_schema: { i: int }\nnodes:\n");
    for k in 0..n {
        yaml.push_str(&format!("  s{k}:\n    {body}\n"));
        if k + 1 < n {
            yaml.push_str(&format!("    next: s{}\n", k + 1));
        }
    }
    compile_str(&yaml, "chain.yaml").expect("the chain compiles")
}

async fn step(call: FunctionCall) -> Result<Value, FunctionError> {
    Ok(json!({ "i": call.input["i"].as_i64().unwrap_or(0) + 1 }))
}

fn tokio() -> Tokio {
    logs();
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

fn compile(c: &mut Criterion) {
    let src = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/triage.yaml")).unwrap();
    c.bench_function("compile/triage_yaml", |b| b.iter(|| compile_str(&src, "triage.yaml").unwrap()));
}

fn machine(c: &mut Criterion) {
    let wf = set_chain(10);
    let rt = tokio();
    let (history, id) = rt.block_on(async {
        let r = Runtime::builder().in_memory().open().await.unwrap();
        let out = r.run(&wf, json!({"i": 0})).await.unwrap();
        (r.events(out.id).unwrap(), out.id)
    });
    let mut g = c.benchmark_group("machine");
    g.throughput(Throughput::Elements(history.len() as u64));
    g.bench_function("apply_10_node_history", |b| {
        b.iter(|| {
            let mut st = ExecutionState::new(id);
            for r in &history {
                std::hint::black_box(apply(&wf, &mut st, r));
            }
            st
        })
    });
    g.finish();
}

/// Appends awaited until durable, alone and then 64 at once: on sled, and
/// on PostgreSQL when one answers at `JAMJET_BENCH_PG` (default: the
/// tests' server), in a schema of its own dropped at the end.
fn journal(c: &mut Criterion) {
    let rt = tokio();
    let dir = tempfile::tempdir().unwrap();
    let sled: Arc<dyn Journal> = Arc::new(SledJournal::open(dir.path()).unwrap());
    appends(c, &rt, "sled", sled);
    let url = std::env::var("JAMJET_BENCH_PG").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    match rt.block_on(pg_schema(&url)) {
        Ok(schema) => {
            let url = format!("{url}{}options=-c%20search_path%3D{schema}", if url.contains('?') { '&' } else { '?' });
            let pg: Arc<dyn Journal> = Arc::new(rt.block_on(PgJournal::open(&url)).unwrap());
            appends(c, &rt, "postgres", pg);
            if let Err(e) = rt.block_on(pg_sql(&url, &format!("DROP SCHEMA {schema} CASCADE"))) {
                eprintln!("could not drop the bench schema {schema}: {e}");
            }
        }
        Err(e) => eprintln!("journal/postgres_*: skipped, no PostgreSQL at {url} ({e})"),
    }
}

/// A fresh schema for the PostgreSQL journal bench.
async fn pg_schema(url: &str) -> Result<String, sqlx::Error> {
    let schema = format!("jj_bench_{:016x}", rand::random::<u64>());
    pg_sql(url, &format!("CREATE SCHEMA {schema}")).await?;
    Ok(schema)
}

async fn pg_sql(url: &str, sql: &str) -> Result<(), sqlx::Error> {
    use sqlx::{Connection, Executor};
    let mut conn = sqlx::PgConnection::connect(url).await?;
    conn.execute(sqlx::AssertSqlSafe(sql.to_string())).await?;
    conn.close().await
}

/// `{store}_append_alone` and `{store}_group_commit/64`.
fn appends(c: &mut Criterion, rt: &Tokio, store: &str, journal: Arc<dyn Journal>) {
    const WRITERS: u64 = 64;
    let mut g = c.benchmark_group("journal");
    g.sample_size(if ci() { 10 } else { 50 });
    let alone = Arc::new(tokio::sync::Mutex::new(Writer::new(0)));
    g.bench_function(format!("{store}_append_alone"), |b| {
        b.to_async(rt).iter(|| {
            let (w, j) = (alone.clone(), journal.clone());
            async move { w.lock().await.append(&*j).await }
        })
    });
    let writers: Vec<_> = (1..=WRITERS).map(|n| Arc::new(tokio::sync::Mutex::new(Writer::new(n)))).collect();
    let before = journal.stats();
    g.throughput(Throughput::Elements(WRITERS));
    g.bench_function(BenchmarkId::new(format!("{store}_group_commit"), WRITERS), |b| {
        b.to_async(rt).iter(|| {
            let tasks: Vec<_> = writers
                .iter()
                .map(|w| {
                    let (w, j) = (w.clone(), journal.clone());
                    tokio::spawn(async move { w.lock().await.append(&*j).await })
                })
                .collect();
            async move {
                for t in tasks {
                    t.await.unwrap();
                }
            }
        })
    });
    g.finish();
    let after = journal.stats();
    println!("journal {store}_group_commit: {}", syncs_between(before, after));
}

/// Run `iters` executions one after the other from a task on the runtime
/// (as an embedding host would), timing the whole sequence.
fn sequential(rt: &Tokio, r: &Runtime, wf: &Workflow, iters: u64) -> Duration {
    let (r, wf) = (r.clone(), wf.clone());
    rt.block_on(async move {
        tokio::spawn(async move {
            let began = Instant::now();
            for _ in 0..iters {
                r.run(&wf, json!({"i": 0})).await.unwrap();
            }
            began.elapsed()
        })
        .await
        .unwrap()
    })
}

fn node_step(c: &mut Criterion) {
    let rt = tokio();
    let mut g = c.benchmark_group("node_step");
    let dir = tempfile::tempdir().unwrap();
    let mem = rt.block_on(Runtime::builder().in_memory().function("step", step).open()).unwrap();
    let sled = rt.block_on(Runtime::builder().data_dir(dir.path()).function("step", step).open()).unwrap();
    // `fn1` beside `fn10`: what one more `function` step costs is the
    // difference over nine steps; what is left of `fn1` is the execution's
    // own (submit, its actor's start and exit, the end notice).
    for (kind, wf, nodes) in [("set10", set_chain(10), 10), ("fn1", fn_chain(1), 1), ("fn10", fn_chain(10), 10)] {
        g.throughput(Throughput::Elements(nodes));
        g.sample_size(100);
        g.bench_function(format!("{kind}_memory"), |b| b.iter_custom(|iters| sequential(&rt, &mem, &wf, iters)));
        let before = sled.journal_stats();
        let mut runs = 0u64;
        g.sample_size(20);
        g.bench_function(format!("{kind}_sled_alone"), |b| {
            b.iter_custom(|iters| {
                runs += iters;
                sequential(&rt, &sled, &wf, iters)
            })
        });
        let syncs = sled.journal_stats().syncs - before.syncs;
        println!(
            "{kind}_sled_alone: {syncs} syncs for {runs} executions x {nodes} nodes = {:.2} syncs per node",
            syncs as f64 / (runs * nodes) as f64
        );
    }
    g.finish();

    // A raw fsync of the same disk, for the ratio.
    let mut f = std::fs::File::create(dir.path().join("raw-fsync")).unwrap();
    let page = [7u8; 4096];
    c.bench_function("fsync/raw_4k_write", |b| {
        b.iter(|| {
            f.write_all(&page).unwrap();
            f.sync_all().unwrap();
        })
    });
    // And one `fdatasync` (what the journal's log does per round): the
    // target is `fn10_sled_alone` per node within 1.3x of this.
    let mut f = std::fs::File::create(dir.path().join("raw-fdatasync")).unwrap();
    c.bench_function("fsync/raw_4k_fdatasync", |b| {
        b.iter(|| {
            f.write_all(&page).unwrap();
            f.sync_data().unwrap();
        })
    });
}

fn concurrent(c: &mut Criterion) {
    let execs = if ci() { 100 } else { 1000 };
    let rt = tokio();
    let dir = tempfile::tempdir().unwrap();
    let sled = rt.block_on(Runtime::builder().data_dir(dir.path()).function("step", step).open()).unwrap();
    let mem = rt.block_on(Runtime::builder().in_memory().function("step", step).open()).unwrap();
    let mut g = c.benchmark_group("concurrent");
    g.sample_size(10);
    g.throughput(Throughput::Elements(execs as u64 * 10));
    for (store, r, kind, wf) in [
        ("sled", &sled, "set10", set_chain(10)),
        ("sled", &sled, "fn10", fn_chain(10)),
        ("memory", &mem, "fn10", fn_chain(10)),
    ] {
        let wf = Arc::new(wf);
        let before = r.journal_stats();
        g.bench_function(BenchmarkId::new(format!("{store}_{kind}"), execs), |b| {
            b.to_async(&rt).iter_custom(|iters| {
                let (r, wf) = (r.clone(), wf.clone());
                async move {
                    let began = Instant::now();
                    for _ in 0..iters {
                        let tasks: Vec<_> = (0..execs)
                            .map(|_| {
                                let (r, wf) = (r.clone(), wf.clone());
                                tokio::spawn(async move { r.run(&wf, json!({"i": 0})).await.unwrap() })
                            })
                            .collect();
                        for t in tasks {
                            t.await.unwrap();
                        }
                    }
                    began.elapsed()
                }
            })
        });
        let after = r.journal_stats();
        println!("concurrent {store}_{kind}: {}", syncs_between(before, after));
    }
    g.finish();
}

/// Fill `dir` with `n` executions parked inside a function that never
/// returns, then drop the runtime (as a crash would leave them).
fn park(rt: &Tokio, dir: &Path, n: usize) {
    rt.block_on(async {
        let r = Runtime::builder()
            .data_dir(dir)
            .function("hold", |_c: FunctionCall| std::future::pending::<Result<Value, FunctionError>>())
            .open()
            .await
            .unwrap();
        let wf = compile_str(
            "id: parked\nstate_schema: { out: int }\nnodes:\n  hold: { type: function, function: hold, output_key: out }\n",
            "parked.yaml",
        )
        .unwrap();
        for chunk in 0..n.div_ceil(500) {
            let subs: Vec<_> = (0..500.min(n - chunk * 500))
                .map(|_| {
                    let (r, wf) = (r.clone(), wf.clone());
                    tokio::spawn(async move { r.submit(&wf, json!({})).await.unwrap() })
                })
                .collect();
            for s in subs {
                s.await.unwrap();
            }
        }
        r.shutdown().await;
    });
}

fn rehydrate(c: &mut Criterion) {
    let n = if ci() { 500 } else { 10_000 };
    let rt = tokio();
    let mut g = c.benchmark_group("rehydrate");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(20));
    g.throughput(Throughput::Elements(n as u64));
    // Criterion times open → every execution finished; beside it we note
    // open → every execution resumed (its interrupted node running again).
    let resumed_after = Arc::new(std::sync::Mutex::new(Vec::new()));
    g.bench_function(BenchmarkId::new("open_resume_until_all_finished", n), |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let dir = tempfile::tempdir().unwrap();
                park(&rt, dir.path(), n);
                let resumed_after = resumed_after.clone();
                total += rt.block_on(async move {
                    let began = Instant::now();
                    let calls = Arc::new(AtomicUsize::new(0));
                    let r = Runtime::builder()
                        .data_dir(dir.path())
                        .function("hold", move |c: FunctionCall| {
                            if calls.fetch_add(1, Ordering::SeqCst) + 1 == n {
                                resumed_after.lock().unwrap().push(began.elapsed());
                            }
                            async move { Ok(json!(c.attempt)) }
                        })
                        .open()
                        .await
                        .unwrap();
                    let ids: Vec<_> = r.list(None).unwrap().into_iter().map(|m| m.id).collect();
                    assert_eq!(ids.len(), n);
                    for id in ids {
                        r.wait(id).await.unwrap();
                    }
                    let took = began.elapsed();
                    r.shutdown().await;
                    took
                });
            }
            total
        })
    });
    g.finish();
    let mut resumed = resumed_after.lock().unwrap().clone();
    resumed.sort();
    if let Some(median) = resumed.get(resumed.len() / 2) {
        println!("rehydrate: {n} executions all resumed after {median:?} (median of {} runs)", resumed.len());
    }
}

/// A parallel node fanning out `n` branches of one `set` node each, joined
/// (issue 3's target: 1,000 branches joined in ≤ 300 ms on sled).
fn fan_out_workflow(n: usize) -> Workflow {
    let yaml = format!(
        "id: fan\nstate_schema: {{ items: list, out: list, v: int }}\nnodes:\n  fan:\n    type: parallel\n    for_each: \"{{{{ range({n}) | list }}}}\"\n    branches: [one]\n    join: done\n    output_key: out\n  one: {{ type: set, values: {{ v: \"{{{{ item }}}}\" }}, next: done }}\n  done: {{ type: end }}\n"
    );
    compile_str(&yaml, "fan.yaml").unwrap()
}

fn fan_out(c: &mut Criterion) {
    let n = if ci() { 100 } else { 1000 };
    let rt = tokio();
    let dir = tempfile::tempdir().unwrap();
    let sled = rt.block_on(Runtime::builder().data_dir(dir.path()).open()).unwrap();
    let wf = fan_out_workflow(n);
    let mut g = c.benchmark_group("fan_out");
    g.sample_size(10);
    g.throughput(Throughput::Elements(n as u64));
    g.bench_function(BenchmarkId::new("sled_set_branches_joined", n), |b| {
        b.to_async(&rt).iter(|| async {
            let out = sled.run(&wf, json!({})).await.unwrap();
            assert_eq!(out.state["out"].as_array().map(Vec::len), Some(n));
        })
    });
    g.finish();
}

/// Park `n` executions on a wait (hibernated), then signal them all; time
/// from the first signal until every one has completed.
fn signals(c: &mut Criterion) {
    let n = if ci() { 200 } else { 5000 };
    let rt = tokio();
    let dir = tempfile::tempdir().unwrap();
    let sled = rt.block_on(Runtime::builder().data_dir(dir.path()).open()).unwrap();
    let wf = compile_str(
        "id: w\nstate_schema: { n: int, p: any }\nnodes:\n  w: { type: wait, event: \"go:{{ state.n }}\", output_key: p }\n",
        "w.yaml",
    )
    .unwrap();
    let mut g = c.benchmark_group("signals");
    g.sample_size(10);
    g.throughput(Throughput::Elements(n as u64));
    g.bench_function(BenchmarkId::new("sled_resume_parked", n), |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let (sled, wf) = (sled.clone(), wf.clone());
            async move {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let mut ids = Vec::with_capacity(n);
                    for i in 0..n {
                        let id = sled.submit(&wf, json!({ "n": i })).await.unwrap();
                        ids.push(id);
                    }
                    for id in &ids {
                        sled.settle(*id).await.unwrap();
                    }
                    let began = Instant::now();
                    let tasks: Vec<_> = ids
                        .iter()
                        .enumerate()
                        .map(|(i, id)| {
                            let (sled, id) = (sled.clone(), *id);
                            tokio::spawn(async move {
                                let done = sled.wait(id);
                                sled.signal(id, &format!("go:{i}"), json!(i)).await.unwrap();
                                done.await.unwrap()
                            })
                        })
                        .collect();
                    for t in tasks {
                        t.await.unwrap();
                    }
                    total += began.elapsed();
                }
                total
            }
        })
    });
    g.finish();
}

criterion_group!(benches, compile, machine, journal, node_step, concurrent, rehydrate, fan_out, signals);
criterion_main!(benches);
