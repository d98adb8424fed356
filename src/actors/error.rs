//! The error of the actors and of the runtime built on them: one type, so
//! that what an actor refuses (an execution that finished, one that waits
//! on nothing) reaches the embedding API's caller unchanged.

use crate::id::ExecutionId;
use crate::ir::SchemaError;
use crate::journal::{self, Status};

/// What can go wrong running executions, and using a runtime (which
/// re-exports it as `runtime::Error`: the actors' replies reach callers as
/// they are).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("input refused, nothing was started: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    InvalidInput(Vec<SchemaError>),
    #[error("no execution {0} in this data dir")]
    UnknownExecution(ExecutionId),
    /// The execution ended and was pruned: only its tombstone is left.
    #[error(
        "execution {id} was pruned at {} ({status}, workflow `{workflow}`, {events} events): its history is no longer kept",
        crate::clock::format_ms(*pruned_ms)
    )]
    Pruned { id: ExecutionId, status: Status, workflow: String, pruned_ms: u64, events: u64 },
    #[error("cannot fork execution {id}: {message}; nothing was created")]
    ForkRefused { id: ExecutionId, message: String },
    #[error("execution {id} uses workflow {hash}, which is not in the journal")]
    MissingWorkflow { id: ExecutionId, hash: String },
    #[error("execution {id} did not start: {message}")]
    StartFailed { id: ExecutionId, message: String },
    #[error("execution {id} stopped without finishing; run `jamjet resume` to go on")]
    Stopped { id: ExecutionId },
    #[error("execution {id} has already finished ({status}); nothing was delivered")]
    Finished { id: ExecutionId, status: Status },
    #[error("execution {id} {message}")]
    NotWaiting { id: ExecutionId, message: String },
    /// In a store many processes share, another live process runs the
    /// execution: what is for it goes to its inbox (the runtime does that).
    #[error("execution {id} runs in another process ({owner})")]
    Elsewhere { id: ExecutionId, owner: String },
    /// The process that runs the execution did not take what was sent to
    /// its inbox in time: it was withdrawn, nothing was delivered.
    #[error(
        "execution {id} runs in another process ({owner}), which did not take the {what} within {secs} s; it was withdrawn: nothing was delivered (is that process stalled? `jamjet workers` lists the live ones)"
    )]
    NotTaken { id: ExecutionId, owner: String, what: String, secs: u64 },
    #[error("no workflow `{id}`{} is registered", .version.as_ref().map(|v| format!(" version {v}")).unwrap_or_default())]
    UnknownWorkflow { id: String, version: Option<String> },
    #[error(
        "workflow `{id}` version {version} is already registered with other content (hash {hash}); bump `version` or replace it"
    )]
    WorkflowConflict { id: String, version: String, hash: String },
    #[error(
        "idempotency key `{key}` already started execution {id} with {what}; nothing was started (use another key for another submission)"
    )]
    KeyConflict { key: String, id: ExecutionId, what: String },
    #[error("bad idempotency key: {0}")]
    InvalidKey(String),
    #[error("{0}; nothing was started")]
    LimitExceeded(String),
    #[error("workflow `{id}` does not pass the checks, nothing was started or registered: {problems}")]
    InvalidWorkflow { id: String, problems: String },
    #[error(transparent)]
    Journal(#[from] journal::Error),
    #[error("runtime error: {0}")]
    Actor(String),
    /// What the runtime was built with cannot work (an OTLP endpoint that
    /// is no URL, say): nothing was opened.
    #[error("{0}")]
    Setup(String),
    #[error("{0}; nothing was delivered or kept")]
    InvalidEvent(String),
    #[error("bad session id: {0}; nothing was started")]
    InvalidSession(String),
    #[error("no session `{0}` in this data dir (it never existed, or it expired)")]
    UnknownSession(String),
    #[error(
        "session `{session}` runs workflow `{runs}`, not `{asked}`: a session's tasks all run one workflow; nothing was started (use another session id)"
    )]
    SessionWorkflow { session: String, runs: String, asked: String },
    #[error("session `{session}`: its task {execution} {why}; nothing was started")]
    SessionBusy { session: String, execution: ExecutionId, why: String },
}
