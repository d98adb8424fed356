//! `jamjet executions [--status S]`: list executions, oldest first.
//! `--waiting`: what each parked execution waits for (an event, an
//! approval, a timer), since when and until when.

use std::path::Path;
use std::process::ExitCode;

use std::collections::HashMap;

use super::remote::{ServerArg, connect, waits_of};
use super::{CliResult, Failure, open_read_only, print_json, table};
use crate::client::Client;
use crate::clock::format_ms;
use crate::journal::ExecutionMeta;
use crate::journal::Status;
use crate::runtime::{WaitKind, Waiting};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Only executions with this status (running, waiting, completed, failed, cancelled).
    #[arg(long, conflicts_with = "waiting")]
    pub status: Option<String>,
    /// What each waiting execution waits for, one row per waiting node.
    #[arg(long)]
    pub waiting: bool,
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
        let client = connect(url)?;
        if a.waiting {
            print_waiting(&waiting_remote(&client).await?, a.json);
        } else {
            print_list(&list_remote(&client, status).await?, a.json);
        }
        return Ok(ExitCode::SUCCESS);
    }
    let rt = open_read_only(data_dir).await?;
    let result = if a.waiting {
        rt.waiting().map(|w| print_waiting(&w, a.json))
    } else {
        rt.list(status).map(|list| print_list(&list, a.json))
    };
    rt.shutdown().await;
    result?;
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

fn print_list(list: &[ExecutionMeta], json: bool) {
    if json {
        print_json(&list);
    } else if list.is_empty() {
        println!("no executions");
    } else {
        let rows: Vec<Vec<String>> = list
            .iter()
            .map(|m| {
                vec![
                    m.id.to_string(),
                    format!("{}@{}", m.workflow_id, m.workflow_version),
                    m.status.to_string(),
                    format_ms(m.created_ms),
                    format_ms(m.updated_ms),
                ]
            })
            .collect();
        table::print(&["EXECUTION", "WORKFLOW", "STATUS", "CREATED", "UPDATED"], &rows);
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
