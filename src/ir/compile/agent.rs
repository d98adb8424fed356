//! Compiling `type: agent` (an A2A client call): the card URL, the message
//! template, `output_key`, `headers` (the URL and headers with `${VAR}`
//! references checked here, resolved at call time), `input_event`, and the node's
//! `timeout_ms`, which for an agent covers the whole call and has a
//! default, so a silent peer cannot hold an execution forever.

use std::collections::BTreeMap;

use super::yaml::Value;
use super::{Ctx, Fields, optional};
use crate::ir::{AgentNode, DEFAULT_AGENT_TIMEOUT_MS, NodeKind, Span, env_refs};

pub(super) const AGENT: &[&str] = &["agent", "message", "output_key", "headers", "input_event"];

impl Ctx {
    pub(super) fn agent(&mut self, f: &Fields, at: Span) -> Option<NodeKind> {
        let agent = self.required(f, "agent", "an agent node", at).and_then(|y| {
            let url = self.string(y, "agent")?;
            let url = self.env_ok(y.span, url, "`agent`")?;
            let ok = url.starts_with("http://") || url.starts_with("https://") || url.starts_with("${");
            if !ok {
                self.add(
                    y.span,
                    format!(
                        "`agent` must be an http:// or https:// URL (an agent card or its base), or a `${{VAR}}` \
                         holding one, found `{url}`"
                    ),
                );
            }
            ok.then_some(url)
        });
        let message = self.required(f, "message", "an agent node", at).and_then(|y| match &y.value {
            Value::Scalar(..) if y.as_str().is_some() => {
                self.template_string(y, "message").map(serde_json::Value::String)
            }
            Value::Map(_) | Value::Seq(_) => Some(self.json(y)),
            _ => {
                self.add(
                    y.span,
                    format!("`message` must be a text template or a mapping (sent as data), found {}", y.kind()),
                );
                None
            }
        });
        let mut headers = Some(BTreeMap::new());
        if let Some(y) = f.get("headers") {
            headers = self.entries(y, "`headers`", "header").and_then(|entries| {
                let mut out = BTreeMap::new();
                let mut ok = true;
                for e in entries {
                    let Some(text) = self.string(&e.value, "a header value") else {
                        ok = false;
                        continue;
                    };
                    if let Err(err) = env_refs(&text) {
                        self.add(e.value.span, format!("header `{}`: {err}", e.key));
                        ok = false;
                    }
                    out.insert(e.key.clone(), text);
                }
                ok.then_some(out)
            });
        }
        let output_key = optional(f.get("output_key").map(|y| self.output_key(y)));
        let input_event = match f.get("input_event") {
            Some(y) => self.string(y, "input_event").filter(|s| {
                let ok = !s.trim().is_empty();
                if !ok {
                    self.add(y.span, "`input_event` must not be empty");
                }
                ok
            }),
            None => self.node.clone(),
        };
        Some(NodeKind::Agent(AgentNode {
            agent: agent?,
            local: false,
            message: message?,
            output_key: output_key?,
            timeout_ms: DEFAULT_AGENT_TIMEOUT_MS,
            headers: headers?,
            input_event: input_event?,
        }))
    }
}

/// An agent's `timeout_ms` covers its whole call and is enforced by the
/// node itself (so a timed-out attempt still journals the remote task it
/// was waiting for): it moves from the node into the agent's spec, with
/// the default when none is written.
pub(super) fn own_timeout(kind: NodeKind, timeout_ms: Option<u64>) -> (NodeKind, Option<u64>) {
    match kind {
        NodeKind::Agent(mut a) => {
            a.timeout_ms = timeout_ms.unwrap_or(DEFAULT_AGENT_TIMEOUT_MS);
            (NodeKind::Agent(a), None)
        }
        other => (other, timeout_ms),
    }
}
