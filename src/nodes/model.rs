//! `type: model`: render the node's prompt (or messages) and system prompt,
//! ask its model through [`crate::model::complete_with`], and put the reply
//! into `output_key`: its text, or, with `output_schema`, the JSON it holds
//! once validated (a mismatch is `invalid_output`). The call and its usage
//! come back as the attempt's [`Exchange`], on failure too once a reply
//! arrived. Every error names the node.

use std::time::Duration;

use futures::future::BoxFuture;
use serde_json::Value;

use super::{NodeCtx, NodeError, NodeExecutor, NodeOutput, output_patch};
use crate::ir::NodeKind;
use crate::journal::ErrorClass;
use crate::model::{ChatMessage, ChatRequest, DEFAULT_TIMEOUT, complete_with, parse_output};

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
    let request = ChatRequest {
        system,
        messages,
        temperature: spec.temperature,
        max_tokens: spec.max_tokens,
        tools: Vec::new(),
        timeout: Some(timeout),
    };
    let reply = complete_with(ctx.services, &spec.config, &request, &ctx.idempotency_key).await?;
    let exchange = reply.exchange();
    let value = match &spec.output_schema {
        Some(schema) => parse_output(&reply.text, schema)
            .map_err(|e| NodeError::new(ErrorClass::InvalidOutput, e).with_exchange(exchange.clone()))?,
        None => Value::String(reply.text),
    };
    let patch = output_patch(spec.output_key.as_deref(), value).map_err(|e| e.with_exchange(exchange.clone()))?;
    Ok(NodeOutput { patch, exchange: Some(Box::new(exchange)), ..Default::default() })
}
