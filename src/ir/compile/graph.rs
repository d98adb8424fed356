//! The graph checks: every named node exists, every node is reachable from
//! `start`, and no reachable loop is a trap (a cycle from which no node that
//! ends the workflow can be reached). Also derives [`Workflow::edges`].
//!
//! A parallel node's successors are its branches' starts and its `join`;
//! the checks on its branches' chains are [`super::parallel`]'s.
//!
//! [`Workflow::edges`]: crate::ir::Workflow::edges

use std::collections::{BTreeMap, HashMap};

use super::Ctx;
use super::nodes::Parsed;
use crate::ir::{Edge, EdgeKind, Node, NodeKind, Span};

/// The compiled graph: nodes by id, edges in file order, the start node.
type Graph = (BTreeMap<String, Node>, Vec<Edge>, String);

/// A resolved target: the node's index, the kind of edge, and where the
/// target is written (a misspelt one stands for the node it likely means).
#[derive(Clone, Copy)]
pub(super) struct Successor {
    pub node: usize,
    pub kind: EdgeKind,
    pub span: Span,
}

impl Ctx {
    /// Resolve targets and check the graph; the graph comes back only when
    /// every node compiled and `start` exists.
    pub(super) fn graph(&mut self, nodes: Vec<Parsed>, start: Option<(String, Span)>) -> Option<Graph> {
        let index: HashMap<&str, usize> = nodes.iter().enumerate().map(|(i, p)| (p.id.as_str(), i)).collect();
        let ids = || nodes.iter().map(|p| p.id.as_str());
        let mut resolved: Vec<Vec<Successor>> = vec![Vec::new(); nodes.len()];
        let mut edges = Vec::new();
        // The graph's shape is checked only when every successor is known;
        // a misspelt target counts as the node it most likely means.
        let mut shape_known = nodes.iter().all(|p| p.complete);
        for (from, parsed) in nodes.iter().enumerate() {
            for target in &parsed.targets {
                let (kind, span) = (target.kind, target.span);
                if let Some(&to) = index.get(target.to.as_str()) {
                    resolved[from].push(Successor { node: to, kind, span });
                    edges.push(Edge { from: parsed.id.clone(), to: target.to.clone(), kind });
                    continue;
                }
                let field = match kind {
                    EdgeKind::Next => "`next`".to_string(),
                    EdgeKind::Condition(i) => format!("condition {}'s `next`", i + 1),
                    EdgeKind::Default => "`default`".to_string(),
                    EdgeKind::Branch(_) => "`branches`".to_string(),
                    EdgeKind::Join => "`join`".to_string(),
                    EdgeKind::OnTimeout => "`on_timeout`".to_string(),
                    EdgeKind::OnReject => "`on_reject`".to_string(),
                    EdgeKind::RetryFrom => "`retry_from`".to_string(),
                };
                let likely = super::suggest(&target.to, ids());
                let hint = likely.map(|s| format!(" (did you mean `{s}`?)")).unwrap_or_default();
                let message = format!("{field} names node `{}`, which does not exist{hint}", target.to);
                self.add_for(span, Some(parsed.id.clone()), message);
                match likely.and_then(|s| index.get(s)) {
                    Some(&to) => resolved[from].push(Successor { node: to, kind, span }),
                    None => shape_known = false,
                }
            }
        }
        let successors: Vec<Vec<usize>> = resolved.iter().map(|r| r.iter().map(|s| s.node).collect()).collect();
        let start = match start {
            None => nodes.first().map(|p| p.id.clone()),
            Some((name, span)) => {
                let found = index.contains_key(name.as_str());
                if !found {
                    let hint = super::did_you_mean(&name, ids());
                    self.add(span, format!("`start` names node `{name}`, which does not exist{hint}"));
                }
                found.then_some(name)
            }
        };
        if let Some(&first) = start.as_deref().and_then(|s| index.get(s)).filter(|_| shape_known) {
            self.reachability(&nodes, &successors, first);
        }
        if shape_known {
            self.branch_chains(&nodes, &resolved);
        }
        let mut compiled = BTreeMap::new();
        for parsed in nodes {
            compiled.insert(parsed.id, parsed.node?);
        }
        Some((compiled, edges, start?))
    }

    /// Unreachable nodes, and reachable cycles with no way out.
    fn reachability(&mut self, nodes: &[Parsed], successors: &[Vec<usize>], start: usize) {
        let reached = reach(successors, &[start]);
        for (i, parsed) in nodes.iter().enumerate() {
            if !reached[i] {
                let message =
                    format!("node `{}` is not reachable from the start node `{}`", parsed.id, nodes[start].id);
                self.add_for(parsed.span, Some(parsed.id.clone()), message);
            }
        }
        // Nodes from which some terminal node (no successor) can be reached.
        let mut predecessors = vec![Vec::new(); nodes.len()];
        for (from, tos) in successors.iter().enumerate() {
            for &to in tos {
                predecessors[to].push(from);
            }
        }
        // An eval node without `next` ends the workflow when it passes,
        // whatever its `retry_from` names.
        let ends = |p: &Parsed| matches!(&p.node, Some(n) if matches!(n.kind, NodeKind::Eval(_)) && n.next.is_none());
        let terminals: Vec<usize> = (0..nodes.len()).filter(|&i| successors[i].is_empty() || ends(&nodes[i])).collect();
        let can_end = reach(&predecessors, &terminals);
        // Stuck nodes, and what each reaches in one step or more (all stuck too).
        let onward: HashMap<usize, Vec<bool>> = (0..nodes.len())
            .filter(|&i| reached[i] && !can_end[i])
            .map(|i| (i, reach(successors, &successors[i])))
            .collect();
        let mut reported = vec![false; nodes.len()];
        for v in 0..nodes.len() {
            let Some(from_v) = onward.get(&v) else {
                continue;
            };
            // Report the bottom groups only: every node v reaches leads back
            // to v. Any other stuck node ends up in one of them.
            let leads_back = |u: usize| !from_v[u] || onward.get(&u).is_some_and(|from_u| from_u[v]);
            if reported[v] || !from_v[v] || !(0..nodes.len()).all(leads_back) {
                continue;
            }
            let members: Vec<&str> = (0..nodes.len()).filter(|&u| from_v[u]).map(|u| nodes[u].id.as_str()).collect();
            (0..nodes.len()).filter(|&u| from_v[u]).for_each(|u| reported[u] = true);
            let message = match members.as_slice() {
                [one] => format!("node `{one}` loops to itself with no way out to a node that ends the workflow"),
                _ => format!(
                    "nodes `{}` form a cycle with no way out: none leads to a node that ends the workflow",
                    members.join("`, `")
                ),
            };
            self.add_for(nodes[v].span, Some(nodes[v].id.clone()), message);
        }
    }
}

/// Which nodes can be reached from `seeds` (the seeds included).
fn reach(adjacent: &[Vec<usize>], seeds: &[usize]) -> Vec<bool> {
    let mut seen = vec![false; adjacent.len()];
    let mut todo = seeds.to_vec();
    while let Some(i) = todo.pop() {
        if !std::mem::replace(&mut seen[i], true) {
            todo.extend(&adjacent[i]);
        }
    }
    seen
}
