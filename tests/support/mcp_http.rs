//! A small MCP server over streamable HTTP on 127.0.0.1:0, for tests that
//! need a real MCP peer in-process: JSON-RPC 2.0 on `POST /mcp`, answered
//! with `application/json` (notifications get 202; `GET` is 405, so no
//! server-sent stream). It offers two tools, `add {a, b}` (the sum, as
//! text) and `fail` (an error result), and records every `tools/call`
//! with its arguments and `_meta`.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{Value, json};

/// One `tools/call` the server received.
#[derive(Debug, Clone)]
pub struct ToolCallSeen {
    pub name: String,
    pub arguments: Value,
    pub meta: Value,
}

#[derive(Clone)]
pub struct McpHttpServer {
    /// The server's endpoint, `http://127.0.0.1:PORT/mcp`.
    pub url: String,
    calls: Arc<Mutex<Vec<ToolCallSeen>>>,
}

impl McpHttpServer {
    pub async fn start() -> McpHttpServer {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let app = Router::new()
            .route("/mcp", post(rpc).get(|| async { StatusCode::METHOD_NOT_ALLOWED }))
            .with_state(calls.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("binding the MCP server");
        let url = format!("http://{}/mcp", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        McpHttpServer { url, calls }
    }

    pub fn calls(&self) -> Vec<ToolCallSeen> {
        self.calls.lock().unwrap().clone()
    }
}

fn tools() -> Value {
    json!([
        {"name": "add", "description": "Add two numbers.",
         "inputSchema": {"type": "object", "required": ["a", "b"],
                         "properties": {"a": {"type": "number"}, "b": {"type": "number"}}}},
        {"name": "fail", "description": "Always fails.", "inputSchema": {"type": "object"}},
    ])
}

async fn rpc(State(calls): State<Arc<Mutex<Vec<ToolCallSeen>>>>, Json(msg): Json<Value>) -> Response {
    let Some(id) = msg.get("id").cloned() else {
        return StatusCode::ACCEPTED.into_response(); // a notification
    };
    let params = &msg["params"];
    let result = match msg["method"].as_str().unwrap_or_default() {
        "initialize" => json!({
            "protocolVersion": params["protocolVersion"],
            "capabilities": {"tools": {}},
            "serverInfo": {"name": "calc", "version": "0.1.0"},
        }),
        "ping" => json!({}),
        "tools/list" => json!({"tools": tools()}),
        "tools/call" => {
            let name = params["name"].as_str().unwrap_or_default().to_string();
            let arguments = params["arguments"].clone();
            calls.lock().unwrap().push(ToolCallSeen {
                name: name.clone(),
                arguments: arguments.clone(),
                meta: params["_meta"].clone(),
            });
            match name.as_str() {
                "add" => {
                    let sum = arguments["a"].as_f64().unwrap_or(0.0) + arguments["b"].as_f64().unwrap_or(0.0);
                    json!({"content": [{"type": "text", "text": sum.to_string()}], "isError": false})
                }
                _ => json!({"content": [{"type": "text", "text": "boom"}], "isError": true}),
            }
        }
        other => {
            let error = json!({"code": -32601, "message": format!("no method {other}")});
            return Json(json!({"jsonrpc": "2.0", "id": id, "error": error})).into_response();
        }
    };
    Json(json!({"jsonrpc": "2.0", "id": id, "result": result})).into_response()
}
