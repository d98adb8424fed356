//! The Anthropic messages wire format: `POST {base_url}/v1/messages` with
//! `x-api-key` and `anthropic-version`; the system prompt is a top-level
//! field, `max_tokens` is required, and the reply's `content` is a list of
//! `text` and `tool_use` blocks with `usage.input_tokens/output_tokens`.

use serde_json::{Map, Value, json};

use super::{ChatRequest, Parsed, ToolCall};

/// The API version sent in `anthropic-version`.
pub(super) const VERSION: &str = "2023-06-01";
/// `max_tokens` when neither the node nor the model entry sets it.
const DEFAULT_MAX_TOKENS: u32 = 4096;

pub(super) fn url(base_url: &str) -> String {
    format!("{}/v1/messages", base_url.trim_end_matches('/'))
}

pub(super) fn body(model: &str, req: &ChatRequest) -> Value {
    let mut system: Vec<&str> = req.system.iter().map(String::as_str).collect();
    let mut messages = Vec::with_capacity(req.messages.len());
    for m in &req.messages {
        // Anthropic has no system role in `messages`: fold those into `system`.
        if m.role == "system" {
            system.push(&m.content);
        } else {
            messages.push(json!({"role": m.role, "content": m.content}));
        }
    }
    let mut body = Map::new();
    body.insert("model".into(), json!(model));
    body.insert("max_tokens".into(), json!(req.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS)));
    if !system.is_empty() {
        body.insert("system".into(), json!(system.join("\n\n")));
    }
    body.insert("messages".into(), Value::Array(messages));
    if let Some(t) = req.temperature {
        body.insert("temperature".into(), json!(t));
    }
    if !req.tools.is_empty() {
        let tools = req
            .tools
            .iter()
            .map(|t| json!({"name": t.name, "description": t.description, "input_schema": t.input_schema}))
            .collect();
        body.insert("tools".into(), Value::Array(tools));
    }
    Value::Object(body)
}

pub(super) fn parse(raw: &Value) -> Result<Parsed, String> {
    let blocks = raw["content"].as_array().ok_or_else(|| "the reply has no `content` list".to_string())?;
    let mut text = String::new();
    let mut tool_calls = Vec::new();
    for block in blocks {
        match block["type"].as_str() {
            Some("text") => text.push_str(block["text"].as_str().unwrap_or_default()),
            Some("tool_use") => {
                let name = block["name"].as_str().ok_or("a tool_use block has no name")?;
                let id = block["id"].as_str().unwrap_or_default().to_string();
                let arguments = if block["input"].is_null() { json!({}) } else { block["input"].clone() };
                tool_calls.push(ToolCall { id, name: name.to_string(), arguments });
            }
            _ => {}
        }
    }
    let input_tokens = raw.pointer("/usage/input_tokens").and_then(Value::as_u64).unwrap_or(0);
    let output_tokens = raw.pointer("/usage/output_tokens").and_then(Value::as_u64).unwrap_or(0);
    Ok(Parsed { text, tool_calls, input_tokens, output_tokens })
}

/// Append the assistant's tool_use turn and a user turn of tool_result blocks.
pub(super) fn push_tool_round(body: &mut Value, raw: &Value, results: &[(ToolCall, String)]) {
    let Some(messages) = body["messages"].as_array_mut() else { return };
    messages.push(json!({"role": "assistant", "content": raw["content"]}));
    let blocks: Vec<Value> = results
        .iter()
        .map(|(call, result)| json!({"type": "tool_result", "tool_use_id": call.id, "content": result}))
        .collect();
    messages.push(json!({"role": "user", "content": blocks}));
}
