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

use futures::future::BoxFuture;
use serde_json::Value;

use super::http_exchange as exchange;
use super::transport::{BodyError, classify_send, read_body, retry_after, status_class};
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
    if let Some(tp) = super::trace::traceparent() {
        req = req.header("traceparent", tp);
    }
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
            let mut err = classify_send(&url, hide(e));
            if let Ok(target) = reqwest::Url::parse(&target)
                && let Some(hint) =
                    crate::tls::certificate_hint(&target, &err.message, ctx.services.presents_certificate).await
            {
                err.message.push_str(hint);
            }
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
