//! `jamjet replay [<exec-id>...] [--all] [--json]`: fold each execution's
//! journal again through this build's state machine and say where they
//! disagree (a check for upgrades: run it with the new binary before
//! switching). Reads only; exit 1 when any execution diverges.

use std::path::Path;
use std::process::ExitCode;

use super::held::{self, Mode, Store};
use super::remote::{Remote, ServerArg};
use super::{CliResult, Failure, parse_id, print_json};
use crate::id::ExecutionId;
use crate::plural::count;
use crate::runtime::ReplayReport;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The executions to replay (exec_...).
    pub ids: Vec<String>,
    /// Every execution in the store (children included).
    #[arg(long, conflicts_with = "ids")]
    pub all: bool,
    /// Print the reports as a JSON array.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub server: ServerArg,
}

pub(crate) async fn run(data_dir: &Path, a: Args) -> CliResult {
    if a.ids.is_empty() && !a.all {
        return Err(Failure::usage("name the executions to replay, or give --all"));
    }
    let ids: Vec<ExecutionId> = a.ids.iter().map(|s| parse_id(s)).collect::<Result<_, _>>()?;
    let remote = match &a.server.server {
        Some(url) => Some(Remote::server(url, &a.server)?),
        None => None,
    };
    let reports = match remote {
        Some(remote) => replay_remote(&remote, ids, a.all).await?,
        None => {
            if super::shared_store().is_none() {
                super::existing(data_dir)?;
            }
            match held::open(data_dir, "replay", Mode::ReadOnly).await? {
                Store::Held(remote) => replay_remote(&remote, ids, a.all).await?,
                Store::Local(local) => {
                    let rt = &local.rt;
                    let result = (|| {
                        let ids = if a.all { rt.list(None)?.into_iter().map(|m| m.id).collect() } else { ids };
                        ids.into_iter().map(|id| rt.replay(id)).collect::<Result<Vec<_>, _>>()
                    })();
                    local.close().await;
                    result?
                }
            }
        }
    };
    let diverged = reports.iter().filter(|r| !r.divergences.is_empty()).count();
    if a.json {
        print_json(&reports);
    } else {
        for r in &reports {
            print_report(r);
        }
        println!(
            "{} replayed: {}",
            count(reports.len(), "execution", "executions"),
            if diverged == 0 { "no divergence".to_string() } else { format!("{diverged} diverged") }
        );
    }
    Ok(if diverged == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

async fn replay_remote(remote: &Remote, ids: Vec<ExecutionId>, all: bool) -> Result<Vec<ReplayReport>, Failure> {
    let ids = if all { remote.client.list_all(None).await?.into_iter().map(|s| s.id).collect() } else { ids };
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        out.push(remote.client.replay(id).await?);
    }
    Ok(out)
}

fn print_report(r: &ReplayReport) {
    let verdict = if r.divergences.is_empty() { "agrees" } else { "DIVERGES" };
    println!(
        "{} {}@{}: {} records, {} (index row: {}): {verdict}",
        r.id, r.workflow_id, r.workflow_version, r.records, r.folded, r.status
    );
    for d in &r.divergences {
        let at = if d.seq == 0 { "history".to_string() } else { format!("record {}", d.seq) };
        println!("  {at}: {}", d.message);
    }
}
