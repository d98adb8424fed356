//! `run --follow`: each event of an execution as it becomes durable, one
//! line per step for people (time, node, what happened), or one JSON
//! record per line (`--json`, JSON Lines). Locally the lines come from
//! [`Runtime::subscribe`](crate::Runtime::subscribe); with `--server`,
//! from the server's event stream. This file renders and prints, and
//! follows an execution of a local runtime ([`follow_local`]).

use crate::clock::format_ms;
use crate::id::ExecutionId;
use crate::journal::{BranchOutcome, Event, Record, RetryDecision};
use crate::nodes::stream::Token;
use crate::runtime::{Error as RuntimeError, Outcome, Runtime};

use super::report::usage_text;
use super::table::micros;

/// Prints records in order, each once.
pub(crate) struct Printer {
    json: bool,
    last: u64,
    /// The execution the records are of, when several are followed at
    /// once (`resume --follow`): a JSON line gets an `execution` field, a
    /// text line starts with the id when `label_text`.
    execution: Option<ExecutionId>,
    label_text: bool,
    /// The stream whose line of text is open (a newline ends it before
    /// the next line): the branch it is in, the node, visit and attempt.
    streaming: Option<(Option<ExecutionId>, String, u32, u32)>,
}

impl Printer {
    pub(crate) fn new(json: bool) -> Self {
        Printer { json, last: 0, execution: None, label_text: false, streaming: None }
    }

    /// A printer for the records of `id`, one of several followed at once.
    pub(crate) fn of(json: bool, id: ExecutionId, label_text: bool) -> Self {
        Printer { json, last: 0, execution: Some(id), label_text, streaming: None }
    }

    /// Print `r` unless it was printed already.
    pub(crate) fn print(&mut self, r: &Record) {
        if r.seq <= self.last {
            return;
        }
        self.last = r.seq;
        self.end_stream();
        if self.json {
            match self.execution {
                Some(id) => {
                    let mut v = serde_json::to_value(r).expect("records serialize");
                    if let Some(obj) = v.as_object_mut() {
                        obj.insert("execution".into(), serde_json::json!(id));
                    }
                    println!("{v}");
                }
                None => println!("{}", serde_json::to_string(r).expect("records serialize")),
            }
        } else if let Some(text) = line(r) {
            match self.execution.filter(|_| self.label_text) {
                Some(id) => println!("{id}  {text}"),
                None => println!("{text}"),
            }
        }
    }

    /// Print a piece of a streamed reply as it comes: text after
    /// `node  >` on one line for people (a restarted stream begins a new
    /// line that says so), `{"token": {...}}` as a JSON line.
    pub(crate) fn token(&mut self, t: &Token) {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        if self.json {
            let mut v = serde_json::json!({ "token": t });
            if let Some(id) = self.execution {
                v["execution"] = serde_json::json!(id);
            }
            let _ = writeln!(out, "{v}");
            return;
        }
        // Branches stream at once: a piece of another stream starts a line of its own.
        let stream = (t.inside.as_ref().map(|i| i.execution), t.node.clone(), t.visit, t.attempt);
        if t.n == 0 || self.streaming.as_ref() != Some(&stream) {
            if self.streaming.is_some() {
                let _ = writeln!(out);
            }
            let label = match self.execution.filter(|_| self.label_text) {
                Some(id) => format!("{id}  "),
                None => String::new(),
            };
            let place = match &t.inside {
                Some(i) => format!("{} branch {} / ", i.parent_node, i.branch),
                None => String::new(),
            };
            let again = if t.restarted { format!(" (streamed again, attempt {})", t.attempt) } else { String::new() };
            let _ = write!(out, "{label}{place}{}{again}  > ", t.node);
        }
        let _ = write!(out, "{}", t.text);
        let _ = out.flush();
        self.streaming = Some(stream);
    }

    /// End an open line of streamed text.
    fn end_stream(&mut self) {
        if self.streaming.take().is_some() {
            println!();
        }
    }

    /// The highest sequence number printed.
    pub(crate) fn last(&self) -> u64 {
        self.last
    }
}

/// Settle `id`, printing each of its events as it becomes durable, and
/// the tokens of its streamed model replies as they come (from `tokens`,
/// or from now on).
pub(crate) async fn follow_local(
    rt: &Runtime,
    id: ExecutionId,
    printer: &mut Printer,
    tokens: Option<crate::nodes::stream::TokenRx>,
) -> Result<Outcome, RuntimeError> {
    // Subscribe first, then read, so nothing appended between is missed.
    let mut feed = rt.subscribe(id);
    let mut tokens = tokens.unwrap_or_else(|| crate::nodes::stream::TokenRx::One(rt.tokens(id)));
    let mut streaming = true;
    let settle = rt.settle(id);
    tokio::pin!(settle);
    let (mut live, mut appended) = (true, true);
    let outcome = loop {
        if std::mem::take(&mut appended) {
            for r in &rt.events(id)? {
                printer.print(r);
            }
        }
        tokio::select! {
            biased;
            token = tokens.next(id), if streaming => match token {
                Some(t) => printer.token(&t),
                None => streaming = false,
            },
            outcome = &mut settle => break outcome?,
            changed = feed.changed(), if live => {
                live = changed.is_ok();
                appended = true;
            }
        }
    };
    for r in &rt.events(id)? {
        printer.print(r);
    }
    Ok(outcome)
}

/// One record on one line: `time  node  what happened`. `None` for a
/// record that is not a step of its own (a node scheduled).
pub(crate) fn line(r: &Record) -> Option<String> {
    let what = what(&r.event)?;
    let at = format_ms(r.at_ms);
    Some(match r.event.node() {
        Some(node) if !matches!(r.event, Event::ExecutionFailed { .. }) => format!("{at}  {node}  {what}"),
        _ => format!("{at}  {what}"),
    })
}

fn what(e: &Event) -> Option<String> {
    Some(match e {
        Event::ExecutionStarted { workflow_id, workflow_version, .. } => {
            format!("execution started ({workflow_id}@{workflow_version})")
        }
        Event::ChildStarted { parent, parent_node, branch, .. }
        | Event::BranchStarted { parent, parent_node, branch, .. } => {
            format!("child execution started (of {parent}, node `{parent_node}`, branch {branch})")
        }
        Event::NodeScheduled { .. } => return None,
        Event::NodeStarted { attempt, .. } => {
            if *attempt > 1 {
                format!("started (attempt {attempt})")
            } else {
                "started".into()
            }
        }
        Event::NodeCompleted { duration_us, next, .. } => {
            let then = next.as_ref().map(|n| format!(", next `{n}`")).unwrap_or_default();
            format!("completed in {}{then}", micros(*duration_us))
        }
        Event::NodeFailed { attempt, class, message, retry, .. } => {
            let then = match retry {
                RetryDecision::Retry { attempt, at_ms } => format!("; attempt {attempt} at {}", format_ms(*at_ms)),
                RetryDecision::GiveUp => "; gave up".into(),
            };
            format!("failed (attempt {attempt}): {class}: {message}{then}")
        }
        Event::ExecutionCompleted { .. } => "execution completed".into(),
        Event::ExecutionFailed { node, error } => {
            let at = node.as_ref().map(|n| format!(" at `{n}`")).unwrap_or_default();
            format!("execution failed{at}: {error}")
        }
        Event::ExecutionCancelled { reason } => format!("execution cancelled: {reason}"),
        Event::Waiting { event, deadline_ms, prompt, .. } => {
            let deadline = deadline_ms.map(|d| format!(" (deadline {})", format_ms(d))).unwrap_or_default();
            match (event, prompt) {
                (Some(k), _) => format!("waiting for event `{k}`{deadline}"),
                (None, Some(p)) => format!("waiting for an approval{deadline}: {}", one_line(p)),
                (None, None) => {
                    format!("waiting for a timer until {}", deadline_ms.map(format_ms).unwrap_or_else(|| "-".into()))
                }
            }
        }
        Event::SignalReceived { key, payload } => format!("signal `{key}` received, payload {}", payload.0),
        Event::SessionJoined { session, turn, .. } => format!("task {turn} of session `{session}`"),
        Event::Forked { from, at_seq, node, visit, .. } => {
            format!("forked from {from} (its records 1-{at_seq}), going on at `{node}` visit {visit}")
        }
        Event::WaitTimedOut { .. } => "wait ended by its deadline".into(),
        Event::TimerFired { .. } => "timer fired".into(),
        Event::Call { call, .. } => {
            let tokens = call.usage.input_tokens + call.usage.output_tokens;
            let tokens = if tokens > 0 { format!(", {tokens} tokens") } else { String::new() };
            format!("call {} done: {} `{}`{tokens}", call.n, call.kind, call.name)
        }
        Event::ApprovalDecided { approved, by, comment, .. } => {
            let verdict = if *approved { "approved" } else { "rejected" };
            let why = comment.as_ref().map(|c| format!(": {}", one_line(c))).unwrap_or_default();
            format!("{verdict} by {by}{why}")
        }
        Event::FanOut { branches, .. } => {
            format!("started {}", crate::plural::count(*branches, "branch", "branches"))
        }
        Event::BranchFinished { branch, outcome, .. } => match outcome {
            BranchOutcome::Completed { .. } => format!("branch {branch} completed"),
            BranchOutcome::Failed { error } => format!("branch {branch} failed: {error}"),
            BranchOutcome::Cancelled => format!("branch {branch} cancelled"),
        },
        Event::Exchange { usage, request, response, .. } => match http_call(request, response) {
            Some(call) if *usage == Default::default() => call,
            _ => format!("call answered ({})", usage_text(usage)),
        },
        Event::Scored { passed, .. } => format!("scored: {}", if *passed { "passed" } else { "failed" }),
        Event::CallsPending { calls, .. } => {
            let each: Vec<String> = calls.iter().map(|c| format!("{}: {}", c.id, one_line(&c.prompt))).collect();
            format!("waiting for decisions on tool calls: {}", each.join("; "))
        }
        Event::CallDecided { call, approved, by, comment, .. } => {
            let verdict = if *approved { "approved" } else { "rejected" };
            let why = comment.as_ref().map(|c| format!(": {}", one_line(c))).unwrap_or_default();
            format!("tool call {call} {verdict} by {by}{why}")
        }
    })
}

/// An http node's exchange on one line: `GET URL answered 200`, or why
/// no answer came.
fn http_call(request: &crate::journal::Json, response: &crate::journal::Json) -> Option<String> {
    let (request, response) = (request.value().ok()?, response.value().ok()?);
    let call = format!("{} {}", request.get("method")?.as_str()?, request.get("url")?.as_str()?);
    Some(match (response.get("status").and_then(|s| s.as_u64()), response.get("error").and_then(|e| e.as_str())) {
        (_, Some(error)) => format!("{call} failed: {}", one_line(error)),
        (Some(status), None) => format!("{call} answered {status}"),
        (None, None) => format!("{call} answered"),
    })
}

pub(crate) fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::{Json, Usage};

    fn rec(seq: u64, event: Event) -> Record {
        Record { seq, at_ms: 1_700_000_000_000, event }
    }

    #[test]
    fn each_step_reads_as_one_line_with_its_node() {
        let done = rec(
            3,
            Event::NodeCompleted {
                node: "fetch".into(),
                visit: 1,
                attempt: 1,
                patch: Json("{}".into()),
                next: Some("check".into()),
                duration_us: 12_300,
                usage: Usage::default(),
            },
        );
        let text = line(&done).expect("a step");
        assert!(text.ends_with("  fetch  completed in 12.3 ms, next `check`"), "{text}");
        let wait = rec(
            4,
            Event::Waiting { node: "gate".into(), visit: 1, event: Some("go".into()), deadline_ms: None, prompt: None },
        );
        assert!(line(&wait).expect("a step").ends_with("  gate  waiting for event `go`"));
        assert_eq!(line(&rec(2, Event::NodeScheduled { node: "fetch".into(), visit: 1 })), None);
        let failed = rec(5, Event::ExecutionFailed { node: Some("x".into()), error: "boom".into() });
        assert!(line(&failed).expect("a step").ends_with("  execution failed at `x`: boom"));
    }
}
