//! Compiling the top-level `agents:` block into [`AgentDef`]s: each agent's
//! model (resolved as a model node's is), instructions (a template over
//! `state`), tools (classified by how they are written, see
//! [`AgentTool`]), strategy (its parameters: [`super::strategy`]), limits
//! and approvals; then the agents that call each other in a cycle.
//!
//! The agents' names are known before any agent is read, so a tool may
//! name an agent written further down. The policy ([`super::policy`]) is
//! read first: tools and models are held to it here, where they are named.

use std::collections::BTreeMap;

use super::strategy::Parameters;
use super::yaml::{Entry, Value, Yaml};
use super::{Ctx, did_you_mean, optional};
use crate::ir::agents::call_cycles;
use crate::ir::{AgentDef, AgentTool, DEFAULT_MAX_ITERATIONS, Policy, Span, Strategy, ToolApproval};

const AGENT: &[&str] = &[
    "model",
    "instructions",
    "tools",
    "strategy",
    "max_iterations",
    "max_cost_usd",
    "max_tokens",
    "approval",
    "output_schema",
    "temperature",
    "min_score",
    "samples",
    "models",
    "debaters",
    "rounds",
    "judge",
    "description",
    "stream",
];

/// How many members of a cycle a finding names.
const SHOWN_MEMBERS: usize = 10;

/// The agents one agent calls (its agent tools and debaters), each with
/// where it is named.
pub(super) type Calls = Vec<(String, Span)>;

impl Ctx {
    /// The `agents:` block; `None` when any agent has findings.
    pub(super) fn agents(&mut self, y: &Yaml) -> Option<BTreeMap<String, AgentDef>> {
        let entries = self.entries(y, "`agents`", "agent name")?;
        self.agent_names = entries.iter().map(|e| e.key.clone()).collect();
        let mut agents = Some(BTreeMap::new());
        let mut calls = Vec::with_capacity(entries.len());
        for entry in entries {
            let mut called = Vec::new();
            let agent = self.agent_def(entry, &mut called);
            calls.push((entry.key.clone(), called));
            match (agent, agents.as_mut()) {
                (Some(agent), Some(map)) => {
                    map.insert(entry.key.clone(), agent);
                }
                _ => agents = None,
            }
        }
        self.agent_cycles(&calls);
        // Instructions are rendered with `state` only: no `item`, `index`.
        for read in std::mem::take(&mut self.loop_reads) {
            let message = format!(
                "{} reads `{}`, which is not defined: an agent's instructions see only `state` (did you mean \
                 `state.{}`?)",
                read.what, read.name, read.name
            );
            self.add(read.span, message);
        }
        agents
    }

    /// One agent; `calls` gets the agents it calls.
    fn agent_def(&mut self, entry: &Entry, calls: &mut Calls) -> Option<AgentDef> {
        let name = entry.key.as_str();
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || "_-".contains(c)) {
            let message = format!(
                "invalid agent name `{name}`: use only letters, digits, `_` and `-` (a model calls an agent used \
                 as a tool by its name)"
            );
            self.add(entry.key_span, message);
        }
        let owner = format!("agent `{name}`");
        let f = self.fields(&entry.value, &owner, AGENT)?;
        let at = entry.key_span;
        let model = self.required(&f, "model", &owner, at).and_then(|y| self.model_named(y, "model", ""));
        let instructions =
            self.required(&f, "instructions", &owner, at).and_then(|y| self.template_string(y, "instructions"));
        let tools = f.get("tools").map_or(Some(Vec::new()), |y| self.agent_tools(name, y, calls));
        let names: Vec<&'static str> = Strategy::ALL.iter().map(|s| s.as_str()).collect();
        let strategy = f
            .get("strategy")
            .map_or(Some(Strategy::React), |y| self.keyword(y, "strategy", &names).and_then(Strategy::parse));
        let max_iterations = f
            .get("max_iterations")
            .map_or(Some(u64::from(DEFAULT_MAX_ITERATIONS)), |y| self.int_within(y, "max_iterations", 1, u32::MAX));
        let max_cost_usd = optional(f.get("max_cost_usd").map(|y| self.usd_limit(y, "max_cost_usd")));
        let max_tokens = optional(f.get("max_tokens").map(|y| self.int(y, "max_tokens", 1)));
        let output_schema = optional(f.get("output_schema").map(|y| self.output_schema(y)));
        let provider = model.as_ref().map(|(_, c)| c.provider);
        let temperature = optional(f.get("temperature").map(|y| self.temperature(y, provider)));
        if let Some(y) = f.get("description") {
            self.string(y, "description");
        }
        let parameters = strategy.and_then(|s| self.parameters(name, &f, s, model.as_ref(), calls));
        let written = f.get("tools").map(written_tools).unwrap_or_default();
        let approval = f.get("approval").map_or(Some(ToolApproval::None), |y| self.tool_approval(name, y, &written));
        let tools = tools?;
        let approval = self.with_policy_approval(approval?, &tools);
        let stream = optional(f.get("stream").map(|y| self.bool(y, "stream")));
        let (model, config) = model?;
        let Parameters { min_score, samples, models, debaters, rounds, judge } = parameters?;
        Some(AgentDef {
            stream: stream?.unwrap_or(false),
            model,
            config,
            instructions: instructions?,
            tools,
            strategy: strategy?,
            max_iterations: u32::try_from(max_iterations?).ok()?,
            max_cost_usd: max_cost_usd?,
            max_tokens: max_tokens?,
            approval,
            output_schema: output_schema?,
            temperature: temperature?,
            min_score,
            samples,
            models,
            debaters,
            rounds,
            judge,
            span: at,
        })
    }

    /// An integer within `min..=max`.
    pub(super) fn int_within(&mut self, y: &Yaml, field: &str, min: u32, max: u32) -> Option<u64> {
        let n = self.int(y, field, i64::from(min))?;
        if n > u64::from(max) {
            self.add(y.span, format!("`{field}` must be between {min} and {max}, found {n}"));
            return None;
        }
        Some(n)
    }

    /// `tools:`, in the order written; each is held to the policy, and no
    /// two may reach the model by the same name.
    fn agent_tools(&mut self, agent: &str, y: &Yaml, calls: &mut Calls) -> Option<Vec<AgentTool>> {
        let Value::Seq(items) = &y.value else {
            let message = format!(
                "`tools` must be a list of tools (`server.tool`, a function, another agent, a remote agent's URL), \
                 found {}",
                y.kind()
            );
            self.add(y.span, message);
            return None;
        };
        let mut tools: Option<Vec<AgentTool>> = Some(Vec::with_capacity(items.len()));
        let mut seen: BTreeMap<String, String> = BTreeMap::new();
        for item in items {
            let Some(tool) = self.agent_tool(agent, item) else {
                tools = None;
                continue;
            };
            let (written, name) = (tool.written(), tool.name());
            let server = match &tool {
                AgentTool::Mcp { server, .. } => Some(server.as_str()),
                _ => None,
            };
            self.tool_allowed(item.span, &written, &name, server);
            if let AgentTool::Agent { name } = &tool {
                calls.push((name.clone(), item.span));
            }
            if let Some(first) = seen.insert(name.clone(), written.clone()) {
                let message = format!(
                    "tools `{first}` and `{written}` of agent `{agent}` both reach the model as `{name}`: an \
                     agent's tools need different names"
                );
                self.add(item.span, message);
                tools = None;
            }
            if let Some(list) = tools.as_mut() {
                list.push(tool);
            }
        }
        tools
    }

    /// One entry of `tools:`: a URL (or a `${VAR}`) is a remote agent,
    /// `server.tool` an MCP tool, a name of `agents:` an agent, any other
    /// name a host function.
    fn agent_tool(&mut self, agent: &str, y: &Yaml) -> Option<AgentTool> {
        let text = self.string(y, "tools")?;
        if text.trim().is_empty() {
            self.add(y.span, "a tool name must not be empty");
            return None;
        }
        if text.contains("://") || text.starts_with("${") {
            let url = self.env_ok(y.span, text, "a remote agent's URL")?;
            if !(url.starts_with("http://") || url.starts_with("https://") || url.starts_with("${")) {
                let message = format!(
                    "tool `{url}` looks like a URL: a remote agent's URL must start with http:// or https:// (or be \
                     a `${{VAR}}` holding one)"
                );
                self.add(y.span, message);
                return None;
            }
            return Some(AgentTool::Remote { url });
        }
        if let Some((server, tool)) = text.split_once('.') {
            return self.mcp_tool(server, tool, y.span);
        }
        if text == agent {
            self.add(y.span, format!("agent `{agent}` names itself as a tool: an agent cannot call itself"));
            return None;
        }
        if self.agent_names.contains(&text) {
            return Some(AgentTool::Agent { name: text });
        }
        Some(AgentTool::Function { name: text })
    }

    /// `server.tool`: the server must be declared under `mcp: servers:`.
    fn mcp_tool(&mut self, server: &str, tool: &str, at: Span) -> Option<AgentTool> {
        if !self.mcp_declared.iter().any(|s| s == server) {
            let declared = if self.mcp_declared.is_empty() {
                "none are declared: add it under `mcp: servers:`".to_string()
            } else {
                format!("declared: {}", self.mcp_declared.join(", "))
            };
            let hint = did_you_mean(server, self.mcp_declared.iter().map(String::as_str));
            let message =
                format!("tool `{server}.{tool}` names MCP server `{server}`, which is not declared{hint} ({declared})");
            self.add(at, message);
            return None;
        }
        if tool.trim().is_empty() {
            self.add(at, format!("tool `{server}.{tool}` names no tool of MCP server `{server}`"));
            return None;
        }
        Some(AgentTool::Mcp { server: server.to_string(), tool: tool.to_string() })
    }

    /// `approval: all`, or a list of the agent's tools as `written` in
    /// `tools:`.
    fn tool_approval(&mut self, agent: &str, y: &Yaml, written: &[String]) -> Option<ToolApproval> {
        if y.as_str() == Some("all") {
            return Some(ToolApproval::All);
        }
        let Value::Seq(items) = &y.value else {
            let found = y.as_str().map_or_else(|| y.kind().to_string(), |s| format!("`{s}`"));
            self.add(y.span, format!("`approval` must be `all` or a list of the agent's tools, found {found}"));
            return None;
        };
        let mut names = Some(Vec::with_capacity(items.len()));
        for item in items {
            let name = self.string(item, "approval").filter(|name| self.has_tool(agent, name, item.span, written));
            match (name, names.as_mut()) {
                (Some(name), Some(list)) if !list.contains(&name) => list.push(name),
                (Some(_), _) => {}
                (None, _) => names = None,
            }
        }
        let names = names?;
        Some(if names.is_empty() { ToolApproval::None } else { ToolApproval::Tools(names) })
    }

    /// Whether `name` is one of the agent's tools as `written`; a finding
    /// at `at` when it is not.
    fn has_tool(&mut self, agent: &str, name: &str, at: Span, written: &[String]) -> bool {
        if written.iter().any(|w| w == name) {
            return true;
        }
        let hint = did_you_mean(name, written.iter().map(String::as_str));
        let has =
            if written.is_empty() { "it has none".to_string() } else { format!("its tools: {}", written.join(", ")) };
        self.add(at, format!("`approval` names `{name}`, which is not a tool of agent `{agent}`{hint} ({has})"));
        false
    }

    /// `approval` with the tools `policy.require_approval_for` names added.
    fn with_policy_approval(&self, approval: ToolApproval, tools: &[AgentTool]) -> ToolApproval {
        let required = &self.rules.policy.require_approval_for;
        let mut names = match approval {
            ToolApproval::All => return ToolApproval::All,
            ToolApproval::None => Vec::new(),
            ToolApproval::Tools(names) => names,
        };
        for tool in tools {
            let (written, bare) = (tool.written(), tool.name());
            let server = match tool {
                AgentTool::Mcp { server, .. } => Some(server.as_str()),
                _ => None,
            };
            if Policy::matching(required, &written, &bare, server).is_some() && !names.contains(&written) {
                names.push(written);
            }
        }
        if names.is_empty() { ToolApproval::None } else { ToolApproval::Tools(names) }
    }

    /// Agents that reach themselves through `tools:` and `debaters:`: one
    /// finding per cycle, where its first agent names the next.
    fn agent_cycles(&mut self, calls: &[(String, Calls)]) {
        let graph: Vec<(&str, Vec<&str>)> = calls
            .iter()
            .map(|(name, called)| (name.as_str(), called.iter().map(|(c, _)| c.as_str()).collect()))
            .collect();
        for cycle in call_cycles(&graph) {
            let (first, second) = (cycle[0], cycle[1]);
            let at = calls
                .iter()
                .find(|(name, _)| name == first)
                .and_then(|(_, called)| called.iter().find(|(c, _)| c == second))
                .map_or(Span::default(), |(_, at)| *at);
            let members = &cycle[..cycle.len() - 1];
            let mut shown: Vec<String> = members.iter().take(SHOWN_MEMBERS).map(|n| format!("`{n}`")).collect();
            if members.len() > SHOWN_MEMBERS {
                shown.push(format!("… ({} more)", members.len() - SHOWN_MEMBERS));
            }
            shown.push(format!("`{first}`"));
            let message = format!(
                "agents call each other in a cycle through `tools` and `debaters`: {} (an agent must not reach \
                 itself)",
                shown.join(" -> ")
            );
            self.add(at, message);
        }
    }
}

/// The entries of `tools:` as written (those with findings too, so that
/// `approval` is not also told they are missing).
fn written_tools(y: &Yaml) -> Vec<String> {
    match &y.value {
        Value::Seq(items) => items.iter().filter_map(|i| i.as_str().map(str::to_string)).collect(),
        _ => Vec::new(),
    }
}
