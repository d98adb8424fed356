//! Node latency by node type (`http`, `model`, `wait`, ...), from every
//! durable `NodeCompleted` (its `duration_us`), for `/metrics`.
//!
//! [`super::Observed`] calls [`NodeLatency::appended`] after each durable
//! append. The node's type comes from the execution's workflow, looked up
//! once per execution (the index row, then the stored IR) and forgotten
//! at its terminal event; each completion then costs a map lookup and a
//! few atomic adds.

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
}

fn kinds_of(wf: &Workflow) -> Kinds {
    Arc::new(wf.nodes.iter().map(|(id, n)| (id.clone(), n.kind.type_name())).collect())
}

impl NodeLatency {
    /// Record the completions among `events`, durable for `id`.
    pub(crate) fn appended(&self, journal: &dyn Journal, id: ExecutionId, events: &[Event], wf: Option<&Workflow>) {
        let mut kinds: Option<Kinds> = None;
        for e in events {
            match e {
                Event::NodeCompleted { node, duration_us, .. } => {
                    let k = kinds.get_or_insert_with(|| self.kinds_for(journal, id, wf));
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

    fn kinds_for(&self, journal: &dyn Journal, id: ExecutionId, wf: Option<&Workflow>) -> Kinds {
        if let Some(k) = self.kinds.lock().expect("latency lock").get(&id) {
            return k.clone();
        }
        let k = match wf {
            Some(wf) => kinds_of(wf),
            None => {
                let stored =
                    journal.meta(id).ok().flatten().and_then(|m| journal.workflow(&m.workflow_hash).ok().flatten());
                stored.map(|wf| kinds_of(&wf)).unwrap_or_default()
            }
        };
        let mut cache = self.kinds.lock().expect("latency lock");
        if cache.len() >= CACHE_MAX {
            cache.clear();
        }
        cache.insert(id, k.clone());
        k
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
