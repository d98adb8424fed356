//! A2A (Agent2Agent), the server side: every A2A-enabled workflow, and
//! every local agent of a registered workflow, served as an agent. The wire types are the A2A project's own (`a2a-lf`,
//! imported as the crate `::a2a`; write `::a2a::` to tell it from this
//! module), which the client of `type: agent` nodes
//! (`crate::nodes::agent::client`) uses too.
//!
//! - [`agents`]: which registered workflows are agents (`a2a:` or `--a2a`),
//!   and the workflows serving local agents (`/a2a/{workflow}.{agent}`);
//! - [`card`]: the agent cards (server-level and one per agent);
//! - [`rpc`]: JSON-RPC 2.0 dispatch (v1.0 names and the v0.3 aliases);
//! - [`task`]: an A2A task IS a durable execution (messages in, tasks out);
//! - [`dialect`]: the v1.0 wire form and its v0.3 spelling;
//! - [`stream`]: `SendStreamingMessage` / `SubscribeToTask` over SSE.

pub mod agents;
pub mod card;
pub mod dialect;
pub mod rpc;
pub mod stream;
pub mod task;

use axum::Router;
use axum::routing::{get, post};

use crate::server::AppState;

/// The agent cards (`/.well-known/agent-card.json`, `/a2a/{workflow_id}/...`):
/// public, served without an API key.
pub fn public_routes() -> Router<AppState> {
    Router::new()
        .route("/.well-known/agent-card.json", get(card::server_card))
        .route("/a2a/{workflow_id}/.well-known/agent-card.json", get(card::agent_card))
}

/// The JSON-RPC endpoints (behind the API-key check): `/a2a` (the server:
/// a new task picks its agent by skill) and `/a2a/{workflow_id}` (one agent).
pub fn routes() -> Router<AppState> {
    Router::new().route("/a2a", post(rpc::server_endpoint)).route("/a2a/{workflow_id}", post(rpc::agent_endpoint))
}
