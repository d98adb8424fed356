//! `jamjet workers --store postgres://...`: the live processes of a shared
//! store (workers, `jamjet dev`, embedding hosts), with how many executions
//! each owns and how long ago it last renewed its leases.

use std::process::ExitCode;

use super::{CliResult, Failure, print_json};
use crate::clock::{Clock, SystemClock};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Print the list as JSON.
    #[arg(long)]
    pub json: bool,
}

pub(crate) async fn run(a: Args) -> CliResult {
    let url = super::shared_store_for(
        "`jamjet workers` lists the processes of a store many share (a data dir has one process: its holder)",
    )?;
    let journal = super::open_shared(url, "workers").await?;
    let leases = journal.leases().ok_or_else(|| Failure::new("this store has no leases"))?;
    let me = leases.worker_id().to_string();
    let mut workers = leases.workers().map_err(|e| Failure::new(e.to_string()))?;
    // This command's own row is not a worker.
    workers.retain(|w| w.id != me);
    if a.json {
        print_json(&workers);
        return Ok(ExitCode::SUCCESS);
    }
    if workers.is_empty() {
        eprintln!("no live process on {}", crate::journal::redact_url(url));
        return Ok(ExitCode::SUCCESS);
    }
    let now = SystemClock.now_ms();
    let rows: Vec<Vec<String>> = workers
        .iter()
        .map(|w| {
            vec![
                w.id.clone(),
                w.command.clone(),
                w.owns.to_string(),
                super::table::micros(now.saturating_sub(w.heartbeat_ms).saturating_mul(1000)),
                super::table::micros(now.saturating_sub(w.started_ms).saturating_mul(1000)),
                if w.draining { "draining" } else { "claiming" }.to_string(),
            ]
        })
        .collect();
    super::table::print(&["WORKER", "COMMAND", "OWNS", "RENEWED AGO", "UP", "STATE"], &rows);
    Ok(ExitCode::SUCCESS)
}
