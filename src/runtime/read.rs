//! Reading what the runtime holds: an execution's index row, history,
//! workflow, folded state and usage; the execution index and its damage
//! check; live followers of histories and delays; the runtime's limits and
//! counters. Nothing here writes to the journal.

use std::collections::HashMap;
use std::sync::Arc;

use super::{Delay, Error, ParentLink, Runtime};
use crate::id::ExecutionId;
use crate::ir::{Limits, Workflow};
use crate::journal::{self, ExecutionMeta, Record, Stats, Status};

impl Runtime {
    /// Follow an execution's history live: the receiver's value is its
    /// last durable sequence number, and changes with every append.
    /// Subscribe first, then read [`events`](Self::events), to miss nothing.
    pub fn subscribe(&self, id: ExecutionId) -> tokio::sync::watch::Receiver<u64> {
        self.inner.feed.subscribe(id)
    }

    /// Follow the pieces of `id`'s streamed model replies (`stream: true`)
    /// from now on. Not journaled: the reply is, whole, with its node.
    pub fn tokens(&self, id: ExecutionId) -> tokio::sync::broadcast::Receiver<crate::nodes::stream::Token> {
        self.inner.services.env.tokens.subscribe(id)
    }

    /// What the OpenTelemetry exporter did, when traces are exported.
    pub fn otlp_counts(&self) -> Option<super::OtlpCounts> {
        self.inner.otel.as_ref().map(|e| e.counts())
    }

    /// Follow every execution's streamed tokens from now on (before an
    /// execution's id is known: subscribe, then submit).
    pub fn all_tokens(&self) -> tokio::sync::broadcast::Receiver<(ExecutionId, crate::nodes::stream::Token)> {
        self.inner.services.env.tokens.subscribe_all()
    }

    pub(super) fn machine(&self, id: ExecutionId) -> Result<crate::actors::machine::ExecutionState, Error> {
        let workflow = self.workflow_of(id)?;
        crate::actors::fold_history(self.services(), id, &workflow, &self.events(id)?)
    }

    /// The limits this runtime enforces.
    pub fn limits(&self) -> &Limits {
        &self.services().limits
    }

    /// The tokens and cost an execution has used so far: the sum over its
    /// exchanges, failed attempts included.
    pub fn usage(&self, id: ExecutionId) -> Result<crate::journal::Usage, Error> {
        Ok(self.machine(id)?.usage)
    }

    /// The execution submitted with the idempotency key `key`, if any.
    pub fn by_key(&self, key: &str) -> Result<Option<ExecutionId>, Error> {
        Ok(self.services().journal.find_key(key)?)
    }

    /// The index row of one execution.
    pub fn status(&self, id: ExecutionId) -> Result<ExecutionMeta, Error> {
        match self.services().journal.meta(id)? {
            Some(meta) => Ok(meta),
            None => Err(self.missing(id)),
        }
    }

    /// Why `id` is not in the store: it was pruned ([`Error::Pruned`],
    /// from its tombstone) or it never was ([`Error::UnknownExecution`]).
    pub fn missing(&self, id: ExecutionId) -> Error {
        match self.services().journal.tombstone(id) {
            Ok(Some(t)) => Error::Pruned {
                id,
                status: t.meta.status,
                workflow: t.meta.workflow_id,
                pruned_ms: t.pruned_ms,
                events: t.events,
            },
            Ok(None) => Error::UnknownExecution(id),
            Err(e) => Error::Journal(e),
        }
    }

    /// Every execution whose index row can be read, oldest first,
    /// optionally only those with `status`. A damaged row is left out
    /// (see [`listing`](Self::listing)), never an error for the others.
    pub fn list(&self, status: Option<Status>) -> Result<Vec<ExecutionMeta>, Error> {
        Ok(self.listing(status)?.rows)
    }

    /// The execution index as far as it can be read: the rows (optionally
    /// only those with `status`) and, beside them, the rows that do not
    /// decode. Reads the index only (see [`check`](Self::check)).
    pub fn listing(&self, status: Option<Status>) -> Result<journal::Listing, Error> {
        let mut listing = self.services().journal.listing()?;
        listing.rows.retain(|m| status.is_none_or(|s| m.status == s));
        Ok(listing)
    }

    /// One page of the execution index, oldest or newest first: the rows
    /// past `after` (an id) that `filter` keeps, at most `limit`, whether
    /// more follow, and the damaged rows met ([`journal::Journal::page`]).
    pub fn page(
        &self,
        after: Option<ExecutionId>,
        newest_first: bool,
        limit: usize,
        filter: &journal::RowFilter,
    ) -> Result<journal::IndexPage, Error> {
        Ok(self.services().journal.page(after, newest_first, limit, filter)?)
    }

    /// Every execution that cannot be read in full, and what fails: an
    /// index row that does not decode, a record of its history that does
    /// not decode or is missing, a workflow IR that is missing or does not
    /// decode. Reads every record of every execution; `rows` holds the
    /// executions found whole.
    pub fn check(&self) -> Result<journal::Listing, Error> {
        let journal = &self.services().journal;
        let journal::Listing { rows, mut damaged, cut_short } = journal.listing()?;
        let mut workflows: HashMap<String, Option<String>> = HashMap::new();
        let mut whole = Vec::with_capacity(rows.len());
        for meta in rows {
            let part = match journal.read(meta.id) {
                Ok(records) if records.is_empty() => Some((
                    journal::Part::Record { seq: 1 },
                    "the index names it, and the journal holds no record of it".to_string(),
                )),
                Ok(_) => None,
                Err(journal::Error::Damaged(d)) => Some((d.part, d.detail)),
                Err(e) => return Err(e.into()),
            };
            let part = part.or_else(|| {
                let hash = meta.workflow_hash.clone();
                let problem = workflows.entry(hash.clone()).or_insert_with(|| match journal.workflow(&hash) {
                    Ok(Some(_)) => None,
                    Ok(None) => Some("it is not in the journal".to_string()),
                    Err(journal::Error::Corrupt(detail)) => Some(detail),
                    Err(e) => Some(e.to_string()),
                });
                problem.clone().map(|p| (journal::Part::Workflow { hash }, p))
            });
            match part {
                Some((part, detail)) => damaged.push(journal::Damage::new(meta.id, part, detail)),
                None => whole.push(meta),
            }
        }
        damaged.sort_by_key(|d| d.execution);
        Ok(journal::Listing { rows: whole, damaged, cut_short })
    }

    /// Every execution that cannot be read in full, and what fails (see
    /// [`check`](Self::check)), oldest first.
    pub fn damaged(&self) -> Result<Vec<journal::Damage>, Error> {
        Ok(self.check()?.damaged)
    }

    /// Where a child execution (a parallel branch, a sub-workflow) came
    /// from, as its first record says; `None` for an execution started on
    /// its own. Reads one record, not the history.
    pub fn parent_link(&self, id: ExecutionId) -> Result<Option<ParentLink>, Error> {
        let Some(first) = self.services().journal.first(id)? else { return Err(self.missing(id)) };
        let Some((parent, node, visit, branch)) = first.event.parent_link() else { return Ok(None) };
        let parent = parent.parse().map_err(|_| {
            Error::Journal(journal::Error::Corrupt(format!("execution {id}: its parent id `{parent}` does not parse")))
        })?;
        Ok(Some(ParentLink { id: parent, node: node.to_string(), visit, branch }))
    }

    /// The event timeline of one execution.
    pub fn events(&self, id: ExecutionId) -> Result<Vec<Record>, Error> {
        let records = self.services().journal.read(id)?;
        if records.is_empty() {
            return Err(self.missing(id));
        }
        Ok(records)
    }

    /// The records of `id` with a sequence number above `after` (what a
    /// follower has not seen yet). Unknown executions read as empty.
    pub fn events_after(&self, id: ExecutionId, after: u64) -> Result<Vec<Record>, Error> {
        Ok(self.services().journal.read_after(id, after)?)
    }

    /// The workflow an execution runs.
    pub fn workflow_of(&self, id: ExecutionId) -> Result<Arc<Workflow>, Error> {
        let meta = self.status(id)?;
        self.load_workflow(id, &meta.workflow_hash)
    }

    /// Node latency histograms by node type (for `/metrics`).
    pub fn node_latency(&self) -> Vec<(&'static str, crate::journal::latency::Snapshot)> {
        self.services().latency.snapshot()
    }

    /// Counters of the journal (appends, events, syncs).
    pub fn journal_stats(&self) -> Stats {
        self.services().journal.stats()
    }

    /// Hear of every delay (a timer wait, a retry delay) an execution of
    /// this runtime enters from now on, once it is durable (see [`Delay`]).
    pub fn delays(&self) -> tokio::sync::broadcast::Receiver<Delay> {
        self.inner.feed.delays()
    }

    /// The nodes an execution is at now (running, retrying or waiting),
    /// by name.
    pub fn active_nodes(&self, id: ExecutionId) -> Result<Vec<String>, Error> {
        let mut nodes: Vec<String> = self.machine(id)?.active.keys().cloned().collect();
        nodes.sort();
        Ok(nodes)
    }

    /// The executions that have an actor in memory now (parked ones are
    /// hibernated: not in this list).
    pub async fn live(&self) -> Result<Vec<ExecutionId>, Error> {
        self.inner.supervisor.live().await
    }

    /// Resolves once `id` has no actor in memory: it hibernated (parked
    /// with nothing running), ended, or was never loaded here. A notice
    /// from the supervisor, not a poll; it does not load `id`.
    pub async fn unloaded(&self, id: ExecutionId) -> Result<(), Error> {
        self.inner.supervisor.unloaded(id).await
    }
}
