//! `jamjet fork <exec-id> --from NODE [--visit N] [--branch N] [--set
//! '{"k": ...}'] [--latest] [--follow] [--json]`: start a new execution
//! that goes on from a node visit of another (its history up to there
//! copied, the state it had there with `--set` merged over it and checked
//! against the schema), then carry it on like `run`. A node inside a
//! parallel node's branches is forked inside its branch (`--branch`, or
//! the branch's own execution id, says which). The original is only read.

use std::path::Path;

use serde_json::Value;

use super::follow::{Printer, follow_local};
use super::remote::{self, Remote, ServerArg, json_arg, settle};
use super::report::print_outcome;
use super::session::{Opened, Session};
use super::{CliResult, Failure, parse_id};
use crate::runtime::ForkSpec;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The execution to fork (exec_...).
    pub id: String,
    /// The node the fork goes on at.
    #[arg(long, value_name = "NODE")]
    pub from: String,
    /// Which visit of it (default: its last).
    #[arg(long, value_name = "N")]
    pub visit: Option<u32>,
    /// For a node inside a parallel node's branches: which branch (needed when it ran in more than one).
    #[arg(long, value_name = "N")]
    pub branch: Option<u32>,
    /// Keys to set in the state at the fork, as a JSON object (checked against the state schema).
    #[arg(long, value_name = "JSON")]
    pub set: Option<String>,
    /// Run on the newest registered version of the workflow instead of the one the original ran.
    #[arg(long)]
    pub latest: bool,
    /// Print each event as it becomes durable, then the outcome.
    #[arg(long)]
    pub follow: bool,
    /// Print the outcome as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub server: ServerArg,
}

pub(crate) async fn run(data_dir: &Path, a: Args) -> CliResult {
    let id = parse_id(&a.id)?;
    let set = match &a.set {
        None => Default::default(),
        Some(text) => match json_arg("--set", text)? {
            Value::Object(m) => m,
            other => return Err(Failure::usage(format!("--set must be a JSON object, not {other}"))),
        },
    };
    let spec = ForkSpec { from: a.from.clone(), visit: a.visit, set, latest: a.latest, branch: a.branch };
    if let Some(url) = &a.server.server {
        return fork_remote(&Remote::server(url, &a.server)?, id, &spec, &a).await;
    }
    super::existing(data_dir)?;
    let mut s = match Session::open(data_dir, "fork").await? {
        Opened::Held(remote) => return fork_remote(&remote, id, &spec, &a).await,
        Opened::Local(s) => s,
    };
    let tokens = a.follow.then(|| crate::nodes::stream::TokenRx::All(s.rt.all_tokens()));
    let fork = match s.rt.fork(id, &spec).await {
        Ok(fork) => fork,
        Err(e) => return s.finish(Err(e.into())).await,
    };
    eprintln!("execution {fork} forked from {id} at node `{}`", spec.from);
    s.own(fork);
    let settled = if a.follow {
        s.until_interrupted(follow_local(&s.rt, fork, &mut Printer::new(a.json), tokens)).await
    } else {
        s.until_interrupted(s.rt.settle(fork)).await
    };
    let Some(settled) = settled else {
        let goes_on = s.inv.command("resume");
        return s.interrupted(&[fork], &goes_on).await;
    };
    let result = match settled {
        Ok(outcome) => print_outcome(&s.rt, &s.inv, &outcome, None, a.json),
        Err(e) => Err(Failure::from(e)),
    };
    s.finish(result).await
}

/// `fork` through a server or the data dir's holder, followed until it settles.
async fn fork_remote(remote: &Remote, id: crate::id::ExecutionId, spec: &ForkSpec, a: &Args) -> CliResult {
    let fork = remote.client.fork(id, spec).await?;
    eprintln!("execution {fork} forked from {id} at node `{}`", spec.from);
    let mut printer = Printer::new(a.json);
    let x = settle(&remote.client, fork, a.follow.then_some(&mut printer)).await?;
    remote::print_outcome(remote, &x, a.json).await
}
