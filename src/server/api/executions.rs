//! `/executions`: submit (idempotent with a key), list (paged by a
//! cursor), read one (status, state, usage, what it waits for), its events,
//! and signal / approve / cancel. The live stream is [`super::super::sse`].

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::super::extract::json_body;
use super::super::wire::{
    ApproveRequest, Approved, CancelRequest, Events, Execution, ExecutionWorkflow, Moved, Page, PruneRequest,
    ResumeReply, SignalRequest, Skipped, SubmitRequest, Submitted, Summary, Wait,
};
use super::super::{ApiError, AppState};
use super::reply;
use crate::id::ExecutionId;
use crate::journal::{RowFilter, Status};
use crate::runtime::{Decision, WaitKind};

/// `GET /executions` pages: default and largest `limit`.
pub const DEFAULT_LIMIT: usize = 100;
pub const MAX_LIMIT: usize = 1000;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/executions", get(list).post(submit))
        .route("/executions/{id}", get(one))
        .route("/executions/{id}/events", get(events))
        .route("/executions/{id}/workflow", get(workflow))
        .route("/executions/{id}/events/stream", get(super::super::sse::stream))
        .route("/executions/{id}/signal", post(signal))
        .route("/executions/{id}/approve", post(approve))
        .route("/executions/{id}/cancel", post(cancel))
        .route("/executions/{id}/fork", post(fork))
        .route("/executions/{id}/replay", get(replay))
        .route("/resume", post(resume))
        .route("/prune", post(prune))
}

/// An execution id from the URL: a malformed one is a 400 naming it.
pub fn parse_id(raw: &str) -> Result<ExecutionId, ApiError> {
    raw.parse::<ExecutionId>().map_err(|e| {
        ApiError::bad_request(format!("`{raw}` is not an execution id: {e}")).with_details(json!({ "id": raw }))
    })
}

/// A query string that does not parse is a 400 naming what is wrong.
pub fn query<T>(q: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    q.map(|Query(t)| t).map_err(|e| ApiError::bad_request(format!("bad query string: {}", e.body_text())))
}

async fn submit(State(st): State<AppState>, headers: HeaderMap, body: Bytes) -> Result<Response, ApiError> {
    let b: SubmitRequest = json_body(&headers, &body, false)?;
    let wf = match (&b.workflow_id, b.workflow) {
        (Some(id), None) => st.rt.registered(id, b.version.as_deref())?.1,
        (None, Some(ir)) if b.version.is_none() => std::sync::Arc::new(super::workflows::inline(&st, ir).await?),
        (None, Some(_)) => {
            return Err(ApiError::bad_request(
                "`version` goes with `workflow_id`; a `workflow` given inline carries its own",
            ));
        }
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request(
                "give `workflow_id` (a registered workflow) or `workflow` (its IR), not both",
            ));
        }
        (None, None) => {
            return Err(ApiError::bad_request(
                "give `workflow_id` (a registered workflow) or `workflow` (its IR, run without registering it)",
            ));
        }
    };
    let input = b.input.unwrap_or_else(|| Value::Object(Map::new()));
    let (id, new) = match b.session.as_deref() {
        Some(session) => st.rt.submit_in_session(&wf, input, session, b.idempotency_key.as_deref()).await?,
        None => st.rt.submit_once(&wf, input, b.idempotency_key.as_deref()).await?,
    };
    let meta = st.rt.status(id)?;
    let status = if new { StatusCode::CREATED } else { StatusCode::OK };
    let body = Submitted { id, workflow_id: meta.workflow_id, version: meta.workflow_version, status: meta.status };
    Ok((status, reply(&body)?).into_response())
}

#[derive(Deserialize)]
struct ListQuery {
    status: Option<String>,
    workflow: Option<String>,
    limit: Option<usize>,
    cursor: Option<String>,
    /// `asc` (oldest first, the default) or `desc` (newest first).
    order: Option<String>,
    /// Only the execution submitted with this idempotency key.
    key: Option<String>,
    /// Add each row's tokens and cost (reads each listed execution's history).
    usage: Option<bool>,
}

async fn list(
    State(st): State<AppState>,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let q = query(q)?;
    let status = match q.status.as_deref() {
        None => None,
        Some(s) => Some(Status::parse(s).ok_or_else(|| {
            ApiError::bad_request(format!("unknown status `{s}`: use running, waiting, completed, failed or cancelled"))
        })?),
    };
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(ApiError::bad_request(format!("limit must be between 1 and {MAX_LIMIT}, not {limit}")));
    }
    let newest_first = match q.order.as_deref() {
        None | Some("asc") => false,
        Some("desc") => true,
        Some(other) => return Err(ApiError::bad_request(format!("unknown order `{other}`: use asc or desc"))),
    };
    let cursor = q.cursor.as_deref().map(parse_id).transpose()?;
    let filter = RowFilter { status, workflow: q.workflow.clone() };
    let (page, more, damaged) = if let Some(key) = q.key.as_deref() {
        // One execution at most: the one submitted with the key.
        let found = match st.rt.by_key(key)? {
            Some(id) => st.rt.status(id).ok().filter(|m| filter.keeps(m) && cursor.is_none()),
            None => None,
        };
        (found.into_iter().collect(), false, Vec::new())
    } else {
        // Rows that cannot be read have no status or workflow to filter on: listed only unfiltered.
        let unfiltered = filter.is_empty();
        let p = st.rt.page(cursor, newest_first, limit, &filter)?;
        (p.rows, p.more, if unfiltered { p.damaged } else { Vec::new() })
    };
    let next = if more { page.last().map(|m| m.id.to_string()) } else { None };
    // A first record that cannot be read leaves the row without a parent:
    // the list still answers (`GET /executions/{id}` says what is damaged).
    let rows = page
        .iter()
        .map(|m| {
            let mut row = Summary::of(m, st.rt.parent_link(m.id).ok().flatten().map(|p| p.id));
            if q.usage == Some(true) {
                row.usage = st.rt.usage(m.id).ok();
            }
            row
        })
        .collect();
    reply(&Page { executions: rows, next_cursor: next, damaged })
}

async fn one(State(st): State<AppState>, Path(raw): Path<String>) -> Result<Json<Value>, ApiError> {
    let id = parse_id(&raw)?;
    let meta = st.rt.status(id)?;
    let out = st.rt.outcome(id)?;
    let waiting = if meta.status.is_terminal() {
        Vec::new()
    } else {
        st.rt.waiting_in_family(id)?.iter().map(Wait::from).collect()
    };
    let settled = meta.status.is_terminal() || st.rt.family_settled(id)?;
    reply(&Execution {
        id,
        workflow_id: meta.workflow_id,
        version: meta.workflow_version,
        status: out.status,
        state: out.state,
        error: out.error,
        usage: out.usage,
        created_ms: meta.created_ms,
        updated_ms: meta.updated_ms,
        waiting,
        workflow_hash: Some(meta.workflow_hash),
        key: meta.key,
        settled: Some(settled),
    })
}

/// `GET /executions/{id}/workflow`: the IR the execution runs (stored
/// under its content hash when it started; registered or not).
async fn workflow(State(st): State<AppState>, Path(raw): Path<String>) -> Result<Json<Value>, ApiError> {
    let id = parse_id(&raw)?;
    let meta = st.rt.status(id)?;
    let wf = st.rt.workflow_of(id)?;
    reply(&ExecutionWorkflow { hash: meta.workflow_hash, workflow: (*wf).clone() })
}

#[derive(Deserialize)]
struct EventsQuery {
    after: Option<u64>,
}

async fn events(
    State(st): State<AppState>,
    Path(raw): Path<String>,
    q: Result<Query<EventsQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let id = parse_id(&raw)?;
    let q = query(q)?;
    st.rt.status(id)?;
    let records = st.rt.events_after(id, q.after.unwrap_or(0))?;
    reply(&Events { events: records })
}

async fn signal(
    State(st): State<AppState>,
    Path(raw): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let id = parse_id(&raw)?;
    let b: SignalRequest = json_body(&headers, &body, false)?;
    // Asked before delivering: once delivered, the wait it ends is gone.
    // (An execution that cannot be asked is refused by the delivery.)
    let awaited: Vec<Wait> = st
        .rt
        .waiting_in_family(id)
        .unwrap_or_default()
        .iter()
        .filter(|w| w.kind == WaitKind::Event)
        .map(Wait::from)
        .collect();
    let kept = !awaited.iter().any(|w| w.id == Some(id) && w.event.as_deref() == Some(b.key.as_str()));
    st.rt.signal(id, &b.key, b.payload).await?;
    let status = st.rt.status(id)?.status;
    let body = Moved { id, status, kept: Some(kept), awaited: Some(awaited) };
    Ok((StatusCode::ACCEPTED, reply(&body)?).into_response())
}

async fn approve(
    State(st): State<AppState>,
    Path(raw): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let id = parse_id(&raw)?;
    let b: ApproveRequest = json_body(&headers, &body, false)?;
    let by = b.by.unwrap_or_else(|| "api".to_string());
    let call = b.call.clone();
    let decision = Decision { node: b.node, call: b.call, approved: b.approved, by, comment: b.comment };
    let node = st.rt.approve(id, decision).await?;
    let status = st.rt.status(id)?.status;
    reply(&Approved { id, node, call, status })
}

async fn cancel(
    State(st): State<AppState>,
    Path(raw): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let id = parse_id(&raw)?;
    let b: CancelRequest = json_body(&headers, &body, true)?;
    st.rt.cancel(id, b.reason.as_deref().unwrap_or("cancelled through the API")).await?;
    let status = st.rt.status(id)?.status;
    reply(&Moved { id, status, kept: None, awaited: None })
}

/// `POST /resume`: rehydrate every running execution that is not live in
/// this process yet (what `jamjet resume` does on a data dir it opens; a
/// server resumes them at start, so there it finds none, or those a
/// command's process left). Answers which it resumed and which it skipped,
/// and why; none of them is awaited.
async fn resume(State(st): State<AppState>, headers: HeaderMap, body: Bytes) -> Result<Json<Value>, ApiError> {
    if !body.is_empty() {
        let _: Map<String, Value> = json_body(&headers, &body, false)?;
    }
    let r = st.rt.resume_all_reporting().await?;
    let skipped = r.skipped.into_iter().map(|(id, reason)| Skipped { id, reason }).collect();
    reply(&ResumeReply { resumed: r.resumed, skipped })
}

/// `POST /prune`: remove the ended executions a [`PruneRequest`] chooses,
/// in bounded batches while the server runs (never a running or waiting
/// one), and answer what was freed.
async fn prune(State(st): State<AppState>, headers: HeaderMap, body: Bytes) -> Result<Json<Value>, ApiError> {
    let b: PruneRequest = json_body(&headers, &body, false)?;
    let retention = b.retention().map_err(ApiError::bad_request)?;
    let report = st.rt.prune(&retention, b.dry_run, |_, _| {}).await?;
    reply(&report)
}

/// `POST /executions/{id}/fork`: a new execution that goes on from a node
/// visit of this one (see `Runtime::fork`); 201 with the fork's row.
async fn fork(
    State(st): State<AppState>,
    Path(raw): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let id = parse_id(&raw)?;
    let spec: crate::runtime::ForkSpec = json_body(&headers, &body, false)?;
    let fork = st.rt.fork(id, &spec).await?;
    let meta = st.rt.status(fork)?;
    let body =
        Submitted { id: fork, workflow_id: meta.workflow_id, version: meta.workflow_version, status: meta.status };
    Ok((StatusCode::CREATED, reply(&body)?).into_response())
}

/// `GET /executions/{id}/replay`: the journal folded again through this
/// build's state machine, and where the two disagree (`jamjet replay`).
async fn replay(State(st): State<AppState>, Path(raw): Path<String>) -> Result<Json<Value>, ApiError> {
    let id = parse_id(&raw)?;
    reply(&st.rt.replay(id)?)
}
