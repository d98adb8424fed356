//! MCP client side: one live rmcp client per declared server, shared by
//! every execution of a runtime.
//!
//! [`McpPool`] (held by [`crate::nodes::Env`]) starts a server's
//! client on first use, fetches and caches its `tools/list`, and starts it
//! again when the process died or the connection broke: the call that saw
//! the break fails as a `connection` error, so the node's retry policy
//! covers it, and the next call reconnects. [`connect`] owns the two
//! transports (a child process over stdio, streamable HTTP). This module
//! never touches the journal; what a call sent and got back is the
//! caller's to record.

mod connect;
mod pool;

pub use pool::{DEFAULT_CALL_TIMEOUT, McpPool, ToolInfo};
