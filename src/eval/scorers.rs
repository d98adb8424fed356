//! What each scorer checks. Every scorer but `rubric` is a pure function of
//! a [`Subject`] (the state, the scored `output`, `expected`, the
//! execution's elapsed time and cost so far, and the tool calls it made);
//! `rubric` asks a model and lives with the node that can make the call.
//!
//! `score` is the measured value: 1 or 0 for `assertion`, `contains`,
//! `regex` and `json_schema`; milliseconds for `latency`; US dollars for
//! `cost`; 1–5 for `rubric`; the share of expected calls made (0 to 1)
//! for `trajectory`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::trajectory::{ToolUse, score_trajectory};
use crate::ir::{Scorer, ScorerKind, Templates};
use crate::model::schema_problems;
use crate::nodes::Compiled;

/// One scorer's verdict, as journaled in a `Scored` event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoreResult {
    pub scorer: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub passed: bool,
    pub score: f64,
    pub reason: String,
}

/// What scorers look at.
pub struct Subject<'a> {
    pub state: &'a Map<String, Value>,
    /// `state[target]`, or the whole state.
    pub output: &'a Value,
    /// The dataset row's `expected` (null when there is none).
    pub expected: &'a Value,
    /// Since the execution started.
    pub elapsed_ms: u64,
    /// What the execution has cost so far.
    pub cost_usd: f64,
    /// The tool calls the execution made so far, in journal order (empty
    /// unless a `trajectory` scorer is to look at them).
    pub tool_calls: &'a [ToolUse],
    /// The row's expected trajectory (`expected_trajectory`), which a
    /// `trajectory` scorer takes over its own `expected:`; null when none.
    pub expected_trajectory: &'a Value,
}

impl Subject<'_> {
    /// The expression context: `state`, `output` and `expected`.
    pub fn context(&self) -> minijinja::Value {
        use minijinja::value::Serde;
        minijinja::context! {
            state => minijinja::Value::from(Serde(self.state)),
            output => minijinja::Value::from(Serde(self.output)),
            expected => minijinja::Value::from(Serde(self.expected)),
        }
    }

    /// The value a `key`-taking scorer checks: `state[key]`, else `output`.
    fn value<'s>(&'s self, key: Option<&str>) -> &'s Value {
        match key {
            Some(k) => self.state.get(k).unwrap_or(&Value::Null),
            None => self.output,
        }
    }
}

/// A value as text: a string as it is, anything else as JSON.
pub fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Run one scorer with the runtime's templates and its compiled schemas
/// and regexes. `None` for `rubric`, which needs a model call.
pub fn score(scorer: &Scorer, subject: &Subject, templates: &Templates, compiled: &Compiled) -> Option<ScoreResult> {
    let (passed, score, reason) = match &scorer.kind {
        ScorerKind::Assertion { expr } => match templates.eval(expr, &subject.context()) {
            Ok(v) if v.is_true() => (true, 1.0, format!("`{expr}` holds")),
            Ok(v) => (false, 0.0, format!("`{expr}` is {v}")),
            Err(e) => (false, 0.0, format!("`{expr}` could not be evaluated: {}", e.message)),
        },
        ScorerKind::JsonSchema { schema, key } => match compiled.schema(schema) {
            Err(e) => (false, 0.0, format!("the schema does not compile: {e}")),
            Ok(validator) => {
                let errors = schema_problems(&validator, subject.value(key.as_deref()), 3);
                match errors.is_empty() {
                    true => (true, 1.0, "matches the schema".to_string()),
                    false => (false, 0.0, format!("does not match the schema: {}", errors.join("; "))),
                }
            }
        },
        ScorerKind::Latency { max_ms } => {
            let ms = subject.elapsed_ms;
            (ms <= *max_ms, ms as f64, format!("took {ms} ms (max {max_ms} ms)"))
        }
        ScorerKind::Cost { max_usd } => {
            let usd = subject.cost_usd;
            (usd <= *max_usd, usd, format!("cost ${usd:.6} (max ${max_usd})"))
        }
        ScorerKind::Rubric { .. } => return None,
        ScorerKind::Contains { value, key } => match templates.render(value, &subject.context()) {
            Err(e) => (false, 0.0, format!("`value` could not be rendered: {}", e.message)),
            Ok(needle) => {
                let hay = text_of(subject.value(key.as_deref()));
                match hay.contains(&needle) {
                    true => (true, 1.0, format!("contains {needle:?}")),
                    false => (false, 0.0, format!("does not contain {needle:?}: {}", preview(&hay))),
                }
            }
        },
        ScorerKind::Regex { pattern, key } => match compiled.regex(pattern) {
            Err(e) => (false, 0.0, format!("the pattern does not compile: {e}")),
            Ok(re) => {
                let hay = text_of(subject.value(key.as_deref()));
                match re.is_match(&hay) {
                    true => (true, 1.0, format!("matches /{pattern}/")),
                    false => (false, 0.0, format!("does not match /{pattern}/: {}", preview(&hay))),
                }
            }
        },
        ScorerKind::Trajectory { expected, mode } => {
            let v = score_trajectory(expected.as_deref(), *mode, subject, compiled);
            (v.passed, v.score, v.reason)
        }
    };
    Some(ScoreResult { scorer: scorer.name.clone(), kind: scorer.kind.type_name().to_string(), passed, score, reason })
}

/// The first 80 characters of a text, quoted, for reasons.
fn preview(text: &str) -> String {
    let cut: String = text.chars().take(80).collect();
    if cut.len() < text.len() { format!("{cut:?}…") } else { format!("{cut:?}") }
}

/// The failing scorers' reasons, one line each: what a node retried from
/// reads to do better.
pub fn feedback(results: &[ScoreResult]) -> String {
    results.iter().filter(|r| !r.passed).map(|r| format!("{}: {}", r.scorer, r.reason)).collect::<Vec<_>>().join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(kind: ScorerKind, state: Value, target: Option<&str>) -> ScoreResult {
        let state = state.as_object().unwrap().clone();
        let whole = Value::Object(state.clone());
        let output = target.map_or(&whole, |k| &state[k]);
        let expected = json!("Paris");
        let subject = Subject {
            state: &state,
            output,
            expected: &expected,
            elapsed_ms: 40,
            cost_usd: 0.5,
            tool_calls: &[],
            expected_trajectory: &Value::Null,
        };
        score(&Scorer { name: "s".into(), kind }, &subject, &Templates::new(), &Compiled::default()).unwrap()
    }

    #[test]
    fn each_scorer_passes_and_fails() {
        let st = json!({"answer": "Paris is the capital", "n": 3});
        let a = |expr: &str| ScorerKind::Assertion { expr: expr.into() };
        assert!(run(a("output == expected ~ ' is the capital'"), st.clone(), Some("answer")).passed);
        assert!(!run(a("state.n > 3"), st.clone(), None).passed);
        let schema = json!({"type": "object", "required": ["n"], "properties": {"n": {"type": "integer"}}});
        assert!(run(ScorerKind::JsonSchema { schema: schema.clone(), key: None }, st.clone(), None).passed);
        let bad = run(ScorerKind::JsonSchema { schema, key: None }, json!({"n": "x"}), None);
        assert!(!bad.passed && bad.reason.contains("/n"), "{}", bad.reason);
        assert!(run(ScorerKind::Latency { max_ms: 40 }, st.clone(), None).passed);
        assert!(!run(ScorerKind::Latency { max_ms: 39 }, st.clone(), None).passed);
        assert!(run(ScorerKind::Cost { max_usd: 0.5 }, st.clone(), None).passed);
        assert!(!run(ScorerKind::Cost { max_usd: 0.1 }, st.clone(), None).passed);
        let c = |v: &str| ScorerKind::Contains { value: v.into(), key: Some("answer".into()) };
        assert!(run(c("{{ expected }}"), st.clone(), None).passed);
        assert!(!run(c("Rome"), st.clone(), None).passed);
        let r = |p: &str| ScorerKind::Regex { pattern: p.into(), key: None };
        assert!(run(r("^Paris"), st.clone(), Some("answer")).passed);
        assert!(!run(r("^Rome"), st, Some("answer")).passed);
    }

    #[test]
    fn an_unevaluable_assertion_fails_with_the_reason() {
        let r = run(ScorerKind::Assertion { expr: "state.missing > 1".into() }, json!({}), None);
        assert!(!r.passed && r.reason.contains("could not be evaluated"), "{}", r.reason);
    }
}
