//! The data dir of a command: opened here, or held by another process and
//! reached through that process's socket (`<data-dir>/jamjet.sock`).
//!
//! [`open`] asks the socket first when its file exists (one short request:
//! `GET /holder`), then opens the store. A process that opens it serves
//! the API on the socket for as long as it holds it ([`Local::close`]
//! lingers while another command is connected, then removes the file). A
//! command that finds the store locked asks the socket again, for a few
//! seconds: a holder may be between opening the store and binding its
//! socket, or between removing it and letting the lock go. Past that, the
//! lock error stays, saying what holds the data dir and what to do.
//!
//! A holder that only reads (`inspect`, `executions`: no timers run there)
//! serves reads; a command that writes waits for it to let go instead.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::Failure;
use super::remote::Remote;
use crate::client::Client;
use crate::journal;
use crate::runtime::{Error as RuntimeError, Runtime};
use crate::server::socket::{self, Holder, Linger, Served};
use crate::server::{AppState, Config};

/// How long a command waits for a data dir that is locked and whose
/// holder does not answer (or answers but only reads) before it gives up.
const HELD_WAIT: Duration = Duration::from_secs(5);
/// Between two tries.
const RETRY: Duration = Duration::from_millis(50);
/// How long the holder gets to answer `GET /holder`.
const ASK: Duration = Duration::from_secs(2);

/// How a command opens the store when nobody holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// To change it: nothing resumed, timers not started yet (the command's
    /// session starts them once it has listed what to resume).
    WithoutTimers,
    /// To read only: nothing resumes, no timer fires (`inspect`, `executions`).
    ReadOnly,
}

impl Mode {
    fn writes(self) -> bool {
        self != Mode::ReadOnly
    }
}

/// Where a command works.
pub(crate) enum Store {
    /// The store, opened here.
    Local(Local),
    /// The process holding it, through its socket.
    Held(Remote),
}

/// A store this process opened, and the socket it serves it on.
pub(crate) struct Local {
    pub rt: Runtime,
    served: Option<Served>,
}

impl Local {
    /// The runtime, and the socket it is served on (the caller closes both).
    pub(crate) fn into_parts(self) -> (Runtime, Option<Served>) {
        (self.rt, self.served)
    }

    /// Stop serving (after the commands connected through the socket
    /// ended), remove the socket, then close the store.
    pub(crate) async fn close(self) {
        if let Some(served) = self.served {
            served.close(Linger::WhilePeers).await;
        }
        self.rt.shutdown().await;
    }
}

/// The data dir for `command`: the holder's socket if one answers (and
/// takes writes when `mode` needs them), else the store opened here.
pub(crate) async fn open(data_dir: &Path, command: &str, mode: Mode) -> Result<Store, Failure> {
    // A shared store has no holder: every process opens it (its leases say
    // who runs which execution).
    if super::shared_store().is_some() {
        let rt = super::open_without_timers(data_dir, command).await?;
        return Ok(Store::Local(Local { rt, served: None }));
    }
    if mode == Mode::ReadOnly {
        // To read, never create: a data dir that is not there is an error naming the path.
        super::existing(data_dir)?;
    }
    let began = Instant::now();
    let mut read_only: Option<Holder> = None;
    loop {
        match ask(data_dir).await {
            Some((client, holder)) if holder.writes || !mode.writes() => {
                return Ok(Store::Held(Remote::held(client, data_dir)));
            }
            Some((_, holder)) => read_only = Some(holder),
            None => {}
        }
        // Read only or not, nothing resumes and no timer fires until the command starts them.
        let opened = super::open_data_dir(data_dir).await;
        match opened {
            Ok(rt) => {
                let served = serve(&rt, data_dir, command, mode.writes()).await;
                return Ok(Store::Local(Local { rt, served }));
            }
            Err(RuntimeError::Journal(journal::Error::Locked { .. })) if began.elapsed() < HELD_WAIT => {
                tokio::time::sleep(RETRY).await;
            }
            Err(RuntimeError::Journal(journal::Error::Locked { .. })) => {
                return Err(locked(data_dir, read_only.as_ref()));
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// The holder's client and what it says it is, if its socket answers.
async fn ask(data_dir: &Path) -> Option<(Client, Holder)> {
    let path = socket::path(data_dir);
    // No file: nobody serves it (no connection attempt, no error).
    std::fs::symlink_metadata(&path).ok()?;
    let client = Client::unix(&path).ok()?;
    match client.holder(ASK).await {
        Ok(holder) => Some((client, holder)),
        // A stale file (its process died) refuses the connection.
        Err(e) => {
            tracing::debug!(socket = %path.display(), error = %e, "the data dir's socket does not answer");
            None
        }
    }
}

/// Serve `rt` on the data dir's socket for as long as this command holds
/// it. Not served (with a warning) when the socket cannot be bound: the
/// command still runs, and other commands wait for it.
pub(crate) async fn serve(rt: &Runtime, data_dir: &Path, command: &str, writes: bool) -> Option<Served> {
    let mut config = Config::new(std::net::SocketAddr::from(([127, 0, 0, 1], 0))).for_socket();
    config.limits = super::limits();
    let state = AppState { rt: rt.clone(), config: Arc::new(config) };
    match socket::serve(state, data_dir, Holder::this(command, writes)).await {
        Ok(served) => Some(served),
        Err(e) => {
            tracing::warn!(
                socket = %socket::path(data_dir).display(),
                error = %e,
                "cannot serve the API on the data dir's socket: other commands on this data dir wait until this one ends"
            );
            None
        }
    }
}

/// The lock error, saying what holds the data dir and what to do.
fn locked(data_dir: &Path, read_only: Option<&Holder>) -> Failure {
    let shown = data_dir.display();
    if let Some(h) = read_only {
        return Failure::new(format!(
            "the data dir {shown} is held by `jamjet {}` (pid {}), which only reads it, and it did not let go within {} s; \
             run this command again once it ends",
            h.command,
            h.pid,
            HELD_WAIT.as_secs()
        ));
    }
    let who = holder_process(data_dir).map(|p| format!(" ({p})")).unwrap_or_default();
    Failure::new(format!(
        "the data dir {shown} is in use by another process{who}, and nothing answers on {}: a program that serves no \
         socket holds it (`jamjet repair`, an older jamjet, a program embedding the runtime). Wait for it to end or \
         stop it, go through a server it runs with --server URL, or use another --data-dir",
        socket::path(data_dir).display()
    ))
}

/// Which process holds the store's lock, from `/proc/locks` (Linux): its
/// pid and command line; `None` elsewhere or when it cannot be told.
fn holder_process(data_dir: &Path) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let ino = std::fs::metadata(data_dir.join("journal").join("db")).ok()?.ino();
    let locks = std::fs::read_to_string("/proc/locks").ok()?;
    let pid = locks.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().filter(|f| *f != "->").collect();
        // `1: FLOCK  ADVISORY  WRITE 12345 08:01:123456 0 EOF`
        let (pid, dev_ino) = (fields.get(4)?, fields.get(5)?);
        (dev_ino.rsplit(':').next()?.parse::<u64>().ok()? == ino).then(|| pid.to_string())
    })?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let words: Vec<String> =
        cmdline.split(|b| *b == 0).filter(|w| !w.is_empty()).map(|w| String::from_utf8_lossy(w).into_owned()).collect();
    Some(if words.is_empty() { format!("pid {pid}") } else { format!("pid {pid}: {}", words.join(" ")) })
}
