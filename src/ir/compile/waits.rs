//! Compiling the kinds that park an execution: `type: wait` (for an event
//! or a timer) and `type: approval` (for a person's decision). Their common
//! `timeout_ms` is the wait's timeout, and leads to `on_timeout`.

use super::nodes::Target;
use super::yaml::{Entry, Yaml};
use super::{Ctx, Fields, optional};
use crate::ir::{ApprovalNode, EdgeKind, NodeKind, Span, Type, WaitNode, is_template};

pub(super) const WAIT: &[&str] = &["event", "duration_ms", "until", "on_timeout", "output_key"];
pub(super) const APPROVAL: &[&str] = &["prompt", "on_reject", "on_timeout", "output_key"];

/// What a wait node waits for: exactly one of these.
const WAIT_FOR: &[&str] = &["event", "duration_ms", "until"];

impl Ctx {
    pub(super) fn wait(&mut self, f: &Fields, at: Span, targets: &mut Vec<Target>) -> Option<NodeKind> {
        let event = optional(f.get("event").map(|y| self.template_string(y, "event")));
        let duration_ms = optional(f.get("duration_ms").map(|y| self.duration(y, "duration_ms", 1)));
        let until = optional(f.get("until").map(|y| self.until(y)));
        let mut given: Vec<&Entry> = WAIT_FOR.iter().filter_map(|field| f.entry(field)).collect();
        given.sort_by_key(|e| e.key_span);
        match given.as_slice() {
            [] => self.add(at, "a wait node needs one of `event`, `duration_ms` or `until`"),
            [first, rest @ ..] => {
                for e in rest {
                    let message =
                        format!("`{}` cannot be combined with `{}`: a wait node waits for one thing", e.key, first.key);
                    self.add(e.key_span, message);
                }
            }
        }
        let on_timeout =
            optional(f.get("on_timeout").map(|y| self.target(y, "on_timeout", EdgeKind::OnTimeout, targets)));
        let timer = f.entry("event").is_none() && !given.is_empty();
        if timer {
            let timer_field = &given[0].key;
            if let Some(e) = f.entry("timeout_ms") {
                let message = format!(
                    "`timeout_ms` is for a wait on an `event`: a wait with `{timer_field}` ends when its time comes"
                );
                self.add(e.key_span, message);
            }
            if let Some(e) = f.entry("on_timeout") {
                let message = format!(
                    "`on_timeout` is for a wait on an `event` (with `timeout_ms`): a wait with `{timer_field}` goes \
                     on at `next` when its time comes"
                );
                self.add(e.key_span, message);
            }
            if let Some(e) = f.entry("output_key") {
                let message = format!(
                    "`output_key` is for a wait on an `event` (its payload goes there): a wait with `{timer_field}` \
                     writes nothing"
                );
                self.add(e.key_span, message);
            }
        } else {
            self.on_timeout_needs_timeout(f);
        }
        let output_key = optional(f.get("output_key").map(|y| self.output_key(y)));
        Some(NodeKind::Wait(WaitNode {
            event: event?,
            duration_ms: duration_ms?,
            until: until?,
            on_timeout: on_timeout?,
            output_key: output_key?,
        }))
    }

    /// `until`: a template, or an RFC 3339 timestamp checked now.
    fn until(&mut self, y: &Yaml) -> Option<String> {
        let text = self.template_string(y, "until")?;
        if !is_template(&text)
            && let Err(err) = text.parse::<jiff::Timestamp>()
        {
            let message =
                format!("`until` must be an RFC 3339 timestamp such as `2026-01-31T09:00:00Z` (or a template): {err}");
            self.add(y.span, message);
            return None;
        }
        Some(text)
    }

    pub(super) fn approval(&mut self, f: &Fields, at: Span, targets: &mut Vec<Target>) -> Option<NodeKind> {
        let prompt = self.required(f, "prompt", "an approval node", at).and_then(|y| self.template_string(y, "prompt"));
        let on_reject = optional(f.get("on_reject").map(|y| self.target(y, "on_reject", EdgeKind::OnReject, targets)));
        let on_timeout =
            optional(f.get("on_timeout").map(|y| self.target(y, "on_timeout", EdgeKind::OnTimeout, targets)));
        self.on_timeout_needs_timeout(f);
        let decision = "the decision `{decision, by, comment, at}`, an object";
        let output_key = optional(f.get("output_key").map(|y| self.output_key_for(y, &Type::Dict, decision)));
        Some(NodeKind::Approval(ApprovalNode {
            prompt: prompt?,
            on_reject: on_reject?,
            on_timeout: on_timeout?,
            output_key: output_key?,
        }))
    }

    /// `on_timeout` without the node's `timeout_ms` could never be taken.
    fn on_timeout_needs_timeout(&mut self, f: &Fields) {
        if let Some(e) = f.entry("on_timeout")
            && f.entry("timeout_ms").is_none()
        {
            self.add(e.key_span, "`on_timeout` needs `timeout_ms`: without a timeout the node never times out");
        }
    }
}
