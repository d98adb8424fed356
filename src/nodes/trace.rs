//! Trace identity: which OpenTelemetry trace and span a node visit is, and
//! the W3C `traceparent` its outbound calls carry.
//!
//! Every id is derived from the journal's own names, never drawn at random,
//! so the process that resumes an execution after a crash names the same
//! trace and the same spans as the one that started it:
//!
//! - an execution's trace id is its root execution's id (a ULID's 16
//!   bytes): the trace of `jamjet run`'s execution `01J…` is `01J…` in hex;
//!   a branch or sub-workflow belongs to its root's trace;
//! - an execution's span, a node visit's span and a call's span hash what
//!   names them (execution id, node, visit, call number) to 8 bytes.
//!
//! While a node runs with tracing on, the NodeActor sets [`CURRENT`] for
//! the attempt's task; the HTTP, model, MCP and A2A calls read it with
//! [`traceparent`]. No tracing, no header.

use sha2::{Digest, Sha256};

use crate::id::ExecutionId;

/// A trace and the span inside it that outbound calls descend from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceContext {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
}

impl TraceContext {
    /// The W3C trace-context header value: `00-{trace}-{span}-01` (sampled).
    pub fn traceparent(&self) -> String {
        format!("00-{}-{}-01", hex(&self.trace_id), hex(&self.span_id))
    }
}

tokio::task_local! {
    /// The trace context of the node attempt running on this task.
    pub static CURRENT: TraceContext;
}

/// The `traceparent` header for an outbound call made now, if the node
/// attempt running on this task is traced.
pub fn traceparent() -> Option<String> {
    CURRENT.try_with(|c| c.traceparent()).ok()
}

/// The trace id of every execution under `root` (itself, its branches, its
/// sub-workflows).
pub fn trace_id(root: ExecutionId) -> [u8; 16] {
    root.to_bytes()
}

/// The span of a whole execution.
pub fn execution_span(id: ExecutionId) -> [u8; 8] {
    span(&[b"execution", &id.to_bytes()])
}

/// The span of one node visit (all its attempts).
pub fn visit_span(id: ExecutionId, node: &str, visit: u32) -> [u8; 8] {
    span(&[b"visit", &id.to_bytes(), node.as_bytes(), &visit.to_be_bytes()])
}

/// The span of call `n` of a node visit (a model or tool call it journaled).
pub fn call_span(id: ExecutionId, node: &str, visit: u32, n: u32) -> [u8; 8] {
    span(&[b"call", &id.to_bytes(), node.as_bytes(), &visit.to_be_bytes(), &n.to_be_bytes()])
}

/// The span of one attempt's exchange (a model node's request and reply).
pub fn exchange_span(id: ExecutionId, node: &str, visit: u32, attempt: u32) -> [u8; 8] {
    span(&[b"exchange", &id.to_bytes(), node.as_bytes(), &visit.to_be_bytes(), &attempt.to_be_bytes()])
}

/// Eight bytes of the hash of `parts` (each length-prefixed, so no two
/// lists of parts collide by concatenation), never all zero (invalid).
fn span(parts: &[&[u8]]) -> [u8; 8] {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u32).to_be_bytes());
        h.update(p);
    }
    let digest = h.finalize();
    let mut out = [0u8; 8];
    out.copy_from_slice(&digest[..8]);
    if out == [0; 8] {
        out[7] = 1;
    }
    out
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_distinct_and_the_header_is_w3c() {
        let a = ExecutionId::new(1_700_000_000_000);
        let b = ExecutionId::new(1_700_000_000_000);
        assert_eq!(visit_span(a, "n", 1), visit_span(a, "n", 1));
        assert_ne!(visit_span(a, "n", 1), visit_span(a, "n", 2));
        assert_ne!(visit_span(a, "n", 1), visit_span(b, "n", 1));
        assert_ne!(visit_span(a, "n1", 1), visit_span(a, "n", 11));
        assert_ne!(execution_span(a), visit_span(a, "", 0));
        let tp = TraceContext { trace_id: trace_id(a), span_id: call_span(a, "n", 1, 2) }.traceparent();
        let parts: Vec<&str> = tp.split('-').collect();
        assert_eq!(parts.len(), 4);
        assert_eq!((parts[0], parts[1].len(), parts[2].len(), parts[3]), ("00", 32, 16, "01"));
        assert_eq!(parts[1], hex(&a.to_bytes()));
    }

    #[tokio::test]
    async fn the_header_is_there_only_inside_a_traced_attempt() {
        assert_eq!(traceparent(), None);
        let c = TraceContext { trace_id: [1; 16], span_id: [2; 8] };
        let inside = CURRENT.scope(c, async { traceparent() }).await;
        assert_eq!(inside.as_deref(), Some("00-01010101010101010101010101010101-0202020202020202-01"));
    }
}
