//! API errors: `{"error": {"code", "message", "details"}}` with the status
//! that fits (400 bad request, 401 keys, 403 origin, 404 unknown, 409
//! conflict or finished, 413 too large, 415 media type, 421 host, 422
//! refused input). [`json_errors`] gives axum's own plain-text rejections
//! the same shape, so every error of the API is JSON.

use axum::extract::Request;
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::wire::{ErrorBody, ErrorDetail};
use crate::runtime::Error as RuntimeError;

/// An error a handler returns.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    /// A stable, machine-readable name: `not_found`, `invalid_input`, ...
    pub code: &'static str,
    pub message: String,
    pub details: Value,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError { status, code, message: message.into(), details: Value::Null }
    }

    pub fn with_details(mut self, details: Value) -> Self {
        self.details = details;
        self
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body =
            ErrorBody { error: ErrorDetail { code: self.code.into(), message: self.message, details: self.details } };
        match super::api::reply(&body) {
            Ok(json) => (self.status, json).into_response(),
            Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.message).into_response(),
        }
    }
}

impl From<RuntimeError> for ApiError {
    fn from(e: RuntimeError) -> Self {
        let message = e.to_string();
        match e {
            RuntimeError::InvalidInput(problems) => {
                let details: Vec<String> = problems.iter().map(ToString::to_string).collect();
                let missing: Vec<&str> = problems
                    .iter()
                    .filter_map(|p| match p {
                        crate::ir::SchemaError::MissingKey { key, .. } => Some(key.as_str()),
                        _ => None,
                    })
                    .collect();
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_input", message)
                    .with_details(json!({ "problems": details, "missing": missing }))
            }
            RuntimeError::UnknownExecution(_) => ApiError::new(StatusCode::NOT_FOUND, "unknown_execution", message),
            RuntimeError::ForkRefused { .. } => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "fork_refused", message)
            }
            RuntimeError::Pruned { status, workflow, pruned_ms, events, .. } => {
                ApiError::new(StatusCode::GONE, "pruned", message).with_details(json!({
                    "status": status, "workflow_id": workflow, "pruned_ms": pruned_ms, "events": events,
                }))
            }
            RuntimeError::UnknownWorkflow { .. } => ApiError::new(StatusCode::NOT_FOUND, "unknown_workflow", message),
            RuntimeError::WorkflowConflict { .. } => ApiError::new(StatusCode::CONFLICT, "workflow_conflict", message),
            RuntimeError::Finished { status, .. } => {
                ApiError::new(StatusCode::CONFLICT, "finished", message).with_details(json!({ "status": status }))
            }
            RuntimeError::NotWaiting { .. } => ApiError::new(StatusCode::CONFLICT, "not_waiting", message),
            RuntimeError::Elsewhere { owner, .. } => {
                ApiError::new(StatusCode::CONFLICT, "elsewhere", message).with_details(json!({ "owner": owner }))
            }
            RuntimeError::NotTaken { owner, .. } => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "not_taken", message)
                    .with_details(json!({ "owner": owner }))
            }
            RuntimeError::KeyConflict { id, .. } => {
                ApiError::new(StatusCode::CONFLICT, "key_conflict", message).with_details(json!({ "existing": id }))
            }
            RuntimeError::InvalidWorkflow { .. } => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_workflow", message)
            }
            RuntimeError::InvalidKey(_) => ApiError::new(StatusCode::BAD_REQUEST, "invalid_key", message),
            RuntimeError::InvalidSession(_) => ApiError::new(StatusCode::BAD_REQUEST, "invalid_session", message),
            RuntimeError::UnknownSession(_) => ApiError::new(StatusCode::NOT_FOUND, "unknown_session", message),
            RuntimeError::SessionWorkflow { .. } => ApiError::new(StatusCode::CONFLICT, "session_workflow", message),
            RuntimeError::SessionBusy { execution, .. } => ApiError::new(StatusCode::CONFLICT, "session_busy", message)
                .with_details(json!({ "running": execution })),
            RuntimeError::InvalidEvent(_) => ApiError::new(StatusCode::BAD_REQUEST, "invalid_event", message),
            RuntimeError::LimitExceeded(_) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "limit_exceeded", message)
            }
            // The store holds it but cannot read it: the server's fault, not the request's, so a 500,
            // with its own code and what is damaged.
            RuntimeError::Journal(crate::journal::Error::Damaged(d)) => {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "damaged", message)
                    .with_details(json!({ "execution": d.execution, "detail": d.detail }))
            }
            RuntimeError::Stopped { .. }
            | RuntimeError::StartFailed { .. }
            | RuntimeError::MissingWorkflow { .. }
            | RuntimeError::Journal(_)
            | RuntimeError::Actor(_)
            | RuntimeError::Setup(_) => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message),
        }
    }
}

/// Middleware: an error answer that is not JSON (axum's own rejections: a
/// path or query that does not decode, a method the route does not take,
/// no such route) becomes `{"error": {...}}` with the same status, its
/// text as the message, and its `Allow` / `WWW-Authenticate` kept.
pub async fn json_errors(req: Request, next: Next) -> Response {
    let res = next.run(req).await;
    let status = res.status();
    let json = res.headers().get(header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if json || !(status.is_client_error() || status.is_server_error()) {
        return res;
    }
    let (parts, body) = res.into_parts();
    // axum's rejection texts are a line or two; a body over 16 KiB is not
    // read at all (the message is then empty and the status speaks).
    let text = axum::body::to_bytes(body, 16 * 1024)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let code = match status {
        StatusCode::BAD_REQUEST => "bad_request",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "body_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        s if s.is_server_error() => "internal",
        _ => "bad_request",
    };
    let message = if text.is_empty() { status.canonical_reason().unwrap_or("error").to_string() } else { text };
    let mut out = ApiError::new(status, code, message).into_response();
    for name in [header::ALLOW, header::WWW_AUTHENTICATE] {
        if let Some(v) = parts.headers.get(&name) {
            out.headers_mut().insert(name, v.clone());
        }
    }
    out
}
