//! Compiling `type: eval`: its scorers (each type with its own fields),
//! `target`, `output_key` and `on_fail`, whose `retry_from` names a node
//! (an [`EdgeKind::RetryFrom`] edge, so the graph checks see the loop).
//!
//! Regexes and JSON Schemas are compiled here, so a bad one is a finding
//! with its line and column, not a failure at run time. The `trajectory`
//! scorer's fields are `trajectory.rs`'s.

use std::collections::HashMap;

use super::nodes::Target;
use super::yaml::{Scalar, Value, Yaml};
use super::{Ctx, Fields, optional};
use crate::ir::{
    EdgeKind, EvalNode, EvalOnFail, NodeKind, Scorer, ScorerKind, Span, Type, referenced_variables_with, regex_problem,
};

pub(super) const EVAL: &[&str] = &["scorers", "target", "on_fail", "output_key"];

/// Scorer types and the fields each takes besides `type` and `name`.
const SCORERS: &[(&str, &[&str])] = &[
    ("assertion", &["expr"]),
    ("json_schema", &["schema", "key"]),
    ("latency", &["max_ms"]),
    ("cost", &["max_usd"]),
    ("rubric", &["model", "rubric", "min_score"]),
    ("contains", &["value", "key"]),
    ("regex", &["pattern", "key"]),
    ("trajectory", &["expected", "match"]),
];

/// What an assertion may read besides `state`.
pub(crate) const ASSERTION_VARIABLES: &[&str] = &["output", "expected"];

impl Ctx {
    pub(super) fn eval(&mut self, f: &Fields, at: Span, targets: &mut Vec<Target>) -> Option<NodeKind> {
        let target = optional(f.get("target").map(|y| self.state_key(y, "target")));
        let scorers = self.required(f, "scorers", "an eval node", at).and_then(|y| self.scorers(y));
        let on_fail = f.get("on_fail").map_or(Some(EvalOnFail::Fail), |y| self.on_fail(y, targets));
        let verdict = "the verdict `{passed, visit, scores, feedback}`, an object";
        let output_key = optional(f.get("output_key").map(|y| self.output_key_for(y, &Type::Dict, verdict)));
        if let (Some(EvalOnFail::RetryFrom { .. }), None) = (&on_fail, f.get("output_key")) {
            let span = f.entry("on_fail").map_or(at, |e| e.key_span);
            self.add(
                span,
                "`on_fail: {retry_from}` needs an `output_key` (a `dict` state key): it is where the node retried \
                 from finds the scores as feedback",
            );
            return None;
        }
        Some(NodeKind::Eval(EvalNode {
            scorers: scorers?,
            target: target?,
            on_fail: on_fail?,
            output_key: output_key?,
        }))
    }

    /// A state key the schema declares (`target`, a scorer's `key`).
    fn state_key(&mut self, y: &Yaml, field: &str) -> Option<String> {
        let key = self.string(y, field)?;
        if self.schema.get(&key).is_none() {
            let hint = super::did_you_mean(&key, self.schema.fields.keys().map(String::as_str));
            self.add(y.span, format!("`{field}` `{key}` is not in `state_schema`{hint}"));
            return None;
        }
        Some(key)
    }

    fn scorers(&mut self, y: &Yaml) -> Option<Vec<Scorer>> {
        let Value::Seq(items) = &y.value else {
            self.add(
                y.span,
                format!(
                    "`scorers` must be a list of scorers such as `{{type: assertion, expr: ...}}`, found {}",
                    y.kind()
                ),
            );
            return None;
        };
        if items.is_empty() {
            self.add(y.span, "`scorers` must hold at least one scorer");
            return None;
        }
        let parsed: Vec<Option<Scorer>> = items.iter().map(|item| self.scorer(item)).collect();
        let mut scorers: Vec<Scorer> = parsed.into_iter().collect::<Option<_>>()?;
        // Unnamed scorers are named by their type, numbered when a type repeats.
        let mut count: HashMap<&'static str, usize> = HashMap::new();
        for s in &scorers {
            *count.entry(s.kind.type_name()).or_default() += 1;
        }
        let mut seen: HashMap<&'static str, usize> = HashMap::new();
        for s in scorers.iter_mut() {
            if s.name.is_empty() {
                let t = s.kind.type_name();
                let n = seen.entry(t).or_default();
                *n += 1;
                s.name = if count[t] > 1 { format!("{t}#{n}") } else { t.to_string() };
            }
        }
        let mut names = std::collections::HashSet::new();
        for (s, item) in scorers.iter().zip(items) {
            if !names.insert(s.name.clone()) {
                self.add(
                    item.span,
                    format!("two scorers of this node are named `{}`: give each its own `name`", s.name),
                );
            }
        }
        Some(scorers)
    }

    fn scorer(&mut self, item: &Yaml) -> Option<Scorer> {
        let type_name = match &item.value {
            Value::Map(entries) => entries.iter().find(|e| e.key == "type").and_then(|e| e.value.as_str()),
            _ => None,
        };
        let known = SCORERS.iter().find(|(t, _)| Some(*t) == type_name);
        let Some((_, own)) = known else {
            let entries = self.entries(item, "a scorer", "key")?;
            let types: Vec<&str> = SCORERS.iter().map(|(t, _)| *t).collect();
            match (entries.iter().find(|e| e.key == "type"), type_name) {
                (None, _) => self.add(item.span, format!("a scorer is missing `type` (one of: {})", types.join(", "))),
                (Some(e), Some(name)) => {
                    let hint = super::did_you_mean(name, types.iter().copied());
                    self.add(
                        e.value.span,
                        format!("unknown scorer type `{name}`{hint} (expected one of: {})", types.join(", ")),
                    );
                }
                (Some(e), None) => {
                    self.string(&e.value, "type");
                }
            }
            return None;
        };
        let t = type_name.unwrap_or_default();
        let owner = format!("a `{t}` scorer");
        let f = self.fields(item, &owner, &[&["type", "name"][..], own].concat())?;
        let name = optional(f.get("name").map(|y| self.string(y, "name")))?.unwrap_or_default();
        let at = item.span;
        let kind = match t {
            "assertion" => {
                let y = self.required(&f, "expr", &owner, at)?;
                let expr = self.string(y, "expr")?;
                self.assertion(&expr, y.span)?;
                ScorerKind::Assertion { expr }
            }
            "json_schema" => {
                let y = self.required(&f, "schema", &owner, at)?;
                let schema = self.literal_json(y)?;
                if let Err(err) = crate::ir::compile_schema(&schema) {
                    self.add(y.span, format!("`schema` is not a valid JSON Schema: {err}"));
                    return None;
                }
                let key = optional(f.get("key").map(|y| self.state_key(y, "key")))?;
                ScorerKind::JsonSchema { schema, key }
            }
            "latency" => ScorerKind::Latency {
                max_ms: self.required(&f, "max_ms", &owner, at).and_then(|y| self.int(y, "max_ms", 1))?,
            },
            "cost" => ScorerKind::Cost {
                max_usd: self
                    .required(&f, "max_usd", &owner, at)
                    .and_then(|y| self.bounded_number(y, "max_usd", 0.0, f64::MAX))?,
            },
            "rubric" => {
                let model =
                    self.required(&f, "model", &owner, at).and_then(|y| self.model_named(y, "model", "rubric judge: "));
                let rubric = self.required(&f, "rubric", &owner, at).and_then(|y| self.template_string(y, "rubric"));
                let min_score = f.get("min_score").map_or(Some(3.0), |y| self.bounded_number(y, "min_score", 1.0, 5.0));
                let (model, config) = model?;
                ScorerKind::Rubric { model, config: Box::new(config), rubric: rubric?, min_score: min_score? }
            }
            "contains" => {
                let value = self.required(&f, "value", &owner, at).and_then(|y| match y.scalar_text() {
                    Some(text) => {
                        self.template(text, y.span, false);
                        Some(text.to_string())
                    }
                    None => {
                        self.add(y.span, format!("`value` must be a string, found {}", y.kind()));
                        None
                    }
                });
                let key = optional(f.get("key").map(|y| self.state_key(y, "key")));
                ScorerKind::Contains { value: value?, key: key? }
            }
            "trajectory" => self.trajectory(&f, at)?,
            _ => {
                let pattern = self.required(&f, "pattern", &owner, at).and_then(|y| {
                    let text = self.string(y, "pattern")?;
                    match regex_problem(&text) {
                        None => Some(text),
                        Some(problem) => {
                            self.add(y.span, format!("`pattern` is not a valid regex: {problem}"));
                            None
                        }
                    }
                });
                let key = optional(f.get("key").map(|y| self.state_key(y, "key")));
                ScorerKind::Regex { pattern: pattern?, key: key? }
            }
        };
        Some(Scorer { name, kind })
    }

    /// An assertion compiles and reads only `state.<declared key>`,
    /// `output` and `expected`.
    fn assertion(&mut self, expr: &str, span: Span) -> Option<()> {
        let vars = match referenced_variables_with(expr, true, &self.options.limits) {
            Ok(vars) => vars,
            Err(err) if err.limit.is_some() => {
                self.add(span, format!("`expr`: {}", err.message));
                return None;
            }
            Err(err) => {
                self.add(span, format!("`expr` does not compile: {}", err.message));
                return None;
            }
        };
        let mut ok = true;
        for var in &vars {
            let mut parts = var.split('.');
            match (parts.next(), parts.next()) {
                (Some("state"), Some(key)) if self.schema.get(key).is_none() => {
                    let hint = super::did_you_mean(key, self.schema.fields.keys().map(String::as_str));
                    self.add(span, format!("`expr` reads `state.{key}`, which is not in `state_schema`{hint}"));
                    ok = false;
                }
                (Some("state"), _) => {}
                (Some(head), _) if ASSERTION_VARIABLES.contains(&head) => {}
                (head, _) => {
                    let head = head.unwrap_or(var);
                    self.add(
                        span,
                        format!(
                            "`expr` reads `{head}`, which is not defined: only `state`, `output` and `expected` are"
                        ),
                    );
                    ok = false;
                }
            }
        }
        ok.then_some(())
    }

    /// A number within `[min, max]`.
    fn bounded_number(&mut self, y: &Yaml, field: &str, min: f64, max: f64) -> Option<f64> {
        let n = match &y.value {
            Value::Scalar(_, Scalar::Int(n)) => *n as f64,
            Value::Scalar(_, Scalar::Float(f)) => *f,
            _ => {
                self.add(y.span, format!("`{field}` must be a number, found {}", y.kind()));
                return None;
            }
        };
        if !(min..=max).contains(&n) {
            let range = if max == f64::MAX { format!("at least {min}") } else { format!("between {min} and {max}") };
            self.add(y.span, format!("`{field}` must be {range}, found {n}"));
            return None;
        }
        Some(n)
    }

    /// `on_fail: fail | continue | {retry_from: <node>, max_retries: N}`.
    fn on_fail(&mut self, y: &Yaml, targets: &mut Vec<Target>) -> Option<EvalOnFail> {
        if let Value::Map(_) = &y.value {
            let f = self.fields(y, "`on_fail`", &["retry_from", "max_retries"])?;
            let node = self
                .required(&f, "retry_from", "`on_fail`", y.span)
                .and_then(|n| self.target(n, "retry_from", EdgeKind::RetryFrom, targets));
            let max_retries = f.get("max_retries").map_or(Some(1), |m| self.int(m, "max_retries", 1));
            let max_retries = max_retries.and_then(|m| u32::try_from(m).ok());
            return Some(EvalOnFail::RetryFrom { node: node?, max_retries: max_retries? });
        }
        if y.as_str().is_none() {
            self.add(
                y.span,
                format!(
                    "`on_fail` must be `fail`, `continue` or `{{retry_from: <node>, max_retries: N}}`, found {}",
                    y.kind()
                ),
            );
            return None;
        }
        match self.keyword(y, "on_fail", &["fail", "continue"])? {
            "fail" => Some(EvalOnFail::Fail),
            _ => Some(EvalOnFail::Continue),
        }
    }
}
