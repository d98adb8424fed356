//! `jamjet resume`: rehydrate every running execution in the data dir and
//! carry each on until it settles: it ends, or parks on an event or an
//! approval (a timer is waited out). A parked one is listed with what it
//! waits for; it does not hold the command. One that cannot be resumed (it
//! is damaged, its workflow is missing, its actor did not start) is listed
//! with why, and the others go on; the exit code is then non-zero.
//!
//! With `--server URL`, or when another process holds the data dir, that
//! process resumes them (`POST /resume`) and this follows each until it
//! settles, printing the same lines.

use std::path::Path;
use std::process::ExitCode;

use super::held::{self, Mode, Store};
use super::remote::{Remote, ServerArg, settle, waits_of};
use super::report::{Invocation, payload_key_in, print_waits, print_waits_with, waits_under};
use super::{CliResult, print_json};
use crate::journal::Status;
use crate::runtime::Waiting;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Print one JSON array (id, status, error, what it waits for) instead of lines.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub server: ServerArg,
}

pub(crate) async fn run(data_dir: &Path, a: Args) -> CliResult {
    if let Some(url) = &a.server.server {
        return resume_remote(&Remote::server(url)?, a.json).await;
    }
    // Timers start only once everything to resume is listed, so a deadline
    // that passed while down cannot move an execution on unlisted.
    let local = match held::open(data_dir, "resume", Mode::WithoutTimers).await? {
        Store::Held(remote) => return resume_remote(&remote, a.json).await,
        Store::Local(local) => local,
    };
    let rt = local.rt.clone();
    let (ids, skipped) = match rt.resume_all_reporting().await {
        Ok(r) => (r.resumed, r.skipped),
        Err(e) => {
            local.close().await;
            return Err(e.into());
        }
    };
    rt.start_timers();
    if !a.json {
        eprintln!("resuming {} execution{}", ids.len(), if ids.len() == 1 { "" } else { "s" });
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
    drop(rt);
    local.close().await;
    Ok(if all_ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// `resume` through a server or the data dir's holder: it resumes what
/// it has not yet, and each is followed until it settles.
async fn resume_remote(remote: &Remote, json: bool) -> CliResult {
    let client = &remote.client;
    let (ids, skipped) = client.resume().await?;
    if !json {
        eprintln!("resuming {} execution{}", ids.len(), if ids.len() == 1 { "" } else { "s" });
    }
    let settles = ids.iter().map(|&id| async move { (id, settle(client, id, None).await) });
    let results = futures::future::join_all(settles).await;
    let mut all_ok = skipped.is_empty();
    let mut out = Vec::new();
    for (id, why) in &skipped {
        if !json {
            println!("{id} not resumed: {why}");
        }
        out.push(serde_json::json!({"id": id, "status": "not_resumed", "error": why}));
    }
    for (id, r) in results {
        match r {
            Ok(x) => {
                all_ok &= matches!(x.status, Status::Completed | Status::Waiting | Status::Running | Status::Cancelled);
                let waits: Vec<Waiting> = if x.status == Status::Waiting { waits_of(&x) } else { Vec::new() };
                if !json {
                    println!("{id} {}{}", x.status, x.error.as_ref().map(|e| format!(": {e}")).unwrap_or_default());
                    let workflow = match waits.is_empty() {
                        true => None,
                        false => client.workflow_of(id).await.ok().map(|(_, wf)| wf),
                    };
                    let keys = |w: &Waiting| {
                        workflow.as_ref().filter(|_| w.id == id).and_then(|wf| payload_key_in(wf, &w.node))
                    };
                    print_waits_with(&keys, &remote.inv, id, &waits);
                }
                out.push(serde_json::json!({"id": id, "status": x.status, "error": x.error, "waiting": waits}));
            }
            Err(e) => {
                all_ok = false;
                if !json {
                    println!("{id} error: {}", e.message);
                }
                out.push(serde_json::json!({"id": id, "status": "error", "error": e.message}));
            }
        }
    }
    if json {
        print_json(&out);
    }
    Ok(if all_ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
