//! API errors: `{"error": {"code", "message", "details"}}` with the status
//! that fits (400 bad request, 401/403 keys, 404 unknown, 409 conflict or
//! finished, 413 too large, 422 refused input).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

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
        let body = json!({ "error": { "code": self.code, "message": self.message, "details": self.details } });
        (self.status, axum::Json(body)).into_response()
    }
}

impl From<RuntimeError> for ApiError {
    fn from(e: RuntimeError) -> Self {
        let message = e.to_string();
        match e {
            RuntimeError::InvalidInput(problems) => {
                let details: Vec<String> = problems.iter().map(ToString::to_string).collect();
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_input", message)
                    .with_details(json!({ "problems": details }))
            }
            RuntimeError::UnknownExecution(_) => ApiError::new(StatusCode::NOT_FOUND, "unknown_execution", message),
            RuntimeError::UnknownWorkflow { .. } => ApiError::new(StatusCode::NOT_FOUND, "unknown_workflow", message),
            RuntimeError::WorkflowConflict { .. } => ApiError::new(StatusCode::CONFLICT, "workflow_conflict", message),
            RuntimeError::Finished { status, .. } => {
                ApiError::new(StatusCode::CONFLICT, "finished", message).with_details(json!({ "status": status }))
            }
            RuntimeError::NotWaiting { .. } => ApiError::new(StatusCode::CONFLICT, "not_waiting", message),
            RuntimeError::KeyConflict { id, .. } => {
                ApiError::new(StatusCode::CONFLICT, "key_conflict", message).with_details(json!({ "existing": id }))
            }
            RuntimeError::InvalidWorkflow { .. } => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_workflow", message)
            }
            RuntimeError::InvalidKey(_) => ApiError::new(StatusCode::BAD_REQUEST, "invalid_key", message),
            RuntimeError::LimitExceeded(_) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "limit_exceeded", message)
            }
            RuntimeError::Stopped { .. }
            | RuntimeError::StartFailed { .. }
            | RuntimeError::MissingWorkflow { .. }
            | RuntimeError::Journal(_)
            | RuntimeError::Actor(_) => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message),
        }
    }
}
