//! Fan-outs: `FanOut` and `BranchFinished`, and the join that decides a
//! parallel or sub-workflow node once enough of its children ended.

use super::*;

/// `FanOut`: start the children (they run until the join decides).
pub(super) fn fan_out(workflow: &Workflow, st: &mut ExecutionState, rec: &Record) -> Vec<Command> {
    let Event::FanOut { node, visit, attempt, branches } = &rec.event else { return Vec::new() };
    let Some(a) = st.active.get_mut(node).filter(|a| a.visit == *visit && a.attempt == *attempt) else {
        return inconsistent(format!("node `{node}` visit {visit} fanned out without running"));
    };
    a.fan_out = Some(FanOut { attempt: *attempt, branches: *branches, finished: BTreeMap::new(), seq: rec.seq });
    let mut cmds = vec![Command::Effect(Effect::Children { node: node.clone(), visit: *visit, attempt: *attempt })];
    cmds.extend(join(workflow, st, node));
    cmds
}

/// `BranchFinished`: a child's end, kept; the join may decide now.
pub(super) fn branch_finished(workflow: &Workflow, st: &mut ExecutionState, rec: &Record) -> Vec<Command> {
    let Event::BranchFinished { node, visit, branch, outcome } = &rec.event else { return Vec::new() };
    let Some(f) = st.active.get_mut(node).filter(|a| a.visit == *visit).and_then(|a| a.fan_out.as_mut()) else {
        // A branch that ended after its node was decided: nothing to do.
        return Vec::new();
    };
    f.finished.insert(*branch, outcome.clone());
    join(workflow, st, node)
}

/// A fan-out's result: the patch and where to go on, or why it failed.
pub(super) type Joined = Result<(Map<String, Value>, Option<String>), (ErrorClass, String)>;

/// Decide a fan-out once enough of its children have finished: complete
/// the node with the merged result, or fail it; children still running
/// are then cancelled.
pub(super) fn join(workflow: &Workflow, st: &mut ExecutionState, node: &str) -> Vec<Command> {
    let id = st.id;
    let Some(a) = st.active.get_mut(node) else { return Vec::new() };
    let Some(f) = &a.fan_out else { return Vec::new() };
    let (visit, attempt) = (a.visit, a.attempt);
    let kind = workflow.node(node).map(|n| &n.kind);
    let done = f.finished.len() as u32 == f.branches;
    let decided: Option<Joined> = match kind {
        Some(NodeKind::Workflow(spec)) => f.finished.get(&0).map(|outcome| match outcome {
            BranchOutcome::Completed { patch } => match patch.value() {
                Ok(v) => Ok((spec.output_key.iter().map(|k| (k.clone(), v.clone())).collect(), None)),
                Err(e) => Err((ErrorClass::Internal, format!("the child's final state: {e}"))),
            },
            BranchOutcome::Failed { error } => {
                Err((ErrorClass::ChildFailed, format!("the child workflow failed: {error}")))
            }
            BranchOutcome::Cancelled => Err((ErrorClass::ChildFailed, "the child workflow was cancelled".into())),
        }),
        Some(NodeKind::Parallel(p)) => {
            let failed = f.finished.iter().find_map(|(b, o)| match o {
                BranchOutcome::Failed { error } => Some(format!("branch {b} failed: {error}")),
                BranchOutcome::Cancelled => Some(format!("branch {b} was cancelled")),
                BranchOutcome::Completed { .. } => None,
            });
            let first_done = f.finished.values().find_map(|o| match o {
                BranchOutcome::Completed { patch } => Some(patch),
                _ => None,
            });
            let next = Some(p.join.clone());
            match (p.merge, p.on_error, failed) {
                (_, OnError::FailFast, Some(why)) => Err((ErrorClass::ChildFailed, why)),
                (Merge::First, _, _) if first_done.is_some() => first_done
                    .expect("checked")
                    .object()
                    .map(|m| (m, next))
                    .map_err(|e| (ErrorClass::Internal, e.to_string())),
                (Merge::First, _, Some(_)) if done => Err((
                    ErrorClass::ChildFailed,
                    format!("all {} failed", crate::plural::count(f.branches, "branch", "branches")),
                )),
                _ if !done => return Vec::new(),
                (Merge::Keys | Merge::First, _, _) => {
                    let mut merged = Map::new();
                    for o in f.finished.values() {
                        if let BranchOutcome::Completed { patch } = o {
                            merged.extend(patch.object().unwrap_or_default());
                        }
                    }
                    Ok((merged, next))
                }
                (Merge::Collect, _, _) => {
                    let list: Vec<Value> = f
                        .finished
                        .values()
                        .map(|o| match o {
                            BranchOutcome::Completed { patch } => patch.value().unwrap_or(Value::Null),
                            BranchOutcome::Failed { error } => json!({ "error": error }),
                            BranchOutcome::Cancelled => json!({ "error": "cancelled" }),
                        })
                        .collect();
                    Ok((p.output_key.iter().map(|k| (k.clone(), Value::Array(list.clone()))).collect(), next))
                }
            }
            .into()
        }
        _ => Some(Err((ErrorClass::Internal, format!("node `{node}` cannot fan out")))),
    };
    let Some(decided) = decided else { return Vec::new() };
    let orphans = take_unfinished(id, node, a);
    st.orphans.extend(orphans.iter().copied());
    let mut cmds = cancel(orphans);
    cmds.push(match decided {
        Ok((patch, next)) => Command::Resolve { node: node.to_string(), visit, attempt, patch, next },
        Err((class, message)) => Command::FailNode { node: node.to_string(), visit, attempt, class, message },
    });
    cmds
}
