//! `cargo bench --bench server`: what the server's `POST /executions`
//! handler costs in the runtime, without HTTP.
//!
//! - `Runtime::registered` (the lookup every submit by workflow id does);
//! - 64 concurrent tasks each submitting registered executions of a
//!   3-node workflow on sled (`registered` + `submit_keyed`, accepted once
//!   `ExecutionStarted` is durable): accepted executions/s. Each round
//!   then waits (untimed) until all of them completed, so rounds do not
//!   pile up.
//! - `Runtime::events_after` on a 40-record history, against reading it all.
//!
//! The whole HTTP figure (64 clients, HDR percentiles, completion and SSE
//! fan-out checks) is `jamjet bench http`; figures in README.md. Under
//! `CI=true` the sizes shrink.

use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use jamjet::{Runtime, compile_str};
use serde_json::json;
use tokio::runtime::Runtime as Tokio;

/// The workflow `jamjet bench http` loads the server with.
const WF: &str = include_str!("../src/cli/bench/load.yaml");

fn ci() -> bool {
    std::env::var_os("CI").is_some()
}

fn tokio() -> Tokio {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("a tokio runtime")
}

fn server_path(c: &mut Criterion) {
    let tokio = tokio();
    let dir = tempfile::tempdir().expect("a temp dir");
    let rt = tokio.block_on(async {
        let rt = Runtime::builder().data_dir(dir.path()).open().await.expect("the runtime opens");
        let wf = compile_str(WF, "bench-http.yaml").expect("the workflow compiles");
        rt.register(&wf, true).await.expect("registered");
        // A few other registrations, as a server would hold.
        for v in 0..20 {
            let other = compile_str(&WF.replace("version: \"1\"", &format!("version: \"0.{v}\"")), "o.yaml").unwrap();
            rt.register(&other, true).await.expect("registered");
        }
        rt
    });
    let mut g = c.benchmark_group("server");
    g.sample_size(10).measurement_time(Duration::from_secs(if ci() { 1 } else { 5 }));

    g.throughput(Throughput::Elements(1));
    g.bench_function("registered", |b| b.iter(|| rt.registered("bench-http", None).expect("registered")));

    let clients = 64;
    let per_client = if ci() { 4 } else { 40 };
    g.throughput(Throughput::Elements((clients * per_client) as u64));
    g.bench_function("submit_registered_64_clients_sled", |b| {
        b.iter_custom(|iters| {
            tokio.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let began = Instant::now();
                    let mut tasks = Vec::with_capacity(clients);
                    for c in 0..clients {
                        let rt = rt.clone();
                        tasks.push(tokio::spawn(async move {
                            let mut ids = Vec::with_capacity(per_client);
                            for n in 0..per_client {
                                let (_, wf) = rt.registered("bench-http", None).expect("registered");
                                let input = json!({ "n": c * per_client + n });
                                ids.push(rt.submit_keyed(&wf, input, None).await.expect("accepted"));
                            }
                            ids
                        }));
                    }
                    let mut ids = Vec::new();
                    for t in tasks {
                        ids.extend(t.await.expect("a client task"));
                    }
                    total += began.elapsed();
                    for id in ids {
                        rt.wait(id).await.expect("completed");
                    }
                }
                total
            })
        })
    });

    let (id, last) = tokio.block_on(async {
        let long = compile_str(
            &format!(
                "id: long\nstate_schema: {{ i: int }}\nnodes:\n{}",
                (0..12)
                    .map(|k| format!(
                        "  n{k}:\n    type: wait\n    duration_ms: 1\n{}",
                        if k < 11 { format!("    next: n{}\n", k + 1) } else { String::new() }
                    ))
                    .collect::<String>()
            ),
            "long.yaml",
        )
        .expect("compiles");
        let out = rt.run(&long, json!({})).await.expect("runs");
        let last = rt.events(out.id).expect("events").len() as u64;
        (out.id, last)
    });
    g.throughput(Throughput::Elements(1));
    g.bench_function("events_all", |b| b.iter(|| rt.events(id).expect("events")));
    g.bench_function("events_after_last_but_one", |b| b.iter(|| rt.events_after(id, last - 1).expect("events")));
    g.finish();
    tokio.block_on(rt.shutdown());
}

criterion_group!(benches, server_path);
criterion_main!(benches);
