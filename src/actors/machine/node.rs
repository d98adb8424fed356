//! A node visit's events: `NodeScheduled`, `NodeStarted`, `Exchange`,
//! `Call`, `NodeCompleted` (the patch merged, the next node scheduled)
//! and `NodeFailed` (retried at its deadline, or the execution fails).

use super::*;

/// `NodeScheduled`: a new visit of the node, counted against `max_steps`;
/// starts its first attempt.
pub(super) fn node_scheduled(_workflow: &Workflow, st: &mut ExecutionState, rec: &Record) -> Vec<Command> {
    let Event::NodeScheduled { node, visit } = &rec.event else { return Vec::new() };
    st.steps += 1;
    st.visits.insert(node.clone(), *visit);
    st.agents.remove(node);
    st.calls.remove(node);
    st.approvals.remove(node);
    st.active.insert(
        node.clone(),
        ActiveNode {
            visit: *visit,
            attempt: 0,
            retry_at: None,
            panics: Vec::new(),
            wait: None,
            fan_out: None,
            started_ms: 0,
        },
    );
    vec![Command::Start { node: node.clone(), visit: *visit, attempt: 1 }]
}

/// `NodeStarted`: an attempt begins (a retry's deadline is over); run it.
pub(super) fn node_started(_workflow: &Workflow, st: &mut ExecutionState, rec: &Record) -> Vec<Command> {
    let Event::NodeStarted { node, visit, attempt } = &rec.event else { return Vec::new() };
    match st.active.get_mut(node) {
        Some(a) if a.visit == *visit => {
            a.attempt = *attempt;
            a.retry_at = None;
            a.wait = None;
            a.fan_out = None;
            a.started_ms = rec.at_ms;
            vec![Command::Effect(Effect::Run { node: node.clone(), visit: *visit, attempt: *attempt })]
        }
        _ => inconsistent(format!("node `{node}` visit {visit} started without being scheduled")),
    }
}

/// `NodeCompleted`: merge the patch, then schedule the next node, or
/// complete the execution when nothing is left.
pub(super) fn node_completed(_workflow: &Workflow, st: &mut ExecutionState, rec: &Record) -> Vec<Command> {
    let Event::NodeCompleted { node, visit, patch, next, .. } = &rec.event else { return Vec::new() };
    if st.active.get(node).map(|a| a.visit) != Some(*visit) {
        return inconsistent(format!("node `{node}` visit {visit} completed without running"));
    }
    st.active.remove(node);
    st.agents.remove(node);
    st.calls.remove(node);
    st.approvals.remove(node);
    match patch.object() {
        Ok(p) if p.is_empty() => {}
        Ok(p) => {
            st.state_bytes = st.state_bytes_after(&p);
            if let Some(written) = &mut st.written {
                written.extend(p.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
            Arc::make_mut(&mut st.state).extend(p);
        }
        Err(e) => return inconsistent(format!("patch of node `{node}`: {e}")),
    }
    // A parallel branch ends where its chain meets the join.
    let next = next.as_ref().filter(|n| st.until.as_ref() != Some(*n));
    match next {
        Some(n) => {
            let visit = st.visits.get(n).copied().unwrap_or(0) + 1;
            vec![st.schedule(n, visit)]
        }
        None if st.active.is_empty() => vec![Command::Complete],
        None => Vec::new(),
    }
}

/// `NodeFailed`: the recorded retry decision: wait for the retry's
/// deadline, or fail the execution. A fan-out's children are cancelled.
pub(super) fn node_failed(_workflow: &Workflow, st: &mut ExecutionState, rec: &Record) -> Vec<Command> {
    let Event::NodeFailed { node, visit, class, message, retry, .. } = &rec.event else { return Vec::new() };
    let Some(a) = st.active.get_mut(node).filter(|a| a.visit == *visit) else {
        return inconsistent(format!("node `{node}` visit {visit} failed without running"));
    };
    if *class == ErrorClass::Panic {
        a.panics.push(rec.at_ms);
    }
    a.wait = None;
    let orphans = take_unfinished(st.id, node, a);
    st.orphans.extend(orphans.iter().copied());
    let a = st.active.get_mut(node).expect("checked above");
    let mut cmds = cancel(orphans);
    match retry {
        RetryDecision::Retry { attempt, at_ms } => {
            a.retry_at = Some((*attempt, *at_ms));
            cmds.push(Command::Effect(Effect::RetryAt {
                node: node.clone(),
                visit: *visit,
                attempt: *attempt,
                at_ms: *at_ms,
            }));
        }
        RetryDecision::GiveUp => cmds.push(Command::Fail {
            node: Some(node.clone()),
            error: format!("node `{node}` failed ({class}): {message}"),
        }),
    }
    cmds
}

/// `Exchange`: failed attempts cost too, the usage is the sum over
/// exchanges; an agent node keeps its remote task's answer.
pub(super) fn exchange(workflow: &Workflow, st: &mut ExecutionState, rec: &Record) -> Vec<Command> {
    let Event::Exchange { usage, node, visit, response, .. } = &rec.event else { return Vec::new() };
    st.usage.add(usage);
    if let Some(NodeKind::Agent(_)) = workflow.node(node).map(|n| &n.kind) {
        st.agents.entry(node.clone()).or_default().exchanged(*visit, response);
    }
    Vec::new()
}

/// `Call`: a running visit completed a call; it counts in the usage now,
/// and a later attempt of the visit reads it back. Calls are numbered in
/// order from 1: any other number is a journal inconsistency.
pub(super) fn call(_workflow: &Workflow, st: &mut ExecutionState, rec: &Record) -> Vec<Command> {
    let Event::Call { node, visit, call, .. } = &rec.event else { return Vec::new() };
    if st.active.get(node).map(|a| a.visit) != Some(*visit) {
        return inconsistent(format!("node `{node}` visit {visit} journaled call {} without running", call.n));
    }
    let calls = st.calls.entry(node.clone()).or_default();
    if calls.visit != *visit {
        *calls = VisitCalls { visit: *visit, records: Vec::new() };
    }
    let expected = calls.records.len() as u32 + 1;
    if call.n != expected {
        return inconsistent(format!(
            "node `{node}` visit {visit} journaled call {} where call {expected} was next",
            call.n
        ));
    }
    st.usage.add(&call.usage);
    calls.records.push(call.clone());
    Vec::new()
}
