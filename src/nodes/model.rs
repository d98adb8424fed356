//! `type: model`: render the node's prompt (or messages) and system prompt,
//! ask its model through [`crate::model::send`], and put the reply into
//! `output_key`: its text, or, with `output_schema`, the JSON it holds
//! once validated (a mismatch is `invalid_output`).
//!
//! With `tools:`, the tools of the named MCP servers (from their
//! `tools/list`) are offered in the provider's format; each tool call the
//! model makes is carried out through [`crate::mcp::McpPool`], its result
//! fed back, until the model answers without tools or `max_tool_rounds`
//! is spent (`invalid_output`).
//!
//! Durable at every call ([`super::calls`]): a model reply that asks for
//! tools, and each tool call's result, is journaled as it completes,
//! before the conversation goes on. A retried or resumed visit reads them
//! back and sends only what comes after; the visit's first call is sent
//! with the visit's key, call `n > 1` (model or tool, counted together)
//! with `{key}/call/{n}`, so an interrupted call is re-sent with its own
//! key and a deduplicating server never answers one call with another.
//! The final reply is journaled with the node's completion.
//!
//! The attempt's [`Exchange`] is the whole conversation: the last body sent
//! (every message, tool call and result) and the last reply, with the
//! tokens and cost of what the calls journaled one by one do not already
//! count (the final reply). It is returned on failure too once a reply
//! arrived. Every error names the node.

use std::collections::HashMap;
use std::time::Duration;

use futures::future::BoxFuture;
use serde_json::{Value, json};

use super::calls::{CallRecord, Calls, Next};
use super::{Exchange, NodeCtx, NodeError, NodeExecutor, NodeOutput, output_patch};
use crate::ir::{ModelConfig, NodeKind};
use crate::journal::{ErrorClass, Usage};
use crate::model::{
    ChatMessage, ChatReply, ChatRequest, DEFAULT_MAX_TOOL_ROUNDS, DEFAULT_TIMEOUT, ModelNode, ToolCall, ToolSpec,
    journaled_reply, parse_output, push_tool_round, request_body, resolve_env, send,
};

pub struct Model;

impl NodeExecutor for Model {
    fn run<'a>(&'a self, ctx: NodeCtx<'a>) -> BoxFuture<'a, Result<NodeOutput, NodeError>> {
        Box::pin(async move {
            let id = &ctx.node.id;
            run(&ctx).await.map_err(|e| NodeError { message: format!("node `{id}`: {}", e.message), ..e })
        })
    }
}

async fn run(ctx: &NodeCtx<'_>) -> Result<NodeOutput, NodeError> {
    let NodeKind::Model(spec) = &ctx.node.kind else { unreachable!("model executor on another kind") };
    let t = &ctx.services.templates;
    let tpl = ctx.template_context();
    let system = spec.system.as_deref().map(|s| t.render(s, &tpl)).transpose()?;
    let mut messages = Vec::with_capacity(spec.messages.len().max(1));
    if let Some(prompt) = &spec.prompt {
        messages.push(ChatMessage::user(t.render(prompt, &tpl)?));
    }
    for m in &spec.messages {
        messages.push(ChatMessage { role: m.role.clone(), content: t.render(&m.content, &tpl)? });
    }
    let timeout = ctx.node.timeout_ms.map_or(DEFAULT_TIMEOUT, Duration::from_millis);
    let (tools, servers) = offered_tools(ctx, spec).await?;
    let request = ChatRequest {
        system,
        messages,
        temperature: spec.temperature,
        max_tokens: spec.max_tokens,
        tools,
        timeout: Some(timeout),
    };
    let config = &spec.config;
    // Read here first, so an unset variable names where the node is written.
    resolve_env(config, &spec.model)
        .map_err(|e| NodeError { message: format!("{} (at {})", e.message, ctx.location()), ..e })?;
    let mut body = request_body(config, &request);
    let max_rounds = spec.max_tool_rounds.unwrap_or(DEFAULT_MAX_TOOL_ROUNDS);
    let mut calls = Calls::new(ctx);
    // What the attempt spent beyond its journaled calls (the final reply).
    let mut usage = Usage::default();
    // Messages in the body when the previous model call was journaled.
    let mut sent = 0usize;
    let mut round = 0u32;
    let reply = loop {
        let (mut reply, fresh) = match calls.next("model", &spec.model)? {
            Next::Journaled(rec) => (read_back(config, rec, body)?, false),
            Next::Fresh { key } => (send(ctx.services, config, body, &key, timeout).await?, true),
        };
        // The body comes back with the reply: the conversation goes on from it.
        body = std::mem::take(&mut reply.request);
        if reply.tool_calls.is_empty() {
            // The final answer: journaled with the node's completion.
            if fresh {
                usage.add(&reply.usage);
            }
            break reply;
        }
        if fresh {
            calls.record("model", &spec.model, &added_since(&body, sent), &reply.raw, reply.usage).await?;
            if !calls.journals() {
                usage.add(&reply.usage);
            }
        }
        sent = message_count(&body);
        let so_far = |body: &Value, reply: &crate::model::ChatReply| Exchange {
            request: body.clone(),
            response: reply.raw.clone(),
            usage,
        };
        if round >= max_rounds {
            let message = format!(
                "the model still called tools after {} (`max_tool_rounds`): {}",
                crate::plural::count(max_rounds, "round", "rounds"),
                reply.tool_calls.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", ")
            );
            return Err(NodeError::new(ErrorClass::InvalidOutput, message).with_exchange(so_far(&body, &reply)));
        }
        let mut results = Vec::with_capacity(reply.tool_calls.len());
        for call in &reply.tool_calls {
            let result = match calls.next("tool", &call.name)? {
                Next::Journaled(rec) => tool_result_of(rec)?,
                Next::Fresh { key } => {
                    let result = call_tool(ctx, &servers, call, &key, timeout)
                        .await
                        .map_err(|e| e.with_exchange(so_far(&body, &reply)))?;
                    let request = json!({"id": call.id, "arguments": call.arguments});
                    calls
                        .record("tool", &call.name, &request, &Value::String(result.clone()), Usage::default())
                        .await?;
                    result
                }
            };
            results.push((call.clone(), result));
        }
        push_tool_round(config, &mut body, &reply, &results);
        round += 1;
    };
    let exchange = Exchange { request: body, response: reply.raw.clone(), usage };
    let value = match &spec.output_schema {
        Some(schema) => ctx
            .services
            .compiled
            .schema(schema)
            .and_then(|validator| parse_output(&reply.text, &validator))
            .map_err(|e| NodeError::new(ErrorClass::InvalidOutput, e).with_exchange(exchange.clone()))?,
        None => Value::String(reply.text),
    };
    let patch = output_patch(spec.output_key.as_deref(), value).map_err(|e| e.with_exchange(exchange.clone()))?;
    Ok(NodeOutput { patch, exchange: Some(Box::new(exchange)), ..Default::default() })
}

/// A model call the visit journaled, read back as the reply it was.
fn read_back(config: &ModelConfig, rec: &CallRecord, body: Value) -> Result<ChatReply, NodeError> {
    let corrupt = |e: String| {
        let message = format!("journaled call {} (a reply of model `{}`) does not read back: {e}", rec.n, rec.name);
        NodeError::new(ErrorClass::Internal, message)
    };
    let raw = rec.response.value().map_err(|e| corrupt(e.to_string()))?;
    journaled_reply(config, raw, body, rec.usage).map_err(corrupt)
}

/// A tool call the visit journaled: its result, as the model was given it.
fn tool_result_of(rec: &CallRecord) -> Result<String, NodeError> {
    match rec.response.value() {
        Ok(Value::String(s)) => Ok(s),
        Ok(other) => Ok(other.to_string()),
        Err(e) => Err(NodeError::new(
            ErrorClass::Internal,
            format!("journaled call {} (tool `{}`) does not read back: {e}", rec.n, rec.name),
        )),
    }
}

/// The messages of a request body.
fn message_count(body: &Value) -> usize {
    body["messages"].as_array().map_or(0, Vec::len)
}

/// What a model call sends that the visit's previous one did not: the
/// whole body for the first, then the messages added since (`{"messages":
/// [...]}`), so the journal of a long loop grows with its turns.
fn added_since(body: &Value, sent: usize) -> Value {
    if sent == 0 {
        return body.clone();
    }
    let added = body["messages"].as_array().map(|m| m.get(sent..).unwrap_or_default().to_vec()).unwrap_or_default();
    json!({ "messages": added })
}

/// The tools of the node's `tools:` as the servers list them, and the
/// server of each tool name.
async fn offered_tools(
    ctx: &NodeCtx<'_>,
    spec: &ModelNode,
) -> Result<(Vec<ToolSpec>, HashMap<String, String>), NodeError> {
    let mut specs = Vec::new();
    let mut servers: HashMap<String, String> = HashMap::new();
    for entry in &spec.tools {
        let listed = ctx.services.mcp.tools(ctx.workflow, &entry.server).await?;
        if let Some(wanted) = &entry.tools {
            for name in wanted {
                if !listed.iter().any(|t| &t.name == name) {
                    let offered: Vec<&str> = listed.iter().map(|t| t.name.as_str()).collect();
                    let message = format!(
                        "MCP server `{}` has no tool `{name}` (it offers: {})",
                        entry.server,
                        offered.join(", ")
                    );
                    return Err(NodeError::new(ErrorClass::ClientError, message));
                }
            }
        }
        for tool in listed {
            if entry.tools.as_ref().is_some_and(|w| !w.contains(&tool.name)) {
                continue;
            }
            if let Some(other) = servers.insert(tool.name.clone(), entry.server.clone()) {
                let message = format!(
                    "MCP servers `{other}` and `{}` both offer a tool `{}`: list the ones to offer with \
                     `tools: [{{server, tools: [...]}}]`",
                    entry.server, tool.name
                );
                return Err(NodeError::new(ErrorClass::ClientError, message));
            }
            specs.push(ToolSpec {
                name: tool.name,
                description: tool.description.unwrap_or_default(),
                input_schema: tool.input_schema,
            });
        }
    }
    Ok((specs, servers))
}

/// Carry out one tool call; what goes back to the model. A tool the model
/// made up, or an error result, goes back as text the model can act on;
/// a failed call (connection, timeout) fails the attempt.
async fn call_tool(
    ctx: &NodeCtx<'_>,
    servers: &HashMap<String, String>,
    call: &ToolCall,
    key: &str,
    timeout: Duration,
) -> Result<String, NodeError> {
    let Some(server) = servers.get(&call.name) else {
        let known: Vec<&str> = servers.keys().map(String::as_str).collect();
        return Ok(format!("error: there is no tool `{}` (tools: {})", call.name, known.join(", ")));
    };
    let result = ctx.services.mcp.call(ctx.workflow, server, &call.name, call.arguments.clone(), key, timeout).await?;
    let value = super::tool::result_value(&result);
    let text = match value {
        Value::String(s) => s,
        other => other.to_string(),
    };
    Ok(if result.get("isError").and_then(Value::as_bool) == Some(true) { format!("error: {text}") } else { text })
}
