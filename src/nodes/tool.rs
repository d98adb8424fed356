//! `type: tool`: call one tool of a declared MCP server through the
//! runtime's [`crate::mcp::McpPool`].
//!
//! `arguments` are rendered from the state; the idempotency key travels in
//! the request's `_meta` (`"jamjet/idempotency_key"`), the same for every
//! attempt of a visit and after a crash. The result goes into `output_key`:
//! its `structuredContent` when the server sent one, else its text blocks
//! joined with newlines, parsed as JSON when the text is JSON, else the
//! string (a result with no text, only images say, goes in as its
//! `content` list). An error result (`isError: true`) fails the node as a
//! `client_error` carrying the server's message (not retried by default).
//! Every result is returned as an [`Exchange`] (request `{server, tool,
//! arguments}`, response the `CallToolResult` as JSON).

use std::time::Duration;

use futures::future::BoxFuture;
use serde_json::{Value, json};

use super::{Exchange, NodeCtx, NodeError, NodeExecutor, NodeOutput, output_patch};
use crate::ir::NodeKind;
use crate::journal::ErrorClass;
use crate::mcp::DEFAULT_CALL_TIMEOUT;

pub struct Tool;

impl NodeExecutor for Tool {
    fn run<'a>(&'a self, ctx: NodeCtx<'a>) -> BoxFuture<'a, Result<NodeOutput, NodeError>> {
        Box::pin(run(ctx))
    }
}

async fn run(ctx: NodeCtx<'_>) -> Result<NodeOutput, NodeError> {
    let NodeKind::Tool(spec) = &ctx.node.kind else { unreachable!("tool executor on another kind") };
    let node = &ctx.node.id;
    let arguments = match &spec.arguments {
        Some(arguments) => ctx.services.templates.render_value(arguments, &ctx.template_context())?,
        None => json!({}),
    };
    let timeout = ctx.node.timeout_ms.map_or(DEFAULT_CALL_TIMEOUT, Duration::from_millis);
    let request = json!({ "server": spec.server, "tool": spec.tool, "arguments": arguments });
    let response = ctx
        .services
        .mcp
        .call(ctx.workflow, &spec.server, &spec.tool, arguments, &ctx.idempotency_key, timeout)
        .await
        .map_err(|e| NodeError { message: format!("node `{node}`: {}", e.message), ..e })?;
    let exchange = Exchange { request, response, usage: Default::default() };
    if exchange.response.get("isError").and_then(Value::as_bool) == Some(true) {
        let said = text(&exchange.response).unwrap_or_else(|| "(no message)".to_string());
        let message = format!("node `{node}`: tool `{}` of MCP server `{}` failed: {said}", spec.tool, spec.server);
        return Err(NodeError::new(ErrorClass::ClientError, message).with_exchange(exchange));
    }
    let value = result_value(&exchange.response);
    let patch = match spec.output_key.as_deref() {
        Some(key) => output_patch(Some(key), value)?,
        None => Default::default(),
    };
    Ok(NodeOutput { patch, exchange: Some(Box::new(exchange)), ..Default::default() })
}

/// What a successful result puts into state (see the module doc).
pub(crate) fn result_value(result: &Value) -> Value {
    if let Some(structured) = result.get("structuredContent") {
        return structured.clone();
    }
    match text(result) {
        Some(text) => serde_json::from_str(&text).unwrap_or(Value::String(text)),
        None => result.get("content").cloned().unwrap_or(Value::Null),
    }
}

/// The text blocks of a result's content, joined with newlines.
fn text(result: &Value) -> Option<String> {
    let blocks = result.get("content")?.as_array()?;
    let texts: Vec<&str> = blocks
        .iter()
        .filter(|b| b.get("type").and_then(Value::as_str) == Some("text"))
        .filter_map(|b| b.get("text").and_then(Value::as_str))
        .collect();
    (!texts.is_empty()).then(|| texts.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn structured_content_wins_then_json_text_then_text() {
        let structured = json!({"content": [{"type": "text", "text": "7"}], "structuredContent": {"sum": 7}});
        assert_eq!(result_value(&structured), json!({"sum": 7}));
        let json_text = json!({"content": [{"type": "text", "text": "{\"a\": [1, 2]}"}]});
        assert_eq!(result_value(&json_text), json!({"a": [1, 2]}));
        let lines =
            json!({"content": [{"type": "text", "text": "one"}, {"type": "image"}, {"type": "text", "text": "two"}]});
        assert_eq!(result_value(&lines), json!("one\ntwo"));
        let image = json!({"content": [{"type": "image", "data": "AA=="}]});
        assert_eq!(result_value(&image), json!([{"type": "image", "data": "AA=="}]));
    }
}
