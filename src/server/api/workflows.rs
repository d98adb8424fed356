//! `/workflows`: register a workflow (YAML, compiled and validated like
//! `jamjet validate`; or the IR as JSON, re-checked by [`super::ir_check`]),
//! list the registrations, read one with its IR.

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use serde_json::{Value, json};

use super::super::extract::{media_type, parse_json, unsupported};
use super::super::{ApiError, AppState};
use crate::ir::Workflow;

/// What `POST /workflows` takes.
const ACCEPTED: &str = "application/yaml, text/yaml, application/x-yaml, text/plain (YAML) or application/json (IR)";
/// How findings name a workflow that came in a request body.
pub const BODY_FILE: &str = "request-body.yaml";

pub fn routes() -> Router<AppState> {
    Router::new().route("/workflows", get(list).post(register)).route("/workflows/{id}", get(one))
}

#[derive(Deserialize)]
struct RegisterQuery {
    #[serde(default)]
    replace: bool,
}

async fn register(
    State(st): State<AppState>,
    Query(q): Query<RegisterQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let media = media_type(&headers);
    let wf = match media.as_deref() {
        Some("application/yaml" | "text/yaml" | "application/x-yaml" | "text/plain") => from_yaml(&body)?,
        Some("application/json") => from_ir(&body)?,
        other => return Err(unsupported(other, ACCEPTED)),
    };
    let before = st.rt.workflows()?;
    let r = st.rt.register(&wf, q.replace).await?;
    let existed = before.iter().any(|b| b == &r);
    let status = if existed { StatusCode::OK } else { StatusCode::CREATED };
    Ok((status, Json(json!(r))).into_response())
}

fn from_yaml(body: &[u8]) -> Result<Workflow, ApiError> {
    let src = std::str::from_utf8(body).map_err(|e| {
        ApiError::bad_request(format!("the workflow is not UTF-8 text: {e}"))
            .with_details(json!({ "byte_offset": e.valid_up_to() }))
    })?;
    crate::ir::compile_str(src, BODY_FILE).map_err(|d| {
        let findings: Vec<Value> = d
            .iter()
            .map(
                |f| json!({ "file": f.file, "line": f.line, "column": f.column, "message": f.message, "node": f.node }),
            )
            .collect();
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_workflow",
            format!("the workflow does not compile:\n{d}"),
        )
        .with_details(json!({ "findings": findings }))
    })
}

fn from_ir(body: &[u8]) -> Result<Workflow, ApiError> {
    let wf: Workflow = parse_json(body)?;
    let problems = super::ir_check::check(&wf);
    if problems.is_empty() {
        return Ok(wf);
    }
    let text: Vec<String> = problems.iter().map(|(at, m)| format!("{at}: {m}")).collect();
    let findings: Vec<Value> = problems.iter().map(|(at, m)| json!({ "path": at, "message": m })).collect();
    Err(ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_workflow",
        format!("the workflow IR does not hold together:\n{}", text.join("\n")),
    )
    .with_details(json!({ "findings": findings })))
}

async fn list(State(st): State<AppState>) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!({ "workflows": st.rt.workflows()? })))
}

#[derive(Deserialize)]
struct OneQuery {
    version: Option<String>,
}

async fn one(
    State(st): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<OneQuery>,
) -> Result<Json<Value>, ApiError> {
    let (registration, wf) = st.rt.registered(&id, q.version.as_deref())?;
    Ok(Json(json!({ "registration": registration, "workflow": &*wf })))
}
