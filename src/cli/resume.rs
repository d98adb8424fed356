//! `jamjet resume`: rehydrate every running execution in the data dir and
//! carry each on until it settles: it ends, or parks on an event or an
//! approval (a timer is waited out). A parked one is listed with what it
//! waits for; it does not hold the command. One that cannot be resumed (it
//! is damaged, its workflow is missing, its actor did not start) is listed
//! with why, and the others go on; the exit code is then non-zero.

use std::path::Path;
use std::process::ExitCode;

use super::report::{Invocation, print_waits, waits_under};
use super::{CliResult, print_json};
use crate::journal::Status;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Print each execution's outcome as JSON.
    #[arg(long)]
    pub json: bool,
}

pub(crate) async fn run(data_dir: &Path, a: Args) -> CliResult {
    // Timers start only once everything to resume is listed, so a deadline
    // that passed while down cannot move an execution on unlisted.
    let rt = super::open_without_timers(data_dir).await?;
    let (ids, skipped) = match rt.resume_all_reporting().await {
        Ok(r) => (r.resumed, r.skipped),
        Err(e) => {
            rt.shutdown().await;
            return Err(e.into());
        }
    };
    rt.start_timers();
    if !a.json {
        eprintln!("resuming {}", crate::plural::count(ids.len(), "execution", "executions"));
    }
    let settles = ids.iter().map(|&id| {
        let rt = rt.clone();
        async move { (id, rt.settle(id).await) }
    });
    let results = futures::future::join_all(settles).await;
    let inv = Invocation::new(data_dir);
    let mut all_ok = skipped.is_empty();
    let mut out = Vec::new();
    for (id, why) in &skipped {
        if !a.json {
            println!("{id} not resumed: {why}");
        }
        out.push(serde_json::json!({"id": id, "status": "not_resumed", "error": why}));
    }
    for (id, r) in results {
        let r = r.and_then(|o| {
            let waits = if o.status == Status::Waiting { waits_under(&rt, id)? } else { Vec::new() };
            Ok((o, waits))
        });
        match r {
            Ok((o, waits)) => {
                // A cancellation was asked for (of it, or of its parent): not a failure of the resume.
                all_ok &= matches!(o.status, Status::Completed | Status::Waiting | Status::Running | Status::Cancelled);
                if !a.json {
                    println!("{id} {}{}", o.status, o.error.as_ref().map(|e| format!(": {e}")).unwrap_or_default());
                    print_waits(&rt, &inv, id, &waits);
                }
                out.push(serde_json::json!({"id": id, "status": o.status, "error": o.error, "waiting": waits}));
            }
            Err(e) => {
                all_ok = false;
                if !a.json {
                    println!("{id} error: {e}");
                }
                out.push(serde_json::json!({"id": id, "status": "error", "error": e.to_string()}));
            }
        }
    }
    if a.json {
        print_json(&out);
    }
    rt.shutdown().await;
    Ok(if all_ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
