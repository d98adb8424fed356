//! `jamjet resume`: carry on everything left behind in the data dir (what
//! was running when its process stopped, what waits on the clock: a timer,
//! a retry delay) until each settles: it ends, or parks on an event or an
//! approval (a timer is waited out). Then it prints each one's outcome as
//! `run` does (the final state, or what it waits for and the command that
//! moves it on), one after the other; `--json` prints them as an array of
//! what `run --json` prints; `--follow` prints each event as it becomes
//! durable first (a JSON line per event with its `execution` under
//! `--json`; the id before each line when there are several).
//!
//! One that cannot be resumed (it is damaged, its workflow is missing, its
//! actor did not start) is listed with why, and the others go on; the exit
//! code is then non-zero, as it is when one failed. A branch or a
//! sub-workflow is carried on with the execution its family started from,
//! whose outcome is printed. Ctrl-C stops cleanly (exit 130), saying where
//! each one stopped. A data dir that is not there has nothing to resume,
//! and is not created.
//!
//! With `--server URL`, or when another process holds the data dir, that
//! process resumes them (`POST /resume`) and this follows each until it
//! settles, printing a line for each (not yet `run`'s outcome, nor
//! `--follow`).

use std::path::Path;
use std::process::ExitCode;

use super::follow::{Printer, follow_local};
use super::remote::{Remote, ServerArg, settle, waits_of};
use super::report::{outcome_value, payload_key_in, print_outcome, print_waits_with};
use super::session::{Opened, Session};
use super::{CliResult, Failure, absolute, print_json};
use crate::id::ExecutionId;
use crate::journal::Status;
use crate::runtime::{Error as RuntimeError, Outcome, Waiting};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Print the outcomes as a JSON array (with --follow: each event as one JSON line first).
    #[arg(long)]
    pub json: bool,
    /// Print each event as it becomes durable, then the outcomes.
    #[arg(long)]
    pub follow: bool,
    #[command(flatten)]
    pub server: ServerArg,
}

pub(crate) async fn run(data_dir: &Path, a: Args) -> CliResult {
    if let Some(url) = &a.server.server {
        return resume_remote(&Remote::server(url, &a.server)?, a.json).await;
    }
    if super::shared_store().is_some() {
        return Err(Failure::usage(
            "in a shared store, what no process runs is claimed by workers as their leases end: run \
             `jamjet worker --store URL` (it carries on everything it can until stopped); \
             `jamjet resume` is for the data dir's embedded store",
        ));
    }
    if !data_dir.exists() {
        if a.json {
            print_json(&serde_json::json!([]));
        } else {
            eprintln!("nothing to resume: no data dir at {}", absolute(data_dir).display());
        }
        return Ok(ExitCode::SUCCESS);
    }
    let s = match Session::open_resuming_all(data_dir, a.follow).await? {
        Opened::Held(remote) => return resume_remote(&remote, a.json).await,
        Opened::Local(s) => s,
    };
    let ids: Vec<ExecutionId> = s.families().to_vec();
    if !a.json {
        let list = ids.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
        let colon = if ids.is_empty() { String::new() } else { format!(": {list}") };
        eprintln!("resuming {}{colon}", crate::plural::count(ids.len(), "execution", "executions"));
    }
    for &id in &ids {
        s.watch(id);
    }
    let several = ids.len() > 1;
    let settles = ids.iter().map(|&id| {
        let rt = &s.rt;
        let s = &s;
        let follow = a.follow;
        let json = a.json;
        async move {
            let r: Result<Outcome, RuntimeError> = if follow {
                let tokens = s.early_tokens(id).map(crate::nodes::stream::TokenRx::One);
                follow_local(rt, id, &mut Printer::of(json, id, several), tokens).await
            } else {
                rt.settle(id).await
            };
            (id, r)
        }
    });
    let Some(results) = s.until_interrupted(futures::future::join_all(settles)).await else {
        let goes_on = s.inv.command("resume");
        return s.interrupted(&ids, &goes_on).await;
    };
    let mut all_ok = s.skipped().is_empty();
    let mut out = Vec::new();
    for (id, why) in s.skipped() {
        if !a.json {
            println!("{id} not resumed: {why}");
        }
        out.push(serde_json::json!({"id": id, "status": "not_resumed", "error": why}));
    }
    for (i, (id, r)) in results.into_iter().enumerate() {
        if !a.json && (i > 0 || !s.skipped().is_empty()) {
            println!();
        }
        let printed = r.map_err(Failure::from).and_then(|o| {
            // A cancellation was asked for (of it, or of its parent): not a failure of the resume.
            all_ok &= matches!(o.status, Status::Completed | Status::Waiting | Status::Running | Status::Cancelled);
            if a.json {
                out.push(outcome_value(&s.rt, &s.inv, &o)?);
                Ok(())
            } else {
                print_outcome(&s.rt, &s.inv, &o, None, false).map(|_| ())
            }
        });
        if let Err(f) = printed {
            all_ok = false;
            if a.json {
                out.push(serde_json::json!({"id": id, "status": "error", "error": f.message}));
            } else {
                println!("{id} error: {}", f.message);
            }
        }
    }
    if a.json {
        print_json(&out);
    }
    // Everything it carried on settled above: nothing left to wait for.
    s.close().await;
    Ok(if all_ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// `resume` through a server or the data dir's holder: it resumes what
/// it has not yet, and each is followed until it settles.
async fn resume_remote(remote: &Remote, json: bool) -> CliResult {
    let client = &remote.client;
    let (ids, skipped) = client.resume().await?;
    if !json {
        eprintln!("resuming {}", crate::plural::count(ids.len(), "execution", "executions"));
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
