//! Sessions as stored: one record per session (a conversation of several
//! tasks, an A2A `contextId`, `jamjet run --session ID`), naming its
//! workflow and its executions in order.
//!
//! Stored layout, in the journal's one tree: `s{session id}` → the record
//! (version byte, postcard). It is written in the atomic batch of the
//! first append of each execution that joins the session (`Append::session`),
//! so a session names an execution exactly when that execution exists,
//! crash or not. Which execution is running is not stored: it is the last
//! one, while its index row is not terminal, so nothing has to be written
//! when a task ends. Ids hold no NUL byte and no control character
//! ([`check_session_id`]).

use serde::{Deserialize, Serialize};

use super::Error;
use crate::id::ExecutionId;

pub(super) const SESSION: u8 = b's';

/// The longest session id, in bytes.
pub const MAX_SESSION_ID_BYTES: usize = 512;

/// One session. Stored: fields only appended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRecord {
    pub id: String,
    /// The workflow its tasks run (every task of a session runs one workflow id).
    pub workflow_id: String,
    pub created_ms: u64,
    /// When its last task was started (the end of that task counts too:
    /// read from the task's index row).
    pub last_active_ms: u64,
    /// Its executions, oldest first.
    pub executions: Vec<ExecutionId>,
}

/// Why a session id cannot be used: empty, too long, or holding a NUL or
/// another control character.
pub fn check_session_id(id: &str) -> Result<(), String> {
    if id.trim().is_empty() {
        return Err("the session id is empty".to_string());
    }
    if id.len() > MAX_SESSION_ID_BYTES {
        return Err(format!("the session id is {} bytes long; the limit is {MAX_SESSION_ID_BYTES}", id.len()));
    }
    if id.chars().any(char::is_control) {
        return Err("the session id holds a control character".to_string());
    }
    Ok(())
}

pub(super) fn session_key(id: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(id.len() + 1);
    k.push(SESSION);
    k.extend_from_slice(id.as_bytes());
    k
}

pub(super) fn encode_session(record: &SessionRecord) -> Vec<u8> {
    super::versioned(postcard::to_stdvec(record).expect("a session record always encodes"))
}

pub(super) fn decode_session(bytes: &[u8]) -> Result<SessionRecord, Error> {
    postcard::from_bytes(super::unversioned(bytes, "session record")?)
        .map_err(|e| Error::Corrupt(format!("session record does not decode: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_round_trips_and_hostile_ids_are_refused() {
        let r = SessionRecord {
            id: "ctx-1".into(),
            workflow_id: "w".into(),
            created_ms: 5,
            last_active_ms: 9,
            executions: vec![ExecutionId::new(1), ExecutionId::new(2)],
        };
        assert_eq!(decode_session(&encode_session(&r)).unwrap(), r);
        assert!(decode_session(&[1, 0xff]).is_err());
        assert!(check_session_id("").is_err());
        assert!(check_session_id("a\0b").is_err());
        assert!(check_session_id(&"x".repeat(MAX_SESSION_ID_BYTES + 1)).is_err());
        assert!(check_session_id("ctx-é 1").is_ok());
    }
}
