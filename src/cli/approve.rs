//! `jamjet approve <exec-id> [--node N] --decision approved|rejected
//! [--comment ".."] [--by NAME]`: decide the approval an execution waits
//! on, then carry it on until it ends or parks again, and print where it
//! stands. A second decision is refused with the first one named. Ctrl-C
//! while it carries the execution on stops cleanly (exit 130), as `run`.

use std::path::Path;

use super::remote::{self, Remote, ServerArg};
use super::report::carry_on;
use super::session::{Opened, Session};
use super::{CliResult, parse_id};
use crate::runtime::Decision;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The execution id (exec_...).
    pub id: String,
    /// The approval node, when the execution waits on more than one.
    #[arg(long)]
    pub node: Option<String>,
    /// Approved goes on at the node's `next`; rejected at `on_reject` (or fails the execution).
    #[arg(long, value_enum)]
    pub decision: Verdict,
    /// Why, for the record.
    #[arg(long)]
    pub comment: Option<String>,
    /// Who decides (default: $USER, else "unknown").
    #[arg(long)]
    pub by: Option<String>,
    /// Print the outcome as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub server: ServerArg,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Approved,
    Rejected,
}

pub(crate) async fn run(data_dir: &Path, a: Args) -> CliResult {
    let id = parse_id(&a.id)?;
    let by =
        a.by.clone()
            .or_else(|| std::env::var("USER").ok().filter(|u| !u.is_empty()))
            .unwrap_or_else(|| "unknown".into());
    let decision = Decision {
        node: a.node.clone(),
        approved: a.decision == Verdict::Approved,
        by: by.clone(),
        comment: a.comment,
    };
    if let Some(url) = &a.server.server {
        return approve_remote(&Remote::server(url)?, id, &decision, a.json).await;
    }
    super::existing(data_dir)?;
    let mut s = match Session::open(data_dir, "approve").await? {
        Opened::Held(remote) => return approve_remote(&remote, id, &decision, a.json).await,
        Opened::Local(s) => s,
    };
    s.own(id);
    let result = match s.rt.approve(id, decision).await {
        Ok(node) => {
            if !a.json {
                let verdict = if a.decision == Verdict::Approved { "approved" } else { "rejected" };
                eprintln!("approval `{node}` of execution {id} {verdict} by {by}");
            }
            match s.until_interrupted(carry_on(&s.rt, &s.inv, id, a.json)).await {
                Some(r) => r,
                None => {
                    let goes_on = s.inv.command("resume");
                    return s.interrupted(&[id], &goes_on).await;
                }
            }
        }
        Err(e) => Err(e.into()),
    };
    s.finish(result).await
}

/// `approve` through a server (or the data dir's holder): decide, then
/// follow it until it settles.
async fn approve_remote(remote: &Remote, id: crate::ExecutionId, decision: &Decision, json: bool) -> CliResult {
    let by = &decision.by;
    let (node, comment) = (decision.node.as_deref(), decision.comment.as_deref());
    let got = remote.client.approve(id, decision.approved, node, Some(by), comment).await?;
    if !json {
        let verdict = if decision.approved { "approved" } else { "rejected" };
        eprintln!("approval `{}` of execution {id} {verdict} by {by}", got.node);
    }
    remote::carry_on(remote, id, json).await
}
