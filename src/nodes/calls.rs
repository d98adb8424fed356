//! A node visit's calls, journaled one by one as they complete.
//!
//! A model node with tools, and an agent, make many calls in one visit: a
//! model call, the tool calls it asks for, the next model call, ... Each
//! one the node goes on from is journaled (`Event::Call`) as soon as it
//! completes, before the node goes on, through the [`CallJournal`] its
//! execution lends it. A retried or resumed visit gets the calls its
//! journal holds ([`NodeCtx::calls`]) and reads them back in order instead
//! of making them again; the first call it has to make is the interrupted
//! one, sent with the same idempotency key as before. A call read back
//! must be the call the node asks for (same kind, same name): a node that
//! asks for another one diverged from its history, which fails the visit
//! as `nondeterminism` rather than go on from a history it did not make.
//!
//! Keys: the first call of a visit is sent with the visit's key
//! `{execution}/{node}/{visit}` (so a node that makes one call keys it as
//! every node does), call `n > 1` with `{execution}/{node}/{visit}/call/{n}`.
//!
//! Lanes: work that runs side by side in one visit (a consensus's
//! samples) takes a cursor each ([`Calls::lanes`]). A lane's calls are keyed
//! by the lane, `{visit key}/lane/{i}/call/{j}` (its j-th call), so a key
//! never depends on how the lanes' calls interleave; each is journaled as it
//! completes, taking the visit's next number then, with `"lane": i` in its
//! request. A later attempt gives each lane back its own journaled calls,
//! in order; [`Calls::end_lanes`] goes on after all of them.

use futures::future::BoxFuture;
use serde_json::Value;

use super::approvals::{CallApproval, CallDecision, PendingCall, call_id};
use super::{NodeCtx, NodeError};
use crate::journal::{ErrorClass, Json, Usage};

/// One completed call of a node visit, as the node sees it; its
/// execution journals it as an `Event::Call` and hands it back to a later
/// attempt of the visit.
#[derive(Debug, Clone, PartialEq)]
pub struct CallRecord {
    /// Its number in the visit, from 1.
    pub n: u32,
    /// `model`, `tool`, or a strategy's step (`plan`, `critique`, ...).
    pub kind: String,
    /// The model, tool or agent called.
    pub name: String,
    /// What was sent (a tool's arguments; a model call's added messages).
    pub request: Json,
    /// What came back (the model's raw reply, the tool's result).
    pub response: Json,
    pub usage: Usage,
}

/// Where a running attempt journals the calls it completes: its execution.
pub trait CallJournal: Send + Sync {
    /// Journal `call`; resolves once it is durable. An error means the
    /// attempt is no longer the running one (it was cancelled, or the
    /// execution ended) or the journal failed: the node stops there.
    fn record(&self, call: CallRecord) -> BoxFuture<'_, Result<(), NodeError>>;

    /// The same journal, to keep beyond the node's borrow (a host
    /// function's durable pieces, which run in a `'static` future).
    fn owned(&self) -> std::sync::Arc<dyn CallJournal>;
}

/// The calls of one attempt: those the visit journaled before, read back
/// in order, then fresh ones, journaled as they complete.
pub struct Calls<'a> {
    done: &'a [CallRecord],
    journal: Option<&'a dyn CallJournal>,
    key: &'a str,
    node: &'a str,
    visit: u32,
    /// The number of the last call asked for (0 before the first).
    n: u32,
    /// The number of the last call that is in the journal (read back, or
    /// journaled by this attempt).
    settled: u32,
    /// What the calls so far cost: those read back, those journaled, and
    /// any the node counted with [`Calls::spend`].
    spent: Usage,
    /// The visit's tool calls that needed a decision, and the decisions.
    approvals: &'a [CallApproval],
    /// How many calls needing a decision this attempt has reached.
    asked: u32,
    /// Those reached that no decision was asked for yet: the attempt parks.
    pending: Vec<PendingCall>,
    /// Set for the cursor of one lane ([`Calls::lanes`]).
    lane: Option<Lane<'a>>,
}

/// One lane's part of a visit's calls.
struct Lane<'a> {
    /// Its number among the lanes, from 1.
    index: u32,
    /// Its calls the visit journaled before, in order.
    done: Vec<&'a CallRecord>,
    /// How many calls it has asked for.
    asked: u32,
    /// What the cursor had spent when the lane began.
    start: Usage,
    /// The number of the visit's last journaled call, which every lane
    /// takes the next of (one at a time) as it journals one.
    last: std::sync::Arc<tokio::sync::Mutex<u32>>,
}

/// What [`Calls::ask`] found for a tool call that needs a decision.
pub enum Asked<'a> {
    /// A person decided it.
    Decided(&'a CallDecision),
    /// It waits for a decision: the attempt must end before its turn runs.
    Pending,
}

/// What the next call is.
pub enum Next<'a> {
    /// The visit made it before: here is what it returned.
    Journaled(&'a CallRecord),
    /// It is to be made, sent with this idempotency key.
    Fresh { key: String },
}

impl<'a> Calls<'a> {
    pub fn new(ctx: &'a NodeCtx<'_>) -> Self {
        Calls {
            done: ctx.calls,
            journal: ctx.call_journal,
            key: &ctx.idempotency_key,
            node: &ctx.node.id,
            visit: ctx.visit,
            n: 0,
            settled: 0,
            spent: Usage::default(),
            approvals: ctx.approvals,
            asked: 0,
            pending: Vec::new(),
            lane: None,
        }
    }

    /// A cursor for each of `count` lanes of work that run side by side,
    /// from here (see the module's documentation); then
    /// [`Calls::end_lanes`]. Each gets its own journaled calls back.
    pub fn lanes(&self, count: u32) -> Vec<Calls<'a>> {
        let mut per: Vec<Vec<&'a CallRecord>> = (0..count).map(|_| Vec::new()).collect();
        let mut last = self.n;
        for rec in self.done.iter().skip(self.n as usize) {
            match lane_of(rec) {
                Some(i) if (1..=count).contains(&i) => per[i as usize - 1].push(rec),
                _ => break,
            }
            last += 1;
        }
        let last = std::sync::Arc::new(tokio::sync::Mutex::new(last));
        per.into_iter()
            .enumerate()
            .map(|(i, done)| Calls {
                done: self.done,
                journal: self.journal,
                key: self.key,
                node: self.node,
                visit: self.visit,
                n: self.n,
                settled: self.settled,
                spent: self.spent,
                approvals: self.approvals,
                asked: self.asked,
                pending: Vec::new(),
                lane: Some(Lane { index: i as u32 + 1, done, asked: 0, start: self.spent, last: last.clone() }),
            })
            .collect()
    }

    /// Whether this is the cursor of a lane (lanes do not nest).
    pub fn in_lane(&self) -> bool {
        self.lane.is_some()
    }

    /// Go on after `lanes` (made by [`Calls::lanes`]): the next call comes
    /// after every call they journaled, and what they spent is spent.
    pub fn end_lanes(&mut self, lanes: &[Calls<'a>]) {
        for l in lanes {
            let Some(lane) = &l.lane else { continue };
            self.spent.add(&super::converse::minus(l.spent, lane.start));
            if let Ok(last) = lane.last.try_lock() {
                self.n = self.n.max(*last);
            }
        }
        self.settled = self.n;
    }

    /// The calls of an attempt that has used the first `n` numbers
    /// already (a host function's pieces before an agent it runs): the
    /// next call is `n + 1`, and what the journaled ones among the first
    /// `n` cost is counted as spent.
    pub(crate) fn after(ctx: &'a NodeCtx<'_>, n: u32) -> Self {
        let mut calls = Calls::new(ctx);
        calls.n = n;
        calls.settled = n;
        for r in calls.done.iter().take(n as usize) {
            calls.spent.add(&r.usage);
        }
        calls
    }

    /// The number of the last call that is in the journal: where the next
    /// journaled work of the visit goes on from (a call that failed, or
    /// that another was asked for instead of, is not).
    pub(crate) fn settled(&self) -> u32 {
        self.settled
    }

    /// Ask for a person's decision on the next tool call that needs one
    /// (`tool` with `arguments`; `prompt` says so): the decision, if made,
    /// or pending (kept, to be journaled when the attempt ends; see
    /// [`Calls::take_pending`]). A decided call of another tool at this
    /// place is `nondeterminism`.
    pub fn ask(&mut self, tool: &str, arguments: &Value, prompt: String) -> Result<Asked<'a>, NodeError> {
        self.asked += 1;
        let id = call_id(self.node, self.asked);
        let approvals: &'a [CallApproval] = self.approvals;
        match approvals.iter().find(|a| a.call.id == id) {
            Some(a) if a.call.tool != tool => {
                let message = format!(
                    "node `{}` visit {}: tool call `{id}` is a call of `{tool}`, but the journal recorded a call of \
                     `{}` there: the node no longer makes the calls it made before",
                    self.node, self.visit, a.call.tool
                );
                Err(NodeError::new(ErrorClass::Nondeterminism, message))
            }
            Some(CallApproval { decision: Some(d), .. }) => Ok(Asked::Decided(d)),
            Some(_) => Err(NodeError::new(
                ErrorClass::Internal,
                format!("node `{}` visit {}: tool call `{id}` still waits for a decision", self.node, self.visit),
            )),
            None => {
                let arguments = Json::from_value(arguments);
                self.pending.push(PendingCall { id, tool: tool.to_string(), arguments, prompt });
                Ok(Asked::Pending)
            }
        }
    }

    /// Whether tool calls this attempt reached wait for a decision.
    pub fn parked(&self) -> bool {
        !self.pending.is_empty()
    }

    /// The tool calls that wait for a decision (see [`Calls::ask`]).
    pub fn take_pending(&mut self) -> Vec<PendingCall> {
        std::mem::take(&mut self.pending)
    }

    /// The error a conversation stops with when tool calls wait for a
    /// decision: the node turns it into its parking output (see
    /// [`Calls::parked`]), so no one sees it as a failure.
    pub fn parking(&self) -> NodeError {
        let ids: Vec<&str> = self.pending.iter().map(|p| p.id.as_str()).collect();
        NodeError::new(ErrorClass::Internal, format!("tool calls wait for a decision: {}", ids.join(", ")))
    }

    /// The next call, a `kind` call of `name`: read back from the journal,
    /// or to be made. A journaled call of another kind or name is
    /// `nondeterminism`.
    pub fn next(&mut self, kind: &str, name: &str) -> Result<Next<'a>, NodeError> {
        if let Some(lane) = &mut self.lane {
            lane.asked += 1;
            let Some(done) = lane.done.get(lane.asked as usize - 1).copied() else {
                return Ok(Next::Fresh { key: format!("{}/lane/{}/call/{}", self.key, lane.index, lane.asked) });
            };
            if done.kind != kind || done.name != name {
                let message = format!(
                    "node `{}` visit {}: call {} of lane {} is a {kind} call of `{name}`, but the journal recorded a \
                     {} call of `{}` there: the node no longer makes the calls it made before",
                    self.node, self.visit, lane.asked, lane.index, done.kind, done.name
                );
                return Err(NodeError::new(ErrorClass::Nondeterminism, message));
            }
            self.spent.add(&done.usage);
            return Ok(Next::Journaled(done));
        }
        self.n += 1;
        let Some(done) = self.done.get(self.n as usize - 1) else {
            return Ok(Next::Fresh { key: self.key_of(self.n) });
        };
        if done.kind != kind || done.name != name {
            let message = format!(
                "node `{}` visit {}: call {} is a {kind} call of `{name}`, but the journal recorded a {} call of `{}` \
                 there: the node no longer makes the calls it made before",
                self.node, self.visit, self.n, done.kind, done.name
            );
            return Err(NodeError::new(ErrorClass::Nondeterminism, message));
        }
        self.spent.add(&done.usage);
        self.settled = self.n;
        Ok(Next::Journaled(done))
    }

    /// Journal the call [`Calls::next`] just handed out as fresh, which
    /// completed; returns once it is durable.
    pub async fn record(
        &mut self,
        kind: &str,
        name: &str,
        request: &Value,
        response: &Value,
        usage: Usage,
    ) -> Result<(), NodeError> {
        let Some(journal) = self.journal else { return Ok(()) };
        self.spent.add(&usage);
        if let Some(lane) = &self.lane {
            let mut request = request.clone();
            if let Value::Object(m) = &mut request {
                m.insert("lane".into(), Value::from(lane.index));
            }
            // One lane journals at a time, each call taking the next number.
            let mut last = lane.last.lock().await;
            let call = CallRecord {
                n: *last + 1,
                kind: kind.to_string(),
                name: name.to_string(),
                request: Json::from_value(&request),
                response: Json::from_value(response),
                usage,
            };
            journal.record(call).await?;
            *last += 1;
            return Ok(());
        }
        let call = CallRecord {
            n: self.n,
            kind: kind.to_string(),
            name: name.to_string(),
            request: Json::from_value(request),
            response: Json::from_value(response),
            usage,
        };
        journal.record(call).await?;
        self.settled = self.n;
        Ok(())
    }

    /// Count a call that is not journaled (a final reply) in [`Calls::spent`].
    pub fn spend(&mut self, usage: Usage) {
        self.spent.add(&usage);
    }

    /// What this attempt's calls so far cost, read back ones included.
    pub fn spent(&self) -> Usage {
        self.spent
    }

    /// Tokens and cost of every call the visit journaled before this attempt.
    pub fn journaled_usage(&self) -> Usage {
        let mut u = Usage::default();
        for r in self.done {
            u.add(&r.usage);
        }
        u
    }

    /// Whether calls are journaled at all (not for a node run where
    /// nothing journals them): when not, their usage is the attempt's.
    pub fn journals(&self) -> bool {
        self.journal.is_some()
    }

    fn key_of(&self, n: u32) -> String {
        if n == 1 { self.key.to_string() } else { format!("{}/call/{n}", self.key) }
    }
}

/// The lane a journaled call was made in (`"lane": i` in its request).
fn lane_of(rec: &CallRecord) -> Option<u32> {
    if !rec.request.0.contains("\"lane\"") {
        return None;
    }
    let lane = rec.request.value().ok()?.get("lane")?.as_u64()?;
    u32::try_from(lane).ok()
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use serde_json::json;

    use super::*;

    struct Kept(Mutex<Vec<CallRecord>>);

    impl CallJournal for Kept {
        fn record(&self, call: CallRecord) -> BoxFuture<'_, Result<(), NodeError>> {
            self.0.lock().unwrap().push(call);
            Box::pin(std::future::ready(Ok(())))
        }

        fn owned(&self) -> std::sync::Arc<dyn CallJournal> {
            unreachable!("not kept in these tests")
        }
    }

    fn record(n: u32, kind: &str, name: &str) -> CallRecord {
        CallRecord {
            n,
            kind: kind.into(),
            name: name.into(),
            request: Json::from_value(&json!({})),
            response: Json::from_value(&json!(n)),
            usage: Usage { input_tokens: 10, output_tokens: 1, cost_usd: 0.5 },
        }
    }

    fn calls<'a>(done: &'a [CallRecord], journal: &'a Kept) -> Calls<'a> {
        Calls {
            done,
            journal: Some(journal),
            key: "exec_1/n/1",
            node: "n",
            visit: 1,
            n: 0,
            settled: 0,
            spent: Usage::default(),
            approvals: &[],
            asked: 0,
            pending: Vec::new(),
            lane: None,
        }
    }

    #[tokio::test]
    async fn journaled_calls_are_read_back_then_fresh_ones_are_keyed_and_numbered_on() {
        let done = [record(1, "model", "m"), record(2, "tool", "search")];
        let kept = Kept(Mutex::new(Vec::new()));
        let mut c = calls(&done, &kept);
        assert_eq!(c.journaled_usage().input_tokens, 20);
        assert!(matches!(c.next("model", "m").unwrap(), Next::Journaled(r) if r.n == 1));
        assert!(matches!(c.next("tool", "search").unwrap(), Next::Journaled(r) if r.n == 2));
        let Next::Fresh { key } = c.next("model", "m").unwrap() else { panic!("call 3 is fresh") };
        assert_eq!(key, "exec_1/n/1/call/3");
        c.record("model", "m", &json!({}), &json!("r"), Usage::default()).await.unwrap();
        assert_eq!(kept.0.lock().unwrap()[0].n, 3);
        let mut first = calls(&[], &kept);
        assert!(matches!(first.next("model", "m").unwrap(), Next::Fresh { key } if key == "exec_1/n/1"));
    }

    #[test]
    fn a_call_other_than_the_journaled_one_is_nondeterminism_naming_both() {
        let done = [record(1, "model", "m"), record(2, "tool", "search")];
        let kept = Kept(Mutex::new(Vec::new()));
        let mut c = calls(&done, &kept);
        c.next("model", "m").unwrap();
        let Err(e) = c.next("tool", "fetch") else { panic!("another tool must not be read back") };
        assert_eq!(e.class, ErrorClass::Nondeterminism);
        assert!(e.message.contains("call 2 is a tool call of `fetch`"), "{}", e.message);
        assert!(e.message.contains("recorded a tool call of `search`"), "{}", e.message);
    }
}
