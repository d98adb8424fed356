//! `jamjet sessions [--json]`: list the sessions (tasks that make one
//! conversation: A2A contexts, `jamjet run --session ID`) that have not
//! expired; `jamjet sessions show ID [--json]`: one session's tasks, each
//! with its message and answer, and the `session_state` the next task
//! starts with. Read-only: on the data dir, through the process holding
//! it, or with `--server` through a server.

use std::path::Path;
use std::process::ExitCode;

use super::held::{self, Mode, Store};
use super::remote::{Remote, ServerArg};
use super::{CliResult, Failure, absolute, print_json, table};
use crate::clock::format_ms;
use crate::runtime::{SessionDetail, SessionInfo};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    pub command: Option<Sub>,
    /// Print the sessions as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub server: ServerArg,
}

#[derive(clap::Subcommand, Debug)]
pub enum Sub {
    /// One session: its tasks (message, answer) and the state it carries.
    Show {
        /// The session id (an A2A contextId, a `run --session` id).
        id: String,
        /// Print it as JSON.
        #[arg(long)]
        json: bool,
    },
}

enum Asked {
    List,
    Show(String),
}

pub(crate) async fn run(data_dir: &Path, a: Args) -> CliResult {
    let (asked, json) = match a.command {
        None => (Asked::List, a.json),
        Some(Sub::Show { id, json }) => {
            crate::journal::check_session_id(&id).map_err(|why| Failure::usage(format!("`{id}`: {why}")))?;
            (Asked::Show(id), json || a.json)
        }
    };
    let remote = match &a.server.server {
        Some(url) => Some(Remote::server(url, &a.server)?),
        None => None,
    };
    let remote = match remote {
        Some(r) => r,
        None => match held::open(data_dir, "sessions", Mode::ReadOnly).await? {
            Store::Held(r) => r,
            Store::Local(local) => {
                let result = match &asked {
                    Asked::List => local.rt.sessions().map(|list| print_list(&list, &absolute(data_dir), json)),
                    Asked::Show(id) => local.rt.session(id).map(|d| print_detail(&d, json)),
                };
                local.close().await;
                result?;
                return Ok(ExitCode::SUCCESS);
            }
        },
    };
    match &asked {
        Asked::List => print_list(&remote.client.sessions().await?, &absolute(data_dir), json),
        Asked::Show(id) => print_detail(&remote.client.session(id).await?, json),
    }
    Ok(ExitCode::SUCCESS)
}

fn print_list(list: &[SessionInfo], from: &Path, json: bool) {
    if json {
        print_json(&list);
        return;
    }
    if list.is_empty() {
        println!("no sessions in {}", from.display());
        return;
    }
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|s| {
            vec![
                s.id.clone(),
                s.workflow_id.clone(),
                s.executions.len().to_string(),
                s.running.map_or_else(|| "-".to_string(), |id| id.to_string()),
                format_ms(s.last_active_ms),
                s.expires_ms.map_or_else(|| "-".to_string(), format_ms),
            ]
        })
        .collect();
    table::print(&["SESSION", "WORKFLOW", "TASKS", "RUNNING", "LAST ACTIVE", "EXPIRES"], &rows);
}

fn print_detail(d: &SessionDetail, json: bool) {
    if json {
        print_json(d);
        return;
    }
    let s = &d.info;
    println!("session    {}", s.id);
    println!("workflow   {}", s.workflow_id);
    println!("created    {}", format_ms(s.created_ms));
    println!("active     {}", format_ms(s.last_active_ms));
    match (s.running, s.expires_ms) {
        (Some(id), _) => println!("running    {id}"),
        (None, Some(at)) => println!("expires    {} (if nothing more happens)", format_ms(at)),
        (None, None) => {}
    }
    if !d.state.is_empty() {
        println!("state      {}", serde_json::Value::Object(d.state.clone()));
    }
    for (i, t) in d.tasks.iter().enumerate() {
        println!();
        println!("task {}  {}  {}", i + 1, t.execution, t.status);
        if let Some(m) = &t.message {
            println!("  user:   {}", one_line(m));
        }
        if let Some(a) = &t.answer {
            println!("  answer: {}", one_line(a));
        }
    }
}

/// A text on one line, cut at 200 characters.
fn one_line(text: &str) -> String {
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= 200 { flat } else { format!("{}…", flat.chars().take(199).collect::<String>()) }
}
