//! The actors: the IO shell around the pure execution state machine.
//!
//! ```text
//! Supervisor ──▶ ExecutionActor (one per live execution: owns its state and journal cursor)
//!    ▲              ├─▶ NodeActor     (one per running node)
//!    │              └─▶ ParallelActor (one per fan-out: starts child executions, reports their ends)
//! TimerWheel (one per runtime: delivers due deadlines of the journal's timer index)
//! WaitActor  (one per runtime: the external-event mailbox; events by key, kept events)
//! ```
//!
//! The supervisor restarts a crashed ExecutionActor by rehydrating it from
//! the journal; an ExecutionActor restarts a crashed (panicked) NodeActor
//! as a new attempt. Both are bounded by a [`RestartBudget`]. Nothing but
//! an execution's own actor appends to its journal. What comes from outside
//! (signals, approvals, cancels, due timers) goes through the supervisor,
//! which rehydrates a hibernated execution to take it.
//!
//! Callers hold typed handles (`handles.rs`: a `SupervisorHandle`, and an
//! `ExecutionHandle` for an execution's children), never raw `ActorRef`s;
//! the message enums are in `messages.rs`.

mod error;
mod execution;
mod fold;
mod handles;
pub mod machine;
mod messages;
mod node;
mod node_latency;
mod parallel;
pub mod retry;
mod shared;
mod supervisor;
mod timers;
mod wait;

pub use error::Error;
pub(crate) use execution::index_row;
pub(crate) use fold::{replay as fold_history, start_base};
#[cfg(test)]
pub(crate) use handles::ExecutionHandle;
pub(crate) use handles::{Ended, Finished, SupervisorHandle, event_taken};
pub(crate) use node::tool_calls;
pub use node_latency::NodeLatency;
pub use retry::RestartBudget;
pub use shared::Shared;
pub(crate) use timers::TimerWheel;
pub use wait::{DEFAULT_KEEP, MAX_KEEP, Published, parse_keep};
pub(crate) use wait::{Mailbox, changes as wait_changes, keys as wait_keys};

/// The root of the execution tree `id` belongs to: itself, or the execution
/// that started the branch or sub-workflow that (transitively) started it,
/// read from each one's first record. What cannot be read ends the walk
/// where it is (a trace then starts at the last execution found).
pub fn trace_root(journal: &dyn crate::journal::Journal, id: crate::id::ExecutionId) -> crate::id::ExecutionId {
    use crate::journal::Event;
    /// Deeper than any nesting the limits allow.
    const MAX_DEPTH: usize = 64;
    let mut at = id;
    for _ in 0..MAX_DEPTH {
        let parent = match journal.first(at) {
            Ok(Some(r)) => match r.event {
                Event::ChildStarted { parent, .. } | Event::BranchStarted { parent, .. } => parent.parse().ok(),
                _ => None,
            },
            _ => None,
        };
        match parent {
            Some(p) => at = p,
            None => return at,
        }
    }
    at
}
