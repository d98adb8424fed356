//! A local agent: a `type: agent` node whose `agent` names an entry of
//! the workflow's `agents:`, or an agent another agent calls as a tool.
//!
//! `react` (the strategy every agent runs today): the agent's
//! `instructions` (rendered from the state) are the system prompt, the
//! node's `message` (or the calling agent's `message` argument) the first
//! user message, and its `tools:` are offered: MCP tools as their server
//! lists them, host functions with any JSON object as arguments, other
//! local agents and remote A2A agents ([`super::remote_tool`]) with one
//! `message` argument. The model and the tools go
//! round in the durable conversation of [`crate::nodes::converse`] (every
//! call journaled as it completes) until the model answers without tools,
//! within `max_iterations` model calls. The answer is the reply's text, or
//! with `output_schema` the JSON it holds once validated.
//!
//! Budgets: the agent's own (`max_cost_usd`, `max_tokens`, over what this
//! run of it spent, a sub-agent's calls included) and the workflow's
//! `budget:` (over the whole execution), checked after every model call;
//! crossing one is `budget_exceeded`. A sub-agent's calls are journaled in
//! the calling visit's sequence, so a resumed visit reads them back too.
//!
//! Approval: a call of a tool its `approval:` (or the workflow's
//! `policy.require_approval_for`) names waits for a person's decision
//! ([`crate::nodes::approvals`]); the node parks until each such call of
//! the turn is decided, then runs again and goes on from its journal.

use std::time::Duration;

use futures::future::BoxFuture;
use serde_json::{Value, json};

use crate::ir::{AgentDef, AgentNode, AgentTool, ToolApproval};
use crate::journal::ErrorClass;
use crate::model::{ChatMessage, ChatRequest, DEFAULT_TIMEOUT, ToolSpec, parse_output, request_body, resolve_env};
use crate::nodes::calls::Calls;
use crate::nodes::converse::{Budget, Conversation, Ended, How, Toolset, converse, minus, workflow_budget};
use crate::nodes::{Exchange, NodeCtx, NodeError, NodeOutput, output_patch};

/// Run the node's local agent on the node's message.
pub(super) async fn run_node(ctx: &NodeCtx<'_>, spec: &AgentNode) -> Result<NodeOutput, NodeError> {
    let message = match ctx.services.templates.render_value(&spec.message, &ctx.template_context())? {
        Value::String(s) => s,
        other => other.to_string(),
    };
    let mut calls = Calls::new(ctx);
    let (answer, ended) = match react(ctx, &mut calls, &spec.agent, message, false, ctx.history).await {
        Ok(done) => done,
        // Tool calls wait for a person's decision: the execution parks.
        Err(_) if calls.parked() => return Ok(NodeOutput { pending: calls.take_pending(), ..Default::default() }),
        Err(e) => return Err(e),
    };
    let exchange = Exchange { request: ended.body, response: ended.reply.raw, usage: ended.unjournaled };
    let patch = output_patch(spec.output_key.as_deref(), answer).map_err(|e| e.with_exchange(exchange.clone()))?;
    Ok(NodeOutput { patch, exchange: Some(Box::new(exchange)), ..Default::default() })
}

/// Run the local agent `name` on `message` as a tool of another agent:
/// its answer. Its final reply is journaled too, so a resumed visit reads
/// the whole run back.
pub(crate) fn run_agent<'d, 'a: 'd>(
    ctx: &'d NodeCtx<'a>,
    calls: &'d mut Calls<'a>,
    name: &'d str,
    message: String,
) -> BoxFuture<'d, Result<Value, NodeError>> {
    Box::pin(async move { react(ctx, calls, name, message, true, &[]).await.map(|(answer, _)| answer) })
}

/// Run the local agent `name` on `message` inside a host function's step
/// (`steps.agent(..)`): like [`run_agent`], and given the session's
/// conversation so far (`ctx.history`) ahead of the message, as an agent
/// node is.
pub(crate) async fn run_in_step<'a>(
    ctx: &NodeCtx<'a>,
    calls: &mut Calls<'a>,
    name: &str,
    message: String,
) -> Result<Value, NodeError> {
    react(ctx, calls, name, message, true, ctx.history).await.map(|(answer, _)| answer)
}

/// Agent `name`'s run on `message` by its strategy: its answer, and how
/// its last conversation ended. `journal_final`: journal the last reply
/// too (an agent called as a tool). `history`: the session's conversation
/// so far, sent ahead of every conversation of the run (a node's agent in
/// a session; none for an agent called as a tool).
async fn react<'a>(
    ctx: &NodeCtx<'a>,
    calls: &mut Calls<'a>,
    name: &str,
    message: String,
    journal_final: bool,
    history: &[crate::nodes::PastTurn],
) -> Result<(Value, Ended), NodeError> {
    let def = ctx.workflow.agents.get(name).ok_or_else(|| {
        NodeError::new(ErrorClass::Internal, format!("node `{}`: there is no agent `{name}` in `agents:`", ctx.node.id))
    })?;
    let timeout = ctx.node.timeout_ms.map_or(DEFAULT_TIMEOUT, Duration::from_millis);
    resolve_env(&def.config, &def.model)
        .map_err(|e| NodeError { message: format!("{} (agent `{name}`, at {})", e.message, ctx.location()), ..e })?;
    let agent = Agent {
        name,
        def,
        system: ctx.services.templates.render(&def.instructions, &ctx.template_context())?,
        tools: toolset(ctx, def, timeout).await?,
        timeout,
        start: calls.spent(),
        history: crate::nodes::history_messages(history),
    };
    let ended = super::strategy::run(ctx, calls, &agent, message, journal_final).await?;
    let answer = match &def.output_schema {
        Some(schema) => {
            let exchange = || Exchange {
                request: ended.body.clone(),
                response: ended.reply.raw.clone(),
                usage: ended.unjournaled,
            };
            ctx.services
                .compiled
                .schema(schema)
                .and_then(|validator| parse_output(&ended.reply.text, &validator))
                .map_err(|e| {
                    NodeError::new(ErrorClass::InvalidOutput, format!("agent `{name}`: {e}")).with_exchange(exchange())
                })?
        }
        None => Value::String(ended.reply.text.clone()),
    };
    Ok((answer, ended))
}

/// One run of a local agent, for its strategy's conversations.
pub(super) struct Agent<'d> {
    pub name: &'d str,
    pub def: &'d AgentDef,
    /// Its instructions, rendered.
    pub system: String,
    pub tools: Toolset,
    pub timeout: Duration,
    /// What the visit's calls had cost when this run began.
    pub start: crate::journal::Usage,
    /// The session's conversation so far, ahead of each conversation's messages.
    pub history: Vec<ChatMessage>,
}

/// One conversation of an agent's run.
pub(super) struct Turn<'t> {
    /// What its model calls are journaled as (`model`, `plan`, ...).
    pub kind: &'t str,
    /// Another model than the agent's (a consensus sample, a judge).
    pub model: Option<&'t crate::ir::ModelConfig>,
    pub messages: Vec<ChatMessage>,
    /// Offer the agent's tools (a react loop) or none (one reply).
    pub tools: bool,
    pub journal_final: bool,
}

impl Agent<'_> {
    /// Run one conversation of this agent; how it ended.
    pub(super) async fn turn<'a>(
        &self,
        ctx: &NodeCtx<'a>,
        calls: &mut Calls<'a>,
        turn: Turn<'_>,
    ) -> Result<Ended, NodeError> {
        let none = Toolset::default();
        let tools = if turn.tools { &self.tools } else { &none };
        let (config, body) = self.first_request(turn.model, turn.messages, turn.tools);
        let conv = Conversation {
            config,
            kind: turn.kind,
            name: self.name,
            timeout: self.timeout,
            max_tool_rounds: self.def.max_iterations.saturating_sub(1),
            rounds_field: format!("`max_iterations` {} of agent `{}`", self.def.max_iterations, self.name),
            budgets: budgets(ctx, calls, self),
            journal_final: turn.journal_final,
            stream: self.def.stream,
        };
        converse(ctx, calls, &conv, body, tools).await
    }

    /// The model a turn talks to (`model`, or the agent's) and the body
    /// of its first request: the session's conversation so far, then
    /// `messages`.
    pub(super) fn first_request<'m>(
        &'m self,
        model: Option<&'m crate::ir::ModelConfig>,
        messages: Vec<ChatMessage>,
        tools: bool,
    ) -> (&'m crate::ir::ModelConfig, serde_json::Value) {
        let config = model.unwrap_or(&self.def.config);
        let mut all = Vec::with_capacity(self.history.len() + messages.len());
        all.extend(self.history.iter().cloned());
        all.extend(messages);
        let request = ChatRequest {
            system: Some(self.system.clone()),
            messages: all,
            temperature: self.def.temperature,
            max_tokens: None,
            tools: if tools { self.tools.offered.clone() } else { Vec::new() },
            timeout: Some(self.timeout),
        };
        (config, request_body(config, &request))
    }

    /// Whether some tool call of the agent waits for a person's decision.
    pub(super) fn needs_approval(&self) -> bool {
        !self.tools.approval.is_empty()
    }
}

/// The budgets an agent's conversation runs under: its own, over what
/// this run of it spent so far; the workflow's, over the execution's total.
fn budgets(ctx: &NodeCtx<'_>, calls: &Calls<'_>, agent: &Agent<'_>) -> Vec<Budget> {
    let def = agent.def;
    let mut out = Vec::new();
    if def.max_cost_usd.is_some() || def.max_tokens.is_some() {
        out.push(Budget {
            owner: format!("agent `{}`", agent.name),
            max_cost_usd: def.max_cost_usd,
            max_tokens: def.max_tokens,
            before: minus(calls.spent(), agent.start),
        });
    }
    out.extend(workflow_budget(ctx, calls));
    out
}

/// The agent's tools as the model is offered them, and how each is carried out.
async fn toolset(ctx: &NodeCtx<'_>, def: &AgentDef, timeout: Duration) -> Result<Toolset, NodeError> {
    let mut set = Toolset::default();
    for tool in &def.tools {
        let (spec, how) = match tool {
            AgentTool::Mcp { server, tool: name } => {
                let listed = ctx.services.mcp.tools(ctx.workflow, server).await?;
                let Some(info) = listed.into_iter().find(|t| &t.name == name) else {
                    let message = format!("MCP server `{server}` has no tool `{name}` (agent tool `{server}.{name}`)");
                    return Err(NodeError::new(ErrorClass::ClientError, message));
                };
                let spec = ToolSpec {
                    name: info.name,
                    description: info.description.unwrap_or_default(),
                    input_schema: info.input_schema,
                };
                (spec, How::Mcp { server: server.clone() })
            }
            AgentTool::Function { name } => {
                let spec = match ctx.services.functions.tool_schema(name) {
                    Some(tool) => ToolSpec {
                        name: name.clone(),
                        description: tool.description.clone(),
                        input_schema: tool.parameters.clone(),
                    },
                    None => ToolSpec {
                        name: name.clone(),
                        description: format!("The host function `{name}`."),
                        input_schema: json!({"type": "object"}),
                    },
                };
                (spec, How::Function)
            }
            AgentTool::Agent { name } => {
                let about = ctx.workflow.agents.get(name).map(|a| a.instructions.clone()).unwrap_or_default();
                let spec = ToolSpec {
                    name: name.clone(),
                    description: format!("Ask the agent `{name}` ({}).", about.chars().take(200).collect::<String>()),
                    input_schema: json!({
                        "type": "object",
                        "properties": {"message": {"type": "string", "description": "What to ask the agent."}},
                        "required": ["message"]
                    }),
                };
                (spec, How::Agent { name: name.clone() })
            }
            AgentTool::Remote { url } => {
                let spec = super::remote_tool::spec(ctx, url, tool.name(), timeout).await;
                (spec, How::Remote { url: url.clone() })
            }
        };
        if needs_approval(ctx, def, tool) {
            set.approval.insert(spec.name.clone());
        }
        if set.how.insert(spec.name.clone(), how).is_some() {
            let message = format!("two tools of the agent are both called `{}`", spec.name);
            return Err(NodeError::new(ErrorClass::ClientError, message));
        }
        set.offered.push(spec);
    }
    Ok(set)
}

/// Whether the agent's calls of `tool` wait for a person's decision: its
/// `approval:` names it (or is `all`), or the workflow's
/// `policy.require_approval_for` does (the compiler merges the policy into
/// `approval:`; it is asked again here for an IR posted as JSON).
fn needs_approval(ctx: &NodeCtx<'_>, def: &AgentDef, tool: &AgentTool) -> bool {
    let written = tool.written();
    let own = match &def.approval {
        ToolApproval::None => false,
        ToolApproval::All => true,
        ToolApproval::Tools(names) => names.contains(&written),
    };
    let server = match tool {
        AgentTool::Mcp { server, .. } => Some(server.as_str()),
        _ => None,
    };
    let policy = ctx.workflow.policy.as_ref().map(|p| p.require_approval_for.as_slice()).unwrap_or_default();
    own || crate::ir::Policy::matching(policy, &written, &tool.name(), server).is_some()
}
