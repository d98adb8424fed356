//! What the research examples share (`research_writer`, `research_agent`):
//! a scripted OpenAI-compatible model server on a loopback port that plays
//! a researcher (search, then report), a writer and its critic, and the
//! notes the researcher's `search_notes` tool finds. Not an example itself.

use axum::{Json, Router, routing::post};
use serde_json::{Value, json};

/// Start the scripted model server on 127.0.0.1; its `base_url` (`http://127.0.0.1:PORT/v1`).
pub async fn model_server() -> anyhow::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base_url = format!("http://{}/v1", listener.local_addr()?);
    let app =
        Router::new().route("/v1/chat/completions", post(|Json(body): Json<Value>| async move { Json(reply(&body)) }));
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(base_url)
}

/// The researcher's notes: what `search_notes` finds.
pub fn notes(query: &str) -> String {
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
