//! `jamjet bench`, the real binary: every built-in workload on sled and in
//! memory, a workflow file whose executions park on approvals and events
//! (answered by the harness), `--duration`, and `--server` against a real
//! `jamjet dev`. The figures themselves are not judged here (speed lives in
//! benchmarks); what is checked is that the counts add up: every execution
//! measured, every node counted, syncs only where there is a disk, and
//! that bad input and failing executions fail the run with a clear error.

mod support;

use std::process::Output;

use serde_json::Value;
use support::dev::DevServer;
use support::{GATHER, OutputBounded, REVIEW, jamjet, workflow_file};

fn bench(args: &[&str]) -> Output {
    jamjet().env_remove("JAMJET_SERVER").arg("bench").args(args).output_bounded()
}

fn bench_json(args: &[&str]) -> Value {
    let out = bench(args);
    assert!(
        out.status.success(),
        "jamjet bench {args:?} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("no JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

/// What every report must hold, whatever the workload.
fn sane(r: &Value, executions: u64) {
    assert_eq!(r["executions"], executions, "{r}");
    let l = &r["execution_latency"];
    assert_eq!(l["count"], executions, "{r}");
    let (p50, p99, max) = (l["p50_us"].as_u64().unwrap(), l["p99_us"].as_u64().unwrap(), l["max_us"].as_u64().unwrap());
    assert!(0 < p50 && p50 <= p99 && p99 <= max, "{l}");
    assert!(r["seconds"].as_f64().unwrap() > 0.0, "{r}");
    assert!(r["executions_per_second"].as_f64().unwrap() > 0.0, "{r}");
    assert!(r["cpu_seconds"].as_f64().unwrap() > 0.0, "{r}");
    assert!(r["peak_rss_bytes"].as_u64().unwrap() > 1 << 20, "{r}");
}

fn node_ids(r: &Value) -> Vec<&str> {
    r["nodes"].as_array().unwrap().iter().map(|n| n["node"].as_str().unwrap()).collect()
}

#[test]
fn every_builtin_workload_runs_and_its_counts_add_up() {
    // (workload, durable node completions per execution, node ids)
    let cases: [(&str, u64, &[&str]); 4] = [
        ("linear10", 10, &["s0", "s1", "s2", "s3", "s4", "s5", "s6", "s7", "s8", "s9"]),
        // 100 branch children of one node each, plus the parallel node and the end.
        ("fanout100", 102, &["done", "fan", "one"]),
        ("wait-signal", 2, &["park", "step"]),
        ("model-loopback", 1, &["ask"]),
    ];
    for (workload, nodes, ids) in cases {
        let r = bench_json(&["--workload", workload, "-n", "12", "-c", "4", "--warmup", "3", "--json"]);
        sane(&r, 12);
        assert_eq!(r["store"], "sled");
        assert_eq!(r["warmup_executions"], 3, "{workload}: {r}");
        assert_eq!(r["node_completions"], 12 * nodes, "{workload}: {r}");
        assert_eq!(r["node_latency"]["count"], 12 * nodes, "{workload}: every node of the window read: {r}");
        assert_eq!(node_ids(&r), ids, "{workload}");
        let syncs = r["journal_syncs"].as_u64().unwrap();
        assert!(syncs > 0 && syncs <= r["journal_appends"].as_u64().unwrap(), "{workload}: {r}");
    }
}

#[test]
fn sequential_on_sled_syncs_about_once_per_node_and_memory_never() {
    let sled = bench_json(&["-n", "20", "-c", "1", "--warmup", "2", "--json"]);
    sane(&sled, 20);
    assert_eq!(sled["workload"], "linear10", "the default workload");
    assert_eq!(sled["node_completions"], 200);
    // One sync for the start and one per node, each alone: 11 per execution.
    let per_node = sled["syncs_per_node"].as_f64().unwrap();
    assert!((1.0..=1.3).contains(&per_node), "{sled}");

    let mem = bench_json(&["--memory", "-n", "20", "-c", "1", "--warmup", "0", "--json"]);
    sane(&mem, 20);
    assert_eq!(mem["store"], "memory");
    assert_eq!(mem["warmup_executions"], 0);
    assert_eq!(mem["journal_syncs"], 0, "{mem}");
    assert_eq!(mem["node_completions"], 200);
}

#[test]
fn duration_runs_until_the_time_is_up_and_reports_what_finished() {
    let r = bench_json(&["--memory", "--duration", "300ms", "--warmup", "100ms", "-c", "2", "--json"]);
    let n = r["executions"].as_u64().unwrap();
    assert!(n >= 1, "{r}");
    sane(&r, n);
    assert_eq!(r["node_completions"], n * 10, "{r}");
    assert!(r["seconds"].as_f64().unwrap() >= 0.3, "{r}");
}

#[test]
fn a_workflow_file_parked_on_approvals_and_events_is_answered_by_the_harness() {
    let dir = tempfile::tempdir().unwrap();
    let review = workflow_file(dir.path(), "review.yaml", REVIEW);
    let r = bench_json(&[&review, "--input", r#"{"order_id": "A1"}"#, "-n", "6", "-c", "3", "--warmup", "0", "--json"]);
    sane(&r, 6);
    assert_eq!(r["workload"], review);
    assert_eq!(node_ids(&r), ["done", "review", "ship"]);
    // Branches that each park: the harness answers the children's waits.
    let gather = workflow_file(dir.path(), "gather.yaml", GATHER);
    let r = bench_json(&[&gather, "--payload", r#""yes""#, "-n", "4", "-c", "2", "--warmup", "0", "--json"]);
    sane(&r, 4);
    // The parallel node and the end, and each of the 3 branches' wait (a branch stops at the join).
    assert_eq!(r["node_completions"], 4 * (2 + 3), "{r}");
}

#[test]
fn bad_input_and_failing_executions_fail_the_run_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let broken = workflow_file(
        dir.path(),
        "broken.yaml",
        "id: broken\nnodes:\n  a: { type: set, values: { x: 1 }, next: nowhere }\n",
    );
    let out = bench(&[&broken, "-n", "1"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("broken.yaml:3:") && err.contains("nowhere"), "file:line:column and the node: {err}");

    let out = bench(&["--input", "{not json", "-n", "1"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--input is not JSON"));

    let missing = "id: missing\nstate_schema: {}\nnodes:\n  call: { type: function, function: no.such.function }\n";
    let missing = workflow_file(dir.path(), "missing.yaml", missing);
    let out = bench(&[&missing, "-n", "3", "--warmup", "0"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("execution exec_") && err.contains("failed"), "names the execution: {err}");
}

#[test]
fn against_a_server_the_counters_come_from_its_metrics() {
    let data = tempfile::tempdir().unwrap();
    let mut server = DevServer::start(data.path(), &[]);
    for (workload, nodes) in [("linear10", 10), ("wait-signal", 2)] {
        let r = bench_json(&[
            "--server",
            &server.url,
            "--workload",
            workload,
            "-n",
            "10",
            "-c",
            "3",
            "--warmup",
            "2",
            "--json",
        ]);
        sane(&r, 10);
        assert_eq!(r["store"], server.url.as_str());
        assert_eq!(r["node_completions"], 10 * nodes, "{workload}: {r}");
        assert_eq!(r["node_latency"]["count"], 10 * nodes, "{workload}: {r}");
        assert!(r["journal_syncs"].as_u64().unwrap() > 0, "{r}");
        assert!(r["journal_appends"].is_null(), "a server does not say: {r}");
    }
    // The branches' waits are not in the parent's stream: answered all the same.
    let dir = tempfile::tempdir().unwrap();
    let gather = workflow_file(dir.path(), "gather.yaml", GATHER);
    let r = bench_json(&["--server", &server.url, &gather, "-n", "3", "-c", "3", "--warmup", "0", "--json"]);
    sane(&r, 3);
    assert!(server.stop().success());
}
