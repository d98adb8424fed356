//! Checks on a workflow posted as IR JSON (`POST /workflows` with
//! `application/json`). YAML goes through the compiler, which checks much
//! more (templates, conditions, schemas, reachability); an IR skips it, so
//! at least its graph is re-checked here before it is registered: ids,
//! `start`, and every target a node or edge names must exist. A finding
//! names the node and the field.

use std::collections::BTreeMap;

use crate::ir::{Node, NodeKind, Workflow};

/// Every structural problem of `wf` (empty when it passes), with the path
/// of the field it is about (`nodes.search.next`).
pub fn check(wf: &Workflow) -> Vec<(String, String)> {
    let mut out = Vec::new();
    check_into(wf, "", &mut out);
    out
}

fn check_into(wf: &Workflow, prefix: &str, out: &mut Vec<(String, String)>) {
    let mut add = |path: String, msg: String| out.push((format!("{prefix}{path}"), msg));
    if wf.id.trim().is_empty() {
        add("id".into(), "the workflow id is empty".into());
    }
    if wf.version.trim().is_empty() {
        add("version".into(), "the workflow version is empty".into());
    }
    if wf.nodes.is_empty() {
        add("nodes".into(), "the workflow has no nodes".into());
    }
    if !wf.nodes.contains_key(&wf.start) {
        add("start".into(), format!("`start` names node `{}`, which does not exist", wf.start));
    }
    for (key, node) in &wf.nodes {
        if &node.id != key {
            add(format!("nodes.{key}.id"), format!("node `{key}` says its id is `{}`", node.id));
        }
        for (field, target) in targets(node) {
            if !wf.nodes.contains_key(target) {
                add(format!("nodes.{key}.{field}"), format!("`{field}` names node `{target}`, which does not exist"));
            }
        }
    }
    for (i, edge) in wf.edges.iter().enumerate() {
        for end in [&edge.from, &edge.to] {
            if !wf.nodes.contains_key(end) {
                add(
                    format!("edges[{i}]"),
                    format!("edge {} -> {} names node `{end}`, which does not exist", edge.from, edge.to),
                );
            }
        }
    }
    let subs: BTreeMap<&String, &Workflow> = wf
        .nodes
        .iter()
        .filter_map(|(k, n)| match &n.kind {
            NodeKind::Workflow(s) => Some((k, &*s.workflow)),
            _ => None,
        })
        .collect();
    for (key, sub) in subs {
        check_into(sub, &format!("{prefix}nodes.{key}.workflow."), out);
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
            if let crate::ir::EvalOnFail::RetryFrom { node, .. } = &e.on_fail {
                t.push(("on_fail.retry_from", node));
            }
        }
        _ => {}
    }
    t
}
