//! The OpenAI-compatible chat completions wire format (OpenAI, Ollama,
//! vLLM, llama.cpp): `POST {base_url}/chat/completions` with
//! `Authorization: Bearer <key>`; the reply's `choices[0].message` holds
//! the text (`content`) or `tool_calls`, `usage` the token counts.

use serde_json::{Map, Value, json};

use super::{ChatRequest, Parsed, ToolCall};

pub(super) fn url(base_url: &str) -> String {
    format!("{}/chat/completions", base_url.trim_end_matches('/'))
}

pub(super) fn body(model: &str, req: &ChatRequest) -> Value {
    let mut messages = Vec::with_capacity(req.messages.len() + 1);
    if let Some(system) = &req.system {
        messages.push(json!({"role": "system", "content": system}));
    }
    messages.extend(req.messages.iter().map(|m| json!({"role": m.role, "content": m.content})));
    let mut body = Map::new();
    body.insert("model".into(), json!(model));
    body.insert("messages".into(), Value::Array(messages));
    if let Some(t) = req.temperature {
        body.insert("temperature".into(), json!(t));
    }
    if let Some(n) = req.max_tokens {
        body.insert("max_tokens".into(), json!(n));
    }
    if !req.tools.is_empty() {
        let tools = req
            .tools
            .iter()
            .map(|t| {
                json!({"type": "function",
                       "function": {"name": t.name, "description": t.description, "parameters": t.input_schema}})
            })
            .collect();
        body.insert("tools".into(), Value::Array(tools));
    }
    Value::Object(body)
}

pub(super) fn parse(raw: &Value) -> Result<Parsed, String> {
    let message =
        raw.pointer("/choices/0/message").ok_or_else(|| "the reply has no `choices[0].message`".to_string())?;
    let text = match &message["content"] {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        // Some servers send a list of parts.
        Value::Array(parts) => parts.iter().filter_map(|p| p["text"].as_str()).collect::<Vec<_>>().join(""),
        other => return Err(format!("`choices[0].message.content` is {other}, not text")),
    };
    let mut tool_calls = Vec::new();
    for call in message["tool_calls"].as_array().into_iter().flatten() {
        let name = call.pointer("/function/name").and_then(Value::as_str).ok_or("a tool call has no function name")?;
        let arguments = match call.pointer("/function/arguments") {
            Some(Value::String(s)) if s.trim().is_empty() => json!({}),
            Some(Value::String(s)) => serde_json::from_str(s)
                .map_err(|e| format!("the arguments of tool call `{name}` are not JSON ({e}): {s:?}"))?,
            Some(v @ Value::Object(_)) => v.clone(),
            _ => json!({}),
        };
        let id = call["id"].as_str().unwrap_or_default().to_string();
        tool_calls.push(ToolCall { id, name: name.to_string(), arguments });
    }
    let input_tokens = raw.pointer("/usage/prompt_tokens").and_then(Value::as_u64).unwrap_or(0);
    let output_tokens = raw.pointer("/usage/completion_tokens").and_then(Value::as_u64).unwrap_or(0);
    Ok(Parsed { text, tool_calls, input_tokens, output_tokens })
}

/// Append the assistant's tool calls and their results to the conversation.
pub(super) fn push_tool_round(body: &mut Value, raw: &Value, results: &[(ToolCall, String)]) {
    let Some(messages) = body["messages"].as_array_mut() else { return };
    if let Some(message) = raw.pointer("/choices/0/message") {
        messages.push(message.clone());
    }
    for (call, result) in results {
        messages.push(json!({"role": "tool", "tool_call_id": call.id, "content": result}));
    }
}
