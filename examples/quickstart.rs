//! `cargo run --example quickstart`
//!
//! Runs `examples/triage.yaml` end to end on the embedded sled store in
//! `./.jamjet`: starts a small sentiment service on a loopback port (it
//! fails its first call, to show a journaled retry), submits two tickets,
//! and prints each final state and execution id. Then try
//! `cargo run -- inspect <exec-id> -v`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::Context;
use axum::{Json, Router, http::StatusCode, routing::post};
use jamjet::{Runtime, ir};
use serde_json::{Value, json};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt().with_env_filter("warn").init();

    // A loopback "sentiment model": counts words, fails its first request.
    let calls = Arc::new(AtomicUsize::new(0));
    let app = Router::new().route(
        "/sentiment",
        post(move |Json(body): Json<Value>| {
            let calls = calls.clone();
            async move {
                if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                    return Err((StatusCode::SERVICE_UNAVAILABLE, "warming up"));
                }
                let text = body["text"].as_str().unwrap_or_default().to_lowercase();
                let bad = ["broken", "angry", "refund", "worst"].iter().filter(|w| text.contains(*w)).count();
                Ok(Json(
                    json!({ "score": (1.0 - 0.4 * bad as f64).max(0.0), "words": text.split_whitespace().count() }),
                ))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base_url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });

    let workflow = ir::compile_file("examples/triage.yaml".as_ref()).map_err(|d| anyhow::anyhow!("{d}"))?;
    let data_dir = std::env::var("JAMJET_DATA_DIR").unwrap_or_else(|_| ".jamjet".into());
    let rt = Runtime::open(&data_dir).await.context("opening the runtime")?;

    for ticket in ["The app is broken and I want a refund, worst week ever", "Love the new release, thanks!"] {
        let outcome = rt.run(&workflow, json!({ "base_url": base_url, "ticket": ticket })).await?;
        println!("execution {} {}", outcome.id, outcome.status);
        println!("  priority: {}", outcome.state["priority"]);
        println!("  reply:    {}", outcome.state["reply"]);
    }
    println!();
    println!("journal in {data_dir}/: see a timeline with `cargo run -- inspect <exec-id> -v`");
    rt.shutdown().await;
    Ok(())
}
