//! A remote A2A agent as a local agent's tool (a `tools:` entry that is
//! an http(s) URL, or `${VAR}` holding one): the model is offered it with
//! one `message` argument, and a call of it sends that message with the
//! A2A client of [`super::client`] and waits for the task to end, as a
//! `type: agent` node does.
//!
//! The tool's description is read from the agent's card (cached with the
//! node's cards); a card that cannot be read gives a plain description
//! instead of failing the agent: the description is only a hint for the
//! model, a resumed visit whose calls are journaled need not reach the
//! remote at all, and a remote that is really away fails the call itself,
//! where the node's retry policy applies.
//!
//! A call is one journaled tool call of the conversation
//! ([`crate::nodes::converse`]). Its A2A `messageId` is the call's
//! idempotency key (`{execution}/{node}/{visit}/call/{n}`), as a `type:
//! agent` node's first message is its visit's key: a call interrupted by
//! a crash (or a timeout, or a failed send) is sent again with the same id,
//! and a deduplicating peer (a jamjet server keys its tasks by workflow,
//! context and message id) hands back the task it already started.
//!
//! What the model is given: the completed task's answer (its artifacts'
//! parts, or its status message's; a string as is, anything else as
//! JSON); for a task that failed, was rejected or canceled, asks for input
//! or for authentication, an `error: ...` text naming the state and the
//! remote's message, as an MCP tool's error result is (the remote agent
//! answered; the model decides what next). A call that gets no answer
//! (the remote is unreachable, answers 5xx, the node's timeout passes)
//! fails the attempt, as a failed MCP call does.

use std::time::Duration;

use serde_json::{Value, json};

use super::client::{self, TaskView};
use super::{FIRST_POLL_MS, Hide, MAX_POLL_MS, http, node_error, poll_once};
use crate::journal::ErrorClass;
use crate::model::ToolSpec;
use crate::nodes::{NodeCtx, NodeError};

/// How long the card may take to fetch for the tool's description.
const CARD_TIMEOUT: Duration = Duration::from_secs(10);

/// The tool the model is offered for the remote agent at `url` (as
/// written), named `name`.
pub(crate) async fn spec(ctx: &NodeCtx<'_>, url: &str, name: String, timeout: Duration) -> ToolSpec {
    let about = match describe(ctx, url, timeout.min(CARD_TIMEOUT)).await {
        Ok(about) => about,
        Err(e) => {
            tracing::warn!(node = %ctx.node.id, tool = %url, error = %e.message,
                "the remote agent's card could not be read; its tool gets a plain description");
            String::new()
        }
    };
    let description = match about.is_empty() {
        true => format!("Ask the remote A2A agent at {url}."),
        false => format!("Ask the remote A2A agent at {url} ({}).", about.chars().take(500).collect::<String>()),
    };
    ToolSpec {
        name,
        description,
        input_schema: json!({
            "type": "object",
            "properties": {"message": {"type": "string", "description": "What to ask the agent."}},
            "required": ["message"]
        }),
    }
}

/// What the card of the agent at `url` says it does (its name when it says nothing).
async fn describe(ctx: &NodeCtx<'_>, url: &str, within: Duration) -> Result<String, NodeError> {
    let resolved = ctx.env(url, &format!("agent tool `{url}`"))?;
    let http = http(ctx);
    let fetch = ctx.services.agents.resolve(&http, &resolved, &[]);
    let agent = match tokio::time::timeout(within, fetch).await {
        Ok(found) => found.map_err(node_error)?,
        Err(_) => return Err(NodeError::new(ErrorClass::Timeout, "the card took too long")),
    };
    let hide = Hide::of(url);
    Ok(hide.apply(if agent.description.is_empty() { &agent.name } else { &agent.description }))
}

/// Call the remote agent at `url` (as written) with the model's
/// `arguments`, its message id `key`, within `timeout`: what goes back
/// to the model.
pub(crate) async fn call(
    ctx: &NodeCtx<'_>,
    url: &str,
    arguments: &Value,
    key: &str,
    timeout: Duration,
) -> Result<String, NodeError> {
    let resolved = ctx.env(url, &format!("agent tool `{url}`"))?;
    let message = match &arguments["message"] {
        Value::String(s) => s.clone(),
        Value::Null => arguments.to_string(),
        other => other.to_string(),
    };
    let hide = Hide::of(url);
    let out = match tokio::time::timeout(timeout, ask(ctx, &resolved, key, message)).await {
        Ok(out) => out,
        Err(_) => Err(NodeError::new(
            ErrorClass::Timeout,
            format!("the remote task did not end within {} ms", timeout.as_millis()),
        )),
    };
    // A resolved URL is the environment's: messages name the written one.
    out.map_err(|e| NodeError { message: hide.apply(&format!("agent tool {url}: {}", e.message)), ..e })
}

/// Send `message` with id `key` to the agent at `url` (resolved) and
/// poll its task until it ends or stops for something.
async fn ask(ctx: &NodeCtx<'_>, url: &str, key: &str, message: String) -> Result<String, NodeError> {
    let http = http(ctx);
    let cards = &ctx.services.agents;
    let agent = cards.resolve(&http, url, &[]).await.map_err(node_error)?;
    let sent = client::message(agent.protocol, key, &Value::String(message), None);
    let mut task = match client::send_message(&http, &agent, &[], sent).await {
        Ok(task) => task,
        Err(e) => {
            // The agent may have moved or changed: read its card again next time.
            cards.forget(url);
            return Err(node_error(e));
        }
    };
    let mut delay = FIRST_POLL_MS;
    loop {
        if let Some(result) = told(&task) {
            return Ok(result);
        }
        let Some(id) = task.id.clone() else {
            return Err(NodeError::new(ErrorClass::InvalidOutput, "a task without an id"));
        };
        tokio::time::sleep(Duration::from_millis(delay)).await;
        delay = (delay * 2).min(MAX_POLL_MS);
        task = poll_once(ctx, &agent, &[], &id).await?;
    }
}

/// What the model is told of a task that stopped; `None` while it runs.
fn told(task: &TaskView) -> Option<String> {
    use ::a2a::TaskState as S;
    let id = task.id.as_deref().unwrap_or("-");
    let why = || task.status_text.clone().unwrap_or_else(|| "no message".into());
    Some(match task.state {
        S::Completed => match super::answer(task) {
            Value::String(s) => s,
            other => other.to_string(),
        },
        S::Failed | S::Rejected | S::Canceled => {
            format!("error: the remote agent's task {id} {}: {}", task.state_name(), why())
        }
        S::InputRequired => format!(
            "error: the remote agent asks for more input, which a tool call cannot give (its task {id} is left \
             waiting): {}",
            why()
        ),
        S::AuthRequired => format!("error: the remote agent's task {id} needs authentication this call cannot give"),
        S::Submitted | S::Working | S::Unspecified => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(state: ::a2a::TaskState, artifacts: Vec<Value>, status: Option<&str>) -> TaskView {
        TaskView {
            id: Some("t1".into()),
            context_id: None,
            state,
            artifacts,
            status_text: status.map(str::to_string),
            status_parts: status.map(|s| vec![json!(s)]).unwrap_or_default(),
            raw: Value::Null,
        }
    }

    #[test]
    fn the_model_is_told_the_answer_or_why_there_is_none() {
        use ::a2a::TaskState as S;
        assert_eq!(told(&task(S::Working, vec![], None)), None);
        assert_eq!(told(&task(S::Completed, vec![json!("hi")], None)).unwrap(), "hi");
        assert_eq!(told(&task(S::Completed, vec![json!({"a": 1})], None)).unwrap(), r#"{"a":1}"#);
        assert_eq!(told(&task(S::Completed, vec![], Some("from status"))).unwrap(), "from status");
        let failed = told(&task(S::Failed, vec![], Some("boom"))).unwrap();
        assert_eq!(failed, "error: the remote agent's task t1 failed: boom");
        let asks = told(&task(S::InputRequired, vec![], Some("which one?"))).unwrap();
        assert!(asks.starts_with("error: the remote agent asks for more input") && asks.ends_with("which one?"));
        assert!(told(&task(S::Rejected, vec![], None)).unwrap().contains("rejected: no message"));
    }
}
