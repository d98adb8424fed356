//! The two spellings of the A2A wire: v1.0 (method names `SendMessage`, ...,
//! enums `TASK_STATE_COMPLETED`, `ROLE_USER`, parts `{text}`/`{data}`,
//! results wrapped as `{task: ...}`/`{statusUpdate: ...}`) and v0.3 (method
//! names `message/send`, ..., enums `completed`, `user`, parts
//! `{kind: "text", text}`, objects tagged with `kind`). Everything inside is
//! built with the v1.0 types of `a2a-lf`; a v0.3 caller gets it translated
//! here, and its requests are read through [`params_to_v1`]. The method
//! family of the request decides; a v1.0 name with header `A2A-Version: 0.3`
//! is answered in v0.3.

use serde_json::{Map, Value, json};

/// Which wire a request speaks (and gets back).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    V1,
    V03,
}

/// The methods, whichever name they came under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Send,
    Stream,
    GetTask,
    Cancel,
    List,
    Subscribe,
    /// Push-notification configs: not supported (-32003).
    Push,
    /// `GetExtendedAgentCard` / `agent/getAuthenticatedExtendedCard` (-32007).
    ExtendedCard,
}

/// The method and dialect of a method name, or `None` if it is unknown.
pub fn method(name: &str, version_header: Option<&str>) -> Option<(Method, Dialect)> {
    let v1 = match name {
        "SendMessage" => Some(Method::Send),
        "SendStreamingMessage" => Some(Method::Stream),
        "GetTask" => Some(Method::GetTask),
        "CancelTask" => Some(Method::Cancel),
        "ListTasks" => Some(Method::List),
        "SubscribeToTask" => Some(Method::Subscribe),
        "CreateTaskPushNotificationConfig"
        | "GetTaskPushNotificationConfig"
        | "ListTaskPushNotificationConfigs"
        | "DeleteTaskPushNotificationConfig" => Some(Method::Push),
        "GetExtendedAgentCard" => Some(Method::ExtendedCard),
        _ => None,
    };
    if let Some(m) = v1 {
        let dialect =
            if version_header.is_some_and(|v| v.trim().starts_with("0.")) { Dialect::V03 } else { Dialect::V1 };
        return Some((m, dialect));
    }
    let v03 = match name {
        "message/send" => Method::Send,
        "message/stream" => Method::Stream,
        "tasks/get" => Method::GetTask,
        "tasks/cancel" => Method::Cancel,
        "tasks/list" => Method::List,
        "tasks/resubscribe" => Method::Subscribe,
        "tasks/pushNotificationConfig/set"
        | "tasks/pushNotificationConfig/get"
        | "tasks/pushNotificationConfig/list"
        | "tasks/pushNotificationConfig/delete" => Method::Push,
        "agent/getAuthenticatedExtendedCard" => Method::ExtendedCard,
        _ => return None,
    };
    Some((v03, Dialect::V03))
}

/// A v0.3 request's params in the v1.0 form (roles, parts, states,
/// `configuration.blocking`); v1.0 params pass unchanged.
pub fn params_to_v1(dialect: Dialect, mut params: Value) -> Value {
    if dialect == Dialect::V1 {
        return params;
    }
    if let Some(message) = params.get_mut("message") {
        message_to_v1(message);
    }
    if let Some(config) = params.get_mut("configuration").and_then(Value::as_object_mut)
        && let Some(blocking) = config.remove("blocking").and_then(|b| b.as_bool())
    {
        config.insert("returnImmediately".into(), Value::Bool(!blocking));
    }
    if let Some(status) = params.get_mut("status")
        && let Some(s) = status.as_str()
    {
        *status = Value::String(state_to_v1(s));
    }
    params
}

fn message_to_v1(message: &mut Value) {
    let Some(m) = message.as_object_mut() else { return };
    if let Some(role) = m.get_mut("role")
        && let Some(r) = role.as_str()
    {
        *role = Value::String(match r {
            "user" => "ROLE_USER".into(),
            "agent" => "ROLE_AGENT".into(),
            other => other.to_string(),
        });
    }
    if let Some(Value::Array(parts)) = m.get_mut("parts") {
        for part in parts {
            let Some(p) = part.as_object_mut() else { continue };
            if let Some(Value::Object(file)) = p.remove("file") {
                if let Some(uri) = file.get("uri") {
                    p.insert("url".into(), uri.clone());
                }
                if let Some(bytes) = file.get("bytes") {
                    p.insert("raw".into(), bytes.clone());
                }
                if let Some(mime) = file.get("mimeType") {
                    p.insert("mediaType".into(), mime.clone());
                }
                if let Some(name) = file.get("name") {
                    p.insert("filename".into(), name.clone());
                }
            }
            p.remove("kind");
        }
    }
}

/// `completed` → `TASK_STATE_COMPLETED`.
pub fn state_to_v1(s: &str) -> String {
    if s.starts_with("TASK_STATE_") {
        return s.to_string();
    }
    format!("TASK_STATE_{}", s.replace('-', "_").to_ascii_uppercase())
}

/// `TASK_STATE_INPUT_REQUIRED` → `input-required`.
pub fn state_to_v03(s: &str) -> String {
    s.strip_prefix("TASK_STATE_").unwrap_or(s).to_ascii_lowercase().replace('_', "-")
}

/// A `SendMessage` result (`{task: T}`) as the dialect spells it (v0.3: `T`).
pub fn send_result(dialect: Dialect, v1: Value) -> Value {
    match dialect {
        Dialect::V1 => v1,
        Dialect::V03 => match v1 {
            Value::Object(mut m) => match (m.remove("task"), m.remove("message")) {
                (Some(task), _) => task_to_v03(task),
                (None, Some(message)) => message_to_v03(message),
                _ => Value::Object(m),
            },
            other => other,
        },
    }
}

/// A Task as the dialect spells it.
pub fn task(dialect: Dialect, v1: Value) -> Value {
    match dialect {
        Dialect::V1 => v1,
        Dialect::V03 => task_to_v03(v1),
    }
}

/// A `ListTasks` result as the dialect spells it.
pub fn list_result(dialect: Dialect, mut v1: Value) -> Value {
    if dialect == Dialect::V03
        && let Some(Value::Array(tasks)) = v1.get_mut("tasks")
    {
        for t in tasks.iter_mut() {
            *t = task_to_v03(std::mem::take(t));
        }
    }
    v1
}

/// A stream event (`{task}`, `{statusUpdate}`, `{artifactUpdate}`) as the
/// dialect spells it; `last` marks v0.3's `final`.
pub fn stream_event(dialect: Dialect, v1: Value, last: bool) -> Value {
    if dialect == Dialect::V1 {
        return v1;
    }
    let Value::Object(mut m) = v1 else { return v1 };
    if let Some(task) = m.remove("task") {
        return task_to_v03(task);
    }
    if let Some(Value::Object(mut update)) = m.remove("statusUpdate") {
        update.insert("kind".into(), json!("status-update"));
        if let Some(status) = update.remove("status") {
            update.insert("status".into(), status_to_v03(status));
        }
        update.insert("final".into(), Value::Bool(last));
        return Value::Object(update);
    }
    if let Some(Value::Object(mut update)) = m.remove("artifactUpdate") {
        update.insert("kind".into(), json!("artifact-update"));
        if let Some(artifact) = update.remove("artifact") {
            update.insert("artifact".into(), artifact_to_v03(artifact));
        }
        return Value::Object(update);
    }
    Value::Object(m)
}

fn task_to_v03(task: Value) -> Value {
    let Value::Object(mut m) = task else { return task };
    m.insert("kind".into(), json!("task"));
    if let Some(status) = m.remove("status") {
        m.insert("status".into(), status_to_v03(status));
    }
    if let Some(Value::Array(artifacts)) = m.remove("artifacts") {
        m.insert("artifacts".into(), Value::Array(artifacts.into_iter().map(artifact_to_v03).collect()));
    }
    if let Some(Value::Array(history)) = m.remove("history") {
        m.insert("history".into(), Value::Array(history.into_iter().map(message_to_v03).collect()));
    }
    Value::Object(m)
}

fn status_to_v03(status: Value) -> Value {
    let Value::Object(mut m) = status else { return status };
    if let Some(Value::String(s)) = m.get("state") {
        let s = state_to_v03(s);
        m.insert("state".into(), Value::String(s));
    }
    if let Some(message) = m.remove("message") {
        m.insert("message".into(), message_to_v03(message));
    }
    Value::Object(m)
}

fn message_to_v03(message: Value) -> Value {
    let Value::Object(mut m) = message else { return message };
    m.insert("kind".into(), json!("message"));
    if let Some(Value::String(r)) = m.get("role") {
        let r = match r.as_str() {
            "ROLE_USER" => "user",
            _ => "agent",
        };
        m.insert("role".into(), json!(r));
    }
    parts_to_v03(&mut m);
    Value::Object(m)
}

fn artifact_to_v03(artifact: Value) -> Value {
    let Value::Object(mut m) = artifact else { return artifact };
    parts_to_v03(&mut m);
    Value::Object(m)
}

fn parts_to_v03(m: &mut Map<String, Value>) {
    let Some(Value::Array(parts)) = m.get_mut("parts") else { return };
    for part in parts {
        let Some(p) = part.as_object_mut() else { continue };
        if p.contains_key("text") {
            p.insert("kind".into(), json!("text"));
        } else if p.contains_key("data") {
            p.insert("kind".into(), json!("data"));
        } else {
            let mut file = Map::new();
            if let Some(url) = p.remove("url") {
                file.insert("uri".into(), url);
            }
            if let Some(raw) = p.remove("raw") {
                file.insert("bytes".into(), raw);
            }
            if let Some(mime) = p.remove("mediaType") {
                file.insert("mimeType".into(), mime);
            }
            if let Some(name) = p.remove("filename") {
                file.insert("name".into(), name);
            }
            p.insert("kind".into(), json!("file"));
            p.insert("file".into(), Value::Object(file));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip_between_dialects() {
        for s in ["TASK_STATE_COMPLETED", "TASK_STATE_INPUT_REQUIRED", "TASK_STATE_CANCELED"] {
            assert_eq!(state_to_v1(&state_to_v03(s)), s);
        }
        assert_eq!(state_to_v03("TASK_STATE_INPUT_REQUIRED"), "input-required");
    }

    #[test]
    fn v03_message_reads_as_v1() {
        let p = params_to_v1(
            Dialect::V03,
            json!({"message": {"kind": "message", "messageId": "m", "role": "user",
                "parts": [{"kind": "text", "text": "hi"}, {"kind": "data", "data": {"n": 1}}]},
                "configuration": {"blocking": false}}),
        );
        let req: ::a2a::SendMessageRequest = serde_json::from_value(p).unwrap();
        assert_eq!(req.message.role, ::a2a::Role::User);
        assert_eq!(req.message.parts.len(), 2);
        assert_eq!(req.configuration.unwrap().return_immediately, Some(true));
    }

    #[test]
    fn methods_and_aliases() {
        assert_eq!(method("message/send", None), Some((Method::Send, Dialect::V03)));
        assert_eq!(method("SendMessage", Some("1.0")), Some((Method::Send, Dialect::V1)));
        assert_eq!(method("SendMessage", Some("0.3")), Some((Method::Send, Dialect::V03)));
        assert_eq!(method("tasks/resubscribe", None), Some((Method::Subscribe, Dialect::V03)));
        assert_eq!(method("nope", None), None);
    }
}
