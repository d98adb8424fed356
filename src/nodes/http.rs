//! `type: http`: one request with reqwest. Method, url, headers and body
//! are templated; a JSON response goes into `output_key` (text otherwise).
//! The `Idempotency-Key` header is always sent, so a receiver can
//! deduplicate the repeat of a call interrupted by a crash. Non-2xx
//! responses are classified for the retry policy. Every attempt returns
//! its [`super::Exchange`] (what was sent, what came back, secrets
//! redacted: [`super::http_exchange`]), journaled for `inspect -v`.
//!
//! `${VAR}` references in `url` and header values are read from the
//! process environment before the template renders (a value is never read
//! as template syntax, and a state value is never read as a reference).
//! Messages and the journaled exchange name the URL and those header
//! values as written, with their references, never their values.

use std::time::Duration;

use futures::future::BoxFuture;
use serde_json::Value;

use super::http_exchange as exchange;
use super::{NodeCtx, NodeError, NodeExecutor, NodeOutput, output_patch};
use crate::ir::NodeKind;
use crate::journal::ErrorClass;

pub struct Http;

impl NodeExecutor for Http {
    fn run<'a>(&'a self, ctx: NodeCtx<'a>) -> BoxFuture<'a, Result<NodeOutput, NodeError>> {
        Box::pin(run(ctx))
    }
}

async fn run(ctx: NodeCtx<'_>) -> Result<NodeOutput, NodeError> {
    let NodeKind::Http(spec) = &ctx.node.kind else { unreachable!("http executor on another kind") };
    let t = &ctx.services.templates;
    let tpl = ctx.template_context();
    // `url` is what messages show (references as written); `target` is where the request goes.
    let url = t.render(&spec.url, &tpl)?;
    let hidden = crate::ir::has_env_refs(&spec.url);
    let target = if hidden { t.render(&ctx.env_template(&spec.url, "`url`")?, &tpl)? } else { url.clone() };
    let method = reqwest::Method::from_bytes(spec.method.as_bytes())
        .map_err(|_| NodeError::new(ErrorClass::ClientError, format!("bad method `{}`", spec.method)))?;
    let mut req = ctx.services.http.request(method, &target).header("Idempotency-Key", &ctx.idempotency_key);
    for (name, value) in &spec.headers {
        let value = ctx.env_template(value, &format!("header `{name}`"))?;
        req = req.header(name.as_str(), t.render(&value, &tpl)?);
    }
    let hide = |e: reqwest::Error| if hidden { e.without_url() } else { e };
    if let Some(body) = &spec.body {
        req = match t.render_value(body, &tpl)? {
            Value::String(s) => req.body(s),
            other => req.header("content-type", "application/json").body(other.to_string()),
        };
    }
    let request = req.build().map_err(|e| classify_send(&url, hide(e)))?;
    let mut sent = exchange::request(&request);
    // What is journaled and named in messages holds the references as
    // written, never their values; otherwise the URL with its secrets redacted.
    if hidden {
        sent["url"] = Value::from(exchange::url_text(&url));
    }
    for (name, value) in &spec.headers {
        if crate::ir::has_env_refs(value) && !exchange::is_secret(name) {
            sent["headers"][name.to_ascii_lowercase()] = Value::from(t.render(value, &tpl)?);
        }
    }
    let url = if hidden { exchange::url_text(&url) } else { exchange::url(request.url()) };
    let resp = match ctx.services.http.execute(request).await {
        Ok(resp) => resp,
        Err(e) => {
            let err = classify_send(&url, hide(e));
            let exchange = exchange::broken(sent, None, &err.message);
            return Err(err.with_exchange(exchange));
        }
    };
    let status = resp.status();
    let retry_after_ms = retry_after(&resp);
    let is_json = resp
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("json"));
    let head = exchange::response_head(&resp);
    let what = format!("the response of {} {url}", spec.method);
    let bytes = match read_body(resp, ctx.services.limits.max_response_bytes).await {
        Ok(bytes) => bytes,
        Err(e) => {
            let e = match e {
                BodyError::Transport(e) => BodyError::Transport(hide(e)),
                other => other,
            };
            let err = e.into_node_error(&url, &what, &ctx.services.limits);
            let exchange = exchange::broken(sent, Some(head), &err.message);
            return Err(NodeError { retry_after_ms, ..err.with_exchange(exchange) });
        }
    };
    let exchange = exchange::answered(sent, head, &bytes);
    if !status.is_success() {
        let class = status_class(status);
        let snippet = String::from_utf8_lossy(&bytes[..bytes.len().min(200)]).into_owned();
        let message = format!("{} {url} returned {status}: {snippet}", spec.method);
        return Err(NodeError { retry_after_ms, ..NodeError::new(class, message).with_exchange(exchange) });
    }
    let value = if bytes.is_empty() {
        Value::Null
    } else if is_json {
        match serde_json::from_slice(&bytes) {
            Ok(value) => value,
            Err(e) => {
                let message = format!("{url} sent a JSON content type but not JSON: {e}");
                return Err(NodeError::new(ErrorClass::InvalidOutput, message).with_exchange(exchange));
            }
        }
    } else {
        serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
    };
    let patch = match spec.output_key.as_deref() {
        Some(k) => output_patch(Some(k), value)?,
        None => Default::default(),
    };
    Ok(NodeOutput { patch, exchange: Some(Box::new(exchange)), ..Default::default() })
}

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
