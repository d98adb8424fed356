//! JSON-RPC 2.0 over `POST /a2a` and `POST /a2a/{workflow_id}`: parsing,
//! the spec's error codes, and the methods (v1.0 names and v0.3 aliases,
//! [`super::dialect`]). Errors come back with HTTP 200 as JSON-RPC errors;
//! a request that fails validation journals nothing.
//!
//! `/a2a/{workflow_id}` serves one agent: its tasks only. `/a2a` serves
//! them all: a new task names its agent in the message's (or the request's)
//! metadata `skill` (a skill id or a workflow id), or goes to the only agent.

use ::a2a::error_code as code;
use ::a2a::{
    CancelTaskRequest, GetTaskRequest, JsonRpcError, JsonRpcId, JsonRpcResponse, ListTasksRequest, ListTasksResponse,
    SendMessageRequest, SubscribeToTaskRequest,
};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::agents::{self, Agent};
use super::dialect::{self, Dialect, Method};
use super::{stream, task};
use crate::id::ExecutionId;
use crate::journal::ExecutionMeta;
use crate::runtime;
use crate::server::AppState;
use crate::server::sse::Closing;

/// A JSON-RPC error, before it gets its request id.
#[derive(Debug, Clone)]
pub struct RpcError {
    pub code: i32,
    pub message: String,
    pub data: Option<Value>,
}

impl RpcError {
    pub fn new(code: i32, message: impl Into<String>) -> Self {
        RpcError { code, message: message.into(), data: None }
    }
    pub fn invalid_params(message: impl Into<String>) -> Self {
        Self::new(code::INVALID_PARAMS, message)
    }
    pub fn unsupported(message: impl Into<String>) -> Self {
        Self::new(code::UNSUPPORTED_OPERATION, message)
    }
    pub fn task_not_found(id: &str) -> Self {
        Self::new(code::TASK_NOT_FOUND, format!("task `{id}` not found"))
    }
    pub fn from_runtime(e: runtime::Error, id: ExecutionId) -> Self {
        match e {
            runtime::Error::UnknownExecution(_) => Self::task_not_found(&id.to_string()),
            e @ runtime::Error::Pruned { .. } => Self::new(code::TASK_NOT_FOUND, e.to_string()),
            runtime::Error::InvalidInput(errors) => {
                let list: Vec<String> = errors.iter().map(ToString::to_string).collect();
                let mut err = Self::invalid_params(format!("the message does not fit the input: {}", list.join("; ")));
                err.data = Some(json!({ "errors": list }));
                err
            }
            e @ (runtime::Error::Finished { .. } | runtime::Error::NotWaiting { .. }) => {
                Self::unsupported(e.to_string())
            }
            e => Self::new(code::INTERNAL_ERROR, e.to_string()),
        }
    }
    pub fn into_json(self) -> JsonRpcError {
        JsonRpcError { code: self.code, message: self.message, data: self.data }
    }
}

/// `POST /a2a`: every agent.
pub async fn server_endpoint(
    State(state): State<AppState>,
    closing: Option<Extension<Closing>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    handle(state, None, closing, headers, body).await
}

/// `POST /a2a/{workflow_id}`: one agent.
pub async fn agent_endpoint(
    State(state): State<AppState>,
    Path(workflow_id): Path<String>,
    closing: Option<Extension<Closing>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match agents::one(&state.rt, &workflow_id, state.config.a2a_all) {
        Ok(Some(agent)) => handle(state, Some(agent), closing, headers, body).await,
        Ok(None) => super::card::not_an_agent(&workflow_id).into_response(),
        Err(e) => crate::server::ApiError::from(e).into_response(),
    }
}

fn reply(id: JsonRpcId, result: Result<Value, RpcError>) -> Response {
    let body = match result {
        Ok(v) => JsonRpcResponse::success(id, v),
        Err(e) => JsonRpcResponse::error(id, e.into_json()),
    };
    Json(body).into_response()
}

/// What one endpoint serves: one agent, or all of them.
pub struct Scope {
    state: AppState,
    agent: Option<Agent>,
}

impl Scope {
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// The execution a task id names, if it is a task of this endpoint.
    pub fn task(&self, id: &str) -> Result<(ExecutionId, ExecutionMeta), RpcError> {
        let exec: ExecutionId = id.parse().map_err(|_| RpcError::task_not_found(id))?;
        let meta = self.state.rt.status(exec).map_err(|e| RpcError::from_runtime(e, exec))?;
        if self.serves(&meta.workflow_id)? { Ok((exec, meta)) } else { Err(RpcError::task_not_found(id)) }
    }

    fn serves(&self, workflow_id: &str) -> Result<bool, RpcError> {
        Ok(match &self.agent {
            Some(a) => a.workflow.id == workflow_id,
            None => agents::one(&self.state.rt, workflow_id, self.state.config.a2a_all).map_err(internal)?.is_some(),
        })
    }

    /// The agent a new task goes to.
    fn agent_for(&self, req: &SendMessageRequest) -> Result<Agent, RpcError> {
        if let Some(a) = &self.agent {
            return Ok(a.clone());
        }
        let all = agents::all(&self.state.rt, self.state.config.a2a_all).map_err(internal)?;
        let named = [req.message.metadata.as_ref(), req.metadata.as_ref()]
            .into_iter()
            .flatten()
            .find_map(|m| m.get("skill").and_then(Value::as_str).map(str::to_string));
        let skills = || all.iter().map(|a| format!("`{}`", a.spec.skill)).collect::<Vec<_>>().join(", ");
        match named {
            Some(s) => named_agent(&all, &s).ok_or_else(|| {
                RpcError::invalid_params(format!(
                    "no agent has skill `{s}`, or several do: name one by its workflow id (skills: {})",
                    skills()
                ))
            }),
            None if all.len() == 1 => Ok(all[0].clone()),
            None if all.is_empty() => Err(RpcError::unsupported("this server has no A2A agents registered")),
            None => Err(RpcError::invalid_params(format!(
                "this server has several agents: name one in the message's metadata `skill` (one of {}), or post to /a2a/{{workflow_id}}",
                skills()
            ))),
        }
    }

    /// Start the task a new message asks for, or deliver a follow-up; the
    /// execution, and the last durable sequence before the delivery.
    pub async fn accept(&self, req: &SendMessageRequest) -> Result<(ExecutionId, u64), RpcError> {
        let rt = &self.state.rt;
        if let Some(task_id) = &req.message.task_id {
            let (id, _) = self.task(task_id)?;
            let before = rt.events(id).map_err(|e| RpcError::from_runtime(e, id))?.last().map_or(0, |r| r.seq);
            task::follow_up(rt, id, &req.message).await?;
            return Ok((id, before));
        }
        let agent = self.agent_for(req)?;
        let input = task::input_of(&agent, &req.message)?;
        let context = task::new_context(&req.message);
        let key = task::task_key(&agent.workflow.id, &context, &req.message.message_id);
        // The context is the session: the task sees the conversation so far
        // and the carried state, after the context's previous task ended.
        let submitted = rt.submit_in_session(&agent.workflow, input, &context, Some(&key)).await;
        let (id, _) = submitted.map_err(|e| match e {
            runtime::Error::InvalidInput(_) => {
                let mut err = RpcError::from_runtime(e, ExecutionId::new(0));
                err.message = format!("workflow `{}`: {}", agent.workflow.id, err.message);
                err
            }
            // The same message id with other content, or an input over the limits.
            e @ (runtime::Error::KeyConflict { .. }
            | runtime::Error::LimitExceeded(_)
            | runtime::Error::InvalidKey(_)
            | runtime::Error::InvalidSession(_)
            | runtime::Error::SessionWorkflow { .. }) => {
                RpcError::invalid_params(format!("workflow `{}`: {e}", agent.workflow.id))
            }
            // The context's previous task waits for input, or runs past the wait.
            e @ runtime::Error::SessionBusy { .. } => RpcError::unsupported(format!("contextId `{context}`: {e}")),
            e => internal(e),
        })?;
        Ok((id, 0))
    }
}

/// The agent `name` names: the one with that workflow id, else the only
/// one with that skill id.
fn named_agent(all: &[Agent], name: &str) -> Option<Agent> {
    if let Some(a) = all.iter().find(|a| a.workflow.id == name) {
        return Some(a.clone());
    }
    match all.iter().filter(|a| a.spec.skill == name).collect::<Vec<_>>().as_slice() {
        [only] => Some((*only).clone()),
        _ => None,
    }
}

fn internal(e: runtime::Error) -> RpcError {
    RpcError::new(code::INTERNAL_ERROR, e.to_string())
}

fn params<T: DeserializeOwned>(method: &str, params: Value) -> Result<T, RpcError> {
    serde_json::from_value(params).map_err(|e| RpcError::invalid_params(format!("invalid params for `{method}`: {e}")))
}

async fn handle(
    state: AppState,
    agent: Option<Agent>,
    closing: Option<Extension<Closing>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    // Streams end when the server begins to shut down.
    let closing = closing.map(|c| c.0.0);
    let request: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return reply(JsonRpcId::Null, Err(RpcError::new(code::PARSE_ERROR, format!("parse error: {e}")))),
    };
    let Some(obj) = request.as_object() else {
        return reply(
            JsonRpcId::Null,
            Err(RpcError::new(code::INVALID_REQUEST, "a JSON-RPC request must be an object")),
        );
    };
    let id = match obj.get("id").map(|v| serde_json::from_value::<JsonRpcId>(v.clone())) {
        Some(Ok(id)) => id,
        Some(Err(e)) => return reply(JsonRpcId::Null, Err(RpcError::new(code::INVALID_REQUEST, format!("`id`: {e}")))),
        None => {
            let e = RpcError::new(code::INVALID_REQUEST, "`id` is missing (A2A takes no notifications)");
            return reply(JsonRpcId::Null, Err(e));
        }
    };
    if obj.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return reply(id, Err(RpcError::new(code::INVALID_REQUEST, "`jsonrpc` must be \"2.0\"")));
    }
    let Some(name) = obj.get("method").and_then(Value::as_str) else {
        return reply(id, Err(RpcError::new(code::INVALID_REQUEST, "`method` must be a string")));
    };
    let version = headers.get(::a2a::SVC_PARAM_VERSION).and_then(|v| v.to_str().ok());
    let Some((method, dialect)) = dialect::method(name, version) else {
        let e = RpcError::new(
            code::METHOD_NOT_FOUND,
            format!(
                "method `{name}` not found (A2A methods: SendMessage, SendStreamingMessage, GetTask, CancelTask, ListTasks, SubscribeToTask, or their v0.3 names message/send, message/stream, tasks/get, tasks/cancel, tasks/resubscribe)"
            ),
        );
        return reply(id, Err(e));
    };
    let raw = obj.get("params").cloned().unwrap_or_else(|| json!({}));
    if !raw.is_object() {
        return reply(id, Err(RpcError::invalid_params(format!("`params` of `{name}` must be an object"))));
    }
    let p = dialect::params_to_v1(dialect, raw);
    let scope = Scope { state, agent };
    match method {
        Method::Send => reply(id, send(&scope, name, dialect, p).await),
        Method::GetTask => reply(id, get(&scope, name, dialect, p)),
        Method::Cancel => reply(id, cancel(&scope, name, dialect, p).await),
        Method::List => reply(id, list(&scope, name, dialect, p)),
        Method::Stream => match params::<SendMessageRequest>(name, p) {
            Err(e) => reply(id, Err(e)),
            Ok(req) => {
                // Its streamed tokens may come before its id is known here.
                let tokens = crate::nodes::stream::TokenRx::All(scope.state.rt.all_tokens());
                match scope.accept(&req).await {
                    Err(e) => reply(id, Err(e)),
                    Ok((exec, after)) => {
                        stream::sse(scope.state, closing, id, dialect, exec, after, stream::Opening::Fresh(tokens))
                    }
                }
            }
        },
        Method::Subscribe => match params::<SubscribeToTaskRequest>(name, p).and_then(|r| scope.task(&r.id)) {
            Err(e) => reply(id, Err(e)),
            Ok((exec, meta)) if meta.status.is_terminal() => {
                let e = RpcError::unsupported(format!(
                    "task {exec} is finished: nothing more to subscribe to (GetTask has it)"
                ));
                reply(id, Err(e))
            }
            Ok((exec, _)) => {
                let after = scope.state.rt.events(exec).map(|r| r.last().map_or(0, |r| r.seq)).unwrap_or(0);
                stream::sse(scope.state, closing, id, dialect, exec, after, stream::Opening::Again)
            }
        },
        Method::Push => reply(
            id,
            Err(RpcError::new(
                code::PUSH_NOTIFICATION_NOT_SUPPORTED,
                "push notifications are not supported: stream or poll",
            )),
        ),
        Method::ExtendedCard => {
            reply(id, Err(RpcError::new(code::EXTENDED_CARD_NOT_CONFIGURED, "this agent has no extended card")))
        }
    }
}

async fn send(scope: &Scope, name: &str, dialect: Dialect, p: Value) -> Result<Value, RpcError> {
    let req: SendMessageRequest = params(name, p)?;
    let (id, _) = scope.accept(&req).await?;
    let immediately = req.configuration.as_ref().and_then(|c| c.return_immediately).unwrap_or(false);
    let rt = &scope.state.rt;
    if !immediately {
        rt.settle(id).await.map_err(|e| RpcError::from_runtime(e, id))?;
    }
    let task = task::snapshot(rt, id)?;
    Ok(dialect::send_result(dialect, json!({ "task": task::to_json(rt, &task) })))
}

fn get(scope: &Scope, name: &str, dialect: Dialect, p: Value) -> Result<Value, RpcError> {
    let req: GetTaskRequest = params(name, p)?;
    let (id, _) = scope.task(&req.id)?;
    let rt = &scope.state.rt;
    Ok(dialect::task(dialect, task::to_json(rt, &task::snapshot(rt, id)?)))
}

async fn cancel(scope: &Scope, name: &str, dialect: Dialect, p: Value) -> Result<Value, RpcError> {
    let req: CancelTaskRequest = params(name, p)?;
    let (id, meta) = scope.task(&req.id)?;
    let rt = &scope.state.rt;
    let not_cancelable = |status| {
        RpcError::new(code::TASK_NOT_CANCELABLE, format!("task {id} is already {status:?}: it cannot be canceled"))
    };
    if meta.status.is_terminal() {
        return Err(not_cancelable(meta.status));
    }
    match rt.cancel(id, "canceled over A2A (CancelTask)").await {
        Ok(()) => {}
        Err(runtime::Error::Finished { status, .. }) => return Err(not_cancelable(status)),
        Err(e) => return Err(RpcError::from_runtime(e, id)),
    }
    Ok(dialect::task(dialect, task::to_json(rt, &task::snapshot(rt, id)?)))
}

const PAGE_DEFAULT: usize = 50;
const PAGE_MAX: usize = 100;

fn list(scope: &Scope, name: &str, dialect: Dialect, p: Value) -> Result<Value, RpcError> {
    let req: ListTasksRequest = params(name, p)?;
    let size = match req.page_size {
        None | Some(0) => PAGE_DEFAULT,
        Some(n) if n < 0 => return Err(RpcError::invalid_params(format!("`pageSize` must be positive, found {n}"))),
        Some(n) => (n as usize).min(PAGE_MAX),
    };
    let after: Option<ExecutionId> = match req.page_token.as_deref() {
        None | Some("") => None,
        Some(t) => {
            Some(t.parse().map_err(|_| RpcError::invalid_params(format!("`pageToken` `{t}` is not a task id")))?)
        }
    };
    let rt = &scope.state.rt;
    let mut matching = Vec::new();
    for meta in rt.list(None).map_err(internal)? {
        if !task::started_over_a2a(&meta) || !scope.serves(&meta.workflow_id)? {
            continue;
        }
        if req.context_id.as_deref().is_some_and(|c| task::context_of(&meta) != c) {
            continue;
        }
        if let Some(want) = &req.status
            && *want != ::a2a::TaskState::Unspecified
            && task::state_of(rt, &meta) != *want
        {
            continue;
        }
        matching.push(meta);
    }
    let total = matching.len();
    let start = after.map_or(0, |a| matching.iter().position(|m| m.id == a).map_or(0, |i| i + 1));
    let page: Vec<&ExecutionMeta> = matching.iter().skip(start).take(size).collect();
    let next = if start + page.len() < total {
        page.last().map(|m| m.id.to_string()).unwrap_or_default()
    } else {
        String::new()
    };
    let mut tasks = Vec::with_capacity(page.len());
    for meta in &page {
        tasks.push(task::snapshot(rt, meta.id)?);
    }
    let response =
        ListTasksResponse { tasks, next_page_token: next, page_size: page.len() as i32, total_size: total as i32 };
    let mut v = serde_json::to_value(&response).expect("a list serializes");
    if let Some(Value::Array(list)) = v.get_mut("tasks") {
        for (t, task) in list.iter_mut().zip(&response.tasks) {
            *t = task::to_json(rt, task);
        }
    }
    Ok(dialect::list_result(dialect, v))
}
