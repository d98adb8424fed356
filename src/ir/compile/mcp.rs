//! Compiling MCP: the top-level `mcp: { servers: { name: {...} } }` section
//! and `type: tool` nodes.
//!
//! A server is either a child process (`command`, `args`, `env`, `cwd`) or
//! a remote one (`url`, `headers`): exactly one of `command` and `url`.
//! `${VAR}` references are checked for syntax only; they are resolved when
//! the runtime connects. A tool node must name a declared server. Whether
//! the tool exists is only known at the first connect ([`crate::mcp`]).
//!
//! Relative paths (see [`PathRole`]) resolve from the workflow file's
//! directory, which a stdio server records as `dir` when one of its values
//! is, or may become once resolved, a relative path. A workflow compiled
//! from a string resolves them from the policy's directory (a server's
//! `--workflows`), from the current directory when files may be read from
//! anywhere, and may not use them when it may read no file.

use std::collections::BTreeMap;

use super::yaml::{Value, Yaml};
use super::{Ctx, Fields, optional};
use crate::ir::{Includes, McpServer, NodeKind, PathRole, Span, ToolNode, env_refs, has_env_refs};

pub(super) const TOOL: &[&str] = &["server", "tool", "arguments", "output_key"];
const STDIO: &[&str] = &["command", "args", "env", "cwd"];
const HTTP: &[&str] = &["url", "headers"];

impl Ctx {
    /// The `mcp:` section: sets `self.mcp_servers` (and `self.mcp_declared`,
    /// every name written, even those with findings, so that tool nodes
    /// naming them are not reported twice).
    pub(super) fn mcp(&mut self, y: &Yaml) {
        let Some(f) = self.fields(y, "the `mcp` section", &["servers"]) else {
            return;
        };
        let Some(servers) = self.required(&f, "servers", "the `mcp` section", y.span) else {
            return;
        };
        let Some(entries) = self.entries(servers, "`mcp.servers`", "server name") else {
            return;
        };
        for entry in entries {
            self.mcp_declared.push(entry.key.clone());
            if let Some(server) = self.mcp_server(&entry.key, &entry.value, entry.key_span) {
                self.mcp_servers.insert(entry.key.clone(), server);
            }
        }
    }

    fn mcp_server(&mut self, name: &str, y: &Yaml, at: Span) -> Option<McpServer> {
        let owner = format!("MCP server `{name}`");
        let f = self.fields(y, &owner, &[STDIO, HTTP].concat())?;
        match (f.entry("command"), f.entry("url")) {
            (Some(_), Some(url)) => {
                let message = format!("{owner} has both `command` and `url`: give exactly one");
                self.add(url.key_span, message);
                None
            }
            (None, None) => {
                let message = format!(
                    "{owner} needs exactly one of `command` (a local server over stdio) or `url` (streamable HTTP)"
                );
                self.add(at, message);
                None
            }
            (Some(command), None) => {
                self.not_for(&f, HTTP, &owner, "`command`");
                let command = self.env_string(&command.value, "`command`");
                let args = optional(f.get("args").map(|y| self.env_list(y, "args")));
                let env = optional(f.get("env").map(|y| self.env_map(y, "env", "environment variable")));
                let cwd = optional(f.get("cwd").map(|y| self.env_string(y, "`cwd`")));
                let (command, args, cwd) = (command?, args?.unwrap_or_default(), cwd?);
                let dir = self.paths_dir(&owner, &command, &args, cwd.as_deref(), y.span)?;
                Some(McpServer::Stdio { command, args, env: env?.unwrap_or_default(), cwd, dir })
            }
            (None, Some(url)) => {
                self.not_for(&f, STDIO, &owner, "`url`");
                let text = self.env_string(&url.value, "`url`")?;
                if !text.starts_with("http://") && !text.starts_with("https://") && !text.starts_with("${") {
                    self.add(url.value.span, format!("`url` of {owner} must start with http:// or https://"));
                }
                let headers = optional(f.get("headers").map(|y| self.env_map(y, "headers", "header")));
                Some(McpServer::Http { url: text, headers: headers?.unwrap_or_default() })
            }
        }
    }

    /// Fields of the other transport are mistakes: say which transport this is.
    fn not_for(&mut self, f: &Fields, other: &[&str], owner: &str, chosen: &str) {
        for entry in f.entries.iter().filter(|e| other.contains(&e.key.as_str())) {
            let message = format!("`{}` does not apply to {owner}, which has {chosen}", entry.key);
            self.add(entry.key_span, message);
        }
    }

    /// A string (numbers and bools are taken as written) whose `${VAR}`
    /// references are well formed; `field` names it in messages.
    fn env_string(&mut self, y: &Yaml, field: &str) -> Option<String> {
        let text = match &y.value {
            Value::Scalar(..) => y.scalar_text().map(str::to_string),
            _ => None,
        };
        let Some(text) = text else {
            self.add(y.span, format!("{field} must be a string, found {}", y.kind()));
            return None;
        };
        if let Err(e) = env_refs(&text) {
            self.add(y.span, format!("{field}: {e}"));
            return None;
        }
        Some(text)
    }

    /// `text` if its `${VAR}` references are well formed; a finding at
    /// `at` naming `field` otherwise.
    pub(super) fn env_ok(&mut self, at: Span, text: String, field: &str) -> Option<String> {
        match env_refs(&text) {
            Ok(_) => Some(text),
            Err(e) => {
                self.add(at, format!("{field}: {e}"));
                None
            }
        }
    }

    /// The directory a stdio server's relative paths resolve from, when one
    /// of its values is (or may become, once its `${VAR}`s are resolved) a
    /// relative path. `Err` (a finding) when there is none to resolve from.
    fn paths_dir(
        &mut self,
        owner: &str,
        command: &str,
        args: &[String],
        cwd: Option<&str>,
        at: Span,
    ) -> Option<Option<String>> {
        let values = std::iter::once((PathRole::Command, command))
            .chain(args.iter().map(|a| (PathRole::Arg, a.as_str())))
            .chain(cwd.map(|c| (PathRole::Cwd, c)));
        let mut literal = None;
        let mut may = false;
        for (role, value) in values {
            if has_env_refs(value) {
                may = true;
            } else if role.is_relative_path(value) {
                may = true;
                literal.get_or_insert(value.to_string());
            }
        }
        if !may {
            return Some(None);
        }
        match self.lookup_dir() {
            Some(dir) => {
                let dir = if dir.as_os_str().is_empty() { std::path::PathBuf::from(".") } else { dir };
                let dir = std::fs::canonicalize(&dir).or_else(|_| std::path::absolute(&dir)).unwrap_or(dir);
                Some(Some(dir.display().to_string()))
            }
            None => match (&self.options.includes, literal) {
                (Includes::Nowhere, Some(path)) => {
                    let message = format!(
                        "{owner}: `{path}` is a relative path, and this workflow has no directory to resolve it \
                         from (it was posted to a server started without --workflows): give an absolute path, or a \
                         command on PATH"
                    );
                    self.add(at, message);
                    None
                }
                _ => Some(None),
            },
        }
    }

    fn env_list(&mut self, y: &Yaml, field: &str) -> Option<Vec<String>> {
        let Value::Seq(items) = &y.value else {
            self.add(y.span, format!("`{field}` must be a list of strings, found {}", y.kind()));
            return None;
        };
        let items: Vec<_> = items.iter().map(|item| self.env_string(item, "an argument")).collect();
        items.into_iter().collect()
    }

    fn env_map(&mut self, y: &Yaml, field: &str, what: &str) -> Option<BTreeMap<String, String>> {
        let entries = self.entries(y, &format!("`{field}`"), what)?;
        let values: Vec<_> =
            entries.iter().map(|e| self.env_string(&e.value, &format!("{what} `{}`", e.key))).collect();
        entries.iter().map(|e| e.key.clone()).zip(values).map(|(k, v)| Some((k, v?))).collect()
    }

    /// `type: tool`: `server`, `tool`, `arguments`, `output_key`.
    pub(super) fn tool(&mut self, f: &Fields, at: Span) -> Option<NodeKind> {
        let server = self.required(f, "server", "a tool node", at).and_then(|y| {
            let name = self.string(y, "server")?;
            if !self.mcp_declared.contains(&name) {
                let node = self.node.clone().unwrap_or_default();
                let declared = if self.mcp_declared.is_empty() {
                    "none are declared: add it under `mcp: servers:`".to_string()
                } else {
                    let mut names = self.mcp_declared.clone();
                    names.sort();
                    format!("declared: {}", names.join(", "))
                };
                let hint = super::did_you_mean(&name, self.mcp_declared.iter().map(String::as_str));
                self.add(
                    y.span,
                    format!("node `{node}` names MCP server `{name}`, which is not declared{hint} ({declared})"),
                );
                return None;
            }
            Some(name)
        });
        let tool = self.required(f, "tool", "a tool node", at).and_then(|y| {
            let name = self.string(y, "tool")?;
            if name.trim().is_empty() {
                self.add(y.span, "`tool` must name a tool of the server");
                return None;
            }
            Some((name, y.span))
        });
        if let (Some(server), Some((tool, at))) = (&server, &tool) {
            self.tool_allowed(*at, &format!("{server}.{tool}"), tool, Some(server));
        }
        let tool = tool.map(|(name, _)| name);
        let arguments = f.get("arguments").map(|y| {
            if !matches!(y.value, Value::Map(_)) {
                self.add(y.span, format!("`arguments` must be a mapping, found {}", y.kind()));
            }
            self.json(y)
        });
        let output_key = optional(f.get("output_key").map(|y| self.output_key(y)));
        Some(NodeKind::Tool(ToolNode { server: server?, tool: tool?, arguments, output_key: output_key? }))
    }
}
