//! `jamjet run wf.yaml --input '{...}'`: run one execution on the
//! embedded store until it ends or parks on an event or an approval (a
//! timer is waited out), and print where it stands: the final state, or
//! what it waits for and the command that moves it on. Waiting is not a
//! failure (exit 0); the data dir is free for that next command once this
//! one exits.
//!
//! With `--key`, the run is idempotent: if an execution was already
//! submitted under that key (say the process was killed), this attaches
//! to it, resumes it if needed, and prints its result.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::report::{Invocation, print_outcome};
use super::{CliResult, Failure, open_quiet};
use crate::ir::compile_file;

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
    let result = match rt.settle(id).await {
        Ok(outcome) => print_outcome(&rt, &Invocation::new(data_dir), &outcome, None, a.json),
        Err(e) => Err(Failure::from(e)),
    };
    rt.shutdown().await;
    result
}
