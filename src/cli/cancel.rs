//! `jamjet cancel <exec-id> [--reason ".."]`: cancel a running or waiting
//! execution (its running nodes stop, its children are cancelled; it never
//! resumes) and print its final status, and its children's.

use std::path::Path;
use std::process::ExitCode;

use std::time::Duration;

use super::inspect::open_children;
use super::remote::{Remote, ServerArg, outcome_of};
use super::report::open_descendants;
use super::session::{Opened, Session};
use super::{CliResult, parse_id, print_json};
use crate::clock::format_ms;
use crate::id::ExecutionId;

/// How long to see a cancelled execution's children end.
const CHILDREN_GRACE: Duration = Duration::from_secs(10);

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The execution id (exec_...).
    pub id: String,
    /// Why, for the record.
    #[arg(long, default_value = "cancelled from the command line")]
    pub reason: String,
    /// Print the outcome as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub server: ServerArg,
}

pub(crate) async fn run(data_dir: &Path, a: Args) -> CliResult {
    let id = parse_id(&a.id)?;
    if let Some(url) = &a.server.server {
        return cancel_remote(&Remote::server(url, &a.server)?, id, &a).await;
    }
    super::existing(data_dir)?;
    let s = match Session::open(data_dir, "cancel").await? {
        Opened::Held(remote) => return cancel_remote(&remote, id, &a).await,
        Opened::Local(s) => s,
    };
    let rt = &s.rt;
    let result = async {
        let children = open_descendants(rt, id)?;
        rt.cancel(id, &a.reason).await?;
        // The runtime cancels the children; see that done before this
        // process lets go of the data dir.
        let ends = children.iter().map(|&child| async move {
            tokio::time::timeout(CHILDREN_GRACE, rt.wait(child)).await.ok().and_then(Result::ok)
        });
        let ended = futures::future::join_all(ends).await;
        let left: Vec<ExecutionId> =
            children.iter().zip(&ended).filter(|(_, o)| o.is_none()).map(|(c, _)| *c).collect();
        let outcome = rt.outcome(id)?;
        if a.json {
            let mut v = serde_json::to_value(&outcome).expect("outcomes serialize");
            v["children"] = serde_json::json!(
                ended.iter().flatten().map(|o| serde_json::json!({"id": o.id, "status": o.status})).collect::<Vec<_>>()
            );
            print_json(&v);
        } else {
            let meta = rt.status(id)?;
            println!("execution {id} {} at {}: {}", outcome.status, format_ms(meta.updated_ms), a.reason);
            for o in ended.iter().flatten() {
                println!("child execution {} {}", o.id, o.status);
            }
        }
        if !left.is_empty() {
            let ids = left.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
            eprintln!("warning: child executions not cancelled yet: {ids}; `jamjet cancel` each of them to make sure");
        }
        Ok(ExitCode::SUCCESS)
    }
    .await;
    s.finish(result).await
}

/// How often to ask a server whether a cancelled child ended.
const CHILD_POLL: Duration = Duration::from_millis(50);

/// `cancel` through a server: cancel, then see its open children end
/// (the server cancels them) for up to [`CHILDREN_GRACE`].
async fn cancel_remote(remote: &Remote, id: ExecutionId, a: &Args) -> CliResult {
    let client = &remote.client;
    let children = open_children(id, &client.events(id, 0).await?);
    client.cancel(id, &a.reason).await?;
    let deadline = tokio::time::Instant::now() + CHILDREN_GRACE;
    let mut ended = Vec::new();
    let mut left = Vec::new();
    for child in children {
        loop {
            match client.execution(child).await {
                Ok(x) if x.status.is_terminal() => {
                    ended.push((child, x.status));
                    break;
                }
                Ok(_) if tokio::time::Instant::now() < deadline => tokio::time::sleep(CHILD_POLL).await,
                Ok(_) => {
                    left.push(child);
                    break;
                }
                // Never started, or gone: nothing to cancel.
                Err(e) if e.code() == Some("unknown_execution") => break,
                Err(e) => return Err(e.into()),
            }
        }
    }
    let x = client.execution(id).await?;
    if a.json {
        let mut v = serde_json::to_value(outcome_of(&x)).expect("outcomes serialize");
        v["children"] =
            serde_json::json!(ended.iter().map(|(c, s)| serde_json::json!({"id": c, "status": s})).collect::<Vec<_>>());
        print_json(&v);
    } else {
        println!("execution {id} {} at {}: {}", x.status, format_ms(x.updated_ms), a.reason);
        for (c, s) in &ended {
            println!("child execution {c} {s}");
        }
    }
    if !left.is_empty() {
        let ids = left.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
        eprintln!("warning: child executions not cancelled yet: {ids}; `jamjet cancel` each of them to make sure");
    }
    Ok(ExitCode::SUCCESS)
}
