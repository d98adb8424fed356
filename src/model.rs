//! Model calls: the two provider wire formats (OpenAI-compatible chat
//! completions, Anthropic messages), the cost of a call, and
//! [`complete`], the one call every user of a model goes through (the
//! `type: model` node in [`crate::nodes`], an eval's rubric judge).
//!
//! A call sends the `Idempotency-Key` it is given, has a timeout, reads the
//! API key from the environment ([`KeySource`]) at call time and never puts
//! it in what it returns: the request in a [`ChatReply`] or in an error's
//! [`Exchange`] is the JSON body, and the key travels only in a header.
//! Failures are [`NodeError`]s classified for the retry policy. This module
//! does not touch the journal: callers journal the exchange.
//!
//! A configuration's `base_url` and `model` may hold `${VAR}` references
//! ([`crate::ir::expand_env`]), read from the process environment at each
//! call. What a call returns and every error keep them as written: the
//! request body's `model` is the written one (the resolved id goes only
//! on the wire), and messages name the written URL.

mod anthropic;
mod openai;
mod output;
mod stream;

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

pub use crate::ir::{
    DEFAULT_MAX_TOOL_ROUNDS, MessageTemplate, ModelConfig, ModelNode, ModelTools, Price, Provider, UnknownModel,
    built_in_price, compile_schema, resolve_model,
};
pub use output::{parse_output, schema_problems};

use crate::ir::Workflow;
use crate::journal::{ErrorClass, Usage};
use crate::nodes::Env;
use crate::nodes::{Exchange, NodeError};

/// The timeout of a model call when its node sets none.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);

/// Where API keys come from: the process environment by default, read at
/// each call. Tests and hosts may supply their own lookup. Its `Debug`
/// shows nothing.
#[derive(Clone)]
pub struct KeySource(Arc<KeyLookup>);

/// A lookup of an environment variable's value by name.
type KeyLookup = dyn Fn(&str) -> Option<String> + Send + Sync;

impl KeySource {
    pub fn from_fn(f: impl Fn(&str) -> Option<String> + Send + Sync + 'static) -> Self {
        KeySource(Arc::new(f))
    }
    pub fn get(&self, var: &str) -> Option<String> {
        (self.0)(var).filter(|v| !v.is_empty())
    }
}

impl Default for KeySource {
    fn default() -> Self {
        KeySource::from_fn(|var| std::env::var(var).ok())
    }
}

impl std::fmt::Debug for KeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeySource(..)")
    }
}

/// One message of a chat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatMessage {
    /// `user`, `assistant` or `system`.
    pub role: String,
    pub content: String,
}

impl ChatMessage {
    pub fn user(content: impl Into<String>) -> Self {
        ChatMessage { role: "user".into(), content: content.into() }
    }
}

/// A tool offered to the model.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolSpec {
    pub name: String,
    pub description: String,
    /// A JSON Schema of the arguments.
    pub input_schema: Value,
}

/// A tool call the model asked for.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolCall {
    /// The provider's id of the call, echoed with its result.
    pub id: String,
    pub name: String,
    pub arguments: Value,
}

/// What to ask a model.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChatRequest {
    pub system: Option<String>,
    pub messages: Vec<ChatMessage>,
    /// Overrides the model configuration's.
    pub temperature: Option<f64>,
    /// Overrides the model configuration's.
    pub max_tokens: Option<u32>,
    pub tools: Vec<ToolSpec>,
    /// [`DEFAULT_TIMEOUT`] when `None`.
    pub timeout: Option<Duration>,
}

/// What a model answered.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatReply {
    /// The reply's text (empty when it only calls tools).
    pub text: String,
    pub tool_calls: Vec<ToolCall>,
    /// Tokens, and their cost at the configuration's price (0 without one).
    pub usage: Usage,
    /// The reply as the provider sent it.
    pub raw: Value,
    /// The JSON body that was sent (no key: that goes in a header).
    pub request: Value,
}

impl ChatReply {
    /// The call as an [`Exchange`], for the journal.
    pub fn exchange(&self) -> Exchange {
        Exchange { request: self.request.clone(), response: self.raw.clone(), usage: self.usage }
    }
}

/// A reply as a wire format reads it.
struct Parsed {
    text: String,
    tool_calls: Vec<ToolCall>,
    input_tokens: u64,
    output_tokens: u64,
}

/// Ask the model `model` names in `workflow` (an entry of its `models:`, or
/// a bare model id with provider defaults), sending `idempotency_key`.
pub async fn complete(
    env: &Env,
    workflow: &Workflow,
    model: &str,
    request: ChatRequest,
    idempotency_key: &str,
) -> Result<ChatReply, NodeError> {
    let config = resolve_model(model, &workflow.models, &workflow.prices)
        .map_err(|e| NodeError::new(ErrorClass::ClientError, e.to_string()))?;
    complete_with(env, &config, &request, idempotency_key).await
}

/// Ask the model of a resolved configuration.
pub async fn complete_with(
    env: &Env,
    config: &ModelConfig,
    request: &ChatRequest,
    idempotency_key: &str,
) -> Result<ChatReply, NodeError> {
    let body = request_body(config, request);
    send(env, config, body, idempotency_key, request.timeout.unwrap_or(DEFAULT_TIMEOUT), None).await
}

/// The JSON body a request is sent as, in the configuration's wire format
/// (its temperature and max_tokens where the request sets none).
pub fn request_body(config: &ModelConfig, request: &ChatRequest) -> Value {
    let mut request = request.clone();
    request.temperature = request.temperature.or(config.temperature);
    request.max_tokens = request.max_tokens.or(config.max_tokens);
    match config.provider {
        Provider::Openai => openai::body(&config.model, &request),
        Provider::Anthropic => anthropic::body(&config.model, &request),
    }
}

/// Append a round of tool calls and their results to a request body, in
/// the configuration's wire format, so the conversation can go on.
pub fn push_tool_round(config: &ModelConfig, body: &mut Value, reply: &ChatReply, results: &[(ToolCall, String)]) {
    match config.provider {
        Provider::Openai => openai::push_tool_round(body, &reply.raw, results),
        Provider::Anthropic => anthropic::push_tool_round(body, &reply.raw, results),
    }
}

/// POST `body` to the configuration's endpoint and read the reply. With
/// `stream`, ask for it streamed and hand each piece of text to `stream` as
/// it comes; the reply returned is the whole one all the same.
pub async fn send(
    env: &Env,
    config: &ModelConfig,
    mut body: Value,
    idempotency_key: &str,
    timeout: Duration,
    stream: Option<&crate::nodes::stream::StreamTo<'_>>,
) -> Result<ChatReply, NodeError> {
    if stream.is_some() && body.is_object() {
        body["stream"] = Value::Bool(true);
        if config.provider == Provider::Openai {
            body["stream_options"] = serde_json::json!({"include_usage": true});
        }
    }
    let key = match &config.api_key_env {
        Some(var) => Some(env.keys.get(var).ok_or_else(|| {
            let message = format!(
                "the environment variable `{var}` is not set: model `{}` ({}) reads its API key from it \
                 (`api_key_env`)",
                config.model,
                config.provider.name()
            );
            NodeError::new(ErrorClass::ClientError, message)
        })?),
        None => None,
    };
    let (base_url, model) = resolve_env(config, &config.model)?;
    let endpoint = |base: &str| match config.provider {
        Provider::Openai => openai::url(base),
        Provider::Anthropic => anthropic::url(base),
    };
    // `url` names the endpoint in messages (as written); `target` is where the request goes.
    let (url, target) = (endpoint(&config.base_url), endpoint(&base_url));
    let hidden = url != target;
    let bytes = if model != config.model {
        let mut wire = body.clone();
        wire["model"] = Value::String(model);
        serde_json::to_vec(&wire)
    } else {
        serde_json::to_vec(&body)
    }
    .expect("a JSON value always serializes");
    let mut req = env
        .http
        .post(&target)
        .timeout(timeout)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header("Idempotency-Key", idempotency_key);
    if let Some(tp) = crate::nodes::trace::traceparent() {
        req = req.header("traceparent", tp);
    }
    let secret = |v: String| {
        let mut v = reqwest::header::HeaderValue::from_str(&v).map_err(|_| {
            NodeError::new(ErrorClass::ClientError, "the API key is not a valid header value".to_string())
        })?;
        v.set_sensitive(true);
        Ok::<_, NodeError>(v)
    };
    match (config.provider, key) {
        (Provider::Openai, Some(k)) => req = req.header(reqwest::header::AUTHORIZATION, secret(format!("Bearer {k}"))?),
        (Provider::Anthropic, Some(k)) => req = req.header("x-api-key", secret(k)?),
        (_, None) => {}
    }
    if config.provider == Provider::Anthropic {
        req = req.header("anthropic-version", anthropic::VERSION);
    }
    // reqwest names the URL it was sent to in its errors: not a resolved one.
    let send_error = |e: reqwest::Error| crate::nodes::classify_send(&url, if hidden { e.without_url() } else { e });
    let resp = req.body(bytes).send().await.map_err(send_error)?;
    let status = resp.status();
    let retry_after_ms = crate::nodes::retry_after(&resp);
    let what = format!("the reply of model `{}` at {url}", config.model);
    let is_sse = resp
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    let failed = |class: ErrorClass, message: String, response: Value| {
        let exchange = Exchange { request: body.clone(), response, usage: Usage::default() };
        NodeError::new(class, message).with_exchange(exchange)
    };
    // Nor in a body's transport errors.
    let hide = |e: crate::nodes::BodyError| match e {
        crate::nodes::BodyError::Transport(t) if hidden => crate::nodes::BodyError::Transport(t.without_url()),
        other => other,
    };
    let raw = match stream.filter(|_| status.is_success() && is_sse) {
        Some(to) => {
            read_stream(resp, config.provider, to, env.limits.max_response_bytes).await.map_err(|e| match e {
                Streamed::Body(b) => hide(b).into_node_error(&url, &what, &env.limits),
                // Cut short: the connection went; sent again, it may finish.
                Streamed::Cut(why) => {
                    NodeError::new(ErrorClass::Connection, format!("model `{}` at {url}: {why}", config.model))
                }
                Streamed::Bad(why) => {
                    NodeError::new(ErrorClass::InvalidOutput, format!("model `{}` at {url}: {why}", config.model))
                }
            })?
        }
        None => {
            let reply = crate::nodes::read_body(resp, env.limits.max_response_bytes)
                .await
                .map_err(|e| hide(e).into_node_error(&url, &what, &env.limits))?;
            // What the exchange of a failure records as the reply: the JSON, or the text.
            let as_text = || Value::String(String::from_utf8_lossy(&reply).into_owned());
            let raw: Result<Value, _> = serde_json::from_slice(&reply);
            if !status.is_success() {
                let class = crate::nodes::status_class(status);
                let snippet: String = String::from_utf8_lossy(&reply).chars().take(300).collect();
                let message = format!("model `{}` at {url} returned {status}: {snippet}", config.model);
                let response = raw.unwrap_or_else(|_| as_text());
                return Err(NodeError { retry_after_ms, ..failed(class, message, response) });
            }
            raw.map_err(|e| {
                let snippet: String = String::from_utf8_lossy(&reply).chars().take(200).collect();
                let message =
                    format!("model `{}` at {url} replied with malformed JSON ({e}): {snippet:?}", config.model);
                failed(ErrorClass::InvalidOutput, message, as_text())
            })?
        }
    };
    let parsed = parse(config.provider, &raw).map_err(|e| {
        failed(ErrorClass::InvalidOutput, format!("model `{}` at {url}: {e}", config.model), raw.clone())
    })?;
    let usage = usage(parsed.input_tokens, parsed.output_tokens, config.price.as_ref());
    Ok(ChatReply { text: parsed.text, tool_calls: parsed.tool_calls, usage, raw, request: body })
}

/// A reply in `provider`'s wire format: its text, tool calls and tokens.
fn parse(provider: Provider, raw: &Value) -> Result<Parsed, String> {
    match provider {
        Provider::Openai => openai::parse(raw),
        Provider::Anthropic => anthropic::parse(raw),
    }
}

/// Why a streamed reply could not be read.
enum Streamed {
    Body(crate::nodes::BodyError),
    /// It ended before the reply did.
    Cut(String),
    /// It said something that is not the wire format.
    Bad(String),
}

/// Read a streamed reply to its end (at most `limit` bytes), handing its
/// text to `to` as it comes; the reply put back together.
async fn read_stream(
    mut resp: reqwest::Response,
    provider: Provider,
    to: &crate::nodes::stream::StreamTo<'_>,
    limit: u64,
) -> Result<Value, Streamed> {
    let mut assembler = stream::Assembler::new(provider);
    let (mut read, mut n) = (0u64, 0u64);
    let mut delta = |text: &str| {
        if !text.is_empty() {
            to.send(n, text);
            n += 1;
        }
    };
    while let Some(chunk) = resp.chunk().await.map_err(|e| Streamed::Body(crate::nodes::BodyError::Transport(e)))? {
        read += chunk.len() as u64;
        if read > limit {
            return Err(Streamed::Body(crate::nodes::BodyError::TooLarge { declared: None }));
        }
        assembler.feed(&chunk, &mut delta).map_err(Streamed::Bad)?;
    }
    assembler.finish().map_err(Streamed::Cut)
}

/// A reply journaled earlier (its raw JSON as the provider sent it), read
/// back as [`send`] reads a fresh one, with the usage recorded then.
pub fn journaled_reply(config: &ModelConfig, raw: Value, request: Value, usage: Usage) -> Result<ChatReply, String> {
    let parsed = parse(config.provider, &raw)?;
    Ok(ChatReply { text: parsed.text, tool_calls: parsed.tool_calls, usage, raw, request })
}

/// A reply's text and tool calls, whichever wire format wrote it (for
/// showing a journaled reply; `None` when neither reads it).
pub fn reply_parts(raw: &Value) -> Option<(String, Vec<ToolCall>)> {
    let parsed = openai::parse(raw).or_else(|_| anthropic::parse(raw)).ok()?;
    Some((parsed.text, parsed.tool_calls))
}

/// The usage of one call: tokens, and their cost at `price` (0 without one).
pub fn usage(input_tokens: u64, output_tokens: u64, price: Option<&Price>) -> Usage {
    let cost_usd = price.map_or(0.0, |p| p.cost(input_tokens, output_tokens));
    Usage { input_tokens, output_tokens, cost_usd }
}

/// The configuration's `base_url` and model id with their `${VAR}`s read
/// from the process environment. An unset variable is a `client_error`
/// (not retried by default: the environment does not change while the
/// process runs) naming the variable, the field and the model as `name`
/// (what the node wrote: an entry of `models:`, or the model id).
pub fn resolve_env(config: &ModelConfig, name: &str) -> Result<(String, String), NodeError> {
    let read = |text: &str, field: &str| {
        crate::ir::expand_process_env(text).map_err(|e| {
            let message = format!("`{field}` of model `{name}` ({}): {e}", config.provider.name());
            NodeError::new(ErrorClass::ClientError, message)
        })
    };
    let base_url = read(&config.base_url, "base_url")?;
    if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
        let message = format!(
            "`base_url` of model `{name}` is `{}`, which does not give an http:// or https:// URL once its \
             variables are read",
            config.base_url
        );
        return Err(NodeError::new(ErrorClass::ClientError, message));
    }
    Ok((base_url, read(&config.model, "model")?))
}
