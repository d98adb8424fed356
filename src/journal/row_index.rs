//! The sled store's two indexes of execution rows, by status and by
//! workflow, so a filtered page of the execution list reads the rows that
//! match and no others: a filter that matches nothing at 100,000
//! executions reads nothing.
//!
//! `i{status}{id}` and `j{length of the workflow id, u32}{workflow id}{id}`,
//! empty values. They are written in the batch that writes the row
//! ([`writes`]: the row before and after), so they are as durable as it.
//! The marker `q` says both hold every row: a store written before them,
//! or one `jamjet repair` changed, has no marker, and opening it builds
//! them again from the rows (removing what was there first). A page read
//! through them checks each row it finds against the filter again, so an
//! entry left behind by damage lists nothing wrong.

use super::wal::Batch;
use super::{ExecutionId, ExecutionMeta, Status};

pub(super) const BY_STATUS: u8 = b'i';
pub(super) const BY_WORKFLOW: u8 = b'j';
/// Present (value: the format, 1) once both indexes hold every row.
pub(super) const INDEXED: u8 = b'q';

pub(super) fn marker() -> Vec<u8> {
    vec![INDEXED]
}

fn status_byte(s: Status) -> u8 {
    match s {
        Status::Running => 0,
        Status::Waiting => 1,
        Status::Completed => 2,
        Status::Failed => 3,
        Status::Cancelled => 4,
    }
}

/// The key prefix of the rows with status `s`.
pub(super) fn status_prefix(s: Status) -> Vec<u8> {
    vec![BY_STATUS, status_byte(s)]
}

/// The key prefix of the rows of workflow `w`.
pub(super) fn workflow_prefix(w: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(5 + w.len() + 16);
    k.push(BY_WORKFLOW);
    k.extend_from_slice(&(w.len() as u32).to_be_bytes());
    k.extend_from_slice(w.as_bytes());
    k
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

/// The writes that keep both indexes right when a row goes from `old`
/// (`None`: a new row) to `new` (`None`: removed).
pub(super) fn writes(old: Option<&ExecutionMeta>, new: Option<&ExecutionMeta>) -> Batch {
    let mut out = Vec::new();
    let status = |m: &ExecutionMeta| entry(&status_prefix(m.status), m.id);
    let workflow = |m: &ExecutionMeta| entry(&workflow_prefix(&m.workflow_id), m.id);
    for key in [status, workflow] {
        let (before, after) = (old.map(key), new.map(key));
        if before == after {
            continue;
        }
        out.extend(before.map(|k| (k, Vec::new())));
        out.extend(after.map(|k| (k, vec![1])));
    }
    out
}

#[cfg(test)]
mod tests {
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
    fn a_row_writes_its_entries_moves_its_status_and_takes_both_when_removed() {
        let (running, done) = (row(Status::Running, "wf"), row(Status::Completed, "wf"));
        let id = running.id;
        let s = |st| entry(&status_prefix(st), id);
        let w = entry(&workflow_prefix("wf"), id);
        assert_eq!(writes(None, Some(&running)), vec![(s(Status::Running), vec![1]), (w.clone(), vec![1])]);
        assert_eq!(writes(Some(&running), Some(&running)), vec![], "an unchanged row writes nothing");
        assert_eq!(
            writes(Some(&running), Some(&done)),
            vec![(s(Status::Running), vec![]), (s(Status::Completed), vec![1])]
        );
        assert_eq!(writes(Some(&done), None), vec![(s(Status::Completed), vec![]), (w.clone(), vec![])]);
        assert_eq!(id_of(&w), Some(id));
        // A workflow id cannot run into the id after it: its length comes first.
        assert!(!workflow_prefix("wf2").starts_with(&workflow_prefix("wf")));
    }
}
