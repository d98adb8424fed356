//! The REST API, documented in `docs/api.md` and served as OpenAPI 3.1 at
//! `/openapi.json`.
//!
//! - [`workflows`]: `POST/GET /workflows`, `GET /workflows/{id}`;
//! - [`executions`]: `POST/GET /executions`, `GET /executions/{id}`, its
//!   events, signal / approve / cancel (the live stream is [`super::sse`]);
//! - [`timeline`]: `GET /executions/{id}/timeline`, one row per node visit;
//! - [`events`]: `POST /events`, an external event by key;
//! - [`sessions`]: `GET /sessions`, `GET /sessions/{id}`;
//! - here: `GET /health` and `GET /openapi.json` (public), `GET /metrics`,
//!   and [`reply`], how every handler sends a [`super::wire`] body.

pub mod events;
pub mod executions;
mod ir_check;
pub mod sessions;
pub mod timeline;
pub mod workflows;

use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use serde_json::Value;

use super::wire::Health;
use super::{ApiError, AppState};

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
        .merge(sessions::routes())
        .merge(timeline::routes())
        .route("/metrics", get(super::metrics::serve))
}

/// A reply body ([`super::wire`]) as JSON. It goes through
/// `serde_json::Value`, whose maps are sorted: the keys go out in
/// alphabetical order, as they always have, whatever the order of the
/// wire type's fields.
pub fn reply<T: Serialize>(body: &T) -> Result<Json<Value>, ApiError> {
    serde_json::to_value(body).map(Json).map_err(|e| {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", format!("the reply does not serialize: {e}"))
    })
}

async fn health() -> Result<Json<Value>, ApiError> {
    reply(&Health { status: "ok".into(), version: env!("CARGO_PKG_VERSION").into() })
}
