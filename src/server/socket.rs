//! The API on a Unix socket inside the data dir (`<data-dir>/jamjet.sock`).
//! Every process that holds a data dir serves it (`jamjet dev` and every
//! CLI command that opens the store), so another `jamjet` command on the
//! same data dir goes through the holder instead of failing on the
//! store's lock.
//!
//! Who may connect: the socket file is made owner-only (0600) before the
//! first connection is accepted, and each connection's peer credentials
//! are checked: a process of another user is dropped unanswered. A peer
//! on it is the data dir's owner, who could open the store itself, so it
//! is trusted: no API key is asked, a posted workflow may declare commands
//! and read environment variables (the holder's), and the origin guard's
//! `Host` and `Origin` checks are off (no browser reaches a Unix socket:
//! browsers speak TCP). A `POST` must still carry its JSON or YAML type.
//!
//! A socket file found there is stale (its process died without removing
//! it, e.g. `kill -9`): only the process holding the store's lock binds
//! it, and the caller holds that lock. It is replaced.
//!
//! Besides the API, `GET /holder` answers [`Holder`]: which command holds
//! the data dir, its pid, and whether it takes writes. A holder that only
//! reads (`inspect`, `executions`: no timers run there) refuses every
//! request but `GET` with 503 `read_only_holder`.
//!
//! [`Served::close`] stops it and removes the file. A CLI holder lingers
//! first while a peer is connected (the command it serves is carried on by
//! this process's runtime); `jamjet dev` does not ([`Linger`]).

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::Request;
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::watch;

use super::{ApiError, AppState, sse};

/// The socket's file name inside the data dir.
pub const FILE: &str = "jamjet.sock";

/// After the last peer hangs up, how long a lingering holder waits for
/// another connection before it closes (a command opens a new one between
/// two steps).
const QUIET: Duration = Duration::from_millis(300);
/// How long in-flight requests get to finish once the socket closes.
const DRAIN: Duration = Duration::from_secs(10);
/// When a lingering holder says what it waits for.
const SAY_AFTER: Duration = Duration::from_secs(1);

/// The socket of `data_dir`.
pub fn path(data_dir: &Path) -> PathBuf {
    data_dir.join(FILE)
}

/// What `GET /holder` answers: the process holding the data dir.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    pub pid: u32,
    /// The command it runs (`dev`, `run`, `inspect`, …).
    pub command: String,
    /// Whether it takes writes (it runs timers and carries executions on).
    pub writes: bool,
}

impl Holder {
    /// This process, running `command`.
    pub fn this(command: &str, writes: bool) -> Holder {
        Holder { pid: std::process::id(), command: command.to_string(), writes }
    }
}

/// Whether [`Served::close`] waits for connected peers first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Linger {
    /// Serve until no peer has been connected for a moment (a CLI command:
    /// its runtime carries on what the peers asked for).
    WhilePeers,
    /// Close at once, ending event streams (`jamjet dev` stopping).
    No,
}

/// The socket, served until [`Served::close`].
pub struct Served {
    path: PathBuf,
    /// The file's inode, to remove only our own.
    ino: u64,
    stop: watch::Sender<bool>,
    open: watch::Receiver<usize>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// Bind `<data_dir>/jamjet.sock` (replacing a stale one) and serve `state`'s
/// API on it. The caller holds the store's lock and `state.config` is
/// [`super::Config::for_socket`]'s.
pub async fn serve(state: AppState, data_dir: &Path, holder: Holder) -> std::io::Result<Served> {
    let path = path(data_dir);
    let (listener, ino) = bind(&path)?;
    let (count, open) = watch::channel(0usize);
    let (stop, stopped) = watch::channel(false);
    let (closing, closed) = watch::channel(false);
    let writes = holder.writes;
    let mut app = super::router(state).layer(Extension(sse::Closing(closed)));
    if !writes {
        let h = Arc::new(holder.clone());
        app = app.layer(axum::middleware::from_fn(move |req: Request, next: Next| {
            let h = h.clone();
            async move { reads_only(&h, req, next).await }
        }));
    }
    let app = Router::new().route("/holder", get(move || async move { Json(holder) })).merge(app);
    // SAFETY: geteuid has no preconditions and cannot fail.
    let uid = unsafe { libc::geteuid() };
    let listener = Peers { inner: listener, uid, count: Arc::new(count) };
    let mut stopped_rx = stopped;
    let shutdown = async move {
        let _ = stopped_rx.wait_for(|s| *s).await;
        let _ = closing.send(true);
    };
    let task = tokio::spawn(async move { axum::serve(listener, app).with_graceful_shutdown(shutdown).await });
    Ok(Served { path, ino, stop, open, task })
}

impl Served {
    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Stop serving and remove the socket file (if it is still ours).
    /// With [`Linger::WhilePeers`], first wait until no peer has been
    /// connected for a moment, saying so on stderr if that takes a while.
    pub async fn close(mut self, linger: Linger) {
        if linger == Linger::WhilePeers {
            self.wait_quiet().await;
        }
        let _ = self.stop.send(true);
        let _ = tokio::time::timeout(DRAIN, &mut self.task).await;
        self.task.abort();
        if std::fs::symlink_metadata(&self.path).is_ok_and(|m| m.ino() == self.ino) {
            let _ = std::fs::remove_file(&self.path);
        }
    }

    async fn wait_quiet(&mut self) {
        let say_at = tokio::time::Instant::now() + SAY_AFTER;
        let mut said = false;
        loop {
            let open = *self.open.borrow_and_update();
            let wait = match (open, said) {
                (0, _) => QUIET,
                (_, false) => say_at.saturating_duration_since(tokio::time::Instant::now()),
                (_, true) => Duration::from_secs(3600),
            };
            match tokio::time::timeout(wait, self.open.changed()).await {
                Ok(Ok(())) => {}
                // The server task ended: nobody is connected any more.
                Ok(Err(_)) => return,
                Err(_) if open == 0 => return,
                Err(_) => {
                    said = true;
                    eprintln!(
                        "jamjet: another command is using this data dir through {}; waiting for it to finish",
                        self.path.display()
                    );
                }
            }
        }
    }
}

/// Bind `path` owner-only, replacing a stale socket; the listener and the
/// file's inode.
fn bind(path: &Path) -> std::io::Result<(UnixListener, u64)> {
    use std::os::unix::fs::FileTypeExt;
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => std::fs::remove_file(path)?,
        Ok(_) => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                format!("{} exists and is not a socket: move it away", path.display()),
            ));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let std_listener = std::os::unix::net::UnixListener::bind(path)?;
    // Before any connection is accepted; the peer check covers the moment between.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    let ino = std::fs::symlink_metadata(path)?.ino();
    std_listener.set_nonblocking(true)?;
    Ok((UnixListener::from_std(std_listener)?, ino))
}

/// 503 for anything but a read, from a holder that only reads.
async fn reads_only(holder: &Holder, req: Request, next: Next) -> Response {
    if matches!(*req.method(), Method::GET | Method::HEAD) {
        return next.run(req).await;
    }
    let message = format!(
        "this data dir is held by `jamjet {}` (pid {}), which only reads it; try again once it ends",
        holder.command, holder.pid
    );
    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "read_only_holder", message).into_response()
}

/// The listener: only peers of this user, each connection counted while open.
struct Peers {
    inner: UnixListener,
    uid: u32,
    count: Arc<watch::Sender<usize>>,
}

impl axum::serve::Listener for Peers {
    type Io = Counted;
    type Addr = tokio::net::unix::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.inner.accept().await {
                Ok((stream, addr)) => match stream.peer_cred() {
                    Ok(cred) if cred.uid() == self.uid => {
                        self.count.send_modify(|n| *n += 1);
                        return (Counted { stream, count: self.count.clone() }, addr);
                    }
                    Ok(cred) => tracing::warn!(uid = cred.uid(), "refused a connection of another user on the socket"),
                    Err(e) => tracing::debug!(error = %e, "cannot read a socket peer's credentials"),
                },
                // Out of file descriptors and the like: wait, as axum does.
                Err(e) => {
                    tracing::debug!(error = %e, "accept on the socket failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// A connection, counted until dropped.
struct Counted {
    stream: UnixStream,
    count: Arc<watch::Sender<usize>>,
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.count.send_modify(|n| *n = n.saturating_sub(1));
    }
}

impl AsyncRead for Counted {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}
