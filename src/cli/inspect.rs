//! `jamjet inspect <exec-id>`: the timeline of one execution — node,
//! status, started, duration, attempts — then, under each node that has
//! them, its failed attempts, what it waited for and how that ended, and
//! the child executions it started, and an eval's scores; a waiting
//! execution says what moves it on. Model and tool calls add tokens and
//! cost per node and in total. `-v` adds what each call sent and received
//! (an http node's method, URL, status, headers and bodies too),
//! each state patch, the input, the final state and every event; `--json`
//! prints the events and the rows.

use std::path::Path;
use std::process::ExitCode;

use std::collections::HashMap;
use std::sync::Arc;

use super::held::{self, Mode, Store};
use super::remote::{Remote, ServerArg, outcome_of, waits_of};
use super::report::{
    Invocation, PayloadKeys, dollars, payload_key, payload_key_in, print_waits_with, usage_text, waits_under,
};
use super::{CliResult, Failure, parse_id, print_json, table};
use crate::client::Client;
use crate::clock::format_ms;
use crate::id::ExecutionId;
use crate::ir::{NodeKind, Workflow};
use crate::journal::{Event, ExecutionMeta, Record, Status};
use crate::runtime::{Outcome, Runtime, Unattended, WaitKind, Waiting};
use crate::timeline::{Branch, CallRow, ExchangeRow, NodeVisit, ScoreRow, WaitEnd, WaitSpan, timeline};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The execution id (exec_...).
    pub id: String,
    /// Show state patches, the input, the final state and every event.
    #[arg(short, long)]
    pub verbose: bool,
    /// Print the execution, its node rows and every event as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub server: ServerArg,
}

pub(crate) async fn run(data_dir: &Path, a: Args) -> CliResult {
    let id = parse_id(&a.id)?;
    let local = match &a.server.server {
        Some(url) => return inspect_remote(&Remote::server(url, &a.server)?, id, &a).await,
        None => match held::open(data_dir, "inspect", Mode::ReadOnly).await? {
            Store::Held(remote) => return inspect_remote(&remote, id, &a).await,
            Store::Local(local) => local,
        },
    };
    let result = show(&local.rt, data_dir, id, &a);
    local.close().await;
    result
}

async fn inspect_remote(remote: &Remote, id: ExecutionId, a: &Args) -> CliResult {
    let data = gather_remote(&remote.client, id).await?;
    let keys = |w: &Waiting| Some(&data.workflow).filter(|_| w.id == id).and_then(|wf| payload_key_in(wf, &w.node));
    render(&data, &remote.inv, &keys, a)
}

/// What `inspect` shows, gathered from the data dir or from a server.
pub(crate) struct Inspected {
    pub meta: ExecutionMeta,
    pub records: Vec<Record>,
    pub workflow: Arc<Workflow>,
    pub outcome: Outcome,
    /// What it (and its descendants) wait for; empty once it ended.
    pub waiting: Vec<Waiting>,
    /// The status of each child whose end the parent has not recorded
    /// (asked of the child itself; absent: not started).
    pub children: HashMap<ExecutionId, String>,
    /// Whether it was left behind with no process to carry it on (only
    /// known when this process opened the data dir itself).
    pub unattended: Option<Unattended>,
    /// In a shared store: the live process that owns it, or why it waits
    /// for one.
    pub process: Option<Process>,
}

/// Who carries an execution of a shared store on.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Process {
    /// A live process owns it (its worker id).
    Owner(String),
    /// None does, and it needs one: why.
    Needed(String),
}

/// The children whose end `records` has not recorded.
pub(crate) fn open_children(id: ExecutionId, records: &[Record]) -> Vec<ExecutionId> {
    let tl = timeline(id, records);
    tl.nodes.iter().flat_map(|v| v.branches.iter()).filter(|b| b.outcome.is_none()).map(|b| b.child).collect()
}

fn gather(rt: &Runtime, id: ExecutionId) -> Result<Inspected, Failure> {
    let meta = rt.status(id)?;
    let records = rt.events(id)?;
    let mut children = HashMap::new();
    for child in open_children(id, &records) {
        if let Ok(m) = rt.status(child) {
            children.insert(child, m.status.to_string());
        }
    }
    let waiting = if meta.status.is_terminal() { Vec::new() } else { waits_under(rt, id)? };
    // This process opened the data dir and carries nothing: no one else does.
    let unattended = rt.unattended(&meta).ok().flatten();
    let process = match meta.status.is_terminal() || !rt.shares_store() {
        true => None,
        false => match rt.owner(id)? {
            Some(owner) => Some(Process::Owner(owner)),
            None => rt.needs_a_process(meta.clone())?.map(|u| Process::Needed(u.reason)),
        },
    };
    Ok(Inspected {
        process,
        workflow: rt.workflow_of(id)?,
        outcome: rt.outcome(id)?,
        meta,
        records,
        waiting,
        children,
        unattended,
    })
}

/// What `inspect` shows, from a server: its execution, its events, the
/// workflow it runs, its open children.
async fn gather_remote(client: &Client, id: ExecutionId) -> Result<Inspected, Failure> {
    let x = client.execution(id).await?;
    let records = client.events(id, 0).await?;
    let (started_hash, started_key) = match records.first().map(|r| &r.event) {
        Some(Event::ExecutionStarted { workflow_hash, key, .. }) => (workflow_hash.clone(), key.clone()),
        Some(Event::ChildStarted { workflow_hash, .. } | Event::BranchStarted { workflow_hash, .. }) => {
            (workflow_hash.clone(), None)
        }
        _ => (String::new(), None),
    };
    // The index row's, when the server says them (it does since it serves the workflow by execution).
    let hash = x.workflow_hash.clone().unwrap_or(started_hash);
    let key = if x.workflow_hash.is_some() { x.key.clone() } else { started_key };
    let (_, workflow) = client.workflow_of(id).await?;
    let mut children = HashMap::new();
    for child in open_children(id, &records) {
        if let Ok(c) = client.execution(child).await {
            children.insert(child, c.status.to_string());
        }
    }
    let waiting = if x.status.is_terminal() { Vec::new() } else { waits_of(&x) };
    let meta = ExecutionMeta {
        id,
        workflow_id: x.workflow_id.clone(),
        workflow_version: x.version.clone(),
        workflow_hash: hash,
        status: x.status,
        created_ms: x.created_ms,
        updated_ms: x.updated_ms,
        key,
    };
    Ok(Inspected {
        meta,
        records,
        workflow: Arc::new(workflow),
        outcome: outcome_of(&x),
        waiting,
        children,
        unattended: None,
        process: None,
    })
}

fn show(rt: &Runtime, data_dir: &Path, id: ExecutionId, a: &Args) -> CliResult {
    let data = gather(rt, id)?;
    render(&data, &Invocation::new(data_dir), &|w| payload_key(rt, w), a)
}

/// Print what was gathered, as text or (`--json`) JSON.
pub(crate) fn render(data: &Inspected, inv: &Invocation, keys: PayloadKeys, a: &Args) -> CliResult {
    let Inspected { meta, records, workflow, outcome, waiting, children, unattended, process } = data;
    let id = meta.id;
    let tl = timeline(id, records);
    // Branches the parent has not recorded the end of: their own status.
    let child_status = |b: &Branch| -> String {
        match b.outcome {
            Some(o) => o.to_string(),
            None => children.get(&b.child).cloned().unwrap_or_else(|| "not started".into()),
        }
    };
    if a.json {
        let events: Vec<_> = records
            .iter()
            .map(|r| serde_json::json!({"seq": r.seq, "at": format_ms(r.at_ms), "at_ms": r.at_ms, "type": r.event.name(), "event": event_json(&r.event)}))
            .collect();
        let mut nodes = serde_json::to_value(&tl.nodes).expect("rows serialize");
        for (row, v) in tl.nodes.iter().zip(nodes.as_array_mut().into_iter().flatten()) {
            for (b, bv) in row.branches.iter().zip(v["branches"].as_array_mut().into_iter().flatten()) {
                bv["status"] = child_status(b).into();
            }
        }
        print_json(&serde_json::json!({
            "execution": meta,
            "unattended": unattended,
            "process": process,
            "parent": parent_json(records),
            "state": outcome.state,
            "error": outcome.error,
            "usage": outcome.usage,
            "waiting": waiting,
            "nodes": nodes,
            "kept_signals": tl.kept_signals,
            "session": tl.session,
            "fork": tl.fork,
            "events": events,
        }));
        return Ok(ExitCode::SUCCESS);
    }
    println!("execution  {id}");
    println!(
        "workflow   {}@{} ({})",
        meta.workflow_id,
        meta.workflow_version,
        &meta.workflow_hash[..12.min(meta.workflow_hash.len())]
    );
    if let Some(
        Event::ChildStarted { parent, parent_node, parent_visit, branch, start, until, .. }
        | Event::BranchStarted { parent, parent_node, parent_visit, branch, start, until, .. },
    ) = records.first().map(|r| &r.event)
    {
        let visit = if *parent_visit > 1 { format!(" #{parent_visit}") } else { String::new() };
        let span = until.as_ref().map(|u| format!(", from `{start}` until `{u}`")).unwrap_or_default();
        println!("parent     {parent} (node `{parent_node}`{visit}, branch {branch}{span})");
    }
    if let Some(f) = &tl.fork {
        let moved = f.version.as_ref().map(|v| format!(", moved from version {v}")).unwrap_or_default();
        let set = f.patch.as_object().filter(|m| !m.is_empty()).map(|_| format!(", set {}", f.patch));
        println!(
            "forked     from {} at node `{}` visit {} (its records 1-{} copied{moved}{})",
            f.from,
            f.node,
            f.visit,
            f.at_seq,
            set.unwrap_or_default()
        );
    }
    if let Some(s) = &tl.session {
        let turns = s.history.as_array().map_or(0, Vec::len);
        let after = s.after.as_ref().map(|a| format!(", carries on from {a}")).unwrap_or_default();
        println!(
            "session    {} (task {}{after}; {} earlier {} given)",
            s.session,
            s.turn,
            turns,
            if turns == 1 { "turn" } else { "turns" }
        );
        if s.carried.as_object().is_some_and(|m| !m.is_empty()) {
            println!("carried    {}", s.carried);
        }
    }
    println!("status     {}{}", meta.status, unattended_note(meta.status, *unattended));
    match process {
        Some(Process::Owner(owner)) => println!("process    {owner} runs it"),
        Some(Process::Needed(why)) => println!("process    none: {why}"),
        None => {}
    }
    println!("started    {}", format_ms(meta.created_ms));
    if meta.status.is_terminal() {
        println!("finished   {} ({} ms)", format_ms(meta.updated_ms), meta.updated_ms.saturating_sub(meta.created_ms));
    }
    if let Some(e) = &outcome.error {
        println!("error      {e}");
    }
    // Model, tool, agent and eval calls cost tokens; an http call does not.
    let calls = tl.nodes.iter().any(|v| costed(workflow, v));
    if calls {
        let mut unknown: Vec<&str> = tl
            .nodes
            .iter()
            .filter(|v| costed(workflow, v) && unpriced(workflow, &v.node))
            .filter_map(|v| match workflow.node(&v.node).map(|n| &n.kind) {
                Some(NodeKind::Model(m)) => Some(m.config.model.as_str()),
                _ => None,
            })
            .collect();
        unknown.sort_unstable();
        unknown.dedup();
        let note = if unknown.is_empty() {
            String::new()
        } else {
            format!(" (no price known for {}: counted as $0; add it under `prices:`)", unknown.join(", "))
        };
        println!("usage      {}{note}", usage_text(&outcome.usage));
    }
    match (a.verbose, records.first().map(|r| &r.event)) {
        (true, Some(Event::ExecutionStarted { input, .. } | Event::ChildStarted { input, .. })) => {
            println!("input      {}", input.0);
        }
        (true, Some(Event::BranchStarted { parent, state_at, vars, .. })) => {
            println!("input      the state of {parent} at its record {state_at}; variables {}", vars.0);
        }
        _ => {}
    }
    if matches!(meta.status, Status::Waiting | Status::Running) && !waiting.is_empty() {
        println!();
        print_waits_with(keys, inv, id, waiting);
    }
    println!();
    let rows: Vec<Vec<String>> = tl
        .nodes
        .iter()
        .map(|v| {
            let mut row = vec![
                label(v),
                v.status.to_string(),
                v.started_ms.map(format_ms).unwrap_or_else(|| "-".into()),
                v.duration_us.map(table::micros).unwrap_or_else(|| "-".into()),
                v.attempts.to_string(),
            ];
            if calls {
                let (tokens, cost) = if !costed(workflow, v) {
                    ("-".into(), "-".into())
                } else if unpriced(workflow, &v.node) && v.usage.cost_usd == 0.0 {
                    (format!("{}/{}", v.usage.input_tokens, v.usage.output_tokens), "no price".into())
                } else {
                    (format!("{}/{}", v.usage.input_tokens, v.usage.output_tokens), dollars(v.usage.cost_usd))
                };
                row.extend([tokens, cost]);
            }
            row
        })
        .collect();
    let mut headers = vec!["NODE", "STATUS", "STARTED", "DURATION", "ATTEMPTS"];
    if calls {
        headers.extend(["TOKENS IN/OUT", "COST"]);
    }
    table::print(&headers, &rows);
    for v in &tl.nodes {
        let patch = v.patch.as_ref().filter(|p| p.as_object().is_none_or(|m| !m.is_empty()));
        let branched = v.next.as_ref().filter(|_| a.verbose || !v.waits.is_empty());
        let detailed = !v.errors.is_empty()
            || !v.waits.is_empty()
            || !v.branches.is_empty()
            || !v.scores.is_empty()
            || !v.calls.is_empty()
            || !v.tool_approvals.is_empty();
        let shown = patch.is_some() || branched.is_some() || !v.exchanges.is_empty();
        if !(detailed || a.verbose && shown) {
            continue;
        }
        println!();
        println!("{}:", label(v));
        // Failures with the attempt they ended and what was decided next.
        for f in &v.failures {
            let then = match f.retry_at_ms {
                Some(at) => format!("; attempt {} at {}", f.attempt + 1, format_ms(at)),
                None => "; gave up".into(),
            };
            println!("  attempt {}  failed at {}: {}: {}{then}", f.attempt, format_ms(f.at_ms), f.class, f.message);
        }
        for w in &v.waits {
            print_wait(w, v.status);
        }
        for sc in &v.scores {
            print_scores(sc, v.scores.len() > 1);
        }
        for c in &v.calls {
            print_call(c, a.verbose);
        }
        for t in &v.tool_approvals {
            print_tool_approval(t, v.status);
        }
        if a.verbose {
            for x in &v.exchanges {
                print_exchange(x, v.exchanges.len() > 1, costed(workflow, v));
            }
        }
        for b in &v.branches {
            let attempt = if v.failures.is_empty() { String::new() } else { format!(" (attempt {})", b.attempt) };
            let why = b.error.as_ref().map(|e| format!(": {e}")).unwrap_or_default();
            let which = match workflow.node(&v.node).map(|n| &n.kind) {
                Some(NodeKind::Workflow(_)) => "child   ".to_string(),
                _ => format!("branch {}", b.branch),
            };
            println!("  {which}{attempt}  {}  {}{why}", b.child, child_status(b));
            if let (true, Some(p)) = (a.verbose, &b.patch) {
                println!("            wrote {p}");
            }
        }
        if let Some(p) = patch.filter(|_| a.verbose) {
            println!("  patch    {p}");
        }
        if let Some(n) = branched {
            println!("  next     {n}");
        }
    }
    if !tl.kept_signals.is_empty() {
        println!();
        println!("events received that nothing waits for yet (kept until a wait for the key is reached):");
        for s in &tl.kept_signals {
            println!("  `{}` at {}  payload {}", s.key, format_ms(s.at_ms), s.payload);
        }
    }
    if a.verbose {
        println!();
        println!("state      {}", outcome.state);
        println!();
        let rows: Vec<Vec<String>> = records
            .iter()
            .map(|r| vec![r.seq.to_string(), format_ms(r.at_ms), r.event.name().to_string(), details(&r.event)])
            .collect();
        table::print(&["SEQ", "AT", "EVENT", "DETAILS"], &rows);
    }
    Ok(ExitCode::SUCCESS)
}

/// What the status line adds for an execution left behind with no
/// process to carry it on.
pub(crate) fn unattended_note(status: Status, unattended: Option<Unattended>) -> &'static str {
    match (unattended, status) {
        (None, _) => "",
        (Some(Unattended::Interrupted), Status::Running) => {
            " (interrupted; it resumes on the next `jamjet run` or `jamjet resume`)"
        }
        (Some(Unattended::Interrupted), _) => {
            " (its deadline passed with no process up; it goes on at the next `jamjet run` or `jamjet resume`)"
        }
        (Some(Unattended::OnTheClock), _) => " (on a timer no process is up for; `jamjet resume` waits it out)",
    }
}

/// A model node whose model has no known price: its cost shows as unknown, not $0.
fn unpriced(workflow: &crate::ir::Workflow, node: &str) -> bool {
    matches!(workflow.node(node).map(|n| &n.kind), Some(NodeKind::Model(m)) if m.config.price.is_none())
}

/// Whether a node's calls cost tokens (model, tool, agent, eval calls;
/// not an http node's).
fn costed(workflow: &crate::ir::Workflow, v: &NodeVisit) -> bool {
    !v.exchanges.is_empty() && !matches!(workflow.node(&v.node).map(|n| &n.kind), Some(NodeKind::Http(_)))
}

/// What one call sent and got back, for `-v`: pretty JSON, indented.
fn print_exchange(x: &ExchangeRow, numbered: bool, costed: bool) {
    let which = if numbered { format!(" (attempt {})", x.attempt) } else { String::new() };
    println!("  request{which} at {}:", format_ms(x.at_ms));
    println!("{}", indented(&x.request));
    match costed {
        true => println!("  reply{which} ({}):", usage_text(&x.usage)),
        false => println!("  reply{which}:"),
    }
    println!("{}", indented(&x.response));
}

/// One journaled call of a visit, on one line: a model's thought or
/// answer and the tools it asked for, a tool's arguments and result; with
/// `-v`, what was sent and what came back in full.
fn print_call(c: &CallRow, verbose: bool) {
    let tokens = if c.usage.input_tokens + c.usage.output_tokens > 0 {
        format!("  ({})", usage_text(&c.usage))
    } else {
        String::new()
    };
    let what = match c.kind.as_str() {
        "tool" => {
            let result = match &c.response {
                serde_json::Value::String(text) => text.clone(),
                other => other.to_string(),
            };
            format!("{} -> {result}", c.request.get("arguments").unwrap_or(&c.request))
        }
        _ => match crate::model::reply_parts(&c.response) {
            Some((text, tools)) => {
                let asked: Vec<String> = tools.iter().map(|t| format!("{}({})", t.name, t.arguments)).collect();
                match (text.trim(), asked.is_empty()) {
                    ("", false) => format!("calls {}", asked.join(", ")),
                    (t, false) => format!("\"{t}\"; calls {}", asked.join(", ")),
                    (t, true) => format!("\"{t}\""),
                }
            }
            None => c.response.to_string(),
        },
    };
    println!("  call {:<3} {} `{}`  {}{tokens}", c.n, c.kind, c.name, one_line_cut(&what, 140));
    if verbose {
        println!("    sent (attempt {}) at {}:", c.attempt, format_ms(c.at_ms));
        println!("{}", indented(&c.request));
        println!("    got:");
        println!("{}", indented(&c.response));
    }
}

/// `text` on one line, cut to `max` characters with an ellipsis.
fn one_line_cut(text: &str, max: usize) -> String {
    let flat = super::follow::one_line(text);
    if flat.chars().count() <= max {
        return flat;
    }
    let cut: String = flat.chars().take(max.saturating_sub(1)).collect();
    format!("{cut}…")
}

fn indented(v: &serde_json::Value) -> String {
    let text = serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string());
    text.lines().map(|l| format!("    {l}")).collect::<Vec<_>>().join("\n")
}

/// An eval's scores: one line each.
fn print_scores(sc: &ScoreRow, numbered: bool) {
    let which = if numbered { format!(" (attempt {})", sc.attempt) } else { String::new() };
    println!("  scores{which}  {}", if sc.passed { "passed" } else { "failed" });
    for s in sc.scores.as_array().into_iter().flatten() {
        let mark = if s["passed"].as_bool() == Some(true) { "pass" } else { "FAIL" };
        let name = s["scorer"].as_str().unwrap_or("?");
        let score = match &s["score"] {
            serde_json::Value::Null => String::new(),
            n => format!(" {n}"),
        };
        let reason = s["reason"].as_str().map(|r| format!(": {r}")).unwrap_or_default();
        println!("    {mark}  {name}{score}{reason}");
    }
}

/// A node visit's name as the table shows it.
fn label(v: &NodeVisit) -> String {
    if v.visit > 1 { format!("{} #{}", v.node, v.visit) } else { v.node.clone() }
}

/// What a wait waited for, and how it ended.
fn print_wait(w: &WaitSpan, row_status: &str) {
    let deadline = w.deadline_ms.map(|d| format!(", deadline {}", format_ms(d))).unwrap_or_default();
    let since = format_ms(w.since_ms);
    match w.kind {
        WaitKind::Event => {
            let key = w.event.as_deref().unwrap_or_default();
            println!("  waited   for event `{key}` from {since}{deadline}");
        }
        WaitKind::Approval => {
            println!("  waited   for an approval from {since}{deadline}");
            println!("  prompt   {}", w.prompt.as_deref().unwrap_or_default());
        }
        WaitKind::Timer => {
            let until = w.deadline_ms.map(format_ms).unwrap_or_else(|| "-".into());
            println!("  waited   for a timer from {since} until {until}");
        }
    }
    match &w.ended {
        None if matches!(row_status, "cancelled" | "stopped") => {
            println!("  ended    with the execution ({row_status})")
        }
        None => println!("  ended    not yet"),
        Some(WaitEnd::Signal { at_ms, payload }) => {
            let early = if *at_ms < w.since_ms { " (it arrived before the wait began)" } else { "" };
            println!("  signal   at {}{early}, payload {payload}", format_ms(*at_ms));
        }
        Some(WaitEnd::Fired { at_ms }) => println!("  fired    at {}", format_ms(*at_ms)),
        Some(WaitEnd::Timeout { at_ms }) => println!("  timeout  at {}", format_ms(*at_ms)),
        Some(WaitEnd::Decision { at_ms, approved, by, comment }) => {
            let verdict = if *approved { "approved" } else { "rejected" };
            let why = comment.as_ref().map(|c| format!(": {c}")).unwrap_or_default();
            println!("  decided  {verdict} by {by} at {}{why}", format_ms(*at_ms));
        }
    }
}

/// A tool call that waited for a decision: its id, prompt and decision.
fn print_tool_approval(t: &crate::timeline::ToolApproval, row_status: &str) {
    println!("  tool call {} asked at {} (attempt {}): {}", t.call, format_ms(t.since_ms), t.attempt, t.prompt);
    match &t.decision {
        Some(WaitEnd::Decision { at_ms, approved, by, comment }) => {
            let verdict = if *approved { "approved" } else { "rejected" };
            let why = comment.as_ref().map(|c| format!(": {c}")).unwrap_or_default();
            println!("            {verdict} by {by} at {}{why}", format_ms(*at_ms));
        }
        _ if matches!(row_status, "cancelled" | "stopped") => println!("            not decided ({row_status})"),
        _ => println!("            waits for a decision (jamjet approve <exec> --call {})", t.call),
    }
}

/// One event on one line, for `-v`.
fn details(e: &Event) -> String {
    let v = event_json(e);
    let inner = v.as_object().and_then(|o| o.values().next()).cloned().unwrap_or(serde_json::Value::Null);
    match inner {
        serde_json::Value::Object(m) => m
            .iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| match v {
                serde_json::Value::String(s) => format!("{k}={}", clip(s)),
                other => format!("{k}={}", clip(&other.to_string())),
            })
            .collect::<Vec<_>>()
            .join(" "),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// A value cut to fit an events-table line (the node's section shows it whole).
fn clip(s: &str) -> String {
    const MAX: usize = 120;
    match s.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// Where a child execution came from, for `--json`.
fn parent_json(records: &[crate::journal::Record]) -> serde_json::Value {
    match records.first().map(|r| &r.event) {
        Some(e) => match e.parent_link() {
            Some((parent, node, visit, branch)) => serde_json::json!({
                "id": parent, "node": node, "visit": visit, "branch": branch,
            }),
            None => serde_json::Value::Null,
        },
        None => serde_json::Value::Null,
    }
}

/// An event as JSON for `--json`, with stored JSON text expanded.
fn event_json(e: &Event) -> serde_json::Value {
    let mut v = serde_json::to_value(e).expect("events serialize");
    // Json(String) fields serialize as strings; expand the ones we know.
    if let Some(obj) = v.as_object_mut().and_then(|o| o.values_mut().next()).and_then(|inner| inner.as_object_mut()) {
        for key in ["input", "patch", "state", "payload", "vars", "request", "response", "scores"] {
            if let Some(serde_json::Value::String(text)) = obj.get(key)
                && let Ok(parsed) = serde_json::from_str::<serde_json::Value>(text)
            {
                obj.insert(key.to_string(), parsed);
            }
        }
        // A branch's outcome nests its patch one level down.
        if let Some(serde_json::Value::Object(outcome)) = obj.get_mut("outcome")
            && let Some(serde_json::Value::Object(done)) = outcome.get_mut("Completed")
            && let Some(serde_json::Value::String(text)) = done.get("patch")
            && let Ok(parsed) = serde_json::from_str::<serde_json::Value>(text)
        {
            done.insert("patch".into(), parsed);
        }
    }
    v
}
