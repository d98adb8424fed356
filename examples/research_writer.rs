//! `cargo run --example research_writer`
//!
//! Runs `examples/research_writer.yaml` (a react researcher and a critic
//! writer) end to end on the embedded sled store in `./.jamjet`, offline:
//! it starts a scripted OpenAI-compatible model server on a loopback port
//! and points the workflow's model at it, and registers the researcher's
//! `search_notes` tool as a host function. It prints the article, each
//! call the agents made, and the execution id; then try
//! `cargo run -- inspect <exec-id> -v`.

use anyhow::Context;
use axum::{Json, Router, routing::post};
use jamjet::journal::Event;
use jamjet::{Runtime, ir};
use serde_json::{Value, json};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt().with_env_filter("warn").init();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base_url = format!("http://{}/v1", listener.local_addr()?);
    let app =
        Router::new().route("/v1/chat/completions", post(|Json(body): Json<Value>| async move { Json(reply(&body)) }));
    tokio::spawn(async move { axum::serve(listener, app).await });

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
            Ok(json!(notes(&query)))
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

/// The researcher's notes: what `search_notes` finds.
fn notes(query: &str) -> String {
    if query.contains("durable") {
        "Durable execution journals each step of a program as it completes, so after a crash it resumes from \
         the last completed step. Sources: Temporal docs; Restate docs."
            .into()
    } else {
        "No notes found.".into()
    }
}

/// The scripted model: it plays the researcher (search, then report), the
/// writer (a draft without sources, then one with them) and the critic.
fn reply(body: &Value) -> Value {
    let messages = body["messages"].as_array().cloned().unwrap_or_default();
    let system = messages.first().and_then(|m| m["content"].as_str()).unwrap_or_default();
    let last = messages.last().cloned().unwrap_or(Value::Null);
    let last_text = last["content"].as_str().unwrap_or_default();
    let text = |t: &str| json!({"role": "assistant", "content": t});
    let message = if system.contains("researcher") {
        if last["role"] == "tool" {
            text(&format!("Findings: {last_text}"))
        } else {
            let call = json!({"id": "call_1", "type": "function",
                              "function": {"name": "search_notes", "arguments": "{\"query\": \"durable execution\"}"}});
            json!({"role": "assistant", "content": null, "tool_calls": [call]})
        }
    } else if last_text.contains("Score the answer") {
        // The critique: does the answer (not the task quoting the research) cite sources?
        let answer = last_text.split("Answer:\n").nth(1).unwrap_or_default();
        if answer.contains("Sources:") {
            text(r#"{"score": 5, "reasons": []}"#)
        } else {
            text(r#"{"score": 3, "reasons": ["it does not cite its sources"]}"#)
        }
    } else if last_text.contains("A critic scored") {
        text(
            "Durable execution journals every step as it completes, so a crashed program resumes where it \
              stopped and never repeats a finished step.\n\nSources: Temporal docs; Restate docs.",
        )
    } else {
        text("Durable execution journals every step as it completes, so a crashed program resumes where it stopped.")
    };
    let words = |v: &Value| v.to_string().split_whitespace().count();
    json!({
        "id": "chatcmpl-example",
        "object": "chat.completion",
        "model": body["model"],
        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": words(&body["messages"]), "completion_tokens": words(&message)}
    })
}
