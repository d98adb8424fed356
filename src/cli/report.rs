//! Where an execution stands after a command moved it on (`run`,
//! `signal`, `approve`): its outcome, and for a waiting one what it waits
//! for and the exact command that moves it on. Also the family tree of
//! child executions (parallel branches, sub-workflows), so a wait deep in
//! a branch is reported with the execution the user started.

use std::path::Path;
use std::process::ExitCode;

use serde_json::Value;

use super::{CliResult, Failure, print_json};
use crate::clock::format_ms;
use crate::id::ExecutionId;
use crate::ir::{NodeKind, Workflow};
use crate::journal::{Status, Usage};
use crate::runtime::{Error as RuntimeError, Outcome, Runtime, WaitKind, Waiting};

/// How to type a command on this data dir: `jamjet` plus `--data-dir`
/// when the next command would not find the same one by default.
pub(crate) struct Invocation {
    prefix: String,
    /// ` --server URL`, after the command's arguments, with a server.
    suffix: String,
}

impl Invocation {
    pub(crate) fn new(data_dir: &Path) -> Self {
        let from_env = std::env::var_os("JAMJET_DATA_DIR").is_some_and(|v| Path::new(&v) == data_dir);
        let prefix = if from_env || data_dir == Path::new(".jamjet") {
            "jamjet".to_string()
        } else {
            format!("jamjet --data-dir {}", shell_word(&data_dir.display().to_string()))
        };
        Invocation { prefix, suffix: String::new() }
    }

    /// How to type a command against the server at `url`: `--server URL`
    /// unless `JAMJET_SERVER` says it already.
    pub(crate) fn remote(url: &str) -> Self {
        let from_env = std::env::var("JAMJET_SERVER").is_ok_and(|v| v.trim_end_matches('/') == url);
        let suffix = if from_env { String::new() } else { format!(" --server {}", shell_word(url)) };
        Invocation { prefix: "jamjet".into(), suffix }
    }

    /// `jamjet … REST` as the user types it here (REST already quoted).
    pub(crate) fn command(&self, rest: &str) -> String {
        format!("{} {rest}{}", self.prefix, self.suffix)
    }

    /// The command that delivers event `key` to execution `id` (its payload left out).
    pub(crate) fn signal_command(&self, id: ExecutionId, key: &str) -> String {
        self.command(&format!("signal {id} {}", shell_word(key)))
    }

    /// The command that moves `w` on.
    pub(crate) fn next_step(&self, w: &Waiting, several_approvals: bool) -> Option<String> {
        let (p, s) = (&self.prefix, &self.suffix);
        match w.kind {
            WaitKind::Event => {
                let key = w.event.as_deref().unwrap_or_default();
                Some(format!("{p} signal {} {} --payload '<json>'{s}", w.id, shell_word(key)))
            }
            WaitKind::Approval if w.call.is_some() => {
                let call = shell_word(w.call.as_deref().unwrap_or_default());
                Some(format!("{p} approve {} --call {call} --decision approved{s}", w.id))
            }
            WaitKind::Approval => {
                let node = if several_approvals { format!(" --node {}", shell_word(&w.node)) } else { String::new() };
                Some(format!("{p} approve {}{node} --decision approved{s}", w.id))
            }
            WaitKind::Timer => None,
        }
    }
}

/// A word the shell reads back as `text`.
pub(crate) fn shell_word(text: &str) -> String {
    let plain = !text.is_empty() && text.chars().all(|c| c.is_ascii_alphanumeric() || "_-.,:/@%+=".contains(c));
    if plain { text.to_string() } else { format!("'{}'", text.replace('\'', r"'\''")) }
}

/// The execution that started `id`'s family: `id` itself, or the parent
/// of its parent… of a branch or sub-workflow.
pub(crate) fn root_of(rt: &Runtime, mut id: ExecutionId) -> Result<ExecutionId, RuntimeError> {
    while let Some(parent) = parent_of(rt, id)? {
        id = parent;
    }
    Ok(id)
}

/// The parent of a child execution, from its first event.
pub(crate) fn parent_of(rt: &Runtime, id: ExecutionId) -> Result<Option<ExecutionId>, RuntimeError> {
    Ok(rt.parent_link(id)?.map(|p| p.id))
}

/// What `id` and its descendants wait for.
pub(crate) fn waits_under(rt: &Runtime, id: ExecutionId) -> Result<Vec<Waiting>, RuntimeError> {
    let mut out = Vec::new();
    for w in rt.waiting()? {
        let mut at = Some(w.id);
        while let Some(e) = at {
            if e == id {
                out.push(w);
                break;
            }
            at = if e == w.id { w.parent } else { parent_of(rt, e)? };
        }
    }
    Ok(out)
}

/// The `output_key` a wait node puts an event's payload into.
pub(crate) fn payload_key(rt: &Runtime, w: &Waiting) -> Option<String> {
    payload_key_in(&*rt.workflow_of(w.id).ok()?, &w.node)
}

/// The `output_key` wait node `node` of `wf` puts an event's payload into.
pub(crate) fn payload_key_in(wf: &Workflow, node: &str) -> Option<String> {
    match &wf.node(node)?.kind {
        NodeKind::Wait(n) => n.output_key.clone(),
        _ => None,
    }
}

/// Where a wait's payload goes, wherever the workflow came from.
pub(crate) type PayloadKeys<'a> = &'a dyn Fn(&Waiting) -> Option<String>;

/// One line per wait: what it waits for, and the command that ends it
/// (the payload keys from `keys`).
pub(crate) fn print_waits_with(keys: PayloadKeys, inv: &Invocation, root: ExecutionId, waits: &[Waiting]) {
    for w in waits {
        let whose = if w.id == root { String::new() } else { format!(" (in child execution {})", w.id) };
        let deadline = w.deadline_ms.map(|d| format!(", deadline {}", format_ms(d))).unwrap_or_default();
        match w.kind {
            WaitKind::Event => {
                let key = w.event.as_deref().unwrap_or_default();
                println!(
                    "waits at node `{}`{whose} for event `{key}` since {}{deadline}",
                    w.node,
                    format_ms(w.since_ms)
                );
            }
            WaitKind::Approval if w.call.is_some() => {
                let prompt = w.prompt.as_deref().unwrap_or_default();
                let call = w.call.as_deref().unwrap_or_default();
                println!(
                    "waits at node `{}`{whose} for a decision on tool call {call} since {}",
                    w.node,
                    format_ms(w.since_ms)
                );
                println!("  prompt: {prompt}");
            }
            WaitKind::Approval => {
                let prompt = w.prompt.as_deref().unwrap_or_default();
                println!("waits at node `{}`{whose} for an approval since {}{deadline}", w.node, format_ms(w.since_ms));
                println!("  prompt: {prompt}");
            }
            WaitKind::Timer => {
                let at = w.deadline_ms.map(format_ms).unwrap_or_else(|| "-".into());
                println!("waits at node `{}`{whose} for a timer until {at} (it goes on by itself)", w.node);
            }
        }
        let approvals =
            waits.iter().filter(|o| o.id == w.id && o.kind == WaitKind::Approval && o.call.is_none()).count();
        if let Some(cmd) = inv.next_step(w, approvals > 1) {
            println!("  to go on: {cmd}");
            match w.kind {
                WaitKind::Event => {
                    if let Some(k) = keys(w) {
                        println!("            (the payload goes into `{k}`)");
                    }
                }
                WaitKind::Approval => println!("            (or --decision rejected)"),
                WaitKind::Timer => {}
            }
        }
    }
}

/// The waits as JSON, each with the command that moves it on.
fn waits_json(inv: &Invocation, waits: &[Waiting]) -> Vec<Value> {
    waits
        .iter()
        .map(|w| {
            let approvals =
                waits.iter().filter(|o| o.id == w.id && o.kind == WaitKind::Approval && o.call.is_none()).count();
            let mut v = serde_json::to_value(w).expect("waits serialize");
            if let (Some(obj), Some(cmd)) = (v.as_object_mut(), inv.next_step(w, approvals > 1)) {
                obj.insert("next".into(), Value::String(cmd));
            }
            v
        })
        .collect()
}

/// Print where `outcome` stands; the exit code says whether it failed
/// (a waiting execution has not failed: it waits for the outside).
/// `family`: the execution a finished child belongs to, and what that
/// one still waits for.
pub(crate) fn print_outcome(
    rt: &Runtime,
    inv: &Invocation,
    outcome: &Outcome,
    family: Option<(ExecutionId, &[Waiting])>,
    json: bool,
) -> CliResult {
    let id = outcome.id;
    let meta = rt.status(id)?;
    let waits = if outcome.status.is_terminal() { Vec::new() } else { waits_under(rt, id)? };
    if outcome.status == Status::Running && waits.is_empty() {
        // Settled, running, and waiting on no one: its actor stopped under it.
        return Err(Failure::from(RuntimeError::Stopped { id }));
    }
    let keys = |w: &Waiting| payload_key(rt, w);
    render_outcome(&keys, inv, outcome, (meta.created_ms, meta.updated_ms), &waits, family, json)
}

/// [`print_outcome`] from what was gathered (here or from a server):
/// `times` is the execution's (created, updated) unix ms.
pub(crate) fn render_outcome(
    keys: PayloadKeys,
    inv: &Invocation,
    outcome: &Outcome,
    times: (u64, u64),
    waits: &[Waiting],
    family: Option<(ExecutionId, &[Waiting])>,
    json: bool,
) -> CliResult {
    let id = outcome.id;
    let (created_ms, updated_ms) = times;
    if json {
        print_json(&outcome_json(inv, outcome, waits, family));
    } else {
        match outcome.status {
            Status::Waiting => {
                // Since it parked where it is now (the index row changes only with the status).
                let since = waits.iter().map(|w| w.since_ms).max().unwrap_or(updated_ms);
                println!("execution {id} waiting since {}", format_ms(since));
            }
            Status::Running => println!("execution {id} running, its children waiting:"),
            s => {
                let took = updated_ms.saturating_sub(created_ms);
                println!("execution {id} {s} at {} ({took} ms)", format_ms(updated_ms));
            }
        }
        if let Some(e) = &outcome.error {
            println!("error: {e}");
        }
        let u = &outcome.usage;
        if u.input_tokens + u.output_tokens > 0 {
            println!("usage: {}", usage_text(u));
        }
        print_waits_with(keys, inv, id, waits);
        println!("{}", serde_json::to_string_pretty(&outcome.state).expect("state serializes"));
        if let Some((root, family_waits)) = family {
            println!();
            println!("it is part of execution {root}, which goes on once these do:");
            print_waits_with(keys, inv, root, family_waits);
        }
    }
    Ok(if matches!(outcome.status, Status::Completed | Status::Waiting | Status::Running) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// An outcome as `--json` prints it: the outcome, what it waits for (each
/// with the command that moves it on), and its family's waits.
pub(crate) fn outcome_json(
    inv: &Invocation,
    outcome: &Outcome,
    waits: &[Waiting],
    family: Option<(ExecutionId, &[Waiting])>,
) -> Value {
    let mut v = serde_json::to_value(outcome).expect("outcomes serialize");
    if let Some(obj) = v.as_object_mut() {
        if !waits.is_empty() {
            obj.insert("waiting".into(), Value::Array(waits_json(inv, waits)));
        }
        if let Some((root, family_waits)) = family {
            let waiting = Value::Array(waits_json(inv, family_waits));
            obj.insert("family".into(), serde_json::json!({ "id": root, "waiting": waiting }));
        }
    }
    v
}

/// [`print_outcome`]'s JSON, to print with others (`resume --json`).
pub(crate) fn outcome_value(rt: &Runtime, inv: &Invocation, outcome: &Outcome) -> Result<Value, Failure> {
    let waits = if outcome.status.is_terminal() { Vec::new() } else { waits_under(rt, outcome.id)? };
    if outcome.status == Status::Running && waits.is_empty() {
        return Err(Failure::from(RuntimeError::Stopped { id: outcome.id }));
    }
    Ok(outcome_json(inv, outcome, &waits, None))
}

/// Carry an execution on after a delivery until it settles. A child
/// (a branch, a sub-workflow) that finished hands over to the execution
/// its family started from, which then goes on too, unless another of its
/// descendants still waits: the family cannot move before that one does,
/// and its end is journaled in the parent when the family goes on.
pub(crate) async fn carry_on(rt: &Runtime, inv: &Invocation, id: ExecutionId, json: bool) -> CliResult {
    let outcome = rt.settle(id).await?;
    let root = root_of(rt, id)?;
    if root == id || !outcome.status.is_terminal() {
        return print_outcome(rt, inv, &outcome, None, json);
    }
    let waits = waits_under(rt, root)?;
    if waits.is_empty() {
        if !json {
            eprintln!("execution {id} {}; its family goes on from execution {root}", outcome.status);
        }
        let family = rt.settle(root).await?;
        return print_outcome(rt, inv, &family, None, json);
    }
    print_outcome(rt, inv, &outcome, Some((root, &waits)), json)
}

/// The child executions under `id` (branches, sub-workflows, and theirs)
/// whose end its parent has not recorded and that have not ended.
pub(crate) fn open_descendants(rt: &Runtime, id: ExecutionId) -> Result<Vec<ExecutionId>, RuntimeError> {
    let mut out = Vec::new();
    let mut todo = vec![id];
    while let Some(at) = todo.pop() {
        let records = rt.events(at)?;
        for row in crate::timeline::timeline(at, &records).nodes {
            for b in row.branches.iter().filter(|b| b.outcome.is_none()) {
                match rt.status(b.child) {
                    Ok(meta) if !meta.status.is_terminal() => {
                        out.push(b.child);
                        todo.push(b.child);
                    }
                    Ok(_) | Err(RuntimeError::UnknownExecution(_)) => {}
                    Err(e) => return Err(e),
                }
            }
        }
    }
    Ok(out)
}

/// Tokens and cost, for people.
pub(crate) fn usage_text(u: &Usage) -> String {
    let tokens = crate::plural::count(u.input_tokens, "token", "tokens");
    format!("{tokens} in, {} out, {}", u.output_tokens, dollars(u.cost_usd))
}

/// A cost in US dollars: cents for big sums, more digits for small ones.
pub(crate) fn dollars(usd: f64) -> String {
    if usd == 0.0 {
        "$0".into()
    } else if usd >= 1.0 {
        format!("${usd:.2}")
    } else {
        format!("${usd:.6}")
    }
}
