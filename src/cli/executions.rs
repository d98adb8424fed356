//! `jamjet executions [--status S]`: list executions, oldest first; an
//! index row that cannot be read is listed as `damaged`, with why.
//! `--waiting`: what each parked execution waits for (an event, an
//! approval, a timer), since when and until when. `--damaged`: read every
//! record of every execution and list only those that cannot be read in
//! full, and what fails (an index row, a record, a workflow IR).

use std::path::Path;
use std::process::ExitCode;

use std::collections::HashMap;

use super::held::{self, Mode, Store};
use super::remote::{Remote, ServerArg, waits_of};
use super::{CliResult, Failure, print_json, table};
use crate::client::Client;
use crate::clock::format_ms;
use crate::journal::{Damage, ExecutionMeta, Listing, Status};
use crate::runtime::{WaitKind, Waiting};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Only executions with this status (running, waiting, completed, failed, cancelled).
    #[arg(long, conflicts_with = "waiting")]
    pub status: Option<String>,
    /// What each waiting execution waits for, one row per waiting node.
    #[arg(long, conflicts_with = "damaged")]
    pub waiting: bool,
    /// Only the executions that cannot be read in full, and what fails (reads every record).
    #[arg(long, conflicts_with = "status")]
    pub damaged: bool,
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub server: ServerArg,
}

pub(crate) async fn run(data_dir: &Path, a: Args) -> CliResult {
    let status = match a.status.as_deref() {
        None => None,
        Some(s) => Some(Status::parse(s).ok_or_else(|| {
            Failure::new(format!("--status `{s}` is not a status (running, waiting, completed, failed, cancelled)"))
        })?),
    };
    if let Some(url) = &a.server.server {
        if a.damaged {
            return Err(Failure::usage(
                "--damaged reads the data dir itself; run it without --server, on the server's data dir",
            ));
        }
        return list_through(&Remote::server(url)?, status, &a).await;
    }
    let local = match held::open(data_dir, "executions", Mode::ReadOnly).await? {
        Store::Held(_) if a.damaged => {
            return Err(Failure::new(format!(
                "--damaged reads every record of the data dir itself, and {} is in use by another jamjet process; \
                 run it again once that one ends",
                data_dir.display()
            )));
        }
        Store::Held(remote) => return list_through(&remote, status, &a).await,
        Store::Local(local) => local,
    };
    let rt = &local.rt;
    let result = if a.waiting {
        rt.waiting().map(|w| print_waiting(&w, a.json))
    } else if a.damaged {
        rt.check().map(|checked| {
            if checked.damaged.is_empty() && checked.cut_short.is_none() && !a.json {
                println!("nothing is damaged: {} executions read whole", checked.rows.len());
            } else {
                print_list(&Listing { rows: Vec::new(), ..checked }, a.json)
            }
        })
    } else {
        rt.listing(status).map(|mut listing| {
            // A damaged row has no status to filter on: it is listed only when nothing is filtered.
            if status.is_some() {
                listing.damaged.clear();
            }
            print_list(&listing, a.json)
        })
    };
    local.close().await;
    result?;
    Ok(ExitCode::SUCCESS)
}

/// `executions` through a server or the data dir's holder.
async fn list_through(remote: &Remote, status: Option<Status>, a: &Args) -> CliResult {
    if a.waiting {
        print_waiting(&waiting_remote(&remote.client).await?, a.json);
    } else {
        print_list(&Listing { rows: list_remote(&remote.client, status).await?, ..Listing::default() }, a.json);
    }
    Ok(ExitCode::SUCCESS)
}

/// Every execution on a server, as the index rows the local list prints.
/// The list rows carry no workflow hash: it is the one registered under
/// the execution's workflow id and version (empty if none is).
async fn list_remote(client: &Client, status: Option<Status>) -> Result<Vec<ExecutionMeta>, Failure> {
    let rows = client.list_all(status).await?;
    let registered: HashMap<(String, String), String> = match rows.iter().all(|r| r.workflow_hash.is_some()) {
        true => HashMap::new(),
        false => client.workflows().await?.into_iter().map(|r| ((r.workflow_id, r.version), r.hash)).collect(),
    };
    Ok(rows
        .into_iter()
        .map(|r| {
            let hash = r.workflow_hash.clone().unwrap_or_else(|| {
                registered.get(&(r.workflow_id.clone(), r.version.clone())).cloned().unwrap_or_default()
            });
            ExecutionMeta {
                id: r.id,
                workflow_id: r.workflow_id,
                workflow_version: r.version,
                workflow_hash: hash,
                status: r.status,
                created_ms: r.created_ms,
                updated_ms: r.updated_ms,
                key: r.key,
            }
        })
        .collect())
}

/// What each waiting execution on a server waits for.
async fn waiting_remote(client: &Client) -> Result<Vec<Waiting>, Failure> {
    let mut out = Vec::new();
    for row in client.list_all(Some(Status::Waiting)).await? {
        match client.execution(row.id).await {
            Ok(x) => out.extend(waits_of(&x).into_iter().filter(|w| w.id == row.id)),
            // It ended between the list and the look: it waits no more.
            Err(e) if e.code() == Some("unknown_execution") => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(out)
}

/// A damaged execution as a list row: its id, status `damaged`, and why.
fn damaged_row(d: &Damage) -> serde_json::Value {
    let mut row = serde_json::to_value(d).expect("a damage serializes");
    let map = row.as_object_mut().expect("a damage is an object");
    map.remove("execution");
    map.insert("id".into(), serde_json::json!(d.execution));
    map.insert("status".into(), serde_json::json!("damaged"));
    map.insert("reason".into(), serde_json::json!(format!("{} cannot be read: {}", d.part, d.detail)));
    row
}

fn print_list(listing: &Listing, json: bool) {
    if let Some(why) = &listing.cut_short {
        eprintln!("warning: {why}; the rows there are not listed (`jamjet repair` rebuilds the store)");
    }
    if json {
        let mut rows: Vec<(crate::ExecutionId, serde_json::Value)> = listing
            .rows
            .iter()
            .map(|m| (m.id, serde_json::to_value(m).expect("a row serializes")))
            .chain(listing.damaged.iter().map(|d| (d.execution, damaged_row(d))))
            .collect();
        rows.sort_by_key(|(id, _)| *id);
        print_json(&rows.into_iter().map(|(_, v)| v).collect::<Vec<_>>());
        return;
    }
    if listing.rows.is_empty() && listing.damaged.is_empty() {
        println!("no executions");
        return;
    }
    let mut rows: Vec<(crate::ExecutionId, Vec<String>)> = listing
        .rows
        .iter()
        .map(|m| {
            let cells = vec![
                m.id.to_string(),
                format!("{}@{}", m.workflow_id, m.workflow_version),
                m.status.to_string(),
                format_ms(m.created_ms),
                format_ms(m.updated_ms),
            ];
            (m.id, cells)
        })
        .chain(listing.damaged.iter().map(|d| {
            (d.execution, vec![d.execution.to_string(), "-".into(), "damaged".into(), "-".into(), "-".into()])
        }))
        .collect();
    rows.sort_by_key(|(id, _)| *id);
    let rows: Vec<Vec<String>> = rows.into_iter().map(|(_, cells)| cells).collect();
    table::print(&["EXECUTION", "WORKFLOW", "STATUS", "CREATED", "UPDATED"], &rows);
    if !listing.damaged.is_empty() {
        println!();
        for d in &listing.damaged {
            println!("{} damaged: {} cannot be read: {}", d.execution, d.part, d.detail);
        }
        println!("(`jamjet repair`, run with the data dir not in use, quarantines what cannot be read)");
    }
}

/// The longest prompt shown in a table cell.
const PROMPT_CELL: usize = 60;

fn print_waiting(waits: &[Waiting], json: bool) {
    if json {
        print_json(&waits);
        return;
    }
    if waits.is_empty() {
        println!("nothing waits");
        return;
    }
    let rows: Vec<Vec<String>> = waits
        .iter()
        .map(|w| {
            let kind = match w.kind {
                WaitKind::Event => "event",
                WaitKind::Approval => "approval",
                WaitKind::Timer => "timer",
            };
            let what = match w.kind {
                WaitKind::Event => w.event.clone().unwrap_or_default(),
                WaitKind::Approval => clip(w.prompt.as_deref().unwrap_or_default(), PROMPT_CELL),
                WaitKind::Timer => "-".into(),
            };
            vec![
                w.id.to_string(),
                w.workflow_id.clone(),
                w.node.clone(),
                kind.into(),
                what,
                format_ms(w.since_ms),
                w.deadline_ms.map(format_ms).unwrap_or_else(|| "-".into()),
                w.parent.map(|p| p.to_string()).unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    table::print(&["EXECUTION", "WORKFLOW", "NODE", "KIND", "WAITS FOR", "SINCE", "DEADLINE", "PARENT"], &rows);
}

/// `text` on one line, cut to `max` characters.
fn clip(text: &str, max: usize) -> String {
    let one_line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() <= max {
        one_line
    } else {
        format!("{}…", one_line.chars().take(max - 1).collect::<String>())
    }
}
