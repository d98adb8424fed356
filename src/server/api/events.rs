//! `POST /events`: publish an external event by key. Every execution
//! waiting for the key receives it (hibernated ones are woken); when none
//! does, it is kept for `keep` and handed to the first that reaches such
//! a wait ([`crate::Runtime::publish`]).

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;

use super::super::extract::json_body;
use super::super::wire::{EventRequest, Published};
use super::super::{ApiError, AppState};
use super::reply;

pub fn routes() -> Router<AppState> {
    Router::new().route("/events", post(publish))
}

async fn publish(State(st): State<AppState>, headers: HeaderMap, body: Bytes) -> Result<Response, ApiError> {
    let b: EventRequest = json_body(&headers, &body, false)?;
    let keep = match &b.keep {
        Some(text) => Some(crate::actors::parse_keep(text).map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_event",
                format!("`keep`: {e}; nothing was delivered or kept"),
            )
        })?),
        None => None,
    };
    let published = st.rt.publish(&b.key, b.payload, keep).await?;
    let body = Published {
        key: b.key,
        delivered: published.delivered,
        kept: published.kept_until_ms.is_some(),
        kept_until_ms: published.kept_until_ms,
    };
    Ok((StatusCode::ACCEPTED, reply(&body)?).into_response())
}
