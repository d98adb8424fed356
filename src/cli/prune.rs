//! `jamjet prune --older-than 30d [--status completed,failed] [--keep-last N]
//! [--dry-run] [--json]`: remove ended executions (their histories, index
//! rows and idempotency keys; a tombstone stays, which `inspect` reports),
//! never a running or waiting one. In the data dir's store, through the
//! process holding it (a running `jamjet dev` prunes while it serves), in
//! a shared store (`--store`), or on a server (`--server`).

use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;

use super::held::{self, Mode, Store};
use super::remote::ServerArg;
use super::{CliResult, Failure, print_json};
use crate::ir::{show_bytes, thousands};
use crate::journal::Freed;
use crate::plural::count;
use crate::runtime::PruneReport;
use crate::server::wire::PruneRequest;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Remove executions that ended at least this long ago: 30d, 12h, 90m, 2w (a unit is required).
    #[arg(long, value_name = "SPAN")]
    pub older_than: String,
    /// Only these ended statuses, comma-separated (default: completed,failed,cancelled).
    #[arg(long, value_delimiter = ',', value_name = "STATUS,...")]
    pub status: Vec<String>,
    /// Keep the newest N ended executions of each workflow, however old.
    #[arg(long, value_name = "N")]
    pub keep_last: Option<usize>,
    /// Only say what would be removed.
    #[arg(long)]
    pub dry_run: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub server: ServerArg,
}

pub(crate) async fn run(data_dir: &Path, a: Args) -> CliResult {
    let request = PruneRequest {
        older_than: a.older_than.clone(),
        status: a.status.clone(),
        keep_last: a.keep_last,
        dry_run: a.dry_run,
    };
    // Refused before anything is opened.
    let retention = request
        .retention()
        .map_err(|e| Failure::usage(format!("--{}", e.replacen("older_than:", "older-than:", 1))))?;
    let report = if let Some(url) = &a.server.server {
        super::remote::Remote::server(url, &a.server)?.client.prune(&request).await?
    } else {
        if super::shared_store().is_none() {
            super::existing(data_dir)?;
        }
        match held::open(data_dir, "prune", Mode::WithoutTimers).await? {
            Store::Held(remote) => remote.client.prune(&request).await?,
            Store::Local(local) => {
                let shows = !a.json && std::io::stderr().is_terminal();
                let pruned = local.rt.prune(&retention, a.dry_run, |freed, of| progress(shows, freed, of)).await;
                if shows {
                    eprintln!();
                }
                local.close().await;
                pruned?
            }
        }
    };
    if a.json {
        print_json(&report);
    } else {
        print_report(&report);
    }
    Ok(ExitCode::SUCCESS)
}

/// `pruned 1,500 of 3,000 executions` on one line of a terminal.
fn progress(shows: bool, freed: &Freed, of: u64) {
    if shows {
        eprint!("\rpruned {} of {}", thousands(freed.executions), count(of, "execution", "executions"));
    }
}

fn print_report(r: &PruneReport) {
    let shown: Vec<String> = r.ids.iter().take(10).map(ToString::to_string).collect();
    let more = if r.selected as usize > shown.len() { ", ..." } else { "" };
    if r.dry_run {
        let list = if shown.is_empty() { String::new() } else { format!(": {}{more}", shown.join(", ")) };
        println!("would prune {}{list}", count(r.selected, "ended execution", "ended executions"));
        return;
    }
    let f = &r.freed;
    println!(
        "pruned {} ({}, {}) in {}",
        count(f.executions, "execution", "executions"),
        count(f.events, "event", "events"),
        show_bytes(f.bytes),
        count(r.batches, "batch", "batches"),
    );
    if let Some(a) = &r.archive {
        println!("journal archive rewritten: {} -> {}", show_bytes(a.before), show_bytes(a.after));
    }
    if r.skipped_live > 0 {
        println!(
            "left {} still in memory (it ended a moment ago); the next prune takes it",
            count(r.skipped_live, "execution", "executions")
        );
    }
    let changed = r.selected.saturating_sub(f.executions + r.skipped_live);
    if changed > 0 {
        println!("left {} that changed meanwhile", count(changed, "execution", "executions"));
    }
}
