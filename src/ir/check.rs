//! Checks on a workflow IR however it arrived: posted as JSON, read back
//! from a journal, or just compiled from YAML. The YAML compiler checks far
//! more as it reads (schemas, types, reachability, with line and column);
//! an IR that skipped it gets the checks that keep a runtime safe: the
//! graph holds together (ids, `start`, every target exists), every local
//! agent a node or an agent names exists and no agent reaches itself, every
//! template and condition compiles and stays within the template limits
//! (so no render can overflow the stack, see [`check_template`]), every
//! duration is within `max_duration_ms`, `max_steps` is positive, and the
//! workflow with its sub-workflows has at most `max_nodes` nodes.
//!
//! Pure: it reads the IR and the limits, nothing else. A finding names the
//! JSON path of the field it is about (`nodes.search.url`,
//! `nodes.child.workflow.nodes.a.next`) and the node.

use serde_json::Value;

use super::agents::call_cycles;
use super::eval::{EvalOnFail, ScorerKind};
use super::limits::{Limit, Limits};
use super::template::{check_template, is_template, referenced_variables_with};
use super::workflow::{Node, NodeKind, RetryPolicy, Workflow};

/// One problem of an IR: the JSON path of the field, what is wrong, and
/// the node (of the workflow or sub-workflow the path runs through).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub path: String,
    pub message: String,
    pub node: Option<String>,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Every problem of `wf` under `limits` (empty when it may be registered
/// and run): the graph, every template's syntax and size, durations,
/// `max_steps`, and the node count, sub-workflows included.
pub fn check(wf: &Workflow, limits: &Limits) -> Vec<Finding> {
    Walk::new(limits, true).run(wf)
}

/// Only the limits (template length and terms, durations, `max_steps`,
/// nodes): what the YAML compiler adds after its own checks, which cover
/// the graph and the templates' syntax already.
pub(crate) fn check_limits(wf: &Workflow, limits: &Limits) -> Vec<Finding> {
    Walk::new(limits, false).run(wf)
}

struct Walk<'l> {
    limits: &'l Limits,
    /// Also the graph and each template's syntax (not only the limits).
    full: bool,
    out: Vec<Finding>,
    /// The node the fields being walked belong to.
    node: Option<String>,
}

impl<'l> Walk<'l> {
    fn new(limits: &'l Limits, full: bool) -> Self {
        Walk { limits, full, out: Vec::new(), node: None }
    }

    fn run(mut self, wf: &Workflow) -> Vec<Finding> {
        let nodes = self.workflow(wf, "");
        if nodes > self.limits.max_nodes {
            let what = format!(
                "the workflow has {}, its sub-workflows' included",
                crate::plural::count(nodes, "node", "nodes")
            );
            let message = self.limits.exceeded(Limit::MaxNodes, what);
            self.out.push(Finding { path: "nodes".into(), message, node: None });
        }
        self.out
    }

    fn add(&mut self, path: String, message: String) {
        self.out.push(Finding { path, message, node: self.node.clone() });
    }

    /// Walk one workflow whose fields are under `prefix`; its node count,
    /// sub-workflows' included.
    fn workflow(&mut self, wf: &Workflow, prefix: &str) -> u64 {
        self.node = None;
        if self.full {
            self.graph(wf, prefix);
        }
        if let Some(ms) = wf.timeout_ms {
            self.duration(format!("{prefix}timeout_ms"), ms);
        }
        if wf.max_steps == Some(0) {
            self.add(format!("{prefix}max_steps"), "`max_steps` must be at least 1".into());
        }
        for (name, policy) in &wf.retry_policies {
            self.retry(&format!("{prefix}retry_policies.{name}"), policy);
        }
        for (name, agent) in &wf.agents {
            self.template(format!("{prefix}agents.{name}.instructions"), &agent.instructions, false);
        }
        if self.full {
            for (i, key) in wf.session_state.iter().enumerate() {
                if !wf.state_schema.fields.contains_key(key) {
                    self.add(format!("{prefix}session_state[{i}]"), format!("`{key}` is not in `state_schema`"));
                }
            }
        }
        let mut count = wf.nodes.len() as u64;
        for (key, node) in &wf.nodes {
            self.node = Some(key.clone());
            let at = format!("{prefix}nodes.{key}");
            if let Some(ms) = node.timeout_ms {
                self.duration(format!("{at}.timeout_ms"), ms);
            }
            self.retry(&format!("{at}.retry"), &node.retry);
            count = count.saturating_add(self.kind(node, &at));
        }
        self.node = None;
        count
    }

    /// The templates and durations of a node's kind; the nodes of an
    /// embedded sub-workflow.
    fn kind(&mut self, node: &Node, at: &str) -> u64 {
        match &node.kind {
            NodeKind::Http(h) => {
                self.template(format!("{at}.url"), &h.url, false);
                for (name, value) in &h.headers {
                    self.template(format!("{at}.headers.{name}"), value, false);
                }
                if let Some(body) = &h.body {
                    self.value(format!("{at}.body"), body);
                }
            }
            NodeKind::Branch(b) => {
                for (i, c) in b.conditions.iter().enumerate() {
                    self.template(format!("{at}.conditions[{i}].when"), &c.when, true);
                }
            }
            NodeKind::Set(s) => {
                for (key, value) in &s.values {
                    self.value(format!("{at}.values.{key}"), value);
                }
            }
            NodeKind::End => {}
            NodeKind::Function(f) => {
                if let Some(input) = &f.input {
                    self.value(format!("{at}.input"), input);
                }
            }
            NodeKind::Parallel(p) => {
                if let Some(for_each) = &p.for_each {
                    self.template(format!("{at}.for_each"), for_each, false);
                }
            }
            NodeKind::Wait(w) => {
                if let Some(event) = &w.event {
                    self.template(format!("{at}.event"), event, false);
                }
                if let Some(until) = &w.until {
                    self.template(format!("{at}.until"), until, false);
                }
                if let Some(ms) = w.duration_ms {
                    self.duration(format!("{at}.duration_ms"), ms);
                }
            }
            NodeKind::Approval(a) => self.template(format!("{at}.prompt"), &a.prompt, false),
            NodeKind::Workflow(s) => {
                if let Some(input) = &s.input {
                    self.value(format!("{at}.input"), input);
                }
                let node = self.node.take();
                let count = self.workflow(&s.workflow, &format!("{at}.workflow."));
                self.node = node;
                return count;
            }
            NodeKind::Model(m) => {
                if let Some(system) = &m.system {
                    self.template(format!("{at}.system"), system, false);
                }
                if let Some(prompt) = &m.prompt {
                    self.template(format!("{at}.prompt"), prompt, false);
                }
                for (i, message) in m.messages.iter().enumerate() {
                    self.template(format!("{at}.messages[{i}].content"), &message.content, false);
                }
            }
            NodeKind::Tool(t) => {
                if let Some(arguments) = &t.arguments {
                    self.value(format!("{at}.arguments"), arguments);
                }
            }
            NodeKind::Eval(e) => {
                for (i, scorer) in e.scorers.iter().enumerate() {
                    let path = format!("{at}.scorers[{i}]");
                    match &scorer.kind {
                        ScorerKind::Assertion { expr } => self.template(format!("{path}.expr"), expr, true),
                        ScorerKind::Contains { value, .. } => self.template(format!("{path}.value"), value, false),
                        ScorerKind::Rubric { rubric, .. } => self.template(format!("{path}.rubric"), rubric, false),
                        ScorerKind::JsonSchema { .. }
                        | ScorerKind::Latency { .. }
                        | ScorerKind::Cost { .. }
                        | ScorerKind::Regex { .. }
                        | ScorerKind::Trajectory { .. } => {}
                    }
                }
            }
            NodeKind::Agent(a) => {
                self.value(format!("{at}.message"), &a.message);
                self.duration(format!("{at}.timeout_ms"), a.timeout_ms);
            }
        }
        0
    }

    /// A JSON value whose strings are templates.
    fn value(&mut self, path: String, value: &Value) {
        // Iterative: a value read back from JSON may be nested deeply.
        let mut todo = vec![(path, value)];
        while let Some((path, value)) = todo.pop() {
            match value {
                Value::String(s) => self.template(path, s, false),
                Value::Array(items) => {
                    todo.extend(items.iter().enumerate().rev().map(|(i, v)| (format!("{path}[{i}]"), v)));
                }
                Value::Object(map) => todo.extend(map.iter().rev().map(|(k, v)| (format!("{path}.{k}"), v))),
                Value::Null | Value::Bool(_) | Value::Number(_) => {}
            }
        }
    }

    /// One template, or with `expression` one condition.
    fn template(&mut self, path: String, text: &str, expression: bool) {
        if !expression && !is_template(text) {
            return;
        }
        let checked = if self.full {
            referenced_variables_with(text, expression, self.limits).map(drop)
        } else {
            check_template(text, expression, self.limits)
        };
        if let Err(err) = checked {
            let what = if expression { "condition" } else { "template" };
            let message = match err.limit {
                Some(_) => format!("{what}: {}", err.message),
                None => format!("{what} does not compile: {}", err.message),
            };
            self.add(path, message);
        }
    }

    fn duration(&mut self, path: String, ms: u64) {
        if ms > self.limits.max_duration_ms {
            let field = path.rsplit('.').next().unwrap_or(&path).to_string();
            let message = self.limits.exceeded(Limit::MaxDurationMs, format!("`{field}` of {ms} ms"));
            self.add(path, message);
        }
    }

    fn retry(&mut self, at: &str, policy: &RetryPolicy) {
        self.duration(format!("{at}.delay_ms"), policy.delay_ms);
        self.duration(format!("{at}.max_delay_ms"), policy.max_delay_ms);
    }

    /// Ids, `start`, and every target a node or edge names must exist.
    fn graph(&mut self, wf: &Workflow, prefix: &str) {
        if wf.id.trim().is_empty() {
            self.add(format!("{prefix}id"), "the workflow id is empty".into());
        }
        if wf.version.trim().is_empty() {
            self.add(format!("{prefix}version"), "the workflow version is empty".into());
        }
        if wf.nodes.is_empty() {
            self.add(format!("{prefix}nodes"), "the workflow has no nodes".into());
        }
        if !wf.nodes.contains_key(&wf.start) {
            let message = format!("`start` names node `{}`, which does not exist", wf.start);
            self.add(format!("{prefix}start"), message);
        }
        for (key, node) in &wf.nodes {
            self.node = Some(key.clone());
            if &node.id != key {
                self.add(format!("{prefix}nodes.{key}.id"), format!("node `{key}` says its id is `{}`", node.id));
            }
            for (field, target) in targets(node) {
                if !wf.nodes.contains_key(target) {
                    let message = format!("`{field}` names node `{target}`, which does not exist");
                    self.add(format!("{prefix}nodes.{key}.{field}"), message);
                }
            }
        }
        self.node = None;
        self.agents(wf, prefix);
        for (i, edge) in wf.edges.iter().enumerate() {
            for end in [&edge.from, &edge.to] {
                if !wf.nodes.contains_key(end) {
                    let message = format!("edge {} -> {} names node `{end}`, which does not exist", edge.from, edge.to);
                    self.add(format!("{prefix}edges[{i}]"), message);
                }
            }
        }
    }

    /// Every local agent a node or an agent names exists; no agent calls
    /// itself, directly or through others.
    fn agents(&mut self, wf: &Workflow, prefix: &str) {
        for (key, node) in &wf.nodes {
            if let NodeKind::Agent(a) = &node.kind
                && a.local
                && !wf.agents.contains_key(&a.agent)
            {
                self.node = Some(key.clone());
                let message = format!("names local agent `{}`, which is not in `agents`", a.agent);
                self.add(format!("{prefix}nodes.{key}.agent"), message);
            }
        }
        self.node = None;
        for (name, agent) in &wf.agents {
            for called in agent.called_agents() {
                if called == name || !wf.agents.contains_key(called) {
                    let message = format!("agent `{name}` calls agent `{called}`, which is not another of `agents`");
                    self.add(format!("{prefix}agents.{name}"), message);
                }
            }
        }
        let calls: Vec<(&str, Vec<&str>)> =
            wf.agents.iter().map(|(name, agent)| (name.as_str(), agent.called_agents().collect())).collect();
        for cycle in call_cycles(&calls) {
            let mut shown: Vec<&str> = cycle.iter().copied().take(10).collect();
            if cycle.len() > 10 {
                shown.push("…");
            }
            let message = format!("agents call each other in a cycle: {}", shown.join(" -> "));
            self.add(format!("{prefix}agents.{}", cycle[0]), message);
        }
    }
}

/// The nodes `node` may go to, with the field that names each.
fn targets(node: &Node) -> Vec<(&'static str, &String)> {
    let mut t: Vec<(&'static str, &String)> = node.next.iter().map(|n| ("next", n)).collect();
    match &node.kind {
        NodeKind::Branch(b) => {
            t.extend(b.conditions.iter().map(|c| ("conditions.next", &c.next)));
            t.extend(b.default.iter().map(|d| ("default", d)));
        }
        NodeKind::Parallel(p) => {
            t.extend(p.branches.iter().map(|b| ("branches", b)));
            t.push(("join", &p.join));
        }
        NodeKind::Wait(w) => t.extend(w.on_timeout.iter().map(|n| ("on_timeout", n))),
        NodeKind::Approval(a) => {
            t.extend(a.on_reject.iter().map(|n| ("on_reject", n)));
            t.extend(a.on_timeout.iter().map(|n| ("on_timeout", n)));
        }
        NodeKind::Eval(e) => {
            if let EvalOnFail::RetryFrom { node, .. } = &e.on_fail {
                t.push(("on_fail.retry_from", node));
            }
        }
        _ => {}
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compiled() -> Workflow {
        let yaml = "id: t\nstate_schema: {n: int, s: str}\nnodes:\n  a: {type: set, values: {s: 'x'}, next: b}\n  b: {type: end}\n";
        crate::ir::compile_str(yaml, "t.yaml").unwrap()
    }

    #[test]
    fn a_compiled_workflow_passes() {
        assert_eq!(check(&compiled(), &Limits::default()), []);
    }

    #[test]
    fn deep_templates_durations_and_targets_are_found_by_path() {
        let mut wf = compiled();
        let deep = format!("{{{{ state.n{} }}}}", " + 1".repeat(10_000));
        let Some(NodeKind::Set(set)) = wf.nodes.get_mut("a").map(|n| &mut n.kind) else { panic!("not a set") };
        set.values.insert("s".into(), serde_json::json!({"deep": [deep]}));
        wf.nodes.get_mut("a").unwrap().timeout_ms = Some(u64::MAX);
        wf.nodes.get_mut("b").unwrap().next = Some("nowhere".into());
        wf.max_steps = Some(0);
        let found = check(&wf, &Limits::default());
        let paths: Vec<&str> = found.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, ["nodes.b.next", "max_steps", "nodes.a.timeout_ms", "nodes.a.values.s.deep[0]"]);
        assert!(found[3].message.contains("max_expression_terms"), "{}", found[3].message);
        assert_eq!(found[3].node.as_deref(), Some("a"));
        assert!(found[2].message.contains("max_duration_ms"), "{}", found[2].message);
    }

    #[test]
    fn local_agents_must_exist_and_not_call_each_other_in_a_cycle() {
        let yaml = "id: t\nstate_schema: { s: str }\nagents:\n  a: { model: gpt-4o, instructions: x, tools: [b] }\n  \
                    b: { model: gpt-4o, instructions: x }\nnodes:\n  n: { type: agent, agent: a, message: hi }\n";
        let mut wf = crate::ir::compile_str(yaml, "t.yaml").unwrap();
        assert_eq!(check(&wf, &Limits::default()), []);
        let mut b = wf.agents.remove("b").unwrap();
        b.tools = vec![crate::ir::AgentTool::Agent { name: "a".into() }];
        wf.agents.insert("c".into(), b);
        wf.agents.get_mut("a").unwrap().instructions = "{{ state.s ".into();
        let found = check(&wf, &Limits::default());
        let got: Vec<(&str, &str)> = found.iter().map(|f| (f.path.as_str(), f.message.as_str())).collect();
        assert_eq!(
            got,
            [
                ("agents.a", "agent `a` calls agent `b`, which is not another of `agents`"),
                ("agents.a.instructions", got[1].1),
            ]
        );
        assert!(got[1].1.starts_with("template does not compile"), "{}", got[1].1);
        wf.agents.get_mut("a").unwrap().tools = vec![crate::ir::AgentTool::Agent { name: "c".into() }];
        wf.agents.get_mut("a").unwrap().instructions = "x".into();
        let NodeKind::Agent(node) = &mut wf.nodes.get_mut("n").unwrap().kind else { panic!("not an agent node") };
        node.agent = "z".into();
        let found = check(&wf, &Limits::default());
        let got: Vec<(&str, &str)> = found.iter().map(|f| (f.path.as_str(), f.message.as_str())).collect();
        assert_eq!(
            got,
            [
                ("nodes.n.agent", "names local agent `z`, which is not in `agents`"),
                ("agents.a", "agents call each other in a cycle: a -> c -> a"),
            ]
        );
    }

    #[test]
    fn sub_workflows_count_toward_max_nodes_and_are_walked() {
        let mut child = compiled();
        child.nodes.get_mut("a").unwrap().kind = NodeKind::Approval(crate::ir::ApprovalNode {
            prompt: "{{ state.n ".into(),
            on_reject: None,
            on_timeout: None,
            output_key: None,
        });
        let mut wf = compiled();
        wf.nodes.get_mut("a").unwrap().kind =
            NodeKind::Workflow(crate::ir::SubWorkflowNode { workflow: Box::new(child), input: None, output_key: None });
        let limits = Limits { max_nodes: 3, ..Limits::default() };
        let found = check(&wf, &limits);
        let paths: Vec<&str> = found.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, ["nodes.a.workflow.nodes.a.prompt", "nodes"]);
        assert!(found[0].message.starts_with("template does not compile"), "{}", found[0].message);
        assert!(found[1].message.contains("4 nodes"), "{}", found[1].message);
    }
}
