//! `jamjet validate wf.yaml`: compile and print every finding like a
//! compiler; exit 1 when there is any.

use std::path::PathBuf;
use std::process::ExitCode;

use super::{CliResult, compile_options, print_json};
use crate::ir::compile_file_with;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The workflow file.
    pub file: PathBuf,
    /// Print the findings (or the compiled IR) as JSON.
    #[arg(long)]
    pub json: bool,
}

pub(crate) fn run(a: Args) -> CliResult {
    match compile_file_with(&a.file, &compile_options()) {
        Ok(wf) => {
            if a.json {
                print_json(&serde_json::json!({ "ok": true, "workflow": wf }));
            } else {
                println!(
                    "{}: ok — workflow `{}` {} with {}, starting at `{}`",
                    a.file.display(),
                    wf.id,
                    wf.version,
                    crate::plural::count(wf.nodes.len(), "node", "nodes"),
                    wf.start
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(diags) => {
            if a.json {
                let findings: Vec<_> = diags
                    .iter()
                    .map(|d| {
                        serde_json::json!({"file": d.file, "line": d.line, "column": d.column, "message": d.message, "node": d.node})
                    })
                    .collect();
                print_json(&serde_json::json!({ "ok": false, "findings": findings }));
            } else {
                eprintln!("{diags}");
                eprintln!("{}", crate::plural::count(diags.len(), "finding", "findings"));
            }
            Ok(ExitCode::FAILURE)
        }
    }
}
