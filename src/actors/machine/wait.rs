//! Parking and what ends it: `Waiting`, `SignalReceived`, `WaitTimedOut`,
//! `TimerFired`, `ApprovalDecided`, and tool calls waiting for decisions:
//! `CallsPending`, `CallDecided`.

use super::*;

/// `Waiting`: the node parks; a signal for it that came early is taken now.
pub(super) fn waiting(workflow: &Workflow, st: &mut ExecutionState, rec: &Record) -> Vec<Command> {
    let Event::Waiting { node, visit, event, deadline_ms, prompt } = &rec.event else { return Vec::new() };
    let Some(a) = st.active.get_mut(node).filter(|a| a.visit == *visit && a.attempt > 0) else {
        return inconsistent(format!("node `{node}` visit {visit} waits without running"));
    };
    a.wait = Some(Wait {
        event: event.clone(),
        deadline_ms: *deadline_ms,
        prompt: prompt.clone(),
        since_ms: rec.at_ms,
        calls: false,
    });
    let attempt = a.attempt;
    // An event that arrived before the execution got here is kept.
    if let Some(key) = event
        && let Some(i) = st.inbox.iter().position(|(k, _)| k == key)
    {
        let (_, payload) = st.inbox.remove(i).expect("position is in range");
        return vec![answer(workflow, st, node, *visit, attempt, &payload)];
    }
    Vec::new()
}

/// `SignalReceived`: answers the wait for its key, or is kept for one.
pub(super) fn signal_received(workflow: &Workflow, st: &mut ExecutionState, rec: &Record) -> Vec<Command> {
    let Event::SignalReceived { key, payload } = &rec.event else { return Vec::new() };
    let waiting = st
        .active
        .iter()
        .find(|(_, a)| a.wait.as_ref().and_then(|w| w.event.as_ref()) == Some(key))
        .map(|(n, a)| (n.clone(), a.visit, a.attempt));
    match waiting {
        Some((node, visit, attempt)) => {
            st.active.get_mut(&node).expect("found above").wait = None;
            vec![answer(workflow, st, &node, visit, attempt, payload)]
        }
        None => {
            st.inbox.push_back((key.clone(), payload.clone()));
            Vec::new()
        }
    }
}

/// `WaitTimedOut`: go on at `on_timeout`, or fail the node (a timer of an
/// old journal ends normally).
pub(super) fn wait_timed_out(workflow: &Workflow, st: &mut ExecutionState, rec: &Record) -> Vec<Command> {
    let Event::WaitTimedOut { node, visit } = &rec.event else { return Vec::new() };
    let Some(a) = st.active.get_mut(node).filter(|a| a.visit == *visit && a.wait.is_some()) else {
        return Vec::new();
    };
    let wait = a.wait.take().expect("checked above");
    let attempt = a.attempt;
    let spec = workflow.node(node).map(|n| &n.kind);
    let on_timeout = match spec {
        Some(NodeKind::Wait(_)) if wait.event.is_none() => {
            // A timer, as journals before `TimerFired` ended it:
            // firing is its normal end.
            return vec![Command::Resolve {
                node: node.clone(),
                visit: *visit,
                attempt,
                patch: Map::new(),
                next: None,
            }];
        }
        Some(NodeKind::Wait(w)) => w.on_timeout.clone(),
        Some(NodeKind::Approval(a)) => a.on_timeout.clone(),
        _ => None,
    };
    let what = match &wait.event {
        Some(key) => format!("event `{key}`"),
        None => "an approval".to_string(),
    };
    match on_timeout {
        Some(to) => {
            vec![Command::Resolve { node: node.clone(), visit: *visit, attempt, patch: Map::new(), next: Some(to) }]
        }
        None => vec![Command::FailNode {
            node: node.clone(),
            visit: *visit,
            attempt,
            class: ErrorClass::Timeout,
            message: format!("no {what} within timeout_ms and no `on_timeout`"),
        }],
    }
}

/// `ApprovalDecided`: the decision goes into `output_key`; rejected goes
/// on at `on_reject`, or fails the execution.
pub(super) fn approval_decided(workflow: &Workflow, st: &mut ExecutionState, rec: &Record) -> Vec<Command> {
    let Event::ApprovalDecided { node, visit, approved, by, comment } = &rec.event else { return Vec::new() };
    let Some(a) = st.active.get_mut(node).filter(|a| a.visit == *visit && a.wait.is_some()) else {
        return inconsistent(format!("a decision for node `{node}` visit {visit}, which is not waiting"));
    };
    a.wait = None;
    let attempt = a.attempt;
    st.decisions
        .insert(node.clone(), Decision { visit: *visit, approved: *approved, by: by.clone(), at_ms: rec.at_ms });
    let Some(NodeKind::Approval(spec)) = workflow.node(node).map(|n| &n.kind) else {
        return inconsistent(format!("a decision for node `{node}`, which is not an approval"));
    };
    let decision = json!({
        "decision": if *approved { "approved" } else { "rejected" },
        "by": by,
        "comment": comment,
        "at": crate::clock::format_ms(rec.at_ms),
    });
    let patch = spec.output_key.iter().map(|k| (k.clone(), decision.clone())).collect();
    match (*approved, &spec.on_reject) {
        (true, _) => vec![Command::Resolve { node: node.clone(), visit: *visit, attempt, patch, next: None }],
        (false, Some(to)) => {
            vec![Command::Resolve { node: node.clone(), visit: *visit, attempt, patch, next: Some(to.clone()) }]
        }
        (false, None) => {
            let why = comment.as_deref().map(|c| format!(": {c}")).unwrap_or_default();
            vec![Command::Fail { node: Some(node.clone()), error: format!("approval `{node}` rejected by {by}{why}") }]
        }
    }
}

/// `TimerFired`: a timer's normal end.
pub(super) fn timer_fired(_workflow: &Workflow, st: &mut ExecutionState, rec: &Record) -> Vec<Command> {
    let Event::TimerFired { node, visit } = &rec.event else { return Vec::new() };
    let Some(a) = st.active.get_mut(node).filter(|a| a.visit == *visit && a.wait.is_some()) else {
        return Vec::new();
    };
    a.wait = None;
    let attempt = a.attempt;
    vec![Command::Resolve { node: node.clone(), visit: *visit, attempt, patch: Map::new(), next: None }]
}

/// A signal answers what a parked node waits for. A wait resolves with
/// the payload; an agent node (whose remote task asked for input) runs
/// again as its next attempt, which sends the payload on the same remote
/// task and goes on waiting for it.
pub(super) fn answer(
    workflow: &Workflow,
    st: &mut ExecutionState,
    node: &str,
    visit: u32,
    attempt: u32,
    payload: &Json,
) -> Command {
    if let Some(NodeKind::Agent(_)) = workflow.node(node).map(|n| &n.kind) {
        return match payload.value() {
            Ok(v) => {
                st.agents.entry(node.to_string()).or_default().answered(visit, v);
                Command::Start { node: node.into(), visit, attempt: attempt + 1 }
            }
            Err(e) => Command::FailNode {
                node: node.into(),
                visit,
                attempt,
                class: ErrorClass::InvalidOutput,
                message: format!("the event's payload: {e}"),
            },
        };
    }
    resolve_with_payload(workflow, node, visit, attempt, payload)
}

pub(super) fn resolve_with_payload(
    workflow: &Workflow,
    node: &str,
    visit: u32,
    attempt: u32,
    payload: &Json,
) -> Command {
    let output_key = match workflow.node(node).map(|n| &n.kind) {
        Some(NodeKind::Wait(w)) => w.output_key.clone(),
        _ => None,
    };
    match (output_key, payload.value()) {
        (None, _) => Command::Resolve { node: node.into(), visit, attempt, patch: Map::new(), next: None },
        (Some(k), Ok(v)) => {
            Command::Resolve { node: node.into(), visit, attempt, patch: Map::from_iter([(k, v)]), next: None }
        }
        (Some(_), Err(e)) => Command::FailNode {
            node: node.into(),
            visit,
            attempt,
            class: ErrorClass::InvalidOutput,
            message: format!("the event's payload: {e}"),
        },
    }
}

/// `CallsPending`: the running attempt asked for decisions on these tool
/// calls and ended; the node parks until each is decided.
pub(super) fn calls_pending(_workflow: &Workflow, st: &mut ExecutionState, rec: &Record) -> Vec<Command> {
    let Event::CallsPending { node, visit, attempt, calls } = &rec.event else { return Vec::new() };
    let Some(a) = st.active.get_mut(node).filter(|a| a.visit == *visit && a.attempt == *attempt) else {
        return inconsistent(format!("node `{node}` visit {visit} asked for decisions without running"));
    };
    let approvals = st.approvals.entry(node.clone()).or_default();
    if approvals.visit != *visit {
        *approvals = VisitApprovals { visit: *visit, ..Default::default() };
    }
    for c in calls {
        if approvals.calls.iter().any(|known| known.call.id == c.id) {
            return inconsistent(format!("node `{node}` visit {visit} asked twice for a decision on `{}`", c.id));
        }
        let call = crate::nodes::approvals::PendingCall {
            id: c.id.clone(),
            tool: c.tool.clone(),
            arguments: c.arguments.clone(),
            prompt: c.prompt.clone(),
        };
        approvals.calls.push(CallApproval { call, decision: None });
    }
    let prompt = Some(calls_prompt(approvals));
    a.wait = Some(Wait { event: None, deadline_ms: None, prompt, since_ms: rec.at_ms, calls: true });
    Vec::new()
}

/// `CallDecided`: one pending tool call is decided; once none is left,
/// the node runs again as a continuation of its visit (not a retry).
pub(super) fn call_decided(_workflow: &Workflow, st: &mut ExecutionState, rec: &Record) -> Vec<Command> {
    let Event::CallDecided { node, visit, call, approved, by, comment } = &rec.event else { return Vec::new() };
    let waiting = st.active.get(node).filter(|a| a.visit == *visit && a.wait.as_ref().is_some_and(|w| w.calls));
    let approvals = st.approvals.get_mut(node).filter(|v| v.visit == *visit);
    let (Some(a), Some(approvals)) = (waiting, approvals) else {
        return inconsistent(format!(
            "a decision on tool call `{call}` of node `{node}` visit {visit}, which is not waiting"
        ));
    };
    let attempt = a.attempt;
    let Some(pending) = approvals.calls.iter_mut().find(|c| c.call.id == *call && c.decision.is_none()) else {
        return inconsistent(format!("a decision on tool call `{call}`, which does not wait for one"));
    };
    pending.decision = Some(crate::nodes::CallDecision {
        approved: *approved,
        by: by.clone(),
        comment: comment.clone(),
        at_ms: rec.at_ms,
    });
    let a = st.active.get_mut(node).expect("found above");
    if approvals.undecided().next().is_some() {
        if let Some(w) = a.wait.as_mut() {
            w.prompt = Some(calls_prompt(approvals));
        }
        return Vec::new();
    }
    a.wait = None;
    approvals.rounds += 1;
    vec![Command::Start { node: node.clone(), visit: *visit, attempt: attempt + 1 }]
}

/// What a node waiting on tool calls asks: each undecided call's id and prompt.
fn calls_prompt(approvals: &VisitApprovals) -> String {
    let each: Vec<String> = approvals.undecided().map(|c| format!("{}: {}", c.call.id, c.call.prompt)).collect();
    format!("tool calls wait for a decision: {}", each.join("; "))
}
