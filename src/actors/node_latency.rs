//! Node latency by node type (`http`, `model`, `wait`, ...), from every
//! durable `NodeCompleted` (its `duration_us`), for `/metrics`.
//!
//! The ExecutionActor reports its completions as their batch goes to the
//! journal (so whoever hears of the batch finds them counted), with the
//! node types from the workflow it runs ([`NodeLatency::completed`]):
//! nothing is read back from the journal, and each completion costs a map
//! lookup and a few atomic adds.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::ir::Workflow;
use crate::journal::Event;
use crate::journal::latency::{Latency, Snapshot};

#[derive(Default)]
pub struct NodeLatency {
    by_kind: Mutex<HashMap<&'static str, Arc<Latency>>>,
}

impl NodeLatency {
    /// Record the completions among `events` (being journaled), of an execution of `wf`.
    pub(crate) fn completed(&self, wf: &Workflow, events: &[Event]) {
        for e in events {
            if let Event::NodeCompleted { node, duration_us, .. } = e {
                let kind = wf.node(node).map_or("unknown", |n| n.kind.type_name());
                self.latency(kind).record_us(*duration_us);
            }
        }
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
