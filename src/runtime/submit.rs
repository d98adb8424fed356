//! Submitting executions and registering workflows: the idempotency key
//! and input checks, the small cache of lately hashed workflows, and the
//! durable registry a server offers workflows from by id. Waiting for what
//! was submitted is `settle.rs`'s.

use std::sync::Arc;

use serde_json::{Map, Value};

use super::{Error, HASHED_KEPT, Runtime};
use crate::id::ExecutionId;
use crate::ir::{Limits, Workflow};
use crate::journal::{self, Event, Registration};

impl Runtime {
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
        let (id, started, _) = self.submit_watched(workflow, input, key, false).await?;
        Ok((id, started))
    }

    /// [`submit_once`](Self::submit_once); with `watch`, an execution this
    /// call starts is listened to for its end from before it starts, so
    /// one that ends within its first step hands its final state back too.
    pub(super) async fn submit_watched(
        &self,
        workflow: &Workflow,
        input: Value,
        key: Option<&str>,
        watch: bool,
    ) -> Result<(ExecutionId, bool, Option<crate::actors::Finished>), Error> {
        self.submit_started(workflow, input, key, watch, None).await
    }

    /// [`submit_watched`](Self::submit_watched); `session`: a task of a
    /// session, with its `SessionJoined` and the session's record (this
    /// execution is added to it), written in the first batch.
    pub(super) async fn submit_started(
        &self,
        workflow: &Workflow,
        input: Value,
        key: Option<&str>,
        watch: bool,
        session: Option<(Event, journal::SessionRecord)>,
    ) -> Result<(ExecutionId, bool, Option<crate::actors::Finished>), Error> {
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
            return Ok((id, false, None));
        }
        let id = ExecutionId::new(self.services().clock.now_ms());
        let end = watch.then(|| self.services().on_finished(id));
        let first = Event::ExecutionStarted {
            workflow_id: wf.id.clone(),
            workflow_version: wf.version.clone(),
            workflow_hash: hash.clone(),
            input: journal::Json::from_map(&input),
            key: key.map(str::to_string),
        };
        let session = session.map(|(joined, mut record)| {
            record.executions.push(id);
            (joined, record)
        });
        match self.inner.supervisor.start_in(id, wf, hash, first, None, session)?.await {
            Ok(()) => Ok((id, true, end)),
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
