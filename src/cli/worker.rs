//! `jamjet worker --store postgres://...`: run executions from a shared
//! store and nothing else, until stopped.
//!
//! A worker claims the executions no live process owns whose workflows it
//! can run (the CLI's functions cover every YAML workflow but those that
//! call a Python or Rust host's functions), carries each on from its
//! history, renews its leases, and hands an execution back when it parks.
//! Any number of workers (and `jamjet dev` processes, and embedding hosts)
//! share one store; each execution is run by one of them at a time.
//!
//! SIGTERM or Ctrl-C drains it: it stops claiming at once, lets what it
//! carries settle for up to `--drain-timeout`, then hands back what is
//! left (its leases end now, so another worker takes those over at once;
//! a node cut short runs again there as its next attempt). A second signal
//! stops it at once.

use std::process::ExitCode;
use std::time::Duration;

use tokio::signal::unix::{SignalKind, signal};

use super::{CliResult, Failure};
use crate::runtime::DEFAULT_CLAIM_CAPACITY;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// How many executions this worker carries at once before it stops claiming more.
    #[arg(long, default_value_t = DEFAULT_CLAIM_CAPACITY as u64, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub capacity: u64,
    /// How long a lease lasts unrenewed: another worker takes over this one's executions this long after it stops renewing (it renews every third of it).
    #[arg(long, default_value = "5s", value_name = "DURATION", value_parser = super::dev::parse_span)]
    pub lease_time: Duration,
    /// On SIGTERM, how long what it carries may take to settle before it is handed back (e.g. 30s, 2m).
    #[arg(long, default_value = "30s", value_name = "DURATION", value_parser = super::dev::parse_span)]
    pub drain_timeout: Duration,
    /// Print one JSON line per change of state (started, draining, stopped) instead of text.
    #[arg(long)]
    pub json: bool,
    /// Drain (as on SIGTERM) when stdin closes: a worker that another
    /// program starts and owns (`jamjet bench takeover`) does not outlive it.
    #[arg(long, hide = true)]
    pub stop_with_stdin: bool,
}

pub(crate) async fn run(a: Args) -> CliResult {
    let url = super::shared_store_for("`jamjet worker` runs executions from a store many processes share")?;
    // Listen first: a signal while opening is seen at the first await on it.
    let mut term =
        signal(SignalKind::terminate()).map_err(|e| Failure::new(format!("cannot listen for SIGTERM: {e}")))?;
    let mut int =
        signal(SignalKind::interrupt()).map_err(|e| Failure::new(format!("cannot listen for SIGINT: {e}")))?;
    if a.lease_time < Duration::from_millis(300) || a.lease_time > Duration::from_secs(3600) {
        return Err(Failure::usage(format!(
            "--lease-time {:?}: between 300ms and 1h (renewals come every third of it)",
            a.lease_time
        )));
    }
    let journal = super::open_shared_with(url, "worker", a.lease_time).await?;
    let rt = super::traced(super::bench::functions::registered(crate::runtime::Runtime::builder()))
        .journal(journal)
        .limits(super::limits())
        .claim_capacity(a.capacity as usize)
        .open()
        .await?;
    let id = rt.worker_id().unwrap_or_default();
    let place = crate::journal::redact_url(url);
    say(a.json, "started", &id, &format!("jamjet worker {id} on {place}: claiming up to {} executions", a.capacity));
    let gone = a.stop_with_stdin.then(|| {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        // A thread of its own: it blocks on the pipe until it closes.
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
            let _ = tx.send(());
        });
        rx
    });
    let owner_gone = async move {
        match gone {
            Some(rx) => {
                let _ = rx.await;
            }
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
        _ = owner_gone => {}
    }
    say(a.json, "draining", &id, "draining: no more claims; waiting for what it carries to settle");
    if let Err(e) = rt.drain().await {
        eprintln!("warning: could not mark this worker as draining in the store: {e}");
    }
    // Wait for what it carries to leave memory (each one's end or
    // hibernation is the supervisor's notice, not a poll), bounded.
    let deadline = tokio::time::Instant::now() + a.drain_timeout;
    let handed_back = loop {
        let live = rt.live().await.unwrap_or_default();
        if live.is_empty() {
            break 0;
        }
        let gone = futures::future::join_all(live.iter().map(|id| rt.unloaded(*id)));
        tokio::select! {
            _ = gone => {}
            _ = tokio::time::sleep_until(deadline) => break rt.live().await.map_or(live.len(), |l| l.len()),
            _ = term.recv() => break rt.live().await.map_or(live.len(), |l| l.len()),
            _ = int.recv() => break rt.live().await.map_or(live.len(), |l| l.len()),
        }
    };
    rt.shutdown().await;
    let text = match handed_back {
        0 => "stopped: everything it carried settled".to_string(),
        n => format!(
            "stopped: handed back {} (another worker carries them on)",
            crate::plural::count(n as u64, "execution", "executions")
        ),
    };
    say(a.json, "stopped", &id, &text);
    Ok(ExitCode::SUCCESS)
}

fn say(json: bool, state: &str, worker: &str, text: &str) {
    if json {
        println!("{}", serde_json::json!({ "state": state, "worker": worker }));
    } else {
        eprintln!("{text}");
    }
}
