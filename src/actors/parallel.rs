//! ParallelActor: runs the children of one fan-out (a `parallel` node's
//! branches, or a `workflow` node's child) and reports each one's end to
//! its ExecutionActor, which journals it.
//!
//! Children are executions of their own, with their own journals, started
//! through the supervisor. Their ids are derived from the parent, the node,
//! the visit, the attempt and the branch, so after a crash the parent finds
//! the same children: a finished one is reported from its journal, a
//! running one is awaited, a missing one is started. At most
//! `max_concurrency` run at once.

use std::collections::VecDeque;
use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use serde_json::Map;
use tokio::task::JoinHandle;
use tracing::warn;

use super::Shared;
use super::handles::{ExecutionHandle, SupervisorHandle};
use super::messages::ParallelMsg;
use crate::id::ExecutionId;
use crate::journal::{BranchOutcome, Event, Json, Status};
use crate::nodes::control::ChildSpec;

pub(crate) struct ParallelActor;

pub(crate) struct ParallelArgs {
    pub parent: ExecutionHandle,
    pub parent_id: ExecutionId,
    pub node: String,
    pub visit: u32,
    pub attempt: u32,
    /// The children that have not finished, by branch number.
    pub children: Vec<(u32, ChildSpec)>,
    pub max_concurrency: usize,
    pub services: Arc<Shared>,
    pub supervisor: SupervisorHandle,
    /// The content hash of the children's workflow (they all run one).
    pub hash: String,
    /// The parent's `FanOut` record: branches start from its state then.
    pub state_at: u64,
}

pub(crate) struct ParallelState {
    args: ParallelArgs,
    /// Branches report the keys they wrote; a sub-workflow, its final state.
    branch: bool,
    pending: VecDeque<(u32, ChildSpec)>,
    running: usize,
    /// Ends not yet sent to the parent: sent as one batch (one journal
    /// append) whenever the parent has taken the previous one, so a
    /// thousand branches ending together cost a handful of syncs.
    ready: Vec<(u32, BranchOutcome)>,
    /// A batch is with the parent.
    sent: bool,
    watchers: Vec<JoinHandle<()>>,
}

impl Actor for ParallelActor {
    type Msg = ParallelMsg;
    type State = ParallelState;
    type Arguments = ParallelArgs;

    async fn pre_start(
        &self,
        _: ActorRef<ParallelMsg>,
        mut args: ParallelArgs,
    ) -> Result<ParallelState, ActorProcessingErr> {
        let branch = args.children.first().is_none_or(|(_, c)| c.until.is_some());
        let pending = std::mem::take(&mut args.children).into();
        Ok(ParallelState { args, branch, pending, running: 0, ready: Vec::new(), sent: false, watchers: Vec::new() })
    }

    async fn post_start(
        &self,
        myself: ActorRef<ParallelMsg>,
        st: &mut ParallelState,
    ) -> Result<(), ActorProcessingErr> {
        start_more(&myself, st).await
    }

    async fn handle(
        &self,
        myself: ActorRef<ParallelMsg>,
        msg: ParallelMsg,
        st: &mut ParallelState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            ParallelMsg::Ended { branch, child, outcome } => {
                st.running = st.running.saturating_sub(1);
                let outcome = match outcome {
                    Some(o) => o,
                    None => child_outcome(&st.args.services, child, st.branch)?,
                };
                st.ready.push((branch, outcome));
                start_more(&myself, st).await?;
            }
            ParallelMsg::Taken => st.sent = false,
        }
        if !st.sent && !st.ready.is_empty() {
            let a = &st.args;
            let ends = std::mem::take(&mut st.ready);
            st.sent = a.parent.branches_done(a.node.clone(), a.visit, a.attempt, ends);
        }
        Ok(())
    }

    async fn post_stop(&self, _: ActorRef<ParallelMsg>, st: &mut ParallelState) -> Result<(), ActorProcessingErr> {
        for w in st.watchers.drain(..) {
            w.abort();
        }
        Ok(())
    }
}

/// Start children until `max_concurrency` run.
async fn start_more(myself: &ActorRef<ParallelMsg>, st: &mut ParallelState) -> Result<(), ActorProcessingErr> {
    while st.running < st.args.max_concurrency {
        let Some((branch, spec)) = st.pending.pop_front() else { break };
        st.running += 1;
        let a = &st.args;
        let child = ExecutionId::child(a.parent_id, &a.node, a.visit, a.attempt, branch);
        // Listen before looking, so an end between the two is not missed.
        let finished = a.services.on_finished(child);
        let meta = a.services.journal.meta(child)?;
        // The hash the child started with, which its IR is stored under
        // (one journaled by an earlier version differs from the hash of
        // the same workflow now).
        let stored_hash = meta.as_ref().map(|m| m.workflow_hash.clone());
        match meta.map(|m| m.status) {
            None => {
                let hash = a.hash.clone();
                // A branch names its parent's state; a sub-workflow gets its own input.
                let (first, base) = match &spec.until {
                    Some(_) => (
                        Event::BranchStarted {
                            workflow_id: spec.workflow.id.clone(),
                            workflow_version: spec.workflow.version.clone(),
                            workflow_hash: hash.clone(),
                            vars: Json::from_map(&spec.vars),
                            parent: a.parent_id.to_string(),
                            parent_node: a.node.clone(),
                            parent_visit: a.visit,
                            branch,
                            start: spec.start.clone(),
                            until: spec.until.clone(),
                            state_at: a.state_at,
                        },
                        Some(spec.input.clone()),
                    ),
                    None => (
                        Event::ChildStarted {
                            workflow_id: spec.workflow.id.clone(),
                            workflow_version: spec.workflow.version.clone(),
                            workflow_hash: hash.clone(),
                            input: Json::from_map(&spec.input),
                            vars: Json::from_map(&spec.vars),
                            parent: a.parent_id.to_string(),
                            parent_node: a.node.clone(),
                            parent_visit: a.visit,
                            branch,
                            start: spec.start.clone(),
                            until: None,
                        },
                        None,
                    ),
                };
                let workflow = a.services.cache_workflow(&hash, spec.workflow);
                let started = a.supervisor.start(child, workflow, hash, first, base)?;
                let me = myself.clone();
                st.watchers.push(tokio::spawn(async move {
                    let outcome = match started.await {
                        Ok(()) => {
                            let _ = finished.await;
                            None
                        }
                        Err(e) => Some(BranchOutcome::Failed { error: format!("the child did not start: {e}") }),
                    };
                    let _ = me.cast(ParallelMsg::Ended { branch, child, outcome });
                }));
            }
            Some(status) => {
                if status == Status::Running {
                    // Not live after a restart without resume: rehydrate it
                    // (the supervisor ignores this when it is live).
                    let hash = stored_hash.unwrap_or_else(|| spec.workflow.content_hash());
                    let workflow = a.services.cache_workflow(&hash, spec.workflow);
                    let _ = a.supervisor.rehydrate(child, workflow, hash);
                }
                let me = myself.clone();
                let terminal = status.is_terminal();
                st.watchers.push(tokio::spawn(async move {
                    if !terminal {
                        let _ = finished.await;
                    }
                    let _ = me.cast(ParallelMsg::Ended { branch, child, outcome: None });
                }));
            }
        }
    }
    Ok(())
}

/// How a finished child ended, from its journal: for a branch, the keys it
/// wrote (every patch, in order); for a sub-workflow, its final state.
pub(crate) fn child_outcome(
    services: &Shared,
    child: ExecutionId,
    branch: bool,
) -> Result<BranchOutcome, ActorProcessingErr> {
    let records = services.journal.read(child)?;
    let mut written = Map::new();
    for r in &records {
        match &r.event {
            Event::NodeCompleted { patch, .. } | Event::Forked { patch, .. } if branch => {
                written.extend(patch.object()?)
            }
            Event::ExecutionCompleted { .. } if branch => {
                return Ok(BranchOutcome::Completed { patch: Json::from_map(&written) });
            }
            Event::ExecutionCompleted { state } => return Ok(BranchOutcome::Completed { patch: state.clone() }),
            Event::ExecutionFailed { error, .. } => return Ok(BranchOutcome::Failed { error: error.clone() }),
            Event::ExecutionCancelled { .. } => return Ok(BranchOutcome::Cancelled),
            _ => {}
        }
    }
    warn!(child = %child, "child reported finished without a terminal event");
    Ok(BranchOutcome::Failed { error: format!("child execution {child} stopped without finishing") })
}
