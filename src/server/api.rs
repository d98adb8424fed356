//! The REST API, documented in `docs/api.md` and served as OpenAPI 3.1 at
//! `/openapi.json`.
//!
//! - [`workflows`]: `POST/GET /workflows`, `GET /workflows/{id}`;
//! - [`executions`]: `POST/GET /executions`, `GET /executions/{id}`, its
//!   events, signal / approve / cancel (the live stream is [`super::sse`]);
//! - [`events`]: `POST /events`, an external event by key;
//! - here: `GET /health` and `GET /openapi.json` (public), `GET /metrics`.

pub mod events;
pub mod executions;
mod ir_check;
pub mod workflows;

use axum::Router;
use axum::routing::get;

use super::AppState;

/// Routes served without an API key.
pub fn public_routes() -> Router<AppState> {
    Router::new().route("/health", get(health)).route("/openapi.json", get(super::openapi::serve))
}

/// Routes behind the API-key check.
pub fn routes() -> Router<AppState> {
    Router::new()
        .merge(workflows::routes())
        .merge(executions::routes())
        .merge(events::routes())
        .route("/metrics", get(super::metrics::serve))
}

async fn health() -> axum::Json<serde_json::Value> {
    axum::Json(serde_json::json!({ "status": "ok", "version": env!("CARGO_PKG_VERSION") }))
}
