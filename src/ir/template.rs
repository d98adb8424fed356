//! Templates (`{{ state.x }}`) and conditions (`state.score >= 0.8`), both
//! through one minijinja environment in strict mode: a misspelt key is an
//! error, never an empty string.
//!
//! The compiler uses [`referenced_state_keys`] to check templates against
//! the schema; nodes use [`Templates`] to render at run time. A string that
//! is exactly one `{{ expr }}` is evaluated as an expression, so its value
//! keeps its type (`"{{ state.n + 1 }}"` is a number, not the text "4").

use std::collections::BTreeSet;

use minijinja::{Environment, UndefinedBehavior, Value as TplValue};
use serde_json::Value;

/// A template or condition that failed, with the text that failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("template `{template}`: {message}")]
pub struct TemplateError {
    pub template: String,
    pub message: String,
}

impl TemplateError {
    fn new(template: &str, err: minijinja::Error) -> Self {
        let mut message = err.kind().to_string();
        if let Some(detail) = err.detail() {
            message = format!("{message}: {detail}");
        }
        TemplateError { template: template.to_string(), message }
    }
}

/// The rendering engine shared by every node of a runtime.
#[derive(Debug)]
pub struct Templates {
    env: Environment<'static>,
}

impl Default for Templates {
    fn default() -> Self {
        Self::new()
    }
}

/// The inside of a string that is exactly one `{{ expr }}`.
pub fn single_expression(source: &str) -> Option<&str> {
    let t = source.trim();
    let inner = t.strip_prefix("{{")?.strip_suffix("}}")?;
    if inner.contains("{{") || inner.contains("}}") || inner.contains("{%") {
        return None;
    }
    let inner = inner.trim_start_matches('-').trim_end_matches('-').trim();
    (!inner.is_empty()).then_some(inner)
}

/// Whether a string contains template syntax at all.
pub fn is_template(source: &str) -> bool {
    source.contains("{{") || source.contains("{%")
}

fn engine() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env
}

/// Every variable a template or expression reads, as dotted paths
/// (`state.a.b`, `foo`), leaving out the engine's globals (`range`, `dict`,
/// ...); or the syntax error that stops it compiling. The compiler uses it
/// to find names other than `state`, which the run-time context lacks.
pub fn referenced_variables(source: &str, expression: bool) -> Result<BTreeSet<String>, TemplateError> {
    let env = engine();
    let vars = if expression {
        env.compile_expression(source).map_err(|e| TemplateError::new(source, e))?.undeclared_variables(true)
    } else if let Some(expr) = single_expression(source) {
        return referenced_variables(expr, true);
    } else {
        env.template_from_str(source).map_err(|e| TemplateError::new(source, e))?.undeclared_variables(true)
    };
    let globals: BTreeSet<&str> = env.globals().map(|(name, _)| name).collect();
    Ok(vars.into_iter().filter(|v| !globals.contains(v.split('.').next().unwrap_or(v))).collect())
}

/// The top-level `state.<key>` names a template or expression reads, or the
/// syntax error that stops it compiling.
pub fn referenced_state_keys(source: &str, expression: bool) -> Result<BTreeSet<String>, TemplateError> {
    Ok(referenced_variables(source, expression)?
        .into_iter()
        .filter_map(|v| v.strip_prefix("state.").map(|k| k.split('.').next().unwrap_or(k).to_string()))
        .collect())
}

impl Templates {
    pub fn new() -> Self {
        Templates { env: engine() }
    }

    /// The render context for a state object.
    pub fn context(state: &serde_json::Map<String, Value>) -> TplValue {
        minijinja::context! { state => TplValue::from(minijinja::value::Serde(state)) }
    }

    /// Render a string template to text.
    pub fn render(&self, source: &str, ctx: &TplValue) -> Result<String, TemplateError> {
        if !is_template(source) {
            return Ok(source.to_string());
        }
        self.env.render_str(source, ctx).map_err(|e| TemplateError::new(source, e))
    }

    /// Evaluate a minijinja expression (a condition) to a value.
    pub fn eval(&self, expression: &str, ctx: &TplValue) -> Result<TplValue, TemplateError> {
        self.env.compile_expression(expression).and_then(|e| e.eval(ctx)).map_err(|e| TemplateError::new(expression, e))
    }

    /// Evaluate a condition: true when the expression's value is truthy.
    pub fn condition(&self, expression: &str, ctx: &TplValue) -> Result<bool, TemplateError> {
        Ok(self.eval(expression, ctx)?.is_true())
    }

    /// Render a JSON value whose strings are templates; a string that is a
    /// single `{{ expr }}` keeps its type.
    pub fn render_value(&self, value: &Value, ctx: &TplValue) -> Result<Value, TemplateError> {
        Ok(match value {
            Value::String(s) => {
                if let Some(expr) = single_expression(s) {
                    let v = self.eval(expr, ctx).map_err(|e| TemplateError { template: s.clone(), ..e })?;
                    to_json(&v).map_err(|message| TemplateError { template: s.clone(), message })?
                } else {
                    Value::String(self.render(s, ctx)?)
                }
            }
            Value::Array(items) => {
                Value::Array(items.iter().map(|v| self.render_value(v, ctx)).collect::<Result<_, _>>()?)
            }
            Value::Object(map) => {
                Value::Object(map.iter().map(|(k, v)| Ok((k.clone(), self.render_value(v, ctx)?))).collect::<Result<
                    _,
                    TemplateError,
                >>(
                )?)
            }
            other => other.clone(),
        })
    }
}

fn to_json(v: &TplValue) -> Result<Value, String> {
    if v.is_undefined() {
        return Err("expression is undefined".into());
    }
    serde_json::to_value(v).map_err(|e| format!("value cannot be stored as JSON: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ctx(v: Value) -> TplValue {
        Templates::context(v.as_object().unwrap())
    }

    #[test]
    fn single_expression_keeps_type() {
        let t = Templates::new();
        let c = ctx(json!({"n": 3, "name": "ada"}));
        assert_eq!(t.render_value(&json!("{{ state.n + 1 }}"), &c).unwrap(), json!(4));
        assert_eq!(t.render_value(&json!("hi {{ state.name }}"), &c).unwrap(), json!("hi ada"));
        assert_eq!(t.render_value(&json!({"a": ["{{ state.n }}"]}), &c).unwrap(), json!({"a": [3]}));
    }

    #[test]
    fn strict_undefined_is_an_error_naming_the_template() {
        let t = Templates::new();
        let err = t.render("{{ state.qestion }}x", &ctx(json!({"question": "q"}))).unwrap_err();
        assert_eq!(err.template, "{{ state.qestion }}x");
        assert!(t.condition("state.missing > 1", &ctx(json!({}))).is_err());
    }

    #[test]
    fn finds_referenced_keys() {
        let keys = referenced_state_keys("{{ state.a }} and {{ state.b.c | upper }}", false).unwrap();
        assert_eq!(keys.into_iter().collect::<Vec<_>>(), vec!["a", "b"]);
        let keys = referenced_state_keys("state.score >= 0.8", true).unwrap();
        assert_eq!(keys.into_iter().collect::<Vec<_>>(), vec!["score"]);
        assert!(referenced_state_keys("{{ state.a ", false).is_err());
        let vars = referenced_variables("{% for i in range(3) %}{{ foo.x }}{{ i }}{% endfor %}", false).unwrap();
        assert_eq!(vars.into_iter().collect::<Vec<_>>(), vec!["foo.x"]);
    }
}
