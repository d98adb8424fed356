//! `jamjet approve <exec-id> [--node N | --call ID] --decision
//! approved|rejected (or --approve / --reject) [--comment ".."] [--by
//! NAME]`: decide the approval an execution waits on, or one of its tool
//! calls that wait for a decision (`--call research.2`, as `inspect` and
//! `executions --waiting` list them), then carry it on until it ends or
//! parks again, and print where it stands. A second decision is refused
//! with the first one named. Ctrl-C while it carries the execution on
//! stops cleanly (exit 130), as `run`.

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
    /// A tool call that waits for a decision (`research.2`): approved, it
    /// runs; rejected, the model is told a human refused it.
    #[arg(long)]
    pub call: Option<String>,
    /// Approved goes on at the node's `next`; rejected at `on_reject` (or fails the execution).
    #[arg(long, value_enum, required_unless_present_any = ["approve", "reject"], conflicts_with_all = ["approve", "reject"])]
    pub decision: Option<Verdict>,
    /// The same as `--decision approved`.
    #[arg(long, conflicts_with = "reject")]
    pub approve: bool,
    /// The same as `--decision rejected`.
    #[arg(long)]
    pub reject: bool,
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
    let verdict = match (a.decision, a.reject) {
        (Some(v), _) => v,
        (None, true) => Verdict::Rejected,
        (None, false) => Verdict::Approved,
    };
    let by =
        a.by.clone()
            .or_else(|| std::env::var("USER").ok().filter(|u| !u.is_empty()))
            .unwrap_or_else(|| "unknown".into());
    let decision = Decision {
        node: a.node.clone(),
        call: a.call.clone(),
        approved: verdict == Verdict::Approved,
        by: by.clone(),
        comment: a.comment,
    };
    if let Some(url) = &a.server.server {
        return approve_remote(&Remote::server(url, &a.server)?, id, &decision, a.json).await;
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
                let verdict = if verdict == Verdict::Approved { "approved" } else { "rejected" };
                eprintln!("{} of execution {id} {verdict} by {by}", decided(&node, a.call.as_deref()));
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
    let got = match decision.call.as_deref() {
        Some(call) => remote.client.approve_call(id, call, decision.approved, Some(by), comment).await?,
        None => remote.client.approve(id, decision.approved, node, Some(by), comment).await?,
    };
    if !json {
        let verdict = if decision.approved { "approved" } else { "rejected" };
        eprintln!("{} of execution {id} {verdict} by {by}", decided(&got.node, decision.call.as_deref()));
    }
    remote::carry_on(remote, id, json).await
}

/// What was decided: "approval `n`", or "tool call `c` (node `n`)".
fn decided(node: &str, call: Option<&str>) -> String {
    match call {
        Some(c) => format!("tool call `{c}` (node `{node}`)"),
        None => format!("approval `{node}`"),
    }
}
