//! [`Env`]: everything a node may use while it runs, shared by every node
//! of one runtime: the clock, the template engine, compiled schemas, the
//! HTTP client (trusting `JAMJET_CA_CERT` and presenting
//! `JAMJET_CLIENT_CERT`/`JAMJET_CLIENT_KEY` to servers that ask: what
//! `type: http` and `type: agent` nodes reach peers with), the host's functions, where model keys come from, the MCP
//! clients, the A2A agent cards, and the limits. It holds no journal: a
//! node returns what it did, and the execution journals it.

use std::sync::Arc;
use std::time::Duration;

use super::agent::client::AgentCards;
use super::{Compiled, FunctionRegistry};
use crate::clock::Clock;
use crate::ir::{Limits, Templates};
use crate::mcp::McpPool;
use crate::model::KeySource;

/// What the nodes of one runtime share.
pub struct Env {
    pub clock: Arc<dyn Clock>,
    pub templates: Templates,
    /// JSON Schemas and regexes nodes check against, compiled once.
    pub compiled: Compiled,
    pub http: reqwest::Client,
    /// Whether `http` presents a client certificate (`JAMJET_CLIENT_CERT`).
    pub presents_certificate: bool,
    pub functions: FunctionRegistry,
    /// Where model API keys are read from (the environment by default).
    pub keys: KeySource,
    /// The MCP clients, one per declared server, shared by every execution.
    pub mcp: McpPool,
    /// The A2A agent cards `type: agent` nodes resolved, by URL.
    pub agents: AgentCards,
    /// How much a node may read or make (responses, expressions, ...).
    pub limits: Limits,
    /// Where streamed model replies go, piece by piece (`stream: true`).
    pub tokens: super::stream::Tokens,
}

impl Env {
    /// An environment with a fresh HTTP client (with the TLS files of the
    /// `JAMJET_*` variables, see [`crate::tls::ClientTls::from_env`]),
    /// template engine and MCP pool under `limits`.
    pub fn new(
        clock: Arc<dyn Clock>,
        functions: FunctionRegistry,
        keys: KeySource,
        limits: Limits,
    ) -> Result<Self, crate::tls::Error> {
        let builder = reqwest::Client::builder()
            .user_agent(concat!("jamjet/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10));
        let tls = crate::tls::ClientTls::from_env()?;
        let http = tls.apply(builder)?.build().map_err(|e| crate::tls::Error::Setup(e.to_string()))?;
        Ok(Env {
            clock,
            templates: Templates::with_limits(limits),
            compiled: Default::default(),
            http,
            presents_certificate: tls.client_cert.is_some(),
            functions,
            keys,
            mcp: McpPool::new(limits.max_response_bytes),
            agents: Default::default(),
            limits,
            tokens: Default::default(),
        })
    }
}
