//! Compiling `type: parallel` nodes, and the checks on them that need the
//! whole graph: each branch's chain (the nodes it runs before it meets the
//! node's `join`) reaches `join`; under `merge: keys` no two branches write
//! the same state key; and only nodes in a `for_each` branch's chain read
//! `item` and `index`.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use super::graph::Successor;
use super::nodes::{Parsed, Target};
use super::yaml::{Value, Yaml};
use super::{Ctx, Fields, optional};
use crate::ir::{EdgeKind, Merge, NodeKind, OnError, ParallelNode, Span, Type, is_template, single_expression};

pub(super) const PARALLEL: &[&str] =
    &["branches", "for_each", "join", "merge", "on_error", "max_concurrency", "output_key"];
const MERGES: &[&str] = &["collect", "keys", "first"];
const ON_ERRORS: &[&str] = &["fail_fast", "collect"];

impl Ctx {
    pub(super) fn parallel(&mut self, f: &Fields, at: Span, targets: &mut Vec<Target>) -> Option<NodeKind> {
        let branches = self.required(f, "branches", "a parallel node", at).and_then(|y| self.branches(y, targets));
        let for_each = optional(f.get("for_each").map(|y| self.for_each(y)));
        let join = self
            .required(f, "join", "a parallel node", at)
            .and_then(|y| self.target(y, "join", EdgeKind::Join, targets));
        let merge = f.get("merge").map_or(Some(Merge::Collect), |y| {
            self.keyword(y, "merge", MERGES).map(|word| match word {
                "keys" => Merge::Keys,
                "first" => Merge::First,
                _ => Merge::Collect,
            })
        });
        let on_error = f.get("on_error").map_or(Some(OnError::FailFast), |y| {
            self.keyword(y, "on_error", ON_ERRORS).map(|word| match word {
                "collect" => OnError::Collect,
                _ => OnError::FailFast,
            })
        });
        let max_concurrency = optional(f.get("max_concurrency").map(|y| {
            let n = self.int(y, "max_concurrency", 1)?;
            let n = u32::try_from(n).ok();
            if n.is_none() {
                self.add(y.span, "`max_concurrency` is too large");
            }
            n
        }));

        if let (Some(y), Some(Some(_))) = (f.get("branches"), &for_each)
            && let Value::Seq(items) = &y.value
            && items.len() > 1
        {
            let message = format!(
                "with `for_each`, `branches` names exactly one node (the chain every item runs), found {}",
                items.len()
            );
            self.add(y.span, message);
        }
        if let (Some(join), Some(branches)) = (&join, &branches)
            && branches.contains(join)
            && let Some(y) = f.get("join")
        {
            let message = format!("`join` `{join}` is also a branch: a branch runs until it reaches `join`");
            self.add(y.span, message);
        }
        if let (Some(Merge::Keys), Some(_), Some(y)) = (merge, f.get("for_each"), f.get("merge")) {
            let message = "`merge: keys` cannot be used with `for_each`: every item runs the same chain, so \
                           every branch would write the same keys (use `collect` or `first`)";
            self.add(y.span, message);
        }
        // `None` when it has findings, `Some(None)` when there is none.
        let output_key = match (merge, f.entry("output_key")) {
            (Some(Merge::Collect), None) => {
                let message = "a parallel node with `merge: collect` is missing the required field `output_key` \
                               (where the list of branch results goes)";
                self.add(at, message);
                None
            }
            (Some(Merge::Collect), Some(e)) => {
                let written = Type::List(Box::new(Type::Dict));
                self.output_key_for(&e.value, &written, "a list of objects (one per branch)").map(Some)
            }
            (Some(merge), Some(e)) => {
                let word = if merge == Merge::Keys { "keys" } else { "first" };
                let message = format!(
                    "`output_key` is only for `merge: collect`: with `merge: {word}` the branches' own state keys \
                     are written"
                );
                self.add(e.key_span, message);
                None
            }
            (_, None) | (None, _) => Some(None),
        };
        Some(NodeKind::Parallel(ParallelNode {
            branches: branches?,
            for_each: for_each?,
            join: join?,
            merge: merge?,
            on_error: on_error?,
            max_concurrency: max_concurrency?,
            output_key: output_key?,
        }))
    }

    /// `branches`: the start node of each branch, at least one.
    fn branches(&mut self, y: &Yaml, targets: &mut Vec<Target>) -> Option<Vec<String>> {
        let Value::Seq(items) = &y.value else {
            self.add(y.span, format!("`branches` must be a list of node ids, found {}", y.kind()));
            return None;
        };
        if items.is_empty() {
            self.add(y.span, "`branches` must name at least one node");
            return None;
        }
        let mut names = Some(Vec::with_capacity(items.len()));
        let mut seen = HashSet::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let name = self.target(item, "a branch", EdgeKind::Branch(i), targets);
            if let Some(name) = &name
                && !seen.insert(name.clone())
            {
                self.add(item.span, format!("branch `{name}` is listed twice"));
            }
            match (name, &mut names) {
                (Some(name), Some(names)) => names.push(name),
                _ => names = None,
            }
        }
        names
    }

    /// `for_each`: a template that evaluates to a list.
    fn for_each(&mut self, y: &Yaml) -> Option<String> {
        let text = self.template_string(y, "for_each")?;
        if !is_template(&text) {
            let message = "`for_each` must be a template that evaluates to a list, such as `{{ state.items }}`";
            self.add(y.span, message);
            return None;
        }
        let list = Type::Optional(Box::new(Type::List(Box::new(Type::Any))));
        if let Some(key) = single_expression(&text).and_then(|e| e.strip_prefix("state."))
            && let Some(declared) = self.schema.get(key)
            && !list.is_assignable_from(declared)
        {
            let message = format!("`for_each` reads `state.{key}`, which is {declared}, not a list");
            self.add(y.span, message);
        }
        Some(text)
    }

    /// The checks on parallel nodes' branches, once every successor is
    /// known; and the verdict on reads of `item` and `index`. Costs the
    /// sum of the branches' chains, not branches times nodes.
    pub(super) fn branch_chains(&mut self, nodes: &[Parsed], resolved: &[Vec<Successor>]) {
        let mut in_for_each = vec![false; nodes.len()];
        let mut marks = Marks { stamp: vec![0; nodes.len()], current: 0 };
        for (p, parsed) in nodes.iter().enumerate() {
            let Some(NodeKind::Parallel(parallel)) = parsed.node.as_ref().map(|n| &n.kind) else {
                continue;
            };
            let Some(join) = resolved[p].iter().find(|s| s.kind == EdgeKind::Join).map(|s| s.node) else {
                continue;
            };
            let starts: Vec<&Successor> =
                resolved[p].iter().filter(|s| matches!(s.kind, EdgeKind::Branch(_)) && s.node != join).collect();
            // Under `merge: keys`: each key's first writer (a branch's
            // start), and the branches already looked at.
            let mut first_writer: HashMap<&str, usize> = HashMap::new();
            let mut done: HashSet<usize> = HashSet::new();
            for start in starts {
                let chain = chain(resolved, start.node, join, &mut marks);
                if !chain.iter().any(|&i| resolved[i].iter().any(|s| s.node == join)) {
                    let message = format!(
                        "branch `{}` never reaches `join` `{}`: give the last node of its chain `next: {}`",
                        nodes[start.node].id, nodes[join].id, nodes[join].id
                    );
                    self.add_for(start.span, Some(parsed.id.clone()), message);
                }
                if parallel.for_each.is_some() {
                    chain.iter().for_each(|&i| in_for_each[i] = true);
                }
                if parallel.merge == Merge::Keys && done.insert(start.node) {
                    let keys: BTreeSet<&str> = chain.iter().flat_map(|&i| writes(&nodes[i])).collect();
                    // The shared keys, by the earlier branch that wrote them first.
                    let mut shared: BTreeMap<usize, Vec<&str>> = BTreeMap::new();
                    for key in keys {
                        match first_writer.get(key) {
                            Some(&other) => shared.entry(other).or_default().push(key),
                            None => {
                                first_writer.insert(key, start.node);
                            }
                        }
                    }
                    for (other, keys) in shared {
                        self.shared_keys(&parsed.id, nodes, other, start, &keys);
                    }
                }
            }
        }
        for (i, parsed) in nodes.iter().enumerate() {
            if !in_for_each[i] {
                self.loop_reads_outside_for_each(&parsed.id, &parsed.loop_reads);
            }
        }
    }

    /// Under `merge: keys`: the keys the branch at `start` writes that the
    /// earlier branch at `other` wrote first.
    fn shared_keys(&mut self, parallel: &str, nodes: &[Parsed], other: usize, start: &Successor, shared: &[&str]) {
        let key = crate::plural::noun(shared.len(), "key", "keys");
        let message = format!(
            "branches `{}` and `{}` both write state {key} `{}`: with `merge: keys` each key must be \
             written by one branch",
            nodes[other].id,
            nodes[start.node].id,
            shared.join("`, `")
        );
        self.add_for(start.span, Some(parallel.to_string()), message);
    }
}

/// Which nodes the current chain has visited: a node is visited when its
/// stamp is `current`, so each chain starts afresh without clearing.
struct Marks {
    stamp: Vec<u32>,
    current: u32,
}

/// The nodes a branch runs: those reachable from `start` without passing
/// through `join`.
fn chain(resolved: &[Vec<Successor>], start: usize, join: usize, marks: &mut Marks) -> Vec<usize> {
    marks.current += 1;
    let mut members = Vec::new();
    let mut todo = vec![start];
    while let Some(i) = todo.pop() {
        if i != join && marks.stamp[i] != marks.current {
            marks.stamp[i] = marks.current;
            members.push(i);
            todo.extend(resolved[i].iter().map(|s| s.node));
        }
    }
    members
}

/// The state keys a node is known to write. A function without
/// `output_key` writes keys only known at run time: none are counted.
fn writes(parsed: &Parsed) -> Vec<&str> {
    let Some(node) = &parsed.node else {
        return Vec::new();
    };
    match &node.kind {
        NodeKind::Set(set) => set.values.keys().map(String::as_str).collect(),
        NodeKind::Http(n) => n.output_key.iter().map(String::as_str).collect(),
        NodeKind::Function(n) => n.output_key.iter().map(String::as_str).collect(),
        NodeKind::Parallel(n) => n.output_key.iter().map(String::as_str).collect(),
        NodeKind::Wait(n) => n.output_key.iter().map(String::as_str).collect(),
        NodeKind::Approval(n) => n.output_key.iter().map(String::as_str).collect(),
        NodeKind::Workflow(n) => n.output_key.iter().map(String::as_str).collect(),
        NodeKind::Model(n) => n.output_key.iter().map(String::as_str).collect(),
        NodeKind::Tool(n) => n.output_key.iter().map(String::as_str).collect(),
        NodeKind::Eval(n) => n.output_key.iter().map(String::as_str).collect(),
        NodeKind::Agent(n) => n.output_key.iter().map(String::as_str).collect(),
        NodeKind::Branch(_) | NodeKind::End => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn to(node: usize) -> Successor {
        Successor { node, kind: EdgeKind::Next, span: Span::default() }
    }

    #[test]
    fn a_chain_stops_at_join() {
        // 0 -> 1 -> 2 (join) -> 3; 1 -> 4
        let resolved = vec![vec![to(1)], vec![to(2), to(4)], vec![to(3)], vec![], vec![]];
        let mut marks = Marks { stamp: vec![0; 5], current: 0 };
        let mut members = chain(&resolved, 0, 2, &mut marks);
        members.sort_unstable();
        assert_eq!(members, [0, 1, 4]);
        assert_eq!(chain(&resolved, 2, 2, &mut marks), [] as [usize; 0]);
        assert_eq!(chain(&resolved, 1, 2, &mut marks).len(), 2, "a later chain starts afresh");
    }
}
