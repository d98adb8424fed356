//! Templates (`{{ state.x }}`) and conditions (`state.score >= 0.8`), both
//! through one minijinja environment in strict mode: a misspelt key is an
//! error, never an empty string.
//!
//! The compiler uses [`referenced_state_keys`] to check templates against
//! the schema; nodes use [`Templates`] to render at run time. A string that
//! is exactly one `{{ expr }}` is evaluated as an expression, so its value
//! keeps its type (`"{{ state.n + 1 }}"` is a number, not the text "4").

use std::collections::{BTreeSet, HashMap};
use std::io;
use std::sync::{Arc, Mutex};

use minijinja::{Environment, ErrorKind, Expression, UndefinedBehavior, Value as TplValue};
use serde_json::Value;

use super::limits::{Limit, Limits, show_bytes};

/// How deep the engine may recurse at run time (its own counter; 500 by
/// default). Macros are compiled out and recursive loops refused, so
/// nothing a workflow writes comes near it.
const RECURSION_LIMIT: usize = 100;

/// How much of a template an error quotes.
const QUOTED_CHARS: usize = 200;

/// A template or condition that failed, with (the start of) the text that
/// failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("template `{template}`: {message}")]
pub struct TemplateError {
    /// The template, cut after 200 characters.
    pub template: String,
    pub message: String,
    /// The limit it crossed, if that is why it failed (a run-time error of
    /// class `limit_exceeded`, not `template`).
    pub limit: Option<Limit>,
}

impl TemplateError {
    fn new(template: &str, err: minijinja::Error, limits: &Limits) -> Self {
        if err.kind() == ErrorKind::OutOfFuel {
            let message = limits.exceeded(Limit::TemplateFuel, "the template ran too long");
            return TemplateError::limit(template, Limit::TemplateFuel, message);
        }
        let mut message = err.kind().to_string();
        if let Some(detail) = err.detail() {
            message = format!("{message}: {detail}");
        }
        TemplateError { template: quote(template), message, limit: None }
    }

    fn limit(template: &str, limit: Limit, message: String) -> Self {
        TemplateError { template: quote(template), message, limit: Some(limit) }
    }

    fn refused(template: &str, message: String) -> Self {
        TemplateError { template: quote(template), message, limit: None }
    }
}

/// The start of a template, for an error.
fn quote(template: &str) -> String {
    match template.char_indices().nth(QUOTED_CHARS) {
        Some((at, _)) => format!("{}…", &template[..at]),
        None => template.to_string(),
    }
}

/// The rendering engine shared by every node of a runtime. Every render and
/// evaluation is guarded first ([`check_template`]), runs on fuel
/// (`template_fuel`) and stops at `max_render_bytes` of output. An
/// expression (a condition, a `"{{ expr }}"` value) is compiled once and
/// kept, up to [`KEPT_EXPRESSIONS`] of them; so is a text template, up to
/// [`KEPT_TEMPLATES`] of them and [`KEPT_TEMPLATE_BYTES`] of their sources.
pub struct Templates {
    engine: Engine,
    templates: Mutex<KeptTemplates>,
    limits: Limits,
}

/// The text templates an engine keeps, by source (one copy of it, shared
/// with the kept template), and their sources' bytes.
#[derive(Default)]
struct KeptTemplates {
    by_source: HashMap<Arc<str>, Arc<KeptTemplate>>,
    bytes: usize,
}

/// A template compiled with the environment and the source it borrows.
type BorrowedTemplate<'a> = minijinja::Template<'a, 'a>;

self_cell::self_cell!(
    /// A text template compiled once, beside the environment and the
    /// source it borrows.
    struct KeptTemplate {
        owner: (Arc<Environment<'static>>, Arc<str>),
        #[not_covariant]
        dependent: BorrowedTemplate,
    }
);

impl std::fmt::Debug for Templates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Templates").field("limits", &self.limits).finish_non_exhaustive()
    }
}

/// Expressions compiled by the engine they borrow, by source.
type Compiled<'env> = Mutex<HashMap<Box<str>, Arc<Expression<'env, 'static>>>>;

self_cell::self_cell!(
    /// The environment, and the expressions compiled by it.
    struct Engine {
        owner: Arc<Environment<'static>>,
        #[not_covariant]
        dependent: Compiled,
    }
);

/// How many compiled expressions an engine keeps. The workflows a process
/// runs have far fewer; past it (a server fed ever new workflows) the
/// kept ones are dropped and compiled again as they come.
pub const KEPT_EXPRESSIONS: usize = 4096;

/// How many compiled text templates an engine keeps; past it, or past
/// [`KEPT_TEMPLATE_BYTES`] of their sources (a template may be as long as
/// `max_template_bytes`), the kept ones are dropped and compiled again as
/// they come.
pub const KEPT_TEMPLATES: usize = 1024;

/// How many bytes of template sources an engine keeps compiled.
pub const KEPT_TEMPLATE_BYTES: usize = 8 * 1024 * 1024;

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

fn engine(limits: &Limits) -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_fuel(Some(limits.template_fuel));
    env.set_recursion_limit(RECURSION_LIMIT);
    // `namespace()` is the one way a loop carries a value from one turn to
    // the next, so `{% set ns.s = ns.s ~ ns.s %}` in a loop doubles a string
    // at every turn: a few dozen turns (well within the fuel) exhaust any
    // memory. Without it, a loop's `set` lives one turn.
    env.remove_global("namespace");
    env
}

/// Every variable a template or expression reads, as dotted paths
/// (`state.a.b`, `foo`), leaving out the engine's globals (`range`, `dict`,
/// ...); or the syntax error that stops it compiling. The compiler uses it
/// to find names other than `state`, which the run-time context lacks.
/// Checked against the default [`Limits`] first ([`check_template`]).
pub fn referenced_variables(source: &str, expression: bool) -> Result<BTreeSet<String>, TemplateError> {
    referenced_variables_with(source, expression, &Limits::default())
}

/// [`referenced_variables`] under these limits.
pub fn referenced_variables_with(
    source: &str,
    expression: bool,
    limits: &Limits,
) -> Result<BTreeSet<String>, TemplateError> {
    if !expression && let Some(expr) = single_expression(source) {
        return referenced_variables_with(expr, true, limits)
            .map_err(|e| TemplateError { template: quote(source), ..e });
    }
    check_template(source, expression, limits)?;
    let env = engine(limits);
    let vars = if expression {
        env.compile_expression(source).map_err(|e| TemplateError::new(source, e, limits))?.undeclared_variables(true)
    } else {
        env.template_from_str(source).map_err(|e| TemplateError::new(source, e, limits))?.undeclared_variables(true)
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

/// The guard every template and expression passes before the engine sees
/// it, at compile time and at every render: what would make the engine
/// recurse too deep or never stop is refused here.
///
/// The engine parses a flat chain (`a + a + ...`, `x|f|f...`, `a.b.c...`,
/// `f()()...`, `not not ...`, `- - ...`, `a if b else a if b else ...`, and
/// `{% elif %}` after `{% elif %}`) into a tree as deep as the chain is
/// long, then compiles, inspects and drops it recursively: a deep enough
/// chain overflows the stack, which aborts the process. So a template over
/// `max_template_bytes`, a `{{ }}` or `{% %}` tag (or a whole expression)
/// with more than `max_expression_terms` operators, filters, tests,
/// attribute reads, calls and subscripts, or an `if` with more
/// `{% elif %}`s than that, is an error naming the limit. The count is
/// lexical and skips string literals; it may count more than the engine
/// builds (every operator character and bracket counts), never less.
/// Recursive loops (`{% for ... recursive %}`) are refused: each turn of
/// one recurses in the engine.
pub fn check_template(source: &str, expression: bool, limits: &Limits) -> Result<(), TemplateError> {
    let len = source.len() as u64;
    if len > limits.max_template_bytes {
        let what = if expression { "an expression" } else { "a template" };
        let message = limits.exceeded(Limit::MaxTemplateBytes, format!("{what} of {}", show_bytes(len)));
        return Err(TemplateError::limit(source, Limit::MaxTemplateBytes, message));
    }
    let max = limits.max_expression_terms;
    let bytes = source.as_bytes();
    if expression {
        let tag = scan_tag(bytes, 0, None);
        if tag.terms > max {
            let what = format!("the expression has {} {TERMS}", tag.terms);
            return Err(TemplateError::limit(
                source,
                Limit::MaxExpressionTerms,
                limits.exceeded(Limit::MaxExpressionTerms, what),
            ));
        }
        return Ok(());
    }
    let mut at = 0;
    let mut elifs = 0u64;
    while let Some(found) = bytes[at..].iter().position(|&b| b == b'{') {
        let start = at + found;
        let close: &[u8] = match bytes.get(start + 1) {
            Some(b'{') => b"}}",
            Some(b'%') => b"%}",
            Some(b'#') => {
                match find(bytes, start + 2, b"#}") {
                    Some(end) => at = end + 2,
                    None => return Ok(()),
                }
                continue;
            }
            _ => {
                at = start + 1;
                continue;
            }
        };
        let mut inner = start + 2;
        if matches!(bytes.get(inner), Some(b'-' | b'+')) {
            inner += 1;
        }
        let block = close == b"%}";
        if block && basic_tag(bytes, inner, b"raw", false).is_some() {
            // Raw text up to `{% endraw %}`, which the engine does not parse.
            let mut from = inner;
            loop {
                let Some(open) = find(bytes, from, b"{%") else {
                    return Ok(());
                };
                if let Some(end) = basic_tag(bytes, open + 2, b"endraw", true) {
                    at = end;
                    break;
                }
                from = open + 2;
            }
            continue;
        }
        let tag = scan_tag(bytes, inner, Some(close));
        // Where the tag is, worked out only for a message: finding it walks
        // the text before the tag, which for every tag would make the
        // guard quadratic.
        let at_tag = || position(source, start);
        let shown = if block { "{% %}" } else { "{{ }}" };
        if tag.terms > max {
            let (line, column) = at_tag();
            let what = format!("the `{shown}` tag at line {line}, column {column} has {} {TERMS}", tag.terms);
            return Err(TemplateError::limit(
                source,
                Limit::MaxExpressionTerms,
                limits.exceeded(Limit::MaxExpressionTerms, what),
            ));
        }
        if block && tag.first == Some(b"elif".as_slice()) {
            elifs += 1;
            if elifs > max {
                let (line, column) = at_tag();
                let what = format!(
                    "the template has more than {max} `{{% elif %}}` tags (one at line {line}, column {column})"
                );
                return Err(TemplateError::limit(
                    source,
                    Limit::MaxExpressionTerms,
                    limits.exceeded(Limit::MaxExpressionTerms, what),
                ));
            }
        }
        if block && tag.first == Some(b"for".as_slice()) && tag.recursive {
            let (line, column) = at_tag();
            let message = format!(
                "the `{{% for %}}` tag at line {line}, column {column} is a recursive loop, which workflows do not \
                 support: write the nesting out"
            );
            return Err(TemplateError::refused(source, message));
        }
        at = tag.end;
    }
    Ok(())
}

/// What [`check_template`] counts, for its messages.
const TERMS: &str = "operators, filters, tests, attribute reads, calls and subscripts";

/// One `{{ }}` or `{% %}` tag as [`check_template`] scans it.
struct Tag<'s> {
    /// Just past the tag's closing delimiter (or the end of the text).
    end: usize,
    terms: u64,
    /// The tag's first identifier (`for`, `elif`, ...).
    first: Option<&'s [u8]>,
    /// Whether the identifier `recursive` occurs in it.
    recursive: bool,
}

/// Scan the inside of a tag from `at` up to `close` (`}}` or `%}`, with an
/// optional `-` or `+` before it) outside any bracket, as the engine's lexer
/// finds it; with no `close`, the whole text is one expression.
fn scan_tag<'s>(bytes: &'s [u8], mut at: usize, close: Option<&[u8]>) -> Tag<'s> {
    let mut tag = Tag { end: bytes.len(), terms: 0, first: None, recursive: false };
    let mut balance: isize = 0;
    while let Some(&c) = bytes.get(at) {
        if c.is_ascii_whitespace() {
            at += 1;
            continue;
        }
        if let Some(close) = close.filter(|_| balance == 0) {
            let ws = usize::from(matches!(c, b'-' | b'+'));
            if bytes[at + ws..].starts_with(close) {
                tag.end = at + ws + close.len();
                return tag;
            }
        }
        match c {
            b'\'' | b'"' => {
                // As the engine lexes a string: a backslash escapes the next byte.
                let mut i = at + 1;
                loop {
                    match bytes.get(i) {
                        None => return tag,
                        Some(b'\\') => i += 2,
                        Some(&b) if b == c => break,
                        Some(_) => i += 1,
                    }
                }
                at = i + 1;
            }
            b'0'..=b'9' => {
                // A `.` ends a number here: `a.0.1` reads items, each a term.
                at += 1;
                while bytes.get(at).is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_') {
                    at += 1;
                }
            }
            b'a'..=b'z' | b'A'..=b'Z' | b'_' => {
                let from = at;
                while bytes.get(at).is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_') {
                    at += 1;
                }
                let word = &bytes[from..at];
                if tag.first.is_none() {
                    tag.first = Some(word);
                }
                match word {
                    b"and" | b"or" | b"not" | b"is" | b"in" | b"if" | b"else" | b"elif" => tag.terms += 1,
                    b"recursive" => tag.recursive = true,
                    _ => {}
                }
            }
            b'(' | b'[' | b'{' => {
                balance += 1;
                tag.terms += 1;
                at += 1;
            }
            b')' | b']' | b'}' => {
                balance -= 1;
                at += 1;
            }
            b',' | b':' => at += 1,
            c if c.is_ascii_punctuation() => {
                tag.terms += 1;
                at += 1;
            }
            _ => at += 1,
        }
    }
    tag
}

/// The engine's test for `{% raw %}` and `{% endraw %}`: after `at` (just
/// past `{%`, and past a `-`/`+` when `ws_control`), whitespace, `name`,
/// whitespace, an optional `-`/`+`, then `%}`; where the tag ends.
fn basic_tag(bytes: &[u8], mut at: usize, name: &[u8], ws_control: bool) -> Option<usize> {
    if ws_control && matches!(bytes.get(at), Some(b'-' | b'+')) {
        at += 1;
    }
    while bytes.get(at).is_some_and(u8::is_ascii_whitespace) {
        at += 1;
    }
    if !bytes[at.min(bytes.len())..].starts_with(name) {
        return None;
    }
    at += name.len();
    while bytes.get(at).is_some_and(u8::is_ascii_whitespace) {
        at += 1;
    }
    if matches!(bytes.get(at), Some(b'-' | b'+')) {
        at += 1;
    }
    bytes[at.min(bytes.len())..].starts_with(b"%}").then_some(at + 2)
}

fn find(bytes: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    bytes.get(from..)?.windows(needle.len()).position(|w| w == needle).map(|i| from + i)
}

/// The 1-based line and column (in characters) of a byte offset.
fn position(source: &str, offset: usize) -> (usize, usize) {
    let before = &source[..offset];
    let line = before.bytes().filter(|&b| b == b'\n').count() + 1;
    let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    (line, column)
}

/// One step of a state path a template reads: `.name` (or `['name']`),
/// or an item of a list (`[0]`, `[i]`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum PathStep {
    Field(String),
    Item,
}

/// What a template or expression names that the compiler checks beyond
/// its variables: the `state` paths it reads, with subscripts
/// (`state.hits[0].title`), and the filters and tests it applies. Found
/// lexically inside its tags (string literals skipped); call it on a
/// template that compiles.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Names {
    /// Each read of `state`, as the steps after it.
    pub paths: Vec<Vec<PathStep>>,
    pub filters: Vec<String>,
    pub tests: Vec<String>,
}

/// [`Names`] of a template (or, with `expression`, of an expression).
pub fn names(source: &str, expression: bool) -> Names {
    let mut out = Names::default();
    if expression {
        names_in(&tokens(source.as_bytes(), 0, source.len()), &mut out, false);
        return out;
    }
    let bytes = source.as_bytes();
    let mut at = 0;
    while let Some(found) = bytes[at..].iter().position(|&b| b == b'{') {
        let start = at + found;
        let close: &[u8] = match bytes.get(start + 1) {
            Some(b'{') => b"}}",
            Some(b'%') => b"%}",
            Some(b'#') => match find(bytes, start + 2, b"#}") {
                Some(end) => {
                    at = end + 2;
                    continue;
                }
                None => break,
            },
            _ => {
                at = start + 1;
                continue;
            }
        };
        let block = close == b"%}";
        let inner = start + 2 + usize::from(matches!(bytes.get(start + 2), Some(b'-' | b'+')));
        if block && basic_tag(bytes, inner, b"raw", false).is_some() {
            let mut from = inner;
            loop {
                let Some(open) = find(bytes, from, b"{%") else { return out };
                if let Some(end) = basic_tag(bytes, open + 2, b"endraw", true) {
                    at = end;
                    break;
                }
                from = open + 2;
            }
            continue;
        }
        let end = scan_tag(bytes, inner, Some(close)).end;
        let stop = end.saturating_sub(close.len()).max(inner);
        names_in(&tokens(bytes, inner, stop), &mut out, block);
        at = end.max(start + 2);
    }
    out
}

/// A token of a tag, as [`names`] needs it.
#[derive(Debug, PartialEq)]
enum Tok<'s> {
    Word(&'s str),
    Str(String),
    Punct(u8),
}

/// The tokens of `bytes[from..to]`: words, string literals, punctuation.
fn tokens(bytes: &[u8], mut at: usize, to: usize) -> Vec<Tok<'_>> {
    let mut out = Vec::new();
    while at < to {
        let c = bytes[at];
        match c {
            b'\'' | b'"' => {
                let mut text = Vec::new();
                let mut i = at + 1;
                while i < to && bytes[i] != c {
                    if bytes[i] == b'\\' {
                        i += 1;
                    }
                    if i < to {
                        text.push(bytes[i]);
                    }
                    i += 1;
                }
                out.push(Tok::Str(String::from_utf8_lossy(&text).into_owned()));
                at = i + 1;
            }
            b'a'..=b'z' | b'A'..=b'Z' | b'_' | b'0'..=b'9' => {
                let from = at;
                while at < to && (bytes[at].is_ascii_alphanumeric() || bytes[at] == b'_') {
                    at += 1;
                }
                out.push(Tok::Word(std::str::from_utf8(&bytes[from..at]).unwrap_or("")));
            }
            c if c.is_ascii_whitespace() => at += 1,
            c if c.is_ascii() => {
                out.push(Tok::Punct(c));
                at += 1;
            }
            _ => at += 1,
        }
    }
    out
}

/// Collect what one tag's tokens name; `block` for a `{% %}` tag.
fn names_in(toks: &[Tok], out: &mut Names, block: bool) {
    if block
        && toks.first() == Some(&Tok::Word("filter"))
        && let Some(Tok::Word(name)) = toks.get(1)
    {
        out.filters.push(name.to_string());
    }
    let mut i = 0;
    while i < toks.len() {
        match &toks[i] {
            Tok::Punct(b'|') => {
                if let Some(Tok::Word(name)) = toks.get(i + 1) {
                    out.filters.push(name.to_string());
                }
            }
            Tok::Word("is") => {
                let at = if toks.get(i + 1) == Some(&Tok::Word("not")) { i + 2 } else { i + 1 };
                if let Some(Tok::Word(name)) = toks.get(at) {
                    out.tests.push(name.to_string());
                }
            }
            Tok::Word("state") if i == 0 || toks[i - 1] != Tok::Punct(b'.') => {
                let (steps, next) = path(toks, i + 1);
                out.paths.push(steps);
                i = next;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
}

/// The steps of a path from `toks[at]` (`.a`, `['a']`, `[0]`, `[i]`), and
/// where it ends.
fn path(toks: &[Tok], mut at: usize) -> (Vec<PathStep>, usize) {
    let mut steps = Vec::new();
    loop {
        match (toks.get(at), toks.get(at + 1)) {
            (Some(Tok::Punct(b'.')), Some(Tok::Word(w))) => {
                let numeric = w.bytes().all(|b| b.is_ascii_digit());
                steps.push(if numeric { PathStep::Item } else { PathStep::Field(w.to_string()) });
                at += 2;
            }
            (Some(Tok::Punct(b'[')), Some(Tok::Str(s))) if toks.get(at + 2) == Some(&Tok::Punct(b']')) => {
                steps.push(PathStep::Field(s.clone()));
                at += 3;
            }
            (Some(Tok::Punct(b'[')), _) => {
                // An index or a computed key: an item (of a list; of a dict it says nothing).
                let mut depth = 0usize;
                let mut j = at;
                while let Some(t) = toks.get(j) {
                    match t {
                        Tok::Punct(b'[') => depth += 1,
                        Tok::Punct(b']') => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        _ => {}
                    }
                    j += 1;
                }
                steps.push(PathStep::Item);
                at = j + 1;
            }
            _ => return (steps, at),
        }
    }
}

/// The engine every template runs in, with the default limits: what
/// [`is_filter`] and [`is_test`] ask.
fn shared_engine() -> &'static Environment<'static> {
    static ENGINE: std::sync::OnceLock<Environment<'static>> = std::sync::OnceLock::new();
    ENGINE.get_or_init(|| engine(&Limits::default()))
}

/// Whether the engine templates run in has a filter `name` (the engine's
/// own registry, asked with its `is filter` test).
pub fn is_filter(name: &str) -> bool {
    registered(name, "filter")
}

/// Whether the engine templates run in has a test `name`.
pub fn is_test(name: &str) -> bool {
    registered(name, "test")
}

fn registered(name: &str, what: &str) -> bool {
    let expr = format!("name is {what}");
    shared_engine()
        .compile_expression(&expr)
        .and_then(|e| e.eval(minijinja::context! { name => name }))
        .is_ok_and(|v| v.is_true())
}

/// Filters minijinja ships, for "did you mean" (those the engine has).
const FILTERS: &[&str] = &[
    "abs",
    "attr",
    "batch",
    "bool",
    "capitalize",
    "chain",
    "count",
    "d",
    "default",
    "dictsort",
    "e",
    "escape",
    "first",
    "float",
    "format",
    "groupby",
    "indent",
    "int",
    "items",
    "join",
    "last",
    "length",
    "lines",
    "list",
    "lower",
    "map",
    "max",
    "min",
    "pprint",
    "reject",
    "rejectattr",
    "replace",
    "reverse",
    "round",
    "safe",
    "select",
    "selectattr",
    "slice",
    "sort",
    "split",
    "string",
    "sum",
    "title",
    "tojson",
    "trim",
    "unique",
    "upper",
    "urlencode",
    "zip",
];

/// Tests minijinja ships, for "did you mean" (those the engine has).
const TESTS: &[&str] = &[
    "boolean",
    "defined",
    "divisibleby",
    "endingwith",
    "eq",
    "equalto",
    "escaped",
    "even",
    "false",
    "filter",
    "float",
    "ge",
    "greaterthan",
    "gt",
    "in",
    "int",
    "integer",
    "iterable",
    "le",
    "lessthan",
    "lower",
    "lt",
    "mapping",
    "ne",
    "none",
    "number",
    "odd",
    "safe",
    "sameas",
    "sequence",
    "startingwith",
    "string",
    "test",
    "true",
    "undefined",
    "upper",
];

/// The filters of [`FILTERS`] the engine has.
pub fn known_filters() -> Vec<&'static str> {
    FILTERS.iter().copied().filter(|f| is_filter(f)).collect()
}

/// The tests of [`TESTS`] the engine has.
pub fn known_tests() -> Vec<&'static str> {
    TESTS.iter().copied().filter(|t| is_test(t)).collect()
}

/// A writer that takes at most `max` bytes, then fails the render.
struct Capped {
    out: Vec<u8>,
    max: u64,
    over: bool,
}

impl io::Write for Capped {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if (self.out.len() + buf.len()) as u64 > self.max {
            self.over = true;
            return Err(io::Error::other("the render limit is reached"));
        }
        self.out.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Templates {
    /// An engine with the default [`Limits`].
    pub fn new() -> Self {
        Self::with_limits(Limits::default())
    }

    /// An engine that holds every render and evaluation to these limits
    /// (`max_template_bytes`, `max_expression_terms`, `template_fuel`,
    /// `max_render_bytes`).
    pub fn with_limits(limits: Limits) -> Self {
        Templates {
            engine: Engine::new(Arc::new(engine(&limits)), |_| Mutex::new(HashMap::new())),
            templates: Mutex::new(KeptTemplates::default()),
            limits,
        }
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
        let template = self.kept_template(source)?;
        let mut out = Capped { out: Vec::new(), max: self.limits.max_render_bytes, over: false };
        match template.with_dependent(|_, template| template.render_captured_to(ctx, &mut out).map(|_| ())) {
            Ok(_) => String::from_utf8(out.out)
                .map_err(|e| TemplateError::refused(source, format!("rendered text is not UTF-8: {e}"))),
            Err(_) if out.over => {
                let message = self.limits.exceeded(Limit::MaxRenderBytes, "the template's output");
                Err(TemplateError::limit(source, Limit::MaxRenderBytes, message))
            }
            Err(e) => Err(TemplateError::new(source, e, &self.limits)),
        }
    }

    /// The compiled template of `source`: the kept one, or one compiled now
    /// (guarded first) and kept. One that does not compile is not kept.
    fn kept_template(&self, source: &str) -> Result<Arc<KeptTemplate>, TemplateError> {
        if let Some(kept) = self.templates.lock().expect("templates lock").by_source.get(source) {
            return Ok(kept.clone());
        }
        check_template(source, false, &self.limits)?;
        let env = self.engine.borrow_owner().clone();
        let text: Arc<str> = source.into();
        let compiled = KeptTemplate::try_new((env, text.clone()), |(env, text)| env.template_from_str(text))
            .map_err(|e| TemplateError::new(source, e, &self.limits))?;
        let compiled = Arc::new(compiled);
        let mut kept = self.templates.lock().expect("templates lock");
        if kept.by_source.len() >= KEPT_TEMPLATES || kept.bytes + source.len() > KEPT_TEMPLATE_BYTES {
            *kept = KeptTemplates::default();
        }
        if kept.by_source.insert(text, compiled.clone()).is_none() {
            kept.bytes += source.len();
        }
        Ok(compiled)
    }

    /// Evaluate a minijinja expression (a condition) to a value.
    pub fn eval(&self, expression: &str, ctx: &TplValue) -> Result<TplValue, TemplateError> {
        let err = |e| TemplateError::new(expression, e, &self.limits);
        self.engine.with_dependent(|env, compiled| {
            let kept = compiled.lock().expect("templates lock").get(expression).cloned();
            let expr = match kept {
                Some(expr) => expr,
                None => {
                    // Guarded before it is first compiled; kept only once it compiled.
                    check_template(expression, true, &self.limits)?;
                    let expr = Arc::new(env.compile_expression_owned(expression.to_string()).map_err(err)?);
                    let mut compiled = compiled.lock().expect("templates lock");
                    if compiled.len() >= KEPT_EXPRESSIONS {
                        compiled.clear();
                    }
                    compiled.insert(expression.into(), expr.clone());
                    expr
                }
            };
            expr.eval(ctx).map_err(err)
        })
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
                    let v = self.eval(expr, ctx).map_err(|e| TemplateError { template: quote(s), ..e })?;
                    to_json(&v).map_err(|message| TemplateError::refused(s, message))?
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
    fn a_kept_expression_evaluates_against_each_new_context_and_errors_are_not_kept() {
        const FUEL: u64 = 200;
        let t = Templates::new();
        for n in 0..3 {
            assert_eq!(t.eval("state.n * 2", &ctx(json!({"n": n}))).unwrap(), TplValue::from(n * 2));
        }
        // The fuel is per evaluation, not spent across the kept expression's uses.
        let small = Templates::with_limits(Limits { template_fuel: FUEL, ..Limits::default() });
        let thirty = vec!["state.n"; 30].join(" + ");
        for _ in 0..50 {
            assert_eq!(small.eval(&thirty, &ctx(json!({"n": 1}))).unwrap(), TplValue::from(30));
        }
        // An expression that does not compile says so every time.
        for _ in 0..2 {
            let err = t.eval("state.n +", &ctx(json!({"n": 1}))).unwrap_err();
            assert_eq!(err.template, "state.n +");
        }
        // Past the bound the kept ones are dropped, and every expression still evaluates.
        for k in 0..KEPT_EXPRESSIONS as i64 + 10 {
            assert_eq!(t.eval(&format!("state.n + {k}"), &ctx(json!({"n": 1}))).unwrap(), TplValue::from(k + 1));
        }
        assert!(t.engine.with_dependent(|_, kept| kept.lock().unwrap().len()) <= KEPT_EXPRESSIONS);
    }

    #[test]
    fn a_kept_template_renders_each_new_context_within_its_limits_and_errors_are_not_kept() {
        let t = Templates::new();
        for name in ["Ada", "Grace", "Edsger"] {
            assert_eq!(
                t.render("Hello, {{ state.name }}!", &ctx(json!({"name": name}))).unwrap(),
                format!("Hello, {name}!")
            );
        }
        assert_eq!(t.templates.lock().unwrap().by_source.len(), 1, "compiled once, kept");
        // A strict undefined is an error at every render of the kept template.
        for _ in 0..2 {
            let err = t.render("Hello, {{ state.name }}!", &ctx(json!({}))).unwrap_err();
            assert_eq!(err.template, "Hello, {{ state.name }}!");
        }
        // A template that does not compile says so every time and is not kept.
        for _ in 0..2 {
            assert!(t.render("Hello, {{ state.name ", &ctx(json!({"name": "x"}))).is_err());
        }
        assert_eq!(t.templates.lock().unwrap().by_source.len(), 1);
        // Fuel and the output cap hold at every render, not across them.
        const FUEL: u64 = 200;
        let small = Templates::with_limits(Limits { template_fuel: FUEL, max_render_bytes: 64, ..Limits::default() });
        let thirty = "{{ state.n }}".repeat(30);
        for _ in 0..50 {
            assert_eq!(small.render(&thirty, &ctx(json!({"n": 1}))).unwrap(), "1".repeat(30));
        }
        let long = "{{ state.s }}{{ state.s }}";
        assert!(small.render(long, &ctx(json!({"s": "x".repeat(20)}))).is_ok());
        for _ in 0..2 {
            let err = small.render(long, &ctx(json!({"s": "x".repeat(40)}))).unwrap_err();
            assert_eq!(err.limit, Some(Limit::MaxRenderBytes), "{err}");
        }
        // Past either bound the kept ones are dropped, and every template still renders.
        for k in 0..KEPT_TEMPLATES + 10 {
            assert_eq!(t.render(&format!("{k}: {{{{ state.n }}}}"), &ctx(json!({"n": 1}))).unwrap(), format!("{k}: 1"));
        }
        assert!(t.templates.lock().unwrap().by_source.len() <= KEPT_TEMPLATES);
        let big = format!("{}{{{{ state.n }}}}", " ".repeat(KEPT_TEMPLATE_BYTES / 4));
        let room = KEPT_TEMPLATE_BYTES as u64;
        let limits = Limits { max_template_bytes: room, max_render_bytes: room, ..Limits::default() };
        let roomy = Templates::with_limits(limits);
        for k in 0..6 {
            let source = format!("{k}{big}");
            assert!(roomy.render(&source, &ctx(json!({"n": 1}))).unwrap().ends_with('1'));
            assert!(roomy.templates.lock().unwrap().bytes <= KEPT_TEMPLATE_BYTES);
        }
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

    #[test]
    fn names_finds_state_paths_filters_and_tests_inside_tags_only() {
        let n = names(
            "state.x | upper {{ state.extra.qestion | uper }}{% if state.n is oddd %}{{ state.hits[0].title }}{% endif %}{{ 'state.y | no' }}",
            false,
        );
        let f = |s: &str| PathStep::Field(s.into());
        assert_eq!(
            n.paths,
            vec![vec![f("extra"), f("qestion")], vec![f("n")], vec![f("hits"), PathStep::Item, f("title")]]
        );
        assert_eq!(n.filters, ["uper"]);
        assert_eq!(n.tests, ["oddd"]);
        let n = names("state['a'].b is not defined and x | d(1)", true);
        assert_eq!(n.paths, vec![vec![f("a"), f("b")]]);
        assert_eq!((n.filters, n.tests), (vec!["d".to_string()], vec!["defined".to_string()]));
    }

    #[test]
    fn filters_and_tests_are_the_engines_own() {
        assert!(is_filter("upper") && !is_filter("uper") && is_test("odd") && !is_test("oddd"));
        assert_eq!(known_filters().len(), FILTERS.len());
        assert_eq!(known_tests().len(), TESTS.len());
    }

    fn terms_error(source: &str, expression: bool) -> Option<TemplateError> {
        check_template(source, expression, &Limits::default()).err()
    }

    #[test]
    fn every_chain_shape_over_the_limit_is_refused_before_the_engine_sees_it() {
        let n = 501;
        let shapes = [
            format!("a{}", " + a".repeat(n)),
            format!("a{}", "|lower".repeat(n)),
            format!("a{}", ".b".repeat(n)),
            format!("f{}", "()".repeat(n)),
            format!("a{}", "[0]".repeat(n)),
            format!("{}a", "not ".repeat(n)),
            format!("{}a", "- ".repeat(n)),
            format!("a{}", " is defined".repeat(n)),
            format!("a{}", " ~ a".repeat(n)),
            format!("a{}", ".0".repeat(n)),
        ];
        for shape in &shapes {
            let err = terms_error(shape, true).unwrap_or_else(|| panic!("not refused: {}", &shape[..40]));
            assert_eq!(err.limit, Some(Limit::MaxExpressionTerms), "{}", err.message);
            assert!(err.message.contains("max_expression_terms = 500"), "{}", err.message);
            assert!(err.template.chars().count() <= QUOTED_CHARS + 1, "the error quotes only the start");
            let template = format!("line one\n  {{{{ {shape} }}}}");
            let err = terms_error(&template, false).expect("refused in a template");
            assert!(err.message.contains("tag at line 2, column 3"), "{}", err.message);
        }
        let elifs = format!("{{% if a %}}{}{{% endif %}}", "{% elif a %}x".repeat(n));
        assert!(terms_error(&elifs, false).unwrap().message.contains("`{% elif %}`"));
        // Under the limit: fine, and each tag counts on its own.
        assert!(terms_error(&format!("a{}", " + a".repeat(400)), true).is_none());
        assert!(terms_error(&format!("{{{{ a{} }}}}", " + a".repeat(400)).repeat(10), false).is_none());
    }

    #[test]
    fn strings_comments_and_raw_blocks_are_not_counted_but_nothing_hides_terms() {
        let plus = "+".repeat(1000);
        for quiet in [
            format!("{{{{ '{plus}' }}}}"),
            format!("{{{{ \"a\\\"{plus}\" }}}}"),
            format!("{{# {plus} #}}{{{{ a }}}}"),
            format!("{{% raw %}}{{{{ {plus} }}}}{{% endraw %}}"),
            format!("{{{{ {{'a': '}}}}'}} }}}} {plus}"),
        ] {
            assert!(terms_error(&quiet, false).is_none(), "{quiet}");
        }
        // A `}}` inside brackets does not end the tag (the engine's lexer agrees).
        let hidden = format!("{{{{ {{'a': {{'b': 1}}}} {} }}}}", "+ a ".repeat(600));
        assert!(terms_error(&hidden, false).is_some());
        let unterminated = format!("{{{{ a{} ' }}}}", " + a".repeat(600));
        assert!(terms_error(&unterminated, false).is_some());
    }

    #[test]
    fn length_recursive_loops_fuel_and_output_are_limited() {
        let limits = Limits { max_template_bytes: 100, ..Limits::default() };
        let err = check_template(&"x {{ a }}".repeat(20), false, &limits).unwrap_err();
        assert_eq!(err.limit, Some(Limit::MaxTemplateBytes));
        let err = terms_error("{% for x in state.tree recursive %}{{ loop(x.children) }}{% endfor %}", false).unwrap();
        assert!(err.message.contains("recursive loop"), "{}", err.message);
        assert_eq!(err.limit, None);

        let c = ctx(json!({"n": 3}));
        let t = Templates::new();
        let spin = "{% for a in range(99999) %}{% for b in range(99999) %}x{% endfor %}{% endfor %}";
        let err = Templates::with_limits(Limits { max_render_bytes: u64::MAX, ..Limits::default() })
            .render(spin, &c)
            .unwrap_err();
        assert_eq!(err.limit, Some(Limit::TemplateFuel), "{}", err.message);
        let err = t.render(spin, &c).unwrap_err();
        assert!(err.limit.is_some(), "{}", err.message);
        let small = Templates::with_limits(Limits { max_render_bytes: 1000, ..Limits::default() });
        let err = small.render("{% for a in range(2000) %}x{% endfor %}", &c).unwrap_err();
        assert_eq!(err.limit, Some(Limit::MaxRenderBytes), "{}", err.message);
        assert_eq!(small.render("{% for a in range(1000) %}x{% endfor %}", &c).unwrap().len(), 1000);
        let err = t.eval(&format!("state.n{}", " + 1".repeat(600)), &c).unwrap_err();
        assert_eq!(err.limit, Some(Limit::MaxExpressionTerms));
        assert!(t.render("{% macro m() %}x{% endmacro %}", &c).is_err(), "macros are compiled out");
    }

    #[test]
    fn a_chain_at_the_limit_runs_on_a_two_mib_stack() {
        let limits = Limits::default();
        let n = limits.max_expression_terms as usize;
        let handle = std::thread::Builder::new()
            .stack_size(2 * 1024 * 1024)
            .spawn(move || {
                let t = Templates::new();
                let c = ctx(json!({"n": 1}));
                let sum = format!("{{{{ state.n{} }}}}", " + 1".repeat(n - 1));
                assert_eq!(t.render_value(&json!(sum), &c).unwrap(), json!(n));
                let not = format!("{}state.n", "not ".repeat(n - 1));
                t.eval(&not, &c).unwrap();
                let minus = format!("{}state.n", "- ".repeat(n - 1));
                t.eval(&minus, &c).unwrap();
                let elifs = format!("{{% if false %}}{}{{% endif %}}", "{% elif false %}x".repeat(n));
                assert_eq!(t.render(&elifs, &c).unwrap(), "");
                referenced_variables(&sum, false).unwrap();
            })
            .unwrap();
        handle.join().expect("no overflow");
    }
}
