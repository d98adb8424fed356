//! `jamjet resume`: rehydrate every non-terminal execution in the data dir
//! and run each to its end.

use std::path::Path;
use std::process::ExitCode;

use super::{CliResult, open_quiet, print_json};
use crate::journal::Status;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[arg(long)]
    pub json: bool,
}

pub(crate) async fn run(data_dir: &Path, a: Args) -> CliResult {
    let rt = open_quiet(data_dir).await?;
    let ids = rt.resume_all().await?;
    if !a.json {
        eprintln!("resuming {} execution{}", ids.len(), if ids.len() == 1 { "" } else { "s" });
    }
    let waits = ids.iter().map(|&id| {
        let rt = rt.clone();
        async move { (id, rt.wait(id).await) }
    });
    let results = futures::future::join_all(waits).await;
    let mut all_ok = true;
    let mut out = Vec::new();
    for (id, r) in results {
        match r {
            Ok(o) => {
                all_ok &= o.status == Status::Completed;
                if !a.json {
                    println!("{id} {}{}", o.status, o.error.as_ref().map(|e| format!(": {e}")).unwrap_or_default());
                }
                out.push(serde_json::json!({"id": id, "status": o.status, "error": o.error}));
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
