//! `jamjet signal <exec-id> <key> [--payload '<json>']`: deliver an
//! external event to an execution's `wait` nodes, then carry the execution
//! on until it ends or parks again, and print where it stands.
//!
//! An event nothing waits for yet is kept: the execution consumes it when
//! it reaches the wait for that key. This says so on stderr rather than
//! failing (the exit code is 0), with what the execution and its children
//! wait for now, or that they wait for no event.
//!
//! A wait on the clock the event leads to (a timer) is waited out and
//! said on stderr with its deadline; Ctrl-C stops cleanly (exit 130) and
//! says that `jamjet resume` goes on. What a crash left behind is resumed
//! too (`cli/session.rs`).

use std::path::Path;

use serde_json::Value;

use super::remote::{self, Remote, ServerArg};
use super::report::{Invocation, carry_on, waits_under};
use super::session::{Opened, Session};
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
    super::existing(data_dir)?;
    let mut s = match Session::open(data_dir, "signal").await? {
        Opened::Held(remote) => return signal_remote(&remote, id, &a, payload).await,
        Opened::Local(s) => s,
    };
    s.own(id);
    let result = match deliver(&s.rt, &s.inv, id, &a, payload).await {
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
async fn deliver(
    rt: &crate::Runtime,
    inv: &Invocation,
    id: crate::ExecutionId,
    a: &Args,
    payload: Value,
) -> Result<(), Failure> {
    // Asked before delivering: once delivered, the wait it ends is gone.
    let awaited: Vec<Awaited> = waits_under(rt, id)?
        .into_iter()
        .filter(|w| w.kind == WaitKind::Event)
        .filter_map(|w| Some(Awaited { id: w.id, node: w.node, key: w.event? }))
        .collect();
    rt.signal(id, &a.key, payload).await?;
    say_delivered(id, &a.key, &awaited, inv, a.json);
    Ok(())
}

/// `signal` through a server (or the data dir's holder): deliver, then
/// follow it until it settles.
async fn signal_remote(remote: &Remote, id: crate::ExecutionId, a: &Args, payload: Value) -> CliResult {
    let client = &remote.client;
    let moved = client.signal(id, &a.key, &payload).await?;
    let awaited = match moved.awaited {
        Some(waits) => waits,
        // A server that does not say: what the execution waits for now.
        None => client.execution(id).await?.waiting,
    };
    let awaited: Vec<Awaited> = awaited
        .into_iter()
        .filter(|w| w.kind == "event")
        .filter_map(|w| Some(Awaited { id: w.id.unwrap_or(id), node: w.node, key: w.event? }))
        .collect();
    say_delivered(id, &a.key, &awaited, &remote.inv, a.json);
    remote::carry_on(remote, id, a.json).await
}

/// An event a wait of the execution or of one of its children waited for
/// when the signal came.
struct Awaited {
    id: crate::ExecutionId,
    node: String,
    key: String,
}

/// Say on stderr what became of the event: delivered to a wait of
/// execution `id`, or kept because nothing there waits for `key`, and
/// then what the execution and its children wait for (a signal goes to
/// the execution named, never to its children: one of theirs is named
/// with the command that reaches it). The exit code is 0 either way: a
/// kept event is consumed when the execution reaches a wait for its key.
fn say_delivered(id: crate::ExecutionId, key: &str, awaited: &[Awaited], inv: &Invocation, json: bool) {
    if awaited.iter().any(|w| w.id == id && w.key == key) {
        if !json {
            eprintln!("event `{key}` delivered to execution {id}");
        }
        return;
    }
    eprintln!("{}", kept_note(id, key, awaited, inv));
}

/// What `signal` says of an event nothing in execution `id` waits for.
fn kept_note(id: crate::ExecutionId, key: &str, awaited: &[Awaited], inv: &Invocation) -> String {
    let mut out = format!(
        "event `{key}` delivered to execution {id}; nothing waits for it yet, so it is kept until a wait for that key is reached"
    );
    if awaited.is_empty() {
        out.push_str(&format!("\n  execution {id} waits for no event now (nor do its children)"));
    }
    for w in awaited {
        if w.id == id {
            out.push_str(&format!("\n  execution {id} waits for `{}` (node `{}`)", w.key, w.node));
        } else {
            out.push_str(&format!("\n  its child execution {} waits for `{}` (node `{}`)", w.id, w.key, w.node));
            if w.key == key {
                out.push_str(&format!(": to deliver it there, {}", inv.signal_command(w.id, key)));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_event_names_what_waits_and_where_its_key_is_awaited() {
        let (id, child) = (crate::ExecutionId::new(1), crate::ExecutionId::new(2));
        let inv = Invocation::new(Path::new(".jamjet"));
        let none = kept_note(id, "go", &[], &inv);
        assert!(none.contains("nothing waits for it yet") && none.contains("waits for no event now"), "{none}");
        let awaited = [
            Awaited { id, node: "pay".into(), key: "payment:42".into() },
            Awaited { id: child, node: "ask".into(), key: "go".into() },
        ];
        let some = kept_note(id, "go", &awaited, &inv);
        assert!(some.contains(&format!("execution {id} waits for `payment:42` (node `pay`)")), "{some}");
        assert!(
            some.contains(&format!(
                "its child execution {child} waits for `go` (node `ask`): to deliver it there, jamjet signal {child} go"
            )),
            "{some}"
        );
    }
}
