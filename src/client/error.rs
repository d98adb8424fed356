//! What can go wrong talking to a server ([`Error`]), and how an answer
//! becomes one: an error status with the server's
//! `{"error": {"code", "message", "details"}}` ([`ErrorBody`]), or nothing
//! answering at all.

use serde_json::Value;

use crate::server::wire::ErrorBody;

/// What can go wrong talking to a server.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Nothing answered (refused, timed out, name not found).
    #[error("cannot reach jamjet server at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    /// The server answered with an error.
    #[error("{message} ({code}; HTTP {status} from {method} {url})")]
    Api { method: String, url: String, status: u16, code: String, message: String, details: Value },
    /// The server answered something this client cannot read.
    #[error("unexpected reply from {url}: {reason}")]
    Protocol { url: String, reason: String },
    /// The process holding the data dir answered with an error over its
    /// socket: its message is the runtime's own.
    #[error("{message}")]
    Held { method: String, path: String, status: u16, code: String, message: String, details: Value },
    /// The process holding the data dir does not answer on its socket
    /// (it exited, or was killed, midway).
    #[error("the jamjet process holding the data dir stopped answering on {socket}: {reason}")]
    HolderGone { socket: String, reason: String },
    /// A TLS file (`--ca-cert`, `--client-cert`, `--client-key` or their
    /// `JAMJET_*` variables) cannot be used; nothing was sent.
    #[error(transparent)]
    Tls(#[from] crate::tls::Error),
}

impl Error {
    /// The server's error code (`unknown_execution`, `workflow_conflict`, …).
    pub fn code(&self) -> Option<&str> {
        match self {
            Error::Api { code, .. } | Error::Held { code, .. } => Some(code),
            _ => None,
        }
    }
}

/// An error answer: the server's `{"error": {...}}`, or what it sent.
pub(super) fn api_error(method: &str, url: String, status: u16, body: Option<Value>, raw: &[u8]) -> Error {
    let e = body.and_then(|v| serde_json::from_value::<ErrorBody>(v).ok()).map(|b| b.error);
    let fallback = String::from_utf8_lossy(&raw[..raw.len().min(300)]).trim().to_string();
    let (code, message, details) = match e {
        Some(e) => (Some(e.code), Some(e.message), e.details),
        None => (None, None, Value::Null),
    };
    Error::Api {
        method: method.into(),
        url,
        status,
        code: code.filter(|c| !c.is_empty()).unwrap_or_else(|| format!("http_{status}")),
        message: message
            .filter(|m| !m.is_empty())
            .unwrap_or_else(|| if fallback.is_empty() { format!("HTTP {status}") } else { fallback.clone() }),
        details,
    }
}

/// Nothing answered at `base`: the error with every cause in its chain.
pub(super) fn unreachable(base: &str, e: &reqwest::Error) -> Error {
    use std::error::Error as _;
    let mut reason = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        reason = format!("{reason}: {s}");
        source = s.source();
    }
    // rustls names TLS refusals by their alert; say which file would fix it
    // (a missing client certificate: `Client::unreachable`).
    if reason.contains("UnknownIssuer") {
        reason.push_str(" (the server's certificate is signed by a CA this client does not trust: give --ca-cert or JAMJET_CA_CERT)");
    }
    Error::Unreachable { url: base.to_string(), reason }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn an_error_answer_keeps_the_servers_code_and_message() {
        let body = json!({"error": {"code": "unknown_execution", "message": "no execution exec_X", "details": null}});
        let e = api_error("GET", "http://h/executions/x".into(), 404, Some(body), b"");
        assert_eq!(e.code(), Some("unknown_execution"));
        let text = e.to_string();
        assert!(text.contains("no execution exec_X") && text.contains("http://h/executions/x"), "{text}");
        let e = api_error("GET", "http://h/".into(), 502, None, b"bad gateway");
        assert_eq!(e.code(), Some("http_502"));
        assert!(e.to_string().contains("bad gateway"));
    }
}
