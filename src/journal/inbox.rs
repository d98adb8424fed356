//! An execution's inbox, in a store many processes share: what is sent to
//! an execution that another live process runs (a signal, an approval's
//! decision, a cancel, an event published by key) waits here, durable, until its owner takes it.
//!
//! The sender writes one row and notifies the store's processes; the owner
//! takes its executions' open rows in order and delivers each as if it had
//! been sent to it. The answer is written in the same transaction as the
//! append that journals the delivery ([`WaitChange::Answered`](super::WaitChange::Answered)),
//! fenced like any append: so a message is journaled exactly once, by
//! whoever holds the execution when it is taken, and never after it was
//! withdrawn. A refusal (the execution has finished, waits on no approval)
//! journals nothing and is written alone. The sender reads the answer and
//! removes the row; a sender that stops waiting withdraws a row nobody
//! took, so nothing it gave up on is delivered later.
//!
//! Stored as JSON (`inbox.message`, `inbox.answer`): an operator reads
//! them with `psql`; fields are only ever appended.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Status;
use crate::id::ExecutionId;

/// What was sent to an execution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Message {
    /// An external event for a `wait` node.
    Signal {
        key: String,
        payload: Value,
    },
    /// A decision for an `approval` node (or, with `call`, one pending tool call).
    Approve {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        node: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        call: Option<String>,
        approved: bool,
        by: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        comment: Option<String>,
    },
    Cancel {
        reason: String,
    },
    /// An event published by key: journaled only if a node of the
    /// execution waits for `key` when its owner takes it (refused as not
    /// waiting otherwise, so the publisher can keep it for a later wait).
    Event {
        key: String,
        payload: Value,
    },
}

impl Message {
    /// What it is, in a few words ("signal `go`", "cancel").
    pub fn describe(&self) -> String {
        match self {
            Message::Signal { key, .. } => format!("signal `{key}`"),
            Message::Approve { approved: true, .. } => "approval".to_string(),
            Message::Approve { approved: false, .. } => "rejection".to_string(),
            Message::Cancel { .. } => "cancel".to_string(),
            Message::Event { key, .. } => format!("event `{key}`"),
        }
    }
}

/// How the owner answered a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "answer", rename_all = "snake_case")]
pub enum Answer {
    /// Journaled; `node` is the node an approval decided.
    Done {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        node: Option<String>,
    },
    /// Refused, nothing journaled.
    Refused(Refusal),
}

/// Why the owner refused a message (what the sender's error is made of).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "why", rename_all = "snake_case")]
pub enum Refusal {
    /// The execution is not in the store.
    Unknown,
    /// It has finished.
    Finished { status: Status },
    /// It waits on no such approval or tool call (the message says what).
    NotWaiting { message: String },
    /// Anything else, in words.
    Other { message: String },
}

/// An open message of an execution this process owns.
#[derive(Debug, Clone, PartialEq)]
pub struct Letter {
    /// Its row: ids grow in the order messages were sent.
    pub row: u64,
    pub execution: ExecutionId,
    pub message: Message,
    /// The process that sent it (its worker id).
    pub sender: String,
}

/// What the store's processes hear of inboxes (a speed-up only: each side
/// also looks by itself now and then).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InboxNotice {
    /// A message was sent to this execution.
    Sent(ExecutionId),
    /// This row was answered.
    Answered(u64),
}

pub(super) fn encode<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("inbox values always serialize")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_and_answers_read_back_as_written() {
        let sent = [
            Message::Signal { key: "go".into(), payload: serde_json::json!({"n": 1}) },
            Message::Approve { node: None, call: Some("c1".into()), approved: false, by: "ana".into(), comment: None },
            Message::Cancel { reason: "stop".into() },
        ];
        for m in sent {
            let back: Message = serde_json::from_str(&encode(&m)).unwrap();
            assert_eq!(back, m);
        }
        let answers = [
            Answer::Done { node: Some("review".into()) },
            Answer::Refused(Refusal::Finished { status: Status::Completed }),
            Answer::Refused(Refusal::NotWaiting { message: "has no approval".into() }),
        ];
        for a in answers {
            let back: Answer = serde_json::from_str(&encode(&a)).unwrap();
            assert_eq!(back, a);
        }
        assert_eq!(encode(&Message::Cancel { reason: "x".into() }), r#"{"kind":"cancel","reason":"x"}"#);
    }
}
