//! `jamjet inspect <exec-id>`: the timeline of one execution — node,
//! status, started, duration, attempts; `-v` adds each state patch, the
//! input and the final state; `--json` prints the events and the rows.

use std::path::Path;
use std::process::ExitCode;

use super::{CliResult, open_quiet, parse_id, print_json, table};
use crate::clock::format_ms;
use crate::journal::Event;
use crate::timeline::node_visits;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The execution id (exec_...).
    pub id: String,
    /// Show state patches, the input and the final state.
    #[arg(short, long)]
    pub verbose: bool,
    #[arg(long)]
    pub json: bool,
}

pub(crate) async fn run(data_dir: &Path, a: Args) -> CliResult {
    let id = parse_id(&a.id)?;
    let rt = open_quiet(data_dir).await?;
    let meta = rt.status(id)?;
    let records = rt.events(id)?;
    let visits = node_visits(&records);
    let outcome = rt.outcome(id)?;
    if a.json {
        let events: Vec<_> = records
            .iter()
            .map(|r| serde_json::json!({"seq": r.seq, "at": format_ms(r.at_ms), "at_ms": r.at_ms, "type": r.event.name(), "event": event_json(&r.event)}))
            .collect();
        print_json(&serde_json::json!({
            "execution": meta,
            "state": outcome.state,
            "error": outcome.error,
            "nodes": visits,
            "events": events,
        }));
        rt.shutdown().await;
        return Ok(ExitCode::SUCCESS);
    }
    println!("execution  {id}");
    println!(
        "workflow   {}@{} ({})",
        meta.workflow_id,
        meta.workflow_version,
        &meta.workflow_hash[..12.min(meta.workflow_hash.len())]
    );
    println!("status     {}", meta.status);
    println!("started    {}", format_ms(meta.created_ms));
    if meta.status.is_terminal() {
        println!("finished   {} ({} ms)", format_ms(meta.updated_ms), meta.updated_ms.saturating_sub(meta.created_ms));
    }
    if let Some(e) = &outcome.error {
        println!("error      {e}");
    }
    if let (true, Some(Event::ExecutionStarted { input, .. })) = (a.verbose, records.first().map(|r| &r.event)) {
        println!("input      {}", input.0);
    }
    println!();
    let rows: Vec<Vec<String>> = visits
        .iter()
        .map(|v| {
            vec![
                if v.visit > 1 { format!("{} #{}", v.node, v.visit) } else { v.node.clone() },
                v.status.to_string(),
                v.started_ms.map(format_ms).unwrap_or_else(|| "-".into()),
                v.duration_us.map(table::micros).unwrap_or_else(|| "-".into()),
                v.attempts.to_string(),
            ]
        })
        .collect();
    table::print(&["NODE", "STATUS", "STARTED", "DURATION", "ATTEMPTS"], &rows);
    for v in &visits {
        let patch = v.patch.as_ref().filter(|p| p.as_object().is_none_or(|m| !m.is_empty()));
        let branched = v.next.as_ref().filter(|_| a.verbose);
        if !v.errors.is_empty() || (a.verbose && (patch.is_some() || branched.is_some())) {
            println!();
            println!("{}{}:", v.node, if v.visit > 1 { format!(" #{}", v.visit) } else { String::new() });
            for e in &v.errors {
                println!("  error  {e}");
            }
            if a.verbose {
                if let Some(p) = patch {
                    println!("  patch  {p}");
                }
                if let Some(n) = branched {
                    println!("  next   {n}");
                }
            }
        }
    }
    if a.verbose {
        println!();
        println!("state      {}", outcome.state);
    }
    rt.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

/// An event as JSON for `--json`, with stored JSON text expanded.
fn event_json(e: &Event) -> serde_json::Value {
    let mut v = serde_json::to_value(e).expect("events serialize");
    // Json(String) fields serialize as strings; expand the ones we know.
    if let Some(obj) = v.as_object_mut().and_then(|o| o.values_mut().next()).and_then(|inner| inner.as_object_mut()) {
        for key in ["input", "patch", "state"] {
            if let Some(serde_json::Value::String(text)) = obj.get(key)
                && let Ok(parsed) = serde_json::from_str::<serde_json::Value>(text)
            {
                obj.insert(key.to_string(), parsed);
            }
        }
    }
    v
}
