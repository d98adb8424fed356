//! `step(workflow, state, input, now) -> Step`: what one input to an
//! execution makes of it.
//!
//! Every decision is here, none in the shell: the events an input implies
//! (a node's result with its retry decision, the restart budget, the check
//! of a node's output against the state schema and `max_state_bytes`, the
//! deadlines due at `now`, the ends of children), each folded through
//! [`apply`] as it is made, stamped `now` with the next sequence number.
//! What applying them asks for is made in the same step, to a fixpoint;
//! what is left are [`Effect`]s. The shell appends `events` in one batch
//! and then carries out `effects`; it runs a pure or control node's
//! [`Effect::Run`] inside the batch and steps its result, so a chain of
//! them costs one sync.

use std::collections::VecDeque;

use serde_json::{Map, Value};

use super::{Command, Effect, ExecutionState, apply, fan_out_deadline, is_timer, resume};
use crate::ir::{Limit, Workflow};
use crate::journal::{BranchOutcome, CallRecord, ErrorClass, Event, Json, Record, RetryDecision};
use crate::nodes::{NodeError, NodeOutput};

/// What reaches an execution.
#[derive(Debug)]
pub enum Input {
    /// Its first event (`ExecutionStarted`, `ChildStarted`, `BranchStarted`).
    Start(Event),
    /// Its first event and its `SessionJoined` (a task of a session): one
    /// batch, the session's turn before its first node is scheduled.
    StartInSession {
        first: Event,
        joined: Box<Event>,
    },
    /// Its actor was rehydrated from the journal: go on where it stops
    /// (see [`resume`]).
    Resume,
    /// An attempt of a node has its result.
    Node {
        node: String,
        visit: u32,
        attempt: u32,
        result: NodeResult,
        duration_us: u64,
    },
    /// An external event for a `wait` (kept if nothing waits for it yet).
    Signal {
        key: String,
        payload: Json,
    },
    /// A decision for the approval `node`'s `visit` waits on (see
    /// [`pending_approval`]).
    Decision {
        node: String,
        visit: u32,
        approved: bool,
        by: String,
        comment: Option<String>,
    },
    Cancel {
        reason: String,
    },
    /// The clock reached a deadline: act on every one due at `now`.
    Tick,
    /// Children of a fan-out ended (already recorded ends are left out).
    BranchesDone {
        node: String,
        visit: u32,
        attempt: u32,
        ends: Vec<(u32, BranchOutcome)>,
    },
    /// A decision on the pending tool call `call` of `node`'s `visit` (see
    /// [`pending_call`]).
    CallDecision {
        node: String,
        visit: u32,
        call: String,
        approved: bool,
        by: String,
        comment: Option<String>,
    },
    /// A running attempt completed call `call.n` of its visit (see
    /// [`accepts_call`]): journal it before the attempt goes on.
    Call {
        node: String,
        visit: u32,
        attempt: u32,
        call: CallRecord,
    },
    /// Fail the execution (its restart budget is spent, its workflow does
    /// not pass this runtime's checks, the journal and the workflow disagree).
    Fail {
        node: Option<String>,
        error: String,
    },
}

/// What an attempt of a node came to.
#[derive(Debug)]
pub enum NodeResult {
    /// It ran: its output, or its classified error.
    Ran(Result<NodeOutput, NodeError>),
    /// A wait or approval parks the execution on this.
    Parks { event: Option<String>, deadline_ms: Option<u64>, prompt: Option<String> },
    /// A parallel or sub-workflow node fans out to this many children.
    FansOut { branches: u32 },
}

/// The events one input made (already folded into the state, numbered
/// from the state's `last_seq` before the step, all at `now`), and what
/// the shell must carry out once they are durable.
#[derive(Debug, Default, PartialEq)]
pub struct Step {
    pub events: Vec<Event>,
    pub effects: Vec<Effect>,
}

impl Step {
    /// Add a later step of the same batch.
    pub fn extend(&mut self, later: Step) {
        self.events.extend(later.events);
        self.effects.extend(later.effects);
    }
}

/// Make and fold the events `input` implies at `now`. An execution that
/// ended takes nothing: the step is empty.
pub fn step(workflow: &Workflow, st: &mut ExecutionState, input: Input, now: u64) -> Step {
    let mut m = Maker { wf: workflow, now, events: VecDeque::new(), commands: VecDeque::new(), out: Step::default() };
    if st.phase.is_terminal() {
        return m.out;
    }
    match input {
        Input::Start(first) => m.events.push_back(first),
        Input::StartInSession { first, joined } => m.events.extend([first, *joined]),
        Input::Resume => m.commands.extend(resume(st)),
        Input::Node { node, visit, attempt, result, duration_us } => {
            if !st.is_current(&node, visit, attempt) {
                return m.out;
            }
            let made = match result {
                NodeResult::Ran(r) => result_events(workflow, st, node, visit, attempt, r, duration_us, now),
                NodeResult::Parks { event, deadline_ms, prompt } => {
                    vec![Event::Waiting { node, visit, event, deadline_ms, prompt }]
                }
                NodeResult::FansOut { branches } => vec![Event::FanOut { node, visit, attempt, branches }],
            };
            m.events.extend(made);
        }
        Input::Signal { key, payload } => m.events.push_back(Event::SignalReceived { key, payload }),
        Input::Decision { node, visit, approved, by, comment } => {
            m.events.push_back(Event::ApprovalDecided { node, visit, approved, by, comment })
        }
        Input::CallDecision { node, visit, call, approved, by, comment } => {
            m.events.push_back(Event::CallDecided { node, visit, call, approved, by, comment })
        }
        Input::Cancel { reason } => m.events.push_back(Event::ExecutionCancelled { reason }),
        Input::Tick => due(workflow, st, now, &mut m.events, &mut m.commands),
        Input::BranchesDone { node, visit, attempt, ends } => {
            let open = st.active.get(&node).filter(|a| a.visit == visit).and_then(|a| a.fan_out.as_ref());
            if let Some(f) = open.filter(|f| f.attempt == attempt) {
                let new = ends.into_iter().filter(|(b, _)| !f.finished.contains_key(b));
                let made: Vec<Event> = new
                    .map(|(branch, outcome)| Event::BranchFinished { node: node.clone(), visit, branch, outcome })
                    .collect();
                m.events.extend(made);
            }
        }
        Input::Call { node, visit, attempt, call } => {
            if accepts_call(st, &node, visit, attempt, call.n).is_err() {
                return m.out;
            }
            m.events.push_back(Event::Call { node, visit, attempt, call });
        }
        Input::Fail { node, error } => m.commands.push_back(Command::Fail { node, error }),
    }
    m.run(st);
    m.out
}

/// Whether the running attempt `attempt` of `node`'s `visit` may journal
/// call number `n`: it is the current attempt and `n` is the visit's next
/// call. Why not, otherwise (a stale attempt goes no further).
pub fn accepts_call(st: &ExecutionState, node: &str, visit: u32, attempt: u32, n: u32) -> Result<(), String> {
    if st.phase.is_terminal() || !st.is_current(node, visit, attempt) {
        return Err(format!("attempt {attempt} of node `{node}` visit {visit} is no longer running"));
    }
    let next = st.calls.get(node).filter(|c| c.visit == visit).map_or(0, |c| c.records.len() as u32) + 1;
    if n != next {
        return Err(format!("node `{node}` visit {visit} journals call {next} next, not call {n}"));
    }
    Ok(())
}

/// The approval a decision for `node` (any, when `None`) goes to: its
/// name and visit; or why there is none, naming the decision that came
/// first if one did.
pub fn pending_approval(st: &ExecutionState, node: Option<&str>) -> Result<(String, u32), String> {
    let waiting = st.active.iter().find(|(n, a)| {
        a.wait.as_ref().is_some_and(|w| w.prompt.is_some() && !w.calls) && node.is_none_or(|want| want == *n)
    });
    if let Some((found, a)) = waiting {
        return Ok((found.clone(), a.visit));
    }
    // Tool calls are decided one by one, each by its id.
    let calls: Vec<&str> =
        undecided_calls(st).filter(|(n, _)| node.is_none_or(|want| want == *n)).map(|(_, c)| c).collect();
    if !calls.is_empty() {
        let at = node.map(|n| format!(" at node `{n}`")).unwrap_or_default();
        return Err(format!(
            "waits{at} for decisions on tool calls, each decided by its id: {} (jamjet approve <exec> --call ID)",
            calls.join(", ")
        ));
    }
    let decided = match node {
        Some(n) => st.decisions.get(n).map(|d| (n.to_string(), d)),
        None => st.decisions.iter().max_by_key(|(_, d)| d.at_ms).map(|(n, d)| (n.clone(), d)),
    };
    Err(match decided {
        Some((n, d)) => format!(
            "approval `{n}` was already decided: {} by {} at {}",
            if d.approved { "approved" } else { "rejected" },
            d.by,
            crate::clock::format_ms(d.at_ms)
        ),
        None => match node {
            Some(n) => format!("is not waiting for an approval at node `{n}`"),
            None => "is not waiting for an approval".to_string(),
        },
    })
}

/// The undecided tool calls of `st`'s waiting nodes: (node, call id).
fn undecided_calls(st: &ExecutionState) -> impl Iterator<Item = (&str, &str)> {
    st.active.iter().filter(|(_, a)| a.wait.as_ref().is_some_and(|w| w.calls)).flat_map(|(n, a)| {
        st.approvals
            .get(n)
            .filter(|v| v.visit == a.visit)
            .into_iter()
            .flat_map(|v| v.undecided())
            .map(move |c| (n.as_str(), c.call.id.as_str()))
    })
}

/// The node and visit whose pending tool call `call` a decision goes to;
/// or why there is none: it was decided already (by whom, when), or no
/// call of that id waits (with those that do).
pub fn pending_call(st: &ExecutionState, call: &str) -> Result<(String, u32), String> {
    let mut decided = None;
    for (node, v) in &st.approvals {
        let waiting =
            st.active.get(node).is_some_and(|a| a.visit == v.visit && a.wait.as_ref().is_some_and(|w| w.calls));
        for c in v.calls.iter().filter(|c| c.call.id == call) {
            match &c.decision {
                None if waiting => return Ok((node.clone(), v.visit)),
                None => {}
                Some(d) => decided = Some(d),
            }
        }
    }
    if let Some(d) = decided {
        return Err(format!(
            "tool call `{call}` was already decided: {} by {} at {}",
            if d.approved { "approved" } else { "rejected" },
            d.by,
            crate::clock::format_ms(d.at_ms)
        ));
    }
    let open: Vec<&str> = undecided_calls(st).map(|(_, c)| c).collect();
    Err(match open.is_empty() {
        true => format!("has no tool call `{call}` waiting for a decision (none waits)"),
        false => format!("has no tool call `{call}` waiting for a decision (waiting: {})", open.join(", ")),
    })
}

/// The events and commands of every deadline due at `now`: the
/// workflow's timeout, retry delays, wait timeouts, timers and fan-outs'
/// `timeout_ms`.
fn due(wf: &Workflow, st: &ExecutionState, now: u64, events: &mut VecDeque<Event>, commands: &mut VecDeque<Command>) {
    if st.deadline_ms(wf).is_some_and(|d| d <= now) {
        let ms = wf.timeout_ms.unwrap_or_default();
        let error = format!("workflow `{}` timed out: timeout_ms {ms} passed", wf.id);
        commands.push_back(Command::Fail { node: None, error });
        return;
    }
    for (node, a) in &st.active {
        if let Some((attempt, _)) = a.retry_at.filter(|r| r.1 <= now) {
            events.push_back(Event::NodeStarted { node: node.clone(), visit: a.visit, attempt });
        }
        if let Some(w) = a.wait.as_ref().filter(|w| w.deadline_ms.is_some_and(|d| d <= now)) {
            let (node, visit) = (node.clone(), a.visit);
            events.push_back(match is_timer(wf, &node, w) {
                true => Event::TimerFired { node, visit },
                false => Event::WaitTimedOut { node, visit },
            });
        }
        if let Some(d) = fan_out_deadline(wf, node, a).filter(|d| *d <= now) {
            let waited = d.saturating_sub(a.started_ms);
            commands.push_back(Command::FailNode {
                node: node.clone(),
                visit: a.visit,
                attempt: a.attempt,
                class: ErrorClass::Timeout,
                message: format!("its children did not all finish within timeout_ms {waited}"),
            });
        }
    }
}

/// The events that record an attempt's result: `NodeCompleted` (after
/// `Exchange` and `Scored` when it has them), `Waiting` for a node that
/// parks, or `NodeFailed` with the retry decision. An output that does not
/// fit the state schema, or would make the state larger than
/// `max_state_bytes`, fails the attempt.
#[allow(clippy::too_many_arguments)]
fn result_events(
    wf: &Workflow,
    st: &ExecutionState,
    node: String,
    visit: u32,
    attempt: u32,
    result: Result<NodeOutput, NodeError>,
    duration_us: u64,
    now: u64,
) -> Vec<Event> {
    let next_of = wf.node(&node).and_then(|n| n.next.clone());
    let result = result.and_then(|out| match check_output(st, &node, &out.patch, wf) {
        None => Ok(out),
        Some(err) => Err(NodeError { exchange: out.exchange, scores: out.scores, ..err }),
    });
    let (exchange, scores) = match &result {
        Ok(out) => (out.exchange.as_deref(), out.scores.as_deref()),
        Err(e) => (e.exchange.as_deref(), e.scores.as_deref()),
    };
    let mut events = Vec::with_capacity(3);
    if let Some(x) = exchange {
        events.push(Event::Exchange {
            node: node.clone(),
            visit,
            attempt,
            request: Json::from_value(&x.request),
            response: Json::from_value(&x.response),
            usage: x.usage,
        });
    }
    if let Some(s) = scores {
        let scores = Json::from_value(&s.scores);
        events.push(Event::Scored { node: node.clone(), visit, attempt, scores, passed: s.passed });
    }
    // Tool calls that wait for a person's decision park the node: the
    // attempt ends, neither completed nor failed.
    if let Ok(out) = &result
        && !out.pending.is_empty()
    {
        let calls = out
            .pending
            .iter()
            .map(|p| crate::journal::PendingCall {
                id: p.id.clone(),
                tool: p.tool.clone(),
                arguments: p.arguments.clone(),
                prompt: p.prompt.clone(),
            })
            .collect();
        events.push(Event::CallsPending { node, visit, attempt, calls });
        return events;
    }
    // A node that parks (an agent whose remote task asks for input) waits
    // for a signal instead of completing.
    if let Ok(NodeOutput { park: Some(p), .. }) = &result {
        let (event, prompt) = (Some(p.event.clone()), p.prompt.clone());
        events.push(Event::Waiting { node, visit, event, deadline_ms: None, prompt });
        return events;
    }
    events.push(match result {
        Ok(out) => Event::NodeCompleted {
            next: out.next.or(next_of),
            patch: Json::from_map(&out.patch),
            usage: {
                // The visit's journaled calls, and what the attempt spent beyond them.
                let mut usage = st.calls.get(&node).filter(|c| c.visit == visit).map(|c| c.usage()).unwrap_or_default();
                usage.add(&out.exchange.map(|x| x.usage).unwrap_or_default());
                usage
            },
            node,
            visit,
            attempt,
            duration_us,
        },
        Err(e) => {
            let retry = retry_decision(wf, st, &node, visit, attempt, &e, now);
            let mut message = e.message;
            if e.class == ErrorClass::Panic && retry == RetryDecision::GiveUp {
                let b = st.restart_budget;
                message =
                    format!("{message} (restart budget of {} in {} s exhausted)", b.max_restarts, b.window_ms / 1000);
            }
            Event::NodeFailed { node, visit, attempt, class: e.class, message, retry }
        }
    });
    events
}

/// Why a node's output is refused, if it is: it does not fit the state
/// schema, or the state would outgrow `max_state_bytes`.
fn check_output(st: &ExecutionState, node: &str, patch: &Map<String, Value>, wf: &Workflow) -> Option<NodeError> {
    let errors = wf.state_schema.check_map(patch);
    if !errors.is_empty() {
        let text = errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ");
        return Some(NodeError::new(
            ErrorClass::InvalidOutput,
            format!("the node's output does not fit the state schema: {text}"),
        ));
    }
    let size = st.state_bytes_after(patch);
    if size <= st.max_state_bytes {
        return None;
    }
    let what = format!("the state after node `{node}` would be {}", crate::ir::show_bytes(size));
    Some(NodeError::new(
        ErrorClass::LimitExceeded,
        crate::ir::limits_message(Limit::MaxStateBytes, st.max_state_bytes, what),
    ))
}

/// After a failed attempt: a panic is retried at once while the restart
/// budget allows (the panics of this visit are in the state, journaled with
/// their times); any other error as the node's retry policy says, with a
/// jitter drawn from the attempt's identity so that a replay decides alike.
fn retry_decision(
    wf: &Workflow,
    st: &ExecutionState,
    node: &str,
    visit: u32,
    attempt: u32,
    e: &NodeError,
    now: u64,
) -> RetryDecision {
    if e.class == ErrorClass::Panic {
        let panics = st.active.get(node).map(|a| a.panics.as_slice()).unwrap_or_default();
        return match st.restart_budget.allows(panics, now) {
            true => RetryDecision::Retry { attempt: attempt + 1, at_ms: now },
            false => RetryDecision::GiveUp,
        };
    }
    let Some(spec) = wf.node(node) else { return RetryDecision::GiveUp };
    let seed = fxhash(&format!("{}/{node}/{visit}/{attempt}", st.id));
    // An agent's attempts that carried an answer to its remote task are
    // rounds of one conversation, not retries.
    let rounds = st.agents.get(node).filter(|r| r.visit == visit).map_or(0, |r| r.replies)
        // Nor are the attempts that went on once tool calls were decided.
        + st.approvals.get(node).filter(|a| a.visit == visit).map_or(0, |a| a.rounds);
    match super::super::retry::decide(&spec.retry, e.class, attempt.saturating_sub(rounds), now, e.retry_after_ms, seed)
    {
        RetryDecision::Retry { attempt, at_ms } => RetryDecision::Retry { attempt: attempt + rounds, at_ms },
        give_up => give_up,
    }
}

fn fxhash(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x0100_0000_01b3))
}

/// One step's work: events to fold, commands to turn into events or
/// effects, until neither is left.
struct Maker<'a> {
    wf: &'a Workflow,
    now: u64,
    events: VecDeque<Event>,
    commands: VecDeque<Command>,
    out: Step,
}

impl Maker<'_> {
    fn run(&mut self, st: &mut ExecutionState) {
        let (wf, now) = (self.wf, self.now);
        loop {
            if let Some(c) = self.commands.pop_front() {
                match c {
                    Command::Schedule { node, visit } => self.events.push_back(Event::NodeScheduled { node, visit }),
                    Command::Start { node, visit, attempt } => {
                        self.events.push_back(Event::NodeStarted { node, visit, attempt })
                    }
                    Command::Complete => {
                        self.events.push_back(Event::ExecutionCompleted { state: Json::from_map(st.final_state()) })
                    }
                    Command::Fail { node, error } => self.events.push_back(Event::ExecutionFailed { node, error }),
                    Command::Resolve { node, visit, attempt, patch, next } => {
                        let out = NodeOutput { patch, next, ..Default::default() };
                        self.events.extend(result_events(wf, st, node, visit, attempt, Ok(out), 0, now));
                    }
                    Command::FailNode { node, visit, attempt, class, message } => {
                        let err = NodeError::new(class, message);
                        self.events.extend(result_events(wf, st, node, visit, attempt, Err(err), 0, now));
                    }
                    Command::Effect(effect) => self.out.effects.push(effect),
                }
                continue;
            }
            let Some(event) = self.events.pop_front() else { break };
            let rec = Record { seq: st.last_seq + 1, at_ms: now, event };
            self.commands.extend(apply(wf, st, &rec));
            self.out.events.push(rec.event);
        }
    }
}
