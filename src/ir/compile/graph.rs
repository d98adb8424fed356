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
        // Stuck nodes reach only stuck nodes. Report the bottom groups: the
        // strongly connected components nothing leaves, each at its first
        // node. Any other stuck node ends up in one of them.
        let stuck: Vec<bool> = (0..nodes.len()).map(|i| reached[i] && !can_end[i]).collect();
        for mut members in bottom_cycles(successors, &stuck) {
            members.sort_unstable();
            let first = members[0];
            let names: Vec<&str> = members.iter().take(SHOWN_MEMBERS).map(|&u| nodes[u].id.as_str()).collect();
            let message = match names.as_slice() {
                [one] => format!("node `{one}` loops to itself with no way out to a node that ends the workflow"),
                _ => {
                    let more = members.len().saturating_sub(SHOWN_MEMBERS);
                    let more = if more > 0 { format!(" and {more} more") } else { String::new() };
                    format!(
                        "nodes `{}`{more} form a cycle with no way out: none leads to a node that ends the workflow",
                        names.join("`, `")
                    )
                }
            };
            self.add_for(nodes[first].span, Some(nodes[first].id.clone()), message);
        }
    }
}

/// How many members of a cycle a finding names.
const SHOWN_MEMBERS: usize = 10;

/// The strongly connected components among `within` that no edge leaves
/// and that hold a cycle (more than one node, or a node that is its own
/// successor). Tarjan's algorithm with an explicit stack: linear, and no
/// recursion however long the graph's chains.
fn bottom_cycles(successors: &[Vec<usize>], within: &[bool]) -> Vec<Vec<usize>> {
    const UNSEEN: usize = usize::MAX;
    let n = successors.len();
    let (mut index, mut low) = (vec![UNSEEN; n], vec![0; n]);
    let mut on_stack = vec![false; n];
    let mut component = vec![UNSEEN; n];
    let (mut stack, mut next_index, mut components) = (Vec::new(), 0, Vec::<Vec<usize>>::new());
    for root in (0..n).filter(|&v| within[v]) {
        if index[root] != UNSEEN {
            continue;
        }
        // (node, how many of its successors were looked at)
        let mut calls = vec![(root, 0usize)];
        index[root] = next_index;
        low[root] = next_index;
        next_index += 1;
        stack.push(root);
        on_stack[root] = true;
        while let Some(&mut (v, ref mut i)) = calls.last_mut() {
            if let Some(&w) = successors[v].get(*i) {
                *i += 1;
                if !within[w] {
                    continue;
                }
                if index[w] == UNSEEN {
                    index[w] = next_index;
                    low[w] = next_index;
                    next_index += 1;
                    stack.push(w);
                    on_stack[w] = true;
                    calls.push((w, 0));
                } else if on_stack[w] {
                    low[v] = low[v].min(index[w]);
                }
                continue;
            }
            calls.pop();
            if let Some(&(parent, _)) = calls.last() {
                low[parent] = low[parent].min(low[v]);
            }
            if low[v] == index[v] {
                let id = components.len();
                let mut members = Vec::new();
                while let Some(w) = stack.pop() {
                    on_stack[w] = false;
                    component[w] = id;
                    members.push(w);
                    if w == v {
                        break;
                    }
                }
                components.push(members);
            }
        }
    }
    components
        .into_iter()
        .enumerate()
        .filter(|(id, members)| {
            let leaves = members.iter().any(|&v| successors[v].iter().any(|&w| !within[w] || component[w] != *id));
            let cycle = members.len() > 1 || successors[members[0]].contains(&members[0]);
            !leaves && cycle
        })
        .map(|(_, members)| members)
        .collect()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bottom_cycles_are_the_components_nothing_leaves() {
        // 0 -> 1 -> 2 -> 1 (bottom); 0 -> 3 -> 3 (bottom, self-loop); 4 -> 5 -> 4 -> 0 (leaves)
        let successors = vec![vec![1, 3], vec![2], vec![1], vec![3], vec![5], vec![4, 0]];
        let mut found = bottom_cycles(&successors, &[true; 6]);
        found.iter_mut().for_each(|c| c.sort_unstable());
        found.sort();
        assert_eq!(found, [vec![1, 2], vec![3]]);
        // Outside `within` does not count as a way out, nor as a member.
        assert_eq!(bottom_cycles(&successors, &[false, true, true, false, false, false]), [vec![2, 1]]);
    }

    #[test]
    fn a_long_cycle_needs_no_recursion() {
        let n = 200_000;
        let successors: Vec<Vec<usize>> = (0..n).map(|i| vec![(i + 1) % n]).collect();
        let found = bottom_cycles(&successors, &vec![true; n]);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].len(), n);
    }
}
