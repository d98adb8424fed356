//! Limits: how much one workflow, or one execution of it, may make.
//!
//! Every limit has a default, a name, and a setting: a runtime's
//! [`Limits`] (the CLI's `--limit NAME=VALUE`, repeatable, or
//! `JAMJET_LIMITS=NAME=VALUE,...`; a Rust host's `Builder::limits`), and
//! for `max_steps` also the workflow's own `max_steps:`, which can lower
//! the runtime's limit but never raise it. Compile-time limits (workflow
//! size, template length and terms, durations) are checked by the
//! compiler, for YAML and IR JSON alike; run-time limits (responses, state,
//! steps, fan-out) fail the execution with class `limit_exceeded`,
//! journaled, and nothing else.
//!
//! This module is plain data and text: it knows nothing of who enforces
//! each limit.

use std::fmt;

/// The limits in force. `Limits::default()` is what a runtime uses unless
/// told otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The body of one http, model, tool or agent response read into
    /// memory (and so into state), bytes. Read as a stream and stopped at
    /// the limit.
    pub max_response_bytes: u64,
    /// The state of an execution after a step, as JSON, bytes.
    pub max_state_bytes: u64,
    /// Node visits one execution may make (a loop's every turn is one).
    pub max_steps: u64,
    /// Items of one `for_each` (so child executions of one fan-out).
    pub max_for_each_items: u64,
    /// Nodes of one workflow, sub-workflows' nodes included.
    pub max_nodes: u64,
    /// One template or condition, bytes.
    pub max_template_bytes: u64,
    /// Operators, filters, tests, attribute reads, calls and subscripts in
    /// one `{{ }}` or `{% %}` tag (or one condition), and `{% elif %}`s in
    /// one template: what bounds the depth of the tree the template engine
    /// builds, compiles and drops recursively.
    ///
    /// Measured with minijinja 3.0.5 (compile, inspect, evaluate, drop) on
    /// a thread with a 2 MiB stack (a tokio worker's), release build and
    /// debug build with dependencies at opt-level 1, the smallest chain
    /// that overflowed: 3,761 `{% elif %}`s (debug; 4,250 release), 4,860
    /// unary minuses (release), 5,714 `not`s (debug), about 6,600 `+`,
    /// `and` or `f()()` calls, 8,766 filters, tests or subscripts, 10,109
    /// attribute reads or `if`/`else`s. On the 8 MiB main thread every
    /// threshold is about 4x higher (16,944 `elif`s, 19,630 minuses). The
    /// default of 500 is 7.5x below the smallest, leaving room for what a
    /// caller already has on its stack.
    pub max_expression_terms: u64,
    /// Instructions one template may execute when rendered (a loop's
    /// every turn costs some): what stops a runaway template.
    pub template_fuel: u64,
    /// The text one template may render, bytes.
    pub max_render_bytes: u64,
    /// Any duration or deadline a workflow sets (`duration_ms`,
    /// `timeout_ms`, retry delays, an `until` time from now), ms.
    pub max_duration_ms: u64,
    /// A workflow file the compiler reads (a sub-workflow's included), bytes.
    pub max_workflow_bytes: u64,
}

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;
const DAY_MS: u64 = 24 * 60 * 60 * 1000;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_response_bytes: 10 * MIB,
            max_state_bytes: 64 * MIB,
            max_steps: 100_000,
            max_for_each_items: 10_000,
            max_nodes: 10_000,
            max_template_bytes: 256 * KIB,
            max_expression_terms: 500,
            template_fuel: 10_000_000,
            max_render_bytes: 16 * MIB,
            max_duration_ms: 366 * DAY_MS,
            max_workflow_bytes: 16 * MIB,
        }
    }
}

/// One limit, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Limit {
    MaxResponseBytes,
    MaxStateBytes,
    MaxSteps,
    MaxForEachItems,
    MaxNodes,
    MaxTemplateBytes,
    MaxExpressionTerms,
    TemplateFuel,
    MaxRenderBytes,
    MaxDurationMs,
    MaxWorkflowBytes,
}

/// How a limit's value is written and shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unit {
    Bytes,
    Count,
    Ms,
}

impl Limit {
    pub const ALL: [Limit; 11] = [
        Limit::MaxResponseBytes,
        Limit::MaxStateBytes,
        Limit::MaxSteps,
        Limit::MaxForEachItems,
        Limit::MaxNodes,
        Limit::MaxTemplateBytes,
        Limit::MaxExpressionTerms,
        Limit::TemplateFuel,
        Limit::MaxRenderBytes,
        Limit::MaxDurationMs,
        Limit::MaxWorkflowBytes,
    ];

    /// The name used in `--limit NAME=VALUE`, `JAMJET_LIMITS` and errors.
    pub fn name(self) -> &'static str {
        match self {
            Limit::MaxResponseBytes => "max_response_bytes",
            Limit::MaxStateBytes => "max_state_bytes",
            Limit::MaxSteps => "max_steps",
            Limit::MaxForEachItems => "max_for_each_items",
            Limit::MaxNodes => "max_nodes",
            Limit::MaxTemplateBytes => "max_template_bytes",
            Limit::MaxExpressionTerms => "max_expression_terms",
            Limit::TemplateFuel => "template_fuel",
            Limit::MaxRenderBytes => "max_render_bytes",
            Limit::MaxDurationMs => "max_duration_ms",
            Limit::MaxWorkflowBytes => "max_workflow_bytes",
        }
    }

    pub fn parse(name: &str) -> Option<Limit> {
        Limit::ALL.into_iter().find(|l| l.name() == name)
    }

    fn unit(self) -> Unit {
        match self {
            Limit::MaxResponseBytes
            | Limit::MaxStateBytes
            | Limit::MaxTemplateBytes
            | Limit::MaxRenderBytes
            | Limit::MaxWorkflowBytes => Unit::Bytes,
            Limit::MaxDurationMs => Unit::Ms,
            Limit::MaxSteps
            | Limit::MaxForEachItems
            | Limit::MaxNodes
            | Limit::MaxExpressionTerms
            | Limit::TemplateFuel => Unit::Count,
        }
    }

    /// What it bounds, in a few words (`jamjet limits`).
    pub fn about(self) -> &'static str {
        match self {
            Limit::MaxResponseBytes => "an http, model, tool or agent response read into memory",
            Limit::MaxStateBytes => "an execution's state after a step, as JSON",
            Limit::MaxSteps => "node visits of one execution (a workflow's `max_steps:` may lower it)",
            Limit::MaxForEachItems => "items of one `for_each` (child executions of one fan-out)",
            Limit::MaxNodes => "nodes of one workflow, sub-workflows included",
            Limit::MaxTemplateBytes => "one template or condition",
            Limit::MaxExpressionTerms => "operators, filters, attribute reads and calls in one template tag",
            Limit::TemplateFuel => "instructions one template may run when rendered",
            Limit::MaxRenderBytes => "the text one template may render",
            Limit::MaxDurationMs => "a duration, timeout, retry delay or `until` time from now",
            Limit::MaxWorkflowBytes => "a workflow file the compiler reads",
        }
    }

    /// When it is checked: `compile` (a workflow compiled, registered or
    /// submitted), `run` (while an execution runs), or both (templates are
    /// guarded again at every render, an `until` when its wait is reached).
    pub fn checked(self) -> &'static str {
        match self {
            Limit::MaxNodes | Limit::MaxWorkflowBytes => "compile",
            Limit::MaxTemplateBytes | Limit::MaxExpressionTerms | Limit::MaxDurationMs => "compile, run",
            Limit::MaxResponseBytes
            | Limit::MaxStateBytes
            | Limit::MaxSteps
            | Limit::MaxForEachItems
            | Limit::TemplateFuel
            | Limit::MaxRenderBytes => "run",
        }
    }

    /// How to raise it, for error messages.
    pub fn how_to_raise(self) -> String {
        let name = self.name();
        let workflow = if self == Limit::MaxSteps { ", or lower it per workflow with `max_steps:`" } else { "" };
        format!("raise it with `--limit {name}=N` or JAMJET_LIMITS={name}=N{workflow}")
    }
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A `--limit` setting that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadLimit(pub String);

impl Limits {
    pub fn get(&self, limit: Limit) -> u64 {
        match limit {
            Limit::MaxResponseBytes => self.max_response_bytes,
            Limit::MaxStateBytes => self.max_state_bytes,
            Limit::MaxSteps => self.max_steps,
            Limit::MaxForEachItems => self.max_for_each_items,
            Limit::MaxNodes => self.max_nodes,
            Limit::MaxTemplateBytes => self.max_template_bytes,
            Limit::MaxExpressionTerms => self.max_expression_terms,
            Limit::TemplateFuel => self.template_fuel,
            Limit::MaxRenderBytes => self.max_render_bytes,
            Limit::MaxDurationMs => self.max_duration_ms,
            Limit::MaxWorkflowBytes => self.max_workflow_bytes,
        }
    }

    pub fn set(&mut self, limit: Limit, value: u64) {
        let slot = match limit {
            Limit::MaxResponseBytes => &mut self.max_response_bytes,
            Limit::MaxStateBytes => &mut self.max_state_bytes,
            Limit::MaxSteps => &mut self.max_steps,
            Limit::MaxForEachItems => &mut self.max_for_each_items,
            Limit::MaxNodes => &mut self.max_nodes,
            Limit::MaxTemplateBytes => &mut self.max_template_bytes,
            Limit::MaxExpressionTerms => &mut self.max_expression_terms,
            Limit::TemplateFuel => &mut self.template_fuel,
            Limit::MaxRenderBytes => &mut self.max_render_bytes,
            Limit::MaxDurationMs => &mut self.max_duration_ms,
            Limit::MaxWorkflowBytes => &mut self.max_workflow_bytes,
        };
        *slot = value;
    }

    /// Apply one `NAME=VALUE` setting. Sizes take `KiB`, `MiB` and `GiB`
    /// (`50MiB`), counts and milliseconds `_` separators (`1_000_000`).
    pub fn apply(&mut self, setting: &str) -> Result<(), BadLimit> {
        let (name, value) = setting.split_once('=').ok_or_else(|| {
            BadLimit(format!("`{setting}` is not a limit setting: write NAME=VALUE, e.g. max_steps=200000"))
        })?;
        let (name, value) = (name.trim(), value.trim());
        let limit = Limit::parse(name).ok_or_else(|| {
            let known: Vec<&str> = Limit::ALL.iter().map(|l| l.name()).collect();
            BadLimit(format!("unknown limit `{name}`; the limits are: {}", known.join(", ")))
        })?;
        let parsed = parse_value(value, limit.unit())
            .filter(|&v| v > 0)
            .ok_or_else(|| BadLimit(format!("`{value}` is not a value for {name}: {}", limit.unit().expected())))?;
        self.set(limit, parsed);
        Ok(())
    }

    /// Apply a comma-separated list of settings (`JAMJET_LIMITS`).
    pub fn apply_list(&mut self, list: &str) -> Result<(), BadLimit> {
        list.split(',').map(str::trim).filter(|s| !s.is_empty()).try_for_each(|s| self.apply(s))
    }

    /// The value of a limit as people read it (`10 MiB`, `100,000`, `366 days`).
    pub fn show(&self, limit: Limit) -> String {
        show_value(self.get(limit), limit.unit())
    }

    /// The message of a crossed limit: what crossed it, the limit with its
    /// value, and how to raise it.
    pub fn exceeded(&self, limit: Limit, what: impl fmt::Display) -> String {
        message(limit, self.get(limit), what)
    }
}

/// The message of a crossed limit whose value is `value` (see [`Limits::exceeded`]).
pub fn message(limit: Limit, value: u64, what: impl fmt::Display) -> String {
    format!("{what}: over the limit {limit} = {} ({})", show_value(value, limit.unit()), limit.how_to_raise())
}

impl Unit {
    fn expected(self) -> &'static str {
        match self {
            Unit::Bytes => "a positive size in bytes, optionally with KiB, MiB or GiB (e.g. 50MiB)",
            Unit::Count => "a positive whole number (e.g. 200000)",
            Unit::Ms => "a positive number of milliseconds (e.g. 86400000)",
        }
    }
}

fn parse_value(text: &str, unit: Unit) -> Option<u64> {
    let text: String = text.chars().filter(|c| *c != '_').collect();
    let (digits, scale) = match unit {
        Unit::Bytes => {
            let lower = text.to_ascii_lowercase();
            [("gib", 1024 * MIB), ("mib", MIB), ("kib", KIB), ("b", 1)]
                .into_iter()
                .find_map(|(suffix, scale)| lower.strip_suffix(suffix).map(|d| (d.trim().to_string(), scale)))
                .unwrap_or((lower, 1))
        }
        Unit::Count | Unit::Ms => (text, 1),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse::<u64>().ok()?.checked_mul(scale)
}

fn show_value(v: u64, unit: Unit) -> String {
    match unit {
        Unit::Bytes => show_bytes(v),
        Unit::Count => thousands(v),
        Unit::Ms if v >= DAY_MS && v.is_multiple_of(DAY_MS) => {
            format!("{} {}", thousands(v / DAY_MS), crate::plural::noun(v / DAY_MS, "day", "days"))
        }
        Unit::Ms => format!("{} ms", thousands(v)),
    }
}

/// The length of `v` written as compact JSON, in bytes (what
/// `max_state_bytes` measures), counted without writing it.
pub fn json_size(v: &serde_json::Value) -> u64 {
    use serde_json::Value;
    match v {
        Value::Null => 4,
        Value::Bool(b) => 4 + u64::from(!*b),
        Value::Number(n) => match (n.as_u64(), n.as_i64()) {
            (Some(u), _) => digits(u),
            (None, Some(i)) => 1 + digits(i.unsigned_abs()),
            // Floats print in at most 24 characters (ryu's shortest form).
            _ => 24,
        },
        Value::String(s) => string_size(s),
        Value::Array(items) => 2 + items.len().saturating_sub(1) as u64 + items.iter().map(json_size).sum::<u64>(),
        Value::Object(map) => {
            2 + map.len().saturating_sub(1) as u64 + map.iter().map(|(k, v)| entry_size(k, v)).sum::<u64>()
        }
    }
}

/// One `"key":value` entry of an object, as [`json_size`] counts it.
pub fn entry_size(key: &str, value: &serde_json::Value) -> u64 {
    string_size(key) + 1 + json_size(value)
}

fn string_size(s: &str) -> u64 {
    let escaped: u64 = s
        .bytes()
        .map(|b| match b {
            b'"' | b'\\' | b'\n' | b'\r' | b'\t' | 0x08 | 0x0c => 1,
            0..0x20 => 5,
            _ => 0,
        })
        .sum();
    2 + s.len() as u64 + escaped
}

fn digits(mut v: u64) -> u64 {
    let mut n = 1;
    while v >= 10 {
        v /= 10;
        n += 1;
    }
    n
}

/// `10 MiB`, `1.5 GiB`, `300 bytes`.
pub fn show_bytes(v: u64) -> String {
    for (scale, name) in [(1024 * MIB, "GiB"), (MIB, "MiB"), (KIB, "KiB")] {
        if v >= scale {
            return if v.is_multiple_of(scale) {
                format!("{} {name}", v / scale)
            } else {
                format!("{:.1} {name}", v as f64 / scale as f64)
            };
        }
    }
    format!("{v} bytes")
}

/// `100,000`.
pub fn thousands(v: u64) -> String {
    let digits = v.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_parse_with_units_and_refuse_junk() {
        let mut l = Limits::default();
        l.apply("max_response_bytes=50MiB").unwrap();
        assert_eq!(l.max_response_bytes, 50 * MIB);
        l.apply_list(" max_steps=1_000 , max_duration_ms=60000 ").unwrap();
        assert_eq!((l.max_steps, l.max_duration_ms), (1000, 60_000));
        assert!(l.apply("max_stepz=3").unwrap_err().0.contains("unknown limit `max_stepz`"));
        assert!(l.apply("max_steps=0").is_err());
        assert!(l.apply("max_steps=-1").is_err());
        assert!(l.apply("max_steps").is_err());
        assert!(l.apply("max_state_bytes=99999999999GiB").is_err(), "overflow is refused");
    }

    #[test]
    fn json_size_is_the_compact_length() {
        let samples = [
            serde_json::json!(null),
            serde_json::json!({"a": [1, -20, 3.25, true, false, "x\"y\n\u{1}"], "b": {}, "c": [], "": 18446744073709551615u64}),
            serde_json::json!(-9223372036854775808i64),
            serde_json::json!("plain"),
        ];
        for v in samples {
            let exact = serde_json::to_string(&v).unwrap().len() as u64;
            let counted = json_size(&v);
            // Floats are counted at their longest; everything else exactly.
            assert!(counted >= exact && counted <= exact + 24, "{v}: {counted} vs {exact}");
        }
        assert_eq!(json_size(&serde_json::json!({"ab": "cd", "e": [1, 22]})), 22);
    }

    #[test]
    fn messages_name_the_limit_its_value_and_how_to_raise_it() {
        let l = Limits::default();
        let m = l.exceeded(Limit::MaxResponseBytes, "the response of node `fetch`");
        assert!(m.contains("max_response_bytes = 10 MiB"), "{m}");
        assert!(m.contains("--limit max_response_bytes=N"), "{m}");
        assert_eq!(l.show(Limit::MaxSteps), "100,000");
        assert_eq!(l.show(Limit::MaxDurationMs), "366 days");
        assert_eq!(show_bytes(1536), "1.5 KiB");
    }
}
