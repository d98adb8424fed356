//! Durable pieces of work inside a host function's step:
//! `call.steps.run("charge", charge_card(...))`.
//!
//! A `function` node's host function gets [`Steps`] in its
//! [`FunctionCall`](super::FunctionCall). Each piece it runs through
//! [`Steps::run`] is journaled (a `Call` of kind `run`, its result as
//! JSON) when it completes, before the function goes on; when the step is
//! retried, or resumed after a crash, a completed piece returns its
//! journaled result instead of running again, and the first piece not
//! journaled runs. Pieces are numbered in the order they are started and
//! run one at a time (a piece started while another runs waits for it),
//! so their order is the step's own. A step that asks for another piece
//! where the journal recorded one (another name) fails as
//! `nondeterminism`, naming the step and both pieces. A piece that fails
//! is not journaled: it runs again on the next attempt.
//!
//! Outside a journaled step (a function an agent calls as a tool, a test
//! calling the function directly) the pieces simply run.

use std::fmt::Display;
use std::future::Future;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::calls::{CallJournal, CallRecord};
use super::{FunctionError, NodeCtx};
use crate::journal::{ErrorClass, Json, Usage};

/// The durable pieces of one step (see the module docs). Cheap to clone.
#[derive(Clone, Default)]
pub struct Steps {
    inner: Option<Arc<Inner>>,
}

struct Inner {
    node: String,
    visit: u32,
    /// The pieces the visit journaled before this attempt, in order.
    done: Vec<CallRecord>,
    journal: Arc<dyn CallJournal>,
    /// The number of the last piece started; held while a piece runs.
    last: tokio::sync::Mutex<u32>,
}

impl std::fmt::Debug for Steps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.inner {
            Some(i) => write!(f, "Steps(node `{}` visit {}, {} journaled)", i.node, i.visit, i.done.len()),
            None => f.write_str("Steps(not journaled)"),
        }
    }
}

impl Steps {
    /// Pieces that are not journaled: they simply run.
    pub fn detached() -> Steps {
        Steps { inner: None }
    }

    /// The pieces of the node visit `ctx` runs: journaled through its
    /// execution, those it journaled before read back.
    pub(crate) fn of(ctx: &NodeCtx<'_>) -> Steps {
        let Some(journal) = ctx.call_journal else { return Steps::detached() };
        Steps {
            inner: Some(Arc::new(Inner {
                node: ctx.node.id.clone(),
                visit: ctx.visit,
                done: ctx.calls.to_vec(),
                journal: journal.owned(),
                last: tokio::sync::Mutex::new(0),
            })),
        }
    }

    /// Run the piece `name` (or read back its journaled result). Its result
    /// is journaled as JSON once it completes; an error is not journaled.
    pub async fn run<T, E, F>(&self, name: &str, work: F) -> Result<T, FunctionError>
    where
        T: Serialize + DeserializeOwned,
        E: Display,
        F: Future<Output = Result<T, E>>,
    {
        let failed = |e: E| FunctionError::new(format!("piece `{name}`: {e}"));
        let Some(inner) = &self.inner else { return work.await.map_err(failed) };
        let mut last = inner.last.lock().await;
        *last += 1;
        let n = *last;
        if let Some(rec) = inner.done.get(n as usize - 1) {
            return read_back(inner, rec, n, name);
        }
        let value = work.await.map_err(failed)?;
        let json = serde_json::to_value(&value)
            .map_err(|e| FunctionError::new(format!("piece `{name}`: its result does not serialize to JSON ({e})")))?;
        let record = CallRecord {
            n,
            kind: "run".into(),
            name: name.to_string(),
            request: Json("null".into()),
            response: Json::from_value(&json),
            usage: Usage::default(),
        };
        inner.journal.record(record).await.map_err(|e| FunctionError::with_class(e.class, e.message))?;
        Ok(value)
    }
}

/// A journaled piece's result, if it is the piece asked for.
fn read_back<T: DeserializeOwned>(inner: &Inner, rec: &CallRecord, n: u32, name: &str) -> Result<T, FunctionError> {
    if rec.kind != "run" || rec.name != name {
        let message = format!(
            "step `{}` (visit {}) ran piece {n} as `{name}`, but the journal recorded `{}` ({}) there: the step must \
             run its pieces in the same order on every attempt",
            inner.node, inner.visit, rec.name, rec.kind
        );
        return Err(FunctionError::with_class(ErrorClass::Nondeterminism, message));
    }
    serde_json::from_str(&rec.response.0).map_err(|e| {
        let message = format!("step `{}`: the journaled result of piece `{name}` does not read back ({e})", inner.node);
        FunctionError::with_class(ErrorClass::Nondeterminism, message)
    })
}
