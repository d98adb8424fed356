//! The `trajectory` scorer: the tool calls an execution made, matched
//! against the calls it was expected to make.
//!
//! Pure: the calls made come in the [`Subject`] (the shell reads them from
//! the journal, the `Call` events of kind `tool`, in journal order), the
//! expected ones from the scorer or the row. The match pairs each expected
//! call with a call made of the same tool whose checked arguments pass:
//! `in_order` and `exact` by the longest run of expected calls found in
//! their order (other calls may come between), `set` by the largest
//! pairing in any order, each call made serving one expected call. The
//! score is the share of expected calls paired; the scorer passes when
//! every one is, and for `exact` when no other call was made.

use serde_json::Value;

use super::Subject;
use super::scorers::text_of;
use crate::ir::{ArgMatcher, ExpectedCall, TrajectoryMatch, parse_trajectory};
use crate::nodes::Compiled;
use crate::plural::count;

/// One tool call an execution made: the tool's name and its arguments.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolUse {
    pub name: String,
    pub arguments: Value,
}

/// How a trajectory scored: passed, the share of expected calls made, and
/// why, in one line.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub passed: bool,
    pub score: f64,
    pub reason: String,
}

/// Score the subject's tool calls against the row's expected trajectory
/// when it has one, else against `own` (the scorer's `expected:`).
pub fn score_trajectory(
    own: Option<&[ExpectedCall]>,
    mode: TrajectoryMatch,
    subject: &Subject,
    compiled: &Compiled,
) -> Verdict {
    let fail = |reason: String| Verdict { passed: false, score: 0.0, reason };
    let from_row;
    let expected = match (subject.expected_trajectory, own) {
        (Value::Null, Some(own)) => own,
        (Value::Null, None) => {
            return fail(
                "there is no expected trajectory: the scorer has no `expected:` and the row no \
                         `expected_trajectory`"
                    .into(),
            );
        }
        (row, _) => match parse_trajectory(row) {
            Ok(calls) => {
                from_row = calls;
                &from_row
            }
            Err(e) => return fail(format!("`expected_trajectory` does not read: {e}")),
        },
    };
    match_trajectory(expected, mode, subject.tool_calls, compiled)
}

/// Match the calls `made` against `expected` by `mode`.
pub fn match_trajectory(
    expected: &[ExpectedCall],
    mode: TrajectoryMatch,
    made: &[ToolUse],
    compiled: &Compiled,
) -> Verdict {
    let fits: Vec<Vec<bool>> =
        expected.iter().map(|e| made.iter().map(|m| call_problem(e, m, compiled).is_none()).collect()).collect();
    let pairs = match mode {
        TrajectoryMatch::Set => any_order(&fits, made.len()),
        TrajectoryMatch::Exact | TrajectoryMatch::InOrder => in_order(&fits, made.len()),
    };
    let p = Pairing { expected, made, mode, fits, pairs };
    let matched = p.pairs.iter().flatten().count();
    let missing = p.pairs.iter().position(Option::is_none);
    let extra = match mode {
        TrajectoryMatch::Exact => (0..made.len()).find(|j| !p.paired(*j)),
        _ => None,
    };
    let passed = missing.is_none() && extra.is_none();
    let n = expected.len();
    let score = match n {
        0 => f64::from(u8::from(passed)),
        _ => matched as f64 / n as f64,
    };
    let reason = match (missing, extra) {
        (Some(i), _) => format!("{}; {matched} of {n} matched", p.missing_reason(i, compiled)),
        (None, Some(j)) => format!(
            "call {} of {}, {}, was not expected (`exact` allows only the {})",
            j + 1,
            made.len(),
            show_made(&made[j]),
            count(n, "expected call", "expected calls")
        ),
        (None, None) => passed_reason(n, mode, made.len()),
    };
    Verdict { passed, score, reason: reason.replace(['\n', '\r'], " ") }
}

/// A match worked out: which call made fits which expected call, and the
/// pairing chosen (for each expected call, the call made it is paired with).
struct Pairing<'a> {
    expected: &'a [ExpectedCall],
    made: &'a [ToolUse],
    mode: TrajectoryMatch,
    fits: Vec<Vec<bool>>,
    pairs: Vec<Option<usize>>,
}

impl Pairing<'_> {
    /// Whether call `j` made is paired with an expected call.
    fn paired(&self, j: usize) -> bool {
        self.pairs.contains(&Some(j))
    }

    /// Which expected call (`i`, unpaired) was not made, and the closest
    /// call that was: one of the same tool that fits it but is taken or out
    /// of order, else the first of the same tool left unpaired (else the
    /// first of the same tool) with what differs.
    fn missing_reason(&self, i: usize, compiled: &Compiled) -> String {
        let e = &self.expected[i];
        let order = if self.mode == TrajectoryMatch::Set { "" } else { " in order" };
        let head =
            format!("expected call {} of {}, {}, was not made{order}", i + 1, self.expected.len(), show_expected(e));
        let same_tool: Vec<usize> = (0..self.made.len()).filter(|j| self.made[*j].name == e.tool).collect();
        let closest = same_tool.iter().find(|j| !self.paired(**j)).or(same_tool.first());
        let why = match (closest, same_tool.iter().find(|j| self.fits[i][**j])) {
            (None, _) if self.made.is_empty() => "no tool calls were made".to_string(),
            (None, _) => format!("no call of `{}` was made (made: {})", e.tool, names(self.made)),
            (_, Some(j)) if self.mode == TrajectoryMatch::Set => {
                format!("call {} fits it, but serves another expected call", j + 1)
            }
            (_, Some(j)) => {
                format!("call {} fits it, but not in order with the calls matched before and after it", j + 1)
            }
            (Some(j), None) => {
                let problem = call_problem(e, &self.made[*j], compiled).unwrap_or_default();
                format!("call {} of `{}` differs: {problem}", j + 1, e.tool)
            }
        };
        format!("{head}: {why}")
    }
}

/// For each expected call, the call made it is paired with: the longest
/// run of expected calls found in their order (a longest common
/// subsequence where "common" is "fits").
fn in_order(fits: &[Vec<bool>], m: usize) -> Vec<Option<usize>> {
    let n = fits.len();
    // best[i][j]: how many of expected[i..] pair, in order, with made[j..].
    let mut best = vec![vec![0u32; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            best[i][j] = if fits[i][j] { 1 + best[i + 1][j + 1] } else { best[i + 1][j].max(best[i][j + 1]) };
        }
    }
    let mut pairs = vec![None; n];
    let (mut i, mut j) = (0, 0);
    while i < n && j < m {
        if fits[i][j] {
            pairs[i] = Some(j);
            (i, j) = (i + 1, j + 1);
        } else if best[i][j + 1] >= best[i + 1][j] {
            j += 1;
        } else {
            i += 1;
        }
    }
    pairs
}

/// For each expected call, the call made it is paired with: the largest
/// pairing in any order, each call made serving one expected call
/// (augmenting paths, earlier calls first).
fn any_order(fits: &[Vec<bool>], m: usize) -> Vec<Option<usize>> {
    let mut owner: Vec<Option<usize>> = vec![None; m];
    for i in 0..fits.len() {
        augment(i, fits, &mut vec![false; m], &mut owner);
    }
    let mut pairs = vec![None; fits.len()];
    for (j, i) in owner.iter().enumerate() {
        if let Some(i) = i {
            pairs[*i] = Some(j);
        }
    }
    pairs
}

/// Pair expected call `i` with a free call, or free one by moving its owner.
fn augment(i: usize, fits: &[Vec<bool>], seen: &mut [bool], owner: &mut [Option<usize>]) -> bool {
    for j in 0..owner.len() {
        if fits[i][j] && !seen[j] {
            seen[j] = true;
            if owner[j].is_none_or(|k| augment(k, fits, seen, owner)) {
                owner[j] = Some(i);
                return true;
            }
        }
    }
    false
}

/// Why a call made is not the expected one; `None` when it is.
fn call_problem(expected: &ExpectedCall, made: &ToolUse, compiled: &Compiled) -> Option<String> {
    if made.name != expected.tool {
        return Some(format!("it is a call of `{}`", made.name));
    }
    expected.args.iter().find_map(|(name, m)| arg_problem(name, m, &made.arguments, compiled))
}

/// Why an argument fails its check; `None` when it passes.
fn arg_problem(name: &str, m: &ArgMatcher, arguments: &Value, compiled: &Compiled) -> Option<String> {
    let Some(v) = arguments.get(name) else { return Some(format!("`{name}` is missing")) };
    match m {
        ArgMatcher::Any => None,
        ArgMatcher::Equals(want) => (!same(v, want)).then(|| format!("`{name}` is {}, not {}", short(v), short(want))),
        ArgMatcher::Contains(text) => {
            (!text_of(v).contains(text.as_str())).then(|| format!("`{name}` {} does not contain {text:?}", short(v)))
        }
        ArgMatcher::Regex(pattern) => match compiled.regex(pattern) {
            Err(e) => Some(format!("the pattern /{pattern}/ does not compile: {e}")),
            Ok(re) => (!re.is_match(&text_of(v))).then(|| format!("`{name}` {} does not match /{pattern}/", short(v))),
        },
    }
}

/// JSON equality with numbers compared by value (2 equals 2.0).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        // Two integers exactly; a float by its value.
        (Value::Number(x), Value::Number(y)) if x.is_f64() || y.is_f64() => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b)),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

/// Why the scorer passed.
fn passed_reason(n: usize, mode: TrajectoryMatch, made: usize) -> String {
    let calls = count(n, "expected tool call", "expected tool calls");
    match mode {
        TrajectoryMatch::Exact => format!("made exactly the {calls}, in order"),
        TrajectoryMatch::InOrder => format!("made the {calls} in order ({} made)", count(made, "call", "calls")),
        TrajectoryMatch::Set => format!("made the {calls} ({} made)", count(made, "call", "calls")),
    }
}

/// An expected call as written, short: `search(query contains "x", limit = 3)`.
fn show_expected(e: &ExpectedCall) -> String {
    if e.args.is_empty() {
        return format!("`{}`", e.tool);
    }
    let args: Vec<String> = e
        .args
        .iter()
        .map(|(name, m)| match m {
            ArgMatcher::Equals(v) => format!("{name} = {}", short(v)),
            ArgMatcher::Contains(t) => format!("{name} contains {t:?}"),
            ArgMatcher::Regex(p) => format!("{name} matches /{p}/"),
            ArgMatcher::Any => format!("{name} any"),
        })
        .collect();
    format!("`{}`({})", e.tool, args.join(", "))
}

/// A call made, short: `search {"query":"x"}`.
fn show_made(m: &ToolUse) -> String {
    format!("`{}` {}", m.name, short(&m.arguments))
}

/// The names of the calls made, in order, at most eight.
fn names(made: &[ToolUse]) -> String {
    let mut shown: Vec<&str> = made.iter().take(8).map(|m| m.name.as_str()).collect();
    if made.len() > 8 {
        shown.push("…");
    }
    shown.join(", ")
}

/// A value as JSON, at most 60 characters.
fn short(v: &Value) -> String {
    let text = v.to_string();
    match text.char_indices().nth(60) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn calls(list: &[(&str, Value)]) -> Vec<ToolUse> {
        list.iter().map(|(n, a)| ToolUse { name: n.to_string(), arguments: a.clone() }).collect()
    }

    fn expect(v: Value) -> Vec<ExpectedCall> {
        parse_trajectory(&v).unwrap()
    }

    fn run(expected: Value, mode: TrajectoryMatch, made: &[(&str, Value)]) -> Verdict {
        match_trajectory(&expect(expected), mode, &calls(made), &Compiled::default())
    }

    const EXACT: TrajectoryMatch = TrajectoryMatch::Exact;
    const IN_ORDER: TrajectoryMatch = TrajectoryMatch::InOrder;
    const SET: TrajectoryMatch = TrajectoryMatch::Set;

    #[test]
    fn in_order_allows_calls_between_and_reports_the_first_call_not_made_in_order() {
        let made = [("search", json!({"q": "durable runs"})), ("add", json!({"a": 1})), ("writer", json!({}))];
        let two = json!([{"tool": "search"}, {"tool": "writer"}]);
        let v = run(two.clone(), IN_ORDER, &made);
        assert_eq!((v.passed, v.score), (true, 1.0));
        assert_eq!(v.reason, "made the 2 expected tool calls in order (3 calls made)");

        let backwards = json!([{"tool": "writer"}, {"tool": "search"}]);
        let v = run(backwards, IN_ORDER, &made);
        assert_eq!((v.passed, v.score), (false, 0.5));
        assert_eq!(
            v.reason,
            "expected call 2 of 2, `search`, was not made in order: call 1 fits it, but not in order with the calls \
             matched before and after it; 1 of 2 matched"
        );
        let v = run(json!([{"tool": "search"}, {"tool": "fetch"}]), IN_ORDER, &made);
        assert_eq!(v.score, 0.5);
        assert!(v.reason.contains("no call of `fetch` was made (made: search, add, writer)"), "{}", v.reason);
        let v = run(json!([{"tool": "search"}]), IN_ORDER, &[]);
        assert!(v.reason.ends_with("was not made in order: no tool calls were made; 0 of 1 matched"), "{}", v.reason);
    }

    #[test]
    fn exact_refuses_extra_calls_and_names_the_first() {
        let made = [("search", json!({})), ("add", json!({"a": 1, "b": 2})), ("writer", json!({}))];
        let v = run(json!([{"tool": "search"}, {"tool": "add"}, {"tool": "writer"}]), EXACT, &made);
        assert_eq!((v.passed, v.reason.as_str()), (true, "made exactly the 3 expected tool calls, in order"));
        let v = run(json!([{"tool": "search"}, {"tool": "writer"}]), EXACT, &made);
        assert_eq!((v.passed, v.score), (false, 1.0), "all expected calls were made, and one more");
        assert_eq!(
            v.reason,
            "call 2 of 3, `add` {\"a\":1,\"b\":2}, was not expected (`exact` allows only the 2 expected calls)"
        );
        let v = run(json!([]), EXACT, &[]);
        assert_eq!((v.passed, v.score), (true, 1.0));
        let v = run(json!([]), EXACT, &made[..1]);
        assert_eq!((v.passed, v.score), (false, 0.0));
        let v = run(json!([{"tool": "writer"}, {"tool": "search"}]), EXACT, &made);
        assert!(v.reason.starts_with("expected call 2 of 2, `search`, was not made in order"), "{}", v.reason);
    }

    #[test]
    fn set_takes_any_order_and_one_call_per_expected_call() {
        let made = [("search", json!({"q": "other"})), ("writer", json!({})), ("search", json!({"q": "durable"}))];
        let v = run(json!([{"tool": "writer"}, {"tool": "search"}]), SET, &made);
        assert_eq!((v.passed, v.reason.as_str()), (true, "made the 2 expected tool calls (3 calls made)"));
        // The first expected search could take either call; the pairing leaves the durable one to the second.
        let both = json!([{"tool": "search"}, {"tool": "search", "args": {"q": {"contains": "dur"}}}]);
        assert!(run(both, SET, &made).passed);
        let three = json!([{"tool": "search"}, {"tool": "search"}, {"tool": "search"}]);
        let v = run(three, SET, &made);
        assert_eq!((v.passed, v.score), (false, 2.0 / 3.0));
        assert_eq!(
            v.reason,
            "expected call 3 of 3, `search`, was not made: call 1 fits it, but serves another expected call; 2 of 3 \
             matched"
        );
        // `subsequence` is `in_order`: order matters there, not here.
        let backwards = json!([{"tool": "writer"}, {"tool": "search", "args": {"q": "other"}}]);
        assert!(run(backwards.clone(), SET, &made).passed);
        assert!(!run(backwards, TrajectoryMatch::parse("subsequence").unwrap(), &made).passed);
    }

    #[test]
    fn each_argument_matcher_passes_and_fails_with_its_reason() {
        let made = [("search", json!({"query": "durable agents", "limit": 3, "tags": ["a"], "deep": {"x": 1.0}}))];
        let pass = |args: Value| run(json!([{"tool": "search", "args": args}]), IN_ORDER, &made);
        let why = |args: Value| {
            let v = pass(args);
            assert!(!v.passed);
            v.reason.split("differs: ").nth(1).unwrap().split(';').next().unwrap().to_string()
        };
        assert!(pass(json!({"query": "durable agents", "limit": 3.0, "tags": ["a"], "deep": {"x": 1}})).passed);
        assert!(pass(json!({"query": {"contains": "agents"}, "limit": {"contains": "3"}})).passed);
        assert!(pass(json!({"query": {"regex": "^dur.*s$"}, "limit": {"regex": "^[0-9]+$"}})).passed);
        assert!(pass(json!({"limit": {"any": true}, "deep": {"equals": {"x": 1}}})).passed);
        assert_eq!(why(json!({"limit": 4})), "`limit` is 3, not 4");
        assert_eq!(why(json!({"query": {"contains": "slow"}})), "`query` \"durable agents\" does not contain \"slow\"");
        assert_eq!(why(json!({"query": {"regex": "^agents"}})), "`query` \"durable agents\" does not match /^agents/");
        assert_eq!(why(json!({"page": {"any": true}})), "`page` is missing");
        let v = pass(json!({"limit": 4}));
        assert_eq!(
            v.reason,
            "expected call 1 of 1, `search`(limit = 4), was not made in order: call 1 of `search` differs: `limit` \
             is 3, not 4; 0 of 1 matched"
        );
        assert!(same(&json!(2), &json!(2.0)) && !same(&json!(2), &json!(3)) && !same(&json!("2"), &json!(2)));
        assert!(!same(&json!(u64::MAX), &json!(i64::MAX)));
    }

    #[test]
    fn the_rows_expected_trajectory_wins_and_a_bad_one_fails_the_scorer() {
        let state = serde_json::Map::new();
        let made = calls(&[("add", json!({"a": 1}))]);
        let own = expect(json!([{"tool": "fetch"}]));
        let row = json!([{"tool": "add", "args": {"a": 1}}]);
        let subject = |expected_trajectory| Subject {
            state: &state,
            output: &Value::Null,
            expected: &Value::Null,
            elapsed_ms: 0,
            cost_usd: 0.0,
            tool_calls: &made,
            expected_trajectory,
        };
        let c = Compiled::default();
        assert!(score_trajectory(Some(&own), IN_ORDER, &subject(&row), &c).passed);
        assert!(!score_trajectory(Some(&own), IN_ORDER, &subject(&Value::Null), &c).passed);
        let v = score_trajectory(None, IN_ORDER, &subject(&Value::Null), &c);
        assert!(v.reason.starts_with("there is no expected trajectory"), "{}", v.reason);
        let v = score_trajectory(None, IN_ORDER, &subject(&json!("add")), &c);
        assert!(v.reason.starts_with("`expected_trajectory` does not read: an expected trajectory is a list"));
    }
}
