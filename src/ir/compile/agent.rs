//! Compiling `type: agent`: a local agent of `agents:` by name, or an A2A
//! client call: the card URL, the message template, `output_key`,
//! `headers` (the URL and headers with `${VAR}` references checked here,
//! resolved at call time), `input_event`, and the node's `timeout_ms`,
//! which for an agent covers the whole call and has a default, so a silent
//! peer cannot hold an execution forever. `headers` and `input_event` are
//! for remote agents only.

use std::collections::BTreeMap;

use super::yaml::{Value, Yaml};
use super::{Ctx, Fields, did_you_mean, optional};
use crate::ir::{AgentNode, DEFAULT_AGENT_TIMEOUT_MS, NodeKind, Span, env_refs};

pub(super) const AGENT: &[&str] = &["agent", "message", "output_key", "headers", "input_event"];

impl Ctx {
    pub(super) fn agent(&mut self, f: &Fields, at: Span) -> Option<NodeKind> {
        let agent = self.required(f, "agent", "an agent node", at).and_then(|y| self.agent_named(y));
        let local = matches!(agent, Some((_, true)));
        if local {
            self.remote_only(f, agent.as_ref().map_or("", |(name, _)| name.as_str()));
        }
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
        let (agent, local) = agent?;
        Some(NodeKind::Agent(AgentNode {
            agent,
            local,
            message: message?,
            output_key: output_key?,
            timeout_ms: DEFAULT_AGENT_TIMEOUT_MS,
            headers: headers?,
            input_event: input_event?,
        }))
    }

    /// `agent`: a name of `agents:` (`true`: local), else a remote agent's
    /// URL or a `${VAR}` holding one.
    fn agent_named(&mut self, y: &Yaml) -> Option<(String, bool)> {
        let text = self.string(y, "agent")?;
        if self.agent_names.contains(&text) {
            return Some((text, true));
        }
        let url = self.env_ok(y.span, text, "`agent`")?;
        if url.starts_with("http://") || url.starts_with("https://") || url.starts_with("${") {
            return Some((url, false));
        }
        let message = if url.contains("://") {
            format!(
                "`agent` must be an http:// or https:// URL (an agent card or its base), or a `${{VAR}}` holding \
                 one, found `{url}`"
            )
        } else {
            let hint = did_you_mean(&url, self.agent_names.iter().map(String::as_str));
            format!(
                "`agent` names `{url}`, which is not an agent of `agents:`{hint}, nor an http:// or https:// URL \
                 of a remote agent (or a `${{VAR}}` holding one)"
            )
        };
        self.add(y.span, message);
        None
    }

    /// `headers` and `input_event` are a remote agent's: on a node running
    /// local agent `agent` they are findings.
    fn remote_only(&mut self, f: &Fields, agent: &str) {
        for field in ["headers", "input_event"] {
            if let Some(e) = f.entry(field) {
                let message = format!("`{field}` is for remote agents: `{agent}` is a local agent of `agents:`");
                self.add(e.key_span, message);
            }
        }
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
