//! Execution ids: `exec_` followed by a ULID, so ids sort by creation time.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use ulid::Ulid;

/// The id of one execution, printed as `exec_01JM4X8NKWP2...`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct ExecutionId(Ulid);

impl ExecutionId {
    /// A new id for an execution created at `now_ms`.
    pub fn new(now_ms: u64) -> Self {
        let time = std::time::UNIX_EPOCH + std::time::Duration::from_millis(now_ms);
        ExecutionId(Ulid::from_datetime(time))
    }

    /// The id of a child execution (a parallel branch, a sub-workflow):
    /// derived from the parent and the place that starts it, so a parent
    /// that crashed before or after starting it finds the same child again.
    /// It keeps the parent's timestamp, so children sort beside it.
    pub fn child(parent: ExecutionId, node: &str, visit: u32, attempt: u32, branch: u32) -> Self {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update(parent.to_bytes());
        h.update(node.as_bytes());
        for n in [visit, attempt, branch] {
            h.update(n.to_be_bytes());
        }
        let digest = h.finalize();
        let mut random = [0u8; 16];
        random[6..].copy_from_slice(&digest[..10]);
        ExecutionId(Ulid::from_parts(parent.0.timestamp_ms(), u128::from_be_bytes(random)))
    }

    /// The id's 16 bytes, big-endian, for keys that sort by time.
    pub fn to_bytes(self) -> [u8; 16] {
        self.0.to_bytes()
    }

    pub fn from_bytes(bytes: [u8; 16]) -> Self {
        ExecutionId(Ulid::from_bytes(bytes))
    }
}

impl fmt::Display for ExecutionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "exec_{}", self.0)
    }
}

/// A string that is not an execution id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{0}` is not an execution id (expected exec_ followed by 26 characters, like exec_01JM4X8NKWP2ZZ3Q6T1B2C3D4E)"
)]
pub struct BadExecutionId(pub String);

impl FromStr for ExecutionId {
    type Err = BadExecutionId;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let rest = s.strip_prefix("exec_").ok_or_else(|| BadExecutionId(s.to_string()))?;
        Ulid::from_string(rest).map(ExecutionId).map_err(|_| BadExecutionId(s.to_string()))
    }
}

impl From<ExecutionId> for String {
    fn from(id: ExecutionId) -> String {
        id.to_string()
    }
}

impl TryFrom<String> for ExecutionId {
    type Error = BadExecutionId;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_junk() {
        let id = ExecutionId::new(1_700_000_000_000);
        let text = id.to_string();
        assert!(text.starts_with("exec_") && text.len() == 31);
        assert_eq!(text.parse::<ExecutionId>().unwrap(), id);
        assert!("exec_nope".parse::<ExecutionId>().is_err());
        assert!("01JM4X8NKWP2ZZ3Q6T1B2C3D4E".parse::<ExecutionId>().is_err());
    }
}
