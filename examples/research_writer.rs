//! `cargo run --example research_writer`
//!
//! Runs `examples/research_writer.yaml` (a react researcher and a critic
//! writer) end to end on the embedded sled store in `./.jamjet`, offline:
//! it starts a scripted OpenAI-compatible model server on a loopback port
//! and points the workflow's model at it, and registers the researcher's
//! `search_notes` tool as a host function. It prints the article, each
//! call the agents made, and the execution id; then try
//! `cargo run -- inspect <exec-id> -v`.

mod common;

use anyhow::Context;
use jamjet::journal::Event;
use jamjet::{Runtime, ir};
use serde_json::json;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt().with_env_filter("warn").init();
    let base_url = common::model_server().await?;

    let mut workflow =
        ir::compile_file("examples/research_writer.yaml".as_ref()).map_err(|d| anyhow::anyhow!("{d}"))?;
    // The scripted server stands in for the model the file names.
    for agent in workflow.agents.values_mut() {
        agent.config.base_url = base_url.clone();
    }
    let data_dir = std::env::var("JAMJET_DATA_DIR").unwrap_or_else(|_| ".jamjet".into());
    let rt = Runtime::builder()
        .data_dir(&data_dir)
        .function("search_notes", |call| async move {
            let query = call.input["query"].as_str().unwrap_or_default().to_lowercase();
            Ok(json!(common::notes(&query)))
        })
        .open()
        .await
        .context("opening the runtime")?;

    let outcome = rt.run(&workflow, json!({ "topic": "durable execution" })).await?;
    println!("execution {} {}", outcome.id, outcome.status);
    println!("article:\n  {}", outcome.state["article"].as_str().unwrap_or("-").replace('\n', "\n  "));
    println!("calls:");
    for record in rt.events(outcome.id)? {
        if let Event::Call { node, call, .. } = record.event {
            println!("  {node:<8} call {:<2} {:<8} {}", call.n, call.kind, call.name);
        }
    }
    println!("usage: {} tokens in, {} out", outcome.usage.input_tokens, outcome.usage.output_tokens);
    println!("then: cargo run -- inspect {} -v", outcome.id);
    rt.shutdown().await;
    Ok(())
}
