//! HTTP failures classified for the retry policy, shared by every caller
//! of an HTTP peer (the `http` node, model calls, the A2A client): a
//! status's class, a transport error as a [`NodeError`] naming the URL,
//! `Retry-After`, and reading a response body within a size limit. A leaf:
//! it knows reqwest, the error classes and the limits, nothing else.

use std::time::Duration;

use super::NodeError;
use crate::journal::ErrorClass;

/// Why a response body was not read whole.
pub(crate) enum BodyError {
    Transport(reqwest::Error),
    /// Longer than the limit: `declared` by Content-Length, or found
    /// while reading (then `None`; reading stopped there).
    TooLarge {
        declared: Option<u64>,
    },
}

impl BodyError {
    /// As a node's error: a transport error classified for the retry
    /// policy, an oversized body as `limit_exceeded` naming the limit.
    pub(crate) fn into_node_error(self, url: &str, what: &str, limits: &crate::ir::Limits) -> NodeError {
        match self {
            BodyError::Transport(e) => classify_send(url, e),
            BodyError::TooLarge { declared } => {
                let size = match declared {
                    Some(n) => format!("{what} is {}", crate::ir::show_bytes(n)),
                    None => format!("{what} is larger (reading stopped at the limit)"),
                };
                NodeError::new(ErrorClass::LimitExceeded, limits.exceeded(crate::ir::Limit::MaxResponseBytes, size))
            }
        }
    }
}

/// Read a response body as a stream, stopping as soon as it passes
/// `limit` bytes: a body larger than the limit is never held in memory.
pub(crate) async fn read_body(mut resp: reqwest::Response, limit: u64) -> Result<Vec<u8>, BodyError> {
    if let Some(n) = resp.content_length().filter(|&n| n > limit) {
        return Err(BodyError::TooLarge { declared: Some(n) });
    }
    let mut body = Vec::with_capacity(resp.content_length().unwrap_or(0).min(limit).min(1 << 20) as usize);
    while let Some(chunk) = resp.chunk().await.map_err(BodyError::Transport)? {
        if (body.len() + chunk.len()) as u64 > limit {
            return Err(BodyError::TooLarge { declared: None });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The class of a non-2xx status, for the retry policy.
pub(crate) fn status_class(status: reqwest::StatusCode) -> ErrorClass {
    match status.as_u16() {
        429 => ErrorClass::RateLimited,
        408 => ErrorClass::Timeout,
        500..=599 => ErrorClass::ServerError,
        _ => ErrorClass::ClientError,
    }
}

/// A transport error as a node's error, naming `url` (the error's own
/// copy of the URL is left out: it would repeat it, secrets and all).
pub(crate) fn classify_send(url: &str, e: reqwest::Error) -> NodeError {
    let e = e.without_url();
    let class = if e.is_timeout() {
        ErrorClass::Timeout
    } else if e.is_connect() || e.is_request() || e.is_body() {
        ErrorClass::Connection
    } else {
        ErrorClass::ClientError
    };
    let mut message = format!("{url}: {e}");
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        message.push_str(&format!(": {s}"));
        source = s.source();
    }
    NodeError::new(class, message)
}

pub(crate) fn retry_after(resp: &reqwest::Response) -> Option<u64> {
    let v = resp.headers().get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    v.trim().parse::<f64>().ok().map(|s| Duration::from_secs_f64(s.max(0.0)).as_millis() as u64)
}
