//! Folding a stored history into an [`ExecutionState`], parallel branches
//! included.
//!
//! A branch that starts with `BranchStarted` keeps no copy of its parent's
//! state: it names the parent's record it starts from. Folding it needs
//! that state, which is the parent's history folded up to that record
//! (recursively, for a branch of a branch). Siblings share one copy: the
//! runtime keeps each resolved state while any branch holds it
//! (`Shared::bases`), and a parent that starts its branches puts its own
//! state there first, so starting 10,000 branches reads nothing.

use std::sync::{Arc, Weak};

use serde_json::{Map, Value};

use super::machine::ExecutionState;
use super::{Error, Shared};
use crate::id::ExecutionId;
use crate::ir::Workflow;
use crate::journal::{Event, Record};

/// How deep branches of branches may nest before the journal is called
/// inconsistent (a cycle of parent links is never legitimate).
const MAX_NESTING: usize = 64;

/// Past this many entries, the cache of resolved states drops the dead ones.
const SWEEP_AT: usize = 1024;

/// Fold `records`, the whole history of execution `id` running `workflow`.
pub(crate) fn replay(
    services: &Shared,
    id: ExecutionId,
    workflow: &Workflow,
    records: &[Record],
) -> Result<ExecutionState, Error> {
    Ok(ExecutionState::replay_on(id, workflow, records, start_base(services, id, records)?))
}

/// The parent's state a branch's history starts from (`BranchStarted`);
/// `None` for any other history.
pub(crate) fn start_base(
    services: &Shared,
    id: ExecutionId,
    records: &[Record],
) -> Result<Option<Arc<Map<String, Value>>>, Error> {
    match records.first().map(|r| &r.event) {
        Some(Event::BranchStarted { parent, state_at, .. }) => Ok(Some(base_of(services, id, parent, *state_at, 0)?)),
        _ => Ok(None),
    }
}

/// Keep `state` as the state of `parent` at record `at`, for its branches.
pub(crate) fn share_base(services: &Shared, parent: ExecutionId, at: u64, state: &Arc<Map<String, Value>>) {
    let mut bases = services.bases.lock().expect("bases lock");
    if bases.len() >= SWEEP_AT {
        bases.retain(|_, weak| weak.strong_count() > 0);
    }
    bases.insert((parent, at), Arc::downgrade(state));
}

/// The state of `parent` as of its record `at` (what branch `child` starts from).
fn base_of(
    services: &Shared,
    child: ExecutionId,
    parent: &str,
    at: u64,
    depth: usize,
) -> Result<Arc<Map<String, Value>>, Error> {
    let inconsistent = |why: String| {
        Error::Journal(crate::journal::Error::Corrupt(format!("execution {child}: its start state: {why}")))
    };
    let parent: ExecutionId = parent.parse().map_err(|_| inconsistent(format!("unreadable parent id `{parent}`")))?;
    if depth >= MAX_NESTING {
        return Err(inconsistent(format!("more than {MAX_NESTING} nested parallel branches")));
    }
    if let Some(state) = services.bases.lock().expect("bases lock").get(&(parent, at)).and_then(Weak::upgrade) {
        return Ok(state);
    }
    let meta =
        services.journal.meta(parent)?.ok_or_else(|| inconsistent(format!("parent {parent} is not in the journal")))?;
    let workflow = services.workflow(parent, &meta.workflow_hash)?;
    let mut records = services.journal.read(parent)?;
    records.retain(|r| r.seq <= at);
    if records.last().map(|r| r.seq) != Some(at) {
        return Err(inconsistent(format!("parent {parent} has no record {at}")));
    }
    let grand = match records.first().map(|r| &r.event) {
        Some(Event::BranchStarted { parent: p, state_at, .. }) => {
            Some(base_of(services, parent, p, *state_at, depth + 1)?)
        }
        _ => None,
    };
    let state = ExecutionState::replay_on(parent, &workflow, &records, grand).state;
    share_base(services, parent, at, &state);
    Ok(state)
}
