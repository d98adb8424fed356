//! Compiling a `trajectory` scorer: `expected:` (a list of `{tool,
//! args?}`, each argument a matcher) and `match:`. An argument's matcher is
//! read by the same function as a dataset row's (`ArgMatcher::from_json`),
//! so YAML and JSONL mean the same thing; a bad one is a finding at the
//! argument's line and column.

use super::yaml::{Value, Yaml};
use super::{Ctx, Fields, optional};
use crate::ir::{ArgMatcher, ExpectedCall, ScorerKind, Span, TrajectoryMatch};

/// The state key a dataset row's expected trajectory arrives in.
const STATE_KEY: &str = "expected_trajectory";

impl Ctx {
    /// `{type: trajectory, expected?, match?}`. Without `expected:` the
    /// state must be able to hold a row's `expected_trajectory`.
    pub(super) fn trajectory(&mut self, f: &Fields, at: Span) -> Option<ScorerKind> {
        let mode = f.get("match").map_or(Some(TrajectoryMatch::default()), |y| {
            self.keyword(y, "match", TrajectoryMatch::NAMES).and_then(TrajectoryMatch::parse)
        });
        let expected = optional(f.get("expected").map(|y| self.expected_calls(y)));
        if f.get("expected").is_none() && self.schema.get(STATE_KEY).is_none() {
            self.add(
                at,
                "a `trajectory` scorer needs `expected:` (a list of calls such as `{tool: search, args: {query: \
                 {contains: x}}}`), or an `expected_trajectory` key in `state_schema` (which `jamjet eval run` \
                 fills from each dataset row)",
            );
            return None;
        }
        Some(ScorerKind::Trajectory { expected: expected?, mode: mode? })
    }

    /// `expected:`: a list of expected calls.
    fn expected_calls(&mut self, y: &Yaml) -> Option<Vec<ExpectedCall>> {
        let Value::Seq(items) = &y.value else {
            self.add(
                y.span,
                format!(
                    "`expected` must be a list of calls such as `{{tool: search, args: {{query: {{contains: x}}}}}}`, \
                     found {}",
                    y.kind()
                ),
            );
            return None;
        };
        let calls: Vec<Option<ExpectedCall>> = items.iter().map(|item| self.expected_call(item)).collect();
        calls.into_iter().collect()
    }

    /// One expected call: `{tool, args?}`.
    fn expected_call(&mut self, item: &Yaml) -> Option<ExpectedCall> {
        let f = self.fields(item, "an expected call", &["tool", "args"])?;
        let tool = self.required(&f, "tool", "an expected call", item.span).and_then(|y| self.string(y, "tool"));
        let args = match f.get("args") {
            None => Some(Vec::new()),
            Some(y) => self.arg_matchers(y),
        };
        Some(ExpectedCall { tool: tool?, args: args? })
    }

    /// `args:`: each argument's matcher, a finding at each bad one.
    fn arg_matchers(&mut self, y: &Yaml) -> Option<Vec<(String, ArgMatcher)>> {
        let entries = self.entries(y, "`args`", "argument")?;
        let mut out = Vec::with_capacity(entries.len());
        let mut ok = true;
        for e in entries {
            let Some(json) = self.literal_json(&e.value) else {
                ok = false;
                continue;
            };
            match ArgMatcher::from_json(&json) {
                Ok(m) => out.push((e.key.clone(), m)),
                Err(why) => {
                    self.add(e.value.span, format!("`args.{}`: {why}", e.key));
                    ok = false;
                }
            }
        }
        ok.then_some(out)
    }
}
