//! `jamjet dev`: the runtime as an HTTP server (axum).
//!
//! - [`api`]: the REST API (`/workflows`, `/executions`, live event streams,
//!   signal/approve/cancel, `/health`, `/metrics`), documented in
//!   `docs/api.md` and `/openapi.json`.
//! - [`a2a`]: every A2A-enabled workflow as an A2A agent (card and
//!   JSON-RPC), over the same runtime.
//! - [`error`]: `{error: {code, message, details}}` with the right status.
//! - [`ui`]: the web UI at `/ui`, a page whose script calls the REST API.
//! - [`wire`]: the JSON bodies of the REST API, as types the handlers and
//!   [`crate::client`] share.
//!
//! [`router`] puts them together behind [`origin`]'s guard (`Host`,
//! `Origin` and a `POST`'s content type: the server trusts no browser),
//! with the API-key check, the body limit and CORS; [`policy`] says what a
//! posted workflow may do (no commands, no files unless allowed). [`serve`]
//! runs it on TCP until a shutdown signal, then lets in-flight requests
//! (and the journal writes they await) finish; [`serve_tls`] does the same
//! over HTTPS ([`https`]: rustls, and with `--client-ca` mTLS, a client
//! certificate's names reaching [`auth`]). [`socket`] serves the same
//! router on the data dir's Unix socket, to its owner only
//! ([`Config::for_socket`]).

pub mod a2a;
pub mod api;
pub mod auth;
pub mod error;
mod extract;
pub mod https;
pub mod limits;
pub mod metrics;
pub mod openapi;
pub mod origin;
pub mod policy;
pub mod socket;
pub mod sse;
pub mod ui;
pub mod wire;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::middleware::from_fn_with_state;
use axum::{Extension, Router};
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::runtime::Runtime;

pub use error::ApiError;

/// Request bodies above this are refused (413) unless configured.
pub const DEFAULT_BODY_LIMIT: usize = 1024 * 1024;

/// The smallest body limit on the data dir's socket (its peer posts whole IRs).
pub const SOCKET_BODY_LIMIT: usize = 64 * 1024 * 1024;

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
    /// Accepted API keys (digests); empty: no key needed (loopback only).
    pub api_keys: auth::Keys,
    /// Origins allowed by CORS; empty: CORS off (no CORS headers at all).
    pub cors_origins: Vec<String>,
    /// What posted workflows may do: commands, sub-workflow files.
    pub policy: policy::Policy,
    /// The limits posted workflows are compiled with.
    pub limits: crate::ir::Limits,
    /// Served on the data dir's Unix socket ([`socket`]): no `Host` or
    /// `Origin` check (no browser reaches it).
    pub unix: bool,
    /// Served over HTTPS ([`serve_tls`]): its own origin and default URL are `https://`.
    pub https: bool,
}

impl Config {
    pub fn new(bind: SocketAddr) -> Self {
        Config {
            bind,
            body_limit: DEFAULT_BODY_LIMIT,
            a2a_all: false,
            public_url: None,
            api_keys: auth::Keys::default(),
            cors_origins: Vec::new(),
            policy: policy::Policy::default(),
            limits: crate::ir::Limits::default(),
            unix: false,
            https: false,
        }
    }

    /// This configuration for the data dir's Unix socket: its peer is the
    /// data dir's owner (the file is 0600 and the peer's user is checked),
    /// so no API key is asked and a posted workflow may do what a local
    /// command may ([`policy::Policy::trusted`]); no `Host`/`Origin` check.
    pub fn for_socket(mut self) -> Config {
        self.unix = true;
        self.https = false;
        self.api_keys = auth::Keys::default();
        self.cors_origins = Vec::new();
        self.policy = policy::Policy::trusted();
        self.body_limit = self.body_limit.max(SOCKET_BODY_LIMIT);
        self
    }

    /// `http` or `https`: how this server is reached directly.
    pub fn scheme(&self) -> &'static str {
        if self.https { "https" } else { "http" }
    }

    /// The base URL peers use to reach this server.
    pub fn base_url(&self) -> String {
        self.public_url
            .clone()
            .unwrap_or_else(|| format!("{}://{}", self.scheme(), self.bind))
            .trim_end_matches('/')
            .to_string()
    }
}

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub rt: Runtime,
    pub config: Arc<Config>,
}

/// The whole server: REST API and A2A endpoints over one runtime. Every
/// request is counted (`/metrics`), then checked by [`origin::check`]
/// (`Host`, `Origin`, a `POST`'s content type) before anything else runs;
/// CORS answers only the configured origins; every error is JSON
/// ([`error::json_errors`]); bodies are limited (413 JSON); every route
/// but `/health`, `/openapi.json`, the agent cards and the UI's shell and
/// assets (which hold no data) is behind the API-key check.
pub fn router(state: AppState) -> Router {
    let config = state.config.clone();
    let limit = config.body_limit;
    let keys = Arc::new(config.api_keys.clone());
    let http = Arc::new(metrics::HttpMetrics::default());
    let guard = Arc::new(origin::Guard::new(&config));
    let guarded =
        Router::new().merge(api::routes()).merge(a2a::routes()).route_layer(from_fn_with_state(keys, auth::check));
    let mut app = Router::new()
        .merge(api::public_routes())
        .merge(a2a::public_routes())
        .merge(ui::routes())
        .merge(guarded)
        .layer(DefaultBodyLimit::max(limit))
        .layer(from_fn_with_state(limit, limits::limit))
        .layer(axum::middleware::from_fn(error::json_errors));
    // Inside the guard: a preflight reaches CORS only from an accepted origin.
    if let Some(cors) = cors(&config.cors_origins) {
        app = app.layer(cors);
    }
    app.layer(from_fn_with_state(guard, origin::check))
        .layer(from_fn_with_state(http.clone(), metrics::count))
        .layer(Extension(http))
        .with_state(state)
}

/// CORS for exactly these origins; `None` (CORS off) when there are none.
fn cors(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let list: Vec<HeaderValue> = origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()).collect();
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(list))
            .allow_methods([Method::GET, Method::POST])
            .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE, HeaderName::from_static("last-event-id")]),
    )
}

/// Serve on `listener` until `shutdown` resolves; then stop accepting, end
/// every open event stream ([`sse::Closing`]) and let in-flight requests
/// finish. The caller shuts the runtime down after.
pub async fn serve(
    state: AppState,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (app, shutdown) = closing(state, shutdown);
    // No Nagle: an SSE record or a small answer must not wait ~40 ms for
    // the peer's delayed ACK (`jamjet bench --server` found it).
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
    });
    axum::serve(listener, app).with_graceful_shutdown(shutdown).await
}

/// [`serve`] over HTTPS with `tls` (from [`crate::tls::ServerFiles`]).
/// Each connection carries its client certificate's names, if any, to
/// [`auth::check`] as `ConnectInfo<`[`crate::tls::Peer`]`>`.
pub async fn serve_tls(
    state: AppState,
    listener: tokio::net::TcpListener,
    tls: Arc<rustls::ServerConfig>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (app, shutdown) = closing(state, shutdown);
    let listener = https::TlsListener::new(listener, tls)?;
    axum::serve(listener, app.into_make_service_with_connect_info::<crate::tls::Peer>())
        .with_graceful_shutdown(shutdown)
        .await
}

/// The router with [`sse::Closing`], and the shutdown that closes the streams.
fn closing(
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> (Router, impl Future<Output = ()> + Send + 'static) {
    let (closing, closed) = tokio::sync::watch::channel(false);
    let app = router(state).layer(Extension(sse::Closing(closed)));
    let shutdown = async move {
        shutdown.await;
        let _ = closing.send(true);
    };
    (app, shutdown)
}
