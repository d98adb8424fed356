//! `GET /openapi.json`: the OpenAPI 3.1 document of the REST API, built
//! from [`ROUTES`] (every route the REST router serves; a test walks the
//! table against the real server). `docs/api.md` is the prose version.

use axum::Json;
use axum::extract::State;
use serde_json::{Map, Value, json};

use super::AppState;

/// One documented route.
pub struct Route {
    pub method: &'static str,
    /// OpenAPI path template (`{id}`), as the router has it.
    pub path: &'static str,
    pub summary: &'static str,
    /// The success status.
    pub ok: u16,
    /// Whether it needs the API key (when keys are configured).
    pub keyed: bool,
    /// Request body media types, if it takes a body.
    pub body: &'static [&'static str],
}

const JSON: &[&str] = &["application/json"];
const WORKFLOW: &[&str] = &["application/yaml", "text/yaml", "application/x-yaml", "text/plain", "application/json"];

/// Every route of the REST API (A2A routes are documented by their cards).
pub const ROUTES: &[Route] = &[
    Route { method: "get", path: "/health", summary: "Liveness and version", ok: 200, keyed: false, body: &[] },
    Route { method: "get", path: "/openapi.json", summary: "This document", ok: 200, keyed: false, body: &[] },
    Route { method: "get", path: "/metrics", summary: "Prometheus text exposition", ok: 200, keyed: true, body: &[] },
    Route {
        method: "post",
        path: "/workflows",
        summary: "Register a workflow (YAML or IR JSON); ?replace=true",
        ok: 201,
        keyed: true,
        body: WORKFLOW,
    },
    Route { method: "get", path: "/workflows", summary: "List registered workflows", ok: 200, keyed: true, body: &[] },
    Route {
        method: "get",
        path: "/workflows/{id}",
        summary: "One registration and its IR; ?version=",
        ok: 200,
        keyed: true,
        body: &[],
    },
    Route {
        method: "post",
        path: "/executions",
        summary: "Start an execution (idempotent with idempotency_key)",
        ok: 201,
        keyed: true,
        body: JSON,
    },
    Route {
        method: "get",
        path: "/executions",
        summary: "List executions: ?status=&workflow=&limit=&cursor=",
        ok: 200,
        keyed: true,
        body: &[],
    },
    Route {
        method: "get",
        path: "/executions/{id}",
        summary: "Status, state, error, usage, timings, waits",
        ok: 200,
        keyed: true,
        body: &[],
    },
    Route {
        method: "get",
        path: "/executions/{id}/events",
        summary: "Journal records; ?after=SEQ",
        ok: 200,
        keyed: true,
        body: &[],
    },
    Route {
        method: "get",
        path: "/executions/{id}/events/stream",
        summary: "Journal records as Server-Sent Events, live; Last-Event-ID or ?after=",
        ok: 200,
        keyed: true,
        body: &[],
    },
    Route {
        method: "post",
        path: "/executions/{id}/signal",
        summary: "Deliver an event to a wait node",
        ok: 202,
        keyed: true,
        body: JSON,
    },
    Route {
        method: "post",
        path: "/executions/{id}/approve",
        summary: "Decide an approval",
        ok: 200,
        keyed: true,
        body: JSON,
    },
    Route {
        method: "post",
        path: "/executions/{id}/cancel",
        summary: "Cancel a running or waiting execution",
        ok: 200,
        keyed: true,
        body: JSON,
    },
];

/// The document.
pub fn document() -> Value {
    let mut paths: Map<String, Value> = Map::new();
    for r in ROUTES {
        let mut op = json!({
            "summary": r.summary,
            "operationId": format!("{}{}", r.method, r.path.replace(['/', '{', '}', '.'], "_")),
            "responses": {
                r.ok.to_string(): { "description": "success" },
                "default": { "description": "error", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } }
            },
        });
        if r.path.contains("{id}") {
            op["parameters"] =
                json!([{ "name": "id", "in": "path", "required": true, "schema": { "type": "string" } }]);
        }
        if !r.body.is_empty() {
            let content: Map<String, Value> = r.body.iter().map(|m| (m.to_string(), json!({}))).collect();
            op["requestBody"] = json!({ "required": r.path != "/executions/{id}/cancel", "content": content });
        }
        if !r.keyed {
            op["security"] = json!([]);
        }
        paths.entry(r.path.to_string()).or_insert_with(|| json!({}))[r.method] = op;
    }
    json!({
        "openapi": "3.1.0",
        "info": { "title": "jamjet dev REST API", "version": env!("CARGO_PKG_VERSION"), "description": "See docs/api.md." },
        "paths": paths,
        "security": [{ "bearer": [] }],
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } },
            "schemas": { "Error": {
                "type": "object",
                "required": ["error"],
                "properties": { "error": { "type": "object", "required": ["code", "message"], "properties": {
                    "code": { "type": "string" }, "message": { "type": "string" }, "details": {}
                } } }
            } }
        }
    })
}

pub async fn serve(State(_): State<AppState>) -> Json<Value> {
    Json(document())
}
