//! The terminal events: `ExecutionCompleted`, `ExecutionFailed`,
//! `ExecutionCancelled`; children still running are cancelled.

use super::*;

/// `ExecutionCompleted`: the end.
pub(super) fn execution_completed(_workflow: &Workflow, st: &mut ExecutionState, rec: &Record) -> Vec<Command> {
    let Event::ExecutionCompleted { .. } = &rec.event else { return Vec::new() };
    st.phase = Phase::Completed;
    st.finished_ms = Some(rec.at_ms);
    st.active.clear();
    vec![Command::Effect(Effect::Finished)]
}

/// `ExecutionFailed`: the end, with the error.
pub(super) fn execution_failed(_workflow: &Workflow, st: &mut ExecutionState, rec: &Record) -> Vec<Command> {
    let Event::ExecutionFailed { error, .. } = &rec.event else { return Vec::new() };
    st.phase = Phase::Failed;
    st.finished_ms = Some(rec.at_ms);
    st.error = Some(error.clone());
    end_children(st)
}

/// `ExecutionCancelled`: the end, with the reason.
pub(super) fn execution_cancelled(_workflow: &Workflow, st: &mut ExecutionState, rec: &Record) -> Vec<Command> {
    let Event::ExecutionCancelled { reason } = &rec.event else { return Vec::new() };
    st.phase = Phase::Cancelled;
    st.finished_ms = Some(rec.at_ms);
    st.error = Some(format!("cancelled: {reason}"));
    end_children(st)
}

/// A terminal event: every running child is cancelled with the execution.
pub(super) fn end_children(st: &mut ExecutionState) -> Vec<Command> {
    let children = st.unfinished_children();
    st.orphans.clear();
    st.active.clear();
    let mut cmds = cancel(children);
    cmds.push(Command::Effect(Effect::Finished));
    cmds
}
