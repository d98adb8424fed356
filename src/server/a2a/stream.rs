//! `SendStreamingMessage` / `message/stream` and `SubscribeToTask` /
//! `tasks/resubscribe` over Server-Sent Events: each SSE `data:` is a
//! JSON-RPC response whose result is a stream event. First the task, then a
//! `working` status update per completed node (its message names the node),
//! read from the journal through [`Runtime::subscribe`](crate::runtime::Runtime::subscribe);
//! the stream ends after the task's final status: `input-required`, or a
//! terminal one (preceded by the `result` artifact on completion). v0.3
//! callers get `final: true` on that last status update.
//!
//! A model node with `stream: true` streams its reply as artifact updates
//! while it is written: artifact `{task}/stream/{node}/{visit}/{attempt}`
//! (`name: "stream"`), the first piece with `append: false`, the rest with
//! `append: true`, each with `metadata.jamjet.token` (node, visit, attempt,
//! n, restarted). A restarted stream is a new artifact. Not journaled: a
//! resubscription sees the records again, not the pieces.

use std::convert::Infallible;

use ::a2a::{JsonRpcId, JsonRpcResponse, Message, Part, Role, StreamResponse, TaskArtifactUpdateEvent, TaskState};
use ::a2a::{TaskStatus, TaskStatusUpdateEvent};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::dialect::{self, Dialect};
use super::task;
use crate::id::ExecutionId;
use crate::journal::Event;
use crate::nodes::stream::TokenRx;
use crate::runtime::Runtime;
use crate::server::AppState;

/// How a stream begins.
pub enum Opening {
    /// The task was just started or answered: it is shown as working until
    /// the journal says more. Its tokens were subscribed to before.
    Fresh(TokenRx),
    /// A subscription to a task that runs.
    Again,
}

/// Stream task `id` from after sequence `after` (see [`Opening`]).
/// `closing` flips when the server begins to shut down: the stream ends
/// there, so graceful shutdown does not wait on a task still working.
pub fn sse(
    state: AppState,
    closing: Option<tokio::sync::watch::Receiver<bool>>,
    rpc_id: JsonRpcId,
    dialect: Dialect,
    id: ExecutionId,
    after: u64,
    opening: Opening,
) -> Response {
    let (tx, rx) = mpsc::channel::<SseEvent>(32);
    tokio::spawn(follow(state.rt.clone(), rpc_id, dialect, id, after, opening, tx));
    let events =
        futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|e| (Ok::<_, Infallible>(e), rx)) });
    let closed = async move {
        match closing {
            Some(mut c) => {
                let _ = c.wait_for(|closing| *closing).await;
            }
            None => std::future::pending().await,
        }
    };
    Sse::new(futures::StreamExt::take_until(events, Box::pin(closed))).keep_alive(KeepAlive::default()).into_response()
}

fn frame(rpc_id: &JsonRpcId, dialect: Dialect, event: Value, last: bool) -> SseEvent {
    let result = dialect::stream_event(dialect, event, last);
    let body = JsonRpcResponse::success(rpc_id.clone(), result);
    SseEvent::default().data(serde_json::to_string(&body).expect("a response serializes"))
}

fn status_event(task: &::a2a::Task, state: TaskState, message: Option<Message>) -> Value {
    let update = TaskStatusUpdateEvent {
        task_id: task.id.clone(),
        context_id: task.context_id.clone(),
        status: TaskStatus { state, message, timestamp: None },
        metadata: None,
    };
    serde_json::to_value(StreamResponse::StatusUpdate(update)).expect("an event serializes")
}

fn error_frame(rpc_id: &JsonRpcId, e: super::rpc::RpcError) -> SseEvent {
    let body = JsonRpcResponse::error(rpc_id.clone(), e.into_json());
    SseEvent::default().data(serde_json::to_string(&body).expect("a response serializes"))
}

async fn follow(
    rt: Runtime,
    rpc_id: JsonRpcId,
    dialect: Dialect,
    id: ExecutionId,
    mut after: u64,
    opening: Opening,
    tx: mpsc::Sender<SseEvent>,
) {
    let (fresh, mut tokens) = match opening {
        Opening::Fresh(tokens) => (true, tokens),
        Opening::Again => (false, TokenRx::One(rt.tokens(id))),
    };
    // Subscribe first, then read, so no append falls between the two.
    let mut feed = rt.subscribe(id);
    let mut streaming = true;
    let mut current = match task::snapshot(&rt, id) {
        Ok(t) => t,
        Err(e) => {
            let _ = tx.send(error_frame(&rpc_id, e)).await;
            return;
        }
    };
    let mut first = current.clone();
    if fresh {
        first.status = TaskStatus { state: TaskState::Working, message: None, timestamp: None };
        first.artifacts = None;
    }
    let first = json!({ "task": task::to_json(&rt, &first) });
    if tx.send(frame(&rpc_id, dialect, first, false)).await.is_err() {
        return;
    }
    loop {
        let records = match rt.events_after(id, after) {
            Ok(r) => r,
            Err(e) => {
                let _ = tx.send(error_frame(&rpc_id, super::rpc::RpcError::from_runtime(e, id))).await;
                return;
            }
        };
        let mut ended = false;
        for record in records {
            after = record.seq;
            match &record.event {
                Event::NodeCompleted { node, .. } => {
                    let message = Message {
                        message_id: format!("{id}/{}", record.seq),
                        context_id: Some(current.context_id.clone()),
                        task_id: Some(current.id.clone()),
                        role: Role::Agent,
                        parts: vec![Part::text(format!("node `{node}` completed"))],
                        metadata: None,
                        extensions: None,
                        reference_task_ids: None,
                    };
                    let event = status_event(&current, TaskState::Working, Some(message));
                    if tx.send(frame(&rpc_id, dialect, event, false)).await.is_err() {
                        return;
                    }
                }
                e if e.is_terminal() => ended = true,
                _ => {}
            }
        }
        current = match task::snapshot(&rt, id) {
            Ok(t) => t,
            Err(e) => {
                let _ = tx.send(error_frame(&rpc_id, e)).await;
                return;
            }
        };
        let state = current.status.state.clone();
        if ended || state.is_terminal() || state == TaskState::InputRequired {
            if let Some(artifact) = current.artifacts.as_ref().and_then(|a| a.first()) {
                let update = TaskArtifactUpdateEvent {
                    task_id: current.id.clone(),
                    context_id: current.context_id.clone(),
                    artifact: artifact.clone(),
                    append: Some(false),
                    last_chunk: Some(true),
                    metadata: None,
                };
                let event = serde_json::to_value(StreamResponse::ArtifactUpdate(update)).expect("an event serializes");
                if tx.send(frame(&rpc_id, dialect, event, false)).await.is_err() {
                    return;
                }
            }
            let event = status_event(&current, state, current.status.message.clone());
            let _ = tx.send(frame(&rpc_id, dialect, event, true)).await;
            return;
        }
        // Wait for the next durable append (sending streamed pieces
        // meanwhile), or for the client to go away.
        loop {
            tokio::select! {
                biased;
                t = tokens.next(id), if streaming => match t {
                    // A branch's or sub-workflow's text is not this task's reply.
                    Some(t) if t.inside.is_some() => {}
                    Some(t) => {
                        let event = token_event(&current, &t);
                        if tx.send(frame(&rpc_id, dialect, event, false)).await.is_err() {
                            return;
                        }
                    }
                    None => streaming = false,
                },
                changed = feed.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    break;
                }
                _ = tx.closed() => return,
            }
        }
    }
}

/// A piece of a streamed model reply, as an artifact update.
fn token_event(task: &::a2a::Task, t: &crate::nodes::stream::Token) -> Value {
    let artifact = ::a2a::Artifact {
        artifact_id: format!("{}/stream/{}/{}/{}", task.id, t.node, t.visit, t.attempt),
        name: Some("stream".into()),
        description: Some(format!("the reply of node `{}` as it is written", t.node)),
        parts: vec![Part::text(t.text.clone())],
        metadata: None,
        extensions: None,
    };
    let token = serde_json::to_value(t).expect("a token serializes");
    let update = TaskArtifactUpdateEvent {
        task_id: task.id.clone(),
        context_id: task.context_id.clone(),
        artifact,
        append: Some(t.n > 0),
        last_chunk: Some(false),
        metadata: Some([("jamjet.token".to_string(), token)].into_iter().collect()),
    };
    serde_json::to_value(StreamResponse::ArtifactUpdate(update)).expect("an event serializes")
}
