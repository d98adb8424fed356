//! The sled store's index of the execution rows that have not completed,
//! by status (running, waiting, failed, cancelled), so a page of the
//! execution list filtered by one of them reads the rows that match and
//! no others: `status=failed` when none failed reads nothing, however many
//! executions the store holds.
//!
//! `i{status}{id}`, empty values, written in the batch that writes the
//! row ([`writes`]: the row before and after), so as durable as it.
//! Completed rows are not in it: most rows are completed, so a scan of
//! the rows themselves finds a page of them at once, and an execution that
//! starts and completes in one batch (most short ones) costs the index
//! nothing. The marker `q` says it holds every row: a store written before
//! it, or one `jamjet repair` changed, has no marker, and opening it builds
//! the index again from the rows (removing what was there first). A page
//! read through it checks each row it finds against the filter again, so
//! an entry left behind by damage lists nothing wrong.

use super::wal::Batch;
use super::{ExecutionId, ExecutionMeta, Status};

pub(super) const BY_STATUS: u8 = b'i';
/// Present (value: the format, 1) once the index holds every row.
pub(super) const INDEXED: u8 = b'q';

pub(super) fn marker() -> Vec<u8> {
    vec![INDEXED]
}

/// The index's byte for status `s`; `None` for completed (not indexed).
fn status_byte(s: Status) -> Option<u8> {
    match s {
        Status::Running => Some(0),
        Status::Waiting => Some(1),
        Status::Completed => None,
        Status::Failed => Some(3),
        Status::Cancelled => Some(4),
    }
}

/// The key prefix of the rows with status `s`, when it is indexed.
pub(super) fn status_prefix(s: Status) -> Option<Vec<u8>> {
    Some(vec![BY_STATUS, status_byte(s)?])
}

/// `prefix` followed by `id`: one entry.
pub(super) fn entry(prefix: &[u8], id: ExecutionId) -> Vec<u8> {
    let mut k = Vec::with_capacity(prefix.len() + 16);
    k.extend_from_slice(prefix);
    k.extend_from_slice(&id.to_bytes());
    k
}

/// The execution an entry names (its last 16 bytes).
pub(super) fn id_of(key: &[u8]) -> Option<ExecutionId> {
    let at = key.len().checked_sub(16)?;
    Some(ExecutionId::from_bytes(key[at..].try_into().ok()?))
}

/// The writes that keep the index right when a row goes from `old`
/// (`None`: a new row) to `new` (`None`: removed).
pub(super) fn writes(old: Option<&ExecutionMeta>, new: Option<&ExecutionMeta>) -> Batch {
    let key = |m: &ExecutionMeta| status_prefix(m.status).map(|p| entry(&p, m.id));
    let (before, after) = (old.and_then(key), new.and_then(key));
    if before == after {
        return Vec::new();
    }
    before.map(|k| (k, Vec::new())).into_iter().chain(after.map(|k| (k, vec![1]))).collect()
}

#[cfg(test)]
mod tests {
    use super::super::RowFilter;
    use super::*;

    fn row(status: Status, workflow: &str) -> ExecutionMeta {
        ExecutionMeta {
            id: ExecutionId::from_bytes([7; 16]),
            workflow_id: workflow.into(),
            workflow_version: "1".into(),
            workflow_hash: "h".into(),
            status,
            created_ms: 7,
            updated_ms: 7,
            key: None,
        }
    }

    #[test]
    fn a_row_writes_its_entry_moves_it_with_its_status_and_a_completed_row_has_none() {
        let (running, waiting, done) =
            (row(Status::Running, "wf"), row(Status::Waiting, "wf"), row(Status::Completed, "wf"));
        let id = running.id;
        let s = |st| entry(&status_prefix(st).unwrap(), id);
        assert_eq!(writes(None, Some(&running)), vec![(s(Status::Running), vec![1])]);
        assert_eq!(writes(Some(&running), Some(&running)), vec![], "an unchanged row writes nothing");
        assert_eq!(
            writes(Some(&running), Some(&waiting)),
            vec![(s(Status::Running), vec![]), (s(Status::Waiting), vec![1])]
        );
        assert_eq!(writes(Some(&waiting), Some(&done)), vec![(s(Status::Waiting), vec![])]);
        assert_eq!(writes(None, Some(&done)), vec![], "started and completed in one batch: nothing");
        assert_eq!(writes(Some(&done), None), vec![]);
        assert_eq!(id_of(&s(Status::Failed)), Some(id));
    }

    #[test]
    fn a_stored_row_is_filtered_from_its_head() {
        let stored = super::super::encode_meta(&row(Status::Waiting, "wf"));
        let kept = |status, workflow: Option<&str>| {
            super::super::row_kept(&stored, &RowFilter { status, workflow: workflow.map(Into::into) })
        };
        assert_eq!(kept(Some(Status::Waiting), Some("wf")), Some(true));
        assert_eq!(kept(None, Some("wf")), Some(true));
        assert_eq!(kept(Some(Status::Completed), None), Some(false));
        assert_eq!(kept(None, Some("other")), Some(false));
        assert_eq!(super::super::row_kept(b"\x01\xff", &RowFilter::default()), None, "a head that does not decode");
    }
}
