//! The messages of the actors: what each one is asked, and how it begins.
//!
//! They live here, apart from the actors, so that a child (a NodeActor, a
//! ParallelActor, the timer wheel) needs only this file, not its parent's
//! actor.

use std::num::NonZeroU64;
use std::sync::Arc;

use ractor::{ActorId, RpcReplyPort};
use serde_json::{Map, Value};

use super::Error;
use crate::id::ExecutionId;
use crate::ir::Workflow;
use crate::journal::{BranchOutcome, CallRecord, Event, Json, KeptRef};
use crate::nodes::{NodeError, NodeOutput};

/// How an ExecutionActor begins.
pub(crate) enum Start {
    /// A new execution: append its first event (`ExecutionStarted`, or
    /// `ChildStarted` for a child), then tell the submitter.
    New {
        first: Box<Event>,
        started: RpcReplyPort<Result<(), String>>,
        /// A branch's starting state (its parent's, shared), for `BranchStarted`.
        base: Option<Arc<Map<String, Value>>>,
        /// A task of a session: its `SessionJoined` and the session's
        /// record naming it, both written in the first batch.
        session: Option<Box<(Event, crate::journal::SessionRecord)>>,
    },
    /// Fold the journal and go on from the first incomplete node.
    Rehydrate,
    /// Fold the journal and fail the execution (restart budget exhausted).
    FailWith(String),
}

type Reply<T> = RpcReplyPort<Result<T, Error>>;

/// What reaches an execution from outside, through the supervisor (which
/// rehydrates a hibernated execution first). The supervisor counts what it
/// forwards, so it never hibernates an actor with a delivery in flight.
pub(crate) enum Delivery {
    /// An external event for a `wait` node (kept if nothing waits for it yet).
    Signal {
        key: String,
        payload: Value,
        /// The inbox row it came from (a shared store's; rows count from
        /// 1), answered by the append that journals it.
        inbox: Option<NonZeroU64>,
        reply: Reply<()>,
    },
    /// A decision for an `approval` node, or (with `call`) for one pending
    /// tool call; replies with the node decided.
    Approve {
        node: Option<String>,
        call: Option<String>,
        approved: bool,
        by: String,
        comment: Option<String>,
        inbox: Option<NonZeroU64>,
        reply: Reply<String>,
    },
    Cancel {
        reason: String,
        inbox: Option<NonZeroU64>,
        reply: Option<Reply<()>>,
    },
    /// A deadline in the timer index is due (the entry's time).
    Tick {
        at_ms: u64,
    },
    /// An event published by key (or a kept one handed on, `take`) from
    /// the WaitActor: journaled only if a node waits for `key` now
    /// (a kept one is removed in the same batch); replies whether it was.
    Event {
        key: String,
        payload: Json,
        take: Option<KeptRef>,
        /// The inbox row it came from (as for `Signal`).
        inbox: Option<NonZeroU64>,
        reply: Reply<bool>,
    },
}

impl Delivery {
    /// Refuse the delivery without handling it.
    pub(crate) fn refuse(self, error: impl FnOnce() -> Error) {
        match self {
            Delivery::Signal { reply, .. } | Delivery::Cancel { reply: Some(reply), .. } => {
                let _ = reply.send(Err(error()));
            }
            Delivery::Approve { reply, .. } => {
                let _ = reply.send(Err(error()));
            }
            Delivery::Event { reply, .. } => {
                let _ = reply.send(Err(error()));
            }
            Delivery::Cancel { reply: None, .. } | Delivery::Tick { .. } => {}
        }
    }
}

pub(crate) enum ExecutionMsg {
    NodeDone {
        /// The NodeActor that ran it (free for the next attempt now).
        from: ActorId,
        node: String,
        visit: u32,
        attempt: u32,
        result: Result<NodeOutput, NodeError>,
        duration_us: u64,
    },
    Deliver(Delivery),
    /// A deadline this live actor armed itself (a retry delay) is due.
    Due,
    /// Children of a fan-out finished (a batch, journaled in one append).
    BranchesDone {
        node: String,
        visit: u32,
        attempt: u32,
        ends: Vec<(u32, BranchOutcome)>,
    },
    /// A running attempt completed a call: journal it, then reply (an
    /// error: the attempt is no longer the running one).
    Call {
        node: String,
        visit: u32,
        attempt: u32,
        call: CallRecord,
        reply: RpcReplyPort<Result<(), String>>,
    },
    /// Run a pure node that did not fit in the previous step\'s batch.
    RunPure {
        node: String,
        visit: u32,
        attempt: u32,
    },
    #[cfg(test)]
    Panic(String),
}

pub(crate) enum SupervisorMsg {
    /// Start (or rehydrate) an execution unless it is already live.
    Spawn { id: ExecutionId, workflow: Arc<Workflow>, hash: String, start: Start },
    /// Rehydrate an execution unless it is already live, and say whether
    /// its actor started (what it failed with, if not: a damaged history).
    Rehydrate { id: ExecutionId, workflow: Arc<Workflow>, hash: String, started: RpcReplyPort<Result<(), String>> },
    /// Hand something to an execution, rehydrating it first if it is not
    /// live; refused (through its reply) for an unknown or finished one.
    Deliver { id: ExecutionId, delivery: Delivery },
    /// A parked execution asks to be evicted from memory. Granted only if
    /// it has handled every delivery forwarded to it.
    /// `child`: a branch or sub-workflow, which keeps its lease in a shared
    /// store (its parent's process carries it; see `Supervisor::hibernate`).
    Hibernate { id: ExecutionId, actor: ActorId, delivered: u64, child: bool },
    /// The executions that have a live actor.
    Live(RpcReplyPort<Vec<ExecutionId>>),
    /// Whether one execution has a live actor.
    IsLive(ExecutionId, RpcReplyPort<bool>),
    /// Answered once `id` has no actor in memory (it hibernated, ended or
    /// was never loaded): right away, or when its actor goes.
    Unloaded(ExecutionId, RpcReplyPort<()>),
    /// A shared store says these executions are no longer this process's
    /// (their leases were taken over): stop their actors, never restart them.
    Lost(Vec<ExecutionId>),
    #[cfg(test)]
    Actor(ExecutionId, RpcReplyPort<Option<super::handles::ExecutionHandle>>),
}

pub(crate) enum ParallelMsg {
    /// A child's terminal event is durable (or it could not start).
    Ended { branch: u32, child: ExecutionId, outcome: Option<BranchOutcome> },
    /// The parent has journaled the last batch of ends it was sent.
    Taken,
}
