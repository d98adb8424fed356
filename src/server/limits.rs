//! Request body limit: bodies above `--body-limit` (default 1 MiB) get
//! 413 `body_too_large` as JSON, before a handler sees them.
//!
//! Two places enforce it: [`limit`] refuses a declared `Content-Length`
//! over the limit at once, and axum's `DefaultBodyLimit` stops a chunked
//! body while it is read; [`limit`] also rewrites the plain-text 413 that
//! produces (from any extractor, A2A's included) into the JSON error.

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::ApiError;

fn too_large(limit: usize, got: Option<u64>) -> Response {
    let message = match got {
        Some(n) => format!("the request body is {n} bytes; this server takes at most {limit} (--body-limit)"),
        None => format!("the request body is larger than this server takes: {limit} bytes (--body-limit)"),
    };
    ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", message)
        .with_details(json!({ "limit": limit, "content_length": got }))
        .into_response()
}

/// Middleware (state: the limit in bytes).
pub async fn limit(State(limit): State<usize>, req: Request, next: Next) -> Response {
    let declared = req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if let Some(n) = declared
        && n > limit as u64
    {
        return too_large(limit, Some(n));
    }
    let res = next.run(req).await;
    let json = res.headers().get(header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if res.status() == StatusCode::PAYLOAD_TOO_LARGE && !json {
        return too_large(limit, declared);
    }
    res
}
