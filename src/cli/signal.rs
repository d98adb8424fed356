//! `jamjet signal <exec-id> <key> [--payload '<json>']`: deliver an
//! external event to an execution's `wait` nodes, then carry the execution
//! on until it ends or parks again, and print where it stands.
//!
//! An event nothing waits for yet is kept: the execution consumes it when
//! it reaches the wait for that key. This says so rather than failing.

use std::path::Path;

use serde_json::Value;

use super::held::{self, Mode, Store};
use super::remote::{self, Remote, ServerArg};
use super::report::{Invocation, carry_on, waits_under};
use super::{CliResult, Failure, parse_id};
use crate::runtime::WaitKind;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The execution id (exec_...).
    pub id: String,
    /// The event's correlation key, as the wait node rendered it (e.g. payment:42).
    pub key: String,
    /// The event's payload, as JSON; the wait's `output_key` receives it.
    #[arg(long, default_value = "null")]
    pub payload: String,
    /// Print the outcome as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub server: ServerArg,
}

pub(crate) async fn run(data_dir: &Path, a: Args) -> CliResult {
    let id = parse_id(&a.id)?;
    let payload: Value = serde_json::from_str(&a.payload).map_err(|e| {
        Failure::new(format!("--payload is not valid JSON ({e}); nothing was delivered to execution {id}"))
    })?;
    if let Some(url) = &a.server.server {
        return signal_remote(&Remote::server(url)?, id, &a, payload).await;
    }
    let local = match held::open(data_dir, "signal", Mode::Quiet).await? {
        Store::Held(remote) => return signal_remote(&remote, id, &a, payload).await,
        Store::Local(local) => local,
    };
    let result = signal(&local.rt, data_dir, id, &a, payload).await;
    local.close().await;
    result
}

async fn signal(rt: &crate::Runtime, data_dir: &Path, id: crate::ExecutionId, a: &Args, payload: Value) -> CliResult {
    // Asked before delivering: once delivered, the wait it ends is gone.
    let waits = waits_under(rt, id)?;
    let awaited = waits.iter().any(|w| w.id == id && w.event.as_deref() == Some(a.key.as_str()));
    rt.signal(id, &a.key, payload).await?;
    if !a.json {
        if awaited {
            eprintln!("event `{}` delivered to execution {id}", a.key);
        } else {
            let keys: Vec<String> = waits
                .iter()
                .filter(|w| w.id == id && w.kind == WaitKind::Event)
                .filter_map(|w| w.event.as_ref().map(|k| format!("`{k}`")))
                .collect();
            let now = if keys.is_empty() { String::new() } else { format!(" (it waits for {})", keys.join(", ")) };
            eprintln!(
                "event `{}` delivered to execution {id}; nothing waits for it yet{now}, so it is kept until a wait for that key is reached",
                a.key
            );
        }
    }
    carry_on(rt, &Invocation::new(data_dir), id, a.json).await
}

/// `signal` through a server (or the data dir's holder): deliver, then
/// follow it until it settles.
async fn signal_remote(remote: &Remote, id: crate::ExecutionId, a: &Args, payload: Value) -> CliResult {
    let client = &remote.client;
    let before = client.execution(id).await?;
    // Waits of its branches are listed too (with their own id): only its own count here.
    let own: Vec<_> = before.waiting.iter().filter(|w| w.id.is_none_or(|waiter| waiter == id)).collect();
    let awaited = own.iter().any(|w| w.event.as_deref() == Some(a.key.as_str()));
    client.signal(id, &a.key, &payload).await?;
    if !a.json {
        if awaited {
            eprintln!("event `{}` delivered to execution {id}", a.key);
        } else {
            let keys: Vec<String> = own.iter().filter_map(|w| w.event.as_ref().map(|k| format!("`{k}`"))).collect();
            let now = if keys.is_empty() { String::new() } else { format!(" (it waits for {})", keys.join(", ")) };
            eprintln!(
                "event `{}` delivered to execution {id}; nothing waits for it yet{now}, so it is kept until a wait for that key is reached",
                a.key
            );
        }
    }
    remote::carry_on(remote, id, a.json).await
}
