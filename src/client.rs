//! A small typed client of the REST API a `jamjet dev` server offers
//! (`docs/api.md`): register a workflow, submit, get, list, read and
//! follow an execution's events (Server-Sent Events, reconnecting with
//! `Last-Event-ID`), signal, approve, cancel. What the CLI uses with
//! `--server URL`.
//!
//! Every error names the URL it is about; an error the server answered
//! carries its `{"error": {"code", "message", "details"}}`. A server that
//! does not answer at all is [`Error::Unreachable`]. With `JAMJET_API_KEY`
//! (or [`Client::with_key`]) every request carries `Authorization: Bearer`.
//!
//! [`Client::unix`] talks to the process holding a data dir over the
//! data dir's socket (`server::socket`) instead: the same API, no key;
//! its errors read as the runtime's own ([`Error::Held`]), since for the
//! user it is their data dir answering, not a server.
//!
//! Owns no runtime state: this is the wire, nothing else.

// An error carries the server's whole answer (code, message, details, URL)
// and a stream item a whole record: both are moved a few times per request,
// on a network path, where boxing them buys nothing measurable.
#![allow(clippy::result_large_err, clippy::large_enum_variant)]

use std::collections::VecDeque;
use std::time::Duration;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::id::ExecutionId;
use crate::ir::Workflow;
use crate::journal::{Record, Registration, Status, Usage};

/// How often a broken event stream is reopened (from the last event seen)
/// before giving up; the count restarts with every event received.
const STREAM_RECONNECTS: u32 = 5;
/// The pause before the first reconnect; doubled each time.
const STREAM_BACKOFF: Duration = Duration::from_millis(200);
/// How long to wait for a connection to a server.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// What can go wrong talking to a server.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Nothing answered (refused, timed out, name not found).
    #[error("cannot reach jamjet server at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    /// The server answered with an error.
    #[error("{message} ({code}; HTTP {status} from {method} {url})")]
    Api { method: String, url: String, status: u16, code: String, message: String, details: Value },
    /// The server answered something this client cannot read.
    #[error("unexpected reply from {url}: {reason}")]
    Protocol { url: String, reason: String },
    /// The process holding the data dir answered with an error over its
    /// socket: its message is the runtime's own.
    #[error("{message}")]
    Held { method: String, path: String, status: u16, code: String, message: String, details: Value },
    /// The process holding the data dir does not answer on its socket
    /// (it exited, or was killed, midway).
    #[error("the jamjet process holding the data dir stopped answering on {socket}: {reason}")]
    HolderGone { socket: String, reason: String },
}

impl Error {
    /// The server's error code (`unknown_execution`, `workflow_conflict`, …).
    pub fn code(&self) -> Option<&str> {
        match self {
            Error::Api { code, .. } | Error::Held { code, .. } => Some(code),
            _ => None,
        }
    }
}

/// `POST /executions`'s answer.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Submitted {
    pub id: ExecutionId,
    pub workflow_id: String,
    pub version: String,
    pub status: Status,
}

/// `GET /executions/{id}`: where an execution stands.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Execution {
    pub id: ExecutionId,
    pub workflow_id: String,
    pub version: String,
    pub status: Status,
    #[serde(default)]
    pub state: Value,
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub usage: Usage,
    pub created_ms: u64,
    pub updated_ms: u64,
    #[serde(default)]
    pub waiting: Vec<Wait>,
    /// The content hash of the IR it runs (absent from older servers).
    #[serde(default)]
    pub workflow_hash: Option<String>,
    /// Its idempotency key.
    #[serde(default)]
    pub key: Option<String>,
    /// Whether only the outside can move it (and its unfinished children)
    /// on: ended, or parked on events or approvals (absent from older
    /// servers).
    #[serde(default)]
    pub settled: Option<bool>,
}

/// One thing an execution waits for.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Wait {
    /// The execution that waits, when the server names it (a child's wait
    /// listed under its parent); else the execution asked about.
    #[serde(default)]
    pub id: Option<ExecutionId>,
    /// The waiting execution's workflow, when the server names it.
    #[serde(default)]
    pub workflow_id: Option<String>,
    pub node: String,
    /// `event`, `approval` or `timer`.
    pub kind: String,
    #[serde(default)]
    pub event: Option<String>,
    #[serde(default)]
    pub prompt: Option<String>,
    pub since_ms: u64,
    #[serde(default)]
    pub deadline_ms: Option<u64>,
    /// The waiting execution's parent (a branch's, a sub-workflow's).
    #[serde(default)]
    pub parent: Option<ExecutionId>,
}

/// One row of `GET /executions`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Summary {
    pub id: ExecutionId,
    pub workflow_id: String,
    pub version: String,
    pub status: Status,
    pub created_ms: u64,
    pub updated_ms: u64,
    /// Not in the contract's list rows; read when a server adds it.
    #[serde(default)]
    pub workflow_hash: Option<String>,
    #[serde(default)]
    pub key: Option<String>,
    /// The execution that started it (a parallel branch, a sub-workflow);
    /// `None` for one started on its own, or from a server that does not say.
    #[serde(default)]
    pub parent: Option<ExecutionId>,
}

/// One page of `GET /executions`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Page {
    pub executions: Vec<Summary>,
    #[serde(default)]
    pub next_cursor: Option<String>,
}

/// Filters of `GET /executions`.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    pub status: Option<Status>,
    pub workflow: Option<String>,
    pub limit: Option<usize>,
    pub cursor: Option<String>,
}

/// `POST /executions/{id}/approve`'s answer.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Approved {
    pub id: ExecutionId,
    pub node: String,
    pub status: Status,
}

/// What `POST /executions/{id}/signal` and `/cancel` answer.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Moved {
    pub id: ExecutionId,
    pub status: Status,
    /// A signal: nothing in the execution waited for its key, so it is
    /// kept (`None` from a server that does not say).
    #[serde(default)]
    pub kept: Option<bool>,
    /// A signal: the events the execution and its children waited for
    /// when it came (`None` from a server that does not say).
    #[serde(default)]
    pub awaited: Option<Vec<Wait>>,
}

/// A client of one server.
#[derive(Debug, Clone)]
pub struct Client {
    base: String,
    http: reqwest::Client,
    key: Option<String>,
    /// Through a data dir's socket: its path (the URL's host is then irrelevant).
    socket: Option<std::path::PathBuf>,
}

impl Client {
    /// A client of the server at `base` (`http://127.0.0.1:7700`), with the
    /// API key of `JAMJET_API_KEY` if set.
    pub fn new(base: &str) -> Result<Client, Error> {
        let base = base.trim_end_matches('/').to_string();
        let parsed = reqwest::Url::parse(&base)
            .map_err(|e| Error::Unreachable { url: base.clone(), reason: format!("not a URL: {e}") })?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(Error::Unreachable { url: base, reason: "the URL must start with http:// or https://".into() });
        }
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .build()
            .map_err(|e| Error::Unreachable { url: base.clone(), reason: e.to_string() })?;
        let key = std::env::var("JAMJET_API_KEY").ok().filter(|k| !k.is_empty());
        Ok(Client { base, http, key, socket: None })
    }

    /// A client of the process holding a data dir, over the data dir's
    /// socket (`<data-dir>/jamjet.sock`). No key: the socket is its
    /// owner's only.
    pub fn unix(socket: &std::path::Path) -> Result<Client, Error> {
        let shown = socket.display().to_string();
        let http = reqwest::Client::builder()
            .unix_socket(socket)
            .connect_timeout(CONNECT_TIMEOUT)
            .build()
            .map_err(|e| Error::HolderGone { socket: shown, reason: e.to_string() })?;
        Ok(Client { base: "http://localhost".into(), http, key: None, socket: Some(socket.to_path_buf()) })
    }

    /// The data dir's socket this client goes through, if it does.
    pub fn socket(&self) -> Option<&std::path::Path> {
        self.socket.as_deref()
    }

    /// `GET /holder` (on a data dir's socket only): which process holds
    /// it, within `limit`.
    pub async fn holder(&self, limit: Duration) -> Result<crate::server::socket::Holder, Error> {
        let req = self.http.get(self.url("/holder")).timeout(limit);
        let (_, v) = self.send("GET", "/holder", req).await?;
        self.decode("/holder", v)
    }

    /// `GET /executions/{id}/workflow`: the IR an execution runs and its hash.
    pub async fn workflow_of(&self, id: ExecutionId) -> Result<(String, Workflow), Error> {
        #[derive(Deserialize)]
        struct Got {
            hash: String,
            workflow: Workflow,
        }
        let got: Got = self.get(&format!("/executions/{id}/workflow")).await?;
        Ok((got.hash, got.workflow))
    }

    /// `POST /executions` with the workflow's IR inline: run it as it is,
    /// without registering it (what `jamjet run FILE` does locally).
    pub async fn submit_inline(
        &self,
        workflow: &Workflow,
        input: &Value,
        idempotency_key: Option<&str>,
    ) -> Result<Submitted, Error> {
        let mut body = json!({ "workflow": workflow, "input": input });
        if let Some(k) = idempotency_key {
            body["idempotency_key"] = k.into();
        }
        self.post("/executions", &body).await
    }

    /// Errors through a data dir's socket read as the runtime's own.
    fn held(&self, e: Error) -> Error {
        let Some(socket) = &self.socket else { return e };
        match e {
            Error::Api { method, url, status, code, message, details } => {
                let path = url.strip_prefix(&self.base).unwrap_or(&url).to_string();
                Error::Held { method, path, status, code, message, details }
            }
            Error::Unreachable { reason, .. } => Error::HolderGone { socket: socket.display().to_string(), reason },
            Error::Protocol { url, reason } => {
                let path = url.strip_prefix(&self.base).unwrap_or(&url);
                Error::Protocol { url: format!("{}:{path}", socket.display()), reason }
            }
            other => other,
        }
    }

    /// Send `Authorization: Bearer <key>` with every request.
    pub fn with_key(mut self, key: Option<String>) -> Client {
        self.key = key;
        self
    }

    /// The server's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// `POST /workflows` with a YAML body (`?replace=true` replaces other
    /// content under the same id and version). The flag says whether it
    /// was new (201) or already there (200).
    pub async fn register_yaml(&self, yaml: &str, replace: bool) -> Result<(Registration, bool), Error> {
        let path = if replace { "/workflows?replace=true" } else { "/workflows" };
        let req = self.http.post(self.url(path)).header("content-type", "application/yaml").body(yaml.to_string());
        let (status, v) = self.send("POST", path, req).await?;
        Ok((self.decode(path, v)?, status == 201))
    }

    /// `GET /workflows`: every registration.
    pub async fn workflows(&self) -> Result<Vec<Registration>, Error> {
        #[derive(Deserialize)]
        struct Got {
            workflows: Vec<Registration>,
        }
        let got: Got = self.get("/workflows").await?;
        Ok(got.workflows)
    }

    /// `GET /workflows/{id}?version=`: the registration and the IR.
    pub async fn workflow(&self, id: &str, version: Option<&str>) -> Result<(Registration, Workflow), Error> {
        #[derive(Deserialize)]
        struct Got {
            registration: Registration,
            workflow: Workflow,
        }
        let mut path = format!("/workflows/{}", segment(id));
        if let Some(v) = version {
            path.push_str(&format!("?version={}", segment(v)));
        }
        let got: Got = self.get(&path).await?;
        Ok((got.registration, got.workflow))
    }

    /// `POST /executions`.
    pub async fn submit(
        &self,
        workflow_id: &str,
        version: Option<&str>,
        input: &Value,
        idempotency_key: Option<&str>,
    ) -> Result<Submitted, Error> {
        let mut body = json!({ "workflow_id": workflow_id, "input": input });
        if let Some(v) = version {
            body["version"] = v.into();
        }
        if let Some(k) = idempotency_key {
            body["idempotency_key"] = k.into();
        }
        self.post("/executions", &body).await
    }

    /// `GET /executions/{id}`.
    pub async fn execution(&self, id: ExecutionId) -> Result<Execution, Error> {
        self.get(&format!("/executions/{id}")).await
    }

    /// One page of `GET /executions`.
    pub async fn list(&self, q: &ListQuery) -> Result<Page, Error> {
        let mut params = Vec::new();
        if let Some(s) = q.status {
            params.push(format!("status={s}"));
        }
        if let Some(w) = &q.workflow {
            params.push(format!("workflow={}", segment(w)));
        }
        if let Some(l) = q.limit {
            params.push(format!("limit={l}"));
        }
        if let Some(c) = &q.cursor {
            params.push(format!("cursor={}", segment(c)));
        }
        let path =
            if params.is_empty() { "/executions".to_string() } else { format!("/executions?{}", params.join("&")) };
        self.get(&path).await
    }

    /// Every page of `GET /executions`, oldest first.
    pub async fn list_all(&self, status: Option<Status>) -> Result<Vec<Summary>, Error> {
        let mut out = Vec::new();
        let mut q = ListQuery { status, limit: Some(1000), ..ListQuery::default() };
        loop {
            let page = self.list(&q).await?;
            let got = page.executions.len();
            out.extend(page.executions);
            match page.next_cursor {
                // A cursor with an empty page would loop forever: stop there.
                Some(c) if got > 0 => q.cursor = Some(c),
                _ => return Ok(out),
            }
        }
    }

    /// `GET /executions/{id}/events?after=SEQ`.
    pub async fn events(&self, id: ExecutionId, after: u64) -> Result<Vec<Record>, Error> {
        #[derive(Deserialize)]
        struct Got {
            events: Vec<Record>,
        }
        let got: Got = self.get(&format!("/executions/{id}/events?after={after}")).await?;
        Ok(got.events)
    }

    /// Follow `GET /executions/{id}/events/stream` from after `after`.
    pub fn follow(&self, id: ExecutionId, after: u64) -> Follow {
        Follow {
            client: self.clone(),
            path: format!("/executions/{id}/events/stream"),
            last: after,
            response: None,
            buf: Vec::new(),
            pending: VecDeque::new(),
            failures: 0,
            done: false,
        }
    }

    /// `POST /executions/{id}/signal`.
    pub async fn signal(&self, id: ExecutionId, key: &str, payload: &Value) -> Result<Moved, Error> {
        self.post(&format!("/executions/{id}/signal"), &json!({ "key": key, "payload": payload })).await
    }

    /// `POST /executions/{id}/approve`.
    pub async fn approve(
        &self,
        id: ExecutionId,
        approved: bool,
        node: Option<&str>,
        by: Option<&str>,
        comment: Option<&str>,
    ) -> Result<Approved, Error> {
        let body = json!({ "approved": approved, "node": node, "by": by, "comment": comment });
        self.post(&format!("/executions/{id}/approve"), &body).await
    }

    /// `POST /resume`: the executions the server rehydrated, and those it
    /// skipped with why.
    pub async fn resume(&self) -> Result<(Vec<ExecutionId>, Vec<(ExecutionId, String)>), Error> {
        #[derive(Deserialize)]
        struct Skipped {
            id: ExecutionId,
            reason: String,
        }
        #[derive(Deserialize)]
        struct Got {
            resumed: Vec<ExecutionId>,
            skipped: Vec<Skipped>,
        }
        let got: Got = self.post("/resume", &json!({})).await?;
        Ok((got.resumed, got.skipped.into_iter().map(|s| (s.id, s.reason)).collect()))
    }

    /// `POST /executions/{id}/cancel`.
    pub async fn cancel(&self, id: ExecutionId, reason: &str) -> Result<Moved, Error> {
        self.post(&format!("/executions/{id}/cancel"), &json!({ "reason": reason })).await
    }

    /// `GET /metrics`: the Prometheus text exposition.
    pub async fn metrics(&self) -> Result<String, Error> {
        let (_, bytes) = self.fetch("GET", "/metrics", self.http.get(self.url("/metrics"))).await?;
        String::from_utf8(bytes.to_vec())
            .map_err(|e| Error::Protocol { url: self.url("/metrics"), reason: format!("not UTF-8: {e}") })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, Error> {
        let (_, v) = self.send("GET", path, self.http.get(self.url(path))).await?;
        self.decode(path, v)
    }

    async fn post<T: DeserializeOwned>(&self, path: &str, body: &Value) -> Result<T, Error> {
        let req = self.http.post(self.url(path)).header("content-type", "application/json").body(body.to_string());
        let (_, v) = self.send("POST", path, req).await?;
        self.decode(path, v)
    }

    fn decode<T: DeserializeOwned>(&self, path: &str, v: Value) -> Result<T, Error> {
        serde_json::from_value(v).map_err(|e| self.held(Error::Protocol { url: self.url(path), reason: e.to_string() }))
    }

    /// Send, and read a JSON answer; an error status becomes [`Error::Api`].
    async fn send(&self, method: &str, path: &str, req: reqwest::RequestBuilder) -> Result<(u16, Value), Error> {
        let (status, bytes) = self.fetch(method, path, req).await?;
        let v = serde_json::from_slice(&bytes)
            .map_err(|e| self.held(Error::Protocol { url: self.url(path), reason: format!("not JSON: {e}") }))?;
        Ok((status, v))
    }

    /// Send, and read the answer's bytes; an error status becomes [`Error::Api`].
    async fn fetch(
        &self,
        method: &str,
        path: &str,
        req: reqwest::RequestBuilder,
    ) -> Result<(u16, axum::body::Bytes), Error> {
        let url = self.url(path);
        let resp = self.authorized(req).send().await.map_err(|e| self.held(unreachable(&self.base, &e)))?;
        let status = resp.status().as_u16();
        let bytes =
            resp.bytes().await.map_err(|e| self.held(Error::Protocol { url: url.clone(), reason: e.to_string() }))?;
        if (200..300).contains(&status) {
            return Ok((status, bytes));
        }
        Err(self.held(api_error(method, url, status, serde_json::from_slice(&bytes).ok(), &bytes)))
    }

    fn authorized(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.key {
            Some(k) => req.bearer_auth(k),
            None => req,
        }
    }
}

/// An error answer: the server's `{"error": {...}}`, or what it sent.
fn api_error(method: &str, url: String, status: u16, body: Option<Value>, raw: &[u8]) -> Error {
    let e = body.as_ref().map(|v| &v["error"]).filter(|e| e.is_object());
    let text = |k: &str| e.and_then(|e| e[k].as_str()).map(str::to_string);
    let fallback = String::from_utf8_lossy(&raw[..raw.len().min(300)]).trim().to_string();
    Error::Api {
        method: method.into(),
        url,
        status,
        code: text("code").unwrap_or_else(|| format!("http_{status}")),
        message: text("message")
            .unwrap_or_else(|| if fallback.is_empty() { format!("HTTP {status}") } else { fallback.clone() }),
        details: e.map(|e| e["details"].clone()).unwrap_or(Value::Null),
    }
}

fn unreachable(base: &str, e: &reqwest::Error) -> Error {
    use std::error::Error as _;
    let mut reason = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        reason = format!("{reason}: {s}");
        source = s.source();
    }
    Error::Unreachable { url: base.to_string(), reason }
}

/// A path segment or query value, percent-encoded.
fn segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// What an event stream yields.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    /// A durable record, in order, each once.
    Record(Record),
    /// The execution ended (`event: end`); nothing follows.
    End(Status),
}

/// One execution's live history over Server-Sent Events. A broken
/// connection is reopened with `Last-Event-ID` (a few times, backing off),
/// so every record arrives exactly once and in order.
pub struct Follow {
    client: Client,
    path: String,
    /// The highest sequence number delivered.
    last: u64,
    response: Option<reqwest::Response>,
    buf: Vec<u8>,
    pending: VecDeque<Item>,
    failures: u32,
    done: bool,
}

impl Follow {
    /// The highest sequence number delivered so far.
    pub fn last_seq(&self) -> u64 {
        self.last
    }

    /// The next record (or the end); `None` once ended. Cancel-safe
    /// between chunks: dropping the future loses nothing already read.
    pub async fn next(&mut self) -> Result<Option<Item>, Error> {
        loop {
            if let Some(item) = self.pending.pop_front() {
                return Ok(Some(item));
            }
            if self.done {
                return Ok(None);
            }
            let Some(resp) = self.response.as_mut() else {
                self.connect().await?;
                continue;
            };
            match resp.chunk().await {
                Ok(Some(bytes)) => {
                    self.buf.extend_from_slice(&bytes);
                    self.parse()?;
                }
                // The server closed the stream (or it broke) before the end: reopen.
                Ok(None) | Err(_) => {
                    self.response = None;
                    self.buf.clear();
                }
            }
        }
    }

    async fn connect(&mut self) -> Result<(), Error> {
        if self.failures > 0 {
            tokio::time::sleep(STREAM_BACKOFF * 2u32.pow(self.failures - 1)).await;
        }
        self.failures += 1;
        let url = self.client.url(&self.path);
        let req = self
            .client
            .http
            .get(format!("{url}?after={}", self.last))
            .header("accept", "text/event-stream")
            .header("last-event-id", self.last.to_string());
        match self.client.authorized(req).send().await {
            Ok(resp) if resp.status().is_success() => {
                self.response = Some(resp);
                Ok(())
            }
            Ok(resp) => {
                let status = resp.status().as_u16();
                let bytes = resp.bytes().await.unwrap_or_default();
                let body = serde_json::from_slice(&bytes).ok();
                Err(self.client.held(api_error("GET", url, status, body, &bytes)))
            }
            Err(e) if self.failures > STREAM_RECONNECTS => Err(self.client.held(unreachable(&self.client.base, &e))),
            Err(_) => Ok(()),
        }
    }

    /// Take every complete SSE event out of the buffer.
    fn parse(&mut self) -> Result<(), Error> {
        while let Some((end, skip)) = block_end(&self.buf) {
            let block: Vec<u8> = self.buf.drain(..end + skip).take(end).collect();
            let text = String::from_utf8_lossy(&block);
            let (mut name, mut data) = (String::from("message"), Vec::new());
            for line in text.lines() {
                if line.starts_with(':') {
                    continue;
                }
                let (field, value) = line.split_once(':').unwrap_or((line, ""));
                let value = value.strip_prefix(' ').unwrap_or(value);
                match field {
                    "event" => name = value.to_string(),
                    "data" => data.push(value),
                    _ => {}
                }
            }
            if data.is_empty() {
                continue;
            }
            let data = data.join("\n");
            let url = self.client.url(&self.path);
            if name == "end" {
                let v: Value = serde_json::from_str(&data)
                    .map_err(|e| Error::Protocol { url: url.clone(), reason: format!("end event: {e}") })?;
                let status = serde_json::from_value(v["status"].clone())
                    .map_err(|e| Error::Protocol { url, reason: format!("end event status: {e}") })?;
                self.pending.push_back(Item::End(status));
                self.done = true;
                self.response = None;
                return Ok(());
            }
            let record: Record = serde_json::from_str(&data)
                .map_err(|e| Error::Protocol { url, reason: format!("event `{name}` is not a record: {e}") })?;
            if record.seq > self.last {
                self.last = record.seq;
                self.failures = 0;
                self.pending.push_back(Item::Record(record));
            }
        }
        Ok(())
    }
}

/// Where the first SSE event block in `buf` ends, and the length of the
/// blank line after it.
fn block_end(buf: &[u8]) -> Option<(usize, usize)> {
    let mut i = 0;
    while i + 1 < buf.len() {
        if buf[i] == b'\n' && buf[i + 1] == b'\n' {
            return Some((i, 2));
        }
        if buf[i..].starts_with(b"\r\n\r\n") {
            return Some((i, 4));
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_blocks_split_on_blank_lines_of_either_kind() {
        assert_eq!(block_end(b"id: 1\ndata: x\n\nrest"), Some((13, 2)));
        assert_eq!(block_end(b"id: 1\r\ndata: x\r\n\r\n"), Some((14, 4)));
        assert_eq!(block_end(b"id: 1\ndata: x\n"), None);
    }

    #[test]
    fn segments_are_percent_encoded() {
        assert_eq!(segment("a b/c"), "a%20b%2Fc");
        assert_eq!(segment("wf-1.0_x~"), "wf-1.0_x~");
    }

    #[test]
    fn an_error_answer_keeps_the_servers_code_and_message() {
        let body = json!({"error": {"code": "unknown_execution", "message": "no execution exec_X", "details": null}});
        let e = api_error("GET", "http://h/executions/x".into(), 404, Some(body), b"");
        assert_eq!(e.code(), Some("unknown_execution"));
        let text = e.to_string();
        assert!(text.contains("no execution exec_X") && text.contains("http://h/executions/x"), "{text}");
        let e = api_error("GET", "http://h/".into(), 502, None, b"bad gateway");
        assert_eq!(e.code(), Some("http_502"));
        assert!(e.to_string().contains("bad gateway"));
    }
}
