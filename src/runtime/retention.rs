//! Retention: which ended executions to remove ([`Retention::select`], a
//! pure decision over the execution index) and removing them in bounded
//! batches while the runtime runs ([`Runtime::prune`]). Only executions
//! the store holds as ended are removed, never a running or waiting one:
//! the selection takes ended ones only, what has an actor in this process
//! is left out, and the journal checks the status again in the removal
//! itself ([`Journal::prune`](crate::journal::Journal::prune)).

use std::collections::HashMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Error, Runtime};
use crate::id::ExecutionId;
use crate::journal::{Compacted, ExecutionMeta, Freed, Status};

/// Executions removed per journal call: one durable write each, so a
/// large prune never holds the store for long.
pub const PRUNE_BATCH: usize = 500;
/// The pause between two batches, for the runtime's own appends.
const BETWEEN_BATCHES: Duration = Duration::from_millis(2);

/// Which ended executions a prune removes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retention {
    /// Those that ended at least this long ago (milliseconds).
    pub older_than_ms: u64,
    /// Of these statuses (ended ones only); empty: completed, failed and cancelled.
    #[serde(default)]
    pub statuses: Vec<Status>,
    /// Keep the newest this many ended executions of each workflow (of the
    /// statuses above), however old.
    #[serde(default)]
    pub keep_last: Option<usize>,
}

impl Retention {
    /// A policy; refused when a status is not an ended one.
    pub fn new(older_than_ms: u64, statuses: Vec<Status>, keep_last: Option<usize>) -> Result<Retention, String> {
        if let Some(s) = statuses.iter().find(|s| !s.is_terminal()) {
            return Err(format!(
                "`{s}` executions are never pruned: only completed, failed and cancelled ones (a running or waiting execution is not finished)"
            ));
        }
        Ok(Retention { older_than_ms, statuses, keep_last })
    }

    /// Statuses as people write them (`completed`, ` failed`), or the first
    /// that is not one.
    pub fn statuses(names: &[String]) -> Result<Vec<Status>, String> {
        names
            .iter()
            .map(|s| {
                Status::parse(s.trim()).ok_or_else(|| format!("`{s}` is not a status (completed, failed, cancelled)"))
            })
            .collect()
    }

    fn takes(&self, status: Status) -> bool {
        status.is_terminal() && (self.statuses.is_empty() || self.statuses.contains(&status))
    }

    /// The executions of `rows` this policy removes at `now_ms`, oldest
    /// ended first. An execution's end is its index row's last update.
    pub fn select(&self, rows: &[ExecutionMeta], now_ms: u64) -> Vec<ExecutionId> {
        let cutoff = now_ms.saturating_sub(self.older_than_ms);
        let mut ended: Vec<&ExecutionMeta> = rows.iter().filter(|m| self.takes(m.status)).collect();
        // Newest first, to count the ones kept per workflow.
        ended.sort_by(|a, b| b.updated_ms.cmp(&a.updated_ms).then(b.id.cmp(&a.id)));
        let mut seen: HashMap<&str, usize> = HashMap::new();
        let mut out: Vec<(u64, ExecutionId)> = Vec::new();
        for m in ended {
            let n = seen.entry(m.workflow_id.as_str()).or_default();
            *n += 1;
            if self.keep_last.is_some_and(|keep| *n <= keep) || m.updated_ms > cutoff {
                continue;
            }
            out.push((m.updated_ms, m.id));
        }
        out.sort();
        out.into_iter().map(|(_, id)| id).collect()
    }
}

/// What a prune did (or, with `dry_run`, would do).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PruneReport {
    /// Nothing was removed: `selected` is what would be.
    pub dry_run: bool,
    /// The ended executions the policy chose.
    pub selected: u64,
    /// What was removed (fewer than `selected` when some were still in
    /// memory here, or changed meanwhile).
    pub freed: Freed,
    /// Chosen but left: they still had an actor in this process.
    pub skipped_live: u64,
    /// Journal calls made.
    pub batches: u64,
    /// The ids chosen, oldest ended first (the first 100).
    pub ids: Vec<ExecutionId>,
    /// The sled store's archive, rewritten after the removal (its size
    /// before and after, bytes); `None` when nothing was removed or the
    /// store keeps no archive.
    #[serde(default)]
    pub archive: Option<Compacted>,
}

impl Runtime {
    /// Remove the ended executions `retention` chooses now, [`PRUNE_BATCH`]
    /// at a time, with `progress` told after each batch (what was freed so
    /// far, of how many chosen). With `dry_run`, only say what would go.
    pub async fn prune(
        &self,
        retention: &Retention,
        dry_run: bool,
        mut progress: impl FnMut(&Freed, u64),
    ) -> Result<PruneReport, Error> {
        let services = self.services();
        let chosen = retention.select(&self.list(None)?, services.clock.now_ms());
        let mut report = PruneReport {
            dry_run,
            selected: chosen.len() as u64,
            ids: chosen.iter().take(100).copied().collect(),
            ..PruneReport::default()
        };
        if dry_run || chosen.is_empty() {
            return Ok(report);
        }
        let live: std::collections::HashSet<ExecutionId> = self.live().await?.into_iter().collect();
        let (left, go): (Vec<ExecutionId>, Vec<ExecutionId>) = chosen.into_iter().partition(|id| live.contains(id));
        report.skipped_live = left.len() as u64;
        for batch in go.chunks(PRUNE_BATCH) {
            if report.batches > 0 {
                tokio::time::sleep(BETWEEN_BATCHES).await;
            }
            let freed = services.journal.prune(batch, services.clock.now_ms()).await?;
            report.freed.add(freed);
            report.batches += 1;
            progress(&report.freed, report.selected);
        }
        if report.freed.executions > 0 {
            report.archive = services.journal.compact().await?;
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> ExecutionId {
        ExecutionId::from_bytes([n; 16])
    }

    fn row(n: u8, workflow: &str, status: Status, ended: u64) -> ExecutionMeta {
        ExecutionMeta {
            id: id(n),
            workflow_id: workflow.into(),
            workflow_version: "1".into(),
            workflow_hash: "h".into(),
            status,
            created_ms: 0,
            updated_ms: ended,
            key: None,
        }
    }

    #[test]
    fn only_ended_executions_older_than_the_cutoff_are_chosen_oldest_first() {
        let rows = [
            row(1, "a", Status::Completed, 50),
            row(2, "a", Status::Running, 10),
            row(3, "a", Status::Waiting, 10),
            row(4, "a", Status::Failed, 20),
            row(5, "b", Status::Cancelled, 95),
            row(6, "b", Status::Completed, 30),
        ];
        let r = Retention::new(10, vec![], None).unwrap();
        assert_eq!(r.select(&rows, 100), vec![id(4), id(6), id(1)]);
        let failed = Retention::new(10, vec![Status::Failed], None).unwrap();
        assert_eq!(failed.select(&rows, 100), vec![id(4)]);
    }

    #[test]
    fn keep_last_keeps_the_newest_of_each_workflow() {
        let rows = [
            row(1, "a", Status::Completed, 10),
            row(2, "a", Status::Completed, 20),
            row(3, "a", Status::Failed, 30),
            row(4, "b", Status::Completed, 15),
            row(5, "a", Status::Running, 40),
        ];
        let r = Retention::new(0, vec![], Some(2)).unwrap();
        assert_eq!(r.select(&rows, 100), vec![id(1)]);
        let none = Retention::new(0, vec![], Some(0)).unwrap();
        assert_eq!(none.select(&rows, 100).len(), 4);
    }

    #[test]
    fn a_status_that_has_not_ended_is_refused() {
        for s in [Status::Running, Status::Waiting] {
            let e = Retention::new(0, vec![s], None).unwrap_err();
            assert!(e.contains(&format!("`{s}`")) && e.contains("never pruned"), "{e}");
        }
    }
}
