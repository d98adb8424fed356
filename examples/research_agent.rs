//! `cargo run --example research_agent`
//!
//! The research-writer workflow written in Rust with the typed builder
//! (`jamjet::typed`), as a host that embeds the runtime writes it: the
//! state is a Rust type (its schema derived with `schemars`), the
//! researcher is a react agent whose `search_notes` tool is a Rust
//! function of typed arguments, and each step is a closure that runs an
//! agent with `ctx.agent(..)`; every model and tool call is journaled as
//! it completes, so a crashed or retried step reads them back.
//!
//! It runs offline on the embedded sled store in `./.jamjet` (or
//! `$JAMJET_DATA_DIR`): it starts a scripted OpenAI-compatible model
//! server on a loopback port (shared with `research_writer`, in
//! `examples/common`) and points the `fast` model at it. It prints the
//! article, each call the agents made, and the execution id; then try
//! `cargo run -- inspect <exec-id> -v`. Against a real model, give
//! `Model::new("openai", ..)` your `base_url` and `api_key_env`.

mod common;

use anyhow::Context;
use jamjet::Runtime;
use jamjet::journal::Event;
use jamjet::typed::{Agent, Model, StepCtx, Strategy, Tool, Workflow};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

/// The workflow's state: each step takes it and returns the next one.
#[derive(Debug, Default, Serialize, Deserialize, JsonSchema)]
struct ResearchState {
    topic: String,
    research: Option<String>,
    article: Option<String>,
}

/// Search the researcher's notes.
#[derive(Deserialize, JsonSchema)]
struct SearchArgs {
    /// What to look for.
    query: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt().with_env_filter("warn").init();
    let base_url = common::model_server().await?;

    let search = Tool::new("search_notes", |args: SearchArgs| async move {
        Ok::<_, String>(common::notes(&args.query.to_lowercase()))
    });
    let researcher = Agent::new("researcher")
        .model("fast")
        .instructions("You are a researcher. Find accurate information on the given topic with your tools.")
        .tool(search)
        .strategy(Strategy::React)
        .max_iterations(5)
        .max_cost_usd(0.50);
    let writer = Agent::new("writer")
        .model("fast")
        .instructions("You are a writer. Write a short, clear article from the research you are given.")
        .strategy(Strategy::Critic)
        .field("min_score", json!(4))
        .max_iterations(3);

    let wf = Workflow::builder("research-agent")
        .version("0.1.0")
        .state::<ResearchState>()
        .model("fast", Model::new("openai", "gpt-4o-mini").base_url(&base_url))
        .agent(researcher)
        .agent(writer)
        .budget(None, Some(40_000))
        .step("research", |s: ResearchState, ctx: StepCtx| async move {
            let r = ctx.agent("researcher").run(format!("Research: {}", s.topic)).await?;
            Ok(ResearchState { research: Some(r.output), ..s })
        })
        .step("write", |s: ResearchState, ctx: StepCtx| async move {
            let research = s.research.as_deref().unwrap_or_default();
            let message = format!("Write an article about {} from this research:\n{research}", s.topic);
            let article = ctx.agent("writer").run(message).await?;
            Ok(ResearchState { article: Some(article.output), ..s })
        })
        .build()?;

    let data_dir = std::env::var("JAMJET_DATA_DIR").unwrap_or_else(|_| ".jamjet".into());
    // The runtime learns the steps and the Rust tool before it opens, so
    // executions of this workflow left running by a crash resume.
    let rt = Runtime::builder().data_dir(&data_dir).workflow(&wf).open().await.context("opening the runtime")?;

    let start = ResearchState { topic: "durable execution".into(), ..Default::default() };
    let result = rt.run_typed(&wf, start).await?;
    println!("execution {} completed in {} steps", result.execution_id, result.steps_executed);
    let article = result.state.article.as_deref().unwrap_or("-");
    println!("article:\n  {}", article.replace('\n', "\n  "));
    println!("calls:");
    for record in rt.events(result.execution_id)? {
        if let Event::Call { node, call, .. } = record.event {
            println!("  {node:<8} call {:<2} {:<8} {}", call.n, call.kind, call.name);
        }
    }
    println!("usage: {} tokens in, {} out", result.usage.input_tokens, result.usage.output_tokens);
    println!("then: cargo run -- inspect {} -v", result.execution_id);
    rt.shutdown().await;
    Ok(())
}
