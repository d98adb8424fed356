//! The IR of the `trajectory` scorer: the tool calls an execution is
//! expected to make ([`ExpectedCall`]), how the calls it made are matched
//! against them ([`TrajectoryMatch`]) and how each argument is checked
//! ([`ArgMatcher`]).
//!
//! Also the reading of an expected trajectory written as JSON (a dataset
//! row's `expected_trajectory`, a state key), so that a row and a scorer's
//! YAML mean the same thing. Plain data; the matching itself is
//! [`crate::eval`]'s.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::json_kind;

/// One tool call a trajectory expects: the tool's name and checks on some
/// of its arguments (an argument not named is not checked).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExpectedCall {
    pub tool: String,
    /// Each checked argument and its check, in the order written.
    pub args: Vec<(String, ArgMatcher)>,
}

/// How one argument of a call is checked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ArgMatcher {
    /// Equal to this JSON value (numbers by value: 2 equals 2.0).
    Equals(Value),
    /// The argument as text (a string as it is, anything else as JSON)
    /// contains this.
    Contains(String),
    /// The argument as text matches this regex (anywhere, unless anchored).
    Regex(String),
    /// The argument is there, whatever its value.
    Any,
}

/// How the calls made are matched against the expected list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrajectoryMatch {
    /// Exactly the expected calls, in their order, and no other call.
    Exact,
    /// The expected calls in their order, other calls allowed between and
    /// around them. `subsequence` is another name for it.
    #[default]
    InOrder,
    /// Each expected call made, in any order, each by a call of its own.
    Set,
}

impl TrajectoryMatch {
    /// The names `match:` (and `--trajectory`) accept.
    pub const NAMES: &[&str] = &["exact", "in_order", "subsequence", "set"];

    /// The mode a name stands for (`subsequence` is `in_order`).
    pub fn parse(name: &str) -> Option<TrajectoryMatch> {
        match name {
            "exact" => Some(TrajectoryMatch::Exact),
            "in_order" | "subsequence" => Some(TrajectoryMatch::InOrder),
            "set" => Some(TrajectoryMatch::Set),
            _ => None,
        }
    }

    /// The mode's name as written in YAML.
    pub fn name(self) -> &'static str {
        match self {
            TrajectoryMatch::Exact => "exact",
            TrajectoryMatch::InOrder => "in_order",
            TrajectoryMatch::Set => "set",
        }
    }
}

/// The keys that make an object an argument matcher rather than a value.
pub const MATCHER_KEYS: &[&str] = &["contains", "regex", "any", "equals"];

/// The fields of an expected call.
const CALL_KEYS: &[&str] = &["tool", "args"];

impl ArgMatcher {
    /// Read a matcher written as JSON: `{"contains": text}`, `{"regex":
    /// pattern}`, `{"any": true}`, `{"equals": value}`, or any other value
    /// (the argument must equal it).
    pub fn from_json(v: &Value) -> Result<ArgMatcher, String> {
        let Some(map) = v.as_object().filter(|m| m.keys().any(|k| MATCHER_KEYS.contains(&k.as_str()))) else {
            return Ok(ArgMatcher::Equals(v.clone()));
        };
        if map.len() != 1 {
            let keys: Vec<&str> = map.keys().map(String::as_str).collect();
            return Err(format!(
                "a matcher has exactly one key (contains, regex, any or equals), found {}; to match an object \
                 with these keys as it is, write {{\"equals\": {{...}}}}",
                keys.join(", ")
            ));
        }
        let (key, value) = map.iter().next().expect("one entry");
        match (key.as_str(), value) {
            ("contains", Value::String(s)) => Ok(ArgMatcher::Contains(s.clone())),
            ("regex", Value::String(p)) => match regex_problem(p) {
                None => Ok(ArgMatcher::Regex(p.clone())),
                Some(problem) => Err(format!("`regex` is not a valid regex: {problem}")),
            },
            ("any", Value::Bool(true)) => Ok(ArgMatcher::Any),
            ("any", other) => Err(format!(
                "`any` must be true (the argument may hold anything; leave an argument out not to check it), found {}",
                show_kind(other)
            )),
            ("equals", other) => Ok(ArgMatcher::Equals(other.clone())),
            (key, other) => Err(format!("`{key}` must be a string, found {}", json_kind(other))),
        }
    }
}

impl ExpectedCall {
    /// Read one expected call written as JSON: `{"tool": name, "args"?: {name: matcher}}`.
    pub fn from_json(v: &Value) -> Result<ExpectedCall, String> {
        let Value::Object(map) = v else {
            return Err(format!(
                "an expected call is an object {{\"tool\": name, \"args\"?: {{...}}}}, found {}",
                json_kind(v)
            ));
        };
        if let Some(k) = map.keys().find(|k| !CALL_KEYS.contains(&k.as_str())) {
            return Err(format!("unknown key `{k}` (expected: tool, args)"));
        }
        let tool = match map.get("tool") {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            Some(Value::String(_)) => return Err("`tool` is empty: name the tool".into()),
            Some(other) => {
                return Err(format!("`tool` must be a string (the tool's name), found {}", show_kind(other)));
            }
            None => return Err("the call has no `tool`".into()),
        };
        let args = match map.get("args") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Object(args)) => matchers(args)?,
            Some(other) => {
                return Err(format!("`args` must be an object of argument matchers, found {}", json_kind(other)));
            }
        };
        Ok(ExpectedCall { tool, args })
    }
}

/// Each argument's matcher, or the first that is wrong.
fn matchers(args: &Map<String, Value>) -> Result<Vec<(String, ArgMatcher)>, String> {
    args.iter()
        .map(|(name, m)| ArgMatcher::from_json(m).map(|m| (name.clone(), m)).map_err(|e| format!("`args.{name}`: {e}")))
        .collect()
}

/// Read an expected trajectory written as JSON: a list of expected calls.
/// The error names the item (from 1) and what is wrong with it.
pub fn parse_trajectory(v: &Value) -> Result<Vec<ExpectedCall>, String> {
    let Value::Array(items) = v else {
        return Err(format!(
            "an expected trajectory is a list of calls such as {{\"tool\": \"search\", \"args\": {{\"query\": \
             {{\"contains\": \"x\"}}}}}}, found {}",
            json_kind(v)
        ));
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| ExpectedCall::from_json(item).map_err(|e| format!("call {}: {e}", i + 1)))
        .collect()
}

/// What is wrong with a regex, in one line; `None` when it compiles.
pub fn regex_problem(pattern: &str) -> Option<String> {
    let err = regex::Regex::new(pattern).err()?;
    let text = err.to_string();
    let last = text.lines().last().unwrap_or_default().trim();
    Some(last.trim_start_matches("error: ").to_string())
}

/// A value's kind, and the value itself when it is short (`false`, `0`).
fn show_kind(v: &Value) -> String {
    match v {
        Value::Bool(_) | Value::Number(_) => format!("{} ({v})", json_kind(v)),
        other => json_kind(other).to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn matchers_read_from_json() {
        let m = |v: Value| ArgMatcher::from_json(&v);
        assert_eq!(m(json!("durable")), Ok(ArgMatcher::Equals(json!("durable"))));
        assert_eq!(m(json!({"q": 1})), Ok(ArgMatcher::Equals(json!({"q": 1}))));
        assert_eq!(m(json!({"contains": "dur"})), Ok(ArgMatcher::Contains("dur".into())));
        assert_eq!(m(json!({"regex": "^a+$"})), Ok(ArgMatcher::Regex("^a+$".into())));
        assert_eq!(m(json!({"any": true})), Ok(ArgMatcher::Any));
        assert_eq!(m(json!({"equals": {"any": true}})), Ok(ArgMatcher::Equals(json!({"any": true}))));
        assert!(m(json!({"any": false})).unwrap_err().starts_with("`any` must be true"));
        assert_eq!(m(json!({"contains": 3})).unwrap_err(), "`contains` must be a string, found an int");
        assert!(m(json!({"regex": "a("})).unwrap_err().starts_with("`regex` is not a valid regex: unclosed group"));
        assert!(m(json!({"contains": "a", "x": 1})).unwrap_err().contains("exactly one key"));
    }

    #[test]
    fn trajectories_read_from_json_or_say_which_call_is_wrong() {
        let t = parse_trajectory(&json!([{"tool": "search", "args": {"q": {"contains": "x"}}}, {"tool": "w"}]));
        let t = t.unwrap();
        assert_eq!((t[0].tool.as_str(), t[0].args[0].0.as_str()), ("search", "q"));
        assert!(t[1].args.is_empty());
        assert!(parse_trajectory(&json!({"tool": "a"})).unwrap_err().ends_with("found an object"));
        let bad = |v: Value| parse_trajectory(&v).unwrap_err();
        assert_eq!(
            bad(json!([{"tool": "a"}, 3])),
            "call 2: an expected call is an object {\"tool\": name, \"args\"?: {...}}, found an int"
        );
        assert_eq!(bad(json!([{"tool": ""}])), "call 1: `tool` is empty: name the tool");
        assert_eq!(bad(json!([{"tool": 7}])), "call 1: `tool` must be a string (the tool's name), found an int (7)");
        assert_eq!(bad(json!([{"name": "a"}])), "call 1: unknown key `name` (expected: tool, args)");
        assert_eq!(bad(json!([{"args": {}}])), "call 1: the call has no `tool`");
        assert_eq!(
            bad(json!([{"tool": "a", "args": [1]}])),
            "call 1: `args` must be an object of argument matchers, found a list"
        );
        assert!(
            bad(json!([{"tool": "a", "args": {"q": {"regex": "("}}}])).starts_with("call 1: `args.q`: `regex` is not")
        );
        assert_eq!(TrajectoryMatch::parse("subsequence"), Some(TrajectoryMatch::InOrder));
        assert_eq!(TrajectoryMatch::default().name(), "in_order");
    }
}
