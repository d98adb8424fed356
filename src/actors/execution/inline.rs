//! Nodes that run inside the execution's step, without a NodeActor: the
//! pure kinds (set, branch, end), and the control kinds the execution
//! carries out itself (a wait or approval renders what it waits for, a
//! parallel or sub-workflow node computes its children). A pure node's
//! panic is caught and reported as a NodeActor's would be.

use std::panic::AssertUnwindSafe;
use std::time::Instant;

use futures::FutureExt;

use super::State;
use crate::actors::machine::{Effect, NodeResult};
use crate::ir::NodeKind;
use crate::journal::ErrorClass;
use crate::nodes::control;
use crate::nodes::{NodeCtx, NodeError, NodeOutput, executor_for, idempotency_key};

/// Carry out an attempt of a node inside the step: a wait or approval
/// renders what it waits for, a parallel or sub-workflow node computes its
/// children (kept for its ParallelActor), a pure node runs.
pub(super) fn run_inline(st: &mut State, node: &str, visit: u32, attempt: u32, now: u64) -> (NodeResult, u64) {
    match st.wf.node(node).map(|n| &n.kind) {
        Some(NodeKind::Wait(_) | NodeKind::Approval(_)) => match control::park(&ctx(st, node, visit, attempt), now) {
            Ok(p) => (NodeResult::Parks { event: p.event, deadline_ms: p.deadline_ms, prompt: p.prompt }, 0),
            Err(e) => (NodeResult::Ran(Err(e)), 0),
        },
        Some(NodeKind::Parallel(_) | NodeKind::Workflow(_)) => {
            match control::children(&ctx(st, node, visit, attempt), &st.wf, &st.machine.state) {
                Ok(plan) => {
                    let branches = plan.len() as u32;
                    st.plans.insert((node.to_string(), visit, attempt), plan);
                    (NodeResult::FansOut { branches }, 0)
                }
                Err(e) => (NodeResult::Ran(Err(e)), 0),
            }
        }
        _ => {
            let (result, duration_us) = run_pure(st, node, visit, attempt);
            (NodeResult::Ran(result), duration_us)
        }
    }
}

/// A node's context for work done inside the execution's step.
pub(super) fn ctx<'a>(st: &'a State, node: &str, visit: u32, attempt: u32) -> NodeCtx<'a> {
    let spec = st.wf.node(node).expect("active nodes are in the workflow");
    NodeCtx {
        resumed: false,
        inside: None,
        execution_id: st.id,
        node: spec,
        visit,
        attempt,
        idempotency_key: idempotency_key(st.id, node, visit),
        state: &st.machine.state,
        vars: &st.machine.vars,
        services: &st.services.env,
        usage: st.machine.usage,
        started_ms: st.machine.started_ms,
        workflow: &st.wf,
        agent: st.machine.agents.get(node).filter(|r| r.visit == visit),
        calls: &[],
        call_journal: None,
        approvals: &[],
        tool_calls: &[],
        handles: None,
        history: &st.machine.history,
    }
}

/// Whether a node runs inside the execution's step: pure kinds, and the
/// control kinds the execution carries out itself.
pub(super) fn is_inline(st: &State, node: &str) -> bool {
    st.wf.node(node).is_some_and(|n| {
        executor_for(&n.kind).is_pure()
            || matches!(
                n.kind,
                NodeKind::Wait(_) | NodeKind::Approval(_) | NodeKind::Parallel(_) | NodeKind::Workflow(_)
            )
    })
}

pub(super) fn runs_inline(st: &State, effect: &Effect) -> bool {
    matches!(effect, Effect::Run { node, .. } if is_inline(st, node))
}

/// Run a pure node inside the step. A panic is caught and reported like a
/// NodeActor's panic, so both paths share the restart budget.
fn run_pure(st: &State, node: &str, visit: u32, attempt: u32) -> (Result<NodeOutput, NodeError>, u64) {
    let ctx = ctx(st, node, visit, attempt);
    let kind = &ctx.node.kind;
    let began = Instant::now();
    let polled = std::panic::catch_unwind(AssertUnwindSafe(|| executor_for(kind).run(ctx).now_or_never()));
    let result = match polled {
        Ok(Some(r)) => r,
        Ok(None) => Err(NodeError::new(
            ErrorClass::Internal,
            format!("node kind `{}` claims to be pure but waited", kind.type_name()),
        )),
        Err(payload) => Err(NodeError::new(ErrorClass::Panic, panic_text(&*payload))),
    };
    (result, began.elapsed().as_micros() as u64)
}

fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic with a non-text payload".into())
}
