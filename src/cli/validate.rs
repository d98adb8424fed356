//! `jamjet validate wf.yaml`: compile and print every finding like a
//! compiler; exit 1 when there is any. A workflow that compiles is shown
//! with the input keys it requires and the defaults it applies.

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
                for line in input_lines(&wf) {
                    println!("  {line}");
                }
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

/// What the input must hold and what it gets by default, one line each.
fn input_lines(wf: &crate::ir::Workflow) -> Vec<String> {
    let file = wf.source_file.as_deref().unwrap_or("the workflow");
    let mut out: Vec<String> = crate::ir::required_inputs(wf)
        .iter()
        .map(|r| {
            let at = format!("{file}:{}:{}", r.span.line, r.span.column);
            format!("input requires `{}` (read by node `{}` at {at})", r.key, r.node)
        })
        .collect();
    out.extend(wf.state_schema.defaults.iter().map(|(k, v)| format!("input `{k}` defaults to {v}")));
    out
}
