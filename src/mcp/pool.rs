//! [`McpPool`]: the live clients, one per server, started lazily and
//! restarted after a break.
//!
//! A server is known by its name and its whole configuration, so two
//! workflows that give one name to different servers do not share a
//! client. Each server has a slot behind an async lock: concurrent first
//! uses wait for one start. Calls run outside the lock, concurrently.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rmcp::model::{CallToolRequestParams, RequestMetaObject};
use rmcp::service::ServiceError;
use serde::Serialize;
use serde_json::Value;

use super::connect::{Client, connect};
use crate::ir::{McpServer, Workflow};
use crate::journal::ErrorClass;
use crate::nodes::NodeError;

/// A tool call's deadline when its node has no `timeout_ms`.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a server gets to start and finish the MCP handshake.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(60);
/// The `_meta` key that carries the idempotency key of a call.
pub const IDEMPOTENCY_META_KEY: &str = "jamjet/idempotency_key";

/// One tool a server offers, as its `tools/list` described it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ToolInfo {
    pub name: String,
    pub description: Option<String>,
    /// The tool's `inputSchema` (a JSON Schema object).
    pub input_schema: Value,
}

/// The runtime's MCP clients.
pub struct McpPool {
    /// By server name, then by configuration (almost always one).
    slots: Mutex<HashMap<String, SameName>>,
    /// The largest tool result a call accepts, as JSON (the runtime's
    /// `max_response_bytes`). The transport (rmcp) also caps each message
    /// it reads at 16 MiB, over a pipe and over HTTP alike, so nothing
    /// larger is ever held.
    max_result_bytes: u64,
}

impl Default for McpPool {
    fn default() -> Self {
        McpPool::new(crate::ir::Limits::default().max_response_bytes)
    }
}

/// The slots of the servers that share a name, with their configurations.
type SameName = Vec<(McpServer, Arc<Slot>)>;

#[derive(Default)]
struct Slot {
    live: tokio::sync::Mutex<Option<Arc<Live>>>,
}

/// A connected client and what its server offered at connect.
struct Live {
    client: Client,
    tools: Vec<ToolInfo>,
    pid: Option<u32>,
}

impl Live {
    fn is_closed(&self) -> bool {
        self.client.is_closed() || self.client.peer().is_transport_closed()
    }
}

impl McpPool {
    /// A pool whose calls accept results up to `max_result_bytes` (as JSON).
    pub fn new(max_result_bytes: u64) -> Self {
        McpPool { slots: Mutex::default(), max_result_bytes }
    }

    /// The tools `server` (declared by `wf`) offers, connecting first if needed.
    pub async fn tools(&self, wf: &Workflow, server: &str) -> Result<Vec<ToolInfo>, NodeError> {
        let config = declared(wf, server)?;
        Ok(self.live(server, config).await?.tools.clone())
    }

    /// Call `tool` on `server` with `arguments` (a JSON object), the
    /// idempotency key in the request's `_meta` under
    /// `"jamjet/idempotency_key"`. Returns the `CallToolResult` as JSON,
    /// `isError: true` included: what an error result means is the caller's
    /// to decide. A tool the server does not offer, a broken connection
    /// (`connection`, and the next call reconnects), a protocol error or
    /// no answer within `timeout` are errors.
    pub async fn call(
        &self,
        wf: &Workflow,
        server: &str,
        tool: &str,
        arguments: Value,
        idempotency_key: &str,
        timeout: Duration,
    ) -> Result<Value, NodeError> {
        let config = declared(wf, server)?;
        let Value::Object(arguments) = arguments else {
            let kind = crate::ir::json_kind(&arguments);
            return Err(NodeError::new(
                ErrorClass::ClientError,
                format!("tool arguments must be an object, not {kind}"),
            ));
        };
        let live = self.live(server, config).await?;
        if !live.tools.iter().any(|t| t.name == tool) {
            let offered: Vec<&str> = live.tools.iter().map(|t| t.name.as_str()).collect();
            let message = format!("MCP server `{server}` has no tool `{tool}` (it offers: {})", offered.join(", "));
            return Err(NodeError::new(ErrorClass::ClientError, message));
        }
        let mut meta = RequestMetaObject::new();
        meta.0.0.insert(IDEMPOTENCY_META_KEY.to_string(), Value::String(idempotency_key.to_string()));
        // The trace context goes in `_meta` as MCP's convention has it (any transport, stdio too).
        if let Some(tp) = crate::nodes::trace::traceparent() {
            meta.0.0.insert("traceparent".to_string(), Value::String(tp));
        }
        let mut params = CallToolRequestParams::new(tool.to_string()).with_arguments(arguments);
        params.meta = Some(meta);
        let result = match tokio::time::timeout(timeout, live.client.call_tool(params)).await {
            Ok(Ok(result)) => result,
            Ok(Err(e)) => return Err(self.failed(server, config, &live, e).await),
            Err(_) => {
                let message = format!("MCP server `{server}`: tool `{tool}` sent no result within {timeout:?}");
                return Err(NodeError::new(ErrorClass::Timeout, message));
            }
        };
        let result = serde_json::to_value(&result).map_err(|e| {
            NodeError::new(ErrorClass::Internal, format!("MCP server `{server}`: cannot encode the result: {e}"))
        })?;
        let size = crate::ir::json_size(&result);
        if size > self.max_result_bytes {
            let what =
                format!("the result of tool `{tool}` of MCP server `{server}` is {}", crate::ir::show_bytes(size));
            let message = crate::ir::limits_message(crate::ir::Limit::MaxResponseBytes, self.max_result_bytes, what);
            return Err(NodeError::new(ErrorClass::LimitExceeded, message));
        }
        Ok(result)
    }

    /// The pid of a running stdio server's process, if it is started.
    pub async fn pid(&self, wf: &Workflow, server: &str) -> Option<u32> {
        let slot = self.slot(server, declared(wf, server).ok()?);
        let live = slot.live.lock().await;
        live.as_ref().filter(|l| !l.is_closed()).and_then(|l| l.pid)
    }

    /// Close every client and stop every stdio server (each gets a few
    /// seconds to exit after its stdin closes, then is killed).
    pub async fn shutdown(&self) {
        let slots: Vec<Arc<Slot>> =
            self.slots.lock().expect("mcp slots lock").drain().flat_map(|(_, s)| s).map(|(_, s)| s).collect();
        let closing = slots.into_iter().map(|slot| async move {
            let Some(live) = slot.live.lock().await.take() else { return };
            match Arc::try_unwrap(live) {
                Ok(live) => {
                    let mut client = live.client;
                    let _ = client.close_with_timeout(Duration::from_secs(5)).await;
                }
                // A call still holds it: cancel the client; the child is
                // killed when the last holder lets go.
                Err(live) => live.client.cancellation_token().cancel(),
            }
        });
        futures::future::join_all(closing).await;
    }

    fn slot(&self, server: &str, config: &McpServer) -> Arc<Slot> {
        let mut slots = self.slots.lock().expect("mcp slots lock");
        let same_name = match slots.get_mut(server) {
            Some(same_name) => same_name,
            None => slots.entry(server.to_string()).or_default(),
        };
        if let Some((_, slot)) = same_name.iter().find(|(c, _)| c == config) {
            return slot.clone();
        }
        let slot = Arc::new(Slot::default());
        same_name.push((config.clone(), slot.clone()));
        slot
    }

    /// The live client of a server, started (again) if it is not running.
    async fn live(&self, server: &str, config: &McpServer) -> Result<Arc<Live>, NodeError> {
        let slot = self.slot(server, config);
        let mut guard = slot.live.lock().await;
        if let Some(live) = guard.as_ref().filter(|l| !l.is_closed()) {
            return Ok(live.clone());
        }
        if guard.take().is_some() {
            tracing::warn!(server, "MCP server connection lost: starting it again");
        }
        let started = tokio::time::timeout(CONNECT_TIMEOUT, async {
            let (client, pid) = connect(server, config).await?;
            let tools = client.list_all_tools().await.map_err(|e| {
                NodeError::new(ErrorClass::Connection, format!("MCP server `{server}`: tools/list failed: {e}"))
            })?;
            let tools = tools
                .into_iter()
                .map(|t| ToolInfo {
                    name: t.name.into_owned(),
                    description: t.description.map(|d| d.into_owned()),
                    input_schema: Value::Object((*t.input_schema).clone()),
                })
                .collect();
            Ok::<_, NodeError>(Live { client, tools, pid })
        })
        .await
        .map_err(|_| {
            let message = format!("MCP server `{server}` did not finish its handshake within {CONNECT_TIMEOUT:?}");
            NodeError::new(ErrorClass::Timeout, message)
        })??;
        let live = Arc::new(started);
        *guard = Some(live.clone());
        Ok(live)
    }

    /// Classify a failed call; a broken connection is dropped so that the
    /// next call starts the server again.
    async fn failed(&self, server: &str, config: &McpServer, live: &Arc<Live>, e: ServiceError) -> NodeError {
        let class = match &e {
            ServiceError::McpError(data) if data.code == rmcp::model::ErrorCode::INTERNAL_ERROR => {
                ErrorClass::ServerError
            }
            ServiceError::McpError(_) => ErrorClass::ClientError,
            ServiceError::Timeout { .. } => ErrorClass::Timeout,
            ServiceError::UnexpectedResponse => ErrorClass::ServerError,
            _ => ErrorClass::Connection,
        };
        if class == ErrorClass::Connection {
            let slot = self.slot(server, config);
            let mut guard = slot.live.lock().await;
            if guard.as_ref().is_some_and(|l| Arc::ptr_eq(l, live)) {
                tracing::warn!(server, error = %e, "MCP server connection broke");
                guard.take();
            }
        }
        NodeError::new(class, format!("MCP server `{server}`: {e}"))
    }
}

/// The configuration of a server `wf` declares.
fn declared<'w>(wf: &'w Workflow, server: &str) -> Result<&'w McpServer, NodeError> {
    wf.mcp_servers.get(server).ok_or_else(|| {
        let names: Vec<&str> = wf.mcp_servers.keys().map(String::as_str).collect();
        let message = format!(
            "workflow `{}` declares no MCP server `{server}` (declared: {})",
            wf.id,
            if names.is_empty() { "none".to_string() } else { names.join(", ") }
        );
        NodeError::new(ErrorClass::ClientError, message)
    })
}
