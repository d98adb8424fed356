//! `jamjet signal <exec-id> <key> [--payload '<json>']`: deliver an
//! external event to an execution's `wait` nodes, then carry the execution
//! on until it ends or parks again, and print where it stands.
//!
//! An event nothing waits for yet is kept: the execution consumes it when
//! it reaches the wait for that key. This says so rather than failing.
//!
//! A wait on the clock the event leads to (a timer) is waited out and
//! said on stderr with its deadline; Ctrl-C stops cleanly (exit 130) and
//! says that `jamjet resume` goes on. What a crash left behind is resumed
//! too (`cli/session.rs`).

use std::path::Path;

use serde_json::Value;

use super::remote::{self, ServerArg, connect};
use super::report::{carry_on, waits_under};
use super::session::Session;
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
        return signal_remote(url, id, &a, payload).await;
    }
    super::existing(data_dir)?;
    let mut s = Session::open(data_dir).await?;
    s.own(id);
    let result = match deliver(&s.rt, id, &a, payload).await {
        Ok(()) => match s.until_interrupted(carry_on(&s.rt, &s.inv, id, a.json)).await {
            Some(r) => r,
            None => {
                let goes_on = s.inv.command("resume");
                return s.interrupted(&[id], &goes_on).await;
            }
        },
        Err(f) => Err(f),
    };
    s.finish(result).await
}

/// Deliver the event, and say to whom (and whether anything waits for it).
async fn deliver(rt: &crate::Runtime, id: crate::ExecutionId, a: &Args, payload: Value) -> Result<(), Failure> {
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
    Ok(())
}

/// `signal` through a server: deliver, then follow it until it settles.
async fn signal_remote(url: &str, id: crate::ExecutionId, a: &Args, payload: Value) -> CliResult {
    let client = connect(url)?;
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
    remote::carry_on(&client, id, a.json).await
}
