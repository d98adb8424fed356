//! `jamjet cancel <exec-id> [--reason ".."]`: cancel a running or waiting
//! execution (its running nodes stop, its children are cancelled; it never
//! resumes) and print its final status, and its children's.

use std::path::Path;
use std::process::ExitCode;

use std::time::Duration;

use super::report::open_descendants;
use super::{CliResult, open_quiet, parse_id, print_json};
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
}

pub(crate) async fn run(data_dir: &Path, a: Args) -> CliResult {
    let id = parse_id(&a.id)?;
    let rt = open_quiet(data_dir).await?;
    let result = async {
        let children = open_descendants(&rt, id)?;
        rt.cancel(id, &a.reason).await?;
        // The runtime cancels the children; see that done before this
        // process lets go of the data dir.
        let ends = children.iter().map(|&child| {
            let rt = rt.clone();
            async move { tokio::time::timeout(CHILDREN_GRACE, rt.wait(child)).await.ok().and_then(Result::ok) }
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
    rt.shutdown().await;
    result
}
