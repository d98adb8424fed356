//! Sessions: several tasks (executions) of one workflow that make one
//! conversation, named by an id the caller picks (an A2A `contextId`,
//! `jamjet run --session ID`, [`Runtime::submit_in_session`]).
//!
//! A new task of a session starts from its input plus the workflow's
//! `session_state:` keys as the last completed task of the session left
//! them (a key the input sets wins), and is given the conversation so far
//! (the message and answer of every earlier completed task, the latest
//! [`HISTORY_TURNS`]). Both are journaled in the task's own history: the
//! carried keys in its `ExecutionStarted` input and the turn in
//! `SessionJoined`, in the same batch as the session record naming it, so
//! a replay sees what the live run saw and a crash never leaves a session
//! naming a task that does not exist (or the reverse).
//!
//! Tasks of one session are serialised: a message for a session whose
//! last task has not ended waits for it (at most the runtime's session
//! wait) and then goes on from its result; one that is parked on an event
//! or an approval is refused at once, naming it. The wait is in this
//! process (one lock per session id), and durable in that the running
//! task is read from the journal: after a restart the task still running
//! blocks the next message the same way.
//!
//! A session idle for longer than the runtime's idle time (since its last
//! task started or ended) expires: a sweep removes it (and an access finds
//! it gone); a message naming it then starts a new session under the same
//! id. Its executions stay in the journal.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{Error, Outcome, Runtime};
use crate::actors::Shared;
use crate::id::ExecutionId;
use crate::ir::Workflow;
use crate::journal::{Event, Json, SessionRecord, Status, check_session_id};
use crate::nodes::PastTurn;

/// How long a session may stay idle before it expires, by default.
pub const DEFAULT_SESSION_IDLE: Duration = Duration::from_secs(24 * 3600);
/// How long a message waits, by default, for its session's previous task to end.
pub const DEFAULT_SESSION_WAIT: Duration = Duration::from_secs(300);
/// How many earlier turns a task of a session is given (the latest ones).
pub const HISTORY_TURNS: usize = 50;
/// The longest message or answer kept in a session's history, in
/// characters (longer ones are cut, marked with `…`).
pub const TURN_CHARS: usize = 32 * 1024;
/// How many sessions one sweep removes at most.
const SWEEP_BATCH: usize = 1_000;
/// How many earlier tasks are looked over for the last completed one.
const LOOK_BACK: usize = 64;

/// A session as listed (`jamjet sessions`, `GET /sessions`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionInfo {
    pub id: String,
    pub workflow_id: String,
    pub created_ms: u64,
    /// When its last task started or ended.
    pub last_active_ms: u64,
    /// When it expires if nothing more happens (unix ms); none while a task runs.
    pub expires_ms: Option<u64>,
    /// Its tasks, oldest first.
    pub executions: Vec<ExecutionId>,
    /// Its last task, while that has not ended.
    pub running: Option<ExecutionId>,
}

/// One task of a session, as `jamjet sessions show` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionTask {
    pub execution: ExecutionId,
    pub status: Status,
    /// Its message, as the next task's history shows it.
    pub message: Option<String>,
    /// Its answer (a completed task).
    pub answer: Option<String>,
}

/// A session in detail (`jamjet sessions show`, `GET /sessions/{id}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionDetail {
    #[serde(flatten)]
    pub info: SessionInfo,
    pub tasks: Vec<SessionTask>,
    /// The `session_state` keys the next task would start with.
    pub state: Map<String, Value>,
}

/// What the last completed task of a session leaves the next one.
struct CarriedOn {
    after: Option<ExecutionId>,
    history: Vec<PastTurn>,
    state: Map<String, Value>,
}

impl Runtime {
    /// Submit a task of session `session`: serialised after the session's
    /// previous task, starting from `input` plus the carried `session_state`
    /// keys, given the conversation so far. A session unknown (or expired)
    /// starts with this task. `key` as in [`submit_keyed`](Self::submit_keyed):
    /// a key that started an execution returns it and starts nothing.
    /// Returns the execution and whether this call started it.
    pub async fn submit_in_session(
        &self,
        workflow: &Workflow,
        input: Value,
        session: &str,
        key: Option<&str>,
    ) -> Result<(ExecutionId, bool), Error> {
        check_session_id(session).map_err(Error::InvalidSession)?;
        let lock = self.session_lock(session);
        let _turn = lock.lock().await;
        if let Some(key) = key
            && let Some(id) = self.services().journal.find_key(key)?
        {
            self.ensure_live(id).await?;
            return Ok((id, false));
        }
        let now = self.services().clock.now_ms();
        let existing = match self.services().journal.session(session)? {
            Some(r) if !self.expired(&r, now)? => Some(r),
            _ => None,
        };
        if let Some(r) = &existing
            && r.workflow_id != workflow.id
        {
            return Err(Error::SessionWorkflow {
                session: session.to_string(),
                runs: r.workflow_id.clone(),
                asked: workflow.id.clone(),
            });
        }
        if let Some(last) = existing.as_ref().and_then(|r| r.executions.last()) {
            self.wait_for_turn(session, *last).await?;
        }
        let carried = self.carried_on(workflow, existing.as_ref())?;
        let message = message_of(workflow, &input);
        let (input, kept) = match input {
            Value::Object(given) => {
                let kept: Map<String, Value> = carried
                    .state
                    .iter()
                    .filter(|(k, _)| !given.contains_key(*k))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                let mut merged = kept.clone();
                merged.extend(given);
                (Value::Object(merged), kept)
            }
            // Refused by the schema check, naming what it is.
            other => (other, Map::new()),
        };
        let turn = existing.as_ref().map_or(0, |r| r.executions.len()) as u32 + 1;
        let history = serde_json::to_value(&carried.history).expect("turns serialize");
        let joined = Event::SessionJoined {
            session: session.to_string(),
            turn,
            after: carried.after.map(|id| id.to_string()),
            message,
            history: Json::from_value(&history),
            carried: Json::from_map(&kept),
        };
        let record = SessionRecord {
            id: session.to_string(),
            workflow_id: workflow.id.clone(),
            created_ms: existing.as_ref().map_or(now, |r| r.created_ms),
            last_active_ms: now,
            executions: existing.map(|r| r.executions).unwrap_or_default(),
        };
        let (id, started, _) = self.submit_started(workflow, input, key, false, Some((joined, record))).await?;
        Ok((id, started))
    }

    /// Submit a task of session `session` and wait for its end (see
    /// [`submit_in_session`](Self::submit_in_session)).
    pub async fn run_in_session(&self, workflow: &Workflow, input: Value, session: &str) -> Result<Outcome, Error> {
        let (id, _) = self.submit_in_session(workflow, input, session, None).await?;
        self.wait(id).await
    }

    /// Every session that has not expired, by id.
    pub fn sessions(&self) -> Result<Vec<SessionInfo>, Error> {
        let now = self.services().clock.now_ms();
        let mut out = Vec::new();
        for r in self.services().journal.sessions()? {
            let info = self.info(r)?;
            if info.expires_ms.is_none_or(|at| at > now) {
                out.push(info);
            }
        }
        Ok(out)
    }

    /// One session in detail: its tasks, each with its message and answer,
    /// and the state the next task would carry on.
    pub fn session(&self, id: &str) -> Result<SessionDetail, Error> {
        check_session_id(id).map_err(Error::InvalidSession)?;
        let now = self.services().clock.now_ms();
        let record = self.services().journal.session(id)?.ok_or_else(|| Error::UnknownSession(id.to_string()))?;
        let info = self.info(record.clone())?;
        if info.expires_ms.is_some_and(|at| at <= now) {
            return Err(Error::UnknownSession(id.to_string()));
        }
        let mut tasks = Vec::with_capacity(record.executions.len());
        for &execution in &record.executions {
            let Some(meta) = self.services().journal.meta(execution)? else { continue };
            let wf = self.workflow_of(execution)?;
            let (message, answer) = self.task_turn(&wf, execution, meta.status)?;
            tasks.push(SessionTask { execution, status: meta.status, message, answer });
        }
        let state = match record.executions.last() {
            Some(&last) => self.carried_on(&*self.workflow_of(last)?, Some(&record))?.state,
            None => Map::new(),
        };
        Ok(SessionDetail { info, tasks, state })
    }

    /// Remove every session idle past the idle time (at most a batch per
    /// call); how many were removed. One whose lock is held (a message is
    /// being taken) is left for the next sweep.
    pub async fn expire_sessions(&self) -> Result<usize, Error> {
        expire(self.services(), &self.inner.sessions).await
    }

    /// Sweep expired sessions now and then (every tenth of the idle time,
    /// between 50 ms and a minute) while the runtime lives. The sweep holds
    /// the runtime's services weakly, as the timer wheel does: it never
    /// keeps a runtime alive, nor delays its shutdown.
    pub(super) fn start_session_sweep(&self) {
        let table = self.inner.sessions.clone();
        let every = (table.idle / 10).clamp(Duration::from_millis(50), Duration::from_secs(60));
        let services = Arc::downgrade(&self.inner.services);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let Some(services) = services.upgrade() else { return };
                if let Err(e) = expire(&services, &table).await {
                    tracing::warn!(error = %e, "expired sessions could not be removed; trying again later");
                }
            }
        });
    }

    /// Wait for task `last` of `session` to end (bounded by the session
    /// wait); refused when it waits for input, or still runs past the wait.
    async fn wait_for_turn(&self, session: &str, last: ExecutionId) -> Result<(), Error> {
        let Some(meta) = self.services().journal.meta(last)? else { return Ok(()) };
        if meta.status.is_terminal() {
            return Ok(());
        }
        let wait = self.inner.sessions.wait;
        let busy = |why: String| Error::SessionBusy { session: session.to_string(), execution: last, why };
        match tokio::time::timeout(wait, self.settle(last)).await {
            Err(_) => Err(busy(format!(
                "is still running after {} ms (a message waits that long for the session's previous task)",
                wait.as_millis()
            ))),
            Ok(Err(e)) => Err(e),
            Ok(Ok(out)) if !out.status.is_terminal() => Err(busy(
                "waits for input (an event or an approval): answer it, or cancel it, before the next message".into(),
            )),
            Ok(Ok(_)) => Ok(()),
        }
    }

    fn expired(&self, r: &SessionRecord, now: u64) -> Result<bool, Error> {
        expired(self.services(), &self.inner.sessions, r, now)
    }

    fn info(&self, r: SessionRecord) -> Result<SessionInfo, Error> {
        info(self.services(), &self.inner.sessions, r)
    }

    fn session_lock(&self, id: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.inner.sessions.lock_of(id)
    }

    /// What the last completed task of `record` leaves the next task of
    /// `workflow`: the conversation so far and its `session_state` keys.
    fn carried_on(&self, workflow: &Workflow, record: Option<&SessionRecord>) -> Result<CarriedOn, Error> {
        let none = CarriedOn { after: None, history: Vec::new(), state: Map::new() };
        let Some(record) = record else { return Ok(none) };
        for &id in record.executions.iter().rev().take(LOOK_BACK) {
            match self.services().journal.meta(id)? {
                Some(meta) if meta.status == Status::Completed => {}
                _ => continue,
            }
            let records = self.services().journal.read(id)?;
            let mut history = Vec::new();
            let mut message = None;
            let mut input = Map::new();
            let mut state = Map::new();
            for r in &records {
                match &r.event {
                    Event::ExecutionStarted { input: i, .. } => input = i.object()?,
                    Event::SessionJoined { history: h, message: m, .. } => {
                        history = serde_json::from_value(h.value()?).unwrap_or_default();
                        message = Some(m.clone());
                    }
                    Event::ExecutionCompleted { state: s } => state = s.object()?,
                    _ => {}
                }
            }
            let ran = self.workflow_of(id)?;
            let message = message.unwrap_or_else(|| message_of(&ran, &Value::Object(input)));
            history.push(PastTurn { user: cut(message), answer: cut(answer_of(&ran, &state)) });
            if history.len() > HISTORY_TURNS {
                history.drain(..history.len() - HISTORY_TURNS);
            }
            let state =
                workflow.session_state.iter().filter_map(|k| Some((k.clone(), state.get(k)?.clone()))).collect();
            return Ok(CarriedOn { after: Some(id), history, state });
        }
        Ok(none)
    }

    /// A task's message and (completed) answer, as a history shows them.
    fn task_turn(
        &self,
        wf: &Workflow,
        id: ExecutionId,
        status: Status,
    ) -> Result<(Option<String>, Option<String>), Error> {
        let mut message = None;
        let mut answer = None;
        for r in self.services().journal.read(id)? {
            match r.event {
                Event::SessionJoined { message: m, .. } => message = Some(m),
                Event::ExecutionCompleted { state } if status == Status::Completed => {
                    answer = Some(answer_of(wf, &state.object()?));
                }
                _ => {}
            }
        }
        Ok((message, answer))
    }
}

/// A task's message as its session's history shows it: the value of the
/// workflow's `a2a.input_key` when the input holds it as text, else the
/// input as compact JSON.
fn message_of(workflow: &Workflow, input: &Value) -> String {
    let key = workflow.a2a.as_ref().and_then(|a| a.input_key.as_deref());
    match key.and_then(|k| input.get(k)) {
        Some(Value::String(s)) => s.clone(),
        _ => input.to_string(),
    }
}

/// A completed task's answer: the value of `a2a.output_key` (text as it
/// is, anything else as JSON), else the final state as compact JSON.
fn answer_of(workflow: &Workflow, state: &Map<String, Value>) -> String {
    let key = workflow.a2a.as_ref().and_then(|a| a.output_key.as_deref());
    match key.and_then(|k| state.get(k)) {
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => Value::Object(state.clone()).to_string(),
    }
}

/// `text` cut to [`TURN_CHARS`] characters (`…` marks a cut).
fn cut(text: String) -> String {
    if text.chars().count() <= TURN_CHARS {
        return text;
    }
    let mut out: String = text.chars().take(TURN_CHARS - 1).collect();
    out.push('…');
    out
}

/// A runtime's session locks and times.
pub(super) struct SessionTable {
    /// One lock per session id: its tasks start one after the other.
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// How long a session may stay idle before it expires.
    idle: Duration,
    /// How long a message waits for its session's previous task.
    wait: Duration,
}

impl SessionTable {
    pub(super) fn new(idle: Duration, wait: Duration) -> SessionTable {
        SessionTable { locks: Mutex::new(HashMap::new()), idle, wait }
    }

    /// The lock that serialises the tasks of session `id` in this process.
    fn lock_of(&self, id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().expect("session locks");
        if locks.len() > 1024 {
            // Locks nobody holds or waits for are made again when needed.
            locks.retain(|_, l| Arc::strong_count(l) > 1);
        }
        locks.entry(id.to_string()).or_default().clone()
    }
}

/// Session `r` as listed: its last activity (its record's, or its last
/// task's index row, whichever is later), its running task, its expiry.
fn info(services: &Shared, table: &SessionTable, r: SessionRecord) -> Result<SessionInfo, Error> {
    let last = match r.executions.last() {
        Some(&id) => services.journal.meta(id)?,
        None => None,
    };
    let running = last.as_ref().filter(|m| !m.status.is_terminal()).map(|m| m.id);
    let last_active_ms = r.last_active_ms.max(last.as_ref().map_or(0, |m| m.updated_ms));
    let idle = table.idle.as_millis() as u64;
    let expires_ms = running.is_none().then(|| last_active_ms.saturating_add(idle));
    Ok(SessionInfo {
        id: r.id,
        workflow_id: r.workflow_id,
        created_ms: r.created_ms,
        last_active_ms,
        expires_ms,
        executions: r.executions,
        running,
    })
}

/// Whether session `r` expired at `now`: idle for the idle time since its
/// last task started or ended, and that task not running.
fn expired(services: &Shared, table: &SessionTable, r: &SessionRecord, now: u64) -> Result<bool, Error> {
    Ok(info(services, table, r.clone())?.expires_ms.is_some_and(|at| at <= now))
}

/// Remove the sessions expired now (at most [`SWEEP_BATCH`]), each under
/// its lock (one being written is left for the next sweep); how many.
async fn expire(services: &Shared, table: &SessionTable) -> Result<usize, Error> {
    let now = services.clock.now_ms();
    let mut held = Vec::new();
    let mut ids = Vec::new();
    for r in services.journal.sessions()? {
        if ids.len() >= SWEEP_BATCH {
            break;
        }
        if !expired(services, table, &r, now)? {
            continue;
        }
        let Ok(guard) = table.lock_of(&r.id).try_lock_owned() else { continue };
        // Read again under its lock: a message may have just been taken.
        if let Some(again) = services.journal.session(&r.id)?
            && expired(services, table, &again, now)?
        {
            ids.push(r.id.clone());
            held.push(guard);
        }
    }
    services.journal.forget_sessions(&ids).await?;
    drop(held);
    if !ids.is_empty() {
        tracing::debug!(count = ids.len(), "expired sessions removed");
    }
    Ok(ids.len())
}
