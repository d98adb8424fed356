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
//!
//! `--follow` prints each event as it becomes durable (one line per step,
//! or JSON Lines with `--json`), then the outcome.
//!
//! Like every command that changes the data dir, it first resumes what a
//! crash left behind and waits for that at the end (`cli/session.rs`).
//! A wait on the clock (a timer, a retry delay) is said on stderr with its
//! deadline. Ctrl-C stops it cleanly: the execution is kept as the journal
//! has it, and stderr says where it stopped and which command goes on
//! (`jamjet resume`, or this `run` with its `--key`); exit code 130.
//!
//! With `--server URL` (or `JAMJET_SERVER`) it goes through that server:
//! the file's workflow is registered there (`POST /workflows`; the same
//! content again is a no-op; other content under the same id and version
//! is refused unless `--replace`), submitted (`--key` is the idempotency
//! key), and followed over the server's event stream until it settles.
//!
//! With `--session ID` the run is a task of session `ID`: it starts from
//! its input plus the workflow's `session_state:` keys as the session's
//! last completed task left them, its agents and model nodes are given
//! the conversation so far, and it waits for the session's previous task
//! to end first (see `runtime/sessions.rs`). Locally, through a holder
//! and through `--server` alike.
//!
//! When another process holds the data dir (`jamjet dev`, another `run`),
//! it goes through that process's socket: the workflow compiled here is
//! submitted inline (`POST /executions` with its IR: run as it is, not
//! registered, as a local run does), followed the same way, and printed
//! as a local run prints it. The work then runs in that process.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde_json::Value;

use super::follow::{Printer, follow_local};
use super::remote::{self, Remote, ServerArg, json_arg, settle};
use super::report::{Invocation, print_outcome, shell_word};
use super::session::{INTERRUPTED, Opened, Session};
use super::{CliResult, Failure, compile_options};
use crate::ir::{Workflow, compile_file_with};

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
    /// Run as the next task of this session: carry on its `session_state`
    /// and conversation (a new id starts a new session).
    #[arg(long, value_name = "ID")]
    pub session: Option<String>,
    /// Print the outcome as JSON (with --follow: each event as one JSON line first).
    #[arg(long)]
    pub json: bool,
    /// Print each event as it becomes durable, then the outcome.
    #[arg(long)]
    pub follow: bool,
    /// With --server: replace a workflow registered there under the same id
    /// and version with other content.
    #[arg(long)]
    pub replace: bool,
    #[command(flatten)]
    pub server: ServerArg,
}

pub(crate) async fn run(data_dir: &Path, a: Args) -> CliResult {
    let wf = compile_file_with(&a.file, &compile_options())
        .map_err(|d| Failure { message: format!("the workflow does not compile:\n{d}"), code: 1 })?;
    let input: Value = json_arg("--input", &a.input)?;
    // Refused before any data dir is opened (or created): bad input changes
    // nothing. In a session the carried keys come later, from the session.
    if let Some(session) = &a.session {
        crate::journal::check_session_id(session).map_err(crate::runtime::Error::InvalidSession)?;
    } else if let Err(e) = crate::ir::prepare_input(&wf, &crate::ir::required_inputs(&wf), input.clone()) {
        return Err(crate::runtime::Error::InvalidInput(e).into());
    }
    if let Some(url) = a.server.server.clone() {
        return run_remote(&Remote::server(&url, &a.server)?, &wf, input, &a).await;
    }
    let mut s = match Session::open(data_dir, "run").await? {
        Opened::Held(remote) => return run_held(&remote, &wf, input, &a).await,
        Opened::Local(s) => s,
    };
    // A Ctrl-C while opening: start nothing.
    if s.until_interrupted(async {}).await.is_none() {
        if s.families().is_empty() {
            eprintln!("interrupted before the execution started; nothing was started");
            s.close().await;
            return Ok(ExitCode::from(INTERRUPTED));
        }
        let goes_on = s.inv.command("resume");
        return s.interrupted(&[], &goes_on).await;
    }
    // Tokens of its streamed replies may come before its id is known here.
    let tokens = a.follow.then(|| crate::nodes::stream::TokenRx::All(s.rt.all_tokens()));
    let submitted = match &a.session {
        Some(session) => s.rt.submit_in_session(&wf, input, session, a.key.as_deref()).await.map(|(id, _)| id),
        None => s.rt.submit_keyed(&wf, input, a.key.as_deref()).await,
    };
    let id = match submitted {
        Ok(id) => id,
        Err(e) => return s.finish(Err(e.into())).await,
    };
    eprintln!("execution {id} started");
    s.own(id);
    let settled = if a.follow {
        s.until_interrupted(follow_local(&s.rt, id, &mut Printer::new(a.json), tokens)).await
    } else {
        s.until_interrupted(s.rt.settle(id)).await
    };
    let Some(settled) = settled else {
        let goes_on = continue_command(&s.inv, &a);
        return s.interrupted(&[id], &goes_on).await;
    };
    let result = match settled {
        Ok(outcome) => print_outcome(&s.rt, &s.inv, &outcome, None, a.json),
        Err(e) => Err(Failure::from(e)),
    };
    s.finish(result).await
}

/// The command that carries an interrupted run on: the same `run` with
/// its key (it attaches to the execution and resumes it), else `resume`.
fn continue_command(inv: &Invocation, a: &Args) -> String {
    let Some(key) = a.key.as_ref().filter(|_| a.session.is_none()) else { return inv.command("resume") };
    let file = shell_word(&a.file.display().to_string());
    let input = if a.input == "{}" { String::new() } else { format!(" --input {}", shell_word(&a.input)) };
    inv.command(&format!("run {file}{input} --key {}", shell_word(key)))
}

/// `run` through the process holding the data dir: the workflow compiled
/// here, submitted inline, followed until it settles.
async fn run_held(remote: &Remote, wf: &Workflow, input: Value, a: &Args) -> CliResult {
    let submitted = remote.client.submit_inline(wf, &input, a.key.as_deref(), a.session.as_deref()).await?;
    let id = submitted.id;
    eprintln!("execution {id} started");
    let mut printer = Printer::new(a.json);
    let x = settle(&remote.client, id, a.follow.then_some(&mut printer)).await?;
    remote::print_outcome(remote, &x, a.json).await
}

/// `run` through a server.
async fn run_remote(remote: &Remote, wf: &Workflow, input: Value, a: &Args) -> CliResult {
    let (client, url) = (&remote.client, remote.place());
    let yaml =
        std::fs::read_to_string(&a.file).map_err(|e| Failure::new(format!("cannot read {}: {e}", a.file.display())))?;
    match client.register_yaml(&yaml, a.replace).await {
        Ok((r, new)) => {
            if new {
                eprintln!("workflow {} {} registered on {url}", r.workflow_id, r.version);
            }
        }
        Err(e) if e.code() == Some("workflow_conflict") => {
            return Err(Failure::new(format!(
                "{url} already has workflow `{}` version `{}` with other content: bump `version:` in {}, or pass --replace to replace it there ({e})",
                wf.id,
                wf.version,
                a.file.display()
            )));
        }
        Err(e) => return Err(e.into()),
    }
    let submitted = client.submit(&wf.id, Some(&wf.version), &input, a.key.as_deref(), a.session.as_deref()).await?;
    let id = submitted.id;
    eprintln!("execution {id} started on {url}");
    let mut printer = Printer::new(a.json);
    let x = settle(client, id, a.follow.then_some(&mut printer)).await?;
    remote::print_outcome(remote, &x, a.json).await
}
