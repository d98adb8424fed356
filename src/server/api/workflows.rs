//! `/workflows`: register a workflow (YAML, compiled and validated like
//! `jamjet validate`; or the IR as JSON, re-checked by [`super::ir_check`]),
//! with the workflows serving its local agents over A2A
//! ([`crate::server::a2a::agents::served`]); list the registrations, read
//! one with its IR.
//!
//! A posted workflow is the poster's, not the operator's: YAML is compiled
//! with the server's [`Policy`](crate::server::policy::Policy) (sub-workflow
//! files only under `--workflows`), and a workflow declaring a stdio MCP
//! server is refused (422 `not_allowed`) unless the operator allowed its
//! command. Compiling and checking run on the blocking pool, at most
//! [`compile_slots`] at once, so a large or slow workflow never holds up
//! an async worker (and `/health` with it).

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use serde_json::{Value, json};

use super::super::a2a::agents;
use super::super::extract::{media_type, parse_json, unsupported};
use super::super::policy::{Policy, Reach, Refused};
use super::super::wire::{RegisteredWorkflow, Workflows};
use super::super::{ApiError, AppState, Config};
use super::reply;
use crate::ir::{Options, Workflow};

/// What `POST /workflows` takes.
const ACCEPTED: &str = "application/yaml (YAML) or application/json (IR)";
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
    let yaml = match media.as_deref() {
        Some("application/yaml") => true,
        Some("application/json") => false,
        other => return Err(unsupported(other, ACCEPTED)),
    };
    let (config, rt) = (st.config.clone(), st.rt.clone());
    let (wf, hash, served) = off_the_workers(move || {
        let wf = if yaml { from_yaml(&body, &config) } else { from_ir(&body, &config) }?;
        allowed(&wf, &config.policy)?;
        // The runtime's own check (and the content hash) here too, so the
        // registration on the async worker below finds them done.
        let hash = rt.vet(&wf)?;
        // The workflows serving its local agents over A2A, held to the same policy.
        let served = agents::served(&rt, &wf)?;
        for (made, _) in &served {
            allowed(made, &config.policy)?;
        }
        Ok((wf, hash, served))
    })
    .await?;
    let before = st.rt.workflows()?;
    let r = st.rt.register_vetted(&wf, hash, q.replace).await?;
    agents::register_served(&st.rt, &served).await?;
    let existed = before.iter().any(|b| b == &r);
    let status = if existed { StatusCode::OK } else { StatusCode::CREATED };
    Ok((status, reply(&r)?).into_response())
}

/// How many posted workflows compile at once (the rest wait their turn):
/// one per core, so a flood of large posts keeps every async worker and
/// most of the blocking pool free.
fn compile_slots() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// Run `work` (CPU-bound: compile, check) on the blocking pool, at most
/// [`compile_slots`] at a time.
async fn off_the_workers<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    static SLOTS: std::sync::OnceLock<Arc<tokio::sync::Semaphore>> = std::sync::OnceLock::new();
    let slots = SLOTS.get_or_init(|| Arc::new(tokio::sync::Semaphore::new(compile_slots())));
    let internal = |e: &dyn std::fmt::Display| {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", format!("compiling the workflow failed: {e}"))
    };
    // The slot goes with the work, not with this request: a client that
    // hangs up drops the request, while the blocking task runs on.
    let slot = slots.clone().acquire_owned().await.map_err(|e| internal(&e))?;
    tokio::task::spawn_blocking(move || {
        let _slot = slot;
        work()
    })
    .await
    .map_err(|e| internal(&e))?
}

/// 422 `not_allowed` when `wf` declares a command, or reads an environment
/// variable, the policy does not allow: every one of them at once, with
/// the flags that would allow them.
fn allowed(wf: &Workflow, policy: &Policy) -> Result<(), ApiError> {
    let refused = policy.refused(wf);
    if refused.is_empty() {
        return Ok(());
    }
    let lines: Vec<String> = refused.iter().map(ToString::to_string).collect();
    let mut flags: Vec<String> = Vec::new();
    for flag in refused.iter().map(Refused::flag) {
        if !flags.contains(&flag) {
            flags.push(flag);
        }
    }
    let message = format!(
        "this server does not run commands from posted workflows or give them its environment: {}. A posted \
         workflow may only send a model provider's default key to that provider; the operator may allow more with \
         `jamjet dev {}` (--allow-commands or --allow-env '*' for any), or put the file in --workflows DIR",
        lines.join("; "),
        flags.join(" ")
    );
    let (mut commands, mut environment) = (Vec::new(), Vec::new());
    for r in &refused {
        match &r.reach {
            Reach::Command { server, command, from } => commands.push(
                json!({ "workflow": r.workflow, "nodes": r.path, "server": server, "command": command, "from": from }),
            ),
            Reach::Env { place, var } => {
                environment.push(json!({ "workflow": r.workflow, "nodes": r.path, "place": place, "variable": var }))
            }
        }
    }
    Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "not_allowed", message)
        .with_details(json!({ "commands": commands, "environment": environment })))
}

fn from_yaml(body: &[u8], config: &Config) -> Result<Workflow, ApiError> {
    let src = std::str::from_utf8(body).map_err(|e| {
        ApiError::bad_request(format!("the workflow is not UTF-8 text: {e}"))
            .with_details(json!({ "byte_offset": e.valid_up_to() }))
    })?;
    let options = Options { limits: config.limits, includes: config.policy.includes() };
    crate::ir::compile_str_with(src, BODY_FILE, &options).map_err(|d| {
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

/// A workflow's IR given inline to `POST /executions`: checked as a
/// posted one is (the IR's own checks, the policy, the runtime's check),
/// off the async workers, and not registered.
pub(super) async fn inline(st: &AppState, ir: Value) -> Result<Workflow, ApiError> {
    let (config, rt) = (st.config.clone(), st.rt.clone());
    off_the_workers(move || {
        let wf: Workflow = serde_json::from_value(ir)
            .map_err(|e| ApiError::bad_request(format!("`workflow` is not a workflow IR: {e}")))?;
        let wf = checked_ir(wf, &config)?;
        allowed(&wf, &config.policy)?;
        rt.vet(&wf)?;
        Ok(wf)
    })
    .await
}

fn from_ir(body: &[u8], config: &Config) -> Result<Workflow, ApiError> {
    checked_ir(parse_json(body)?, config)
}

fn checked_ir(wf: Workflow, config: &Config) -> Result<Workflow, ApiError> {
    let problems = super::ir_check::check_with(&wf, &config.limits);
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
    reply(&Workflows { workflows: st.rt.workflows()? })
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
    reply(&RegisteredWorkflow { registration, workflow: (*wf).clone() })
}
