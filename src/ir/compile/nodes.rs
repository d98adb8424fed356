//! Compiling the `nodes:` mapping: node ids, the fields every node shares,
//! and the simple kinds' own fields (`http`, `branch`, `set`, `end`,
//! `function`). The others have their own files: [`super::parallel`],
//! [`super::waits`] (`wait`, `approval`) and [`super::subworkflow`].
//!
//! Each node comes out as a [`Parsed`] with its outgoing targets, which the
//! graph checks ([`super::graph`]) resolve; this module does not look at
//! other nodes.

use std::collections::BTreeMap;

use super::agent::AGENT;
use super::eval::EVAL;
use super::mcp::TOOL;
use super::model::MODEL;
use super::parallel::PARALLEL;
use super::state::LoopRead;
use super::subworkflow::SUB_WORKFLOW;
use super::waits::{APPROVAL, WAIT};
use super::yaml::{Entry, Value, Yaml};
use super::{Ctx, Fields, optional};
use crate::ir::{BranchNode, Condition, EdgeKind, FunctionNode, HttpNode, Limit, Node, NodeKind, SetNode, Span};

const COMMON: &[&str] = &["type", "next", "retry", "timeout_ms", "description"];
const HTTP: &[&str] = &["method", "url", "headers", "body", "output_key"];
const BRANCH: &[&str] = &["conditions", "default"];
const SET: &[&str] = &["values"];
const FUNCTION: &[&str] = &["function", "input", "output_key"];
const METHODS: &[&str] = &["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];
const KINDS: &[&str] = &[
    "http", "branch", "set", "end", "function", "parallel", "wait", "approval", "workflow", "model", "tool", "eval",
    "agent",
];
/// The kinds whose own fields name successors (besides `next`).
const NAMING_SUCCESSORS: &[&str] = &["branch", "parallel", "wait", "approval", "eval"];

/// One node as written, and the nodes it names.
pub(super) struct Parsed {
    pub id: String,
    /// Where the node's id is written.
    pub span: Span,
    /// `None` when the node has findings that keep it from compiling.
    pub node: Option<Node>,
    pub targets: Vec<Target>,
    /// Whether `targets` is every successor the node was written with;
    /// when some could not be read, the graph's shape is not checked.
    pub complete: bool,
    /// Its templates' reads of `item` and `index`.
    pub loop_reads: Vec<LoopRead>,
}

/// A node id named by `next`, a condition, `default`, `branches`, `join`,
/// `on_timeout` or `on_reject`, and where.
pub(super) struct Target {
    pub to: String,
    pub span: Span,
    pub kind: EdgeKind,
}

impl Ctx {
    /// Every node of the `nodes:` mapping, in file order.
    pub(super) fn nodes(&mut self, y: &Yaml) -> Option<Vec<Parsed>> {
        let entries = self.entries(y, "`nodes`", "node id")?;
        if entries.is_empty() {
            self.add(y.span, "`nodes` must hold at least one node");
            return None;
        }
        let limits = self.options.limits;
        if entries.len() as u64 > limits.max_nodes {
            let what = format!("`nodes` holds {}", crate::plural::count(entries.len(), "node", "nodes"));
            self.add(y.span, limits.exceeded(Limit::MaxNodes, what));
            return None;
        }
        let parsed = entries
            .into_iter()
            .map(|entry| {
                self.node = Some(entry.key.clone());
                let mut parsed = self.node_entry(entry);
                parsed.loop_reads = std::mem::take(&mut self.loop_reads);
                parsed
            })
            .collect();
        self.node = None;
        Some(parsed)
    }

    fn node_entry(&mut self, entry: &Entry) -> Parsed {
        let (id, span) = (entry.key.clone(), entry.key_span);
        let mut parsed = Parsed { id, span, node: None, targets: Vec::new(), complete: false, loop_reads: Vec::new() };
        let id = &parsed.id;
        if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric() || "_-".contains(c)) {
            let message = format!("invalid node id `{id}`: use only letters, digits, `_` and `-`");
            self.add(span, message);
        }
        let owner = format!("node `{id}`");
        let type_name = match &entry.value.value {
            Value::Map(entries) => entries.iter().find(|e| e.key == "type").and_then(|e| e.value.as_str()),
            _ => None,
        };
        let extra = match type_name {
            Some("http") => HTTP,
            Some("branch") => BRANCH,
            Some("set") => SET,
            Some("function") => FUNCTION,
            Some("parallel") => PARALLEL,
            Some("wait") => WAIT,
            Some("approval") => APPROVAL,
            Some("workflow") => SUB_WORKFLOW,
            Some("model") => MODEL,
            Some("tool") => TOOL,
            Some("eval") => EVAL,
            Some("agent") => AGENT,
            Some("end") => &[],
            _ => {
                self.unknown_type(&entry.value, &owner, span);
                return parsed;
            }
        };
        let Some(f) = self.fields(&entry.value, &owner, &[COMMON, extra].concat()) else {
            return parsed;
        };
        let kind = match type_name {
            Some("http") => self.http(&f, span),
            Some("branch") => self.branch(&f, span, &mut parsed.targets),
            Some("set") => self.set(&f, span),
            Some("function") => self.function(&f, span),
            Some("parallel") => self.parallel(&f, span, &mut parsed.targets),
            Some("wait") => self.wait(&f, span, &mut parsed.targets),
            Some("approval") => self.approval(&f, span, &mut parsed.targets),
            Some("workflow") => self.sub_workflow(&f, span),
            Some("model") => self.model_node(&f, span),
            Some("tool") => self.tool(&f, span),
            Some("eval") => self.eval(&f, span, &mut parsed.targets),
            Some("agent") => self.agent(&f, span),
            _ => Some(NodeKind::End),
        };
        // `next` is read here; some kinds' own fields name successors too.
        parsed.complete = kind.is_some() || !NAMING_SUCCESSORS.contains(&type_name.unwrap_or_default());
        let mut next = None;
        if let Some(e) = f.entry("next") {
            match (type_name, &kind) {
                (Some("branch"), _) => self.add(e.key_span, "a branch node must not have `next`: use `default`"),
                (Some("parallel"), _) => {
                    self.add(e.key_span, "a parallel node must not have `next`: the execution goes on at its `join`")
                }
                (_, Some(NodeKind::End)) => self.add(e.key_span, "an end node must not have `next`"),
                _ => {
                    next = self.target(&e.value, "next", EdgeKind::Next, &mut parsed.targets);
                    parsed.complete &= next.is_some();
                }
            }
        }
        let retry = f.get("retry").map_or(Some(Default::default()), |y| self.node_retry(y));
        let timeout_ms = optional(f.get("timeout_ms").map(|y| self.duration(y, "timeout_ms", 1)));
        if let Some(y) = f.get("description") {
            self.string(y, "description");
        }
        if let (Some(kind), Some(retry), Some(timeout_ms)) = (kind, retry, timeout_ms) {
            let id = parsed.id.clone();
            let (kind, timeout_ms) = super::agent::own_timeout(kind, timeout_ms);
            parsed.node = Some(Node { id, kind, next, retry, timeout_ms, span });
        }
        parsed
    }

    /// A node id named by `field`, recorded as one of the node's targets.
    pub(super) fn target(
        &mut self,
        y: &Yaml,
        field: &str,
        kind: EdgeKind,
        targets: &mut Vec<Target>,
    ) -> Option<String> {
        let to = self.string(y, field)?;
        targets.push(Target { to: to.clone(), span: y.span, kind });
        Some(to)
    }

    /// A node without a known `type`: report the type, not every field.
    fn unknown_type(&mut self, y: &Yaml, owner: &str, at: Span) {
        let Some(entries) = self.entries(y, owner, "key") else {
            return;
        };
        if let Some(y) = self.required(&Fields { entries }, "type", owner, at)
            && let Some(name) = self.string(y, "type")
        {
            let hint = super::suggest(&name, KINDS.iter().copied())
                .map(|s| format!("did you mean `{s}`? "))
                .unwrap_or_default();
            let message = format!("unknown node type `{name}` ({hint}expected one of: {})", KINDS.join(", "));
            self.add(y.span, message);
        }
    }

    fn http(&mut self, f: &Fields, at: Span) -> Option<NodeKind> {
        let method = f.get("method").map_or(Some("GET".to_string()), |y| {
            let method = self.string(y, "method")?.to_ascii_uppercase();
            let known = METHODS.contains(&method.as_str());
            if !known {
                self.add(y.span, format!("unknown HTTP method `{method}` (expected one of: {})", METHODS.join(", ")));
            }
            known.then_some(method)
        });
        let url = self.required(f, "url", "an http node", at).and_then(|y| {
            let text = self.template_string(y, "url")?;
            self.env_ok(y.span, text, "`url`")
        });
        let mut headers = Some(BTreeMap::new());
        if let Some(y) = f.get("headers") {
            headers = self.entries(y, "`headers`", "header").and_then(|entries| {
                let values: Vec<_> = entries
                    .iter()
                    .map(|e| {
                        let text = self.template_string(&e.value, "a header value")?;
                        self.env_ok(e.value.span, text, &format!("header `{}`", e.key))
                    })
                    .collect();
                let keys = entries.iter().map(|e| e.key.clone());
                keys.zip(values).map(|(k, v)| Some((k, v?))).collect()
            });
        }
        let body = f.get("body").map(|y| self.json(y));
        let output_key = f.get("output_key").map(|y| self.output_key(y));
        Some(NodeKind::Http(HttpNode {
            method: method?,
            url: url?,
            headers: headers?,
            body,
            output_key: optional(output_key)?,
        }))
    }

    fn branch(&mut self, f: &Fields, at: Span, targets: &mut Vec<Target>) -> Option<NodeKind> {
        let mut conditions = Some(Vec::new());
        if let Some(y) = f.get("conditions") {
            conditions = match &y.value {
                Value::Seq(items) => {
                    let parsed: Vec<_> =
                        items.iter().enumerate().map(|(i, item)| self.condition(i, item, targets)).collect();
                    parsed.into_iter().collect()
                }
                _ => {
                    self.add(
                        y.span,
                        format!("`conditions` must be a list of {{when, next}} mappings, found {}", y.kind()),
                    );
                    None
                }
            };
        }
        let default = f.get("default").and_then(|y| self.target(y, "default", EdgeKind::Default, targets));
        let empty = f.get("conditions").is_none_or(|y| matches!(&y.value, Value::Seq(items) if items.is_empty()));
        if empty && f.get("default").is_none() {
            self.add(at, "a branch node needs at least one condition or a `default`");
        }
        if f.get("default").is_some() && default.is_none() {
            return None;
        }
        Some(NodeKind::Branch(BranchNode { conditions: conditions?, default }))
    }

    fn condition(&mut self, index: usize, item: &Yaml, targets: &mut Vec<Target>) -> Option<Condition> {
        let f = self.fields(item, "a condition", &["when", "next"])?;
        let when = self.required(&f, "when", "a condition", item.span).and_then(|y| {
            let text = y.scalar_text().map(str::to_string);
            match &text {
                Some(text) => self.template(text, y.span, true),
                None => self.add(y.span, format!("`when` must be an expression, found {}", y.kind())),
            }
            text
        });
        let next = self
            .required(&f, "next", "a condition", item.span)
            .and_then(|y| self.target(y, "next", EdgeKind::Condition(index), targets));
        Some(Condition { when: when?, next: next?, span: item.span })
    }

    fn set(&mut self, f: &Fields, at: Span) -> Option<NodeKind> {
        let values = self.required(f, "values", "a set node", at)?;
        let entries = self.entries(values, "`values`", "state key")?;
        let mut out = BTreeMap::new();
        for entry in entries {
            let value = self.set_value(entry);
            out.insert(entry.key.clone(), value);
        }
        Some(NodeKind::Set(SetNode { values: out }))
    }

    fn function(&mut self, f: &Fields, at: Span) -> Option<NodeKind> {
        let function = self.required(f, "function", "a function node", at).and_then(|y| {
            let name = self.string(y, "function")?;
            if name.trim().is_empty() {
                self.add(y.span, "`function` must name a registered function");
            }
            Some(name)
        });
        let input = f.get("input").map(|y| self.json(y));
        let output_key = f.get("output_key").map(|y| self.output_key(y));
        Some(NodeKind::Function(FunctionNode { function: function?, input, output_key: optional(output_key)? }))
    }
}
