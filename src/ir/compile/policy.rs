//! Compiling what bounds a workflow: the top-level `budget:` and
//! `policy:`, and holding every tool and model the file names to the
//! policy, each where it is named.
//!
//! The policy is read before the agents and the nodes, which call
//! [`Ctx::tool_allowed`] for each tool they name (an agent's `tools:`, a
//! model node's `tools:`, a tool node's `tool`) and [`Ctx::model_allowed`]
//! for each model ([`Ctx::model_named`]). A blocked entry matches a tool as
//! written (`search.web_search`, `fetch_page`), by its bare name
//! (`web_search`), or by its MCP server (`search`, all of its tools).

use super::yaml::{Value, Yaml};
use super::{Ctx, optional};
use crate::ir::{Budget, ModelConfig, Policy, Span};

const BUDGET: &[&str] = &["max_cost_usd", "max_tokens"];
const POLICY: &[&str] = &["blocked_tools", "require_approval_for", "model_allowlist"];

/// The policy in force while the file compiles, with where its blocked
/// entries are written (for messages).
#[derive(Default)]
pub(super) struct Rules {
    pub policy: Policy,
    /// Where each of `policy.blocked_tools` is written, in the same order.
    blocked_at: Vec<Span>,
}

impl Ctx {
    /// `budget: {max_cost_usd, max_tokens}`.
    pub(super) fn budget(&mut self, y: &Yaml) -> Option<Budget> {
        let f = self.fields(y, "`budget`", BUDGET)?;
        let max_cost_usd = optional(f.get("max_cost_usd").map(|y| self.usd_limit(y, "max_cost_usd")));
        let max_tokens = optional(f.get("max_tokens").map(|y| self.int(y, "max_tokens", 1)));
        Some(Budget { max_cost_usd: max_cost_usd?, max_tokens: max_tokens? })
    }

    /// An amount of USD to spend at most: a finite number above 0.
    pub(super) fn usd_limit(&mut self, y: &Yaml, field: &str) -> Option<f64> {
        let n = self.number(y, field)?;
        if !(n > 0.0 && n.is_finite()) {
            self.add(y.span, format!("`{field}` must be an amount of USD more than 0, found {n}"));
            return None;
        }
        Some(n)
    }

    /// `policy: {blocked_tools, require_approval_for, model_allowlist}`:
    /// sets `self.rules` for what follows, and is the workflow's policy.
    pub(super) fn policy(&mut self, y: &Yaml) -> Option<Policy> {
        let f = self.fields(y, "`policy`", POLICY)?;
        let blocked = optional(f.get("blocked_tools").map(|y| self.policy_names(y, "blocked_tools")));
        let approval = optional(f.get("require_approval_for").map(|y| self.policy_names(y, "require_approval_for")));
        let allowlist = optional(f.get("model_allowlist").map(|y| self.policy_names(y, "model_allowlist")));
        if let Some(y) = f.get("model_allowlist")
            && matches!(&y.value, Value::Seq(items) if items.is_empty())
        {
            self.add(y.span, "`policy.model_allowlist` must name at least one model (leave it out to allow any)");
        }
        let (blocked, approval, allowlist) = (blocked?.unwrap_or_default(), approval?, allowlist?);
        let names = |list: Vec<(String, Span)>| list.into_iter().map(|(name, _)| name).collect::<Vec<_>>();
        let policy = Policy {
            blocked_tools: blocked.iter().map(|(name, _)| name.clone()).collect(),
            require_approval_for: approval.map(names).unwrap_or_default(),
            model_allowlist: allowlist.map(names).unwrap_or_default(),
        };
        self.rules = Rules { policy: policy.clone(), blocked_at: blocked.into_iter().map(|(_, at)| at).collect() };
        Some(policy)
    }

    /// A list of non-empty names, each with where it is written.
    fn policy_names(&mut self, y: &Yaml, field: &str) -> Option<Vec<(String, Span)>> {
        let Value::Seq(items) = &y.value else {
            self.add(y.span, format!("`policy.{field}` must be a list of names, found {}", y.kind()));
            return None;
        };
        let names: Vec<_> = items
            .iter()
            .map(|item| {
                let name = self.string(item, field)?;
                if name.trim().is_empty() {
                    self.add(item.span, format!("`policy.{field}` entries must not be empty"));
                    return None;
                }
                Some((name, item.span))
            })
            .collect();
        names.into_iter().collect()
    }

    /// A finding at `at` when the tool written `written` (bare name `bare`,
    /// of MCP server `server`) is blocked by the policy.
    pub(super) fn tool_allowed(&mut self, at: Span, written: &str, bare: &str, server: Option<&str>) {
        let blocked = &self.rules.policy.blocked_tools;
        let Some(entry) = Policy::matching(blocked, written, bare, server) else { return };
        let message = format!("tool `{written}` is blocked by {}", self.blocked_entry(entry));
        self.add(at, message);
    }

    /// A model node's `tools:` entry: a blocked server, a blocked listed
    /// tool, or a whole server offered while one of its tools is blocked by
    /// name (`server.tool`), is a finding where it is named.
    pub(super) fn offered_tools_allowed(&mut self, server: &str, at: Span, listed: Option<&Yaml>) {
        match listed.map(|y| &y.value) {
            Some(Value::Seq(items)) => {
                for item in items {
                    if let Some(tool) = item.as_str() {
                        self.tool_allowed(item.span, &format!("{server}.{tool}"), tool, Some(server));
                    }
                }
            }
            Some(_) => {}
            None => self.whole_server_allowed(server, at),
        }
    }

    /// A model node offering every tool of `server`.
    fn whole_server_allowed(&mut self, server: &str, at: Span) {
        let blocked = &self.rules.policy.blocked_tools;
        if let Some(entry) = blocked.iter().find(|e| *e == server) {
            let message = format!("MCP server `{server}` is blocked by {}", self.blocked_entry(entry));
            return self.add(at, message);
        }
        let prefix = format!("{server}.");
        if let Some(entry) = blocked.iter().find(|e| e.starts_with(&prefix)) {
            let message = format!(
                "MCP server `{server}` offers every tool it has, and `{entry}` is blocked by {}: list the tools to \
                 offer instead (`{{server: {server}, tools: [...]}}`)",
                self.blocked_entry(entry)
            );
            self.add(at, message);
        }
    }

    /// "`policy.blocked_tools` entry `x` (line 4)".
    fn blocked_entry(&self, entry: &str) -> String {
        let rules = &self.rules;
        let line = rules.policy.blocked_tools.iter().position(|e| e == entry).map(|i| rules.blocked_at[i].line);
        let line = line.map(|l| format!(" (line {l})")).unwrap_or_default();
        format!("`policy.blocked_tools` entry `{entry}`{line}")
    }

    /// A finding at `at` when the policy has a model allowlist and neither
    /// `name` (as written) nor the model id it resolved to is in it.
    pub(super) fn model_allowed(&mut self, at: Span, name: &str, config: &ModelConfig) {
        let allowlist = &self.rules.policy.model_allowlist;
        if allowlist.is_empty() || allowlist.iter().any(|m| *m == name || *m == config.model) {
            return;
        }
        let shown = if config.model == name { format!("`{name}`") } else { format!("`{name}` (`{}`)", config.model) };
        let allowed = allowlist.iter().map(|m| format!("`{m}`")).collect::<Vec<_>>().join(", ");
        self.add(at, format!("model {shown} is not in `policy.model_allowlist` (allowed: {allowed})"));
    }
}
