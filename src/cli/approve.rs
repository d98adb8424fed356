//! `jamjet approve <exec-id> [--node N] --decision approved|rejected
//! [--comment ".."] [--by NAME]`: decide the approval an execution waits
//! on, then carry it on until it ends or parks again, and print where it
//! stands. A second decision is refused with the first one named.

use std::path::Path;

use super::report::{Invocation, carry_on};
use super::{CliResult, open_quiet, parse_id};
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
    let rt = open_quiet(data_dir).await?;
    let result = async {
        let node = rt.approve(id, decision).await?;
        if !a.json {
            let verdict = if a.decision == Verdict::Approved { "approved" } else { "rejected" };
            eprintln!("approval `{node}` of execution {id} {verdict} by {by}");
        }
        carry_on(&rt, &Invocation::new(data_dir), id, a.json).await
    }
    .await;
    rt.shutdown().await;
    result
}
