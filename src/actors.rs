//! The actors: the IO shell around the pure execution state machine.
//!
//! ```text
//! Supervisor ──▶ ExecutionActor (one per live execution: owns its state and journal cursor)
//!                   └─▶ NodeActor (one per running node)
//! ```
//!
//! The supervisor restarts a crashed ExecutionActor by rehydrating it from
//! the journal; an ExecutionActor restarts a crashed (panicked) NodeActor
//! as a new attempt. Both are bounded by a [`RestartBudget`]. Nothing but
//! an execution's own actor appends to its journal.

mod execution;
pub mod machine;
mod node;
pub mod retry;
mod supervisor;

#[cfg(test)]
pub(crate) use execution::ExecutionMsg;
pub(crate) use execution::Start;
pub use retry::RestartBudget;
pub(crate) use supervisor::{Supervisor, SupervisorMsg};
