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
//! A tool the workflow's `policy.require_approval_for` names is called only
//! once a person approved the call ([`super::approvals`]): the node parks
//! before the turn that asks for it, as an agent does.
//!
//! The attempt's [`Exchange`] is the whole conversation: the last body sent
//! (every message, tool call and result) and the last reply, with the
//! tokens and cost of what the calls journaled one by one do not already
//! count (the final reply). It is returned on failure too once a reply
//! arrived. Every error names the node.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use futures::future::BoxFuture;
use serde_json::Value;

use super::calls::Calls;
use super::converse::{Conversation, Ended, How, Toolset, blocked, converse, workflow_budget};
use super::{Exchange, NodeCtx, NodeError, NodeExecutor, NodeOutput, output_patch};
use crate::ir::NodeKind;
use crate::journal::ErrorClass;
use crate::model::{
    ChatMessage, ChatRequest, DEFAULT_MAX_TOOL_ROUNDS, DEFAULT_TIMEOUT, ModelNode, ToolSpec, parse_output,
    request_body, resolve_env,
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
    let mut messages = Vec::with_capacity(spec.messages.len().max(1) + ctx.history.len() * 2);
    // In a session, the conversation so far comes first (after the
    // leading system messages `messages:` may hold).
    let lead = spec.messages.iter().take_while(|m| m.role == "system").count();
    for m in &spec.messages[..lead] {
        messages.push(ChatMessage { role: m.role.clone(), content: t.render(&m.content, &tpl)? });
    }
    messages.extend(crate::nodes::history_messages(ctx.history));
    if let Some(prompt) = &spec.prompt {
        messages.push(ChatMessage::user(t.render(prompt, &tpl)?));
    }
    for m in &spec.messages[lead..] {
        messages.push(ChatMessage { role: m.role.clone(), content: t.render(&m.content, &tpl)? });
    }
    let timeout = ctx.node.timeout_ms.map_or(DEFAULT_TIMEOUT, Duration::from_millis);
    let tools = offered_tools(ctx, spec).await?;
    let request = ChatRequest {
        system,
        messages,
        temperature: spec.temperature,
        max_tokens: spec.max_tokens,
        tools: tools.offered.clone(),
        timeout: Some(timeout),
    };
    let config = &spec.config;
    // Read here first, so an unset variable names where the node is written.
    resolve_env(config, &spec.model)
        .map_err(|e| NodeError { message: format!("{} (at {})", e.message, ctx.location()), ..e })?;
    let body = request_body(config, &request);
    let mut calls = Calls::new(ctx);
    let conv = Conversation {
        config,
        kind: "model",
        name: &spec.model,
        timeout,
        max_tool_rounds: spec.max_tool_rounds.unwrap_or(DEFAULT_MAX_TOOL_ROUNDS),
        rounds_field: "`max_tool_rounds`".into(),
        budgets: workflow_budget(ctx, &calls).into_iter().collect(),
        journal_final: false,
        stream: spec.stream,
    };
    let Ended { reply, body, unjournaled: usage } = match converse(ctx, &mut calls, &conv, body, &tools).await {
        Ok(ended) => ended,
        // Tool calls the policy names wait for a person's decision.
        Err(_) if calls.parked() => return Ok(NodeOutput { pending: calls.take_pending(), ..Default::default() }),
        Err(e) => return Err(e),
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
/// server of each tool name; a tool the workflow's policy blocks is not
/// offered (and a call of it is refused as blocked).
async fn offered_tools(ctx: &NodeCtx<'_>, spec: &ModelNode) -> Result<Toolset, NodeError> {
    let mut specs = Vec::new();
    let mut servers: HashMap<String, String> = HashMap::new();
    let mut approval = HashSet::new();
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
            // Known, so that a call of it is refused as blocked; not offered.
            if blocked(ctx, &tool.name, Some(&entry.server)).is_some() {
                continue;
            }
            if needs_approval(ctx, &tool.name, &entry.server) {
                approval.insert(tool.name.clone());
            }
            specs.push(ToolSpec {
                name: tool.name,
                description: tool.description.unwrap_or_default(),
                input_schema: tool.input_schema,
            });
        }
    }
    let how = servers.into_iter().map(|(tool, server)| (tool, How::Mcp { server })).collect();
    Ok(Toolset { offered: specs, how, approval })
}

/// Whether the workflow's `policy.require_approval_for` names `tool` of
/// MCP server `server` (as `server.tool`, the bare tool, or the server),
/// so that its calls wait for a person's decision: the policy is the
/// workflow's, for its model nodes as for its agents.
fn needs_approval(ctx: &NodeCtx<'_>, tool: &str, server: &str) -> bool {
    let Some(policy) = ctx.workflow.policy.as_ref() else { return false };
    let written = format!("{server}.{tool}");
    crate::ir::Policy::matching(&policy.require_approval_for, &written, tool, Some(server)).is_some()
}
