//! A loopback model server on 127.0.0.1:0 that speaks both provider wire
//! formats, for tests and benches:
//!
//! - OpenAI-compatible `POST /v1/chat/completions` (base url `{url}/v1`):
//!   replies `{id, object, model, choices: [{index, message: {role, content,
//!   tool_calls?}, finish_reason}], usage: {prompt_tokens, completion_tokens,
//!   total_tokens}}`;
//! - Anthropic `POST /v1/messages` (base url `{url}`): replies `{id, type:
//!   "message", role, model, content: [{type: "text"|"tool_use", ...}],
//!   stop_reason, usage: {input_tokens, output_tokens}}`.
//!
//! Every request is recorded (body and headers, the Idempotency-Key and the
//! auth header included). By default the reply is `echo: <last user
//! message>` with usage counted in words (input: the words of every
//! message and the system prompt; output: the words of the reply), so
//! tests can predict tokens and cost. A last message that carries tool
//! results gets `tool said: <results>`. [`Rule`]s, checked in the order
//! they were added, override that: a status with `Retry-After`, a
//! malformed body, a fixed text, tool calls, a delay, or a hold until the
//! server is dropped.
//!
//! A request with `"stream": true` gets its text reply as Server-Sent
//! Events in the provider's streaming format, one event per word (OpenAI:
//! `chat.completion.chunk`s, a usage chunk, `[DONE]`; Anthropic:
//! `message_start` ... `message_stop`). [`Reply::Stream`] paces the words
//! or stops sending after some of them (the connection stays open).
#![allow(dead_code)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{Value, json};

/// Which wire format a request came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    OpenAi,
    Anthropic,
}

/// One request the server received.
#[derive(Debug, Clone)]
pub struct Request {
    pub wire: Wire,
    pub body: Value,
    /// Header names in lower case, with their values.
    pub headers: Vec<(String, String)>,
    /// The text of the last user (or tool-result) message.
    pub last_user: String,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str())
    }
    pub fn idempotency_key(&self) -> Option<&str> {
        self.header("idempotency-key")
    }
}

/// When a rule applies.
#[derive(Debug, Clone)]
pub enum When {
    Always,
    /// The last user message contains this text.
    Contains(String),
    /// The request's Idempotency-Key starts with this text.
    KeyPrefix(String),
    /// The request's Idempotency-Key ends with this text.
    KeySuffix(String),
    /// A message before the last user message (the conversation so far:
    /// a session's history) contains this text.
    Earlier(String),
}

/// What the server answers.
#[derive(Debug, Clone)]
pub enum Reply {
    /// This reply text (with word-count usage).
    Text(String),
    /// An error status, with an optional `Retry-After` in seconds.
    Status { code: u16, retry_after: Option<String>, body: String },
    /// HTTP 200 with a body that is not JSON.
    Malformed,
    /// Tool calls: `(name, arguments)`; the model stops for tool use.
    ToolCalls(Vec<(String, Value)>),
    /// Wait this long, then answer with the inner reply.
    Delay(u64, Box<Reply>),
    /// Never answer (until the server or the connection is gone).
    Hold,
    /// Answer the inner reply once this many requests have arrived in
    /// all (at most 10 s: then 503): what only calls made together pass.
    Together(usize, Box<Reply>),
    /// Stream this text (to a streaming request), a word every `pause_ms`;
    /// with `hold_after`, send only that many words, then nothing more
    /// (until the client goes away or ten minutes pass).
    Stream { text: String, pause_ms: u64, hold_after: Option<usize> },
}

/// A scripted answer: `reply` when `when` holds, for the first `times`
/// matching requests (every one, without a limit).
#[derive(Debug, Clone)]
pub struct Rule {
    pub when: When,
    pub reply: Reply,
    pub times: Option<usize>,
}

impl Rule {
    pub fn always(reply: Reply) -> Rule {
        Rule { when: When::Always, reply, times: None }
    }
    pub fn contains(text: &str, reply: Reply) -> Rule {
        Rule { when: When::Contains(text.to_string()), reply, times: None }
    }
    pub fn key_prefix(prefix: &str, reply: Reply) -> Rule {
        Rule { when: When::KeyPrefix(prefix.to_string()), reply, times: None }
    }
    pub fn key_suffix(suffix: &str, reply: Reply) -> Rule {
        Rule { when: When::KeySuffix(suffix.to_string()), reply, times: None }
    }
    /// When an earlier message of the request (not the last user one)
    /// contains `text`.
    pub fn earlier(text: &str, reply: Reply) -> Rule {
        Rule { when: When::Earlier(text.to_string()), reply, times: None }
    }
    /// Apply only to the first `n` matching requests.
    pub fn times(mut self, n: usize) -> Rule {
        self.times = Some(n);
        self
    }
}

impl Reply {
    pub fn text(text: &str) -> Reply {
        Reply::Text(text.to_string())
    }
    pub fn status(code: u16) -> Reply {
        Reply::Status { code, retry_after: None, body: format!("{{\"error\": \"scripted {code}\"}}") }
    }
    /// 429 with `Retry-After: seconds`.
    pub fn rate_limited(seconds: &str) -> Reply {
        Reply::Status {
            code: 429,
            retry_after: Some(seconds.to_string()),
            body: "{\"error\": \"rate limited\"}".into(),
        }
    }
    /// `then`, once `n` requests have arrived (see [`Reply::Together`]).
    pub fn together(n: usize, then: Reply) -> Reply {
        Reply::Together(n, Box::new(then))
    }
    pub fn delay(ms: u64, then: Reply) -> Reply {
        Reply::Delay(ms, Box::new(then))
    }
    pub fn stream(text: &str, pause_ms: u64, hold_after: Option<usize>) -> Reply {
        Reply::Stream { text: text.to_string(), pause_ms, hold_after }
    }
    pub fn tool_call(name: &str, arguments: Value) -> Reply {
        Reply::ToolCalls(vec![(name.to_string(), arguments)])
    }
}

#[derive(Default)]
struct Shared {
    requests: Mutex<Vec<Request>>,
    /// Each rule with how many times it has been used.
    rules: Mutex<Vec<(Rule, usize)>>,
    received: tokio::sync::Notify,
    ids: AtomicU64,
}

/// The server. Dropping it does not stop it: it lives as long as the
/// test's tokio runtime.
#[derive(Clone)]
pub struct ModelServer {
    /// `http://127.0.0.1:PORT`
    pub url: String,
    shared: Arc<Shared>,
}

impl ModelServer {
    pub async fn start() -> ModelServer {
        let shared = Arc::new(Shared::default());
        let app = Router::new()
            .route("/v1/chat/completions", post(openai))
            .route("/v1/messages", post(anthropic))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("binding the model server");
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        ModelServer { url, shared }
    }

    /// Start the server on a runtime of its own thread, for callers that
    /// are not async (a `jamjet` binary test, a bench).
    pub fn start_blocking() -> ModelServer {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
            rt.block_on(async move {
                tx.send(ModelServer::start().await).unwrap();
                std::future::pending::<()>().await
            })
        });
        rx.recv_timeout(Duration::from_secs(10)).expect("the model server did not start")
    }

    /// The `base_url` of an OpenAI-compatible provider.
    pub fn openai_base(&self) -> String {
        format!("{}/v1", self.url)
    }

    /// The `base_url` of an Anthropic provider.
    pub fn anthropic_base(&self) -> String {
        self.url.clone()
    }

    /// Add a rule; earlier rules win.
    pub fn script(&self, rule: Rule) -> &Self {
        self.shared.rules.lock().unwrap().push((rule, 0));
        self
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<Request> {
        self.shared.requests.lock().unwrap().clone()
    }

    /// The requests that carried this Idempotency-Key.
    pub fn requests_with_key(&self, key: &str) -> Vec<Request> {
        self.requests().into_iter().filter(|r| r.idempotency_key() == Some(key)).collect()
    }

    /// Wait (at most `timeout`) until at least `n` requests arrived.
    pub async fn wait_for_requests(&self, n: usize, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.shared.received.notified();
            if self.shared.requests.lock().unwrap().len() >= n {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.shared.requests.lock().unwrap().len() >= n;
            }
        }
    }
}

/// Text of a message's content: a string, or the text of its parts
/// (`text`, and the content of `tool_result` parts).
fn content_text(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| match p["type"].as_str() {
                Some("text") => p["text"].as_str().map(str::to_string),
                Some("tool_result") => Some(content_text(&p["content"])),
                _ => None,
            })
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}

/// Whether the last message carries tool results.
fn is_tool_result(message: &Value) -> bool {
    message["role"] == "tool"
        || message["content"].as_array().is_some_and(|parts| parts.iter().any(|p| p["type"] == "tool_result"))
}

fn words(text: &str) -> u64 {
    text.split_whitespace().count() as u64
}

/// Input tokens: the words of every message and of the system prompt.
fn input_words(body: &Value) -> u64 {
    let system = match &body["system"] {
        Value::Null => 0,
        s => words(&content_text(s)),
    };
    let messages =
        body["messages"].as_array().map_or(0, |m| m.iter().map(|m| words(&content_text(&m["content"]))).sum());
    system + messages
}

fn record(shared: &Shared, wire: Wire, headers: &HeaderMap, body: &Value) -> (Request, Reply) {
    let messages = body["messages"].as_array().cloned().unwrap_or_default();
    let last_at = messages.iter().rposition(|m| m["role"] == "user" || m["role"] == "tool");
    let last_user = last_at.map(|i| content_text(&messages[i]["content"])).unwrap_or_default();
    let earlier: Vec<String> = messages[..last_at.unwrap_or(0)].iter().map(|m| content_text(&m["content"])).collect();
    let headers = headers
        .iter()
        .map(|(n, v)| (n.as_str().to_ascii_lowercase(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .collect();
    let request = Request { wire, body: body.clone(), headers, last_user };
    let reply = {
        let mut rules = shared.rules.lock().unwrap();
        let found = rules.iter_mut().find(|(rule, used)| {
            rule.times.is_none_or(|t| *used < t)
                && match &rule.when {
                    When::Always => true,
                    When::Contains(text) => request.last_user.contains(text.as_str()),
                    When::KeyPrefix(p) => request.idempotency_key().is_some_and(|k| k.starts_with(p.as_str())),
                    When::KeySuffix(p) => request.idempotency_key().is_some_and(|k| k.ends_with(p.as_str())),
                    When::Earlier(text) => earlier.iter().any(|m| m.contains(text.as_str())),
                }
        });
        match found {
            Some((rule, used)) => {
                *used += 1;
                rule.reply.clone()
            }
            None if messages.last().is_some_and(is_tool_result) => {
                Reply::Text(format!("tool said: {}", request.last_user))
            }
            None => Reply::Text(format!("echo: {}", request.last_user)),
        }
    };
    shared.requests.lock().unwrap().push(request.clone());
    shared.received.notify_waiters();
    (request, reply)
}

/// Wait out delays and holds; the reply that is left.
async fn settle(shared: &Shared, mut reply: Reply) -> Reply {
    loop {
        match reply {
            Reply::Together(n, inner) => {
                let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
                loop {
                    let notified = shared.received.notified();
                    if shared.requests.lock().unwrap().len() >= n {
                        break;
                    }
                    if tokio::time::timeout_at(deadline, notified).await.is_err() {
                        return Reply::status(503);
                    }
                }
                reply = *inner;
            }
            Reply::Delay(ms, inner) => {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                reply = *inner;
            }
            Reply::Hold => {
                // Until the client goes away (the connection drops this future) or ten minutes pass.
                tokio::time::sleep(Duration::from_secs(600)).await;
                return Reply::status(504);
            }
            other => return other,
        }
    }
}

/// Answer a status or a malformed body; `None` for the wire-specific replies.
fn plain(reply: &Reply) -> Option<Response> {
    match reply {
        Reply::Status { code, retry_after, body } => {
            let mut h = HeaderMap::new();
            h.insert("content-type", "application/json".parse().unwrap());
            if let Some(s) = retry_after {
                h.insert("retry-after", s.parse().unwrap());
            }
            Some((StatusCode::from_u16(*code).unwrap(), h, body.clone()).into_response())
        }
        Reply::Malformed => {
            let mut h = HeaderMap::new();
            h.insert("content-type", "application/json".parse().unwrap());
            Some((StatusCode::OK, h, "{\"choices\": [ this is not json").into_response())
        }
        _ => None,
    }
}

async fn openai(State(shared): State<Arc<Shared>>, headers: HeaderMap, Json(body): Json<Value>) -> Response {
    let (_, reply) = record(&shared, Wire::OpenAi, &headers, &body);
    let reply = settle(&shared, reply).await;
    if let Some(r) = plain(&reply) {
        return r;
    }
    let n = shared.ids.fetch_add(1, Ordering::Relaxed);
    let input = input_words(&body);
    if body["stream"] == true
        && let Some((text, pause_ms, hold_after)) = streamed(&reply)
    {
        let (id, model) = (format!("chatcmpl-{n}"), body["model"].clone());
        let chunk = |delta: Value, finish: Value| {
            json!({"id": id, "object": "chat.completion.chunk", "model": model,
                   "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
        };
        let mut events = vec![chunk(json!({"role": "assistant", "content": ""}), Value::Null)];
        let pieces = pieces(&text);
        events.extend(pieces.iter().map(|p| chunk(json!({"content": p}), Value::Null)));
        events.push(chunk(json!({}), json!("stop")));
        events.push(json!({"id": id, "object": "chat.completion.chunk", "model": model, "choices": [],
                           "usage": {"prompt_tokens": input, "completion_tokens": words(&text),
                                     "total_tokens": input + words(&text)}}));
        let mut lines: Vec<String> = events.iter().map(|e| format!("data: {e}\n\n")).collect();
        lines.push("data: [DONE]\n\n".to_string());
        return sse(lines, 1, pause_ms, hold_after);
    }
    let (message, finish, output) = match reply {
        Reply::Stream { text, .. } => (json!({"role": "assistant", "content": text}), "stop", words(&text)),
        Reply::ToolCalls(calls) => {
            let calls: Vec<Value> = calls
                .iter()
                .enumerate()
                .map(|(i, (name, args))| {
                    json!({"id": format!("call_{n}_{i}"), "type": "function",
                           "function": {"name": name, "arguments": args.to_string()}})
                })
                .collect();
            (json!({"role": "assistant", "content": null, "tool_calls": calls}), "tool_calls", calls.len() as u64)
        }
        Reply::Text(text) => (json!({"role": "assistant", "content": text}), "stop", words(&text)),
        _ => unreachable!("settled"),
    };
    Json(json!({
        "id": format!("chatcmpl-{n}"),
        "object": "chat.completion",
        "created": 1_700_000_000u64,
        "model": body["model"],
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": {"prompt_tokens": input, "completion_tokens": output, "total_tokens": input + output},
    }))
    .into_response()
}

async fn anthropic(State(shared): State<Arc<Shared>>, headers: HeaderMap, Json(body): Json<Value>) -> Response {
    let (_, reply) = record(&shared, Wire::Anthropic, &headers, &body);
    if headers.get("anthropic-version").is_none() {
        let error = json!({"type": "error", "error": {"type": "invalid_request_error",
                                                      "message": "anthropic-version: header is required"}});
        return (StatusCode::BAD_REQUEST, Json(error)).into_response();
    }
    let reply = settle(&shared, reply).await;
    if let Some(r) = plain(&reply) {
        return r;
    }
    let n = shared.ids.fetch_add(1, Ordering::Relaxed);
    let input = input_words(&body);
    if body["stream"] == true
        && let Some((text, pause_ms, hold_after)) = streamed(&reply)
    {
        let mut events = vec![
            json!({"type": "message_start", "message": {"id": format!("msg_{n}"), "type": "message", "role": "assistant",
                   "model": body["model"], "content": [], "usage": {"input_tokens": input, "output_tokens": 1}}}),
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        ];
        let pieces = pieces(&text);
        events.extend(
            pieces.iter().map(
                |p| json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": p}}),
            ),
        );
        events.push(json!({"type": "content_block_stop", "index": 0}));
        events.push(json!({"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": words(&text)}}));
        events.push(json!({"type": "message_stop"}));
        let lines = events.iter().map(|e| format!("event: {}\ndata: {e}\n\n", e["type"].as_str().unwrap())).collect();
        return sse(lines, 2, pause_ms, hold_after);
    }
    let (content, stop, output) = match reply {
        Reply::Stream { text, .. } => (json!([{"type": "text", "text": text}]), "end_turn", words(&text)),
        Reply::ToolCalls(calls) => {
            let blocks: Vec<Value> = calls
                .iter()
                .enumerate()
                .map(|(i, (name, args))| json!({"type": "tool_use", "id": format!("toolu_{n}_{i}"), "name": name, "input": args}))
                .collect();
            let count = blocks.len() as u64;
            (Value::Array(blocks), "tool_use", count)
        }
        Reply::Text(text) => (json!([{"type": "text", "text": text}]), "end_turn", words(&text)),
        _ => unreachable!("settled"),
    };
    Json(json!({
        "id": format!("msg_{n}"),
        "type": "message",
        "role": "assistant",
        "model": body["model"],
        "content": content,
        "stop_reason": stop,
        "stop_sequence": null,
        "usage": {"input_tokens": input, "output_tokens": output},
    }))
    .into_response()
}

/// The text of a reply that streams, with its pace and where it stops.
fn streamed(reply: &Reply) -> Option<(String, u64, Option<usize>)> {
    match reply {
        Reply::Text(text) => Some((text.clone(), 0, None)),
        Reply::Stream { text, pause_ms, hold_after } => Some((text.clone(), *pause_ms, *hold_after)),
        _ => None,
    }
}

/// A text cut into words, each but the first with the space before it.
fn pieces(text: &str) -> Vec<String> {
    text.split_inclusive(' ').map(str::to_string).collect()
}

/// An event stream of `lines`: the first `head` (the preamble) at once,
/// then one every `pause_ms`; with `hold_after`, only that many after the
/// preamble, then silence (the connection stays open).
fn sse(lines: Vec<String>, head: usize, pause_ms: u64, hold_after: Option<usize>) -> Response {
    let stream = futures::stream::unfold((lines.into_iter(), 0usize), move |(mut it, i)| async move {
        if hold_after.is_some_and(|k| i == head + k) {
            tokio::time::sleep(Duration::from_secs(600)).await;
            return None;
        }
        if i >= head && pause_ms > 0 {
            tokio::time::sleep(Duration::from_millis(pause_ms)).await;
        }
        let line = it.next()?;
        Some((Ok::<_, std::convert::Infallible>(axum::body::Bytes::from(line)), (it, i + 1)))
    });
    let mut h = HeaderMap::new();
    h.insert("content-type", "text/event-stream".parse().unwrap());
    (StatusCode::OK, h, axum::body::Body::from_stream(stream)).into_response()
}
