//! `jamjet dev`: the runtime as an HTTP server (axum).
//!
//! - [`api`]: the REST API (`/workflows`, `/executions`, live event streams,
//!   signal/approve/cancel, `/health`, `/metrics`), documented in
//!   `docs/api.md` and `/openapi.json`.
//! - [`crate::a2a`]: every A2A-enabled workflow as an A2A agent (card and
//!   JSON-RPC), over the same runtime.
//! - [`error`]: `{error: {code, message, details}}` with the right status.
//!
//! [`router`] puts them together with the API-key check, the body limit and
//! CORS; [`serve`] runs it until a shutdown signal, then lets in-flight
//! requests (and the journal writes they await) finish.

pub mod api;
pub mod error;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;

use crate::runtime::Runtime;

pub use error::ApiError;

/// Request bodies above this are refused (413) unless configured.
pub const DEFAULT_BODY_LIMIT: usize = 1024 * 1024;

/// How the server runs.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where it listens (for messages and the agent card's default URL).
    pub bind: SocketAddr,
    /// The largest request body accepted, bytes.
    pub body_limit: usize,
    /// Serve every registered workflow as an A2A agent, marked or not.
    pub a2a_all: bool,
    /// The URL peers reach this server at (agent cards); default: `http://{bind}`.
    pub public_url: Option<String>,
    /// Requests need `Authorization: Bearer <key>` (API keys configured):
    /// agent cards then declare a bearer security scheme.
    pub bearer_auth: bool,
}

impl Config {
    pub fn new(bind: SocketAddr) -> Self {
        Config { bind, body_limit: DEFAULT_BODY_LIMIT, a2a_all: false, public_url: None, bearer_auth: false }
    }

    /// The base URL peers use to reach this server.
    pub fn base_url(&self) -> String {
        self.public_url.clone().unwrap_or_else(|| format!("http://{}", self.bind)).trim_end_matches('/').to_string()
    }
}

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub rt: Runtime,
    pub config: Arc<Config>,
}

/// The whole server: REST API and A2A endpoints over one runtime.
pub fn router(state: AppState) -> Router {
    let limit = state.config.body_limit;
    Router::new()
        .merge(api::routes())
        .merge(crate::a2a::public_routes())
        .merge(crate::a2a::routes())
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
}

/// Serve on `listener` until `shutdown` resolves; then stop accepting and
/// let in-flight requests finish. The caller shuts the runtime down after.
pub async fn serve(
    state: AppState,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state)).with_graceful_shutdown(shutdown).await
}
