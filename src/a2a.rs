//! A2A (Agent2Agent): every A2A-enabled workflow served as an agent, and
//! `type: agent` nodes that call remote agents. The wire types are the A2A
//! project's own (`a2a-lf`, imported as the crate `::a2a`; write `::a2a::`
//! to tell it from this module).

pub mod client;

use axum::Router;

use crate::server::AppState;

/// The agent cards (`/.well-known/agent-card.json`, `/a2a/{workflow_id}/...`):
/// public, served without an API key.
pub fn public_routes() -> Router<AppState> {
    Router::new()
}

/// The JSON-RPC endpoints (behind the API-key check).
pub fn routes() -> Router<AppState> {
    Router::new()
}
