//! The MCP part of the IR: the servers a workflow declares in its `mcp:`
//! section and the `type: tool` node that calls one of their tools.
//!
//! Values are kept as written: a `${VAR}` in a command, an argument, an
//! env or header value is resolved from the environment only when the
//! client connects ([`crate::mcp`]), so a secret never reaches the IR, its
//! content hash or the journal. Nothing here connects to anything.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One MCP server of the `mcp: servers:` section.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "transport", rename_all = "snake_case")]
pub enum McpServer {
    /// A child process spoken to over its stdin and stdout.
    Stdio {
        command: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        args: Vec<String>,
        /// Set on top of the runtime's own environment.
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        env: BTreeMap<String, String>,
        /// The child's working directory; the runtime's when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cwd: Option<String>,
    },
    /// A remote server over streamable HTTP.
    Http {
        url: String,
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        headers: BTreeMap<String, String>,
    },
}

/// `type: tool`: call one tool of a declared MCP server.
///
/// The tool's `structuredContent` goes into `output_key` when the server
/// sends one; otherwise its text content (the text blocks joined with
/// newlines), parsed as JSON when it is JSON, else kept as a string.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolNode {
    /// A key of the workflow's `mcp: servers:`.
    pub server: String,
    pub tool: String,
    /// A JSON object whose strings are templates; `{}` when absent.
    pub arguments: Option<serde_json::Value>,
    pub output_key: Option<String>,
}

/// What is wrong with a `${VAR}` reference.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvRefError {
    #[error("`${{` at byte {0} is not closed by `}}`")]
    Unclosed(usize),
    #[error("`${{{0}}}` is not a variable name (letters, digits and `_`, not starting with a digit)")]
    BadName(String),
    #[error("the environment variable `{0}` is not set")]
    Unset(String),
}

/// Replace every `${VAR}` in `text` with `lookup(VAR)`; `$$` is a literal
/// `$`, and a `$` before anything else stays as written.
pub fn expand_env(text: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<String, EnvRefError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(tail) = after.strip_prefix('{') {
            let offset = text.len() - rest.len() + at;
            let end = tail.find('}').ok_or(EnvRefError::Unclosed(offset))?;
            let name = &tail[..end];
            let valid = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                return Err(EnvRefError::BadName(name.to_string()));
            }
            out.push_str(&lookup(name).ok_or_else(|| EnvRefError::Unset(name.to_string()))?);
            rest = &tail[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        (name == "TOKEN").then(|| "s3cret".to_string())
    }

    #[test]
    fn expands_references_and_escapes() {
        assert_eq!(expand_env("Bearer ${TOKEN}", env).unwrap(), "Bearer s3cret");
        assert_eq!(expand_env("$$5 and $x", env).unwrap(), "$5 and $x");
        assert_eq!(expand_env("${MISSING}", env), Err(EnvRefError::Unset("MISSING".into())));
        assert_eq!(expand_env("a ${TOKEN", env), Err(EnvRefError::Unclosed(2)));
        assert_eq!(expand_env("${1X}", env), Err(EnvRefError::BadName("1X".into())));
    }
}
