//! Starting one MCP client: a child process over stdio, or a remote server
//! over streamable HTTP, then the MCP handshake.
//!
//! `${VAR}` references are resolved here, from the process environment
//! ([`crate::ir::expand_env`]), and the resolved values go only to the
//! child or the HTTP request: never to the IR, the journal, the logs or an
//! error message (those show the values as written). Relative paths (the
//! `command` when it holds a `/`, arguments starting with `./` or `../`,
//! `cwd`) resolve from the workflow file's directory ([`PathRole`]). A
//! stdio child runs in its own
//! process group (killed with the client), and its stderr is forwarded to
//! `tracing` line by line, never to our stdout.

use std::process::Stdio;

use process_wrap::tokio::{CommandWrap, KillOnDrop, ProcessGroup};
use reqwest::header::{HeaderName, HeaderValue};
use rmcp::service::{RoleClient, RunningService, ServiceExt};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::ChildStderr;

use crate::ir::{McpServer, PathRole, expand_process_env};
use crate::journal::ErrorClass;
use crate::nodes::NodeError;

/// A connected client.
pub(super) type Client = RunningService<RoleClient, ()>;

/// Start the server (or open the connection) and run the handshake.
pub(super) async fn connect(name: &str, server: &McpServer) -> Result<(Client, Option<u32>), NodeError> {
    let resolve = |text: &str, field: &str| {
        expand_process_env(text)
            .map_err(|e| NodeError::new(ErrorClass::ClientError, format!("MCP server `{name}`: {field}: {e}")))
    };
    match server {
        McpServer::Stdio { command, args, env, cwd, dir } => {
            let dir = dir.as_deref();
            let program = McpServer::resolve_path(dir, PathRole::Command, resolve(command, "`command`")?);
            let mut cmd = tokio::process::Command::new(&program);
            for arg in args {
                cmd.arg(McpServer::resolve_path(dir, PathRole::Arg, resolve(arg, "`args`")?));
            }
            for (key, value) in env {
                cmd.env(key, resolve(value, &format!("env `{key}`"))?);
            }
            if let Some(cwd) = cwd {
                cmd.current_dir(McpServer::resolve_path(dir, PathRole::Cwd, resolve(cwd, "`cwd`")?));
            }
            let from = dir.map(|d| format!(" (relative paths from {d})")).unwrap_or_default();
            let mut wrapped = CommandWrap::from(cmd);
            wrapped.wrap(ProcessGroup::leader()).wrap(KillOnDrop);
            let (transport, stderr) =
                TokioChildProcess::builder(wrapped).stderr(Stdio::piped()).spawn().map_err(|e| {
                    let class = match e.kind() {
                        std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied => ErrorClass::ClientError,
                        _ => ErrorClass::Connection,
                    };
                    NodeError::new(class, format!("MCP server `{name}`: cannot start `{command}`{from}: {e}"))
                })?;
            let pid = transport.id();
            if let Some(stderr) = stderr {
                tokio::spawn(forward_stderr(name.to_string(), pid, stderr));
            }
            let client = ().serve(transport).await.map_err(|e| {
                NodeError::new(
                    ErrorClass::Connection,
                    format!("MCP server `{name}` (`{command}`): handshake failed: {e}"),
                )
            })?;
            tracing::info!(server = name, pid, "MCP server started");
            Ok((client, pid))
        }
        McpServer::Http { url, headers } => {
            let written = url;
            let url = resolve(url, "`url`")?;
            let mut custom = std::collections::HashMap::new();
            for (key, value) in headers {
                let field = format!("header `{key}`");
                let value = resolve(value, &field)?;
                let bad = |what: &str| {
                    NodeError::new(
                        ErrorClass::ClientError,
                        format!("MCP server `{name}`: {field} is not a valid {what}"),
                    )
                };
                let key = HeaderName::try_from(key.as_str()).map_err(|_| bad("header name"))?;
                custom.insert(key, HeaderValue::try_from(value).map_err(|_| bad("header value"))?);
            }
            let config = StreamableHttpClientTransportConfig::with_uri(url).custom_headers(custom);
            let transport = StreamableHttpClientTransport::with_client(reqwest::Client::new(), config);
            let client = ().serve(transport).await.map_err(|e| {
                NodeError::new(
                    ErrorClass::Connection,
                    format!("MCP server `{name}` ({written}): handshake failed: {e}"),
                )
            })?;
            tracing::info!(server = name, url = %written, "MCP server connected");
            Ok((client, None))
        }
    }
}

/// A stdio server's stderr, one `tracing` event per line.
async fn forward_stderr(server: String, pid: Option<u32>, stderr: ChildStderr) {
    let mut lines = BufReader::new(stderr).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        tracing::info!(target: "jamjet::mcp::stderr", server = %server, pid, "{line}");
    }
}
