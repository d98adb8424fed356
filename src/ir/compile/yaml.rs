//! The spanned YAML tree the compiler walks: mappings with ordered, spanned
//! keys, sequences, and scalars resolved by the YAML 1.2 core schema.
//!
//! Built from saphyr-parser's events, so every value knows where it was
//! written. This module only reads YAML: it knows nothing of workflows, and
//! it leaves duplicate keys in place for the compiler to report in context.

use saphyr_parser::{Event, Marker, Parser, ScalarStyle, Tag};

use crate::ir::Span;

/// Mappings and sequences nested deeper than this are refused, so that
/// converting a value (which recurses) cannot exhaust the stack.
const MAX_DEPTH: usize = 64;

/// One YAML value and where it starts.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Yaml {
    pub span: Span,
    pub value: Value,
}

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Value {
    /// The scalar's text as written (after unquoting), and what it resolves to.
    Scalar(String, Scalar),
    Seq(Vec<Yaml>),
    /// Entries in file order; duplicate keys are kept.
    Map(Vec<Entry>),
}

/// What a scalar resolves to. Quoted and block scalars are always strings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Scalar {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str,
}

/// One `key: value` of a mapping.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Entry {
    pub key: String,
    pub key_span: Span,
    pub value: Yaml,
}

/// Something wrong with the YAML itself, and where.
pub(super) type Problem = (Span, String);

impl Yaml {
    /// The text of a string scalar.
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Scalar(text, Scalar::Str) => Some(text),
            _ => None,
        }
    }

    /// The text of any scalar but null.
    pub fn scalar_text(&self) -> Option<&str> {
        match &self.value {
            Value::Scalar(_, Scalar::Null) => None,
            Value::Scalar(text, _) => Some(text),
            _ => None,
        }
    }

    /// What kind of value this is, for messages ("expected a string, found a list").
    pub fn kind(&self) -> &'static str {
        match &self.value {
            Value::Scalar(_, Scalar::Null) => "null",
            Value::Scalar(_, Scalar::Bool(_)) => "a bool",
            Value::Scalar(_, Scalar::Int(_)) => "an int",
            Value::Scalar(_, Scalar::Float(_)) => "a float",
            Value::Scalar(_, Scalar::Str) => "a string",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }
}

/// Resolve a plain scalar by the YAML 1.2 core schema.
pub(super) fn resolve(text: &str) -> Scalar {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Scalar::Null,
        "true" | "True" | "TRUE" => return Scalar::Bool(true),
        "false" | "False" | "FALSE" => return Scalar::Bool(false),
        ".nan" | ".NaN" | ".NAN" => return Scalar::Float(f64::NAN),
        _ => {}
    }
    let (negative, body) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if matches!(body, ".inf" | ".Inf" | ".INF") {
        return Scalar::Float(if negative { f64::NEG_INFINITY } else { f64::INFINITY });
    }
    let radix = |digits: &str, radix| {
        let ok = !digits.is_empty() && digits.chars().all(|c| c.is_digit(radix));
        ok.then(|| i64::from_str_radix(digits, radix).ok()).flatten()
    };
    if text.len() == body.len() {
        if let Some(n) = body.strip_prefix("0x").and_then(|d| radix(d, 16)) {
            return Scalar::Int(n);
        }
        if let Some(n) = body.strip_prefix("0o").and_then(|d| radix(d, 8)) {
            return Scalar::Int(n);
        }
    }
    if !body.is_empty() && body.bytes().all(|b| b.is_ascii_digit()) {
        // Too large for i64: still a number, kept as a float.
        return text.parse().map_or_else(|_| Scalar::Float(text.parse().unwrap_or(f64::NAN)), Scalar::Int);
    }
    if is_float(body)
        && let Ok(f) = text.parse()
    {
        return Scalar::Float(f);
    }
    Scalar::Str
}

/// `(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?`, sign already removed.
fn is_float(s: &str) -> bool {
    let (mantissa, exponent) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let digits = |d: &str| d.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = match mantissa.split_once('.') {
        Some((int, frac)) => digits(int) && digits(frac) && !(int.is_empty() && frac.is_empty()),
        None => !mantissa.is_empty() && digits(mantissa),
    };
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['-', '+']).unwrap_or(e);
        !e.is_empty() && digits(e)
    });
    mantissa_ok && exponent_ok
}

fn span(m: Marker) -> Span {
    let clamp = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    Span { line: clamp(m.line()).max(1), column: clamp(m.col().saturating_add(1)) }
}

/// The finding for a tag, unless it is `!!str` (which makes a scalar a
/// string whatever it looks like).
fn unsupported_tag(tag: Option<&Tag>) -> Option<String> {
    let tag = tag.filter(|t| !(t.is_yaml_core_schema() && t.suffix == "str"))?;
    let shown = if tag.is_yaml_core_schema() { format!("!!{}", tag.suffix) } else { tag.to_string() };
    Some(format!("YAML tags are not supported (found `{shown}`)"))
}

/// A mapping or sequence being built.
enum Frame {
    Seq(Span, Vec<Yaml>),
    /// `key` is `None` while a key is awaited, `Some(None)` after a key that
    /// is not a scalar (its value is dropped).
    Map(Span, Vec<Entry>, Option<Option<(String, Span)>>),
}

/// Parse one YAML document. A syntax error is the only problem returned
/// (with no tree); otherwise the tree comes back with any lesser problems
/// (aliases, tags, more than one document).
pub(super) fn parse(source: &str) -> Result<(Yaml, Vec<Problem>), Problem> {
    let mut problems = Vec::new();
    let mut stack: Vec<Frame> = Vec::new();
    let mut root: Option<Yaml> = None;
    for event in Parser::new_from_str(source) {
        let (event, event_span) = event.map_err(|e| (span(*e.marker()), e.info().to_string()))?;
        let at = span(event_span.start);
        let done = match event {
            Event::DocumentStart(_) if root.is_some() => {
                problems.push((at, "a workflow file holds one YAML document; found a second".to_string()));
                break;
            }
            Event::Scalar(text, style, _, tag) => {
                let forced_str = tag.is_some();
                problems.extend(unsupported_tag(tag.as_deref()).map(|message| (at, message)));
                let resolved = if style == ScalarStyle::Plain && !forced_str { resolve(&text) } else { Scalar::Str };
                Yaml { span: at, value: Value::Scalar(text.into_owned(), resolved) }
            }
            Event::Alias(_) => {
                problems.push((at, "YAML aliases (`*name`) are not supported: write the value out".to_string()));
                Yaml { span: at, value: Value::Scalar(String::new(), Scalar::Null) }
            }
            Event::SequenceStart(..) | Event::MappingStart(..) if stack.len() >= MAX_DEPTH => {
                return Err((at, format!("values nested deeper than {MAX_DEPTH} levels are not supported")));
            }
            Event::SequenceStart(_, ref tag) | Event::MappingStart(_, ref tag) => {
                problems.extend(unsupported_tag(tag.as_deref()).map(|message| (at, message)));
                let is_seq = matches!(event, Event::SequenceStart(..));
                stack.push(if is_seq { Frame::Seq(at, Vec::new()) } else { Frame::Map(at, Vec::new(), None) });
                continue;
            }
            Event::SequenceEnd | Event::MappingEnd => match stack.pop() {
                Some(Frame::Seq(at, items)) => Yaml { span: at, value: Value::Seq(items) },
                Some(Frame::Map(at, entries, _)) => Yaml { span: at, value: Value::Map(entries) },
                None => continue,
            },
            _ => continue,
        };
        match stack.last_mut() {
            None => root = Some(done),
            Some(Frame::Seq(_, items)) => items.push(done),
            Some(Frame::Map(_, entries, key)) => match key.take() {
                Some(Some((key, key_span))) => entries.push(Entry { key, key_span, value: done }),
                Some(None) => {}
                None => match done.value {
                    Value::Scalar(text, _) => *key = Some(Some((text, done.span))),
                    _ => {
                        problems.push((done.span, "mapping keys must be plain text".to_string()));
                        *key = Some(None);
                    }
                },
            },
        }
    }
    let root =
        root.unwrap_or(Yaml { span: Span { line: 1, column: 1 }, value: Value::Scalar(String::new(), Scalar::Null) });
    Ok((root, problems))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(line: u32, column: u32) -> Span {
        Span { line, column }
    }

    #[test]
    fn resolves_plain_scalars_by_the_core_schema() {
        assert_eq!(resolve("~"), Scalar::Null);
        assert_eq!(resolve(""), Scalar::Null);
        assert_eq!(resolve("True"), Scalar::Bool(true));
        assert_eq!(resolve("yes"), Scalar::Str);
        assert_eq!(resolve("-42"), Scalar::Int(-42));
        assert_eq!(resolve("0x1F"), Scalar::Int(31));
        assert_eq!(resolve("0o17"), Scalar::Int(15));
        assert_eq!(resolve("0.1"), Scalar::Float(0.1));
        assert_eq!(resolve("1e3"), Scalar::Float(1000.0));
        assert_eq!(resolve(".5"), Scalar::Float(0.5));
        assert_eq!(resolve("-.inf"), Scalar::Float(f64::NEG_INFINITY));
        assert!(matches!(resolve(".nan"), Scalar::Float(f) if f.is_nan()));
        for text in ["0.1.0", "1e", "0x", "0xZZ", ".", "e3", "12abc", "-", "+.5.", "inf"] {
            assert_eq!(resolve(text), Scalar::Str, "{text}");
        }
        assert_eq!(resolve("99999999999999999999"), Scalar::Float(1e20));
    }

    #[test]
    fn quoted_and_tagged_scalars_are_strings() {
        let (root, problems) = parse("a: '1'\nb: \"true\"\nc: !!str 3\nd: 3\ne: !!int 4\nf: !x {}\n").unwrap();
        let tags: Vec<_> = problems.iter().map(|(at, m)| (at.line, m.as_str())).collect();
        assert_eq!(
            tags,
            [(5, "YAML tags are not supported (found `!!int`)"), (6, "YAML tags are not supported (found `!x`)")]
        );
        let Value::Map(entries) = root.value else { panic!("not a map") };
        let kinds: Vec<_> = entries.iter().map(|e| e.value.kind()).collect();
        assert_eq!(kinds, ["a string", "a string", "a string", "an int", "a string", "a mapping"]);
    }

    #[test]
    fn spans_are_one_based() {
        let (root, _) = parse("top:\n  key: value\n  list:\n    - 'x'\n").unwrap();
        assert_eq!(root.span, at(1, 1));
        let Value::Map(top) = &root.value else { panic!("not a map") };
        assert_eq!(top[0].key_span, at(1, 1));
        let Value::Map(inner) = &top[0].value.value else { panic!("not a map") };
        assert_eq!(inner[0].key_span, at(2, 3));
        assert_eq!(inner[0].value.span, at(2, 8));
        let Value::Seq(items) = &inner[1].value.value else { panic!("not a list") };
        assert_eq!(items[0].span, at(4, 7));
        assert_eq!(items[0].as_str(), Some("x"));
    }

    #[test]
    fn keeps_duplicate_keys_and_reports_aliases_and_syntax_errors() {
        let (root, problems) = parse("a: &x 1\na: *x\n").unwrap();
        let Value::Map(entries) = root.value else { panic!("not a map") };
        assert_eq!(entries.len(), 2);
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].0, at(2, 4));
        let (at_error, _) = parse("a: 1\nb: [1, 2\n").unwrap_err();
        assert!(at_error.line >= 2);
        let (_, problems) = parse("a: 1\n---\nb: 2\n").unwrap();
        assert_eq!(problems[0].0.line, 2);
    }

    #[test]
    fn refuses_deep_nesting() {
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        assert!(parse(&deep).is_err());
    }
}
