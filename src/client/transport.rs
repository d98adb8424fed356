//! The connection: a [`Client`] of a server over TCP ([`Client::new`],
//! with the API key of `JAMJET_API_KEY` or [`Client::with_key`] as
//! `Authorization: Bearer`; over HTTPS trusting `JAMJET_CA_CERT` and
//! presenting `JAMJET_CLIENT_CERT`/`JAMJET_CLIENT_KEY`, or the files of
//! [`Client::with_tls`]), or of the process holding a data dir over the
//! data dir's socket ([`Client::unix`]: the same API, no key). Here too is
//! the plumbing every request goes through: send, read the answer's bytes
//! or JSON, turn an error status into [`Error::Api`], and (through the
//! socket) make errors read as the runtime's own ([`Error::Held`]).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::Error;
use super::error::{api_error, unreachable};

/// How long to wait for a connection to a server.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A client of one server.
#[derive(Debug, Clone)]
pub struct Client {
    pub(super) base: String,
    pub(super) http: reqwest::Client,
    key: Option<String>,
    /// Whether it presents a client certificate when a server asks.
    presents: bool,
    /// Through a data dir's socket: its path (the URL's host is then irrelevant).
    socket: Option<PathBuf>,
}

impl Client {
    /// A client of the server at `base` (`http://127.0.0.1:7700`), with the
    /// API key of `JAMJET_API_KEY` and the TLS files of `JAMJET_CA_CERT`,
    /// `JAMJET_CLIENT_CERT` and `JAMJET_CLIENT_KEY` if set.
    pub fn new(base: &str) -> Result<Client, Error> {
        Client::with_tls(base, &crate::tls::ClientTls::from_env()?)
    }

    /// A client of the server at `base` that trusts `tls.ca_cert` (beside
    /// the system's roots) and presents `tls.client_cert` when the server
    /// asks (mTLS); the files are read and checked here. The API key of
    /// `JAMJET_API_KEY`, if set, goes with every request.
    pub fn with_tls(base: &str, tls: &crate::tls::ClientTls) -> Result<Client, Error> {
        let base = base.trim_end_matches('/').to_string();
        let parsed = reqwest::Url::parse(&base)
            .map_err(|e| Error::Unreachable { url: base.clone(), reason: format!("not a URL: {e}") })?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(Error::Unreachable { url: base, reason: "the URL must start with http:// or https://".into() });
        }
        let http = tls
            .apply(reqwest::Client::builder().connect_timeout(CONNECT_TIMEOUT))?
            .build()
            .map_err(|e| Error::Unreachable { url: base.clone(), reason: e.to_string() })?;
        let key = std::env::var("JAMJET_API_KEY").ok().filter(|k| !k.is_empty());
        Ok(Client { base, http, key, presents: tls.client_cert.is_some(), socket: None })
    }

    /// A client of the process holding a data dir, over the data dir's
    /// socket (`<data-dir>/jamjet.sock`). No key: the socket is its
    /// owner's only.
    pub fn unix(socket: &Path) -> Result<Client, Error> {
        let shown = socket.display().to_string();
        let http = reqwest::Client::builder()
            .unix_socket(socket)
            .connect_timeout(CONNECT_TIMEOUT)
            .build()
            .map_err(|e| Error::HolderGone { socket: shown, reason: e.to_string() })?;
        Ok(Client {
            base: "http://localhost".into(),
            http,
            key: None,
            presents: false,
            socket: Some(socket.to_path_buf()),
        })
    }

    /// The data dir's socket this client goes through, if it does.
    pub fn socket(&self) -> Option<&Path> {
        self.socket.as_deref()
    }

    /// Send `Authorization: Bearer <key>` with every request.
    pub fn with_key(mut self, key: Option<String>) -> Client {
        self.key = key;
        self
    }

    /// The server's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Errors through a data dir's socket read as the runtime's own.
    pub(super) fn held(&self, e: Error) -> Error {
        let Some(socket) = &self.socket else { return e };
        match e {
            Error::Api { method, url, status, code, message, details } => {
                let path = url.strip_prefix(&self.base).unwrap_or(&url).to_string();
                Error::Held { method, path, status, code, message, details }
            }
            Error::Unreachable { reason, .. } => Error::HolderGone { socket: socket.display().to_string(), reason },
            Error::Protocol { url, reason } => {
                let path = url.strip_prefix(&self.base).unwrap_or(&url);
                Error::Protocol { url: format!("{}:{path}", socket.display()), reason }
            }
            other => other,
        }
    }

    pub(super) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// `GET path`, its JSON answer read as `T`.
    pub(super) async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, Error> {
        let (_, v) = self.send("GET", path, self.http.get(self.url(path))).await?;
        self.decode(path, v)
    }

    /// `POST path` with `body` as JSON, its JSON answer read as `T`. The
    /// body goes through `serde_json::Value`, so its keys are sorted, as
    /// they always were.
    pub(super) async fn post<B: Serialize, T: DeserializeOwned>(&self, path: &str, body: &B) -> Result<T, Error> {
        let body = serde_json::to_value(body).map_err(|e| Error::Protocol {
            url: self.url(path),
            reason: format!("the request does not serialize: {e}"),
        })?;
        let req = self.http.post(self.url(path)).header("content-type", "application/json").body(body.to_string());
        let (_, v) = self.send("POST", path, req).await?;
        self.decode(path, v)
    }

    pub(super) fn decode<T: DeserializeOwned>(&self, path: &str, v: Value) -> Result<T, Error> {
        serde_json::from_value(v).map_err(|e| self.held(Error::Protocol { url: self.url(path), reason: e.to_string() }))
    }

    /// Send, and read a JSON answer; an error status becomes [`Error::Api`].
    pub(super) async fn send(
        &self,
        method: &str,
        path: &str,
        req: reqwest::RequestBuilder,
    ) -> Result<(u16, Value), Error> {
        let (status, bytes) = self.fetch(method, path, req).await?;
        let v = serde_json::from_slice(&bytes)
            .map_err(|e| self.held(Error::Protocol { url: self.url(path), reason: format!("not JSON: {e}") }))?;
        Ok((status, v))
    }

    /// Send, and read the answer's bytes; an error status becomes [`Error::Api`].
    pub(super) async fn fetch(
        &self,
        method: &str,
        path: &str,
        req: reqwest::RequestBuilder,
    ) -> Result<(u16, axum::body::Bytes), Error> {
        let url = self.url(path);
        let resp = match self.authorized(req).send().await {
            Ok(resp) => resp,
            Err(e) => return Err(self.held(self.unreachable(&e).await)),
        };
        let status = resp.status().as_u16();
        let bytes =
            resp.bytes().await.map_err(|e| self.held(Error::Protocol { url: url.clone(), reason: e.to_string() }))?;
        if (200..300).contains(&status) {
            return Ok((status, bytes));
        }
        Err(self.held(api_error(method, url, status, serde_json::from_slice(&bytes).ok(), &bytes)))
    }

    /// Nothing answered: [`unreachable`], saying so when the server wants
    /// a client certificate this client does not present.
    pub(super) async fn unreachable(&self, e: &reqwest::Error) -> Error {
        let mut error = unreachable(&self.base, e);
        if let Error::Unreachable { reason, .. } = &mut error
            && let Ok(url) = reqwest::Url::parse(&self.base)
            && let Some(hint) = crate::tls::certificate_hint(&url, reason, self.presents).await
        {
            reason.push_str(hint);
        }
        error
    }

    pub(super) fn authorized(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.key {
            Some(k) => req.bearer_auth(k),
            None => req,
        }
    }
}

/// A path segment or query value, percent-encoded.
pub(super) fn segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_percent_encoded() {
        assert_eq!(segment("a b/c"), "a%20b%2Fc");
        assert_eq!(segment("wf-1.0_x~"), "wf-1.0_x~");
    }
}
