//! `type: model`: render the node's prompt (or messages) and system prompt,
//! ask its model through [`crate::model::send`], and put the reply into
//! `output_key`: its text, or, with `output_schema`, the JSON it holds
//! once validated (a mismatch is `invalid_output`).
//!
//! With `tools:`, the tools of the named MCP servers (from their
//! `tools/list`) are offered in the provider's format; each tool call the
//! model makes is carried out through [`crate::mcp::McpPool`] with the
//! idempotency key `{key}/tool/{n}` (n counts the visit's calls from 1),
//! its result fed back, until the model answers without tools or
//! `max_tool_rounds` is spent (`invalid_output`). Round `r > 0` of the
//! conversation is sent with `Idempotency-Key: {key}/round/{r}`, so a
//! deduplicating server never answers a later round with an earlier one.
//!
//! The attempt's [`Exchange`] is the whole conversation: the last body sent
//! (every message, tool call and result) and the last reply, with the
//! tokens and cost of every round. It is returned on failure too once a
//! reply arrived. Every error names the node.

use std::collections::HashMap;
use std::time::Duration;

use futures::future::BoxFuture;
use serde_json::Value;

use super::{Exchange, NodeCtx, NodeError, NodeExecutor, NodeOutput, output_patch};
use crate::ir::NodeKind;
use crate::journal::{ErrorClass, Usage};
use crate::model::{
    ChatMessage, ChatRequest, DEFAULT_MAX_TOOL_ROUNDS, DEFAULT_TIMEOUT, ModelNode, ToolCall, ToolSpec, parse_output,
    push_tool_round, request_body, resolve_env, send,
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
    let mut usage = Usage::default();
    let max_rounds = spec.max_tool_rounds.unwrap_or(DEFAULT_MAX_TOOL_ROUNDS);
    let mut calls = 0u32;
    let mut round = 0u32;
    let reply = loop {
        let key = match round {
            0 => ctx.idempotency_key.clone(),
            r => format!("{}/round/{r}", ctx.idempotency_key),
        };
        let mut reply = send(ctx.services, config, body, &key, timeout).await.map_err(|mut e| {
            // The rounds before this one were paid for too.
            if let Some(x) = e.exchange.as_mut() {
                x.usage.add(&usage);
            }
            e
        })?;
        // The body comes back with the reply: the conversation goes on from it.
        body = std::mem::take(&mut reply.request);
        usage.add(&reply.usage);
        if reply.tool_calls.is_empty() {
            break reply;
        }
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
            calls += 1;
            let key = format!("{}/tool/{calls}", ctx.idempotency_key);
            let result = call_tool(ctx, &servers, call, &key, timeout)
                .await
                .map_err(|e| e.with_exchange(so_far(&body, &reply)))?;
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
