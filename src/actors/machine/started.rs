//! The first event of an execution: `ExecutionStarted`, a child's
//! `ChildStarted`, a branch's `BranchStarted` (which starts from its
//! parent's state). Each schedules the start node.

use super::*;

/// `ExecutionStarted`: running, with its input as the state; schedules the
/// workflow's start node.
pub(super) fn execution_started(workflow: &Workflow, st: &mut ExecutionState, rec: &Record) -> Vec<Command> {
    let Event::ExecutionStarted { input, key, .. } = &rec.event else { return Vec::new() };
    st.phase = Phase::Running;
    st.started_ms = rec.at_ms;
    st.key = key.clone();
    st.state = Arc::new(input.object().unwrap_or_default());
    st.state_bytes = map_size(&st.state);
    vec![st.schedule(&workflow.start, 1)]
}

/// `SessionJoined`: the conversation so far of the execution's session,
/// for the nodes that answer in it. Its carried state is in the input
/// already; a history that does not read is no history (never a failure:
/// the turns are context, not state).
pub(super) fn session_joined(_workflow: &Workflow, st: &mut ExecutionState, rec: &Record) -> Vec<Command> {
    let Event::SessionJoined { history, .. } = &rec.event else { return Vec::new() };
    let turns = history.value().ok().and_then(|v| serde_json::from_value::<Vec<PastTurn>>(v).ok());
    st.history = Arc::new(turns.unwrap_or_default());
    Vec::new()
}

/// `Forked`: the state at the fork with the patch merged over it; the
/// fork's `NodeScheduled` follows in the same append and starts its node.
/// In a forked branch the keys set count as keys it wrote: the join takes
/// them.
pub(super) fn forked(_workflow: &Workflow, st: &mut ExecutionState, rec: &Record) -> Vec<Command> {
    let Event::Forked { patch, .. } = &rec.event else { return Vec::new() };
    let Ok(patch) = patch.object() else { return inconsistent("a fork's patch is not an object".into()) };
    if !patch.is_empty() {
        if let Some(written) = st.written.as_mut() {
            written.extend(patch.clone());
        }
        st.state_bytes = st.state_bytes_after(&patch);
        let state = Arc::make_mut(&mut st.state);
        state.extend(patch);
    }
    Vec::new()
}

/// `ChildStarted`: a sub-workflow or copied branch, with its own input and
/// its parent link; schedules its start node.
pub(super) fn child_started(_workflow: &Workflow, st: &mut ExecutionState, rec: &Record) -> Vec<Command> {
    let Event::ChildStarted { input, vars, parent, parent_node, parent_visit, branch, start, until, .. } = &rec.event
    else {
        return Vec::new();
    };
    st.phase = Phase::Running;
    st.started_ms = rec.at_ms;
    st.state = Arc::new(input.object().unwrap_or_default());
    st.state_bytes = map_size(&st.state);
    st.vars = vars.object().unwrap_or_default();
    st.until = until.clone();
    match parent.parse() {
        Ok(id) => st.parent = Some(ParentLink { id, node: parent_node.clone(), visit: *parent_visit, branch: *branch }),
        Err(_) => return inconsistent(format!("child of an unreadable parent id `{parent}`")),
    }
    vec![st.schedule(start, 1)]
}

/// `BranchStarted`: a branch that starts from its parent's state at the
/// fan-out (`base`, set by the shell) and records only the keys it writes.
pub(super) fn branch_started(_workflow: &Workflow, st: &mut ExecutionState, rec: &Record) -> Vec<Command> {
    let Event::BranchStarted { vars, parent, parent_node, parent_visit, branch, start, until, state_at, .. } =
        &rec.event
    else {
        return Vec::new();
    };
    st.phase = Phase::Running;
    st.started_ms = rec.at_ms;
    st.vars = vars.object().unwrap_or_default();
    st.until = until.clone();
    st.written = Some(Map::new());
    match parent.parse() {
        Ok(id) => st.parent = Some(ParentLink { id, node: parent_node.clone(), visit: *parent_visit, branch: *branch }),
        Err(_) => return inconsistent(format!("child of an unreadable parent id `{parent}`")),
    }
    match &st.base {
        Some(base) => {
            st.state = base.clone();
            st.state_bytes = map_size(&st.state);
        }
        None => {
            return inconsistent(format!("branch of {parent} started without its parent's state at record {state_at}"));
        }
    }
    vec![st.schedule(start, 1)]
}
