//! `${VAR}` references in configuration strings: the one resolver every
//! place that reads the environment uses (MCP servers, model entries, http
//! node URLs and headers, agent URLs and headers) and the one syntax check
//! the compiler and the server's policy use.
//!
//! The syntax:
//!
//! - `${NAME}`: the variable's value; an error if it is not set (set but
//!   empty is the empty string).
//! - `${NAME:-default}`: the value, or `default` when the variable is unset
//!   or empty. The default is literal text up to the first `}`; it cannot
//!   hold another reference.
//! - `$${`: a literal `${` (the escape).
//! - `${{`: a `$` followed by a template tag (`{{ ... }}`), left as written.
//! - Any other `$` is itself.
//!
//! A name is letters, digits and `_`, not starting with a digit. Anything
//! else after `${` is malformed, and so is a `${` with no `}`.
//!
//! Values are resolved where the string is used (a node running, a client
//! connecting), never at compile time: the IR, its content hash and the
//! journal keep the references as written.

/// What is wrong with a `${VAR}` reference.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvRefError {
    #[error("`${{` at byte {0} is not closed by `}}` (write `$${{` for a literal `${{`)")]
    Unclosed(usize),
    #[error(
        "`${{{0}}}` is not a variable reference: write `${{NAME}}` or `${{NAME:-default}}` (a name is letters, \
         digits and `_`, not starting with a digit; `$${{` is a literal `${{`)"
    )]
    BadName(String),
    #[error("`${{{0}}}`: a default cannot hold another `${{...}}` reference")]
    Nested(String),
    #[error("the environment variable `{0}` is not set (and `${{{0}}}` gives no `:-default`)")]
    Unset(String),
}

impl EnvRefError {
    /// The variable that is not set, for an [`EnvRefError::Unset`].
    pub fn unset(&self) -> Option<&str> {
        match self {
            EnvRefError::Unset(name) => Some(name),
            _ => None,
        }
    }
}

/// Replace every reference in `text` by its value, `lookup` reading a
/// variable (`None`: not set).
pub fn expand_env(text: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<String, EnvRefError> {
    let mut out = String::with_capacity(text.len());
    walk(text, |piece| {
        match piece {
            Piece::Text(t) => out.push_str(t),
            Piece::Ref { name, default } => match (lookup(name), default) {
                (Some(v), None) => out.push_str(&v),
                (Some(v), Some(_)) if !v.is_empty() => out.push_str(&v),
                (_, Some(d)) => out.push_str(d),
                (None, None) => return Err(EnvRefError::Unset(name.to_string())),
            },
        }
        Ok(())
    })?;
    Ok(out)
}

/// [`expand_env`] from the process environment.
pub fn expand_process_env(text: &str) -> Result<String, EnvRefError> {
    expand_env(text, |name| std::env::var(name).ok())
}

/// The variables `text` references, in order (repeats included), or what
/// is malformed in it.
pub fn env_refs(text: &str) -> Result<Vec<String>, EnvRefError> {
    let mut names = Vec::new();
    walk(text, |piece| {
        if let Piece::Ref { name, .. } = piece {
            names.push(name.to_string());
        }
        Ok(())
    })?;
    Ok(names)
}

/// Whether `text` holds a reference (or something malformed that would be one).
pub fn has_env_refs(text: &str) -> bool {
    !matches!(env_refs(text), Ok(names) if names.is_empty())
}

/// One piece of a configuration string.
enum Piece<'a> {
    Text(&'a str),
    Ref { name: &'a str, default: Option<&'a str> },
}

/// Cut `text` into literal text and references, in order. Iterative: no
/// recursion on the input's shape.
fn walk<'a>(text: &'a str, mut each: impl FnMut(Piece<'a>) -> Result<(), EnvRefError>) -> Result<(), EnvRefError> {
    let mut at = 0;
    while let Some(found) = text[at..].find('$') {
        let dollar = at + found;
        let after = &text[dollar + 1..];
        if after.starts_with("${") {
            // `$${`: a literal `${`.
            each(Piece::Text(&text[at..dollar]))?;
            each(Piece::Text("${"))?;
            at = dollar + 3;
        } else if after.starts_with("{{") || !after.starts_with('{') {
            // A `$` before a template tag, or before anything else: itself.
            each(Piece::Text(&text[at..dollar + 1]))?;
            at = dollar + 1;
        } else {
            each(Piece::Text(&text[at..dollar]))?;
            let body = &after[1..];
            let end = body.find('}').ok_or(EnvRefError::Unclosed(dollar))?;
            let inner = &body[..end];
            let (name, default) = match inner.split_once(":-") {
                Some((name, default)) => (name, Some(default)),
                None => (inner, None),
            };
            let valid = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                return Err(EnvRefError::BadName(inner.to_string()));
            }
            if default.is_some_and(|d| d.contains("${")) {
                return Err(EnvRefError::Nested(inner.to_string()));
            }
            each(Piece::Ref { name, default })?;
            at = dollar + 2 + end + 1;
        }
    }
    each(Piece::Text(&text[at..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "TOKEN" => Some("s3cret".to_string()),
            "EMPTY" => Some(String::new()),
            "BRACES" => Some("a}b${c}".to_string()),
            _ => None,
        }
    }

    #[test]
    fn a_set_variable_is_its_value() {
        assert_eq!(expand_env("Bearer ${TOKEN}", env).unwrap(), "Bearer s3cret");
        assert_eq!(expand_env("${TOKEN}${TOKEN}", env).unwrap(), "s3crets3cret");
        assert_eq!(expand_env("${_x1}", |_| Some("v".into())).unwrap(), "v");
        // A value is never read again as a reference.
        assert_eq!(expand_env("<${BRACES}>", env).unwrap(), "<a}b${c}>");
        assert_eq!(expand_env("no references", env).unwrap(), "no references");
    }

    #[test]
    fn an_unset_variable_is_an_error_naming_it() {
        let e = expand_env("x ${MISSING} y", env).unwrap_err();
        assert_eq!(e, EnvRefError::Unset("MISSING".into()));
        assert_eq!(e.unset(), Some("MISSING"));
        assert!(e.to_string().contains("`MISSING` is not set"), "{e}");
    }

    #[test]
    fn a_default_applies_when_unset_or_empty() {
        assert_eq!(expand_env("${MISSING:-http://127.0.0.1:8080}", env).unwrap(), "http://127.0.0.1:8080");
        assert_eq!(expand_env("${EMPTY:-fallback}", env).unwrap(), "fallback");
        assert_eq!(expand_env("${TOKEN:-fallback}", env).unwrap(), "s3cret");
        assert_eq!(expand_env("[${MISSING:-}]", env).unwrap(), "[]");
        assert_eq!(expand_env("${MISSING:-a:-b $x}", env).unwrap(), "a:-b $x");
    }

    #[test]
    fn an_empty_variable_is_set() {
        assert_eq!(expand_env("[${EMPTY}]", env).unwrap(), "[]");
    }

    #[test]
    fn escapes_and_lone_dollars_stay_as_written() {
        assert_eq!(expand_env("$${TOKEN}", env).unwrap(), "${TOKEN}");
        assert_eq!(expand_env("$$${TOKEN}", env).unwrap(), "$${TOKEN}", "a `$`, then the escape");
        assert_eq!(expand_env("$5 and $x and $$ and $", env).unwrap(), "$5 and $x and $$ and $");
        assert_eq!(expand_env("${{ state.x }}", env).unwrap(), "${{ state.x }}");
        assert_eq!(env_refs("$${A} ${{ b }} $c").unwrap(), Vec::<String>::new());
        assert!(!has_env_refs("$${A}"));
    }

    #[test]
    fn malformed_references_are_refused() {
        assert_eq!(expand_env("a ${TOKEN", env), Err(EnvRefError::Unclosed(2)));
        assert_eq!(expand_env("${1X}", env), Err(EnvRefError::BadName("1X".into())));
        assert_eq!(expand_env("${}", env), Err(EnvRefError::BadName(String::new())));
        assert_eq!(expand_env("${A-b}", env), Err(EnvRefError::BadName("A-b".into())));
        assert_eq!(expand_env("${ A }", env), Err(EnvRefError::BadName(" A ".into())));
        assert_eq!(expand_env("${A:-${B}}", env), Err(EnvRefError::Nested("A:-${B".into())));
        // Malformed even when nothing would be looked up.
        assert!(has_env_refs("${"));
        assert_eq!(env_refs("ok ${A} then ${"), Err(EnvRefError::Unclosed(13)));
    }

    #[test]
    fn references_are_listed_in_order() {
        assert_eq!(env_refs("${A}/${B:-x}/${A}").unwrap(), ["A", "B", "A"]);
        assert!(has_env_refs("x${A:-1}"));
    }
}
