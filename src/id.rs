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
    "`{0}` is not an execution id (expected exec_ followed by 26 characters of Crockford base 32 in capitals, the first 0-7, like exec_01JM4X8NKWP2ZZ3Q6T1B2C3D4E)"
)]
pub struct BadExecutionId(pub String);

/// The digits of Crockford's base 32, as ids are written.
const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

impl FromStr for ExecutionId {
    type Err = BadExecutionId;
    /// Strict: exactly the form ids are printed in, so no two spellings
    /// name one execution. (A ULID parser accepts lower case and folds
    /// `I`, `L`, `O`; and 26 digits of base 32 hold 130 bits, so a first
    /// digit above 7 overflows into another id.)
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadExecutionId(s.chars().take(64).collect());
        let rest = s.strip_prefix("exec_").ok_or_else(bad)?;
        let digits = rest.as_bytes();
        if digits.len() != 26 || !digits.iter().all(|b| CROCKFORD.contains(b)) || digits[0] > b'7' {
            return Err(bad());
        }
        let id = Ulid::from_string(rest).map(ExecutionId).map_err(|_| bad())?;
        if id.0.to_string() != rest {
            return Err(bad());
        }
        Ok(id)
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

    #[test]
    fn one_spelling_per_id() {
        let id = ExecutionId::new(1_700_000_000_000);
        let text = id.to_string();
        let body = &text[5..];
        // Lower case, and the letters a ULID parser folds (I, L -> 1; O -> 0).
        assert!(format!("exec_{}", body.to_lowercase()).parse::<ExecutionId>().is_err());
        let folded = format!("exec_{}", body.replacen('1', "I", 1));
        if folded != text {
            assert!(folded.parse::<ExecutionId>().is_err(), "{folded}");
        }
        // A first digit past 7 overflows 128 bits: once it aliased a real id.
        for first in ['8', '9', 'G', 'Z'] {
            let over = format!("exec_{first}{}", &body[1..]);
            assert!(over.parse::<ExecutionId>().is_err(), "{over}");
        }
        assert!(format!("{text}0").parse::<ExecutionId>().is_err());
        assert!("exec_7ZZZZZZZZZZZZZZZZZZZZZZZZZ".parse::<ExecutionId>().is_ok(), "the largest id");
    }
}
