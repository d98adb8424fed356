//! Waiting on executions: their end ([`Runtime::wait`]), their settling
//! (only the outside can move them on), their family (an execution and
//! the unfinished children of its fan-outs), their outcome, and what the
//! parked ones wait for. Reads the journal and listens to the feed; an
//! execution waited on that no actor carries is resumed first (see
//! `lifecycle.rs`), and nothing is delivered from here.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use serde_json::Value;

use super::{Error, Outcome, Runtime, Waiting};
use crate::id::ExecutionId;
use crate::ir::Workflow;
use crate::journal::{self, Event, ExecutionMeta, Record, Status, Usage};

impl Runtime {
    /// Submit and wait for the end.
    pub async fn run(&self, workflow: &Workflow, input: Value) -> Result<Outcome, Error> {
        let (id, _, end) = self.submit_watched(workflow, input, None, true).await?;
        // Listened to from before it started: its actor hands back the final
        // state, even when it ended within its first step.
        if let Some(end) = end
            && let Ok(Some(end)) = end.await
        {
            return Ok(Outcome::ended(id, end));
        }
        self.wait(id).await
    }

    /// Await the end of an execution. An execution that is not live in
    /// this process is resumed here first (a parked one stays parked until
    /// its event, decision or timer comes).
    ///
    /// In a store many processes share, the execution may run in another
    /// process: it is followed through the store's notices of its appends
    /// (and a look every second, see `leases.rs`) until it ends, wherever
    /// it runs, and carried on here only when no live process owns it.
    pub async fn wait(&self, id: ExecutionId) -> Result<Outcome, Error> {
        let rx = self.services().on_finished(id);
        let meta = self.services().journal.meta(id)?.ok_or_else(|| self.missing(id))?;
        if !meta.status.is_terminal() && self.shares_store() {
            return self.wait_shared(id, rx).await;
        }
        if !meta.status.is_terminal() {
            self.ensure_live(id).await?;
            // Its actor hands back the final state: no replay.
            if let Ok(Some(end)) = rx.await {
                return Ok(Outcome::ended(id, end));
            }
        }
        let outcome = self.outcome(id)?;
        if outcome.status == Status::Running {
            return Err(Error::Stopped { id });
        }
        Ok(outcome)
    }

    /// [`wait`](Self::wait) in a shared store: its actor here hands back
    /// its end, or its appends (by any process) are heard until the index
    /// says it ended.
    async fn wait_shared(&self, id: ExecutionId, here: crate::actors::Finished) -> Result<Outcome, Error> {
        let mut appended = self.inner.feed.subscribe(id);
        // Carried on here if nobody runs it; left to its owner if another
        // process does, or to the program that has its host functions.
        if let Err(e) = self.ensure_live(id).await {
            tracing::debug!(execution_id = %id, error = %e, "not carried on here; following it");
        }
        let mut here = Some(here);
        // While its actor is here, its end comes from it, and its appends
        // need no look at the store. Once it leaves (it ended, hibernated,
        // or was lost to another process), it is followed.
        if self.inner.supervisor.is_live(id).await? {
            let rx = here.as_mut().expect("set above");
            tokio::select! {
                end = rx => match end {
                    Ok(Some(end)) => return Ok(Outcome::ended(id, end)),
                    // Its actor here went without an end (it was lost to another process).
                    _ => here = None,
                },
                left = self.inner.supervisor.unloaded(id) => left?,
            }
        }
        loop {
            if self.status(id)?.status.is_terminal() {
                return self.outcome(id);
            }
            let ended_here = async {
                match here.as_mut() {
                    Some(rx) => rx.await,
                    None => futures::future::pending().await,
                }
            };
            tokio::select! {
                end = ended_here => match end {
                    Ok(Some(end)) => return Ok(Outcome::ended(id, end)),
                    // Its actor here went without an end (it was lost to another process): follow.
                    _ => here = None,
                },
                changed = appended.changed() => {
                    if changed.is_err() {
                        return Err(Error::Actor("the runtime stopped while waiting".to_string()));
                    }
                }
            }
        }
    }

    /// Await the end of an execution, or its parking on an event or an
    /// approval (status `waiting`): what a command-line run waits for,
    /// since only the outside can move such an execution on. A timer is
    /// waited out.
    pub async fn settle(&self, id: ExecutionId) -> Result<Outcome, Error> {
        self.services().journal.meta(id)?.ok_or_else(|| self.missing(id))?;
        // Nothing in it waits on the outside: its end is all there is to
        // wait for (and a fan-out of 10,000 branches is not looked over
        // whenever one of them ends).
        if !can_park(&*self.workflow_of(id)?) {
            return self.wait(id).await;
        }
        self.ensure_live(id).await?;
        // Each member is listened to (its appends, and its end) from the
        // look that first finds it, and a member found anew is looked at
        // again after its listening began: a change before that shows in
        // the look, one after it is heard. One fold per member per look,
        // and one end notice per member per settle.
        let mut heard: HashMap<ExecutionId, tokio::sync::watch::Receiver<u64>> = HashMap::new();
        let mut ends: HashMap<ExecutionId, crate::actors::Finished> = HashMap::new();
        // Members whose end was heard or seen: not asked about again.
        let mut ended_members: HashSet<ExecutionId> = HashSet::new();
        loop {
            let look = self.look(id)?;
            let mut found = false;
            for &m in look.family.iter().chain(&look.unstarted) {
                if let std::collections::hash_map::Entry::Vacant(e) = heard.entry(m) {
                    e.insert(self.inner.feed.subscribe(m));
                    found = true;
                }
            }
            for &m in &look.family {
                if ends.contains_key(&m) || ended_members.contains(&m) {
                    continue;
                }
                match self.status(m) {
                    Ok(meta) if meta.status.is_terminal() => {
                        ended_members.insert(m);
                    }
                    Ok(_) => {
                        ends.insert(m, self.services().on_finished(m));
                    }
                    Err(_) => {}
                }
            }
            if found {
                continue;
            }
            if look.settled {
                return self.outcome(id);
            }
            // A deadline moves a member on through an append (the timer
            // wheel's tick), which is heard here like any other.
            let changes = futures::future::select_all(heard.values_mut().map(|rx| Box::pin(rx.changed())));
            let ended = async {
                match ends.is_empty() {
                    true => futures::future::pending().await,
                    false => {
                        futures::future::select_all(ends.iter_mut().map(|(m, rx)| {
                            Box::pin(async {
                                let _ = rx.await;
                                *m
                            })
                        }))
                        .await
                        .0
                    }
                }
            };
            tokio::select! {
                _ = changes => {}
                m = ended => {
                    ends.remove(&m);
                    ended_members.insert(m);
                }
            }
        }
    }

    /// One look at a family: its members, its children not started yet,
    /// and whether every member is settled (each member folded once).
    fn look(&self, id: ExecutionId) -> Result<Look, Error> {
        let mut look = Look { family: vec![id], unstarted: Vec::new(), settled: true };
        let now = self.services().clock.now_ms();
        // Read at the first member that has not ended, then shared.
        let mut due = None;
        let mut i = 0;
        while i < look.family.len() && look.family.len() < 100_000 {
            let m = look.family[i];
            let workflow = self.workflow_of(m)?;
            let st = crate::actors::fold_history(self.services(), m, &workflow, &self.events(m)?)?;
            if !st.phase.is_terminal() {
                for c in st.unfinished_children() {
                    match self.status(c) {
                        Ok(_) => look.family.push(c),
                        Err(_) => look.unstarted.push(c),
                    }
                }
            }
            // One that cannot be judged counts as settled: it will not move either.
            look.settled &= self.settled_state(m, &workflow, &st, now, &mut due).unwrap_or(true);
            i += 1;
        }
        Ok(look)
    }

    /// An execution and, recursively, the unfinished children of its fan-outs.
    fn family(&self, id: ExecutionId) -> Result<Vec<ExecutionId>, Error> {
        let mut out = vec![id];
        let mut i = 0;
        while i < out.len() && out.len() < 100_000 {
            let st = self.machine(out[i])?;
            if !st.phase.is_terminal() {
                out.extend(st.unfinished_children().into_iter().filter(|&c| self.status(c).is_ok()));
            }
            i += 1;
        }
        Ok(out)
    }

    /// The executions with an entry due at `now` in the timer index (a
    /// deadline, a parent's wake-up): read once per look at a family.
    fn due_now(&self, now: u64) -> Result<HashSet<ExecutionId>, Error> {
        Ok(self.services().journal.due_timers(now, usize::MAX)?.into_iter().map(|t| t.execution).collect())
    }

    /// Whether only the outside can move this execution on (see
    /// [`machine::settled`](crate::actors::machine::settled)): it ended, or
    /// it is parked on an event or approval with no deadline passed, or it
    /// waits on children (the rest of its family decides). `st` is its
    /// folded history; `due`, the executions with a timer due at `now`
    /// (read here if no member before this one needed it).
    fn settled_state(
        &self,
        id: ExecutionId,
        workflow: &Workflow,
        st: &crate::actors::machine::ExecutionState,
        now: u64,
        due: &mut Option<HashSet<ExecutionId>>,
    ) -> Result<bool, Error> {
        if st.phase.is_terminal() {
            return Ok(true);
        }
        let due = match due {
            Some(due) => due,
            None => due.insert(self.due_now(now)?),
        };
        let journal = &self.services().journal;
        // About to move: a due entry in the timer index, or a kept event
        // for a key it waits for (the WaitActor hands it over).
        let mut due = due.contains(&id);
        for key in crate::actors::wait_keys(st) {
            if due {
                break;
            }
            due = !journal.kept(&key, now, 1)?.is_empty();
        }
        let mut children = HashMap::new();
        for c in st.unfinished_children() {
            if let Some(m) = self.services().journal.meta(c)? {
                children.insert(c, m.status);
            }
        }
        Ok(crate::actors::machine::settled(workflow, st, now, due, &children).yes())
    }

    /// [`settled_state`](Self::settled_state), folding `id`'s history.
    pub(super) fn settled(&self, id: ExecutionId) -> Result<bool, Error> {
        let workflow = self.workflow_of(id)?;
        let st = crate::actors::fold_history(self.services(), id, &workflow, &self.events(id)?)?;
        let now = self.services().clock.now_ms();
        self.settled_state(id, &workflow, &st, now, &mut None)
    }

    /// Whether only the outside can move `id` and its unfinished children
    /// on: each of them ended, or is parked on an event or an approval, or
    /// waits on children that are. What a command-line run waits for
    /// (`Runtime::settle`), and the `settled` field of the server's
    /// execution view.
    pub fn family_settled(&self, id: ExecutionId) -> Result<bool, Error> {
        // Nothing in it waits on the outside: only its end settles it (and
        // a fan-out of 10,000 branches is not folded to say so).
        if !can_park(&*self.workflow_of(id)?) {
            return Ok(self.status(id)?.status.is_terminal());
        }
        Ok(self.look(id)?.settled)
    }

    /// Where an execution stands now (poll). A completed execution's
    /// final state is read from its `ExecutionCompleted`, not replayed; a
    /// branch's holds only the keys it wrote, so a branch (and an execution
    /// that failed or was cancelled, or still runs) is folded.
    pub fn outcome(&self, id: ExecutionId) -> Result<Outcome, Error> {
        let meta = self.services().journal.meta(id)?.ok_or_else(|| self.missing(id))?;
        let records = self.events(id)?;
        let whole = matches!(
            records.first().map(|r| &r.event),
            Some(Event::ExecutionStarted { .. } | Event::ChildStarted { until: None, .. })
        );
        if let (true, Some(Event::ExecutionCompleted { state })) = (whole, terminal_event(&records)) {
            let mut usage = Usage::default();
            for r in &records {
                if let Event::Exchange { usage: u, .. }
                | Event::Call { call: crate::journal::CallRecord { usage: u, .. }, .. } = &r.event
                {
                    usage.add(u);
                }
            }
            return Ok(Outcome { id, status: meta.status, state: Value::Object(state.object()?), error: None, usage });
        }
        let st = crate::actors::fold_history(self.services(), id, &*self.workflow_of(id)?, &records)?;
        let state = Value::Object(Arc::unwrap_or_clone(st.state));
        Ok(Outcome { id, status: meta.status, state, error: st.error, usage: st.usage })
    }

    /// What every parked execution waits for, oldest first. One that
    /// cannot be read (damaged, its workflow missing) is left out with a
    /// warning naming it, never an error for the others.
    pub fn waiting(&self) -> Result<Vec<Waiting>, Error> {
        let mut out = Vec::new();
        for meta in self.list(Some(Status::Waiting))? {
            match self.waits_of(&meta) {
                Ok(waits) => out.extend(waits),
                Err(e @ (Error::Journal(journal::Error::Damaged(_)) | Error::MissingWorkflow { .. })) => {
                    tracing::warn!(execution_id = %meta.id, error = %e, "left out of what waits: it cannot be read");
                }
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// What one execution waits for now (empty when it waits for nothing).
    pub fn waiting_on(&self, id: ExecutionId) -> Result<Vec<Waiting>, Error> {
        self.waits_of(&self.status(id)?)
    }

    /// What an execution and its unfinished children (parallel branches,
    /// sub-workflows, recursively) wait for now; each [`Waiting::id`] says
    /// which execution to signal.
    pub fn waiting_in_family(&self, id: ExecutionId) -> Result<Vec<Waiting>, Error> {
        let mut out = Vec::new();
        for member in self.family(id)? {
            out.extend(self.waits_of(&self.status(member)?)?);
        }
        Ok(out)
    }

    fn waits_of(&self, meta: &ExecutionMeta) -> Result<Vec<Waiting>, Error> {
        let mut out = Vec::new();
        {
            let st = self.machine(meta.id)?;
            for (node, kind, w) in crate::actors::machine::waits(&st) {
                if w.calls {
                    // One row per tool call that waits for a decision.
                    let approvals =
                        st.approvals.get(node).filter(|v| Some(v.visit) == st.active.get(node).map(|a| a.visit));
                    for c in approvals.into_iter().flat_map(|v| v.undecided()) {
                        out.push(Waiting {
                            id: meta.id,
                            workflow_id: meta.workflow_id.clone(),
                            node: node.to_string(),
                            kind,
                            event: None,
                            prompt: Some(c.call.prompt.clone()),
                            call: Some(c.call.id.clone()),
                            since_ms: w.since_ms,
                            deadline_ms: None,
                            parent: st.parent.as_ref().map(|p| p.id),
                        });
                    }
                    continue;
                }
                out.push(Waiting {
                    id: meta.id,
                    workflow_id: meta.workflow_id.clone(),
                    node: node.to_string(),
                    kind,
                    event: w.event.clone(),
                    prompt: w.prompt.clone(),
                    call: None,
                    since_ms: w.since_ms,
                    deadline_ms: w.deadline_ms,
                    parent: st.parent.as_ref().map(|p| p.id),
                });
            }
        }
        Ok(out)
    }
}

/// One look at a family ([`Runtime::look`]).
struct Look {
    /// The execution and, recursively, the started unfinished children of its fan-outs.
    family: Vec<ExecutionId>,
    /// Children of its fan-outs that have not started (no row yet).
    unstarted: Vec<ExecutionId>,
    /// Whether every member is settled.
    settled: bool,
}

/// Whether an execution of `wf` (or of a sub-workflow it runs) can park on
/// something only the outside moves: an event, an approval, a remote
/// agent's question, a tool call that waits for a decision. A timer is
/// not that: it fires by itself.
fn can_park(wf: &Workflow) -> bool {
    let approvals = wf.policy.as_ref().is_some_and(|p| !p.require_approval_for.is_empty());
    wf.nodes.values().any(|n| match &n.kind {
        crate::ir::NodeKind::Wait(w) => w.event.is_some(),
        crate::ir::NodeKind::Approval(_) | crate::ir::NodeKind::Agent(_) => true,
        crate::ir::NodeKind::Model(m) => approvals && !m.tools.is_empty(),
        crate::ir::NodeKind::Workflow(s) => can_park(&s.workflow),
        _ => false,
    })
}

/// The terminal event of a history, if it has one.
pub fn terminal_event(records: &[Record]) -> Option<&Event> {
    records.last().map(|r| &r.event).filter(|e| e.is_terminal())
}
