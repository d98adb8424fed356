//! Keeping executions going across processes: resuming what was running
//! at open, rehydrating one on demand, telling which executions no
//! process carries (left behind or on the clock), starting the timer
//! wheel, and shutting the runtime down.

use std::sync::Arc;
use std::time::Duration;

use super::{Error, Resumed, Runtime, Unattended};
use crate::id::ExecutionId;
use crate::ir::Workflow;
use crate::journal::{ExecutionMeta, Status};

impl Runtime {
    /// Rehydrate every running execution that is not live yet. Returns
    /// them, and the parked ones a deadline will move on (the timer wheel
    /// wakes those when it comes; at once if it passed while down).
    ///
    /// One execution never stops the others: a damaged one (its index row,
    /// a record or its workflow IR cannot be read), one whose actor does
    /// not start, and one whose history says it ended (its row is
    /// corrected) are skipped, each with a warning naming it.
    pub async fn resume_all(&self) -> Result<Vec<ExecutionId>, Error> {
        Ok(self.resume_all_reporting().await?.resumed)
    }

    /// [`resume_all`](Self::resume_all), also saying which executions were
    /// skipped and why.
    ///
    /// In a store many processes share, nothing is resumed at once: this
    /// process starts claiming, from now on, what no live process runs
    /// (see [`Builder::resume_on_open`](super::Builder::resume_on_open)),
    /// and the list is empty.
    pub async fn resume_all_reporting(&self) -> Result<Resumed, Error> {
        if self.shares_store() {
            self.claim_from_now_on();
            return Ok(Resumed::default());
        }
        let live = self.live().await?;
        let listing = self.services().journal.listing()?;
        let mut skipped = Vec::new();
        for d in &listing.damaged {
            tracing::warn!(execution_id = %d.execution, "{d}; not resumed (`jamjet repair` quarantines what cannot be read)");
            skipped.push((d.execution, d.to_string()));
        }
        if let Some(why) = &listing.cut_short {
            tracing::warn!("{why}; the executions there are not resumed (`jamjet repair` rebuilds the store)");
        }
        // Every rehydration is asked for first, then awaited: the supervisor starts them one by one.
        let mut asked = Vec::new();
        for meta in listing.rows.iter().filter(|m| m.status == Status::Running && !live.contains(&m.id)) {
            match self.load_workflow(meta.id, &meta.workflow_hash) {
                Ok(workflow) => asked.push((
                    meta.id,
                    self.inner.supervisor.rehydrate_reporting(meta.id, workflow, meta.workflow_hash.clone()),
                )),
                Err(e) => {
                    tracing::warn!(execution_id = %meta.id, error = %e, "execution not resumed");
                    skipped.push((meta.id, e.to_string()));
                }
            }
        }
        let mut resumed = Vec::new();
        for (id, reply) in asked {
            let why = reply.await.err().map(|message| format!("its actor did not start: {message}"));
            if let Some(why) = why {
                tracing::warn!(execution_id = %id, error = %why, "execution not resumed");
                skipped.push((id, why));
                continue;
            }
            // Rehydration rewrote the row of a history that had ended: nothing to resume.
            if self.status(id).is_ok_and(|m| !m.status.is_terminal()) {
                resumed.push(id);
            }
        }
        // Parked ones whose deadline has passed: one range scan of the timer index.
        let now = self.services().clock.now_ms();
        let mut seen = std::collections::HashSet::new();
        let due = self.services().journal.due_timers(now, usize::MAX).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "the timer index cannot be read; due deadlines wait for the timer wheel");
            Vec::new()
        });
        for t in due {
            // (An entry may outlive its execution's row only by a bug; skip it rather than fail.)
            if seen.insert(t.execution) && self.status(t.execution).is_ok_and(|m| m.status == Status::Waiting) {
                resumed.push(t.execution);
            }
        }
        skipped.sort_by_key(|(id, _)| *id);
        Ok(Resumed { resumed, skipped })
    }

    /// Stop every actor. What was running resumes at the next open. When
    /// this is the last handle, it also waits until the journal is closed
    /// (synced, and the data dir released for another process).
    pub async fn shutdown(self) {
        super::leases::stop(&self).await;
        self.inner.supervisor.shutdown().await;
        self.inner.services.env.mcp.shutdown().await;
        if let Some(otel) = &self.inner.otel {
            otel.finish().await;
        }
        let last = Arc::strong_count(&self.inner) == 1;
        let closed = self.inner.closed.lock().expect("closed lock").take();
        drop(self);
        if let (true, Some(closed)) = (last, closed) {
            let _ = tokio::time::timeout(Duration::from_secs(10), closed).await;
        }
    }

    /// Start the timer wheel, if it is not running (a runtime opened with
    /// `timers(false)` starts it here, say after listing what to resume,
    /// so no deadline moves an execution on before it was listed).
    pub fn start_timers(&self) {
        let services = &self.inner.services;
        if !services.timers.started.swap(true, std::sync::atomic::Ordering::SeqCst) {
            tokio::spawn(services.timers.clone().run(Arc::downgrade(services), self.inner.supervisor.clone()));
            // The external-event mailbox hands kept events over as it starts.
            let (services, supervisor) = (services.clone(), self.inner.supervisor.clone());
            tokio::spawn(async move {
                match services.mailbox.actor(&services, &supervisor).await {
                    Ok(_) => {}
                    // A runtime shut down as soon as it opened: nothing to hand over.
                    Err(e) if !supervisor.is_running() => tracing::debug!(error = %e, "the wait actor did not start"),
                    Err(e) => tracing::warn!(error = %e, "the wait actor did not start"),
                }
            });
        }
    }

    /// Whether `meta`'s execution would go on by itself if a process
    /// carried it, and why; `None` when it ended or only the outside can
    /// move it on (an event, an approval, or children that wait on those).
    /// Meaningful for an execution no actor carries, as after a crash or
    /// in a process that opened the data dir without resuming anything:
    /// then "it would go on" means "it is left behind".
    pub fn unattended(&self, meta: &ExecutionMeta) -> Result<Option<Unattended>, Error> {
        if meta.status.is_terminal() || self.settled(meta.id)? {
            return Ok(None);
        }
        let now = self.services().clock.now_ms();
        let due = self.services().journal.due_timers(now, usize::MAX)?.iter().any(|t| t.execution == meta.id);
        Ok(Some(if meta.status == Status::Running || due { Unattended::Interrupted } else { Unattended::OnTheClock }))
    }

    /// [`unattended`](Self::unattended) over every execution that is not
    /// live in this runtime, oldest first. One that cannot be read is left
    /// out, never an error for the others (resuming it reports why).
    pub async fn unattended_all(&self) -> Result<Vec<(ExecutionId, Unattended)>, Error> {
        let live = self.live().await?;
        // A waiting execution goes on by itself only by a deadline, which the
        // timer index holds: the others (parked on an event or an approval,
        // perhaps thousands) are not folded. One scan of the index.
        let timed: std::collections::HashSet<ExecutionId> =
            self.services().journal.due_timers(u64::MAX, usize::MAX)?.into_iter().map(|t| t.execution).collect();
        let mut out = Vec::new();
        let candidates = self.list(None)?.into_iter().filter(|m| {
            !live.contains(&m.id)
                && (m.status == Status::Running || m.status == Status::Waiting && timed.contains(&m.id))
        });
        for meta in &candidates.collect::<Vec<_>>() {
            match self.unattended(meta) {
                Ok(Some(u)) => out.push((meta.id, u)),
                Ok(None) => {}
                // Damaged, its workflow missing: resuming it says why; the others are told apart still.
                Err(e) => {
                    tracing::debug!(execution_id = %meta.id, error = %e, "cannot tell whether it was left behind")
                }
            }
        }
        Ok(out)
    }

    pub(super) async fn ensure_live(&self, id: ExecutionId) -> Result<(), Error> {
        let meta = self.status(id)?;
        if meta.status == Status::Running
            && !self.inner.supervisor.is_live(id).await?
            // It may have ended between the look and the question: its end
            // is journaled before its actor leaves.
            && self.status(id)?.status == Status::Running
        {
            self.rehydrate(id, &meta.workflow_hash)?;
        }
        Ok(())
    }

    fn rehydrate(&self, id: ExecutionId, hash: &str) -> Result<(), Error> {
        let workflow = self.load_workflow(id, hash)?;
        // Refused here too (the supervisor would only drop it): the caller
        // would wait for an execution no actor carries.
        let missing = self.functions().missing(&workflow);
        if !missing.is_empty() {
            return Err(Error::Actor(format!(
                "execution {id} cannot go on in this process: its workflow `{}` calls host functions it has not \
                 registered ({}); it goes on in the program that registers them",
                workflow.id,
                missing.join(", ")
            )));
        }
        self.inner.supervisor.rehydrate(id, workflow, hash.to_string())
    }

    pub(super) fn load_workflow(&self, id: ExecutionId, hash: &str) -> Result<Arc<Workflow>, Error> {
        self.services().workflow(id, hash)
    }
}
