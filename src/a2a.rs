//! A2A (Agent2Agent): every A2A-enabled workflow served as an agent, and
//! `type: agent` nodes that call remote agents. The wire types are the A2A
//! project's own (`a2a-lf`, imported as the crate `::a2a`; write `::a2a::`
//! to tell it from this module).

use axum::Router;

use crate::server::AppState;

/// The A2A endpoints: agent cards and JSON-RPC.
pub fn routes() -> Router<AppState> {
    Router::new()
}
