//! Telling the store's other processes what became durable: every round
//! that appends records ends with `pg_notify` (delivered at COMMIT, never
//! for a round rolled back) naming each execution it appended to and its
//! new last sequence number; every journal listens on its schema's channel
//! and hands those notices to whoever follows executions here (the live
//! event streams of `jamjet dev`). A message sent to an execution's inbox
//! is announced as `sent:{hex}`, and a refusal written to one as
//! `answered:{row}` (an answer journaled with an append is announced by
//! that append's notice). A notice is a speed-up only: a lost one (a
//! dropped connection) is caught by the follower's own periodic look.

use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::sync::broadcast;

use super::super::inbox::InboxNotice;
use crate::id::ExecutionId;

/// The channel of the connection's current schema (stores sharing a
/// database do not hear each other): at most 63 bytes, as PostgreSQL wants.
pub(super) const CHANNEL_SQL: &str = "'jamjet_' || left(md5(current_schema()), 16)";

/// A payload stays under PostgreSQL's 8000-byte limit.
const PAYLOAD_BYTES: usize = 7000;

/// How many notices a slow follower may fall behind.
pub(super) const BACKLOG: usize = 4096;

/// The payloads that announce `last` (execution id bytes, last sequence
/// number), each `hex:seq,hex:seq,...`.
pub(super) fn payloads<'a>(last: impl Iterator<Item = (&'a [u8], i64)>) -> Vec<String> {
    let mut out = vec![String::new()];
    for (id, seq) in last {
        let item: String = id.iter().map(|b| format!("{b:02x}")).chain([format!(":{seq}")]).collect();
        let current = out.last_mut().expect("one payload at least");
        if !current.is_empty() && current.len() + 1 + item.len() > PAYLOAD_BYTES {
            out.push(item);
        } else {
            if !current.is_empty() {
                current.push(',');
            }
            current.push_str(&item);
        }
    }
    out.retain(|p| !p.is_empty());
    out
}

/// An execution id from its 32 hex digits.
fn from_hex(hex: &str) -> Option<ExecutionId> {
    if hex.len() != 32 {
        return None;
    }
    let mut bytes = [0u8; 16];
    for (i, b) in bytes.iter_mut().enumerate() {
        *b = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(ExecutionId::from_bytes(bytes))
}

/// Parse a payload of appends (unknown items are skipped: a newer writer may say more).
fn parse(payload: &str) -> impl Iterator<Item = (ExecutionId, u64)> + '_ {
    payload.split(',').filter_map(|item| {
        let (hex, seq) = item.split_once(':')?;
        Some((from_hex(hex)?, seq.parse().ok()?))
    })
}

/// Parse a payload about inboxes (`sent:{hex}`, `answered:{row}`).
fn parse_inbox(payload: &str) -> Option<InboxNotice> {
    let (kind, rest) = payload.split_once(':')?;
    match kind {
        "sent" => Some(InboxNotice::Sent(from_hex(rest)?)),
        "answered" => Some(InboxNotice::Answered(rest.parse().ok()?)),
        _ => None,
    }
}

/// The payload announcing a message sent to `execution`'s inbox.
pub(super) fn sent(execution: ExecutionId) -> String {
    let hex: String = execution.to_bytes().iter().map(|b| format!("{b:02x}")).collect();
    format!("sent:{hex}")
}

/// Where the listener hands what it hears.
#[derive(Clone)]
pub(super) struct Hearers {
    pub appends: broadcast::Sender<(ExecutionId, u64)>,
    pub inbox: broadcast::Sender<InboxNotice>,
}

/// Listen on `channel` for as long as the journal's runtime runs, passing
/// every notice to `tx`; a lost connection is made again (after a pause).
pub(super) async fn listen(pool: PgPool, channel: String, tx: Hearers) {
    loop {
        let Err(e) = listen_once(&pool, &channel, &tx).await;
        tracing::debug!(error = %e, "PostgreSQL notices: the listening connection failed; listening again");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Listen on one connection until it fails.
async fn listen_once(pool: &PgPool, channel: &str, tx: &Hearers) -> Result<std::convert::Infallible, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(channel).await?;
    loop {
        let n = listener.recv().await?;
        if let Some(notice) = parse_inbox(n.payload()) {
            let _ = tx.inbox.send(notice);
            continue;
        }
        for notice in parse(n.payload()) {
            let _ = tx.appends.send(notice);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_split_under_the_limit_and_parse_back() {
        let ids: Vec<[u8; 16]> = (0..500u32).map(|n| ExecutionId::new(1_000 + n as u64).to_bytes()).collect();
        let all = payloads(ids.iter().enumerate().map(|(i, id)| (id.as_slice(), i as i64)));
        assert!(all.len() > 1 && all.iter().all(|p| p.len() <= PAYLOAD_BYTES), "{}", all.len());
        let back: Vec<(ExecutionId, u64)> = all.iter().flat_map(|p| parse(p).collect::<Vec<_>>()).collect();
        assert_eq!(back.len(), 500);
        assert_eq!(back[7], (ExecutionId::from_bytes(ids[7]), 7));
        assert_eq!(parse("zz:1,00:2,").count(), 0, "bad items are skipped");
        let id = ExecutionId::from_bytes(ids[3]);
        assert_eq!(parse_inbox(&sent(id)), Some(InboxNotice::Sent(id)));
        assert_eq!(parse_inbox("answered:42"), Some(InboxNotice::Answered(42)));
        assert_eq!(parse(&sent(id)).count(), 0, "an older reader skips inbox notices");
        assert_eq!(parse_inbox("answered:x"), None);
    }
}
