//! `GET /executions/{id}/events/stream`: an execution's records as
//! Server-Sent Events, live.
//!
//! One SSE event per record (`id: <seq>`, `event: <Event name>`,
//! `data: <Record JSON>`), only records above `Last-Event-ID` (or
//! `?after=`), then `event: end` (`data: {"status": ...}`) after the
//! terminal record, and the stream closes. Keep-alive comments every 15 s.
//!
//! It follows [`Runtime::subscribe`](crate::runtime::Runtime::subscribe):
//! subscribe, read what is after the last record sent
//! ([`Runtime::events_after`](crate::runtime::Runtime::events_after): one
//! range read, not the whole history), send it, await the next durable
//! append. A wake-up costs one range read per subscriber. Streams end when
//! the server begins to shut down ([`Closing`]), so graceful shutdown never
//! waits on an open stream.
//!
//! Between records, a model node with `stream: true` sends its reply as it
//! is written: `event: token`, `data: {"node", "visit", "attempt", "n",
//! "text", "restarted"}`, no `id` (tokens are not journaled; the record
//! that follows holds the whole reply).

use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::Stream;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::{broadcast, watch};

use super::api::executions::{parse_id, query};
use super::{ApiError, AppState};
use crate::id::ExecutionId;
use crate::journal::Record;
use crate::nodes::stream::Token;
use crate::runtime::Runtime;

/// How often an idle stream sends a keep-alive comment.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// Flips to `true` when the server begins to shut down; [`super::serve`]
/// puts it in every request's extensions.
#[derive(Clone)]
pub struct Closing(pub watch::Receiver<bool>);

#[derive(Deserialize)]
pub struct StreamQuery {
    after: Option<u64>,
}

pub async fn stream(
    State(st): State<AppState>,
    Path(raw): Path<String>,
    q: Result<Query<StreamQuery>, QueryRejection>,
    closing: Option<axum::Extension<Closing>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = parse_id(&raw)?;
    let q = query(q)?;
    let last = match headers.get("last-event-id") {
        None => None,
        Some(v) => Some(v.to_str().ok().and_then(|s| s.trim().parse::<u64>().ok()).ok_or_else(|| {
            ApiError::bad_request(format!("Last-Event-ID must be a record's sequence number, not {v:?}"))
        })?),
    };
    let after = last.or(q.after).unwrap_or(0);
    // Subscribe before the first read so no append falls between them.
    let feed = st.rt.subscribe(id);
    let tokens = Some(st.rt.tokens(id));
    st.rt.status(id)?;
    let closing = closing.map(|c| c.0.0.clone());
    let follow = Follow {
        rt: st.rt.clone(),
        id,
        feed,
        tokens,
        closing,
        after,
        pending: VecDeque::new(),
        ended: false,
        first: true,
    };
    Ok(Sse::new(events(follow)).keep_alive(KeepAlive::new().interval(KEEP_ALIVE)).into_response())
}

struct Follow {
    rt: Runtime,
    id: ExecutionId,
    feed: watch::Receiver<u64>,
    /// The pieces of streamed model replies (`stream: true`), as they come.
    tokens: Option<broadcast::Receiver<Token>>,
    closing: Option<watch::Receiver<bool>>,
    /// The last sequence number sent (or skipped as already seen).
    after: u64,
    pending: VecDeque<Record>,
    /// The terminal record was queued: send `end` after it and stop.
    ended: bool,
    first: bool,
}

enum Next {
    Record(Box<Record>),
    Token(Token),
    End,
    Stop,
}

/// What woke a follower up.
enum Woke {
    Append,
    Token(Token),
    Stop,
}

impl Follow {
    async fn next(&mut self) -> Next {
        loop {
            if let Some(r) = self.pending.pop_front() {
                return Next::Record(Box::new(r));
            }
            if self.ended {
                return Next::End;
            }
            if !self.first {
                match self.wait().await {
                    Woke::Append => {}
                    Woke::Token(t) => return Next::Token(t),
                    Woke::Stop => return Next::Stop,
                }
            }
            let first = std::mem::replace(&mut self.first, false);
            match self.rt.events_after(self.id, self.after) {
                Ok(records) => {
                    // Resumed after the terminal record: nothing more will come.
                    if first && records.is_empty() && self.rt.status(self.id).is_ok_and(|m| m.status.is_terminal()) {
                        self.ended = true;
                    }
                    for r in records {
                        self.after = self.after.max(r.seq);
                        self.ended |= r.event.is_terminal();
                        self.pending.push_back(r);
                    }
                }
                Err(e) => {
                    tracing::warn!(execution = %self.id, error = %e, "event stream cannot read the journal");
                    return Next::Stop;
                }
            }
        }
    }

    /// Until the next durable append, streamed token, or shutdown.
    async fn wait(&mut self) -> Woke {
        loop {
            if self.closing.as_ref().is_some_and(|c| *c.borrow()) {
                return Woke::Stop;
            }
            let token = async {
                match &mut self.tokens {
                    Some(rx) => Some(rx.recv().await),
                    None => std::future::pending().await,
                }
            };
            let closed = async {
                match &mut self.closing {
                    Some(c) => {
                        let _ = c.changed().await;
                    }
                    None => std::future::pending().await,
                }
            };
            // Tokens first: a piece streamed before the append that ends
            // the call goes out before the call's record.
            tokio::select! {
                biased;
                t = token => match t {
                    Some(Ok(t)) => return Woke::Token(t),
                    // Fell behind: those pieces are gone, the reply is whole in the record.
                    Some(Err(broadcast::error::RecvError::Lagged(_))) => continue,
                    Some(Err(broadcast::error::RecvError::Closed)) | None => self.tokens = None,
                },
                changed = self.feed.changed() => return if changed.is_ok() { Woke::Append } else { Woke::Stop },
                _ = closed => return Woke::Stop,
            }
        }
    }
}

fn events(follow: Follow) -> impl Stream<Item = Result<SseEvent, Infallible>> {
    futures::stream::unfold(Some(follow), |state| async move {
        let mut f = state?;
        match f.next().await {
            Next::Record(r) => {
                let data = serde_json::to_string(&r).unwrap_or_else(|e| json!({ "error": e.to_string() }).to_string());
                let ev = SseEvent::default().id(r.seq.to_string()).event(r.event.name()).data(data);
                Some((Ok(ev), Some(f)))
            }
            Next::Token(t) => {
                let data = serde_json::to_string(&t).unwrap_or_default();
                Some((Ok(SseEvent::default().event("token").data(data)), Some(f)))
            }
            Next::End => {
                let status = f.rt.status(f.id).map(|m| m.status.as_str()).unwrap_or("unknown");
                let ev = SseEvent::default().event("end").data(json!({ "status": status }).to_string());
                Some((Ok(ev), None))
            }
            Next::Stop => None,
        }
    })
}
