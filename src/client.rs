//! A small typed client of the REST API a `jamjet dev` server offers
//! (`docs/api.md`): register a workflow, submit, get, list, read and
//! follow an execution's events (Server-Sent Events, reconnecting with
//! `Last-Event-ID`), signal, approve, cancel. What the CLI uses with
//! `--server URL`.
//!
//! Every error names the URL it is about; an error the server answered
//! carries its `{"error": {"code", "message", "details"}}`. A server that
//! does not answer at all is [`Error::Unreachable`]. With `JAMJET_API_KEY`
//! (or [`Client::with_key`]) every request carries `Authorization: Bearer`.
//! Over `https://` it trusts the CA of `JAMJET_CA_CERT` beside the system's
//! roots and presents `JAMJET_CLIENT_CERT`/`JAMJET_CLIENT_KEY` to a server
//! that asks (mTLS), or the files given to [`Client::with_tls`]; a file it
//! cannot use is [`Error::Tls`], before anything is sent.
//!
//! [`Client::unix`] talks to the process holding a data dir over the
//! data dir's socket (`server::socket`) instead: the same API, no key;
//! its errors read as the runtime's own ([`Error::Held`]), since for the
//! user it is their data dir answering, not a server.
//!
//! The bodies it writes and reads are the server's own wire types
//! ([`crate::server::wire`], re-exported here), so the two cannot drift.
//! Owns no runtime state: this is the wire, nothing else.
//!
//! - `transport`: [`Client`] over TCP or the socket, and the plumbing
//!   every request goes through;
//! - `executions`: submit, read, list, events, signal / approve /
//!   cancel, resume;
//! - `follow`: an execution's live event stream;
//! - `workflows`: register, list, read one;
//! - `process`: `/holder` and `/metrics`;
//! - `error`: [`Error`], and how an error answer becomes one.

// An error carries the server's whole answer (code, message, details, URL)
// and a stream item a whole record: both are moved a few times per request,
// on a network path, where boxing them buys nothing measurable.
#![allow(clippy::result_large_err, clippy::large_enum_variant)]

mod error;
mod executions;
mod follow;
mod process;
mod transport;
mod workflows;

pub use error::Error;
pub use executions::ListQuery;
pub use follow::{Follow, Item};
pub use transport::Client;

pub use crate::server::wire::{Approved, Execution, Moved, Page, Published, Submitted, Summary, Wait};
