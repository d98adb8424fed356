//! `cargo bench --bench mcp`: what the runtime adds to an MCP tool call.
//!
//! Against the example server (`examples/mcp_server.rs`, built here in the
//! bench profile) over stdio, the `add` tool:
//! - `raw_rmcp`: an rmcp client of our own calling it directly (the floor);
//! - `pool_call`: the same call through `McpPool::call` (lookup, tool
//!   check, `_meta` key, result to JSON);
//! - `tool_node_memory`: a one-node `type: tool` workflow, start to end,
//!   on the in-memory journal;
//! - `tool_node_sled`: the same, durable, on sled (one disk sync for the
//!   node's start and one for its completion and the execution's end).
//!
//! Under `CI=true` the sample counts shrink. Figures: README.md.

#[path = "../tests/support/mcp.rs"]
mod mcp_support;

use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use jamjet::mcp::McpPool;
use jamjet::{Runtime, Workflow, compile_str};
use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use rmcp::transport::TokioChildProcess;
use serde_json::json;
use tokio::runtime::Runtime as Tokio;

fn ci() -> bool {
    std::env::var_os("CI").is_some()
}

fn workflow() -> Workflow {
    let bin = serde_json::to_string(&mcp_support::example_server().display().to_string()).unwrap();
    let src = format!(
        "id: bench\nstate_schema: {{ total: any }}\nmcp:\n  servers:\n    ex: {{ command: {bin} }}\nnodes:\n  add: {{ type: tool, server: ex, tool: add, arguments: {{ a: 1, b: 2 }}, output_key: total }}\n"
    );
    compile_str(&src, "bench.yaml").unwrap_or_else(|d| panic!("{d}"))
}

fn mcp(c: &mut Criterion) {
    let rt = Tokio::new().unwrap();
    let wf = workflow();
    let samples = if ci() { 10 } else { 50 };
    let mut g = c.benchmark_group("mcp");
    g.sample_size(samples);
    g.measurement_time(Duration::from_secs(if ci() { 2 } else { 5 }));

    let args = json!({"a": 1, "b": 2}).as_object().unwrap().clone();
    let raw = rt.block_on(async {
        let cmd = tokio::process::Command::new(mcp_support::example_server());
        let (child, _) = TokioChildProcess::builder(cmd).stderr(std::process::Stdio::null()).spawn().unwrap();
        ().serve(child).await.unwrap()
    });
    g.bench_function("raw_rmcp", |b| {
        b.to_async(&rt).iter(|| async {
            raw.call_tool(CallToolRequestParams::new("add").with_arguments(args.clone())).await.unwrap()
        })
    });

    let pool = McpPool::default();
    let timeout = Duration::from_secs(10);
    rt.block_on(pool.tools(&wf, "ex")).unwrap();
    g.bench_function("pool_call", |b| {
        b.to_async(&rt)
            .iter(|| async { pool.call(&wf, "ex", "add", json!({"a": 1, "b": 2}), "k", timeout).await.unwrap() })
    });

    let memory = rt.block_on(Runtime::builder().in_memory().open()).unwrap();
    g.bench_function("tool_node_memory", |b| {
        b.to_async(&rt).iter(|| async { memory.run(&wf, json!({})).await.unwrap() })
    });

    let dir = tempfile::tempdir().unwrap();
    let sled = rt.block_on(Runtime::builder().data_dir(dir.path()).open()).unwrap();
    g.bench_function("tool_node_sled", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let sled = sled.clone();
            let wf = wf.clone();
            async move {
                let began = Instant::now();
                for _ in 0..iters {
                    sled.run(&wf, json!({})).await.unwrap();
                }
                began.elapsed()
            }
        })
    });
    g.finish();
    rt.block_on(async {
        memory.shutdown().await;
        sled.shutdown().await;
        pool.shutdown().await;
        let _ = raw.cancel().await;
    });
}

criterion_group!(benches, mcp);
criterion_main!(benches);
