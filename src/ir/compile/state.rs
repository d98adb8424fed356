//! What the compiler can know about state before anything runs: templates
//! and conditions compile, they read only `state.<key>` for keys the schema
//! declares (and `item`/`index` in a `for_each` branch), output keys and
//! `set` keys exist, and values whose type is visible fit their key.

use std::collections::BTreeSet;

use serde_json::Value as Json;

use super::Ctx;
use super::yaml::{Entry, Scalar, Value, Yaml};
use crate::ir::{
    PathStep, Span, Type, is_filter, is_template, is_test, known_filters, known_tests, names,
    referenced_variables_with, single_expression,
};

/// The variables a `for_each` branch has besides `state`.
pub(super) const LOOP_VARIABLES: &[&str] = &["item", "index"];

/// A template's read of `item` or `index`. Whether the node runs in a
/// `for_each` branch is known only once the graph is, so the verdict waits
/// for [`Ctx::loop_reads_outside_for_each`].
pub(super) struct LoopRead {
    pub span: Span,
    pub name: String,
    /// "template" or "condition".
    pub what: &'static str,
}

impl Ctx {
    /// A value as JSON; every string in it is checked as a template.
    pub(super) fn json(&mut self, y: &Yaml) -> Json {
        match &y.value {
            Value::Scalar(_, Scalar::Null) => Json::Null,
            Value::Scalar(_, Scalar::Bool(b)) => Json::Bool(*b),
            Value::Scalar(_, Scalar::Int(n)) => Json::from(*n),
            Value::Scalar(text, Scalar::Float(f)) => serde_json::Number::from_f64(*f).map_or_else(
                || {
                    self.add(y.span, format!("`{text}` cannot be stored as JSON: write a finite number"));
                    Json::Null
                },
                Json::Number,
            ),
            Value::Scalar(text, Scalar::Str) => {
                self.template(text, y.span, false);
                Json::String(text.clone())
            }
            Value::Seq(items) => Json::Array(items.iter().map(|item| self.json(item)).collect()),
            Value::Map(_) => {
                let entries = self.entries(y, "a mapping", "key").unwrap_or_default();
                Json::Object(entries.into_iter().map(|e| (e.key.clone(), self.json(&e.value))).collect())
            }
        }
    }

    /// A string field that is a template (`url`, header values).
    pub(super) fn template_string(&mut self, y: &Yaml, field: &str) -> Option<String> {
        let text = self.string(y, field)?;
        self.template(&text, y.span, false);
        Some(text)
    }

    /// Check a template (or, with `expression`, a condition) written at `span`.
    pub(super) fn template(&mut self, text: &str, span: Span, expression: bool) {
        if !expression && !is_template(text) {
            return;
        }
        let what = if expression { "condition" } else { "template" };
        let vars = match referenced_variables_with(text, expression, &self.options.limits) {
            Ok(vars) => vars,
            Err(err) if err.limit.is_some() => return self.add(span, format!("{what}: {}", err.message)),
            Err(err) => return self.add(span, format!("{what} does not compile: {}", err.message)),
        };
        let mut others = BTreeSet::new();
        let mut keys = BTreeSet::new();
        for var in &vars {
            let mut parts = var.split('.');
            match (parts.next(), parts.next()) {
                (Some("state"), Some(key)) => keys.insert(key),
                (Some("state"), None) => false,
                (head, _) => others.insert(head.unwrap_or(var)),
            };
        }
        for name in others {
            if LOOP_VARIABLES.contains(&name) {
                self.loop_reads.push(LoopRead { span, name: name.to_string(), what });
                continue;
            }
            let message =
                format!("{what} reads `{name}`, which is not defined: only `state` is (did you mean `state.{name}`?)");
            self.add(span, message);
        }
        for key in keys {
            if self.schema.get(key).is_none() {
                let hint = super::did_you_mean(key, self.schema.fields.keys().map(String::as_str));
                self.add(span, format!("{what} reads `state.{key}`, which is not in `state_schema`{hint}"));
            }
        }
        let named = names(text, expression);
        let paths: BTreeSet<&Vec<PathStep>> = named.paths.iter().collect();
        for steps in paths {
            self.state_path(steps, span, what);
        }
        for filter in named.filters.iter().collect::<BTreeSet<_>>() {
            if !is_filter(filter) {
                let hint = super::did_you_mean(filter, known_filters());
                self.add(span, format!("{what} applies filter `{filter}`, which does not exist{hint}"));
            }
        }
        for test in named.tests.iter().collect::<BTreeSet<_>>() {
            if !is_test(test) {
                let hint = super::did_you_mean(test, known_tests());
                self.add(span, format!("{what} applies test `{test}`, which does not exist{hint}"));
            }
        }
    }

    /// A read of `state` followed by `steps`: where the schema says the
    /// shape (a dict with declared fields, the items of a list), each step
    /// must be in it.
    fn state_path(&mut self, steps: &[PathStep], span: Span, what: &str) {
        let Some(PathStep::Field(key)) = steps.first() else { return };
        let Some(mut t) = self.schema.get(key).cloned() else { return };
        let mut shown = format!("state.{key}");
        for step in &steps[1..] {
            match step {
                PathStep::Item => match base(&t) {
                    Type::List(inner) => {
                        t = (**inner).clone();
                        shown.push_str("[…]");
                    }
                    _ => return,
                },
                PathStep::Field(name) => match t.field(name) {
                    None => return,
                    Some(Ok(inner)) => {
                        t = inner.clone();
                        shown = format!("{shown}.{name}");
                    }
                    Some(Err(fields)) => {
                        let hint = super::suggest(name, fields.iter().copied())
                            .map(|s| format!("did you mean `{s}`?"))
                            .unwrap_or_else(|| format!("its fields: {}", fields.join(", ")));
                        let message = format!(
                            "{what} reads `{shown}.{name}`, but `{shown}` has no field `{name}` in `state_schema` ({hint})"
                        );
                        return self.add(span, message);
                    }
                },
            }
        }
    }

    /// An `output_key`: a state key the schema declares.
    pub(super) fn output_key(&mut self, y: &Yaml) -> Option<String> {
        let key = self.string(y, "output_key")?;
        if self.schema.get(&key).is_none() {
            let hint = super::did_you_mean(&key, self.schema.fields.keys().map(String::as_str));
            self.add(y.span, format!("`output_key` `{key}` is not in `state_schema`{hint}"));
        }
        Some(key)
    }

    /// An `output_key` that receives a value of type `written` (`what`
    /// describes it); its declared type must accept it.
    pub(super) fn output_key_for(&mut self, y: &Yaml, written: &Type, what: &str) -> Option<String> {
        let key = self.output_key(y)?;
        if let Some(declared) = self.schema.get(&key)
            && !declared.is_assignable_from(written)
        {
            let message = format!("type mismatch: `output_key` `{key}` is {declared}, but it receives {what}");
            self.add(y.span, message);
        }
        Some(key)
    }

    /// Reads of `item` and `index` by a node that is not in a `for_each`
    /// branch's chain: there they are not defined.
    pub(super) fn loop_reads_outside_for_each(&mut self, node: &str, reads: &[LoopRead]) {
        for read in reads {
            let LoopRead { span, name, what } = read;
            let message = format!(
                "{what} reads `{name}`, which is not defined here: `item` and `index` exist only in the branch of a \
                 parallel node with `for_each` (did you mean `state.{name}`?)"
            );
            self.add_for(*span, Some(node.to_string()), message);
        }
    }

    /// One `set` value: the key must be declared, and a value whose type is
    /// known now must fit the key's type.
    pub(super) fn set_value(&mut self, entry: &Entry) -> Json {
        let value = self.json(&entry.value);
        let key = &entry.key;
        let Some(target) = self.schema.get(key).cloned() else {
            let hint = super::did_you_mean(key, self.schema.fields.keys().map(String::as_str));
            self.add(entry.key_span, format!("`set` key `{key}` is not in `state_schema`{hint}"));
            return value;
        };
        let (source, what) = match &value {
            Json::String(s) if is_template(s) => match single_expression(s) {
                Some(expr) => {
                    let Some(from) = expr.strip_prefix("state.").filter(|k| is_identifier(k)) else {
                        return value;
                    };
                    let Some(t) = self.schema.get(from).cloned() else {
                        return value;
                    };
                    let what = format!("`state.{from}` of type {t}");
                    (t, what)
                }
                None => (Type::Str, "a template, which renders to str".to_string()),
            },
            Json::Null => (Type::of_literal(&value), "null".to_string()),
            other => {
                let t = Type::of_literal(other);
                let what = format!("a value of type {t}");
                (t, what)
            }
        };
        if !target.is_assignable_from(&source) {
            self.add(entry.value.span, format!("type mismatch: `{key}` is {target} but is set to {what}"));
        }
        value
    }
}

/// The type under `optional[...]`.
fn base(t: &Type) -> &Type {
    match t {
        Type::Optional(inner) => base(inner),
        other => other,
    }
}

fn is_identifier(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}
