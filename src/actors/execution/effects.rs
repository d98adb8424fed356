//! Carrying out a step's effects once its events are durable: spawning a
//! NodeActor for a node with side effects (an eval node that scores a
//! trajectory gets the execution's tool calls, read from the journal here),
//! arming a retry's timer, starting a fan-out's ParallelActor, cancelling
//! children, and reporting the end.

use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef, MessagingErr};
use tracing::debug;

use super::inline::{ctx, is_inline};
use super::persist::{drive, status_of};
use super::{Running, State};
use crate::actors::handles::ExecutionHandle;
use crate::actors::machine::{Effect, Input, NodeResult};
use crate::actors::messages::ExecutionMsg;
use crate::actors::node::{NodeActor, NodeArgs};
use crate::actors::parallel::{ParallelActor, ParallelArgs};
use crate::ir::NodeKind;
use crate::nodes::control;

pub(super) async fn carry_out(
    myself: &ActorRef<ExecutionMsg>,
    st: &mut State,
    effects: Vec<Effect>,
) -> Result<(), ActorProcessingErr> {
    for effect in effects {
        match effect {
            // Past the inline budget: go on in a fresh message, so a long
            // chain of pure nodes never holds the mailbox for long.
            Effect::Run { node, visit, attempt } if is_inline(st, &node) => {
                let _ = myself.cast(ExecutionMsg::RunPure { node, visit, attempt });
            }
            Effect::Run { node, visit, attempt } => {
                // A trajectory scorer looks at every tool call made before it.
                let tool_calls = match st.wf.node(&node).map(|n| &n.kind) {
                    Some(NodeKind::Eval(e)) if e.scores_trajectory() => {
                        crate::actors::tool_calls(&st.services.journal.read(st.id)?)
                    }
                    _ => Vec::new(),
                };
                let args = NodeArgs {
                    execution_id: st.id,
                    workflow: st.wf.clone(),
                    node: node.clone(),
                    visit,
                    attempt,
                    state: st.machine.state.clone(),
                    vars: st.vars.clone(),
                    services: st.services.clone(),
                    parent: ExecutionHandle::new(myself.clone()),
                    usage: st.machine.usage,
                    started_ms: st.machine.started_ms,
                    agent: st.machine.agents.get(&node).filter(|r| r.visit == visit).cloned(),
                    calls: st
                        .machine
                        .calls
                        .get(&node)
                        .filter(|c| c.visit == visit)
                        .map(|c| c.records.iter().map(crate::actors::node::to_node).collect()),
                    approvals: st
                        .machine
                        .approvals
                        .get(&node)
                        .filter(|a| a.visit == visit)
                        .map(|a| a.calls.clone())
                        .unwrap_or_default(),
                    tool_calls,
                    history: st.machine.history.clone(),
                    trace: trace_of(st, &node, visit),
                    resumed: st.resumed.remove(&(node.clone(), visit, attempt)),
                    inside: inside_of(st, &node),
                };
                let actor = start_node(myself, st, args).await?;
                st.nodes.insert(actor.get_id(), Running { actor, node, visit, attempt });
            }
            // The deadline is in the timer index too (for a restart); while
            // live, the actor keeps its own timer.
            Effect::RetryAt { node, attempt, at_ms, .. } => {
                let delay = Duration::from_millis(at_ms.saturating_sub(st.services.clock.now_ms()));
                debug!(execution_id = %st.id, node = %node, attempt, ?delay, "retry armed");
                myself.send_after(delay, || ExecutionMsg::Due);
            }
            Effect::Children { node, visit, attempt } => start_children(myself, st, node, visit, attempt).await?,
            Effect::CancelChildren(ids) => {
                if let Some(p) = st.parallel.take() {
                    p.stop(None);
                }
                for child in ids {
                    st.supervisor.cancel_quietly(child, format!("parent execution {} no longer needs it", st.id));
                }
            }
            Effect::Finished => finish(myself, st),
        }
    }
    Ok(())
}

/// The execution tree's root, looked up once (see [`crate::actors::trace_root`]).
fn root_of(st: &mut State) -> crate::id::ExecutionId {
    match st.root {
        Some(root) => root,
        None => {
            let root = match &st.machine.parent {
                None => st.id,
                Some(link) => crate::actors::trace_root(st.services.journal.as_ref(), link.id),
            };
            *st.root.insert(root)
        }
    }
}

/// The trace context of a node visit, when traces are exported.
fn trace_of(st: &mut State, node: &str, visit: u32) -> Option<crate::nodes::trace::TraceContext> {
    use crate::nodes::trace;
    if !st.services.tracing {
        return None;
    }
    let root = root_of(st);
    Some(trace::TraceContext { trace_id: trace::trace_id(root), span_id: trace::visit_span(st.id, node, visit) })
}

/// For a node that may stream (a model node or a local agent with
/// `stream: true`) in a branch or sub-workflow: its root, and where it is
/// in the tree. Nothing (no root looked up) for any other node.
fn inside_of(st: &mut State, node: &str) -> Option<(crate::id::ExecutionId, crate::nodes::stream::Inside)> {
    use crate::ir::NodeKind;
    let link = st.machine.parent.as_ref()?;
    let streams = match st.wf.node(node).map(|n| &n.kind) {
        Some(NodeKind::Model(m)) => m.stream,
        Some(NodeKind::Agent(a)) => a.local && st.wf.agents.values().any(|d| d.stream),
        _ => false,
    };
    if !streams {
        return None;
    }
    let (parent_node, branch) = (link.node.clone(), link.branch);
    let inside = crate::nodes::stream::Inside { execution: st.id, parent_node, branch };
    Some((root_of(st), inside))
}

/// Hand an attempt to an idle NodeActor of this execution, or spawn one.
async fn start_node(
    myself: &ActorRef<ExecutionMsg>,
    st: &mut State,
    mut args: NodeArgs,
) -> Result<ActorRef<NodeArgs>, ActorProcessingErr> {
    while let Some(actor) = st.idle.pop() {
        match actor.cast(args) {
            Ok(()) => return Ok(actor),
            // It stopped meanwhile: the attempt comes back, try the next.
            Err(MessagingErr::SendErr(back)) => args = back,
            Err(e) => return Err(e.to_string().into()),
        }
    }
    let (actor, _) = Actor::spawn_linked(None, NodeActor, args, myself.get_cell()).await?;
    Ok(actor)
}

/// Start the ParallelActor of a fan-out: it starts the children that have
/// not finished (or finds them again after a restart) and reports each end.
async fn start_children(
    myself: &ActorRef<ExecutionMsg>,
    st: &mut State,
    node: String,
    visit: u32,
    attempt: u32,
) -> Result<(), ActorProcessingErr> {
    let Some(fan_out) = st.machine.active.get(&node).and_then(|a| a.fan_out.clone()) else { return Ok(()) };
    let plan = match st.plans.remove(&(node.clone(), visit, attempt)) {
        Some(plan) => plan,
        None => match control::children(&ctx(st, &node, visit, attempt), &st.wf, &st.machine.state) {
            Ok(plan) if plan.len() as u32 == fan_out.branches => plan,
            Ok(plan) => {
                let error = format!(
                    "node `{node}` fanned out to {}, and now computes {}: the journal and the workflow disagree",
                    crate::plural::count(fan_out.branches, "child", "children"),
                    plan.len()
                );
                let fail = Input::Fail { node: Some(node), error };
                return Box::pin(drive(myself, st, Some(fail), Vec::new())).await;
            }
            Err(e) => {
                let failed = Input::Node { node, visit, attempt, result: NodeResult::Ran(Err(e)), duration_us: 0 };
                return Box::pin(drive(myself, st, Some(failed), Vec::new())).await;
            }
        },
    };
    let spec = st.wf.node(&node).expect("active nodes are in the workflow");
    let max_concurrency = match &spec.kind {
        NodeKind::Parallel(p) => p.max_concurrency.map_or(usize::MAX, |n| n as usize),
        _ => 1,
    };
    let children = plan
        .into_iter()
        .enumerate()
        .map(|(b, spec)| (b as u32, spec))
        .filter(|(b, _)| !fan_out.finished.contains_key(b))
        .collect();
    let hash = match &spec.kind {
        NodeKind::Workflow(w) => w.workflow.content_hash(),
        _ => st.hash.clone(),
    };
    // Branches start from this state as of the fan-out: share it, so that
    // none of them reads it back from the journal.
    crate::actors::fold::share_base(&st.services, st.id, fan_out.seq, &st.machine.state);
    let args = ParallelArgs {
        state_at: fan_out.seq,
        hash,
        parent: ExecutionHandle::new(myself.clone()),
        parent_id: st.id,
        node,
        visit,
        attempt,
        children,
        max_concurrency,
        services: st.services.clone(),
        supervisor: st.supervisor.clone(),
    };
    if let Some(old) = st.parallel.take() {
        old.stop(None);
    }
    let (actor, _) = Actor::spawn_linked(None, ParallelActor, args, myself.get_cell()).await?;
    st.parallel = Some(actor);
    Ok(())
}

pub(super) fn finish(myself: &ActorRef<ExecutionMsg>, st: &State) {
    debug!(execution_id = %st.id, phase = ?st.machine.phase, "execution finished");
    // Whoever awaits the end gets the final state from here, not by replaying the history.
    let ended = crate::actors::Ended {
        status: status_of(&st.machine),
        state: st.machine.state.clone(),
        error: st.machine.error.clone(),
        usage: st.machine.usage,
    };
    st.services.notify_finished(st.id, Some(ended));
    myself.stop(None);
}
