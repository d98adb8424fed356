//! The commands against a server (`--server URL` or `JAMJET_SERVER`) or
//! through the process holding the data dir (its socket, see
//! [`super::held`]): the option itself, [`Remote`], and what `run`,
//! `signal` and `approve` share there: following an execution until it
//! settles (ends, or parks on an event or an approval; a timer is waited
//! out) over the event stream, and printing its outcome as the local
//! commands do.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use super::follow::Printer;
use super::report::{Invocation, payload_key_in, render_outcome};
use super::{CliResult, Failure};
use crate::client::{self, Client, Execution, Item};
use crate::id::ExecutionId;
use crate::journal::Status;
use crate::runtime::Error as RuntimeError;
use crate::runtime::{Outcome, WaitKind, Waiting};

/// With no new event for this long, ask the server whether the execution
/// settled (a wait in a child shows only there).
const IDLE: Duration = Duration::from_millis(500);
/// After a `Waiting` record, this long without another one.
const SOON: Duration = Duration::from_millis(50);

/// `--server URL`: go through that server's API instead of the data dir;
/// over HTTPS, the CA to trust and the client certificate to present.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ServerArg {
    /// A `jamjet dev` server to go through instead of opening the data dir
    /// (`JAMJET_API_KEY` sends an API key).
    #[arg(long, env = "JAMJET_SERVER", value_name = "URL")]
    pub server: Option<String>,
    /// Trust https:// servers whose certificate this CA signed (PEM), beside the system's roots.
    #[arg(long, env = "JAMJET_CA_CERT", value_name = "FILE")]
    pub ca_cert: Option<PathBuf>,
    /// Present this client certificate (PEM) to a server that asks for one (mTLS); needs --client-key.
    #[arg(long, env = "JAMJET_CLIENT_CERT", value_name = "FILE")]
    pub client_cert: Option<PathBuf>,
    /// The private key of --client-cert (PEM).
    #[arg(long, env = "JAMJET_CLIENT_KEY", value_name = "FILE")]
    pub client_key: Option<PathBuf>,
}

impl ServerArg {
    /// The TLS files given (flags first, then the `JAMJET_*` variables).
    pub(crate) fn tls(&self) -> crate::tls::ClientTls {
        crate::tls::ClientTls {
            ca_cert: self.ca_cert.clone(),
            client_cert: self.client_cert.clone(),
            client_key: self.client_key.clone(),
        }
    }
}

impl From<client::Error> for Failure {
    fn from(e: client::Error) -> Self {
        Failure::new(e.to_string())
    }
}

/// A client of `url` with the TLS files of `arg`, or why not.
pub(crate) fn connect(url: &str, arg: &ServerArg) -> Result<Client, Failure> {
    Ok(Client::with_tls(url, &arg.tls())?)
}

/// Where a command goes through the API: a server (`--server URL`), or
/// the process holding the data dir (its socket). Through the socket it
/// is the user's own data dir answering: messages and the commands
/// printed to go on are the local ones (no URL, no `--server`).
pub(crate) struct Remote {
    pub client: Client,
    /// How to type the next command.
    pub inv: Invocation,
    /// The server's URL; `None` through the data dir's socket.
    pub url: Option<String>,
    data_dir: Option<PathBuf>,
}

impl Remote {
    /// The server at `url`, reached with the TLS files of `arg`.
    pub(crate) fn server(url: &str, arg: &ServerArg) -> Result<Remote, Failure> {
        let client = connect(url, arg)?;
        let inv = Invocation::remote(client.base());
        Ok(Remote { client, inv, url: Some(url.to_string()), data_dir: None })
    }

    /// The process holding `data_dir`, through `client` (its socket).
    pub(crate) fn held(client: Client, data_dir: &Path) -> Remote {
        Remote { client, inv: Invocation::new(data_dir), url: None, data_dir: Some(data_dir.to_path_buf()) }
    }

    /// What it is, for a message: the server's URL, or the data dir.
    pub(crate) fn place(&self) -> String {
        match (&self.url, &self.data_dir) {
            (Some(u), _) => u.clone(),
            (None, Some(d)) => format!("the data dir {}", d.display()),
            (None, None) => self.client.base().to_string(),
        }
    }
}

/// What the server says an execution stands at, as the runtime's outcome.
pub(crate) fn outcome_of(x: &Execution) -> Outcome {
    Outcome { id: x.id, status: x.status, state: x.state.clone(), error: x.error.clone(), usage: x.usage }
}

/// The server's waits of `x`, as the runtime's.
pub(crate) fn waits_of(x: &Execution) -> Vec<Waiting> {
    x.waiting
        .iter()
        .map(|w| Waiting {
            id: w.id.unwrap_or(x.id),
            workflow_id: w.workflow_id.clone().unwrap_or_else(|| x.workflow_id.clone()),
            node: w.node.clone(),
            kind: match w.kind.as_str() {
                "event" => WaitKind::Event,
                "approval" => WaitKind::Approval,
                _ => WaitKind::Timer,
            },
            event: w.event.clone(),
            prompt: w.prompt.clone(),
            call: w.call.clone(),
            since_ms: w.since_ms,
            deadline_ms: w.deadline_ms,
            parent: w.parent,
        })
        .collect()
}

/// Whether `x` settled, as the server says (the runtime's one
/// definition: it and its unfinished children ended, or wait on events or
/// approvals). A server too old to say is asked only whether it ended.
fn settled(x: &Execution) -> bool {
    x.status.is_terminal() || x.settled == Some(true)
}

/// Follow `id` over the event stream until it settles; with a printer,
/// print every record as it arrives. Returns where it stands.
pub(crate) async fn settle(
    client: &Client,
    id: ExecutionId,
    mut printer: Option<&mut Printer>,
) -> Result<Execution, Failure> {
    let mut stream = client.follow(id, 0);
    let mut check = false;
    // After a `Waiting` record, ask as soon as the stream pauses (a burst
    // of records read later could show the wait already over).
    let mut soon = false;
    loop {
        let idle = if soon { SOON } else { IDLE };
        match tokio::time::timeout(idle, stream.next()).await {
            Ok(Ok(Some(Item::Record(r)))) => {
                if let Some(p) = printer.as_deref_mut() {
                    p.print(&r);
                }
                let end = r.event.is_terminal();
                soon = matches!(
                    r.event,
                    crate::journal::Event::Waiting { .. } | crate::journal::Event::CallsPending { .. }
                );
                if end {
                    break;
                }
            }
            Ok(Ok(Some(Item::Token(t)))) => {
                if let Some(p) = printer.as_deref_mut() {
                    p.token(&t);
                }
            }
            Ok(Ok(Some(Item::End(_)) | None)) => break,
            Ok(Err(e)) => return Err(e.into()),
            Err(_) => {
                check = true;
                soon = false;
            }
        }
        if check {
            check = false;
            let x = client.execution(id).await?;
            if settled(&x) {
                break;
            }
        }
    }
    // What became durable after the last record read (nothing when it
    // ended on the stream): print it too, then read where it stands.
    if let Some(p) = printer {
        for r in client.events(id, p.last()).await? {
            p.print(&r);
        }
    }
    Ok(client.execution(id).await?)
}

/// Print where `x` stands, as the local commands do.
pub(crate) async fn print_outcome(remote: &Remote, x: &Execution, json: bool) -> CliResult {
    let client = &remote.client;
    let waits = match x.status {
        s if s.is_terminal() => Vec::new(),
        // Running, with every unfinished child parked on the outside: what they wait for.
        Status::Running if settled(x) => waits_of(x),
        Status::Running => Vec::new(),
        _ => waits_of(x),
    };
    if x.status == Status::Running && waits.is_empty() {
        return Err(match &remote.url {
            Some(url) => Failure::new(format!("execution {} is still running on {url}", x.id)),
            // Through the data dir's socket: what the local command says.
            None => Failure::from(RuntimeError::Stopped { id: x.id }),
        });
    }
    // The payload keys come from the workflow; only needed for a wait.
    let workflow = match waits.is_empty() {
        true => None,
        false => client.workflow_of(x.id).await.ok().map(|(_, wf)| wf),
    };
    let keys = |w: &Waiting| workflow.as_ref().filter(|_| w.id == x.id).and_then(|wf| payload_key_in(wf, &w.node));
    render_outcome(&keys, &remote.inv, &outcome_of(x), (x.created_ms, x.updated_ms), &waits, None, json)
}

/// Settle `id` and print its outcome (`signal`, `approve` with a server).
pub(crate) async fn carry_on(remote: &Remote, id: ExecutionId, json: bool) -> CliResult {
    let x = settle(&remote.client, id, None).await?;
    print_outcome(remote, &x, json).await
}

/// `--input`/`--payload` text as JSON, or a clear error.
pub(crate) fn json_arg(flag: &str, text: &str) -> Result<Value, Failure> {
    serde_json::from_str(text)
        .map_err(|e| Failure::new(format!("{flag} is not valid JSON: {e} (line {}, column {})", e.line(), e.column())))
}
