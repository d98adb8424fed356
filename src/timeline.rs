//! An execution's history as one row per node visit: what `jamjet inspect`
//! shows and what later API endpoints serve.

use serde::Serialize;
use serde_json::Value;

use crate::journal::{Event, Record, RetryDecision, Usage};

/// One visit of one node.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeVisit {
    pub node: String,
    pub visit: u32,
    /// scheduled, running, retrying, completed, failed.
    pub status: &'static str,
    pub scheduled_ms: u64,
    pub started_ms: Option<u64>,
    /// Of the attempt that completed.
    pub duration_us: Option<u64>,
    pub attempts: u32,
    pub patch: Option<Value>,
    pub next: Option<String>,
    /// Every failure, in order: `class: message`.
    pub errors: Vec<String>,
    pub usage: Usage,
}

/// Fold records into node visits, in the order they were scheduled.
pub fn node_visits(records: &[Record]) -> Vec<NodeVisit> {
    let mut rows: Vec<NodeVisit> = Vec::new();
    let find = |rows: &mut Vec<NodeVisit>, node: &str, visit: u32| -> Option<usize> {
        rows.iter().rposition(|r| r.node == node && r.visit == visit)
    };
    for r in records {
        match &r.event {
            Event::NodeScheduled { node, visit } => rows.push(NodeVisit {
                node: node.clone(),
                visit: *visit,
                status: "scheduled",
                scheduled_ms: r.at_ms,
                started_ms: None,
                duration_us: None,
                attempts: 0,
                patch: None,
                next: None,
                errors: Vec::new(),
                usage: Usage::default(),
            }),
            Event::NodeStarted { node, visit, attempt } => {
                if let Some(i) = find(&mut rows, node, *visit) {
                    let row = &mut rows[i];
                    row.status = "running";
                    row.started_ms.get_or_insert(r.at_ms);
                    row.attempts = *attempt;
                }
            }
            Event::NodeCompleted { node, visit, patch, next, duration_us, usage, .. } => {
                if let Some(i) = find(&mut rows, node, *visit) {
                    let row = &mut rows[i];
                    row.status = "completed";
                    row.duration_us = Some(*duration_us);
                    row.patch = patch.value().ok();
                    row.next = next.clone();
                    row.usage = *usage;
                }
            }
            Event::NodeFailed { node, visit, class, message, retry, .. } => {
                if let Some(i) = find(&mut rows, node, *visit) {
                    let row = &mut rows[i];
                    row.errors.push(format!("{class}: {message}"));
                    row.status = match retry {
                        RetryDecision::Retry { .. } => "retrying",
                        RetryDecision::GiveUp => "failed",
                    };
                }
            }
            _ => {}
        }
    }
    rows
}
