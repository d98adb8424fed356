//! `jamjet executions [--status S]`: list executions, oldest first.

use std::path::Path;
use std::process::ExitCode;

use super::{CliResult, Failure, open_quiet, print_json, table};
use crate::clock::format_ms;
use crate::journal::Status;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Only executions with this status (running, completed, failed, cancelled).
    #[arg(long)]
    pub status: Option<String>,
    #[arg(long)]
    pub json: bool,
}

pub(crate) async fn run(data_dir: &Path, a: Args) -> CliResult {
    let status = match a.status.as_deref() {
        None => None,
        Some(s) => Some(Status::parse(s).ok_or_else(|| {
            Failure::new(format!("--status `{s}` is not a status (running, completed, failed, cancelled)"))
        })?),
    };
    let rt = open_quiet(data_dir).await?;
    let list = rt.list(status)?;
    if a.json {
        print_json(&list);
    } else if list.is_empty() {
        println!("no executions");
    } else {
        let rows: Vec<Vec<String>> = list
            .iter()
            .map(|m| {
                vec![
                    m.id.to_string(),
                    format!("{}@{}", m.workflow_id, m.workflow_version),
                    m.status.to_string(),
                    format_ms(m.created_ms),
                    format_ms(m.updated_ms),
                ]
            })
            .collect();
        table::print(&["EXECUTION", "WORKFLOW", "STATUS", "CREATED", "UPDATED"], &rows);
    }
    rt.shutdown().await;
    Ok(ExitCode::SUCCESS)
}
