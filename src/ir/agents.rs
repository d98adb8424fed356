//! The IR of local agents and of what bounds them: the top-level `agents:`
//! block ([`AgentDef`], its tools [`AgentTool`], its [`Strategy`] and
//! [`ToolApproval`]), and the workflow's `budget:` ([`Budget`]) and
//! `policy:` ([`Policy`]).
//!
//! Plain data, stored in the workflow and covered by its hash (spans
//! aside). What an agent does at run time is not here: a `type: agent` node
//! whose `agent` names one of these ([`crate::ir::AgentNode::local`]) runs
//! it. Nothing here calls a model or a tool.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::model::ModelConfig;
use super::workflow::Span;

/// How many model turns an agent takes when it does not say.
pub const DEFAULT_MAX_ITERATIONS: u32 = 10;

/// One entry of the top-level `agents:` block.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentDef {
    /// The model name as written: an entry of `models:` or a bare model id.
    pub model: String,
    /// What `model` resolved to when the workflow compiled.
    pub config: ModelConfig,
    /// A text template over `state`: the agent's system instructions.
    pub instructions: String,
    /// The tools offered to the agent's model, in the order written.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<AgentTool>,
    #[serde(default)]
    pub strategy: Strategy,
    /// Model turns before the agent must stop ([`DEFAULT_MAX_ITERATIONS`]
    /// when not written); at least 1.
    pub max_iterations: u32,
    /// The most one run of the agent may spend, in USD; more than 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_cost_usd: Option<f64>,
    /// The most tokens (input and output) one run may use; at least 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u64>,
    /// Which tool calls wait for a person's decision first: the agent's own
    /// `approval:` with the `policy.require_approval_for` entries that
    /// match its tools merged in.
    #[serde(default)]
    pub approval: ToolApproval,
    /// A JSON Schema the final answer (parsed as JSON) must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_schema: Option<serde_json::Value>,
    /// Overrides the model entry's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// `critic`: the critique score (1 to 5) that ends revising; 4 when
    /// not written. `None` for other strategies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_score: Option<u8>,
    /// `consensus`: how many independent answers (2 to 16); 3 when not
    /// written. `None` for other strategies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub samples: Option<u32>,
    /// `consensus`: the models the samples are spread over, each as
    /// written and resolved; empty means the agent's own model.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub models: Vec<(String, ModelConfig)>,
    /// `debate`: the agents of `agents:` that argue, at least two.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub debaters: Vec<String>,
    /// `debate`: how many rounds (1 to 10); 2 when not written. `None` for
    /// other strategies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rounds: Option<u32>,
    /// `consensus` and `debate`: the model that picks, merges or decides,
    /// as written and resolved; the agent's own model when not written.
    /// `None` for other strategies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub judge: Option<(String, ModelConfig)>,
    /// Stream each of the agent's model replies to the execution's
    /// followers as it is written (see `stream:` of a model node).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stream: bool,
    /// Where the agent's name is written; serialized as `null` for
    /// [`crate::ir::Workflow::content_hash`], like a node's.
    #[serde(default)]
    pub span: Span,
}

impl AgentDef {
    /// The agents of `agents:` this one calls: its agent tools, then its
    /// debaters.
    pub fn called_agents(&self) -> impl Iterator<Item = &str> {
        let tools = self.tools.iter().filter_map(|t| match t {
            AgentTool::Agent { name } => Some(name.as_str()),
            _ => None,
        });
        tools.chain(self.debaters.iter().map(String::as_str))
    }
}

/// One entry of an agent's `tools:`, classified by how it is written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AgentTool {
    /// `server.tool`: a tool of a server of `mcp: servers:`.
    Mcp { server: String, tool: String },
    /// The name of another agent of `agents:`, called with a message.
    Agent { name: String },
    /// An http(s):// URL or a `${VAR}` holding one: a remote A2A agent.
    Remote { url: String },
    /// Any other name: a host function, registered at run time.
    Function { name: String },
}

impl AgentTool {
    /// The name the model sees the tool by: the MCP tool's own name
    /// (`web_search` for `search.web_search`), the agent's name, the
    /// function's name. A remote agent is named after its URL's host and
    /// port (user info, path and query left out), lowercased, with each
    /// character other than a letter, a digit, `_` or `-` turned into `_`
    /// and `_` trimmed from the ends, at most 64 characters:
    /// `http://127.0.0.1:7701/` is `127_0_0_1_7701`,
    /// `https://Research.example.com/a2a` is `research_example_com`. A
    /// `${VAR}` in it counts as the variable's name (`${PEER_URL}` is
    /// `peer_url`). One that leaves nothing is `remote_agent`.
    pub fn name(&self) -> String {
        match self {
            AgentTool::Mcp { tool, .. } => tool.clone(),
            AgentTool::Agent { name } | AgentTool::Function { name } => name.clone(),
            AgentTool::Remote { url } => remote_name(url),
        }
    }

    /// The tool as written in `tools:`.
    pub fn written(&self) -> String {
        match self {
            AgentTool::Mcp { server, tool } => format!("{server}.{tool}"),
            AgentTool::Agent { name } | AgentTool::Function { name } => name.clone(),
            AgentTool::Remote { url } => url.clone(),
        }
    }
}

/// How many characters a tool's name may have (the providers' limit).
const TOOL_NAME_CHARS: usize = 64;

/// [`AgentTool::name`] of a remote agent's URL.
fn remote_name(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    let host = host.replace("${", "").replace('}', "");
    let name: String = host
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' { c.to_ascii_lowercase() } else { '_' })
        .collect();
    let name: String = name.trim_matches('_').chars().take(TOOL_NAME_CHARS).collect();
    if name.is_empty() { "remote_agent".to_string() } else { name }
}

/// How an agent works towards its answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// Model and tools in a loop until a final answer or `max_iterations`.
    #[default]
    React,
    /// A plan first, then each step carried out.
    PlanAndExecute,
    /// Draft, critique (scores 1 to 5), revise until `min_score` or
    /// `max_iterations`.
    Critic,
    /// Answer, reflect on the answer, answer again.
    Reflection,
    /// `samples` independent answers, then a `judge` picks or merges.
    Consensus,
    /// `debaters` argue for `rounds` rounds; a `judge` decides.
    Debate,
}

impl Strategy {
    /// Every strategy, in the order the docs list them.
    pub const ALL: [Strategy; 6] = [
        Strategy::React,
        Strategy::PlanAndExecute,
        Strategy::Critic,
        Strategy::Reflection,
        Strategy::Consensus,
        Strategy::Debate,
    ];

    /// The strategy as YAML writes it (`plan-and-execute`).
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::React => "react",
            Strategy::PlanAndExecute => "plan-and-execute",
            Strategy::Critic => "critic",
            Strategy::Reflection => "reflection",
            Strategy::Consensus => "consensus",
            Strategy::Debate => "debate",
        }
    }

    /// The strategy YAML writes as `name`.
    pub fn parse(name: &str) -> Option<Strategy> {
        Strategy::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

/// Which of an agent's tool calls wait for a person's decision.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToolApproval {
    /// None of them.
    #[default]
    None,
    /// Every one (`approval: all`).
    All,
    /// The calls of these tools, named as written in `tools:`.
    Tools(Vec<String>),
}

/// The top-level `budget:`: what one execution of the workflow may spend,
/// every model call of it counted.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Budget {
    /// In USD; more than 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_cost_usd: Option<f64>,
    /// Input and output tokens; at least 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u64>,
}

/// The top-level `policy:`: what the workflow's nodes and agents may use,
/// checked when it compiles.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    /// Tools no node or agent may name: `server.tool`, a bare tool or
    /// function name, or a server name (all its tools).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub blocked_tools: Vec<String>,
    /// Tools whose calls by an agent wait for a person's decision, named
    /// as blocked tools are.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub require_approval_for: Vec<String>,
    /// The only models nodes and agents may name (by the name as written
    /// or the resolved model id); any model when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub model_allowlist: Vec<String>,
}

impl Policy {
    /// The entry of `entries` that names a tool written as `written` in
    /// `tools:`, whose model-facing name is `bare` and whose MCP server is
    /// `server`: the first equal to any of them.
    pub fn matching<'p>(entries: &'p [String], written: &str, bare: &str, server: Option<&str>) -> Option<&'p str> {
        let names = [Some(written), Some(bare), server];
        entries.iter().map(String::as_str).find(|e| names.contains(&Some(e)))
    }
}

/// The cycles of agents calling agents (`calls`: each agent and the agents
/// it calls, in the order to look): each as the names along it, the first
/// repeated at the end, found once. A name not in `calls` calls nothing;
/// an agent calling itself is left to the caller. Iterative, so a long
/// chain cannot exhaust the stack.
pub(crate) fn call_cycles<'a>(calls: &[(&'a str, Vec<&'a str>)]) -> Vec<Vec<&'a str>> {
    let index: BTreeMap<&str, usize> = calls.iter().enumerate().map(|(i, (name, _))| (*name, i)).collect();
    // 0: not seen, 1: on the path, 2: done.
    let mut state = vec![0u8; calls.len()];
    let mut cycles = Vec::new();
    for root in 0..calls.len() {
        if state[root] != 0 {
            continue;
        }
        let mut path: Vec<(usize, usize)> = vec![(root, 0)];
        state[root] = 1;
        while let Some(top) = path.last_mut() {
            let at = top.0;
            let Some(&callee) = calls[at].1.get(top.1) else {
                state[at] = 2;
                path.pop();
                continue;
            };
            top.1 += 1;
            let Some(&to) = index.get(callee) else { continue };
            match state[to] {
                0 => {
                    state[to] = 1;
                    path.push((to, 0));
                }
                1 if to != at => {
                    let from = path.iter().position(|&(i, _)| i == to).unwrap_or(0);
                    let mut cycle: Vec<&str> = path[from..].iter().map(|&(i, _)| calls[i].0).collect();
                    cycle.push(calls[to].0);
                    cycles.push(cycle);
                }
                _ => {}
            }
        }
    }
    cycles
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_agents_are_named_after_their_host() {
        let name = |url: &str| AgentTool::Remote { url: url.to_string() }.name();
        assert_eq!(name("http://127.0.0.1:7701/"), "127_0_0_1_7701");
        assert_eq!(name("https://Research.example.com/a2a?x=1"), "research_example_com");
        assert_eq!(name("https://user:pw@peer.example/"), "peer_example");
        assert_eq!(name("${PEER_URL}"), "peer_url");
        assert_eq!(name("https://${HOST}:8443/a"), "host_8443");
        assert_eq!(name("http:///"), "remote_agent");
        assert_eq!(name(&format!("http://{}/", "a".repeat(100))).len(), 64);
        let mcp = AgentTool::Mcp { server: "search".into(), tool: "web_search".into() };
        assert_eq!((mcp.name().as_str(), mcp.written().as_str()), ("web_search", "search.web_search"));
    }

    #[test]
    fn strategies_round_trip_through_their_yaml_names() {
        for s in Strategy::ALL {
            assert_eq!(Strategy::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        assert_eq!(Strategy::parse("plan_and_execute"), None);
    }

    #[test]
    fn cycles_are_found_once_each() {
        let calls =
            [("a", vec!["b"]), ("b", vec!["c", "x"]), ("c", vec!["a"]), ("d", vec!["d", "e"]), ("e", vec!["d"])];
        assert_eq!(call_cycles(&calls), [vec!["a", "b", "c", "a"], vec!["d", "e", "d"]]);
        let n = 100_000;
        let names: Vec<String> = (0..n).map(|i| format!("a{i}")).collect();
        let long: Vec<(&str, Vec<&str>)> =
            (0..n).map(|i| (names[i].as_str(), vec![names[(i + 1) % n].as_str()])).collect();
        assert_eq!(call_cycles(&long)[0].len(), n + 1);
    }
}
