//! The external-event mailbox as stored: the wait index (which executions
//! wait for events with a key) and the kept events (published while no
//! execution waited for their key, kept for a bounded time).
//!
//! Stored layout, in the journal's one tree:
//! `v{key}\0{exec:16}` → the wait index, written in the batch of the events
//! that make the execution wait for `key` or stop waiting (as the timer
//! index is); `m{key}\0{id:16}` → a kept event ([`KeptEvent`], oldest
//! first per key: ids sort by time); `n{until:u64 BE}{id:16}{key}` → the
//! kept events by expiry, so "which have expired" is one range scan.
//! Keys hold no NUL byte ([`check_key`]), so `{key}\0` is a prefix of
//! exactly that key's entries.

use serde::{Deserialize, Serialize};

use super::{Error, Json};
use crate::id::ExecutionId;

pub(super) const WAIT: u8 = b'v';
pub(super) const KEPT: u8 = b'm';
pub(super) const EXPIRY: u8 = b'n';

/// The longest event key, in bytes.
pub const MAX_KEY_BYTES: usize = 512;

/// A change to the mailbox, in the atomic batch of an execution's events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WaitChange {
    /// The execution now waits for events with this key.
    Wait(String),
    /// It no longer does.
    Unwait(String),
    /// A kept event was handed to the execution (its `SignalReceived` is in
    /// the batch): remove it, so no other execution receives it.
    Take(KeptRef),
    /// A message of the execution's inbox (a shared store's: see
    /// `inbox.rs`) is journaled by this batch: its row is answered in the
    /// same transaction, so it is taken exactly once. Stores one process
    /// holds have no inbox and ignore it.
    Answered(u64, super::inbox::Answer),
}

/// Where a kept event is stored.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeptRef {
    pub key: String,
    /// Unique, and sorts by the time it was kept.
    pub id: [u8; 16],
    /// When it expires (unix ms).
    pub until_ms: u64,
}

/// An event published while no execution waited for its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeptEvent {
    pub at: KeptRef,
    pub published_ms: u64,
    pub payload: Json,
}

/// What is stored under a kept event's key. Stored: fields only appended.
#[derive(Serialize, Deserialize)]
struct Stored {
    published_ms: u64,
    until_ms: u64,
    payload: Json,
}

/// Why an event key cannot be used: empty, too long, or holding a NUL.
pub fn check_key(key: &str) -> Result<(), String> {
    if key.is_empty() {
        return Err("the event key is empty".to_string());
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(format!("the event key is {} bytes long; the limit is {MAX_KEY_BYTES}", key.len()));
    }
    if key.contains('\0') {
        return Err("the event key holds a NUL character".to_string());
    }
    Ok(())
}

/// `{prefix}{key}\0`: where the entries of one key start.
pub(super) fn key_prefix(prefix: u8, key: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(key.len() + 18);
    k.push(prefix);
    k.extend_from_slice(key.as_bytes());
    k.push(0);
    k
}

pub(super) fn wait_key(key: &str, id: ExecutionId) -> Vec<u8> {
    let mut k = key_prefix(WAIT, key);
    k.extend_from_slice(&id.to_bytes());
    k
}

pub(super) fn kept_key(at: &KeptRef) -> Vec<u8> {
    let mut k = key_prefix(KEPT, &at.key);
    k.extend_from_slice(&at.id);
    k
}

pub(super) fn expiry_key(at: &KeptRef) -> Vec<u8> {
    let mut k = Vec::with_capacity(25 + at.key.len());
    k.push(EXPIRY);
    k.extend_from_slice(&at.until_ms.to_be_bytes());
    k.extend_from_slice(&at.id);
    k.extend_from_slice(at.key.as_bytes());
    k
}

/// The key and execution of a wait index entry.
pub(super) fn decode_wait_key(k: &[u8]) -> Result<(String, ExecutionId), Error> {
    let bad = || Error::Corrupt(format!("a wait index key of {} bytes", k.len()));
    if k.len() < 18 || k.first() != Some(&WAIT) || k[k.len() - 17] != 0 {
        return Err(bad());
    }
    let key = std::str::from_utf8(&k[1..k.len() - 17]).map_err(|_| bad())?;
    let id: [u8; 16] = k[k.len() - 16..].try_into().map_err(|_| bad())?;
    Ok((key.to_string(), ExecutionId::from_bytes(id)))
}

/// The kept event under `k` holding `v`.
pub(super) fn decode_kept(k: &[u8], v: &[u8]) -> Result<KeptEvent, Error> {
    let bad = |what: String| Error::Corrupt(format!("kept event: {what}"));
    if k.len() < 18 || k.first() != Some(&KEPT) || k[k.len() - 17] != 0 {
        return Err(bad(format!("a key of {} bytes", k.len())));
    }
    let key = std::str::from_utf8(&k[1..k.len() - 17]).map_err(|_| bad("its key is not text".into()))?;
    let id: [u8; 16] = k[k.len() - 16..].try_into().map_err(|_| bad("no id".into()))?;
    decode_kept_parts(key, id, v)
}

/// The kept event of `key` and `id` stored as `v` (a store that keeps the
/// key and the id in columns of their own).
pub(super) fn decode_kept_parts(key: &str, id: [u8; 16], v: &[u8]) -> Result<KeptEvent, Error> {
    let stored: Stored = postcard::from_bytes(super::unversioned(v, "kept event")?)
        .map_err(|e| Error::Corrupt(format!("kept event: does not decode: {e}")))?;
    Ok(KeptEvent {
        at: KeptRef { key: key.to_string(), id, until_ms: stored.until_ms },
        published_ms: stored.published_ms,
        payload: stored.payload,
    })
}

/// The kept event an expiry index entry names.
pub(super) fn decode_expiry_key(k: &[u8]) -> Result<KeptRef, Error> {
    let bad = || Error::Corrupt(format!("a kept event expiry key of {} bytes", k.len()));
    if k.len() < 26 || k.first() != Some(&EXPIRY) {
        return Err(bad());
    }
    let until_ms = u64::from_be_bytes(k[1..9].try_into().map_err(|_| bad())?);
    let id: [u8; 16] = k[9..25].try_into().map_err(|_| bad())?;
    let key = std::str::from_utf8(&k[25..]).map_err(|_| bad())?;
    Ok(KeptRef { key: key.to_string(), id, until_ms })
}

pub(super) fn encode_kept(event: &KeptEvent) -> Vec<u8> {
    let stored =
        Stored { published_ms: event.published_ms, until_ms: event.at.until_ms, payload: event.payload.clone() };
    super::versioned(postcard::to_stdvec(&stored).expect("a kept event always encodes"))
}

/// The writes that apply `changes` of `execution` (an empty value removes).
pub(super) fn writes(execution: ExecutionId, changes: &[WaitChange]) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut out = Vec::with_capacity(changes.len() * 2);
    for change in changes {
        match change {
            WaitChange::Wait(key) => out.push((wait_key(key, execution), vec![1])),
            WaitChange::Unwait(key) => out.push((wait_key(key, execution), Vec::new())),
            WaitChange::Take(at) => {
                out.push((kept_key(at), Vec::new()));
                out.push((expiry_key(at), Vec::new()));
            }
            WaitChange::Answered(..) => {}
        }
    }
    out
}

/// The writes that keep `event`.
pub(super) fn keep_writes(event: &KeptEvent) -> Vec<(Vec<u8>, Vec<u8>)> {
    vec![(kept_key(&event.at), encode_kept(event)), (expiry_key(&event.at), vec![1])]
}

/// The writes that drop kept events.
pub(super) fn forget_writes(kept: &[KeptRef]) -> Vec<(Vec<u8>, Vec<u8>)> {
    kept.iter().flat_map(|at| [(kept_key(at), Vec::new()), (expiry_key(at), Vec::new())]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_decode_to_what_made_them() {
        let id = ExecutionId::new(1_700_000_000_000);
        assert_eq!(decode_wait_key(&wait_key("payment:42", id)).unwrap(), ("payment:42".to_string(), id));
        let at = KeptRef { key: "a\u{e9}b".into(), id: [7; 16], until_ms: 99 };
        assert_eq!(decode_expiry_key(&expiry_key(&at)).unwrap(), at);
        let ev = KeptEvent { at: at.clone(), published_ms: 5, payload: Json("{\"x\":1}".into()) };
        assert_eq!(decode_kept(&kept_key(&at), &encode_kept(&ev)).unwrap(), ev);
        assert!(decode_wait_key(b"vx").is_err());
        assert!(decode_kept(&kept_key(&at), &[1, 0xff]).is_err());
    }

    #[test]
    fn a_key_is_refused_empty_too_long_or_with_a_nul() {
        assert!(check_key("payment:42").is_ok());
        assert!(check_key("").unwrap_err().contains("empty"));
        assert!(check_key(&"k".repeat(MAX_KEY_BYTES + 1)).unwrap_err().contains("limit is 512"));
        assert!(check_key("a\0b").unwrap_err().contains("NUL"));
    }
}
