//! The A2A client that `type: agent` nodes call remote agents with:
//! agent-card discovery (cached per URL, fetched again after a failure),
//! the choice of the card's JSON-RPC interface and of the protocol version
//! it declares (v1.0 method names with the `A2A-Version: 1.0` header, or
//! the v0.3 names and shapes for a 0.3 card), `SendMessage` and `GetTask`.
//! Every answer is read into a [`TaskView`], whatever the version. The
//! wire types are the A2A project's own (`::a2a`, the `a2a-lf` crate).
//!
//! It knows nothing of executions or the journal: [`super`] (the node)
//! decides what to send and when, and classifies nothing but what it gets.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use crate::journal::ErrorClass;
use crate::nodes::{classify_send, retry_after, status_class};

/// The HTTP client calls go through, and the most a response may hold.
#[derive(Clone, Copy)]
pub struct Http<'a> {
    pub client: &'a reqwest::Client,
    pub limits: &'a crate::ir::Limits,
}

impl Http<'_> {
    /// A response body, read up to `max_response_bytes` and no further.
    async fn read(&self, resp: reqwest::Response, url: &str, what: &str) -> Result<Vec<u8>, CallError> {
        crate::nodes::read_body(resp, self.limits.max_response_bytes).await.map_err(|e| {
            let e = e.into_node_error(url, what, self.limits);
            CallError::new(e.class, e.message)
        })
    }
}

/// Where the card of an agent whose URL names no card is looked up.
pub const WELL_KNOWN_CARD: &str = "/.well-known/agent-card.json";

/// A failed call, classified for the retry policy.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{class}: {message}")]
pub struct CallError {
    pub class: ErrorClass,
    pub message: String,
    pub retry_after_ms: Option<u64>,
}

impl CallError {
    fn new(class: ErrorClass, message: impl Into<String>) -> Self {
        CallError { class, message: message.into(), retry_after_ms: None }
    }
}

/// The protocol version an interface declares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// A2A 1.0: `SendMessage`, `GetTask`, `TASK_STATE_*`, header `A2A-Version: 1.0`.
    V1,
    /// A2A 0.3: `message/send`, `tasks/get`, `kind` tags, lower-case states.
    V03,
}

/// An agent as its card describes it: where to send JSON-RPC, and how.
#[derive(Debug, Clone, PartialEq)]
pub struct Agent {
    /// The URL the card was fetched from.
    pub card_url: String,
    pub name: String,
    /// What the card says the agent does (its `description`, and its
    /// skills' names and descriptions), for a model offered it as a tool.
    pub description: String,
    /// The JSON-RPC endpoint.
    pub endpoint: String,
    pub protocol: Protocol,
}

/// The resolved cards, by the URL a node names. A card is fetched once and
/// kept; a call that fails forgets it, so the next attempt fetches it again
/// (the agent may have moved or changed version).
#[derive(Debug, Default)]
pub struct AgentCards {
    cards: Mutex<HashMap<String, Arc<Agent>>>,
}

impl AgentCards {
    /// The agent at `url` (a card URL, or a base URL under which
    /// [`WELL_KNOWN_CARD`] is looked up), from the cache or fetched.
    pub async fn resolve(
        &self,
        http: &Http<'_>,
        url: &str,
        headers: &[(String, String)],
    ) -> Result<Arc<Agent>, CallError> {
        if let Some(a) = self.cards.lock().expect("card cache lock").get(url) {
            return Ok(a.clone());
        }
        let agent = Arc::new(fetch_card(http, url, headers).await?);
        self.cards.lock().expect("card cache lock").insert(url.to_string(), agent.clone());
        Ok(agent)
    }

    /// Fetch the card again on next use.
    pub fn forget(&self, url: &str) {
        self.cards.lock().expect("card cache lock").remove(url);
    }
}

/// The URL of the card an agent URL names.
pub fn card_url(url: &str) -> String {
    if url.ends_with(".json") { url.to_string() } else { format!("{}{WELL_KNOWN_CARD}", url.trim_end_matches('/')) }
}

async fn fetch_card(http: &Http<'_>, url: &str, headers: &[(String, String)]) -> Result<Agent, CallError> {
    let card_url = card_url(url);
    let mut req = http.client.get(&card_url).header("accept", "application/json");
    for (k, v) in headers {
        req = req.header(k.as_str(), v.as_str());
    }
    let resp = req.send().await.map_err(|e| from_send(&card_url, e))?;
    let status = resp.status();
    if !status.is_success() {
        let mut e = CallError::new(status_class(status), format!("agent card {card_url} returned {status}"));
        e.retry_after_ms = retry_after(&resp);
        return Err(e);
    }
    let bytes = http.read(resp, &card_url, &format!("the agent card {card_url}")).await?;
    let card: Value = serde_json::from_slice(&bytes)
        .map_err(|e| CallError::new(ErrorClass::InvalidOutput, format!("agent card {card_url} is not JSON: {e}")))?;
    read_card(&card_url, &card)
}

/// Read a card of either version and pick its JSON-RPC interface.
pub fn read_card(card_url: &str, card: &Value) -> Result<Agent, CallError> {
    let bad = |why: String| CallError::new(ErrorClass::InvalidOutput, format!("agent card {card_url}: {why}"));
    let name = card.get("name").and_then(Value::as_str).unwrap_or_default().to_string();
    let description = describe(card);
    let protocol_of = |v: &str| if v.starts_with("0.") { Protocol::V03 } else { Protocol::V1 };
    if card.get("supportedInterfaces").is_some() {
        let card: ::a2a::AgentCard =
            serde_json::from_value(card.clone()).map_err(|e| bad(format!("not an A2A 1.0 card: {e}")))?;
        let i = card
            .supported_interfaces
            .iter()
            .find(|i| i.protocol_binding.eq_ignore_ascii_case(::a2a::TRANSPORT_PROTOCOL_JSONRPC))
            .ok_or_else(|| {
                let found: Vec<_> = card.supported_interfaces.iter().map(|i| i.protocol_binding.as_str()).collect();
                bad(format!("no JSONRPC interface (it offers: {})", found.join(", ")))
            })?;
        return Ok(Agent {
            card_url: card_url.to_string(),
            name,
            description,
            endpoint: i.wire_url(),
            protocol: protocol_of(&i.protocol_version),
        });
    }
    // A 0.3 card: `url` with `preferredTransport`, and `additionalInterfaces`.
    let version = card.get("protocolVersion").and_then(Value::as_str).unwrap_or("0.3.0");
    let preferred = card.get("preferredTransport").and_then(Value::as_str).unwrap_or("JSONRPC");
    let mut endpoint = card.get("url").and_then(Value::as_str).filter(|_| preferred.eq_ignore_ascii_case("JSONRPC"));
    if endpoint.is_none() {
        endpoint = card.get("additionalInterfaces").and_then(Value::as_array).and_then(|list| {
            list.iter()
                .find(|i| i.get("transport").and_then(Value::as_str).is_some_and(|t| t.eq_ignore_ascii_case("JSONRPC")))
                .and_then(|i| i.get("url")?.as_str())
        });
    }
    let endpoint = endpoint.ok_or_else(|| bad("neither `supportedInterfaces` nor a JSONRPC `url`".into()))?;
    Ok(Agent {
        card_url: card_url.to_string(),
        name,
        description,
        endpoint: endpoint.to_string(),
        protocol: protocol_of(version),
    })
}

/// A card's `description` and its skills (`name: description`), one line
/// each, as the card writes them (the same fields in either version).
fn describe(card: &Value) -> String {
    let text = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or_default().trim().to_string();
    let mut lines = vec![text(card, "description")];
    for skill in card.get("skills").and_then(Value::as_array).into_iter().flatten() {
        let (name, about) = (text(skill, "name"), text(skill, "description"));
        lines.push(match (name.is_empty(), about.is_empty()) {
            (false, false) => format!("Skill {name}: {about}"),
            (false, true) => format!("Skill {name}."),
            (true, _) => about,
        });
    }
    lines.retain(|l| !l.is_empty());
    lines.join("\n")
}

/// A remote task (or a direct message reply) as the node sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskView {
    /// `None` when the agent answered with a message and no task.
    pub id: Option<String>,
    pub context_id: Option<String>,
    pub state: ::a2a::TaskState,
    /// The parts of the task's artifacts, in order, as JSON values (a data
    /// part's value, a text part's string).
    pub artifacts: Vec<Value>,
    /// The text of the status message (the remote's question, or why it failed).
    pub status_text: Option<String>,
    /// The status message's parts, as JSON values.
    pub status_parts: Vec<Value>,
    /// What was received, as received.
    pub raw: Value,
}

impl TaskView {
    /// The state's name as written in the journal and in messages.
    pub fn state_name(&self) -> &'static str {
        state_name(&self.state)
    }

    /// What the node records of the task in its exchange.
    pub fn to_json(&self) -> Value {
        json!({ "id": self.id, "contextId": self.context_id, "state": self.state_name(), "raw": self.raw })
    }
}

pub fn state_name(s: &::a2a::TaskState) -> &'static str {
    use ::a2a::TaskState as S;
    match s {
        S::Unspecified => "unspecified",
        S::Submitted => "submitted",
        S::Working => "working",
        S::Completed => "completed",
        S::Failed => "failed",
        S::Canceled => "canceled",
        S::InputRequired => "input-required",
        S::Rejected => "rejected",
        S::AuthRequired => "auth-required",
    }
}

fn parse_state(s: &str) -> ::a2a::TaskState {
    use ::a2a::TaskState as S;
    let s = s.trim_start_matches("TASK_STATE_").to_ascii_lowercase().replace('_', "-");
    match s.as_str() {
        "submitted" => S::Submitted,
        "working" => S::Working,
        "completed" => S::Completed,
        "failed" => S::Failed,
        "canceled" | "cancelled" => S::Canceled,
        "input-required" => S::InputRequired,
        "rejected" => S::Rejected,
        "auth-required" => S::AuthRequired,
        _ => S::Unspecified,
    }
}

/// The message a node sends: a text part for a string, a data part otherwise.
pub fn message(protocol: Protocol, message_id: &str, content: &Value, task: Option<(&str, &str)>) -> Value {
    let mut m = match (protocol, content) {
        (Protocol::V1, Value::String(s)) => {
            serde_json::to_value(::a2a::Message::new(::a2a::Role::User, vec![::a2a::Part::text(s.clone())]))
        }
        (Protocol::V1, v) => {
            serde_json::to_value(::a2a::Message::new(::a2a::Role::User, vec![::a2a::Part::data(v.clone())]))
        }
        (Protocol::V03, Value::String(s)) => {
            Ok(json!({"kind": "message", "role": "user", "parts": [{"kind": "text", "text": s}]}))
        }
        (Protocol::V03, v) => Ok(json!({"kind": "message", "role": "user", "parts": [{"kind": "data", "data": v}]})),
    }
    .expect("a message always serializes");
    m["messageId"] = json!(message_id);
    if let Some((task_id, context_id)) = task {
        m["taskId"] = json!(task_id);
        m["contextId"] = json!(context_id);
    }
    m
}

/// `SendMessage` (`message/send`), not waiting for the task to finish.
pub async fn send_message(
    http: &Http<'_>,
    agent: &Agent,
    headers: &[(String, String)],
    message: Value,
) -> Result<TaskView, CallError> {
    let (method, params) = match agent.protocol {
        Protocol::V1 => {
            (::a2a::methods::SEND_MESSAGE, json!({"message": message, "configuration": {"returnImmediately": true}}))
        }
        Protocol::V03 => ("message/send", json!({"message": message, "configuration": {"blocking": false}})),
    };
    let result = call(http, agent, headers, method, params).await?;
    // 1.0 wraps the result (`{"task": ..}` or `{"message": ..}`); 0.3 tags it with `kind`.
    let (kind, body) = match (result.get("task"), result.get("message"), result.get("kind").and_then(Value::as_str)) {
        (Some(t), _, _) => ("task", t.clone()),
        (None, Some(m), _) => ("message", m.clone()),
        (None, None, Some("message")) => ("message", result.clone()),
        _ => ("task", result.clone()),
    };
    if kind == "message" {
        let parts = parts_of(body.get("parts"));
        return Ok(TaskView {
            id: None,
            context_id: body.get("contextId").and_then(Value::as_str).map(str::to_string),
            state: ::a2a::TaskState::Completed,
            artifacts: parts,
            status_text: None,
            status_parts: Vec::new(),
            raw: json!({ "message": body }),
        });
    }
    read_task(&agent.endpoint, body)
}

/// `GetTask` (`tasks/get`).
pub async fn get_task(
    http: &Http<'_>,
    agent: &Agent,
    headers: &[(String, String)],
    task_id: &str,
) -> Result<TaskView, CallError> {
    let method = match agent.protocol {
        Protocol::V1 => ::a2a::methods::GET_TASK,
        Protocol::V03 => "tasks/get",
    };
    let result = call(http, agent, headers, method, json!({ "id": task_id, "historyLength": 0 })).await?;
    read_task(&agent.endpoint, result)
}

fn read_task(endpoint: &str, task: Value) -> Result<TaskView, CallError> {
    let id = task.get("id").and_then(Value::as_str).map(str::to_string);
    let state = task.pointer("/status/state").and_then(Value::as_str).map(parse_state);
    let (Some(id), Some(state)) = (id, state) else {
        return Err(CallError::new(ErrorClass::InvalidOutput, format!("{endpoint} sent a task without id or state")));
    };
    let artifacts = task
        .get("artifacts")
        .and_then(Value::as_array)
        .map(|list| list.iter().flat_map(|a| parts_of(a.get("parts"))).collect())
        .unwrap_or_default();
    let status_parts = parts_of(task.pointer("/status/message/parts"));
    let texts: Vec<&str> = status_parts.iter().filter_map(Value::as_str).collect();
    Ok(TaskView {
        id: Some(id),
        context_id: task.get("contextId").and_then(Value::as_str).map(str::to_string),
        state,
        artifacts,
        status_text: (!texts.is_empty()).then(|| texts.join("\n")),
        status_parts,
        raw: task,
    })
}

/// The values of a list of parts: a data part's JSON (whole floats, as the
/// Python SDK sends every number, back to integers), a text part's string,
/// a file part's URL or (base64) bytes as written.
fn parts_of(parts: Option<&Value>) -> Vec<Value> {
    let Some(parts) = parts.and_then(Value::as_array) else { return Vec::new() };
    parts
        .iter()
        .filter_map(|p| {
            if let Some(d) = p.get("data") {
                Some(integral(d.clone()))
            } else if let Some(t) = p.get("text") {
                Some(t.clone())
            } else if let Some(f) = p.get("file") {
                Some(f.clone())
            } else {
                p.get("url").or_else(|| p.get("raw")).cloned()
            }
        })
        .collect()
}

fn integral(v: Value) -> Value {
    match v {
        Value::Number(n) if n.is_f64() => match n.as_f64() {
            Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => json!(f as i64),
            _ => Value::Number(n),
        },
        Value::Array(items) => Value::Array(items.into_iter().map(integral).collect()),
        Value::Object(m) => Value::Object(m.into_iter().map(|(k, v)| (k, integral(v))).collect()),
        other => other,
    }
}

fn from_send(url: &str, e: reqwest::Error) -> CallError {
    let e = classify_send(url, e);
    CallError::new(e.class, e.message)
}

/// One JSON-RPC 2.0 call; the `result`, or the error classified.
async fn call(
    http: &Http<'_>,
    agent: &Agent,
    headers: &[(String, String)],
    method: &str,
    params: Value,
) -> Result<Value, CallError> {
    let id = ::a2a::JsonRpcId::String(::a2a::new_message_id());
    let body = ::a2a::JsonRpcRequest::new(id, method, Some(params));
    let mut req = http.client.post(&agent.endpoint).json(&body);
    if let Some(tp) = crate::nodes::trace::traceparent() {
        req = req.header("traceparent", tp);
    }
    if agent.protocol == Protocol::V1 {
        req = req.header(::a2a::SVC_PARAM_VERSION, ::a2a::VERSION);
    }
    for (k, v) in headers {
        req = req.header(k.as_str(), v.as_str());
    }
    let url = &agent.endpoint;
    let resp = req.send().await.map_err(|e| from_send(url, e))?;
    let status = resp.status();
    let retry_after_ms = retry_after(&resp);
    let bytes = http.read(resp, url, &format!("the answer to {method} from {url}")).await?;
    if !status.is_success() {
        let snippet = String::from_utf8_lossy(&bytes[..bytes.len().min(200)]).into_owned();
        let mut e = CallError::new(status_class(status), format!("{method} to {url} returned {status}: {snippet}"));
        e.retry_after_ms = retry_after_ms;
        return Err(e);
    }
    let resp: ::a2a::JsonRpcResponse = serde_json::from_slice(&bytes).map_err(|e| {
        CallError::new(ErrorClass::InvalidOutput, format!("{method} to {url}: not a JSON-RPC response: {e}"))
    })?;
    if let Some(err) = resp.error {
        // -32603 (internal error) is the server's fault and worth a retry;
        // the rest (unknown task, bad params, unsupported version) are ours.
        let class = if err.code == -32603 { ErrorClass::ServerError } else { ErrorClass::ClientError };
        return Err(CallError::new(class, format!("{method} to {url} failed ({}): {}", err.code, err.message)));
    }
    resp.result
        .ok_or_else(|| CallError::new(ErrorClass::InvalidOutput, format!("{method} to {url}: no result and no error")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_both_card_versions() {
        let v1 = json!({"name": "a", "version": "1", "capabilities": {},
            "supportedInterfaces": [{"url": "http://h/rpc", "protocolBinding": "JSONRPC", "protocolVersion": "1.0"}]});
        let a = read_card("http://h/c.json", &v1).unwrap();
        assert_eq!((a.endpoint.as_str(), a.protocol), ("http://h/rpc", Protocol::V1));
        let v03 = json!({"name": "b", "url": "http://h/", "protocolVersion": "0.3.0", "preferredTransport": "JSONRPC"});
        let b = read_card("http://h/c.json", &v03).unwrap();
        assert_eq!((b.endpoint.as_str(), b.protocol), ("http://h/", Protocol::V03));
        let grpc = json!({"name": "c", "version": "1", "capabilities": {},
            "supportedInterfaces": [{"url": "h:1", "protocolBinding": "GRPC", "protocolVersion": "1.0"}]});
        assert!(read_card("u", &grpc).unwrap_err().message.contains("no JSONRPC interface"));
        assert_eq!(card_url("http://h:1/"), "http://h:1/.well-known/agent-card.json");
        assert_eq!(card_url("http://h:1/a2a/x/agent-card.json"), "http://h:1/a2a/x/agent-card.json");
    }

    #[test]
    fn reads_tasks_of_either_version_and_whole_floats_as_integers() {
        let t = json!({"id": "t", "contextId": "c", "status": {"state": "TASK_STATE_COMPLETED"},
            "artifacts": [{"artifactId": "a", "parts": [{"data": {"n": 2.0, "x": 1.5}}, {"text": "hi"}]}]});
        let v = read_task("e", t).unwrap();
        assert_eq!(v.state, ::a2a::TaskState::Completed);
        assert_eq!(v.artifacts, vec![json!({"n": 2, "x": 1.5}), json!("hi")]);
        let t = json!({"kind": "task", "id": "t", "contextId": "c", "status": {"state": "input-required",
            "message": {"kind": "message", "role": "agent", "parts": [{"kind": "text", "text": "name?"}]}}});
        let v = read_task("e", t).unwrap();
        assert_eq!((v.state_name(), v.status_text.as_deref()), ("input-required", Some("name?")));
        assert!(read_task("e", json!({"id": "t"})).is_err());
    }

    #[test]
    fn messages_carry_the_id_and_the_task() {
        let m = message(Protocol::V1, "k/1", &json!("hello"), Some(("t", "c")));
        assert_eq!(m["messageId"], "k/1");
        assert_eq!((m["taskId"].as_str(), m["contextId"].as_str()), (Some("t"), Some("c")));
        assert_eq!(m["role"], "ROLE_USER");
        assert_eq!(m["parts"][0]["text"], "hello");
        let m = message(Protocol::V03, "k", &json!({"a": 1}), None);
        assert_eq!((m["role"].as_str(), m["parts"][0]["kind"].as_str()), (Some("user"), Some("data")));
    }
}
