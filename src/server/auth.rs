//! API keys: who may call the API.
//!
//! Keys come from `JAMJET_API_KEYS` (comma-separated keys) or
//! `--api-keys-file` (one SHA-256 hex digest of a key per line, `#`
//! comments: the keys themselves are never stored). Either way only their
//! SHA-256 digests are kept in memory. A request's `Authorization: Bearer
//! <key>` is hashed and compared with every digest in constant time
//! (`subtle`), without stopping at the first match.
//!
//! Missing or wrong key: 401 `unauthorized` with `WWW-Authenticate:
//! Bearer`; the handler never runs, so nothing changes. [`check`] is the
//! middleware; `/health` and the agent cards are routed outside it.

use std::path::Path;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::ApiError;

/// The digests of the accepted keys.
#[derive(Debug, Clone, Default)]
pub struct Keys {
    digests: Vec<[u8; 32]>,
}

/// Why keys could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read the API keys file {path}: {message}")]
    Read { path: String, message: String },
    #[error("{path}:{line}: not a SHA-256 hex digest (64 hex characters): `{text}`")]
    BadLine { path: String, line: usize, text: String },
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
    pub fn is_empty(&self) -> bool {
        self.digests.is_empty()
    }

    pub fn len(&self) -> usize {
        self.digests.len()
    }

    /// Keys given in clear, comma-separated (`JAMJET_API_KEYS`).
    pub fn from_list(list: &str) -> Result<Keys, KeyError> {
        let mut digests = Vec::new();
        if list.trim().is_empty() {
            return Ok(Keys { digests });
        }
        for (i, key) in list.split(',').enumerate() {
            let key = key.trim();
            if key.is_empty() {
                return Err(KeyError::EmptyKey { position: i + 1 });
            }
            digests.push(digest(key));
        }
        Ok(Keys { digests })
    }

    /// A keys file: one SHA-256 hex digest per line, `#` comments, blank lines.
    pub fn from_file(path: &Path) -> Result<Keys, KeyError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| KeyError::Read { path: shown.clone(), message: e.to_string() })?;
        let mut digests = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let body = line.split('#').next().unwrap_or("").trim();
            if body.is_empty() {
                continue;
            }
            let bad = || KeyError::BadLine { path: shown.clone(), line: i + 1, text: body.to_string() };
            if body.len() != 64 {
                return Err(bad());
            }
            let mut d = [0u8; 32];
            for (j, byte) in d.iter_mut().enumerate() {
                *byte = u8::from_str_radix(&body[2 * j..2 * j + 2], 16).map_err(|_| bad())?;
            }
            digests.push(d);
        }
        Ok(Keys { digests })
    }

    /// Both sources together.
    pub fn merge(mut self, other: Keys) -> Keys {
        self.digests.extend(other.digests);
        self
    }

    /// Whether `key` is one of them: every digest compared in constant time.
    pub fn accepts(&self, key: &str) -> bool {
        let d = digest(key);
        let mut ok = subtle::Choice::from(0);
        for known in &self.digests {
            ok |= known.ct_eq(&d);
        }
        ok.into()
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

/// Middleware: pass a request only with an accepted bearer key (every
/// request passes when no keys are configured, i.e. bound to loopback).
pub async fn check(State(keys): State<Arc<Keys>>, req: Request, next: Next) -> Response {
    if keys.is_empty() {
        return next.run(req).await;
    }
    let presented = req.headers().get(header::AUTHORIZATION).map(|v| v.to_str().unwrap_or(""));
    let key = match presented {
        None => return unauthorized("this server needs an API key: send `Authorization: Bearer <key>`"),
        Some(v) => match v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")) {
            Some(k) => k.trim(),
            None => return unauthorized("the Authorization header must be `Bearer <key>`"),
        },
    };
    if !keys.accepts(key) {
        return unauthorized("the API key is not accepted");
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
}
