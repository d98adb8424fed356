//! `GET /executions/{id}/timeline`: an execution's history folded into one
//! row per node visit ([`crate::timeline`], what `jamjet inspect` shows),
//! with what the UI needs to show any visit's state before and after it:
//! the execution's input and, per visit, the sequence numbers of its first
//! start and of its completion (fold the completed patches in that order).

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::routing::get;
use serde::Serialize;
use serde_json::Value;

use super::super::{ApiError, AppState};
use super::executions::parse_id;
use super::reply;
use crate::id::ExecutionId;
use crate::journal::Event;
use crate::timeline::Timeline;

pub fn routes() -> Router<AppState> {
    Router::new().route("/executions/{id}/timeline", get(timeline))
}

/// The answer: the [`Timeline`]'s fields, and these.
#[derive(Debug, Serialize)]
pub struct TimelineReply {
    pub id: ExecutionId,
    /// What the execution started with (a branch or sub-workflow: its input).
    pub input: Value,
    /// The sequence number of the last record folded.
    pub last_seq: u64,
    /// Per node visit, in the order of `nodes`: where it began and ended in the journal.
    pub seqs: Vec<VisitSeqs>,
    #[serde(flatten)]
    pub timeline: Timeline,
}

/// Where one node visit sits in the journal.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VisitSeqs {
    /// Its first `NodeStarted`; `None` while it is only scheduled.
    pub started: Option<u64>,
    /// Its `NodeCompleted`; `None` until it completes.
    pub completed: Option<u64>,
}

async fn timeline(State(st): State<AppState>, Path(raw): Path<String>) -> Result<Json<Value>, ApiError> {
    let id = parse_id(&raw)?;
    st.rt.status(id)?;
    let records = st.rt.events(id)?;
    let input = match records.first().map(|r| &r.event) {
        Some(Event::ExecutionStarted { input, .. } | Event::ChildStarted { input, .. }) => {
            input.value().unwrap_or(Value::Null)
        }
        _ => Value::Null,
    };
    let timeline = crate::timeline::timeline(id, &records);
    let seqs = seqs(&timeline, &records);
    let last_seq = records.last().map_or(0, |r| r.seq);
    reply(&TimelineReply { id, input, last_seq, seqs, timeline })
}

/// [`VisitSeqs`] for each row of `timeline`, in one pass over the records.
fn seqs(timeline: &Timeline, records: &[crate::journal::Record]) -> Vec<VisitSeqs> {
    let index: std::collections::HashMap<(&str, u32), usize> =
        timeline.nodes.iter().enumerate().map(|(i, v)| ((v.node.as_str(), v.visit), i)).collect();
    let mut out = vec![VisitSeqs { started: None, completed: None }; timeline.nodes.len()];
    for r in records {
        match &r.event {
            Event::NodeStarted { node, visit, .. } => {
                if let Some(&i) = index.get(&(node.as_str(), *visit)) {
                    out[i].started.get_or_insert(r.seq);
                }
            }
            Event::NodeCompleted { node, visit, .. } => {
                if let Some(&i) = index.get(&(node.as_str(), *visit)) {
                    out[i].completed = Some(r.seq);
                }
            }
            _ => {}
        }
    }
    out
}
