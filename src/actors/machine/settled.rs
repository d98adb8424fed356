//! Whether only the outside can move an execution on ("settled"), and
//! what it waits for: one definition, over the folded state, for the
//! runtime (`Runtime::settle`, `waiting_in_family`, `unattended`), the
//! server's execution view (its `settled` field) and the CLI, which reads
//! that field.

use std::collections::HashMap;

use serde::Serialize;

use super::{ExecutionState, Wait};
use crate::id::ExecutionId;
use crate::ir::{NodeKind, Workflow};
use crate::journal::Status;

/// What a parked node waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WaitKind {
    Event,
    Approval,
    Timer,
}

impl WaitKind {
    /// The kind of `wait`: an event if it names one, else an approval if it
    /// asks a question, else the clock.
    pub fn of(wait: &Wait) -> WaitKind {
        match (&wait.event, &wait.prompt) {
            (Some(_), _) => WaitKind::Event,
            (None, Some(_)) => WaitKind::Approval,
            (None, None) => WaitKind::Timer,
        }
    }
}

/// The open waits of one execution: (node, kind, wait), by node name.
pub type Waits<'a> = Vec<(&'a str, WaitKind, &'a Wait)>;

/// What `st` waits for now (empty when it waits for nothing).
pub fn waits(st: &ExecutionState) -> Waits<'_> {
    st.active.iter().filter_map(|(node, a)| a.wait.as_ref().map(|w| (node.as_str(), WaitKind::of(w), w))).collect()
}

/// How far an execution is from being settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    /// It ended.
    Ended,
    /// Parked on events or approvals, none past its deadline.
    Parked,
    /// Every active node waits on children, each of which that may run has
    /// started (whether they settled is theirs to say).
    OnChildren,
    /// It moves on by itself: a node runs, a timer or retry is pending, a
    /// deadline is due, a child ended unrecorded or has yet to start.
    No,
}

impl Settled {
    pub fn yes(self) -> bool {
        self != Settled::No
    }
}

/// Whether only the outside can move `st` on, at `now`. `due`: something
/// the caller read is about to move it: a due entry in the timer index (a
/// deadline, a parent's wake-up), or a kept event for a key it waits for.
/// `children`: the index status of each unfinished child of its fan-outs
/// that has started (a child not in it has not).
pub fn settled(
    workflow: &Workflow,
    st: &ExecutionState,
    now: u64,
    due: bool,
    children: &HashMap<ExecutionId, Status>,
) -> Settled {
    if st.phase.is_terminal() {
        return Settled::Ended;
    }
    if due {
        return Settled::No;
    }
    if st.parked() {
        let outside = |w: &Wait| (w.event.is_some() || w.prompt.is_some()) && w.deadline_ms.is_none_or(|d| d > now);
        return match st.active.values().filter_map(|a| a.wait.as_ref()).all(outside) {
            true => Settled::Parked,
            false => Settled::No,
        };
    }
    if st.active.is_empty() || !st.active.values().all(|a| a.fan_out.is_some() && a.wait.is_none()) {
        return Settled::No;
    }
    for (node, a) in &st.active {
        let Some(f) = &a.fan_out else { continue };
        let limit = match workflow.node(node).map(|n| &n.kind) {
            Some(NodeKind::Parallel(p)) => p.max_concurrency.map_or(usize::MAX, |m| m as usize),
            _ => usize::MAX,
        };
        let unfinished: Vec<ExecutionId> = (0..f.branches)
            .filter(|b| !f.finished.contains_key(b))
            .map(|b| ExecutionId::child(st.id, node, a.visit, f.attempt, b))
            .collect();
        let mut started = 0;
        for c in &unfinished {
            match children.get(c) {
                // Ended, and the parent has not journaled it yet: it is about to move.
                Some(s) if s.is_terminal() => return Settled::No,
                Some(_) => started += 1,
                None => {}
            }
        }
        if started < unfinished.len().min(limit) {
            return Settled::No;
        }
    }
    Settled::OnChildren
}
