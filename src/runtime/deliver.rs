//! Moving executions on from the outside: a signal to one execution, an
//! event published by key, an approval's decision, a cancellation. Each
//! goes through the supervisor, which journals it before answering.

use std::time::Duration;

use serde_json::Value;

use super::{Decision, Error, Runtime};
use crate::id::ExecutionId;
use crate::journal::inbox::Message;
use crate::journal::{self, Event, Status};

impl Runtime {
    /// Deliver an external event to an execution's `wait` nodes: it is
    /// journaled before this returns, and consumed by the wait for `key`
    /// now, or when the execution reaches it. An unknown or finished
    /// execution is an error, and nothing is journaled.
    ///
    /// In a store many processes share, a signal for an execution another
    /// live process runs goes through its inbox; this returns once that
    /// process has journaled it (see [`ANSWER_WITHIN`](super::ANSWER_WITHIN)).
    pub async fn signal(&self, id: ExecutionId, key: &str, payload: Value) -> Result<(), Error> {
        self.deliver_here(id, Message::Signal { key: key.to_string(), payload }).await.map(|_| ())
    }

    /// Publish an external event by key: every execution waiting for `key`
    /// (live or hibernated) receives it, as `signal` would deliver it. When
    /// none does, the event is kept, durably, for `keep` (default
    /// [`DEFAULT_KEEP`](crate::actors::DEFAULT_KEEP), at most
    /// [`MAX_KEEP`](crate::actors::MAX_KEEP); zero keeps nothing) and the
    /// first execution that reaches a wait for `key` receives it. Returns
    /// who received it, or until when it is kept.
    ///
    /// In a store many processes share, an execution waiting for `key`
    /// that another live process runs is sent the event through its inbox
    /// (as [`signal`](Self::signal) is) and counts as a receiver once its
    /// owner journaled it; the event is kept only if no execution, here or
    /// there, took it.
    pub async fn publish(
        &self,
        key: &str,
        payload: Value,
        keep: Option<Duration>,
    ) -> Result<crate::actors::Published, Error> {
        journal::check_event_key(key).map_err(Error::InvalidEvent)?;
        let keep = keep.unwrap_or(crate::actors::DEFAULT_KEEP);
        if keep > crate::actors::MAX_KEEP {
            return Err(Error::InvalidEvent(format!(
                "keep {} s is longer than an event may be kept ({} s, 30 days)",
                keep.as_secs(),
                crate::actors::MAX_KEEP.as_secs()
            )));
        }
        let (services, supervisor) = (&self.inner.services, &self.inner.supervisor);
        let publication = services.mailbox.publish(services, supervisor, key, payload.clone(), keep).await?;
        let mut published = publication.published;
        if publication.elsewhere.is_empty() {
            return Ok(published);
        }
        let sent = publication.elsewhere.iter().map(|&id| {
            let message = Message::Event { key: key.to_string(), payload: payload.clone() };
            async move { (id, self.deliver_here(id, message).await) }
        });
        for (id, result) in futures::future::join_all(sent).await {
            match result {
                Ok(_) => published.delivered.push(id),
                // It stopped waiting (resolved, timed out, ended) meanwhile.
                Err(Error::NotWaiting { .. } | Error::Finished { .. } | Error::UnknownExecution(_)) => {}
                Err(e) => tracing::warn!(execution_id = %id, key, error = %e, "a published event was not delivered"),
            }
        }
        published.delivered.sort_unstable();
        if published.delivered.is_empty() && !keep.is_zero() {
            published.kept_until_ms = Some(services.mailbox.keep(services, supervisor, key, payload, keep).await?);
        }
        Ok(published)
    }

    /// Decide the approval an execution waits on (`node` picks one when
    /// it matters), or one of its pending tool calls (`call`). `by` is who
    /// decided; it is journaled with the time. Returns the node decided. A
    /// second decision is refused and names the first (an execution
    /// another process runs is sent the decision, as [`signal`](Self::signal)
    /// says); a call that does
    /// not wait (unknown, of another execution) is refused naming the
    /// execution, the call and what does wait.
    pub async fn approve(&self, id: ExecutionId, decision: Decision) -> Result<String, Error> {
        let d = &decision;
        let (node, call) = (d.node.as_deref(), d.call.as_deref());
        let message = Message::Approve {
            node: d.node.clone(),
            call: d.call.clone(),
            approved: d.approved,
            by: d.by.clone(),
            comment: d.comment.clone(),
        };
        let result = self.deliver_here(id, message).await.map(Option::unwrap_or_default);
        match result {
            // The first decision may have carried the execution to its end.
            Err(Error::Finished { id, status }) => Err(self.decided_before(id, node, call, status)),
            other => other,
        }
    }

    /// Why an approval for a finished execution is refused: who decided it.
    fn decided_before(&self, id: ExecutionId, node: Option<&str>, call: Option<&str>, status: Status) -> Error {
        let records = self.events(id).unwrap_or_default();
        let decided = records.iter().rev().find_map(|r| match (&r.event, call) {
            (Event::ApprovalDecided { node: n, approved, by, .. }, None) if node.is_none_or(|want| want == n) => {
                Some((format!("approval `{n}`"), *approved, by.clone(), r.at_ms))
            }
            (Event::CallDecided { call: c, approved, by, .. }, Some(want)) if want == c => {
                Some((format!("tool call `{c}`"), *approved, by.clone(), r.at_ms))
            }
            _ => None,
        });
        match decided {
            Some((what, approved, by, at)) => Error::NotWaiting {
                id,
                message: format!(
                    "{what} was already decided: {} by {by} at {} (the execution has since {})",
                    if approved { "approved" } else { "rejected" },
                    crate::clock::format_ms(at),
                    match status {
                        Status::Completed => "completed",
                        Status::Failed => "failed",
                        Status::Cancelled => "been cancelled",
                        _ => "moved on",
                    }
                ),
            },
            None => match call {
                Some(c) => Error::NotWaiting {
                    id,
                    message: format!("has no tool call `{c}` waiting for a decision (the execution is {status})"),
                },
                None => Error::Finished { id, status },
            },
        }
    }

    /// Cancel a running or waiting execution: its running nodes are
    /// stopped, its children cancelled, and `ExecutionCancelled` journaled;
    /// it never resumes.
    pub async fn cancel(&self, id: ExecutionId, reason: &str) -> Result<(), Error> {
        self.deliver_here(id, Message::Cancel { reason: reason.to_string() }).await.map(|_| ())
    }
}
