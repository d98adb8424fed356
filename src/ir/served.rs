//! The workflow that serves a local agent over A2A. `jamjet dev` serves
//! every agent `A` of a workflow `W`'s `agents:` as an A2A agent of its
//! own, at `/a2a/{W}.{A}`; each task it takes is an execution of the small
//! workflow [`served_agent`] makes from `W` for `A`:
//!
//! - id `{W}.{A}` ([`served_agent_id`]), `W`'s version;
//! - state `{message: str, answer: any}`, plus the keys of `W`'s state the
//!   agents' instructions read (with `W`'s types and defaults), so a data
//!   part can carry them;
//! - one `type: agent` node, `A`, running the local agent `A` on
//!   `{{ state.message }}` into `answer`;
//! - `W`'s `models`, `prices`, `mcp_servers`, `agents`, `budget` and
//!   `policy`, unchanged, and the keys of `W`'s `session_state` that its
//!   state has;
//! - an `a2a:` section: skill and name `A`, the card's description `A`'s
//!   instructions as written (cut to [`DESCRIPTION_CHARS`]), `input_key`
//!   `message`, `output_key` `answer`, and [`ServedAgent`] saying which
//!   agent of which workflow it serves (its skill's description names the
//!   agent's tools and strategy).
//!
//! Pure: IR in, IR out. Registering and serving it is the server's.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::agent::{AgentNode, DEFAULT_AGENT_TIMEOUT_MS};
use super::agents::AgentDef;
use super::schema::{StateSchema, Type};
use super::template::referenced_state_keys;
use super::workflow::{A2aAgent, Node, NodeKind, RetryPolicy, Workflow};

/// The state key a served agent's message goes to.
pub const MESSAGE_KEY: &str = "message";
/// The state key a served agent's answer goes to.
pub const ANSWER_KEY: &str = "answer";
/// How many characters of the instructions a card's description keeps.
pub const DESCRIPTION_CHARS: usize = 200;

/// What the `a2a:` section of a workflow made by [`served_agent`] says
/// about the agent it serves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServedAgent {
    /// The workflow whose `agents:` declares the agent.
    pub workflow: String,
    /// The agent's name there.
    pub agent: String,
    /// The skill's description on the cards: the agent's tools and strategy.
    pub skill_description: String,
}

/// The id of the workflow serving agent `agent` of workflow `workflow_id`
/// (the path it is served at: `/a2a/{id}`).
pub fn served_agent_id(workflow_id: &str, agent: &str) -> String {
    format!("{workflow_id}.{agent}")
}

/// Whether `wf` was made by [`served_agent`].
pub fn is_served_agent(wf: &Workflow) -> bool {
    wf.a2a.as_ref().is_some_and(|a| a.serves.is_some())
}

/// The workflows serving `wf`'s agents, one per agent, by name. None for a
/// workflow that itself serves an agent: it carries the agents of the
/// workflow it was made from, which serves them already.
pub fn served_agents(wf: &Workflow) -> Vec<Workflow> {
    if is_served_agent(wf) {
        return Vec::new();
    }
    wf.agents.keys().filter_map(|name| served_agent(wf, name)).collect()
}

/// The workflow serving agent `name` of `wf` (see the module's
/// documentation); `None` when `wf` has no such agent.
pub fn served_agent(wf: &Workflow, name: &str) -> Option<Workflow> {
    let def = wf.agents.get(name)?;
    let state_schema = schema(wf);
    // The keys of `W`'s `session_state` the served state has: a data part
    // sets one once, and the context's later tasks keep it.
    let session_state = wf.session_state.iter().filter(|k| state_schema.fields.contains_key(*k)).cloned().collect();
    Some(Workflow {
        id: served_agent_id(&wf.id, name),
        version: wf.version.clone(),
        state_schema,
        start: name.to_string(),
        nodes: BTreeMap::from([(name.to_string(), node(name, def))]),
        edges: Vec::new(),
        retry_policies: BTreeMap::new(),
        source_file: wf.source_file.clone(),
        timeout_ms: None,
        models: wf.models.clone(),
        prices: wf.prices.clone(),
        mcp_servers: wf.mcp_servers.clone(),
        a2a: Some(a2a(wf, name, def)),
        max_steps: None,
        agents: wf.agents.clone(),
        budget: wf.budget.clone(),
        policy: wf.policy.clone(),
        session_state,
    })
}

/// The one node: agent `name` on the message, its answer into `answer`.
/// It is placed where the agent is written, so errors point there.
fn node(name: &str, def: &AgentDef) -> Node {
    let agent = AgentNode {
        agent: name.to_string(),
        local: true,
        message: Value::String(format!("{{{{ state.{MESSAGE_KEY} }}}}")),
        output_key: Some(ANSWER_KEY.to_string()),
        timeout_ms: DEFAULT_AGENT_TIMEOUT_MS,
        headers: BTreeMap::new(),
        input_event: name.to_string(),
    };
    Node {
        id: name.to_string(),
        kind: NodeKind::Agent(agent),
        next: None,
        retry: RetryPolicy::default(),
        timeout_ms: None,
        span: def.span,
    }
}

/// `{message: str, answer: any}` and the keys of `wf`'s state that any of
/// its agents' instructions read, typed (and defaulted) as `wf` says.
fn schema(wf: &Workflow) -> StateSchema {
    let mut schema = StateSchema::default();
    for def in wf.agents.values() {
        for key in referenced_state_keys(&def.instructions, false).unwrap_or_default() {
            let Some(t) = wf.state_schema.fields.get(&key) else { continue };
            if let Some(default) = wf.state_schema.defaults.get(&key) {
                schema.defaults.insert(key.clone(), default.clone());
            }
            schema.fields.insert(key, t.clone());
        }
    }
    for (key, t) in [(MESSAGE_KEY, Type::Str), (ANSWER_KEY, Type::Any)] {
        schema.defaults.remove(key);
        schema.fields.insert(key.to_string(), t);
    }
    schema
}

/// The `a2a:` section: the card of agent `name`.
fn a2a(wf: &Workflow, name: &str, def: &AgentDef) -> A2aAgent {
    let served =
        ServedAgent { workflow: wf.id.clone(), agent: name.to_string(), skill_description: skill_description(def) };
    A2aAgent {
        skill: name.to_string(),
        description: card_description(&wf.id, name, &def.instructions),
        name: Some(name.to_string()),
        tags: vec!["agent".to_string(), def.strategy.as_str().to_string()],
        examples: Vec::new(),
        input_key: Some(MESSAGE_KEY.to_string()),
        output_key: Some(ANSWER_KEY.to_string()),
        serves: Some(served),
    }
}

/// The instructions as written, trimmed and cut to [`DESCRIPTION_CHARS`]
/// (`…` marks a cut); for empty instructions, what the agent is.
fn card_description(workflow_id: &str, name: &str, instructions: &str) -> String {
    let text = instructions.trim();
    if text.is_empty() {
        return format!("The agent `{name}` of workflow `{workflow_id}`");
    }
    if text.chars().count() <= DESCRIPTION_CHARS {
        return text.to_string();
    }
    let cut: String = text.chars().take(DESCRIPTION_CHARS - 1).collect();
    format!("{}…", cut.trim_end())
}

/// `tools: search_notes, calc.add; strategy: react` (tools as written).
fn skill_description(def: &AgentDef) -> String {
    let tools: Vec<String> = def.tools.iter().map(|t| t.written()).collect();
    let tools = if tools.is_empty() { "none".to_string() } else { tools.join(", ") };
    format!("tools: {tools}; strategy: {}", def.strategy.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::compile_str;

    const W: &str = r#"
id: notes
version: 1.2.0
state_schema: { topic: { type: str, default: "birds" }, depth: int, other: str }
models:
  fast: { provider: openai, model: m-1, base_url: "http://127.0.0.1:1/v1", api_key_env: K }
mcp:
  servers:
    calc: { url: "http://127.0.0.1:1/mcp" }
budget: { max_tokens: 500 }
policy: { blocked_tools: [calc.sub] }
agents:
  researcher:
    model: fast
    instructions: "  Find notes on {{ state.topic }}, {{ state.depth }} deep.  "
    tools: [search_notes, calc.add, writer]
  writer: { model: fast, instructions: "Write clearly.", strategy: critic }
nodes:
  go: { type: agent, agent: researcher, message: "{{ state.other }}", output_key: other }
"#;

    fn w() -> Workflow {
        compile_str(W, "notes.yaml").unwrap_or_else(|d| panic!("{d}"))
    }

    #[test]
    fn one_agent_node_with_the_workflows_agents_models_tools_budget_and_policy() {
        let w = w();
        let s = served_agent(&w, "researcher").unwrap();
        assert_eq!((s.id.as_str(), s.version.as_str(), s.start.as_str()), ("notes.researcher", "1.2.0", "researcher"));
        assert_eq!(s.nodes.len(), 1);
        let NodeKind::Agent(a) = &s.nodes["researcher"].kind else { panic!("{:?}", s.nodes) };
        assert!(a.local);
        assert_eq!((a.agent.as_str(), a.output_key.as_deref()), ("researcher", Some("answer")));
        assert_eq!(a.message, Value::String("{{ state.message }}".into()));
        assert_eq!(s.nodes["researcher"].span, w.agents["researcher"].span, "errors point at the agent");
        assert_eq!((&s.models, &s.prices, &s.mcp_servers), (&w.models, &w.prices, &w.mcp_servers));
        assert_eq!((&s.agents, &s.budget, &s.policy), (&w.agents, &w.budget, &w.policy));
        assert_eq!(s.source_file, w.source_file);
        // The run checks pass, as they must for it to be registered.
        assert_eq!(crate::ir::check(&s, &crate::ir::Limits::default()), []);
        assert!(served_agent(&w, "nobody").is_none());
    }

    #[test]
    fn the_node_is_what_yaml_would_compile_to() {
        let src = "id: x\nstate_schema: { message: str, answer: any }\nmodels:\n  fast: { provider: openai, model: m-1 }\n\
                   agents:\n  researcher: { model: fast, instructions: hi }\n\
                   nodes:\n  researcher: { type: agent, agent: researcher, message: \"{{ state.message }}\", output_key: answer }\n";
        let compiled = compile_str(src, "x.yaml").unwrap_or_else(|d| panic!("{d}"));
        let made = served_agent(&compiled, "researcher").unwrap();
        let mut node = made.nodes["researcher"].clone();
        node.span = compiled.nodes["researcher"].span;
        assert_eq!(node, compiled.nodes["researcher"]);
        assert_eq!(made.edges, compiled.edges);
    }

    #[test]
    fn the_state_is_the_message_the_answer_and_what_the_instructions_read() {
        let s = served_agent(&w(), "writer").unwrap();
        let fields: Vec<(&str, String)> =
            s.state_schema.fields.iter().map(|(k, t)| (k.as_str(), t.to_string())).collect();
        assert_eq!(
            fields,
            [("answer", "any".into()), ("depth", "int".into()), ("message", "str".into()), ("topic", "str".into())]
        );
        assert_eq!(s.state_schema.defaults, BTreeMap::from([("topic".to_string(), serde_json::json!("birds"))]));
        // The message is required: the node reads it and nothing writes it first.
        let required: Vec<String> = crate::ir::required_inputs(&s).into_iter().map(|r| r.key).collect();
        assert_eq!(required, ["message"]);
    }

    #[test]
    fn the_card_names_the_agent_its_instructions_tools_and_strategy() {
        let w = w();
        let a = served_agent(&w, "researcher").unwrap().a2a.unwrap();
        assert_eq!((a.skill.as_str(), a.name.as_deref()), ("researcher", Some("researcher")));
        assert_eq!(a.description, "Find notes on {{ state.topic }}, {{ state.depth }} deep.");
        assert_eq!((a.input_key.as_deref(), a.output_key.as_deref()), (Some("message"), Some("answer")));
        assert_eq!(a.tags, ["agent", "react"]);
        let served = a.serves.unwrap();
        assert_eq!((served.workflow.as_str(), served.agent.as_str()), ("notes", "researcher"));
        assert_eq!(served.skill_description, "tools: search_notes, calc.add, writer; strategy: react");
        let writer = served_agent(&w, "writer").unwrap().a2a.unwrap();
        assert_eq!(writer.serves.unwrap().skill_description, "tools: none; strategy: critic");
    }

    #[test]
    fn long_or_empty_instructions_make_a_short_description() {
        let long = "word ".repeat(100);
        let cut = card_description("w", "a", &long);
        assert_eq!(cut.chars().count(), DESCRIPTION_CHARS, "{cut}");
        assert!(cut.ends_with("word…"), "{cut}");
        assert_eq!(card_description("w", "a", " \n "), "The agent `a` of workflow `w`");
        let exact = "é".repeat(DESCRIPTION_CHARS);
        assert_eq!(card_description("w", "a", &exact), exact);
    }

    #[test]
    fn every_agent_is_served_once_and_a_served_workflow_serves_no_more() {
        let w = w();
        let all = served_agents(&w);
        let ids: Vec<&str> = all.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, ["notes.researcher", "notes.writer"]);
        assert!(all.iter().all(is_served_agent));
        assert!(!is_served_agent(&w));
        assert_eq!(served_agents(&all[0]), [], "no notes.researcher.writer");
        assert!(all[0].session_state.is_empty());
        let mut carried = w.clone();
        carried.session_state = vec!["topic".into(), "other".into()];
        assert_eq!(served_agent(&carried, "researcher").unwrap().session_state, ["topic"], "only keys it has");
        // Made twice, one identity: a restart registers nothing new.
        assert_eq!(served_agents(&w)[0].content_hash(), all[0].content_hash());
    }
}
