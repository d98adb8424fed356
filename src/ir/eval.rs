//! The IR of `type: eval`: the scorers a node runs over the state and what
//! a failing verdict does (`on_fail`). Plain data, like the rest of the IR;
//! scoring itself lives in [`crate::eval`].

use serde::{Deserialize, Serialize};

use super::trajectory::{ExpectedCall, TrajectoryMatch};

/// `type: eval`: score the state, then fail, loop back or go on.
///
/// `output` (in assertions, and the default subject of `contains`, `regex`
/// and `json_schema`) is `state[target]` when `target` names a key, else the
/// whole state. The verdict `{passed, visit, scores, feedback}` goes into
/// `output_key` when one is given (required with `retry_from`: it is how
/// the node retried from sees the feedback).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalNode {
    pub scorers: Vec<Scorer>,
    /// The state key scored as `output`; the whole state when absent.
    pub target: Option<String>,
    pub on_fail: EvalOnFail,
    pub output_key: Option<String>,
}

/// One scorer of an eval node, with a name unique within its node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scorer {
    /// `name:` as written, else the type (`assertion`, `assertion#2`, ...).
    pub name: String,
    pub kind: ScorerKind,
}

/// What a scorer checks. `key`, where present, names the state key checked
/// instead of `output`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ScorerKind {
    /// A minijinja expression over `state`, `output` and `expected`; truthy passes.
    Assertion { expr: String },
    /// The value validates against a JSON Schema.
    JsonSchema { schema: serde_json::Value, key: Option<String> },
    /// The execution so far took at most `max_ms`.
    Latency { max_ms: u64 },
    /// The execution so far cost at most `max_usd`.
    Cost { max_usd: f64 },
    /// An LLM judge scores the output 1–5 against `rubric`; passes at `min_score`.
    /// `model` as written; `config` is what it resolved to when compiled.
    Rubric { model: String, config: Box<crate::ir::ModelConfig>, rubric: String, min_score: f64 },
    /// The value (as text) contains `value` (a template).
    Contains { value: String, key: Option<String> },
    /// The value (as text) matches `pattern`.
    Regex { pattern: String, key: Option<String> },
    /// The tool calls the execution made match `expected` by `mode`. A
    /// dataset row's `expected_trajectory` (in the state as
    /// `expected_trajectory`) takes precedence over `expected`; without
    /// either the scorer fails.
    Trajectory { expected: Option<Vec<ExpectedCall>>, mode: TrajectoryMatch },
}

impl ScorerKind {
    pub fn type_name(&self) -> &'static str {
        match self {
            ScorerKind::Assertion { .. } => "assertion",
            ScorerKind::JsonSchema { .. } => "json_schema",
            ScorerKind::Latency { .. } => "latency",
            ScorerKind::Cost { .. } => "cost",
            ScorerKind::Rubric { .. } => "rubric",
            ScorerKind::Contains { .. } => "contains",
            ScorerKind::Regex { .. } => "regex",
            ScorerKind::Trajectory { .. } => "trajectory",
        }
    }
}

impl EvalNode {
    /// Whether a scorer of the node looks at the execution's tool calls
    /// (which its shell then reads from the journal for it).
    pub fn scores_trajectory(&self) -> bool {
        self.scorers.iter().any(|s| matches!(s.kind, ScorerKind::Trajectory { .. }))
    }
}

/// What a failing eval does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EvalOnFail {
    /// The node fails with class `invalid_output` (not retried by default).
    Fail,
    /// The scores are recorded and the execution goes on at `next`.
    Continue,
    /// Go back to `node` with the verdict in `output_key`, at most
    /// `max_retries` times (then fail as with `Fail`).
    RetryFrom { node: String, max_retries: u32 },
}
