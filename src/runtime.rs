//! The embedding API: open a runtime on a data dir, register functions,
//! submit workflows, await or poll results, list executions, read timelines.
//!
//! [`Runtime`] is a cheap handle (clone it freely). The [`Builder`] builds
//! and wires what the layers below share: the nodes' [`crate::nodes::Env`]
//! (templates, HTTP client, functions, ...) and the actors'
//! [`crate::actors::Shared`] (the journal, the clock, the timers, and the
//! `Env`). [`Error`] is the actors' own, re-exported.

mod feed;

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use serde_json::{Map, Value};
use tokio::sync::oneshot;

pub use crate::actors::Error;
use crate::actors::{RestartBudget, Shared, SupervisorHandle};
use crate::clock::{Clock, SystemClock};
use crate::id::ExecutionId;
use crate::ir::{Limits, Workflow};
use crate::journal::{
    self, Event, ExecutionMeta, Journal, MemoryJournal, Record, Registration, SledJournal, Stats, Status, Usage,
};

pub use crate::actors::NodeLatency;
pub use crate::actors::machine::ParentLink;
use crate::nodes::{Env, FunctionCall, FunctionError, FunctionRegistry};
pub use feed::{Delay, DelayKind, Feed, Observed};

/// How an execution ended (or stands).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Outcome {
    pub id: ExecutionId,
    pub status: Status,
    /// The final state (for a failed execution: the state when it failed).
    pub state: Value,
    pub error: Option<String>,
    /// Tokens and cost over every model call so far, failed attempts included.
    pub usage: Usage,
}

/// A decision for [`Runtime::approve`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The approval node; `None` takes the one the execution waits on.
    pub node: Option<String>,
    pub approved: bool,
    pub by: String,
    pub comment: Option<String>,
}

/// What a parked execution waits for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Waiting {
    pub id: ExecutionId,
    pub workflow_id: String,
    pub node: String,
    pub kind: WaitKind,
    /// The event's correlation key.
    pub event: Option<String>,
    /// The approval's prompt.
    pub prompt: Option<String>,
    pub since_ms: u64,
    pub deadline_ms: Option<u64>,
    /// The parent, for a parallel branch or a sub-workflow.
    pub parent: Option<ExecutionId>,
}

pub use crate::actors::machine::WaitKind;

/// What [`Runtime::resume_all_reporting`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resumed {
    /// Rehydrated, or parked with a deadline that passed while down.
    pub resumed: Vec<ExecutionId>,
    /// Not resumed, and why (damaged, its workflow missing, its actor did not start).
    pub skipped: Vec<(ExecutionId, String)>,
}

/// Why an execution that no process carries would go on by itself (see
/// [`Runtime::unattended`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Unattended {
    /// It would go on now: it was running when its process stopped (a
    /// crash, Ctrl-C), or a deadline of it passed while none was up.
    Interrupted,
    /// It waits on the clock (a timer, a retry delay) that has not come yet.
    OnTheClock,
}

/// How many lately hashed workflows `submit` compares a submission with.
const HASHED_KEPT: usize = 16;

/// Builds a [`Runtime`]: register functions before `open` so that
/// executions resumed at open can call them.
pub struct Builder {
    data_dir: Option<PathBuf>,
    journal: Option<Arc<dyn Journal>>,
    clock: Arc<dyn Clock>,
    functions: FunctionRegistry,
    keys: crate::model::KeySource,
    resume: bool,
    timers: bool,
    restart_budget: RestartBudget,
    limits: Limits,
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            data_dir: None,
            journal: None,
            clock: Arc::new(SystemClock),
            functions: FunctionRegistry::default(),
            keys: Default::default(),
            resume: true,
            timers: true,
            restart_budget: RestartBudget::default(),
            limits: Limits::default(),
        }
    }
}

impl Builder {
    /// Keep the journal (sled) in this directory.
    pub fn data_dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.data_dir = Some(dir.as_ref().to_path_buf());
        self
    }
    /// Keep the journal in memory (tests, benchmarks): lost at exit.
    pub fn in_memory(mut self) -> Self {
        self.journal = Some(Arc::new(MemoryJournal::new()));
        self
    }
    /// Use this journal.
    pub fn journal(mut self, journal: Arc<dyn Journal>) -> Self {
        self.journal = Some(journal);
        self
    }
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }
    /// Register a function for `type: function` nodes.
    pub fn function<F, Fut>(self, name: impl Into<String>, f: F) -> Self
    where
        F: Fn(FunctionCall) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Value, FunctionError>> + Send + 'static,
    {
        self.functions.register(name, f);
        self
    }
    /// Whether `open` rehydrates every non-terminal execution (default: yes).
    pub fn resume_on_open(mut self, yes: bool) -> Self {
        self.resume = yes;
        self
    }
    /// Whether the timer wheel runs (default: yes). A process that only
    /// reads the journal turns it off, so it never acts on a due deadline.
    pub fn timers(mut self, yes: bool) -> Self {
        self.timers = yes;
        self
    }
    /// Read model API keys from this lookup instead of the environment.
    pub fn model_keys(mut self, keys: crate::model::KeySource) -> Self {
        self.keys = keys;
        self
    }
    pub fn restart_budget(mut self, budget: RestartBudget) -> Self {
        self.restart_budget = budget;
        self
    }
    /// The limits in force (default: [`Limits::default`]).
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    pub async fn open(self) -> Result<Runtime, Error> {
        let journal: Arc<dyn Journal> = match (self.journal, &self.data_dir) {
            (Some(j), _) => j,
            (None, Some(dir)) => Arc::new(SledJournal::open(dir)?),
            (None, None) => Arc::new(SledJournal::open(Path::new(".jamjet"))?),
        };
        let feed = Arc::new(Feed::default());
        let journal: Arc<dyn Journal> = Arc::new(Observed::new(journal, feed.clone()));
        let env = Env::new(self.clock.clone(), self.functions, self.keys, self.limits)
            .map_err(|e| Error::Actor(format!("cannot build the HTTP client: {e}")))?;
        let (services, closed_rx) = Shared::new(journal, self.clock, self.restart_budget, self.limits, Arc::new(env));
        let services = Arc::new(services);
        let supervisor = SupervisorHandle::spawn(services.clone()).await?;
        let timers = self.timers;
        let rt = Runtime {
            inner: Arc::new(Inner {
                services,
                feed,
                hashed: Mutex::new(VecDeque::new()),
                supervisor,
                keyed: tokio::sync::Mutex::new(()),
                closed: Mutex::new(Some(closed_rx)),
            }),
        };
        if self.resume {
            rt.resume_all().await?;
        }
        if timers {
            rt.start_timers();
        }
        Ok(rt)
    }
}

struct Inner {
    services: Arc<Shared>,
    /// Who follows which execution's history live.
    feed: Arc<Feed>,
    /// The last workflows `submit` hashed, with their content hashes (at
    /// most [`HASHED_KEPT`]): an equal one submitted again is not hashed again.
    hashed: Mutex<VecDeque<(Arc<Workflow>, String)>>,
    supervisor: SupervisorHandle,
    keyed: tokio::sync::Mutex<()>,
    closed: Mutex<Option<oneshot::Receiver<()>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.supervisor.kill();
    }
}

/// A running JamJet runtime. Cheap to clone; the last clone dropped stops it.
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<Inner>,
}

impl Runtime {
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// A workflow equal in every field to one `submit` hashed lately (a
    /// host submitting its own copy again and again), with its content
    /// hash: comparing costs far less than hashing (serializing the IR and
    /// a SHA-256), and equal workflows have one content hash. (Only hashes
    /// computed here: one read from an older journal may be of another kind.)
    fn cached_equal(&self, wf: &Workflow) -> Option<(Arc<Workflow>, String)> {
        let hashed = self.inner.hashed.lock().expect("workflow cache lock");
        hashed.iter().find(|(k, _)| k.id == wf.id && k.version == wf.version && **k == *wf).cloned()
    }

    /// Remember a workflow `submit` hashed, for [`Self::cached_equal`].
    fn remember_hashed(&self, wf: Arc<Workflow>, hash: String) {
        let mut hashed = self.inner.hashed.lock().expect("workflow cache lock");
        if hashed.len() >= HASHED_KEPT {
            hashed.pop_front();
        }
        hashed.push_back((wf, hash));
    }

    /// Open the runtime on a data dir (sled journal) and resume every
    /// non-terminal execution in it.
    pub async fn open(data_dir: impl AsRef<Path>) -> Result<Runtime, Error> {
        Builder::default().data_dir(data_dir).open().await
    }

    /// Register a function for `type: function` nodes.
    pub fn register_function<F, Fut>(&self, name: impl Into<String>, f: F)
    where
        F: Fn(FunctionCall) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Value, FunctionError>> + Send + 'static,
    {
        self.inner.services.env.functions.register(name, f);
    }

    pub(crate) fn services(&self) -> &Shared {
        &self.inner.services
    }

    /// Submit an execution of `workflow` with `input`. Returns once
    /// `ExecutionStarted` is durable. The input is checked against the
    /// state schema first; a refused input changes nothing.
    pub async fn submit(&self, workflow: &Workflow, input: Value) -> Result<ExecutionId, Error> {
        self.submit_keyed(workflow, input, None).await
    }

    /// Like [`submit`](Self::submit), with an idempotency key: submitting
    /// the same key again returns the first execution (resuming it in this
    /// process if it is not finished) and starts nothing new.
    pub async fn submit_keyed(
        &self,
        workflow: &Workflow,
        input: Value,
        key: Option<&str>,
    ) -> Result<ExecutionId, Error> {
        Ok(self.submit_once(workflow, input, key).await?.0)
    }

    /// [`submit_keyed`](Self::submit_keyed), also telling whether this call
    /// started the execution (`true`) or found it under its key (`false`):
    /// decided under the same lock that makes one key start one execution.
    pub async fn submit_once(
        &self,
        workflow: &Workflow,
        input: Value,
        key: Option<&str>,
    ) -> Result<(ExecutionId, bool), Error> {
        if let Some(key) = key {
            check_key(key)?;
        }
        // A workflow from the cache (a server's registered one) is hashed already.
        let known = self.services().cached_by_address(workflow).or_else(|| self.cached_equal(workflow));
        let (wf, hash) = match known {
            Some(known) => known,
            None => {
                let hash = workflow.content_hash();
                let kept = self.services().cache_workflow(&hash, Arc::new(workflow.clone()));
                self.remember_hashed(kept.clone(), hash.clone());
                (kept, hash)
            }
        };
        let required = self.services().required(&hash, &wf);
        let input = check_input(&wf, &required, input, &self.services().limits)?;
        if let Some(problems) = self.services().problems(&hash, &wf) {
            return Err(Error::InvalidWorkflow { id: wf.id.clone(), problems: problems.to_string() });
        }
        // Keyed submissions are serialized so two with one key start one execution.
        let _keyed = match key {
            Some(_) => Some(self.inner.keyed.lock().await),
            None => None,
        };
        if let Some(key) = key
            && let Some(id) = self.services().journal.find_key(key)?
        {
            self.same_submission(id, key, &hash, &input)?;
            self.ensure_live(id).await?;
            return Ok((id, false));
        }
        let id = ExecutionId::new(self.services().clock.now_ms());
        let first = Event::ExecutionStarted {
            workflow_id: wf.id.clone(),
            workflow_version: wf.version.clone(),
            workflow_hash: hash.clone(),
            input: journal::Json::from_map(&input),
            key: key.map(str::to_string),
        };
        match self.inner.supervisor.start(id, wf, hash, first, None)?.await {
            Ok(()) => Ok((id, true)),
            Err(message) => Err(Error::StartFailed { id, message }),
        }
    }

    /// A key names one submission: the execution found under `key` must
    /// run the same workflow with the same input, or this is a conflict.
    fn same_submission(&self, id: ExecutionId, key: &str, hash: &str, input: &Map<String, Value>) -> Result<(), Error> {
        let records = self.services().journal.read_after(id, 0)?;
        let Some(Event::ExecutionStarted { workflow_hash, input: first, .. }) = records.first().map(|r| &r.event)
        else {
            return Err(Error::KeyConflict {
                key: key.into(),
                id,
                what: "a history that does not start with its submission".into(),
            });
        };
        if workflow_hash != hash && !self.same_identity(workflow_hash, hash) {
            let what = format!("another workflow (content hash {}, this one {})", short(workflow_hash), short(hash));
            return Err(Error::KeyConflict { key: key.into(), id, what });
        }
        if first.object()? != *input {
            return Err(Error::KeyConflict { key: key.into(), id, what: "another input".into() });
        }
        Ok(())
    }

    /// Whether the workflow stored under `stored` (a hash an earlier
    /// version computed over the whole IR, its file and positions
    /// included) is the workflow whose identity is `hash` now.
    fn same_identity(&self, stored: &str, hash: &str) -> bool {
        matches!(self.services().journal.workflow(stored), Ok(Some(wf)) if wf.content_hash() == hash)
    }

    /// Register `workflow` under its id and version, durably (what a
    /// server offers by id). The same content again changes nothing;
    /// other content under a registered id and version is refused unless
    /// `replace` (executions keep the IR they started with either way).
    pub async fn register(&self, workflow: &Workflow, replace: bool) -> Result<Registration, Error> {
        let hash = self.vet(workflow)?;
        self.register_vetted(workflow, hash, replace).await
    }

    /// Check `workflow` as a run would (`ir::check` under this runtime's
    /// limits, remembered by content hash) and return its hash: the
    /// CPU-bound half of [`register`](Self::register), which a server runs
    /// off its async workers before [`register_vetted`](Self::register_vetted).
    pub fn vet(&self, workflow: &Workflow) -> Result<String, Error> {
        let hash = workflow.content_hash();
        // However it was made (YAML, IR JSON, a host's code), what is
        // registered must pass the checks a run would make.
        match self.services().problems(&hash, workflow) {
            None => Ok(hash),
            Some(problems) => Err(Error::InvalidWorkflow { id: workflow.id.clone(), problems: problems.to_string() }),
        }
    }

    /// [`register`](Self::register) a workflow [`vet`](Self::vet) passed, under the hash it returned.
    pub async fn register_vetted(
        &self,
        workflow: &Workflow,
        hash: String,
        replace: bool,
    ) -> Result<Registration, Error> {
        let existing =
            self.workflows()?.into_iter().find(|r| r.workflow_id == workflow.id && r.version == workflow.version);
        if let Some(r) = existing {
            if r.hash == hash || self.same_identity(&r.hash, &hash) {
                return Ok(r);
            }
            if !replace {
                return Err(Error::WorkflowConflict { id: r.workflow_id, version: r.version, hash: r.hash });
            }
        }
        let registration = Registration {
            workflow_id: workflow.id.clone(),
            version: workflow.version.clone(),
            hash: hash.clone(),
            registered_ms: self.services().clock.now_ms(),
        };
        self.services().journal.register(&registration, workflow).await?;
        self.services().cache_workflow(&hash, Arc::new(workflow.clone()));
        // After the write is visible: a reader holding the lock read it, or reads it next.
        *self.services().registry.lock().expect("registry lock") = None;
        Ok(registration)
    }

    /// Every registered workflow version, by id then version.
    pub fn workflows(&self) -> Result<Vec<Registration>, Error> {
        Ok(self.registrations()?.as_ref().clone())
    }

    /// The registrations, from the cache (filled from the journal when empty).
    fn registrations(&self) -> Result<Arc<Vec<Registration>>, Error> {
        let mut cached = self.services().registry.lock().expect("registry lock");
        if let Some(all) = &*cached {
            return Ok(all.clone());
        }
        // Read under the lock, so an invalidation cannot slip in between.
        let all = Arc::new(self.services().journal.registrations()?);
        *cached = Some(all.clone());
        Ok(all)
    }

    /// A registered workflow: `version`, or the one registered last.
    pub fn registered(&self, id: &str, version: Option<&str>) -> Result<(Registration, Arc<Workflow>), Error> {
        let unknown = || Error::UnknownWorkflow { id: id.to_string(), version: version.map(str::to_string) };
        let registration = self
            .registrations()?
            .iter()
            .filter(|r| r.workflow_id == id && version.is_none_or(|v| r.version == v))
            .max_by_key(|r| r.registered_ms)
            .cloned()
            .ok_or_else(unknown)?;
        if let Some(wf) = self.services().workflows.lock().expect("workflow cache lock").get(&registration.hash) {
            return Ok((registration, wf.clone()));
        }
        let wf = self.services().journal.workflow(&registration.hash)?.ok_or_else(unknown)?;
        let wf = self.services().cache_workflow(&registration.hash, Arc::new(wf));
        Ok((registration, wf))
    }

    /// Follow an execution's history live: the receiver's value is its
    /// last durable sequence number, and changes with every append.
    /// Subscribe first, then read [`events`](Self::events), to miss nothing.
    pub fn subscribe(&self, id: ExecutionId) -> tokio::sync::watch::Receiver<u64> {
        self.inner.feed.subscribe(id)
    }

    /// Submit and wait for the end.
    pub async fn run(&self, workflow: &Workflow, input: Value) -> Result<Outcome, Error> {
        let id = self.submit(workflow, input).await?;
        self.wait(id).await
    }

    /// Await the end of an execution. An execution that is not live in
    /// this process is resumed here first (a parked one stays parked until
    /// its event, decision or timer comes).
    pub async fn wait(&self, id: ExecutionId) -> Result<Outcome, Error> {
        let rx = self.services().on_finished(id);
        let meta = self.services().journal.meta(id)?.ok_or(Error::UnknownExecution(id))?;
        if !meta.status.is_terminal() {
            self.ensure_live(id).await?;
            // Its actor hands back the final state: no replay.
            if let Ok(Some(end)) = rx.await {
                let state = Value::Object(Arc::unwrap_or_clone(end.state));
                return Ok(Outcome { id, status: end.status, state, error: end.error, usage: end.usage });
            }
        }
        let outcome = self.outcome(id)?;
        if outcome.status == Status::Running {
            return Err(Error::Stopped { id });
        }
        Ok(outcome)
    }

    /// Await the end of an execution, or its parking on an event or an
    /// approval (status `waiting`): what a command-line run waits for,
    /// since only the outside can move such an execution on. A timer is
    /// waited out.
    pub async fn settle(&self, id: ExecutionId) -> Result<Outcome, Error> {
        self.services().journal.meta(id)?.ok_or(Error::UnknownExecution(id))?;
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
        let mut ends: HashMap<ExecutionId, oneshot::Receiver<Option<crate::actors::Ended>>> = HashMap::new();
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
                if !ends.contains_key(&m) && self.status(m).is_ok_and(|meta| !meta.status.is_terminal()) {
                    ends.insert(m, self.services().on_finished(m));
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
                m = ended => { ends.remove(&m); }
            }
        }
    }

    /// One look at a family: its members, its children not started yet,
    /// and whether every member is settled (each member folded once).
    fn look(&self, id: ExecutionId) -> Result<Look, Error> {
        let mut look = Look { family: vec![id], unstarted: Vec::new(), settled: true };
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
            look.settled &= self.settled_state(m, &workflow, &st).unwrap_or(true);
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

    /// Whether only the outside can move this execution on (see
    /// [`machine::settled`](crate::actors::machine::settled)): it ended, or
    /// it is parked on an event or approval with no deadline passed, or it
    /// waits on children (the rest of its family decides). `st` is its
    /// folded history.
    fn settled_state(
        &self,
        id: ExecutionId,
        workflow: &Workflow,
        st: &crate::actors::machine::ExecutionState,
    ) -> Result<bool, Error> {
        if st.phase.is_terminal() {
            return Ok(true);
        }
        let now = self.services().clock.now_ms();
        let journal = &self.services().journal;
        // About to move: a due entry in the timer index (a deadline, a
        // parent's wake-up), or a kept event for a key it waits for (the
        // WaitActor hands it over).
        let mut due = journal.due_timers(now, usize::MAX)?.iter().any(|t| t.execution == id);
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
    fn settled(&self, id: ExecutionId) -> Result<bool, Error> {
        let workflow = self.workflow_of(id)?;
        let st = crate::actors::fold_history(self.services(), id, &workflow, &self.events(id)?)?;
        self.settled_state(id, &workflow, &st)
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

    fn machine(&self, id: ExecutionId) -> Result<crate::actors::machine::ExecutionState, Error> {
        let workflow = self.workflow_of(id)?;
        crate::actors::fold_history(self.services(), id, &workflow, &self.events(id)?)
    }

    /// Where an execution stands now (poll). A completed execution's
    /// final state is read from its `ExecutionCompleted`, not replayed; a
    /// branch's holds only the keys it wrote, so a branch (and an execution
    /// that failed or was cancelled, or still runs) is folded.
    pub fn outcome(&self, id: ExecutionId) -> Result<Outcome, Error> {
        let meta = self.services().journal.meta(id)?.ok_or(Error::UnknownExecution(id))?;
        let records = self.events(id)?;
        let whole = matches!(
            records.first().map(|r| &r.event),
            Some(Event::ExecutionStarted { .. } | Event::ChildStarted { until: None, .. })
        );
        if let (true, Some(Event::ExecutionCompleted { state })) = (whole, terminal_event(&records)) {
            let mut usage = Usage::default();
            for r in &records {
                if let Event::Exchange { usage: u, .. } = &r.event {
                    usage.add(u);
                }
            }
            return Ok(Outcome { id, status: meta.status, state: Value::Object(state.object()?), error: None, usage });
        }
        let st = crate::actors::fold_history(self.services(), id, &*self.workflow_of(id)?, &records)?;
        let state = Value::Object(Arc::unwrap_or_clone(st.state));
        Ok(Outcome { id, status: meta.status, state, error: st.error, usage: st.usage })
    }

    /// The limits this runtime enforces.
    pub fn limits(&self) -> &Limits {
        &self.services().limits
    }

    /// The tokens and cost an execution has used so far: the sum over its
    /// exchanges, failed attempts included.
    pub fn usage(&self, id: ExecutionId) -> Result<crate::journal::Usage, Error> {
        Ok(self.machine(id)?.usage)
    }

    /// Deliver an external event to an execution's `wait` nodes: it is
    /// journaled before this returns, and consumed by the wait for `key`
    /// now, or when the execution reaches it. An unknown or finished
    /// execution is an error, and nothing is journaled.
    pub async fn signal(&self, id: ExecutionId, key: &str, payload: Value) -> Result<(), Error> {
        self.inner.supervisor.signal(id, key, &payload).await
    }

    /// Publish an external event by key: every execution waiting for `key`
    /// (live or hibernated) receives it, as `signal` would deliver it. When
    /// none does, the event is kept, durably, for `keep` (default
    /// [`DEFAULT_KEEP`](crate::actors::DEFAULT_KEEP), at most
    /// [`MAX_KEEP`](crate::actors::MAX_KEEP); zero keeps nothing) and the
    /// first execution that reaches a wait for `key` receives it. Returns
    /// who received it, or until when it is kept.
    pub async fn publish(
        &self,
        key: &str,
        payload: Value,
        keep: Option<Duration>,
    ) -> Result<crate::actors::Published, Error> {
        journal::check_event_key(key).map_err(Error::InvalidEvent)?;
        let keep = keep.unwrap_or(crate::actors::DEFAULT_KEEP);
        if keep > crate::actors::MAX_KEEP {
            return Err(Error::InvalidEvent(format!(
                "keep {} s is longer than an event may be kept ({} s, 30 days)",
                keep.as_secs(),
                crate::actors::MAX_KEEP.as_secs()
            )));
        }
        let services = &self.inner.services;
        services.mailbox.publish(services, &self.inner.supervisor, key, payload, keep).await
    }

    /// Decide the approval an execution waits on (`node` picks one when
    /// it matters). `by` is who decided; it is journaled with the time.
    /// Returns the node decided. A second decision is refused and names
    /// the first.
    pub async fn approve(&self, id: ExecutionId, decision: Decision) -> Result<String, Error> {
        let d = &decision;
        let result =
            self.inner.supervisor.approve(id, d.node.as_deref(), d.approved, &d.by, d.comment.as_deref()).await;
        match result {
            // The first decision may have carried the execution to its end.
            Err(Error::Finished { id, status }) => Err(self.decided_before(id, decision.node.as_deref(), status)),
            other => other,
        }
    }

    /// Why an approval for a finished execution is refused: who decided it.
    fn decided_before(&self, id: ExecutionId, node: Option<&str>, status: Status) -> Error {
        let records = self.events(id).unwrap_or_default();
        let decided = records.iter().rev().find_map(|r| match &r.event {
            Event::ApprovalDecided { node: n, approved, by, .. } if node.is_none_or(|want| want == n) => {
                Some((n.clone(), *approved, by.clone(), r.at_ms))
            }
            _ => None,
        });
        match decided {
            Some((n, approved, by, at)) => Error::NotWaiting {
                id,
                message: format!(
                    "approval `{n}` was already decided: {} by {by} at {} (the execution has since {})",
                    if approved { "approved" } else { "rejected" },
                    crate::clock::format_ms(at),
                    match status {
                        Status::Completed => "completed",
                        Status::Failed => "failed",
                        Status::Cancelled => "been cancelled",
                        _ => "moved on",
                    }
                ),
            },
            None => Error::Finished { id, status },
        }
    }

    /// Cancel a running or waiting execution: its running nodes are
    /// stopped, its children cancelled, and `ExecutionCancelled` journaled;
    /// it never resumes.
    pub async fn cancel(&self, id: ExecutionId, reason: &str) -> Result<(), Error> {
        self.inner.supervisor.cancel(id, reason).await
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
                out.push(Waiting {
                    id: meta.id,
                    workflow_id: meta.workflow_id.clone(),
                    node: node.to_string(),
                    kind,
                    event: w.event.clone(),
                    prompt: w.prompt.clone(),
                    since_ms: w.since_ms,
                    deadline_ms: w.deadline_ms,
                    parent: st.parent.as_ref().map(|p| p.id),
                });
            }
        }
        Ok(out)
    }

    /// The index row of one execution.
    pub fn status(&self, id: ExecutionId) -> Result<ExecutionMeta, Error> {
        self.services().journal.meta(id)?.ok_or(Error::UnknownExecution(id))
    }

    /// Every execution whose index row can be read, oldest first,
    /// optionally only those with `status`. A damaged row is left out
    /// (see [`listing`](Self::listing)), never an error for the others.
    pub fn list(&self, status: Option<Status>) -> Result<Vec<ExecutionMeta>, Error> {
        Ok(self.listing(status)?.rows)
    }

    /// The execution index as far as it can be read: the rows (optionally
    /// only those with `status`) and, beside them, the rows that do not
    /// decode. Reads the index only (see [`check`](Self::check)).
    pub fn listing(&self, status: Option<Status>) -> Result<journal::Listing, Error> {
        let mut listing = self.services().journal.listing()?;
        listing.rows.retain(|m| status.is_none_or(|s| m.status == s));
        Ok(listing)
    }

    /// Every execution that cannot be read in full, and what fails: an
    /// index row that does not decode, a record of its history that does
    /// not decode or is missing, a workflow IR that is missing or does not
    /// decode. Reads every record of every execution; `rows` holds the
    /// executions found whole.
    pub fn check(&self) -> Result<journal::Listing, Error> {
        let journal = &self.services().journal;
        let journal::Listing { rows, mut damaged, cut_short } = journal.listing()?;
        let mut workflows: HashMap<String, Option<String>> = HashMap::new();
        let mut whole = Vec::with_capacity(rows.len());
        for meta in rows {
            let part = match journal.read(meta.id) {
                Ok(records) if records.is_empty() => Some((
                    journal::Part::Record { seq: 1 },
                    "the index names it, and the journal holds no record of it".to_string(),
                )),
                Ok(_) => None,
                Err(journal::Error::Damaged(d)) => Some((d.part, d.detail)),
                Err(e) => return Err(e.into()),
            };
            let part = part.or_else(|| {
                let hash = meta.workflow_hash.clone();
                let problem = workflows.entry(hash.clone()).or_insert_with(|| match journal.workflow(&hash) {
                    Ok(Some(_)) => None,
                    Ok(None) => Some("it is not in the journal".to_string()),
                    Err(journal::Error::Corrupt(detail)) => Some(detail),
                    Err(e) => Some(e.to_string()),
                });
                problem.clone().map(|p| (journal::Part::Workflow { hash }, p))
            });
            match part {
                Some((part, detail)) => damaged.push(journal::Damage::new(meta.id, part, detail)),
                None => whole.push(meta),
            }
        }
        damaged.sort_by_key(|d| d.execution);
        Ok(journal::Listing { rows: whole, damaged, cut_short })
    }

    /// Every execution that cannot be read in full, and what fails (see
    /// [`check`](Self::check)), oldest first.
    pub fn damaged(&self) -> Result<Vec<journal::Damage>, Error> {
        Ok(self.check()?.damaged)
    }

    /// The event timeline of one execution.
    /// Where a child execution (a parallel branch, a sub-workflow) came
    /// from, as its first record says; `None` for an execution started on
    /// its own. Reads one record, not the history.
    pub fn parent_link(&self, id: ExecutionId) -> Result<Option<ParentLink>, Error> {
        let Some(first) = self.services().journal.first(id)? else { return Err(Error::UnknownExecution(id)) };
        let Some((parent, node, visit, branch)) = first.event.parent_link() else { return Ok(None) };
        let parent = parent.parse().map_err(|_| {
            Error::Journal(journal::Error::Corrupt(format!("execution {id}: its parent id `{parent}` does not parse")))
        })?;
        Ok(Some(ParentLink { id: parent, node: node.to_string(), visit, branch }))
    }

    pub fn events(&self, id: ExecutionId) -> Result<Vec<Record>, Error> {
        let records = self.services().journal.read(id)?;
        if records.is_empty() {
            return Err(Error::UnknownExecution(id));
        }
        Ok(records)
    }

    /// The records of `id` with a sequence number above `after` (what a
    /// follower has not seen yet). Unknown executions read as empty.
    pub fn events_after(&self, id: ExecutionId, after: u64) -> Result<Vec<Record>, Error> {
        Ok(self.services().journal.read_after(id, after)?)
    }

    /// The workflow an execution runs.
    pub fn workflow_of(&self, id: ExecutionId) -> Result<Arc<Workflow>, Error> {
        let meta = self.status(id)?;
        self.load_workflow(id, &meta.workflow_hash)
    }

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
    pub async fn resume_all_reporting(&self) -> Result<Resumed, Error> {
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

    /// Node latency histograms by node type (for `/metrics`).
    pub fn node_latency(&self) -> Vec<(&'static str, crate::journal::latency::Snapshot)> {
        self.services().latency.snapshot()
    }

    /// Counters of the journal (appends, events, syncs).
    pub fn journal_stats(&self) -> Stats {
        self.services().journal.stats()
    }

    /// Stop every actor. What was running resumes at the next open. When
    /// this is the last handle, it also waits until the journal is closed
    /// (synced, and the data dir released for another process).
    pub async fn shutdown(self) {
        self.inner.supervisor.shutdown().await;
        self.inner.services.env.mcp.shutdown().await;
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
                if let Err(e) = services.mailbox.actor(&services, &supervisor).await {
                    tracing::warn!(error = %e, "the wait actor did not start");
                }
            });
        }
    }

    /// Hear of every delay (a timer wait, a retry delay) an execution of
    /// this runtime enters from now on, once it is durable (see [`Delay`]).
    pub fn delays(&self) -> tokio::sync::broadcast::Receiver<Delay> {
        self.inner.feed.delays()
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

    /// The nodes an execution is at now (running, retrying or waiting),
    /// by name.
    pub fn active_nodes(&self, id: ExecutionId) -> Result<Vec<String>, Error> {
        let mut nodes: Vec<String> = self.machine(id)?.active.keys().cloned().collect();
        nodes.sort();
        Ok(nodes)
    }

    /// The executions that have an actor in memory now (parked ones are
    /// hibernated: not in this list).
    pub async fn live(&self) -> Result<Vec<ExecutionId>, Error> {
        self.inner.supervisor.live().await
    }

    /// Resolves once `id` has no actor in memory: it hibernated (parked
    /// with nothing running), ended, or was never loaded here. A notice
    /// from the supervisor, not a poll; it does not load `id`.
    pub async fn unloaded(&self, id: ExecutionId) -> Result<(), Error> {
        self.inner.supervisor.unloaded(id).await
    }

    async fn ensure_live(&self, id: ExecutionId) -> Result<(), Error> {
        let meta = self.status(id)?;
        if meta.status == Status::Running && !self.live().await?.contains(&id) {
            self.rehydrate(id, &meta.workflow_hash)?;
        }
        Ok(())
    }

    fn rehydrate(&self, id: ExecutionId, hash: &str) -> Result<(), Error> {
        let workflow = self.load_workflow(id, hash)?;
        self.inner.supervisor.rehydrate(id, workflow, hash.to_string())
    }

    fn load_workflow(&self, id: ExecutionId, hash: &str) -> Result<Arc<Workflow>, Error> {
        self.services().workflow(id, hash)
    }

    #[cfg(test)]
    pub(crate) fn supervisor(&self) -> &SupervisorHandle {
        &self.inner.supervisor
    }
}

/// Check input against the schema (an object whose keys are all declared
/// and well typed) and the state size limit.
fn check_input(
    workflow: &Workflow,
    required: &[crate::ir::Required],
    input: Value,
    limits: &Limits,
) -> Result<Map<String, Value>, Error> {
    let input = Value::Object(crate::ir::prepare_input(workflow, required, input).map_err(Error::InvalidInput)?);
    let size = crate::ir::json_size(&input);
    if size > limits.max_state_bytes {
        let what = format!("the input is {}", crate::ir::show_bytes(size));
        return Err(Error::LimitExceeded(format!(
            "limit_exceeded: {}",
            limits.exceeded(crate::ir::Limit::MaxStateBytes, what)
        )));
    }
    match input {
        Value::Object(m) => Ok(m),
        _ => unreachable!("check_object accepts only objects"),
    }
}

/// The longest idempotency key accepted, bytes.
pub const MAX_KEY_BYTES: usize = 1024;

/// An idempotency key names one submission: it may not be empty (which
/// would make every keyless-looking request one), nor huge, nor hold
/// control characters.
fn check_key(key: &str) -> Result<(), Error> {
    if key.trim().is_empty() {
        return Err(Error::InvalidKey("the key is empty; leave it out to submit without one".into()));
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(Error::InvalidKey(format!("the key is {} bytes; at most {MAX_KEY_BYTES}", key.len())));
    }
    if key.chars().any(char::is_control) {
        return Err(Error::InvalidKey("the key holds control characters".into()));
    }
    Ok(())
}

/// The first 12 characters of a content hash, as `inspect` shows it.
fn short(hash: &str) -> &str {
    &hash[..hash.len().min(12)]
}

/// Whether an execution of `wf` (or of a sub-workflow it runs) can park on
/// something only the outside moves: an event, an approval, a remote
/// agent's question. A timer is not that: it fires by itself.
fn can_park(wf: &Workflow) -> bool {
    wf.nodes.values().any(|n| match &n.kind {
        crate::ir::NodeKind::Wait(w) => w.event.is_some(),
        crate::ir::NodeKind::Approval(_) | crate::ir::NodeKind::Agent(_) => true,
        crate::ir::NodeKind::Workflow(s) => can_park(&s.workflow),
        _ => false,
    })
}

/// The terminal event of a history, if it has one.
pub fn terminal_event(records: &[Record]) -> Option<&Event> {
    records.last().map(|r| &r.event).filter(|e| e.is_terminal())
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

#[cfg(test)]
mod tests {
    use serde_json::json;
    use tokio::sync::watch;

    use super::*;
    use crate::actors::ExecutionHandle;
    use crate::journal::Event;

    const WF: &str = "id: p\nstate_schema: { out: int }\nnodes:\n  work:\n    type: function\n    function: work\n    output_key: out\n";

    #[tokio::test]
    async fn a_workflow_registered_under_an_earlier_hash_is_the_same_workflow() {
        let rt = Runtime::builder().in_memory().open().await.unwrap();
        let wf = crate::ir::compile_str(WF, "wf.yaml").unwrap();
        // As an earlier version stored it: the same IR under a hash over all of it.
        let old = Registration {
            workflow_id: wf.id.clone(),
            version: wf.version.clone(),
            hash: "0ld".into(),
            registered_ms: 1,
        };
        rt.services().journal.register(&old, &wf).await.unwrap();
        let again = rt.register(&wf, false).await.expect("no conflict");
        assert_eq!(again.hash, "0ld");
        let mut other = wf.clone();
        other.nodes.get_mut("work").unwrap().timeout_ms = Some(5);
        assert!(matches!(rt.register(&other, false).await, Err(Error::WorkflowConflict { .. })));
    }

    /// The execution's live actor. Called once its node is running: the
    /// supervisor registered the actor in the same message that spawned it,
    /// and answers this question after that message.
    async fn actor_of(rt: &Runtime, id: ExecutionId) -> ExecutionHandle {
        rt.supervisor()
            .actor(id)
            .await
            .expect("the supervisor answers")
            .unwrap_or_else(|| panic!("no live actor for {id}"))
    }

    /// A function that counts its calls and holds each until `release`
    /// says how many may finish.
    fn holding(calls: Arc<watch::Sender<u32>>, release: Arc<tokio::sync::Semaphore>) -> Builder {
        Runtime::builder().in_memory().function("work", move |call: FunctionCall| {
            let (calls, release) = (calls.clone(), release.clone());
            async move {
                calls.send_modify(|n| *n += 1);
                release.acquire().await.expect("semaphore open").forget();
                Ok(json!(call.attempt))
            }
        })
    }

    async fn wait_calls(calls: &watch::Sender<u32>, n: u32) {
        let mut rx = calls.subscribe();
        tokio::time::timeout(Duration::from_secs(10), rx.wait_for(|&c| c >= n))
            .await
            .expect("the function was called in time")
            .expect("the counter is alive");
    }

    #[tokio::test]
    async fn a_panicking_execution_actor_is_rehydrated_and_the_execution_completes() {
        let calls = Arc::new(watch::Sender::new(0u32));
        let release = Arc::new(tokio::sync::Semaphore::new(0));
        let rt = holding(calls.clone(), release.clone()).open().await.unwrap();
        let wf = crate::ir::compile_str(WF, "p.yaml").unwrap();
        let id = rt.submit(&wf, json!({})).await.unwrap();
        wait_calls(&calls, 1).await;
        let first = actor_of(&rt, id).await;
        first.panic("bug in the shell");
        // The rehydrated actor runs the interrupted node again as attempt 2.
        wait_calls(&calls, 2).await;
        let second = actor_of(&rt, id).await;
        assert_ne!(first.id(), second.id());
        release.add_permits(2);
        let out = rt.wait(id).await.unwrap();
        assert_eq!(out.status, Status::Completed);
        assert_eq!(out.state["out"], 2, "attempt 2 completed the node");
        let starts: Vec<u32> = rt
            .events(id)
            .unwrap()
            .iter()
            .filter_map(|r| match r.event {
                Event::NodeStarted { attempt, visit: 1, .. } => Some(attempt),
                _ => None,
            })
            .collect();
        assert_eq!(starts, vec![1, 2]);
    }

    #[tokio::test]
    async fn past_the_restart_budget_the_execution_fails_with_the_panic_text() {
        let calls = Arc::new(watch::Sender::new(0u32));
        let release = Arc::new(tokio::sync::Semaphore::new(0));
        let rt = holding(calls.clone(), release.clone())
            .restart_budget(RestartBudget { max_restarts: 2, window_ms: 60_000 })
            .open()
            .await
            .unwrap();
        let wf = crate::ir::compile_str(WF, "p.yaml").unwrap();
        let id = rt.submit(&wf, json!({})).await.unwrap();
        for n in 1..=3 {
            wait_calls(&calls, n).await;
            actor_of(&rt, id).await.panic(&format!("shell bug #{n}"));
        }
        let out = rt.wait(id).await.unwrap();
        assert_eq!(out.status, Status::Failed);
        let err = out.error.unwrap();
        assert!(err.contains("shell bug #3") && err.contains("restart budget 2"), "{err}");
        // The runtime keeps serving others.
        release.add_permits(1);
        let other = rt.run(&wf, json!({})).await.unwrap();
        assert_eq!(other.status, Status::Completed);
    }
}
