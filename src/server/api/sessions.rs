//! `/sessions`: the sessions of the runtime (tasks that make one
//! conversation: A2A contexts, `jamjet run --session`), listed and read
//! one by one. Starting a task of a session is `POST /executions` with
//! `session`, or an A2A message with its `contextId`.

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::routing::get;
use serde_json::{Value, json};

use super::super::wire::SessionList;
use super::super::{ApiError, AppState};
use super::reply;

pub fn routes() -> Router<AppState> {
    Router::new().route("/sessions", get(list)).route("/sessions/{id}", get(one))
}

async fn list(State(st): State<AppState>) -> Result<Json<Value>, ApiError> {
    reply(&SessionList { sessions: st.rt.sessions()? })
}

async fn one(State(st): State<AppState>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    if let Err(why) = crate::journal::check_session_id(&id) {
        return Err(ApiError::bad_request(format!("`{}` is not a session id: {why}", id.escape_debug()))
            .with_details(json!({ "id": id })));
    }
    reply(&st.rt.session(&id)?)
}
