//! Which state keys an execution's input must hold: the keys some node
//! reads (in a template, a condition, an `input:`) before any node has
//! written them, on some path from `start`, unless the schema gives them a
//! default or makes them optional. [`prepare_input`] applies the defaults
//! and refuses an input that lacks one, before anything starts.
//!
//! The analysis is a must-be-written dataflow over the graph: the keys
//! written on every path into a node (intersection over its predecessors,
//! from nothing at `start`), computed with a worklist on bitsets; each
//! node's set only shrinks, so loops settle in at most (keys × edges)
//! steps. A parallel node's branches start from the state at the fan-out;
//! its `join` sees what the branches may write merged in. It errs on the
//! side of not requiring: a node that may write any key (a `function` or
//! `model` without `output_key`) counts as writing all of them, and a
//! template that tests whether a key is there (`is defined`, `default`,
//! `in state`) requires nothing.
//!
//! Pure: it reads the IR, nothing else. It must not depend on the runtime.

use std::collections::{BTreeMap, HashMap};

use serde_json::{Map, Value};

use super::eval::{EvalOnFail, ScorerKind};
use super::schema::{SchemaError, Type};
use super::template::{is_template, referenced_variables, single_expression};
use super::workflow::{Merge, Node, NodeKind, Span, Workflow};

/// A key the input must hold, with the first node (in file order) that
/// reads it before it is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Required {
    pub key: String,
    pub node: String,
    pub span: Span,
}

/// The keys `wf`'s input must hold, by key.
pub fn required_inputs(wf: &Workflow) -> Vec<Required> {
    let keys: Vec<&str> = wf.state_schema.fields.keys().map(String::as_str).collect();
    let index: HashMap<&str, usize> = keys.iter().enumerate().map(|(i, k)| (*k, i)).collect();
    let ids: Vec<&str> = wf.nodes.keys().map(String::as_str).collect();
    let at: HashMap<&str, usize> = ids.iter().enumerate().map(|(i, k)| (*k, i)).collect();
    let nodes: Vec<&Node> = wf.nodes.values().collect();
    let words = keys.len().div_ceil(64).max(1);
    let all = Bits::full(keys.len(), words);

    // What each node reads and writes.
    let reads: Vec<Vec<usize>> =
        nodes.iter().map(|n| node_reads(n).iter().filter_map(|k| index.get(k.as_str()).copied()).collect()).collect();
    let mut writes: Vec<Bits> = nodes
        .iter()
        .map(|n| match node_writes(n) {
            None => all.clone(),
            Some(ks) => Bits::of(ks.iter().filter_map(|k| index.get(k.as_str()).copied()), words),
        })
        .collect();

    // Control successors; a parallel node's branches and join apart, and
    // the edges from a branch's chain into its join dropped (the join
    // follows the parallel node, with what the branches wrote merged in).
    let mut next: Vec<Vec<usize>> =
        nodes.iter().map(|n| successors(n).filter_map(|t| at.get(t).copied()).collect()).collect();
    let mut branches: Vec<Vec<usize>> = vec![Vec::new(); nodes.len()];
    let mut join: Vec<Option<usize>> = vec![None; nodes.len()];
    for (p, node) in nodes.iter().enumerate() {
        let NodeKind::Parallel(par) = &node.kind else { continue };
        let Some(&j) = at.get(par.join.as_str()) else { continue };
        let starts: Vec<usize> = par.branches.iter().filter_map(|b| at.get(b.as_str()).copied()).collect();
        let region = chain(&next, &starts, j);
        let mut merged = Bits::empty(words);
        for &r in &region {
            next[r].retain(|&t| t != j);
            merged.union(&writes[r]);
        }
        if par.merge == Merge::Collect {
            merged = Bits::of(par.output_key.iter().filter_map(|k| index.get(k.as_str()).copied()), words);
        }
        writes[p].union(&merged);
        branches[p] = starts;
        join[p] = Some(j);
        next[p].clear();
    }

    // Keys written on every path into each node; `None`: not reached.
    let mut into: Vec<Option<Bits>> = vec![None; nodes.len()];
    let Some(&start) = at.get(wf.start.as_str()) else { return Vec::new() };
    into[start] = Some(Bits::empty(words));
    let mut todo = vec![start];
    while let Some(n) = todo.pop() {
        let Some(before) = into[n].clone() else { continue };
        let mut after = before.clone();
        after.union(&writes[n]);
        let flows =
            next[n].iter().chain(join[n].iter()).map(|&t| (t, &after)).chain(branches[n].iter().map(|&t| (t, &before)));
        let mut changed = Vec::new();
        for (t, written) in flows {
            let grew = match &mut into[t] {
                slot @ None => {
                    *slot = Some(written.clone());
                    true
                }
                Some(known) => known.intersect(written),
            };
            if grew {
                changed.push(t);
            }
        }
        todo.extend(changed);
    }

    // A read of a key not written on some path in, first in file order.
    let mut found: BTreeMap<usize, (Span, usize)> = BTreeMap::new();
    for (n, before) in into.iter().enumerate() {
        let Some(before) = before else { continue };
        for &k in &reads[n] {
            if before.has(k) || !may_be_required(wf, keys[k]) {
                continue;
            }
            let span = nodes[n].span;
            let e = found.entry(k).or_insert((span, n));
            if (span.line, span.column, ids[n]) < (e.0.line, e.0.column, ids[e.1]) {
                *e = (span, n);
            }
        }
    }
    found
        .into_iter()
        .map(|(k, (span, n))| Required { key: keys[k].to_string(), node: ids[n].to_string(), span })
        .collect()
}

/// A key without a default whose type does not allow it to be left out.
fn may_be_required(wf: &Workflow, key: &str) -> bool {
    !wf.state_schema.defaults.contains_key(key) && !matches!(wf.state_schema.get(key), Some(Type::Optional(_)) | None)
}

/// Check `input` against `wf`'s schema, apply the defaults for keys it
/// leaves out, and refuse it if it lacks a key of `required`
/// ([`required_inputs`]): every problem at once.
pub fn prepare_input(
    wf: &Workflow,
    required: &[Required],
    input: Value,
) -> Result<Map<String, Value>, Vec<SchemaError>> {
    wf.state_schema.check_object(&input)?;
    let Value::Object(mut input) = input else { unreachable!("check_object accepts only objects") };
    for (key, value) in &wf.state_schema.defaults {
        if !input.contains_key(key) {
            input.insert(key.clone(), value.clone());
        }
    }
    let file = wf.source_file.as_deref().unwrap_or("the workflow");
    let missing: Vec<SchemaError> = required
        .iter()
        .filter(|r| !input.contains_key(&r.key))
        .map(|r| SchemaError::MissingKey {
            key: r.key.clone(),
            reader: format!("node `{}` at {file}:{}:{}", r.node, r.span.line, r.span.column),
        })
        .collect();
    if missing.is_empty() { Ok(input) } else { Err(missing) }
}

/// The nodes a parallel node's branches run: reachable from `starts`
/// without passing `join`.
fn chain(next: &[Vec<usize>], starts: &[usize], join: usize) -> Vec<usize> {
    let mut seen = vec![false; next.len()];
    let mut out = Vec::new();
    let mut todo: Vec<usize> = starts.iter().copied().filter(|&s| s != join).collect();
    while let Some(n) = todo.pop() {
        if std::mem::replace(&mut seen[n], true) {
            continue;
        }
        out.push(n);
        todo.extend(next[n].iter().copied().filter(|&t| t != join));
    }
    out
}

/// The nodes `node` may go to next (a parallel node's branches and join included).
fn successors(node: &Node) -> impl Iterator<Item = &str> {
    let mut out: Vec<&str> = node.next.iter().map(String::as_str).collect();
    match &node.kind {
        NodeKind::Branch(b) => {
            out.extend(b.conditions.iter().map(|c| c.next.as_str()));
            out.extend(b.default.as_deref());
        }
        NodeKind::Wait(w) => out.extend(w.on_timeout.as_deref()),
        NodeKind::Approval(a) => {
            out.extend(a.on_reject.as_deref());
            out.extend(a.on_timeout.as_deref());
        }
        NodeKind::Eval(e) => {
            if let EvalOnFail::RetryFrom { node, .. } = &e.on_fail {
                out.push(node);
            }
        }
        _ => {}
    }
    out.into_iter()
}

/// The keys a node writes; `None` when it may write any.
fn node_writes(node: &Node) -> Option<Vec<String>> {
    let key = |k: &Option<String>| Some(k.iter().cloned().collect());
    match &node.kind {
        NodeKind::Set(s) => Some(s.values.keys().cloned().collect()),
        NodeKind::Function(f) => f.output_key.as_ref().map(|k| vec![k.clone()]),
        NodeKind::Model(m) => m.output_key.as_ref().map(|k| vec![k.clone()]),
        NodeKind::Http(h) => key(&h.output_key),
        NodeKind::Tool(t) => key(&t.output_key),
        NodeKind::Agent(a) => key(&a.output_key),
        NodeKind::Eval(e) => key(&e.output_key),
        NodeKind::Wait(w) => key(&w.output_key),
        NodeKind::Approval(a) => key(&a.output_key),
        NodeKind::Workflow(w) => key(&w.output_key),
        // A parallel node's are its branches' (see `required_inputs`).
        NodeKind::Parallel(_) | NodeKind::Branch(_) | NodeKind::End => Some(Vec::new()),
    }
}

/// The top-level state keys a node's templates and conditions read.
fn node_reads(node: &Node) -> Vec<String> {
    let mut out = Vec::new();
    let mut text = |t: &str, expression: bool| reads_of(t, expression, &mut out);
    match &node.kind {
        NodeKind::Http(h) => {
            text(&h.url, false);
            h.headers.values().for_each(|v| text(v, false));
            if let Some(body) = &h.body {
                value_reads(body, &mut text);
            }
        }
        NodeKind::Branch(b) => b.conditions.iter().for_each(|c| text(&c.when, true)),
        NodeKind::Set(s) => s.values.values().for_each(|v| value_reads(v, &mut text)),
        NodeKind::End => {}
        NodeKind::Function(f) => {
            if let Some(input) = &f.input {
                value_reads(input, &mut text);
            }
        }
        NodeKind::Parallel(p) => {
            if let Some(for_each) = &p.for_each {
                text(for_each, false);
            }
        }
        NodeKind::Wait(w) => {
            w.event.iter().for_each(|e| text(e, false));
            w.until.iter().for_each(|u| text(u, false));
        }
        NodeKind::Approval(a) => text(&a.prompt, false),
        NodeKind::Workflow(w) => {
            if let Some(input) = &w.input {
                value_reads(input, &mut text);
            }
        }
        NodeKind::Model(m) => {
            m.system.iter().for_each(|s| text(s, false));
            m.prompt.iter().for_each(|p| text(p, false));
            m.messages.iter().for_each(|msg| text(&msg.content, false));
        }
        NodeKind::Tool(t) => {
            if let Some(arguments) = &t.arguments {
                value_reads(arguments, &mut text);
            }
        }
        NodeKind::Eval(e) => {
            for scorer in &e.scorers {
                match &scorer.kind {
                    ScorerKind::Assertion { expr } => text(expr, true),
                    ScorerKind::Contains { value, .. } => text(value, false),
                    ScorerKind::Rubric { rubric, .. } => text(rubric, false),
                    // Without its own list it reads the row's, from the state.
                    ScorerKind::Trajectory { expected: None, .. } => text("state.expected_trajectory", true),
                    _ => {}
                }
            }
        }
        NodeKind::Agent(a) => value_reads(&a.message, &mut text),
    }
    out
}

/// Every string of a JSON value, as a template.
fn value_reads(value: &Value, text: &mut impl FnMut(&str, bool)) {
    let mut todo = vec![value];
    while let Some(v) = todo.pop() {
        match v {
            Value::String(s) => text(s, false),
            Value::Array(items) => todo.extend(items),
            Value::Object(map) => todo.extend(map.values()),
            Value::Null | Value::Bool(_) | Value::Number(_) => {}
        }
    }
}

/// The `state.<key>` reads of one template or condition. One that asks
/// whether a key is there reads nothing that must be: it is written to
/// cope without it.
fn reads_of(text: &str, expression: bool, out: &mut Vec<String>) {
    if !expression && !is_template(text) {
        return;
    }
    let inner = if expression { text } else { single_expression(text).unwrap_or(text) };
    if ["defined", "default", " in state", "|d(", "| d("].iter().any(|g| inner.contains(g)) {
        return;
    }
    let Ok(vars) = referenced_variables(text, expression) else { return };
    for var in vars {
        if let Some(key) = var.strip_prefix("state.") {
            out.push(key.split('.').next().unwrap_or(key).to_string());
        }
    }
}

/// A set of key indexes.
#[derive(Clone, PartialEq, Eq)]
struct Bits(Vec<u64>);

impl Bits {
    fn empty(words: usize) -> Bits {
        Bits(vec![0; words])
    }

    fn full(keys: usize, words: usize) -> Bits {
        Bits::of(0..keys, words)
    }

    fn of(keys: impl IntoIterator<Item = usize>, words: usize) -> Bits {
        let mut b = Bits::empty(words);
        for k in keys {
            b.0[k / 64] |= 1 << (k % 64);
        }
        b
    }

    fn has(&self, k: usize) -> bool {
        self.0[k / 64] & (1 << (k % 64)) != 0
    }

    fn union(&mut self, other: &Bits) {
        self.0.iter_mut().zip(&other.0).for_each(|(a, b)| *a |= b);
    }

    /// Keep only what `other` has too; whether anything was dropped.
    fn intersect(&mut self, other: &Bits) -> bool {
        let mut changed = false;
        for (a, b) in self.0.iter_mut().zip(&other.0) {
            let kept = *a & b;
            changed |= kept != *a;
            *a = kept;
        }
        changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn required(yaml: &str) -> Vec<(String, String)> {
        let wf = crate::ir::compile_str(yaml, "wf.yaml").unwrap_or_else(|d| panic!("{d}"));
        required_inputs(&wf).into_iter().map(|r| (r.key, r.node)).collect()
    }

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
    }

    #[test]
    fn a_key_read_before_any_write_is_required() {
        let yaml = "id: t\nstate_schema: { q: str, a: str, n: int }\nnodes:\n  first: { type: set, values: { a: '{{ state.q }}' }, next: second }\n  second: { type: set, values: { n: '{{ state.a | length }}' } }\n";
        assert_eq!(required(yaml), pairs(&[("q", "first")]));
    }

    #[test]
    fn a_write_on_only_one_path_does_not_cover_the_read() {
        let yaml = "id: t\nstate_schema: { go: bool, a: str, out: str }\nnodes:\n  pick:\n    type: branch\n    conditions: [{ when: state.go, next: write }]\n    default: read\n  write: { type: set, values: { a: x }, next: read }\n  read: { type: set, values: { out: '{{ state.a }}' } }\n";
        assert_eq!(required(yaml), pairs(&[("a", "read"), ("go", "pick")]));
    }

    #[test]
    fn loops_settle_and_a_write_before_the_loop_covers_it() {
        let yaml = "id: t\nstate_schema: { tries: int, done: bool }\nnodes:\n  init: { type: set, values: { tries: 0 }, next: step }\n  step: { type: set, values: { tries: '{{ state.tries + 1 }}' }, next: check }\n  check:\n    type: branch\n    conditions: [{ when: state.tries < 3, next: step }]\n    default: end\n  end: { type: end }\n";
        assert_eq!(required(yaml), []);
    }

    #[test]
    fn defaults_optional_and_guarded_reads_are_not_required() {
        let yaml = "id: t\nstate_schema:\n  tries: { type: int, default: 0 }\n  note: str?\n  maybe: str\n  out: str\nnodes:\n  a: { type: set, values: { out: '{{ state.tries }} {{ state.note }} {{ state.maybe | default(\"x\") }}' } }\n";
        assert_eq!(required(yaml), []);
        let wf = crate::ir::compile_str(yaml, "wf.yaml").unwrap();
        let input = prepare_input(&wf, &required_inputs(&wf), json!({})).unwrap();
        assert_eq!(Value::Object(input), json!({ "tries": 0 }));
    }

    #[test]
    fn branches_start_from_the_fan_out_and_the_join_sees_what_they_wrote() {
        let yaml = "id: t\nstate_schema: { q: str, a: str, b: str, out: str }\nnodes:\n  fan: { type: parallel, branches: [one, two], join: done, merge: keys }\n  one: { type: set, values: { a: '{{ state.q }}' }, next: done }\n  two: { type: set, values: { b: x }, next: done }\n  done: { type: set, values: { out: '{{ state.a }}{{ state.b }}' } }\n";
        assert_eq!(required(yaml), pairs(&[("q", "one")]));
    }

    #[test]
    fn a_missing_key_is_refused_naming_the_reader() {
        let yaml = "id: t\nstate_schema: { question: str, out: str }\nnodes:\n  search:\n    type: set\n    values: { out: '{{ state.question }}' }\n";
        let wf = crate::ir::compile_str(yaml, "wf.yaml").unwrap();
        let errors = prepare_input(&wf, &required_inputs(&wf), json!({})).unwrap_err();
        assert_eq!(
            errors[0].to_string(),
            "input is missing required key `question` (read by node `search` at wf.yaml:4:3; give it in the input, or \
             a default in state_schema)"
        );
        assert!(prepare_input(&wf, &required_inputs(&wf), json!({ "question": "why" })).is_ok());
    }
}
