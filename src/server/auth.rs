//! API keys and client certificates: who may call the API, and what they may do.
//!
//! Keys come from `JAMJET_API_KEYS` (comma-separated keys) or
//! `--api-keys-file` (one SHA-256 hex digest of a key per line, `#`
//! comments: the keys themselves are never stored). Either way only their
//! SHA-256 digests are kept in memory. A request's `Authorization: Bearer
//! <key>` is hashed and compared with every digest in constant time
//! (`subtle`), without stopping at the first match.
//!
//! Each key, and each client certificate, has an [`Access`]: `all` (the
//! default) or `read` (GET and HEAD only: list, inspect, follow events,
//! metrics). The keys file says it after the digest, and names the client
//! certificates `jamjet dev --client-ca` admits the same way:
//!
//! ```text
//! 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08          # CI: everything
//! 60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752  read     # dashboard
//! cert:ops-laptop            all     # a client certificate with CN or SAN `ops-laptop`
//! cert:grafana.example.com   read
//! ```
//!
//! A request's bearer key, when it sends one, decides; otherwise its
//! client certificate's names do (the CN first, then DNS and URI SANs;
//! the first name with a line wins). Missing or wrong key: 401
//! `unauthorized` with `WWW-Authenticate: Bearer`; a verified certificate
//! no line names: 403 `forbidden` naming its subject; a `read` caller's
//! POST: 403 `forbidden`. The handler never runs, so nothing changes.
//! [`check`] is the middleware; `/health` and the agent cards are routed
//! outside it.

use std::path::Path;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::ApiError;
use crate::tls::{CertNames, Peer};

/// What a key or a client certificate may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// GET and HEAD: list, inspect, follow events, metrics.
    Read,
    /// Everything: also register workflows, start, signal, approve, cancel.
    All,
}

impl Access {
    fn parse(word: &str) -> Option<Access> {
        match word {
            "read" => Some(Access::Read),
            "all" => Some(Access::All),
            _ => None,
        }
    }

    fn allows(self, method: &Method) -> bool {
        self == Access::All || method == Method::GET || method == Method::HEAD
    }
}

/// The accepted keys (their digests) and client certificate names, each with its [`Access`].
#[derive(Debug, Clone, Default)]
pub struct Keys {
    digests: Vec<([u8; 32], Access)>,
    /// `cert:NAME` lines: a verified client certificate's CN or SAN, and what it may do.
    certs: Vec<(String, Access)>,
}

/// Why keys could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read the API keys file {path}: {message}")]
    Read { path: String, message: String },
    #[error("{path}:{line}: not a SHA-256 hex digest (64 hex characters): `{text}`")]
    BadLine { path: String, line: usize, text: String },
    #[error("{path}:{line}: `{text}` is not an access: write `read` or `all` (the default) after the digest or name")]
    BadAccess { path: String, line: usize, text: String },
    #[error("{path}:{line}: `cert:` needs a name: the CN or a DNS/URI SAN of a client certificate")]
    EmptyName { path: String, line: usize },
    #[error("JAMJET_API_KEYS holds an empty key (at position {position}); keys are comma-separated")]
    EmptyKey { position: usize },
    #[error("cannot draw randomness for a new key: {0}")]
    Random(String),
}

fn digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Keys {
    /// No key and no client certificate name: nobody is asked for anything.
    pub fn is_empty(&self) -> bool {
        self.digests.is_empty() && self.certs.is_empty()
    }

    /// How many keys (not certificate names).
    pub fn len(&self) -> usize {
        self.digests.len()
    }

    /// Whether any API key is configured (a bearer key can be accepted).
    pub fn has_keys(&self) -> bool {
        !self.digests.is_empty()
    }

    /// How many `cert:` names.
    pub fn cert_names(&self) -> usize {
        self.certs.len()
    }

    /// Keys given in clear, comma-separated (`JAMJET_API_KEYS`).
    pub fn from_list(list: &str) -> Result<Keys, KeyError> {
        let mut digests = Vec::new();
        if list.trim().is_empty() {
            return Ok(Keys { digests, certs: Vec::new() });
        }
        for (i, key) in list.split(',').enumerate() {
            let key = key.trim();
            if key.is_empty() {
                return Err(KeyError::EmptyKey { position: i + 1 });
            }
            digests.push((digest(key), Access::All));
        }
        Ok(Keys { digests, certs: Vec::new() })
    }

    /// A keys file: per line a SHA-256 hex digest or `cert:NAME`, then
    /// optionally `read` or `all`; `#` comments, blank lines.
    pub fn from_file(path: &Path) -> Result<Keys, KeyError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| KeyError::Read { path: shown.clone(), message: e.to_string() })?;
        let mut keys = Keys::default();
        for (i, line) in text.lines().enumerate() {
            let body = line.split('#').next().unwrap_or("").trim();
            if body.is_empty() {
                continue;
            }
            let mut words = body.split_whitespace();
            let who = words.next().unwrap_or("");
            let access = match (words.next(), words.next()) {
                (None, _) => Access::All,
                (Some(word), None) => Access::parse(word).ok_or_else(|| KeyError::BadAccess {
                    path: shown.clone(),
                    line: i + 1,
                    text: word.to_string(),
                })?,
                (Some(_), Some(_)) => {
                    return Err(KeyError::BadAccess { path: shown.clone(), line: i + 1, text: body.to_string() });
                }
            };
            if let Some(name) = who.strip_prefix("cert:") {
                if name.is_empty() {
                    return Err(KeyError::EmptyName { path: shown.clone(), line: i + 1 });
                }
                keys.certs.push((name.to_string(), access));
                continue;
            }
            let bad = || KeyError::BadLine { path: shown.clone(), line: i + 1, text: who.to_string() };
            if who.len() != 64 || !who.is_ascii() {
                return Err(bad());
            }
            let mut d = [0u8; 32];
            for (j, byte) in d.iter_mut().enumerate() {
                *byte = u8::from_str_radix(&who[2 * j..2 * j + 2], 16).map_err(|_| bad())?;
            }
            keys.digests.push((d, access));
        }
        Ok(keys)
    }

    /// Both sources together.
    pub fn merge(mut self, other: Keys) -> Keys {
        self.digests.extend(other.digests);
        self.certs.extend(other.certs);
        self
    }

    /// Whether `key` is one of them: every digest compared in constant time.
    pub fn accepts(&self, key: &str) -> bool {
        self.access(key).is_some()
    }

    /// What `key` may do, `None` if it is not accepted. Every digest is
    /// compared in constant time, without stopping at the first match; of
    /// a key listed twice, the wider access counts.
    pub fn access(&self, key: &str) -> Option<Access> {
        let d = digest(key);
        let mut any = subtle::Choice::from(0);
        let mut all = subtle::Choice::from(0);
        for (known, access) in &self.digests {
            let hit = known.ct_eq(&d);
            any |= hit;
            all |= hit & subtle::Choice::from(u8::from(*access == Access::All));
        }
        match (bool::from(any), bool::from(all)) {
            (false, _) => None,
            (true, true) => Some(Access::All),
            (true, false) => Some(Access::Read),
        }
    }

    /// What a verified client certificate may do: the line of its first
    /// name that has one (CN, then SANs), `None` if no line names it.
    pub fn cert_access(&self, names: &CertNames) -> Option<(String, Access)> {
        names.all().find_map(|name| self.certs.iter().find(|(n, _)| n == name).map(|(n, access)| (n.clone(), *access)))
    }
}

/// A new random key (256 bits, from the OS) and the line for a keys file.
pub fn new_key() -> Result<(String, String), KeyError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| KeyError::Random(e.to_string()))?;
    let key = format!("jj_{}", hex(&bytes));
    let line = hex(&digest(&key));
    Ok((key, line))
}

fn unauthorized(message: &str) -> Response {
    let mut res = ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message).into_response();
    res.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    res
}

fn forbidden(message: String) -> Response {
    ApiError::new(StatusCode::FORBIDDEN, "forbidden", message).into_response()
}

/// Middleware: pass a request only from a caller allowed to make it (see
/// the module's header for the rules); with no keys and no client
/// certificate every request passes (bound to loopback).
pub async fn check(State(keys): State<Arc<Keys>>, req: Request, next: Next) -> Response {
    let cert = req.extensions().get::<ConnectInfo<Peer>>().and_then(|c| c.0.cert.clone());
    if keys.is_empty() && cert.is_none() {
        return next.run(req).await;
    }
    let presented = req.headers().get(header::AUTHORIZATION).map(|v| v.to_str().unwrap_or(""));
    let (who, access) = match (presented, &cert) {
        (Some(v), _) => {
            let Some(key) = v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")) else {
                return unauthorized("the Authorization header must be `Bearer <key>`");
            };
            match keys.access(key.trim()) {
                Some(access) => ("the API key".to_string(), access),
                None => return unauthorized("the API key is not accepted"),
            }
        }
        (None, Some(names)) => match keys.cert_access(names) {
            Some((name, access)) => (format!("the client certificate `{name}`"), access),
            None => {
                let also = if keys.has_keys() { " or send an API key (`Authorization: Bearer <key>`)" } else { "" };
                return forbidden(format!(
                    "the client certificate {} is not allowed here: add a line `cert:NAME read` or \
                     `cert:NAME all` for one of its names to --api-keys-file{also}",
                    names.describe()
                ));
            }
        },
        (None, None) => return unauthorized("this server needs an API key: send `Authorization: Bearer <key>`"),
    };
    if !access.allows(req.method()) {
        return forbidden(format!(
            "{who} may only read (GET): {} {} needs `all` access in --api-keys-file",
            req.method(),
            req.uri().path()
        ));
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listed_key_passes_and_others_do_not() {
        let keys = Keys::from_list("alpha, beta").unwrap();
        assert!(keys.accepts("alpha") && keys.accepts("beta"));
        assert!(!keys.accepts("gamma") && !keys.accepts("") && !keys.accepts("alph"));
        assert!(matches!(Keys::from_list("a,,b"), Err(KeyError::EmptyKey { position: 2 })));
    }

    #[test]
    fn a_keys_file_holds_digests_and_a_new_key_matches_its_line() {
        let (key, line) = new_key().unwrap();
        assert!(key.starts_with("jj_") && key.len() == 67 && line.len() == 64);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys");
        std::fs::write(&path, format!("# ops team\n\n{line}  # laptop\n")).unwrap();
        let keys = Keys::from_file(&path).unwrap();
        assert_eq!(keys.len(), 1);
        assert!(keys.accepts(&key) && !keys.accepts(&line));
        std::fs::write(&path, "# ok\nnot-a-digest\n").unwrap();
        let err = Keys::from_file(&path).unwrap_err().to_string();
        assert!(err.contains(":2:") && err.contains("not-a-digest"), "{err}");
    }

    #[test]
    fn keys_and_certificate_names_carry_their_access() {
        let (full, full_line) = new_key().unwrap();
        let (reader, reader_line) = new_key().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys");
        let text = format!("{full_line}\n{reader_line} read # dashboard\ncert:ops all\ncert:grafana.example read\n");
        std::fs::write(&path, text).unwrap();
        let keys = Keys::from_file(&path).unwrap();
        assert_eq!((keys.len(), keys.cert_names()), (2, 2));
        assert_eq!(keys.access(&full), Some(Access::All));
        assert_eq!(keys.access(&reader), Some(Access::Read));
        assert_eq!(keys.access("jj_nope"), None);
        let names = |cn: &str, alt: &[&str]| CertNames {
            common_name: Some(cn.into()),
            alt_names: alt.iter().map(|s| s.to_string()).collect(),
        };
        assert_eq!(keys.cert_access(&names("ops", &[])), Some(("ops".into(), Access::All)));
        assert_eq!(keys.cert_access(&names("x", &["grafana.example"])), Some(("grafana.example".into(), Access::Read)));
        assert_eq!(keys.cert_access(&names("x", &["y"])), None);
        assert!(Access::Read.allows(&Method::GET) && !Access::Read.allows(&Method::POST));

        for (bad, says) in [("cert:ops admin\n", "`admin` is not an access"), ("cert: read\n", "needs a name")] {
            std::fs::write(&path, bad).unwrap();
            let err = Keys::from_file(&path).unwrap_err().to_string();
            assert!(err.contains(":1:") && err.contains(says), "{err}");
        }
    }
}
