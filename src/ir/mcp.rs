//! The MCP part of the IR: the servers a workflow declares in its `mcp:`
//! section and the `type: tool` node that calls one of their tools.
//!
//! Values are kept as written: a `${VAR}` in a command, an argument, an
//! env or header value, a URL or a `cwd` is resolved from the environment
//! only when the client connects ([`crate::mcp`], [`crate::ir::expand_env`]),
//! so a secret never reaches the IR, its content hash or the journal.
//! Nothing here connects to anything.
//!
//! Relative paths of a stdio server resolve from `dir`, the directory of
//! the workflow's file ([`McpServer::resolve_path`] says which values are
//! paths).

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
        /// The directory relative paths resolve from (canonical): the
        /// workflow file's, or the server's `--workflows` directory for a
        /// posted workflow. Recorded only when a value is, or may become
        /// once resolved, a relative path; `None`: the current directory.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        dir: Option<String>,
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

/// Which values of a stdio server are paths, and so resolve from the
/// workflow file's directory when relative.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathRole {
    /// `command`: a path when it holds a `/` (`./server`,
    /// `../target/debug/server`); a bare name (`npx`, `python3`) is looked
    /// up on `PATH`.
    Command,
    /// An argument: a path when it starts with `./` or `../` (a `/` alone
    /// does not say so: `@scope/package`, `a/b` are often not paths).
    Arg,
    /// `cwd`: always a path.
    Cwd,
}

impl PathRole {
    /// Whether `value` (resolved) is a relative path for this role.
    pub fn is_relative_path(self, value: &str) -> bool {
        let relative = !std::path::Path::new(value).is_absolute();
        relative
            && match self {
                PathRole::Command => value.contains('/'),
                PathRole::Arg => value.starts_with("./") || value.starts_with("../"),
                PathRole::Cwd => true,
            }
    }
}

impl McpServer {
    /// `value` (resolved) as the child gets it: a relative path joined to
    /// `dir` when there is one, anything else as it is.
    pub fn resolve_path(dir: Option<&str>, role: PathRole, value: String) -> String {
        match dir {
            Some(dir) if role.is_relative_path(&value) => {
                let value = value.strip_prefix("./").unwrap_or(&value);
                std::path::Path::new(dir).join(value).display().to_string()
            }
            _ => value,
        }
    }
}
