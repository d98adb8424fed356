//! # JamJet: a durable runtime for AI agents
//!
//! A workflow is a graph of nodes (HTTP calls, branches, state updates,
//! host functions; model calls, MCP tools, fan-out and waits in later
//! issues), compiled from YAML to an IR. Every execution is a chain of
//! recoverable state transitions journaled in an embedded store: kill the
//! process at any instant and, on restart, every execution resumes from its
//! last completed step; no completed step is lost or recorded twice.
//!
//! ```
//! use jamjet::{Runtime, ir};
//! use jamjet::nodes::{FunctionCall, FunctionError};
//! use serde_json::json;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let workflow = ir::compile_str(r#"
//! id: greet
//! state_schema: { name: str, shout: str, greeting: str }
//! nodes:
//!   upper:
//!     type: function
//!     function: shout
//!     input: "{{ state.name }}"
//!     output_key: shout
//!     next: greet
//!   greet:
//!     type: set
//!     values: { greeting: "Hello, {{ state.shout }}!" }
//! "#, "greet.yaml")?;
//!
//! let dir = tempfile::tempdir()?;
//! let rt = Runtime::builder()
//!     .data_dir(dir.path())
//!     .function("shout", |call: FunctionCall| async move {
//!         let name = call.input.as_str().ok_or_else(|| FunctionError::new("want a string"))?;
//!         Ok(json!(name.to_uppercase()))
//!     })
//!     .open()
//!     .await?;
//!
//! let outcome = rt.run(&workflow, json!({ "name": "ada" })).await?;
//! assert_eq!(outcome.state["greeting"], "Hello, ADA!");
//! // The journal holds every step: ExecutionStarted, NodeScheduled, NodeStarted, NodeCompleted, ...
//! assert_eq!(rt.events(outcome.id)?.first().unwrap().event.name(), "ExecutionStarted");
//! rt.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! ## Layout
//!
//! Bottom up: dependencies point down, from the fronts (server, client,
//! CLI) through the runtime and the actors to the nodes, the journal and
//! the IR (the rules: `ARCHITECTURE.md`, "Layers").
//!
//! - [`id`], [`clock`]: execution ids and the clock.
//! - [`ir`]: the workflow IR, the YAML compiler and its validation,
//!   templates and conditions (minijinja, strict), the model configuration
//!   and prices a model node resolves to.
//! - [`journal`]: events, the [`journal::Journal`] trait, the sled backend
//!   (embedded default, group commit), the PostgreSQL one
//!   ([`journal::PgJournal`], shared by many processes) and an in-memory one.
//! - [`nodes`]: one file per node kind, behind [`nodes::NodeExecutor`];
//!   what they may use ([`nodes::Env`]); the A2A client of `type: agent`.
//! - [`model`]: the model client (two wire formats) behind `type: model`.
//! - [`mcp`]: the MCP client pool behind `type: tool` (rmcp; stdio and
//!   streamable HTTP), one live client per declared server.
//! - [`eval`]: scorers for `type: eval`, datasets and reports for `jamjet eval run`.
//! - [`actors`]: the pure execution state machine ([`actors::machine`]) and
//!   the ractor actors around it: Supervisor → ExecutionActor → NodeActor,
//!   and the WaitActor (events by key), sharing [`actors::Shared`].
//! - [`runtime`]: the embedding API ([`Runtime`]); its [`Builder`] wires
//!   the layers below. [`typed`] is the typed Rust workflow builder
//!   (state from a Rust type, steps as closures, agents and Rust tools).
//! - [`timeline`]: an execution's history as node visits (for `inspect`).
//! - [`server`]: `jamjet dev`, the runtime as an HTTP server (REST API, SSE),
//!   and A2A agents served from workflows ([`server::a2a`]);
//!   [`server::wire`] holds the API's JSON bodies as types, which the
//!   server's handlers and the client share.
//! - [`client`]: a typed client of a server's REST API (what `--server`
//!   and the data dir's socket use), split by what it talks about.
//! - [`cli`]: the `jamjet` command line (with `jamjet bench`'s harness and
//!   its `bench.step` / `bench.echo` functions, which are the CLI's only).
//! - [`tls`]: HTTPS and mTLS files (`jamjet dev --tls-cert/--tls-key/
//!   --client-ca`; a client's `--ca-cert/--client-cert/--client-key`),
//!   checked before anything starts; rustls with aws-lc-rs.
//! - [`plural`]: counts in words ("1 node", "2 nodes") for all output.
//!
//! See `ARCHITECTURE.md` for the design and a glossary.

pub mod actors;
pub mod cli;
pub mod client;
pub mod clock;
pub mod eval;
pub mod id;
pub mod ir;
pub mod journal;
pub mod mcp;
pub mod model;
pub mod nodes;
pub mod plural;
pub mod procstat;
pub mod runtime;
pub mod server;
pub mod timeline;
pub mod tls;

pub use actors::Published;
pub use id::ExecutionId;
pub use ir::{Workflow, compile_file, compile_str};
pub use journal::{Event, Status};
pub use runtime::typed;
pub use runtime::{Builder, Decision, Error, Outcome, Runtime, Unattended, WaitKind, Waiting};
