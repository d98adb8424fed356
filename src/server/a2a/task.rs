//! An A2A task IS a durable execution: task id = execution id; the
//! `contextId` lives in the execution's idempotency key
//! (`["a2a", workflow_id, context_id, message_id]` as JSON), so a retried
//! send of one message starts one execution and the context survives a
//! restart. A context is a session ([`crate::runtime::Runtime::submit_in_session`]):
//! a new task in it waits for the context's previous task to end, and
//! sees the conversation so far and the workflow's `session_state`.
//! Everything here reads the journal; nothing is kept in memory.
//!
//! - A message becomes the input: every data part that is an object is
//!   merged into it; the text parts (joined by newlines) go to the agent's
//!   text key ([`Agent::text_key`]). Whole-number floats are read as
//!   integers unless the state schema says `float` (and in an event's
//!   payload): protobuf-based clients send every number as a float.
//! - States: running → working; parked on an event or an approval →
//!   input-required (its status message names what it waits for, as text
//!   and as a data part `{"waiting": [...]}`); completed / failed /
//!   cancelled → completed / failed / canceled. A timer is still working.
//! - The reply: on completion, one artifact `result` with the final state as
//!   a data part, or `a2a.output_key`'s value as text.
//! - A follow-up message on a task answers what it waits for: an event gets
//!   the data part (or the text) as its payload; an approval reads a data
//!   part `{"approved": bool, "comment"?, "by"?}` or a text `approve`/`yes`
//!   or `reject`/`no`; a tool call that waits for a decision (listed as
//!   `{"kind": "tool_call", "call": "research.2", ...}`) reads a data part
//!   `{"call": "research.2", "approved": bool, "comment"?, "by"?}`, one
//!   call per message.

use std::collections::HashMap;

use ::a2a::{Artifact, Message, Part, PartContent, Role, Task, TaskState, TaskStatus};
use serde_json::{Map, Value, json};

use super::agents::Agent;
use super::rpc::RpcError;
use crate::id::ExecutionId;
use crate::ir::{StateSchema, Type};
use crate::journal::{ExecutionMeta, Status};
use crate::runtime::{self, Decision, Runtime, WaitKind, Waiting};

/// The idempotency key of the execution a message starts.
pub fn task_key(workflow_id: &str, context_id: &str, message_id: &str) -> String {
    serde_json::to_string(&["a2a", workflow_id, context_id, message_id]).expect("strings serialize")
}

/// The A2A parts of a key made by [`task_key`]: (context, message).
fn key_parts(key: &str) -> Option<(String, String)> {
    let parts: Vec<String> = serde_json::from_str(key).ok()?;
    match parts.as_slice() {
        [tag, _, context, message] if tag == "a2a" => Some((context.clone(), message.clone())),
        _ => None,
    }
}

/// Whether an execution was started over A2A.
pub fn started_over_a2a(meta: &ExecutionMeta) -> bool {
    meta.key.as_deref().and_then(key_parts).is_some()
}

/// The task's context: from its key, else (started another way) its id.
pub fn context_of(meta: &ExecutionMeta) -> String {
    meta.key.as_deref().and_then(key_parts).map(|(c, _)| c).unwrap_or_else(|| meta.id.to_string())
}

/// The context of a new task: the message's, else one derived from its
/// message id (so a retry without a context finds the same task).
pub fn new_context(message: &Message) -> String {
    message.context_id.clone().unwrap_or_else(|| format!("ctx-{}", message.message_id))
}

/// The input state a message carries for `agent`.
pub fn input_of(agent: &Agent, message: &Message) -> Result<Value, RpcError> {
    let mut input = Map::new();
    let mut texts = Vec::new();
    for (i, part) in message.parts.iter().enumerate() {
        match &part.content {
            PartContent::Data(Value::Object(m)) => input.extend(m.clone()),
            PartContent::Data(other) => {
                return Err(RpcError::invalid_params(format!(
                    "message part {i}: a data part must be an object of the input of workflow `{}`, found {}",
                    agent.workflow.id,
                    crate::ir::json_kind(other)
                )));
            }
            PartContent::Text(t) => texts.push(t.clone()),
            PartContent::Raw(_) | PartContent::Url(_) => {
                return Err(RpcError::invalid_params(format!(
                    "message part {i}: file parts are not accepted by workflow `{}`; send text or data",
                    agent.workflow.id
                )));
            }
        }
    }
    if !texts.is_empty() {
        let key = agent.text_key().map_err(RpcError::invalid_params)?;
        input.insert(key, Value::String(texts.join("\n")));
    }
    integral_numbers(&agent.workflow.state_schema, &mut input);
    Ok(Value::Object(input))
}

/// `3.0` → `3` except where the schema says `float` (clients built on
/// protobuf send every number as a float, so a whole number is read as an
/// integer unless a float is declared).
fn integral_numbers(schema: &StateSchema, input: &mut Map<String, Value>) {
    for (key, value) in input.iter_mut() {
        let float = matches!(schema.fields.get(key), Some(Type::Float))
            || matches!(schema.fields.get(key), Some(Type::Optional(inner)) if **inner == Type::Float);
        if !float {
            integral(value);
        }
    }
}

/// Every whole-number float in `value` as an integer.
fn integral(value: &mut Value) {
    match value {
        Value::Number(n) if n.is_f64() => {
            if let Some(f) = n.as_f64()
                && f.fract() == 0.0
                && f.abs() < 9.0e15
            {
                *value = json!(f as i64);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(integral),
        Value::Object(m) => m.values_mut().for_each(integral),
        _ => {}
    }
}

/// What an execution (or one of its unfinished children) waits for from
/// the outside (the runtime's one answer, timers left out).
pub fn waits_of(rt: &Runtime, id: ExecutionId) -> Result<Vec<Waiting>, runtime::Error> {
    Ok(rt.waiting_in_family(id)?.into_iter().filter(|w| w.kind != WaitKind::Timer).collect())
}

/// The task an execution is, now.
pub fn snapshot(rt: &Runtime, id: ExecutionId) -> Result<Task, RpcError> {
    let meta = rt.status(id).map_err(|e| RpcError::from_runtime(e, id))?;
    let workflow = rt.workflow_of(id).map_err(|e| RpcError::from_runtime(e, id))?;
    let output_key = workflow.a2a.as_ref().and_then(|a| a.output_key.clone());
    let context_id = context_of(&meta);
    let agent_message = |text: String, data: Option<Value>| {
        let mut parts = vec![Part::text(text)];
        if let Some(d) = data {
            parts.push(Part::data(d));
        }
        Message {
            message_id: format!("{id}/status/{}", meta.updated_ms),
            context_id: Some(context_id.clone()),
            task_id: Some(id.to_string()),
            role: Role::Agent,
            parts,
            metadata: None,
            extensions: None,
            reference_task_ids: None,
        }
    };
    let mut artifacts = None;
    let (state, message) = match meta.status {
        Status::Running => (TaskState::Working, None),
        Status::Waiting => {
            let waits = waits_of(rt, id).map_err(|e| RpcError::from_runtime(e, id))?;
            if waits.is_empty() {
                (TaskState::Working, None)
            } else {
                (TaskState::InputRequired, Some(agent_message(describe_waits(&waits), Some(waits_json(&waits)))))
            }
        }
        Status::Completed => {
            let outcome = rt.outcome(id).map_err(|e| RpcError::from_runtime(e, id))?;
            let part = match output_key.as_deref().and_then(|k| outcome.state.get(k)) {
                Some(Value::String(s)) => Part::text(s.clone()),
                Some(other) => Part::text(other.to_string()),
                None => Part::data(outcome.state.clone()),
            };
            artifacts = Some(vec![Artifact {
                artifact_id: format!("{id}/result"),
                name: Some("result".into()),
                description: Some(format!("the final state of workflow `{}`", meta.workflow_id)),
                parts: vec![part],
                metadata: None,
                extensions: None,
            }]);
            (TaskState::Completed, None)
        }
        Status::Failed => {
            let outcome = rt.outcome(id).map_err(|e| RpcError::from_runtime(e, id))?;
            let why = outcome.error.unwrap_or_else(|| "the execution failed".into());
            (TaskState::Failed, Some(agent_message(why, None)))
        }
        Status::Cancelled => {
            let outcome = rt.outcome(id).map_err(|e| RpcError::from_runtime(e, id))?;
            (TaskState::Canceled, outcome.error.map(|why| agent_message(why, None)))
        }
    };
    let metadata = HashMap::from([
        ("workflow_id".to_string(), json!(meta.workflow_id)),
        ("workflow_version".to_string(), json!(meta.workflow_version)),
    ]);
    Ok(Task {
        id: id.to_string(),
        context_id,
        status: TaskStatus { state, message, timestamp: None },
        artifacts,
        history: None,
        metadata: Some(metadata),
    })
}

/// A task as JSON, its status stamped with the execution's last change.
pub fn to_json(rt: &Runtime, task: &Task) -> Value {
    let mut v = serde_json::to_value(task).expect("a task serializes");
    if let Ok(id) = task.id.parse::<ExecutionId>()
        && let Ok(meta) = rt.status(id)
        && let Ok(ts) = jiff::Timestamp::from_millisecond(meta.updated_ms as i64)
    {
        v["status"]["timestamp"] = json!(ts.to_string());
    }
    v
}

fn describe_waits(waits: &[Waiting]) -> String {
    let each: Vec<String> = waits
        .iter()
        .map(|w| match w.kind {
            WaitKind::Approval if w.call.is_some() => format!(
                "tool call `{}`: {} (reply with a data part {{\"call\": \"{}\", \"approved\": true|false, \"comment\": ...}})",
                w.call.as_deref().unwrap_or_default(),
                w.prompt.as_deref().unwrap_or("decide"),
                w.call.as_deref().unwrap_or_default()
            ),
            WaitKind::Approval => format!(
                "approval `{}`: {} (reply with a data part {{\"approved\": true|false, \"comment\": ...}} or the text approve/reject)",
                w.node,
                w.prompt.as_deref().unwrap_or("decide")
            ),
            _ => format!(
                "event `{}` at node `{}` (reply with its payload as a data part, or text)",
                w.event.as_deref().unwrap_or(""),
                w.node
            ),
        })
        .collect();
    format!("waiting for {}", each.join("; "))
}

fn waits_json(waits: &[Waiting]) -> Value {
    let list: Vec<Value> = waits
        .iter()
        .map(|w| match w.kind {
            WaitKind::Approval if w.call.is_some() => {
                json!({"kind": "tool_call", "node": w.node, "call": w.call, "prompt": w.prompt})
            }
            WaitKind::Approval => json!({"kind": "approval", "node": w.node, "prompt": w.prompt}),
            _ => json!({"kind": "event", "node": w.node, "event": w.event}),
        })
        .collect();
    json!({ "waiting": list })
}

/// Deliver a follow-up message to the task it names: the signal its wait
/// expects, or the decision of its approval. Refused (nothing journaled)
/// when the task is finished or not waiting, or the reply does not fit.
pub async fn follow_up(rt: &Runtime, id: ExecutionId, message: &Message) -> Result<(), RpcError> {
    let meta = rt.status(id).map_err(|e| RpcError::from_runtime(e, id))?;
    if meta.status.is_terminal() {
        return Err(RpcError::unsupported(format!(
            "task {id} is {}: a finished task takes no more messages (start a new task without taskId)",
            status_word(meta.status)
        )));
    }
    let waits = waits_of(rt, id).map_err(|e| RpcError::from_runtime(e, id))?;
    let data = message.parts.iter().find_map(|p| match &p.content {
        PartContent::Data(d) => Some(d.clone()),
        _ => None,
    });
    // A data part naming a tool call decides that call.
    if let Some(call) = data.as_ref().and_then(|d| d.get("call")).and_then(Value::as_str) {
        let (approved, comment, by) = decision(data.as_ref(), None)
            .map_err(|m| RpcError::invalid_params(format!("task {id}, tool call `{call}`: {m}")))?;
        let owner = waits.iter().find(|w| w.call.as_deref() == Some(call)).map_or(id, |w| w.id);
        let decision = Decision { node: None, call: Some(call.to_string()), approved, by, comment };
        rt.approve(owner, decision).await.map_err(|e| RpcError::from_runtime(e, id))?;
        return Ok(());
    }
    let wanted = message.metadata.as_ref().and_then(|m| m.get("node")).and_then(Value::as_str);
    let calls: Vec<&str> = waits.iter().filter_map(|w| w.call.as_deref()).collect();
    if !calls.is_empty() && waits.iter().filter(|w| wanted.is_none_or(|n| n == w.node)).all(|w| w.call.is_some()) {
        return Err(RpcError::invalid_params(format!(
            "task {id} waits for decisions on tool calls, each decided by its id: {}; reply with a data part \
             {{\"call\": \"<id>\", \"approved\": true|false, \"comment\": ...}}",
            calls.join(", ")
        )));
    }
    let Some(wait) = waits.iter().find(|w| w.call.is_none() && wanted.is_none_or(|n| n == w.node)) else {
        let why = match wanted {
            Some(n) => format!("task {id} does not wait at node `{n}`"),
            None => format!("task {id} is working, not waiting for input: send the message once it is input-required"),
        };
        return Err(RpcError::unsupported(why));
    };
    let text: Vec<&str> = message.parts.iter().filter_map(Part::as_text).collect();
    let text = (!text.is_empty()).then(|| text.join("\n"));
    match wait.kind {
        WaitKind::Approval => {
            let (approved, comment, by) = decision(data.as_ref(), text.as_deref())
                .map_err(|m| RpcError::invalid_params(format!("task {id} waits for approval `{}`: {m}", wait.node)))?;
            let decision = Decision { node: Some(wait.node.clone()), call: None, approved, by, comment };
            rt.approve(wait.id, decision).await.map_err(|e| RpcError::from_runtime(e, id))?;
        }
        _ => {
            let key = wait.event.clone().unwrap_or_default();
            let mut payload = data.or(text.map(Value::String)).unwrap_or(Value::Null);
            integral(&mut payload);
            rt.signal(wait.id, &key, payload).await.map_err(|e| RpcError::from_runtime(e, id))?;
        }
    }
    Ok(())
}

/// An approval's answer: `{approved, comment?, by?}` or a yes/no word.
fn decision(data: Option<&Value>, text: Option<&str>) -> Result<(bool, Option<String>, String), String> {
    if let Some(d) = data {
        let approved = d
            .get("approved")
            .and_then(Value::as_bool)
            .ok_or_else(|| format!("the data part must hold `approved`: true or false, found {d}"))?;
        let comment = d.get("comment").and_then(Value::as_str).map(str::to_string);
        let by = d.get("by").and_then(Value::as_str).unwrap_or("a2a").to_string();
        return Ok((approved, comment, by));
    }
    let word = text.unwrap_or("").trim().to_ascii_lowercase();
    match word.as_str() {
        "approve" | "approved" | "yes" | "y" | "ok" => Ok((true, None, "a2a".into())),
        "reject" | "rejected" | "no" | "n" | "deny" | "denied" => Ok((false, None, "a2a".into())),
        _ => Err(format!(
            "reply with a data part {{\"approved\": true|false}} or the text approve/reject, found {:?}",
            text.unwrap_or("")
        )),
    }
}

fn status_word(s: Status) -> &'static str {
    match s {
        Status::Completed => "completed",
        Status::Failed => "failed",
        Status::Cancelled => "canceled",
        Status::Running => "working",
        Status::Waiting => "waiting",
    }
}

/// A2A's view of an execution status, for `ListTasks` filters (a waiting
/// execution is input-required unless it only waits for a timer).
pub fn state_of(rt: &Runtime, meta: &ExecutionMeta) -> TaskState {
    match meta.status {
        Status::Running => TaskState::Working,
        Status::Waiting if waits_of(rt, meta.id).map(|w| w.is_empty()).unwrap_or(true) => TaskState::Working,
        Status::Waiting => TaskState::InputRequired,
        Status::Completed => TaskState::Completed,
        Status::Failed => TaskState::Failed,
        Status::Cancelled => TaskState::Canceled,
    }
}
