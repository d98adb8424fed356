//! Token streaming (`stream: true` on a model node): the pieces of a reply
//! as the provider writes them, handed to whoever follows the execution
//! (`jamjet run --follow`, the SSE stream of `jamjet dev`) while the call
//! is still under way.
//!
//! Tokens are not journaled: only the whole reply is, once, with the
//! node's completion, exactly as without streaming. What a follower saw of
//! an attempt that died (a crash, a dropped connection) is not undone; the
//! call is sent again with the same `Idempotency-Key`, and the new stream's
//! tokens are marked `restarted`, so a follower knows to start the text
//! over.
//!
//! A branch's or sub-workflow's tokens go to its own followers and to its
//! root execution's, marked [`Inside`]: `jamjet run --follow` of a fan-out
//! of streaming agents shows each branch's text.
//!
//! [`Tokens`] keeps one broadcast channel per execution someone follows: a
//! token of an execution nobody follows costs a map lookup. A follower that
//! falls [`BACKLOG`] tokens behind misses the oldest (and is told so by the
//! channel), never slows the call.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::id::ExecutionId;

/// Tokens a slow follower may fall behind before it misses some.
pub const BACKLOG: usize = 4096;
/// Above this many channels, `subscribe` drops those nobody follows.
const SWEEP_AT: usize = 1024;

/// A piece of a model's reply, as streamed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Token {
    pub node: String,
    pub visit: u32,
    pub attempt: u32,
    /// Its place in this stream, from 0.
    pub n: u64,
    pub text: String,
    /// An earlier stream of this visit ended before its reply was
    /// journaled (a retry, or a crash): this one starts the text over.
    pub restarted: bool,
    /// A token of a branch or sub-workflow, as its root execution's
    /// followers get it: where it was written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inside: Option<Inside>,
}

/// The branch or sub-workflow a token was written in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inside {
    /// Its own execution.
    pub execution: ExecutionId,
    /// The node of its parent that started it, and which of its children it is.
    pub parent_node: String,
    pub branch: u32,
}

/// The channels of the executions someone follows.
#[derive(Clone)]
pub struct Tokens {
    channels: Arc<Mutex<HashMap<ExecutionId, broadcast::Sender<Token>>>>,
    /// Every execution's tokens, for a follower that subscribes before it
    /// knows the execution's id (`jamjet run --follow` before it submits).
    all: broadcast::Sender<(ExecutionId, Token)>,
}

impl Default for Tokens {
    fn default() -> Self {
        Tokens { channels: Arc::default(), all: broadcast::channel(BACKLOG).0 }
    }
}

impl Tokens {
    /// Follow every execution's tokens from now on.
    pub fn subscribe_all(&self) -> broadcast::Receiver<(ExecutionId, Token)> {
        self.all.subscribe()
    }

    /// Follow `id`'s tokens from now on.
    pub fn subscribe(&self, id: ExecutionId) -> broadcast::Receiver<Token> {
        let mut channels = self.channels.lock().expect("tokens lock");
        if channels.len() >= SWEEP_AT {
            channels.retain(|_, tx| tx.receiver_count() > 0);
        }
        channels.entry(id).or_insert_with(|| broadcast::channel(BACKLOG).0).subscribe()
    }

    /// Hand `token` of `id` to its followers, if it has any.
    pub fn publish(&self, id: ExecutionId, token: Token) {
        if self.all.receiver_count() > 0 {
            let _ = self.all.send((id, token.clone()));
        }
        let mut channels = self.channels.lock().expect("tokens lock");
        if let Some(tx) = channels.get(&id) {
            if tx.receiver_count() == 0 {
                channels.remove(&id);
            } else {
                let _ = tx.send(token);
            }
        }
    }
}

/// Where one model call's tokens go: its execution's followers, as this
/// node visit's attempt.
pub struct StreamTo<'a> {
    pub tokens: &'a Tokens,
    pub execution: ExecutionId,
    pub node: &'a str,
    pub visit: u32,
    pub attempt: u32,
    pub restarted: bool,
    /// For a branch or sub-workflow: its root execution, whose followers
    /// get its tokens too, and where in the tree it is.
    pub root: Option<&'a (ExecutionId, Inside)>,
}

impl StreamTo<'_> {
    /// A piece of text, the `n`th of the stream.
    pub fn send(&self, n: u64, text: &str) {
        if text.is_empty() {
            return;
        }
        let token = Token {
            node: self.node.to_string(),
            visit: self.visit,
            attempt: self.attempt,
            n,
            text: text.to_string(),
            restarted: self.restarted,
            inside: None,
        };
        if let Some((root, inside)) = self.root {
            self.tokens.publish(*root, Token { inside: Some(inside.clone()), ..token.clone() });
        }
        self.tokens.publish(self.execution, token);
    }
}

/// Where a follower reads streamed tokens from, subscribed before the
/// execution could stream: one execution's channel, or every execution's
/// (subscribed before the id was known).
pub enum TokenRx {
    One(broadcast::Receiver<Token>),
    All(broadcast::Receiver<(ExecutionId, Token)>),
}

impl TokenRx {
    /// The next token of `id`; `None` once nothing more can come. A
    /// follower that fell behind skips what it missed: the record that
    /// ends the call holds the whole reply.
    pub async fn next(&mut self, id: ExecutionId) -> Option<Token> {
        use broadcast::error::RecvError;
        loop {
            match self {
                TokenRx::One(rx) => match rx.recv().await {
                    Ok(t) => return Some(t),
                    Err(RecvError::Lagged(_)) => {}
                    Err(RecvError::Closed) => return None,
                },
                TokenRx::All(rx) => match rx.recv().await {
                    Ok((of, t)) if of == id => return Some(t),
                    Ok(_) | Err(RecvError::Lagged(_)) => {}
                    Err(RecvError::Closed) => return None,
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_reach_followers_in_order_and_cost_nothing_without_them() {
        let tokens = Tokens::default();
        let id = ExecutionId::new(1);
        let to = StreamTo {
            tokens: &tokens,
            execution: id,
            node: "ask",
            visit: 1,
            attempt: 1,
            restarted: false,
            root: None,
        };
        to.send(0, "lost");
        assert!(tokens.channels.lock().unwrap().is_empty(), "no follower, no channel");
        let mut rx = tokens.subscribe(id);
        to.send(0, "Hel");
        to.send(1, "");
        to.send(2, "lo");
        assert_eq!(rx.try_recv().unwrap().text, "Hel");
        assert_eq!(rx.try_recv().unwrap().n, 2);
        assert!(rx.try_recv().is_err());
        drop(rx);
        to.send(3, "gone");
        assert!(tokens.channels.lock().unwrap().is_empty(), "a channel nobody follows is dropped");
    }
}
