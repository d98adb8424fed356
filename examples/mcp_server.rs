//! A small, deterministic MCP server built with rmcp's server support: the
//! test double of `tests/mcp.rs` and the server of `examples/tool.yaml`.
//!
//! ```text
//! cargo run --example mcp_server                          # stdio (default)
//! cargo run --example mcp_server -- --http 127.0.0.1:0    # streamable HTTP; prints its URL
//! ```
//!
//! Tools: `add {a, b}` (structured `{sum}`), `echo {text}`, `slow {ms}`,
//! `fail {message}` (an error result), `count {hold_first_ms?}` (appends
//! `<idempotency key from _meta> <pid>` to the file named by `--count-file`
//! or `MCP_EXAMPLE_COUNT_FILE`, returns how often it has seen that key, and
//! holds a key's first call for `hold_first_ms`), `env {name}` (one of
//! this process's environment variables), `pid` (this process's id) and `crash` (records like `count`; on a key's first call it exits
//! at once, answering nothing; on a repeat it answers). Logs go to stderr.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ContentBlock, RequestMetaObject, ServerCapabilities, ServerConfig};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::tower::StreamableHttpService;
use rmcp::transport::{StreamableHttpServerConfig, stdio};
use rmcp::{Json, ServerHandler, ServiceExt, schemars, tool, tool_handler, tool_router};
use serde::{Deserialize, Serialize};

/// The `_meta` key JamJet puts a call's idempotency key under.
const IDEMPOTENCY_META_KEY: &str = "jamjet/idempotency_key";

#[derive(Deserialize, schemars::JsonSchema)]
struct AddArgs {
    a: f64,
    b: f64,
}

#[derive(Serialize, schemars::JsonSchema)]
struct Sum {
    sum: f64,
}

#[derive(Deserialize, schemars::JsonSchema)]
struct EchoArgs {
    text: String,
}

#[derive(Deserialize, schemars::JsonSchema)]
struct SlowArgs {
    ms: u64,
}

#[derive(Deserialize, schemars::JsonSchema)]
struct FailArgs {
    message: String,
}

#[derive(Deserialize, schemars::JsonSchema)]
struct EnvArgs {
    name: String,
}

#[derive(Deserialize, schemars::JsonSchema)]
struct CountArgs {
    /// Hold the first call with a given key this long before answering.
    #[serde(default)]
    hold_first_ms: u64,
}

#[derive(Serialize, schemars::JsonSchema)]
struct Counted {
    key: String,
    seen: usize,
}

#[derive(Clone)]
struct Example {
    count_file: Option<Arc<PathBuf>>,
    tool_router: ToolRouter<Self>,
}

#[tool_router]
impl Example {
    fn new(count_file: Option<PathBuf>) -> Self {
        Example { count_file: count_file.map(Arc::new), tool_router: Self::tool_router() }
    }

    #[tool(description = "Add two numbers; the result is structured: {sum}")]
    fn add(&self, Parameters(AddArgs { a, b }): Parameters<AddArgs>) -> Json<Sum> {
        Json(Sum { sum: a + b })
    }

    #[tool(description = "Return the text as given")]
    fn echo(&self, Parameters(EchoArgs { text }): Parameters<EchoArgs>) -> String {
        text
    }

    #[tool(description = "Sleep for ms milliseconds, then answer")]
    async fn slow(&self, Parameters(SlowArgs { ms }): Parameters<SlowArgs>) -> String {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        format!("slept {ms} ms")
    }

    #[tool(description = "Always fail with an error result carrying the message")]
    fn fail(&self, Parameters(FailArgs { message }): Parameters<FailArgs>) -> CallToolResult {
        CallToolResult::error(vec![ContentBlock::text(message)])
    }

    #[tool(description = "Record the call's idempotency key; say how often it was seen")]
    async fn count(
        &self,
        meta: RequestMetaObject,
        Parameters(CountArgs { hold_first_ms }): Parameters<CountArgs>,
    ) -> Result<Json<Counted>, String> {
        let (key, seen) = self.record(&meta)?;
        if seen == 1 && hold_first_ms > 0 {
            tokio::time::sleep(Duration::from_millis(hold_first_ms)).await;
        }
        Ok(Json(Counted { key, seen }))
    }

    #[tool(description = "The value of an environment variable of this process (empty when unset)")]
    fn env(&self, Parameters(EnvArgs { name }): Parameters<EnvArgs>) -> String {
        std::env::var(name).unwrap_or_default()
    }

    #[tool(description = "This server's process id")]
    fn pid(&self) -> String {
        std::process::id().to_string()
    }

    #[tool(description = "Exit the process at once, answering nothing, on a key's first call; answer on a repeat")]
    async fn crash(&self, meta: RequestMetaObject) -> Result<String, String> {
        let (key, seen) = self.record(&meta)?;
        if seen == 1 {
            std::process::exit(3);
        }
        Ok(format!("survived {key}"))
    }
}

impl Example {
    /// Append `key pid` to the count file; how often the key has been seen.
    fn record(&self, meta: &RequestMetaObject) -> Result<(String, usize), String> {
        let key = meta.0.0.get(IDEMPOTENCY_META_KEY).and_then(|v| v.as_str()).unwrap_or("").to_string();
        let path = self.count_file.as_deref().ok_or("no --count-file or MCP_EXAMPLE_COUNT_FILE given")?;
        let mut file = std::fs::OpenOptions::new().create(true).append(true).open(path).map_err(|e| e.to_string())?;
        writeln!(file, "{key} {}", std::process::id()).and_then(|_| file.sync_all()).map_err(|e| e.to_string())?;
        let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
        let seen = text.lines().filter(|l| l.split(' ').next() == Some(key.as_str())).count();
        Ok((key, seen))
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for Example {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_instructions("JamJet's example MCP server: deterministic tools for tests")
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt().with_writer(std::io::stderr).with_ansi(false).init();
    let mut args = std::env::args().skip(1);
    let mut http = None;
    let mut count_file = std::env::var_os("MCP_EXAMPLE_COUNT_FILE").map(PathBuf::from);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--http" => http = Some(args.next().context("--http needs an address, e.g. 127.0.0.1:0")?),
            "--count-file" => count_file = Some(args.next().context("--count-file needs a path")?.into()),
            other => anyhow::bail!("unknown argument `{other}` (expected --http ADDR, --count-file PATH)"),
        }
    }
    match http {
        None => {
            let server = Example::new(count_file).serve(stdio()).await?;
            server.waiting().await?;
        }
        Some(addr) => {
            let service: StreamableHttpService<Example, LocalSessionManager> = StreamableHttpService::new(
                move || Ok(Example::new(count_file.clone())),
                Default::default(),
                StreamableHttpServerConfig::default().with_sse_keep_alive(None),
            );
            let router = axum::Router::new().nest_service("/mcp", service);
            let listener = tokio::net::TcpListener::bind(&addr).await.with_context(|| format!("cannot bind {addr}"))?;
            let url = format!("http://{}/mcp", listener.local_addr()?);
            let mut stdout = std::io::stdout().lock();
            writeln!(stdout, "{url}")?;
            stdout.flush()?;
            drop(stdout);
            tracing::info!(%url, "MCP example server listening");
            axum::serve(listener, router).await?;
        }
    }
    Ok(())
}
