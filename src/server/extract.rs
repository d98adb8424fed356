//! Request bodies: the content type checked (415 when it is not one the
//! route takes; [`super::origin`] refuses a `POST` of any other type before
//! a handler runs) and JSON parsed with errors that name the line and column
//! (400 `bad_request`). The size limit is [`super::limits`]'s.

use axum::http::{HeaderMap, StatusCode, header};
use serde::de::DeserializeOwned;
use serde_json::json;

use super::ApiError;

/// The media type of a request (`application/json`, ...), lowercased,
/// without parameters; `None` when there is no Content-Type header.
pub fn media_type(headers: &HeaderMap) -> Option<String> {
    let raw = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    Some(raw.split(';').next().unwrap_or("").trim().to_ascii_lowercase())
}

/// 415 naming what came and what the route takes.
pub fn unsupported(got: Option<&str>, takes: &str) -> ApiError {
    let got = got.unwrap_or("no Content-Type");
    ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        format!("{got} is not accepted here; send {takes}"),
    )
    .with_details(json!({ "content_type": got, "accepted": takes }))
}

/// Parse a JSON body into `T`; the body must be `application/json` (every
/// `POST` is, [`super::origin`] sees to it). An empty body reads as `{}`
/// when `empty_ok` (for routes whose every field is optional).
pub fn json_body<T: DeserializeOwned>(headers: &HeaderMap, body: &[u8], empty_ok: bool) -> Result<T, ApiError> {
    let media = media_type(headers);
    if media.as_deref() != Some("application/json") {
        return Err(unsupported(media.as_deref(), "application/json"));
    }
    let body: &[u8] = if empty_ok && body.iter().all(u8::is_ascii_whitespace) { b"{}" } else { body };
    parse_json(body)
}

/// Parse JSON bytes into `T`: a syntax error or a wrong shape is a 400
/// naming the line and column (and, for a wrong shape, the field).
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        let what = match e.classify() {
            serde_json::error::Category::Data => "the request body does not have the expected fields",
            serde_json::error::Category::Eof => "the request body is incomplete JSON",
            _ => "the request body is not valid JSON",
        };
        ApiError::bad_request(format!("{what}: {e}")).with_details(json!({ "line": e.line(), "column": e.column() }))
    })
}
