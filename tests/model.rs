//! `type: model` end to end: the loopback model server (both wire formats),
//! model nodes through the library on sled and through the `jamjet` binary,
//! usage and cost, error classes and retries, keys kept out of the journal,
//! and a `kill -9` during a model call.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::model_server::{ModelServer, Reply, Rule, Wire};

#[tokio::test]
async fn model_server_speaks_both_wires_and_follows_its_script() -> anyhow::Result<()> {
    let server = ModelServer::start().await;
    server.script(Rule::contains("limit", Reply::rate_limited("2")).times(1));
    server.script(Rule::contains("tools", Reply::tool_call("add", json!({"a": 1}))));
    let http = reqwest::Client::new();
    let openai = |body: Value| {
        http.post(format!("{}/chat/completions", server.openai_base()))
            .header("authorization", "Bearer k1")
            .header("idempotency-key", "e/n/1")
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
    };
    let reply: Value = openai(json!({"model": "gpt-x", "messages": [{"role": "user", "content": "hello there"}]}))
        .await?
        .bytes()
        .await
        .map(|b| serde_json::from_slice::<Value>(&b))??;
    assert_eq!(reply["choices"][0]["message"]["content"], "echo: hello there");
    assert_eq!(reply["usage"]["prompt_tokens"], 2);
    assert_eq!(reply["usage"]["completion_tokens"], 3);

    let limited = openai(json!({"model": "m", "messages": [{"role": "user", "content": "limit me"}]})).await?;
    assert_eq!(limited.status(), 429);
    assert_eq!(limited.headers()["retry-after"], "2");
    let again = openai(json!({"model": "m", "messages": [{"role": "user", "content": "limit me"}]})).await?;
    assert_eq!(again.status(), 200, "the rule applies once");

    let tools: Value = openai(json!({"model": "m", "messages": [{"role": "user", "content": "use tools"}]}))
        .await?
        .bytes()
        .await
        .map(|b| serde_json::from_slice::<Value>(&b))??;
    assert_eq!(tools["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(tools["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"], "{\"a\":1}");

    let anthropic = |body: Value, version: bool| {
        let mut r = http.post(format!("{}/v1/messages", server.anthropic_base())).header("x-api-key", "k2");
        if version {
            r = r.header("anthropic-version", "2023-06-01");
        }
        r.header("content-type", "application/json").body(body.to_string()).send()
    };
    let body = json!({"model": "claude-x", "max_tokens": 10, "system": "be brief",
                      "messages": [{"role": "user", "content": "hi"}]});
    let reply: Value = serde_json::from_slice(&anthropic(body.clone(), true).await?.bytes().await?)?;
    assert_eq!(reply["content"][0], json!({"type": "text", "text": "echo: hi"}));
    assert_eq!(reply["stop_reason"], "end_turn");
    assert_eq!(reply["usage"], json!({"input_tokens": 3, "output_tokens": 2}));
    assert_eq!(anthropic(body, false).await?.status(), 400, "anthropic-version is required");

    let seen = server.requests();
    assert_eq!(seen.len(), 6);
    assert_eq!(seen[0].wire, Wire::OpenAi);
    assert_eq!(seen[0].header("Authorization"), Some("Bearer k1"));
    assert_eq!(seen[0].idempotency_key(), Some("e/n/1"));
    assert_eq!(seen[4].header("x-api-key"), Some("k2"));
    assert!(server.wait_for_requests(6, Duration::from_millis(10)).await);
    Ok(())
}
