//! HTTPS: the server's TCP listener wrapped in TLS (tokio-rustls), as an
//! [`axum::serve::Listener`], so `axum::serve` runs the connections as it
//! does over plain TCP (graceful shutdown, SSE, everything).
//!
//! Handshakes run in their own tasks (bounded by [`HANDSHAKE_TIMEOUT`]), so
//! a slow or silent client holds up no one; finished ones are handed to
//! axum through a channel. A connection whose first byte is not a TLS
//! record (someone typed `http://`) gets a plain `400` saying to use
//! `https://` instead of a closed socket. With `--client-ca` rustls refuses
//! a client without a certificate that CA signed before any HTTP is read;
//! the names of a verified certificate ride with the connection as
//! `ConnectInfo<`[`Peer`]`>`, for [`super::auth`]. A refused handshake
//! closes gently ([`linger`]) so the client reads why.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::connect_info::Connected;
use axum::serve::IncomingStream;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use crate::tls::{CertNames, Peer};

/// How long a client may take from connecting to a finished handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The first byte of a TLS handshake record.
const TLS_HANDSHAKE: u8 = 0x16;

/// TLS connections, handshake done, for `axum::serve`.
pub struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
    accepting: tokio::task::JoinHandle<()>,
}

impl TlsListener {
    /// Accept on `tcp` and shake hands with `config`.
    pub fn new(tcp: TcpListener, config: Arc<rustls::ServerConfig>) -> std::io::Result<TlsListener> {
        let local = tcp.local_addr()?;
        let (tx, ready) = mpsc::channel(64);
        let acceptor = TlsAcceptor::from(config);
        let accepting = tokio::spawn(accept_loop(tcp, acceptor, tx, local));
        Ok(TlsListener { ready, local, accepting })
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

async fn accept_loop(
    tcp: TcpListener,
    acceptor: TlsAcceptor,
    tx: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
) {
    loop {
        let (stream, remote) = match tcp.accept().await {
            Ok(pair) => pair,
            Err(e) => {
                // As axum does for plain TCP: too many open files and the like pass.
                tracing::debug!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // No Nagle, as over plain TCP (see `serve`).
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
        let acceptor = acceptor.clone();
        let tx = tx.clone();
        tokio::spawn(async move {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake(acceptor, stream, local)).await {
                Ok(Ok(Some(tls))) => {
                    let _ = tx.send((tls, remote)).await;
                }
                Ok(Ok(None)) => {}
                Ok(Err(e)) => tracing::debug!(%remote, error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!(%remote, "TLS handshake timed out"),
            }
        });
    }
}

/// The handshake, or a plain-HTTP answer to a plain-HTTP client (`None`).
async fn handshake(
    acceptor: TlsAcceptor,
    mut stream: TcpStream,
    local: SocketAddr,
) -> std::io::Result<Option<TlsStream<TcpStream>>> {
    let mut first = [0u8; 1];
    if stream.peek(&mut first).await? == 0 {
        return Ok(None);
    }
    if first[0] != TLS_HANDSHAKE {
        let body = format!(
            "{{\"error\":{{\"code\":\"https_required\",\"message\":\"this server speaks HTTPS only: use https://{local}\",\"details\":null}}}}"
        );
        let answer = format!(
            "HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(answer.as_bytes()).await?;
        let _ = stream.shutdown().await;
        return Ok(None);
    }
    match acceptor.accept(stream).into_fallible().await {
        Ok(tls) => Ok(Some(tls)),
        Err((e, mut tcp)) => {
            linger(&mut tcp).await;
            Err(e)
        }
    }
}

/// How long a refused client's last bytes are read and dropped.
const LINGER: Duration = Duration::from_secs(1);

/// Close after a refused handshake so the client reads rustls' alert
/// (`CertificateRequired`, `UnknownCA`): closing with the client's first
/// request still unread would send a reset, which can overtake the alert
/// and leave the client with "connection was not ready". So: stop
/// writing, then drain what it sends until it closes (bounded).
async fn linger(tcp: &mut TcpStream) {
    use tokio::io::AsyncReadExt;
    let _ = tcp.shutdown().await;
    let mut sink = [0u8; 4096];
    let drain = async {
        let mut left = 64 * 1024usize;
        while left > 0 {
            match tcp.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => left = left.saturating_sub(n),
            }
        }
    };
    let _ = tokio::time::timeout(LINGER, drain).await;
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(conn) => conn,
            // The accept loop only ends when this listener is dropped.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.local)
    }
}

impl Connected<IncomingStream<'_, TlsListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, TlsListener>) -> Peer {
        let (_, conn) = stream.io().get_ref();
        let cert = conn.peer_certificates().and_then(|chain| chain.first()).map(|leaf| {
            // rustls verified it, so it parses; an empty name set maps to nothing.
            Arc::new(CertNames::of(leaf).unwrap_or_default())
        });
        Peer { cert }
    }
}
