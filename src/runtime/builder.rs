//! Building and opening a [`Runtime`]: the [`Builder`] wires what the
//! layers below share (the journal behind the live feed, the nodes'
//! `Env`, the actors' `Shared`, the supervisor), then resumes what was
//! running and starts the timer wheel. Nothing here runs an execution.

use std::collections::VecDeque;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde_json::Value;

use super::{Error, Feed, Inner, Observed, Runtime};
use crate::actors::{RestartBudget, Shared, SupervisorHandle};
use crate::clock::{Clock, SystemClock};
use crate::ir::Limits;
use crate::journal::{Journal, MemoryJournal, SledJournal};
use crate::nodes::{Env, FunctionCall, FunctionError, FunctionRegistry};

/// How many executions a process carries at once before it stops claiming
/// more from a shared store (see [`Builder::claim_capacity`]).
pub const DEFAULT_CLAIM_CAPACITY: usize = 256;

/// Builds a [`Runtime`]: register functions before `open` so that
/// executions resumed at open can call them.
pub struct Builder {
    data_dir: Option<PathBuf>,
    journal: Option<Arc<dyn Journal>>,
    clock: Arc<dyn Clock>,
    pub(super) functions: FunctionRegistry,
    keys: crate::model::KeySource,
    resume: bool,
    timers: bool,
    restart_budget: RestartBudget,
    limits: Limits,
    session_idle: std::time::Duration,
    session_wait: std::time::Duration,
    claim_capacity: usize,
    answer_within: std::time::Duration,
    otlp: Option<super::OtlpConfig>,
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
            session_idle: super::DEFAULT_SESSION_IDLE,
            session_wait: super::DEFAULT_SESSION_WAIT,
            claim_capacity: DEFAULT_CLAIM_CAPACITY,
            answer_within: super::ANSWER_WITHIN,
            otlp: None,
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
    /// In a store many processes share (PostgreSQL), whether this process
    /// claims executions that need one (no live process owns them) and
    /// carries them on, for as long as it runs: a worker does; a command
    /// that only runs its own work does not.
    pub fn resume_on_open(mut self, yes: bool) -> Self {
        self.resume = yes;
        self
    }
    /// In a store many processes share (PostgreSQL): how many executions
    /// this process carries at once before it stops claiming more (default
    /// [`DEFAULT_CLAIM_CAPACITY`]); executions it starts itself count too.
    pub fn claim_capacity(mut self, n: usize) -> Self {
        self.claim_capacity = n.max(1);
        self
    }
    /// In a store many processes share (PostgreSQL): how long a signal,
    /// decision or cancel sent to an execution another live process runs
    /// waits for that process to take it before it is withdrawn (default
    /// [`ANSWER_WITHIN`](super::ANSWER_WITHIN), 30 s).
    pub fn answer_within(mut self, wait: std::time::Duration) -> Self {
        self.answer_within = wait;
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

    /// How long a session may stay idle (no task started or ended) before
    /// it expires (default [`super::DEFAULT_SESSION_IDLE`], 24 hours).
    pub fn session_idle(mut self, idle: std::time::Duration) -> Self {
        self.session_idle = idle;
        self
    }
    /// How long a message of a session waits for the session's previous
    /// task to end before it is refused (default
    /// [`super::DEFAULT_SESSION_WAIT`], 5 minutes).
    pub fn session_wait(mut self, wait: std::time::Duration) -> Self {
        self.session_wait = wait;
        self
    }

    /// Export every execution as an OpenTelemetry trace (see [`super::otel`]).
    pub fn otlp(mut self, config: super::OtlpConfig) -> Self {
        self.otlp = Some(config);
        self
    }

    pub async fn open(self) -> Result<Runtime, Error> {
        let journal: Arc<dyn Journal> = match (self.journal, &self.data_dir) {
            (Some(j), _) => j,
            (None, Some(dir)) => Arc::new(SledJournal::open(dir)?),
            (None, None) => Arc::new(SledJournal::open(Path::new(".jamjet"))?),
        };
        let feed = Arc::new(Feed::default());
        let otel = match &self.otlp {
            Some(config) => Some(super::otel::Exporter::start(config, journal.clone()).map_err(Error::Setup)?),
            None => None,
        };
        let observed = Observed::new(journal, feed.clone());
        let journal: Arc<dyn Journal> = Arc::new(match &otel {
            Some(exporter) => observed.exporting(exporter.clone()),
            None => observed,
        });
        let env = Env::new(self.clock.clone(), self.functions, self.keys, self.limits)
            .map_err(|e| Error::Actor(format!("cannot build the HTTP client: {e}")))?;
        let (mut services, closed_rx) =
            Shared::new(journal, self.clock, self.restart_budget, self.limits, Arc::new(env));
        services.tracing = otel.is_some();
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
                sessions: Arc::new(super::sessions::SessionTable::new(self.session_idle, self.session_wait)),
                claiming: Arc::default(),
                lease_tasks: Mutex::new(Vec::new()),
                taking: Arc::default(),
                answer_within: self.answer_within,
                otel,
            }),
        };
        rt.inner.claiming.capacity.store(self.claim_capacity, std::sync::atomic::Ordering::SeqCst);
        if rt.shares_store() {
            // What other processes left behind is claimed as their leases
            // end, not resumed all at once: see `leases.rs`.
            super::leases::start(&rt, self.resume);
        } else if self.resume {
            rt.resume_all().await?;
        }
        if timers {
            rt.start_timers();
            rt.start_session_sweep();
        }
        Ok(rt)
    }
}

impl Runtime {
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// Open the runtime on a data dir (sled journal) and resume every
    /// non-terminal execution in it.
    pub async fn open(data_dir: impl AsRef<Path>) -> Result<Runtime, Error> {
        Builder::default().data_dir(data_dir).open().await
    }
}
