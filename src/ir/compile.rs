//! The YAML compiler: workflow files in, a validated [`Workflow`] or every
//! finding at once out.
//!
//! This file owns the entry points, the finding collector and the top of
//! the file (both forms: a `workflow:` block, or `id:`/`nodes:` at the top
//! level). Its submodules own the YAML tree ([`yaml`]), nodes ([`nodes`]),
//! local agents ([`agents`], their [`strategy`] parameters), the budget
//! and the policy ([`policy`]),
//! the kinds that fan out ([`parallel`]), park ([`waits`]) or include
//! another file ([`subworkflow`]), retry policies ([`retry`]), what can be
//! known about state ([`state`]) and the graph ([`graph`]). Nothing here
//! runs a workflow.

mod a2a;
mod agent;
mod agents;
mod eval;
mod graph;
mod mcp;
mod model;
mod nodes;
mod parallel;
mod policy;
mod retry;
mod schema;
mod session;
mod state;
mod strategy;
mod subworkflow;
mod trajectory;
mod waits;
mod yaml;

use std::cell::Cell;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use super::diagnostic::{Diagnostic, Diagnostics};
use super::limits::{Limit, Limits};
use super::schema::StateSchema;
use super::workflow::{RetryPolicy, Span, Workflow};
use yaml::{Entry, Scalar, Value, Yaml};

/// What the compiler may do beyond reading the text it is given, and the
/// limits it checks.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Workflow size, template length and terms, durations.
    pub limits: Limits,
    /// Which files a `type: workflow` node may include.
    pub includes: Includes,
}

/// Where sub-workflow files may be read from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Includes {
    /// Any file the process can read (a local file of your own).
    #[default]
    Anywhere,
    /// Only files under this directory (a server's `--workflows` DIR).
    Under(PathBuf),
    /// No file at all (a workflow posted to a server with no `--workflows`).
    Nowhere,
}

/// Compile a workflow file. An unreadable file is one finding at 1:1.
/// Sub-workflows are resolved beside it.
pub fn compile_file(path: &Path) -> Result<Workflow, Diagnostics> {
    compile_file_with(path, &Options::default())
}

/// [`compile_file`] with these options.
pub fn compile_file_with(path: &Path, options: &Options) -> Result<Workflow, Diagnostics> {
    SUGGESTION_WORK.set(SUGGESTION_BUDGET);
    compile_path(path, &[], options)
}

/// Compile workflow YAML; `file` names it in findings and becomes
/// [`Workflow::source_file`]. A sub-workflow's `file:` is resolved from the
/// current directory; one named by `workflow:` id cannot be found (that
/// needs [`compile_file`]).
pub fn compile_str(source: &str, file: &str) -> Result<Workflow, Diagnostics> {
    compile_str_with(source, file, &Options::default())
}

/// [`compile_str`] with these options.
pub fn compile_str_with(source: &str, file: &str, options: &Options) -> Result<Workflow, Diagnostics> {
    SUGGESTION_WORK.set(SUGGESTION_BUDGET);
    compile_source(source, file, None, Vec::new(), options)
}

/// Compile a file that the files of `including` (outermost first) include.
/// Only a regular file of at most `max_workflow_bytes` is read
/// ([`subworkflow::read_workflow_file`]): a device, a FIFO or a directory
/// is refused without reading it.
fn compile_path(path: &Path, including: &[Including], options: &Options) -> Result<Workflow, Diagnostics> {
    let file = path.display().to_string();
    let source = subworkflow::read_workflow_file(path, &options.limits).map_err(|message| {
        Diagnostics(vec![Diagnostic { file: file.clone(), line: 1, column: 1, message, node: None }])
    })?;
    let mut including = including.to_vec();
    let canonical = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    including.push(Including { canonical, shown: file.clone() });
    let dir = path.parent().unwrap_or(Path::new("")).to_path_buf();
    compile_source(&source, &file, Some(dir), including, options)
}

fn compile_source(
    source: &str,
    file: &str,
    dir: Option<PathBuf>,
    including: Vec<Including>,
    options: &Options,
) -> Result<Workflow, Diagnostics> {
    let mut cx = Ctx { file: file.to_string(), dir, including, options: options.clone(), ..Ctx::default() };
    let workflow = match yaml::parse(source) {
        Err((span, message)) => {
            cx.add(span, format!("invalid YAML: {message}"));
            None
        }
        Ok((root, problems)) => {
            for (span, message) in problems {
                cx.add(span, message);
            }
            cx.workflow(&root)
        }
    };
    // What the walk of the compiled IR finds that the file's own checks do
    // not: the size of the workflow with its sub-workflows', and the same
    // template and duration limits an IR posted as JSON is held to. Once,
    // for the outermost file: it covers what that file includes.
    let outermost = cx.including.len() <= 1;
    if let Some(wf) = workflow.as_ref().filter(|_| cx.findings.is_empty() && outermost) {
        for finding in super::check::check_limits(wf, &cx.options.limits) {
            let span =
                finding.node.as_ref().and_then(|n| wf.nodes.get(n)).map_or(Span { line: 1, column: 1 }, |n| n.span);
            cx.add_for(span, finding.node.clone(), finding.message);
        }
    }
    if workflow.is_none() && cx.findings.is_empty() {
        // Every path that fails reports why; this keeps `Err` never empty.
        cx.add(Span { line: 1, column: 1 }, "the workflow did not compile");
    }
    let mut findings = cx.findings;
    clamp_positions(&mut findings, file, source);
    findings.sort_by_key(|d| (d.line, d.column));
    findings.dedup();
    match workflow {
        Some(workflow) if findings.is_empty() => Ok(workflow),
        _ => Err(Diagnostics(findings)),
    }
}

const TOP_NESTED: &[&str] = &[
    "workflow",
    "nodes",
    "retry_policies",
    "models",
    "prices",
    "mcp",
    "a2a",
    "agents",
    "budget",
    "policy",
    "session_state",
];
const HEADER: &[&str] = &["id", "version", "state_schema", "start", "timeout_ms", "max_steps", "description"];
const TOP_FLAT: &[&str] = &[
    "id",
    "version",
    "state_schema",
    "start",
    "timeout_ms",
    "max_steps",
    "description",
    "nodes",
    "retry_policies",
    "models",
    "prices",
    "mcp",
    "a2a",
    "agents",
    "budget",
    "policy",
    "session_state",
];

/// One of the files being compiled, the outermost first: a sub-workflow
/// that names one of them includes itself.
#[derive(Clone)]
struct Including {
    canonical: PathBuf,
    /// As findings show it.
    shown: String,
}

/// The compiler's working state: findings so far, and what later parts of
/// the file are checked against.
#[derive(Default)]
struct Ctx {
    file: String,
    /// The directory sub-workflows are looked up in; `None` when the
    /// workflow was not read from a file.
    dir: Option<PathBuf>,
    /// The files being compiled, this one last (empty for a string).
    including: Vec<Including>,
    findings: Vec<Diagnostic>,
    /// The node being compiled; findings are attributed to it.
    node: Option<String>,
    schema: StateSchema,
    policies: BTreeMap<String, RetryPolicy>,
    /// The current node's reads of `item` and `index`, which are defined
    /// only in a `for_each` branch: the graph decides ([`state::LoopRead`]).
    loop_reads: Vec<state::LoopRead>,
    /// The `models:` and `prices:` sections, read before the nodes.
    models: model::Models,
    /// The `models:` entries that have findings: a node naming one is not
    /// told its model is unknown (the entry's own findings say what is wrong).
    models_failed: Vec<String>,
    prices: BTreeMap<String, crate::ir::Price>,
    /// The `mcp:` section's servers that compiled, and every name declared.
    mcp_servers: BTreeMap<String, crate::ir::McpServer>,
    mcp_declared: Vec<String>,
    /// Every name of the `agents:` block (those with findings too), read
    /// before the agents and the nodes that name them.
    agent_names: Vec<String>,
    /// The `policy:` section, read before what it is held to.
    rules: policy::Rules,
    /// Limits and what may be read (sub-workflow files).
    options: Options,
    /// The workflow files of each directory a `workflow: <id>` looked in.
    scanned: HashMap<PathBuf, std::rc::Rc<Vec<subworkflow::Candidate>>>,
}

/// The workflow's own fields; `None` where they have findings.
#[derive(Default)]
struct Header {
    id: Option<String>,
    version: Option<String>,
    schema: Option<StateSchema>,
    start: Option<(String, Span)>,
    timeout_ms: Option<Option<u64>>,
    max_steps: Option<Option<u64>>,
}

/// A mapping's entries, with unknown and duplicate keys already reported.
struct Fields<'y> {
    entries: Vec<&'y Entry>,
}

impl<'y> Fields<'y> {
    fn get(&self, key: &str) -> Option<&'y Yaml> {
        self.entry(key).map(|e| &e.value)
    }
    fn entry(&self, key: &str) -> Option<&'y Entry> {
        self.entries.iter().copied().find(|e| e.key == key)
    }
}

impl Ctx {
    /// A YAML value as JSON, strings taken literally (not templates).
    /// Used by `output_schema`, `json_schema` scorers: JSON Schemas are data.
    fn literal_json(&mut self, y: &Yaml) -> Option<serde_json::Value> {
        Some(match &y.value {
            Value::Scalar(_, Scalar::Null) => serde_json::Value::Null,
            Value::Scalar(_, Scalar::Bool(b)) => serde_json::Value::Bool(*b),
            Value::Scalar(_, Scalar::Int(n)) => serde_json::Value::from(*n),
            Value::Scalar(text, Scalar::Float(f)) => match serde_json::Number::from_f64(*f) {
                Some(n) => serde_json::Value::Number(n),
                None => {
                    self.add(y.span, format!("`{text}` cannot be stored as JSON: write a finite number"));
                    return None;
                }
            },
            Value::Scalar(text, Scalar::Str) => serde_json::Value::String(text.clone()),
            Value::Seq(items) => {
                serde_json::Value::Array(items.iter().map(|i| self.literal_json(i)).collect::<Option<_>>()?)
            }
            Value::Map(_) => {
                let entries = self.entries(y, "a mapping", "key")?;
                let mut map = serde_json::Map::new();
                for e in entries {
                    map.insert(e.key.clone(), self.literal_json(&e.value)?);
                }
                serde_json::Value::Object(map)
            }
        })
    }

    fn add(&mut self, span: Span, message: impl Into<String>) {
        let node = self.node.clone();
        self.add_for(span, node, message);
    }

    /// Every finding goes through here: its message and node id are made
    /// safe to print on one line ([`one_line`]).
    fn add_for(&mut self, span: Span, node: Option<String>, message: impl Into<String>) {
        let Span { line, column } = span;
        let (line, column) = (line.max(1), column.max(1));
        let message = one_line(&message.into());
        let node = node.map(|n| one_line(&n));
        self.findings.push(Diagnostic { file: self.file.clone(), line, column, message, node });
    }

    /// The entries of a mapping, first occurrence of each key only. `owner`
    /// names the mapping in messages ("`headers`", "node `fetch`"), `what`
    /// its keys ("key", "node id").
    fn entries<'y>(&mut self, y: &'y Yaml, owner: &str, what: &str) -> Option<Vec<&'y Entry>> {
        let Value::Map(entries) = &y.value else {
            self.add(y.span, format!("{owner} must be a mapping, found {}", y.kind()));
            return None;
        };
        let mut seen: HashMap<&str, u32> = HashMap::with_capacity(entries.len());
        let mut first = Vec::with_capacity(entries.len());
        for entry in entries {
            match seen.get(entry.key.as_str()) {
                Some(line) => {
                    let node = (what == "node id").then(|| entry.key.clone()).or_else(|| self.node.clone());
                    let message = format!("duplicate {what} `{}` (first defined at line {line})", entry.key);
                    self.add_for(entry.key_span, node, message);
                }
                None => {
                    seen.insert(&entry.key, entry.key_span.line);
                    first.push(entry);
                }
            }
        }
        Some(first)
    }

    /// A mapping with a fixed set of fields; unknown ones are reported.
    fn fields<'y>(&mut self, y: &'y Yaml, owner: &str, allowed: &[&str]) -> Option<Fields<'y>> {
        let entries = self.entries(y, owner, "key")?;
        for entry in &entries {
            if !allowed.contains(&entry.key.as_str()) {
                let hint = suggest(&entry.key, allowed.iter().copied())
                    .map(|s| format!("did you mean `{s}`? "))
                    .unwrap_or_default();
                let message =
                    format!("unknown field `{}` in {owner} ({hint}expected one of: {})", entry.key, allowed.join(", "));
                self.add(entry.key_span, message);
            }
        }
        Some(Fields { entries })
    }

    fn required<'y>(&mut self, fields: &Fields<'y>, key: &str, owner: &str, at: Span) -> Option<&'y Yaml> {
        let value = fields.get(key);
        if value.is_none() {
            self.add(at, format!("{owner} is missing the required field `{key}`"));
        }
        value
    }

    fn string(&mut self, y: &Yaml, field: &str) -> Option<String> {
        let text = y.as_str().map(str::to_string);
        if text.is_none() {
            self.add(y.span, format!("`{field}` must be a string, found {}", y.kind()));
        }
        text
    }

    /// One of a fixed set of words (`merge: keys`).
    fn keyword(&mut self, y: &Yaml, field: &str, known: &[&'static str]) -> Option<&'static str> {
        let word = self.string(y, field)?;
        let found = known.iter().copied().find(|k| *k == word);
        if found.is_none() {
            let hint =
                suggest(&word, known.iter().copied()).map(|s| format!("did you mean `{s}`? ")).unwrap_or_default();
            self.add(y.span, format!("unknown {field} `{word}` ({hint}expected one of: {})", known.join(", ")));
        }
        found
    }

    /// An integer no smaller than `min`.
    fn bool(&mut self, y: &Yaml, field: &str) -> Option<bool> {
        match &y.value {
            Value::Scalar(_, Scalar::Bool(b)) => Some(*b),
            _ => {
                self.add(y.span, format!("`{field}` must be true or false, found {}", y.kind()));
                None
            }
        }
    }

    fn int(&mut self, y: &Yaml, field: &str, min: i64) -> Option<u64> {
        match &y.value {
            Value::Scalar(_, Scalar::Int(n)) if *n >= min => u64::try_from(*n).ok(),
            Value::Scalar(_, Scalar::Int(n)) => {
                self.add(y.span, format!("`{field}` must be at least {min}, found {n}"));
                None
            }
            _ => {
                self.add(y.span, format!("`{field}` must be an integer, found {}", y.kind()));
                None
            }
        }
    }

    /// A duration or deadline in milliseconds: an integer no smaller than
    /// `min` and no larger than the `max_duration_ms` limit.
    pub(super) fn duration(&mut self, y: &Yaml, field: &str, min: i64) -> Option<u64> {
        let ms = self.int(y, field, min)?;
        let limits = self.options.limits;
        if ms > limits.max_duration_ms {
            self.add(y.span, limits.exceeded(Limit::MaxDurationMs, format!("`{field}` of {ms} ms")));
            return None;
        }
        Some(ms)
    }

    /// The whole file: header, retry policies, prices, models, MCP servers,
    /// the policy, the budget and the agents, nodes, then the graph.
    fn workflow(&mut self, root: &Yaml) -> Option<Workflow> {
        let nested = matches!(&root.value, Value::Map(e) if e.iter().any(|e| e.key == "workflow"));
        let top = self.fields(root, "the top level of a workflow file", if nested { TOP_NESTED } else { TOP_FLAT })?;
        let header = match top.entry("workflow") {
            Some(block) => {
                self.fields(&block.value, "the `workflow` block", HEADER).map(|f| self.header(&f, block.key_span))
            }
            None => Some(self.header(&top, root.span)),
        };
        let header = header.unwrap_or_default();
        if let Some(y) = top.get("retry_policies") {
            self.retry_policies(y);
        }
        if let Some(y) = top.get("prices") {
            self.prices_section(y);
        }
        if let Some(y) = top.get("models") {
            self.models_section(y);
        }
        if let Some(y) = top.get("mcp") {
            self.mcp(y);
        }
        let policy = optional(top.get("policy").map(|y| self.policy(y)));
        let budget = optional(top.get("budget").map(|y| self.budget(y)));
        let agents = top.get("agents").map_or(Some(BTreeMap::new()), |y| self.agents(y));
        let a2a = optional(top.get("a2a").map(|y| self.a2a(y)));
        let session_state = top.get("session_state").map_or(Some(Vec::new()), |y| self.session_state(y));
        let nodes = self.required(&top, "nodes", "the workflow", root.span).and_then(|y| self.nodes(y))?;
        let (nodes, edges, start) = self.graph(nodes, header.start)?;
        Some(Workflow {
            id: header.id?,
            version: header.version?,
            state_schema: header.schema?,
            start,
            nodes,
            edges,
            retry_policies: std::mem::take(&mut self.policies),
            source_file: Some(self.file.clone()),
            timeout_ms: header.timeout_ms?,
            models: std::mem::take(&mut self.models),
            prices: std::mem::take(&mut self.prices),
            mcp_servers: std::mem::take(&mut self.mcp_servers),
            a2a: a2a?,
            max_steps: header.max_steps?,
            agents: agents?,
            budget: budget?,
            policy: policy?,
            session_state: session_state?,
        })
    }

    /// `id`, `version`, `state_schema`, `start`, `timeout_ms`, `max_steps`
    /// and `description`, from the `workflow` block or the top level; `at` is
    /// where a missing one is reported. Sets `self.schema` for what follows.
    fn header(&mut self, f: &Fields, at: Span) -> Header {
        let id = self.required(f, "id", "the workflow", at).and_then(|y| self.string(y, "id"));
        let version = match f.get("version").map(|y| (y, &y.value)) {
            None => Some("0.1.0".to_string()),
            Some((_, Value::Scalar(text, Scalar::Str | Scalar::Int(_) | Scalar::Float(_)))) => Some(text.clone()),
            Some((y, _)) => self.string(y, "version"),
        };
        if let Some(y) = f.get("description") {
            self.string(y, "description");
        }
        let schema = self.required(f, "state_schema", "the workflow", at).and_then(|y| self.state_schema(y));
        self.schema = schema.clone().unwrap_or_default();
        let start = f.get("start").and_then(|y| Some((self.string(y, "start")?, y.span)));
        let timeout_ms = optional(f.get("timeout_ms").map(|y| self.duration(y, "timeout_ms", 1)));
        let max_steps = optional(f.get("max_steps").map(|y| self.int(y, "max_steps", 1)));
        Header { id, version, schema, start, timeout_ms, max_steps }
    }
}

/// An optional field as read: absent is fine (`Some(None)`), present but
/// unreadable is not (`None`).
fn optional<T>(field: Option<Option<T>>) -> Option<Option<T>> {
    field.map_or(Some(None), |value| value.map(Some))
}

/// How much work suggestions may cost one compilation (a candidate looked
/// at costs 1, an edit distance the product of the lengths): past it a
/// misspelt name gets no `did you mean`, so a file full of misspellings
/// against thousands of names stays linear.
const SUGGESTION_BUDGET: u64 = 20_000_000;

thread_local! {
    /// What is left of [`SUGGESTION_BUDGET`] for the compilation running on
    /// this thread (reset by each entry point; sub-workflows share it).
    static SUGGESTION_WORK: Cell<u64> = const { Cell::new(SUGGESTION_BUDGET) };
}

/// Take `cost` from the suggestion budget; false when it is spent.
fn spend(cost: u64) -> bool {
    let left = SUGGESTION_WORK.get();
    SUGGESTION_WORK.set(left.saturating_sub(cost));
    left >= cost
}

/// The candidate closest to `name` by edit distance, if within 2.
fn suggest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let mut best: Option<(usize, &str)> = None;
    let len = name.chars().count();
    if len > 64 {
        return None;
    }
    // Distance is at least the difference in length: skip hopeless pairs.
    for candidate in candidates {
        if !spend(1) {
            return None;
        }
        if candidate.len().abs_diff(name.len()) > 8 || !spend((name.len() * candidate.len()) as u64) {
            continue;
        }
        let d = edit_distance(name, candidate);
        if d <= 2 && d * 2 <= len && best.is_none_or(|(b, _)| d < b) {
            best = Some((d, candidate));
        }
    }
    best.map(|(_, c)| c)
}

/// Levenshtein distance over chars.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1).min(row[j] + 1).min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

/// `did you mean `x`?` for a name not among `candidates`, or nothing.
fn did_you_mean<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> String {
    suggest(name, candidates).map(|s| format!(" (did you mean `{s}`?)")).unwrap_or_default()
}

/// How much of one quoted (backticked) piece of user text a finding shows.
const QUOTED_CHARS: usize = 120;
/// How long one finding's message may be.
const MESSAGE_CHARS: usize = 2000;

/// A message as it may be printed on one line: control characters (a
/// newline, a carriage return, an escape sequence) and the characters that
/// reorder or break text are escaped (`\n`, `\u{1b}`), so text from the file
/// cannot forge another finding; a quoted piece longer than 120 characters,
/// and a message longer than 2,000, is cut with `…`.
fn one_line(message: &str) -> String {
    let mut out = String::with_capacity(message.len().min(MESSAGE_CHARS + 8));
    let (mut quoted, mut in_quote, mut total) = (0usize, false, 0usize);
    for c in message.chars() {
        if total >= MESSAGE_CHARS {
            out.push('…');
            break;
        }
        if c == '`' {
            in_quote = !in_quote;
            quoted = 0;
        } else if in_quote {
            quoted += 1;
            if quoted == QUOTED_CHARS + 1 {
                out.push('…');
            }
            if quoted > QUOTED_CHARS {
                continue;
            }
        }
        total += 1;
        let breaks = matches!(c, '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
        if c.is_control() || breaks {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// Move every finding of `file` onto a real position of `source`: a line
/// past the last (as the parser reports the end of a file that stops
/// without a newline) becomes the last line's end; a column past a line's
/// end becomes its end.
fn clamp_positions(findings: &mut [Diagnostic], file: &str, source: &str) {
    let lines: Vec<&str> = source.lines().collect();
    let last = u32::try_from(lines.len().max(1)).unwrap_or(u32::MAX);
    for d in findings.iter_mut().filter(|d| d.file == file) {
        if d.line > last {
            d.line = last;
            d.column = u32::MAX;
        }
        let text = lines.get(d.line as usize - 1).copied().unwrap_or("");
        let end = u32::try_from(text.chars().count()).unwrap_or(u32::MAX - 1) + 1;
        d.column = d.column.clamp(1, end);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_stay_on_one_line_and_quotes_are_cut() {
        assert_eq!(one_line("field `a\nb:1:1: error: x`"), "field `a\\nb:1:1: error: x`");
        assert_eq!(one_line("esc `\u{1b}[2J` and \r"), "esc `\\u{1b}[2J` and \\r");
        let long = format!("unknown `{}` here", "x".repeat(500));
        let cut = one_line(&long);
        assert!(cut.starts_with(&format!("unknown `{}…`", "x".repeat(120))), "{cut}");
        assert!(cut.ends_with("` here"), "{cut}");
        assert!(one_line(&"y".repeat(10_000)).chars().count() <= 2001);
    }

    #[test]
    fn positions_are_clamped_to_the_file() {
        let at = |line, column| Diagnostic { file: "f".into(), line, column, message: String::new(), node: None };
        let mut findings = vec![at(3, 1), at(1, 99), at(2, 2), Diagnostic { file: "other".into(), ..at(9, 9) }];
        clamp_positions(&mut findings, "f", "a: 1\nbé: [x");
        let got: Vec<_> = findings.iter().map(|d| (d.line, d.column)).collect();
        assert_eq!(got, [(2, 7), (1, 5), (2, 2), (9, 9)]);
    }

    #[test]
    fn edit_distance_and_suggestions() {
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "ab"), 2);
        assert_eq!(suggest("sumarize", ["search", "summarize"]), Some("summarize"));
        assert_eq!(suggest("zzz", ["search"]), None);
    }
}
