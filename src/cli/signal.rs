//! `jamjet signal <exec-id> <key> [--payload '<json>']`: deliver an
//! external event to an execution's `wait` nodes, then carry the execution
//! on until it ends or parks again, and print where it stands.
//!
//! `jamjet signal --event <key> [--payload '<json>'] [--keep 24h]`: publish
//! the event by key ([`crate::Runtime::publish`]): every execution waiting
//! for it receives it (hibernated ones are woken), or, when none does, it
//! is kept for `--keep` and the first execution that reaches a wait for the
//! key receives it. Says who received it, or until when it is kept.
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
    /// The execution id (exec_...); not with --event.
    pub id: Option<String>,
    /// The event's correlation key, as the wait node rendered it (e.g. payment:42).
    pub key: Option<String>,
    /// Publish by key instead: deliver to every execution waiting for this
    /// key (e.g. payment:42), or keep the event until one does.
    #[arg(long, value_name = "KEY", conflicts_with_all = ["id", "key"])]
    pub event: Option<String>,
    /// With --event: how long to keep the event when no execution waits for
    /// it yet (90s, 30m, 24h, 7d; at most 30d; 0 keeps nothing).
    #[arg(long, value_name = "DURATION", requires = "event", default_value = "24h")]
    pub keep: String,
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
    if let Some(key) = &a.event {
        return publish(data_dir, key, &a).await;
    }
    let (Some(id), Some(key)) = (&a.id, &a.key) else {
        return Err(Failure::new(
            "jamjet signal needs an execution id and an event key (jamjet signal <exec-id> <key>), or --event <key> to deliver to every execution waiting for that key",
        ));
    };
    let (id, key) = (parse_id(id)?, key.clone());
    let payload: Value = serde_json::from_str(&a.payload).map_err(|e| {
        Failure::new(format!("--payload is not valid JSON ({e}); nothing was delivered to execution {id}"))
    })?;
    if let Some(url) = &a.server.server {
        return signal_remote(&Remote::server(url, &a.server)?, id, &key, payload, a.json).await;
    }
    super::existing(data_dir)?;
    let mut s = match Session::open(data_dir, "signal").await? {
        Opened::Held(remote) => return signal_remote(&remote, id, &key, payload, a.json).await,
        Opened::Local(s) => s,
    };
    s.own(id);
    let result = match deliver(&s.rt, &s.inv, id, &key, payload, a.json).await {
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
    key: &str,
    payload: Value,
    json: bool,
) -> Result<(), Failure> {
    // Asked before delivering: once delivered, the wait it ends is gone.
    let awaited: Vec<Awaited> = waits_under(rt, id)?
        .into_iter()
        .filter(|w| w.kind == WaitKind::Event)
        .filter_map(|w| Some(Awaited { id: w.id, node: w.node, key: w.event? }))
        .collect();
    rt.signal(id, key, payload).await?;
    say_delivered(id, key, &awaited, inv, json);
    Ok(())
}

/// `signal` through a server (or the data dir's holder): deliver, then
/// follow it until it settles.
async fn signal_remote(remote: &Remote, id: crate::ExecutionId, key: &str, payload: Value, json: bool) -> CliResult {
    let client = &remote.client;
    let moved = client.signal(id, key, &payload).await?;
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
    say_delivered(id, key, &awaited, &remote.inv, json);
    remote::carry_on(remote, id, json).await
}

/// `signal --event KEY`: publish by key, here or through the holder (or
/// `--server`); here, each execution that received it is carried on until
/// it ends or parks again.
async fn publish(data_dir: &Path, key: &str, a: &Args) -> CliResult {
    let bad = |what: String| Failure::new(format!("{what}; nothing was delivered or kept"));
    crate::journal::check_event_key(key).map_err(|e| bad(format!("--event: {e}")))?;
    let keep = crate::actors::parse_keep(&a.keep).map_err(|e| bad(format!("--keep: {e}")))?;
    let payload: Value =
        serde_json::from_str(&a.payload).map_err(|e| bad(format!("--payload is not valid JSON ({e})")))?;
    if let Some(url) = &a.server.server {
        return publish_remote(&Remote::server(url, &a.server)?, key, a, payload).await;
    }
    super::existing(data_dir)?;
    let s = match Session::open(data_dir, "signal").await? {
        Opened::Held(remote) => return publish_remote(&remote, key, a, payload).await,
        Opened::Local(s) => s,
    };
    let result = async {
        let published = s.rt.publish(key, payload, Some(keep)).await?;
        for &id in &published.delivered {
            s.rt.settle(id).await?;
        }
        say_published(key, &published.delivered, published.kept_until_ms, a.json);
        Ok(std::process::ExitCode::SUCCESS)
    };
    let result = match s.until_interrupted(result).await {
        Some(r) => r,
        None => {
            let goes_on = s.inv.command("resume");
            return s.interrupted(&[], &goes_on).await;
        }
    };
    s.finish(result).await
}

async fn publish_remote(remote: &Remote, key: &str, a: &Args, payload: Value) -> CliResult {
    let published = remote.client.publish(key, &payload, Some(&a.keep)).await?;
    say_published(key, &published.delivered, published.kept_until_ms, a.json);
    Ok(std::process::ExitCode::SUCCESS)
}

/// Say who received a published event, or until when it is kept: on
/// stdout as JSON with `--json`, else on stderr with the ids on stdout.
fn say_published(key: &str, delivered: &[crate::ExecutionId], kept_until_ms: Option<u64>, json: bool) {
    if json {
        let out = serde_json::json!({
            "key": key, "delivered": delivered, "kept": kept_until_ms.is_some(), "kept_until_ms": kept_until_ms,
        });
        println!("{out}");
        return;
    }
    match kept_until_ms {
        Some(until) => eprintln!(
            "no execution waits for event `{key}`: it is kept until {} for the first execution that reaches a wait for it",
            crate::clock::format_ms(until)
        ),
        None if delivered.is_empty() => {
            eprintln!("no execution waits for event `{key}`, and --keep 0 keeps nothing: it was dropped")
        }
        None => {
            let n = crate::plural::count(delivered.len(), "execution", "executions");
            eprintln!("event `{key}` delivered to {n}");
            for id in delivered {
                println!("{id}");
            }
        }
    }
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
