//! `type: agent`: run a local agent of `agents:` ([`local`]), or call a
//! remote A2A agent and wait for its task (the rest of this file).
//!
//! One attempt: resolve the card (cached), then either send the message
//! rendered from the state (a fresh task), send a signal's answer on the
//! remote task that asked for input (a follow-up), or go on waiting for a
//! task an earlier attempt left running; then poll `GetTask` with backoff
//! until the task ends or asks for input, all within the node's
//! `timeout_ms`. Polling rather than streaming: it needs nothing of the
//! card, and a poll that fails because the peer restarted is simply
//! repeated (the task id is known), where a stream would have to be
//! re-subscribed.
//!
//! Message ids are derived from the idempotency key: `{key}` for the first
//! send of a visit, `{key}/{n}` for a fresh send after `n` journaled
//! exchanges (a remote task that failed), `{key}/reply/{n}` for the n-th
//! answer, so the repeat of a send interrupted by a crash carries the same
//! id and a deduplicating peer does not start a second task.
//!
//! An exchange (what was sent, and the task as last seen) is journaled
//! with every outcome once the peer has accepted a message or answered a
//! poll; headers (keys) never are. `${VAR}` references in the agent URL and
//! the headers are read from the process environment at each attempt; the
//! exchange and the messages name the URL as written.
//!
//! [`client`] is the A2A wire protocol the node speaks; [`round`] what the
//! machine remembers of the node's conversation, read through `NodeCtx`;
//! [`remote_tool`] a remote agent called as a local agent's tool, through
//! the same client.

pub(crate) mod client;
pub(crate) mod local;
pub(crate) mod remote_tool;
pub mod round;
mod strategy;

use std::time::Duration;

use futures::future::BoxFuture;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::{Exchange, NodeCtx, NodeError, NodeExecutor, NodeOutput, Park, output_patch};
use crate::ir::{AgentNode, NodeKind};
use crate::journal::ErrorClass;
use client::{Agent as Remote, CallError, TaskView};

pub struct Agent;

impl NodeExecutor for Agent {
    fn run<'a>(&'a self, ctx: NodeCtx<'a>) -> BoxFuture<'a, Result<NodeOutput, NodeError>> {
        Box::pin(run(ctx))
    }
}

const FIRST_POLL_MS: u64 = 50;
const MAX_POLL_MS: u64 = 1_000;

async fn run(ctx: NodeCtx<'_>) -> Result<NodeOutput, NodeError> {
    let NodeKind::Agent(spec) = &ctx.node.kind else { unreachable!("agent executor on another kind") };
    if spec.local {
        let id = &ctx.node.id;
        return local::run_node(&ctx, spec)
            .await
            .map_err(|e| NodeError { message: format!("node `{id}`: {}", e.message), ..e });
    }
    let deadline = Instant::now() + Duration::from_millis(spec.timeout_ms);
    let mut seen = Seen::default();
    let url = ctx.env(&spec.agent, "`agent`")?;
    let hide = Hide::of(&spec.agent);
    let result = tokio::time::timeout_at(deadline, call(&ctx, spec, &url, &hide, &mut seen)).await;
    let out = match result {
        Ok(r) => r,
        Err(_) => {
            let state = seen.task.as_ref().map_or("not started", |t| t.state_name());
            Err(NodeError::new(
                ErrorClass::Timeout,
                format!("agent {} did not finish within timeout_ms {} (task {state})", spec.agent, spec.timeout_ms),
            ))
        }
    };
    // A resolved URL is the environment's: messages name the written one.
    let out = out.map_err(|e| NodeError { message: hide.apply(&e.message), ..e });
    // Journal the exchange once the peer has a task (or answered).
    let exchange = seen.exchange();
    match (out, exchange) {
        (Ok(mut o), Some(x)) => {
            o.exchange = Some(Box::new(x));
            Ok(o)
        }
        (Err(e), Some(x)) => Err(e.with_exchange(x)),
        (out, None) => out,
    }
}

/// What this attempt sent and last saw, for the exchange.
#[derive(Default)]
struct Seen {
    request: Option<Value>,
    task: Option<TaskView>,
}

impl Seen {
    fn exchange(&self) -> Option<Exchange> {
        let task = self.task.as_ref()?;
        Some(Exchange {
            request: self.request.clone().unwrap_or(Value::Null),
            response: json!({ "task": task.to_json() }),
            usage: Default::default(),
        })
    }
}

fn node_error(e: CallError) -> NodeError {
    NodeError { retry_after_ms: e.retry_after_ms, ..NodeError::new(e.class, e.message) }
}

/// The headers with `${VAR}` read from the environment now.
fn headers(ctx: &NodeCtx<'_>, spec: &AgentNode) -> Result<Vec<(String, String)>, NodeError> {
    spec.headers.iter().map(|(k, v)| Ok((k.clone(), ctx.env(v, &format!("header `{k}`"))?))).collect()
}

/// The runtime's HTTP client with its response limit.
fn http<'a>(ctx: &NodeCtx<'a>) -> client::Http<'a> {
    client::Http { client: &ctx.services.http, limits: &ctx.services.limits }
}

/// The values of the variables the agent URL reads, to be shown as their
/// references wherever the journal or a message would repeat them (the
/// card's endpoint, a transport error naming the URL).
struct Hide(Vec<(String, String)>);

impl Hide {
    fn of(written: &str) -> Hide {
        let names = crate::ir::env_refs(written).unwrap_or_default();
        let mut pairs: Vec<(String, String)> = names
            .into_iter()
            // A value of a few characters would mangle the text it is replaced in.
            .filter_map(|name| Some((std::env::var(&name).ok().filter(|v| v.len() >= 4)?, format!("${{{name}}}"))))
            .collect();
        // Longer values first, so one holding another is replaced whole.
        pairs.sort_by_key(|(value, _)| std::cmp::Reverse(value.len()));
        Hide(pairs)
    }

    fn apply(&self, text: &str) -> String {
        let mut out = text.to_string();
        for (value, reference) in &self.0 {
            out = out.replace(value.as_str(), reference);
        }
        out
    }
}

/// One attempt against the agent at `url` (`spec.agent` with its variables read).
async fn call(
    ctx: &NodeCtx<'_>,
    spec: &AgentNode,
    url: &str,
    hide: &Hide,
    seen: &mut Seen,
) -> Result<NodeOutput, NodeError> {
    let headers = headers(ctx, spec)?;
    let http = http(ctx);
    let cards = &ctx.services.agents;
    let agent = cards.resolve(&http, url, &headers).await.map_err(node_error)?;
    // The exchange names the endpoint with the URL's references as written.
    let endpoint = hide.apply(&agent.endpoint);
    let round = ctx.agent.filter(|r| r.visit == ctx.visit);
    let last = round.and_then(|r| r.last.as_ref()).and_then(|v| v.get("task"));
    let last_id = last.and_then(|t| Some((t.get("id")?.as_str()?, t.get("contextId")?.as_str()?)));
    let last_state = last.and_then(|t| t.get("state")?.as_str()).unwrap_or("");
    let base = json!({ "agent": spec.agent, "endpoint": endpoint });
    let mut task = match (round.and_then(|r| r.reply.as_ref()), last_id) {
        (Some(reply), Some(ids)) => {
            let id = format!("{}/reply/{}", ctx.idempotency_key, round.map_or(0, |r| r.replies));
            let m = client::message(agent.protocol, &id, reply, Some(ids));
            send(ctx, url, &agent, &headers, seen, base, m).await?
        }
        (Some(_), None) => {
            return Err(NodeError::new(ErrorClass::Internal, "an answer for a remote task the journal does not name"));
        }
        // An earlier attempt left the remote task running: wait for it, do not start another.
        (None, Some((id, _))) if !["completed", "failed", "canceled", "rejected", ""].contains(&last_state) => {
            seen.request = Some(json!({ "agent": spec.agent, "endpoint": endpoint, "resumed": id }));
            poll_once(ctx, &agent, &headers, id).await?
        }
        (None, _) => {
            let exchanges = round.map_or(0, |r| r.exchanges);
            let id = match exchanges {
                0 => ctx.idempotency_key.clone(),
                n => format!("{}/{n}", ctx.idempotency_key),
            };
            let content = ctx.services.templates.render_value(&spec.message, &ctx.template_context())?;
            let m = client::message(agent.protocol, &id, &content, None);
            send(ctx, url, &agent, &headers, seen, base, m).await?
        }
    };
    let mut delay = FIRST_POLL_MS;
    loop {
        seen.task = Some(task.clone());
        use ::a2a::TaskState as S;
        match task.state {
            S::Completed => return completed(spec, &task),
            S::Failed | S::Rejected | S::Canceled => {
                let class = if task.state == S::Failed { ErrorClass::ServerError } else { ErrorClass::ClientError };
                let why = task.status_text.clone().unwrap_or_else(|| "no message".into());
                let message = format!("agent {} task {}: {}", spec.agent, task.state_name(), why);
                return Err(NodeError::new(class, message));
            }
            S::InputRequired => {
                let prompt = task.status_text.clone().or_else(|| {
                    (!task.status_parts.is_empty()).then(|| Value::Array(task.status_parts.clone()).to_string())
                });
                let park = Park { event: spec.input_event.clone(), prompt };
                return Ok(NodeOutput { park: Some(park), ..Default::default() });
            }
            S::AuthRequired => {
                let message = format!("agent {} task needs authentication the node cannot give", spec.agent);
                return Err(NodeError::new(ErrorClass::ClientError, message));
            }
            S::Submitted | S::Working | S::Unspecified => {}
        }
        let Some(id) = task.id.clone() else {
            return Err(NodeError::new(ErrorClass::InvalidOutput, "a task without an id"));
        };
        tokio::time::sleep(Duration::from_millis(delay)).await;
        delay = (delay * 2).min(MAX_POLL_MS);
        task = poll_once(ctx, &agent, &headers, &id).await?;
    }
}

async fn send(
    ctx: &NodeCtx<'_>,
    url: &str,
    agent: &Remote,
    headers: &[(String, String)],
    seen: &mut Seen,
    mut request: Value,
    message: Value,
) -> Result<TaskView, NodeError> {
    request["message"] = message.clone();
    seen.request = Some(request);
    match client::send_message(&http(ctx), agent, headers, message).await {
        Ok(t) => Ok(t),
        Err(e) => {
            // The agent may have moved or changed: read its card again next time.
            ctx.services.agents.forget(url);
            Err(node_error(e))
        }
    }
}

/// One `GetTask`. A peer that is away for a moment (restarting, say) is
/// asked again, with backoff, until the node's deadline: the task is
/// known, so waiting costs nothing remote.
async fn poll_once(
    ctx: &NodeCtx<'_>,
    agent: &Remote,
    headers: &[(String, String)],
    id: &str,
) -> Result<TaskView, NodeError> {
    let mut delay = FIRST_POLL_MS;
    loop {
        match client::get_task(&http(ctx), agent, headers, id).await {
            Ok(t) => return Ok(t),
            Err(e) if e.class.retryable_by_default() => {
                tracing::debug!(node = %ctx.node.id, error = %e, "agent poll failed; asking again");
                let wait = e.retry_after_ms.unwrap_or(delay).min(MAX_POLL_MS * 5);
                tokio::time::sleep(Duration::from_millis(wait)).await;
                delay = (delay * 2).min(MAX_POLL_MS);
            }
            Err(e) => return Err(node_error(e)),
        }
    }
}

/// A completed task's answer: its artifacts' parts (one part: its value;
/// several: the list), or with no artifact the parts of its status message.
fn answer(task: &TaskView) -> Value {
    let parts = if task.artifacts.is_empty() { &task.status_parts } else { &task.artifacts };
    match parts.as_slice() {
        [] => Value::Null,
        [one] => one.clone(),
        many => Value::Array(many.to_vec()),
    }
}

/// The task's result: its artifacts' parts (one part: its value; several:
/// the list), or with no artifact the parts of its status message.
fn completed(spec: &AgentNode, task: &TaskView) -> Result<NodeOutput, NodeError> {
    let value = answer(task);
    let patch = match spec.output_key.as_deref() {
        Some(k) => output_patch(Some(k), value)?,
        None => Default::default(),
    };
    Ok(NodeOutput { patch, ..Default::default() })
}
