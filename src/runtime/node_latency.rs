//! Node latency by node type (`http`, `model`, `wait`, ...), from every
//! durable `NodeCompleted` (its `duration_us`), for `/metrics`.
//!
//! [`super::Observed`] calls [`NodeLatency::appended`] after each durable
//! append. The node's type comes from the execution's workflow: the
//! types of each workflow are computed once per content hash; an
//! execution takes them from its first append (which carries the
//! workflow) or, rehydrated, from its index row's hash (reading the stored
//! IR only for a hash not seen yet), and forgets them at its terminal
//! event. Each completion then costs a map lookup and a few atomic adds.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::id::ExecutionId;
use crate::ir::Workflow;
use crate::journal::latency::{Latency, Snapshot};
use crate::journal::{Event, Journal};

/// Node type by node id, of one workflow.
type Kinds = Arc<HashMap<String, &'static str>>;

/// Above this many executions followed, the kind cache starts over.
const CACHE_MAX: usize = 4096;

#[derive(Default)]
pub struct NodeLatency {
    by_kind: Mutex<HashMap<&'static str, Arc<Latency>>>,
    kinds: Mutex<HashMap<ExecutionId, Kinds>>,
    /// Node types by workflow content hash.
    by_hash: Mutex<HashMap<String, Kinds>>,
}

fn kinds_of(wf: &Workflow) -> Kinds {
    Arc::new(wf.nodes.iter().map(|(id, n)| (id.clone(), n.kind.type_name())).collect())
}

impl NodeLatency {
    /// Record the completions among `events`, durable for `id`; `wf` is
    /// the workflow (and its hash) an execution's first append carries.
    pub(crate) fn appended(
        &self,
        journal: &dyn Journal,
        id: ExecutionId,
        events: &[Event],
        wf: Option<(&str, &Workflow)>,
    ) {
        let mut kinds: Option<Kinds> = None;
        if let Some((hash, wf)) = wf {
            let k = self.kinds_of_hash(hash, || Some(kinds_of(wf)));
            self.remember(id, k.clone());
            kinds = Some(k);
        }
        for e in events {
            match e {
                Event::NodeCompleted { node, duration_us, .. } => {
                    let k = kinds.get_or_insert_with(|| self.kinds_for(journal, id));
                    let kind = k.get(node).copied().unwrap_or("unknown");
                    self.latency(kind).record_us(*duration_us);
                }
                e if e.is_terminal() => {
                    self.kinds.lock().expect("latency lock").remove(&id);
                }
                _ => {}
            }
        }
    }

    fn kinds_for(&self, journal: &dyn Journal, id: ExecutionId) -> Kinds {
        if let Some(k) = self.kinds.lock().expect("latency lock").get(&id) {
            return k.clone();
        }
        let k = match journal.meta(id).ok().flatten() {
            Some(m) => self.kinds_of_hash(&m.workflow_hash, || {
                journal.workflow(&m.workflow_hash).ok().flatten().map(|wf| kinds_of(&wf))
            }),
            None => Kinds::default(),
        };
        self.remember(id, k.clone());
        k
    }

    /// The node types of the workflow stored under `hash`, computed by
    /// `compute` the first time (not kept when it finds nothing).
    fn kinds_of_hash(&self, hash: &str, compute: impl FnOnce() -> Option<Kinds>) -> Kinds {
        if let Some(k) = self.by_hash.lock().expect("latency lock").get(hash) {
            return k.clone();
        }
        let Some(k) = compute() else { return Kinds::default() };
        let mut cache = self.by_hash.lock().expect("latency lock");
        if cache.len() >= CACHE_MAX {
            cache.clear();
        }
        cache.insert(hash.to_string(), k.clone());
        k
    }

    fn remember(&self, id: ExecutionId, k: Kinds) {
        let mut cache = self.kinds.lock().expect("latency lock");
        if cache.len() >= CACHE_MAX {
            cache.clear();
        }
        cache.insert(id, k);
    }

    fn latency(&self, kind: &'static str) -> Arc<Latency> {
        self.by_kind.lock().expect("latency lock").entry(kind).or_default().clone()
    }

    /// Every node type seen so far, with its histogram, sorted by type.
    pub fn snapshot(&self) -> Vec<(&'static str, Snapshot)> {
        let mut out: Vec<_> =
            self.by_kind.lock().expect("latency lock").iter().map(|(k, l)| (*k, l.snapshot())).collect();
        out.sort_by_key(|(k, _)| *k);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::{Append, ExecutionMeta, Json, MemoryJournal, Status, Usage};

    fn done(node: &str) -> Event {
        Event::NodeCompleted {
            node: node.into(),
            visit: 1,
            attempt: 1,
            patch: Json("{}".into()),
            next: None,
            usage: Usage::default(),
            duration_us: 5,
        }
    }

    fn counts(l: &NodeLatency) -> Vec<(&'static str, u64)> {
        l.snapshot().into_iter().map(|(k, s)| (k, s.count)).collect()
    }

    #[test]
    fn node_types_come_from_the_first_append_or_from_the_stored_workflow() {
        let wf = crate::ir::compile_str(
            "id: k\nstate_schema: { i: int }\nnodes:\n  a: { type: set, values: { i: 1 }, next: b }\n  b: { type: end }\n",
            "k.yaml",
        )
        .unwrap();
        let journal = MemoryJournal::new();
        let l = NodeLatency::default();
        // Started here: the first append carries the workflow, the store is not read.
        let live = ExecutionId::new(1);
        l.appended(&journal, live, &[], Some(("h1", &wf)));
        l.appended(&journal, live, &[done("a"), done("b")], None);
        assert_eq!(counts(&l), vec![("end", 1), ("set", 1)]);
        // Rehydrated: the types come from the index row's hash and the stored IR.
        let old = ExecutionId::new(2);
        let meta = ExecutionMeta {
            id: old,
            workflow_id: "k".into(),
            workflow_version: "1".into(),
            workflow_hash: "h2".into(),
            status: Status::Running,
            created_ms: 1,
            updated_ms: 1,
            key: None,
        };
        let append = Append {
            execution: old,
            first_seq: 0,
            at_ms: 1,
            events: &[],
            meta: Some(&meta),
            workflow: Some(("h2", &wf)),
            timers: &[],
            waits: &[],
        };
        futures::FutureExt::now_or_never(journal.append(append)).expect("memory appends are ready").unwrap();
        l.appended(&journal, old, &[done("a")], None);
        assert_eq!(counts(&l), vec![("end", 1), ("set", 2)]);
        // Unknown everywhere: counted as `unknown`, nothing else moves.
        l.appended(&journal, ExecutionId::new(3), &[done("a")], None);
        assert_eq!(counts(&l), vec![("end", 1), ("set", 2), ("unknown", 1)]);
    }
}
