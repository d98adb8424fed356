//! `cargo bench --bench eval`: `jamjet eval run` over 1,000 rows with
//! `--concurrency 64` against the loopback model server, through the real
//! binary on a fresh sled data dir per run. Each row is a model call and an
//! eval node with a `contains` scorer and a rubric judge (a second model
//! call): 2,000 model calls per run. The target is ≤ 10 s per run.
//!
//! Under `CI=true` the dataset shrinks to 50 rows (CI only compiles
//! benches, but a run there stays short). Figures: README.md.

#[path = "../tests/support/model_server.rs"]
mod model_server;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use model_server::{ModelServer, Reply, Rule};

fn ci() -> bool {
    std::env::var_os("CI").is_some()
}

fn workflow(base: &str) -> String {
    format!(
        r#"
id: bench-eval
state_schema: {{ q: str, answer: str, verdict: dict }}
models:
  local: {{ provider: openai, model: bench-model, base_url: "{base}", price: {{ input_per_mtok: 1, output_per_mtok: 2 }} }}
nodes:
  ask: {{ type: model, model: local, prompt: "{{{{ state.q }}}}", output_key: answer, next: check }}
  check:
    type: eval
    target: answer
    scorers:
      - {{ type: contains, value: "{{{{ state.q }}}}" }}
      - {{ type: rubric, model: local, rubric: "Repeats the question.", min_score: 3 }}
    on_fail: continue
    output_key: verdict
"#
    )
}

/// One `jamjet eval run` on a fresh data dir; panics unless every row passed.
fn eval_run(dir: &Path, rows: usize) -> Duration {
    let data = tempfile::tempdir_in(dir).unwrap();
    let began = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_jamjet"))
        .env("JAMJET_LOG", "error")
        .arg("--data-dir")
        .arg(data.path())
        .args(["eval", "run"])
        .arg(dir.join("rows.jsonl"))
        .arg("--workflow")
        .arg(dir.join("wf.yaml"))
        .args(["--concurrency", "64", "--json", "--fail-under", "1"])
        .output()
        .expect("running jamjet");
    let elapsed = began.elapsed();
    assert!(out.status.success(), "eval run failed: {}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["summary"]["passed"].as_u64(), Some(rows as u64), "{}", report["summary"]);
    elapsed
}

fn bench(c: &mut Criterion) {
    let rows = if ci() { 50 } else { 1000 };
    let server = ModelServer::start_blocking();
    server.script(Rule::contains("RUBRIC:", Reply::text(r#"{"score": 4, "reasons": "it repeats the question"}"#)));
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("wf.yaml"), workflow(&server.openai_base())).unwrap();
    let dataset: String =
        (0..rows).map(|i| format!("{{\"id\": {i}, \"input\": {{\"q\": \"question {i}\"}}}}\n")).collect();
    std::fs::write(dir.path().join("rows.jsonl"), dataset).unwrap();

    let mut group = c.benchmark_group("eval_run");
    group.sampling_mode(SamplingMode::Flat).sample_size(10).warm_up_time(Duration::from_millis(100));
    group.measurement_time(Duration::from_secs(if ci() { 1 } else { 20 }));
    group.throughput(Throughput::Elements(rows as u64));
    group.bench_function(format!("{rows}_rows_concurrency_64"), |b| {
        b.iter_custom(|iters| (0..iters).map(|_| eval_run(dir.path(), rows)).sum())
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
