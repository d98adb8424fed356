//! `jamjet run wf.yaml --input '{...}'`: run one execution to its end on
//! the embedded store and print the final state and the execution id.
//!
//! With `--key`, the run is idempotent: if an execution was already
//! submitted under that key (say the process was killed), this attaches
//! to it, resumes it if needed, and prints its result.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde_json::Value;

use super::{CliResult, Failure, open_quiet, print_json};
use crate::clock::format_ms;
use crate::ir::compile_file;
use crate::journal::Status;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The workflow file.
    pub file: PathBuf,
    /// The input state, as a JSON object.
    #[arg(long, default_value = "{}")]
    pub input: String,
    /// An idempotency key: the same key twice runs one execution.
    #[arg(long)]
    pub key: Option<String>,
    /// Print the outcome as JSON.
    #[arg(long)]
    pub json: bool,
}

pub(crate) async fn run(data_dir: &Path, a: Args) -> CliResult {
    let wf = compile_file(&a.file)
        .map_err(|d| Failure { message: format!("the workflow does not compile:\n{d}"), code: 1 })?;
    let input: Value = serde_json::from_str(&a.input).map_err(|e| {
        Failure::new(format!("--input is not valid JSON: {e} (line {}, column {})", e.line(), e.column()))
    })?;
    let rt = open_quiet(data_dir).await?;
    let id = rt.submit_keyed(&wf, input, a.key.as_deref()).await?;
    eprintln!("execution {id} started");
    let outcome = rt.wait(id).await?;
    let meta = rt.status(id)?;
    if a.json {
        print_json(&outcome);
    } else {
        let took = meta.updated_ms.saturating_sub(meta.created_ms);
        println!("execution {id} {} at {} ({took} ms)", outcome.status, format_ms(meta.updated_ms));
        if let Some(e) = &outcome.error {
            println!("error: {e}");
        }
        println!("{}", serde_json::to_string_pretty(&outcome.state).expect("state serializes"));
    }
    rt.shutdown().await;
    Ok(if outcome.status == Status::Completed { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
