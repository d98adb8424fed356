//! `cargo bench --bench model`: what the runtime adds to a model call.
//!
//! Against the loopback model server (tests/support/model_server.rs, an
//! OpenAI-compatible `echo` reply), three figures per call:
//!
//! - `model_call/reqwest_direct`: a bare reqwest POST of a chat completion,
//!   its JSON reply parsed: the floor;
//! - `model_call/runtime_sled`: a one-node `type: model` workflow run end to
//!   end on the sled journal, durable (start, node started, completion with
//!   its exchange and usage), through the same server; the number of disk
//!   syncs per execution is printed beside it;
//! - `model_call/sled_sync_alone`: one append of one event to a sled
//!   journal, awaited until durable: one group-commit sync.
//!
//! The runtime's overhead per call is `runtime_sled - reqwest_direct -
//! syncs × sled_sync_alone`. Under `CI=true` the sample sizes shrink.
//! Figures and the machine they came from: README.md.

#[path = "support/journal_writer.rs"]
mod journal_writer;
#[path = "../tests/support/model_server.rs"]
mod model_server;

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use jamjet::journal::SledJournal;
use jamjet::{Runtime, compile_str};
use journal_writer::Writer;
use model_server::ModelServer;
use serde_json::{Value, json};

fn ci() -> bool {
    std::env::var_os("CI").is_some()
}

fn model_call(c: &mut Criterion) {
    let tokio = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let server = tokio.block_on(ModelServer::start());
    let dir = tempfile::tempdir().unwrap();
    let mut g = c.benchmark_group("model_call");
    g.sample_size(if ci() { 10 } else { 100 });
    if ci() {
        g.measurement_time(Duration::from_secs(1)).warm_up_time(Duration::from_millis(200));
    }

    let http = reqwest::Client::new();
    let url = format!("{}/chat/completions", server.openai_base());
    let body = json!({"model": "bench", "messages": [{"role": "user", "content": "Q: hello"}]}).to_string();
    g.bench_function("reqwest_direct", |b| {
        b.to_async(&tokio).iter(|| async {
            let resp = http
                .post(&url)
                .header("content-type", "application/json")
                .header("Idempotency-Key", "bench/direct/1")
                .body(body.clone())
                .send()
                .await
                .unwrap();
            let v: Value = serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap();
            assert_eq!(v["choices"][0]["message"]["content"], "echo: Q: hello");
        })
    });

    let wf = compile_str(
        &format!(
            "id: one-call\nstate_schema: {{ q: str, a: str }}\nmodels:\n  local: {{ provider: openai, model: bench, \
             base_url: \"{}\" }}\nnodes:\n  ask: {{ type: model, model: local, prompt: \"Q: {{{{ state.q }}}}\", \
             output_key: a }}\n",
            server.openai_base()
        ),
        "bench.yaml",
    )
    .unwrap();
    let rt = tokio.block_on(Runtime::builder().data_dir(dir.path().join("rt")).open()).unwrap();
    let before = (rt.journal_stats(), server.requests().len());
    g.bench_function("runtime_sled", |b| {
        b.to_async(&tokio).iter(|| async {
            let out = rt.run(&wf, json!({"q": "hello"})).await.unwrap();
            assert_eq!(out.state["a"], "echo: Q: hello");
        })
    });
    let runs = (server.requests().len() - before.1).max(1);
    let syncs = rt.journal_stats().syncs - before.0.syncs;
    eprintln!(
        "runtime_sled: {syncs} syncs for {runs} executions = {:.2} syncs per model call",
        syncs as f64 / runs as f64
    );
    tokio.block_on(rt.shutdown());

    let journal = SledJournal::open(&dir.path().join("sync")).unwrap();
    let writer = tokio::sync::Mutex::new(Writer::new(0));
    g.bench_function("sled_sync_alone", |b| {
        b.to_async(&tokio).iter(|| async { writer.lock().await.append(&journal).await })
    });
    g.finish();
}

criterion_group!(benches, model_call);
criterion_main!(benches);
