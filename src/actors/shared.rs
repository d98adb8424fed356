//! [`Shared`]: what every actor of one runtime shares: the journal, the
//! clock, the restart budget and limits, the timer wheel, the
//! external-event mailbox (the WaitActor's handle), the workflows
//! cached by hash, the states parallel branches start from, who awaits
//! which execution (told its final state when it ends), node latency by
//! type, and the nodes' [`Env`]. The runtime builds it; the actors hold
//! it in an `Arc`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value};
use tokio::sync::oneshot;

use super::{Ended, Error, Finished, NodeLatency, RestartBudget, TimerWheel};
use crate::clock::Clock;
use crate::id::ExecutionId;
use crate::ir::{Limits, Workflow};
use crate::journal::{self, Journal, Registration};
use crate::nodes::Env;

/// Shared by every actor of one runtime.
pub struct Shared {
    pub journal: Arc<dyn Journal>,
    pub clock: Arc<dyn Clock>,
    pub restart_budget: RestartBudget,
    /// How much an execution may make (responses, state, steps, fan-out).
    pub limits: Limits,
    /// What the nodes may use (templates, HTTP, functions, ...): no journal.
    pub env: Arc<Env>,
    /// Trace context goes to outbound calls (OpenTelemetry export is on:
    /// see [`crate::nodes::trace`]).
    pub tracing: bool,
    /// Node latency by type, reported by each execution's actor once its
    /// `NodeCompleted` events are durable (for `/metrics`).
    pub latency: NodeLatency,
    /// What `ir::check` found in each workflow run here, by content hash
    /// (empty: it may run), computed once per workflow.
    pub(crate) checked: Mutex<HashMap<String, Option<Arc<str>>>>,
    /// The keys each workflow's input must hold, by hash ([`crate::ir::required_inputs`]).
    pub(crate) required: Mutex<HashMap<String, Arc<Vec<crate::ir::Required>>>>,
    /// The states parallel branches start from, by (parent, record), kept
    /// while a branch holds one (see `actors::fold`).
    pub(crate) bases: Mutex<HashMap<(ExecutionId, u64), BranchBase>>,
    pub(crate) timers: Arc<TimerWheel>,
    /// The WaitActor's handle: the external-event mailbox.
    pub(crate) mailbox: super::Mailbox,
    /// Told whenever an execution leaves this process's memory (ended,
    /// hibernated, lost): a claimer at its capacity has room again.
    pub(crate) room: Arc<tokio::sync::Notify>,
    pub(crate) waiters: Mutex<HashMap<ExecutionId, Vec<oneshot::Sender<Option<Ended>>>>>,
    pub(crate) workflows: Mutex<HashMap<String, Arc<Workflow>>>,
    /// The registrations, read from the journal on first use and dropped
    /// after every `register` (a server looks one up on every submit).
    pub(crate) registry: Mutex<Option<Arc<Vec<Registration>>>>,
    /// The cached workflows by address, with their hashes. Entries are
    /// never removed, so a cached workflow's address names it alone.
    pub(crate) by_address: Mutex<HashMap<usize, (Arc<Workflow>, String)>>,
    /// Last field: fires once everything above, the journal included, is dropped.
    _closed: ClosedSignal,
}

/// The state a parallel branch starts from, held by the branches using it.
pub(crate) type BranchBase = std::sync::Weak<Map<String, Value>>;

/// Tells `Runtime::shutdown` that the shared state (and so the journal and
/// its lock on the data dir) are gone. The last actor to let go of them
/// may do so a moment after the actors report stopped.
struct ClosedSignal(Option<oneshot::Sender<()>>);

impl Drop for ClosedSignal {
    fn drop(&mut self) {
        if let Some(tx) = self.0.take() {
            let _ = tx.send(());
        }
    }
}

impl Shared {
    /// Everything the actors of one runtime share, with a receiver that
    /// fires once the last holder lets go (and so the journal is closed).
    pub fn new(
        journal: Arc<dyn Journal>,
        clock: Arc<dyn Clock>,
        restart_budget: RestartBudget,
        limits: Limits,
        env: Arc<Env>,
    ) -> (Self, oneshot::Receiver<()>) {
        let (closed_tx, closed_rx) = oneshot::channel();
        let shared = Shared {
            journal,
            clock,
            restart_budget,
            limits,
            env,
            tracing: false,
            latency: NodeLatency::default(),
            bases: Mutex::new(HashMap::new()),
            checked: Mutex::new(HashMap::new()),
            required: Mutex::new(HashMap::new()),
            timers: Arc::new(TimerWheel::default()),
            mailbox: Default::default(),
            room: Arc::new(tokio::sync::Notify::new()),
            waiters: Mutex::new(HashMap::new()),
            workflows: Mutex::new(HashMap::new()),
            registry: Mutex::new(None),
            by_address: Mutex::new(HashMap::new()),
            _closed: ClosedSignal(Some(closed_tx)),
        };
        (shared, closed_rx)
    }

    /// Resolves when `id` finishes (see [`Self::notify_finished`]), with
    /// its final state when its actor ended it. Check the journal after
    /// calling this, not before, to miss nothing.
    pub(crate) fn on_finished(&self, id: ExecutionId) -> Finished {
        let (tx, rx) = oneshot::channel();
        let mut waiters = self.waiters.lock().expect("waiters lock");
        // Executions that ended before anyone still listening registered
        // (no notice will come for them again): swept as the map doubles
        // past 4,096 entries, so the sweeps cost O(1) per registration.
        let n = waiters.len();
        if n >= 4096 && n.is_power_of_two() && !waiters.contains_key(&id) {
            waiters.retain(|_, ws| {
                ws.retain(|w| !w.is_closed());
                !ws.is_empty()
            });
        }
        let here = waiters.entry(id).or_default();
        // Whoever stopped listening (a settle that looked again) is let go
        // here, so a long wait does not pile up senders.
        here.retain(|w| !w.is_closed());
        here.push(tx);
        rx
    }

    /// The workflow stored under `hash` (cached), for execution `id`.
    pub(crate) fn workflow(&self, id: ExecutionId, hash: &str) -> Result<Arc<Workflow>, Error> {
        if let Some(wf) = self.workflows.lock().expect("workflow cache lock").get(hash) {
            return Ok(wf.clone());
        }
        let wf = match self.journal.workflow(hash) {
            Ok(Some(wf)) => wf,
            Ok(None) => return Err(Error::MissingWorkflow { id, hash: hash.to_string() }),
            // The IR is stored under its hash, not the execution: name the execution here.
            Err(journal::Error::Corrupt(detail)) => {
                let part = journal::Part::Workflow { hash: hash.to_string() };
                return Err(Error::Journal(journal::Error::Damaged(journal::Damage::new(id, part, detail))));
            }
            Err(e) => return Err(e.into()),
        };
        Ok(self.cache_workflow(hash, Arc::new(wf)))
    }

    /// What keeps the workflow stored under `hash` from running here
    /// (`ir::check` under this runtime's limits: its templates, durations,
    /// size and graph), or `None`. A workflow that came in as IR JSON, or
    /// was journaled by an earlier version, is checked before it runs, so
    /// no render of it can overflow the stack.
    pub(crate) fn problems(&self, hash: &str, wf: &Workflow) -> Option<Arc<str>> {
        if let Some(known) = self.checked.lock().expect("checked lock").get(hash) {
            return known.clone();
        }
        let findings = crate::ir::check(wf, &self.limits);
        let problems = (!findings.is_empty()).then(|| {
            let mut text: Vec<String> = findings.iter().take(5).map(ToString::to_string).collect();
            if findings.len() > 5 {
                text.push(format!("and {} more", findings.len() - 5));
            }
            Arc::from(text.join("; "))
        });
        self.checked.lock().expect("checked lock").insert(hash.to_string(), problems.clone());
        problems
    }

    /// The keys the input of the workflow stored under `hash` must hold
    /// (computed once per hash).
    pub(crate) fn required(&self, hash: &str, wf: &Workflow) -> Arc<Vec<crate::ir::Required>> {
        if let Some(known) = self.required.lock().expect("required lock").get(hash) {
            return known.clone();
        }
        let required = Arc::new(crate::ir::required_inputs(wf));
        self.required.lock().expect("required lock").insert(hash.to_string(), required.clone());
        required
    }

    /// Keep a workflow under its hash; the first one kept wins.
    pub(crate) fn cache_workflow(&self, hash: &str, wf: Arc<Workflow>) -> Arc<Workflow> {
        let kept = self.workflows.lock().expect("workflow cache lock").entry(hash.to_string()).or_insert(wf).clone();
        let mut by_address = self.by_address.lock().expect("workflow cache lock");
        by_address.entry(Arc::as_ptr(&kept) as usize).or_insert_with(|| (kept.clone(), hash.to_string()));
        kept
    }

    /// A workflow that *is* one kept in the cache (say, from
    /// `Runtime::registered`), with its hash: no hashing, no copy.
    pub(crate) fn cached_by_address(&self, wf: &Workflow) -> Option<(Arc<Workflow>, String)> {
        self.by_address.lock().expect("workflow cache lock").get(&(std::ptr::from_ref(wf) as usize)).cloned()
    }

    /// Wake everyone awaiting `id`: its terminal event is already durable
    /// (`ended`, its final state), or its actor gave up (`None`).
    pub(crate) fn notify_finished(&self, id: ExecutionId, ended: Option<Ended>) {
        let waiters = self.waiters.lock().expect("waiters lock").remove(&id);
        for w in waiters.into_iter().flatten() {
            let _ = w.send(ended.clone());
        }
    }
}
